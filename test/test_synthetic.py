"""Synthetic generator: ground truth against the rendered pixels, determinism, splits, shards."""

import json
import logging
import os

import cv2
import numpy as np
import pytest
import torch

from hand_object_pose_ros.crop import crop_hand
from hand_object_pose_ros.data import render
from hand_object_pose_ros.data.shards import ShardDataset
from hand_object_pose_ros.data.shards import ShardError
from hand_object_pose_ros.data.shards import write_shards
from hand_object_pose_ros.data.synthetic import heldout_config
from hand_object_pose_ros.data.synthetic import project
from hand_object_pose_ros.data.synthetic import sample_to_item
from hand_object_pose_ros.data.synthetic import SyntheticConfig
from hand_object_pose_ros.data.synthetic import SyntheticDataset
from hand_object_pose_ros.data.synthetic import SyntheticHandObjectGenerator
from hand_object_pose_ros.mano import ManoLayer

CROP = 96
INDICES = range(6)


def gl_available():
    """Return True when a moderngl EGL context can be made here."""
    try:
        render.create_renderer('gl')
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope='module')
def clean_generator():
    """Make a generator without occluders, blur, noise, JPEG or box jitter (exact pixels)."""
    return SyntheticHandObjectGenerator(SyntheticConfig(crop_size_px=CROP, seed=5).clean())


@pytest.fixture(scope='module')
def clean_frames(clean_generator):
    """Render a few frames."""
    return [clean_generator.render_frame(i) for i in INDICES]


def dilated(mask, pixels=1):
    """Return ``mask`` grown by ``pixels``."""
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def fraction_inside(points_px, mask):
    """Return the fraction of pixel points that fall on ``mask``."""
    height, width = mask.shape
    uv = np.rint(points_px).astype(int)
    valid = (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    inside = np.zeros(len(uv), bool)
    inside[valid] = mask[uv[valid, 1], uv[valid, 0]]
    return inside.mean()


def test_frame_and_sample_fields(clean_frames):
    frame = clean_frames[0]
    sample = frame.sample
    assert frame.rgb.shape == (480, 640, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth_m.shape == (480, 640) and frame.depth_m.dtype == np.float32
    assert np.all(frame.depth_m > 0)
    assert sample.image.shape == (CROP, CROP, 3)
    for mask in (sample.hand_mask, sample.object_mask, sample.depth):
        assert mask.shape == (CROP, CROP)
    assert sample.mano_pose.shape == (48,) and sample.mano_betas.shape == (10,)
    assert sample.vertices_cam.shape == (778, 3) and sample.joints_cam.shape == (21, 3)
    assert sample.object_vertices_cam.shape[1] == 3
    for frame in clean_frames:
        assert 0.2 < frame.sample.joints_cam[0, 2] < 1.0
        assert frame.hand_mask.sum() > 200 and frame.object_mask.sum() > 50


def test_silhouettes_contain_projected_vertices_and_joints(clean_frames):
    for frame in clean_frames:
        sample = frame.sample
        union = dilated(frame.hand_mask | frame.object_mask)
        K = frame.K.astype(np.float64)
        assert fraction_inside(project(sample.vertices_cam, K), union) > 0.99
        assert fraction_inside(project(sample.object_vertices_cam, K), union) > 0.99
        assert fraction_inside(project(sample.joints_cam, K), union) > 0.9
        # A wrong K (principal point 12 px off) puts many vertices off the silhouette.
        wrong = K.copy()
        wrong[0, 2] += 12
        assert fraction_inside(project(sample.vertices_cam, wrong), union) < 0.95
    # The object's origin (its box centre) projects onto the object (or the hand over it);
    # concave objects (bowl, mug, clamps) may have it in the air, hence "most".
    on_object = [fraction_inside(project(f.sample.object_translation[None], f.K), dilated(
        f.object_mask | f.hand_mask, 2)) for f in clean_frames]
    assert np.mean(on_object) >= 0.6


def test_depth_equals_vertex_z_where_visible(clean_frames):
    for frame in clean_frames:
        vertices = frame.sample.vertices_cam.astype(np.float64)
        uv = np.rint(project(vertices, frame.K)).astype(int)
        depth = frame.depth_m[uv[:, 1], uv[:, 0]]
        hand = frame.hand_mask[uv[:, 1], uv[:, 0]]
        difference = depth - vertices[:, 2]
        visible = hand & (np.abs(difference) < 0.01)
        assert visible.mean() > 0.12
        # Within a pixel of the vertex the surface depth matches its z to about a millimetre.
        assert np.median(np.abs(difference[visible])) < 0.001
        # Nothing on the hand mask is rendered behind a vertex by more than its slope allows.
        assert np.percentile(difference[hand], 95) < 0.004
        # The crop depth is the same surface.
        sample = frame.sample
        crop_uv = np.rint(project(vertices, sample.crop_K)).astype(int)
        ok = np.all((crop_uv >= 0) & (crop_uv < CROP), axis=1) & visible
        crop_depth = sample.depth[crop_uv[ok, 1], crop_uv[ok, 0]]
        assert np.median(np.abs(crop_depth - vertices[ok, 2])) < 0.004


def test_crop_is_the_inference_crop(clean_frames):
    for frame in clean_frames:
        sample = frame.sample
        np.testing.assert_allclose(sample.joints_2d_crop_px,
                                   project(sample.joints_cam, sample.crop_K), atol=1e-3)
        crop = crop_hand(frame.rgb, frame.bbox_xyxy_px, frame.K, CROP)
        np.testing.assert_array_equal(crop.image, sample.image)
        np.testing.assert_allclose(crop.crop_K, sample.crop_K, rtol=1e-5, atol=1e-3)
        # Clean config: the box is the hull of the projected hand vertices.
        uv = project(sample.vertices_cam, frame.K)
        np.testing.assert_allclose(sample.bbox_xyxy_px, [*uv.min(0), *uv.max(0)], atol=1e-3)
        # Crop masks are the warped full masks: the hand fills the crop's middle.
        assert sample.hand_mask.sum() > 0.05 * CROP * CROP
        assert fraction_inside(sample.joints_2d_crop_px, dilated(
            sample.hand_mask | sample.object_mask, 2)) > 0.85


def test_mano_pose_is_the_full_camera_frame_pose(clean_frames):
    layer = ManoLayer.standin('right', flat_hand_mean=True)
    for frame in clean_frames:
        sample = frame.sample
        pose = torch.from_numpy(sample.mano_pose)[None]
        out = layer(pose[:, :3], pose[:, 3:], torch.from_numpy(sample.mano_betas)[None])
        joints = out.joints[0].numpy()
        np.testing.assert_allclose(joints - joints[0], sample.joints_cam - sample.joints_cam[0],
                                   atol=2e-4)
        vertices = out.vertices[0].numpy() - joints[0]
        np.testing.assert_allclose(vertices, sample.vertices_cam - sample.joints_cam[0],
                                   atol=2e-4)


def test_fingers_touch_without_deep_penetration(clean_generator):
    from hand_object_pose_ros.data.synthetic import _object_surface

    touching = 0
    for index in INDICES:
        sample = clean_generator.sample(index)
        surface = _object_surface(sample.object_id)
        local = (sample.vertices_cam - sample.object_translation) @ sample.object_rotation
        distance = surface.signed_distance(local.astype(np.float64))
        touching += distance.min() < 0.005
        assert np.mean(distance < -0.005) < 0.05
    assert touching >= len(INDICES) - 1


def test_deterministic_per_index_and_seed():
    cfg = SyntheticConfig(crop_size_px=64, seed=11)
    first = SyntheticHandObjectGenerator(cfg).sample(3)
    again = SyntheticHandObjectGenerator(cfg).sample(3)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.mano_pose, again.mano_pose)
    np.testing.assert_array_equal(first.object_rotation, again.object_rotation)
    other = SyntheticHandObjectGenerator(cfg).sample(4)
    assert not np.allclose(first.mano_pose, other.mano_pose)


def test_heldout_split_is_disjoint():
    cfg = SyntheticConfig(crop_size_px=64, seed=0)
    train = SyntheticHandObjectGenerator(cfg)
    heldout = SyntheticHandObjectGenerator(heldout_config(cfg))
    assert heldout.cfg.seed != cfg.seed
    train_poses = np.stack([train.sample(i).mano_pose for i in range(3)])
    held_poses = np.stack([heldout.sample(i).mano_pose for i in range(3)])
    distances = np.linalg.norm(train_poses[:, None] - held_poses[None], axis=-1)
    assert distances.min() > 1e-3


def test_left_hands_use_the_mirrored_layer():
    cfg = SyntheticConfig(crop_size_px=64, left_hand_prob=1.0).clean()
    sample = SyntheticHandObjectGenerator(cfg).sample(0)
    assert not sample.is_right_hand
    layer = ManoLayer.standin('left', flat_hand_mean=True)
    pose = torch.from_numpy(sample.mano_pose)[None]
    joints = layer(pose[:, :3], pose[:, 3:], torch.from_numpy(sample.mano_betas)[None])
    joints = joints.joints[0].numpy()
    np.testing.assert_allclose(joints - joints[0], sample.joints_cam - sample.joints_cam[0],
                               atol=2e-4)


def test_left_hand_items_are_right_hand_targets():
    """Training items mirror a left hand: the right-hand layer reproduces its joints."""
    cfg = SyntheticConfig(crop_size_px=64, left_hand_prob=1.0).clean()
    sample = SyntheticHandObjectGenerator(cfg).sample(0)
    item = sample_to_item(sample)
    assert item['mirrored'] and not item['is_right_hand']
    layer = ManoLayer.standin('right', flat_hand_mean=True)
    pose = item['mano_pose'][None]
    out = layer(pose[:, :3], pose[:, 3:], item['mano_betas'][None])
    wrist = out.joints[0, :1]
    np.testing.assert_allclose(out.joints[0] - wrist, item['joints_rel'], atol=2e-4)
    np.testing.assert_allclose(out.vertices[0] - wrist, item['vertices_rel'], atol=2e-4)
    # The flipped crop shows the mirrored joints where its intrinsics project them.
    np.testing.assert_allclose(project(item['joints_cam'].numpy(), item['crop_K'].numpy()),
                               item['joints_2d_crop_px'].numpy(), atol=1e-2)
    np.testing.assert_array_equal(item['hand_mask'].numpy(), sample.hand_mask[:, ::-1])
    rotation = item['object_rotation'].numpy()
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
    assert np.linalg.det(rotation) > 0
    # A right hand passes through unchanged.
    right = SyntheticHandObjectGenerator(SyntheticConfig(crop_size_px=64).clean()).sample(0)
    assert right.in_right_hand_frame() is right


@pytest.mark.skipif(not gl_available(), reason='no moderngl EGL context here')
def test_cpu_fallback_agrees_with_gl():
    gl_frame = SyntheticHandObjectGenerator(
        SyntheticConfig(crop_size_px=64, renderer='gl').clean()).render_frame(1)
    cpu_frame = SyntheticHandObjectGenerator(
        SyntheticConfig(crop_size_px=64, renderer='cpu').clean()).render_frame(1)
    for name in ('hand_mask', 'object_mask'):
        a, b = getattr(gl_frame, name), getattr(cpu_frame, name)
        assert (a & b).sum() / (a | b).sum() > 0.97, name
    both = gl_frame.hand_mask & cpu_frame.hand_mask
    assert np.median(np.abs(gl_frame.depth_m[both] - cpu_frame.depth_m[both])) < 1e-4
    np.testing.assert_array_equal(gl_frame.sample.joints_cam, cpu_frame.sample.joints_cam)


def test_unknown_object_id_is_rejected():
    with pytest.raises(KeyError, match='known ids'):
        SyntheticHandObjectGenerator(SyntheticConfig(object_ids=(99,)))


def test_shard_round_trip_and_errors(tmp_path, caplog):
    cfg = SyntheticConfig(crop_size_px=64, seed=2, object_ids=(4, 14))
    out = str(tmp_path / 'shards')
    write_shards(cfg, out, 4, workers=0, shard_size=2, progress=False)
    shards = ShardDataset(out)
    streamed = SyntheticDataset(cfg, 4)
    assert len(shards) == 4 and len(shards.meta['shards']) == 2
    for index in (0, 3):
        written, fresh = shards[index], streamed[index]
        assert set(written) == set(fresh)
        for key in ('crop_K', 'joints_cam', 'vertices_cam', 'mano_pose', 'object_rotation',
                    'joints_2d_crop_px', 'object_id', 'hand_mask', 'object_mask'):
            torch.testing.assert_close(written[key], fresh[key], msg=key)
        assert (written['image'] - fresh['image']).abs().mean() < 0.02  # JPEG
        assert (written['depth'] - fresh['depth']).abs().max() < 0.0006  # millimetres
    sample = shards.sample(1)
    assert sample.object_id in (4, 14) and sample.object_vertices_cam.shape[1] == 3

    with pytest.raises(ShardError, match='nowhere'):
        ShardDataset(str(tmp_path / 'nowhere'))
    # A corrupt shard file: one clear error naming it.
    with open(os.path.join(out, 'shard_00001.npz'), 'wb') as stream:
        stream.write(b'not a zip file')
    with pytest.raises(ShardError, match='shard_00001.npz'):
        ShardDataset(out).sample(2)
    # One undecodable sample: skipped with a warning and counted.
    write_shards(cfg, out, 3, workers=0, shard_size=3, progress=False)
    path = os.path.join(out, 'shard_00000.npz')
    with np.load(path) as data:
        arrays = {name: data[name].copy() for name in data.files}
    start, stop = arrays['image_jpeg_offsets'][1:3]
    arrays['image_jpeg'][start:stop] = 0
    np.savez(path, **arrays)
    dataset = ShardDataset(out)
    with caplog.at_level(logging.WARNING):
        item = dataset[1]
    assert int(item['index']) == 2 and dataset.skipped == 1
    assert 'skipping undecodable sample 1' in caplog.text
    with open(os.path.join(out, 'meta.json')) as stream:
        assert json.load(stream)['num_samples'] == 3
