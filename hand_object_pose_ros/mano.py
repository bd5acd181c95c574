"""
MANO hand model: assets (real MANO v1.2 files or a generated stand-in) and a torch layer.

The real model files (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``) are licensed and never bundled;
:meth:`ManoLayer.from_file` reads them without chumpy and without running code from the file.
:meth:`ManoLayer.standin` builds a deterministic hand of the same fields and sizes from code, so
that everything runs without the licensed files.

Canonical frame of the model (as MANO's right hand): metres, wrist joint near
(0.096, 0.006, 0.006), fingers along -x, palm facing -y, thumb towards +z. The left hand is the
mirror image (x -> -x).
"""

from dataclasses import dataclass
import functools
import io
import os
import pickle
from typing import Optional

import numpy as np
try:  # numpy >= 2 renamed numpy.core (its pickles name either module)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric
import scipy.sparse
import torch
from torch import nn

from hand_object_pose_ros import constants
from hand_object_pose_ros import geometry
from hand_object_pose_ros.types import ManoOutput

# Expected array shapes of a MANO v1.2 model.
_FIELD_SHAPES = {
    'v_template': (constants.NUM_MANO_VERTICES, 3),
    'shapedirs': (constants.NUM_MANO_VERTICES, 3, constants.NUM_MANO_SHAPE_PARAMS),
    'posedirs': (constants.NUM_MANO_VERTICES, 3, constants.NUM_POSE_BLENDSHAPES),
    'J_regressor': (constants.NUM_MANO_KINEMATIC_JOINTS, constants.NUM_MANO_VERTICES),
    'weights': (constants.NUM_MANO_VERTICES, constants.NUM_MANO_KINEMATIC_JOINTS),
    'kintree_table': (2, constants.NUM_MANO_KINEMATIC_JOINTS),
    'f': (constants.NUM_MANO_FACES, 3),
    'hands_components': (constants.NUM_MANO_POSE_PARAMS, constants.NUM_MANO_POSE_PARAMS),
    'hands_mean': (constants.NUM_MANO_POSE_PARAMS,),
}
# The wrist joint of MANO's right-hand template (metres); the stand-in uses the same origin.
_WRIST_POSITION = np.array([0.0957, 0.0064, 0.0062])
# Maps a point (a, b, c) of the stand-in's design frame (a: wrist to fingers, b: towards the
# thumb, c: back of the hand) to MANO's right-hand frame: x = -a, y = c, z = b (a rotation).
_DESIGN_TO_MANO = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
# Mirror of a right hand into a left hand.
_MIRROR = np.array([-1.0, 1.0, 1.0])


class ManoFileError(ValueError):
    """A MANO model file is missing, malformed or asks for something not allowed."""


@dataclass
class ManoAssets:
    """
    The arrays of a MANO model (numpy float64 unless stated), canonical frame, metres.

    :param v_template: (778, 3) template vertices.
    :param shapedirs: (778, 3, 10) shape blend shapes.
    :param posedirs: (778, 3, 135) pose blend shapes ('lrotmin': (R_i - I) of the 15 finger
        joints, row-major).
    :param J_regressor: (16, 778) dense joint regressor.
    :param weights: (778, 16) skinning weights.
    :param kintree_table: (2, 16) int64; row 0 parents (root: -1), row 1 joint ids.
    :param faces: (1538, 3) int64 triangle vertex ids.
    :param hands_components: (45, 45) PCA basis of the finger pose, one component per row.
    :param hands_mean: (45,) mean finger pose, axis-angle.
    :param hands_coeffs: (N, 45) PCA coefficients of the training poses, or None.
    :param side: 'right' or 'left'.
    :param source: path of the file, or 'standin'.
    :param is_standin: True for the generated stand-in.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray  # noqa: N815 (MANO's field name)
    weights: np.ndarray
    kintree_table: np.ndarray
    faces: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    hands_coeffs: Optional[np.ndarray] = None
    side: str = 'right'
    source: str = 'standin'
    is_standin: bool = False
    bs_type: str = 'lrotmin'
    bs_style: str = 'lbs'


# --------------------------------------------------------------------------------------------
# Reading model files safely.


class _StateHolder:
    """Receives the pickled state of an allowed foreign object; never runs its code."""

    def __new__(cls, *args, **kwargs):
        """Create an empty holder whatever the original constructor's arguments were."""
        return object.__new__(cls)

    def __setstate__(self, state):
        """Keep the pickled state."""
        self.state = state


class _ChumpyStandIn(_StateHolder):
    """Receives the state of a pickled chumpy object (a dict of chumpy terms)."""

    def value(self):
        """Return the array held by a plain ``chumpy.Ch`` (its ``x`` term)."""
        state = getattr(self, 'state', None)
        if isinstance(state, tuple) and state and isinstance(state[0], dict):
            state = state[0]  # (dict, slots) form
        if isinstance(state, dict) and 'x' in state:
            return _to_array(state['x'])
        raise TypeError('a chumpy expression (not a plain Ch array) is not supported')


class _SparseStandIn(_StateHolder):
    """Receives the state of a pickled scipy.sparse matrix; rebuilt from validated arrays."""

    sparse_format = None

    def value(self):
        """Return the matrix as a dense float64 array."""
        state = getattr(self, 'state', None)
        if not isinstance(state, dict):
            raise TypeError('malformed sparse matrix')
        shape = state.get('_shape', state.get('shape'))
        shape = tuple(int(n) for n in shape)
        data = np.asarray(state['data'], dtype=np.float64)
        if self.sparse_format == 'coo':
            matrix = scipy.sparse.coo_matrix(
                (data, (np.asarray(state['row']), np.asarray(state['col']))), shape=shape)
        else:
            maker = (scipy.sparse.csc_matrix if self.sparse_format == 'csc'
                     else scipy.sparse.csr_matrix)
            matrix = maker((data, np.asarray(state['indices']), np.asarray(state['indptr'])),
                           shape=shape)
        return np.asarray(matrix.todense(), dtype=np.float64)


def _sparse_stand_in(sparse_format):
    return type('_%sStandIn' % sparse_format.capitalize(), (_SparseStandIn,),
                {'sparse_format': sparse_format})


_SPARSE_STAND_INS = {name: _sparse_stand_in(name) for name in ('csc', 'csr', 'coo')}


def _safe_reconstructor(cls, base, state):
    """Replace ``copyreg._reconstructor`` for the holder classes only."""
    if base is not object or not isinstance(cls, type) or not issubclass(cls, _StateHolder):
        raise pickle.UnpicklingError('copyreg._reconstructor of a class that is not allowed')
    return object.__new__(cls)


def _safe_encode(text, encoding):
    """Replace ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError('_codecs.encode is allowed for latin1 text only')
    return text.encode('latin1')


_NUMPY_GLOBALS = {
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
}
for _module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
    _NUMPY_GLOBALS[(_module, '_reconstruct')] = _multiarray._reconstruct
    _NUMPY_GLOBALS[(_module, 'scalar')] = _multiarray.scalar
for _module in ('numpy.core.numeric', 'numpy._core.numeric'):
    _NUMPY_GLOBALS[(_module, '_frombuffer')] = _numeric._frombuffer
_BUILTIN_GLOBALS = {'object': object, 'set': set, 'frozenset': frozenset, 'slice': slice,
                    'complex': complex}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy arrays, sparse matrices, chumpy arrays, containers."""

    def find_class(self, module, name):
        """Return a harmless stand-in for allowed globals; refuse everything else."""
        if (module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[(module, name)]
        if module in ('builtins', '__builtin__') and name in _BUILTIN_GLOBALS:
            return _BUILTIN_GLOBALS[name]
        if module == '_codecs' and name == 'encode':
            return _safe_encode
        if module in ('copyreg', 'copy_reg') and name == '_reconstructor':
            return _safe_reconstructor
        if module == 'chumpy' or module.startswith('chumpy.'):
            return _ChumpyStandIn
        if module == 'scipy.sparse' or module.startswith('scipy.sparse.'):
            for sparse_format, holder in _SPARSE_STAND_INS.items():
                if name == sparse_format + '_matrix' or name == sparse_format + '_array':
                    return holder
        raise pickle.UnpicklingError('refusing to load global %s.%s' % (module, name))


def _to_array(value):
    """Return a numpy array from an array, a chumpy / sparse holder or a list."""
    if isinstance(value, _StateHolder):
        return value.value()
    if scipy.sparse.issparse(value):
        return np.asarray(value.todense())
    return np.asarray(value)


def _read_raw_fields(path):
    """Read the field dict of a .pkl or .npz file; raise ManoFileError on any problem."""
    if not os.path.isfile(path):
        raise ManoFileError('MANO model file %s does not exist' % path)
    try:
        if path.endswith('.npz'):
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        with open(path, 'rb') as stream:
            data = _RestrictedUnpickler(io.BytesIO(stream.read()), encoding='latin1').load()
    except ManoFileError:
        raise
    except Exception as error:  # noqa: B902 any parse failure is a bad file
        raise ManoFileError('cannot read MANO model file %s: %s' % (path, error)) from error
    if not isinstance(data, dict):
        raise ManoFileError('MANO model file %s does not hold a dict of fields' % path)
    return data


def _field(path, data, name, dtype=np.float64):
    """Return one validated field as a numpy array."""
    if name not in data:
        raise ManoFileError('MANO model file %s lacks the field %r' % (path, name))
    try:
        array = np.asarray(_to_array(data[name]), dtype=dtype)
    except Exception as error:  # noqa: B902 unreadable content
        raise ManoFileError('MANO model file %s: field %r cannot be read as an array: %s'
                            % (path, name, error)) from error
    expected = _FIELD_SHAPES[name]
    if array.shape != expected:
        raise ManoFileError('MANO model file %s: field %r has shape %s, expected %s'
                            % (path, name, array.shape, expected))
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ManoFileError('MANO model file %s: field %r holds non-finite values'
                            % (path, name))
    return array


def _side_from(path, v_template, J_regressor, requested):  # noqa: N803
    """Return 'right' or 'left': the caller's choice, the file name, else the geometry."""
    if requested is not None:
        return _check_side(requested)
    name = os.path.basename(path).upper()
    if 'LEFT' in name:
        return 'left'
    if 'RIGHT' in name:
        return 'right'
    joints = J_regressor @ v_template
    # Right hands point their fingers along -x (wrist to middle-finger base).
    return 'right' if joints[4, 0] - joints[0, 0] < 0 else 'left'


def _check_side(side):
    side = str(side).lower()
    if side not in ('right', 'left'):
        raise ValueError("side must be 'right' or 'left', not %r" % side)
    return side


def load_mano_assets(path, side=None):
    """
    Read a MANO v1.2 model file (``.pkl`` as distributed, or an ``.npz`` with the same fields).

    The pickle is read by a restricted unpickler: chumpy objects become plain arrays (chumpy is
    never imported), scipy sparse matrices are rebuilt from their arrays, and any other global
    the file names is refused. A directory is searched for ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``
    (``.npz``) of the requested side (default right).

    :param path: file or directory.
    :param side: 'right' / 'left' to override the side read from the file name / geometry.
    :return: :class:`ManoAssets`.
    :raises ManoFileError: missing file, missing or mis-shaped field, refused pickle content.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        wanted = _check_side(side or 'right').upper()
        for extension in ('pkl', 'npz'):
            candidate = os.path.join(path, 'MANO_%s.%s' % (wanted, extension))
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            raise ManoFileError('MANO model folder %s holds no MANO_%s.pkl / .npz'
                                % (path, wanted))
    data = _read_raw_fields(path)
    v_template = _field(path, data, 'v_template')
    regressor = _field(path, data, 'J_regressor')
    kintree = _field(path, data, 'kintree_table', dtype=np.int64)
    parents = kintree[0].copy()
    parents[0] = -1
    if tuple(parents.tolist()) != constants.MANO_KINEMATIC_PARENTS:
        raise ManoFileError("MANO model file %s: field %r has parents %s, expected MANO's %s"
                            % (path, 'kintree_table', parents.tolist(),
                               list(constants.MANO_KINEMATIC_PARENTS)))
    kintree[0] = parents
    faces = _field(path, data, 'f', dtype=np.int64)
    if faces.min() < 0 or faces.max() >= constants.NUM_MANO_VERTICES:
        raise ManoFileError('MANO model file %s: field %r has vertex ids out of range'
                            % (path, 'f'))
    coeffs = data.get('hands_coeffs')
    coeffs = None if coeffs is None else np.asarray(_to_array(coeffs), dtype=np.float64)
    return ManoAssets(
        v_template=v_template,
        shapedirs=_field(path, data, 'shapedirs'),
        posedirs=_field(path, data, 'posedirs'),
        J_regressor=regressor,
        weights=_field(path, data, 'weights'),
        kintree_table=kintree,
        faces=faces,
        hands_components=_field(path, data, 'hands_components'),
        hands_mean=_field(path, data, 'hands_mean'),
        hands_coeffs=coeffs,
        side=_side_from(path, v_template, regressor, side),
        source=path,
        is_standin=False,
        bs_type=str(data.get('bs_type', 'lrotmin')),
        bs_style=str(data.get('bs_style', 'lbs')),
    )


def _asset_fields(assets):
    """Return the MANO file fields of assets (plain numpy, MANO's names)."""
    kintree = assets.kintree_table.astype(np.int64).copy()
    kintree[0, 0] = 4294967295  # MANO stores the root's parent as uint32 -1.
    return {
        'v_template': assets.v_template,
        'shapedirs': assets.shapedirs,
        'posedirs': assets.posedirs,
        'J_regressor': scipy.sparse.csc_matrix(assets.J_regressor),
        'J': assets.J_regressor @ assets.v_template,
        'weights': assets.weights,
        'kintree_table': kintree,
        'f': assets.faces.astype(np.uint32),
        'hands_components': assets.hands_components,
        'hands_mean': assets.hands_mean,
        'hands_coeffs': assets.hands_coeffs,
        'bs_type': assets.bs_type,
        'bs_style': assets.bs_style,
    }


def write_standin_pickle(path, side='right'):
    """
    Write the stand-in hand in the layout of the real MANO pickle (protocol 2).

    Plain numpy arrays, ``J_regressor`` as a ``scipy.sparse.csc_matrix``, no chumpy: third-party
    loaders such as ``smplx.MANO`` read it (name the file ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``
    for them).

    :param path: output file.
    :param side: 'right' or 'left'.
    """
    with open(path, 'wb') as stream:
        pickle.dump(_asset_fields(standin_assets(side)), stream, protocol=2)


def write_assets_npz(path, assets):
    """
    Write assets as an ``.npz`` with MANO's field names (dense J_regressor), no pickles.

    :param path: output file.
    :param assets: :class:`ManoAssets`.
    """
    fields = _asset_fields(assets)
    fields['J_regressor'] = assets.J_regressor
    if fields['hands_coeffs'] is None:
        del fields['hands_coeffs']
    np.savez(path, **fields)


# --------------------------------------------------------------------------------------------
# The generated stand-in hand.

# Per finger (index, middle, ring, pinky): base joint (a, b) in metres, splay angle (rad),
# segment lengths (proximal, middle, distal up to the tip) and half width / thickness at the
# base and the tip. Design frame: a wrist->fingers, b towards the thumb, c back of the hand.
_FINGERS = (
    {'base': (0.081, 0.028), 'splay': 0.10, 'lengths': (0.041, 0.024, 0.023),
     'radii': ((0.0092, 0.0084), (0.0074, 0.0064))},
    {'base': (0.085, 0.004), 'splay': 0.0, 'lengths': (0.046, 0.029, 0.025),
     'radii': ((0.0095, 0.0088), (0.0077, 0.0067))},
    {'base': (0.080, -0.0165), 'splay': -0.08, 'lengths': (0.041, 0.026, 0.023),
     'radii': ((0.0090, 0.0082), (0.0072, 0.0063))},
    {'base': (0.071, -0.035), 'splay': -0.18, 'lengths': (0.032, 0.019, 0.021),
     'radii': ((0.0078, 0.0072), (0.0063, 0.0056))},
)
# Thumb: segment lengths (CMC-MCP, MCP-IP, IP-tip), directions of the segments, radii.
_THUMB = {'lengths': (0.040, 0.032, 0.028),
          'directions': ((0.60, 0.70, -0.40), (0.75, 0.58, -0.32), (0.87, 0.44, -0.24)),
          'radii': ((0.0125, 0.0110), (0.0092, 0.0080))}
# Palm cross sections: a position, half width, half thickness, centre b; the last (knuckle)
# row takes its a from the finger bases.
_PALM_ROWS = ((0.0, 0.030, 0.0165, 0.002), (0.010, 0.034, 0.0160, 0.004),
              (0.042, 0.041, 0.0150, 0.000), (0.056, 0.042, 0.0143, -0.001),
              (0.066, 0.043, 0.0138, -0.002), (0.074, 0.043, 0.0133, -0.002))
_WRIST_ROW = (-0.014, 0.029, 0.0168, 0.002)
# Finger split of the knuckle row: b of the borders (radial edge, 3 gaps, ulnar edge).
_KNUCKLE_BORDERS = (0.042, 0.0155, -0.0065, -0.0262, -0.043)
_COLUMNS_PER_FINGER = 3
_FINGER_RING_SIZES = (12,) * 8 + (8,)
_THUMB_RING_SIZES = (16,) * 8 + (10, 7)
_WRIST_RING_SIZE = 16
# Joints of each finger in MANO's order (index, middle, pinky, ring, thumb in the file).
_FINGER_JOINTS = ((1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))
_THUMB_JOINTS = (13, 14, 15)


def _palm_section(half_width, half_thickness, b_offset, columns):
    """Return the (b, c) of one palm ring: dorsal row, ulnar side, palmar row, radial side."""
    edge = 0.86
    b_dorsal = np.linspace(edge, -edge, columns)
    height = (1.0 - np.abs(b_dorsal) ** 3) ** (1.0 / 3.0)
    dorsal = np.stack((b_dorsal * half_width + b_offset, height * half_thickness), -1)
    # Palmar row in ring order Q12 .. Q0 (ulnar to radial), below the dorsal columns.
    palmar = np.stack((b_dorsal[::-1] * half_width + b_offset,
                       -height[::-1] * half_thickness), -1)
    ulnar = np.array([[-half_width + b_offset, 0.0]])
    radial = np.array([[half_width + b_offset, 0.0]])
    return np.concatenate((dorsal, ulnar, palmar, radial))


class _MeshBuilder:
    """Accumulates vertices, triangles and named vertex groups of the stand-in."""

    def __init__(self):
        self.points = []
        self.triangles = []

    def add(self, points):
        start = len(self.points)
        self.points.extend(np.asarray(points, dtype=np.float64).reshape(-1, 3))
        return list(range(start, len(self.points)))

    def stitch(self, lower, upper, centre, e_b, e_c):
        """Triangulate between two loops ordered counter-clockwise about e_b x e_c."""
        points = np.asarray(self.points)

        def angles(loop):
            rel = points[loop] - centre
            return np.arctan2(rel @ e_c, rel @ e_b) % (2.0 * np.pi)

        def rotated(loop):
            loop_angles = angles(loop)
            start = int(np.argmin(loop_angles))
            loop = loop[start:] + loop[:start]
            unwrapped = np.unwrap(np.concatenate((loop_angles[start:], loop_angles[:start])))
            return loop + [loop[0]], np.append(unwrapped, unwrapped[0] + 2.0 * np.pi)

        lower, lower_angles = rotated(list(lower))
        upper, upper_angles = rotated(list(upper))
        i = j = 0
        while i < len(lower) - 1 or j < len(upper) - 1:
            advance_lower = j == len(upper) - 1 or (
                i < len(lower) - 1 and lower_angles[i + 1] <= upper_angles[j + 1])
            if advance_lower:
                self.triangles.append((lower[i], lower[i + 1], upper[j]))
                i += 1
            else:
                self.triangles.append((lower[i], upper[j + 1], upper[j]))
                j += 1

    def cap(self, loop, apex):
        for k in range(len(loop)):
            self.triangles.append((loop[k], loop[(k + 1) % len(loop)], apex))


def _frame(tangent):
    """Return unit (e_b, e_c) across a tangent in the design frame, e_b x e_c = tangent."""
    tangent = tangent / np.linalg.norm(tangent)
    e_b = np.cross([0.0, 0.0, 1.0], tangent)
    e_b /= np.linalg.norm(e_b)
    return e_b, np.cross(tangent, e_b)


def _ring_points(centre, tangent, half_width, half_thickness, count):
    e_b, e_c = _frame(tangent)
    phase = np.pi / count
    angle = 2.0 * np.pi * np.arange(count) / count + phase
    return (centre + np.outer(half_width * np.cos(angle), e_b)
            + np.outer(half_thickness * np.sin(angle), e_c))


def _digit_rings(builder, base_loop, base_centre, joints_along, directions, radii, ring_sizes,
                 ring_stations):
    """
    Build a digit: rings along a polyline, stitched to base_loop, closed by a tip apex.

    :return: (ring vertex lists, apex id, polyline points).
    """
    knots = [base_centre]
    for length, direction in zip(joints_along, directions):
        direction = np.asarray(direction) / np.linalg.norm(direction)
        knots.append(knots[-1] + length * direction)
    knots = np.asarray(knots)
    cumulative = np.concatenate(([0.0], np.cumsum(joints_along)))
    total = cumulative[-1]
    tip_radius = radii[1][1]

    def along(s):
        segment = min(int(np.searchsorted(cumulative, s, side='right')) - 1, 2)
        fraction = (s - cumulative[segment]) / joints_along[segment]
        point = knots[segment] + fraction * (knots[segment + 1] - knots[segment])
        return point, knots[segment + 1] - knots[segment]

    rings = []
    previous = list(base_loop)
    previous_centre = base_centre
    for count, (s, scale) in zip(ring_sizes, ring_stations(cumulative, tip_radius)):
        blend = s / total
        half_width = ((1 - blend) * radii[0][0] + blend * radii[1][0]) * scale
        half_thickness = ((1 - blend) * radii[0][1] + blend * radii[1][1]) * scale
        centre, tangent = along(s)
        ring = builder.add(_ring_points(centre, tangent, half_width, half_thickness, count))
        e_b, e_c = _frame(tangent)
        builder.stitch(previous, ring, 0.5 * (centre + previous_centre), e_b, e_c)
        rings.append(ring)
        previous, previous_centre = ring, centre
    tip, _ = along(total)
    apex = builder.add(tip[None])[0]
    builder.cap(previous, apex)
    return rings, apex, knots


def _finger_stations(cumulative, tip_radius):
    proximal, middle, distal = np.diff(cumulative)
    dip = cumulative[2]
    cap_centre = cumulative[3] - tip_radius
    return ((proximal / 3, 1.0), (2 * proximal / 3, 1.0), (cumulative[1], 1.0),
            (cumulative[1] + middle / 2, 1.0), (dip, 1.0),
            (dip + 0.45 * (cap_centre - dip), 1.0), (cap_centre, 1.0),
            (cap_centre + tip_radius * np.sin(0.9), np.cos(0.9)),
            (cap_centre + tip_radius * np.sin(1.3), np.cos(1.3)))


def _thumb_stations(cumulative, tip_radius):
    stations = list(_finger_stations(cumulative, tip_radius))
    first = cumulative[1]
    return [(0.25 * first, 1.0), (0.5 * first, 1.0), (0.75 * first, 1.0)] + stations[2:]


def _vertex_normals(points, faces):
    normals = np.zeros_like(points)
    face_normals = np.cross(points[faces[:, 1]] - points[faces[:, 0]],
                            points[faces[:, 2]] - points[faces[:, 0]])
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _polyline_coordinates(points, knots):
    """Return (arc-length coordinate, distance, nearest point) of points on a polyline."""
    best_distance = np.full(len(points), np.inf)
    best_s = np.zeros(len(points))
    best_point = np.zeros_like(points)
    start_s = 0.0
    for first, second in zip(knots[:-1], knots[1:]):
        segment = second - first
        length = np.linalg.norm(segment)
        fraction = np.clip((points - first) @ segment / length ** 2, 0.0, 1.0)
        nearest = first + fraction[:, None] * segment
        distance = np.linalg.norm(points - nearest, axis=1)
        better = distance < best_distance
        best_distance[better] = distance[better]
        best_s[better] = start_s + fraction[better] * length
        best_point[better] = nearest[better]
        start_s += length
    return best_s, best_distance, best_point


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _build_standin_right():
    """Generate the right-hand stand-in in the design frame, then map it to MANO's frame."""
    builder = _MeshBuilder()
    count_per_side = len(_FINGERS) * _COLUMNS_PER_FINGER + 1
    ring_size = 2 * count_per_side + 2

    # Palm rings: dorsal columns D0 (radial) .. D12 (ulnar), ulnar side, palmar columns
    # Q12 .. Q0, radial side: counter-clockwise about +a.
    def palm_ring(a, half_width, half_thickness, b_offset):
        section = _palm_section(half_width, half_thickness, b_offset, count_per_side)
        return np.column_stack((np.full(len(section), a), section))

    wrist_bc = _ring_points(np.zeros(3), np.array([1.0, 0.0, 0.0]), _WRIST_ROW[1],
                            _WRIST_ROW[2], _WRIST_RING_SIZE)
    wrist = builder.add(wrist_bc + np.array([_WRIST_ROW[0], _WRIST_ROW[3], 0.0]))
    rings = [wrist]
    for a, half_width, half_thickness, b_offset in _PALM_ROWS:
        rings.append(builder.add(palm_ring(a, half_width, half_thickness, b_offset)))
    # Knuckle row: columns placed on the finger borders, a from the finger bases.
    borders = np.asarray(_KNUCKLE_BORDERS)
    column_b = np.concatenate([np.linspace(borders[i], borders[i + 1], _COLUMNS_PER_FINGER + 1)
                               [:-1] for i in range(len(_FINGERS))] + [borders[-1:]])
    base_a = np.array([finger['base'][0] for finger in _FINGERS])
    base_b = np.array([finger['base'][1] for finger in _FINGERS])
    column_a = np.interp(-column_b, -base_b, base_a)
    half_thickness = 0.0125
    scaled = np.clip((column_b - 0.5 * (borders[0] + borders[-1]))
                     / (0.5 * (borders[0] - borders[-1])) * 0.95, -0.95, 0.95)
    height = (1.0 - np.abs(scaled) ** 3) ** (1.0 / 3.0) * half_thickness
    knuckle = np.concatenate((
        np.column_stack((column_a, column_b, height)),
        [[column_a[-1] - 0.004, borders[-1] - 0.003, 0.0]],
        np.column_stack((column_a, column_b, -height))[::-1],
        [[column_a[0] - 0.004, borders[0] + 0.003, 0.0]]))
    rings.append(builder.add(knuckle))
    axis_b, axis_c = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    for lower, upper in zip(rings[:-1], rings[1:]):
        centre = 0.5 * (np.mean(np.asarray(builder.points)[lower], 0)
                        + np.mean(np.asarray(builder.points)[upper], 0))
        if len(lower) != len(upper):
            builder.stitch(lower, upper, centre, axis_b, axis_c)
            continue
        # Equal rings: quads, except the thumb opening (a 1 x 4 block on the radial side).
        for k in range(ring_size):
            if upper is rings[3] and k in (ring_size - 3, ring_size - 2, ring_size - 1, 0):
                continue
            k1 = (k + 1) % ring_size
            builder.triangles.append((lower[k], lower[k1], upper[k1]))
            builder.triangles.append((lower[k], upper[k1], upper[k]))
    hole_lower, hole_upper = rings[2], rings[3]
    hole = ([hole_lower[k] for k in (ring_size - 3, ring_size - 2, ring_size - 1, 0, 1)]
            + [hole_upper[k] for k in (1, 0, ring_size - 1, ring_size - 2, ring_size - 3)])

    # Fingers on the knuckle row.
    dorsal = rings[-1][:count_per_side]
    ulnar_side = rings[-1][count_per_side]
    palmar = rings[-1][count_per_side + 1:2 * count_per_side + 1][::-1]  # palmar[k] below D_k
    radial_side = rings[-1][-1]
    regressor_rows = {}
    digit_parts = []
    for finger_index, finger in enumerate(_FINGERS):
        first = finger_index * _COLUMNS_PER_FINGER
        columns = range(first, first + _COLUMNS_PER_FINGER + 1)
        base_loop = [dorsal[k] for k in columns]
        if finger_index == len(_FINGERS) - 1:
            base_loop.append(ulnar_side)
        base_loop += [palmar[k] for k in reversed(columns)]
        if finger_index == 0:
            base_loop.append(radial_side)
        points = np.asarray(builder.points)
        base_centre = points[base_loop].mean(0)
        direction = np.array([np.cos(finger['splay']), np.sin(finger['splay']), 0.0])
        finger_rings, apex, _ = _digit_rings(
            builder, base_loop, base_centre, finger['lengths'], [direction] * 3,
            finger['radii'], _FINGER_RING_SIZES, _finger_stations)
        joints = _FINGER_JOINTS[finger_index]
        regressor_rows[joints[0]] = base_loop
        regressor_rows[joints[1]] = finger_rings[2]
        regressor_rows[joints[2]] = finger_rings[4]
        digit_parts.append((joints, base_loop, finger_rings, apex))
    points = np.asarray(builder.points)
    thumb_base = points[hole].mean(0)
    thumb_rings, thumb_apex, _ = _digit_rings(
        builder, hole, thumb_base, _THUMB['lengths'], _THUMB['directions'], _THUMB['radii'],
        _THUMB_RING_SIZES, _thumb_stations)
    regressor_rows[_THUMB_JOINTS[0]] = hole
    regressor_rows[_THUMB_JOINTS[1]] = thumb_rings[3]
    regressor_rows[_THUMB_JOINTS[2]] = thumb_rings[5]
    regressor_rows[0] = rings[1]
    digit_parts.append((_THUMB_JOINTS, hole, thumb_rings, thumb_apex))

    design_points = np.asarray(builder.points)
    faces = np.asarray(builder.triangles, dtype=np.int64)
    num_vertices = len(design_points)
    if num_vertices != constants.NUM_MANO_VERTICES or len(faces) != constants.NUM_MANO_FACES:
        raise AssertionError('stand-in has %d vertices, %d faces'
                             % (num_vertices, len(faces)))

    # Put the fingertip apexes at MANO's fingertip vertex ids; the rest keep their order.
    apexes = [digit_parts[4][3]] + [part[3] for part in digit_parts[:4]]
    order = [v for v in range(num_vertices) if v not in apexes]
    for target, apex in sorted(zip(constants.FINGERTIP_VERTEX_IDS, apexes)):
        order.insert(target, apex)
    new_id = np.empty(num_vertices, dtype=np.int64)
    new_id[np.asarray(order)] = np.arange(num_vertices)
    design_points = design_points[order]
    faces = new_id[faces]

    regressor = np.zeros((constants.NUM_MANO_KINEMATIC_JOINTS, num_vertices))
    for joint, members in regressor_rows.items():
        regressor[joint, new_id[np.asarray(members)]] = 1.0 / len(members)
    design_joints = regressor @ design_points

    weights, membership, coordinates = _standin_weights(design_points, design_joints,
                                                        new_id, digit_parts)
    normals = _vertex_normals(design_points, faces)
    shapedirs = _standin_shapedirs(design_points, design_joints, membership, coordinates)
    posedirs = _standin_posedirs(weights, normals @ _DESIGN_TO_MANO.T)

    v_template = design_points @ _DESIGN_TO_MANO.T
    offset = _WRIST_POSITION - regressor[0] @ v_template
    v_template = v_template + offset
    shapedirs = np.einsum('ij,vjk->vik', _DESIGN_TO_MANO, shapedirs)
    components, mean, coeffs = _standin_pose_space()
    kintree = np.stack((np.asarray(constants.MANO_KINEMATIC_PARENTS, dtype=np.int64),
                        np.arange(constants.NUM_MANO_KINEMATIC_JOINTS, dtype=np.int64)))
    return ManoAssets(v_template=v_template, shapedirs=shapedirs, posedirs=posedirs,
                      J_regressor=regressor, weights=weights, kintree_table=kintree,
                      faces=faces, hands_components=components, hands_mean=mean,
                      hands_coeffs=coeffs, side='right', source='standin', is_standin=True)


def _digit_polylines(design_joints, digit_parts, points):
    """Return per digit (knots wrist..tip, joint ids of the bones wrist, j1, j2, j3)."""
    polylines = []
    for joints, _, _, apex in digit_parts:
        knots = np.stack([design_joints[0]] + [design_joints[j] for j in joints]
                         + [points[apex]])
        polylines.append((knots, (0,) + tuple(joints)))
    return polylines


def _standin_weights(points, design_joints, new_id, digit_parts):
    """Smooth skinning weights from each vertex's position along its digit's bones."""
    renamed = [(joints, [int(new_id[v]) for v in base], [[int(new_id[v]) for v in ring]
                                                         for ring in rings], int(new_id[apex]))
               for joints, base, rings, apex in digit_parts]
    polylines = _digit_polylines(design_joints, renamed, points)
    num_vertices = len(points)
    digit_of = np.full(num_vertices, -1)
    for digit, (_, _, rings, apex) in enumerate(renamed):
        for ring in rings:
            digit_of[ring] = digit
        digit_of[apex] = digit
    coordinates = []
    distances = []
    for knots, _ in polylines:
        s, distance, nearest = _polyline_coordinates(points, knots)
        coordinates.append((s, nearest, knots))
        distances.append(distance)
    distances = np.stack(distances, 1)
    # Palm vertices belong softly to the digits whose bones are nearest.
    membership = np.exp(-0.5 * ((distances - distances.min(1, keepdims=True)) / 0.006) ** 2)
    membership[digit_of >= 0] = 0.0
    membership[digit_of >= 0, digit_of[digit_of >= 0]] = 1.0
    membership /= membership.sum(1, keepdims=True)
    weights = np.zeros((num_vertices, constants.NUM_MANO_KINEMATIC_JOINTS))
    blend = 0.004
    for digit, (knots, bone_joints) in enumerate(polylines):
        s = coordinates[digit][0]
        knot_s = np.concatenate(([0.0], np.cumsum(np.linalg.norm(np.diff(knots, axis=0),
                                                                 axis=1))))
        # Bone k (joint bone_joints[k]) spans knot k .. k + 1; the last bone runs to the tip.
        starts = [-np.inf] + list(knot_s[1:4])
        ends = list(knot_s[1:4]) + [np.inf]
        for k, joint in enumerate(bone_joints):
            rise = np.ones_like(s) if k == 0 else _sigmoid((s - starts[k]) / blend)
            fall = np.zeros_like(s) if k == 3 else _sigmoid((s - ends[k]) / blend)
            weights[:, joint] += membership[:, digit] * (rise - fall)
    weights[weights < 1e-3] = 0.0
    weights /= weights.sum(1, keepdims=True)
    return weights, membership, coordinates


def _standin_shapedirs(points, design_joints, membership, coordinates):
    """Ten smooth shape directions (design frame, metres per unit beta)."""
    wrist = design_joints[0]
    num_vertices = len(points)
    directions = np.zeros((num_vertices, 3, constants.NUM_MANO_SHAPE_PARAMS))
    digit_base = [knots[1] for _, _, knots in coordinates]
    finger_length = np.zeros((num_vertices, 3))
    thumb_length = np.zeros((num_vertices, 3))
    radial_swell = np.zeros((num_vertices, 3))
    splay = np.zeros((num_vertices, 3))
    asymmetry = np.zeros((num_vertices, 3))
    distal_swell = np.zeros((num_vertices, 3))
    base_b = np.zeros(num_vertices)
    for digit, (s, nearest, knots) in enumerate(coordinates):
        share = membership[:, digit:digit + 1]
        base_s = np.linalg.norm(knots[1] - knots[0])
        past_base = np.clip(s - base_s, 0.0, None)[:, None]
        along = (nearest - digit_base[digit]) * (past_base > 0)
        if digit == len(coordinates) - 1:
            thumb_length += share * along
        else:
            finger_length += share * along
            asymmetry += share * along * (1.5 - digit)
            spread = np.cross([0.0, 0.0, 1.0], points - digit_base[digit]) * (past_base > 0)
            splay += share * spread * (digit_base[digit][1] - 0.004) * 20.0
        radial_swell += share * (points - nearest)
        distal = np.clip((s - np.linalg.norm(knots[3] - knots[0])) / 0.02, 0.0, 1.0)[:, None]
        distal_swell += share * (points - nearest) * distal
        base_b += share[:, 0] * digit_base[digit][1]
    relative = points - wrist
    palm_fraction = np.clip(relative[:, 0] / 0.085, 0.0, 1.0)
    directions[:, :, 0] = 0.03 * relative  # overall size
    directions[:, :, 1] = 0.05 * finger_length
    palm_width = np.zeros((num_vertices, 3))
    palm_width[:, 1] = np.where(membership.max(1) > 0.999, base_b, relative[:, 1])
    directions[:, :, 2] = 0.04 * palm_width
    directions[:, :, 3] = 0.06 * radial_swell
    palm_length = np.zeros((num_vertices, 3))
    palm_length[:, 0] = 0.085 * palm_fraction
    directions[:, :, 4] = 0.04 * palm_length
    directions[:, :, 5] = 0.06 * thumb_length
    directions[:, :, 6] = 0.03 * asymmetry
    directions[:, :, 7] = 0.05 * splay
    wrist_width = np.zeros((num_vertices, 3))
    wrist_width[:, 1] = relative[:, 1] * np.clip(1.0 - relative[:, 0] / 0.04, 0.0, 1.0)
    wrist_width[:, 2] = relative[:, 2] * np.clip(1.0 - relative[:, 0] / 0.04, 0.0, 1.0)
    directions[:, :, 8] = 0.08 * wrist_width
    directions[:, :, 9] = 0.15 * distal_swell
    return directions


def _standin_posedirs(weights, normals):
    """Small pose correctives (MANO frame): a bulge along the normal where two bones meet."""
    rng = np.random.default_rng(20240521)
    parents = constants.MANO_KINEMATIC_PARENTS
    posedirs = np.zeros((len(weights), 3, constants.NUM_POSE_BLENDSHAPES))
    for joint in range(1, constants.NUM_MANO_KINEMATIC_JOINTS):
        crease = 4.0 * weights[:, joint] * weights[:, parents[joint]]
        block = slice(9 * (joint - 1), 9 * joint)
        # -(R - I) diagonal sums to 2 (1 - cos angle) >= 0: a bulge growing with the angle.
        for diagonal in (0, 4, 8):
            posedirs[:, :, block.start + diagonal] -= 0.0015 * crease[:, None] * normals
        posedirs[:, :, block] += 0.0005 * crease[:, None, None] * rng.standard_normal((1, 3, 9))
    return posedirs


def _standin_pose_space():
    """Orthonormal PCA-like basis (rows), a relaxed mean pose and sample coefficients."""
    to_mano = _DESIGN_TO_MANO
    flexion_axis = to_mano @ np.array([0.0, 1.0, 0.0])  # +z in MANO: curl to the palm
    spread_axis = to_mano @ np.array([0.0, 0.0, 1.0])
    thumb_direction = np.asarray(_THUMB['directions'][0])
    thumb_axis = to_mano @ np.cross(thumb_direction / np.linalg.norm(thumb_direction),
                                    [0.0, 0.0, -1.0])
    thumb_axis /= np.linalg.norm(thumb_axis)
    curl = np.zeros((15, 3))
    spread = np.zeros((15, 3))
    for finger_index, joints in enumerate(_FINGER_JOINTS):
        for level, joint in enumerate(joints):
            curl[joint - 1] = flexion_axis * (1.0, 1.2, 0.8)[level]
        spread[joints[0] - 1] = spread_axis * (1.5 - finger_index)
    for level, joint in enumerate(_THUMB_JOINTS):
        curl[joint - 1] = thumb_axis * (0.6, 0.9, 1.0)[level]
    rng = np.random.default_rng(7)
    designed = np.stack((curl.ravel(), spread.ravel()), 1)
    basis, upper = np.linalg.qr(np.concatenate((designed, rng.standard_normal((45, 43))), 1))
    basis = basis * np.sign(np.diag(upper))
    components = basis.T.copy()
    mean = 0.12 * curl.ravel() + 0.02 * rng.standard_normal(45)
    scales = 0.9 * np.exp(-0.12 * np.arange(45))
    coeffs = rng.standard_normal((128, 45)) * scales
    return components, mean, coeffs


def mirror_assets(assets):
    """
    Return the mirror image (x -> -x) of assets: MANO's relation between right and left.

    Faces are re-wound, blend shapes mirrored, and the pose space mirrored so that the mirrored
    axis-angle pose (x, -y, -z) of a joint gives the mirrored mesh.

    :param assets: :class:`ManoAssets`.
    :return: :class:`ManoAssets` of the other side.
    """
    mirror_pose = np.tile([1.0, -1.0, -1.0], 15)
    posedirs = assets.posedirs.reshape(-1, 3, 15, 3, 3)
    # (M (R - I) M)_{ab} = m_a m_b (R - I)_{ab}; the output row c is mirrored by m_c.
    posedirs = (posedirs * _MIRROR[None, :, None, None, None] * _MIRROR[None, None, None, :,
                                                                        None]
                * _MIRROR[None, None, None, None, :]).reshape(assets.posedirs.shape)
    coeffs = assets.hands_coeffs
    return ManoAssets(
        v_template=assets.v_template * _MIRROR,
        shapedirs=assets.shapedirs * _MIRROR[None, :, None],
        posedirs=posedirs,
        J_regressor=assets.J_regressor.copy(),
        weights=assets.weights.copy(),
        kintree_table=assets.kintree_table.copy(),
        faces=assets.faces[:, ::-1].copy(),
        hands_components=assets.hands_components * mirror_pose,
        hands_mean=assets.hands_mean * mirror_pose,
        hands_coeffs=None if coeffs is None else coeffs.copy(),
        side='left' if assets.side == 'right' else 'right',
        source=assets.source, is_standin=assets.is_standin,
        bs_type=assets.bs_type, bs_style=assets.bs_style)


@functools.lru_cache(maxsize=2)
def _cached_standin(side):
    right = _build_standin_right()
    return right if side == 'right' else mirror_assets(right)


def standin_assets(side='right'):
    """
    Return the generated stand-in hand (deterministic; built once per process and side).

    :param side: 'right' or 'left' (the mirror image of the right hand).
    :return: :class:`ManoAssets` with ``is_standin`` True (arrays are shared: do not modify).
    """
    return _cached_standin(_check_side(side))


# --------------------------------------------------------------------------------------------
# The layer.


class ManoLayer(nn.Module):
    """
    Differentiable MANO (linear blend skinning with shape and pose blend shapes), metres.

    Vectorised over the batch; the kinematic chain is evaluated level by level (MANO's fingers
    are three joints deep), all blend shapes in one matrix product. Moves with ``.to()`` and
    ``.double()``.
    """

    def __init__(self, assets, use_pca=False, num_pca_comps=45, flat_hand_mean=False,
                 dtype=torch.float32):
        """
        Build the layer from assets.

        :param assets: :class:`ManoAssets`.
        :param use_pca: when True ``hand_pose`` holds ``num_pca_comps`` PCA coefficients.
        :param num_pca_comps: number of PCA components used (1..45).
        :param flat_hand_mean: False (MANO's default) adds ``hands_mean`` to the finger pose,
            True uses the finger pose as given (zero pose = flat hand).
        :param dtype: floating dtype of the buffers.
        """
        super().__init__()
        if not 1 <= num_pca_comps <= constants.NUM_MANO_POSE_PARAMS:
            raise ValueError('num_pca_comps must be in 1..45, not %r' % num_pca_comps)
        self.side = assets.side
        self.is_standin = bool(assets.is_standin)
        self.source = assets.source
        self.use_pca = bool(use_pca)
        self.num_pca_comps = int(num_pca_comps)
        self.flat_hand_mean = bool(flat_hand_mean)

        def tensor(array):
            return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype)

        num_vertices = constants.NUM_MANO_VERTICES
        shape_dirs = assets.shapedirs.reshape(num_vertices * 3, -1)
        pose_dirs = assets.posedirs.reshape(num_vertices * 3, -1)
        regressor = assets.J_regressor
        joint_shape_dirs = np.einsum('jv,vkl->ljk', regressor, assets.shapedirs)
        self.register_buffer('v_template', tensor(assets.v_template))
        self.register_buffer('faces', torch.as_tensor(
            np.ascontiguousarray(assets.faces), dtype=torch.int64))
        self.register_buffer('weights', tensor(assets.weights))
        self.register_buffer('hands_components', tensor(assets.hands_components))
        self.register_buffer('hands_mean', tensor(assets.hands_mean))
        # (778 * 3, 10 + 135): shape and pose blend shapes, applied by one product.
        self.register_buffer('_blend_dirs', tensor(np.concatenate((shape_dirs, pose_dirs), 1)))
        self.register_buffer('_template_column', tensor(assets.v_template.reshape(-1, 1)))
        self.register_buffer('_joint_template', tensor(regressor @ assets.v_template))
        self.register_buffer('_joint_shape_dirs', tensor(joint_shape_dirs.reshape(
            constants.NUM_MANO_SHAPE_PARAMS, -1)))
        self.register_buffer('_fingertips', torch.as_tensor(constants.FINGERTIP_VERTEX_IDS))
        self.register_buffer('_output_order',
                             torch.as_tensor(constants.MANO_TO_OUTPUT_JOINT_ORDER))

    @classmethod
    def from_file(cls, path, use_pca=False, num_pca_comps=45, flat_hand_mean=False, side=None,
                  dtype=torch.float32):
        """
        Build the layer from a real MANO file (see :func:`load_mano_assets`).

        :param path: ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` / ``.npz``, or their folder.
        :param side: override of the side (also picks the file in a folder).
        :return: :class:`ManoLayer` with ``is_standin`` False.
        :raises ManoFileError: see :func:`load_mano_assets`.
        """
        return cls(load_mano_assets(path, side=side), use_pca=use_pca,
                   num_pca_comps=num_pca_comps, flat_hand_mean=flat_hand_mean, dtype=dtype)

    @classmethod
    def standin(cls, side='right', use_pca=False, num_pca_comps=45, flat_hand_mean=False,
                dtype=torch.float32):
        """
        Build the layer on the generated stand-in hand (not MANO; same fields and sizes).

        :param side: 'right' or 'left'.
        :return: :class:`ManoLayer` with ``is_standin`` True.
        """
        return cls(standin_assets(side), use_pca=use_pca, num_pca_comps=num_pca_comps,
                   flat_hand_mean=flat_hand_mean, dtype=dtype)

    def pca_to_axis_angle(self, coeffs, add_mean=True):
        """
        Convert PCA coefficients of the finger pose to axis-angle.

        :param coeffs: (B, n) with n <= 45 coefficients (the first n components).
        :param add_mean: add ``hands_mean``: the result is the absolute finger pose, as a
            ``flat_hand_mean=True`` layer takes it. False gives the pose relative to the mean,
            as a ``flat_hand_mean=False`` layer takes it.
        :return: (B, 45) axis-angle, 15 joints x 3, radians.
        """
        pose = coeffs @ self.hands_components[:coeffs.shape[-1]]
        return pose + self.hands_mean if add_mean else pose

    def forward(self, global_orient, hand_pose, betas=None, transl=None):
        """
        Pose and shape the hand.

        :param global_orient: (B, 3) axis-angle of the wrist, radians.
        :param hand_pose: (B, 45) axis-angle of the 15 finger joints (MANO order), or
            (B, num_pca_comps) PCA coefficients when ``use_pca``.
        :param betas: (B, 10) shape, or None for the mean shape.
        :param transl: (B, 3) metres added to every output point, or None.
        :return: :class:`ManoOutput`: vertices (B, 778, 3) and joints (B, 21, 3), metres, in
            the frame of ``global_orient`` / ``transl``; joints in ``constants.HAND_JOINT_NAMES``
            order (16 kinematic joints and the 5 fingertip vertices).
        """
        batch = global_orient.shape[0]
        expected = self.num_pca_comps if self.use_pca else constants.NUM_MANO_POSE_PARAMS
        if hand_pose.shape != (batch, expected):
            raise ValueError('hand_pose must have shape (%d, %d), not %s'
                             % (batch, expected, tuple(hand_pose.shape)))
        if self.use_pca:
            hand_pose = hand_pose @ self.hands_components[:self.num_pca_comps]
        if not self.flat_hand_mean:
            hand_pose = hand_pose + self.hands_mean
        if betas is None:
            betas = global_orient.new_zeros((batch, constants.NUM_MANO_SHAPE_PARAMS))
        pose = torch.cat((global_orient, hand_pose), dim=1).view(batch, 16, 3)
        rotations = geometry.axis_angle_to_matrix(pose)  # (B, 16, 3, 3)

        eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
        pose_feature = (rotations[:, 1:] - eye).reshape(batch, constants.NUM_POSE_BLENDSHAPES)
        features = torch.cat((betas, pose_feature), dim=1)
        # Vertex-major layout (778, 3, B) keeps the batch innermost for the skinning below.
        vertices_posed = torch.addmm(self._template_column, self._blend_dirs, features.t()).view(
            constants.NUM_MANO_VERTICES, 3, batch)
        joints_rest = torch.addmm(self._joint_template.view(-1), betas,
                                  self._joint_shape_dirs).view(batch, 16, 3)

        # Kinematic chain by levels: joints 1..15 are 5 fingers x 3 levels (MANO's tree).
        root_rotation = rotations[:, 0]
        root_position = joints_rest[:, 0]
        finger_rotations = rotations[:, 1:].reshape(batch, 5, 3, 3, 3)
        finger_rest = joints_rest[:, 1:].reshape(batch, 5, 3, 3)
        offsets = torch.cat((finger_rest[:, :, :1] - root_position[:, None, None],
                             finger_rest[:, :, 1:] - finger_rest[:, :, :-1]), dim=2)
        parent_rotation = root_rotation[:, None].expand(batch, 5, 3, 3)
        parent_position = root_position[:, None].expand(batch, 5, 3)
        global_rotations = []
        global_positions = []
        for level in range(3):
            position = parent_position + (
                parent_rotation @ offsets[:, :, level, :, None]).squeeze(-1)
            parent_rotation = parent_rotation @ finger_rotations[:, :, level]
            parent_position = position
            global_rotations.append(parent_rotation)
            global_positions.append(position)
        rotation_all = torch.cat((root_rotation[:, None],
                                  torch.stack(global_rotations, 2).reshape(batch, 15, 3, 3)),
                                 dim=1)
        position_all = torch.cat((root_position[:, None],
                                  torch.stack(global_positions, 2).reshape(batch, 15, 3)),
                                 dim=1)
        # Skinning transforms map rest-pose points: x -> R x + (p - R j_rest).
        translation_all = position_all - (rotation_all @ joints_rest[..., None]).squeeze(-1)
        # Per joint the three columns of R, then t, batch innermost: (16, 4, 3, B).
        transforms = torch.cat((rotation_all.transpose(2, 3), translation_all[:, :, None]),
                               dim=2).permute(1, 2, 3, 0)
        # One 2-D product (778, 16) x (16, 12 B) blends the transforms of every vertex.
        blended = (self.weights @ transforms.reshape(16, -1)).view(
            constants.NUM_MANO_VERTICES, 4, 3, batch)
        # R v + t as three multiply-adds over contiguous (778, 3, B) blocks.
        vertices = torch.addcmul(blended[:, 3], blended[:, 0], vertices_posed[:, 0:1])
        vertices = vertices.addcmul_(blended[:, 1], vertices_posed[:, 1:2])
        vertices = vertices.addcmul_(blended[:, 2], vertices_posed[:, 2:3])
        if transl is not None:
            vertices = vertices.add_(transl.t()[None])
            position_all = position_all + transl[:, None]
        vertices = vertices.permute(2, 0, 1).contiguous()
        joints = torch.cat((position_all, vertices.index_select(1, self._fingertips)), dim=1)
        return ManoOutput(vertices=vertices, joints=joints.index_select(1, self._output_order))
