"""Crop augmentation: geometry stays consistent, colours change, determinism."""

import numpy as np
import pytest

from hand_object_pose_ros.data.augment import CropAugmentation
from hand_object_pose_ros.data.augment import scale_crop
from hand_object_pose_ros.data.synthetic import project
from hand_object_pose_ros.data.synthetic import SyntheticConfig
from hand_object_pose_ros.data.synthetic import SyntheticHandObjectGenerator


@pytest.fixture(scope='module')
def sample():
    """One clean synthetic sample, 96 px crop."""
    cfg = SyntheticConfig(crop_size_px=96, seed=3).clean()
    return SyntheticHandObjectGenerator(cfg).sample(0)


def mask_centroid(mask):
    """Return the (x, y) centroid of a bool mask."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize('scale', [0.8, 1.25])
def test_scale_keeps_projection_and_pixels_consistent(sample, scale):
    out = scale_crop(sample, scale)
    np.testing.assert_allclose(out.joints_2d_crop_px, project(out.joints_cam, out.crop_K),
                               atol=1e-3)
    centre = (96 - 1) / 2
    np.testing.assert_allclose(out.joints_2d_crop_px,
                               (sample.joints_2d_crop_px - centre) * scale + centre, atol=1e-3)
    # The warped mask moved like the joints (centroid maps by the same zoom).
    expected = (mask_centroid(sample.hand_mask) - centre) * scale + centre
    assert np.linalg.norm(mask_centroid(out.hand_mask) - expected) < 2.0
    assert out.hand_mask.dtype == bool and out.depth.dtype == np.float32
    ratio = out.hand_mask.sum() / sample.hand_mask.sum()
    assert abs(ratio - scale ** 2) < 0.25 * scale ** 2
    np.testing.assert_array_equal(out.joints_cam, sample.joints_cam)
    np.testing.assert_array_equal(out.object_rotation, sample.object_rotation)
    # Depth is resampled, not rescaled.
    assert set(np.unique(out.depth)) <= set(np.unique(sample.depth)) | {0.0}


def test_colour_jitter_changes_only_the_image(sample):
    augment = CropAugmentation(scale_range=(1.0, 1.0), prob=1.0)
    out = augment(sample, np.random.default_rng(0))
    assert out.image.dtype == np.uint8 and out.image.shape == sample.image.shape
    assert np.abs(out.image.astype(int) - sample.image).mean() > 1.0
    np.testing.assert_allclose(out.crop_K, sample.crop_K, atol=1e-4)
    np.testing.assert_allclose(out.joints_2d_crop_px, sample.joints_2d_crop_px, atol=1e-4)


def test_deterministic_for_a_generator(sample):
    augment = CropAugmentation()
    first = augment(sample, np.random.default_rng(42))
    again = augment(sample, np.random.default_rng(42))
    other = augment(sample, np.random.default_rng(43))
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.crop_K, again.crop_K)
    assert not np.array_equal(first.image, other.image)
    # The input sample is left untouched.
    assert first.image is not sample.image
