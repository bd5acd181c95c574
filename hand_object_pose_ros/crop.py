"""
The one hand crop used by the datasets, training, evaluation and the node.

Pixel coordinates follow OpenCV: pixel (u, v) has its centre at integer (u, v). A crop is an
affine map ``crop_from_image`` (3, 3) from full-image pixels to crop pixels (scale + shift, and
an optional horizontal flip for left hands); the crop's intrinsics are ``crop_from_image @ K``,
so a point in the camera frame projects to the crop with them exactly as the crop shows it.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from hand_object_pose_ros.constants import DEFAULT_BBOX_SCALE
from hand_object_pose_ros.constants import DEFAULT_CROP_SIZE_PX


# Mirror of the camera frame about its y-z plane (left hand <-> right hand): the network sees
# every hand as a right hand, so left hands run, train and are evaluated in this frame.
MIRROR = np.diag([-1.0, 1.0, 1.0])
# Axis-angle of a mirrored rotation: M R(a) M = R((a_x, -a_y, -a_z)).
AXIS_ANGLE_MIRROR = np.array([1.0, -1.0, -1.0])


class InvalidBoxError(ValueError):
    """A hand box that cannot be cropped (NaN, inverted, zero area, or outside the image)."""


@dataclass
class Crop:
    """
    A square crop of a full image.

    :param image: (S, S, C) uint8 (or the input dtype), the crop.
    :param crop_from_image: (3, 3) float64 affine, full-image pixels -> crop pixels.
    :param crop_K: (3, 3) float64 intrinsics of the crop, camera frame -> crop pixels.
    :param flipped: True when the crop is mirrored horizontally (left hand shown as a right one).
    """

    image: np.ndarray
    crop_from_image: np.ndarray
    crop_K: np.ndarray
    flipped: bool = False


def validate_bbox(bbox_xyxy_px, image_width_px, image_height_px):
    """
    Check a hand box and return it as float64 (4,).

    :param bbox_xyxy_px: (4,) x0, y0, x1, y1 in full-image pixels.
    :param image_width_px: image width.
    :param image_height_px: image height.
    :return: (4,) float64 box.
    :raises InvalidBoxError: NaN/inf, x1 <= x0 or y1 <= y0, or no overlap with the image.
    """
    box = np.asarray(bbox_xyxy_px, dtype=np.float64).reshape(-1)
    if box.shape != (4,):
        raise InvalidBoxError('hand box must have 4 values (x0, y0, x1, y1), got %d' % box.size)
    if not np.all(np.isfinite(box)):
        raise InvalidBoxError('hand box has NaN or infinite values: %s' % box.tolist())
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise InvalidBoxError('hand box has zero or negative area: %s' % box.tolist())
    if x1 <= 0 or y1 <= 0 or x0 >= image_width_px or y0 >= image_height_px:
        raise InvalidBoxError('hand box %s lies outside the %dx%d image'
                              % (box.tolist(), image_width_px, image_height_px))
    return box


def square_crop_box(bbox_xyxy_px, scale=DEFAULT_BBOX_SCALE):
    """
    Square box around a hand box, enlarged by ``scale``.

    :param bbox_xyxy_px: (4,) x0, y0, x1, y1 in full-image pixels.
    :param scale: side of the square / longer side of the box.
    :return: (center (2,) float64 pixels, side float pixels).
    """
    x0, y0, x1, y1 = np.asarray(bbox_xyxy_px, dtype=np.float64)
    center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    side = max(x1 - x0, y1 - y0) * float(scale)
    return center, side


def crop_from_image_affine(center_px, side_px, out_size_px=DEFAULT_CROP_SIZE_PX, flip=False):
    """
    Affine map from full-image pixels to the pixels of a square crop.

    :param center_px: (2,) crop centre in full-image pixels.
    :param side_px: crop side in full-image pixels.
    :param out_size_px: crop side in crop pixels.
    :param flip: mirror the crop horizontally.
    :return: (3, 3) float64 ``crop_from_image``.
    """
    scale = out_size_px / float(side_px)
    left = center_px[0] - side_px / 2.0
    top = center_px[1] - side_px / 2.0
    # Pixel centres at integers: the continuous crop edge (left - 0.5 in pixel-centre terms)
    # maps to -0.5 in the crop.
    affine = np.array([
        [scale, 0.0, scale * (0.5 - left) - 0.5],
        [0.0, scale, scale * (0.5 - top) - 0.5],
        [0.0, 0.0, 1.0],
    ])
    if flip:
        affine = horizontal_flip_affine(out_size_px) @ affine
    return affine


def horizontal_flip_affine(size_px):
    """Mirror of a ``size_px``-wide image about its vertical centre line, (3, 3) float64."""
    return np.array([[-1.0, 0.0, size_px - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def mirror_crop(image, crop_K):
    """
    Mirror a crop into the frame the network predicts in for a left hand.

    The crop is flipped about its vertical centre line and its intrinsics become those of the
    mirrored camera frame (x -> -x, :data:`MIRROR`): a mirrored point ``MIRROR @ p`` projects
    with them to the flipped pixel of ``p``.

    :param image: (S, S[, C]) array, the crop (masks and depth maps too).
    :param crop_K: (3, 3) intrinsics of the crop, camera frame -> crop pixels.
    :return: (flipped (S, S[, C]) array, (3, 3) float64 intrinsics of the mirrored frame).
    """
    image = np.asarray(image)
    flip = horizontal_flip_affine(image.shape[1])
    mirrored_K = flip @ np.asarray(crop_K, np.float64) @ MIRROR
    return np.ascontiguousarray(image[:, ::-1]), mirrored_K


def warp_image(image, crop_from_image, out_size_px, interpolation=cv2.INTER_LINEAR):
    """
    Resample ``image`` into the crop; pixels outside the image become 0.

    :param image: (H, W) or (H, W, C) array.
    :param crop_from_image: (3, 3) affine from :func:`crop_from_image_affine`.
    :param out_size_px: crop side.
    :param interpolation: OpenCV flag; use ``cv2.INTER_NEAREST`` for masks and depth.
    :return: (S, S[, C]) array of the input dtype.
    """
    return cv2.warpAffine(
        image, np.ascontiguousarray(crop_from_image[:2]), (int(out_size_px), int(out_size_px)),
        flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_hand(image, bbox_xyxy_px, K, out_size_px=DEFAULT_CROP_SIZE_PX,
              bbox_scale=DEFAULT_BBOX_SCALE, flip=False):
    """
    Crop the square network input around a hand box.

    :param image: (H, W, 3) uint8 RGB full image.
    :param bbox_xyxy_px: (4,) hand box in full-image pixels.
    :param K: (3, 3) full-image intrinsics.
    :param out_size_px: crop side in pixels.
    :param bbox_scale: enlargement of the squared box.
    :param flip: mirror horizontally (left hands are run as right hands).
    :return: :class:`Crop`.
    :raises InvalidBoxError: for a box that cannot be cropped.
    """
    height, width = image.shape[:2]
    box = validate_bbox(bbox_xyxy_px, width, height)
    center, side = square_crop_box(box, bbox_scale)
    crop_from_image = crop_from_image_affine(center, side, out_size_px, flip)
    crop_image = warp_image(image, crop_from_image, out_size_px)
    crop_K = crop_from_image @ np.asarray(K, dtype=np.float64)
    return Crop(crop_image, crop_from_image, crop_K, flip)


def transform_points_2d(affine, points_px):
    """Apply a (3, 3) affine to (..., 2) pixel coordinates; returns (..., 2) float64."""
    points = np.asarray(points_px, dtype=np.float64)
    return points @ affine[:2, :2].T + affine[:2, 2]
