"""
Inference: (RGB image, hand box, K[, aligned depth]) -> hand mesh and object pose, camera frame.

:class:`Predictor` crops each hand with :func:`hand_object_pose_ros.crop.crop_hand` (the crop
the datasets use), runs the network on all hands of a frame in one batch, and lifts the
network's wrist-relative outputs into the camera frame.

Lifting (the network predicts everything relative to the wrist, plus 2D joints in the crop):

- From the hand's size (no depth, ``wrist_depth_source='hand_size'``): the wrist translation
  ``T`` minimising the pixel reprojection error of ``joints_rel + T`` against the predicted 2D
  joints, using the crop's intrinsics: a linear least-squares start followed by Gauss-Newton
  on the true reprojection error. When that is degenerate (2D joints collapsed to a point, the
  hand behind the camera, a depth outside ``[MIN_DEPTH_M, MAX_DEPTH_M]``), the hand's metric
  extent against the box size gives the depth instead and the box centre the direction.
- From an aligned depth image (``wrist_depth_source='depth'``): every joint's 2D position
  gives a depth sample (median of the valid pixels, 0 / NaN ignored, in a
  ``(2 * depth_window_half_px + 1)^2`` window); subtracting the joint's predicted depth relative
  to the wrist turns each sample into a wrist-depth candidate, and the wrist depth is their
  median plus ``depth_surface_offset_m`` (the sensor sees the skin, joint centres lie behind
  it). Using all 21 joints and a median keeps it right when the wrist itself is occluded (by
  the object, the sleeve) or some 2D joints fall on the background; with no valid sample it
  falls back to the hand-size estimate. Given that depth, ``T_x, T_y`` minimise the
  reprojection error (linear least squares).

Left hands run as right hands on the mirrored crop (``crop_hand(flip=True)``). The network's
outputs then live in a mirrored camera frame whose intrinsics are ``crop_K @ M`` with
``M = diag(-1, 1, 1)``; after lifting there, points map back with ``x -> -x``, rotations with
``R -> M R M`` and MANO axis-angles with ``(x, y, z) -> (x, -y, -z)`` (the left MANO hand is the
mirror of the right one; use ``Predictor.faces_left``, the re-wound faces, with left meshes).
"""

import math
import os

import numpy as np
import torch

from hand_object_pose_ros.config import load_model_config
from hand_object_pose_ros.config import ModelConfig
from hand_object_pose_ros.constants import DEFAULT_BBOX_SCALE
from hand_object_pose_ros.crop import AXIS_ANGLE_MIRROR
from hand_object_pose_ros.crop import crop_hand
from hand_object_pose_ros.crop import InvalidBoxError
from hand_object_pose_ros.crop import MIRROR
from hand_object_pose_ros.crop import transform_points_2d
from hand_object_pose_ros.mano import ManoLayer
from hand_object_pose_ros.modeling.build import build_model
from hand_object_pose_ros.modeling.checkpoint import CheckpointError
from hand_object_pose_ros.modeling.checkpoint import load_model_from_checkpoint
from hand_object_pose_ros.modeling.optimize import OptimizeError
from hand_object_pose_ros.modeling.optimize import prepare_inference
from hand_object_pose_ros.types import Prediction

# Plausible wrist depths (metres); a lift outside this range is treated as degenerate.
MIN_DEPTH_M = 0.05
MAX_DEPTH_M = 10.0
# Half side of the depth window sampled around each joint (pixels of the full image).
DEFAULT_DEPTH_WINDOW_HALF_PX = 3
# Joint centres lie about this far behind the skin surface the depth sensor measures.
DEFAULT_DEPTH_SURFACE_OFFSET_M = 0.01
# 2D joints spread over less than this (crop pixels) cannot fix the hand's depth.
MIN_JOINT_SPREAD_PX = 1.0
GAUSS_NEWTON_ITERATIONS = 10


class PredictorError(ValueError):
    """An input or a model the predictor cannot work with; the message says what and why."""


class PredictorBoxError(PredictorError, InvalidBoxError):
    """A hand box that cannot be cropped (also a ``crop.InvalidBoxError``)."""


def resolve_device(device='auto'):
    """
    Pick the torch device.

    :param device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N', or a
        torch.device.
    :return: torch.device.
    :raises PredictorError: an unknown name, or CUDA asked for but not available.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device in (None, '', 'auto'):
        resolved = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise PredictorError('unknown device %r (use auto, cpu, cuda or cuda:N)'
                                 % (device,)) from error
    if resolved.type == 'cuda' and not torch.cuda.is_available():
        raise PredictorError('device %s asked for, but CUDA is not available here '
                             '(use device="auto" or "cpu")' % resolved)
    return resolved


def validate_intrinsics(K):
    """
    Check a camera matrix.

    :param K: (3, 3) intrinsics of the full image.
    :return: (3, 3) float64 copy.
    :raises PredictorError: wrong shape, NaN / inf, or fx, fy <= 0.
    """
    try:
        matrix = np.array(K, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise PredictorError('K must be a 3x3 numeric matrix: %s' % error) from error
    if matrix.shape != (3, 3):
        raise PredictorError('K must be 3x3, got shape %s' % (matrix.shape,))
    if not np.all(np.isfinite(matrix)):
        raise PredictorError('K has NaN or infinite entries: %s' % matrix.tolist())
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise PredictorError('K has invalid focal lengths fx=%g, fy=%g (uncalibrated camera?)'
                             % (matrix[0, 0], matrix[1, 1]))
    return matrix


def project(points, K):
    """
    Project camera-frame points with a pinhole K (numpy twin of ``geometry.project_points``).

    :param points: (N, 3) metres, camera frame, z > 0.
    :param K: (3, 3) intrinsics.
    :return: (N, 2) float64 pixels.
    """
    homogeneous = np.asarray(points, np.float64) @ np.asarray(K, np.float64).T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def reprojection_error_px(points, points_2d_px, K):
    """
    Mean pixel distance between projected points and 2D observations.

    :param points: (N, 3) metres, camera frame.
    :param points_2d_px: (N, 2) pixels.
    :param K: (3, 3) intrinsics.
    :return: float pixels.
    """
    return float(np.linalg.norm(project(points, K) - points_2d_px, axis=1).mean())


def _normalised(points_2d_px, K):
    """Undo K: (N, 2) pixels -> (N, 2) normalised image coordinates (x/z, y/z)."""
    inverse = np.linalg.inv(K)
    homogeneous = np.concatenate((points_2d_px, np.ones((len(points_2d_px), 1))), axis=1)
    rays = homogeneous @ inverse.T
    return rays[:, :2] / rays[:, 2:3]


def solve_wrist_translation(joints_rel, joints_2d_px, K, depth=None):
    """
    Find the translation that makes wrist-relative joints project onto their 2D positions.

    Minimises ``sum_j |project(K, joints_rel_j + T) - joints_2d_px_j|^2``: the linear
    (algebraic) least-squares solution, refined by Gauss-Newton on the pixel error. With
    ``depth`` given, ``T_z = depth`` and only ``T_x, T_y`` are solved (linear, exact).

    :param joints_rel: (N, 3) metres, relative to the wrist, camera orientation.
    :param joints_2d_px: (N, 2) pixels of the image K belongs to.
    :param K: (3, 3) intrinsics (any skew-free pinhole, possibly of a crop).
    :param depth: wrist depth in metres, or None to solve it.
    :return: (3,) float64 translation (the wrist position), or None when degenerate (2D
        points collapsed, a singular system, points behind the camera, or a wrist depth
        outside ``[MIN_DEPTH_M, MAX_DEPTH_M]``).
    """
    joints_rel = np.asarray(joints_rel, np.float64)
    observed = np.asarray(joints_2d_px, np.float64)
    K = np.asarray(K, np.float64)
    rays = _normalised(observed, K)
    x, y = rays[:, 0], rays[:, 1]
    X, Y, Z = joints_rel[:, 0], joints_rel[:, 1], joints_rel[:, 2]  # noqa: N806
    if depth is not None:
        depth = float(depth)
        if not (np.isfinite(depth) and MIN_DEPTH_M <= depth <= MAX_DEPTH_M):
            return None
        z = Z + depth
        if np.any(z <= 0):
            return None
        # (X + T_x) / (Z + T_z) = x, weighted by (Z + T_z): the pixel error up to fx.
        weights = 1.0 / z ** 2
        translation = np.array([np.sum(weights * (x * z - X)) / weights.sum(),
                                np.sum(weights * (y * z - Y)) / weights.sum(), depth])
        return translation if np.all(np.isfinite(translation)) else None
    spread = np.ptp(observed, axis=0).max()
    if not np.isfinite(spread) or spread < MIN_JOINT_SPREAD_PX:
        return None
    count = len(joints_rel)
    # Rows: T_x - x T_z = x Z - X ; T_y - y T_z = y Z - Y.
    A = np.zeros((2 * count, 3))  # noqa: N806
    A[0::2, 0] = 1.0
    A[0::2, 2] = -x
    A[1::2, 1] = 1.0
    A[1::2, 2] = -y
    b = np.empty(2 * count)
    b[0::2] = x * Z - X
    b[1::2] = y * Z - Y
    normal = A.T @ A
    if not np.all(np.isfinite(normal)) or np.linalg.cond(normal) > 1e12:
        return None
    translation = np.linalg.solve(normal, A.T @ b)
    fx, fy = K[0, 0], K[1, 1]
    for _ in range(GAUSS_NEWTON_ITERATIONS):
        points = joints_rel + translation
        if np.any(points[:, 2] <= 1e-6):
            return None
        inverse_z = 1.0 / points[:, 2]
        residual = project(points, K) - observed
        jacobian = np.zeros((count, 2, 3))
        jacobian[:, 0, 0] = fx * inverse_z
        jacobian[:, 0, 1] = K[0, 1] * inverse_z  # skew (0 for usual cameras)
        jacobian[:, 0, 2] = -(fx * points[:, 0] + K[0, 1] * points[:, 1]) * inverse_z ** 2
        jacobian[:, 1, 1] = fy * inverse_z
        jacobian[:, 1, 2] = -fy * points[:, 1] * inverse_z ** 2
        jacobian = jacobian.reshape(-1, 3)
        try:
            step = np.linalg.lstsq(jacobian, -residual.reshape(-1), rcond=None)[0]
        except np.linalg.LinAlgError:
            return None
        translation = translation + step
        if np.max(np.abs(step)) < 1e-10:
            break
    if not np.all(np.isfinite(translation)) or np.any(joints_rel[:, 2] + translation[2] <= 0):
        return None
    if not MIN_DEPTH_M <= translation[2] <= MAX_DEPTH_M:
        return None
    return translation


def translation_from_box(vertices_rel, K, box_center_px, box_side_px):
    """
    Fallback lift: the hand's metric extent against its box size, centred on the box.

    :param vertices_rel: (778, 3) metres, relative to the wrist, camera orientation.
    :param K: (3, 3) intrinsics of the image the box is in.
    :param box_center_px: (2,) box centre, pixels.
    :param box_side_px: longer side of the (unscaled) hand box, pixels.
    :return: (3,) float64 wrist translation.
    :raises PredictorError: a hand without extent or a non-finite result.
    """
    vertices_rel = np.asarray(vertices_rel, np.float64)
    extent = float(np.ptp(vertices_rel[:, :2], axis=0).max())
    if not np.isfinite(extent) or extent <= 1e-4 or box_side_px <= 0:
        raise PredictorError('cannot place the hand: predicted hand extent %.3g m, box side '
                             '%.3g px' % (extent, box_side_px))
    focal = math.sqrt(K[0, 0] * K[1, 1])
    centroid = vertices_rel.mean(axis=0)
    centroid_depth = float(np.clip(focal * extent / box_side_px, MIN_DEPTH_M, MAX_DEPTH_M))
    ray = _normalised(np.asarray(box_center_px, np.float64).reshape(1, 2), K)[0]
    translation = np.array([ray[0] * centroid_depth, ray[1] * centroid_depth,
                            centroid_depth]) - centroid
    if not np.all(np.isfinite(translation)):
        raise PredictorError('cannot place the hand: non-finite translation')
    return translation


def sample_depth_m(depth, points_px, window_half_px=DEFAULT_DEPTH_WINDOW_HALF_PX):
    """
    Median of the valid depth pixels in a square window around each point.

    :param depth: (H, W) float metres; 0, negative, NaN and inf are invalid.
    :param points_px: (N, 2) pixels (u, v) of the full image.
    :param window_half_px: half side of the window (window side 2 * half + 1).
    :return: (N,) float64 metres, NaN where a window holds no valid pixel (or lies outside).
    """
    height, width = depth.shape
    out = np.full(len(points_px), np.nan)
    for index, (u, v) in enumerate(np.asarray(points_px, np.float64)):
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        column, row = int(round(u)), int(round(v))
        left, right = max(column - window_half_px, 0), min(column + window_half_px + 1, width)
        top, bottom = max(row - window_half_px, 0), min(row + window_half_px + 1, height)
        if left >= right or top >= bottom:
            continue
        window = depth[top:bottom, left:right]
        valid = window[np.isfinite(window) & (window > 0)]
        if valid.size:
            out[index] = float(np.median(valid))
    return out


class Predictor:
    """
    Hand mesh and object pose from an RGB image and hand boxes (no ROS).

    Attributes: ``faces`` (1538, 3) int32 MANO faces of the right hand (``faces_left``: the
    re-wound faces for left-hand meshes), ``object_ids`` (catalogue ids, class index =
    position), ``device``, ``is_standin_mano``, ``input_size_px``, ``bbox_scale``, ``fp16``.
    """

    def __init__(self, model, device='auto', fp16=False, bbox_scale=DEFAULT_BBOX_SCALE,
                 depth_window_half_px=DEFAULT_DEPTH_WINDOW_HALF_PX,
                 depth_surface_offset_m=DEFAULT_DEPTH_SURFACE_OFFSET_M, optimize='auto'):
        """
        Wrap a network (use :meth:`from_checkpoint` or :meth:`from_config`).

        :param model: HandObjectNetwork (``model.cfg``, ``model.predict``, ``model.mano_layer``).
        :param device: 'auto', 'cpu', 'cuda', 'cuda:N' or torch.device; the model moves there.
        :param fp16: run the network under float16 autocast on CUDA (ignored on the CPU).
        :param bbox_scale: enlargement of the squared hand box (as in training).
        :param depth_window_half_px: half side of the depth window around each joint, pixels.
        :param depth_surface_offset_m: added to the depth reading (joint centre behind skin).
        :param optimize: network path (``modeling.optimize.OPTIMIZE_MODES``): 'auto' (the
            fastest path tested to agree with the reference; checked once here, falling back
            to the reference path on a mismatch), 'none' (``model.predict``, the reference),
            'fused', 'compile', 'onnxruntime'. The fast paths run a snapshot of the weights
            taken here. ``optimize_mode`` tells the one in use.
        """
        if not float(bbox_scale) > 0:
            raise PredictorError('bbox_scale must be > 0, got %r' % (bbox_scale,))
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.fp16 = bool(fp16) and self.device.type == 'cuda'
        self.bbox_scale = float(bbox_scale)
        self.depth_window_half_px = int(depth_window_half_px)
        self.depth_surface_offset_m = float(depth_surface_offset_m)
        self.input_size_px = int(model.cfg.input_size_px)
        self.object_ids = tuple(int(i) for i in model.cfg.object_ids)
        mano = model.mano_layer
        self.is_standin_mano = bool(getattr(mano, 'is_standin', False))
        self.faces = np.ascontiguousarray(mano.faces.detach().cpu().numpy(), dtype=np.int32)
        self.faces_left = np.ascontiguousarray(self.faces[:, ::-1])
        try:
            self.inference = prepare_inference(self.model, optimize)
        except OptimizeError as error:
            raise PredictorError('optimize=%r: %s' % (optimize, error)) from error
        self.optimize_mode = self.inference.mode

    # ----- construction -------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path, device='auto', mano_model_path=None, fp16=False,
                        bbox_scale=DEFAULT_BBOX_SCALE, **kwargs):
        """
        Load a trained network from a checkpoint (its config is stored inside).

        :param path: checkpoint file (``modeling.checkpoint.save_checkpoint``).
        :param device: see :func:`resolve_device`.
        :param mano_model_path: MANO file or folder replacing the one the checkpoint names;
            None or '' keeps the checkpoint's (the stand-in hand when it names none).
        :param fp16: float16 autocast on CUDA.
        :param bbox_scale: box enlargement used in training.
        :param kwargs: further :class:`Predictor` options (depth window, surface offset).
        :return: Predictor.
        :raises PredictorError: missing file, a file that is not a checkpoint of this package,
            another architecture, or an unreadable MANO file (the cause is in the message).
        """
        if path is None or not os.path.isfile(os.fspath(path)):
            raise PredictorError('checkpoint not found: %s' % (path,))
        mano_layer = _mano_layer_from_path(mano_model_path)
        resolved = resolve_device(device)
        try:
            model = load_model_from_checkpoint(path, device='cpu', mano_layer=mano_layer)
        except (CheckpointError, FileNotFoundError, ValueError) as error:
            raise PredictorError('cannot load checkpoint %s: %s' % (path, error)) from error
        return cls(model, resolved, fp16=fp16, bbox_scale=bbox_scale, **kwargs)

    @classmethod
    def from_config(cls, config, device='auto', seed=0, mano_model_path=None, fp16=False,
                    bbox_scale=DEFAULT_BBOX_SCALE, overrides=(), **kwargs):
        """
        Build a network with random weights (before a checkpoint exists; outputs meaningless).

        :param config: ModelConfig or a YAML path (e.g. ``config/model_lite.yaml``).
        :param device: see :func:`resolve_device`.
        :param seed: torch seed of the weight initialisation (the global RNG is left as is).
        :param mano_model_path: MANO file or folder; None or '' keeps the config's.
        :param fp16: float16 autocast on CUDA.
        :param bbox_scale: box enlargement.
        :param overrides: ``'key=value'`` config overrides for a YAML path, e.g.
            ``('input_size_px=64',)``.
        :param kwargs: further :class:`Predictor` options.
        :return: Predictor.
        :raises PredictorError: missing or invalid config, unreadable MANO file.
        """
        try:
            if isinstance(config, ModelConfig):
                if overrides:
                    raise PredictorError('overrides apply to a YAML config path only')
                cfg = config
            else:
                cfg = load_model_config(config, overrides)
        except (FileNotFoundError, ValueError) as error:
            if isinstance(error, PredictorError):
                raise
            raise PredictorError('cannot load model config %s: %s' % (config, error)) from error
        mano_layer = _mano_layer_from_path(mano_model_path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            try:
                model = build_model(cfg, mano_layer=mano_layer)
            except ValueError as error:
                raise PredictorError('cannot build the model: %s' % error) from error
        return cls(model, device, fp16=fp16, bbox_scale=bbox_scale, **kwargs)

    # ----- prediction ---------------------------------------------------------------------

    def __call__(self, rgb, bbox_xyxy_px, K, object_id='auto', depth=None,
                 is_right_hand=True):
        """
        Predict one hand and its object.

        :param rgb: (H, W, 3) uint8 RGB full image.
        :param bbox_xyxy_px: (4,) hand box x0, y0, x1, y1, full-image pixels (the box spans
            ``[x0, x1]`` in pixel-edge coordinates, as ``crop.crop_hand`` takes it).
        :param K: (3, 3) intrinsics of the full image.
        :param object_id: catalogue id of the held object, or 'auto' (the classifier picks).
        :param depth: (H, W) float metres aligned to ``rgb`` (0 / NaN = invalid), or None.
        :param is_right_hand: False for a left hand (run mirrored).
        :return: :class:`hand_object_pose_ros.types.Prediction`, camera frame, metres.
        :raises PredictorError: for bad inputs (the message says which) or a non-finite
            result; :class:`PredictorBoxError` (also ``crop.InvalidBoxError``) for a bad box.
        """
        box = np.asarray(bbox_xyxy_px, dtype=np.float64)
        if box.shape != (4,):
            raise PredictorBoxError('hand box must have 4 values (x0, y0, x1, y1), got shape %s'
                                    % (box.shape,))
        return self.predict_batch(rgb, box[None], K, [object_id], depth, [is_right_hand])[0]

    def predict_batch(self, rgb, bboxes_xyxy_px, K, object_ids='auto', depth=None,
                      is_right_hand=True):
        """
        Predict several hands of one image in one network call.

        :param rgb: (H, W, 3) uint8 RGB full image.
        :param bboxes_xyxy_px: (N, 4) hand boxes, full-image pixels.
        :param K: (3, 3) intrinsics of the full image.
        :param object_ids: 'auto', one catalogue id for all hands, or a sequence of N entries
            (ids or 'auto').
        :param depth: (H, W) float metres aligned to ``rgb``, or None.
        :param is_right_hand: one bool for all hands or a sequence of N bools.
        :return: list of N :class:`Prediction` in box order (empty for N = 0).
        :raises PredictorError: see :meth:`__call__`.
        """
        image = self._validate_image(rgb)
        K = validate_intrinsics(K)
        boxes = np.asarray(bboxes_xyxy_px, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise PredictorBoxError('hand boxes must be (N, 4), got shape %s' % (boxes.shape,))
        count = len(boxes)
        if count == 0:
            return []
        class_indices = self._class_indices(object_ids, count)
        sides = self._sides(is_right_hand, count)
        depth = self._validate_depth(depth, image.shape[:2])

        crops = []
        for index in range(count):
            try:
                crops.append(crop_hand(image, boxes[index], K, self.input_size_px,
                                       self.bbox_scale, flip=not sides[index]))
            except InvalidBoxError as error:
                raise PredictorBoxError('hand %d: %s' % (index, error)) from error
        output = self._run_network(np.stack([c.image for c in crops]), class_indices)

        predictions = []
        for index, crop in enumerate(crops):
            predictions.append(self._lift(
                index, output, crop, boxes[index], K, depth, sides[index],
                given=class_indices[index] is not None))
        return predictions

    # ----- helpers ------------------------------------------------------------------------

    @staticmethod
    def _validate_image(rgb):
        """Check the RGB image: (H, W, 3) uint8."""
        image = np.asarray(rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise PredictorError('rgb must be an (H, W, 3) uint8 RGB image, got %s %s'
                                 % (image.dtype, image.shape))
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise PredictorError('rgb is empty: %s' % (image.shape,))
        return image

    @staticmethod
    def _validate_depth(depth, shape):
        """Check the depth image: (H, W) float metres of the RGB's size; returns float32."""
        if depth is None:
            return None
        array = np.asarray(depth)
        if array.ndim != 2 or array.shape != tuple(shape):
            raise PredictorError('depth must be (H, W) = %s aligned to the RGB image, got %s'
                                 % (tuple(shape), array.shape))
        if not np.issubdtype(array.dtype, np.floating):
            raise PredictorError('depth must be float metres, got %s (convert millimetres '
                                 'with depth_mm / 1000.0)' % array.dtype)
        return array.astype(np.float32, copy=False)

    def _class_indices(self, object_ids, count):
        """Return a list of N class indices (None where the classifier picks)."""
        if isinstance(object_ids, str) or np.ndim(object_ids) == 0:
            entries = [object_ids] * count
        else:
            entries = list(object_ids)
            if len(entries) != count:
                raise PredictorError('object_ids has %d entries for %d hands'
                                     % (len(entries), count))
        indices = []
        for entry in entries:
            if isinstance(entry, str):
                if entry != 'auto':
                    raise PredictorError('object id must be an integer catalogue id or '
                                         '"auto", got %r' % entry)
                indices.append(None)
                continue
            if isinstance(entry, (bool, np.bool_)) or not float(entry).is_integer():
                raise PredictorError('object id must be an integer catalogue id or "auto", '
                                     'got %r' % (entry,))
            if int(entry) not in self.object_ids:
                raise PredictorError('unknown object id %d; the network knows ids %s'
                                     % (int(entry), list(self.object_ids)))
            indices.append(self.object_ids.index(int(entry)))
        return indices

    @staticmethod
    def _sides(is_right_hand, count):
        """Return a list of N bools."""
        if np.ndim(is_right_hand) == 0:
            return [bool(is_right_hand)] * count
        sides = [bool(side) for side in is_right_hand]
        if len(sides) != count:
            raise PredictorError('is_right_hand has %d entries for %d hands'
                                 % (len(sides), count))
        return sides

    def _run_network(self, crop_images, class_indices):
        """
        Run the network on (N, S, S, 3) uint8 crops.

        :return: dict of numpy float64 arrays (and int64 indices, float probabilities).
        """
        if self.device.type == 'cpu':
            # numpy, one thread: small torch ops split across intra-op threads stall for
            # milliseconds when the camera driver and the executor share the cores.
            scaled = np.empty((crop_images.shape[0], 3) + crop_images.shape[1:3], np.float32)
            np.multiply(crop_images.transpose(0, 3, 1, 2), np.float32(1.0 / 255.0), out=scaled)
            images = torch.from_numpy(scaled)
        else:
            images = torch.from_numpy(crop_images).to(self.device).permute(0, 3, 1, 2)
            images = images.float().div_(255.0)
        given = [i for i, index in enumerate(class_indices) if index is not None]
        auto = [i for i, index in enumerate(class_indices) if index is None]
        parts = []
        if given:
            index_tensor = torch.as_tensor([class_indices[i] for i in given], dtype=torch.int64,
                                           device=self.device)
            parts.append((given, self._predict(images[given] if auto else images,
                                               index_tensor)))
        if auto:
            parts.append((auto, self._predict(images[auto] if given else images, None)))
        fields = ('vertices', 'joints', 'joints_2d_crop_px', 'mano_pose', 'mano_betas',
                  'object_rotation', 'object_translation', 'object_index', 'object_probs')
        out = {}
        for name in fields:
            first = getattr(parts[0][1], name)
            merged = np.zeros((len(class_indices),) + tuple(first.shape[1:]),
                              dtype=np.int64 if name == 'object_index' else np.float64)
            for rows, prediction in parts:
                merged[rows] = getattr(prediction, name).detach().float().cpu().numpy() \
                    if name != 'object_index' else getattr(prediction, name).cpu().numpy()
            out[name] = merged
        return out

    def _predict(self, images, object_index):
        """Run the network path in use (under float16 autocast when enabled)."""
        if self.fp16:
            with torch.autocast(device_type='cuda', dtype=torch.float16):
                return self.inference.predict(images, object_index)
        return self.inference.predict(images, object_index)

    def _lift(self, index, output, crop, box, K, depth, is_right, given):
        """Place hand ``index`` in the camera frame; returns a Prediction."""
        for name in ('vertices', 'joints', 'joints_2d_crop_px', 'object_rotation',
                     'object_translation', 'mano_pose', 'mano_betas'):
            if not np.all(np.isfinite(output[name][index])):
                raise PredictorError('hand %d: the network produced non-finite %s'
                                     % (index, name))
        joints_rel = output['joints'][index]
        vertices_rel = output['vertices'][index]
        joints_2d_crop = output['joints_2d_crop_px'][index]
        # Intrinsics of the frame the network's outputs live in (mirrored for left hands).
        network_K = crop.crop_K @ MIRROR if crop.flipped else crop.crop_K
        joints_2d_px = transform_points_2d(np.linalg.inv(crop.crop_from_image), joints_2d_crop)

        translation = solve_wrist_translation(joints_rel, joints_2d_crop, network_K)
        if translation is None:
            box_side_crop_px = self.input_size_px / self.bbox_scale
            centre_crop_px = np.full(2, (self.input_size_px - 1) / 2.0)
            translation = translation_from_box(vertices_rel, network_K, centre_crop_px,
                                               box_side_crop_px)
        source = 'hand_size'
        if depth is not None:
            wrist_depth = self._wrist_depth_from_image(depth, joints_2d_px, joints_rel)
            if wrist_depth is not None:
                with_depth = solve_wrist_translation(joints_rel, joints_2d_crop, network_K,
                                                     depth=wrist_depth)
                if with_depth is not None:
                    translation, source = with_depth, 'depth'

        vertices = vertices_rel + translation
        joints = joints_rel + translation
        rotation = output['object_rotation'][index]
        object_translation = output['object_translation'][index] + translation
        mano_pose = output['mano_pose'][index]
        if crop.flipped:
            vertices = vertices @ MIRROR
            joints = joints @ MIRROR
            object_translation = MIRROR @ object_translation
            rotation = MIRROR @ rotation @ MIRROR
            mano_pose = (mano_pose.reshape(-1, 3) * AXIS_ANGLE_MIRROR).reshape(-1)
        class_index = int(output['object_index'][index])
        score = 1.0 if given else float(output['object_probs'][index][class_index])
        prediction = Prediction(
            hand_vertices=vertices.astype(np.float32),
            hand_joints=joints.astype(np.float32),
            joints_2d_px=joints_2d_px.astype(np.float32),
            mano_pose=mano_pose.astype(np.float32),
            mano_betas=output['mano_betas'][index].astype(np.float32),
            object_rotation=rotation.astype(np.float32),
            object_translation=object_translation.astype(np.float32),
            object_id=self.object_ids[class_index],
            object_score=score,
            is_right_hand=bool(is_right),
            wrist_depth_source=source)
        for name in ('hand_vertices', 'hand_joints', 'joints_2d_px', 'object_rotation',
                     'object_translation'):
            if not np.all(np.isfinite(getattr(prediction, name))):
                raise PredictorError('hand %d: non-finite %s after lifting' % (index, name))
        return prediction

    def _wrist_depth_from_image(self, depth, joints_2d_px, joints_rel):
        """Return the wrist depth (metres) from the depth image, or None without samples."""
        samples = sample_depth_m(depth, joints_2d_px, self.depth_window_half_px)
        candidates = samples - joints_rel[:, 2]
        candidates = candidates[np.isfinite(candidates)]
        if candidates.size == 0:
            return None
        wrist_depth = float(np.median(candidates)) + self.depth_surface_offset_m
        if not MIN_DEPTH_M <= wrist_depth <= MAX_DEPTH_M:
            return None
        return wrist_depth


def _mano_layer_from_path(mano_model_path):
    """Return a right-hand flat-mean ManoLayer from a path, or None for '' / None."""
    if not mano_model_path:
        return None
    try:
        return ManoLayer.from_file(mano_model_path, flat_hand_mean=True, side='right')
    except (OSError, ValueError) as error:
        raise PredictorError('cannot read the MANO model %s: %s'
                             % (mano_model_path, error)) from error


__all__ = ['MAX_DEPTH_M', 'MIN_DEPTH_M', 'Predictor', 'PredictorBoxError', 'PredictorError',
           'project', 'reprojection_error_px', 'resolve_device', 'sample_depth_m',
           'solve_wrist_translation', 'translation_from_box', 'validate_intrinsics']
