"""
Training-time augmentation of a crop (paper: scale, colour jitter, brightness, contrast).

Scale changes the crop itself: the crop is resampled about its centre by ``s`` with
:func:`hand_object_pose_ros.crop.warp_image` (the inference crop's resampler), and the crop's
affine is folded into ``crop_K`` so that ``joints_2d_crop_px == project(joints_cam, crop_K)``
still holds; masks and depth are resampled with nearest neighbours. 3D targets do not change
(a scaled crop is the same camera with a different zoom). Colour jitter (brightness, contrast,
saturation, hue) touches only the image. Deterministic for a given ``numpy.random.Generator``.
"""

from dataclasses import dataclass
from dataclasses import replace

import cv2
import numpy as np

from hand_object_pose_ros.crop import transform_points_2d
from hand_object_pose_ros.crop import warp_image


@dataclass
class CropAugmentation:
    """
    Random scale and colour jitter of a :class:`HandObjectSample` crop.

    :param scale_range: zoom factor range (>1 zooms in, the hand looks bigger).
    :param brightness: max relative brightness change (0.3: x0.7 .. x1.3).
    :param contrast: max relative contrast change.
    :param saturation: max relative saturation change.
    :param hue_deg: max hue shift, degrees.
    :param prob: probability of applying each of scale and colour jitter.
    """

    scale_range: tuple = (0.85, 1.2)
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue_deg: float = 8.0
    prob: float = 0.8

    def __call__(self, sample, rng):
        """
        Augment one sample.

        :param sample: :class:`HandObjectSample` (not modified).
        :param rng: ``numpy.random.Generator``.
        :return: a new :class:`HandObjectSample`.
        """
        if rng.random() < self.prob:
            sample = scale_crop(sample, rng.uniform(*self.scale_range))
        if rng.random() < self.prob:
            sample = replace(sample, image=self.jitter_colors(sample.image, rng))
        return sample

    def jitter_colors(self, image, rng):
        """
        Brightness, contrast, saturation and hue jitter in random order.

        :param image: (S, S, 3) uint8 RGB.
        :param rng: ``numpy.random.Generator``.
        :return: (S, S, 3) uint8 RGB.
        """
        out = image.astype(np.float32)
        for step in rng.permutation(4):
            if step == 0:
                out = out * rng.uniform(1 - self.brightness, 1 + self.brightness)
            elif step == 1:
                mean = out.mean()
                out = (out - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
            elif step == 2:
                gray = out @ np.array([0.299, 0.587, 0.114], np.float32)
                factor = rng.uniform(1 - self.saturation, 1 + self.saturation)
                out = (out - gray[..., None]) * factor + gray[..., None]
            elif self.hue_deg > 0:
                hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
                # OpenCV's 8-bit hue is in 2-degree steps (0..179).
                shift = int(round(rng.uniform(-self.hue_deg, self.hue_deg) / 2.0))
                hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def scale_crop(sample, scale):
    """
    Zoom the crop about its centre and keep the geometry consistent.

    :param sample: :class:`HandObjectSample`.
    :param scale: zoom factor (>1 enlarges the content).
    :return: new sample with image, masks, depth, ``crop_K`` and ``joints_2d_crop_px``
        updated.
    """
    size = sample.image.shape[0]
    centre = (size - 1) / 2.0
    affine = np.array([[scale, 0.0, (1.0 - scale) * centre],
                       [0.0, scale, (1.0 - scale) * centre],
                       [0.0, 0.0, 1.0]])

    def nearest(array):
        if array is None:
            return None
        warped = warp_image(array.astype(np.uint8) if array.dtype == bool else array,
                            affine, size, cv2.INTER_NEAREST)
        return warped.astype(bool) if array.dtype == bool else warped

    return replace(
        sample,
        image=warp_image(sample.image, affine, size, cv2.INTER_LINEAR),
        crop_K=(affine @ sample.crop_K.astype(np.float64)).astype(np.float32),
        joints_2d_crop_px=transform_points_2d(affine, sample.joints_2d_crop_px).astype(
            np.float32),
        hand_mask=nearest(sample.hand_mask),
        object_mask=nearest(sample.object_mask),
        depth=nearest(sample.depth),
    )
