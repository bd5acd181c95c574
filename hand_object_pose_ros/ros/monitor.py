"""
The demo's monitor node: frame counts, latency, throughput and accuracy of the perception node.

It listens to the synthetic camera's ground truth (``/ground_truth/info``, ``object_pose``,
``hand_joints``; one message each per published frame) and to the node's outputs
(``object_pose``, ``hand_joints``, ``debug_image``), matching them by the image stamp they all
carry. The timed window opens when the node's first ``object_pose`` arrives (the node is up)
and lasts ``duration_s``; frames whose image stamp falls in it are counted:

- frames in: frames the camera published; processed: frames with an ``object_pose``;
  dropped = in - processed (the node keeps only the newest frame while it is busy);
- latency: ``object_pose`` receipt time minus the image stamp (one machine, one clock), ms;
- throughput: processed frames per second of the window;
- hand MJE (root-relative and absolute, mm) and object MCE (mm) against the ground truth.

At the end it writes ``summary.json``, a few overlay PNGs (the node's debug image) and an
animated GIF to ``output_dir``, prints one line, and exits (0, or 2 when the node produced
nothing within ``startup_timeout_s``).
"""

import json
import math
import os
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from geometry_msgs.msg import PoseStamped
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy
from sensor_msgs.msg import Image

from hand_object_pose_ros.constants import PIPELINE_DIAGNOSTIC_NAME
from hand_object_pose_ros.ros.conversions import image_msg_to_rgb
from hand_object_pose_ros.ros.conversions import pose_array_to_points
from hand_object_pose_ros.ros.conversions import quaternion_msg_to_rotation
from hand_object_pose_ros.ros.synthetic_camera import GROUND_TRUTH_HAND_JOINTS_TOPIC
from hand_object_pose_ros.ros.synthetic_camera import GROUND_TRUTH_INFO_TOPIC
from hand_object_pose_ros.ros.synthetic_camera import GROUND_TRUTH_OBJECT_POSE_TOPIC
from hand_object_pose_ros.ros.synthetic_camera import GROUND_TRUTH_QUEUE_DEPTH
from hand_object_pose_ros.ros.synthetic_camera import GROUND_TRUTH_STATUS_NAME

ANIMATION_FILE_NAME = 'demo.gif'
# The node's /diagnostics values copied into the summary (its own timing of each frame).
NODE_DIAGNOSTIC_KEYS = ('processing_ms_mean', 'inference_ms_mean', 'frames_dropped',
                        'frames_rejected', 'latency_ms_p50', 'latency_ms_p95')
EXIT_NO_OUTPUT = 2
# After the window closes, outputs of frames stamped inside it may still be on their way.
RESULT_GRACE_S = 3.0
CATCH_UP_LIMIT_S = 15.0
# Ground truth older than this (relative to the newest) is forgotten.
TRUTH_HORIZON_NS = int(30e9)


def _number_or_text(value):
    """Return a diagnostic value as a float when it is one, else as given."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def stamp_ns(stamp):
    """Return a builtin_interfaces/Time as integer nanoseconds (the matching key)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def received_time_ns(message_info):
    """
    Return when the middleware received a message (system clock, ns), or 0 when unknown.

    This is the arrival time even when this node's callbacks lag behind (a busy CPU), so the
    measured latency does not include the monitor's own queueing.
    """
    if not message_info:
        return 0
    return int(message_info.get('received_timestamp', 0) or 0)


def percentile_ms(latencies_s, q):
    """Return the q-th percentile of latencies in ms, or NaN for none."""
    if not latencies_s:
        return float('nan')
    return float(np.percentile(np.asarray(latencies_s) * 1000.0, q))


def finite_or_none(value):
    """Return a float for JSON, None for NaN/inf (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def evaluate_accuracy(matches, catalogue=None):
    """
    Hand and object errors of matched frames with the package's metrics.

    :param matches: list of dicts with ``pred_joints``/``gt_joints`` (21, 3) metres camera
        frame (either may be None), ``pred_R``/``gt_R`` (3, 3), ``pred_t``/``gt_t`` (3,)
        metres, ``object_id`` (catalogue id or None).
    :param catalogue: ``ObjectCatalogue`` for the object vertices, or None to load the default.
    :return: dict with ``hand_mje_root_relative_mm``, ``hand_mje_absolute_mm``,
        ``object_mce_mm`` (NaN when nothing to evaluate) and the frame counts used.
    """
    from hand_object_pose_ros import metrics
    hand = [m for m in matches if m['pred_joints'] is not None and m['gt_joints'] is not None
            and m['pred_joints'].shape == (21, 3)]
    result = {'hand_frames_evaluated': len(hand), 'object_frames_evaluated': 0,
              'hand_mje_root_relative_mm': float('nan'), 'hand_mje_absolute_mm': float('nan'),
              'object_mce_mm': float('nan')}
    if hand:
        pred = np.stack([m['pred_joints'] for m in hand]).astype(np.float32)
        gt = np.stack([m['gt_joints'] for m in hand]).astype(np.float32)
        result['hand_mje_root_relative_mm'] = float(
            np.mean(metrics.root_relative_mje_mm(pred, gt)))
        result['hand_mje_absolute_mm'] = float(np.mean(metrics.mje_mm(pred, gt)))
    objects = [m for m in matches if m['object_id'] is not None and m['pred_R'] is not None]
    if objects:
        if catalogue is None:
            from hand_object_pose_ros.objects import load_object_catalogue
            catalogue = load_object_catalogue()
        errors = []
        for match in objects:
            vertices = np.asarray(catalogue.get(match['object_id']).vertices, np.float32)
            errors.append(float(np.mean(metrics.object_mce_mm(
                match['pred_R'][None].astype(np.float32),
                match['pred_t'][None].astype(np.float32),
                match['gt_R'][None].astype(np.float32),
                match['gt_t'][None].astype(np.float32), vertices))))
        result['object_frames_evaluated'] = len(errors)
        result['object_mce_mm'] = float(np.mean(errors))
    return result


class DemoMonitorNode(Node):
    """
    Collects the demo's statistics; :meth:`finished` turns True when the window has closed.

    Parameters: ``duration_s`` (30), ``startup_timeout_s`` (300), ``output_dir``
    ('demo_output'), ``summary_path`` ('' = output_dir/summary.json), ``num_overlays`` (4),
    ``gif_max_frames`` (48), ``gif_width`` (320),
    ``status_period_s`` (5), ``object_pose_topic`` ('/object_pose'), ``hand_joints_topic``
    ('/hand_joints'), ``debug_image_topic`` ('/debug_image').
    """

    def __init__(self, **kwargs):
        """Declare the parameters and subscriptions."""
        super().__init__('demo_monitor', **kwargs)
        self.duration_s = float(self.declare_parameter('duration_s', 30.0).value)
        self.startup_timeout_s = float(self.declare_parameter('startup_timeout_s', 300.0).value)
        self.output_dir = str(self.declare_parameter('output_dir', 'demo_output').value)
        self.summary_path = str(self.declare_parameter('summary_path', '').value) or \
            os.path.join(self.output_dir, 'summary.json')
        self.num_overlays = int(self.declare_parameter('num_overlays', 4).value)
        self.gif_max_frames = int(self.declare_parameter('gif_max_frames', 48).value)
        self.gif_width = int(self.declare_parameter('gif_width', 320).value)
        status_period_s = float(self.declare_parameter('status_period_s', 5.0).value)
        pose_topic = self.declare_parameter('object_pose_topic', '/object_pose').value
        joints_topic = self.declare_parameter('hand_joints_topic', '/hand_joints').value
        debug_topic = self.declare_parameter('debug_image_topic', '/debug_image').value

        truth_qos = QoSProfile(depth=GROUND_TRUTH_QUEUE_DEPTH,
                               reliability=QoSReliabilityPolicy.RELIABLE)
        # Best effort matches both reliable and best-effort publishers.
        output_qos = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(DiagnosticArray, GROUND_TRUTH_INFO_TOPIC, self.on_truth_info,
                                 truth_qos)
        self.create_subscription(PoseStamped, GROUND_TRUTH_OBJECT_POSE_TOPIC,
                                 self.on_truth_pose, truth_qos)
        self.create_subscription(PoseArray, GROUND_TRUTH_HAND_JOINTS_TOPIC,
                                 self.on_truth_joints, truth_qos)
        self.create_subscription(PoseStamped, pose_topic, self.on_object_pose, output_qos)
        self.create_subscription(PoseArray, joints_topic, self.on_hand_joints, output_qos)
        self.create_subscription(Image, debug_topic, self.on_debug_image, output_qos)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics,
                                 output_qos)
        self.create_timer(status_period_s, self.print_status)

        self.created_at_ns = self.now_ns()
        self.window_start_ns = None
        self.newest_truth_ns = 0
        self.newest_output_ns = 0
        self.truth = {}  # stamp ns -> dict(object_id, gt_R, gt_t, gt_joints)
        self.truth_stamps_in_window = set()
        self.outputs = {}  # stamp ns -> dict(latency_s, pred_R, pred_t, pred_joints)
        self.overlay_paths = []
        self.gif_frames = []  # (receipt ns, (h, w, 3) uint8)
        self.timed_out = False
        self.node_diagnostics = {}  # the node's latest pipeline status values

    # --- clock and window ---------------------------------------------------------------

    def now_ns(self):
        """Return the node clock (system time, the clock of the image stamps) in ns."""
        return self.get_clock().now().nanoseconds

    @property
    def window_end_ns(self):
        """End of the timed window (ns), or None before it opens."""
        if self.window_start_ns is None:
            return None
        return self.window_start_ns + int(self.duration_s * 1e9)

    def in_window(self, key):
        """Return True when an image stamp (ns) lies in the timed window."""
        end = self.window_end_ns
        return end is not None and self.window_start_ns <= key <= end

    def finished(self):
        """
        Return True when the window is over and its results are in, or start-up timed out.

        After the window and a grace period, this waits until the callbacks have caught up
        (ground truth and an output stamped after the window seen), at most
        ``CATCH_UP_LIMIT_S`` more: on a busy CPU the callbacks lag behind the middleware.
        """
        now = self.now_ns()
        if self.window_start_ns is None:
            self.timed_out = now - self.created_at_ns > self.startup_timeout_s * 1e9
            return self.timed_out
        end = self.window_end_ns
        if now <= end + int(RESULT_GRACE_S * 1e9):
            return False
        caught_up = self.newest_truth_ns > end and self.newest_output_ns > end
        return caught_up or now > end + int((RESULT_GRACE_S + CATCH_UP_LIMIT_S) * 1e9)

    # --- ground truth -------------------------------------------------------------------

    def _truth_entry(self, stamp):
        key = stamp_ns(stamp)
        self.newest_truth_ns = max(self.newest_truth_ns, key)
        if self.in_window(key):
            self.truth_stamps_in_window.add(key)
        entry = self.truth.get(key)
        if entry is None:
            entry = self.truth[key] = {'object_id': None, 'gt_R': None, 'gt_t': None,
                                       'gt_joints': None}
            if len(self.truth) > 4096:
                newest = max(self.truth)
                for old in [k for k in self.truth if k < newest - TRUTH_HORIZON_NS]:
                    del self.truth[old]
        return entry

    def on_truth_info(self, msg):
        """Record the object id of a published frame."""
        for status in msg.status:
            if status.name == GROUND_TRUTH_STATUS_NAME:
                values = {kv.key: kv.value for kv in status.values}
                self._truth_entry(msg.header.stamp)['object_id'] = int(values['object_id'])

    def on_truth_pose(self, msg):
        """Record the true object pose of a published frame."""
        entry = self._truth_entry(msg.header.stamp)
        entry['gt_R'] = quaternion_msg_to_rotation(msg.pose.orientation)
        p = msg.pose.position
        entry['gt_t'] = np.array([p.x, p.y, p.z])

    def on_truth_joints(self, msg):
        """Record the true hand joints of a published frame."""
        self._truth_entry(msg.header.stamp)['gt_joints'] = pose_array_to_points(msg)

    # --- node outputs -------------------------------------------------------------------

    def _output_entry(self, key):
        entry = self.outputs.get(key)
        if entry is None:
            entry = self.outputs[key] = {'latency_s': None, 'pred_R': None, 'pred_t': None,
                                         'pred_joints': None}
        return entry

    def on_diagnostics(self, msg):
        """Keep the node's latest pipeline status (timings, counters)."""
        for status in msg.status:
            if status.name == PIPELINE_DIAGNOSTIC_NAME:
                self.node_diagnostics = {item.key: item.value for item in status.values}

    def on_object_pose(self, msg, message_info):
        """Record an object pose output and its latency; the first one opens the window."""
        received_ns = received_time_ns(message_info) or self.now_ns()
        key = stamp_ns(msg.header.stamp)
        self.newest_output_ns = max(self.newest_output_ns, key)
        if self.window_start_ns is None:
            self.window_start_ns = received_ns
            self.get_logger().info(
                'first output after %.1f s (received %.0f ms before this callback); measuring '
                'for %.0f s' % ((received_ns - self.created_at_ns) * 1e-9,
                                (self.now_ns() - received_ns) * 1e-6, self.duration_s))
            return  # its image predates the window
        if not self.in_window(key):
            return
        entry = self._output_entry(key)
        entry['latency_s'] = (received_ns - key) * 1e-9
        entry['pred_R'] = quaternion_msg_to_rotation(msg.pose.orientation)
        p = msg.pose.position
        entry['pred_t'] = np.array([p.x, p.y, p.z])

    def on_hand_joints(self, msg):
        """Record a hand joints output."""
        key = stamp_ns(msg.header.stamp)
        if self.in_window(key):
            self._output_entry(key)['pred_joints'] = pose_array_to_points(msg)

    def on_debug_image(self, msg, message_info):
        """Keep a few overlays as PNGs (spread over the window) and GIF frames."""
        received_ns = received_time_ns(message_info) or self.now_ns()
        if self.window_start_ns is None or not self.in_window(stamp_ns(msg.header.stamp)):
            return
        elapsed_s = (received_ns - self.window_start_ns) * 1e-9
        wants_overlay = len(self.overlay_paths) < self.num_overlays and \
            elapsed_s >= len(self.overlay_paths) * self.duration_s / max(self.num_overlays, 1)
        gif_period_ns = self.duration_s * 1e9 / max(self.gif_max_frames, 1)
        wants_gif = len(self.gif_frames) < self.gif_max_frames and (
            not self.gif_frames or received_ns - self.gif_frames[-1][0] >= gif_period_ns)
        if not (wants_overlay or wants_gif):
            return
        from PIL import Image as PilImage
        rgb = image_msg_to_rgb(msg)
        if wants_overlay:
            os.makedirs(self.output_dir, exist_ok=True)
            path = os.path.join(self.output_dir, 'overlay_%02d.png' % len(self.overlay_paths))
            PilImage.fromarray(rgb).save(path)
            self.overlay_paths.append(path)
        if wants_gif:
            height = max(1, round(rgb.shape[0] * self.gif_width / rgb.shape[1]))
            small = PilImage.fromarray(rgb).resize((self.gif_width, height),
                                                   PilImage.BILINEAR)
            self.gif_frames.append((received_ns, np.asarray(small)))

    # --- results ------------------------------------------------------------------------

    def matches(self):
        """Return the processed in-window frames joined with their ground truth."""
        joined = []
        for key, output in self.outputs.items():
            if output['latency_s'] is None:
                continue
            truth = self.truth.get(key, {})
            joined.append(dict(output, gt_R=truth.get('gt_R'), gt_t=truth.get('gt_t'),
                               gt_joints=truth.get('gt_joints'),
                               object_id=truth.get('object_id') if truth.get('gt_R') is not None
                               else None))
        return joined

    def print_status(self):
        """Log a progress line."""
        if self.window_start_ns is None:
            self.get_logger().info("waiting for the node's first output (%.0f s)"
                                   % ((self.now_ns() - self.created_at_ns) * 1e-9))
            return
        latencies = [m['latency_s'] for m in self.matches()]
        self.get_logger().info(
            '%.0f/%.0f s: %d frames in, %d processed, latency p50 %.0f ms'
            % ((self.now_ns() - self.window_start_ns) * 1e-9, self.duration_s,
               len(self.truth_stamps_in_window), len(latencies), percentile_ms(latencies, 50)))

    def write_animation(self):
        """Write the GIF of the collected debug images; return its path or None."""
        frames = list(self.gif_frames)
        if len(frames) < 2:
            return None
        from PIL import Image as PilImage
        times_ns = [t for t, _ in frames]
        durations_ms = [min(1000, max(33, int(round((later - earlier) * 1e-6))))
                        for earlier, later in zip(times_ns, times_ns[1:])]
        durations_ms.append(durations_ms[-1])
        # Fast octree palettes: median-cut ('ADAPTIVE') costs ~0.5 s a frame on a busy CPU.
        images = [PilImage.fromarray(frame).quantize(colors=256,
                                                     method=PilImage.Quantize.FASTOCTREE,
                                                     dither=PilImage.Dither.NONE)
                  for _, frame in frames]
        path = os.path.join(self.output_dir, ANIMATION_FILE_NAME)
        images[0].save(path, save_all=True, append_images=images[1:], duration=durations_ms,
                       loop=0, optimize=False)
        return path

    def summary(self):
        """Compute the summary dict (JSON-ready: NaN becomes None)."""
        matches = self.matches()
        latencies = [m['latency_s'] for m in matches]
        frames_in = len(self.truth_stamps_in_window)
        processed = len(matches)
        accuracy = evaluate_accuracy(matches) if matches else evaluate_accuracy([])
        return {
            'status': 'no_output' if self.timed_out else 'ok',
            'duration_s': self.duration_s,
            'startup_s': finite_or_none(
                (self.window_start_ns - self.created_at_ns) * 1e-9
                if self.window_start_ns is not None else float('nan')),
            'frames_in': frames_in,
            'frames_processed': processed,
            'frames_dropped': max(0, frames_in - processed),
            'input_rate_hz': frames_in / self.duration_s,
            'throughput_fps': processed / self.duration_s,
            'latency_ms': {
                'p50': finite_or_none(percentile_ms(latencies, 50)),
                'p95': finite_or_none(percentile_ms(latencies, 95)),
                'mean': finite_or_none(np.mean(latencies) * 1000 if latencies else math.nan),
                'max': finite_or_none(np.max(latencies) * 1000 if latencies else math.nan),
            },
            'hand_mje_mm': {
                'root_relative': finite_or_none(accuracy['hand_mje_root_relative_mm']),
                'absolute': finite_or_none(accuracy['hand_mje_absolute_mm']),
            },
            'object_mce_mm': finite_or_none(accuracy['object_mce_mm']),
            'hand_frames_evaluated': accuracy['hand_frames_evaluated'],
            'object_frames_evaluated': accuracy['object_frames_evaluated'],
            'node': {key: _number_or_text(self.node_diagnostics.get(key))
                     for key in NODE_DIAGNOSTIC_KEYS},
        }

    def write_results(self):
        """Write the summary JSON, overlays and animation; return the summary dict."""
        started = time.monotonic()
        os.makedirs(self.output_dir, exist_ok=True)
        result = self.summary()
        result['overlays'] = list(self.overlay_paths)
        result['animation'] = self.write_animation()
        with open(self.summary_path, 'w') as stream:
            json.dump(result, stream, indent=2)
        self.get_logger().info('results written in %.1f s' % (time.monotonic() - started))
        return result


def main(args=None):
    """Run the monitor until its window closes; exit 0, or 2 when the node never answered."""
    rclpy.init(args=args)
    node = DemoMonitorNode()
    result = None
    try:
        while rclpy.ok() and not node.finished():
            rclpy.spin_once(node, timeout_sec=0.1)
        node.get_logger().info('window closed; writing the results')
        result = node.write_results()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    if result is None:
        return 130
    print('monitor: %d frames in, %d processed, wrote %s'
          % (result['frames_in'], result['frames_processed'], node.summary_path), flush=True)
    return EXIT_NO_OUTPUT if result['status'] == 'no_output' else 0


if __name__ == '__main__':
    sys.exit(main())
