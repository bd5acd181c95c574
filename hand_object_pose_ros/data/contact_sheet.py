"""
Contact sheet: a grid of synthetic crops with their ground truth drawn on them.

Draws the projected hand joints and skeleton (``constants.HAND_JOINT_PARENTS``), the object's
3D bounding box and its axes (x red, y green, z blue), all projected with the crop's K.

    python -m hand_object_pose_ros.data.contact_sheet --out docs/contact_sheet.png -n 16
"""

import argparse
import logging
import os
import sys

import cv2
import numpy as np

from hand_object_pose_ros import constants
from hand_object_pose_ros.data.synthetic import project
from hand_object_pose_ros.data.synthetic import SyntheticConfig
from hand_object_pose_ros.data.synthetic import SyntheticHandObjectGenerator
from hand_object_pose_ros.objects import load_object_catalogue

# Box edges as pairs of corner indices (ObjectModel.corners order: bits x, y, z).
BOX_EDGES = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7),
             (0, 4), (1, 5), (2, 6), (3, 7))
# One colour per finger (RGB), wrist bones included.
FINGER_COLORS = ((255, 60, 60), (255, 200, 0), (60, 220, 60), (0, 200, 255), (200, 80, 255))


def _point(p):
    return int(round(float(p[0]))), int(round(float(p[1])))


def draw_ground_truth(sample):
    """
    Draw a sample's ground truth on a copy of its crop.

    :param sample: :class:`hand_object_pose_ros.types.HandObjectSample`.
    :return: (S, S, 3) uint8 RGB.
    """
    image = np.ascontiguousarray(sample.image.copy())
    model = load_object_catalogue().get(sample.object_id)
    rotation = sample.object_rotation.astype(np.float64)
    translation = sample.object_translation.astype(np.float64)
    corners = model.corners().astype(np.float64) @ rotation.T + translation
    corners_px = project(corners, sample.crop_K)
    for a, b in BOX_EDGES:
        cv2.line(image, _point(corners_px[a]), _point(corners_px[b]), (255, 255, 255), 1,
                 cv2.LINE_AA)
    axis_length = 0.5 * float(np.min(model.bbox_max - model.bbox_min)) + 0.01
    axes = np.concatenate([translation[None], translation + axis_length * rotation.T])
    axes_px = project(axes, sample.crop_K)
    for k, color in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
        cv2.line(image, _point(axes_px[0]), _point(axes_px[k + 1]), color, 2, cv2.LINE_AA)
    joints = sample.joints_2d_crop_px
    for joint, parent in enumerate(constants.HAND_JOINT_PARENTS):
        if parent < 0:
            continue
        color = FINGER_COLORS[(joint - 1) // 4]
        cv2.line(image, _point(joints[parent]), _point(joints[joint]), color, 2, cv2.LINE_AA)
    for joint in range(len(joints)):
        color = (255, 255, 255) if joint == 0 else FINGER_COLORS[(joint - 1) // 4]
        cv2.circle(image, _point(joints[joint]), 3, color, -1, cv2.LINE_AA)
    return image


def contact_sheet(generator, count, columns=4, start=0):
    """
    Render ``count`` samples and tile them with their ground truth.

    :return: (rows * S, columns * S, 3) uint8 RGB.
    """
    tiles = [draw_ground_truth(generator.sample(start + i)) for i in range(count)]
    size = tiles[0].shape[0]
    rows = (count + columns - 1) // columns
    sheet = np.zeros((rows * size, columns * size, 3), np.uint8)
    for i, tile in enumerate(tiles):
        row, column = divmod(i, columns)
        sheet[row * size:(row + 1) * size, column * size:(column + 1) * size] = tile
    return sheet


def write_png(path, image):
    """
    Write an RGB image as a small PNG (256-colour palette when Pillow is installed).

    :param path: output file.
    :param image: (H, W, 3) uint8 RGB.
    """
    try:
        from PIL import Image
    except ImportError:
        if not cv2.imwrite(path, image[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise OSError('could not write %s' % path) from None
        return
    Image.fromarray(image).quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser(description='Synthetic samples with their ground truth.')
    parser.add_argument('--out', default='docs/contact_sheet.png')
    parser.add_argument('-n', '--num', type=int, default=16)
    parser.add_argument('--columns', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--start', type=int, default=0)
    parser.add_argument('--crop-size', type=int, default=160,
                        help='tile size in pixels (the crop size rendered)')
    parser.add_argument('--left-hand-prob', type=float, default=0.25)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    cfg = SyntheticConfig(seed=args.seed, crop_size_px=args.crop_size,
                          left_hand_prob=args.left_hand_prob)
    sheet = contact_sheet(SyntheticHandObjectGenerator(cfg), args.num, args.columns,
                          args.start)
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    write_png(args.out, sheet)
    print('wrote %s (%d samples, %.0f KB)' % (args.out, args.num,
                                              os.path.getsize(args.out) / 1000.0))
    return 0


if __name__ == '__main__':
    sys.exit(main())
