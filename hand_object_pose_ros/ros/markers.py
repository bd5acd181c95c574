"""
RViz markers of the predicted hands and objects, built fast.

One :class:`MarkerArrayBuilder` per node. Per prediction ``i`` (hand index) it makes, after one
leading ``DELETEALL`` marker (so hands that disappear also disappear in RViz):

- ns ``'hand_mesh'``, id ``i``: TRIANGLE_LIST of the MANO faces, camera frame, identity pose;
- ns ``'hand_skeleton'``, id ``i``: LINE_LIST of the 20 bones (optional);
- ns ``'object'``, id ``i``: the catalogue mesh as a TRIANGLE_LIST in the object frame with the
  predicted pose, or a CUBE of the object's bounding box (or of ``DEFAULT_OBJECT_SIZE_M`` when
  the object is not in the catalogue).

Frame and stamp come from the given header (the input image's).

Speed (measured with :func:`marker_build_time_ms`): filling the 4614 ``geometry_msgs/Point`` of
a hand mesh with keyword construction costs several ms in Python, and rclpy's conversion of
those objects when publishing costs a few more. Two paths avoid most of it:

- :meth:`MarkerArrayBuilder.build` returns a message. Hand points are created without the
  keyword-argument constructor; object mesh points are built once per object (they live in the
  object frame, only the marker pose changes) and shared, read-only, between messages.
- :meth:`MarkerArrayBuilder.build_serialized` returns the CDR bytes of the same message for
  ``publisher.publish(bytes)``: a serialised template per layout (frame id, objects, hand count)
  is made once, and each call only writes the stamps, the hand points and the poses into a copy
  with numpy (tens of microseconds).
"""

from collections import OrderedDict
import struct
import time

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from geometry_msgs.msg import Pose
from geometry_msgs.msg import Quaternion
from geometry_msgs.msg import Vector3
import numpy as np
from rclpy.serialization import serialize_message
from std_msgs.msg import ColorRGBA
from std_msgs.msg import Header
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

from hand_object_pose_ros.constants import HAND_JOINT_PARENTS
from hand_object_pose_ros.constants import NUM_MANO_FACES
from hand_object_pose_ros.constants import NUM_MANO_VERTICES
from hand_object_pose_ros.ros.conversions import rotation_to_quaternion_msg
from hand_object_pose_ros.visualization import DEFAULT_OBJECT_SIZE_M

HAND_MESH_NAMESPACE = 'hand_mesh'
HAND_SKELETON_NAMESPACE = 'hand_skeleton'
OBJECT_NAMESPACE = 'object'

DEFAULT_HAND_COLOR = (0.96, 0.76, 0.62, 0.8)
DEFAULT_SKELETON_COLOR = (0.1, 0.4, 1.0, 1.0)
DEFAULT_OBJECT_COLOR = (0.2, 0.8, 0.3, 0.8)
DEFAULT_LINE_WIDTH_M = 0.004

# Bones of the 21-joint skeleton as (parent, child) pairs.
SKELETON_BONES = tuple((parent, child) for child, parent in enumerate(HAND_JOINT_PARENTS)
                       if parent >= 0)

# Generated rosidl Python messages keep their fields in '_x'-style slots; writing them directly
# skips the keyword-argument parsing of the constructor (3x faster). Fall back when a future
# rosidl changes that.
_POINT_HAS_SLOTS = sorted(getattr(Point, '__slots__', ())) == ['_check_fields', '_x', '_y', '_z']
_TEMPLATE_CACHE_SIZE = 8


def points_from_array(points):
    """
    Convert an array of points to a list of ``geometry_msgs/Point``.

    :param points: (N, 3) float, metres.
    :return: list of N new Point objects.
    """
    values = np.asarray(points, dtype=np.float64).reshape(-1, 3).tolist()
    if not _POINT_HAS_SLOTS:
        return [Point(x=x, y=y, z=z) for x, y, z in values]
    new = Point.__new__
    check_fields = Point()._check_fields  # the default of this process (env variable)
    out = []
    append = out.append
    for x, y, z in values:
        point = new(Point)
        point._x = x
        point._y = y
        point._z = z
        point._check_fields = check_fields
        append(point)
    return out


def _color(rgba, name):
    """Validate an (r, g, b, a) colour in 0..1 and return a ColorRGBA."""
    values = [float(c) for c in rgba]
    if len(values) != 4 or not all(0.0 <= c <= 1.0 for c in values):
        raise ValueError('%s must be 4 values (r, g, b, a) in 0..1, got %r' % (name, rgba))
    return ColorRGBA(r=values[0], g=values[1], b=values[2], a=values[3])


def _duration(seconds):
    """Return a builtin_interfaces/Duration of ``seconds`` (>= 0; 0 = forever)."""
    if not seconds >= 0.0:
        raise ValueError('lifetime_s must be >= 0, got %r' % (seconds,))
    total_ns = int(round(seconds * 1e9))
    return Duration(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


class MarkerArrayBuilder:
    """Builds the MarkerArray of a frame's predictions (see the module docstring)."""

    def __init__(self, faces, catalogue=None, hand_color=DEFAULT_HAND_COLOR,
                 object_color=DEFAULT_OBJECT_COLOR, skeleton=True, lifetime_s=0.0,
                 skeleton_color=DEFAULT_SKELETON_COLOR, line_width_m=DEFAULT_LINE_WIDTH_M,
                 object_mesh=True, faces_left=None):
        """
        Create the builder.

        :param faces: (1538, 3) int MANO faces (``Predictor.faces``).
        :param catalogue: ``objects.ObjectCatalogue`` for object meshes / boxes, or None.
        :param hand_color: (r, g, b, a) in 0..1 of the hand mesh.
        :param object_color: (r, g, b, a) in 0..1 of the object.
        :param skeleton: add the 'hand_skeleton' LINE_LIST markers.
        :param lifetime_s: marker lifetime in seconds (0 = until replaced).
        :param skeleton_color: (r, g, b, a) in 0..1 of the skeleton lines.
        :param line_width_m: skeleton line width, metres.
        :param object_mesh: show catalogue meshes; False shows bounding-box cubes only.
        :param faces_left: faces for left-hand meshes (``Predictor.faces_left``); None
            re-winds ``faces`` (a mirrored mesh needs the opposite winding for its normals).
        :raises ValueError: for faces that are not (F, 3) indices of 778 vertices, or bad
            colours.
        """
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
            raise ValueError('faces must be (F, 3), got %s' % (faces.shape,))
        if faces.min() < 0 or faces.max() >= NUM_MANO_VERTICES:
            raise ValueError('faces index outside the %d MANO vertices' % NUM_MANO_VERTICES)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.triangle_vertex_ids = self.faces.reshape(-1)
        left = self.faces[:, ::-1] if faces_left is None else np.asarray(faces_left)
        if left.shape != self.faces.shape:
            raise ValueError('faces_left must have the shape of faces %s, got %s'
                             % (self.faces.shape, left.shape))
        self.triangle_vertex_ids_left = np.ascontiguousarray(left, dtype=np.int64).reshape(-1)
        self.catalogue = catalogue
        self.hand_color = _color(hand_color, 'hand_color')
        self.object_color = _color(object_color, 'object_color')
        self.skeleton_color = _color(skeleton_color, 'skeleton_color')
        self.skeleton = bool(skeleton)
        self.lifetime = _duration(float(lifetime_s))
        self.line_width_m = float(line_width_m)
        self.object_mesh = bool(object_mesh)
        self._bone_joint_ids = np.array(SKELETON_BONES, dtype=np.int64).reshape(-1)
        self._object_points = {}
        self._templates = OrderedDict()

    # ----- message path -------------------------------------------------------------------

    def _marker(self, header, namespace, marker_id, marker_type, color):
        """Return an ADD marker with the common fields set (identity pose, unit scale)."""
        return Marker(header=header, ns=namespace, id=marker_id, type=marker_type,
                      action=Marker.ADD, pose=Pose(orientation=Quaternion(w=1.0)),
                      scale=Vector3(x=1.0, y=1.0, z=1.0), color=color,
                      lifetime=self.lifetime, frame_locked=False)

    def _object_model(self, object_id):
        """Return the catalogue model of ``object_id`` or None."""
        if self.catalogue is None or object_id not in self.catalogue:
            return None
        return self.catalogue.get(object_id)

    def _object_layout(self, object_id):
        """Return 'mesh' or 'cube': how the object of ``object_id`` is drawn."""
        model = self._object_model(object_id)
        if self.object_mesh and model is not None and len(model.faces):
            return 'mesh'
        return 'cube'

    def _cached_object_points(self, object_id):
        """Return the shared Point list of an object's triangles, object frame (built once)."""
        points = self._object_points.get(object_id)
        if points is None:
            model = self._object_model(object_id)
            triangles = np.asarray(model.vertices, np.float64)[np.asarray(model.faces).reshape(-1)]
            points = points_from_array(triangles)
            self._object_points[object_id] = points
        return points

    def _object_box(self, object_id):
        """Return (centre (3,), size (3,)) of the object's box, object frame, metres."""
        model = self._object_model(object_id)
        if model is None:
            return np.zeros(3), np.full(3, DEFAULT_OBJECT_SIZE_M)
        bbox_min = np.asarray(model.bbox_min, np.float64)
        bbox_max = np.asarray(model.bbox_max, np.float64)
        return (bbox_min + bbox_max) / 2.0, np.maximum(bbox_max - bbox_min, 1e-3)

    def _object_pose(self, prediction, layout):
        """Return the marker Pose of an object (the box centre for a cube)."""
        rotation = np.asarray(prediction.object_rotation, np.float64)
        position = np.asarray(prediction.object_translation, np.float64)
        if layout == 'cube':
            centre, _ = self._object_box(prediction.object_id)
            position = position + rotation @ centre
        return Pose(position=Point(x=float(position[0]), y=float(position[1]),
                                   z=float(position[2])),
                    orientation=rotation_to_quaternion_msg(rotation))

    def hand_triangle_points(self, prediction):
        """Return (3F, 3) float64 triangle corners (side-specific winding), camera frame, m."""
        vertices = np.asarray(prediction.hand_vertices, np.float64)
        if vertices.shape != (NUM_MANO_VERTICES, 3):
            raise ValueError('hand_vertices must be (%d, 3), got %s'
                             % (NUM_MANO_VERTICES, vertices.shape))
        if prediction.is_right_hand:
            return vertices[self.triangle_vertex_ids]
        return vertices[self.triangle_vertex_ids_left]

    def skeleton_points(self, prediction):
        """Return (40, 3) float64 bone end points (parent, child), camera frame, metres."""
        return np.asarray(prediction.hand_joints, np.float64)[self._bone_joint_ids]

    def build(self, header, predictions):
        """
        Build the MarkerArray of one frame.

        :param header: std_msgs/Header of the input image (frame_id, stamp).
        :param predictions: list of ``types.Prediction`` in the header's frame.
        :return: visualization_msgs/MarkerArray: DELETEALL, then per hand i the markers
            ('hand_mesh', i), ('hand_skeleton', i) if enabled, ('object', i).
        """
        markers = [Marker(header=header, action=Marker.DELETEALL)]
        for index, prediction in enumerate(predictions):
            mesh = self._marker(header, HAND_MESH_NAMESPACE, index, Marker.TRIANGLE_LIST,
                                self.hand_color)
            mesh.points = points_from_array(self.hand_triangle_points(prediction))
            markers.append(mesh)
            if self.skeleton:
                lines = self._marker(header, HAND_SKELETON_NAMESPACE, index, Marker.LINE_LIST,
                                     self.skeleton_color)
                lines.scale = Vector3(x=self.line_width_m, y=0.0, z=0.0)
                lines.points = points_from_array(self.skeleton_points(prediction))
                markers.append(lines)
            layout = self._object_layout(prediction.object_id)
            if layout == 'mesh':
                obj = self._marker(header, OBJECT_NAMESPACE, index, Marker.TRIANGLE_LIST,
                                   self.object_color)
                obj.points = self._cached_object_points(prediction.object_id)
            else:
                obj = self._marker(header, OBJECT_NAMESPACE, index, Marker.CUBE,
                                   self.object_color)
                _, size = self._object_box(prediction.object_id)
                obj.scale = Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2]))
            obj.pose = self._object_pose(prediction, layout)
            markers.append(obj)
        return MarkerArray(markers=markers)

    # ----- serialised path ----------------------------------------------------------------

    def build_serialized(self, header, predictions):
        """
        Build the CDR-serialised MarkerArray of one frame, for ``publisher.publish(bytes)``.

        Deserialises to the same message as :meth:`build` gives (the CDR padding bytes may
        differ: rclpy leaves them unset).

        :param header: std_msgs/Header of the input image.
        :param predictions: list of ``types.Prediction``.
        :return: bytes.
        """
        key = (header.frame_id,
               tuple(self._object_layout(p.object_id) + ':%d' % p.object_id
                     for p in predictions))
        template = self._templates.get(key)
        if template is None:
            template = self._make_template(header, predictions)
            self._templates[key] = template
            while len(self._templates) > _TEMPLATE_CACHE_SIZE:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(key)
        buffer = bytearray(template['bytes'])
        float64 = template['float64']
        stamp = struct.pack(template['stamp_format'], header.stamp.sec, header.stamp.nanosec)
        for offset in template['stamp_offsets']:
            buffer[offset:offset + 8] = stamp
        for index, prediction in enumerate(predictions):
            offsets = template['hands'][index]
            self._write(buffer, offsets['mesh'],
                        self.hand_triangle_points(prediction).astype(float64))
            if self.skeleton:
                self._write(buffer, offsets['skeleton'],
                            self.skeleton_points(prediction).astype(float64))
            pose = self._object_pose(prediction, offsets['layout'])
            self._write(buffer, offsets['pose'], np.array(
                [pose.position.x, pose.position.y, pose.position.z, pose.orientation.x,
                 pose.orientation.y, pose.orientation.z, pose.orientation.w], dtype=float64))
        return bytes(buffer)

    @staticmethod
    def _write(buffer, offset, values):
        """Write a float64 array into the buffer at ``offset``."""
        data = values.tobytes()
        buffer[offset:offset + len(data)] = data

    def _make_template(self, header, predictions):
        """
        Serialise a layout once and find the byte offsets of what changes per frame.

        Each changing region is marked with a unique sentinel (three doubles for points and
        poses, a (sec, nanosec) pair for stamps) and found in the bytes; a sentinel that is not
        found exactly once raises RuntimeError (never silently writes at a wrong place).
        """
        stamp_sentinel = (1987654321, 987654321)
        sentinel_header = Header(frame_id=header.frame_id)
        sentinel_header.stamp.sec, sentinel_header.stamp.nanosec = stamp_sentinel
        msg = self.build(sentinel_header, predictions)
        little_endian = serialize_message(Header())[1] == 1  # CDR encapsulation id
        float64 = np.dtype('<f8' if little_endian else '>f8')
        stamp_format = '<iI' if little_endian else '>iI'

        def sentinel(k):
            return np.array([-1.234567e5 - k, 7.654321e4 + k, -3.1415e3 - k])

        hands = []
        k = 0
        markers = msg.markers[1:]
        per_hand = 3 if self.skeleton else 2
        for index in range(len(predictions)):
            group = markers[index * per_hand:(index + 1) * per_hand]
            offsets = {'layout': 'mesh' if group[-1].type == Marker.TRIANGLE_LIST else 'cube'}
            # Fresh point lists: the shared object lists and the returned hand lists stay intact.
            group[0].points = list(group[0].points)
            group[0].points[0] = Point(x=float(sentinel(k)[0]), y=float(sentinel(k)[1]),
                                       z=float(sentinel(k)[2]))
            offsets['mesh'] = k
            k += 1
            if self.skeleton:
                group[1].points = list(group[1].points)
                group[1].points[0] = Point(x=float(sentinel(k)[0]), y=float(sentinel(k)[1]),
                                           z=float(sentinel(k)[2]))
                offsets['skeleton'] = k
                k += 1
            group[-1].pose.position = Point(x=float(sentinel(k)[0]), y=float(sentinel(k)[1]),
                                            z=float(sentinel(k)[2]))
            offsets['pose'] = k
            k += 1
            hands.append(offsets)
        data = serialize_message(msg)

        def find_once(pattern):
            first = data.find(pattern)
            if first < 0 or data.find(pattern, first + 1) >= 0:
                raise RuntimeError('marker template: sentinel not found exactly once')
            return first

        for offsets in hands:
            for name in ('mesh', 'skeleton', 'pose'):
                if name in offsets:
                    offsets[name] = find_once(sentinel(offsets[name]).astype(float64).tobytes())
        stamp_bytes = struct.pack(stamp_format, *stamp_sentinel)
        stamp_offsets = []
        start = data.find(stamp_bytes)
        while start >= 0:
            stamp_offsets.append(start)
            start = data.find(stamp_bytes, start + 1)
        if len(stamp_offsets) != len(msg.markers):
            raise RuntimeError('marker template: found %d stamps for %d markers'
                               % (len(stamp_offsets), len(msg.markers)))
        return {'bytes': data, 'float64': float64, 'stamp_format': stamp_format,
                'stamp_offsets': stamp_offsets, 'hands': hands}


def _benchmark_prediction(object_id, seed):
    """Return a plausible random Prediction for timing (hand 0.5 m in front of the camera)."""
    from hand_object_pose_ros.types import Prediction
    rng = np.random.default_rng(seed)
    return Prediction(
        hand_vertices=(rng.normal(0, 0.03, (NUM_MANO_VERTICES, 3)) + [0, 0, 0.5]).astype(
            np.float32),
        hand_joints=(rng.normal(0, 0.03, (21, 3)) + [0, 0, 0.5]).astype(np.float32),
        joints_2d_px=rng.uniform(0, 480, (21, 2)).astype(np.float32),
        mano_pose=np.zeros(48, np.float32), mano_betas=np.zeros(10, np.float32),
        object_rotation=np.eye(3, dtype=np.float32),
        object_translation=np.array([0.05, 0.0, 0.5], np.float32),
        object_id=int(object_id), object_score=1.0)


def marker_build_time_ms(num_hands=1, repeats=50, faces=None, catalogue='packaged',
                         object_id=None, verbose=True):
    """
    Measure how long building the markers of a frame takes (median over ``repeats``).

    :param num_hands: predictions per frame.
    :param repeats: timed repetitions.
    :param faces: (1538, 3) MANO faces; None uses a fixed random face set of the same size
        (the timing depends on the sizes only).
    :param catalogue: an ``ObjectCatalogue``, 'packaged' for the package's, or None (cubes).
    :param object_id: object of every prediction; None = the catalogue's first id (or 1).
    :param verbose: print the figures.
    :return: dict of median milliseconds: 'points_keyword_constructor' (the naive way to fill
        one hand mesh's Points), 'build' (MarkerArray message), 'serialize' (rclpy
        serialisation of that message, what publishing a message costs on top),
        'build_serialized' (template path, bytes ready to publish).
    """
    if faces is None:
        faces = np.random.default_rng(0).integers(0, NUM_MANO_VERTICES, (NUM_MANO_FACES, 3))
    if isinstance(catalogue, str) and catalogue == 'packaged':
        from hand_object_pose_ros.objects import load_object_catalogue
        catalogue = load_object_catalogue()
    if object_id is None:
        object_id = catalogue.ids[0] if catalogue is not None else 1
    builder = MarkerArrayBuilder(faces, catalogue)
    predictions = [_benchmark_prediction(object_id, seed) for seed in range(num_hands)]
    header = Header(frame_id='camera_color_optical_frame')

    def median_ms(function):
        function()  # warm-up (templates, cached object points)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e3)

    triangles = builder.hand_triangle_points(predictions[0]).tolist()
    message = builder.build(header, predictions)
    figures = {
        'points_keyword_constructor': median_ms(
            lambda: [Point(x=x, y=y, z=z) for x, y, z in triangles]),
        'build': median_ms(lambda: builder.build(header, predictions)),
        'serialize': median_ms(lambda: serialize_message(message)),
        'build_serialized': median_ms(lambda: builder.build_serialized(header, predictions)),
    }
    if verbose:
        print('marker build, %d hand(s), object %s, median of %d (ms): %s'
              % (num_hands, object_id, repeats,
                 ', '.join('%s %.3f' % item for item in figures.items())))
    return figures
