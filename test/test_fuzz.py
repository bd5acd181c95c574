"""
Property-based fuzzing of the message conversions and of the node's per-frame path.

The conversions get arbitrary Image / CameraInfo / box values (every encoding, wrong steps,
truncated data, declared sizes up to 2**32 - 1 that are never allocated, NaN and inf): they
return a valid array or raise ``MessageConversionError``, nothing else.

The node (a real ``HandObjectPoseNode`` with a tiny random-weight network, configured and
activated in this process, never spun) gets fuzzed frames through ``process_frame`` after a
fuzzed camera_info went through its callback: no exception escapes, every published message is
finite, every call either publishes (``frames_processed`` + 1) or is counted as skipped (one
``frames_rejected`` reason + 1), and warnings stay rate-limited. The over-DDS smoke of malformed
messages is in test_faults.py (it shares that module's node process).
"""

from collections import Counter
import math

from helpers import active_node
from helpers import write_tiny_model_config
from hypothesis import example
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from hand_object_pose_ros.ros.conversions import bbox_xyxy_to_roi
from hand_object_pose_ros.ros.conversions import camera_info_to_K
from hand_object_pose_ros.ros.conversions import depth_msg_to_metres
from hand_object_pose_ros.ros.conversions import depth_to_image_msg
from hand_object_pose_ros.ros.conversions import image_msg_to_rgb
from hand_object_pose_ros.ros.conversions import K_to_camera_info
from hand_object_pose_ros.ros.conversions import MessageConversionError
from hand_object_pose_ros.ros.conversions import pose_array_to_points
from hand_object_pose_ros.ros.conversions import rgb_to_image_msg
from hand_object_pose_ros.ros.conversions import roi_to_bbox_xyxy
from hand_object_pose_ros.ros.conversions import rotation_to_quaternion_msg
from hand_object_pose_ros.ros.conversions import SUPPORTED_IMAGE_ENCODINGS
from hand_object_pose_ros.ros.stress import make_test_frame

pytestmark = [pytest.mark.ros]

WIDTH, HEIGHT = 320, 240
UINT32_MAX = 2 ** 32 - 1
ENCODINGS = SUPPORTED_IMAGE_ENCODINGS + ('16UC1', '32FC1', 'mono16', '8UC3', 'yuv422',
                                         'bayer_rggb8', '', 'RGB8', '64FC1')
WARN_THROTTLE_S = 1000.0
CASES = Counter()  # cases run per property (reported by the last test)

finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
sizes = st.one_of(st.integers(0, 64), st.integers(0, UINT32_MAX))


@st.composite
def image_messages(draw, encodings=ENCODINGS):
    """Arbitrary Image messages: declared sizes need not match the (small) data."""
    height, width = draw(sizes), draw(sizes)
    step = draw(st.one_of(st.integers(0, 256), st.integers(0, UINT32_MAX),
                          st.just(width * 3), st.just(width * 4)))
    step = min(step, UINT32_MAX)
    data = draw(st.binary(max_size=4096))
    msg = Image(height=height, width=width, encoding=draw(st.sampled_from(encodings)),
                is_bigendian=draw(st.integers(0, 1)), step=step)
    msg.data = data
    return msg


@st.composite
def padded_images(draw):
    """Draw valid images of every colour encoding with row padding, and the RGB they hold."""
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rgb = np.frombuffer(draw(st.binary(min_size=height * width * 3,
                                       max_size=height * width * 3)),
                        np.uint8).reshape(height, width, 3)
    encoding = draw(st.sampled_from(('rgb8', 'bgr8', 'rgba8', 'bgra8')))
    msg = rgb_to_image_msg(rgb, encoding=encoding)
    padding = draw(st.integers(0, 9))
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(height, msg.step)
    padded = np.concatenate([rows, np.full((height, padding), 77, np.uint8)], axis=1)
    msg.step += padding
    msg.data = padded.tobytes() + draw(st.binary(max_size=5))  # extra trailing bytes are ok
    return msg, rgb


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(msg=image_messages())
def test_image_conversion_returns_rgb_or_a_conversion_error(msg):
    """Any Image: (H, W, 3) uint8 of the declared size, or MessageConversionError."""
    CASES['image_msg_to_rgb'] += 1
    try:
        rgb = image_msg_to_rgb(msg)
    except MessageConversionError:
        return
    assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8
    assert msg.encoding in SUPPORTED_IMAGE_ENCODINGS


@settings(max_examples=150, deadline=None)
@given(case=padded_images())
def test_padded_colour_images_convert_exactly(case):
    """Row padding and channel order are honoured for rgb8, bgr8, rgba8, bgra8."""
    CASES['padded_images'] += 1
    msg, rgb = case
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(msg=image_messages())
def test_depth_conversion_is_finite_metres_or_a_conversion_error(msg):
    """Any Image as depth: (H, W) float32, finite, >= 0, or MessageConversionError."""
    CASES['depth_msg_to_metres'] += 1
    try:
        depth = depth_msg_to_metres(msg)
    except MessageConversionError:
        return
    assert depth.shape == (msg.height, msg.width) and depth.dtype == np.float32
    assert np.all(np.isfinite(depth)) and np.all(depth >= 0)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(finite_or_not, min_size=4, max_size=48))
def test_float_depth_with_nan_inf_negative_reads_as_invalid(values):
    """32FC1 NaN / inf / negative / zero pixels become 0 (invalid), others stay."""
    CASES['depth_32fc1_values'] += 1
    width = len(values) // 4
    with np.errstate(over='ignore'):  # float64 beyond the float32 range becomes inf
        array = np.array(values[:4 * width], np.float64).reshape(4, width).astype('<f4')
    msg = Image(height=4, width=width, encoding='32FC1', step=4 * width)
    msg.data = array.tobytes()
    depth = depth_msg_to_metres(msg)
    valid = np.isfinite(array) & (array > 0)
    np.testing.assert_array_equal(depth[valid], array[valid])
    assert np.all(depth[~valid] == 0)


@settings(max_examples=300, deadline=None)
@given(k=st.lists(finite_or_not, min_size=9, max_size=9))
def test_camera_info_gives_a_valid_K_or_a_conversion_error(k):
    """Any K (zeros, NaN, inf, negative focal lengths): finite K with fx, fy > 0, or error."""
    CASES['camera_info_to_K'] += 1
    msg = CameraInfo(width=WIDTH, height=HEIGHT)
    msg.k = k
    try:
        K = camera_info_to_K(msg)
    except MessageConversionError:
        assert not (np.all(np.isfinite(k)) and k[0] > 0 and k[4] > 0)
        return
    assert np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0


@settings(max_examples=300, deadline=None)
@given(box=st.lists(finite_or_not, min_size=4, max_size=4))
@example(box=[0.0, 0.0, 4.983160846214655e+16, 1.0])  # beyond uint32: once slipped through
def test_box_to_roi_covers_the_box_or_raises(box):
    """Any 4 floats: a RegionOfInterest covering the box (clamped at 0), or an error."""
    CASES['bbox_xyxy_to_roi'] += 1
    try:
        roi = bbox_xyxy_to_roi(box)
    except (MessageConversionError, OverflowError):
        # OverflowError: a finite box beyond the uint32 range of RegionOfInterest.
        return
    x0, y0, x1, y1 = roi_to_bbox_xyxy(roi)
    assert x0 <= max(box[0], 0) and y0 <= max(box[1], 0)
    assert x1 >= box[2] and y1 >= box[3]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(finite_or_not, min_size=9, max_size=9))
def test_rotation_to_quaternion_is_unit_or_raises(values):
    """Any 3x3 (NaN, inf, singular): a finite unit quaternion, or MessageConversionError."""
    CASES['rotation_to_quaternion_msg'] += 1
    try:
        q = rotation_to_quaternion_msg(np.array(values).reshape(3, 3))
    except MessageConversionError:
        return
    norm = math.sqrt(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2)
    assert math.isfinite(norm) and abs(norm - 1.0) < 1e-6


# ---------------------------------------------------------------------------------------------
# The node's per-frame path, in process
# ---------------------------------------------------------------------------------------------

class RecordingPublisher:
    """
    Wrap a node publisher: record what is published and forward it.

    It reports one subscriber, so the node also builds its markers and debug image.
    """

    def __init__(self, publisher):
        self.publisher = publisher
        self.messages = []

    def get_subscription_count(self):
        return 1

    def publish(self, msg):
        self.messages.append(msg)
        self.publisher.publish(msg)


class CountingLogger:
    """Wraps the node's logger and counts warnings (they still go to the log)."""

    def __init__(self, logger):
        self.logger = logger
        self.warnings = []

    def warning(self, message, **kwargs):
        self.warnings.append(message)
        return self.logger.warning(message, **kwargs)

    warn = warning

    def __getattr__(self, name):
        return getattr(self.logger, name)


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    """Yield a configured, active HandObjectPoseNode in this process (not spun)."""
    from hand_object_pose_ros.inference import Predictor  # noqa: F401 heavy imports first
    config = write_tiny_model_config(tmp_path_factory.mktemp('fuzz'))
    overrides = [Parameter('model_config', value=config), Parameter('device', value='cpu'),
                 Parameter('bbox_msg_type', value='roi'), Parameter('use_depth', value=True),
                 Parameter('warn_throttle_s', value=WARN_THROTTLE_S),
                 Parameter('diagnostics_period_s', value=0.0), Parameter('autostart', value=False)]

    def count_warnings(node):
        node._logger = CountingLogger(node._logger)

    with active_node(overrides, prepare=count_warnings) as node:
        node._outputs = {name: RecordingPublisher(publisher)
                         for name, publisher in node._outputs.items()}
        yield node


SCENE = make_test_frame(WIDTH, HEIGHT)


def test_box_subscription_is_served_before_the_image(node):
    """
    The executor serves ready subscriptions in creation order: the box must come first.

    Otherwise an image that arrives together with its (stamp-less) box is paired with the
    previous frame's box (the demo's hand error doubled that way).
    """
    order = [subscription.topic_name for subscription in node.subscriptions]
    assert order.index(node.topics['hand_bbox']) < order.index(node.topics['image'])
    assert order.index(node.topics['hand_bbox']) < order.index(node.topics['depth'])


def _image(kind, encoding, cut):
    """Return a valid frame image in an encoding, or one malformed in a chosen way."""
    msg = rgb_to_image_msg(SCENE['rgb'], encoding=encoding)
    if kind == 'short_step':
        msg.step = max(msg.step - cut - 1, 0)
    elif kind == 'truncated':
        msg.data = bytes(msg.data[:max(len(msg.data) - cut - 1, 0)])
    elif kind == 'huge':
        msg.height, msg.width, msg.step = UINT32_MAX, UINT32_MAX - cut, UINT32_MAX
    elif kind == 'bad_encoding':
        msg.encoding = '16UC1' if cut % 2 else 'yuv422'
    elif kind == 'zero':
        msg.height = 0
    elif kind == 'other_size':  # valid, but camera_info is for 320x240
        msg = rgb_to_image_msg(np.ascontiguousarray(SCENE['rgb'][:200, :300]),
                               encoding=encoding)
    return msg


def _depth(kind):
    """Return a depth message: good, all zero, all NaN, wrong size, malformed, or None."""
    if kind == 'none':
        return None
    if kind == 'zero':
        return depth_to_image_msg(np.zeros((HEIGHT, WIDTH)))
    if kind == 'nan':
        msg = depth_to_image_msg(np.zeros((HEIGHT, WIDTH)), encoding='32FC1')
        msg.data = np.full((HEIGHT, WIDTH), np.nan, '<f4').tobytes()
        return msg
    if kind == 'wrong_size':
        return depth_to_image_msg(np.full((HEIGHT // 2, WIDTH), 0.6))
    if kind == 'truncated':
        msg = depth_to_image_msg(SCENE['depth'])
        msg.data = bytes(msg.data[:1000])
        return msg
    if kind == 'bad_encoding':
        msg = depth_to_image_msg(SCENE['depth'])
        msg.encoding = 'rgb8'
        return msg
    return depth_to_image_msg(SCENE['depth'])


boxes = st.one_of(
    st.just(tuple(SCENE['bbox'])),
    st.tuples(*[st.floats(-500, 1500, allow_nan=False)] * 4),
    st.tuples(*[finite_or_not] * 4),
    st.builds(lambda b: (b[2], b[3], b[0], b[1]), st.just(tuple(SCENE['bbox']))),  # inverted
)
camera_infos = st.one_of(
    st.just(('good', None)),
    st.tuples(st.sampled_from(['zero', 'nan', 'negative', 'inf', 'other_size']),
              st.floats(-1e3, 1e3)))


def _camera_info(kind, value):
    """Return a camera_info message: good, zero K, NaN K, negative / inf fx, or another size."""
    info = K_to_camera_info(SCENE['K'], WIDTH, HEIGHT, Header())
    k = list(info.k)
    if kind == 'zero':
        k = [0.0] * 9
    elif kind == 'nan':
        k[2] = float('nan')
    elif kind == 'negative':
        k[0] = -abs(value) - 1.0
    elif kind == 'inf':
        k[4] = float('inf')
    elif kind == 'other_size':
        info.width, info.height = 640, 480
    info.k = k
    return info


def _total_rejected(node):
    with node.counters.lock:
        return sum(node.counters.frames_rejected.values()), node.counters.frames_processed


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(image_kind=st.sampled_from(['good', 'good', 'good', 'short_step', 'truncated', 'huge',
                                   'bad_encoding', 'zero', 'other_size']),
       encoding=st.sampled_from(SUPPORTED_IMAGE_ENCODINGS), cut=st.integers(0, 5000),
       box=boxes, info=camera_infos,
       depth_kind=st.sampled_from(['good', 'none', 'zero', 'nan', 'wrong_size', 'truncated',
                                   'bad_encoding']),
       extra_box=st.one_of(st.none(), boxes))
def test_node_frame_path_never_raises_never_publishes_nan_and_counts_skips(
        node, image_kind, encoding, cut, box, info, depth_kind, extra_box):
    """Fuzzed frame -> published finite outputs, or exactly one counted skip."""
    from hand_object_pose_ros.ros.node import Frame
    from hand_object_pose_ros.ros.node import HandBox
    CASES['node.process_frame'] += 1
    node._camera = None
    node._on_camera_info(_camera_info(*info))
    if node._camera is None:  # a rejected camera_info: the frame must then be skipped
        CASES['node.bad_camera_info'] += 1
    hand_boxes = [HandBox(np.array(box, dtype=np.float64))]
    if extra_box is not None:
        hand_boxes.append(HandBox(np.array(extra_box, dtype=np.float64), object_id=99))
    frame = Frame(_image(image_kind, encoding, cut), _depth(depth_kind), hand_boxes, 0.0)
    frame.image.header = Header(frame_id='camera')
    rejected_before, processed_before = _total_rejected(node)
    published_before = {name: len(p.messages) for name, p in node._outputs.items()}
    predictions = node.process_frame(frame)
    rejected, processed = _total_rejected(node)
    if predictions is None:
        CASES['node.skipped'] += 1
        assert (rejected - rejected_before, processed - processed_before) == (1, 0)
        assert all(len(p.messages) == published_before[name]
                   for name, p in node._outputs.items())
        return
    CASES['node.published'] += 1
    assert (rejected - rejected_before, processed - processed_before) == (0, 1)
    assert image_kind in ('good', 'other_size') and node._camera is not None
    for name, publisher in node._outputs.items():
        new = publisher.messages[published_before[name]:]
        assert len(new) == 1, name
        _assert_finite(name, new[0])
    publisher_messages = [p.messages for p in node._outputs.values()]
    for messages in publisher_messages:
        del messages[:-1]  # keep memory flat over the examples


def _assert_finite(name, msg):
    """No NaN / inf anywhere in an output message."""
    if name == 'object_pose':
        p, q = msg.pose.position, msg.pose.orientation
        assert all(math.isfinite(v) for v in (p.x, p.y, p.z, q.x, q.y, q.z, q.w))
    elif name == 'hand_joints':
        assert np.all(np.isfinite(pose_array_to_points(msg)))
    elif name == 'markers':
        for marker in msg.markers:
            assert all(math.isfinite(v) for point in marker.points
                       for v in (point.x, point.y, point.z))
            pose = marker.pose
            assert all(math.isfinite(v) for v in (pose.position.x, pose.position.y,
                                                  pose.position.z, pose.orientation.w))
    elif name == 'debug_image':
        assert msg.encoding == 'rgb8' and len(msg.data) == msg.step * msg.height


def test_roi_messages_of_any_value_are_usable_or_rejected(node):
    """Check ROI fields at their uint32 limits: they go through the callback safely."""
    from hand_object_pose_ros.ros.node import Frame
    node._camera = None
    node._on_camera_info(_camera_info('good', None))
    for x, y, w, h in ((0, 0, UINT32_MAX, UINT32_MAX), (UINT32_MAX, UINT32_MAX, 1, 1),
                       (10, 10, 0, 0), (100, 80, 60, 60)):
        roi = RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)
        node._on_roi(roi)
        frame = Frame(rgb_to_image_msg(SCENE['rgb']), None, [node._latest_roi[0]], 0.0)
        rejected_before, processed_before = _total_rejected(node)
        result = node.process_frame(frame)
        rejected, processed = _total_rejected(node)
        assert (rejected - rejected_before) + (processed - processed_before) == 1
        assert (result is None) == (rejected == rejected_before + 1)
    CASES['node.roi_limits'] += 4


def test_warnings_are_rate_limited_and_every_skip_counted(node):
    """Hundreds of skips, each kind of warning logged once per warn_throttle_s."""
    with node.counters.lock:
        rejected = dict(node.counters.frames_rejected)
        messages = dict(node.counters.messages_rejected)
    warnings = node.get_logger().warnings
    kinds = set(rejected) | set(messages)
    assert sum(rejected.values()) >= 30, rejected
    assert {'bad_image', 'bad_bbox'} <= set(rejected), rejected
    assert 'bad_camera_info' in messages, messages
    # One warning per kind at most (throttle 1000 s), plus the one-off configure warnings.
    skip_warnings = [text for text in warnings if 'skipped' in text or 'using the' in text
                     or 'camera_info' in text]
    assert len(skip_warnings) <= len(kinds) + 2, (len(skip_warnings), kinds)
    assert len(warnings) < sum(rejected.values()) / 3


def test_report_case_counts():
    """Print how many generated cases ran (pytest -s shows it); each property ran."""
    print('\nfuzz cases run: %d in total; %s' % (sum(CASES.values()), dict(sorted(
        CASES.items()))))
    for name in ('image_msg_to_rgb', 'depth_msg_to_metres', 'camera_info_to_K',
                 'node.process_frame', 'node.published', 'node.skipped'):
        assert CASES[name] > 0, name
