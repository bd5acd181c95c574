"""DexYCB loader on fixture trees in the toolkit's on-disk format."""

import logging
import os

import numpy as np
import pytest
import torch

from hand_object_pose_ros.crop import crop_hand
from hand_object_pose_ros.crop import transform_points_2d
from hand_object_pose_ros.crop import warp_image
from hand_object_pose_ros.data import common
from hand_object_pose_ros.data import dexycb
from hand_object_pose_ros.data import fixtures
from hand_object_pose_ros.mano import ManoLayer


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('dexycb'))
    truth = fixtures.write_dexycb_fixture(root, subjects=(0, 1), serials=(0, 1), n_sequences=2,
                                          n_frames=2, seed=0)
    return root, truth


@pytest.fixture(scope='module')
def loader(tree):
    return dexycb.DexYCB(tree[0], 's0', 'train', crop_size_px=128)


def _good_indices(loader, truth):
    return [i for i in range(len(loader)) if truth['samples'][loader.sample_key(i)]['has_hand']]


def test_index_order_and_no_hand_frames(tree, loader):
    _, truth = tree
    keys = [loader.sample_key(i) for i in range(len(loader))]
    # Toolkit order: subject, sequence, camera, frame.
    expected = [(s, q, dexycb.SERIALS[c], f) for s in (0, 1) for q in (0, 1) for c in (0, 1)
                for f in (0, 1)]
    assert keys == expected
    for index, key in enumerate(keys):
        if not truth['samples'][key]['has_hand']:
            with pytest.raises(common.SampleUnavailable, match='labels_000000.npz'):
                loader.load(index)


def test_samples_match_the_ground_truth(tree, loader):
    _, truth = tree
    layers = {side: ManoLayer.standin(side, flat_hand_mean=True) for side in ('right', 'left')}
    sides = set()
    for index in _good_indices(loader, truth):
        sample = loader.load(index)
        gt = truth['samples'][loader.sample_key(index)]
        sides.add(gt['side'])
        assert sample.is_right_hand == (gt['side'] == 'right')
        np.testing.assert_allclose(sample.joints_cam, gt['joint_3d'], atol=1e-6)
        np.testing.assert_allclose(sample.camera_K, gt['K'], atol=1e-4)
        # PCA coefficients relative to the mean became the full pose (mean included).
        np.testing.assert_allclose(sample.mano_pose, gt['mano_pose'], atol=1e-5)
        np.testing.assert_allclose(sample.mano_betas, gt['betas'], atol=1e-6)
        # The full pose reproduces the labelled joints; the wrist is J0(betas) + translation,
        # not the stored translation.
        pose = torch.as_tensor(sample.mano_pose[None])
        out = layers[gt['side']](pose[:, :3], pose[:, 3:], torch.as_tensor(
            sample.mano_betas[None]), torch.as_tensor(gt['pose_m'][None, 48:51],
                                                      dtype=torch.float32))
        np.testing.assert_allclose(out.joints[0].numpy(), gt['joint_3d'], atol=1e-5)
        assert np.linalg.norm(gt['joint_3d'][0] - gt['pose_m'][48:51]) > 0.02
        np.testing.assert_allclose(sample.vertices_cam, gt['vertices'], atol=1e-5)
        # Grasped object (ycb_grasp_ind), camera_from_object, with the dataset's mesh.
        assert sample.object_id == gt['object_id']
        np.testing.assert_allclose(sample.object_rotation, gt['object_rotation'], atol=1e-6)
        np.testing.assert_allclose(sample.object_translation, gt['object_translation'],
                                   atol=1e-6)
        np.testing.assert_allclose(
            sample.object_vertices_cam,
            gt['object_vertices'] @ gt['object_rotation'].T + gt['object_translation'],
            atol=1e-5)
        # The crop: K, 2D joints, pixels, masks, depth all agree with the full image.
        crop_from_image = sample.crop_K.astype(np.float64) @ np.linalg.inv(gt['K'])
        np.testing.assert_allclose(sample.joints_2d_crop_px,
                                   transform_points_2d(crop_from_image, gt['joint_2d']),
                                   atol=1e-3)
        expected = crop_hand(gt['rgb'], sample.bbox_xyxy_px, gt['K'], 128)
        np.testing.assert_allclose(expected.crop_K, sample.crop_K, atol=1e-3)
        assert np.abs(expected.image.astype(float) - sample.image).mean() < 6.0
        hand = warp_image((gt['seg'] == 255).astype(np.uint8), expected.crop_from_image, 128,
                          0).astype(bool)
        np.testing.assert_array_equal(sample.hand_mask, hand)
        assert sample.hand_mask.any()
        depth = warp_image(gt['depth_mm'].astype(np.float32) / 1000.0,
                           expected.crop_from_image, 128, 0)
        np.testing.assert_allclose(sample.depth, depth, atol=1e-6)
        # Box: every projected joint inside.
        box = sample.bbox_xyxy_px
        inside = (gt['joint_2d'] >= box[:2] - 1e-3) & (gt['joint_2d'] <= box[2:] + 1e-3)
        clipped = (gt['joint_2d'] < 0) | (gt['joint_2d'] > [639, 479])
        assert np.all(inside | clipped)
    assert sides == {'right', 'left'}


def test_zero_pose_row_of_another_object_is_fine(tree, loader):
    _, truth = tree
    key = (0, 0, dexycb.SERIALS[0], 1)  # last frame of sequence 0: other object's row zero
    index = [loader.sample_key(i) for i in range(len(loader))].index(key)
    sample = loader.load(index)
    assert sample.object_id == truth['samples'][key]['object_id']


def test_split_rules_on_100_sequences(tmp_path):
    fixtures.write_dexycb_fixture(tmp_path, subjects=(0, 2, 7), serials=tuple(range(8)),
                                  n_sequences=100, n_frames=1, write_frames=False)
    counts = {}
    for setup in dexycb.SETUPS:
        for split in dexycb.SPLITS:
            loader = dexycb.DexYCB(tmp_path, setup, split)
            keys = [loader.sample_key(i) for i in range(len(loader))]
            counts[setup + '_' + split] = len(keys)
            if setup == 's0':
                subjects = {'train': (0, 2, 7), 'val': (0,), 'test': (2, 7)}[split]
                positions = [i for i in range(100) if (i % 5 == 4) == (split != 'train')]
                expected = [(s, q, serial, 0) for s in subjects for q in positions
                            for serial in dexycb.SERIALS]
                assert keys == expected, split
    assert counts['s0_train'] == 3 * 80 * 8
    assert counts['s0_val'] == 1 * 20 * 8
    assert counts['s0_test'] == 2 * 20 * 8
    assert counts['s1_train'] == 2 * 100 * 8 and counts['s1_val'] == 0
    assert counts['s1_test'] == 100 * 8
    assert counts['s2_train'] == 3 * 100 * 6 and counts['s2_val'] == 3 * 100
    assert counts['s3_train'] == 3 * 75 * 8 and counts['s3_val'] == 3 * 10 * 8
    assert counts['s3_test'] == 3 * 15 * 8
    with pytest.raises(ValueError):
        dexycb.split_selection('s4', 'train')


def test_torch_dataset_batches_with_the_synthetic_keys(tree):
    dataset = dexycb.DexYCBDataset(tree[0], 's0', 'train', crop_size_px=96)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False)
    batch = next(iter(loader))
    expected_keys = {'image', 'crop_K', 'camera_K', 'bbox_xyxy_px', 'mano_pose', 'mano_betas',
                     'joints_cam', 'vertices_cam', 'joints_2d_crop_px', 'object_id',
                     'object_rotation', 'object_translation', 'is_right_hand', 'joints_rel',
                     'vertices_rel', 'object_translation_rel', 'hand_mask', 'object_mask',
                     'depth', 'index', 'mirrored'}
    assert set(batch) == expected_keys
    # Left hands arrive mirrored into the right-hand frame the network predicts in.
    assert batch['mirrored'].tolist() == (~batch['is_right_hand']).tolist()
    assert batch['image'].shape == (4, 3, 96, 96)
    assert batch['vertices_cam'].shape == (4, 778, 3)
    # Index 4 has no hand: the item is the next frame, counted as unavailable.
    assert batch['index'].tolist() == [0, 1, 2, 3]
    item = dataset[4]
    assert int(item['index']) == 5 and dataset.num_unavailable == 1


def _copy_tree(tree, tmp_path):
    import shutil
    root = str(tmp_path / 'copy')
    shutil.copytree(tree[0], root)
    return root


def test_missing_root_meta_and_calibration(tree, tmp_path):
    with pytest.raises(common.DatasetError, match='does not exist'):
        dexycb.DexYCB(str(tmp_path / 'nowhere'))
    root = _copy_tree(tree, tmp_path)
    meta = os.path.join(tree[1]['sequences'][(1, 0)].replace(tree[0], root), 'meta.yml')
    os.remove(meta)
    with pytest.raises(common.DatasetError, match=meta):
        dexycb.DexYCB(root)
    fixtures.write_dexycb_fixture(root, n_frames=1, write_frames=False)
    intrinsics = os.path.join(root, 'calibration', 'intrinsics',
                              '%s_640x480.yml' % dexycb.SERIALS[1])
    os.remove(intrinsics)
    with pytest.raises(common.DatasetError, match=intrinsics):
        dexycb.DexYCB(root)


def test_corrupt_image_and_label_are_named_and_skipped(tree, tmp_path, caplog):
    root = _copy_tree(tree, tmp_path)
    loader = dexycb.DexYCB(root, crop_size_px=64)
    color, _, label = loader._paths(0)
    with open(color, 'wb') as stream:
        stream.write(b'not a jpeg at all')
    with pytest.raises(common.DatasetError, match=color):
        loader.load(0)
    _, _, label = loader._paths(1)
    with open(label, 'wb') as stream:
        stream.write(b'PK\x03\x04 truncated')
    with pytest.raises(common.DatasetError, match=label):
        loader.load(1)
    dataset = common.SkippingDataset(loader)
    with caplog.at_level(logging.WARNING):
        item = dataset[0]
    assert int(item['index']) == 2
    assert dataset.num_skipped == 2
    assert sum('skipping bad sample' in r.getMessage() for r in caplog.records) == 2
    strict = common.SkippingDataset(loader, skip_bad_samples=False)
    with pytest.raises(common.DatasetError):
        strict[0]


def test_catalogue_fallback_and_no_meshes(tree):
    no_mesh = dexycb.DexYCB(tree[0], crop_size_px=64, object_meshes=None, load_depth=False)
    sample = no_mesh.load(0)
    assert sample.object_vertices_cam is None and sample.depth is None
    catalogue = dexycb.DexYCB(tree[0], crop_size_px=64, object_meshes='catalogue')
    sample = catalogue.load(0)
    assert sample.object_vertices_cam.shape[0] > 8  # the catalogue's mesh, not the fixture box
