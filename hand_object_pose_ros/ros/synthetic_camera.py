"""
A synthetic RGB-D camera node: RealSense-like topics plus the ground truth, for the demo.

At start-up the node renders a pool of frames with the synthetic hand-object generator (one
progress line per ~10%), builds their messages once, then loops them at ``rate_hz`` with fresh
stamps. Rendering live at 30 Hz in Python beside the perception node would cost more CPU than
the node itself.

Published (all headers share the image's stamp and ``frame_id``):

- ``/camera/camera/color/image_raw`` sensor_msgs/Image rgb8;
- ``/camera/camera/color/camera_info`` sensor_msgs/CameraInfo;
- ``/camera/camera/aligned_depth_to_color/image_raw`` sensor_msgs/Image 16UC1 millimetres;
- ``/hand_bbox`` sensor_msgs/RegionOfInterest (the true hand box; no header: the node pairs it
  with the latest image);
- ``/ground_truth/object_pose`` geometry_msgs/PoseStamped, camera_from_object, metres;
- ``/ground_truth/hand_joints`` geometry_msgs/PoseArray, the 21 joints in the camera frame;
- ``/ground_truth/info`` diagnostic_msgs/DiagnosticArray, one status named ``ground_truth``
  with the values ``object_id``, ``frame_index`` and ``is_right_hand``.

The camera streams use the ``qos_reliability`` parameter (best effort by default, like a
camera's sensor-data QoS); the small ground-truth topics are reliable (depth 100) so that a
monitor can count every published frame.
"""

from dataclasses import dataclass
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from geometry_msgs.msg import PoseArray
from geometry_msgs.msg import PoseStamped
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

IMAGE_TOPIC = '/camera/camera/color/image_raw'
CAMERA_INFO_TOPIC = '/camera/camera/color/camera_info'
DEPTH_TOPIC = '/camera/camera/aligned_depth_to_color/image_raw'
HAND_BBOX_TOPIC = '/hand_bbox'
GROUND_TRUTH_OBJECT_POSE_TOPIC = '/ground_truth/object_pose'
GROUND_TRUTH_HAND_JOINTS_TOPIC = '/ground_truth/hand_joints'
GROUND_TRUTH_INFO_TOPIC = '/ground_truth/info'
GROUND_TRUTH_STATUS_NAME = 'ground_truth'
DEFAULT_FRAME_ID = 'camera_color_optical_frame'
GROUND_TRUTH_QUEUE_DEPTH = 100


@dataclass
class PreparedFrame:
    """
    The messages of one pooled frame, built once; only their stamps change when published.

    :param image: rgb8 Image.
    :param camera_info: CameraInfo of the full image.
    :param depth: 16UC1 millimetre Image aligned to ``image``, or None.
    :param hand_bbox: RegionOfInterest of the hand, full-image pixels.
    :param object_pose: PoseStamped, camera_from_object (true pose).
    :param hand_joints: PoseArray, 21 true joints, metres, camera frame.
    :param info: DiagnosticArray with the object id and the frame index.
    """

    image: Image
    camera_info: CameraInfo
    depth: Image
    hand_bbox: RegionOfInterest
    object_pose: PoseStamped
    hand_joints: PoseArray
    info: DiagnosticArray

    def stamped_messages(self):
        """Return the messages that carry a header (their stamps are refreshed per tick)."""
        messages = [self.image, self.camera_info, self.object_pose, self.hand_joints, self.info]
        if self.depth is not None:
            messages.append(self.depth)
        return messages


def make_generator(seed, width=None, height=None):
    """
    Create the synthetic generator for full camera frames.

    :param seed: seed of the scenes; the generator uses its held-out split of that seed, so the
        demo never shows scenes the demo checkpoint was trained on (training uses seed 0's
        training split).
    :param width: image width in pixels, or None for the generator's default (640).
    :param height: image height in pixels, or None for the default (480).
    :return: ``SyntheticHandObjectGenerator``.
    """
    # Imported here: the data side (renderer, object meshes) is only needed by this node.
    from hand_object_pose_ros.data.synthetic import heldout_config
    from hand_object_pose_ros.data.synthetic import SyntheticConfig
    from hand_object_pose_ros.data.synthetic import SyntheticHandObjectGenerator
    options = {'seed': int(seed)}
    if width:
        options['image_width_px'] = int(width)
    if height:
        options['image_height_px'] = int(height)
    return SyntheticHandObjectGenerator(heldout_config(SyntheticConfig(**options)))


def prepare_frame(frame, index, frame_id=DEFAULT_FRAME_ID, with_depth=True):
    """
    Build the messages of one rendered frame.

    :param frame: ``SyntheticFrame`` (rgb (H, W, 3) uint8, depth_m (H, W) float32 metres, K,
        bbox_xyxy_px, sample with the camera-frame ground truth).
    :param index: frame index in the pool (reported on the info topic).
    :param frame_id: optical frame of the camera.
    :param with_depth: build the aligned depth image too.
    :return: :class:`PreparedFrame`.
    """
    # Imported here: the demo launcher imports this module for its topic names only, and the
    # conversions load torch (seconds of start-up).
    from hand_object_pose_ros.ros.conversions import bbox_xyxy_to_roi
    from hand_object_pose_ros.ros.conversions import depth_to_image_msg
    from hand_object_pose_ros.ros.conversions import K_to_camera_info
    from hand_object_pose_ros.ros.conversions import points_to_pose_array
    from hand_object_pose_ros.ros.conversions import pose_stamped_msg
    from hand_object_pose_ros.ros.conversions import rgb_to_image_msg
    header = Header(frame_id=frame_id)
    height, width = frame.rgb.shape[:2]
    sample = frame.sample
    info = DiagnosticArray(header=header, status=[DiagnosticStatus(
        level=DiagnosticStatus.OK, name=GROUND_TRUTH_STATUS_NAME, message='synthetic frame',
        hardware_id='synthetic_camera',
        values=[KeyValue(key='object_id', value=str(int(sample.object_id))),
                KeyValue(key='frame_index', value=str(int(index))),
                KeyValue(key='is_right_hand', value=str(bool(sample.is_right_hand)).lower())])])
    return PreparedFrame(
        image=rgb_to_image_msg(frame.rgb, header),
        camera_info=K_to_camera_info(frame.K, width, height, header),
        depth=depth_to_image_msg(frame.depth_m, header) if with_depth else None,
        hand_bbox=bbox_xyxy_to_roi(frame.bbox_xyxy_px),
        object_pose=pose_stamped_msg(header, sample.object_rotation, sample.object_translation),
        hand_joints=points_to_pose_array(header, sample.joints_cam),
        info=info)


def render_pool(generator, count, frame_id=DEFAULT_FRAME_ID, with_depth=True,
                progress=None):
    """
    Render and prepare ``count`` frames.

    :param generator: ``SyntheticHandObjectGenerator``.
    :param count: number of frames (indices 0..count-1).
    :param frame_id: optical frame of the camera.
    :param with_depth: build aligned depth images.
    :param progress: callable(done, count, elapsed_s) called about every 10%, or None.
    :return: list of :class:`PreparedFrame`.
    """
    start = time.monotonic()
    step = max(1, count // 10)
    pool = []
    for index in range(count):
        pool.append(prepare_frame(generator.render_frame(index), index, frame_id, with_depth))
        if progress is not None and ((index + 1) % step == 0 or index + 1 == count):
            progress(index + 1, count, time.monotonic() - start)
    return pool


class SyntheticCameraNode(Node):
    """
    Loops a pool of prepared frames at a fixed rate with fresh stamps.

    Parameters: ``rate_hz`` (30.0), ``pool_size`` (60), ``seed`` (0), ``width``/``height``
    (0 = generator default, 640x480), ``frame_id``, ``publish_depth`` (true),
    ``qos_reliability`` (best_effort|reliable, camera streams), ``qos_depth`` (5).
    """

    def __init__(self, **kwargs):
        """Declare the parameters and publishers; call :meth:`render` then :meth:`start`."""
        super().__init__('synthetic_camera', **kwargs)
        self.rate_hz = float(self.declare_parameter('rate_hz', 30.0).value)
        self.pool_size = int(self.declare_parameter('pool_size', 60).value)
        self.seed = int(self.declare_parameter('seed', 0).value)
        self.width = int(self.declare_parameter('width', 0).value)
        self.height = int(self.declare_parameter('height', 0).value)
        self.frame_id = str(self.declare_parameter('frame_id', DEFAULT_FRAME_ID).value)
        self.publish_depth = bool(self.declare_parameter('publish_depth', True).value)
        reliability = str(self.declare_parameter('qos_reliability', 'best_effort').value)
        queue_depth = int(self.declare_parameter('qos_depth', 5).value)
        if self.rate_hz <= 0 or self.pool_size <= 0:
            raise ValueError('rate_hz and pool_size must be positive')
        if reliability not in ('best_effort', 'reliable'):
            raise ValueError('qos_reliability must be best_effort or reliable, got %r'
                             % reliability)
        stream_qos = QoSProfile(depth=queue_depth, reliability=(
            QoSReliabilityPolicy.BEST_EFFORT if reliability == 'best_effort'
            else QoSReliabilityPolicy.RELIABLE))
        truth_qos = QoSProfile(depth=GROUND_TRUTH_QUEUE_DEPTH,
                               reliability=QoSReliabilityPolicy.RELIABLE)
        self.image_publisher = self.create_publisher(Image, IMAGE_TOPIC, stream_qos)
        self.camera_info_publisher = self.create_publisher(CameraInfo, CAMERA_INFO_TOPIC,
                                                           stream_qos)
        self.depth_publisher = self.create_publisher(Image, DEPTH_TOPIC, stream_qos) \
            if self.publish_depth else None
        self.bbox_publisher = self.create_publisher(RegionOfInterest, HAND_BBOX_TOPIC,
                                                    stream_qos)
        self.truth_pose_publisher = self.create_publisher(
            PoseStamped, GROUND_TRUTH_OBJECT_POSE_TOPIC, truth_qos)
        self.truth_joints_publisher = self.create_publisher(
            PoseArray, GROUND_TRUTH_HAND_JOINTS_TOPIC, truth_qos)
        self.truth_info_publisher = self.create_publisher(
            DiagnosticArray, GROUND_TRUTH_INFO_TOPIC, truth_qos)
        self.pool = []
        self.published = 0
        self.timer = None
        self.started_at = None

    def render(self, progress=None):
        """
        Render the pool (blocking).

        :param progress: callable(done, count, elapsed_s), or None.
        """
        generator = make_generator(self.seed, self.width, self.height)
        self.pool = render_pool(generator, self.pool_size, self.frame_id, self.publish_depth,
                                progress)

    def start(self):
        """Start publishing the pool at ``rate_hz``."""
        if not self.pool:
            raise RuntimeError('render() the pool before start()')
        self.started_at = time.monotonic()
        self.timer = self.create_timer(1.0 / self.rate_hz, self.publish_next)

    def publish_next(self):
        """Publish the next pooled frame with the current time as its stamp."""
        frame = self.pool[self.published % len(self.pool)]
        stamp = self.get_clock().now().to_msg()
        for message in frame.stamped_messages():
            message.header.stamp = stamp
        # Ground truth first: a monitor then always knows a frame before its prediction.
        self.truth_info_publisher.publish(frame.info)
        self.truth_pose_publisher.publish(frame.object_pose)
        self.truth_joints_publisher.publish(frame.hand_joints)
        self.camera_info_publisher.publish(frame.camera_info)
        if self.depth_publisher is not None:
            self.depth_publisher.publish(frame.depth)
        self.bbox_publisher.publish(frame.hand_bbox)
        self.image_publisher.publish(frame.image)
        self.published += 1

    def achieved_rate_hz(self):
        """Return the mean publishing rate since :meth:`start` (0 before)."""
        if self.started_at is None or self.published == 0:
            return 0.0
        return self.published / max(time.monotonic() - self.started_at, 1e-9)


def print_progress(done, count, elapsed_s):
    """Print one pool-rendering progress line."""
    print('synthetic camera: rendered %d/%d frames (%.1f s)' % (done, count, elapsed_s),
          flush=True)


def main(args=None):
    """Run the synthetic camera until Ctrl-C / SIGTERM."""
    rclpy.init(args=args)
    node = None
    try:
        node = SyntheticCameraNode()
        print('synthetic camera: pre-rendering %d frames' % node.pool_size, flush=True)
        node.render(print_progress)
        height, width = node.pool[0].image.height, node.pool[0].image.width
        node.start()
        print('synthetic camera: publishing %dx%d rgb8%s at %.1f Hz on %s'
              % (width, height, ' + depth' if node.publish_depth else '', node.rate_hz,
                 IMAGE_TOPIC), flush=True)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if node.published:
                print('synthetic camera: published %d frames at %.1f Hz'
                      % (node.published, node.achieved_rate_hz()), flush=True)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
