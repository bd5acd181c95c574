"""
The hand_object_pose node as its own process, fed and read over real DDS.

One node process serves the whole module (random weights of a tiny model config, seed 0); the
test process holds a small rclpy node that publishes a rendered 320x240 frame (the synthetic
generator) with camera_info, depth and a RegionOfInterest, reads every output topic and
/diagnostics (the node's counters), and drives the lifecycle with lifecycle_msgs services.
A Predictor built in the test process with the same config and seed gives the expected outputs.
Tests run in file order and share the node: each waits for its own frames by stamp.
"""

import math
import os
import signal
import threading
import time
from types import SimpleNamespace

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from geometry_msgs.msg import PoseStamped
from helpers import REPO_ROOT
from helpers import running_node
from helpers import start_node_piped
from helpers import write_tiny_model_config
from lifecycle_msgs.msg import State
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from lifecycle_msgs.srv import GetState
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.msg import ParameterValue
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

from hand_object_pose_ros.constants import NUM_HAND_JOINTS
from hand_object_pose_ros.constants import NUM_MANO_FACES
from hand_object_pose_ros.ros.conversions import bbox_xyxy_to_roi
from hand_object_pose_ros.ros.conversions import depth_msg_to_metres
from hand_object_pose_ros.ros.conversions import depth_to_image_msg
from hand_object_pose_ros.ros.conversions import K_to_camera_info
from hand_object_pose_ros.ros.conversions import pose_array_to_points
from hand_object_pose_ros.ros.conversions import quaternion_msg_to_rotation
from hand_object_pose_ros.ros.conversions import rgb_to_image_msg
from hand_object_pose_ros.ros.conversions import roi_to_bbox_xyxy
from hand_object_pose_ros.ros.conversions import seconds_to_stamp
from hand_object_pose_ros.ros.node import detections_to_hand_boxes

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = '/hand_object_pose'
DEMO_CHECKPOINT = os.path.join(REPO_ROOT, 'models', 'demo_lite.pt')
WIDTH, HEIGHT = 320, 240
FRAME_ID = 'camera_color_optical_frame'
STARTUP_TIMEOUT_S = 150.0
OUTPUT_TIMEOUT_S = 40.0
POSITION_TOLERANCE_M = 1e-4
FALLBACK_K = [400.0, 410.0, 150.0, 125.0]


def _scene():
    """
    Return one 320x240 frame: rgb, depth (m), K, hand box.

    A rendered synthetic grasp when the generator is importable, else a deterministic drawing.
    """
    try:
        from hand_object_pose_ros.data.synthetic import SyntheticConfig
        from hand_object_pose_ros.data.synthetic import SyntheticHandObjectGenerator
        config = SyntheticConfig(image_width_px=WIDTH, image_height_px=HEIGHT, seed=3).clean()
        frame = SyntheticHandObjectGenerator(config).render_frame(0)
        return SimpleNamespace(rgb=frame.rgb, depth=frame.depth_m.astype(np.float32),
                               K=np.asarray(frame.K, np.float64),
                               bbox=np.asarray(frame.bbox_xyxy_px, np.float64))
    except ImportError:
        rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
        rgb = np.stack([(cols * 255) // WIDTH, (rows * 255) // HEIGHT,
                        np.full_like(rows, 90)], axis=2).astype(np.uint8)
        rgb[80:170, 110:200] = (220, 170, 140)
        depth = np.full((HEIGHT, WIDTH), 0.6, np.float32)
        K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
        return SimpleNamespace(rgb=rgb, depth=depth, K=K, bbox=np.array([110., 80, 200, 170]))


class Client:
    """The test side: publishers of the node's inputs, recorders of its outputs, services."""

    def __init__(self):
        """Create the rclpy node and spin it in a thread."""
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('hand_object_pose_test_client', context=self.context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_image = self.node.create_publisher(Image, 'image', qos)
        self.pub_info = self.node.create_publisher(CameraInfo, 'camera_info', qos)
        self.pub_depth = self.node.create_publisher(Image, 'depth', qos)
        self.pub_roi = self.node.create_publisher(RegionOfInterest, 'hand_bbox', qos)
        self.lock = threading.Lock()
        self.received = {name: [] for name in ('object_pose', 'markers', 'debug_image',
                                               'hand_joints')}
        self.diagnostics = None
        for name, msg_type in (('object_pose', PoseStamped), ('markers', MarkerArray),
                               ('debug_image', Image), ('hand_joints', PoseArray)):
            self.node.create_subscription(msg_type, name, self._recorder(name), qos)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.change_state = self.node.create_client(ChangeState, NODE + '/change_state')
        self.get_state = self.node.create_client(GetState, NODE + '/get_state')
        self.set_parameters = self.node.create_client(SetParameters, NODE + '/set_parameters')
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.next_stamp_s = 1000.0

    def _recorder(self, name):
        def record(msg):
            with self.lock:
                self.received[name].append(msg)
        return record

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name == 'hand_object_pose: pipeline':
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}

    def counter(self, key):
        """Return a counter of the latest /diagnostics (0 when absent)."""
        with self.lock:
            values = dict(self.diagnostics or {})
        return int(values.get(key, 0))

    def wait_counter(self, key, at_least, timeout_s=OUTPUT_TIMEOUT_S):
        """Wait until a /diagnostics counter reaches a value; return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.counter(key) >= at_least:
                return self.counter(key)
            time.sleep(0.05)
        raise AssertionError('counter %s stayed at %d (< %d); diagnostics: %s'
                             % (key, self.counter(key), at_least, self.diagnostics))

    def new_stamp(self):
        """Return a fresh, increasing header stamp."""
        self.next_stamp_s += 1.0
        return seconds_to_stamp(self.next_stamp_s)

    def send(self, scene, stamp=None, image=None, K='scene', depth='scene', roi='scene',
             depth_encoding='16UC1'):
        """
        Publish one frame: box first, then camera_info, depth and the image.

        :return: the header used.
        """
        header = Header(stamp=stamp or self.new_stamp(), frame_id=FRAME_ID)
        if roi is not None:
            self.pub_roi.publish(bbox_xyxy_to_roi(scene.bbox) if isinstance(roi, str) else roi)
            time.sleep(0.05)
        if K is not None:
            info = K_to_camera_info(scene.K if isinstance(K, str) else K, WIDTH, HEIGHT, header)
            self.pub_info.publish(info)
        if depth is not None:
            values = scene.depth if isinstance(depth, str) else depth
            if isinstance(values, Image):
                values.header = header
                self.pub_depth.publish(values)
            else:
                self.pub_depth.publish(depth_to_image_msg(values, header, depth_encoding))
        time.sleep(0.05)
        if image is None:
            image = rgb_to_image_msg(scene.rgb, header)
        image.header = header
        self.pub_image.publish(image)
        return header

    def outputs_with(self, stamp):
        """Return {topic: message} of the outputs carrying ``stamp``."""
        found = {}
        with self.lock:
            for name, messages in self.received.items():
                for msg in messages:
                    if msg_stamp(msg) == (stamp.sec, stamp.nanosec):
                        found[name] = msg
        return found

    def wait_outputs(self, stamp, names=('object_pose', 'markers', 'debug_image', 'hand_joints'),
                     timeout_s=OUTPUT_TIMEOUT_S):
        """Wait for every named output of a frame."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.outputs_with(stamp)
            if all(name in found for name in names):
                return found
            time.sleep(0.05)
        raise AssertionError('outputs of stamp %d.%09d: only %s; diagnostics %s'
                             % (stamp.sec, stamp.nanosec, sorted(self.outputs_with(stamp)),
                                self.diagnostics))

    def call(self, client, request, timeout_s=60.0):
        """Call a service and return its response."""
        assert client.wait_for_service(timeout_sec=timeout_s), client.srv_name
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert future.done(), 'no answer from %s' % client.srv_name
        return future.result()

    def transition(self, transition_id):
        """Request a lifecycle transition; return success."""
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(self.change_state, request).success

    def state(self):
        """Return the node's lifecycle state id."""
        return self.call(self.get_state, GetState.Request()).current_state.id

    def close(self):
        """Stop spinning and shut the client's context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def msg_stamp(msg):
    """Return (sec, nanosec) of a message's header, or of a MarkerArray's first marker."""
    if isinstance(msg, MarkerArray):
        header = msg.markers[-1].header if msg.markers else Header()
    else:
        header = msg.header
    return header.stamp.sec, header.stamp.nanosec


def assert_all_finite(client):
    """No output message received so far holds NaN or inf."""
    with client.lock:
        received = {name: list(messages) for name, messages in client.received.items()}
    for msg in received['object_pose']:
        p, q = msg.pose.position, msg.pose.orientation
        assert all(math.isfinite(v) for v in (p.x, p.y, p.z, q.x, q.y, q.z, q.w))
    for msg in received['hand_joints']:
        assert np.all(np.isfinite(pose_array_to_points(msg)))
    for msg in received['markers']:
        for marker in msg.markers:
            assert all(math.isfinite(v) for point in marker.points
                       for v in (point.x, point.y, point.z))


@pytest.fixture(scope='module')
def scene():
    """Return the frame every test sends."""
    return _scene()


@pytest.fixture(scope='module')
def model_config(tmp_path_factory):
    """Path of the tiny model config."""
    return write_tiny_model_config(tmp_path_factory.mktemp('node'))


@pytest.fixture(scope='module')
def predictor(model_config):
    """Build the node's network in the test process (same config, same seed)."""
    from hand_object_pose_ros.inference import Predictor
    return Predictor.from_config(model_config, device='cpu', seed=0)


@pytest.fixture(scope='module')
def node_process(model_config, tmp_path_factory):
    """Start the node once for the module; yield (process, log path); stop it at the end."""
    log_path = tmp_path_factory.mktemp('node_log') / 'node.log'
    parameters = [
        "checkpoint:=''", 'model_config:=' + model_config, 'seed:=0', 'device:=cpu',
        'bbox_msg_type:=roi', 'use_depth:=true', 'bbox_max_age_s:=5.0', 'sync_slop_s:=0.01',
        'diagnostics_period_s:=0.2', 'warn_throttle_s:=0.0', 'marker_lifetime_s:=0.0',
        'qos_reliability:=best_effort',
    ]
    with running_node(parameters, log_path) as process:
        yield process, log_path


@pytest.fixture(scope='module')
def client(node_process, predictor, scene):
    """
    Yield the test client once the node is active and its outputs are matched.

    The Predictor and the scene are built first: heavy imports (torchvision, the GL renderer)
    then happen before the client's rclpy thread starts.
    """
    process, log_path = node_process
    client = Client()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, 'node exited:\n' + log_path.read_text()
            with client.lock:
                state = (client.diagnostics or {}).get('state')
            if state == 'active' and client.pub_image.get_subscription_count() > 0 and \
                    client.pub_roi.get_subscription_count() > 0 and \
                    client.node.count_publishers('/debug_image') > 0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError('node not active after %.0f s:\n%s'
                                 % (STARTUP_TIMEOUT_S, log_path.read_text()))
        time.sleep(1.0)  # let the node discover the client's subscriptions too
        yield client
    finally:
        client.close()


def expected_prediction(predictor, scene, K=None, depth='scene'):
    """Run the Predictor on what the node receives (box rounded to a ROI, depth to mm)."""
    bbox = roi_to_bbox_xyxy(bbox_xyxy_to_roi(scene.bbox))
    if isinstance(depth, str):
        depth = depth_msg_to_metres(depth_to_image_msg(scene.depth))
    return predictor(scene.rgb, bbox, scene.K if K is None else K, 'auto', depth=depth,
                     is_right_hand=True)


def check_against(outputs, expected, header):
    """Compare the node's object pose and joints with a direct Predictor call."""
    pose = outputs['object_pose']
    position = pose.pose.position
    np.testing.assert_allclose([position.x, position.y, position.z],
                               expected.object_translation, atol=POSITION_TOLERANCE_M)
    rotation = quaternion_msg_to_rotation(pose.pose.orientation)
    np.testing.assert_allclose(rotation, expected.object_rotation, atol=1e-3)
    joints = pose_array_to_points(outputs['hand_joints'])
    np.testing.assert_allclose(joints, expected.hand_joints, atol=POSITION_TOLERANCE_M)
    for msg in (pose, outputs['hand_joints'], outputs['debug_image']):
        assert msg.header.frame_id == header.frame_id
        assert msg.header.stamp == header.stamp


def test_missing_camera_info_without_fallback_is_skipped_and_counted(client, scene):
    """No camera_info yet and fallback_K = []: the frame is counted, nothing is published."""
    before = client.counter('frames_rejected.no_camera_info')
    header = client.send(scene, K=None, depth=None)
    client.wait_counter('frames_rejected.no_camera_info', before + 1)
    time.sleep(0.5)
    assert not client.outputs_with(header.stamp)
    assert client.counter('frames_received') >= 1


def test_every_output_matches_a_direct_predictor_call(client, scene, predictor):
    """Headers copied, unit quaternion, 778-vertex mesh, 21 joints, debug image size, values."""
    header = client.send(scene)
    outputs = client.wait_outputs(header.stamp)
    q = outputs['object_pose'].pose.orientation
    assert math.sqrt(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2) == pytest.approx(1.0, abs=1e-6)
    assert len(outputs['hand_joints'].poses) == NUM_HAND_JOINTS
    meshes = [m for m in outputs['markers'].markers if m.ns == 'hand_mesh']
    assert len(meshes) == 1 and meshes[0].type == Marker.TRIANGLE_LIST
    assert len(meshes[0].points) == NUM_MANO_FACES * 3
    assert meshes[0].header.frame_id == FRAME_ID and meshes[0].header.stamp == header.stamp
    debug = outputs['debug_image']
    assert (debug.width, debug.height, debug.encoding) == (WIDTH, HEIGHT, 'rgb8')
    expected = expected_prediction(predictor, scene)
    assert expected.wrist_depth_source == 'depth'
    check_against(outputs, expected, header)
    assert_all_finite(client)


def _bad_image(scene, kind):
    """Build one malformed image message."""
    msg = rgb_to_image_msg(scene.rgb)
    if kind == 'encoding':
        msg.encoding = '8UC3'
    elif kind == 'zero_size':
        msg = Image(height=0, width=0, encoding='rgb8', step=0)
    elif kind == 'short_step':
        msg.step = WIDTH * 3 - 6
    elif kind == 'truncated':
        msg.data = bytes(msg.data[:WIDTH * 3 * 10])
    return msg


@pytest.mark.parametrize('kind', ['encoding', 'zero_size', 'short_step', 'truncated'])
def test_bad_image_is_skipped_and_the_node_keeps_running(client, scene, kind):
    """Unsupported encoding, zero size, wrong step, truncated data: counted, nothing out."""
    before = client.counter('frames_rejected.bad_image')
    header = client.send(scene, image=_bad_image(scene, kind))
    client.wait_counter('frames_rejected.bad_image', before + 1)
    time.sleep(0.3)
    assert not client.outputs_with(header.stamp)


@pytest.mark.parametrize('roi', [
    RegionOfInterest(x_offset=1000, y_offset=900, width=50, height=50),
    RegionOfInterest(x_offset=100, y_offset=100, width=0, height=40),
], ids=['outside', 'zero_area'])
def test_bad_box_is_skipped(client, scene, roi):
    """A box outside the image or of zero area: counted, nothing out."""
    before = client.counter('frames_rejected.bad_bbox')
    header = client.send(scene, roi=roi)
    client.wait_counter('frames_rejected.bad_bbox', before + 1)
    time.sleep(0.3)
    assert not client.outputs_with(header.stamp)


def test_nan_camera_info_is_ignored_and_counted(client, scene):
    """A camera_info with NaN is counted and does not replace the valid intrinsics."""
    before = client.counter('messages_rejected.bad_camera_info')
    K = scene.K.copy()
    K[0, 2] = float('nan')
    info = K_to_camera_info(scene.K, WIDTH, HEIGHT, Header(stamp=client.new_stamp()))
    info.k = K.reshape(-1).tolist()
    client.pub_info.publish(info)
    client.wait_counter('messages_rejected.bad_camera_info', before + 1)
    header = client.send(scene, K=None)  # the earlier valid K still applies
    client.wait_outputs(header.stamp)
    assert_all_finite(client)


@pytest.mark.parametrize('encoding', ['16UC1', '32FC1'])
def test_depth_without_valid_pixels_falls_back_to_hand_size(client, scene, predictor, encoding):
    """All-zero (16UC1) or all-NaN (32FC1) depth: published, equal to the no-depth lift."""
    invalid = np.zeros((HEIGHT, WIDTH), np.float32)
    depth = depth_to_image_msg(invalid, None, encoding)
    if encoding == '32FC1':
        depth.data = np.full((HEIGHT, WIDTH), np.nan, '<f4').tobytes()
    header = client.send(scene, depth=depth)
    outputs = client.wait_outputs(header.stamp)
    expected = expected_prediction(predictor, scene, depth=None)
    assert expected.wrist_depth_source == 'hand_size'
    check_against(outputs, expected, header)
    assert_all_finite(client)


def test_stale_frames_are_dropped_not_queued(client, scene):
    """A burst faster than inference: frames are dropped and counted, the newest processed."""
    time.sleep(1.0)  # earlier tests' frames are done and counted in the diagnostics
    dropped = client.counter('frames_dropped')
    processed = client.counter('frames_processed')
    client.pub_roi.publish(bbox_xyxy_to_roi(scene.bbox))
    time.sleep(0.1)
    headers = []
    for _ in range(12):
        header = Header(stamp=client.new_stamp(), frame_id=FRAME_ID)
        client.pub_info.publish(K_to_camera_info(scene.K, WIDTH, HEIGHT, header))
        client.pub_depth.publish(depth_to_image_msg(scene.depth, header))
        client.pub_image.publish(rgb_to_image_msg(scene.rgb, header))
        headers.append(header)
        time.sleep(0.01)
    client.wait_outputs(headers[-1].stamp)
    client.wait_counter('frames_dropped', dropped + 1)
    time.sleep(1.5)  # the last outputs and diagnostics arrive
    handled = client.counter('frames_processed') - processed
    assert handled < len(headers)
    published = [h for h in headers if 'object_pose' in client.outputs_with(h.stamp)]
    assert len(published) == handled


def test_lifecycle_deactivate_stops_output_and_activate_resumes(client, scene):
    """Deactivate: no output; activate: output again (lifecycle_msgs services)."""
    assert client.state() == State.PRIMARY_STATE_ACTIVE
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.state() == State.PRIMARY_STATE_INACTIVE
    header = client.send(scene)
    time.sleep(2.0)
    assert not client.outputs_with(header.stamp)
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.state() == State.PRIMARY_STATE_ACTIVE
    time.sleep(1.0)  # the new subscriptions are discovered
    header = client.send(scene)
    client.wait_outputs(header.stamp)


def test_reconfigure_with_fallback_K_processes_frames_without_camera_info(
        client, scene, predictor):
    """Cleanup, set fallback_K, configure, activate: no camera_info needed any more."""
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.transition(Transition.TRANSITION_CLEANUP)
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY,
                           double_array_value=FALLBACK_K)
    response = client.call(client.set_parameters, SetParameters.Request(
        parameters=[ParameterMsg(name='fallback_K', value=value)]))
    assert response.results[0].successful, response.results[0].reason
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    time.sleep(1.0)
    header = client.send(scene, K=None)
    outputs = client.wait_outputs(header.stamp)
    fx, fy, cx, cy = FALLBACK_K
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    check_against(outputs, expected_prediction(predictor, scene, K=K), header)


def test_warnings_are_logged_and_the_process_survived(node_process, client):
    """The log names the rejection reasons; the process is still running."""
    process, log_path = node_process
    assert process.poll() is None
    log = log_path.read_text()
    for reason in ('bad_image', 'bad_bbox', 'bad_camera_info', 'no_camera_info'):
        assert reason in log
    assert 'RANDOM weights' in log and 'stand-in' in log
    assert client.counter('frames_processed') >= 5


def _start_failing(tmp_path, *parameters):
    """Start a node with autostart and bad parameters; return the Popen."""
    return start_node_piped(tmp_path, ('device:=cpu',) + parameters)


def test_wrong_paths_fail_configure_with_the_parameter_name(tmp_path, model_config):
    """Missing checkpoint, missing MANO dir, a non-checkpoint file: exit 1, parameter named."""
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a checkpoint')
    cases = {
        'checkpoint': _start_failing(tmp_path, 'checkpoint:=missing/model.pt'),
        'mano_model_dir': _start_failing(tmp_path, 'mano_model_dir:=/no/such/mano',
                                         'model_config:=' + model_config),
        'garbage': _start_failing(tmp_path, 'checkpoint:=' + str(garbage)),
    }
    for name, process in cases.items():
        output, _ = process.communicate(timeout=120)
        text = output.decode(errors='replace')
        assert process.returncode == 1, text
        assert ("'%s'" % ('checkpoint' if name == 'garbage' else name)) in text, text
        assert 'configure failed' in text


def test_ctrl_c_while_configuring_exits_cleanly(tmp_path):
    """
    SIGINT while the checkpoint loads: exit 0, no 'configure failed' error.

    Depending on where the signal lands, rclpy raises KeyboardInterrupt inside configure or
    shuts the context down under it (then configure fails on it); both must end as a clean stop.
    """
    process = start_node_piped(tmp_path, ('device:=cpu', 'checkpoint:=' + DEMO_CHECKPOINT))
    lines = []
    try:
        # The stand-in warning comes just before the model is built and loaded (seconds).
        for line in iter(process.stdout.readline, b''):
            lines.append(line.decode(errors='replace'))
            if 'mano_model_dir is' in lines[-1]:
                process.send_signal(signal.SIGINT)
                break
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    text = ''.join(lines) + output.decode(errors='replace')
    assert process.returncode == 0, text
    assert 'configure failed' not in text, text
    assert 'configured:' not in text, 'the signal came after configure: ' + text


def test_detection2d_boxes_are_read_from_both_vision_msgs_layouts():
    """Detection2D -> boxes and class ids (vision_msgs itself is not installed here)."""
    def detection(cx, cy, w, h, class_id, score, new_layout):
        center = SimpleNamespace(position=SimpleNamespace(x=cx, y=cy), theta=0.0) \
            if new_layout else SimpleNamespace(x=cx, y=cy, theta=0.0)
        hypothesis = SimpleNamespace(hypothesis=SimpleNamespace(class_id=class_id, score=score))
        return SimpleNamespace(bbox=SimpleNamespace(center=center, size_x=w, size_y=h),
                               results=[hypothesis])
    array = SimpleNamespace(detections=[detection(100, 80, 40, 20, '5', 0.9, True),
                                        detection(10, 20, 4, 6, 'hand', 0.4, False)])
    boxes = detections_to_hand_boxes(array)
    np.testing.assert_allclose(boxes[0].bbox_xyxy_px, [80, 70, 120, 90])
    assert boxes[0].object_id == 5 and boxes[0].score == pytest.approx(0.9)
    np.testing.assert_allclose(boxes[1].bbox_xyxy_px, [8, 17, 12, 23])
    assert boxes[1].object_id is None
