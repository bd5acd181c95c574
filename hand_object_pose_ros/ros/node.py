"""
The hand_object_pose lifecycle node: RGB (+ depth) + a hand box in, hand mesh and object pose out.

Lifecycle (``rclpy.lifecycle``; node name ``hand_object_pose``):

- configure: read the parameters (:mod:`hand_object_pose_ros.ros.params`), load the model
  (``Predictor.from_checkpoint``, or random weights from ``model_config`` when ``checkpoint`` is
  ''), create the publishers and the /diagnostics timer. A missing or wrong checkpoint, config
  or MANO path fails the transition with one message naming the parameter.
- activate: subscribe and start the inference thread. deactivate: unsubscribe and stop it (no
  output after the transition returns). cleanup: release the model and the publishers.
- ``autostart`` (default true) configures and activates at start-up so ``ros2 run`` works;
  when that configure fails the process logs why and exits with code 1 (a launch file shows the
  process died; without autostart the node stays unconfigured, as lifecycle nodes do).

Data flow: subscription callbacks only synchronise messages (message_filters when importable,
else :mod:`hand_object_pose_ros.ros.sync`) and put the frame into a
:class:`~hand_object_pose_ros.ros.sync.LatestFrameSlot`; one inference thread takes the newest
frame, so when inference is slower than the camera stale frames are dropped and counted, never
queued. Bad input is logged (throttled per kind), counted and skipped; the node never publishes
NaN. Counters are published on /diagnostics.

Topics (relative: remap them): subscribes ``image``, ``camera_info``, ``depth`` (``use_depth``),
``hand_bbox``; publishes ``object_pose``, ``hand_joints``, ``markers``, ``debug_image``, each
with the input image's header.
"""

from collections import Counter
from collections import deque
from dataclasses import dataclass
from dataclasses import field
import gc
import sys
import threading
import time
import traceback
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from geometry_msgs.msg import PoseArray
from geometry_msgs.msg import PoseStamped
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import RegionOfInterest
from visualization_msgs.msg import MarkerArray

from hand_object_pose_ros.constants import PIPELINE_DIAGNOSTIC_NAME
from hand_object_pose_ros.crop import validate_bbox
from hand_object_pose_ros.ros import params as node_params
from hand_object_pose_ros.ros.conversions import camera_info_to_K
from hand_object_pose_ros.ros.conversions import depth_msg_to_metres
from hand_object_pose_ros.ros.conversions import image_msg_to_rgb
from hand_object_pose_ros.ros.conversions import MessageConversionError
from hand_object_pose_ros.ros.conversions import points_to_pose_array
from hand_object_pose_ros.ros.conversions import pose_stamped_msg
from hand_object_pose_ros.ros.conversions import rgb_to_image_msg
from hand_object_pose_ros.ros.conversions import roi_to_bbox_xyxy
from hand_object_pose_ros.ros.conversions import stamp_to_seconds
from hand_object_pose_ros.ros.sync import ApproximateTimeSynchronizer
from hand_object_pose_ros.ros.sync import LatestFrameSlot

try:  # message_filters is not on PyPI: ros/sync.py is the tested fallback.
    import message_filters
except ImportError:
    message_filters = None

try:  # vision_msgs is not on PyPI: sensor_msgs/RegionOfInterest is the fallback.
    from vision_msgs.msg import Detection2DArray
except ImportError:
    Detection2DArray = None

NODE_NAME = 'hand_object_pose'
DIAGNOSTIC_NAME = PIPELINE_DIAGNOSTIC_NAME
OUTPUT_QOS_DEPTH = 5
WORKER_POLL_S = 0.1
WORKER_JOIN_TIMEOUT_S = 30.0
EXIT_CONFIGURE_FAILED = 1

# Rejection reasons (frames_rejected.<reason> / messages_rejected.<reason> on /diagnostics).
REASON_BAD_IMAGE = 'bad_image'
REASON_NO_CAMERA_INFO = 'no_camera_info'
REASON_CAMERA_INFO_SIZE = 'camera_info_size_mismatch'
REASON_BAD_BBOX = 'bad_bbox'
REASON_NO_BBOX = 'no_bbox'
REASON_INFERENCE = 'inference_error'
REASON_NON_FINITE = 'non_finite_output'
REASON_INTERNAL = 'internal_error'
REASON_BAD_CAMERA_INFO = 'bad_camera_info'
REASON_BAD_DEPTH = 'bad_depth'
REASON_DEPTH_SIZE = 'depth_size_mismatch'
REASON_OUT_OF_MEMORY = 'out_of_memory'

# Frames over which latency percentiles are computed for /diagnostics.
LATENCY_WINDOW = 200


def sync_backend_name():
    """Return 'message_filters' when it is importable, else 'hand_object_pose_ros.ros.sync'."""
    return 'message_filters' if message_filters is not None else 'hand_object_pose_ros.ros.sync'


class FrameSynchronizer:
    """
    Approximate-time synchroniser over header-stamped inputs, one ``add(index, msg)`` interface.

    Uses ``message_filters.ApproximateTimeSynchronizer`` (fed through ``SimpleFilter`` inputs,
    so the node keeps its own lifecycle-managed subscriptions) when message_filters is
    importable, else :class:`hand_object_pose_ros.ros.sync.ApproximateTimeSynchronizer`.
    """

    def __init__(self, num_inputs, slop_s, queue_size, callback, use_message_filters=None):
        """
        Create the synchroniser.

        :param num_inputs: number of inputs (>= 1); every message has ``header.stamp``.
        :param slop_s: largest stamp spread of a match, seconds.
        :param queue_size: messages kept per input.
        :param callback: ``callback(msg_0, ..., msg_{n-1})`` on each match.
        :param use_message_filters: force the backend (None = message_filters when importable).
        """
        if use_message_filters is None:
            use_message_filters = message_filters is not None
        self.num_inputs = int(num_inputs)
        self.backend = 'message_filters' if use_message_filters else 'sync'
        if use_message_filters:
            self._inputs = [message_filters.SimpleFilter() for _ in range(self.num_inputs)]
            self._synchronizer = message_filters.ApproximateTimeSynchronizer(
                self._inputs, int(queue_size), float(slop_s))
            self._synchronizer.registerCallback(callback)
        else:
            self._inputs = None
            self._synchronizer = ApproximateTimeSynchronizer(
                self.num_inputs, float(slop_s), int(queue_size), callback)

    def add(self, index, msg):
        """
        Add a message of input ``index`` (its ``header.stamp`` is the sync time).

        :param index: input number.
        :param msg: a message with a header.
        """
        if self._inputs is not None:
            self._inputs[index].signalMessage(msg)
        else:
            self._synchronizer.add(index, msg, stamp_to_seconds(msg.header.stamp))


@dataclass
class HandBox:
    """
    One hand to process in a frame.

    :param bbox_xyxy_px: (4,) float64 box in full-image pixels.
    :param object_id: catalogue id from the detection, or None (use the parameter).
    :param score: detection score (1.0 for a RegionOfInterest).
    """

    bbox_xyxy_px: np.ndarray
    object_id: Optional[int] = None
    score: float = 1.0


@dataclass
class Frame:
    """
    A synchronised input frame waiting for inference.

    :param image: sensor_msgs/Image.
    :param depth: sensor_msgs/Image aligned depth, or None.
    :param boxes: list of :class:`HandBox`.
    :param arrival_s: monotonic time the image arrived, seconds.
    """

    image: Image
    depth: Optional[Image]
    boxes: list
    arrival_s: float


@dataclass
class PipelineCounters:
    """Frame counters (thread-safe through ``lock``), published on /diagnostics."""

    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    frames_rejected: Counter = field(default_factory=Counter)
    messages_rejected: Counter = field(default_factory=Counter)
    last_rejection: str = ''
    inference_s_mean: float = 0.0
    # Whole frame in the inference thread (conversion, inference, publishing), seconds.
    processing_s_mean: float = 0.0
    # Image arrival to end of publishing, seconds, of the last LATENCY_WINDOW frames.
    latencies_s: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def latency_ms(self):
        """Return {'p50', 'p95', 'mean', 'max'} latency in ms over the window (0 when empty)."""
        with self.lock:
            latencies = np.array(self.latencies_s, dtype=np.float64)
        if latencies.size == 0:
            return {'p50': 0.0, 'p95': 0.0, 'mean': 0.0, 'max': 0.0}
        return {'p50': 1000.0 * float(np.percentile(latencies, 50)),
                'p95': 1000.0 * float(np.percentile(latencies, 95)),
                'mean': 1000.0 * float(latencies.mean()),
                'max': 1000.0 * float(latencies.max())}

    def as_key_values(self):
        """Return the counters as (key, value string) pairs, rejections by reason."""
        latency = self.latency_ms()
        with self.lock:
            pairs = [('frames_received', self.frames_received),
                     ('frames_processed', self.frames_processed),
                     ('frames_dropped', self.frames_dropped),
                     ('frames_rejected', sum(self.frames_rejected.values()))]
            pairs += [('frames_rejected.' + reason, count)
                      for reason, count in sorted(self.frames_rejected.items())]
            pairs += [('messages_rejected.' + reason, count)
                      for reason, count in sorted(self.messages_rejected.items())]
            pairs.append(('inference_ms_mean', '%.1f' % (1000.0 * self.inference_s_mean)))
            pairs.append(('processing_ms_mean', '%.1f' % (1000.0 * self.processing_s_mean)))
        pairs += [('latency_ms_' + name, '%.1f' % latency[name])
                  for name in ('p50', 'p95', 'mean', 'max')]
        return [(key, str(value)) for key, value in pairs]


def _running_mean(mean, value):
    """Exponential running mean (weight 0.1 on the new value; the first value starts it)."""
    return value if mean == 0 else 0.9 * mean + 0.1 * value


def _parse_class_id(class_id):
    """Return a vision_msgs class id as an int catalogue id, or None when it is not an int."""
    try:
        return int(str(class_id).strip())
    except ValueError:
        return None


def detections_to_hand_boxes(detections):
    """
    Read the hand boxes of a vision_msgs/Detection2DArray.

    Handles both ``BoundingBox2D.center`` layouts (``center.position.x`` since vision_msgs 3,
    ``center.x`` before). The class id of the best hypothesis, when it is an integer, is the
    object's catalogue id.

    :param detections: vision_msgs/Detection2DArray.
    :return: list of :class:`HandBox` (boxes may be invalid; they are validated later).
    """
    boxes = []
    for detection in detections.detections:
        center = detection.bbox.center
        position = getattr(center, 'position', center)
        cx, cy = float(position.x), float(position.y)
        half_w, half_h = 0.5 * float(detection.bbox.size_x), 0.5 * float(detection.bbox.size_y)
        object_id, score = None, 1.0
        if detection.results:
            best = max(detection.results, key=lambda result: _hypothesis(result)[1])
            class_id, score = _hypothesis(best)
            object_id = _parse_class_id(class_id)
        boxes.append(HandBox(np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h]),
                             object_id, float(score)))
    return boxes


def _hypothesis(result):
    """Return (class_id, score) of an ObjectHypothesisWithPose (vision_msgs >= 3 or older)."""
    hypothesis = getattr(result, 'hypothesis', result)
    class_id = getattr(hypothesis, 'class_id', getattr(hypothesis, 'id', ''))
    return class_id, float(getattr(hypothesis, 'score', 0.0))


def is_out_of_memory(error):
    """
    Tell whether an exception of inference is an out-of-memory error.

    :param error: exception raised by the Predictor.
    :return: True for ``MemoryError``, ``torch.cuda.OutOfMemoryError`` or a RuntimeError whose
        message says the device ran out of memory.
    """
    if isinstance(error, MemoryError):
        return True
    torch = sys.modules.get('torch')
    oom_type = getattr(getattr(torch, 'cuda', None), 'OutOfMemoryError', None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and 'out of memory' in str(error).lower()


def release_cached_gpu_memory():
    """Return the CUDA caching allocator's free blocks to the driver (no-op without CUDA)."""
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def predictions_are_finite(predictions):
    """
    Check that every array of the predictions is finite.

    :param predictions: list of ``types.Prediction``.
    :return: True when hand vertices, joints, 2D joints and the object pose are all finite.
    """
    for prediction in predictions:
        for array in (prediction.hand_vertices, prediction.hand_joints, prediction.joints_2d_px,
                      prediction.object_rotation, prediction.object_translation):
            if not np.all(np.isfinite(np.asarray(array, dtype=np.float64))):
                return False
    return True


class HandObjectPoseNode(LifecycleNode):
    """Lifecycle node publishing the hand mesh and the held object's 6D pose (module doc)."""

    def __init__(self, node_name=NODE_NAME, **kwargs):
        """
        Create the node and declare its parameters (nothing is loaded before configure).

        :param node_name: node name.
        :param kwargs: passed to ``rclpy.lifecycle.LifecycleNode``.
        :raises params.ParameterError: an invalid parameter override (named).
        """
        super().__init__(node_name, **kwargs)
        node_params.declare_parameters(self)
        self.counters = PipelineCounters()
        self.lifecycle_state = 'unconfigured'
        self.finalized = threading.Event()
        self._params = None
        self._predictor = None
        self._marker_builder = None
        self._catalogue = None
        self._outputs = {}
        self._input_subscriptions = []
        self._diagnostics_publisher = None
        self._diagnostics_timer = None
        self._slot = LatestFrameSlot()
        self._worker = None
        self._stop_worker = threading.Event()
        self._state_lock = threading.Lock()
        self._camera = None  # (K, width, height) of the latest valid camera_info
        self._latest_roi = None  # (HandBox, arrival_s)
        self._pending_frame = None  # a frame waiting for its RegionOfInterest
        self._last_depth_arrival_s = None
        self._activated_at_s = 0.0
        self._sync = None
        self._sync_no_depth = None
        self._rate_reference = (time.monotonic(), 0, 0)
        self._bbox_mode = 'roi'
        self._last_warning_s = {}
        self._warned_once = set()
        self.topics = {}

    # ----------------------------------------------------------------------------------------
    # Warnings, counters
    # ----------------------------------------------------------------------------------------

    def _warn(self, kind, message):
        """
        Log a warning at most once per ``warn_throttle_s`` for each kind.

        rclpy's own throttling is keyed by the call site, so one helper would throttle every
        kind together; this keeps them apart.
        """
        throttle_s = self._params.warn_throttle_s if self._params is not None else 5.0
        now = time.monotonic()
        last = self._last_warning_s.get(kind)
        if last is not None and now - last < throttle_s:
            return
        self._last_warning_s[kind] = now
        self.get_logger().warning(message)

    def _warn_once(self, kind, message):
        """Log a warning the first time only (until the next cleanup)."""
        if kind in self._warned_once:
            return
        self._warned_once.add(kind)
        self.get_logger().warning(message)

    def _reject_frame(self, reason, detail):
        """Count a skipped frame and warn (throttled per reason)."""
        with self.counters.lock:
            self.counters.frames_rejected[reason] += 1
            self.counters.last_rejection = reason
            total = self.counters.frames_rejected[reason]
        self._warn('frame.' + reason,
                   'frame skipped (%s, %d so far): %s' % (reason, total, detail))

    def _reject_message(self, reason, detail):
        """Count an unusable side message (camera_info, depth, box) and warn (throttled)."""
        with self.counters.lock:
            self.counters.messages_rejected[reason] += 1
            total = self.counters.messages_rejected[reason]
        self._warn('message.' + reason, 'message ignored (%s, %d so far): %s'
                   % (reason, total, detail))

    # ----------------------------------------------------------------------------------------
    # Lifecycle transitions
    # ----------------------------------------------------------------------------------------

    def on_configure(self, state):
        """Read the parameters, load the model, create the publishers."""
        try:
            self._configure()
        except Exception as error:  # report every failure as one clear message
            if not self.context.ok():
                # Ctrl-C while the model was loading shut the context down under us: a
                # requested stop, not a configuration error.
                self.get_logger().info('shutdown requested while configuring; stopping')
            else:
                self.get_logger().error('configure failed: %s' % error)
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.lifecycle_state = 'inactive'
        return super().on_configure(state)

    def _configure(self):
        """Do the work of :meth:`on_configure`; raises with a message naming the parameter."""
        values = node_params.read_parameters(self)
        self._params = values
        mano_path = None
        if values.mano_model_dir:
            mano_path = node_params.resolve_parameter_path('mano_model_dir',
                                                           values.mano_model_dir)
            # Read (restricted unpickler) before the model is built, so a refused or broken
            # MANO file is reported against this parameter.
            from hand_object_pose_ros.mano import load_mano_assets
            try:
                load_mano_assets(mano_path)
            except (OSError, ValueError) as error:
                raise node_params.ParameterError(
                    "parameter 'mano_model_dir' %r: %s" % (values.mano_model_dir, error)
                ) from error
        else:
            self.get_logger().warning(
                "mano_model_dir is '': using the built-in stand-in hand model, NOT MANO "
                '(approximate hand shape). Set mano_model_dir to the folder of the licensed '
                'MANO_RIGHT.pkl / MANO_LEFT.pkl.')
        self._predictor = self._load_predictor(values, mano_path)
        if values.object_id != node_params.AUTO and \
                values.object_id not in tuple(self._predictor.object_ids):
            raise node_params.ParameterError(
                "parameter 'object_id': %d is not an object the model knows; known ids: %s "
                "or 'auto'" % (values.object_id, list(self._predictor.object_ids)))
        self._catalogue = self._load_catalogue()
        self._marker_builder = self._make_marker_builder(values)
        self._create_publishers(values)
        self._bbox_mode = self._choose_bbox_mode(values.bbox_msg_type)
        self.get_logger().info(
            'configured: model %s on %s (optimize %s), %s hand, bbox %s, depth %s, sync %s'
            % (values.checkpoint or 'RANDOM WEIGHTS', self._predictor.device,
               self._predictor.optimize_mode, values.hand_side,
               self._bbox_mode, 'on' if values.use_depth else 'off', sync_backend_name()))

    def _load_predictor(self, values, mano_path):
        """Build the Predictor from the checkpoint or, when it is '', from model_config."""
        path = None
        if values.checkpoint:
            path = node_params.resolve_parameter_path('checkpoint', values.checkpoint)
        # Imported here: the model stack loads at configure, after the cheap path checks.
        from hand_object_pose_ros.inference import Predictor
        from hand_object_pose_ros.inference import resolve_device
        try:
            resolve_device(values.device)
        except ValueError as error:
            raise node_params.ParameterError("parameter 'device': %s" % error) from error
        if path is not None:
            try:
                return Predictor.from_checkpoint(path, device=values.device,
                                                 mano_model_path=mano_path, fp16=values.fp16,
                                                 bbox_scale=values.bbox_scale,
                                                 optimize=values.optimize)
            except Exception as error:
                raise node_params.ParameterError(
                    "cannot load parameter 'checkpoint' %s (with mano_model_dir %r): %s"
                    % (path, values.mano_model_dir, error)) from error
        config = None
        if values.model_config:
            config = node_params.resolve_parameter_path(
                'model_config', values.model_config, " (needed because checkpoint is '')")
        else:
            from hand_object_pose_ros.config import ModelConfig
            config = ModelConfig()
        self.get_logger().warning(
            "checkpoint is '': the network has RANDOM weights (model_config %s, seed %d). "
            'Its hand meshes and object poses are meaningless; set checkpoint to a trained '
            'model.' % (values.model_config or 'defaults', values.seed))
        try:
            return Predictor.from_config(config, device=values.device, seed=values.seed,
                                         mano_model_path=mano_path,
                                         bbox_scale=values.bbox_scale,
                                         optimize=values.optimize)
        except Exception as error:
            raise node_params.ParameterError(
                "cannot build the model of parameter 'model_config' %s (with mano_model_dir "
                '%r): %s' % (values.model_config or 'defaults', values.mano_model_dir, error)
            ) from error

    def _load_catalogue(self):
        """Return the packaged object catalogue, or None (markers then show boxes only)."""
        from hand_object_pose_ros.objects import load_object_catalogue
        try:
            return load_object_catalogue()
        except (OSError, ValueError) as error:
            self.get_logger().warning('object catalogue not loaded (%s): objects are drawn '
                                      'as default-size boxes' % error)
            return None

    def _make_marker_builder(self, values):
        """Create the MarkerArrayBuilder from the marker parameters."""
        from hand_object_pose_ros.ros.markers import MarkerArrayBuilder
        return MarkerArrayBuilder(self._predictor.faces, catalogue=self._catalogue,
                                  hand_color=values.marker_hand_color,
                                  object_color=values.marker_object_color,
                                  skeleton=values.marker_skeleton,
                                  lifetime_s=values.marker_lifetime_s)

    def _choose_bbox_mode(self, requested):
        """Resolve bbox_msg_type ('auto' -> detection2d when vision_msgs is importable)."""
        if requested == 'detection2d' and Detection2DArray is None:
            raise node_params.ParameterError(
                "parameter 'bbox_msg_type' is detection2d but vision_msgs is not installed; "
                'install ros-<distro>-vision-msgs or use roi')
        if requested == node_params.AUTO:
            return 'detection2d' if Detection2DArray is not None else 'roi'
        return requested

    def _create_publishers(self, values):
        """Create the lifecycle publishers and the diagnostics timer."""
        output_qos = QoSProfile(depth=OUTPUT_QOS_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
        self._outputs = {
            'object_pose': self.create_lifecycle_publisher(PoseStamped, 'object_pose',
                                                           output_qos),
            'hand_joints': self.create_lifecycle_publisher(PoseArray, 'hand_joints', output_qos),
        }
        if values.publish_markers:
            self._outputs['markers'] = self.create_lifecycle_publisher(
                MarkerArray, 'markers', output_qos)
        if values.publish_debug_image:
            self._outputs['debug_image'] = self.create_lifecycle_publisher(
                Image, 'debug_image', output_qos)
        if values.diagnostics_period_s > 0:
            self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics',
                                                                10)
            self._diagnostics_timer = self.create_timer(values.diagnostics_period_s,
                                                        self.publish_diagnostics)

    def on_activate(self, state):
        """Subscribe and start the inference thread."""
        try:
            self._activate()
        except Exception as error:
            self.get_logger().error('activate failed: %s' % error)
            self._deactivate()
            return TransitionCallbackReturn.FAILURE
        self.lifecycle_state = 'active'
        return super().on_activate(state)

    def _activate(self):
        """Do the work of :meth:`on_activate`."""
        values = self._params
        input_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=values.qos_depth,
            reliability=(ReliabilityPolicy.BEST_EFFORT
                         if values.qos_reliability == 'best_effort'
                         else ReliabilityPolicy.RELIABLE))
        names = ['image'] + (['depth'] if values.use_depth else [])
        if self._bbox_mode == 'detection2d':
            self._sync = FrameSynchronizer(
                len(names) + 1, values.sync_slop_s, values.sync_queue_size,
                self._on_synced_detections)
            # Images go on without depth through this one when depth stops (depth_timeout_s).
            self._sync_no_depth = FrameSynchronizer(
                2, values.sync_slop_s, values.sync_queue_size,
                self._on_synced_detections_no_depth) if values.use_depth else None
        else:
            self._sync = FrameSynchronizer(
                len(names), values.sync_slop_s, values.sync_queue_size, self._on_synced_roi)
            self._sync_no_depth = None
        self._stop_worker.clear()
        self._slot = LatestFrameSlot()
        self._latest_roi = None
        self._pending_frame = None
        self._last_depth_arrival_s = None
        self._activated_at_s = time.monotonic()
        # The box first: rclpy's executor serves ready subscriptions in creation order, so a
        # box that arrived with its image is stored before the image is paired (a stamp-less
        # RegionOfInterest is paired with the newest box).
        subscriptions = {}
        if self._bbox_mode == 'detection2d':
            subscriptions['hand_bbox'] = self.create_subscription(
                Detection2DArray, 'hand_bbox', self._on_detections, input_qos)
        else:
            subscriptions['hand_bbox'] = self.create_subscription(
                RegionOfInterest, 'hand_bbox', self._on_roi, input_qos)
        subscriptions['camera_info'] = self.create_subscription(
            CameraInfo, 'camera_info', self._on_camera_info, input_qos)
        if values.use_depth:
            subscriptions['depth'] = self.create_subscription(Image, 'depth', self._on_depth,
                                                              input_qos)
        subscriptions['image'] = self.create_subscription(Image, 'image', self._on_image,
                                                          input_qos)
        self._input_subscriptions = list(subscriptions.values())
        self.topics = {name: sub.topic_name for name, sub in subscriptions.items()}
        self._worker = threading.Thread(target=self._worker_loop, name='hand_object_pose_infer',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info('active: listening on %s' % ', '.join(
            '%s=%s' % item for item in sorted(self.topics.items())))

    def on_deactivate(self, state):
        """Unsubscribe and stop the inference thread (no output after this returns)."""
        self._deactivate()
        self.lifecycle_state = 'inactive'
        return super().on_deactivate(state)

    def _deactivate(self):
        """Destroy the subscriptions and join the inference thread."""
        for subscription in self._input_subscriptions:
            self.destroy_subscription(subscription)
        self._input_subscriptions = []
        self._stop_worker.set()
        self._slot.close()
        if self._worker is not None:
            self._worker.join(WORKER_JOIN_TIMEOUT_S)
            if self._worker.is_alive():
                self.get_logger().error('inference thread did not stop within %.0f s'
                                        % WORKER_JOIN_TIMEOUT_S)
        self._worker = None
        self._sync = None
        self._sync_no_depth = None
        self._pending_frame = None

    def on_cleanup(self, state):
        """Release the model and the publishers."""
        self._release()
        self.lifecycle_state = 'unconfigured'
        return super().on_cleanup(state)

    def _release(self):
        """Drop the publishers, the timer and the model (GPU memory is returned)."""
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
            self._diagnostics_publisher = None
        had_model = self._predictor is not None
        self._predictor = None
        self._marker_builder = None
        self._camera = None
        self._warned_once.clear()
        if had_model:
            gc.collect()
            torch = sys.modules.get('torch')
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()

    def on_shutdown(self, state):
        """Stop everything, from any primary state."""
        self._deactivate()
        self._release()
        self.lifecycle_state = 'finalized'
        self.finalized.set()
        return super().on_shutdown(state)

    def on_error(self, state):
        """Release everything after an error in a transition (back to unconfigured)."""
        self._deactivate()
        self._release()
        self.lifecycle_state = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    # ----------------------------------------------------------------------------------------
    # Subscription callbacks (cheap: they only synchronise and hand over)
    # ----------------------------------------------------------------------------------------

    def _depth_is_stale(self, now_s):
        """Return True when images go on without depth (none came for depth_timeout_s)."""
        timeout_s = self._params.depth_timeout_s
        if timeout_s <= 0:
            return False
        last = self._last_depth_arrival_s
        reference = last if last is not None else self._activated_at_s
        return now_s - reference > timeout_s

    def _on_image(self, msg):
        """Count the image and pass it to the synchroniser (without depth when it stopped)."""
        with self.counters.lock:
            self.counters.frames_received += 1
        sync = self._sync
        if sync is None:
            return
        if self._params.use_depth and self._depth_is_stale(time.monotonic()):
            self._warn('no_depth', 'no depth image on %s for %.1f s (depth_timeout_s): '
                       'processing images without depth'
                       % (self.topics.get('depth', 'depth'), self._params.depth_timeout_s))
            if self._sync_no_depth is not None:
                self._sync_no_depth.add(0, msg)
            elif self._bbox_mode == 'roi':
                self._on_synced_roi(msg)
            return
        sync.add(0, msg)

    def _on_depth(self, msg):
        """Note the depth's arrival and pass it to the synchroniser."""
        self._last_depth_arrival_s = time.monotonic()
        sync = self._sync
        if sync is not None:
            sync.add(1, msg)

    def _on_camera_info(self, msg):
        """Keep the intrinsics of the latest valid camera_info."""
        try:
            K = camera_info_to_K(msg)
        except MessageConversionError as error:
            self._reject_message(REASON_BAD_CAMERA_INFO, '%s on %s'
                                 % (error, self.topics.get('camera_info', 'camera_info')))
            return
        self._camera = (K, int(msg.width), int(msg.height))

    def _on_roi(self, msg):
        """Keep the newest RegionOfInterest; complete a frame that was waiting for one."""
        box = HandBox(roi_to_bbox_xyxy(msg))
        now = time.monotonic()
        with self._state_lock:
            self._latest_roi = (box, now)
            pending, self._pending_frame = self._pending_frame, None
        if pending is None:
            return
        if now - pending.arrival_s <= self._params.bbox_max_age_s:
            pending.boxes = [box]
            self._dispatch(pending)
        else:
            self._reject_frame(REASON_NO_BBOX, 'no hand box on %s within bbox_max_age_s=%.2f s '
                               'of the image' % (self.topics.get('hand_bbox', 'hand_bbox'),
                                                 self._params.bbox_max_age_s))

    def _on_detections(self, msg):
        """Pass a Detection2DArray to the synchroniser(s) (it is their last input)."""
        sync, sync_no_depth = self._sync, self._sync_no_depth
        if sync is not None:
            sync.add(sync.num_inputs - 1, msg)
        if sync_no_depth is not None:
            sync_no_depth.add(1, msg)

    def _on_synced_roi(self, image, depth=None):
        """Pair a synchronised image (and depth) with the newest RegionOfInterest."""
        arrival_s = time.monotonic()
        frame = Frame(image, depth, [], arrival_s)
        with self._state_lock:
            latest = self._latest_roi
            if latest is not None and arrival_s - latest[1] <= self._params.bbox_max_age_s:
                frame.boxes = [latest[0]]
                replaced = None
            else:
                replaced, self._pending_frame = self._pending_frame, frame
        if frame.boxes:
            self._dispatch(frame)
        elif replaced is not None:
            self._reject_frame(REASON_NO_BBOX, 'no hand box on %s within bbox_max_age_s=%.2f s '
                               'of the image' % (self.topics.get('hand_bbox', 'hand_bbox'),
                                                 self._params.bbox_max_age_s))

    def _on_synced_detections_no_depth(self, image, detections):
        """Handle an image + Detection2DArray match made while depth is missing."""
        self._on_synced_detections(image, detections)

    def _on_synced_detections(self, *msgs):
        """Turn a synchronised image [+ depth] + Detection2DArray into a frame."""
        image, detections = msgs[0], msgs[-1]
        depth = msgs[1] if len(msgs) == 3 else None
        arrival_s = time.monotonic()
        try:
            boxes = detections_to_hand_boxes(detections)
        except (AttributeError, TypeError, ValueError) as error:
            self._reject_frame(REASON_BAD_BBOX, 'unreadable Detection2DArray: %s' % error)
            return
        if not boxes:
            self._reject_frame(REASON_NO_BBOX, 'the Detection2DArray has no detections')
            return
        self._dispatch(Frame(image, depth, boxes, arrival_s))

    def _dispatch(self, frame):
        """Hand a frame to the inference thread; count the unprocessed one it replaces."""
        if self._slot.put(frame):
            with self.counters.lock:
                self.counters.frames_dropped += 1

    # ----------------------------------------------------------------------------------------
    # Inference thread
    # ----------------------------------------------------------------------------------------

    def _worker_loop(self):
        """Take the newest frame and process it until deactivated."""
        while not self._stop_worker.is_set():
            frame = self._slot.take(WORKER_POLL_S)
            if frame is None or self._stop_worker.is_set():
                continue
            try:
                self.process_frame(frame)
            except Exception:  # the thread must survive anything a frame can cause
                self._reject_frame(REASON_INTERNAL, traceback.format_exc())

    def _camera_matrix(self, width, height):
        """
        Return K for an image size, or None with the rejection reason.

        :return: ((3, 3) K or None, reason or None, detail).
        """
        camera = self._camera
        if camera is not None:
            K, info_width, info_height = camera
            if info_width and info_height and (info_width, info_height) != (width, height):
                return None, REASON_CAMERA_INFO_SIZE, (
                    'camera_info is for %dx%d but the image is %dx%d'
                    % (info_width, info_height, width, height))
            return K, None, ''
        if self._params.fallback_K is not None:
            self._warn_once('fallback_K', 'no valid camera_info received on %s: using the '
                            'fallback_K parameter %s'
                            % (self.topics.get('camera_info', 'camera_info'),
                               self._params.fallback_K.tolist()))
            return self._params.fallback_K, None, ''
        return None, REASON_NO_CAMERA_INFO, (
            'no valid camera_info received on %s and fallback_K is []'
            % self.topics.get('camera_info', 'camera_info'))

    def _read_depth(self, depth_msg, shape):
        """Convert the depth image, or return None (counted) when it cannot be used."""
        if depth_msg is None:
            return None
        try:
            depth = depth_msg_to_metres(depth_msg)
        except MessageConversionError as error:
            self._reject_message(REASON_BAD_DEPTH, '%s; using the hand-size depth' % error)
            return None
        if depth.shape != shape:
            self._reject_message(REASON_DEPTH_SIZE, 'depth is %dx%d but the image is %dx%d; '
                                 'using the hand-size depth'
                                 % (depth.shape[1], depth.shape[0], shape[1], shape[0]))
            return None
        return depth

    def process_frame(self, frame):
        """
        Run inference on one frame and publish the outputs (or count why it was skipped).

        :param frame: :class:`Frame`.
        :return: the list of ``types.Prediction`` published, or None when the frame was skipped.
        """
        predictor = self._predictor
        if predictor is None:
            return None
        frame_start = time.perf_counter()
        header = frame.image.header
        try:
            rgb = image_msg_to_rgb(frame.image)
        except MessageConversionError as error:
            self._reject_frame(REASON_BAD_IMAGE, str(error))
            return None
        height, width = rgb.shape[:2]
        K, reason, detail = self._camera_matrix(width, height)
        if K is None:
            self._reject_frame(reason, detail)
            return None
        boxes, bad_box_error = [], 'no hand box'
        for box in frame.boxes:
            try:
                # A copy: the RegionOfInterest's box is shared by the frames it pairs with.
                boxes.append(HandBox(validate_bbox(box.bbox_xyxy_px, width, height),
                                     box.object_id, box.score))
            except ValueError as error:
                bad_box_error = error
        if not boxes:
            self._reject_frame(REASON_BAD_BBOX, str(bad_box_error))
            return None
        depth = self._read_depth(frame.depth, (height, width))
        start = time.perf_counter()
        try:
            predictions = self._predict(predictor, rgb, boxes, K, depth)
        except (ValueError, RuntimeError, MemoryError) as error:
            if is_out_of_memory(error):
                release_cached_gpu_memory()
                self._reject_frame(REASON_OUT_OF_MEMORY, '%s: %s; frame skipped, cached GPU '
                                   'memory released' % (type(error).__name__, error))
            else:
                self._reject_frame(REASON_INFERENCE, '%s: %s' % (type(error).__name__, error))
            return None
        elapsed_s = time.perf_counter() - start
        if not predictions_are_finite(predictions):
            self._reject_frame(REASON_NON_FINITE, 'the network output NaN or inf; nothing '
                               'published for this frame')
            return None
        if self._stop_worker.is_set():
            return None
        self._publish(header, rgb, K, boxes, predictions)
        processing_s = time.perf_counter() - frame_start
        with self.counters.lock:
            self.counters.frames_processed += 1
            self.counters.inference_s_mean = _running_mean(self.counters.inference_s_mean,
                                                           elapsed_s)
            self.counters.processing_s_mean = _running_mean(self.counters.processing_s_mean,
                                                            processing_s)
            self.counters.latencies_s.append(time.monotonic() - frame.arrival_s)
        return predictions

    def _predict(self, predictor, rgb, boxes, K, depth):
        """
        Run one ``predict_batch`` call for all the boxes of a frame.

        A box's own object id (from a Detection2D class id) wins over the object_id parameter.

        :return: predictions in the order of ``boxes``.
        """
        default_id = self._params.object_id
        object_ids = []
        for box in boxes:
            if box.object_id is not None and box.object_id not in predictor.object_ids:
                self._warn('unknown_class_id', 'detection class id %d is not an object the '
                           'model knows (%s); using object_id=%s'
                           % (box.object_id, list(predictor.object_ids), default_id))
                box.object_id = None
            object_ids.append(box.object_id if box.object_id is not None else default_id)
        return predictor.predict_batch(
            rgb, np.stack([box.bbox_xyxy_px for box in boxes]), K, object_ids, depth=depth,
            is_right_hand=self._params.hand_side == 'right')

    def _publish(self, header, rgb, K, boxes, predictions):
        """Publish the outputs of a frame, each with the image's header."""
        best = max(range(len(predictions)),
                   key=lambda i: (boxes[i].score, predictions[i].object_score))
        chosen = predictions[best]
        self._outputs['object_pose'].publish(
            pose_stamped_msg(header, chosen.object_rotation, chosen.object_translation))
        self._outputs['hand_joints'].publish(points_to_pose_array(
            header, np.concatenate([p.hand_joints for p in predictions], axis=0)))
        markers = self._outputs.get('markers')
        if markers is not None and markers.get_subscription_count() > 0:
            markers.publish(self._marker_builder.build(header, predictions))
        debug = self._outputs.get('debug_image')
        if debug is not None and debug.get_subscription_count() > 0:
            from hand_object_pose_ros.visualization import draw_overlay
            overlay = draw_overlay(rgb, predictions, K, self._predictor.faces,
                                   catalogue=self._catalogue)
            debug.publish(rgb_to_image_msg(overlay, header))

    # ----------------------------------------------------------------------------------------
    # Diagnostics
    # ----------------------------------------------------------------------------------------

    def _rates_and_queues(self):
        """
        Return the rates since the previous diagnostics and the queue lengths.

        :return: (key, value string) pairs: ``fps`` (frames published per second),
            ``input_fps`` (images received per second), ``slot_pending`` (0 or 1 frame waiting
            for inference), ``sync_queued`` (messages held by the synchroniser, all inputs).
        """
        now = time.monotonic()
        with self.counters.lock:
            received, processed = self.counters.frames_received, self.counters.frames_processed
        last_s, last_received, last_processed = self._rate_reference
        self._rate_reference = (now, received, processed)
        elapsed_s = now - last_s
        fps = (processed - last_processed) / elapsed_s if elapsed_s > 0 else 0.0
        input_fps = (received - last_received) / elapsed_s if elapsed_s > 0 else 0.0
        return [('fps', '%.2f' % max(fps, 0.0)), ('input_fps', '%.2f' % max(input_fps, 0.0)),
                ('slot_pending', str(int(self._slot.has_item()))),
                ('sync_queued', str(self._sync_queued()))]

    def _sync_queued(self):
        """Return how many messages the synchronisers hold (bounded by sync_queue_size)."""
        total = 0
        for sync in (self._sync, self._sync_no_depth):
            inner = getattr(sync, '_synchronizer', None)
            if hasattr(inner, 'queued'):
                total += sum(inner.queued())
            elif inner is not None:  # message_filters keeps one dict per input
                total += sum(len(queue) for queue in getattr(inner, 'queues', ()))
        return total

    def publish_diagnostics(self):
        """Publish the counters and the state on /diagnostics."""
        if self._diagnostics_publisher is None:
            return
        values = self.counters.as_key_values()
        values += self._rates_and_queues()
        values += [('state', self.lifecycle_state),
                   ('device', str(self._predictor.device) if self._predictor is not None
                    else ''),
                   ('sync_backend', sync_backend_name()),
                   ('bbox_msg_type', self._bbox_mode),
                   ('model', (self._params.checkpoint or 'random weights')
                    if self._params else ''),
                   ('mano', ('stand-in' if getattr(self._predictor, 'is_standin_mano', True)
                             else 'MANO') if self._predictor is not None else '')]
        with self.counters.lock:
            last_rejection = self.counters.last_rejection
            processed = self.counters.frames_processed
        level = DiagnosticStatus.OK
        message = '%s, %d frames processed' % (self.lifecycle_state, processed)
        if last_rejection:
            level = DiagnosticStatus.WARN
            message += ', last skipped frame: ' + last_rejection
        status = DiagnosticStatus(level=level, name=DIAGNOSTIC_NAME, message=message,
                                  hardware_id=self.get_fully_qualified_name(),
                                  values=[KeyValue(key=k, value=v) for k, v in values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_publisher.publish(array)


def main(args=None):
    """
    Run the node (console script ``hand_object_pose_node``).

    :param args: command line (None = sys.argv), ROS arguments after ``--ros-args``.
    :return: exit code: 0 (also after Ctrl-C, even during configure), or 1 when autostart's
        configure failed or a parameter is invalid.
    """
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger(NODE_NAME)
    try:
        node = HandObjectPoseNode()
    except node_params.ParameterError as error:
        logger.error(str(error))
        rclpy.try_shutdown()
        return EXIT_CONFIGURE_FAILED
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    exit_code = 0
    try:
        if node.get_parameter('autostart').value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                if not rclpy.ok():
                    raise ExternalShutdownException()
                node.get_logger().fatal('autostart: configure failed (see the error above); '
                                        'exiting with code %d' % EXIT_CONFIGURE_FAILED)
                exit_code = EXIT_CONFIGURE_FAILED
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal('autostart: activate failed; exiting')
                exit_code = EXIT_CONFIGURE_FAILED
        while exit_code == 0 and rclpy.ok() and not node.finalized.is_set():
            try:
                executor.spin_once(timeout_sec=0.2)
            except (KeyboardInterrupt, ExternalShutdownException):
                raise
            except Exception:  # a bug in one callback must not stop the camera pipeline
                node._warn('callback_error', 'callback failed:\n' + traceback.format_exc())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._deactivate()
        node._release()
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    return exit_code


if __name__ == '__main__':
    sys.exit(main())
