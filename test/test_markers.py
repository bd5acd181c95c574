"""Tests of ros/markers.py: marker content, namespaces, the serialised fast path."""

import time

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rclpy.serialization import serialize_message
from std_msgs.msg import Header
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

from hand_object_pose_ros.constants import HAND_JOINT_PARENTS
from hand_object_pose_ros.objects import load_object_catalogue
from hand_object_pose_ros.ros import markers
from hand_object_pose_ros.ros.conversions import quaternion_msg_to_rotation
from hand_object_pose_ros.types import Prediction

FACES = np.random.default_rng(0).integers(0, 778, (1538, 3))


def random_rotation(rng):
    """Return a random rotation matrix with det +1."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def make_prediction(seed, object_id):
    """Return a random Prediction 0.5 m in front of the camera."""
    rng = np.random.default_rng(seed)
    return Prediction(
        hand_vertices=(rng.normal(0, 0.03, (778, 3)) + [0, 0, 0.5]).astype(np.float32),
        hand_joints=(rng.normal(0, 0.03, (21, 3)) + [0, 0, 0.5]).astype(np.float32),
        joints_2d_px=rng.uniform(0, 480, (21, 2)).astype(np.float32),
        mano_pose=np.zeros(48, np.float32), mano_betas=np.zeros(10, np.float32),
        object_rotation=random_rotation(rng).astype(np.float32),
        object_translation=rng.normal([0, 0, 0.5], 0.05).astype(np.float32),
        object_id=object_id, object_score=0.9)


def header(sec=17, nanosec=250, frame_id='camera_color_optical_frame'):
    """Return a Header with a stamp."""
    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = sec, nanosec
    return msg


def points_array(marker):
    """Return a marker's points as (N, 3) float64."""
    return np.array([[p.x, p.y, p.z] for p in marker.points]).reshape(-1, 3)


@pytest.fixture(scope='module')
def catalogue():
    """Return the packaged object catalogue."""
    return load_object_catalogue()


def test_marker_layout_namespaces_ids_and_header(catalogue):
    builder = markers.MarkerArrayBuilder(FACES, catalogue, lifetime_s=0.25)
    object_id = catalogue.ids[0]
    predictions = [make_prediction(0, object_id), make_prediction(1, object_id)]
    msg = builder.build(header(), predictions)
    layout = [(m.ns, m.id, m.type, m.action) for m in msg.markers]
    assert layout == [
        ('', 0, Marker.ARROW, Marker.DELETEALL),
        ('hand_mesh', 0, Marker.TRIANGLE_LIST, Marker.ADD),
        ('hand_skeleton', 0, Marker.LINE_LIST, Marker.ADD),
        ('object', 0, Marker.TRIANGLE_LIST, Marker.ADD),
        ('hand_mesh', 1, Marker.TRIANGLE_LIST, Marker.ADD),
        ('hand_skeleton', 1, Marker.LINE_LIST, Marker.ADD),
        ('object', 1, Marker.TRIANGLE_LIST, Marker.ADD),
    ]
    for marker in msg.markers:
        assert marker.header.frame_id == 'camera_color_optical_frame'
        assert (marker.header.stamp.sec, marker.header.stamp.nanosec) == (17, 250)
    for marker in msg.markers[1:]:
        assert (marker.lifetime.sec, marker.lifetime.nanosec) == (0, 250_000_000)
        assert 0.0 <= min(marker.color.r, marker.color.g, marker.color.b) <= 1.0
        assert 0.0 < marker.color.a <= 1.0


def test_hand_mesh_and_skeleton_points(catalogue):
    builder = markers.MarkerArrayBuilder(FACES, catalogue)
    prediction = make_prediction(3, catalogue.ids[0])
    msg = builder.build(header(), [prediction])
    mesh, skeleton = msg.markers[1], msg.markers[2]
    assert len(mesh.points) == 3 * 1538
    np.testing.assert_array_equal(points_array(mesh),
                                  prediction.hand_vertices.astype(np.float64)[FACES.reshape(-1)])
    assert mesh.pose.orientation.w == 1.0 and mesh.scale.x == 1.0
    lines = points_array(skeleton).reshape(-1, 2, 3)
    assert len(lines) == 20
    joints = prediction.hand_joints.astype(np.float64)
    for (start, end), child in zip(lines, [c for c, p in enumerate(HAND_JOINT_PARENTS) if p >= 0]):
        np.testing.assert_array_equal(start, joints[HAND_JOINT_PARENTS[child]])
        np.testing.assert_array_equal(end, joints[child])
    assert skeleton.scale.x == pytest.approx(markers.DEFAULT_LINE_WIDTH_M)


def test_left_hand_mesh_uses_rewound_faces(catalogue):
    builder = markers.MarkerArrayBuilder(FACES, catalogue)
    prediction = make_prediction(6, catalogue.ids[0])
    prediction.is_right_hand = False
    mesh = builder.build(header(), [prediction]).markers[1]
    left_corner_ids = FACES[:, ::-1].reshape(-1)
    np.testing.assert_array_equal(points_array(mesh),
                                  prediction.hand_vertices.astype(np.float64)[left_corner_ids])
    data = builder.build_serialized(header(), [prediction])
    np.testing.assert_array_equal(points_array(deserialize_message(data, MarkerArray).markers[1]),
                                  points_array(mesh))


def test_object_mesh_in_object_frame_with_predicted_pose(catalogue):
    builder = markers.MarkerArrayBuilder(FACES, catalogue, skeleton=False)
    model = catalogue.get(catalogue.ids[2])
    prediction = make_prediction(4, model.id)
    obj = builder.build(header(), [prediction]).markers[-1]
    assert obj.ns == 'object' and obj.type == Marker.TRIANGLE_LIST
    np.testing.assert_allclose(points_array(obj),
                               model.vertices.astype(np.float64)[model.faces.reshape(-1)])
    np.testing.assert_allclose(quaternion_msg_to_rotation(obj.pose.orientation),
                               prediction.object_rotation, atol=1e-6)
    position = obj.pose.position
    np.testing.assert_allclose([position.x, position.y, position.z],
                               prediction.object_translation, atol=1e-7)


def test_object_cube_from_bbox_and_unknown_object(catalogue):
    model = catalogue.get(catalogue.ids[1])
    prediction = make_prediction(5, model.id)
    cube = markers.MarkerArrayBuilder(FACES, catalogue, object_mesh=False).build(
        header(), [prediction]).markers[-1]
    assert cube.type == Marker.CUBE
    np.testing.assert_allclose([cube.scale.x, cube.scale.y, cube.scale.z],
                               model.bbox_max - model.bbox_min, rtol=1e-6)
    # The cube sits at the box centre, which the predicted pose carries to the camera frame.
    centre = (model.bbox_min.astype(np.float64) + model.bbox_max) / 2.0
    expected = prediction.object_translation + prediction.object_rotation @ centre
    np.testing.assert_allclose([cube.pose.position.x, cube.pose.position.y,
                                cube.pose.position.z], expected, atol=1e-6)
    unknown = markers.MarkerArrayBuilder(FACES, None).build(header(), [prediction]).markers[-1]
    assert unknown.type == Marker.CUBE
    assert unknown.scale.x == pytest.approx(markers.DEFAULT_OBJECT_SIZE_M)


def test_serialized_path_equals_the_message(catalogue):
    builder = markers.MarkerArrayBuilder(FACES, catalogue)
    ids = catalogue.ids
    frames = [
        (header(1, 2), [make_prediction(0, ids[0])]),
        (header(3, 999_999_999), [make_prediction(1, ids[0])]),  # same layout: template reused
        (header(5, 6), [make_prediction(2, ids[3]), make_prediction(3, 999)]),  # mesh + cube
        (header(7, 8, 'other_frame'), []),
    ]
    for msg_header, predictions in frames:
        expected = builder.build(msg_header, predictions)
        data = builder.build_serialized(msg_header, predictions)
        # Compare messages, not bytes: CDR padding bytes are not deterministic, and the
        # float32 colours round in the message path too.
        expected_data = serialize_message(expected)
        assert len(data) == len(expected_data)
        assert deserialize_message(data, MarkerArray) == deserialize_message(expected_data,
                                                                             MarkerArray)
    back = deserialize_message(builder.build_serialized(*frames[1]), MarkerArray)
    np.testing.assert_array_equal(points_array(back.markers[1]),
                                  frames[1][1][0].hand_vertices.astype(np.float64)[
                                      FACES.reshape(-1)])
    assert back.markers[0].header.stamp.nanosec == 999_999_999


def test_invalid_arguments():
    with pytest.raises(ValueError, match='faces must be'):
        markers.MarkerArrayBuilder(np.zeros((5, 4), int))
    with pytest.raises(ValueError, match='outside the 778'):
        markers.MarkerArrayBuilder(np.full((5, 3), 778))
    with pytest.raises(ValueError, match='hand_color .* in 0..1'):
        markers.MarkerArrayBuilder(FACES, hand_color=(255, 0, 0, 1))
    with pytest.raises(ValueError, match='lifetime_s'):
        markers.MarkerArrayBuilder(FACES, lifetime_s=-1.0)
    builder = markers.MarkerArrayBuilder(FACES)
    bad = make_prediction(0, 1)
    bad.hand_vertices = bad.hand_vertices[:700]
    with pytest.raises(ValueError, match='hand_vertices must be'):
        builder.build(header(), [bad])


def test_benchmark_function_returns_figures():
    figures = markers.marker_build_time_ms(num_hands=1, repeats=3, verbose=False)
    assert set(figures) == {'points_keyword_constructor', 'build', 'serialize',
                            'build_serialized'}
    assert all(value > 0 for value in figures.values())


@pytest.mark.ros
def test_serialized_markers_publish_over_dds(catalogue):
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('marker_test', context=context)
        received = []
        node.create_subscription(MarkerArray, 'markers', received.append, 10)
        publisher = node.create_publisher(MarkerArray, 'markers', 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        builder = markers.MarkerArrayBuilder(FACES, catalogue)
        prediction = make_prediction(9, catalogue.ids[0])
        data = builder.build_serialized(header(), [prediction])
        deadline = time.monotonic() + 20.0
        while not received and time.monotonic() < deadline:
            if publisher.get_subscription_count():
                publisher.publish(data)
            executor.spin_once(timeout_sec=0.1)
        assert received, 'no MarkerArray received'
        msg = received[0]
        assert [m.ns for m in msg.markers] == ['', 'hand_mesh', 'hand_skeleton', 'object']
        np.testing.assert_array_equal(
            points_array(msg.markers[1]),
            prediction.hand_vertices.astype(np.float64)[FACES.reshape(-1)])
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
