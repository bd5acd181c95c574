"""
ObMan (Hasson et al. 2019) in its released on-disk layout, as HandObjectSample.

Layout: ``<root>/<split>/{rgb/%08d.jpg, segm/%08d.png, depth/%08d.png, meta/%08d.pkl}`` (the root
may also be the folder holding ``obman/``); sample ids are the sorted meta file names, not
contiguous. ShapeNetCore.v2 meshes (optional) live at
``<shapenet_root>/<class_id>/<sample_id>/models/model_normalized.{pkl,obj}``.

Conventions handled here (see docs in ``dataset-formats.md``):

- 3-D annotations are in Blender's camera frame (OpenGL: y up, looking down -z), metres; the
  OpenCV camera frame is ``X * (1, -1, -1)``. Intrinsics are fixed (480 px, centre 128).
- The meta files are plain pickles: they are read with a restricted unpickler that resolves
  only numpy arrays / scalars / dtypes and builtin containers; anything else is refused.
- ``segm`` and ``depth`` PNGs were written by OpenCV from (full, hand, object) stacks, so
  ``cv2.imread`` channel 0 is the full render. Hand = pass index 22 or 24, object = 100.
- Depth: ``v = 254 (d - dmin) / (dmax - dmin) + 1``, 0 = no surface, and the stored names are
  swapped (``depth_min`` holds the maximum).
- ``pca_pose`` articulates with ``hands_components`` and no mean; ``hand_pose[3:]`` is that
  articulation (flat-hand convention), basis-free. The camera-frame global rotation is not
  stored: it is fitted rigidly from the MANO hand at zero rotation to the annotated joints
  (stand-in hand) or vertices (real MANO). Betas are not stored for MANO: zeros.
- The object pose is ``affine_transform`` (model_normalized -> world). Whether it contains the
  object scale is decided by its determinant (the scale goes into the object frame, so the
  rotation stays a rotation): the object frame is the normalised model times that scale.
"""

import logging
import os
import pickle

import cv2
import numpy as np
import torch

from hand_object_pose_ros import geometry
from hand_object_pose_ros.constants import DEFAULT_BBOX_SCALE
from hand_object_pose_ros.constants import DEFAULT_CROP_SIZE_PX
from hand_object_pose_ros.constants import NUM_HAND_JOINTS
from hand_object_pose_ros.constants import NUM_MANO_VERTICES
from hand_object_pose_ros.crop import crop_hand
from hand_object_pose_ros.crop import InvalidBoxError
from hand_object_pose_ros.crop import warp_image
from hand_object_pose_ros.data.common import DatasetError
from hand_object_pose_ros.data.common import hand_box
from hand_object_pose_ros.data.common import mano_forward
from hand_object_pose_ros.data.common import mano_layers
from hand_object_pose_ros.data.common import project
from hand_object_pose_ros.data.common import read_color_image
from hand_object_pose_ros.data.common import read_obj_mesh
from hand_object_pose_ros.data.common import SampleUnavailable
from hand_object_pose_ros.data.common import SkippingDataset
from hand_object_pose_ros.metrics import similarity_transform
from hand_object_pose_ros.types import HandObjectSample

LOGGER = logging.getLogger(__name__)

IMAGE_SIZE_PX = 256
# obman.py cam_intr: 60 mm lens on a 32 mm sensor over 256 px.
CAMERA_K = np.array([[480.0, 0.0, 128.0], [0.0, 480.0, 128.0], [0.0, 0.0, 1.0]])
# cam_extr[:3, :3]: Blender (OpenGL) camera frame to the OpenCV camera frame.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
OBJECT_SEG_VALUE = 100
RIGHT_HAND_SEG_VALUES = (22, 24)
# hassony2/obman assets/shapenet_select.csv: (synset, name). Object ids are
# SHAPENET_OBJECT_ID_BASE + 1 + position; other synsets get SHAPENET_OBJECT_ID_BASE.
SHAPENET_CATEGORIES = (
    ('03797390', 'mug'), ('02876657', 'bottle'), ('02880940', 'bowl'), ('02946921', 'can'),
    ('03593526', 'jar'), ('03624134', 'knife'), ('02992529', 'cellphone'),
    ('02942699', 'camera'), ('04074963', 'remote'))
SHAPENET_OBJECT_ID_BASE = 100
REQUIRED_META_KEYS = ('coords_3d', 'verts_3d', 'affine_transform', 'obj_scale', 'class_id',
                      'sample_id', 'depth_min', 'depth_max')
# A cube-root determinant this close to 1 means affine_transform holds no scale.
_RIGID_TOLERANCE = 0.05


def shapenet_object_id(class_id):
    """Object id of a ShapeNet synset (101..109 for ObMan's categories, 100 otherwise)."""
    for position, (synset, _) in enumerate(SHAPENET_CATEGORIES):
        if synset == str(class_id):
            return SHAPENET_OBJECT_ID_BASE + 1 + position
    return SHAPENET_OBJECT_ID_BASE


# ----------------------------------------------------------------------------------------------
# Restricted unpickling.

def _numpy_module(name):
    core = getattr(np, '_core', None)
    return getattr(core, name) if core is not None else getattr(np.core, name)


_ALLOWED_GLOBALS = {
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
}
for _prefix in ('numpy.core', 'numpy._core'):
    _ALLOWED_GLOBALS[(_prefix + '.multiarray', '_reconstruct')] = \
        _numpy_module('multiarray')._reconstruct
    _ALLOWED_GLOBALS[(_prefix + '.multiarray', 'scalar')] = _numpy_module('multiarray').scalar
    _ALLOWED_GLOBALS[(_prefix + '.numeric', '_frombuffer')] = \
        _numpy_module('numeric')._frombuffer
for _builtins in ('builtins', '__builtin__'):
    for _name, _value in (('set', set), ('frozenset', frozenset), ('complex', complex),
                          ('slice', slice)):
        _ALLOWED_GLOBALS[(_builtins, _name)] = _value


def _latin1_encode(text, encoding='latin1'):
    """Stand-in for ``_codecs.encode`` (protocol-2 pickles of bytes): latin1 text only."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError('_codecs.encode allowed for latin1 text only')
    return text.encode('latin1')


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only numpy arrays / scalars / dtypes and builtin containers."""

    def find_class(self, module, name):
        """Return an allowed global or refuse."""
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module == '_codecs' and name == 'encode':
            return _latin1_encode
        raise pickle.UnpicklingError('refusing to load global %s.%s' % (module, name))


def load_pickle(path):
    """
    Read a plain data pickle safely (no code runs; Python 2 pickles read as latin1).

    :raises DatasetError: missing file, corrupt pickle or a forbidden global.
    """
    if not os.path.isfile(path):
        raise DatasetError('missing file %s' % path)
    try:
        with open(path, 'rb') as stream:
            return RestrictedUnpickler(stream, encoding='latin1').load()
    except Exception as error:  # noqa: B902 any failure to parse means a bad file
        raise DatasetError('cannot read pickle %s: %s' % (path, error)) from error


def decode_depth(channel, stored_min, stored_max):
    """
    Decode one ObMan depth channel (names swapped as stored).

    :param channel: (H, W) uint8, 0 = no surface.
    :param stored_min: the meta's ``*_depth_min`` (holds the true maximum depth).
    :param stored_max: the meta's ``*_depth_max`` (holds the true minimum depth).
    :return: (H, W) float32 metres, 0 where no surface.
    """
    values = channel.astype(np.float64)
    depth = (values - 1.0) / 254.0 * (float(stored_min) - float(stored_max)) + float(stored_max)
    return np.where(channel > 0, depth, 0.0).astype(np.float32)


def object_pose_from_affine(affine, obj_scale):
    """
    Split ``affine_transform`` into a camera_from_object pose and the object scale.

    :param affine: (4, 4) model_normalized -> world (OpenGL camera) transform.
    :param obj_scale: the meta's ``obj_scale`` (metres per normalised unit).
    :return: tuple (rotation (3, 3), translation (3,) metres, both camera frame (OpenCV),
        scale): object-frame vertices are the normalised vertices times ``scale``.
    :raises ValueError: the linear part is not a scaled rotation.
    """
    affine = np.asarray(affine, np.float64)
    linear = affine[:3, :3]
    determinant = np.linalg.det(linear)
    if not determinant > 0:
        raise ValueError('affine_transform has determinant %g' % determinant)
    cube_root = determinant ** (1.0 / 3.0)
    if abs(cube_root - 1.0) < _RIGID_TOLERANCE:
        rotation_world, scale = linear, float(obj_scale)
    else:
        rotation_world, scale = linear / cube_root, cube_root
    if not np.allclose(rotation_world @ rotation_world.T, np.eye(3), atol=1e-3):
        raise ValueError('affine_transform is not a scaled rotation')
    return OPENGL_TO_OPENCV @ rotation_world, OPENGL_TO_OPENCV @ affine[:3, 3], scale


class ObMan:
    """Index and loader of one ObMan split; :meth:`load` returns a :class:`HandObjectSample`."""

    def __init__(self, root, split='train', shapenet_root='auto',
                 crop_size_px=DEFAULT_CROP_SIZE_PX, bbox_scale=DEFAULT_BBOX_SCALE,
                 mano_model_path=None, load_depth=True, mini_factor=None, layers=None):
        """
        Index the split (lists the meta folder; no file is read).

        :param root: the ObMan folder holding ``train/ val/ test/``, or its parent holding
            ``obman/``.
        :param split: 'train', 'val' or 'test'.
        :param shapenet_root: ShapeNetCore.v2 folder; 'auto' looks for ``ShapeNetCore.v2``
            beside the split folders' parent; None never loads object meshes.
        :param crop_size_px: side of the network crop.
        :param bbox_scale: enlargement of the squared hand box.
        :param mano_model_path: folder of the real MANO files; None uses the stand-in hand.
        :param load_depth: decode the depth PNG into ``sample.depth``.
        :param mini_factor: keep this leading fraction of the sorted ids (as obman_train).
        :param layers: optional dict side -> ``flat_hand_mean=True`` MANO layer.
        :raises DatasetError: missing root or split folder.
        """
        root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(root):
            raise DatasetError('ObMan root %s does not exist' % root)
        candidates = [os.path.join(root, split), os.path.join(root, 'obman', split)]
        split_dir = next((c for c in candidates if os.path.isdir(os.path.join(c, 'meta'))),
                         None)
        if split_dir is None:
            raise DatasetError('no ObMan %s split under %s (looked for %s)'
                               % (split, root, ' and '.join(
                                   os.path.join(c, 'meta') for c in candidates)))
        self.split_dir = split_dir
        if shapenet_root == 'auto':
            guesses = [os.path.join(os.path.dirname(os.path.dirname(split_dir)),
                                    'ShapeNetCore.v2'),
                       os.path.join(os.path.dirname(split_dir), 'ShapeNetCore.v2')]
            shapenet_root = next((g for g in guesses if os.path.isdir(g)), None)
        self.shapenet_root = shapenet_root
        self.crop_size_px = int(crop_size_px)
        self.bbox_scale = float(bbox_scale)
        self.load_depth = bool(load_depth)
        self.layer = (layers if layers is not None else mano_layers(mano_model_path))['right']
        names = sorted(name for name in os.listdir(os.path.join(split_dir, 'meta'))
                       if name.endswith('.pkl'))
        try:
            self.ids = [int(name.split('.')[0]) for name in names]
        except ValueError as error:
            raise DatasetError('unexpected file name in %s: %s'
                               % (os.path.join(split_dir, 'meta'), error)) from error
        if mini_factor is not None:
            self.ids = self.ids[:int(len(self.ids) * float(mini_factor))]
        self.num_missing_meshes = 0

    def __len__(self):
        """Return the number of samples."""
        return len(self.ids)

    def _path(self, folder, index, extension):
        return os.path.join(self.split_dir, folder, '%08d.%s' % (self.ids[index], extension))

    def read_meta(self, index):
        """
        Read and check the meta dict of sample ``index``.

        :raises DatasetError: missing / corrupt file or missing keys.
        """
        path = self._path('meta', index, 'pkl')
        meta = load_pickle(path)
        if not isinstance(meta, dict):
            raise DatasetError('meta file %s does not hold a dict' % path)
        missing = [key for key in REQUIRED_META_KEYS if key not in meta]
        if 'hand_pose' not in meta and 'pca_pose' not in meta:
            missing.append('hand_pose or pca_pose')
        if missing:
            raise DatasetError('meta file %s lacks %s' % (path, ', '.join(missing)))
        return meta

    def object_mesh(self, class_id, sample_id):
        """
        Return the ShapeNet mesh (normalised model coordinates), or None when absent.

        :return: tuple (vertices (V, 3) float64, faces (F, 3) int64) or None.
        :raises DatasetError: a mesh file that exists but cannot be read.
        """
        if not self.shapenet_root:
            return None
        folder = os.path.join(self.shapenet_root, str(class_id), str(sample_id), 'models')
        cache = os.path.join(folder, 'model_normalized.pkl')
        if os.path.isfile(cache):
            data = load_pickle(cache)
            try:
                return (np.asarray(data['vertices'], np.float64).reshape(-1, 3),
                        np.asarray(data['faces'], np.int64).reshape(-1, 3))
            except (KeyError, TypeError, ValueError) as error:
                raise DatasetError('bad mesh cache %s: %s' % (cache, error)) from error
        obj = os.path.join(folder, 'model_normalized.obj')
        if os.path.isfile(obj):
            vertices, faces = read_obj_mesh(obj)
            return vertices.astype(np.float64), faces
        if self.num_missing_meshes == 0:
            LOGGER.warning('ShapeNet mesh %s not found: samples without it have no object '
                           'vertices', obj)
        self.num_missing_meshes += 1
        return None

    def _articulation(self, meta):
        """(45,) flat-hand finger pose from ``hand_pose`` or ``pca_pose``."""
        if 'hand_pose' in meta:
            hand_pose = np.asarray(meta['hand_pose'], np.float64).reshape(-1)
            if hand_pose.size in (48, 45):
                return hand_pose[-45:]
        coefficients = np.asarray(meta['pca_pose'], np.float64).reshape(1, -1)
        with torch.no_grad():
            pose = self.layer.pca_to_axis_angle(torch.as_tensor(coefficients,
                                                                dtype=torch.float32),
                                                add_mean=False)
        return pose[0].double().numpy()

    def load(self, index):
        """
        Load sample ``index`` as a :class:`HandObjectSample`.

        :raises IndexError: index out of range.
        :raises DatasetError: a missing or corrupt file (named).
        :raises SampleUnavailable: the hand lies outside the image.
        """
        if not 0 <= index < len(self):
            raise IndexError('sample %d out of range 0..%d' % (index, len(self) - 1))
        meta_path = self._path('meta', index, 'pkl')
        meta = self.read_meta(index)
        try:
            joints = np.asarray(meta['coords_3d'], np.float64).reshape(NUM_HAND_JOINTS, 3) \
                @ OPENGL_TO_OPENCV
            vertices = np.asarray(meta['verts_3d'], np.float64).reshape(NUM_MANO_VERTICES, 3) \
                @ OPENGL_TO_OPENCV
            articulation = self._articulation(meta)
            rotation, translation, scale = object_pose_from_affine(
                np.asarray(meta['affine_transform']).reshape(4, 4), meta['obj_scale'])
        except (TypeError, ValueError) as error:
            raise DatasetError('bad annotation in %s: %s' % (meta_path, error)) from error
        if not (np.all(np.isfinite(joints)) and np.all(np.isfinite(vertices))):
            raise DatasetError('non-finite hand annotation in %s' % meta_path)

        # Global rotation: the MANO hand at zero rotation, fitted rigidly to the annotation.
        zero_vertices, zero_joints = mano_forward(
            self.layer, np.concatenate([np.zeros(3), articulation]), np.zeros(10))
        source, target = (zero_joints, joints) if self.layer.is_standin else (
            zero_vertices, vertices)
        _, hand_rotation, _ = similarity_transform(source, target, allow_scale=False)
        global_orient = geometry.matrix_to_axis_angle(torch.as_tensor(hand_rotation)).numpy()

        K = CAMERA_K
        image = read_color_image(self._path('rgb', index, 'jpg'))
        box = hand_box(project(np.concatenate([joints, vertices]), K), image.shape[1],
                       image.shape[0])
        try:
            crop = crop_hand(image, box, K, self.crop_size_px, self.bbox_scale)
        except InvalidBoxError as error:
            raise SampleUnavailable('%s: %s' % (meta_path, error)) from error
        size = self.crop_size_px
        segm_path = self._path('segm', index, 'png')
        segm = cv2.imread(segm_path, cv2.IMREAD_UNCHANGED) if os.path.isfile(segm_path) \
            else None
        if segm is None or segm.ndim != 3 or segm.shape[:2] != image.shape[:2]:
            raise DatasetError('missing or corrupt segmentation %s' % segm_path)
        full = segm[..., 0]  # OpenCV channel 0 = the full render (written from BGR order)
        hand_mask = warp_image(np.isin(full, RIGHT_HAND_SEG_VALUES).astype(np.uint8),
                               crop.crop_from_image, size, cv2.INTER_NEAREST).astype(bool)
        object_mask = warp_image((full == OBJECT_SEG_VALUE).astype(np.uint8),
                                 crop.crop_from_image, size, cv2.INTER_NEAREST).astype(bool)
        depth = None
        if self.load_depth:
            depth_path = self._path('depth', index, 'png')
            encoded = cv2.imread(depth_path, cv2.IMREAD_UNCHANGED) \
                if os.path.isfile(depth_path) else None
            if encoded is None or encoded.ndim != 3 or encoded.shape[:2] != image.shape[:2]:
                raise DatasetError('missing or corrupt depth image %s' % depth_path)
            full_depth = decode_depth(encoded[..., 0], meta['depth_min'], meta['depth_max'])
            depth = warp_image(full_depth, crop.crop_from_image, size, cv2.INTER_NEAREST)

        object_vertices = None
        mesh = self.object_mesh(meta['class_id'], meta['sample_id'])
        if mesh is not None:
            object_vertices = (mesh[0] * scale) @ rotation.T + translation
        return HandObjectSample(
            image=crop.image,
            crop_K=crop.crop_K.astype(np.float32),
            camera_K=K.astype(np.float32),
            bbox_xyxy_px=box.astype(np.float32),
            mano_pose=np.concatenate([global_orient, articulation]).astype(np.float32),
            mano_betas=np.zeros(10, np.float32),
            joints_cam=joints.astype(np.float32),
            vertices_cam=vertices.astype(np.float32),
            joints_2d_crop_px=project(joints, crop.crop_K).astype(np.float32),
            object_id=shapenet_object_id(meta['class_id']),
            object_rotation=rotation.astype(np.float32),
            object_translation=translation.astype(np.float32),
            object_vertices_cam=None if object_vertices is None
            else object_vertices.astype(np.float32),
            is_right_hand=True,
            hand_mask=hand_mask,
            object_mask=object_mask,
            depth=depth,
        )


class ObManDataset(SkippingDataset):
    """Torch Dataset of an ObMan split: tensor dicts with the synthetic set's keys."""

    def __init__(self, root, split='train', skip_bad_samples=True, **kwargs):
        """
        Index the split (see :class:`ObMan` for ``kwargs``).

        :param skip_bad_samples: skip (count, warn) corrupt samples.
        """
        super().__init__(ObMan(root, split, **kwargs), skip_bad_samples)
