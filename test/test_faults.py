"""
Faults over real DDS, and out-of-memory during inference.

A camera that stops and restarts, a silent bbox topic, a checkpoint swap through the lifecycle
while frames flow, malformed messages. One node process (checkpoint A: a tiny random-init
network saved with save_checkpoint) serves the module; the test process holds the "camera" (a
node that can be destroyed and re-created, like a driver restart) and a recorder of the outputs
and /diagnostics. Tests run in file order.
"""

import contextlib
import math
import random
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from geometry_msgs.msg import PoseStamped
from helpers import active_node
from helpers import running_node
from helpers import write_tiny_model_config
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.msg import ParameterValue
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from hand_object_pose_ros.ros.conversions import bbox_xyxy_to_roi
from hand_object_pose_ros.ros.conversions import depth_msg_to_metres
from hand_object_pose_ros.ros.conversions import depth_to_image_msg
from hand_object_pose_ros.ros.conversions import K_to_camera_info
from hand_object_pose_ros.ros.conversions import pose_array_to_points
from hand_object_pose_ros.ros.conversions import quaternion_msg_to_rotation
from hand_object_pose_ros.ros.conversions import rgb_to_image_msg
from hand_object_pose_ros.ros.conversions import roi_to_bbox_xyxy
from hand_object_pose_ros.ros.conversions import seconds_to_stamp
from hand_object_pose_ros.ros.stress import make_test_frame

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = '/hand_object_pose'
WIDTH, HEIGHT = 320, 240
BBOX_MAX_AGE_S = 1.0
STARTUP_TIMEOUT_S = 150.0
OUTPUT_TIMEOUT_S = 40.0
TOLERANCE_M = 1e-4
SCENE = make_test_frame(WIDTH, HEIGHT)


class Camera:
    """A camera driver stand-in: its own rclpy node, destroyed and re-created to 'restart'."""

    def __init__(self, context, executor, name):
        self.node = rclpy.create_node(name, context=context)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image = self.node.create_publisher(Image, 'image', qos)
        self.info = self.node.create_publisher(CameraInfo, 'camera_info', qos)
        self.depth = self.node.create_publisher(Image, 'depth', qos)
        self.roi = self.node.create_publisher(RegionOfInterest, 'hand_bbox', qos)
        self.executor = executor
        executor.add_node(self.node)

    def connected(self):
        return all(p.get_subscription_count() > 0
                   for p in (self.image, self.info, self.depth, self.roi))

    def destroy(self):
        self.executor.remove_node(self.node)
        self.node.destroy_node()


class Client:
    """Records the node's outputs and /diagnostics, drives its lifecycle, owns the camera."""

    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('faults_test_client', context=self.context)
        self.lock = threading.Lock()
        self.poses = {}  # (sec, nanosec) -> PoseStamped
        self.joints = {}
        self.diagnostics = {}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(PoseStamped, 'object_pose', self._record(self.poses), qos)
        self.node.create_subscription(PoseArray, 'hand_joints', self._record(self.joints), qos)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.change_state = self.node.create_client(ChangeState, NODE + '/change_state')
        self.set_parameters = self.node.create_client(SetParameters, NODE + '/set_parameters')
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.camera = Camera(self.context, self.executor, 'camera_driver')
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.stamp_s = 2000.0
        self.stamp_lock = threading.Lock()

    def _record(self, store):
        def record(msg):
            with self.lock:
                store[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
        return record

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name == 'hand_object_pose: pipeline':
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}

    def counter(self, key):
        with self.lock:
            return int(float(self.diagnostics.get(key, 0)))

    def wait_counter(self, key, at_least, timeout_s=OUTPUT_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.counter(key) >= at_least:
                return
            time.sleep(0.05)
        raise AssertionError('%s < %d; diagnostics %s' % (key, at_least, self.diagnostics))

    def restart_camera(self):
        """Destroy the camera node and create a new one (a driver restart)."""
        self.camera.destroy()
        time.sleep(1.0)
        self.camera = Camera(self.context, self.executor, 'camera_driver')

    def wait_camera_connected(self, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        while not self.camera.connected():
            assert time.monotonic() < deadline, 'the node did not subscribe to the camera'
            time.sleep(0.05)
        time.sleep(0.5)

    def send(self, roi=True, image=None, info=True, depth=True):
        """Publish one frame (box, camera_info, depth, image); return the stamp key."""
        with self.stamp_lock:
            self.stamp_s += 1.0
            stamp = seconds_to_stamp(self.stamp_s)
        header = Header(stamp=stamp, frame_id='camera_color_optical_frame')
        camera = self.camera
        if roi is True:
            camera.roi.publish(bbox_xyxy_to_roi(SCENE['bbox']))
        elif roi is not None:
            camera.roi.publish(roi)
        if info is True:
            camera.info.publish(K_to_camera_info(SCENE['K'], WIDTH, HEIGHT, header))
        elif info is not None:
            info.header = header
            camera.info.publish(info)
        if depth is True:
            camera.depth.publish(depth_to_image_msg(SCENE['depth'], header))
        elif depth is not None:
            depth.header = header
            camera.depth.publish(depth)
        time.sleep(0.03)
        image = rgb_to_image_msg(SCENE['rgb']) if image is None else image
        image.header = header
        camera.image.publish(image)
        return (stamp.sec, stamp.nanosec)

    def wait_pose(self, key, timeout_s=OUTPUT_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if key in self.poses and key in self.joints:
                    return self.poses[key], self.joints[key]
            time.sleep(0.03)
        raise AssertionError('no output for %s; diagnostics %s' % (key, self.diagnostics))

    def has_output(self, key):
        with self.lock:
            return key in self.poses

    def call(self, client, request, timeout_s=120.0):
        assert client.wait_for_service(timeout_sec=30.0), client.srv_name
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            assert time.monotonic() < deadline, 'no answer from %s' % client.srv_name
            time.sleep(0.02)
        return future.result()

    def transition(self, transition_id):
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(self.change_state, request).success

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _save_random_checkpoint(config, seed, path):
    """Save a random-init tiny network as a checkpoint (modeling.checkpoint.save_checkpoint)."""
    from hand_object_pose_ros.inference import Predictor
    from hand_object_pose_ros.modeling.checkpoint import save_checkpoint
    return save_checkpoint(path, Predictor.from_config(config, device='cpu', seed=seed).model)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Two different random-init checkpoints and their Predictors: {'a': (path, predictor)}."""
    from hand_object_pose_ros.inference import Predictor
    folder = tmp_path_factory.mktemp('faults')
    config = write_tiny_model_config(folder)
    result = {'config': config}
    for name, seed in (('a', 1), ('b', 2)):
        path = _save_random_checkpoint(config, seed, str(folder / ('model_%s.pt' % name)))
        result[name] = (path, Predictor.from_checkpoint(path, device='cpu'))
    return result


def expected(predictor):
    """Return the node's expected output for SCENE (box rounded to a ROI, depth through 16UC1)."""
    bbox = roi_to_bbox_xyxy(bbox_xyxy_to_roi(SCENE['bbox']))
    depth = depth_msg_to_metres(depth_to_image_msg(SCENE['depth']))
    return predictor(SCENE['rgb'], bbox, SCENE['K'], 'auto', depth=depth, is_right_hand=True)


def matches(pose, joints, prediction):
    """Tell whether an output (PoseStamped, PoseArray) equals a Predictor's prediction."""
    p = pose.pose.position
    if not np.allclose([p.x, p.y, p.z], prediction.object_translation, atol=TOLERANCE_M):
        return False
    if not np.allclose(quaternion_msg_to_rotation(pose.pose.orientation),
                       prediction.object_rotation, atol=1e-3):
        return False
    return np.allclose(pose_array_to_points(joints), prediction.hand_joints, atol=TOLERANCE_M)


@pytest.fixture(scope='module')
def node_process(checkpoints, tmp_path_factory):
    """Start the node with checkpoint A; yield (process, log path)."""
    log_path = tmp_path_factory.mktemp('faults_log') / 'node.log'
    parameters = ['checkpoint:=' + checkpoints['a'][0], 'device:=cpu', 'bbox_msg_type:=roi',
                  'use_depth:=true', 'bbox_max_age_s:=%.1f' % BBOX_MAX_AGE_S,
                  'sync_slop_s:=0.01', 'diagnostics_period_s:=0.2', 'warn_throttle_s:=0.0',
                  'qos_reliability:=best_effort', 'publish_markers:=false',
                  'publish_debug_image:=false']
    with running_node(parameters, log_path) as process:
        yield process, log_path


@pytest.fixture(scope='module')
def client(node_process, checkpoints):
    """Yield the client, once the node is active and subscribed (Predictors built before)."""
    process, log_path = node_process
    client = Client()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            assert process.poll() is None, 'node exited:\n' + log_path.read_text()
            with client.lock:
                active = client.diagnostics.get('state') == 'active'
            if active and client.camera.connected():
                break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        time.sleep(1.0)
        yield client
    finally:
        client.close()


def test_outputs_come_from_checkpoint_a(client, checkpoints):
    """Baseline: the node's outputs equal a direct call of Predictor A."""
    pose, joints = client.wait_pose(client.send())
    assert matches(pose, joints, expected(checkpoints['a'][1]))


def test_camera_stops_and_restarts_and_the_node_resumes(client, node_process):
    """The camera node goes away for 3 s and comes back: outputs resume, no node restart."""
    process, _ = node_process
    client.camera.destroy()
    try:
        # Let frames still in flight from earlier tests arrive and reach the diagnostics.
        time.sleep(1.5)
        received = client.counter('frames_received')
        time.sleep(3.0)
        assert process.poll() is None
        assert client.counter('frames_received') == received  # nothing came meanwhile
    finally:
        client.camera = Camera(client.context, client.executor, 'camera_driver')
    client.wait_camera_connected()
    pose, _ = client.wait_pose(client.send())
    client.wait_counter('frames_received', received + 1)  # counters kept: same process
    assert process.poll() is None


def test_silent_bbox_topic_means_no_output_after_bbox_max_age(client):
    """A box older than bbox_max_age_s is never used: frames are counted as no_bbox."""
    client.wait_pose(client.send())  # a fresh box: output
    no_bbox = client.counter('frames_rejected.no_bbox')
    time.sleep(BBOX_MAX_AGE_S + 0.3)  # the box topic is silent from now on
    keys = []
    for _ in range(3):
        keys.append(client.send(roi=None))
        time.sleep(0.3)
    time.sleep(BBOX_MAX_AGE_S + 0.5)
    client.camera.roi.publish(bbox_xyxy_to_roi(SCENE['bbox']))  # too late for the last frame
    client.wait_counter('frames_rejected.no_bbox', no_bbox + 3)
    time.sleep(0.5)
    assert not any(client.has_output(key) for key in keys)
    client.wait_pose(client.send())  # boxes again: outputs again


def _bad_messages(rng):
    """Malformed messages of every input kind (encoding, step, data, sizes, K, depth, box)."""
    good = rgb_to_image_msg(SCENE['rgb'])
    images = []
    for kind in ('8UC3', 'short_step', 'truncated', 'huge', 'zero', 'yuv422', 'bgr_short'):
        msg = rgb_to_image_msg(SCENE['rgb'], encoding='bgr8' if kind == 'bgr_short' else 'rgb8')
        if kind in ('8UC3', 'yuv422'):
            msg.encoding = kind
        elif kind in ('short_step', 'bgr_short'):
            msg.step = WIDTH * 3 - rng.randint(1, 30)
        elif kind == 'truncated':
            msg.data = bytes(good.data[:rng.randint(0, len(good.data) - 1)])
        elif kind == 'huge':
            msg.height, msg.width, msg.step = 2 ** 32 - 1, 2 ** 31, 2 ** 32 - 1
            msg.data = bytes(16)
        elif kind == 'zero':
            msg.height = msg.width = 0
        images.append(msg)
    infos = []
    for kind in ('zero', 'nan', 'negative'):
        info = K_to_camera_info(SCENE['K'], WIDTH, HEIGHT)
        info.k = [0.0] * 9 if kind == 'zero' else \
            [float('nan')] + list(info.k[1:]) if kind == 'nan' else [-5.0] + list(info.k[1:])
        infos.append(info)
    depths = [depth_to_image_msg(np.zeros((HEIGHT, WIDTH))),
              depth_to_image_msg(np.full((HEIGHT // 2, WIDTH // 2), 0.5))]
    nan_depth = depth_to_image_msg(np.zeros((HEIGHT, WIDTH)), encoding='32FC1')
    nan_depth.data = np.full((HEIGHT, WIDTH), np.nan, '<f4').tobytes()
    depths.append(nan_depth)
    rois = [RegionOfInterest(x_offset=5000, y_offset=5000, width=10, height=10),
            RegionOfInterest(x_offset=10, y_offset=10, width=0, height=0),
            RegionOfInterest(x_offset=2 ** 32 - 1, y_offset=0, width=2 ** 32 - 1, height=5)]
    return images, infos, depths, rois


def test_malformed_messages_over_dds_are_counted_and_survived(client, node_process):
    """A seeded mix of malformed inputs over DDS: counted, nothing NaN out, node alive."""
    process, log_path = node_process
    rng = random.Random(7)
    images, infos, depths, rois = _bad_messages(rng)
    rejected = client.counter('frames_rejected')
    messages_rejected = sum(client.counter(key) for key in (
        'messages_rejected.bad_camera_info', 'messages_rejected.depth_size_mismatch'))
    sent = 0
    for image in images:  # every malformed image once, with good side messages
        client.send(image=image)
        sent += 1
    for _ in range(12):  # random mixes of bad side messages with good images
        client.send(roi=rng.choice(rois + [True]), info=rng.choice(infos + [True]),
                    depth=rng.choice(depths + [True]))
    client.wait_counter('frames_rejected', rejected + sent)
    assert sum(client.counter(key) for key in (
        'messages_rejected.bad_camera_info', 'messages_rejected.depth_size_mismatch')) > \
        messages_rejected
    pose, joints = client.wait_pose(client.send())  # good frames still work
    assert process.poll() is None
    with client.lock:
        poses, joint_sets = list(client.poses.values()), list(client.joints.values())
    for msg in poses:
        p, q = msg.pose.position, msg.pose.orientation
        assert all(math.isfinite(v) for v in (p.x, p.y, p.z, q.x, q.y, q.z, q.w))
    assert all(np.all(np.isfinite(pose_array_to_points(msg))) for msg in joint_sets)
    assert 'bad_image' in log_path.read_text()


def test_reconfigure_with_another_checkpoint_while_frames_flow(client, checkpoints):
    """Deactivate, cleanup, checkpoint B, configure, activate under a 5 Hz stream."""
    expected_a, expected_b = expected(checkpoints['a'][1]), expected(checkpoints['b'][1])
    assert not np.allclose(expected_a.hand_joints, expected_b.hand_joints, atol=1e-3)
    stop = threading.Event()
    sent = []

    def stream():
        while not stop.is_set():
            sent.append((time.monotonic(), client.send()))
            time.sleep(0.2)

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    try:
        time.sleep(2.0)
        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        assert client.transition(Transition.TRANSITION_CLEANUP)
        value = ParameterValue(type=ParameterType.PARAMETER_STRING,
                               string_value=checkpoints['b'][0])
        response = client.call(client.set_parameters, SetParameters.Request(
            parameters=[ParameterMsg(name='checkpoint', value=value)]))
        assert response.results[0].successful, response.results[0].reason
        assert client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.transition(Transition.TRANSITION_ACTIVATE)
        activated_s = time.monotonic()
        deadline = activated_s + OUTPUT_TIMEOUT_S
        while time.monotonic() < deadline:
            after = [key for t, key in list(sent) if t > activated_s + 1.0 and
                     client.has_output(key)]
            if len(after) >= 3:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        streamer.join(5)
    time.sleep(1.0)
    from_a = from_b = 0
    for t, key in sent:
        if not client.has_output(key):
            continue
        with client.lock:
            pose, joints = client.poses[key], client.joints.get(key)
        assert joints is not None
        is_a, is_b = matches(pose, joints, expected_a), matches(pose, joints, expected_b)
        assert is_a or is_b, 'an output of neither model'
        if t > activated_s:
            assert is_b, 'model A answered after the activation with checkpoint B'
        from_a += is_a
        from_b += is_b
    assert from_a >= 1 and from_b >= 3, (from_a, from_b)


@contextlib.contextmanager
def _in_process_node(config):
    """Yield a configured, active node in this process, never spun, that has a camera_info."""
    with active_node([
            Parameter('model_config', value=config), Parameter('device', value='cpu'),
            Parameter('bbox_msg_type', value='roi'), Parameter('diagnostics_period_s', value=0.0),
            Parameter('publish_markers', value=False),
            Parameter('publish_debug_image', value=False)]) as node:
        node._on_camera_info(K_to_camera_info(SCENE['K'], WIDTH, HEIGHT))
        yield node


def _frame():
    from hand_object_pose_ros.ros.node import Frame
    from hand_object_pose_ros.ros.node import HandBox
    return Frame(rgb_to_image_msg(SCENE['rgb'], Header(frame_id='camera')), None,
                 [HandBox(SCENE['bbox'].copy())], time.monotonic())


def test_out_of_memory_in_inference_is_reported_and_the_frame_skipped(checkpoints):
    """
    Count an injected torch.cuda.OutOfMemoryError, skip that frame, process the next.

    The network raises it once (injected, so it runs on the CPU too): the frame is counted as
    out_of_memory and logged; the following frame is published.
    """
    import torch
    with _in_process_node(checkpoints['config']) as node:
        # The network runs through the Predictor's inference path (reference or fast path).
        inference = node._predictor.inference
        real_predict = inference.predict
        calls = []

        def predict_out_of_memory(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2 GiB')
            return real_predict(*args, **kwargs)

        inference.predict = predict_out_of_memory
        assert node.process_frame(_frame()) is None
        assert node.counters.frames_rejected['out_of_memory'] == 1
        assert dict(node.counters.as_key_values())['frames_rejected.out_of_memory'] == '1'
        assert node.process_frame(_frame()) is not None
        assert node.counters.frames_processed == 1


def test_real_cuda_out_of_memory_is_reported_and_the_frame_skipped(checkpoints):
    """On a GPU: fill its memory, a frame is skipped (out_of_memory); freed, frames work."""
    import torch
    if not torch.cuda.is_available():
        pytest.skip('no CUDA device on this machine: the real out-of-memory case needs a GPU '
                    '(the injected variant above runs everywhere)')
    from hand_object_pose_ros.ros.node import HandObjectPoseNode  # noqa: F401
    hog = []
    with _in_process_node(checkpoints['config']) as node:
        try:
            node._predictor.model.to('cuda')
            node._predictor.device = torch.device('cuda')
            while True:  # take every free block, 256 MiB then smaller
                try:
                    hog.append(torch.empty(64 * 2 ** 20, dtype=torch.float32, device='cuda'))
                except torch.cuda.OutOfMemoryError:
                    try:
                        hog.append(torch.empty(2 ** 20, dtype=torch.float32, device='cuda'))
                    except torch.cuda.OutOfMemoryError:
                        break
            assert node.process_frame(_frame()) is None
            assert node.counters.frames_rejected['out_of_memory'] == 1
            hog.clear()
            torch.cuda.empty_cache()
            assert node.process_frame(_frame()) is not None
        finally:
            hog.clear()
