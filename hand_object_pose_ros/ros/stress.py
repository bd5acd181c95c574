"""
Overload and soak tools for the hand_object_pose node, over real DDS.

``overload``: the node runs as its own process; this process publishes images (with
camera_info, depth and a hand box) at ``rate_factor`` times the rate the node can process
(measured first, one frame at a time) for ``duration_s`` and reports the latency of what the
node publishes (image publish -> object_pose received), the node's RSS over time, the queue
lengths and the dropped-frame counters it reports on /diagnostics::

    python -m hand_object_pose_ros.ros.stress overload [--duration 60] [--rate-factor 3]

``soak``: the synthetic camera (:mod:`hand_object_pose_ros.ros.synthetic_camera`) and the
node run as processes for ``minutes``; the report has the node's RSS after warm-up and at the
end, frames processed and dropped, and errors (inference / internal / non-finite /
out-of-memory rejections, NaN outputs, a dead process)::

    python -m hand_object_pose_ros.ros.stress soak [--minutes 10]

Both print one JSON report (also written to ``--output``) and exit 0 when the targets are met
(overload: latency p95 <= ``--max-latency-frames`` node frame times, memory growth under
``--max-rss-growth``; soak: RSS growth under 5 % and zero errors), else 1.
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
import numpy as np
import psutil
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from hand_object_pose_ros.constants import PIPELINE_DIAGNOSTIC_NAME
from hand_object_pose_ros.ros.conversions import bbox_xyxy_to_roi
from hand_object_pose_ros.ros.conversions import depth_to_image_msg
from hand_object_pose_ros.ros.conversions import K_to_camera_info
from hand_object_pose_ros.ros.conversions import rgb_to_image_msg
from hand_object_pose_ros.ros.conversions import seconds_to_stamp
from hand_object_pose_ros.ros.monitor import received_time_ns

SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIAGNOSTIC_NAME = PIPELINE_DIAGNOSTIC_NAME
FRAME_ID = 'camera_color_optical_frame'
DEFAULT_MODEL_CONFIG = 'config/model_lite.yaml'
STARTUP_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0
# Rejection reasons that are errors of the node (not of its input).
ERROR_REASONS = ('inference_error', 'internal_error', 'non_finite_output', 'out_of_memory')
MAX_INPUT_RATE_HZ = 250.0


def child_environment():
    """
    Return the environment for child processes: loopback DDS, the package importable.

    :return: dict (a copy of os.environ with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, the Fast
        DDS profile of config/ unless one is set, and the source tree on PYTHONPATH).
    """
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    profile = os.path.join(SOURCE_ROOT, 'config', 'fastdds_shm.xml')
    if os.path.isfile(profile):
        env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', profile)
    path = env.get('PYTHONPATH', '')
    if SOURCE_ROOT not in path.split(os.pathsep):
        env['PYTHONPATH'] = SOURCE_ROOT + (os.pathsep + path if path else '')
    return env


def node_command(params, remaps=()):
    """
    Build the node's command line (a list: never a shell string).

    :param params: dict name -> value string, passed as ``-p name:=value``.
    :param remaps: (from, to) topic remappings.
    :return: argv list.
    """
    command = [sys.executable, '-m', 'hand_object_pose_ros.ros.node', '--ros-args']
    for name, value in params.items():
        command += ['-p', '%s:=%s' % (name, value)]
    for source, target in remaps:
        command += ['-r', '%s:=%s' % (source, target)]
    return command


def default_node_params(model_config='', checkpoint='', device='cpu', use_depth=True):
    """
    Return the node parameters the tools use (random weights when ``checkpoint`` is '').

    :param model_config: model YAML for random weights.
    :param checkpoint: checkpoint path ('' = random weights).
    :param device: auto, cpu, cuda.
    :param use_depth: synchronise the depth image.
    :return: dict name -> value string.
    """
    params = {'checkpoint': checkpoint or "''", 'device': device, 'bbox_msg_type': 'roi',
              'use_depth': 'true' if use_depth else 'false', 'qos_reliability': 'best_effort',
              'diagnostics_period_s': '0.5', 'sync_slop_s': '0.01', 'bbox_max_age_s': '1.0'}
    if not checkpoint and model_config:
        params['model_config'] = model_config
    return params


def start_process(command, log_path, cwd=SOURCE_ROOT):
    """
    Start a child process in its own session, output to ``log_path``.

    :param command: argv list.
    :param log_path: file receiving stdout and stderr.
    :param cwd: working directory.
    :return: subprocess.Popen.
    """
    folder = os.path.dirname(os.path.abspath(log_path))
    os.makedirs(folder, exist_ok=True)
    with open(log_path, 'wb') as log:
        return subprocess.Popen(command, cwd=cwd, env=child_environment(), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process, timeout_s=STOP_TIMEOUT_S):
    """
    Stop a child: SIGINT (clean rclpy shutdown), then SIGKILL after ``timeout_s``.

    :param process: subprocess.Popen.
    :return: its exit code.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
    return process.returncode


def rss_bytes(pid):
    """Return the resident set size of a process in bytes (0 when it is gone)."""
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def make_test_frame(width=320, height=240):
    """
    Draw a deterministic test frame (gradient background, skin-coloured hand patch).

    :param width: pixels.
    :param height: pixels.
    :return: dict rgb (H, W, 3) uint8, depth (H, W) float32 m, K (3, 3), bbox (4,) px.
    """
    rows, cols = np.mgrid[0:height, 0:width]
    rgb = np.stack([(cols * 255) // width, (rows * 255) // height,
                    np.full_like(rows, 90)], axis=2).astype(np.uint8)
    x0, y0, x1, y1 = (int(0.35 * width), int(0.33 * height), int(0.62 * width),
                      int(0.7 * height))
    rgb[y0:y1, x0:x1] = (220, 170, 140)
    depth = np.full((height, width), 0.6, np.float32)
    focal = 0.95 * width
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    return {'rgb': rgb, 'depth': depth, 'K': K,
            'bbox': np.array([x0, y0, x1, y1], dtype=np.float64)}


def percentiles_ms(latencies_s):
    """Return {'p50', 'p95', 'mean', 'max', 'count'} of latencies (seconds) in ms."""
    values = np.asarray(latencies_s, dtype=np.float64)
    if values.size == 0:
        return {'p50': None, 'p95': None, 'mean': None, 'max': None, 'count': 0}
    return {'p50': round(1000.0 * float(np.percentile(values, 50)), 1),
            'p95': round(1000.0 * float(np.percentile(values, 95)), 1),
            'mean': round(1000.0 * float(values.mean()), 1),
            'max': round(1000.0 * float(values.max()), 1), 'count': int(values.size)}


def pose_is_finite(msg):
    """Return True when a PoseStamped holds no NaN or inf."""
    p, q = msg.pose.position, msg.pose.orientation
    return all(math.isfinite(v) for v in (p.x, p.y, p.z, q.x, q.y, q.z, q.w))


class Harness:
    """
    The measuring side: publishes the node's inputs, records object_pose and /diagnostics.

    Owns its own rclpy context and spins it in a thread. Outputs are matched to inputs by
    their header stamp; ``sent_s[stamp] = system time the image was published``. A latency
    ends when the middleware received the output (its reception timestamp, same clock), so
    that this process's own callback queueing under load is not counted; the callback-time
    latencies are kept beside them (``callback_latencies_s``).
    """

    def __init__(self, name='hand_object_pose_stress', publish_inputs=True,
                 output_topic='object_pose'):
        """
        Create the rclpy node, its publishers and recorders, and start spinning.

        :param name: node name.
        :param publish_inputs: create the image / camera_info / depth / hand_bbox publishers.
        :param output_topic: the node's object pose topic.
        """
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.lock = threading.Lock()
        self.sent_s = {}
        self.latencies_s = []
        self.callback_latencies_s = []
        self.outputs = 0
        self.non_finite_outputs = 0
        self.diagnostics = {}
        self.diagnostics_history = []
        self.publishers = {}
        if publish_inputs:
            camera_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
            for topic, msg_type in (('image', Image), ('camera_info', CameraInfo),
                                    ('depth', Image), ('hand_bbox', RegionOfInterest)):
                self.publishers[topic] = self.node.create_publisher(msg_type, topic,
                                                                    camera_qos)
        self.node.create_subscription(
            PoseStamped, output_topic, self._on_pose,
            QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self._next_stamp_s = time.time()

    def _on_pose(self, msg, message_info):
        # message_info has no default on purpose: rclpy passes it only to callbacks that
        # cannot be called with the message alone.
        called_s = time.time()
        arrived_ns = received_time_ns(message_info)
        arrived_s = arrived_ns * 1e-9 if arrived_ns > 0 else called_s
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self.lock:
            self.outputs += 1
            if not pose_is_finite(msg):
                self.non_finite_outputs += 1
            sent = self.sent_s.pop(key, None)
            if sent is not None:
                self.latencies_s.append(arrived_s - sent)
                self.callback_latencies_s.append(called_s - sent)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name == DIAGNOSTIC_NAME:
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.diagnostics = values
                    self.diagnostics_history.append((time.monotonic(), values))
                    del self.diagnostics_history[:-2000]

    def value(self, key, default=0.0):
        """Return a float value of the latest /diagnostics (``default`` when absent)."""
        with self.lock:
            raw = self.diagnostics.get(key)
        try:
            return float(raw)
        except (TypeError, ValueError):
            return default

    def state(self):
        """Return the node's lifecycle state from /diagnostics ('' before the first)."""
        with self.lock:
            return self.diagnostics.get('state', '')

    def wait_until_active(self, process, timeout_s=STARTUP_TIMEOUT_S, log_path=None):
        """
        Wait for the node to be active and subscribed to the inputs.

        :param process: the node's Popen (a dead process raises).
        :raises RuntimeError: the process died or the timeout passed.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError('node exited with %s%s' % (process.returncode, _log_tail(
                    log_path)))
            subscribed = all(publisher.get_subscription_count() > 0
                             for publisher in self.publishers.values())
            if self.state() == 'active' and subscribed:
                time.sleep(0.5)  # the node discovers our publishers too
                return
            time.sleep(0.1)
        raise RuntimeError('node not active after %.0f s%s' % (timeout_s, _log_tail(log_path)))

    def prepare(self, frame, width, height):
        """
        Build the input messages of a frame once (stamps are set per send).

        :param frame: dict from :func:`make_test_frame`.
        :return: dict topic -> message.
        """
        header = Header(frame_id=FRAME_ID)
        return {'camera_info': K_to_camera_info(frame['K'], width, height, header),
                'depth': depth_to_image_msg(frame['depth'], header),
                'image': rgb_to_image_msg(frame['rgb'], header),
                'hand_bbox': bbox_xyxy_to_roi(frame['bbox'])}

    def send(self, messages):
        """
        Publish one frame (box, camera_info, depth, image) with a fresh stamp.

        :param messages: dict from :meth:`prepare`.
        :return: the stamp key (sec, nanosec).
        """
        self._next_stamp_s = max(self._next_stamp_s + 1e-3, time.time())
        stamp = seconds_to_stamp(self._next_stamp_s)
        for topic in ('camera_info', 'depth', 'image'):
            messages[topic].header.stamp = stamp
        key = (stamp.sec, stamp.nanosec)
        self.publishers['hand_bbox'].publish(messages['hand_bbox'])
        self.publishers['camera_info'].publish(messages['camera_info'])
        self.publishers['depth'].publish(messages['depth'])
        with self.lock:
            self.sent_s[key] = time.time()
            if len(self.sent_s) > 10000:  # unanswered frames: keep the dict bounded
                for old in list(self.sent_s)[:5000]:
                    del self.sent_s[old]
        self.publishers['image'].publish(messages['image'])
        return key

    def wait_output(self, key, timeout_s):
        """Wait until the output of stamp ``key`` arrived; return True when it did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if key not in self.sent_s:
                    return True
            time.sleep(0.002)
        return False

    def take_latencies(self, callback_time=False):
        """
        Return and clear the recorded latencies (seconds).

        :param callback_time: return the latencies to this process's callback instead of to
            the middleware's reception (both lists are cleared).
        """
        with self.lock:
            latencies, self.latencies_s = self.latencies_s, []
            callback, self.callback_latencies_s = self.callback_latencies_s, []
        return callback if callback_time else latencies

    def close(self):
        """Stop spinning and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _log_tail(log_path, lines=30):
    """Return the last lines of a log file (for error messages), or ''."""
    if not log_path or not os.path.isfile(log_path):
        return ''
    with open(log_path, 'rb') as stream:
        text = stream.read().decode(errors='replace')
    return ':\n' + '\n'.join(text.splitlines()[-lines:])


def measure_frame_time(harness, messages, frames=8, timeout_s=60.0):
    """
    Measure the node's time per frame: frames sent one at a time, each after the last answer.

    :return: median publish-to-output latency, seconds (transport included).
    :raises RuntimeError: a frame got no answer within ``timeout_s``.
    """
    harness.take_latencies()
    for _ in range(frames):
        key = harness.send(messages)
        if not harness.wait_output(key, timeout_s):
            raise RuntimeError('no output within %.0f s of a frame; diagnostics %s'
                               % (timeout_s, harness.diagnostics))
    latencies = harness.take_latencies()
    return float(np.median(latencies[2:] if len(latencies) > 4 else latencies))


def run_overload(duration_s=60.0, rate_factor=3.0, width=320, height=240,
                 model_config=DEFAULT_MODEL_CONFIG, checkpoint='', device='cpu',
                 log_dir='stress_output', harness=None, node_pid=None, progress=None):
    """
    Publish at ``rate_factor`` x the node's rate for ``duration_s`` and measure.

    Starts the node (and a :class:`Harness`) unless ``harness`` and ``node_pid`` are given.

    :param duration_s: overload duration, seconds.
    :param rate_factor: input rate / the node's processing rate.
    :param width: image width, pixels.
    :param height: image height, pixels.
    :param model_config: model YAML (random weights) when ``checkpoint`` is ''.
    :param checkpoint: checkpoint path, or ''.
    :param device: node device.
    :param log_dir: folder of the node's log.
    :param harness: an existing Harness connected to a running node, or None.
    :param node_pid: that node's pid (for its RSS).
    :param progress: callable(str) for progress lines, or None.
    :return: report dict: frame_time_ms, input_rate_hz, frames_sent, outputs, latency_ms
        {p50, p95, mean, max, count} (to the middleware's reception of the output),
        latency_to_callback_ms (to this process's callback), latency_p95_frames (p95 / frame
        time), rss_mb {start, end, max}, rss_growth_pct, frames_received, frames_dropped,
        frames_processed, frames_rejected (deltas over the run), throughput_fps,
        frame_time_under_load_ms, latency_p95_frames_under_load (p95 / the node's frame time
        during the overload), max_sync_queued, max_slot_pending, non_finite_outputs, node
        diagnostics keys.
    """
    say = progress or (lambda text: None)
    process = None
    own_harness = harness is None
    log_path = os.path.join(log_dir, 'overload_node.log')
    try:
        if own_harness:
            params = default_node_params(model_config, checkpoint, device)
            process = start_process(node_command(params), log_path)
            node_pid = process.pid
            harness = Harness()
            say('overload: waiting for the node (pid %d, log %s)' % (node_pid, log_path))
            harness.wait_until_active(process, log_path=log_path)
        messages = harness.prepare(make_test_frame(width, height), width, height)
        frame_time_s = measure_frame_time(harness, messages)
        rate_hz = min(rate_factor / frame_time_s, MAX_INPUT_RATE_HZ)
        say('overload: node frame time %.1f ms; publishing at %.1f Hz for %.0f s'
            % (1000 * frame_time_s, rate_hz, duration_s))
        before = {key: harness.value(key) for key in (
            'frames_received', 'frames_dropped', 'frames_processed', 'frames_rejected')}
        rss_start = rss_bytes(node_pid)
        rss_samples = [rss_start]
        outputs_before = harness.outputs
        harness.take_latencies()
        start = time.monotonic()
        period_s = 1.0 / rate_hz
        sent = 0
        next_rss_s = start + 1.0
        max_sync_queued = max_slot_pending = 0.0
        fps_samples = []
        while True:
            now = time.monotonic()
            if now - start >= duration_s:
                break
            harness.send(messages)
            sent += 1
            if now >= next_rss_s:
                rss_samples.append(rss_bytes(node_pid))
                max_sync_queued = max(max_sync_queued, harness.value('sync_queued'))
                max_slot_pending = max(max_slot_pending, harness.value('slot_pending'))
                fps_samples.append(harness.value('fps'))
                next_rss_s += 1.0
            delay = start + sent * period_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        elapsed_s = time.monotonic() - start
        time.sleep(max(2.0, 3 * frame_time_s))  # trailing outputs and one more diagnostics
        rss_end = rss_bytes(node_pid)
        rss_samples.append(rss_end)
        after = {key: harness.value(key) for key in before}
        with harness.lock:
            callback_latencies = list(harness.callback_latencies_s)
        latency = percentiles_ms(harness.take_latencies())
        processed = after['frames_processed'] - before['frames_processed']
        loaded_frame_ms = 1000.0 * elapsed_s / processed if processed > 0 else None
        report = {
            'duration_s': round(elapsed_s, 2),
            'frame_time_ms': round(1000.0 * frame_time_s, 1),
            'rate_factor': rate_factor,
            'input_rate_hz': round(sent / elapsed_s, 1),
            'frames_sent': sent,
            'outputs': harness.outputs - outputs_before,
            'latency_ms': latency,
            'latency_to_callback_ms': percentiles_ms(callback_latencies),
            'latency_p95_frames': (round(latency['p95'] / (1000.0 * frame_time_s), 2)
                                   if latency['p95'] is not None else None),
            'rss_mb': {'start': round(rss_start / 2 ** 20, 1),
                       'end': round(rss_end / 2 ** 20, 1),
                       'max': round(max(rss_samples) / 2 ** 20, 1)},
            'rss_growth_pct': round(100.0 * (rss_end - rss_start) / max(rss_start, 1), 2),
            'max_sync_queued': int(max_sync_queued),
            'max_slot_pending': int(max_slot_pending),
            'non_finite_outputs': harness.non_finite_outputs,
            'node_inference_ms_mean': harness.value('inference_ms_mean'),
            'node_latency_ms_p95': harness.value('latency_ms_p95'),
            'node_fps_median': float(np.median(fps_samples)) if fps_samples else 0.0,
            'throughput_fps': round(processed / elapsed_s, 2),
            'frame_time_under_load_ms': (round(loaded_frame_ms, 1) if loaded_frame_ms
                                         else None),
            'latency_p95_frames_under_load': (
                round(latency['p95'] / loaded_frame_ms, 2)
                if latency['p95'] is not None and loaded_frame_ms else None),
            'device': harness.diagnostics.get('device', ''),
        }
        for key in before:
            report[key] = int(after[key] - before[key])
        return report
    finally:
        if own_harness and harness is not None:
            harness.close()
        if process is not None:
            stop_process(process)


def run_soak(minutes=10.0, rate_hz=30.0, width=320, height=240, pool_size=30,
             model_config=DEFAULT_MODEL_CONFIG, checkpoint='', device='cpu', warmup_s=30.0,
             sample_period_s=10.0, log_dir='stress_output', progress=None):
    """
    Run the synthetic camera and the node for ``minutes``; report RSS and counters.

    :param minutes: soak duration after warm-up.
    :param rate_hz: camera rate.
    :param width: image width, pixels.
    :param height: image height, pixels.
    :param pool_size: frames the camera pre-renders and loops.
    :param model_config: model YAML (random weights) when ``checkpoint`` is ''.
    :param checkpoint: checkpoint path, or ''.
    :param device: node device.
    :param warmup_s: seconds of processing before the start RSS is taken.
    :param sample_period_s: RSS / diagnostics sampling period.
    :param log_dir: folder of the camera's and the node's logs.
    :param progress: callable(str), or None.
    :return: report dict: rss_mb {start, end, max}, rss_growth_pct, frames_received,
        frames_processed, frames_dropped, frames_rejected (over the soak), errors (by kind),
        error_count, outputs, non_finite_outputs, latency_ms (node's p50/p95 at the end),
        fps, samples [(t_s, rss_mb, processed)], targets_met.
    """
    from hand_object_pose_ros.ros import synthetic_camera
    say = progress or (lambda text: None)
    camera_log = os.path.join(log_dir, 'soak_camera.log')
    node_log = os.path.join(log_dir, 'soak_node.log')
    params = default_node_params(model_config, checkpoint, device)
    params['diagnostics_period_s'] = '1.0'
    remaps = (('image', synthetic_camera.IMAGE_TOPIC),
              ('camera_info', synthetic_camera.CAMERA_INFO_TOPIC),
              ('depth', synthetic_camera.DEPTH_TOPIC),
              ('hand_bbox', synthetic_camera.HAND_BBOX_TOPIC))
    camera_command = [sys.executable, '-m', 'hand_object_pose_ros.ros.synthetic_camera',
                      '--ros-args', '-p', 'rate_hz:=%r' % float(rate_hz),
                      '-p', 'pool_size:=%d' % pool_size, '-p', 'width:=%d' % width,
                      '-p', 'height:=%d' % height]
    node = start_process(node_command(params, remaps), node_log)
    camera = start_process(camera_command, camera_log)
    harness = Harness(publish_inputs=False)
    try:
        say('soak: node pid %d, camera pid %d; logs in %s' % (node.pid, camera.pid, log_dir))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while harness.value('frames_processed') < 1:
            for name, child, log in (('node', node, node_log), ('camera', camera, camera_log)):
                if child.poll() is not None:
                    raise RuntimeError('%s exited with %s%s' % (name, child.returncode,
                                                                _log_tail(log)))
            if time.monotonic() > deadline:
                raise RuntimeError('no frame processed after %.0f s%s'
                                   % (STARTUP_TIMEOUT_S, _log_tail(node_log)))
            time.sleep(0.5)
        say('soak: first frame processed; warming up %.0f s' % warmup_s)
        time.sleep(warmup_s)
        keys = ('frames_received', 'frames_processed', 'frames_dropped', 'frames_rejected')
        before = {key: harness.value(key) for key in keys}
        errors_before = {reason: harness.value('frames_rejected.' + reason)
                         for reason in ERROR_REASONS}
        outputs_before, non_finite_before = harness.outputs, harness.non_finite_outputs
        rss_start = rss_bytes(node.pid)
        start = time.monotonic()
        samples = [(0.0, round(rss_start / 2 ** 20, 1), 0)]
        say('soak: start RSS %.1f MB; running %.1f min' % (rss_start / 2 ** 20, minutes))
        died = ''
        while time.monotonic() - start < 60.0 * minutes:
            time.sleep(min(sample_period_s, max(0.0, start + 60.0 * minutes -
                                                time.monotonic())))
            for name, child in (('node', node), ('camera', camera)):
                if child.poll() is not None and not died:
                    died = '%s exited with %s' % (name, child.returncode)
            if died:
                break
            t_s = time.monotonic() - start
            processed = int(harness.value('frames_processed') - before['frames_processed'])
            samples.append((round(t_s, 1), round(rss_bytes(node.pid) / 2 ** 20, 1),
                            processed))
            if int(t_s) // 60 != int(t_s - sample_period_s) // 60:
                say('soak: %4.1f min, RSS %.1f MB, %d frames processed, fps %.1f'
                    % (t_s / 60.0, samples[-1][1], processed, harness.value('fps')))
        time.sleep(1.5)  # one more /diagnostics
        rss_end = rss_bytes(node.pid)
        errors = {reason: int(harness.value('frames_rejected.' + reason) -
                              errors_before[reason]) for reason in ERROR_REASONS}
        errors['non_finite_outputs'] = harness.non_finite_outputs - non_finite_before
        if died:
            errors['process_died'] = 1
        error_count = sum(errors.values())
        growth = 100.0 * (rss_end - rss_start) / max(rss_start, 1)
        report = {
            'minutes': round((time.monotonic() - start) / 60.0, 2),
            'warmup_s': warmup_s, 'camera_rate_hz': rate_hz, 'image_size': [width, height],
            'model': checkpoint or ('random weights, ' + model_config),
            'rss_mb': {'start': round(rss_start / 2 ** 20, 1),
                       'end': round(rss_end / 2 ** 20, 1),
                       'max': max(sample[1] for sample in samples)},
            'rss_growth_pct': round(growth, 2),
            'outputs': harness.outputs - outputs_before,
            'errors': errors, 'error_count': error_count, 'died': died,
            'latency_ms': {'p50': harness.value('latency_ms_p50'),
                           'p95': harness.value('latency_ms_p95')},
            'fps': harness.value('fps'),
            'device': harness.diagnostics.get('device', ''),
            'samples': samples,
            'targets_met': bool(growth < 5.0 and error_count == 0),
        }
        for key in keys:
            report[key] = int(harness.value(key) - before[key])
        return report
    finally:
        harness.close()
        stop_process(camera)
        stop_process(node)


def main(argv=None):
    """
    Command line: ``overload`` or ``soak`` (see the module docstring).

    :return: exit code (0 targets met, 1 not met or a failure).
    """
    parser = argparse.ArgumentParser(prog='python -m hand_object_pose_ros.ros.stress',
                                     description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='mode', required=True)
    for mode in ('overload', 'soak'):
        option = sub.add_parser(mode)
        option.add_argument('--width', type=int, default=320)
        option.add_argument('--height', type=int, default=240)
        option.add_argument('--model-config', default=DEFAULT_MODEL_CONFIG,
                            help='model YAML for random weights (when no --checkpoint)')
        option.add_argument('--checkpoint', default='')
        option.add_argument('--device', default='cpu')
        option.add_argument('--log-dir', default='stress_output')
        option.add_argument('--output', default='', help='also write the JSON report here')
        if mode == 'overload':
            option.add_argument('--duration', type=float, default=60.0, help='seconds')
            option.add_argument('--rate-factor', type=float, default=3.0)
            option.add_argument('--max-latency-frames', type=float, default=2.0,
                                help='target: latency p95 <= this many node frame times')
            option.add_argument('--max-rss-growth', type=float, default=5.0, help='percent')
        else:
            option.add_argument('--minutes', type=float, default=10.0)
            option.add_argument('--rate', type=float, default=30.0, help='camera Hz')
            option.add_argument('--pool', type=int, default=30, help='pre-rendered frames')
            option.add_argument('--warmup-s', type=float, default=30.0)
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    for key, value in child_environment().items():
        if key.startswith('FASTDDS'):
            os.environ.setdefault(key, value)

    def say(text):
        print(text, flush=True)

    try:
        if args.mode == 'overload':
            report = run_overload(args.duration, args.rate_factor, args.width, args.height,
                                  args.model_config, args.checkpoint, args.device,
                                  args.log_dir, progress=say)
            report['targets_met'] = bool(
                report['latency_p95_frames'] is not None and
                report['latency_p95_frames'] <= args.max_latency_frames and
                report['rss_growth_pct'] < args.max_rss_growth and
                report['non_finite_outputs'] == 0)
        else:
            report = run_soak(args.minutes, args.rate, args.width, args.height, args.pool,
                              args.model_config, args.checkpoint, args.device, args.warmup_s,
                              log_dir=args.log_dir, progress=say)
    except (RuntimeError, OSError) as error:
        print('%s failed: %s' % (args.mode, error), file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, 'w') as stream:
            stream.write(text + '\n')
    return 0 if report['targets_met'] else 1


if __name__ == '__main__':
    sys.exit(main())
