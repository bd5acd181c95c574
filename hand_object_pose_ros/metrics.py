"""
Evaluation metrics of the hand-object papers, in numpy with float64 arithmetic.

Inputs are metres (camera frame unless stated); outputs carry their unit in the name (``_mm``,
``_mm2``). Batched functions take a leading batch dimension B and return one value per sample.

- Hand: mean per-joint error (MJE) over the 21 joints: absolute, root-relative (wrist
  subtracted) and Procrustes-aligned (similarity transform, no reflections); per-joint errors
  and PCK curves for plots.
- Object: mean corner error (MCE) of the object's axis-aligned box (Bandi & Thomas 2024,
  reported in cm there), ADD and ADD-S (symmetric objects).
- Contact: penetration depth of hand vertices into the object mesh, mean over the hand
  vertices (DexYCB, as Wang et al. 2022) or maximum (ObMan, as Hasson et al. 2019). Inside is
  decided by the generalised winding number of the closed mesh, depth is the exact distance to
  the nearest triangle.
- ObMan object chamfer distance (mm^2) on points sampled on the surfaces.
"""

import numpy as np
import scipy.spatial

# Metres to millimetres.
MM_PER_M = 1000.0
# Millimetres to centimetres (the papers report the object MCE in cm).
CM_PER_MM = 0.1
# A winding number above this marks a point inside a closed mesh (1 inside, 0 outside).
_INSIDE_WINDING = 0.5
# Points processed at once in the point x triangle computations (bounds memory).
_CHUNK_ELEMENTS = 2_000_000


def _float64(array, name, trailing_shape=None):
    """Return ``array`` as float64, checking its trailing shape."""
    value = np.asarray(array, dtype=np.float64)
    if trailing_shape is not None:
        expected = tuple(trailing_shape)
        if value.ndim < len(expected) or any(
                want is not None and got != want
                for got, want in zip(value.shape[value.ndim - len(expected):], expected)):
            raise ValueError('%s must have shape (..., %s), not %s'
                             % (name, ', '.join('N' if d is None else str(d) for d in expected),
                                value.shape))
    return value


def _same_shape(pred, gt):
    """Check that prediction and ground truth match and are (B, J, 3)."""
    pred = _float64(pred, 'pred', (None, 3))
    gt = _float64(gt, 'gt', (None, 3))
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError('pred and gt must both be (B, J, 3), got %s and %s'
                         % (pred.shape, gt.shape))
    return pred, gt


def mm_to_cm(values_mm):
    """
    Convert millimetres to centimetres (the unit of the paper's object MCE table).

    :param values_mm: scalar or array, millimetres.
    :return: float64 array (or scalar), centimetres.
    """
    return np.asarray(values_mm, dtype=np.float64) * CM_PER_MM


# ----------------------------------------------------------------------------------------------
# Hand joints.

def per_joint_errors_mm(pred, gt):
    """
    Euclidean error of each joint.

    :param pred: (B, J, 3) predicted joints, metres.
    :param gt: (B, J, 3) ground-truth joints, metres, same frame.
    :return: (B, J) float64, millimetres.
    """
    pred, gt = _same_shape(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1) * MM_PER_M


def mje_mm(pred, gt):
    """
    Absolute mean per-joint error (MJE / MPJPE).

    :param pred: (B, 21, 3) predicted joints, metres, camera frame.
    :param gt: (B, 21, 3) ground-truth joints, metres, camera frame.
    :return: (B,) float64, millimetres.
    """
    return per_joint_errors_mm(pred, gt).mean(axis=1)


def root_relative_per_joint_errors_mm(pred, gt, root_index=0):
    """
    Per-joint errors after subtracting each skeleton's root joint (the wrist by default).

    :param pred: (B, J, 3) metres.
    :param gt: (B, J, 3) metres.
    :param root_index: index of the root joint (0 = wrist in the package's joint order).
    :return: (B, J) float64, millimetres.
    """
    pred, gt = _same_shape(pred, gt)
    return per_joint_errors_mm(pred - pred[:, root_index:root_index + 1],
                               gt - gt[:, root_index:root_index + 1])


def root_relative_mje_mm(pred, gt, root_index=0):
    """
    Root-relative mean per-joint error.

    :param pred: (B, 21, 3) metres.
    :param gt: (B, 21, 3) metres.
    :param root_index: index of the root joint (0 = wrist).
    :return: (B,) float64, millimetres.
    """
    return root_relative_per_joint_errors_mm(pred, gt, root_index).mean(axis=1)


def similarity_transform(source, target, allow_scale=True):
    """
    Least-squares similarity (or rigid) transform mapping ``source`` onto ``target``.

    Umeyama's method with the determinant correction, so the rotation is proper (det +1):
    reflections are never used.

    :param source: (B, N, 3) or (N, 3) points.
    :param target: same shape, corresponding points.
    :param allow_scale: False fits a rigid transform (scale 1).
    :return: tuple (scale (B,), rotation (B, 3, 3), translation (B, 3)) float64 with
        ``target ~ scale * rotation @ source + translation``; unbatched inputs give unbatched
        outputs.
    """
    source = _float64(source, 'source', (None, 3))
    target = _float64(target, 'target', (None, 3))
    if source.shape != target.shape:
        raise ValueError('source and target shapes differ: %s vs %s'
                         % (source.shape, target.shape))
    unbatched = source.ndim == 2
    if unbatched:
        source, target = source[None], target[None]
    source_mean = source.mean(axis=1, keepdims=True)
    target_mean = target.mean(axis=1, keepdims=True)
    source_centred = source - source_mean
    target_centred = target - target_mean
    covariance = np.einsum('bni,bnj->bij', target_centred, source_centred)
    left, singular, right_t = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(left @ right_t))
    sign[sign == 0] = 1.0
    correction = np.ones_like(singular)
    correction[:, 2] = sign
    rotation = left @ (correction[:, :, None] * right_t)
    if allow_scale:
        variance = (source_centred ** 2).sum(axis=(1, 2))
        scale = (singular * correction).sum(axis=1) / np.maximum(variance, 1e-300)
    else:
        scale = np.ones(len(source))
    translation = target_mean[:, 0] - scale[:, None] * np.einsum(
        'bij,bj->bi', rotation, source_mean[:, 0])
    if unbatched:
        return scale[0], rotation[0], translation[0]
    return scale, rotation, translation


def procrustes_align(pred, gt):
    """
    Align each predicted skeleton to its ground truth by a similarity transform.

    :param pred: (B, J, 3) metres.
    :param gt: (B, J, 3) metres.
    :return: (B, J, 3) float64, the aligned prediction, metres.
    """
    pred, gt = _same_shape(pred, gt)
    scale, rotation, translation = similarity_transform(pred, gt, allow_scale=True)
    return scale[:, None, None] * np.einsum('bij,bnj->bni', rotation, pred) \
        + translation[:, None]


def procrustes_per_joint_errors_mm(pred, gt):
    """
    Per-joint errors after Procrustes alignment (scale, rotation, translation; no reflection).

    :param pred: (B, J, 3) metres.
    :param gt: (B, J, 3) metres.
    :return: (B, J) float64, millimetres.
    """
    return per_joint_errors_mm(procrustes_align(pred, gt), gt)


def procrustes_mje_mm(pred, gt):
    """
    Procrustes-aligned mean per-joint error (PA-MPJPE).

    :param pred: (B, 21, 3) metres.
    :param gt: (B, 21, 3) metres.
    :return: (B,) float64, millimetres.
    """
    return procrustes_per_joint_errors_mm(pred, gt).mean(axis=1)


def pck_curve(errors_mm, thresholds_mm):
    """
    Percentage of correct keypoints: the fraction of errors at or below each threshold.

    :param errors_mm: array of any shape (e.g. (B, 21) per-joint errors), millimetres; NaN
        entries are ignored.
    :param thresholds_mm: (T,) thresholds, millimetres.
    :return: (T,) float64 fractions in [0, 1].
    """
    errors = np.asarray(errors_mm, dtype=np.float64).reshape(-1)
    errors = errors[~np.isnan(errors)]
    thresholds = np.asarray(thresholds_mm, dtype=np.float64).reshape(-1)
    if errors.size == 0:
        raise ValueError('pck_curve needs at least one error value')
    return (errors[None, :] <= thresholds[:, None]).mean(axis=1)


def pck_auc(errors_mm, thresholds_mm):
    """
    Area under the PCK curve, normalised by the threshold range (1 = perfect).

    :param errors_mm: errors, millimetres (any shape).
    :param thresholds_mm: (T,) increasing thresholds, millimetres, T >= 2.
    :return: float in [0, 1].
    """
    thresholds = np.asarray(thresholds_mm, dtype=np.float64).reshape(-1)
    if thresholds.size < 2 or thresholds[-1] <= thresholds[0]:
        raise ValueError('pck_auc needs at least two increasing thresholds')
    curve = pck_curve(errors_mm, thresholds)
    area = np.sum((curve[1:] + curve[:-1]) * np.diff(thresholds)) / 2.0
    return float(area / (thresholds[-1] - thresholds[0]))


# ----------------------------------------------------------------------------------------------
# Object pose.

def _pose_inputs(pred_R, pred_t, gt_R, gt_t):
    """Validate and batch the pose arrays."""
    pred_rotation = _float64(pred_R, 'pred_R', (3, 3)).reshape(-1, 3, 3)
    gt_rotation = _float64(gt_R, 'gt_R', (3, 3)).reshape(-1, 3, 3)
    pred_translation = _float64(pred_t, 'pred_t', (3,)).reshape(-1, 3)
    gt_translation = _float64(gt_t, 'gt_t', (3,)).reshape(-1, 3)
    sizes = {len(pred_rotation), len(gt_rotation), len(pred_translation), len(gt_translation)}
    if len(sizes) != 1:
        raise ValueError('pose batch sizes differ: %s' % sorted(sizes))
    return pred_rotation, pred_translation, gt_rotation, gt_translation


def _object_points(object_vertices, batch):
    """Return object-frame points as (B, N, 3) float64 (shared (N, 3) broadcast)."""
    points = _float64(object_vertices, 'object_vertices', (None, 3))
    if points.ndim == 2:
        points = np.broadcast_to(points, (batch,) + points.shape)
    if points.ndim != 3 or len(points) != batch or points.shape[1] == 0:
        raise ValueError('object_vertices must be (N, 3) or (B, N, 3) with B = %d, not %s'
                         % (batch, points.shape))
    return points


def _posed(rotation, translation, points):
    """Apply (B, 3, 3), (B, 3) to (B, N, 3) points."""
    return np.einsum('bij,bnj->bni', rotation, points) + translation[:, None]


def box_corners(object_vertices):
    """
    Return the 8 corners of the axis-aligned bounding box of object vertices.

    Order: corner i takes the max along x if bit 0 of i is set, along y for bit 1, z for bit 2
    (the order of ``objects.ObjectModel.corners``).

    :param object_vertices: (N, 3) or (B, N, 3), metres, object frame.
    :return: (8, 3) or (B, 8, 3) float64, metres, object frame.
    """
    points = _float64(object_vertices, 'object_vertices', (None, 3))
    low = points.min(axis=-2)
    high = points.max(axis=-2)
    index = np.arange(8)
    bits = np.stack([index & 1, (index >> 1) & 1, (index >> 2) & 1], axis=1).astype(bool)
    return np.where(bits, high[..., None, :], low[..., None, :])


def object_mce_mm(pred_R, pred_t, gt_R, gt_t, object_vertices):
    """
    Object mean corner error: the bounding-box corners posed by both poses, mean distance.

    :param pred_R: (B, 3, 3) predicted camera_from_object rotations.
    :param pred_t: (B, 3) predicted translations, metres, camera frame.
    :param gt_R: (B, 3, 3) true rotations.
    :param gt_t: (B, 3) true translations, metres.
    :param object_vertices: (N, 3) (one object for the batch) or (B, N, 3), metres, object
        frame; the box is the axis-aligned box of these vertices in the object frame.
    :return: (B,) float64, millimetres (``mm_to_cm`` gives the paper's cm).
    """
    batch = len(_pose_inputs(pred_R, pred_t, gt_R, gt_t)[0])
    # The mean corner error is ADD over the eight box corners.
    return add_mm(pred_R, pred_t, gt_R, gt_t,
                  box_corners(_object_points(object_vertices, batch)))


def add_mm(pred_R, pred_t, gt_R, gt_t, object_vertices):
    """
    ADD: mean distance between the object points posed by the predicted and the true pose.

    :param pred_R: (B, 3, 3) camera_from_object rotations.
    :param pred_t: (B, 3) metres.
    :param gt_R: (B, 3, 3).
    :param gt_t: (B, 3) metres.
    :param object_vertices: (N, 3) or (B, N, 3), metres, object frame.
    :return: (B,) float64, millimetres.
    """
    pred_rotation, pred_translation, gt_rotation, gt_translation = _pose_inputs(
        pred_R, pred_t, gt_R, gt_t)
    points = _object_points(object_vertices, len(pred_rotation))
    difference = _posed(pred_rotation, pred_translation, points) - _posed(
        gt_rotation, gt_translation, points)
    return np.linalg.norm(difference, axis=-1).mean(axis=1) * MM_PER_M


def rotation_error_deg(pred_R, gt_R):
    """
    Geodesic angle between two rotations: the angle of the rotation taking one to the other.

    Symmetries are not taken into account (a half turn of a can is 180 degrees here); with
    :func:`translation_error_mm` it splits the MCE into its two parts.

    :param pred_R: (B, 3, 3) or (3, 3) rotations.
    :param gt_R: same shape.
    :return: (B,) float64, degrees in [0, 180].
    """
    pred_rotation = _float64(pred_R, 'pred_R', (3, 3)).reshape(-1, 3, 3)
    gt_rotation = _float64(gt_R, 'gt_R', (3, 3)).reshape(-1, 3, 3)
    if len(pred_rotation) != len(gt_rotation):
        raise ValueError('rotation batch sizes differ: %d and %d'
                         % (len(pred_rotation), len(gt_rotation)))
    # trace(R_pred^T R_gt) = 1 + 2 cos(angle); clipped against rounding outside [-1, 1].
    trace = np.einsum('bij,bij->b', pred_rotation, gt_rotation)
    return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))


def translation_error_mm(pred_t, gt_t):
    """
    Distance between two translations.

    :param pred_t: (B, 3) or (3,) metres.
    :param gt_t: same shape, metres.
    :return: (B,) float64, millimetres.
    """
    pred_translation = _float64(pred_t, 'pred_t', (3,)).reshape(-1, 3)
    gt_translation = _float64(gt_t, 'gt_t', (3,)).reshape(-1, 3)
    if len(pred_translation) != len(gt_translation):
        raise ValueError('translation batch sizes differ: %d and %d'
                         % (len(pred_translation), len(gt_translation)))
    return np.linalg.norm(pred_translation - gt_translation, axis=-1) * MM_PER_M


def adds_mm(pred_R, pred_t, gt_R, gt_t, object_vertices):
    """
    Compute ADD-S (symmetric objects): mean distance from true-posed to nearest predicted.

    :param pred_R: (B, 3, 3) camera_from_object rotations.
    :param pred_t: (B, 3) metres.
    :param gt_R: (B, 3, 3).
    :param gt_t: (B, 3) metres.
    :param object_vertices: (N, 3) or (B, N, 3), metres, object frame.
    :return: (B,) float64, millimetres.
    """
    pred_rotation, pred_translation, gt_rotation, gt_translation = _pose_inputs(
        pred_R, pred_t, gt_R, gt_t)
    points = _object_points(object_vertices, len(pred_rotation))
    predicted = _posed(pred_rotation, pred_translation, points)
    true = _posed(gt_rotation, gt_translation, points)
    result = np.empty(len(points))
    for index in range(len(points)):
        distances, _ = scipy.spatial.cKDTree(predicted[index]).query(true[index], k=1)
        result[index] = distances.mean()
    return result * MM_PER_M


# ----------------------------------------------------------------------------------------------
# Meshes: surface sampling, inside test, distance to the surface.

def _mesh_inputs(vertices, faces):
    """Validate a triangle mesh; returns (vertices float64 (V, 3), faces int64 (F, 3))."""
    vertices = _float64(vertices, 'vertices', (None, 3))
    faces = np.asarray(faces)
    if vertices.ndim != 2 or faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError('mesh must be vertices (V, 3) and faces (F, 3), got %s and %s'
                         % (vertices.shape, faces.shape))
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError('faces index vertices outside 0..%d' % (len(vertices) - 1))
    return vertices, faces


def sample_surface_points(vertices, faces, n=600, seed=0):
    """
    Sample points uniformly (by area) on a triangle mesh.

    :param vertices: (V, 3) metres.
    :param faces: (F, 3) vertex indices.
    :param n: number of points (600 in ObMan's chamfer evaluation).
    :param seed: seed of the random generator (same seed, same points).
    :return: (n, 3) float64, metres, the mesh's frame.
    """
    vertices, faces = _mesh_inputs(vertices, faces)
    triangles = vertices[faces]
    areas = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0],
                                          triangles[:, 2] - triangles[:, 0]), axis=1)
    total = areas.sum()
    if not total > 0:
        raise ValueError('mesh has zero surface area')
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(faces), size=int(n), p=areas / total)
    # Uniform barycentric coordinates: the square-root trick.
    root = np.sqrt(rng.random(int(n)))
    second = rng.random(int(n))
    weights = np.stack([1.0 - root, root * (1.0 - second), root * second], axis=1)
    return np.einsum('nk,nkd->nd', weights, triangles[chosen])


def winding_numbers(points, vertices, faces):
    """
    Generalised winding number of points with respect to a triangle mesh.

    Sum of the signed solid angles of the triangles (Van Oosterom & Strackee) over 4 pi: about
    1 inside a closed outward-oriented mesh, 0 outside (-1 inside an inward-oriented one),
    robust to small holes and self-intersections.

    :param points: (P, 3) metres.
    :param vertices: (V, 3) metres.
    :param faces: (F, 3) vertex indices.
    :return: (P,) float64.
    """
    vertices, faces = _mesh_inputs(vertices, faces)
    points = _float64(points, 'points', (3,)).reshape(-1, 3)
    triangles = vertices[faces]
    result = np.empty(len(points))
    step = max(1, _CHUNK_ELEMENTS // max(1, len(faces)))
    for start in range(0, len(points), step):
        rel = triangles[None] - points[start:start + step, None, None]  # (p, F, 3, 3)
        a, b, c = rel[..., 0, :], rel[..., 1, :], rel[..., 2, :]
        la, lb, lc = (np.linalg.norm(v, axis=-1) for v in (a, b, c))
        numerator = np.einsum('pfi,pfi->pf', a, np.cross(b, c))
        denominator = (la * lb * lc + np.einsum('pfi,pfi->pf', a, b) * lc
                       + np.einsum('pfi,pfi->pf', a, c) * lb
                       + np.einsum('pfi,pfi->pf', b, c) * la)
        result[start:start + step] = 2.0 * np.arctan2(numerator, denominator).sum(axis=1)
    return result / (4.0 * np.pi)


def points_inside_mesh(points, vertices, faces):
    """
    Inside test against a closed triangle mesh (either face orientation).

    :param points: (P, 3) metres.
    :param vertices: (V, 3) metres.
    :param faces: (F, 3) vertex indices.
    :return: (P,) bool.
    """
    vertices, faces = _mesh_inputs(vertices, faces)
    points = _float64(points, 'points', (3,)).reshape(-1, 3)
    # Only points inside the mesh's bounding box can be inside the mesh.
    candidate = np.all((points >= vertices.min(axis=0)) & (points <= vertices.max(axis=0)),
                       axis=1)
    inside = np.zeros(len(points), dtype=bool)
    if candidate.any():
        inside[candidate] = np.abs(winding_numbers(points[candidate], vertices, faces)) \
            > _INSIDE_WINDING
    return inside


def _segment_distance_sq(points, start, end):
    """Squared distance of (p, 1, 3) points to (F, 3) segments; returns (p, F)."""
    direction = end - start
    length_sq = np.maximum((direction ** 2).sum(-1), 1e-300)
    offset = points - start
    fraction = np.clip(np.einsum('pfi,fi->pf', offset, direction) / length_sq, 0.0, 1.0)
    closest = offset - fraction[..., None] * direction
    return (closest ** 2).sum(-1)


def distance_to_mesh(points, vertices, faces):
    """
    Exact Euclidean distance from points to the surface of a triangle mesh.

    :param points: (P, 3) metres.
    :param vertices: (V, 3) metres.
    :param faces: (F, 3) vertex indices.
    :return: (P,) float64, metres (unsigned).
    """
    vertices, faces = _mesh_inputs(vertices, faces)
    points = _float64(points, 'points', (3,)).reshape(-1, 3)
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    normal = np.cross(v1 - v0, v2 - v0)
    normal_length = np.linalg.norm(normal, axis=1)
    valid = normal_length > 1e-300
    unit_normal = normal / np.where(valid, normal_length, 1.0)[:, None]
    # Barycentric test of the projection: the edge functions against the normal.
    edges = ((v0, v1), (v1, v2), (v2, v0))
    result = np.empty(len(points))
    step = max(1, _CHUNK_ELEMENTS // max(1, len(faces)))
    for start in range(0, len(points), step):
        chunk = points[start:start + step, None]  # (p, 1, 3)
        plane = np.einsum('pfi,fi->pf', chunk - v0, unit_normal)
        projected = chunk - plane[..., None] * unit_normal
        inside = valid[None].copy()
        for a, b in edges:
            inside = inside & (np.einsum('pfi,fi->pf', np.cross(b - a, projected - a),
                                         normal) >= 0)
        edge_sq = np.minimum(np.minimum(_segment_distance_sq(chunk, v0, v1),
                                        _segment_distance_sq(chunk, v1, v2)),
                             _segment_distance_sq(chunk, v2, v0))
        distance_sq = np.where(inside, plane ** 2, edge_sq)
        result[start:start + step] = np.sqrt(distance_sq.min(axis=1))
    return result


def penetration_depths_mm(hand_vertices, object_vertices, object_faces):
    """
    Depth of each hand vertex inside the object: distance to the surface if inside, else 0.

    :param hand_vertices: (B, 778, 3) metres, camera frame.
    :param object_vertices: (B, N, 3) (posed per sample) or (N, 3) (shared), metres, camera
        frame; with ``object_faces`` a closed mesh.
    :param object_faces: (F, 3) vertex indices.
    :return: (B, 778) float64, millimetres, >= 0.
    """
    hands = _float64(hand_vertices, 'hand_vertices', (None, 3))
    if hands.ndim == 2:
        hands = hands[None]
    objects = _object_points(object_vertices, len(hands))
    depths = np.zeros(hands.shape[:2])
    for index in range(len(hands)):
        inside = points_inside_mesh(hands[index], objects[index], object_faces)
        if inside.any():
            depths[index, inside] = distance_to_mesh(hands[index][inside], objects[index],
                                                     object_faces)
    return depths * MM_PER_M


def penetration_depth_mean_mm(hand_vertices, object_vertices, object_faces):
    """
    Mean penetration depth over all hand vertices (0 for vertices outside), as Wang 2022.

    :param hand_vertices: (B, 778, 3) metres, camera frame.
    :param object_vertices: (B, N, 3) or (N, 3), metres, camera frame.
    :param object_faces: (F, 3) vertex indices of the closed object mesh.
    :return: (B,) float64, millimetres.
    """
    return penetration_depths_mm(hand_vertices, object_vertices, object_faces).mean(axis=1)


def penetration_depth_max_mm(hand_vertices, object_vertices, object_faces):
    """
    Maximum penetration depth of the hand vertices inside the object, as Hasson 2019 (ObMan).

    :param hand_vertices: (B, 778, 3) metres, camera frame.
    :param object_vertices: (B, N, 3) or (N, 3), metres, camera frame.
    :param object_faces: (F, 3) vertex indices of the closed object mesh.
    :return: (B,) float64, millimetres (0 without penetration).
    """
    return penetration_depths_mm(hand_vertices, object_vertices, object_faces).max(axis=1)


# ----------------------------------------------------------------------------------------------
# Chamfer distance.

def chamfer_mm2(pred_points, gt_points):
    """
    Chamfer distance as ObMan reports it, in square millimetres.

    The sum of both directional means of squared nearest-neighbour distances.

    :param pred_points: (N, 3) or (B, N, 3) metres (e.g. 600 surface points).
    :param gt_points: (M, 3) or (B, M, 3) metres, same frame.
    :return: float64 scalar for unbatched input, else (B,), square millimetres.
    """
    pred = _float64(pred_points, 'pred_points', (None, 3)) * MM_PER_M
    gt = _float64(gt_points, 'gt_points', (None, 3)) * MM_PER_M
    unbatched = pred.ndim == 2
    if unbatched:
        pred, gt = pred[None], gt[None]
    if pred.ndim != 3 or gt.ndim != 3 or len(pred) != len(gt):
        raise ValueError('chamfer_mm2 needs matching batches, got %s and %s'
                         % (pred.shape, gt.shape))
    result = np.empty(len(pred))
    for index in range(len(pred)):
        forward, _ = scipy.spatial.cKDTree(gt[index]).query(pred[index], k=1)
        backward, _ = scipy.spatial.cKDTree(pred[index]).query(gt[index], k=1)
        result[index] = (forward ** 2).mean() + (backward ** 2).mean()
    return float(result[0]) if unbatched else result
