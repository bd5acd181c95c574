"""
What the real data sets' loaders share: errors, file readers, MANO helpers, a torch Dataset.

:class:`DatasetError` names a missing or unreadable file; :class:`SampleUnavailable` a frame
without usable ground truth. :class:`SkippingDataset` wraps a loader (DexYCB, ObMan) and skips
both kinds of sample, counted.
"""

import functools
import logging
import os

import cv2
import numpy as np
import torch

from hand_object_pose_ros import geometry

LOGGER = logging.getLogger(__name__)


class DatasetError(RuntimeError):
    """A data set file or folder is missing or unreadable; the message names the path."""


class SampleUnavailable(DatasetError):
    """A frame that has no usable ground truth (no hand, or no pose of the held object)."""


def read_color_image(path):
    """
    Read a colour image file as RGB.

    :param path: JPEG / PNG file.
    :return: (H, W, 3) uint8 RGB.
    :raises DatasetError: missing or undecodable file.
    """
    if not os.path.isfile(path):
        raise DatasetError('missing image %s' % path)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError('cannot decode image %s (corrupt or not an image)' % path)
    return np.ascontiguousarray(image[..., ::-1])


@functools.lru_cache(maxsize=64)
def read_obj_mesh(path):
    """
    Read the vertices and faces of a Wavefront OBJ file (polygons are fanned into triangles).

    :param path: ``.obj`` file.
    :return: tuple (vertices (V, 3) float32 in the file's units, faces (F, 3) int64); cached,
        do not modify.
    :raises DatasetError: missing file, or no vertices / faces.
    """
    if not os.path.isfile(path):
        raise DatasetError('missing mesh %s' % path)
    vertices = []
    faces = []
    try:
        with open(path, 'r', errors='replace') as stream:
            for line in stream:
                if line.startswith('v '):
                    vertices.append([float(value) for value in line.split()[1:4]])
                elif line.startswith('f '):
                    corners = [int(item.split('/')[0]) for item in line.split()[1:]]
                    corners = [c - 1 if c > 0 else len(vertices) + c for c in corners]
                    faces.extend([corners[0], corners[k], corners[k + 1]]
                                 for k in range(1, len(corners) - 1))
    except (OSError, ValueError, IndexError) as error:
        raise DatasetError('cannot parse mesh %s: %s' % (path, error)) from error
    vertices = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(vertices) == 0 or len(faces) == 0 or faces.max() >= len(vertices) or faces.min() < 0:
        raise DatasetError('mesh %s has no valid vertices / faces' % path)
    vertices.setflags(write=False)
    faces.setflags(write=False)
    return vertices, faces


def mano_layers(mano_model_path=None):
    """
    Right and left MANO layers taking the full axis-angle pose (``flat_hand_mean=True``).

    :param mano_model_path: folder with ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (or ``.npz``);
        None uses the package's stand-in hand (not MANO: vertices only approximate).
    :return: dict side -> :class:`hand_object_pose_ros.mano.ManoLayer`.
    """
    from hand_object_pose_ros.mano import ManoLayer

    layers = {}
    for side in ('right', 'left'):
        if mano_model_path:
            layers[side] = ManoLayer.from_file(mano_model_path, side=side, flat_hand_mean=True)
        else:
            layers[side] = ManoLayer.standin(side=side, flat_hand_mean=True)
    return layers


def mano_forward(layer, mano_pose, betas, transl=None):
    """
    One MANO pass in float64 numpy.

    :param layer: ``flat_hand_mean=True`` :class:`~hand_object_pose_ros.mano.ManoLayer`.
    :param mano_pose: (48,) full axis-angle pose.
    :param betas: (10,) shape.
    :param transl: (3,) metres or None.
    :return: tuple (vertices (778, 3), joints (21, 3)) float64, metres.
    """
    pose = torch.as_tensor(np.asarray(mano_pose, np.float32).reshape(1, 48))
    with torch.no_grad():
        out = layer(pose[:, :3], pose[:, 3:], torch.as_tensor(
            np.asarray(betas, np.float32).reshape(1, 10)),
            None if transl is None else torch.as_tensor(
                np.asarray(transl, np.float32).reshape(1, 3)))
    return out.vertices[0].double().numpy(), out.joints[0].double().numpy()


def project(points, K):
    """Project (N, 3) camera-frame points with (3, 3) K; (N, 2) float64 pixels."""
    return geometry.project_points(torch.as_tensor(np.asarray(points, np.float64)),
                                   torch.as_tensor(np.asarray(K, np.float64))).numpy()


def hand_box(points_px, width_px, height_px):
    """
    Tight box of projected hand points, clipped to the image.

    :param points_px: (N, 2) pixels.
    :return: (4,) float64 x0, y0, x1, y1.
    :raises SampleUnavailable: the hand lies outside the image.
    """
    points = np.asarray(points_px, np.float64)
    if not np.all(np.isfinite(points)):
        raise SampleUnavailable('hand projects to non-finite pixels')
    box = np.array([points[:, 0].min(), points[:, 1].min(),
                    points[:, 0].max(), points[:, 1].max()])
    clipped = np.clip(box, 0.0, [width_px - 1, height_px - 1, width_px - 1, height_px - 1])
    if clipped[2] - clipped[0] < 2 or clipped[3] - clipped[1] < 2:
        raise SampleUnavailable('hand box %s lies outside the %dx%d image'
                                % (box.round(1).tolist(), width_px, height_px))
    return clipped


class SkippingDataset(torch.utils.data.Dataset):
    """
    Torch Dataset over a loader with ``__len__`` and ``load(index)``; items as the synthetic set.

    A sample that raises :class:`DatasetError` is skipped: the next index is returned instead
    (wrapping around), and the skip is counted in ``num_skipped`` (corrupt files, with a
    warning) or ``num_unavailable`` (frames without ground truth, debug log). Counters live in
    each worker process.
    """

    def __init__(self, loader, skip_bad_samples=True, max_consecutive_skips=100):
        """
        Wrap a loader.

        :param loader: :class:`hand_object_pose_ros.data.dexycb.DexYCB` or
            :class:`hand_object_pose_ros.data.obman.ObMan`.
        :param skip_bad_samples: False re-raises every :class:`DatasetError`.
        :param max_consecutive_skips: give up (raise) after this many bad samples in a row.
        """
        self.loader = loader
        self.skip_bad_samples = bool(skip_bad_samples)
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.num_skipped = 0
        self.num_unavailable = 0

    def __len__(self):
        """Return the number of indexed samples."""
        return len(self.loader)

    def __getitem__(self, index):
        """Return the tensor dict of sample ``index`` (or of the next good one)."""
        from hand_object_pose_ros.data.synthetic import sample_to_item

        if not 0 <= index < len(self):
            raise IndexError('sample %d out of range 0..%d' % (index, len(self) - 1))
        for attempt in range(self.max_consecutive_skips + 1):
            current = (index + attempt) % len(self)
            try:
                return sample_to_item(self.loader.load(current), current)
            except SampleUnavailable as error:
                if not self.skip_bad_samples:
                    raise
                self.num_unavailable += 1
                LOGGER.debug('skipping sample %d: %s', current, error)
            except DatasetError as error:
                if not self.skip_bad_samples:
                    raise
                self.num_skipped += 1
                LOGGER.warning('skipping bad sample %d (%d skipped so far): %s', current,
                               self.num_skipped, error)
        raise DatasetError('%d consecutive bad samples from index %d; is the data set intact?'
                           % (self.max_consecutive_skips + 1, index))
