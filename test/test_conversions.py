"""Tests of ros/conversions.py: images, depth, intrinsics, boxes, quaternions, poses."""

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Quaternion
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from hand_object_pose_ros.ros import conversions
from hand_object_pose_ros.ros.conversions import MessageConversionError


def random_rgb(height=5, width=7, seed=0):
    """Return a random (H, W, 3) uint8 RGB image."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def image_msg(pixels, encoding, padding_bytes=0, big_endian=False):
    """Build an Image by hand (independently of the module) with optional row padding."""
    pixels = np.asarray(pixels)
    height, width = pixels.shape[:2]
    dtype = pixels.dtype.newbyteorder('>' if big_endian else '<')
    rows = np.ascontiguousarray(pixels.astype(dtype)).reshape(height, -1).view(np.uint8)
    rows = np.concatenate((rows, np.full((height, padding_bytes), 0xAB, np.uint8)), axis=1)
    msg = Image(height=height, width=width, encoding=encoding,
                is_bigendian=int(big_endian), step=rows.shape[1])
    msg.data = rows.tobytes()
    return msg


def random_rotation(seed):
    """Return a random rotation matrix (QR of a Gaussian matrix, det +1)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.mark.parametrize('padding', [0, 3])
def test_every_colour_encoding_converts_to_rgb(padding):
    rgb = random_rgb()
    alpha = np.full(rgb.shape[:2] + (1,), 77, np.uint8)
    sources = {
        'rgb8': rgb,
        'bgr8': rgb[:, :, ::-1],
        'rgba8': np.concatenate((rgb, alpha), axis=2),
        'bgra8': np.concatenate((rgb[:, :, ::-1], alpha), axis=2),
    }
    for encoding, pixels in sources.items():
        out = conversions.image_msg_to_rgb(image_msg(pixels, encoding, padding))
        assert out.dtype == np.uint8 and out.shape == rgb.shape, encoding
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
    mono = rgb[:, :, 0]
    out = conversions.image_msg_to_rgb(image_msg(mono[:, :, None], 'mono8', padding))
    np.testing.assert_array_equal(out, np.repeat(mono[:, :, None], 3, axis=2))


def test_converted_image_owns_its_memory():
    rgb = random_rgb()
    msg = image_msg(rgb, 'rgb8')
    out = conversions.image_msg_to_rgb(msg)
    out[:] = 0
    np.testing.assert_array_equal(conversions.image_msg_to_rgb(msg), rgb)


@pytest.mark.parametrize('encoding', conversions.SUPPORTED_IMAGE_ENCODINGS)
def test_rgb_round_trip_through_every_encoding(encoding):
    rgb = random_rgb(seed=3)
    if encoding == 'mono8':
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)  # grey survives mono exactly
    msg = conversions.rgb_to_image_msg(rgb, encoding=encoding)
    assert msg.encoding == encoding and msg.width == 7 and msg.height == 5
    np.testing.assert_array_equal(conversions.image_msg_to_rgb(msg), rgb)


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('padding', [0, 4])
def test_depth_16uc1_millimetres(big_endian, padding):
    millimetres = np.array([[0, 1, 500], [1234, 65535, 7]], dtype=np.uint16)
    msg = image_msg(millimetres[:, :, None], '16UC1', padding, big_endian)
    depth = conversions.depth_msg_to_metres(msg)
    assert depth.dtype == np.float32 and depth.shape == (2, 3)
    np.testing.assert_allclose(depth, millimetres / 1000.0, rtol=1e-6)


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('padding', [0, 8])
def test_depth_32fc1_metres_invalid_become_zero(big_endian, padding):
    metres = np.array([[0.5, np.nan, 2.25], [np.inf, -1.0, 0.0]], dtype=np.float32)
    msg = image_msg(metres[:, :, None], '32FC1', padding, big_endian)
    depth = conversions.depth_msg_to_metres(msg)
    np.testing.assert_array_equal(depth, [[0.5, 0.0, 2.25], [0.0, 0.0, 0.0]])


def test_depth_round_trip_both_encodings():
    depth = np.array([[0.0, np.nan, 0.4321], [1.0, 2.5, 0.0015]])
    for encoding, tolerance in (('16UC1', 0.5e-3), ('32FC1', 1e-6)):
        msg = conversions.depth_to_image_msg(depth, encoding=encoding)
        back = conversions.depth_msg_to_metres(msg)
        np.testing.assert_allclose(back, np.nan_to_num(depth), atol=tolerance)


def test_bad_image_messages_raise_clear_errors():
    good = image_msg(random_rgb(), 'rgb8')
    with pytest.raises(MessageConversionError, match='unsupported image encoding .*yuv422'):
        conversions.image_msg_to_rgb(Image(height=5, width=7, encoding='yuv422', step=14,
                                           data=bytes(70)))
    with pytest.raises(MessageConversionError, match='zero size'):
        conversions.image_msg_to_rgb(Image(height=0, width=7, encoding='rgb8', step=21))
    with pytest.raises(MessageConversionError, match='step 20 is shorter than a row'):
        conversions.image_msg_to_rgb(Image(height=5, width=7, encoding='rgb8', step=20,
                                           data=bytes(good.data)))
    with pytest.raises(MessageConversionError, match='truncated: 104 bytes'):
        conversions.image_msg_to_rgb(Image(height=5, width=7, encoding='rgb8', step=21,
                                           data=bytes(good.data)[:104]))
    with pytest.raises(MessageConversionError, match='not a multiple of the 2-byte'):
        conversions.depth_msg_to_metres(Image(height=1, width=2, encoding='16UC1', step=5,
                                              data=bytes(5)))
    # A depth message is not a colour image and vice versa.
    with pytest.raises(MessageConversionError, match='supported: rgb8'):
        conversions.image_msg_to_rgb(conversions.depth_to_image_msg(np.ones((2, 2))))
    with pytest.raises(MessageConversionError, match='supported: 16UC1, 32FC1'):
        conversions.depth_msg_to_metres(good)
    with pytest.raises(MessageConversionError, match='uint8'):
        conversions.rgb_to_image_msg(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(MessageConversionError, match=r'\(H, W, 3\)'):
        conversions.rgb_to_image_msg(np.zeros((2, 2, 4), np.uint8))
    assert issubclass(MessageConversionError, ValueError)


def test_header_is_copied_into_built_messages():
    header = Header(stamp=Time(sec=12, nanosec=345), frame_id='camera_color_optical_frame')
    for msg in (conversions.rgb_to_image_msg(random_rgb(), header),
                conversions.depth_to_image_msg(np.ones((2, 2)), header),
                conversions.K_to_camera_info(np.eye(3), 2, 2, header),
                conversions.pose_stamped_msg(header, np.eye(3), [0, 0, 1]),
                conversions.points_to_pose_array(header, np.zeros((2, 3)))):
        assert msg.header.frame_id == 'camera_color_optical_frame'
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)


def test_camera_info_round_trip_and_validation():
    K = np.array([[610.5, 0.0, 321.25], [0.0, 611.0, 239.5], [0.0, 0.0, 1.0]])
    info = conversions.K_to_camera_info(K, 640, 480)
    assert (info.width, info.height) == (640, 480)
    np.testing.assert_array_equal(conversions.camera_info_to_K(info), K)
    np.testing.assert_array_equal(np.reshape(info.p, (3, 4))[:, :3], K)
    with pytest.raises(MessageConversionError, match='invalid focal lengths'):
        conversions.camera_info_to_K(CameraInfo())  # uncalibrated: all zeros
    bad = K.copy()
    bad[0, 2] = np.nan
    info.k = bad.reshape(-1).tolist()
    with pytest.raises(MessageConversionError, match='NaN'):
        conversions.camera_info_to_K(info)


def test_roi_box_round_trip():
    roi = RegionOfInterest(x_offset=10, y_offset=20, width=30, height=40)
    box = conversions.roi_to_bbox_xyxy(roi)
    np.testing.assert_array_equal(box, [10, 20, 40, 60])
    back = conversions.bbox_xyxy_to_roi(box)
    assert (back.x_offset, back.y_offset, back.width, back.height) == (10, 20, 30, 40)
    # Fractional boxes round outwards so the ROI contains the box; negatives clamp to 0.
    outward = conversions.bbox_xyxy_to_roi([-3.5, 1.2, 9.1, 4.0])
    assert (outward.x_offset, outward.y_offset, outward.width, outward.height) == (0, 1, 10, 3)
    with pytest.raises(MessageConversionError, match='inverted'):
        conversions.bbox_xyxy_to_roi([5, 5, 1, 9])


def test_quaternion_order_is_ros_xyzw():
    # 90 degrees about z: ROS (x, y, z, w) = (0, 0, sin 45, cos 45).
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    q = conversions.rotation_to_quaternion_msg(rotation)
    np.testing.assert_allclose([q.x, q.y, q.z, q.w], [0, 0, np.sqrt(0.5), np.sqrt(0.5)],
                               atol=1e-12)
    np.testing.assert_allclose(conversions.quaternion_msg_to_rotation(q), rotation, atol=1e-12)


@pytest.mark.parametrize('seed', range(5))
def test_rotation_round_trip(seed):
    rotation = random_rotation(seed)
    q = conversions.rotation_to_quaternion_msg(rotation)
    assert abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1.0) < 1e-12
    np.testing.assert_allclose(conversions.quaternion_msg_to_rotation(q), rotation, atol=1e-10)


def test_quaternion_errors_and_normalisation():
    with pytest.raises(MessageConversionError, match='zero'):
        conversions.quaternion_msg_to_rotation(Quaternion(x=0.0, y=0.0, z=0.0, w=0.0))
    with pytest.raises(MessageConversionError, match='finite 3x3'):
        conversions.rotation_to_quaternion_msg(np.full((3, 3), np.nan))
    scaled = conversions.quaternion_msg_to_rotation(Quaternion(x=0.0, y=0.0, z=0.0, w=3.0))
    np.testing.assert_allclose(scaled, np.eye(3), atol=1e-12)


def test_pose_stamped_and_pose_array():
    rotation = random_rotation(7)
    pose = conversions.pose_stamped_msg(Header(frame_id='cam'), rotation, [0.1, -0.2, 0.7])
    position = pose.pose.position
    np.testing.assert_allclose([position.x, position.y, position.z], [0.1, -0.2, 0.7])
    np.testing.assert_allclose(conversions.quaternion_msg_to_rotation(pose.pose.orientation),
                               rotation, atol=1e-10)
    points = np.random.default_rng(1).normal(size=(21, 3))
    array = conversions.points_to_pose_array(Header(), points)
    assert len(array.poses) == 21 and array.poses[4].orientation.w == 1.0
    np.testing.assert_array_equal(conversions.pose_array_to_points(array), points)
    assert conversions.pose_array_to_points(conversions.points_to_pose_array(
        Header(), np.zeros((0, 3)))).shape == (0, 3)


def test_stamp_seconds_round_trip():
    stamp = Time(sec=1700000000, nanosec=123456789)
    seconds = conversions.stamp_to_seconds(stamp)
    assert abs(seconds - 1700000000.123456789) < 1e-6
    back = conversions.seconds_to_stamp(seconds)
    assert back.sec == 1700000000 and abs(back.nanosec - 123456789) < 1000


def test_numpy_path_is_the_one_tested_here():
    """Here no ROS 2 cv_bridge is installed; the tests above exercise the numpy conversion."""
    try:
        import cv_bridge  # noqa: F401
    except ImportError:
        assert not conversions.cv_bridge_in_use()
    else:
        pytest.skip('a cv_bridge is installed; the numpy path is used only without it')
