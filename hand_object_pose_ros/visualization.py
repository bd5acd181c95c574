"""
Debug overlay: the predicted hand mesh, skeleton and object box drawn on the camera image.

No ROS here; the node converts the result with ``ros.conversions.rgb_to_image_msg``. Points
behind the camera (z <= ``MIN_DRAW_DEPTH_M``) are left out rather than drawn wrapped around.
"""

import cv2
import numpy as np

from hand_object_pose_ros.constants import HAND_JOINT_PARENTS

# Side of the cube drawn for an object that is not in the catalogue, metres.
DEFAULT_OBJECT_SIZE_M = 0.08
MIN_DRAW_DEPTH_M = 1e-3
# Pixel coordinates are clipped to this range before OpenCV's int32 drawing calls.
_MAX_COORDINATE_PX = 1e5
# Colours are RGB uint8 (the image is RGB).
HAND_MESH_RGB = (245, 195, 160)
OBJECT_BOX_RGB = (60, 220, 90)
AXIS_RGB = ((255, 40, 40), (40, 255, 40), (60, 90, 255))
# Skeleton colour per finger: thumb, index, middle, ring, pinky.
FINGER_RGB = ((255, 80, 80), (255, 200, 40), (80, 220, 80), (60, 160, 255), (200, 90, 255))
# Box edges: corner pairs (``ObjectModel.corners()`` order) that differ in one coordinate.
BOX_EDGES = tuple((i, j) for i in range(8) for j in range(i + 1, 8)
                  if bin(i ^ j).count('1') == 1)


def _project(points, K):
    """Return (N, 2) float pixels and (N,) bool in front of the camera."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    in_front = points[:, 2] > MIN_DRAW_DEPTH_M
    homogeneous = points @ np.asarray(K, np.float64).T
    depth = np.where(in_front, homogeneous[:, 2], 1.0)
    pixels = homogeneous[:, :2] / depth[:, None]
    return np.clip(np.nan_to_num(pixels), -_MAX_COORDINATE_PX, _MAX_COORDINATE_PX), in_front


def _int_px(pixels):
    """Round pixel coordinates for OpenCV (int32, as its drawing calls want)."""
    return np.rint(pixels).astype(np.int32)


def _line(image, start, end, rgb, thickness):
    """Draw one anti-aliased line between two pixel positions."""
    cv2.line(image, tuple(int(v) for v in start), tuple(int(v) for v in end), rgb, thickness,
             cv2.LINE_AA)


def draw_hand_mesh(image, vertices, faces, K, rgb=HAND_MESH_RGB, alpha=0.45):
    """
    Blend the filled projected hand mesh into ``image`` (in place).

    :param image: (H, W, 3) uint8 RGB, modified.
    :param vertices: (778, 3) metres, camera frame.
    :param faces: (F, 3) int vertex indices.
    :param K: (3, 3) intrinsics.
    :param rgb: fill colour.
    :param alpha: opacity of the mesh, 0..1.
    """
    pixels, in_front = _project(vertices, K)
    faces = np.asarray(faces, np.int64)
    visible = faces[in_front[faces].all(axis=1)]
    if not len(visible):
        return
    mask = np.zeros(image.shape[:2], np.uint8)
    # One convex fill per triangle: the union of the triangles (a single fillPoly call of all
    # of them uses the even-odd rule and leaves overlaps empty) and faster.
    for triangle in _int_px(pixels[visible]):
        cv2.fillConvexPoly(mask, triangle, 255)
    covered = mask > 0
    colour = np.array(rgb, np.float32)
    image[covered] = (image[covered] * (1.0 - alpha) + colour * alpha).astype(np.uint8)


def draw_skeleton(image, joints_px, thickness=2):
    """
    Draw the 21-joint skeleton (bones coloured per finger) in place.

    :param image: (H, W, 3) uint8 RGB.
    :param joints_px: (21, 2) pixels.
    :param thickness: line width in pixels.
    """
    joints_px = _int_px(np.clip(np.nan_to_num(np.asarray(joints_px, np.float64)),
                                -_MAX_COORDINATE_PX, _MAX_COORDINATE_PX))
    for child, parent in enumerate(HAND_JOINT_PARENTS):
        if parent < 0:
            continue
        _line(image, joints_px[parent], joints_px[child], FINGER_RGB[(child - 1) // 4],
              thickness)
    for index, point in enumerate(joints_px):
        colour = (255, 255, 255) if index == 0 else FINGER_RGB[(index - 1) // 4]
        cv2.circle(image, (int(point[0]), int(point[1])), thickness + 1, colour, -1,
                   cv2.LINE_AA)


def object_box_corners(object_id, catalogue=None):
    """
    Return the 8 corners of the object's box in the object frame, metres.

    :param object_id: catalogue id.
    :param catalogue: ``objects.ObjectCatalogue`` or None.
    :return: (8, 3) float64 in ``ObjectModel.corners()`` order; a cube of
        ``DEFAULT_OBJECT_SIZE_M`` around the origin for an unknown object.
    """
    if catalogue is not None and object_id in catalogue:
        return catalogue.get(object_id).corners().astype(np.float64)
    index = np.arange(8)
    bits = np.stack([index & 1, (index >> 1) & 1, (index >> 2) & 1], axis=1)
    return (bits - 0.5) * DEFAULT_OBJECT_SIZE_M


def draw_object(image, rotation, translation, K, corners, label=None, thickness=2):
    """
    Draw an object's 3D box and its frame axes in place.

    :param image: (H, W, 3) uint8 RGB.
    :param rotation: (3, 3) camera_from_object.
    :param translation: (3,) metres, object origin in the camera frame.
    :param K: (3, 3) intrinsics.
    :param corners: (8, 3) box corners, object frame, metres.
    :param label: text written at the object origin, or None.
    :param thickness: line width in pixels.
    """
    rotation = np.asarray(rotation, np.float64)
    translation = np.asarray(translation, np.float64).reshape(3)
    corners_cam = corners @ rotation.T + translation
    pixels, in_front = _project(corners_cam, K)
    pixels = _int_px(pixels)
    for i, j in BOX_EDGES:
        if in_front[i] and in_front[j]:
            _line(image, pixels[i], pixels[j], OBJECT_BOX_RGB, thickness)
    axis_length = 0.5 * float(np.linalg.norm(corners.max(0) - corners.min(0)))
    axes = np.vstack((np.zeros(3), np.eye(3) * axis_length)) @ rotation.T + translation
    axis_px, axis_in_front = _project(axes, K)
    axis_px = _int_px(axis_px)
    if axis_in_front[0]:
        for axis in range(3):
            if axis_in_front[axis + 1]:
                _line(image, axis_px[0], axis_px[axis + 1], AXIS_RGB[axis], thickness)
        if label:
            cv2.putText(image, label, (int(axis_px[0][0]) + 4, int(axis_px[0][1]) - 4),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, OBJECT_BOX_RGB, 1, cv2.LINE_AA)


def draw_overlay(rgb, predictions, K, faces, catalogue=None, mesh_alpha=0.45):
    """
    Draw every prediction on a copy of the image.

    Hand meshes first (filled, blended), then per prediction the object box with its axes and
    label ``'id (score)'``, and the skeleton of the projected 3D joints.

    :param rgb: (H, W, 3) uint8 RGB camera image.
    :param predictions: list of ``types.Prediction`` in the camera frame of ``K``.
    :param K: (3, 3) intrinsics of ``rgb``.
    :param faces: (1538, 3) MANO faces (``Predictor.faces``; winding does not matter here).
    :param catalogue: ``objects.ObjectCatalogue`` for object boxes, or None (default cube).
    :param mesh_alpha: opacity of the filled hand mesh, 0..1 (0 = skeleton only).
    :return: (H, W, 3) uint8 RGB, a new array.
    :raises ValueError: for an image that is not (H, W, 3) uint8.
    """
    image = np.asarray(rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError('rgb must be an (H, W, 3) uint8 image, got %s %s'
                         % (image.dtype, image.shape))
    canvas = np.ascontiguousarray(image).copy()
    K = np.asarray(K, np.float64)
    for prediction in predictions:
        if mesh_alpha > 0:
            draw_hand_mesh(canvas, prediction.hand_vertices, faces, K, alpha=mesh_alpha)
    for prediction in predictions:
        corners = object_box_corners(prediction.object_id, catalogue)
        draw_object(canvas, prediction.object_rotation, prediction.object_translation, K,
                    corners, label='%d (%.2f)' % (prediction.object_id,
                                                  prediction.object_score))
        joints_px, in_front = _project(prediction.hand_joints, K)
        if in_front.all():
            draw_skeleton(canvas, joints_px)
    return canvas
