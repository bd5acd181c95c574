"""Metrics on cases with known answers: joints, object poses, penetration, chamfer."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_object_pose_ros import metrics


def _skeleton(rng, batch=4):
    """Random non-planar 21-joint skeletons, metres, about hand-sized."""
    return rng.normal(0.0, 0.04, (batch, 21, 3)) + np.array([0.0, 0.0, 0.5])


def icosphere(subdivisions=3, radius=1.0):
    """Build a closed outward-oriented icosphere: (vertices (V, 3), faces (F, 3))."""
    t = (1.0 + np.sqrt(5.0)) / 2.0
    vertices = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
                (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    vertices = [np.array(v, float) / np.linalg.norm(v) for v in vertices]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    for _ in range(subdivisions):
        cache = {}

        def midpoint(i, j):
            key = (min(i, j), max(i, j))
            if key not in cache:
                point = vertices[i] + vertices[j]
                vertices.append(point / np.linalg.norm(point))
                cache[key] = len(vertices) - 1
            return cache[key]

        new_faces = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    return np.array(vertices) * radius, np.array(faces)


def test_mje_of_pure_translation_is_the_offset():
    rng = np.random.default_rng(0)
    gt = _skeleton(rng)
    offset = np.array([0.003, -0.004, 0.0])  # 5 mm
    pred = gt + offset
    np.testing.assert_allclose(metrics.mje_mm(pred, gt), 5.0, atol=1e-9)
    np.testing.assert_allclose(metrics.root_relative_mje_mm(pred, gt), 0.0, atol=1e-9)
    np.testing.assert_allclose(metrics.procrustes_mje_mm(pred, gt), 0.0, atol=1e-6)
    assert metrics.per_joint_errors_mm(pred, gt).shape == (4, 21)


def test_root_relative_errors_and_shape_checks():
    rng = np.random.default_rng(1)
    gt = _skeleton(rng, 2)
    pred = gt.copy()
    pred[:, 5] += [0.0, 0.0, 0.021]  # one joint 21 mm off
    np.testing.assert_allclose(metrics.root_relative_mje_mm(pred, gt), 1.0, atol=1e-9)
    errors = metrics.root_relative_per_joint_errors_mm(pred, gt)
    np.testing.assert_allclose(errors[:, 5], 21.0, atol=1e-9)
    with pytest.raises(ValueError):
        metrics.mje_mm(pred[:, :20], gt)


def test_procrustes_removes_a_similarity_transform():
    rng = np.random.default_rng(2)
    gt = _skeleton(rng)
    rotation = Rotation.random(4, random_state=3).as_matrix()
    pred = 1.3 * np.einsum('bij,bnj->bni', rotation, gt) + np.array([0.1, -0.2, 0.3])
    assert np.all(metrics.mje_mm(pred, gt) > 10.0)
    np.testing.assert_allclose(metrics.procrustes_mje_mm(pred, gt), 0.0, atol=1e-6)
    scale, found, _ = metrics.similarity_transform(pred, gt)
    np.testing.assert_allclose(scale, 1 / 1.3, rtol=1e-9)
    np.testing.assert_allclose(np.linalg.det(found), 1.0, atol=1e-9)


def test_procrustes_does_not_undo_a_mirror():
    rng = np.random.default_rng(4)
    gt = _skeleton(rng)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    errors = metrics.procrustes_mje_mm(mirrored, gt)
    # A reflection-allowing alignment would give ~0; a proper rotation cannot.
    assert np.all(errors > 5.0), errors
    # And the rotation found is proper.
    _, rotation, _ = metrics.similarity_transform(mirrored, gt)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-9)


def test_pck_curve_and_auc():
    errors = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    curve = metrics.pck_curve(errors, [0.0, 4.0, 8.0, 100.0])
    np.testing.assert_allclose(curve, [0.0, 0.5, 1.0, 1.0])
    assert metrics.pck_auc(np.zeros(5), [0.0, 50.0]) == pytest.approx(1.0)
    assert metrics.pck_auc(np.full(5, 60.0), [0.0, 50.0]) == pytest.approx(0.0)


def _box_vertices():
    """Vertices of a 0.1 x 0.2 x 0.3 m box, not centred on the origin, plus an inner point."""
    corners = np.array([[x, y, z] for x in (0.0, 0.1) for y in (-0.1, 0.1) for z in (0.0, 0.3)])
    return np.vstack([corners, [[0.05, 0.0, 0.1]]])


def test_object_mce_translation_and_rotation():
    vertices = _box_vertices()
    gt_rotation = Rotation.random(3, random_state=5).as_matrix()
    gt_translation = np.array([[0.0, 0.0, 0.6], [0.1, 0.0, 0.7], [0.0, -0.1, 0.5]])
    shifted = gt_translation + np.array([0.0, 0.02, 0.0])
    np.testing.assert_allclose(metrics.object_mce_mm(gt_rotation, shifted, gt_rotation,
                                                     gt_translation, vertices), 20.0, atol=1e-9)
    np.testing.assert_allclose(metrics.add_mm(gt_rotation, shifted, gt_rotation,
                                              gt_translation, vertices), 20.0, atol=1e-9)
    np.testing.assert_allclose(metrics.mm_to_cm(20.0), 2.0)
    # Rotating by pi about the object's z axis through the origin: corners (x, y) -> (-x, -y).
    flip = Rotation.from_euler('z', np.pi).as_matrix()
    pred_rotation = gt_rotation @ flip
    corners = metrics.box_corners(vertices)
    expected = np.mean(np.linalg.norm(corners[:, :2] * 2.0, axis=1)) * 1000.0
    np.testing.assert_allclose(metrics.object_mce_mm(pred_rotation, gt_translation, gt_rotation,
                                                     gt_translation, vertices), expected,
                               rtol=1e-9)
    np.testing.assert_allclose(metrics.object_mce_mm(gt_rotation, gt_translation, gt_rotation,
                                                     gt_translation, vertices), 0.0, atol=1e-9)


def test_rotation_and_translation_errors_split_the_pose_error():
    gt_rotation = Rotation.random(4, random_state=7).as_matrix()
    angles_deg = np.array([0.0, 30.0, 90.0, 180.0])
    turns = Rotation.from_rotvec(np.deg2rad(angles_deg)[:, None]
                                 * np.array([[0.0, 0.6, 0.8]])).as_matrix()
    # The angle of the relative rotation, whichever side it is applied on.
    np.testing.assert_allclose(metrics.rotation_error_deg(gt_rotation @ turns, gt_rotation),
                               angles_deg, atol=1e-6)
    np.testing.assert_allclose(metrics.rotation_error_deg(turns @ gt_rotation, gt_rotation),
                               angles_deg, atol=1e-6)
    np.testing.assert_allclose(metrics.rotation_error_deg(np.eye(3), np.eye(3)), [0.0])
    # A 3-4-5 triangle in centimetres.
    gt_translation = np.array([[0.1, 0.0, 0.6], [0.0, 0.0, 0.5]])
    np.testing.assert_allclose(
        metrics.translation_error_mm(gt_translation + np.array([0.03, 0.04, 0.0]),
                                     gt_translation), [50.0, 50.0], atol=1e-9)
    with pytest.raises(ValueError, match='batch sizes differ'):
        metrics.rotation_error_deg(gt_rotation, gt_rotation[:2])
    with pytest.raises(ValueError, match='batch sizes differ'):
        metrics.translation_error_mm(gt_translation, gt_translation[:1])


def test_adds_of_a_symmetric_object_rotated_about_its_axis_is_near_zero():
    # A dense cylinder (radius 4 cm, height 10 cm) around its z axis.
    angles = np.linspace(0.0, 2.0 * np.pi, 360, endpoint=False)
    heights = np.linspace(0.0, 0.1, 11)
    ring = np.stack([0.04 * np.cos(angles), 0.04 * np.sin(angles)], axis=1)
    cylinder = np.concatenate([np.column_stack([ring, np.full(len(ring), h)]) for h in heights])
    gt_rotation = Rotation.random(random_state=6).as_matrix()[None]
    translation = np.array([[0.0, 0.05, 0.6]])
    pred_rotation = gt_rotation @ Rotation.from_euler('z', 0.9).as_matrix()
    adds = metrics.adds_mm(pred_rotation, translation, gt_rotation, translation, cylinder)
    add = metrics.add_mm(pred_rotation, translation, gt_rotation, translation, cylinder)
    assert adds[0] < 0.5  # the half-degree sampling step is 0.35 mm at 4 cm
    assert add[0] > 25.0  # 2 * 40 mm * sin(0.45) = 35 mm


def test_inside_test_and_penetration_depth_in_a_unit_sphere():
    vertices, faces = icosphere(3, radius=1.0)
    points = np.array([[0.0, 0.0, 0.0], [0.3, 0.2, 0.1], [0.0, 0.0, 1.5], [2.0, 2.0, 2.0]])
    inside = metrics.points_inside_mesh(points, vertices, faces)
    np.testing.assert_array_equal(inside, [True, True, False, False])
    # Reversed faces (inward orientation) give the same inside test.
    np.testing.assert_array_equal(metrics.points_inside_mesh(points, vertices, faces[:, ::-1]),
                                  inside)
    distances = metrics.distance_to_mesh(points, vertices, faces)
    # The polyhedron is inscribed in the sphere: depths within its sagitta of the true value.
    expected = np.abs(1.0 - np.linalg.norm(points, axis=1))
    np.testing.assert_allclose(distances, expected, atol=0.02)

    # Scaled to 5 cm: a hand of 778 vertices, 2 inside at known depths, the rest outside.
    scale = 0.05
    hand = np.full((1, 778, 3), 1.0)
    hand[0, 0] = [0.0, 0.0, 0.03]  # 2 cm deep
    hand[0, 1] = [0.0, 0.01, 0.0]  # 4 cm deep
    mean = metrics.penetration_depth_mean_mm(hand, vertices * scale, faces)
    maximum = metrics.penetration_depth_max_mm(hand, vertices * scale, faces)
    np.testing.assert_allclose(maximum, 40.0, atol=1.0)
    np.testing.assert_allclose(mean, 60.0 / 778, atol=2.0 / 778)
    outside = metrics.penetration_depth_max_mm(hand[:, 2:], vertices * scale, faces)
    np.testing.assert_allclose(outside, 0.0)


def test_distance_to_mesh_matches_brute_force_on_a_box():
    # Unit cube (12 triangles): distance of exterior points is exact.
    vertices = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    points = np.array([[0.5, 0.5, 2.0], [2.0, 2.0, 0.5], [2.0, 2.0, 2.0], [0.5, 0.4, 0.3]])
    expected = [1.0, np.sqrt(2.0), np.sqrt(3.0), 0.3]
    np.testing.assert_allclose(metrics.distance_to_mesh(points, vertices, faces), expected,
                               atol=1e-12)
    np.testing.assert_array_equal(metrics.points_inside_mesh(points, vertices, faces),
                                  [False, False, False, True])


def test_chamfer_of_identical_and_shifted_sets():
    grid = np.array([[x, y, z] for x in range(4) for y in range(4) for z in range(4)], float)
    points = grid * 0.05  # 5 cm spacing
    assert metrics.chamfer_mm2(points, points) == 0.0
    shift = 0.002  # 2 mm, far below the spacing: every nearest neighbour is the shifted copy
    value = metrics.chamfer_mm2(points + [shift, 0.0, 0.0], points)
    assert value == pytest.approx(2.0 * 2.0 ** 2)
    batched = metrics.chamfer_mm2(np.stack([points, points + [0, 0, shift]]),
                                  np.stack([points, points]))
    np.testing.assert_allclose(batched, [0.0, 8.0])


def test_sample_surface_points_lie_on_the_sphere_and_are_seeded():
    vertices, faces = icosphere(2)
    first = metrics.sample_surface_points(vertices, faces, n=600, seed=3)
    again = metrics.sample_surface_points(vertices, faces, n=600, seed=3)
    other = metrics.sample_surface_points(vertices, faces, n=600, seed=4)
    assert first.shape == (600, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    radii = np.linalg.norm(first, axis=1)
    assert radii.max() <= 1.0 + 1e-9 and radii.min() > 0.95
    # Uniform by area: the centroid of the samples is near the centre.
    assert np.linalg.norm(first.mean(axis=0)) < 0.1
    assert metrics.chamfer_mm2(first, other) < metrics.chamfer_mm2(first, other + 0.01)


def test_penetration_on_a_1000_face_mesh_is_vectorised():
    vertices, faces = icosphere(3)  # 1280 faces
    rng = np.random.default_rng(7)
    hands = rng.uniform(-1.2, 1.2, (2, 778, 3)) * 0.05
    depths = metrics.penetration_depths_mm(hands, vertices * 0.05, faces)
    assert depths.shape == (2, 778)
    radius = np.linalg.norm(hands, axis=2)
    assert np.all(depths[radius > 0.0501] == 0.0)
    deep = radius < 0.045
    np.testing.assert_allclose(depths[deep], (0.05 - radius[deep]) * 1000.0, atol=1.0)
