"""Tests of inference.py: the Predictor on the lite network (random weights) and the lift."""

import numpy as np
import pytest
import torch

from hand_object_pose_ros.crop import InvalidBoxError
from hand_object_pose_ros.crop import MIRROR
from hand_object_pose_ros.inference import Predictor
from hand_object_pose_ros.inference import PredictorBoxError
from hand_object_pose_ros.inference import PredictorError
from hand_object_pose_ros.inference import project
from hand_object_pose_ros.inference import sample_depth_m
from hand_object_pose_ros.inference import solve_wrist_translation
from hand_object_pose_ros.inference import translation_from_box
from hand_object_pose_ros.modeling.checkpoint import save_checkpoint
from hand_object_pose_ros.objects import load_object_catalogue
from hand_object_pose_ros.visualization import draw_overlay

HEIGHT, WIDTH = 120, 160
K = np.array([[210.0, 0.0, 81.3], [0.0, 205.0, 58.7], [0.0, 0.0, 1.0]])
BOX = np.array([52.0, 28.0, 112.0, 92.0])
OUTPUT_FIELDS = ('hand_vertices', 'hand_joints', 'joints_2d_px', 'mano_pose', 'mano_betas',
                 'object_rotation', 'object_translation')


@pytest.fixture(scope='module')
def predictor(repo_root):
    """Return the lite network (random weights, seed 0) at a 64 px input, on the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny inputs: threads only add overhead on a shared machine
    yield Predictor.from_config(repo_root + '/config/model_lite.yaml', device='cpu', seed=0,
                                overrides=('input_size_px=64',))
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def rgb():
    """Return a smooth random RGB image (so crops carry structure at every scale)."""
    rng = np.random.default_rng(1)
    coarse = rng.uniform(0, 255, (HEIGHT // 8, WIDTH // 8, 3))
    image = np.kron(coarse, np.ones((8, 8, 1))) + rng.normal(0, 20, (HEIGHT, WIDTH, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def assert_same_prediction(a, b, atol=1e-5):
    """Assert two Predictions agree field by field."""
    for name in OUTPUT_FIELDS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=atol,
                                   err_msg=name)
    assert a.object_id == b.object_id
    assert a.object_score == pytest.approx(b.object_score, abs=1e-5)
    assert a.is_right_hand == b.is_right_hand
    assert a.wrist_depth_source == b.wrist_depth_source


def test_output_shapes_types_and_finiteness(predictor, rgb):
    prediction = predictor(rgb, BOX, K)
    shapes = {'hand_vertices': (778, 3), 'hand_joints': (21, 3), 'joints_2d_px': (21, 2),
              'mano_pose': (48,), 'mano_betas': (10,), 'object_rotation': (3, 3),
              'object_translation': (3,)}
    for name, shape in shapes.items():
        value = getattr(prediction, name)
        assert value.shape == shape and value.dtype == np.float32, name
        assert np.all(np.isfinite(value)), name
    rotation = prediction.object_rotation.astype(np.float64)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)
    assert prediction.object_id in predictor.object_ids
    assert 0.0 < prediction.object_score <= 1.0
    assert prediction.wrist_depth_source == 'hand_size'
    assert np.all(prediction.hand_joints[:, 2] > 0)
    assert predictor.faces.shape == (1538, 3) and predictor.faces.dtype == np.int32
    np.testing.assert_array_equal(predictor.faces_left, predictor.faces[:, ::-1])
    assert predictor.is_standin_mano and predictor.input_size_px == 64
    assert predictor.device == torch.device('cpu')


def test_given_object_id_conditions_and_scores_one(predictor, rgb):
    object_id = predictor.object_ids[4]
    given = predictor(rgb, BOX, K, object_id=object_id)
    assert given.object_id == object_id and given.object_score == 1.0
    auto = predictor(rgb, BOX, K, object_id='auto')
    # The hand does not depend on the object condition; the object pose does.
    np.testing.assert_allclose(given.hand_joints, auto.hand_joints, atol=1e-6)
    other_id = next(i for i in predictor.object_ids if i != auto.object_id)
    other = predictor(rgb, BOX, K, object_id=other_id)
    assert not np.allclose(other.object_translation, auto.object_translation, atol=1e-7)


def test_lift_is_consistent_with_the_2d_joints(predictor, rgb):
    prediction = predictor(rgb, BOX, K)
    joints = prediction.hand_joints.astype(np.float64)
    observed = prediction.joints_2d_px.astype(np.float64)
    wrist = joints[0]
    # The predictor lifts in crop pixels; the crop is a similarity of the image, so solving
    # again in full-image pixels must give the same wrist.
    solved = solve_wrist_translation(joints - wrist, observed, K)
    if solved is None:
        # Random weights can predict 2D joints that no hand in front of the camera explains
        # (the optimum lies behind it): then the box-size fallback placed the hand.
        centre = (BOX[:2] + BOX[2:]) / 2.0 - 0.5  # box edges -> pixel-centre coordinates
        solved = translation_from_box(prediction.hand_vertices - wrist, K, centre,
                                      np.max(BOX[2:] - BOX[:2]))
        np.testing.assert_allclose(solved, wrist, atol=1e-5)
        return
    np.testing.assert_allclose(solved, wrist, atol=2e-4)

    # Any small move of the hand increases the pixel error.
    def error(translation):
        return np.sum((project(joints - wrist + translation, K) - observed) ** 2)

    for axis in range(3):
        for sign in (-1.0, 1.0):
            moved = wrist.copy()
            moved[axis] += sign * 1e-3
            assert error(moved) > error(wrist)


def test_solve_wrist_translation_recovers_a_known_translation():
    rng = np.random.default_rng(0)
    joints_rel = rng.normal(0, 0.04, (21, 3))
    joints_rel[0] = 0.0
    truth = np.array([0.05, -0.08, 0.6])
    joints_2d = project(joints_rel + truth, K)
    np.testing.assert_allclose(solve_wrist_translation(joints_rel, joints_2d, K), truth,
                               atol=1e-9)
    # With the depth given, x and y are solved for it.
    np.testing.assert_allclose(solve_wrist_translation(joints_rel, joints_2d, K, depth=0.6),
                               truth, atol=1e-9)
    # Noisy 2D joints still give a close answer.
    noisy = joints_2d + rng.normal(0, 0.5, joints_2d.shape)
    assert np.linalg.norm(solve_wrist_translation(joints_rel, noisy, K) - truth) < 0.03
    # Degenerate cases give None: collapsed 2D joints, a depth out of range.
    assert solve_wrist_translation(joints_rel, np.full((21, 2), 80.0), K) is None
    assert solve_wrist_translation(joints_rel, joints_2d, K, depth=-1.0) is None
    assert solve_wrist_translation(joints_rel, joints_2d, K, depth=np.nan) is None


def test_translation_from_box_recovers_depth_from_size():
    rng = np.random.default_rng(2)
    vertices_rel = rng.uniform(-0.05, 0.05, (778, 3))
    vertices_rel[:, 0] *= 2.0  # x extent 0.2 m
    truth = np.array([0.02, 0.01, 0.8])
    points = vertices_rel + truth
    pixels = project(points, K)
    # The box spanning the hand; its side against the metric extent gives the depth.
    side = np.ptp(pixels, axis=0).max()
    translation = translation_from_box(vertices_rel, K, pixels.mean(axis=0), side)
    assert abs(translation[2] - truth[2]) < 0.05
    with pytest.raises(PredictorError, match='hand extent'):
        translation_from_box(np.zeros((778, 3)), K, (80, 60), 40)


def test_sample_depth_ignores_invalid_pixels():
    depth = np.zeros((20, 30), np.float32)
    depth[5:8, 5:8] = [[1.0, np.nan, 1.2], [0.0, 1.1, 1.3], [np.inf, -1.0, 0.9]]
    samples = sample_depth_m(depth, [[6, 6], [25, 15], [-50, 6]], window_half_px=1)
    assert samples[0] == pytest.approx(1.1)
    assert np.isnan(samples[1]) and np.isnan(samples[2])


def test_depth_puts_the_wrist_at_the_depth_reading(predictor, rgb):
    without = predictor(rgb, BOX, K)
    wrist_px = np.rint(without.joints_2d_px[0]).astype(int)
    others = np.rint(without.joints_2d_px[1:]).astype(int)
    assert not np.any(np.all(others == wrist_px, axis=1)), 'test needs a distinct wrist pixel'
    depth = np.zeros((HEIGHT, WIDTH), np.float32)
    depth[wrist_px[1], wrist_px[0]] = 0.734
    window = predictor.depth_window_half_px
    predictor.depth_window_half_px = 0
    try:
        with_depth = predictor(rgb, BOX, K, depth=depth)
    finally:
        predictor.depth_window_half_px = window
    assert with_depth.wrist_depth_source == 'depth'
    assert with_depth.hand_joints[0, 2] == pytest.approx(
        0.734 + predictor.depth_surface_offset_m, abs=1e-5)
    # The hand keeps its shape and its 2D joints; x, y follow the new depth.
    np.testing.assert_allclose(with_depth.hand_joints - with_depth.hand_joints[0],
                               without.hand_joints - without.hand_joints[0], atol=1e-6)
    np.testing.assert_array_equal(with_depth.joints_2d_px, without.joints_2d_px)
    np.testing.assert_allclose(
        solve_wrist_translation(with_depth.hand_joints - with_depth.hand_joints[0],
                                with_depth.joints_2d_px, K, depth=with_depth.hand_joints[0, 2]),
        with_depth.hand_joints[0], atol=1e-5)


def test_depth_median_over_joints_and_fallback(predictor, rgb):
    without = predictor(rgb, BOX, K)
    # A flat surface 0.9 m away behind every joint: the candidates are 0.9 - z_rel(joint).
    flat = predictor(rgb, BOX, K, depth=np.full((HEIGHT, WIDTH), 0.9, np.float32))
    relative_depth = without.hand_joints[:, 2] - without.hand_joints[0, 2]
    expected = 0.9 - np.median(relative_depth) + predictor.depth_surface_offset_m
    assert flat.wrist_depth_source == 'depth'
    assert flat.hand_joints[0, 2] == pytest.approx(expected, abs=1e-5)
    # A few joints on a far background do not move the median much.
    cluttered = np.full((HEIGHT, WIDTH), 0.9, np.float32)
    for u, v in np.rint(without.joints_2d_px[:4]).astype(int):
        cluttered[max(v - 5, 0):v + 6, max(u - 5, 0):u + 6] = 3.0
    robust = predictor(rgb, BOX, K, depth=cluttered)
    assert abs(robust.hand_joints[0, 2] - flat.hand_joints[0, 2]) < 0.05
    # No valid depth at all (0 and NaN): the hand-size lift, unchanged.
    invalid = np.zeros((HEIGHT, WIDTH), np.float32)
    invalid[::2] = np.nan
    fallback = predictor(rgb, BOX, K, depth=invalid)
    assert_same_prediction(fallback, without)


def test_predict_batch_equals_single_calls(predictor, rgb):
    boxes = np.array([BOX, [10.0, 5.0, 70.0, 60.0], [90.0, 50.0, 150.0, 118.0]])
    object_ids = ['auto', predictor.object_ids[2], 'auto']
    sides = [True, False, True]
    depth = np.full((HEIGHT, WIDTH), 0.8, np.float32)
    batch = predictor.predict_batch(rgb, boxes, K, object_ids, depth=depth, is_right_hand=sides)
    assert len(batch) == 3
    for box, object_id, side, prediction in zip(boxes, object_ids, sides, batch):
        single = predictor(rgb, box, K, object_id=object_id, depth=depth, is_right_hand=side)
        assert_same_prediction(prediction, single, atol=1e-4)
    assert predictor.predict_batch(rgb, np.zeros((0, 4)), K) == []


def test_left_hand_is_the_mirror_of_the_right_hand(predictor, rgb):
    # The mirrored image shows a left hand where the original shows a right one. Box edges
    # mirror as x -> W - x (pixel-edge coordinates), pixel centres as u -> W - 1 - u.
    mirrored_rgb = np.ascontiguousarray(rgb[:, ::-1])
    mirrored_box = np.array([WIDTH - BOX[2], BOX[1], WIDTH - BOX[0], BOX[3]])
    mirrored_K = K.copy()
    mirrored_K[0, 2] = WIDTH - 1 - K[0, 2]
    depth = np.random.default_rng(3).uniform(0.5, 0.7, (HEIGHT, WIDTH)).astype(np.float32)
    for depth_image in (None, depth):
        right = predictor(rgb, BOX, K, depth=depth_image)
        left = predictor(mirrored_rgb, mirrored_box, mirrored_K, is_right_hand=False,
                         depth=None if depth_image is None else depth_image[:, ::-1])
        assert not left.is_right_hand and right.is_right_hand
        np.testing.assert_allclose(left.hand_vertices, right.hand_vertices @ MIRROR, atol=2e-5)
        np.testing.assert_allclose(left.hand_joints, right.hand_joints @ MIRROR, atol=2e-5)
        np.testing.assert_allclose(left.object_translation, MIRROR @ right.object_translation,
                                   atol=2e-5)
        np.testing.assert_allclose(left.object_rotation,
                                   MIRROR @ right.object_rotation @ MIRROR, atol=2e-5)
        determinant = np.linalg.det(left.object_rotation.astype(np.float64))
        assert determinant == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(left.joints_2d_px[:, 0], WIDTH - 1 - right.joints_2d_px[:, 0],
                                   atol=1e-3)
        np.testing.assert_allclose(left.joints_2d_px[:, 1], right.joints_2d_px[:, 1], atol=1e-3)
        np.testing.assert_allclose(left.mano_pose.reshape(-1, 3),
                                   right.mano_pose.reshape(-1, 3) * [1, -1, -1], atol=1e-6)
        assert left.object_id == right.object_id
        assert left.wrist_depth_source == right.wrist_depth_source
    # The mirrored joints project where the left hand's 2D joints are.
    assert np.abs(project(left.hand_joints, mirrored_K) - left.joints_2d_px).mean() == \
        pytest.approx(np.abs(project(right.hand_joints, K) - right.joints_2d_px).mean(),
                      abs=1e-3)


def test_checkpoint_round_trip_gives_identical_outputs(predictor, rgb, tmp_path):
    path = save_checkpoint(tmp_path / 'lite.pt', predictor.model)
    loaded = Predictor.from_checkpoint(path, device='cpu')
    assert loaded.object_ids == predictor.object_ids
    assert loaded.input_size_px == predictor.input_size_px
    assert_same_prediction(loaded(rgb, BOX, K), predictor(rgb, BOX, K), atol=0.0)


def test_missing_or_foreign_checkpoint(tmp_path):
    with pytest.raises(PredictorError, match='checkpoint not found: .*nothing.pt'):
        Predictor.from_checkpoint(tmp_path / 'nothing.pt')
    foreign = tmp_path / 'foreign.pt'
    torch.save({'weights': torch.zeros(3)}, foreign)
    with pytest.raises(PredictorError, match='not a hand_object_pose_ros checkpoint'):
        Predictor.from_checkpoint(foreign)
    with pytest.raises(PredictorError, match='config file not found'):
        Predictor.from_config(tmp_path / 'missing.yaml')


def test_bad_inputs_raise_clear_errors(predictor, rgb):
    with pytest.raises(PredictorBoxError, match='NaN') as info:
        predictor(rgb, [np.nan, 0, 10, 10], K)
    assert isinstance(info.value, InvalidBoxError) and isinstance(info.value, ValueError)
    with pytest.raises(PredictorBoxError, match='zero or negative area'):
        predictor(rgb, [50, 50, 40, 60], K)
    with pytest.raises(PredictorBoxError, match='outside'):
        predictor(rgb, [500, 500, 600, 600], K)
    with pytest.raises(PredictorBoxError, match='4 values'):
        predictor(rgb, [1, 2, 3], K)
    with pytest.raises(PredictorError, match='focal lengths'):
        predictor(rgb, BOX, np.zeros((3, 3)))
    bad_K = K.copy()
    bad_K[0, 2] = np.nan
    with pytest.raises(PredictorError, match='NaN'):
        predictor(rgb, BOX, bad_K)
    with pytest.raises(PredictorError, match=r'unknown object id 999; the network knows ids '
                                             r'\[1, 2, 3'):
        predictor(rgb, BOX, K, object_id=999)
    with pytest.raises(PredictorError, match='"auto"'):
        predictor(rgb, BOX, K, object_id='mug')
    with pytest.raises(PredictorError, match='uint8 RGB'):
        predictor(rgb.astype(np.float32), BOX, K)
    with pytest.raises(PredictorError, match='aligned to the RGB'):
        predictor(rgb, BOX, K, depth=np.ones((10, 10), np.float32))
    with pytest.raises(PredictorError, match='millimetres'):
        predictor(rgb, BOX, K, depth=np.ones((HEIGHT, WIDTH), np.uint16))
    with pytest.raises(PredictorError, match='2 entries for 3 hands'):
        predictor.predict_batch(rgb, np.stack([BOX] * 3), K, ['auto', 'auto'])
    if not torch.cuda.is_available():
        with pytest.raises(PredictorError, match='CUDA is not available'):
            Predictor(predictor.model, device='cuda')


def test_non_finite_network_output_raises(repo_root, rgb):
    broken = Predictor.from_config(repo_root + '/config/model_lite.yaml', device='cpu', seed=1,
                                   overrides=('input_size_px=64',))
    with torch.no_grad():
        for parameter in broken.model.hand_head.parameters():
            parameter.fill_(float('nan'))
    with pytest.raises(PredictorError, match='non-finite'):
        broken(rgb, BOX, K)


def test_overlay_draws_hand_and_object_without_touching_the_input(predictor, rgb):
    prediction = predictor(rgb, BOX, K)
    original = rgb.copy()
    overlay = draw_overlay(rgb, [prediction], K, predictor.faces, load_object_catalogue())
    np.testing.assert_array_equal(rgb, original)
    assert overlay.shape == rgb.shape and overlay.dtype == np.uint8
    changed = np.any(overlay != rgb, axis=2)
    # The projected wrist and the object origin are drawn on.
    for point in (prediction.hand_joints[0], prediction.object_translation):
        u, v = np.rint(project(point[None].astype(np.float64), K)[0]).astype(int)
        if 0 <= u < WIDTH and 0 <= v < HEIGHT:
            assert changed[max(v - 2, 0):v + 3, max(u - 2, 0):u + 3].any()
    assert changed.sum() > 100
    # Nothing to draw, or everything behind the camera: the image comes back unchanged.
    np.testing.assert_array_equal(draw_overlay(rgb, [], K, predictor.faces), rgb)
    behind = predictor(rgb, BOX, K)
    for name in ('hand_vertices', 'hand_joints', 'object_translation'):
        value = getattr(behind, name)
        value[..., 2] = -1.0
    np.testing.assert_array_equal(draw_overlay(rgb, [behind], K, predictor.faces), rgb)
    with pytest.raises(ValueError, match='uint8'):
        draw_overlay(rgb.astype(float), [prediction], K, predictor.faces)
