"""
DexYCB in its published on-disk layout (NVlabs/dex-ycb-toolkit), as HandObjectSample.

Layout under the dataset root ``$DEX_YCB_DIR``::

    <subject>/<sequence>/meta.yml
    <subject>/<sequence>/<serial>/color_%06d.jpg, aligned_depth_to_color_%06d.png (mm),
                                  labels_%06d.npz (seg, pose_y, pose_m, joint_3d, joint_2d)
    calibration/intrinsics/<serial>_640x480.yml, calibration/mano_<calib>/mano.yml
    models/<ycb name>/textured_simple.obj

The split rules (s0..s3 x train/val/test) and the sample order (subject, sequence, camera,
frame) are the toolkit's. Per sample: the hand of ``mano_sides[0]``, its 21 ``joint_3d`` joints
(camera frame, metres), the MANO pose from ``pose_m`` (45 PCA coefficients relative to the mean
hand, converted with the side's PCA basis; the stored translation is not the wrist: the wrist is
``J0(betas) + pose_m[48:51]``) and the pose ``pose_y`` of the grasped object
``ycb_ids[ycb_grasp_ind]``.

Errors: a missing root, calibration or ``meta.yml`` raises :class:`DatasetError` naming the
path. A corrupt image or label raises :class:`DatasetError` from :meth:`DexYCB.load`; frames
without a hand or without the grasped object's pose raise :class:`SampleUnavailable`. The torch
wrapper :class:`DexYCBDataset` skips both (counted, with a warning for corrupt files) and
returns the next good sample; it never returns a wrong one.
"""

from dataclasses import dataclass
import logging
import os

import cv2
import numpy as np
import torch
import yaml

from hand_object_pose_ros.constants import DEFAULT_BBOX_SCALE
from hand_object_pose_ros.constants import DEFAULT_CROP_SIZE_PX
from hand_object_pose_ros.constants import NUM_HAND_JOINTS
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
from hand_object_pose_ros.types import HandObjectSample

LOGGER = logging.getLogger(__name__)

# dex_ycb.py `_SUBJECTS`, `_SERIALS`, `_YCB_CLASSES`.
SUBJECTS = (
    '20200709-subject-01', '20200813-subject-02', '20200820-subject-03', '20200903-subject-04',
    '20200908-subject-05', '20200918-subject-06', '20200928-subject-07', '20201002-subject-08',
    '20201015-subject-09', '20201022-subject-10')
SERIALS = ('836212060125', '839512060362', '840412060917', '841412060263', '932122060857',
           '932122060861', '932122061900', '932122062010')
YCB_CLASSES = {
    1: '002_master_chef_can', 2: '003_cracker_box', 3: '004_sugar_box',
    4: '005_tomato_soup_can', 5: '006_mustard_bottle', 6: '007_tuna_fish_can',
    7: '008_pudding_box', 8: '009_gelatin_box', 9: '010_potted_meat_can', 10: '011_banana',
    11: '019_pitcher_base', 12: '021_bleach_cleanser', 13: '024_bowl', 14: '025_mug',
    15: '035_power_drill', 16: '036_wood_block', 17: '037_scissors', 18: '040_large_marker',
    19: '051_large_clamp', 20: '052_extra_large_clamp', 21: '061_foam_brick'}
IMAGE_WIDTH_PX = 640
IMAGE_HEIGHT_PX = 480
# Value of the hand in the ``seg`` label.
HAND_SEG_VALUE = 255
# The toolkit asserts this many sequences per subject; the split rules index into them.
SEQUENCES_PER_SUBJECT = 100
LABEL_KEYS = {
    'seg': (IMAGE_HEIGHT_PX, IMAGE_WIDTH_PX),
    'pose_m': (1, 51),
    'joint_3d': (1, NUM_HAND_JOINTS, 3),
    'joint_2d': (1, NUM_HAND_JOINTS, 2),
}
SETUPS = ('s0', 's1', 's2', 's3')
# libyaml's safe loader when available (indexing reads hundreds of meta.yml files).
_YAML_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
SPLITS = ('train', 'val', 'test')


@dataclass(frozen=True)
class SplitSelection:
    """
    Which data one DexYCB split uses (dex_ycb.py ``DexYCBDataset.__init__``).

    :param subjects: indices into :data:`SUBJECTS`.
    :param serials: indices into :data:`SERIALS`.
    :param sequences: positions (0..99) in a subject's sorted sequence folders.
    """

    subjects: tuple
    serials: tuple
    sequences: tuple


def split_selection(setup='s0', split='train'):
    """
    Return the subjects, cameras and sequence positions of a DexYCB split.

    :param setup: 's0' (default split of the papers), 's1' (unseen subjects), 's2' (unseen
        views) or 's3' (unseen grasped objects).
    :param split: 'train', 'val' or 'test'.
    :return: :class:`SplitSelection`.
    :raises ValueError: unknown setup or split.
    """
    if setup not in SETUPS or split not in SPLITS:
        raise ValueError('unknown DexYCB split %s_%s (setups %s, splits %s)'
                         % (setup, split, SETUPS, SPLITS))
    every = tuple(range(SEQUENCES_PER_SUBJECT))
    all_subjects = tuple(range(len(SUBJECTS)))
    all_serials = tuple(range(len(SERIALS)))
    if setup == 's0':
        if split == 'train':
            return SplitSelection(all_subjects, all_serials,
                                  tuple(i for i in every if i % 5 != 4))
        subjects = (0, 1) if split == 'val' else tuple(range(2, 10))
        return SplitSelection(subjects, all_serials, tuple(i for i in every if i % 5 == 4))
    if setup == 's1':
        subjects = {'train': (0, 1, 2, 3, 4, 5, 9), 'val': (6,), 'test': (7, 8)}[split]
        return SplitSelection(subjects, all_serials, every)
    if setup == 's2':
        serials = {'train': tuple(range(6)), 'val': (6,), 'test': (7,)}[split]
        return SplitSelection(all_subjects, serials, every)
    groups = {'train': None, 'val': (3, 19), 'test': (7, 11, 15)}[split]
    if groups is None:
        sequences = tuple(i for i in every if i // 5 not in (3, 7, 11, 15, 19))
    else:
        sequences = tuple(i for i in every if i // 5 in groups)
    return SplitSelection(all_subjects, all_serials, sequences)


def read_yaml(path):
    """
    Read a YAML file (safe loader).

    :raises DatasetError: missing or unparsable file, naming it.
    """
    if not os.path.isfile(path):
        raise DatasetError('missing file %s' % path)
    try:
        with open(path, 'r') as stream:
            return yaml.load(stream, Loader=_YAML_LOADER)
    except (OSError, yaml.YAMLError) as error:
        raise DatasetError('cannot read %s: %s' % (path, error)) from error


def load_npz(path, required):
    """
    Read an npz file and check the required keys and shapes.

    :param path: file.
    :param required: dict key -> shape (None entries match any size); None skips the check.
    :return: dict of arrays.
    :raises DatasetError: missing, corrupt, missing keys or wrong shapes.
    """
    if not os.path.isfile(path):
        raise DatasetError('missing label file %s' % path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except Exception as error:  # noqa: B902 any failure to parse means a corrupt file
        raise DatasetError('cannot read label file %s: %s' % (path, error)) from error
    for key, shape in (required or {}).items():
        if key not in data:
            raise DatasetError('label file %s lacks the key %r (has %s)'
                               % (path, key, sorted(data)))
        value = data[key]
        if value.ndim != len(shape) or any(
                want is not None and got != want for got, want in zip(value.shape, shape)):
            raise DatasetError('label %r in %s has shape %s, expected %s'
                               % (key, path, value.shape, shape))
    return data


class DexYCB:
    """
    Index and loader of one DexYCB split; :meth:`load` returns a :class:`HandObjectSample`.

    Attributes after construction: ``num_missing_subjects``, ``num_missing_cameras`` (folders
    of the split absent on disk, tolerated and logged once).
    """

    def __init__(self, root, setup='s0', split='train', crop_size_px=DEFAULT_CROP_SIZE_PX,
                 bbox_scale=DEFAULT_BBOX_SCALE, mano_model_path=None, object_meshes='auto',
                 load_depth=True, layers=None):
        """
        Index the split (reads every ``meta.yml`` of it; no images).

        :param root: dataset root (``$DEX_YCB_DIR``).
        :param setup: 's0'..'s3'.
        :param split: 'train', 'val' or 'test'.
        :param crop_size_px: side of the network crop.
        :param bbox_scale: enlargement of the squared hand box (crop.py).
        :param mano_model_path: folder of the real MANO files; None uses the stand-in hand.
        :param object_meshes: 'auto' (the dataset's ``models/<name>/textured_simple.obj``, else
            the package catalogue's mesh), 'dataset', 'catalogue' or None (no object vertices).
        :param load_depth: read the aligned depth image into ``sample.depth``.
        :param layers: optional dict side -> ``flat_hand_mean=True`` MANO layer (overrides
            ``mano_model_path``).
        :raises DatasetError: missing root, calibration file or ``meta.yml``.
        :raises ValueError: unknown setup / split / object_meshes.
        """
        if object_meshes not in ('auto', 'dataset', 'catalogue', None):
            raise ValueError('object_meshes must be auto, dataset, catalogue or None')
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise DatasetError('DexYCB root %s does not exist' % self.root)
        self.setup = setup
        self.split = split
        self.crop_size_px = int(crop_size_px)
        self.bbox_scale = float(bbox_scale)
        self.object_meshes = object_meshes
        self.load_depth = bool(load_depth)
        self.layers = layers if layers is not None else mano_layers(mano_model_path)
        self.selection = split_selection(setup, split)
        self._catalogue = None
        self._build_index()

    # -- index --------------------------------------------------------------------------------

    def _build_index(self):
        """Enumerate (sequence, camera, frame) in the toolkit's order."""
        self.sequences = []  # dicts: dir, meta, side, betas, ycb_ids, grasp index
        self.intrinsics = {}
        sequence_ids, serial_ids, frames = [], [], []
        self.num_missing_subjects = 0
        self.num_missing_cameras = 0
        for subject_index in self.selection.subjects:
            subject_dir = os.path.join(self.root, SUBJECTS[subject_index])
            if not os.path.isdir(subject_dir):
                self.num_missing_subjects += 1
                continue
            names = sorted(name for name in os.listdir(subject_dir)
                           if os.path.isdir(os.path.join(subject_dir, name)))
            if len(names) != SEQUENCES_PER_SUBJECT:
                LOGGER.warning('%s has %d sequences, the official release has %d: split '
                               "positions refer to this folder's sorted sequences",
                               subject_dir, len(names), SEQUENCES_PER_SUBJECT)
            for position in self.selection.sequences:
                if position >= len(names):
                    break
                sequence = self._read_sequence(os.path.join(subject_dir, names[position]))
                sequence['subject'] = subject_index
                sequence['position'] = position
                index = len(self.sequences)
                self.sequences.append(sequence)
                for serial_index in self.selection.serials:
                    serial = SERIALS[serial_index]
                    if not os.path.isdir(os.path.join(sequence['dir'], serial)):
                        self.num_missing_cameras += 1
                        continue
                    if serial not in self.intrinsics:
                        self.intrinsics[serial] = self._read_intrinsics(serial)
                    count = sequence['num_frames']
                    sequence_ids.append(np.full(count, index, np.int32))
                    serial_ids.append(np.full(count, serial_index, np.int8))
                    frames.append(np.arange(count, dtype=np.int32))
        if self.num_missing_subjects or self.num_missing_cameras:
            LOGGER.warning('DexYCB %s_%s under %s: %d subject folders and %d camera folders of '
                           'the split are missing (skipped)', self.setup, self.split, self.root,
                           self.num_missing_subjects, self.num_missing_cameras)
        concat = (lambda parts, dtype: np.concatenate(parts) if parts
                  else np.zeros(0, dtype))
        self._sequence_ids = concat(sequence_ids, np.int32)
        self._serial_ids = concat(serial_ids, np.int8)
        self._frames = concat(frames, np.int32)

    def _read_sequence(self, sequence_dir):
        """Read and check one ``meta.yml`` and its MANO shape calibration."""
        meta_path = os.path.join(sequence_dir, 'meta.yml')
        meta = read_yaml(meta_path)
        try:
            side = str(meta['mano_sides'][0])
            ycb_ids = [int(i) for i in meta['ycb_ids']]
            grasp_index = int(meta['ycb_grasp_ind'])
            num_frames = int(meta['num_frames'])
            calibration = str(meta['mano_calib'][0])
            if side not in ('right', 'left') or not 0 <= grasp_index < len(ycb_ids) \
                    or num_frames < 0 or any(i not in YCB_CLASSES for i in ycb_ids):
                raise ValueError('inconsistent values')
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise DatasetError('bad meta file %s: %s' % (meta_path, error)) from error
        mano_path = os.path.join(self.root, 'calibration', 'mano_%s' % calibration, 'mano.yml')
        try:
            betas = np.asarray(read_yaml(mano_path)['betas'], np.float32).reshape(10)
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError('bad MANO calibration %s: %s' % (mano_path, error)) from error
        return {'dir': sequence_dir, 'side': side, 'ycb_ids': ycb_ids,
                'grasp_index': grasp_index, 'num_frames': num_frames, 'betas': betas}

    def _read_intrinsics(self, serial):
        """K (3, 3) float64 of one camera's colour stream."""
        path = os.path.join(self.root, 'calibration', 'intrinsics', '%s_640x480.yml' % serial)
        data = read_yaml(path)
        try:
            color = data['color']
            return np.array([[float(color['fx']), 0.0, float(color['ppx'])],
                             [0.0, float(color['fy']), float(color['ppy'])],
                             [0.0, 0.0, 1.0]])
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError('bad intrinsics file %s: %s' % (path, error)) from error

    def __len__(self):
        """Return the number of samples (frames x cameras) of the split."""
        return len(self._frames)

    def sample_key(self, index):
        """
        Identify sample ``index``.

        :return: tuple (subject index, sequence position, serial, frame).
        """
        sequence = self.sequences[self._sequence_ids[index]]
        return (sequence['subject'], sequence['position'],
                SERIALS[self._serial_ids[index]], int(self._frames[index]))

    def _paths(self, index):
        sequence = self.sequences[self._sequence_ids[index]]
        folder = os.path.join(sequence['dir'], SERIALS[self._serial_ids[index]])
        frame = int(self._frames[index])
        return (os.path.join(folder, 'color_%06d.jpg' % frame),
                os.path.join(folder, 'aligned_depth_to_color_%06d.png' % frame),
                os.path.join(folder, 'labels_%06d.npz' % frame))

    # -- objects ------------------------------------------------------------------------------

    def object_mesh(self, object_id):
        """
        Vertices and faces of a YCB object, object frame, metres, or None when unavailable.

        :param object_id: DexYCB class id (1..21).
        :return: tuple (vertices (N, 3) float32, faces (F, 3) int64) or None.
        """
        if self.object_meshes in ('auto', 'dataset'):
            path = os.path.join(self.root, 'models', YCB_CLASSES[object_id],
                                'textured_simple.obj')
            if os.path.isfile(path) or self.object_meshes == 'dataset':
                return read_obj_mesh(path)
        if self.object_meshes in ('auto', 'catalogue'):
            if self._catalogue is None:
                from hand_object_pose_ros.objects import load_object_catalogue
                self._catalogue = load_object_catalogue()
            if object_id in self._catalogue:
                model = self._catalogue.get(object_id)
                return model.vertices, model.faces
        return None

    # -- samples ------------------------------------------------------------------------------

    def load(self, index):
        """
        Load sample ``index`` as a :class:`HandObjectSample` (crop, K, box, hand, object).

        :raises IndexError: index out of range.
        :raises SampleUnavailable: no hand annotation, no pose of the grasped object, or a hand
            outside the image.
        :raises DatasetError: a missing or corrupt image / label file (named).
        """
        if not 0 <= index < len(self):
            raise IndexError('sample %d out of range 0..%d' % (index, len(self) - 1))
        sequence = self.sequences[self._sequence_ids[index]]
        color_path, depth_path, label_path = self._paths(index)
        labels = load_npz(label_path, dict(LABEL_KEYS, pose_y=(
            len(sequence['ycb_ids']), 3, 4)))
        joints = labels['joint_3d'][0].astype(np.float64)
        pose_m = labels['pose_m'][0].astype(np.float64)
        if np.all(joints == -1) or not np.any(pose_m):
            raise SampleUnavailable('no hand annotated in %s' % label_path)
        if not (np.all(np.isfinite(joints)) and np.all(np.isfinite(pose_m))):
            raise DatasetError('non-finite hand labels in %s' % label_path)
        object_pose = labels['pose_y'][sequence['grasp_index']].astype(np.float64)
        if not np.any(object_pose):
            raise SampleUnavailable('no pose of the grasped object in %s' % label_path)
        object_rotation = object_pose[:, :3]
        if not np.allclose(object_rotation @ object_rotation.T, np.eye(3), atol=1e-3):
            raise DatasetError('grasped object rotation in %s is not a rotation' % label_path)

        side = sequence['side']
        layer = self.layers[side]
        betas = sequence['betas']
        with torch.no_grad():
            fingers = layer.pca_to_axis_angle(
                torch.as_tensor(pose_m[None, 3:48], dtype=torch.float32), add_mean=True)
        mano_pose = np.concatenate([pose_m[:3], fingers[0].double().numpy()])
        vertices, mano_joints = mano_forward(layer, mano_pose, betas, pose_m[48:51])
        # The real MANO puts the wrist at J0(betas) + pose_m[48:51] = joint_3d[0]; anchoring on
        # the labelled wrist keeps the stand-in hand (whose J0 differs) on the labelled joints.
        vertices = vertices + (joints[0] - mano_joints[0])

        K = self.intrinsics[SERIALS[self._serial_ids[index]]]
        points_px = project(np.concatenate([joints, vertices]), K)
        box = hand_box(points_px, IMAGE_WIDTH_PX, IMAGE_HEIGHT_PX)
        image = read_color_image(color_path)
        if image.shape[:2] != (IMAGE_HEIGHT_PX, IMAGE_WIDTH_PX):
            raise DatasetError('image %s is %dx%d, expected %dx%d' % (
                color_path, image.shape[1], image.shape[0], IMAGE_WIDTH_PX, IMAGE_HEIGHT_PX))
        try:
            crop = crop_hand(image, box, K, self.crop_size_px, self.bbox_scale)
        except InvalidBoxError as error:
            raise SampleUnavailable('%s: %s' % (label_path, error)) from error
        size = self.crop_size_px
        object_id = sequence['ycb_ids'][sequence['grasp_index']]
        seg = labels['seg']
        hand_mask = warp_image((seg == HAND_SEG_VALUE).astype(np.uint8), crop.crop_from_image,
                               size, cv2.INTER_NEAREST).astype(bool)
        object_mask = warp_image((seg == object_id).astype(np.uint8), crop.crop_from_image,
                                 size, cv2.INTER_NEAREST).astype(bool)
        depth = None
        if self.load_depth:
            depth_mm = cv2.imread(depth_path, cv2.IMREAD_ANYDEPTH) \
                if os.path.isfile(depth_path) else None
            if depth_mm is None or depth_mm.shape != (IMAGE_HEIGHT_PX, IMAGE_WIDTH_PX):
                raise DatasetError('missing or corrupt depth image %s' % depth_path)
            depth = warp_image(depth_mm.astype(np.float32) / 1000.0, crop.crop_from_image,
                               size, cv2.INTER_NEAREST)

        object_translation = object_pose[:, 3]
        object_vertices = None
        mesh = self.object_mesh(object_id) if self.object_meshes else None
        if mesh is not None:
            object_vertices = np.asarray(mesh[0], np.float64) @ object_rotation.T \
                + object_translation
        return HandObjectSample(
            image=crop.image,
            crop_K=crop.crop_K.astype(np.float32),
            camera_K=K.astype(np.float32),
            bbox_xyxy_px=box.astype(np.float32),
            mano_pose=mano_pose.astype(np.float32),
            mano_betas=betas.astype(np.float32),
            joints_cam=joints.astype(np.float32),
            vertices_cam=vertices.astype(np.float32),
            joints_2d_crop_px=project(joints, crop.crop_K).astype(np.float32),
            object_id=int(object_id),
            object_rotation=object_rotation.astype(np.float32),
            object_translation=object_translation.astype(np.float32),
            object_vertices_cam=None if object_vertices is None
            else object_vertices.astype(np.float32),
            is_right_hand=side == 'right',
            hand_mask=hand_mask,
            object_mask=object_mask,
            depth=None if depth is None else depth.astype(np.float32),
        )


class DexYCBDataset(SkippingDataset):
    """Torch Dataset of a DexYCB split: tensor dicts with the synthetic set's keys."""

    def __init__(self, root, setup='s0', split='train', skip_bad_samples=True, **kwargs):
        """
        Index the split (see :class:`DexYCB` for ``kwargs``).

        :param skip_bad_samples: skip (count) corrupt or unannotated frames.
        """
        super().__init__(DexYCB(root, setup, split, **kwargs), skip_bad_samples)
