"""ObMan loader on fixture trees in the released on-disk format."""

import logging
import os
import pickle
import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
import torch

from hand_object_pose_ros.crop import transform_points_2d
from hand_object_pose_ros.crop import warp_image
from hand_object_pose_ros.data import fixtures
from hand_object_pose_ros.data import obman
from hand_object_pose_ros.data.common import DatasetError


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('obman'))
    truth = fixtures.write_obman_fixture(root, split='train', n=3, seed=1)
    return root, truth


def _rotation(axis_angle):
    return Rotation.from_rotvec(np.asarray(axis_angle, np.float64)).as_matrix()


def _check_sample(sample, gt, size):
    np.testing.assert_allclose(sample.camera_K, obman.CAMERA_K)
    np.testing.assert_allclose(sample.joints_cam, gt['joints_cam'], atol=1e-6)
    np.testing.assert_allclose(sample.vertices_cam, gt['vertices_cam'], atol=1e-6)
    assert np.all(sample.joints_cam[:, 2] > 0)  # OpenGL -> OpenCV: in front of the camera
    # Global rotation fitted in the camera frame; articulation without the mean.
    np.testing.assert_allclose(_rotation(sample.mano_pose[:3]), _rotation(gt['global_orient']),
                               atol=1e-5)
    np.testing.assert_allclose(sample.mano_pose[3:], gt['articulation'], atol=1e-5)
    np.testing.assert_allclose(sample.object_rotation, gt['object_rotation'], atol=1e-5)
    np.testing.assert_allclose(sample.object_translation, gt['object_translation'], atol=1e-6)
    np.testing.assert_allclose(sample.object_vertices_cam, gt['object_vertices_cam'], atol=1e-5)
    assert sample.object_id == obman.shapenet_object_id(gt['class_id']) > 100
    crop_from_image = sample.crop_K.astype(np.float64) @ np.linalg.inv(gt['K'])
    np.testing.assert_allclose(sample.joints_2d_crop_px,
                               transform_points_2d(crop_from_image, gt['joints_2d']), atol=1e-3)
    hand = warp_image(gt['hand_mask'].astype(np.uint8), crop_from_image, size, 0).astype(bool)
    obj = warp_image(gt['object_mask'].astype(np.uint8), crop_from_image, size, 0).astype(bool)
    np.testing.assert_array_equal(sample.hand_mask, hand)
    np.testing.assert_array_equal(sample.object_mask, obj)
    assert hand.any()
    depth = warp_image(gt['depth'].astype(np.float32), crop_from_image, size, 0)
    # uint8 quantisation of the depth range (a few cm over 254 levels).
    assert np.all((sample.depth > 0) == (depth > 0))
    np.testing.assert_allclose(sample.depth, depth, atol=1e-3)
    colour = warp_image(gt['rgb'], crop_from_image, size)
    assert np.abs(colour.astype(float) - sample.image).mean() < 6.0


def test_samples_match_the_ground_truth(tree):
    root, truth = tree
    loader = obman.ObMan(root, 'train', crop_size_px=128)
    assert loader.ids == sorted(truth) and loader.ids != list(range(len(truth)))
    assert loader.shapenet_root.endswith('ShapeNetCore.v2')
    for index, sample_id in enumerate(loader.ids):
        _check_sample(loader.load(index), truth[sample_id], 128)
    # The folder holding train/ works as the root too.
    assert len(obman.ObMan(os.path.join(root, 'obman'), 'train', shapenet_root=None)) == 3


def test_rigid_affine_uses_obj_scale_and_pca_pose_without_mean(tmp_path):
    truth = fixtures.write_obman_fixture(tmp_path, n=2, seed=2, obj_scale_in_affine=False)
    loader = obman.ObMan(tmp_path, 'train', crop_size_px=96)
    # Drop hand_pose: the articulation must come from pca_pose @ components, no mean.
    meta_path = loader._path('meta', 1, 'pkl')
    meta = obman.load_pickle(meta_path)
    del meta['hand_pose']
    with open(meta_path, 'wb') as stream:
        pickle.dump(meta, stream)
    for index, sample_id in enumerate(loader.ids):
        _check_sample(loader.load(index), truth[sample_id], 96)


def test_depth_names_are_swapped():
    channel = np.array([[0, 1, 255]], np.uint8)
    # Stored depth_min holds the true maximum (0.9), depth_max the true minimum (0.5).
    np.testing.assert_allclose(obman.decode_depth(channel, 0.9, 0.5), [[0.0, 0.5, 0.9]],
                               atol=1e-6)


def test_restricted_unpickler_refuses_code(tmp_path):
    target = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return (open, (str(target), 'w'))

    path = tmp_path / 'evil.pkl'
    with open(path, 'wb') as stream:
        pickle.dump({'coords_3d': Payload()}, stream)
    with pytest.raises(DatasetError, match='refusing to load global'):
        obman.load_pickle(str(path))
    assert not target.exists()
    # numpy arrays and scalars of both protocol generations load.
    for protocol in (2, 4):
        with open(path, 'wb') as stream:
            pickle.dump({'a': np.arange(3.0), 'b': np.float32(2.5), 'c': [1, 'x']}, stream,
                        protocol=protocol)
        loaded = obman.load_pickle(str(path))
        np.testing.assert_array_equal(loaded['a'], [0.0, 1.0, 2.0])
        assert loaded['b'] == 2.5 and loaded['c'] == [1, 'x']


def test_missing_shapenet_is_skipped_gracefully(tree, tmp_path, caplog):
    root = str(tmp_path / 'copy')
    shutil.copytree(tree[0], root)
    shutil.rmtree(os.path.join(root, 'ShapeNetCore.v2'))
    os.makedirs(os.path.join(root, 'ShapeNetCore.v2'))
    loader = obman.ObMan(root, 'train', crop_size_px=64)
    with caplog.at_level(logging.WARNING):
        samples = [loader.load(i) for i in range(len(loader))]
    assert all(s.object_vertices_cam is None for s in samples)
    assert loader.num_missing_meshes == 3
    assert sum('not found' in r.getMessage() for r in caplog.records) == 1
    truth = tree[1][loader.ids[0]]
    np.testing.assert_allclose(samples[0].object_translation, truth['object_translation'],
                               atol=1e-6)


def test_bad_inputs_name_the_path(tree, tmp_path, caplog):
    with pytest.raises(DatasetError, match='does not exist'):
        obman.ObMan(str(tmp_path / 'nowhere'))
    with pytest.raises(DatasetError, match='meta'):
        obman.ObMan(tree[0], 'test')
    root = str(tmp_path / 'copy')
    shutil.copytree(tree[0], root)
    loader = obman.ObMan(root, 'train', crop_size_px=64)
    meta_path = loader._path('meta', 0, 'pkl')
    with open(meta_path, 'wb') as stream:
        stream.write(b'\x80\x04truncated')
    with pytest.raises(DatasetError, match=meta_path):
        loader.load(0)
    segm_path = loader._path('segm', 1, 'png')
    with open(segm_path, 'wb') as stream:
        stream.write(b'garbage')
    with pytest.raises(DatasetError, match=segm_path):
        loader.load(1)
    meta = obman.load_pickle(loader._path('meta', 2, 'pkl'))
    del meta['affine_transform']
    with open(loader._path('meta', 2, 'pkl'), 'wb') as stream:
        pickle.dump(meta, stream)
    with pytest.raises(DatasetError, match='affine_transform'):
        loader.load(2)
    # The torch wrapper: all three bad, a clear error after counted skips.
    dataset = obman.ObManDataset(root, 'train', crop_size_px=64)
    with caplog.at_level(logging.WARNING), pytest.raises(DatasetError, match='consecutive'):
        dataset[0]
    assert dataset.num_skipped == 101


def test_torch_dataset(tree):
    dataset = obman.ObManDataset(tree[0], 'train', crop_size_px=64)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch['image'].shape == (3, 3, 64, 64)
    assert batch['object_id'].tolist() == [101, 102, 103]
    assert bool(batch['is_right_hand'].all())
    assert dataset.num_skipped == 0
