r"""
Evaluation CLI: ``hand_object_pose_evaluate``, ``python -m hand_object_pose_ros.evaluate``.

Runs the network (``model.predict`` on each sample's crop, conditioned on the true object class
as the papers do) over a split and reports the papers' metrics
(:mod:`hand_object_pose_ros.metrics`) per object and in total, as JSON, a Markdown table and
PNG plots::

    hand_object_pose_evaluate --checkpoint models/demo_lite.pt --dataset synthetic \\
        --num-samples 500 --output-dir eval/demo_lite
    hand_object_pose_evaluate --checkpoint ckpt.pt --dataset dexycb --root $DEX_YCB_DIR \\
        --split test --output-dir eval/dexycb
    # the mean-pose baseline: fit on a training split once, then evaluate it the same way
    hand_object_pose_evaluate --fit-baseline eval/mean_pose.json --dataset synthetic \\
        --split train --num-samples 2000
    hand_object_pose_evaluate --baseline mean-pose --baseline-stats eval/mean_pose.json \\
        --dataset synthetic --num-samples 500 --output-dir eval/mean_pose

Crop modes (``--crop-mode gt|jitter|both``):

- ``gt``: the dataset's crop around the ground-truth hand box (what the papers report).
- ``jitter``: detector-like noise, since a live node never gets a perfect box: the hand box,
  mapped into the dataset crop, gets a centre shift (normal, ``--jitter-center`` x box side per
  axis) and a scale change (log-normal, ``--jitter-scale``), seeded per sample; the crop is then
  re-cropped with :mod:`hand_object_pose_ros.crop` (square, x bbox_scale) and its intrinsics
  updated. Regions outside the original crop become black, as beyond an image border.

Frames and metrics (millimetres unless named):

- ``mje_abs``: joints lifted to the camera frame by the hand-size method of
  :mod:`hand_object_pose_ros.inference`
  (:func:`~hand_object_pose_ros.inference.solve_wrist_translation` on the predicted 2D
  joints and the crop intrinsics, falling back to
  :func:`~hand_object_pose_ros.inference.translation_from_box`); the mean-pose baseline has no
  2D joints and is placed with the box method.
- ``mje_rr`` (wrist-relative) and ``mje_pa`` (Procrustes-aligned, no reflection).
- Object metrics place the predicted pose at the TRUE wrist plus the predicted wrist-relative
  translation (``mce``, ``add``, ``adds``, ``add_s`` = ADD-S for symmetric objects, else
  ADD), as the ground-truth-crop protocols of the papers; ``mce_abs`` uses the lifted wrist.
- ``rotation_error`` (degrees, geodesic, no symmetry) and ``translation_error`` (wrist-relative
  translation): the two parts of the object error, to tell which one dominates the MCE.
- ``pen_mean`` (DexYCB variant, Wang 2022) and ``pen_max`` (ObMan variant, Hasson 2019):
  predicted hand vertices inside the predicted object mesh (both at the true wrist).
- ``chamfer_mm2`` (ObMan): 600 surface points of the object posed by each pose.

Left hands (DexYCB) run as right hands on the mirrored crop, as in inference.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import sys

import numpy as np
import torch

from hand_object_pose_ros import metrics
from hand_object_pose_ros.cli import run_command
from hand_object_pose_ros.constants import DEFAULT_BBOX_SCALE
from hand_object_pose_ros.constants import HAND_JOINT_NAMES
from hand_object_pose_ros.crop import crop_from_image_affine
from hand_object_pose_ros.crop import MIRROR
from hand_object_pose_ros.crop import mirror_crop
from hand_object_pose_ros.crop import square_crop_box
from hand_object_pose_ros.crop import transform_points_2d
from hand_object_pose_ros.crop import warp_image
from hand_object_pose_ros.inference import solve_wrist_translation
from hand_object_pose_ros.inference import translation_from_box
from hand_object_pose_ros.modeling.checkpoint import CheckpointError
from hand_object_pose_ros.modeling.checkpoint import load_model_from_checkpoint
from hand_object_pose_ros.objects import load_object_catalogue

LOGGER = logging.getLogger(__name__)

BASELINE_FORMAT = 'hand_object_pose_ros.mean_pose_baseline'
CHAMFER_POINTS = 600
PCK_THRESHOLDS_MM = np.linspace(0.0, 50.0, 51)
# Per-sample values aggregated in the tables, with their column titles.
COLUMNS = (
    ('mje_abs_mm', 'MJE abs (mm)'),
    ('mje_rr_mm', 'MJE RR (mm)'),
    ('mje_pa_mm', 'MJE PA (mm)'),
    ('mce_mm', 'MCE (mm)'),
    ('mce_cm', 'MCE (cm)'),
    ('mce_abs_mm', 'MCE abs (mm)'),
    ('rotation_error_deg', 'Rot. err. (deg)'),
    ('translation_error_mm', 'Transl. err. (mm)'),
    ('add_mm', 'ADD (mm)'),
    ('adds_mm', 'ADD-S (mm)'),
    ('add_s_mm', 'ADD(-S) (mm)'),
    ('pen_mean_mm', 'Pen. mean (mm)'),
    ('pen_max_mm', 'Pen. max (mm)'),
    ('chamfer_mm2', 'Chamfer (mm^2)'),
    ('class_accuracy', 'Class acc.'),
)


class EvaluationError(RuntimeError):
    """Bad evaluation input: a missing dataset root, baseline file or unknown object."""


# --------------------------------------------------------------------------------------------
# Data sources: HandObjectSample + object mesh per index
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ObjectMesh:
    """
    An object's mesh in its own frame.

    :param vertices: (N, 3) float64, metres, object frame.
    :param faces: (F, 3) int64.
    :param symmetric: use ADD-S for it.
    """

    vertices: np.ndarray
    faces: np.ndarray
    symmetric: bool


class EvalSource:
    """Indexable samples of one split with their object meshes (see :func:`open_source`)."""

    def __init__(self, name, length, load, mesh):
        """
        Wrap loader callables.

        :param name: description for the report.
        :param length: number of indices.
        :param load: ``index -> HandObjectSample`` (may raise the dataset's errors).
        :param mesh: ``(index, sample) -> ObjectMesh`` or None when unknown.
        """
        self.name = name
        self.length = int(length)
        self.load = load
        self.mesh = mesh

    def __len__(self):
        """Return the number of indices."""
        return self.length


def _catalogue_mesh(object_id):
    """Catalogue mesh of an id, or None."""
    catalogue = load_object_catalogue()
    if object_id not in catalogue:
        return None
    model = catalogue.get(object_id)
    return ObjectMesh(np.asarray(model.vertices, np.float64), np.asarray(model.faces, np.int64),
                      bool(model.symmetric))


def _require_root(root, what):
    """Raise EvaluationError naming ``root`` when it is not a folder."""
    if not root or not os.path.isdir(root):
        raise EvaluationError('%s not found: %r' % (what, root))


def open_source(dataset, root='', split=None, crop_size_px=256, seed=0):
    """
    Open a split for evaluation.

    :param dataset: ``synthetic``, ``dexycb`` or ``obman``.
    :param root: DexYCB / ObMan root; for synthetic an optional shard folder ('' = render).
    :param split: synthetic ``heldout`` (default) or ``train``; DexYCB s0 ``test`` (default),
        ``val``, ``train``; ObMan ``test`` (default), ``val``, ``train``.
    :param crop_size_px: crop side (the model's input size).
    :param seed: synthetic base seed (``heldout`` uses its held-out seed).
    :return: :class:`EvalSource`.
    :raises EvaluationError: a missing root (named) or an unknown split.
    """
    if dataset == 'synthetic':
        split = split or 'heldout'
        if split not in ('heldout', 'train'):
            raise EvaluationError('synthetic split must be heldout or train, got %r' % split)
        if root:
            from hand_object_pose_ros.data.shards import ShardDataset

            _require_root(root, 'synthetic shard folder')
            shards = ShardDataset(root)
            return EvalSource('synthetic shards %s' % root, len(shards), shards.sample,
                              lambda index, sample: _catalogue_mesh(sample.object_id))
        from hand_object_pose_ros.data import synthetic

        cfg = synthetic.SyntheticConfig(crop_size_px=crop_size_px, seed=seed)
        if split == 'heldout':
            cfg = synthetic.heldout_config(cfg)
        generator = synthetic.SyntheticHandObjectGenerator(cfg)
        return EvalSource('synthetic %s (seed %d)' % (split, cfg.seed), 10 ** 9,
                          generator.sample,
                          lambda index, sample: _catalogue_mesh(sample.object_id))
    split = split or 'test'
    if dataset == 'dexycb':
        from hand_object_pose_ros.data.dexycb import DexYCB

        _require_root(root, 'DexYCB root')
        loader = DexYCB(root, 's0', split, crop_size_px=crop_size_px, load_depth=False)

        def dexycb_mesh(index, sample):
            mesh = loader.object_mesh(sample.object_id)
            if mesh is None:
                return None
            symmetric = _catalogue_mesh(sample.object_id)
            return ObjectMesh(np.asarray(mesh[0], np.float64), np.asarray(mesh[1], np.int64),
                              bool(symmetric.symmetric) if symmetric is not None else False)

        return EvalSource('DexYCB s0 %s' % split, len(loader), loader.load, dexycb_mesh)
    if dataset == 'obman':
        from hand_object_pose_ros.data.obman import ObMan

        _require_root(root, 'ObMan root')
        loader = ObMan(root, split, crop_size_px=crop_size_px, load_depth=False)

        def obman_mesh(index, sample):
            if sample.object_vertices_cam is None:
                return None
            meta = loader.read_meta(index)
            mesh = loader.object_mesh(meta['class_id'], meta['sample_id'])
            if mesh is None:
                return None
            # Back to the (scaled) object frame: v_cam = R v + t.
            rotation = np.asarray(sample.object_rotation, np.float64)
            vertices = (np.asarray(sample.object_vertices_cam, np.float64)
                        - sample.object_translation) @ rotation
            return ObjectMesh(vertices, np.asarray(mesh[1], np.int64), False)

        return EvalSource('ObMan %s' % split, len(loader), loader.load, obman_mesh)
    raise EvaluationError('unknown dataset %r (synthetic, dexycb, obman)' % dataset)


def iterate_samples(source, num_samples):
    """
    Yield ``(index, sample)`` for the first ``num_samples`` loadable samples.

    Samples the dataset cannot give (no annotation, hand outside the image, corrupt file) are
    skipped and counted in the log.

    :param source: :class:`EvalSource`.
    :param num_samples: how many to yield (0 = all of a finite split).
    """
    from hand_object_pose_ros.data.common import DatasetError

    limit = num_samples if num_samples > 0 else len(source)
    yielded = 0
    skipped = 0
    for index in range(len(source)):
        if yielded >= limit:
            break
        try:
            sample = source.load(index)
        except (DatasetError, ValueError) as error:
            skipped += 1
            LOGGER.debug('skipping sample %d: %s', index, error)
            continue
        yielded += 1
        yield index, sample
    if skipped:
        LOGGER.info('%d samples skipped (no ground truth or unreadable)', skipped)


# --------------------------------------------------------------------------------------------
# Crops
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class NetworkInput:
    """
    One crop as the network sees it.

    :param image: (S, S, 3) uint8 RGB (mirrored for a left hand).
    :param network_K: (3, 3) float64 intrinsics of the network's (possibly mirrored) frame.
    :param mirrored: True for a left hand run as a right one.
    """

    image: np.ndarray
    network_K: np.ndarray
    mirrored: bool


def hand_box_in_crop(sample):
    """
    Return the hand box of a sample mapped into its crop.

    :param sample: HandObjectSample.
    :return: (4,) float64 x0, y0, x1, y1 in crop pixels.
    """
    crop_from_image = np.asarray(sample.crop_K, np.float64) @ np.linalg.inv(
        np.asarray(sample.camera_K, np.float64))
    x0, y0, x1, y1 = np.asarray(sample.bbox_xyxy_px, np.float64)
    corners = transform_points_2d(crop_from_image, np.array([[x0, y0], [x1, y1]]))
    low, high = corners.min(axis=0), corners.max(axis=0)
    return np.concatenate([low, high])


def jitter_crop(image, crop_K, box_in_crop, rng, center_std, scale_std,
                bbox_scale=DEFAULT_BBOX_SCALE):
    """
    Re-crop a crop around a noisy version of its hand box (detector-like error).

    :param image: (S, S, 3) uint8 crop.
    :param crop_K: (3, 3) intrinsics of the crop.
    :param box_in_crop: (4,) hand box in crop pixels.
    :param rng: numpy Generator.
    :param center_std: std of the centre shift per axis, as a fraction of the box's longer side.
    :param scale_std: std of the log of the box size factor.
    :param bbox_scale: enlargement of the squared box (as inference).
    :return: tuple (new (S, S, 3) uint8 crop, new (3, 3) float64 crop_K).
    """
    size = image.shape[0]
    center, side = square_crop_box(box_in_crop, 1.0)
    center = center + rng.normal(0.0, center_std, 2) * side
    side = side * math.exp(rng.normal(0.0, scale_std))
    noisy_box = np.concatenate([center - side / 2.0, center + side / 2.0])
    new_center, new_side = square_crop_box(noisy_box, bbox_scale)
    affine = crop_from_image_affine(new_center, new_side, size)
    return warp_image(image, affine, size), affine @ np.asarray(crop_K, np.float64)


def network_input(sample, mode, rng, center_std, scale_std):
    """
    Build the network input of a sample in a crop mode.

    :param sample: HandObjectSample.
    :param mode: ``gt`` or ``jitter``.
    :param rng: numpy Generator (jitter).
    :param center_std: jitter centre std (fraction of the box side).
    :param scale_std: jitter log-scale std.
    :return: :class:`NetworkInput`.
    """
    image = np.asarray(sample.image)
    crop_K = np.asarray(sample.crop_K, np.float64)
    if mode == 'jitter':
        image, crop_K = jitter_crop(image, crop_K, hand_box_in_crop(sample), rng, center_std,
                                    scale_std)
    mirrored = not bool(sample.is_right_hand)
    if mirrored:
        image, crop_K = mirror_crop(image, crop_K)
    return NetworkInput(np.ascontiguousarray(image), crop_K, mirrored)


# --------------------------------------------------------------------------------------------
# Predictors: the network and the mean-pose baseline
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RawPrediction:
    """
    Wrist-relative outputs for one crop, in the network's frame (numpy float64).

    :param joints_rel: (21, 3) metres.
    :param vertices_rel: (778, 3) metres.
    :param joints_2d_crop_px: (21, 2) crop pixels, or None (baseline).
    :param object_rotation: (3, 3) camera_from_object.
    :param object_translation_rel: (3,) metres, relative to the wrist.
    :param object_id: catalogue id the object branch was conditioned on.
    :param predicted_object_id: the classifier's choice (None for the baseline).
    """

    joints_rel: np.ndarray
    vertices_rel: np.ndarray
    joints_2d_crop_px: object
    object_rotation: np.ndarray
    object_translation_rel: np.ndarray
    object_id: int
    predicted_object_id: object = None


class NetworkPredictor:
    """Runs ``model.predict`` on batches of crops (true object class as the condition)."""

    def __init__(self, model, device):
        """
        Wrap a network.

        :param model: HandObjectNetwork.
        :param device: torch device.
        """
        self.model = model.to(device).eval()
        self.device = device
        self.input_size_px = int(model.cfg.input_size_px)
        self.object_ids = tuple(int(i) for i in model.cfg.object_ids)
        self.faces = model.mano_layer.faces.detach().cpu().numpy().astype(np.int64)
        self.description = 'network'

    def __call__(self, inputs, object_ids):
        """
        Predict a batch.

        :param inputs: list of :class:`NetworkInput`.
        :param object_ids: list of catalogue ids (the condition y).
        :return: list of :class:`RawPrediction`.
        """
        unknown = sorted({i for i in object_ids if i not in self.object_ids})
        if unknown:
            raise EvaluationError("object ids %s are not among the checkpoint's object_ids %s"
                                  % (unknown, list(self.object_ids)))
        images = torch.from_numpy(np.stack([item.image for item in inputs])).to(self.device)
        images = images.permute(0, 3, 1, 2).float().div_(255.0)
        index = torch.as_tensor([self.object_ids.index(i) for i in object_ids],
                                dtype=torch.int64, device=self.device)
        output = self.model.predict(images, index)

        def numpy(tensor):
            return tensor.detach().double().cpu().numpy()

        joints, vertices = numpy(output.joints), numpy(output.vertices)
        joints_2d = numpy(output.joints_2d_crop_px)
        rotation, translation = numpy(output.object_rotation), numpy(output.object_translation)
        chosen = output.object_probs.argmax(dim=1).cpu().tolist()
        return [RawPrediction(joints[i], vertices[i], joints_2d[i], rotation[i], translation[i],
                              object_ids[i], self.object_ids[chosen[i]])
                for i in range(len(inputs))]


def mean_rotation(rotations):
    """Chordal L2 mean of rotation matrices (projection of their mean onto SO(3))."""
    u, _, vt = np.linalg.svd(np.mean(rotations, axis=0))
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        u[:, -1] *= -1
        rotation = u @ vt
    return rotation


def fit_mean_pose_baseline(source, num_samples, description=''):
    """
    Compute the mean-pose baseline from a training split.

    Stats: the mean wrist-relative joints and vertices (camera orientation), and per object id
    (and over all objects) the chordal mean rotation and the mean wrist-relative translation.

    :param source: :class:`EvalSource` of a training split.
    :param num_samples: samples to average (0 = all).
    :param description: what the stats were computed from (stored).
    :return: dict (JSON-serialisable).
    """
    joints, vertices = [], []
    rotations, translations = {}, {}
    for _, sample in iterate_samples(source, num_samples):
        # Left hands enter mirrored, in the right-hand frame the network predicts in.
        sample = sample.in_right_hand_frame()
        wrist = np.asarray(sample.joints_cam[0], np.float64)
        joints.append(np.asarray(sample.joints_cam, np.float64) - wrist)
        vertices.append(np.asarray(sample.vertices_cam, np.float64) - wrist)
        rotation = np.asarray(sample.object_rotation, np.float64)
        translation = np.asarray(sample.object_translation, np.float64) - wrist
        for key in (int(sample.object_id), 'all'):
            rotations.setdefault(key, []).append(rotation)
            translations.setdefault(key, []).append(translation)
    if not joints:
        raise EvaluationError('no samples to fit the baseline on (%s)' % source.name)
    objects = {str(key): {'rotation': mean_rotation(np.array(rotations[key])).tolist(),
                          'translation_rel': np.mean(translations[key], axis=0).tolist(),
                          'count': len(rotations[key])}
               for key in rotations}
    return {
        'format': BASELINE_FORMAT,
        'source': description or source.name,
        'num_samples': len(joints),
        'joints_rel': np.mean(joints, axis=0).tolist(),
        'vertices_rel': np.mean(vertices, axis=0).tolist(),
        'objects': objects,
    }


class MeanPoseBaseline:
    """The training-set mean hand and mean object pose (per object id) for every crop."""

    def __init__(self, stats, input_size_px):
        """
        Wrap fitted stats.

        :param stats: dict of :func:`fit_mean_pose_baseline`.
        :param input_size_px: crop side.
        :raises EvaluationError: stats of another format.
        """
        if not isinstance(stats, dict) or stats.get('format') != BASELINE_FORMAT:
            raise EvaluationError('not a mean-pose baseline file (format %r)'
                                  % (stats.get('format') if isinstance(stats, dict) else None))
        self.stats = stats
        self.input_size_px = int(input_size_px)
        self.joints_rel = np.asarray(stats['joints_rel'], np.float64)
        self.vertices_rel = np.asarray(stats['vertices_rel'], np.float64)
        self.objects = {key: (np.asarray(value['rotation'], np.float64),
                              np.asarray(value['translation_rel'], np.float64))
                        for key, value in stats['objects'].items()}
        from hand_object_pose_ros.mano import ManoLayer

        self.faces = ManoLayer.standin(side='right', flat_hand_mean=True).faces.numpy().astype(
            np.int64)
        self.description = 'mean-pose baseline (%s, %d samples)' % (
            stats['source'], stats['num_samples'])

    @classmethod
    def from_file(cls, path, input_size_px):
        """
        Load the stats JSON.

        :raises EvaluationError: missing or unreadable file (named).
        """
        if not os.path.isfile(path):
            raise EvaluationError('baseline stats file not found: %s (write it with '
                                  '--fit-baseline)' % path)
        try:
            with open(path, encoding='utf-8') as stream:
                stats = json.load(stream)
        except (OSError, ValueError) as error:
            raise EvaluationError('unreadable baseline stats %s: %s' % (path, error)) from error
        return cls(stats, input_size_px)

    def __call__(self, inputs, object_ids):
        """Return the same mean prediction for every crop (per-object mean pose)."""
        out = []
        for object_id in object_ids:
            rotation, translation = self.objects.get(str(int(object_id)), self.objects['all'])
            out.append(RawPrediction(self.joints_rel, self.vertices_rel, None, rotation,
                                     translation, int(object_id), None))
        return out


# --------------------------------------------------------------------------------------------
# Metrics of one sample
# --------------------------------------------------------------------------------------------


def lift_wrist(prediction, network_input_, input_size_px, bbox_scale=DEFAULT_BBOX_SCALE):
    """
    Wrist position in the network's frame, by the hand-size method of inference.py.

    :param prediction: :class:`RawPrediction`.
    :param network_input_: :class:`NetworkInput` (its intrinsics).
    :param input_size_px: crop side.
    :param bbox_scale: the crop's box enlargement (the box side is ``S / bbox_scale``).
    :return: (3,) float64 metres.
    """
    translation = None
    if prediction.joints_2d_crop_px is not None:
        translation = solve_wrist_translation(prediction.joints_rel,
                                              prediction.joints_2d_crop_px,
                                              network_input_.network_K)
    if translation is None:
        centre = np.full(2, (input_size_px - 1) / 2.0)
        translation = translation_from_box(prediction.vertices_rel, network_input_.network_K,
                                           centre, input_size_px / bbox_scale)
    return translation


def sample_metrics(sample, prediction, net_input, mesh, input_size_px, chamfer_seed=0):
    """
    Compute every metric of one sample.

    :param sample: HandObjectSample (ground truth, camera frame).
    :param prediction: :class:`RawPrediction` in the network's frame.
    :param net_input: :class:`NetworkInput` the prediction was made on.
    :param mesh: :class:`ObjectMesh` of the object or None (object metrics become NaN).
    :param input_size_px: crop side.
    :param chamfer_seed: seed of the surface samples of the chamfer distance.
    :return: dict of floats (mm, mm^2) and ``per_joint_rr_mm`` (21,) float64.
    """
    mirror = MIRROR if net_input.mirrored else np.eye(3)
    wrist_pred = lift_wrist(prediction, net_input, input_size_px)
    # Back from the network's (mirrored for left hands) frame to the camera frame.
    joints_rel = prediction.joints_rel @ mirror
    vertices_rel = prediction.vertices_rel @ mirror
    wrist_abs = mirror @ wrist_pred
    rotation = mirror @ prediction.object_rotation @ mirror
    translation_rel = mirror @ prediction.object_translation_rel

    true_joints = np.asarray(sample.joints_cam, np.float64)
    true_wrist = true_joints[0]
    pred_joints = joints_rel + true_wrist
    values = {
        'mje_abs_mm': float(metrics.mje_mm((joints_rel + wrist_abs)[None],
                                           true_joints[None])[0]),
        'mje_rr_mm': float(metrics.root_relative_mje_mm(pred_joints[None], true_joints[None])[0]),
        'mje_pa_mm': float(metrics.procrustes_mje_mm(pred_joints[None], true_joints[None])[0]),
        'per_joint_rr_mm': metrics.root_relative_per_joint_errors_mm(
            pred_joints[None], true_joints[None])[0],
        'class_accuracy': (float(prediction.predicted_object_id == sample.object_id)
                           if prediction.predicted_object_id is not None else float('nan')),
    }
    nan_keys = ('mce_mm', 'mce_cm', 'mce_abs_mm', 'rotation_error_deg', 'translation_error_mm',
                'add_mm', 'adds_mm', 'add_s_mm', 'pen_mean_mm', 'pen_max_mm', 'chamfer_mm2')
    if mesh is None:
        values.update({key: float('nan') for key in nan_keys})
        return values
    true_R = np.asarray(sample.object_rotation, np.float64)[None]  # noqa: N806
    true_t = np.asarray(sample.object_translation, np.float64)[None]
    pred_R = rotation[None]  # noqa: N806
    pred_t = (true_wrist + translation_rel)[None]
    pred_t_abs = (wrist_abs + translation_rel)[None]
    values['mce_mm'] = float(metrics.object_mce_mm(pred_R, pred_t, true_R, true_t,
                                                   mesh.vertices)[0])
    values['mce_cm'] = float(metrics.mm_to_cm(values['mce_mm']))
    values['mce_abs_mm'] = float(metrics.object_mce_mm(pred_R, pred_t_abs, true_R, true_t,
                                                       mesh.vertices)[0])
    values['rotation_error_deg'] = float(metrics.rotation_error_deg(pred_R, true_R)[0])
    values['translation_error_mm'] = float(metrics.translation_error_mm(pred_t, true_t)[0])
    values['add_mm'] = float(metrics.add_mm(pred_R, pred_t, true_R, true_t, mesh.vertices)[0])
    values['adds_mm'] = float(metrics.adds_mm(pred_R, pred_t, true_R, true_t, mesh.vertices)[0])
    values['add_s_mm'] = values['adds_mm'] if mesh.symmetric else values['add_mm']
    object_vertices_pred = mesh.vertices @ pred_R[0].T + pred_t[0]
    hand_vertices_pred = vertices_rel + true_wrist
    depths = metrics.penetration_depths_mm(hand_vertices_pred[None], object_vertices_pred[None],
                                           mesh.faces)[0]
    values['pen_mean_mm'] = float(depths.mean())
    values['pen_max_mm'] = float(depths.max())
    points = metrics.sample_surface_points(mesh.vertices, mesh.faces, CHAMFER_POINTS,
                                           seed=chamfer_seed)
    values['chamfer_mm2'] = float(metrics.chamfer_mm2(points @ pred_R[0].T + pred_t[0],
                                                      points @ true_R[0].T + true_t[0]))
    return values


# --------------------------------------------------------------------------------------------
# The evaluation loop and the report
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class EvaluationSettings:
    """
    Settings of one evaluation run.

    :param modes: crop modes, subset of ``('gt', 'jitter')``.
    :param num_samples: samples to evaluate (0 = the whole split; synthetic needs a number).
    :param batch_size: crops per network call.
    :param jitter_center: centre-shift std, fraction of the box side.
    :param jitter_scale: std of the log box-size factor.
    :param seed: seed of the jitter (per sample: ``(seed, index)``).
    """

    modes: tuple = ('gt', 'jitter')
    num_samples: int = 500
    batch_size: int = 16
    jitter_center: float = 0.1
    jitter_scale: float = 0.1
    seed: int = 0


def _summarise(rows):
    """Mean of every column over rows (NaN-aware), plus the count."""
    summary = {'count': len(rows)}
    for key, _ in COLUMNS:
        column = np.array([row[key] for row in rows], np.float64)
        finite = column[np.isfinite(column)]
        summary[key] = float(finite.mean()) if finite.size else None
    return summary


def evaluate(predictor, source, settings, object_names=None):
    """
    Evaluate a predictor on a source in each crop mode.

    :param predictor: :class:`NetworkPredictor` or :class:`MeanPoseBaseline`.
    :param source: :class:`EvalSource`.
    :param settings: :class:`EvaluationSettings`.
    :param object_names: optional dict id -> name for the rows.
    :return: dict mode -> {'total': summary, 'per_object': {id: summary}, 'per_joint_rr_mm':
        (21,) list, 'pck': {...}, 'samples': per-sample rows}.
    """
    if settings.num_samples <= 0 and len(source) >= 10 ** 9:
        raise EvaluationError('give --num-samples for the synthetic set (it is endless)')
    rows = {mode: [] for mode in settings.modes}
    per_joint = {mode: [] for mode in settings.modes}
    batch = []

    def flush():
        for mode in settings.modes:
            inputs = [network_input(sample, mode, np.random.default_rng([settings.seed, index]),
                                    settings.jitter_center, settings.jitter_scale)
                      for index, sample, _ in batch]
            predictions = predictor(inputs, [int(sample.object_id) for _, sample, _ in batch])
            for (index, sample, mesh), net_input, prediction in zip(batch, inputs, predictions):
                values = sample_metrics(sample, prediction, net_input, mesh,
                                        predictor.input_size_px, chamfer_seed=index)
                per_joint[mode].append(values.pop('per_joint_rr_mm'))
                values['index'] = int(index)
                values['object_id'] = int(sample.object_id)
                rows[mode].append(values)
        batch.clear()

    from tqdm import tqdm

    total = settings.num_samples or len(source)
    # tqdm draws its bar on a terminal only (disable=None); elsewhere (a log file, CI) a line
    # every ~10 % of the samples tells that a long run progresses.
    progress = tqdm(iterate_samples(source, settings.num_samples), total=total,
                    desc='evaluate', unit='sample', leave=False, disable=None)
    report_every = max(1, math.ceil(total / 10))
    for count, (index, sample) in enumerate(progress, 1):
        batch.append((index, sample, source.mesh(index, sample)))
        if len(batch) >= settings.batch_size:
            flush()
        if progress.disable and (count % report_every == 0 or count == total):
            LOGGER.info('evaluate: %d / %d samples (%.0f %%)', count, total, 100.0 * count / total)
    if batch:
        flush()
    results = {}
    for mode in settings.modes:
        if not rows[mode]:
            raise EvaluationError('no samples were evaluated (%s)' % source.name)
        ids = sorted({row['object_id'] for row in rows[mode]})
        per_object = {}
        for object_id in ids:
            summary = _summarise([row for row in rows[mode] if row['object_id'] == object_id])
            if object_names and object_id in object_names:
                summary['name'] = object_names[object_id]
            per_object[str(object_id)] = summary
        joint_errors = np.array(per_joint[mode])
        results[mode] = {
            'total': _summarise(rows[mode]),
            'per_object': per_object,
            'per_joint_rr_mm': joint_errors.mean(axis=0).tolist(),
            'pck': {'thresholds_mm': PCK_THRESHOLDS_MM.tolist(),
                    'fraction': metrics.pck_curve(joint_errors, PCK_THRESHOLDS_MM).tolist(),
                    'auc_0_50mm': metrics.pck_auc(joint_errors, PCK_THRESHOLDS_MM)},
            'samples': rows[mode],
        }
    return results


def _format(value, key):
    """Table cell of a value."""
    if value is None:
        return 'n/a'
    if key == 'class_accuracy':
        return '%.3f' % value
    if key == 'mce_cm':
        return '%.2f' % value
    return '%.1f' % value


def markdown_report(results, header):
    """
    Markdown tables (one per crop mode): per-object rows and the total.

    :param results: output of :func:`evaluate`.
    :param header: dict of run facts listed above the tables.
    :return: str.
    """
    lines = ['# Evaluation', '']
    lines += ['- **%s**: %s' % (key, value) for key, value in header.items()]
    lines.append('')
    titles = {'gt': 'Ground-truth hand box', 'jitter': 'Jittered hand box (detector-like)'}
    for mode, result in results.items():
        lines += ['## %s crop' % titles.get(mode, mode), '']
        lines.append('| Object | N | ' + ' | '.join(title for _, title in COLUMNS) + ' |')
        lines.append('|---|---:|' + '---:|' * len(COLUMNS))
        for object_id, summary in result['per_object'].items():
            name = summary.get('name', object_id)
            lines.append('| %s | %d | ' % (name, summary['count']) + ' | '.join(
                _format(summary[key], key) for key, _ in COLUMNS) + ' |')
        total = result['total']
        lines.append('| **Total** | %d | ' % total['count'] + ' | '.join(
            _format(total[key], key) for key, _ in COLUMNS) + ' |')
        lines += ['', 'Hand PCK AUC (root-relative, 0-50 mm): %.3f' % result['pck']['auc_0_50mm'],
                  '']
    lines += ['MJE abs: joints lifted by the hand-size method of inference.py (the baseline: by '
              'its box); object errors place the predicted pose at the true wrist (MCE abs: '
              'at the lifted wrist). ADD(-S): ADD-S for symmetric objects. Pen. mean: DexYCB '
              'variant; Pen. max: ObMan variant; Chamfer: ObMan, 600 points.', '']
    return '\n'.join(lines)


def write_plots(results, output_dir):
    """
    Write the PNG plots: per-joint errors, PCK curve, error histograms per object.

    :param results: output of :func:`evaluate`.
    :param output_dir: folder.
    :return: list of written paths.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot

    paths = []

    def save(figure, name):
        figure.tight_layout()
        paths.append(os.path.join(output_dir, name))
        figure.savefig(paths[-1], dpi=100)
        pyplot.close(figure)

    for mode, result in results.items():
        figure, axis = pyplot.subplots(figsize=(10, 4))
        axis.bar(np.arange(len(HAND_JOINT_NAMES)), result['per_joint_rr_mm'], color='tab:blue')
        axis.set_xticks(np.arange(len(HAND_JOINT_NAMES)))
        axis.set_xticklabels(HAND_JOINT_NAMES, rotation=60, ha='right', fontsize=8)
        axis.set_ylabel('root-relative error (mm)')
        axis.set_title('Per-joint error (%s crop)' % mode)
        save(figure, 'per_joint_error_%s.png' % mode)

        figure, axis = pyplot.subplots(figsize=(5, 4))
        axis.plot(result['pck']['thresholds_mm'], result['pck']['fraction'], color='tab:green')
        axis.set_xlabel('threshold (mm)')
        axis.set_ylabel('PCK (root-relative joints)')
        axis.set_ylim(0.0, 1.0)
        axis.set_title('PCK, %s crop (AUC %.3f)' % (mode, result['pck']['auc_0_50mm']))
        axis.grid(True, alpha=0.3)
        save(figure, 'pck_%s.png' % mode)

        ids = list(result['per_object'])
        columns = min(4, len(ids))
        rows_count = int(math.ceil(len(ids) / columns))
        figure, axes = pyplot.subplots(rows_count, columns, squeeze=False,
                                       figsize=(3.2 * columns, 2.6 * rows_count))
        for axis, object_id in zip(axes.ravel(), ids):
            errors = [row['mce_mm'] for row in result['samples']
                      if str(row['object_id']) == object_id and np.isfinite(row['mce_mm'])]
            axis.hist(errors, bins=20, color='tab:orange')
            axis.set_title(result['per_object'][object_id].get('name', object_id), fontsize=8)
            axis.set_xlabel('MCE (mm)', fontsize=8)
        for axis in axes.ravel()[len(ids):]:
            axis.axis('off')
        figure.suptitle('Object MCE per object (%s crop)' % mode)
        save(figure, 'object_error_hist_%s.png' % mode)
    return paths


def write_report(results, header, output_dir):
    """
    Write ``results.json``, ``results.md`` and the plots.

    :return: dict name -> path.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = {'json': os.path.join(output_dir, 'results.json'),
             'markdown': os.path.join(output_dir, 'results.md')}
    with open(paths['json'], 'w', encoding='utf-8') as stream:
        json.dump({'run': header, 'results': results}, stream, indent=1,
                  default=lambda value: None if isinstance(value, float) and
                  not math.isfinite(value) else value)
    with open(paths['markdown'], 'w', encoding='utf-8') as stream:
        stream.write(markdown_report(results, header))
    paths['plots'] = write_plots(results, output_dir)
    return paths


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_arg_parser():
    """Return the argparse parser of the command line."""
    parser = argparse.ArgumentParser(
        prog='hand_object_pose_evaluate',
        description="Evaluate a checkpoint (or the mean-pose baseline) with the papers' "
                    'metrics.')
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument('--checkpoint', help='checkpoint to evaluate')
    what.add_argument('--baseline', choices=('mean-pose',), help='evaluate a trivial baseline')
    what.add_argument('--fit-baseline', metavar='JSON', help='compute the mean-pose baseline '
                      'from --dataset/--split (a training split) and write it here')
    parser.add_argument('--baseline-stats', metavar='JSON', help='stats of --baseline')
    parser.add_argument('--dataset', choices=('synthetic', 'dexycb', 'obman'),
                        default='synthetic')
    parser.add_argument('--root', default='', help='DexYCB / ObMan root (synthetic: optional '
                        'shard folder)')
    parser.add_argument('--split', default=None, help='synthetic: heldout (default) or train; '
                        'DexYCB s0 / ObMan: test (default), val, train')
    parser.add_argument('--seed', type=int, default=0, help='synthetic base seed')
    parser.add_argument('--num-samples', type=int, default=500, help='0 = the whole split')
    parser.add_argument('--input-size', type=int, default=None,
                        help="crop side for the baseline (default: 128, the lite model's)")
    parser.add_argument('--crop-mode', choices=('gt', 'jitter', 'both'), default='both')
    parser.add_argument('--jitter-center', type=float, default=0.1,
                        help='std of the box centre shift, fraction of the box side')
    parser.add_argument('--jitter-scale', type=float, default=0.1,
                        help='std of the log box-size factor')
    parser.add_argument('--jitter-seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N')
    parser.add_argument('--output-dir', default='eval')
    return parser


def _device(name):
    """Torch device of a --device value."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


def run(args):
    """
    Run the command line's job.

    :param args: parsed arguments.
    :return: dict of written paths.
    """
    catalogue = load_object_catalogue()
    names = {model.id: model.name for model in catalogue}
    if args.fit_baseline:
        size = args.input_size or 128
        source = open_source(args.dataset, args.root, args.split or 'train', size, args.seed)
        stats = fit_mean_pose_baseline(source, args.num_samples)
        folder = os.path.dirname(os.path.abspath(args.fit_baseline))
        os.makedirs(folder, exist_ok=True)
        with open(args.fit_baseline, 'w', encoding='utf-8') as stream:
            json.dump(stats, stream)
        LOGGER.info('wrote the mean-pose baseline (%d samples of %s) to %s',
                    stats['num_samples'], stats['source'], args.fit_baseline)
        return {'baseline': args.fit_baseline}
    if args.checkpoint:
        model = load_model_from_checkpoint(args.checkpoint, device=_device(args.device))
        predictor = NetworkPredictor(model, _device(args.device))
        predictor.description = 'checkpoint %s' % args.checkpoint
    else:
        if not args.baseline_stats:
            raise EvaluationError('--baseline mean-pose needs --baseline-stats JSON')
        predictor = MeanPoseBaseline.from_file(args.baseline_stats, args.input_size or 128)
    source = open_source(args.dataset, args.root, args.split, predictor.input_size_px,
                         args.seed)
    settings = EvaluationSettings(
        modes=('gt', 'jitter') if args.crop_mode == 'both' else (args.crop_mode,),
        num_samples=args.num_samples, batch_size=args.batch_size,
        jitter_center=args.jitter_center, jitter_scale=args.jitter_scale,
        seed=args.jitter_seed)
    results = evaluate(predictor, source, settings, names)
    header = {
        'predictor': predictor.description,
        'dataset': source.name,
        'samples': results[settings.modes[0]]['total']['count'],
        'input_size_px': predictor.input_size_px,
        'jitter': 'centre std %.2f x box side, log-scale std %.2f, seed %d'
                  % (settings.jitter_center, settings.jitter_scale, settings.seed),
    }
    paths = write_report(results, header, args.output_dir)
    for mode, result in results.items():
        total = result['total']
        print('%-6s N=%d  MJE abs %s / RR %s / PA %s mm   MCE %s mm   ADD(-S) %s mm' % (
            mode, total['count'], _format(total['mje_abs_mm'], ''),
            _format(total['mje_rr_mm'], ''), _format(total['mje_pa_mm'], ''),
            _format(total['mce_mm'], ''), _format(total['add_s_mm'], '')))
    print('wrote %s and %s' % (paths['json'], paths['markdown']))
    return paths


def main(argv=None):
    """
    Command-line entry point.

    :param argv: arguments (default ``sys.argv[1:]``).
    :return: process exit status.
    """
    args = build_arg_parser().parse_args(argv)
    from hand_object_pose_ros.data.common import DatasetError

    return run_command('hand_object_pose_evaluate', lambda: run(args),
                       (EvaluationError, CheckpointError, FileNotFoundError, DatasetError))


if __name__ == '__main__':
    sys.exit(main())
