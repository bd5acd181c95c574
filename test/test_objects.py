"""The packaged YCB object catalogue: ids, sizes, alignment, symmetry flags, errors."""

import os

import numpy as np
import pytest

from hand_object_pose_ros.objects import CATALOGUE_PATH
from hand_object_pose_ros.objects import load_object_catalogue
from hand_object_pose_ros.objects import read_catalogue_file

# DexYCB's _YCB_CLASSES.
DEXYCB_NAMES = (
    '002_master_chef_can', '003_cracker_box', '004_sugar_box', '005_tomato_soup_can',
    '006_mustard_bottle', '007_tuna_fish_can', '008_pudding_box', '009_gelatin_box',
    '010_potted_meat_can', '011_banana', '019_pitcher_base', '021_bleach_cleanser', '024_bowl',
    '025_mug', '035_power_drill', '036_wood_block', '037_scissors', '040_large_marker',
    '051_large_clamp', '052_extra_large_clamp', '061_foam_brick')


def test_ids_and_names_are_dexycb_classes():
    catalogue = load_object_catalogue()
    assert catalogue.ids == tuple(range(1, 22))
    for object_id, name in zip(catalogue.ids, DEXYCB_NAMES):
        assert catalogue.get(object_id).name == name
        assert catalogue.by_name(name).id == object_id
    assert catalogue.by_name('mug').id == 14


def test_meshes_are_small_and_valid():
    assert os.path.getsize(CATALOGUE_PATH) < 1024 * 1024
    for model in load_object_catalogue():
        assert model.vertices.dtype == np.float32 and model.vertices.shape[1] == 3
        assert model.faces.dtype == np.int32 and model.faces.shape[1] == 3
        assert 800 <= len(model.faces) <= 1200, model.name
        assert model.faces.min() >= 0 and model.faces.max() < len(model.vertices)
        assert np.all(np.isfinite(model.vertices))


def test_alignment_bbox_centred_at_origin_in_metres():
    catalogue = load_object_catalogue()
    for model in catalogue:
        centre = (model.bbox_min + model.bbox_max) / 2
        np.testing.assert_allclose(centre, 0.0, atol=1e-6, err_msg=model.name)
        np.testing.assert_allclose(model.bbox_min, model.vertices.min(0))
        np.testing.assert_allclose(model.bbox_max, model.vertices.max(0))
        size = model.bbox_max - model.bbox_min
        assert 0.01 < size.min() and size.max() < 0.3, (model.name, size)
    # Known YCB sizes (metres): master chef can ~14 cm tall, ~10 cm wide; tuna can ~3.4 cm.
    can = catalogue.get(1)
    assert abs((can.bbox_max - can.bbox_min)[2] - 0.14) < 0.005
    tuna = catalogue.get(6)
    assert abs((tuna.bbox_max - tuna.bbox_min)[2] - 0.034) < 0.004


def test_symmetry_flags_follow_bop_ycbv():
    symmetric = {m.id for m in load_object_catalogue() if m.symmetric}
    assert symmetric == {1, 13, 14, 16, 18, 19, 20, 21}


def test_corners_span_the_box():
    model = load_object_catalogue().get(2)
    corners = model.corners()
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners.min(0), model.bbox_min)
    np.testing.assert_allclose(corners.max(0), model.bbox_max)
    assert len({tuple(c) for c in corners}) == 8
    assert model.diameter == pytest.approx(np.linalg.norm(model.bbox_max - model.bbox_min))


def test_unknown_id_and_name_errors_list_the_known_ones():
    catalogue = load_object_catalogue()
    with pytest.raises(KeyError, match=r'unknown object id 99.*1, 2, 3'):
        catalogue.get(99)
    with pytest.raises(KeyError, match='002_master_chef_can'):
        catalogue.by_name('teapot')


def test_loader_is_cached_and_read_only():
    first = load_object_catalogue()
    assert load_object_catalogue() is first
    with pytest.raises(ValueError):
        first.get(1).vertices[0, 0] = 1.0


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.npz'):
        read_catalogue_file(str(tmp_path / 'nothing.npz'))
    bad = tmp_path / 'bad.npz'
    np.savez(bad, ids=np.array([1]))
    with pytest.raises(ValueError, match='bad.npz'):
        read_catalogue_file(str(bad))
