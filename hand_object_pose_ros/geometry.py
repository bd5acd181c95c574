"""
Rotations and projection, batched in torch (float32 / float64, differentiable).

Every function accepts any number of leading batch dimensions ``...``. Rotation matrices act on
column vectors (``p' = R p``). Quaternions are (w, x, y, z) with w >= 0 on output. The 6D rotation
representation is the first two columns of R, ``(r11 r21 r31 r12 r22 r32)`` (Zhou et al. 2019),
and the paper's 9-D object pose is ``(t1 t2 t3 r11 r21 r31 r12 r22 r32)`` (eq. 7).
"""

import torch

# Below this rotation angle (rad) the Rodrigues coefficients use their Taylor series.
_SMALL_ANGLE = 1e-3
# Guards the normalisations against division by zero.
_EPS = 1e-12


def _skew(vectors):
    """
    Return the cross-product matrices of vectors.

    :param vectors: (..., 3).
    :return: (..., 3, 3) ``[v]_x`` with ``[v]_x w = v x w``.
    """
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(
        vectors.shape[:-1] + (3, 3))


def axis_angle_to_matrix(axis_angle):
    """
    Convert axis-angle vectors to rotation matrices (Rodrigues' formula).

    Stable and differentiable at angle 0 (Taylor series of the coefficients).

    :param axis_angle: (..., 3) float, rotation axis times angle in radians.
    :return: (..., 3, 3) rotation matrices, same dtype and device.
    """
    angle_sq = (axis_angle * axis_angle).sum(-1)
    small = angle_sq < _SMALL_ANGLE ** 2
    # The large-angle branch sees a harmless angle where it is not used, so its gradient is
    # finite everywhere (torch.where back-propagates into both branches).
    safe_angle_sq = torch.where(small, torch.ones_like(angle_sq), angle_sq)
    safe_angle = torch.sqrt(safe_angle_sq)
    sin_over_angle = torch.where(
        small, 1.0 - angle_sq / 6.0 + angle_sq * angle_sq / 120.0,
        torch.sin(safe_angle) / safe_angle)
    one_minus_cos_over_sq = torch.where(
        small, 0.5 - angle_sq / 24.0 + angle_sq * angle_sq / 720.0,
        (1.0 - torch.cos(safe_angle)) / safe_angle_sq)
    skew = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return (eye + sin_over_angle[..., None, None] * skew
            + one_minus_cos_over_sq[..., None, None] * (skew @ skew))


def quaternion_to_matrix(quaternion):
    """
    Convert quaternions to rotation matrices; the quaternions are normalised first.

    :param quaternion: (..., 4) float, (w, x, y, z), any non-zero norm.
    :return: (..., 3, 3) rotation matrices.
    """
    q = quaternion / quaternion.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    return torch.stack((
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ), dim=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(matrix):
    """
    Convert rotation matrices to unit quaternions (w, x, y, z) with w >= 0.

    Uses the best-conditioned of the four algebraic solutions (Shepperd's method), so it is
    accurate at every angle, including near pi.

    :param matrix: (..., 3, 3) rotation matrices.
    :return: (..., 4) unit quaternions, w >= 0.
    """
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z.
    four_sq = torch.stack((
        1 + m00 + m11 + m22,
        1 + m00 - m11 - m22,
        1 - m00 + m11 - m22,
        1 - m00 - m11 + m22,
    ), dim=-1)
    # Row i holds 4 q_i q for the solution that divides by q_i.
    candidates = torch.stack((
        torch.stack((four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01), dim=-1),
        torch.stack((m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20), dim=-1),
        torch.stack((m02 - m20, m10 + m01, four_sq[..., 2], m21 + m12), dim=-1),
        torch.stack((m10 - m01, m02 + m20, m21 + m12, four_sq[..., 3]), dim=-1),
    ), dim=-2)
    best = four_sq.argmax(dim=-1)
    index = best[..., None, None].expand(best.shape + (1, 4))
    chosen = candidates.gather(-2, index).squeeze(-2)
    quaternion = chosen / chosen.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def quaternion_to_axis_angle(quaternion):
    """
    Convert quaternions to axis-angle vectors with angle in [0, pi].

    :param quaternion: (..., 4) (w, x, y, z), any non-zero norm.
    :return: (..., 3) axis times angle in radians.
    """
    q = quaternion / quaternion.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    q = torch.where(q[..., :1] < 0, -q, q)
    w = q[..., 0]
    vector = q[..., 1:]
    sin_half_sq = (vector * vector).sum(-1)
    small = sin_half_sq < _SMALL_ANGLE ** 2
    safe_sin_half = torch.sqrt(torch.where(small, torch.ones_like(sin_half_sq), sin_half_sq))
    # angle / sin(angle / 2); for small s = sin(angle / 2) (w >= 0): 2 asin(s) / s ~ 2 + s^2 / 3.
    scale = torch.where(
        small, 2.0 + sin_half_sq / 3.0,
        2.0 * torch.atan2(safe_sin_half, w) / safe_sin_half)
    return vector * scale[..., None]


def matrix_to_axis_angle(matrix):
    """
    Convert rotation matrices to axis-angle vectors with angle in [0, pi].

    Goes through the quaternion, so it stays accurate near angle 0 and near pi (at exactly pi the
    sign of the axis is arbitrary, as for any representation).

    :param matrix: (..., 3, 3) rotation matrices.
    :return: (..., 3) axis times angle in radians.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rotation_6d_to_matrix(rotation_6d):
    """
    Convert the 6D representation to rotation matrices by Gram-Schmidt (Zhou et al. 2019).

    :param rotation_6d: (..., 6) ``(r11 r21 r31 r12 r22 r32)``: two 3-vectors, the estimated first
        and second columns of R (need not be unit or orthogonal, must not be parallel).
    :return: (..., 3, 3) rotation matrices, columns e1, e2, e1 x e2.
    """
    first = rotation_6d[..., 0:3]
    second = rotation_6d[..., 3:6]
    e1 = first / first.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    second = second - (e1 * second).sum(-1, keepdim=True) * e1
    e2 = second / second.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    e3 = torch.linalg.cross(e1, e2, dim=-1)
    return torch.stack((e1, e2, e3), dim=-1)


def matrix_to_rotation_6d(matrix):
    """
    Return the 6D representation: the first two columns of R.

    :param matrix: (..., 3, 3) rotation matrices.
    :return: (..., 6) ``(r11 r21 r31 r12 r22 r32)``.
    """
    return torch.cat((matrix[..., :, 0], matrix[..., :, 1]), dim=-1)


def rt_to_pose9d(rotation, translation):
    """
    Pack a rotation and a translation into the paper's 9-D pose vector (eq. 7).

    :param rotation: (..., 3, 3) rotation matrices.
    :param translation: (..., 3) translation, metres.
    :return: (..., 9) ``(t1 t2 t3 r11 r21 r31 r12 r22 r32)``.
    """
    return torch.cat((translation, matrix_to_rotation_6d(rotation)), dim=-1)


def pose9d_to_rt(pose9d):
    """
    Unpack the paper's 9-D pose vector; the rotation comes from Gram-Schmidt.

    :param pose9d: (..., 9) ``(t1 t2 t3 r11 r21 r31 r12 r22 r32)``.
    :return: tuple (rotation (..., 3, 3), translation (..., 3) metres).
    """
    return rotation_6d_to_matrix(pose9d[..., 3:9]), pose9d[..., 0:3]


def project_points(points, intrinsics):
    """
    Project 3D points with a pinhole camera: ``u = fx x / z + cx``, ``v = fy y / z + cy``.

    No clipping: points must lie in front of the camera (z > 0) for a meaningful result.

    :param points: (..., N, 3) points in the camera optical frame, metres.
    :param intrinsics: (..., 3, 3) camera matrix K, broadcastable against ``points``' batch.
    :return: (..., N, 2) pixel coordinates.
    """
    homogeneous = points @ intrinsics.transpose(-1, -2)
    return homogeneous[..., :2] / homogeneous[..., 2:3]
