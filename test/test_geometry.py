"""Rotations and projection of hand_object_pose_ros.geometry against scipy and by gradcheck."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
import torch

from hand_object_pose_ros import geometry

DTYPES = (torch.float32, torch.float64)
TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-11}


def random_axis_angles(count, seed):
    """Return (count, 3) float64 rotation vectors: random, tiny, zero and near-pi angles."""
    rng = np.random.default_rng(seed)
    axes = rng.standard_normal((count, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0.0, np.pi, count)
    angles[:8] = (0.0, 1e-9, 1e-6, 1e-4, 1e-3, 2e-3, np.pi - 1e-3, np.pi - 1e-6)
    return axes * angles[:, None]


def same_rotation_vector(first, second, tolerance):
    """Compare rotation vectors, allowing the sign flip of the axis at angle pi."""
    norm = np.linalg.norm(second, axis=-1)
    flipped = second - 2.0 * np.pi * second / np.maximum(norm, 1e-300)[..., None]
    error = np.minimum(np.abs(first - second).max(-1), np.abs(first - flipped).max(-1))
    return error.max() < tolerance


@pytest.mark.parametrize('dtype', DTYPES)
def test_axis_angle_to_matrix_matches_scipy(dtype):
    vectors = random_axis_angles(500, 0)
    matrices = geometry.axis_angle_to_matrix(torch.tensor(vectors, dtype=dtype))
    assert matrices.dtype == dtype and matrices.shape == (500, 3, 3)
    expected = Rotation.from_rotvec(vectors).as_matrix()
    np.testing.assert_allclose(matrices.double().numpy(), expected, atol=TOLERANCE[dtype])


@pytest.mark.parametrize('dtype', DTYPES)
def test_matrix_to_axis_angle_matches_scipy_near_zero_and_pi(dtype):
    vectors = random_axis_angles(500, 1)
    matrices = torch.tensor(Rotation.from_rotvec(vectors).as_matrix(), dtype=dtype)
    recovered = geometry.matrix_to_axis_angle(matrices)
    assert recovered.dtype == dtype
    expected = Rotation.from_matrix(matrices.double().numpy()).as_rotvec()
    # float32 matrices near pi determine the axis to ~sqrt(eps).
    tolerance = 2e-3 if dtype == torch.float32 else 1e-7
    assert same_rotation_vector(recovered.double().numpy(), expected, tolerance)
    # Away from pi the vectors agree tightly; the matrices agree everywhere.
    away = np.linalg.norm(vectors, axis=1) < 3.0
    np.testing.assert_allclose(recovered.double().numpy()[away], expected[away],
                               atol=50 * TOLERANCE[dtype])
    np.testing.assert_allclose(geometry.axis_angle_to_matrix(recovered).double().numpy(),
                               matrices.double().numpy(), atol=10 * TOLERANCE[dtype])


@pytest.mark.parametrize('dtype', DTYPES)
def test_quaternion_round_trip_matches_scipy(dtype):
    vectors = random_axis_angles(300, 2)
    matrices = torch.tensor(Rotation.from_rotvec(vectors).as_matrix(), dtype=dtype)
    quaternions = geometry.matrix_to_quaternion(matrices)
    assert quaternions.shape == (300, 4)
    assert (quaternions[:, 0] >= 0).all()
    expected = Rotation.from_matrix(matrices.double().numpy()).as_quat()  # x, y, z, w
    expected = np.concatenate((expected[:, 3:], expected[:, :3]), 1)
    expected *= np.where(expected[:, :1] < 0, -1.0, 1.0)
    # At w = 0 exactly, q and -q both have w >= 0.
    error = np.minimum(np.abs(quaternions.double().numpy() - expected).max(1),
                       np.abs(quaternions.double().numpy() + expected).max(1))
    assert error.max() < 10 * TOLERANCE[dtype]
    # quaternion_to_matrix normalises its input.
    back = geometry.quaternion_to_matrix(3.0 * quaternions)
    np.testing.assert_allclose(back.double().numpy(), matrices.double().numpy(),
                               atol=10 * TOLERANCE[dtype])


@pytest.mark.parametrize('dtype', DTYPES)
def test_rotation_6d_is_first_two_columns_and_gram_schmidt(dtype):
    matrices = torch.tensor(Rotation.random(200, random_state=3).as_matrix(), dtype=dtype)
    six = geometry.matrix_to_rotation_6d(matrices)
    assert six.shape == (200, 6)
    torch.testing.assert_close(six[:, 0:3], matrices[:, :, 0])
    torch.testing.assert_close(six[:, 3:6], matrices[:, :, 1])
    torch.testing.assert_close(geometry.rotation_6d_to_matrix(six), matrices,
                               atol=TOLERANCE[dtype], rtol=0)
    # Unnormalised, non-orthogonal input: Gram-Schmidt keeps the first column's direction.
    noisy = six * 2.5 + 0.1 * torch.randn(200, 6, generator=torch.Generator().manual_seed(0),
                                          dtype=dtype)
    rotations = geometry.rotation_6d_to_matrix(noisy)
    eye = torch.eye(3, dtype=dtype).expand(200, 3, 3)
    torch.testing.assert_close(rotations.transpose(1, 2) @ rotations, eye,
                               atol=10 * TOLERANCE[dtype], rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(200, dtype=dtype),
                               atol=10 * TOLERANCE[dtype], rtol=0)
    first = noisy[:, 0:3] / noisy[:, 0:3].norm(dim=1, keepdim=True)
    torch.testing.assert_close(rotations[:, :, 0], first, atol=TOLERANCE[dtype], rtol=0)


@pytest.mark.parametrize('dtype', DTYPES)
def test_pose9d_layout_and_round_trip(dtype):
    rotation = torch.tensor(Rotation.random(1, random_state=4).as_matrix()[0], dtype=dtype)
    translation = torch.tensor([0.1, -0.2, 0.7], dtype=dtype)
    pose = geometry.rt_to_pose9d(rotation, translation)
    expected = torch.stack((translation[0], translation[1], translation[2],
                            rotation[0, 0], rotation[1, 0], rotation[2, 0],
                            rotation[0, 1], rotation[1, 1], rotation[2, 1]))
    torch.testing.assert_close(pose, expected)
    back_rotation, back_translation = geometry.pose9d_to_rt(pose)
    torch.testing.assert_close(back_rotation, rotation, atol=TOLERANCE[dtype], rtol=0)
    torch.testing.assert_close(back_translation, translation)


def test_leading_batch_dimensions():
    vectors = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(5))
    matrices = geometry.axis_angle_to_matrix(vectors)
    assert matrices.shape == (4, 5, 3, 3)
    assert geometry.matrix_to_axis_angle(matrices).shape == (4, 5, 3)
    assert geometry.matrix_to_quaternion(matrices).shape == (4, 5, 4)
    assert geometry.quaternion_to_matrix(torch.randn(2, 7, 4)).shape == (2, 7, 3, 3)
    assert geometry.rotation_6d_to_matrix(torch.randn(4, 5, 6)).shape == (4, 5, 3, 3)
    rotation, translation = geometry.pose9d_to_rt(torch.randn(2, 3, 9))
    assert rotation.shape == (2, 3, 3, 3) and translation.shape == (2, 3, 3)
    points = torch.rand(2, 3, 10, 3) + torch.tensor([0.0, 0.0, 1.0])
    assert geometry.project_points(points, torch.eye(3).expand(2, 3, 3, 3)).shape == (2, 3, 10, 2)


def test_project_points_pinhole():
    intrinsics = torch.tensor([[600.0, 0.0, 320.0], [0.0, 610.0, 240.0], [0.0, 0.0, 1.0]])
    points = torch.tensor([[[0.0, 0.0, 1.0], [0.1, -0.05, 0.5], [-0.2, 0.3, 2.0]]])
    pixels = geometry.project_points(points, intrinsics[None])
    expected = torch.tensor([[[320.0, 240.0], [320.0 + 600.0 * 0.2, 240.0 - 610.0 * 0.1],
                              [320.0 - 600.0 * 0.1, 240.0 + 610.0 * 0.15]]])
    torch.testing.assert_close(pixels, expected)


def test_gradcheck_axis_angle_to_matrix_including_zero():
    vectors = torch.tensor(random_axis_angles(12, 6), requires_grad=True)
    assert torch.autograd.gradcheck(geometry.axis_angle_to_matrix, (vectors,))
    for tiny in ([0.0, 0.0, 0.0], [1e-5, -2e-5, 3e-6], [4e-4, 5e-4, -6e-4]):
        vector = torch.tensor([tiny], dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(geometry.axis_angle_to_matrix, (vector,), eps=1e-7)
    # The gradient at zero is the generator basis: dR/dv_k = [e_k]_x (jacobian[i, j, k]).
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    jacobian = torch.autograd.functional.jacobian(geometry.axis_angle_to_matrix, zero)
    assert torch.isfinite(jacobian).all()
    torch.testing.assert_close(jacobian[1, 2, 0], torch.tensor(-1.0, dtype=torch.float64))
    torch.testing.assert_close(jacobian[0, 2, 1], torch.tensor(1.0, dtype=torch.float64))


def test_gradcheck_6d_quaternion_projection():
    generator = torch.Generator().manual_seed(7)
    six = torch.randn(6, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(geometry.rotation_6d_to_matrix, (six,))
    quaternions = torch.randn(6, 4, dtype=torch.float64, generator=generator,
                              requires_grad=True)
    assert torch.autograd.gradcheck(geometry.quaternion_to_matrix, (quaternions,))
    points = (torch.rand(2, 5, 3, dtype=torch.float64, generator=generator)
              + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)).requires_grad_()
    intrinsics = torch.tensor([[500.0, 0.0, 100.0], [0.0, 500.0, 120.0], [0.0, 0.0, 1.0]],
                              dtype=torch.float64).expand(2, 3, 3).clone().requires_grad_()
    assert torch.autograd.gradcheck(geometry.project_points, (points, intrinsics))


def test_matrix_to_axis_angle_gradient_is_finite_near_zero():
    vector = torch.tensor([[1e-6, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    matrices = geometry.axis_angle_to_matrix(vector).requires_grad_()
    geometry.matrix_to_axis_angle(matrices).sum().backward()
    assert torch.isfinite(matrices.grad).all()
