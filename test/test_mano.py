"""MANO layer: stand-in hand, file reading (safe unpickling), LBS checked against smplx."""

import collections
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from hand_object_pose_ros import constants
from hand_object_pose_ros import geometry
from hand_object_pose_ros import mano
from hand_object_pose_ros.mano import ManoFileError
from hand_object_pose_ros.mano import ManoLayer


def random_parameters(batch, seed, dtype=torch.float64, finger_scale=0.6):
    """Return random (global_orient, hand_pose, betas, transl)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, generator=generator, dtype=dtype),
            finger_scale * torch.randn(batch, 45, generator=generator, dtype=dtype),
            torch.randn(batch, 10, generator=generator, dtype=dtype),
            0.2 * torch.randn(batch, 3, generator=generator, dtype=dtype))


def mesh_edges(faces):
    """Return a Counter of directed edges."""
    edges = collections.Counter()
    for triangle in faces.tolist():
        for k in range(3):
            edges[(triangle[k], triangle[(k + 1) % 3])] += 1
    return edges


def closed_mesh(vertices, faces):
    """Close the wrist opening with a fan to its centroid; return (vertices, faces)."""
    edges = mesh_edges(faces)
    boundary = [(i, j) for (i, j) in edges if (j, i) not in edges]
    centre = vertices[np.unique(np.asarray(boundary))].mean(0)
    fan = [(j, i, len(vertices)) for i, j in boundary]
    return np.vstack((vertices, centre)), np.vstack((faces, fan))


def winding_numbers(vertices, faces, queries):
    """Generalised winding number of queries w.r.t. a closed mesh (1 inside, 0 outside)."""
    result = []
    for query in queries:
        a, b, c = (vertices[faces[:, k]] - query for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        numerator = np.einsum('ij,ij->i', a, np.cross(b, c))
        denominator = (la * lb * lc + np.einsum('ij,ij->i', a, b) * lc
                       + np.einsum('ij,ij->i', b, c) * la + np.einsum('ij,ij->i', c, a) * lb)
        result.append(np.arctan2(numerator, denominator).sum() * 2.0 / (4.0 * np.pi))
    return np.asarray(result)


@pytest.fixture(scope='module')
def model_folder(tmp_path_factory):
    """Folder with the stand-in written as MANO_RIGHT.pkl / MANO_LEFT.pkl."""
    folder = tmp_path_factory.mktemp('mano')
    mano.write_standin_pickle(str(folder / 'MANO_RIGHT.pkl'), side='right')
    mano.write_standin_pickle(str(folder / 'MANO_LEFT.pkl'), side='left')
    return folder


# ------------------------------------------------------------------------------------------
# The stand-in model.


def test_standin_fields_and_sizes():
    assets = mano.standin_assets('right')
    for name, shape in mano._FIELD_SHAPES.items():
        value = assets.faces if name == 'f' else getattr(assets, name)
        assert value.shape == shape, name
    assert assets.is_standin and assets.side == 'right'
    np.testing.assert_allclose(assets.J_regressor.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(assets.weights.sum(1), 1.0, atol=1e-12)
    assert (assets.weights >= 0).all() and (assets.J_regressor >= 0).all()
    np.testing.assert_allclose(assets.hands_components @ assets.hands_components.T, np.eye(45),
                               atol=1e-12)
    assert tuple(assets.kintree_table[0]) == constants.MANO_KINEMATIC_PARENTS
    assert np.abs(assets.shapedirs).max(axis=(0, 1)).min() > 5e-4  # all 10 shapes act
    assert 1e-4 < np.abs(assets.posedirs).max() < 0.01  # small pose correctives
    assert len(np.unique(assets.faces)) == constants.NUM_MANO_VERTICES


def test_standin_mesh_is_oriented_manifold_open_at_wrist_only():
    assets = mano.standin_assets('right')
    edges = mesh_edges(assets.faces)
    assert max(edges.values()) == 1  # consistent winding, no duplicate directed edge
    boundary = [(i, j) for (i, j) in edges if (j, i) not in edges]
    assert len(boundary) == 16  # MANO's wrist opening: 778 vertices, 1538 faces, genus 0
    vertices, faces = closed_mesh(assets.v_template, assets.faces)
    closed_edges = mesh_edges(faces)
    assert all((j, i) in closed_edges for i, j in closed_edges)  # watertight once closed
    assert len(vertices) - len(closed_edges) // 2 + len(faces) == 2  # genus 0
    area_normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                            vertices[faces[:, 2]] - vertices[faces[:, 0]])
    volume = np.einsum('ij,ij->', vertices[faces[:, 0]], area_normals) / 6.0
    assert 2e-4 < volume < 6e-4  # outward normals; a hand is ~300-500 cm^3
    assert np.linalg.norm(area_normals, axis=1).min() > 1e-7  # no degenerate triangle


def test_standin_joints_lie_inside_the_hand_and_tips_are_extreme():
    assets = mano.standin_assets('right')
    joints = assets.J_regressor @ assets.v_template
    vertices, faces = closed_mesh(assets.v_template, assets.faces)
    np.testing.assert_allclose(winding_numbers(vertices, faces, joints[1:]), 1.0, atol=1e-6)
    # Each fingertip vertex is its finger's farthest vertex from the wrist.
    chains = {745: (13, 14, 15), 317: (1, 2, 3), 444: (4, 5, 6), 556: (10, 11, 12),
              673: (7, 8, 9)}
    for tip, chain in chains.items():
        assert np.linalg.norm(assets.v_template[tip] - joints[0]) > np.linalg.norm(
            joints[chain[-1]] - joints[0])


def test_standin_is_shaped_like_manos_right_hand():
    layer = ManoLayer.standin(flat_hand_mean=True, dtype=torch.float64)
    output = layer(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 45, dtype=torch.float64))
    joints = output.joints[0].numpy()
    names = constants.HAND_JOINT_NAMES
    wrist = joints[names.index('wrist')]
    np.testing.assert_allclose(wrist, [0.0957, 0.0064, 0.0062], atol=1e-9)
    length = np.linalg.norm(joints[names.index('middle_tip')] - wrist)
    assert 0.175 < length < 0.195  # metres (not mm), adult hand
    knuckle_width = np.ptp(output.vertices[0, :, 2].numpy())
    assert 0.08 < knuckle_width < 0.17
    # Fingers along -x, thumb towards +z, index on the thumb side of the pinky.
    assert joints[names.index('middle_tip'), 0] < wrist[0] - 0.15
    assert joints[names.index('thumb_tip'), 2] > joints[names.index('index1'), 2]
    assert joints[names.index('index1'), 2] > joints[names.index('pinky1'), 2]
    # Curling the fingers (MANO's mean pose curls) moves the tips towards the palm (-y).
    curled = ManoLayer.standin(flat_hand_mean=False, dtype=torch.float64)(
        torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 45, dtype=torch.float64))
    tip = names.index('index_tip')
    assert curled.joints[0, tip, 1] < joints[tip, 1] - 0.01


def test_standin_is_deterministic():
    first = mano._build_standin_right()
    second = mano._build_standin_right()
    for name in ('v_template', 'faces', 'weights', 'posedirs', 'shapedirs', 'hands_mean'):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


# ------------------------------------------------------------------------------------------
# The layer.


@pytest.mark.parametrize('dtype', (torch.float32, torch.float64))
def test_shapes_dtypes_and_double(dtype):
    layer = ManoLayer.standin(dtype=dtype)
    output = layer(*random_parameters(3, 0, dtype))
    assert output.vertices.shape == (3, 778, 3) and output.vertices.dtype == dtype
    assert output.joints.shape == (3, 21, 3) and output.joints.dtype == dtype
    assert layer.faces.shape == (1538, 3) and layer.faces.dtype == torch.int64
    assert layer.is_standin and layer.side == 'right'
    converted = ManoLayer.standin().double()
    assert converted.faces.dtype == torch.int64
    reference = ManoLayer.standin(dtype=torch.float64)
    parameters = random_parameters(2, 1)
    torch.testing.assert_close(converted(*parameters).vertices,
                               reference(*parameters).vertices, atol=1e-7, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_matches_cpu():
    layer = ManoLayer.standin()
    parameters = random_parameters(4, 2, torch.float32)
    expected = layer(*parameters)
    gpu = layer.to('cuda')
    assert gpu.faces.device.type == 'cuda'
    output = gpu(*(p.cuda() for p in parameters))
    torch.testing.assert_close(output.vertices.cpu(), expected.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(output.joints.cpu(), expected.joints, atol=1e-5, rtol=0)


def test_fingertips_and_joint_order():
    layer = ManoLayer.standin(dtype=torch.float64)
    global_orient, hand_pose, betas, transl = random_parameters(3, 3)
    output = layer(global_orient, hand_pose, betas, transl)
    tips = [constants.HAND_JOINT_NAMES.index(name) for name in
            ('thumb_tip', 'index_tip', 'middle_tip', 'ring_tip', 'pinky_tip')]
    torch.testing.assert_close(output.joints[:, tips],
                               output.vertices[:, list(constants.FINGERTIP_VERTEX_IDS)])
    # Rest pose, mean shape: the kinematic joints are the regressed template joints.
    rest = ManoLayer.standin(flat_hand_mean=True, dtype=torch.float64)(
        torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 45, dtype=torch.float64))
    assets = mano.standin_assets('right')
    kinematic = assets.J_regressor @ assets.v_template
    for output_index, mano_index in enumerate(constants.MANO_TO_OUTPUT_JOINT_ORDER):
        if mano_index < 16:
            np.testing.assert_allclose(rest.joints[0, output_index].numpy(),
                                       kinematic[mano_index], atol=1e-12)
    # Each bone of the skeleton keeps its rest length in any pose (shape fixed).
    posed = layer(global_orient, hand_pose, torch.zeros_like(betas), transl).joints
    parents = constants.HAND_JOINT_PARENTS
    for child in range(1, 21):
        if child in tips:
            continue  # fingertip vertices move with skinning, not rigidly
        rest_length = (rest.joints[0, child] - rest.joints[0, parents[child]]).norm()
        lengths = (posed[:, child] - posed[:, parents[child]]).norm(dim=-1)
        torch.testing.assert_close(lengths, rest_length.expand(3), atol=1e-12, rtol=0)


def test_zero_pose_and_shape_give_the_template():
    layer = ManoLayer.standin(flat_hand_mean=True, dtype=torch.float64)
    output = layer(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 45, dtype=torch.float64),
                   torch.zeros(2, 10, dtype=torch.float64))
    template = torch.from_numpy(mano.standin_assets('right').v_template)
    torch.testing.assert_close(output.vertices, template.expand(2, 778, 3), atol=1e-14, rtol=0)
    shifted = layer(torch.zeros(1, 3, dtype=torch.float64),
                    torch.zeros(1, 45, dtype=torch.float64),
                    transl=torch.tensor([[0.1, -0.2, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(shifted.vertices[0] - template,
                               torch.tensor([0.1, -0.2, 0.5], dtype=torch.float64).expand(778, 3))


def test_global_orientation_rotates_about_the_wrist():
    layer = ManoLayer.standin(dtype=torch.float64)
    _, hand_pose, betas, _ = random_parameters(1, 4)
    rotation_vector = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    plain = layer(torch.zeros(1, 3, dtype=torch.float64), hand_pose, betas)
    rotated = layer(rotation_vector, hand_pose, betas)
    wrist = plain.joints[0, 0]
    rotation = geometry.axis_angle_to_matrix(rotation_vector[0])
    expected = (plain.vertices[0] - wrist) @ rotation.T + wrist
    torch.testing.assert_close(rotated.vertices[0], expected, atol=1e-12, rtol=0)


def test_flat_hand_mean_conventions():
    mean_layer = ManoLayer.standin(flat_hand_mean=False, dtype=torch.float64)
    flat_layer = ManoLayer.standin(flat_hand_mean=True, dtype=torch.float64)
    global_orient, hand_pose, betas, transl = random_parameters(2, 5)
    relative = mean_layer(global_orient, hand_pose, betas, transl)
    absolute = flat_layer(global_orient, hand_pose + flat_layer.hands_mean, betas, transl)
    torch.testing.assert_close(relative.vertices, absolute.vertices)
    different = flat_layer(global_orient, hand_pose, betas, transl)
    assert (different.vertices - relative.vertices).abs().max() > 1e-3


@pytest.mark.parametrize('flat_hand_mean', (False, True))
@pytest.mark.parametrize('num_pca_comps', (45, 12))
def test_pca_path_equals_axis_angle_path(flat_hand_mean, num_pca_comps):
    pca_layer = ManoLayer.standin(use_pca=True, num_pca_comps=num_pca_comps,
                                  flat_hand_mean=flat_hand_mean, dtype=torch.float64)
    axis_angle_layer = ManoLayer.standin(flat_hand_mean=flat_hand_mean, dtype=torch.float64)
    global_orient, _, betas, transl = random_parameters(3, 6)
    coeffs = torch.randn(3, num_pca_comps, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(1))
    from_pca = pca_layer(global_orient, coeffs, betas, transl)
    hand_pose = pca_layer.pca_to_axis_angle(coeffs, add_mean=False)
    from_axis_angle = axis_angle_layer(global_orient, hand_pose, betas, transl)
    torch.testing.assert_close(from_pca.vertices, from_axis_angle.vertices)
    torch.testing.assert_close(from_pca.joints, from_axis_angle.joints)
    # The absolute pose (mean added) drives a flat_hand_mean=True layer to the same result.
    if not flat_hand_mean:
        absolute = ManoLayer.standin(flat_hand_mean=True, dtype=torch.float64)(
            global_orient, pca_layer.pca_to_axis_angle(coeffs), betas, transl)
        torch.testing.assert_close(absolute.vertices, from_pca.vertices)
    with pytest.raises(ValueError, match='hand_pose'):
        pca_layer(global_orient, torch.zeros(3, 45 + 1, dtype=torch.float64), betas)


def test_left_hand_is_the_mirror_of_the_right():
    right = ManoLayer.standin('right', dtype=torch.float64)
    left = ManoLayer.standin('left', dtype=torch.float64)
    assert left.side == 'left'
    global_orient, hand_pose, betas, transl = random_parameters(3, 7)
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    right_output = right(global_orient, hand_pose, betas, transl)
    left_output = left(global_orient * flip, (hand_pose.view(3, 15, 3) * flip).view(3, 45),
                       betas, transl * mirror)
    torch.testing.assert_close(left_output.vertices, right_output.vertices * mirror)
    torch.testing.assert_close(left_output.joints, right_output.joints * mirror)
    torch.testing.assert_close(left.faces, right.faces.flip(1))


def test_gradients_flow_to_all_inputs():
    layer = ManoLayer.standin(dtype=torch.float64)
    parameters = [p.requires_grad_() for p in random_parameters(2, 8)]
    output = layer(*parameters)
    (output.vertices.square().sum() + output.joints.sum()).backward()
    for parameter in parameters:
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
        assert parameter.grad.abs().max() > 0


# ------------------------------------------------------------------------------------------
# Files.


def test_pickle_round_trip_equals_standin(model_folder):
    for side in ('right', 'left'):
        path = str(model_folder / ('MANO_%s.pkl' % side.upper()))
        loaded = ManoLayer.from_file(path, dtype=torch.float64)
        assert loaded.side == side and not loaded.is_standin
        standin = ManoLayer.standin(side, dtype=torch.float64)
        parameters = random_parameters(2, 9)
        torch.testing.assert_close(loaded(*parameters).vertices, standin(*parameters).vertices,
                                   atol=1e-14, rtol=0)
        torch.testing.assert_close(loaded.faces, standin.faces)
    assert mano.load_mano_assets(str(model_folder), side='left').side == 'left'
    with open(str(model_folder / 'MANO_RIGHT.pkl'), 'rb') as stream:
        raw = pickle.load(stream, encoding='latin1')  # what third-party loaders do
    assert isinstance(raw['J_regressor'], scipy.sparse.csc_matrix)
    assert raw['bs_type'] == 'lrotmin' and raw['bs_style'] == 'lbs'


def test_npz_path(tmp_path):
    path = str(tmp_path / 'mano_right_converted.npz')
    mano.write_assets_npz(path, mano.standin_assets('right'))
    with np.load(path, allow_pickle=False) as archive:
        assert archive['J_regressor'].shape == (16, 778)
    loaded = ManoLayer.from_file(path, use_pca=True, num_pca_comps=6, dtype=torch.float64)
    standin = ManoLayer.standin(use_pca=True, num_pca_comps=6, dtype=torch.float64)
    assert loaded.side == 'right'  # from the geometry: fingers along -x
    global_orient, _, betas, transl = random_parameters(2, 10)
    coeffs = torch.randn(2, 6, dtype=torch.float64)
    torch.testing.assert_close(loaded(global_orient, coeffs, betas, transl).joints,
                               standin(global_orient, coeffs, betas, transl).joints,
                               atol=1e-14, rtol=0)
    left_path = str(tmp_path / 'converted.npz')
    mano.write_assets_npz(left_path, mano.standin_assets('left'))
    assert mano.load_mano_assets(left_path).side == 'left'


@pytest.mark.parametrize('side', ('right', 'left'))
@pytest.mark.parametrize('flat_hand_mean', (False, True))
def test_matches_smplx_mano_on_the_written_pickle(model_folder, side, flat_hand_mean):
    smplx = pytest.importorskip('smplx')
    reference = smplx.MANO(str(model_folder), is_rhand=side == 'right', use_pca=False,
                           flat_hand_mean=flat_hand_mean, dtype=torch.float64)
    assert 'chumpy' not in sys.modules  # our pickle holds no chumpy object
    ours = ManoLayer.from_file(str(model_folder), side=side, flat_hand_mean=flat_hand_mean,
                               dtype=torch.float64)
    global_orient, hand_pose, betas, transl = random_parameters(16, 11, finger_scale=0.8)
    expected = reference(betas=betas, global_orient=global_orient, hand_pose=hand_pose,
                         transl=transl)
    output = ours(global_orient, hand_pose, betas, transl)
    joints = torch.cat((expected.joints[:, :16],
                        expected.vertices[:, list(constants.FINGERTIP_VERTEX_IDS)]), dim=1)
    joints = joints[:, list(constants.MANO_TO_OUTPUT_JOINT_ORDER)]
    # smplx stores its buffers through float32 numpy arrays: agreement to ~1e-8 m.
    torch.testing.assert_close(output.vertices, expected.vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(output.joints, joints, atol=1e-6, rtol=0)


class _Exploit:
    """Pickles to a call of os.system that would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ('touch %s' % self.marker,))


class _EvalExploit:
    """Pickles to a call of builtins.eval."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, ("open(%r, 'w').close()" % self.marker,))


@pytest.mark.parametrize('exploit', (_Exploit, _EvalExploit))
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, exploit):
    marker = tmp_path / 'pwned'
    fields = mano._asset_fields(mano.standin_assets('right'))
    fields['hands_coeffs'] = exploit(str(marker))
    path = tmp_path / 'MANO_RIGHT.pkl'
    with open(str(path), 'wb') as stream:
        pickle.dump(fields, stream, protocol=2)
    with pytest.raises(ManoFileError, match='MANO_RIGHT.pkl') as error:
        ManoLayer.from_file(str(path))
    assert 'refusing' in str(error.value)
    assert not marker.exists()


def _fake_chumpy_pickle(protocol):
    """Return bytes laid out like the original MANO pickle: chumpy Ch, old scipy paths."""
    module = types.ModuleType('fakechumpymod')

    class Ch:
        """Stands for chumpy.ch.Ch: its pickled state is a dict with the array in 'x'."""

    Ch.__module__ = 'fakechumpymod'
    Ch.__qualname__ = 'Ch'
    module.Ch = Ch
    sys.modules['fakechumpymod'] = module
    try:
        fields = mano._asset_fields(mano.standin_assets('right'))
        for name in ('shapedirs', 'v_template', 'weights'):
            holder = Ch()
            holder.x = fields[name]
            holder._dirty_vars = set()
            fields[name] = holder
        data = pickle.dumps(fields, protocol=protocol)
    finally:
        del sys.modules['fakechumpymod']
    data = data.replace(b'cfakechumpymod\nCh\n', b'cchumpy.ch\nCh\n')
    data = data.replace(b'cscipy.sparse._csc\ncsc_matrix\n', b'cscipy.sparse.csc\ncsc_matrix\n')
    data = data.replace(b'ccopyreg\n_reconstructor\n', b'ccopy_reg\n_reconstructor\n')
    data = data.replace(b'cbuiltins\nobject\n', b'c__builtin__\nobject\n')
    assert b'chumpy.ch' in data and b'scipy.sparse.csc\n' in data
    return data


@pytest.mark.parametrize('protocol', (1, 2))
def test_chumpy_layout_is_read_without_chumpy(tmp_path, protocol):
    path = tmp_path / 'MANO_RIGHT.pkl'
    path.write_bytes(_fake_chumpy_pickle(protocol))
    assert 'chumpy' not in sys.modules
    loaded = mano.load_mano_assets(str(path))
    assets = mano.standin_assets('right')
    np.testing.assert_array_equal(loaded.shapedirs, assets.shapedirs)
    np.testing.assert_array_equal(loaded.J_regressor, assets.J_regressor)
    np.testing.assert_array_equal(loaded.v_template, assets.v_template)
    assert 'chumpy' not in sys.modules


def test_missing_file_missing_field_and_wrong_shape_are_named(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'MANO_RIGHT.pkl')
    with pytest.raises(ManoFileError, match='nowhere/MANO_RIGHT.pkl'):
        ManoLayer.from_file(missing)
    with pytest.raises(ManoFileError, match='MANO_LEFT'):
        ManoLayer.from_file(str(tmp_path), side='left')
    fields = mano._asset_fields(mano.standin_assets('right'))
    without = dict(fields)
    del without['posedirs']
    path = tmp_path / 'no_posedirs.pkl'
    path.write_bytes(pickle.dumps(without, protocol=2))
    with pytest.raises(ManoFileError, match=r"no_posedirs\.pkl.*'posedirs'"):
        ManoLayer.from_file(str(path))
    wrong = dict(fields)
    wrong['shapedirs'] = fields['shapedirs'][:, :, :8]
    path = tmp_path / 'short_shapedirs.pkl'
    path.write_bytes(pickle.dumps(wrong, protocol=2))
    with pytest.raises(ManoFileError, match=r"short_shapedirs\.pkl.*'shapedirs'.*\(778, 3, 8\)"):
        ManoLayer.from_file(str(path))
    npz = {name: np.asarray(value.todense() if scipy.sparse.issparse(value) else value)
           for name, value in fields.items()}
    npz['f'] = npz['f'][:100]
    path = str(tmp_path / 'few_faces.npz')
    np.savez(path, **npz)
    with pytest.raises(ManoFileError, match=r"few_faces\.npz.*'f'"):
        ManoLayer.from_file(path)
    garbage = tmp_path / 'garbage.pkl'
    garbage.write_bytes(b'not a pickle at all')
    with pytest.raises(ManoFileError, match='garbage.pkl'):
        ManoLayer.from_file(str(garbage))


def test_benchmark_cli_runs(capsys):
    from hand_object_pose_ros import benchmark
    benchmark.main(['mano', '--runs', '3', '--warmup', '1', '--batch-sizes', '1', '4',
                    '--no-smplx'])
    printed = capsys.readouterr().out
    assert 'ours' in printed and 'batch' in printed
