"""
Conversions between ROS 2 messages and the numpy arrays the package works with.

This is the only module that uses ROS's (x, y, z, w) quaternion order; everything else in the
package uses (w, x, y, z) (``geometry.py``).

Images convert with the ROS 2 ``cv_bridge`` when it is importable and passes a self-check,
otherwise with the package's own numpy conversion (the default here, where no ROS 2 cv_bridge
is installed). Every message is validated first (encoding, size, step, data length) in both
cases, so errors are the same :class:`MessageConversionError` either way.
"""

import math

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from geometry_msgs.msg import Pose
from geometry_msgs.msg import PoseArray
from geometry_msgs.msg import PoseStamped
from geometry_msgs.msg import Quaternion
import numpy as np
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header
import torch

from hand_object_pose_ros.geometry import matrix_to_quaternion
from hand_object_pose_ros.geometry import quaternion_to_matrix


class MessageConversionError(ValueError):
    """A message that cannot be converted (unsupported encoding, bad size, step or data)."""


SUPPORTED_IMAGE_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
SUPPORTED_DEPTH_ENCODINGS = ('16UC1', '32FC1')
# 'mono16' is what some drivers call 16-bit millimetre depth; it is read like 16UC1.
_DEPTH_ENCODING_ALIASES = {'mono16': '16UC1'}

# encoding -> (channels, bytes per channel, little-endian numpy dtype)
_ENCODING_LAYOUT = {
    'rgb8': (3, 1, np.dtype('u1')),
    'bgr8': (3, 1, np.dtype('u1')),
    'rgba8': (4, 1, np.dtype('u1')),
    'bgra8': (4, 1, np.dtype('u1')),
    'mono8': (1, 1, np.dtype('u1')),
    '16UC1': (1, 2, np.dtype('<u2')),
    '32FC1': (1, 4, np.dtype('<f4')),
}

MILLIMETRES_PER_METRE = 1000.0


def _load_ros2_cv_bridge():
    """
    Return a ROS 2 ``CvBridge`` instance, or None when there is none or it fails a self-check.

    A ROS 1 cv_bridge (or a broken one) cannot convert an rclpy ``sensor_msgs/Image``; a tiny
    round trip through it tells the two apart without relying on version attributes.
    """
    try:
        from cv_bridge import CvBridge
    except Exception:
        return None
    try:
        bridge = CvBridge()
        probe = Image(height=1, width=2, encoding='rgb8', is_bigendian=0, step=6)
        probe.data = bytes([1, 2, 3, 4, 5, 6])
        converted = bridge.imgmsg_to_cv2(probe, desired_encoding='rgb8')
        if np.asarray(converted).reshape(-1).tolist() != [1, 2, 3, 4, 5, 6]:
            return None
    except Exception:
        return None
    return bridge


_CV_BRIDGE = _load_ros2_cv_bridge()


def cv_bridge_in_use():
    """Return True when images convert through the ROS 2 cv_bridge, False for numpy."""
    return _CV_BRIDGE is not None


def _image_array(msg, expected_encodings):
    """
    Validate an Image message and view its pixels as a numpy array (no copy when possible).

    :param msg: sensor_msgs/Image.
    :param expected_encodings: encodings accepted by the caller.
    :return: (H, W, C) array of the encoding's dtype in native byte order, and the encoding.
    :raises MessageConversionError: for an unsupported encoding, zero size, a step shorter
        than a row, or data shorter than ``step * height``.
    """
    encoding = _DEPTH_ENCODING_ALIASES.get(msg.encoding, msg.encoding)
    if encoding not in expected_encodings:
        raise MessageConversionError(
            'unsupported image encoding %r; supported: %s'
            % (msg.encoding, ', '.join(expected_encodings)))
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise MessageConversionError('image has zero size (%dx%d)' % (width, height))
    channels, channel_bytes, dtype = _ENCODING_LAYOUT[encoding]
    row_bytes = width * channels * channel_bytes
    if step < row_bytes:
        raise MessageConversionError(
            'image step %d is shorter than a row of %d px x %d channel(s) x %d byte(s) = %d'
            % (step, width, channels, channel_bytes, row_bytes))
    if step % channel_bytes:
        raise MessageConversionError(
            'image step %d is not a multiple of the %d-byte %s pixel channel'
            % (step, channel_bytes, encoding))
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size < step * height:
        raise MessageConversionError(
            'image data is truncated: %d bytes, expected step %d x height %d = %d'
            % (buffer.size, step, height, step * height))
    if msg.is_bigendian and channel_bytes > 1:
        dtype = dtype.newbyteorder('>')
    rows = buffer[:step * height].reshape(height, step)[:, :row_bytes]
    pixels = rows.view(dtype) if rows.flags.c_contiguous else \
        np.ascontiguousarray(rows).view(dtype)
    pixels = pixels.reshape(height, width, channels)
    if not pixels.dtype.isnative:
        pixels = pixels.astype(pixels.dtype.newbyteorder('='))
    return pixels, encoding


def image_msg_to_rgb(msg):
    """
    Convert a colour or mono image message to RGB.

    :param msg: sensor_msgs/Image, one of :data:`SUPPORTED_IMAGE_ENCODINGS`; row padding
        (``step > width * channels``) is honoured.
    :return: (H, W, 3) uint8 RGB, C-contiguous, owning its memory (safe to keep).
    :raises MessageConversionError: see :func:`_image_array`.
    """
    pixels, encoding = _image_array(msg, SUPPORTED_IMAGE_ENCODINGS)
    if _CV_BRIDGE is not None:
        try:
            rgb = _CV_BRIDGE.imgmsg_to_cv2(msg, desired_encoding='rgb8')
            return np.array(rgb, dtype=np.uint8, copy=True).reshape(pixels.shape[0],
                                                                    pixels.shape[1], 3)
        except Exception as error:
            raise MessageConversionError('cv_bridge failed: %s' % error) from error
    if encoding == 'rgb8':
        return np.array(pixels, copy=True)
    if encoding == 'bgr8':
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if encoding == 'rgba8':
        return np.ascontiguousarray(pixels[:, :, :3])
    if encoding == 'bgra8':
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.repeat(pixels, 3, axis=2)  # mono8


def depth_msg_to_metres(msg):
    """
    Convert a depth image message to metres.

    :param msg: sensor_msgs/Image, ``16UC1`` (millimetres, also ``mono16``) or ``32FC1``
        (metres); row padding and ``is_bigendian`` are honoured.
    :return: (H, W) float32 metres; invalid pixels (0, NaN, inf, negative) are 0.
    :raises MessageConversionError: see :func:`_image_array`.
    """
    pixels, encoding = _image_array(msg, SUPPORTED_DEPTH_ENCODINGS)
    pixels = pixels[:, :, 0]
    if encoding == '16UC1':
        return pixels.astype(np.float32) * np.float32(1.0 / MILLIMETRES_PER_METRE)
    depth = np.array(pixels, dtype=np.float32, copy=True)
    depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
    return depth


def _header_or_default(header):
    """Return ``header`` or an empty Header."""
    return header if header is not None else Header()


def rgb_to_image_msg(rgb, header=None, encoding='rgb8'):
    """
    Build an Image message from an RGB array.

    :param rgb: (H, W, 3) uint8 RGB (or (H, W) uint8 for ``mono8``).
    :param header: std_msgs/Header to copy (stamp, frame_id), or None.
    :param encoding: one of :data:`SUPPORTED_IMAGE_ENCODINGS`; the pixels are reordered to it.
    :return: sensor_msgs/Image with ``step = width * channels``.
    :raises MessageConversionError: for an unsupported encoding or a wrong array shape/dtype.
    """
    if encoding not in SUPPORTED_IMAGE_ENCODINGS:
        raise MessageConversionError(
            'unsupported image encoding %r; supported: %s'
            % (encoding, ', '.join(SUPPORTED_IMAGE_ENCODINGS)))
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise MessageConversionError('image must be uint8, got %s' % rgb.dtype)
    if encoding == 'mono8' and rgb.ndim == 2:
        pixels = rgb
    else:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise MessageConversionError('image must be (H, W, 3) RGB, got %s' % (rgb.shape,))
        if encoding == 'rgb8':
            pixels = rgb
        elif encoding == 'bgr8':
            pixels = rgb[:, :, ::-1]
        elif encoding in ('rgba8', 'bgra8'):
            colour = rgb if encoding == 'rgba8' else rgb[:, :, ::-1]
            alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
            pixels = np.concatenate((colour, alpha), axis=2)
        else:  # mono8 from RGB: ITU-R BT.601 luma
            luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            pixels = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise MessageConversionError('image has zero size (%dx%d)' % (width, height))
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    msg = Image(header=_header_or_default(header), height=height, width=width,
                encoding=encoding, is_bigendian=0, step=width * channels)
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return msg


def depth_to_image_msg(depth_m, header=None, encoding='16UC1'):
    """
    Build a depth Image message.

    :param depth_m: (H, W) float metres; 0 or NaN = no depth.
    :param header: std_msgs/Header to copy, or None.
    :param encoding: ``16UC1`` (rounded millimetres, saturated at 65.535 m) or ``32FC1``
        (metres, invalid stored as 0).
    :return: sensor_msgs/Image, little-endian.
    :raises MessageConversionError: for an unsupported encoding or a wrong array shape.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2 or depth.size == 0:
        raise MessageConversionError('depth must be a non-empty (H, W) array, got %s'
                                     % (depth.shape,))
    valid = np.isfinite(depth) & (depth > 0)
    if encoding == '16UC1':
        millimetres = np.where(valid, np.rint(depth * MILLIMETRES_PER_METRE), 0.0)
        pixels = np.clip(millimetres, 0, 65535).astype('<u2')
        channel_bytes = 2
    elif encoding == '32FC1':
        pixels = np.where(valid, depth, 0.0).astype('<f4')
        channel_bytes = 4
    else:
        raise MessageConversionError('unsupported depth encoding %r; supported: %s'
                                     % (encoding, ', '.join(SUPPORTED_DEPTH_ENCODINGS)))
    height, width = depth.shape
    msg = Image(header=_header_or_default(header), height=height, width=width,
                encoding=encoding, is_bigendian=0, step=width * channel_bytes)
    msg.data = pixels.tobytes()
    return msg


def camera_info_to_K(msg):
    """
    Read the intrinsics of a CameraInfo message.

    :param msg: sensor_msgs/CameraInfo (the row-major ``k`` field).
    :return: (3, 3) float64 K.
    :raises MessageConversionError: when fx or fy is zero, negative or not finite, or any entry
        is not finite (an uncalibrated camera publishes zeros).
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    return validate_K(K, 'camera_info')


def validate_K(K, source='K'):
    """
    Check a camera matrix.

    :param K: (3, 3) intrinsics.
    :param source: name used in the error message.
    :return: (3, 3) float64 copy.
    :raises MessageConversionError: for a wrong shape, non-finite values or fx, fy <= 0.
    """
    K = np.array(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise MessageConversionError('%s must be 3x3, got %s' % (source, K.shape))
    if not np.all(np.isfinite(K)):
        raise MessageConversionError('%s has NaN or infinite entries: %s' % (source, K.tolist()))
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise MessageConversionError(
            '%s has invalid focal lengths fx=%g, fy=%g (uncalibrated camera?)'
            % (source, K[0, 0], K[1, 1]))
    return K


def K_to_camera_info(K, width, height, header=None):
    """
    Build a CameraInfo message for an undistorted pinhole camera.

    :param K: (3, 3) intrinsics.
    :param width: image width in pixels.
    :param height: image height in pixels.
    :param header: std_msgs/Header to copy, or None.
    :return: sensor_msgs/CameraInfo with k, p = [K | 0], r = I and plumb_bob zero distortion.
    """
    K = validate_K(K)
    msg = CameraInfo(header=_header_or_default(header), width=int(width), height=int(height))
    msg.distortion_model = 'plumb_bob'
    msg.d = [0.0] * 5
    msg.k = K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack((K, np.zeros((3, 1)))).reshape(-1).tolist()
    return msg


_UINT32_MAX = 2 ** 32 - 1


def roi_to_bbox_xyxy(roi):
    """
    Convert a RegionOfInterest to a box.

    :param roi: sensor_msgs/RegionOfInterest (x_offset, y_offset, width, height in pixels).
    :return: (4,) float64 x0, y0, x1, y1 in full-image pixels (x1 = x_offset + width).
    """
    x0, y0 = float(roi.x_offset), float(roi.y_offset)
    return np.array([x0, y0, x0 + float(roi.width), y0 + float(roi.height)])


def bbox_xyxy_to_roi(bbox_xyxy_px):
    """
    Convert a box to a RegionOfInterest (rounded outwards to whole pixels, clamped at 0).

    :param bbox_xyxy_px: (4,) x0, y0, x1, y1 in full-image pixels.
    :return: sensor_msgs/RegionOfInterest.
    :raises MessageConversionError: for NaN values, an inverted box or one beyond uint32.
    """
    box = np.asarray(bbox_xyxy_px, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise MessageConversionError('box must be 4 finite values, got %s' % box.tolist())
    if box[2] < box[0] or box[3] < box[1]:
        raise MessageConversionError('box is inverted: %s' % box.tolist())
    x0 = max(0, int(math.floor(box[0])))
    y0 = max(0, int(math.floor(box[1])))
    x1 = max(x0, int(math.ceil(box[2])))
    y1 = max(y0, int(math.ceil(box[3])))
    if max(x1, y1) > _UINT32_MAX:
        raise MessageConversionError('box %s is beyond the uint32 pixel range of '
                                     'RegionOfInterest' % box.tolist())
    return RegionOfInterest(x_offset=x0, y_offset=y0, width=x1 - x0, height=y1 - y0,
                            do_rectify=False)


def rotation_to_quaternion_msg(rotation):
    """
    Convert a rotation matrix to a ROS quaternion.

    :param rotation: (3, 3) rotation matrix (a nearly orthonormal one is fine).
    :return: geometry_msgs/Quaternion, unit norm, w >= 0.
    :raises MessageConversionError: for a wrong shape, non-finite values, or a matrix so far
        from a rotation that no unit quaternion comes out.
    """
    matrix = np.asarray(rotation, dtype=np.float64)
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise MessageConversionError('rotation must be a finite 3x3 matrix, got %s'
                                     % (matrix.tolist(),))
    w, x, y, z = matrix_to_quaternion(torch.from_numpy(matrix)).tolist()
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    # A matrix far from a rotation (e.g. huge entries that overflow) gives no unit quaternion.
    if not math.isfinite(norm) or abs(norm - 1.0) > 1e-3:
        raise MessageConversionError('matrix is not a rotation (quaternion norm %g): %s'
                                     % (norm, matrix.tolist()))
    return Quaternion(x=x / norm, y=y / norm, z=z / norm, w=w / norm)


def quaternion_msg_to_rotation(quaternion):
    """
    Convert a ROS quaternion to a rotation matrix.

    :param quaternion: geometry_msgs/Quaternion (x, y, z, w), any non-zero norm.
    :return: (3, 3) float64 rotation matrix.
    :raises MessageConversionError: for a zero or non-finite quaternion.
    """
    wxyz = np.array([quaternion.w, quaternion.x, quaternion.y, quaternion.z], dtype=np.float64)
    norm = np.linalg.norm(wxyz)
    if not np.isfinite(norm) or norm < 1e-12:
        raise MessageConversionError('quaternion is zero or not finite: %s' % wxyz.tolist())
    return quaternion_to_matrix(torch.from_numpy(wxyz)).numpy()


def pose_stamped_msg(header, rotation, translation):
    """
    Build a PoseStamped.

    :param header: std_msgs/Header (stamp, frame_id: the frame of the pose).
    :param rotation: (3, 3) rotation, frame_from_object.
    :param translation: (3,) metres, object origin in the header's frame.
    :return: geometry_msgs/PoseStamped.
    """
    t = np.asarray(translation, dtype=np.float64).reshape(3)
    pose = Pose(position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                orientation=rotation_to_quaternion_msg(rotation))
    return PoseStamped(header=_header_or_default(header), pose=pose)


def points_to_pose_array(header, points):
    """
    Build a PoseArray holding points (identity orientations).

    :param header: std_msgs/Header.
    :param points: (N, 3) metres, in the header's frame.
    :return: geometry_msgs/PoseArray with N poses.
    """
    values = np.asarray(points, dtype=np.float64).reshape(-1, 3).tolist()
    poses = [Pose(position=Point(x=x, y=y, z=z)) for x, y, z in values]
    return PoseArray(header=_header_or_default(header), poses=poses)


def pose_array_to_points(msg):
    """
    Read the positions of a PoseArray.

    :param msg: geometry_msgs/PoseArray.
    :return: (N, 3) float64 metres (N may be 0).
    """
    return np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses],
                    dtype=np.float64).reshape(-1, 3)


def stamp_to_seconds(stamp):
    """
    Convert a builtin_interfaces/Time to seconds.

    :param stamp: builtin_interfaces/Time (or anything with ``sec`` and ``nanosec``).
    :return: float seconds.
    """
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_stamp(seconds):
    """
    Convert seconds to a builtin_interfaces/Time.

    :param seconds: float seconds >= 0.
    :return: builtin_interfaces/Time.
    """
    total_ns = int(round(float(seconds) * 1e9))
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)
