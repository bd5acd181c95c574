"""
Synthetic hand-object grasps: the package's embedded data set.

A MANO hand (the stand-in model, or the real one from a user path) holds one of the catalogue's
YCB objects; a random pinhole camera 0.3-0.8 m away sees it over a photo or procedural
background, with random skin tone, lighting, occluders, blur, noise and JPEG artefacts. Every
sample comes with full ground truth (:class:`hand_object_pose_ros.types.HandObjectSample`) and is
cropped by :func:`hand_object_pose_ros.crop.crop_hand`, the crop used at inference.

Grasp recipe (vectorised, about a millisecond of geometry): pose the hand (mean pose + noise,
random shape); put the object against the palm along the palm normal; then flex each finger
through a ladder of closure levels in one batched MANO pass and stop each finger where its
vertices reach the object's surface (signed distance from dense surface samples with normals).

Sample ``i`` of seed ``s`` is always the same (its random generator is seeded by ``(s, i)``);
:func:`heldout_config` gives a disjoint seed for a held-out split.

Command line::

    python -m hand_object_pose_ros.data.synthetic benchmark [--num 200 --workers 2]
    python -m hand_object_pose_ros.data.synthetic write --out DIR --num N --seed S --workers 2
"""

import argparse
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
import functools
import logging
import os
import sys
import time

import cv2
import numpy as np
import scipy.spatial
import torch

from hand_object_pose_ros import constants
from hand_object_pose_ros import geometry
from hand_object_pose_ros.crop import crop_hand
from hand_object_pose_ros.crop import warp_image
from hand_object_pose_ros.data import render
from hand_object_pose_ros.objects import load_object_catalogue
from hand_object_pose_ros.types import HandObjectSample

LOGGER = logging.getLogger(__name__)

# Held-out splits use seed + this offset (and so other random streams).
HELDOUT_SEED_OFFSET = 1_000_003

# Labels of the rendered label image.
HAND_LABEL = 1
OBJECT_LABEL = 2

# Fingers in output joint order: (output joints of the three finger joints, kinematic joints).
# Kinematic joints: 1-3 index, 4-6 middle, 7-9 pinky, 10-12 ring, 13-15 thumb.
FINGERS = (
    ('thumb', (1, 2, 3), (13, 14, 15)),
    ('index', (5, 6, 7), (1, 2, 3)),
    ('middle', (9, 10, 11), (4, 5, 6)),
    ('ring', (13, 14, 15), (10, 11, 12)),
    ('pinky', (17, 18, 19), (7, 8, 9)),
)
# Largest flexion (rad) of the three joints of a finger at closure level 1.
FINGER_MAX_FLEX_RAD = np.array([1.45, 1.7, 1.2], np.float32)
THUMB_MAX_FLEX_RAD = np.array([0.7, 0.8, 1.0], np.float32)
NUM_CLOSURE_LEVELS = 9
# A finger stops when its closest vertex is this close to the object surface (m).
CONTACT_MARGIN_M = 0.002

# Skin tones (sRGB 0..1), light to dark; jittered per sample.
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.92, 0.72, 0.60], [0.85, 0.64, 0.50], [0.78, 0.57, 0.44],
    [0.68, 0.47, 0.34], [0.55, 0.37, 0.26], [0.42, 0.28, 0.20], [0.30, 0.20, 0.15],
], np.float32)

_SKIMAGE_BACKGROUNDS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'hubble_deep_field',
                        'immunohistochemistry', 'colorwheel', 'brick', 'grass', 'gravel',
                        'camera', 'moon', 'coins', 'text', 'clock', 'cell', 'page', 'logo')


@dataclass
class SyntheticConfig:
    """
    Parameters of the synthetic generator.

    :param crop_size_px: side of the network crop, pixels.
    :param bbox_scale: enlargement of the squared hand box before cropping (as inference).
    :param image_width_px: full camera image width.
    :param image_height_px: full camera image height.
    :param focal_px_range: focal length range (fx = fy), pixels.
    :param principal_jitter_px: principal point offset from the image centre, pixels (max).
    :param distance_range_m: distance camera -> grasp centre, metres.
    :param object_ids: catalogue ids to use; empty means all.
    :param left_hand_prob: probability of a left hand (mirrored MANO layer).
    :param seed: base seed; sample ``i`` uses the generator seeded by ``(seed, i)``.
    :param bbox_jitter: relative jitter of the hand box (centre and size) used to crop.
    :param pose_noise_rad: std of the noise added to the mean hand pose, per angle.
    :param betas_std: std of the MANO shape parameters.
    :param occluder_prob: probability of one occluder over the hand.
    :param blur_prob: probability of a Gaussian blur of the image.
    :param noise_prob: probability of additive Gaussian pixel noise.
    :param jpeg_prob: probability of a JPEG round trip.
    :param renderer: 'auto' (GL, else CPU), 'gl' or 'cpu'.
    :param mano_model_dir: folder with the real MANO_RIGHT/LEFT files; empty: the stand-in.
    """

    crop_size_px: int = constants.DEFAULT_CROP_SIZE_PX
    bbox_scale: float = constants.DEFAULT_BBOX_SCALE
    image_width_px: int = 640
    image_height_px: int = 480
    focal_px_range: tuple = (560.0, 660.0)
    principal_jitter_px: float = 10.0
    distance_range_m: tuple = (0.3, 0.8)
    object_ids: tuple = ()
    left_hand_prob: float = 0.0
    seed: int = 0
    bbox_jitter: float = 0.05
    pose_noise_rad: float = 0.12
    betas_std: float = 1.0
    occluder_prob: float = 0.25
    blur_prob: float = 0.3
    noise_prob: float = 0.5
    jpeg_prob: float = 0.5
    renderer: str = 'auto'
    mano_model_dir: str = ''

    def clean(self):
        """Return a copy without image degradations or occluders (for tests of pixel truth)."""
        return replace(self, occluder_prob=0.0, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0,
                       bbox_jitter=0.0)


def heldout_config(cfg):
    """Return ``cfg`` with the held-out seed: its samples never coincide with ``cfg``'s."""
    return replace(cfg, seed=cfg.seed + HELDOUT_SEED_OFFSET)


@dataclass
class SyntheticFrame:
    """
    One full camera frame and its ground truth.

    :param rgb: (H, W, 3) uint8 RGB.
    :param depth_m: (H, W) float32, camera-frame z in metres (hand, object, occluders and a
        background plane; never 0).
    :param K: (3, 3) float32 intrinsics.
    :param bbox_xyxy_px: (4,) float32 hand box (with the configured jitter) in pixels.
    :param hand_mask: (H, W) bool visible hand pixels.
    :param object_mask: (H, W) bool visible object pixels.
    :param sample: the cropped :class:`HandObjectSample`.
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    K: np.ndarray
    bbox_xyxy_px: np.ndarray
    hand_mask: np.ndarray
    object_mask: np.ndarray
    sample: HandObjectSample


# ----------------------------------------------------------------------------------------------
# MANO layers and per-layer grasp data.

@functools.lru_cache(maxsize=None)
def _default_layer(side, model_dir):
    """Return a flat_hand_mean=True MANO layer (stand-in or real), cached per process."""
    from hand_object_pose_ros import mano

    if model_dir:
        path = model_dir
        if os.path.isdir(model_dir):
            path = os.path.join(model_dir, 'MANO_%s.pkl' % side.upper())
        return mano.ManoLayer.from_file(path, side=side, use_pca=False, flat_hand_mean=True)
    return mano.ManoLayer.standin(side=side, use_pca=False, flat_hand_mean=True)


def _hands_mean(layer):
    """Return the layer's mean articulation (45,) float32 (zeros when it has none)."""
    for name in ('hands_mean', 'mean_hand_pose', 'hand_mean'):
        value = getattr(layer, name, None)
        if value is not None:
            return np.asarray(torch.as_tensor(value).detach().cpu(), np.float32).reshape(45)
    assets = getattr(layer, 'assets', None)
    if assets is not None and getattr(assets, 'hands_mean', None) is not None:
        return np.asarray(assets.hands_mean, np.float32).reshape(45)
    return np.zeros(45, np.float32)


def _forward(layer, global_orient, hand_pose, betas):
    """Batched MANO pass without translation; returns numpy (vertices, joints), metres."""
    with torch.no_grad():
        out = layer(torch.as_tensor(global_orient, dtype=torch.float32),
                    torch.as_tensor(hand_pose, dtype=torch.float32),
                    torch.as_tensor(betas, dtype=torch.float32),
                    torch.zeros(len(global_orient), 3))
    return out.vertices.numpy().astype(np.float64), out.joints.numpy().astype(np.float64)


def palm_frame(joints, is_right):
    """
    Palm centre and unit axes of a posed hand (hand model frame).

    :param joints: (21, 3) output joints.
    :param is_right: side; the left hand is the mirror image, so its normal flips.
    :return: (centre (3,), normal (3,) toward where the palm faces, finger direction (3,),
        lateral (3,) pinky -> index).
    """
    wrist, index1, middle1, ring1, pinky1 = joints[[0, 5, 9, 13, 17]]
    centre = (wrist + index1 + middle1 + ring1 + pinky1) / 5.0
    finger_dir = middle1 - wrist
    finger_dir /= np.linalg.norm(finger_dir)
    lateral = index1 - pinky1
    lateral -= finger_dir * np.dot(lateral, finger_dir)
    lateral /= np.linalg.norm(lateral)
    normal = np.cross(lateral, finger_dir)
    if not is_right:
        normal = -normal
    return centre, normal, finger_dir, lateral


class _HandGraspModel:
    """Per-layer data for grasping: mean pose, faces, finger vertex sets."""

    def __init__(self, layer, is_right):
        self.layer = layer
        self.is_right = is_right
        self.faces = np.asarray(torch.as_tensor(layer.faces), np.int64)
        self.hands_mean = _hands_mean(layer)
        # Which vertices each finger carries: flex one finger at a time and see what moves.
        zeros = np.zeros((1, 3), np.float32)
        base_pose = self.hands_mean[None]
        vertices, joints = _forward(layer, zeros, base_pose, np.zeros((1, 10)))
        _, normal, _, _ = palm_frame(joints[0], is_right)
        probes = np.repeat(base_pose, len(FINGERS), axis=0)
        for finger_index in range(len(FINGERS)):
            probes[finger_index] = self.flexed_pose(base_pose[0], joints[0], normal,
                                                    np.eye(5)[finger_index])
        moved, _ = _forward(layer, np.zeros((len(FINGERS), 3)), probes,
                            np.zeros((len(FINGERS), 10)))
        displacement = np.linalg.norm(moved - vertices, axis=-1)  # (5, 778)
        owner = displacement.argmax(0)
        self.finger_vertices = [np.nonzero((owner == f) & (displacement[f] > 0.008))[0]
                                for f in range(len(FINGERS))]
        self.still_vertices = np.nonzero(displacement.max(0) < 0.002)[0]
        # Contact is tested on a subset of each finger's vertices (spacing ~5 mm), all fingers
        # in one query.
        subsets = [v[np.linspace(0, len(v) - 1, min(len(v), 28)).astype(int)] if len(v) else v
                   for v in self.finger_vertices]
        self.contact_vertices = np.concatenate(subsets).astype(np.int64)
        self.contact_starts = np.cumsum([0] + [len(v) for v in subsets])[:-1]
        self.contact_counts = np.array([len(v) for v in subsets])

    def flexed_pose(self, pose, joints, normal, levels):
        """
        Flex each finger toward the palm normal.

        :param pose: (45,) articulation (flat_hand_mean=True), the open hand.
        :param joints: (21, 3) joints of that pose (hand model frame).
        :param normal: (3,) palm normal.
        :param levels: (L, 5) or (5,) closure level of each finger, 0 (as is) .. 1 (closed).
        :return: (L, 45) or (45,) articulation.
        """
        levels = np.asarray(levels, np.float64)
        single = levels.ndim == 1
        levels = np.atleast_2d(levels)
        local = geometry.axis_angle_to_matrix(
            torch.as_tensor(pose, dtype=torch.float64).reshape(15, 3)).numpy()
        # Accumulated rotation of each kinematic joint (global orientation identity).
        accumulated = [np.eye(3)]
        for joint in range(1, 16):
            parent = constants.MANO_KINEMATIC_PARENTS[joint]
            accumulated.append(accumulated[parent] @ local[joint - 1])
        # Local flexion axis of every finger joint: R_j' = R_j exp(delta l) with
        # l = R_acc(j)^T a turns the bone about the world axis a = bone x normal.
        kin_joints, axes, max_angles, finger_of = [], [], [], []
        for finger_index, (name, out_joints, finger_kin) in enumerate(FINGERS):
            max_flex = THUMB_MAX_FLEX_RAD if name == 'thumb' else FINGER_MAX_FLEX_RAD
            for k, (out_joint, kin_joint) in enumerate(zip(out_joints, finger_kin)):
                bone = joints[out_joint + 1] - joints[out_joint]
                axis_world = np.cross(bone, normal)
                axis_world /= max(np.linalg.norm(axis_world), 1e-9)
                kin_joints.append(kin_joint)
                axes.append(accumulated[kin_joint].T @ axis_world)
                max_angles.append(max_flex[k])
                finger_of.append(finger_index)
        kin_joints = np.array(kin_joints) - 1
        angles = levels[:, finger_of] * np.array(max_angles)[None]  # (L, 15)
        delta = geometry.axis_angle_to_matrix(
            torch.as_tensor(angles[..., None] * np.array(axes)[None])).numpy()  # (L, 15, 3, 3)
        new_local = np.repeat(local[None], len(levels), axis=0)
        new_local[:, kin_joints] = local[kin_joints][None] @ delta
        out = geometry.matrix_to_axis_angle(torch.as_tensor(new_local)).numpy()
        out = out.reshape(len(levels), 45).astype(np.float32)
        return out[0] if single else out


@functools.lru_cache(maxsize=None)
def _grasp_model(side, model_dir):
    return _HandGraspModel(_default_layer(side, model_dir), side == 'right')


# ----------------------------------------------------------------------------------------------
# Object surfaces: signed distance from dense samples with normals.

def _face_normals(vertices, faces):
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                       vertices[faces[:, 2]] - vertices[faces[:, 0]])
    return normals


def vertex_normals(vertices, faces):
    """
    Area-weighted vertex normals.

    :param vertices: (N, 3) float.
    :param faces: (F, 3) int.
    :return: (N, 3) float32 unit normals (winding order decides the side).
    """
    face_normals = _face_normals(vertices, faces)
    normals = np.zeros_like(vertices, dtype=np.float64)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(norm, 1e-12)).astype(np.float32)


class _ObjectSurface:
    """Signed distance to an object mesh, from surface samples and outward normals."""

    def __init__(self, model, num_samples=4000):
        vertices = np.asarray(model.vertices, np.float64)
        faces = np.asarray(model.faces, np.int64)
        normals = _face_normals(vertices, faces)
        areas = np.linalg.norm(normals, axis=1)
        rng = np.random.default_rng(model.id)
        chosen = rng.choice(len(faces), num_samples, p=areas / areas.sum())
        r1 = np.sqrt(rng.random(num_samples))
        r2 = rng.random(num_samples)
        a, b, c = (vertices[faces[chosen, i]] for i in range(3))
        points = (1 - r1)[:, None] * a + (r1 * (1 - r2))[:, None] * b + (r1 * r2)[:, None] * c
        unit = normals[chosen] / np.maximum(areas[chosen, None], 1e-12)
        # Outward: most samples' normals point away from the centre for these objects.
        orientation = 1.0 if np.mean(np.sum((points - points.mean(0)) * unit, axis=1)) >= 0 \
            else -1.0
        self.points = np.concatenate([points, vertices])
        self.normals = orientation * np.concatenate([unit, vertex_normals(vertices, faces)])
        self.tree = scipy.spatial.cKDTree(self.points)
        self.bbox_min = vertices.min(0)
        self.bbox_max = vertices.max(0)

    def signed_distance(self, query):
        """
        Approximate signed distance (negative inside), metres.

        :param query: (..., 3) points in the object frame.
        :return: (...) float64.
        """
        flat = query.reshape(-1, 3)
        distance, index = self.tree.query(flat, k=4)
        offset = flat[:, None] - self.points[index]  # (P, 4, 3)
        along = np.sum(offset * self.normals[index], axis=2)
        # The side is voted by the 4 nearest samples (a few faces of the scans are flipped).
        cosine = along / np.maximum(distance, 1e-9)
        # Points outside the bounding box are outside whatever the normals say.
        outside = (cosine.sum(1) >= 0) | np.any(
            (flat < self.bbox_min) | (flat > self.bbox_max), axis=1)
        magnitude = np.where(distance[:, 0] < 0.01, np.abs(along[:, 0]), distance[:, 0])
        signed = np.where(outside, magnitude, -magnitude)
        return signed.reshape(query.shape[:-1])


@functools.lru_cache(maxsize=None)
def _object_surface(object_id):
    return _ObjectSurface(load_object_catalogue().get(object_id))


# ----------------------------------------------------------------------------------------------
# Backgrounds, textures, occluders.

@functools.lru_cache(maxsize=None)
def _photo_pool():
    """Photos shipped by installed packages (scikit-image data, matplotlib samples), RGB uint8."""
    photos = []
    try:
        import skimage.data

        for name in _SKIMAGE_BACKGROUNDS:
            try:
                photos.append(getattr(skimage.data, name)())
            except Exception:  # noqa: B902 - a missing optional image is skipped.
                continue
    except ImportError:
        pass
    try:
        import matplotlib

        folder = os.path.join(matplotlib.get_data_path(), 'sample_data')
        for name in ('grace_hopper.jpg', 'Minduka_Present_Blue_Pack.png', 'logo2.png'):
            image = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
            if image is not None:
                photos.append(image[..., ::-1])
    except ImportError:
        pass
    out = []
    for photo in photos:
        photo = np.asarray(photo)
        if photo.dtype == bool:
            photo = photo.astype(np.uint8) * 255
        if photo.ndim == 2:
            photo = np.repeat(photo[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(photo[..., :3].astype(np.uint8)))
    if not out:
        LOGGER.info('no photo backgrounds installed (scikit-image, matplotlib): '
                    'procedural textures only')
    return tuple(out)


def _random_color(rng, low=0.0, high=1.0):
    return rng.uniform(low, high, 3).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _pixel_grid(height, width):
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return ys, xs


def _procedural_texture(rng, height, width):
    """
    Make a random procedural texture: value noise, checker, stripes or gradient.

    Made at half resolution and enlarged (cheap); (H, W, 3) uint8.
    """
    small_h, small_w = (height + 1) // 2, (width + 1) // 2
    kind = rng.integers(4)
    ys, xs = _pixel_grid(small_h, small_w)
    color_a, color_b = _random_color(rng), _random_color(rng)
    if kind == 0:  # multi-octave value noise (Perlin-like)
        field_ = np.zeros((small_h, small_w), np.float32)
        amplitude = 1.0
        cells = int(rng.integers(2, 6))
        for _ in range(4):
            grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
            field_ += amplitude * cv2.resize(grid, (small_w, small_h),
                                             interpolation=cv2.INTER_CUBIC)
            amplitude *= 0.5
            cells *= 2
        field_ = (field_ - field_.min()) / max(float(np.ptp(field_)), 1e-6)
    else:
        angle = rng.uniform(0, np.pi)
        u = xs * np.cos(angle) + ys * np.sin(angle)
        v = -xs * np.sin(angle) + ys * np.cos(angle)
        period = rng.uniform(4, 40)
        if kind == 1:  # checker
            field_ = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
        elif kind == 2:  # stripes, soft or hard
            field_ = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
            if rng.random() < 0.5:
                field_ = (field_ > 0.5).astype(np.float32)
        else:  # gradient
            field_ = (u - u.min()) / max(float(np.ptp(u)), 1e-6)
    texture = (color_a * 255) * (1 - field_[..., None]) + (color_b * 255) * field_[..., None]
    return cv2.resize(texture.astype(np.uint8), (width, height),
                      interpolation=cv2.INTER_LINEAR)


def _random_background(rng, height, width):
    """Make a background: a warped photo and/or a procedural texture, (H, W, 3) uint8."""
    photos = _photo_pool()
    if photos and rng.random() < 0.65:
        photo = photos[rng.integers(len(photos))]
        ph, pw = photo.shape[:2]
        scale = max(width / pw, height / ph) * rng.uniform(1.0, 2.5)
        tx = rng.uniform(width - pw * scale, 0)
        ty = rng.uniform(height - ph * scale, 0)
        affine = np.array([[scale, 0, tx], [0, scale, ty]], np.float32)
        if rng.random() < 0.5:
            affine = np.array([[-scale, 0, width - 1 - tx], [0, scale, ty]], np.float32)
        image = cv2.warpAffine(photo, affine, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        image = cv2.transform(image, np.diag(_random_color(rng, 0.6, 1.2)))
        if rng.random() < 0.3:
            image = cv2.addWeighted(image, 0.7, _procedural_texture(rng, height, width), 0.3, 0)
        return image
    return _procedural_texture(rng, height, width)


@functools.lru_cache(maxsize=None)
def _noise_bank(height, width):
    """Return fixed Gaussian noise as (positive, negative) uint8 parts for sigmas 2, 4, 6."""
    rng = np.random.default_rng(20240)
    noise = rng.standard_normal((height + 32, width + 32, 3), dtype=np.float32)
    bank = []
    for sigma in (2.0, 4.0, 6.0):
        scaled = np.rint(noise * sigma)
        bank.append((np.clip(scaled, 0, 255).astype(np.uint8),
                     np.clip(-scaled, 0, 255).astype(np.uint8)))
    return bank


def _random_occluder_mask(rng, bbox, height, width):
    """Draw an ellipse or polygon (bool mask) covering part of the hand box."""
    x0, y0, x1, y1 = bbox
    size = max(x1 - x0, y1 - y0)
    centre = (rng.uniform(x0, x1), rng.uniform(y0, y1))
    mask = np.zeros((height, width), np.uint8)
    if rng.random() < 0.5:
        axes = (int(size * rng.uniform(0.1, 0.3)), int(size * rng.uniform(0.05, 0.2)))
        cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axes, rng.uniform(0, 180), 0, 360,
                    1, -1)
    else:
        count = int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = size * rng.uniform(0.08, 0.3, count)
        points = np.stack([centre[0] + radii * np.cos(angles),
                           centre[1] + radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


# ----------------------------------------------------------------------------------------------
# Colours and lighting (baked per vertex, shared by both renderers).

@functools.lru_cache(maxsize=None)
def _object_palette(object_id):
    """Return fixed per-object colours and bands (in place of the missing YCB textures)."""
    rng = np.random.default_rng(1000 + object_id)
    colors = rng.uniform(0.1, 0.95, (3, 3)).astype(np.float32)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    period = rng.uniform(0.02, 0.06)
    return colors, axis, period


def _object_albedo(model):
    colors, axis, period = _object_palette(model.id)
    coordinate = model.vertices @ axis
    band = np.floor(coordinate / period).astype(np.int64) % len(colors)
    albedo = colors[band]
    # The object's +x side is lighter: a cue for its orientation.
    albedo = albedo * (0.85 + 0.3 * (model.vertices[:, :1] > 0))
    return np.clip(albedo, 0, 1)


def _shade(vertices, normals, albedo, light):
    """
    Lambert + ambient + a little specular, per vertex; normals turned toward the camera.

    :param vertices: (N, 3) camera frame.
    :param normals: (N, 3) unit normals, camera frame.
    :param albedo: (N, 3) or (3,) 0..1.
    :param light: dict with 'direction' (3,) toward the light, 'ambient', 'diffuse',
        'color' (3,), 'specular'.
    :return: (N, 3) float32 colours 0..1.
    """
    view = -vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    facing = np.sign(np.sum(normals * view, axis=1, keepdims=True))
    normals = normals * np.where(facing == 0, 1, facing)
    lambert = np.clip(normals @ light['direction'], 0, None)[:, None]
    half = light['direction'][None] + view
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    specular = np.clip(np.sum(normals * half, axis=1), 0, None)[:, None] ** 20
    color = (albedo * (light['ambient'] + light['diffuse'] * lambert) * light['color']
             + light['specular'] * specular)
    return np.clip(color, 0, 1).astype(np.float32)


def _look_rotation(view_dir, up):
    """Rotation camera_from_frame whose z axis (in frame coordinates) is ``view_dir``."""
    z = view_dir / np.linalg.norm(view_dir)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(np.array([1.0, 0.0, 0.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def _random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return geometry.quaternion_to_matrix(torch.as_tensor(q)).numpy()


def _axis_rotation(axis, angle):
    return geometry.axis_angle_to_matrix(torch.as_tensor(np.asarray(axis) * angle)).numpy()


def project(points, K):
    """Project (N, 3) camera-frame points with K using geometry.project_points; (N, 2) px."""
    return geometry.project_points(torch.as_tensor(points, dtype=torch.float64),
                                   torch.as_tensor(K, dtype=torch.float64)).numpy()


# ----------------------------------------------------------------------------------------------
# The generator.

@dataclass
class _Grasp:
    """A grasp in the hand model frame (global orientation identity, no translation)."""

    side: str
    object_id: int
    pose: np.ndarray          # (45,) articulation, flat_hand_mean=True
    betas: np.ndarray         # (10,)
    vertices: np.ndarray      # (778, 3) hand frame
    joints: np.ndarray        # (21, 3) hand frame
    object_rotation: np.ndarray   # (3, 3) hand_from_object
    object_translation: np.ndarray  # (3,) hand frame


class SyntheticHandObjectGenerator:
    """Deterministic generator of synthetic hand-object frames and samples."""

    def __init__(self, cfg=None, mano_layer=None):
        """
        Create a generator.

        :param cfg: :class:`SyntheticConfig` (defaults when None).
        :param mano_layer: a right-hand ``ManoLayer`` built with ``flat_hand_mean=True``
            (e.g. the real model); None: the stand-in (or ``cfg.mano_model_dir``). Left hands
            always come from ``cfg.mano_model_dir`` / the stand-in's left layer.
        """
        self.cfg = cfg if cfg is not None else SyntheticConfig()
        catalogue = load_object_catalogue()
        self.object_ids = tuple(self.cfg.object_ids) or catalogue.ids
        for object_id in self.object_ids:
            catalogue.get(object_id)  # raises a clear KeyError for unknown ids
        self._custom_layer = mano_layer
        self._custom_model = None
        self._renderer = None

    # -- building blocks ----------------------------------------------------------------------

    def _hand_model(self, side):
        if side == 'right' and self._custom_layer is not None:
            if self._custom_model is None:
                self._custom_model = _HandGraspModel(self._custom_layer, True)
            return self._custom_model
        return _grasp_model(side, self.cfg.mano_model_dir)

    @property
    def renderer(self):
        """Get the renderer of this process (GL or CPU), created on first use."""
        if self._renderer is None or getattr(self, '_renderer_pid', None) != os.getpid():
            self._renderer = render.create_renderer(self.cfg.renderer)
            self._renderer_pid = os.getpid()
        return self._renderer

    def rng(self, index):
        """Return the random generator of sample ``index`` (seeded by ``(seed, index)``)."""
        return np.random.default_rng(np.random.SeedSequence([int(self.cfg.seed) & 0xFFFFFFFF,
                                                             int(index)]))

    def _sample_grasp(self, rng):
        cfg = self.cfg
        side = 'left' if rng.random() < cfg.left_hand_prob else 'right'
        hand = self._hand_model(side)
        catalogue = load_object_catalogue()
        object_id = int(self.object_ids[rng.integers(len(self.object_ids))])
        model = catalogue.get(object_id)
        surface = _object_surface(object_id)
        betas = (rng.normal(size=10) * cfg.betas_std).clip(-3, 3).astype(np.float32)
        open_pose = hand.hands_mean + rng.normal(size=45).astype(np.float32) * cfg.pose_noise_rad
        vertices, joints = _forward(hand.layer, np.zeros((1, 3)), open_pose[None], betas[None])
        vertices, joints = vertices[0], joints[0]
        centre, normal, finger_dir, lateral = palm_frame(joints, side == 'right')

        # Object orientation: mostly a power grasp (long axis across the palm), else random.
        if rng.random() < 0.7:
            long_axis = np.eye(3)[int(np.argmax(model.bbox_max - model.bbox_min))]
            # to_z maps the object's long axis onto z, spin turns about it, palm_axes maps z
            # onto the palm's lateral axis: hand_from_object.
            to_z = _look_rotation(long_axis, np.roll(long_axis, 1))
            spin = _axis_rotation([0, 0, 1], rng.uniform(0, 2 * np.pi))
            palm_axes = np.stack([finger_dir, normal, lateral], axis=1)
            rotation = _axis_rotation(rng.normal(size=3), rng.normal() * 0.25) @ (
                palm_axes @ spin @ to_z)
        else:
            rotation = _random_rotation(rng)
        # Put the object on the palm (the vertices that finger flexion does not move).
        palm = vertices[hand.still_vertices] if len(hand.still_vertices) else vertices
        palm_height = np.max((palm - centre) @ normal)
        anchor = (centre + finger_dir * rng.uniform(0.0, 0.03)
                  + lateral * rng.uniform(-0.01, 0.01))
        # Lowest object point (along the normal) over the palm's footprint (4 cm radius).
        rotated = np.asarray(model.vertices, np.float64) @ rotation.T
        height_along = rotated @ normal
        sideways = np.linalg.norm(rotated - np.outer(height_along, normal), axis=1)
        over_palm = sideways < 0.04
        lowest = np.min(height_along[over_palm] if over_palm.any() else height_along)
        translation = anchor + normal * (palm_height - lowest)
        # Slide the object onto the palm: moving it by the smallest palm-object distance
        # along -normal cannot make it penetrate; a few steps close the remaining gap.
        palm_points = palm[::2]
        gap = rng.uniform(0.0, 0.003)
        start = translation
        for _ in range(3):
            distance = surface.signed_distance((palm_points - translation) @ rotation).min()
            if distance < gap + 0.001:
                break
            translation = translation - normal * (distance - gap)
        if np.dot(translation - centre, normal) < 0.5 * np.dot(start - centre, normal):
            translation = start  # slid past the palm's edge: keep the footprint placement
        elif distance < -0.004:  # placed inside the palm: back off along the normal
            translation = translation + normal * (gap - distance)
        # Close the fingers: one batched pass over the closure ladder (negative levels open
        # the hand beyond its sampled pose).
        levels = np.linspace(-0.3, 1.0, NUM_CLOSURE_LEVELS)
        ladder = hand.flexed_pose(open_pose, joints, normal,
                                  np.repeat(levels[:, None], 5, axis=1))
        ladder_vertices, _ = _forward(hand.layer, np.zeros((len(levels), 3)), ladder,
                                      np.repeat(betas[None], len(levels), axis=0))
        chosen = np.empty(5)
        local = (ladder_vertices[:, hand.contact_vertices] - translation) @ rotation
        all_distances = surface.signed_distance(local)  # (levels, contact vertices)
        for finger_index in range(len(FINGERS)):
            if hand.contact_counts[finger_index] == 0:
                chosen[finger_index] = rng.uniform(0.3, 0.8)
                continue
            start = hand.contact_starts[finger_index]
            distance = all_distances[:, start:start + hand.contact_counts[finger_index]].min(1)
            touching = np.nonzero(distance < CONTACT_MARGIN_M)[0]
            if len(touching) == 0:
                chosen[finger_index] = rng.uniform(0.3, 0.8)
            elif touching[0] == 0:
                chosen[finger_index] = levels[0]
            else:
                k = touching[0]
                before, after = distance[k - 1], distance[k]
                fraction = (before - CONTACT_MARGIN_M) / max(before - after, 1e-9)
                chosen[finger_index] = levels[k - 1] + np.clip(fraction, 0, 1) * (
                    levels[k] - levels[k - 1])
        pose = hand.flexed_pose(open_pose, joints, normal, chosen)
        final_vertices, final_joints = _forward(hand.layer, np.zeros((1, 3)), pose[None],
                                                betas[None])
        return _Grasp(side, object_id, pose.astype(np.float32), betas, final_vertices[0],
                      final_joints[0], rotation, translation)

    def _sample_camera(self, rng, grasp):
        """Return (K, camera_from_hand rotation, translation)."""
        cfg = self.cfg
        width, height = cfg.image_width_px, cfg.image_height_px
        focal = rng.uniform(*cfg.focal_px_range)
        K = np.array([[focal, 0, (width - 1) / 2 + rng.uniform(-1, 1) * cfg.principal_jitter_px],
                      [0, focal, (height - 1) / 2
                       + rng.uniform(-1, 1) * cfg.principal_jitter_px],
                      [0, 0, 1]])
        target = 0.6 * grasp.vertices.mean(0) + 0.4 * grasp.object_translation
        for attempt in range(6):
            view = rng.normal(size=3)
            view /= np.linalg.norm(view)
            rotation = _look_rotation(view, rng.normal(size=3))
            distance = rng.uniform(*cfg.distance_range_m)
            shrink = 0.5 ** attempt
            pixel = np.array([width * (0.5 + shrink * rng.uniform(-0.22, 0.22)),
                              height * (0.5 + shrink * rng.uniform(-0.2, 0.2))])
            ray = np.linalg.solve(K, np.array([pixel[0], pixel[1], 1.0]))
            translation = ray * distance - rotation @ target
            points = grasp.vertices @ rotation.T + translation
            if points[:, 2].min() < 0.1:
                continue
            uv = project(points, K)
            if (uv.min() >= 1 and uv[:, 0].max() <= width - 2
                    and uv[:, 1].max() <= height - 2):
                break
        return K, rotation, translation

    def _light(self, rng):
        direction = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), -rng.uniform(0.3, 1.5)])
        return {
            'direction': direction / np.linalg.norm(direction),
            'ambient': rng.uniform(0.25, 0.6),
            'diffuse': rng.uniform(0.4, 0.9),
            'color': 1.0 + rng.uniform(-0.12, 0.12, 3),
            'specular': rng.uniform(0.0, 0.15),
        }

    # -- public API ---------------------------------------------------------------------------

    def render_frame(self, index):
        """
        Render sample ``index``: the full camera frame and the cropped sample.

        :param index: sample index (>= 0); the same index always gives the same frame.
        :return: :class:`SyntheticFrame`.
        """
        cfg = self.cfg
        rng = self.rng(index)
        grasp = self._sample_grasp(rng)
        K, cam_rotation, cam_translation = self._sample_camera(rng, grasp)
        width, height = cfg.image_width_px, cfg.image_height_px
        hand = self._hand_model(grasp.side)
        catalogue = load_object_catalogue()
        model = catalogue.get(grasp.object_id)

        hand_vertices = grasp.vertices @ cam_rotation.T + cam_translation
        joints_cam = grasp.joints @ cam_rotation.T + cam_translation
        object_rotation = cam_rotation @ grasp.object_rotation
        object_translation = cam_rotation @ grasp.object_translation + cam_translation
        object_vertices = np.asarray(model.vertices, np.float64) @ object_rotation.T \
            + object_translation

        light = self._light(rng)
        skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.1, 3)
        skin_albedo = skin[None] * rng.uniform(0.93, 1.0, (len(hand_vertices), 1))
        hand_colors = _shade(hand_vertices, vertex_normals(hand_vertices, hand.faces),
                             skin_albedo, light)
        object_albedo = _object_albedo(model) * rng.uniform(0.8, 1.15)
        object_colors = _shade(object_vertices, vertex_normals(object_vertices, model.faces),
                               object_albedo, light)
        rendered = self.renderer.render([
            render.Mesh(hand_vertices.astype(np.float32), hand.faces, hand_colors, HAND_LABEL),
            render.Mesh(object_vertices.astype(np.float32), model.faces, object_colors,
                        OBJECT_LABEL),
        ], K, width, height)

        # Compose over the background; depth from a tilted plane behind the grasp.
        background = _random_background(rng, height, width)
        foreground = rendered.label > 0
        image = background
        image[foreground] = rendered.color[foreground]
        depth = self._background_depth(rng, K, float(hand_vertices[:, 2].max()), width, height)
        depth[foreground] = rendered.depth_m[foreground]
        hand_mask = rendered.label == HAND_LABEL
        object_mask = rendered.label == OBJECT_LABEL

        uv = project(hand_vertices, K)
        tight_box = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
        if cfg.occluder_prob > 0 and rng.random() < cfg.occluder_prob:
            occluder = _random_occluder_mask(rng, tight_box, height, width)
            texture = _random_background(rng, height, width) if rng.random() < 0.6 else \
                np.broadcast_to(_random_color(rng, 0, 255).astype(np.uint8), (height, width, 3))
            image = np.where(occluder[..., None], texture, image)
            depth = np.where(occluder, float(hand_vertices[:, 2].min())
                             - rng.uniform(0.02, 0.1), depth).astype(np.float32)
            hand_mask &= ~occluder
            object_mask &= ~occluder
        rgb = self._degrade(rng, image)

        box = tight_box.copy()
        if cfg.bbox_jitter > 0:
            size = box[2:] - box[:2]
            centre = (box[:2] + box[2:]) / 2 + rng.uniform(-1, 1, 2) * cfg.bbox_jitter * size
            size = size * (1 + rng.uniform(-1, 1, 2) * cfg.bbox_jitter)
            box = np.concatenate([centre - size / 2, centre + size / 2])
        box = np.clip(box, [0, 0, 0, 0], [width - 1, height - 1, width - 1, height - 1])
        # Crop with the float32 box that is stored, so the crop is reproducible from it.
        box = box.astype(np.float32).astype(np.float64)
        crop = crop_hand(rgb, box, K, cfg.crop_size_px, cfg.bbox_scale)
        size = cfg.crop_size_px
        crop_hand_mask = warp_image(hand_mask.astype(np.uint8), crop.crop_from_image, size,
                                    cv2.INTER_NEAREST).astype(bool)
        crop_object_mask = warp_image(object_mask.astype(np.uint8), crop.crop_from_image, size,
                                      cv2.INTER_NEAREST).astype(bool)
        crop_depth = warp_image(depth, crop.crop_from_image, size, cv2.INTER_NEAREST)

        global_orient = geometry.matrix_to_axis_angle(torch.as_tensor(cam_rotation)).numpy()
        sample = HandObjectSample(
            image=crop.image,
            crop_K=crop.crop_K.astype(np.float32),
            camera_K=K.astype(np.float32),
            bbox_xyxy_px=box.astype(np.float32),
            mano_pose=np.concatenate([global_orient, grasp.pose]).astype(np.float32),
            mano_betas=grasp.betas.astype(np.float32),
            joints_cam=joints_cam.astype(np.float32),
            vertices_cam=hand_vertices.astype(np.float32),
            joints_2d_crop_px=project(joints_cam, crop.crop_K).astype(np.float32),
            object_id=int(grasp.object_id),
            object_rotation=object_rotation.astype(np.float32),
            object_translation=object_translation.astype(np.float32),
            object_vertices_cam=object_vertices.astype(np.float32),
            is_right_hand=grasp.side == 'right',
            hand_mask=crop_hand_mask,
            object_mask=crop_object_mask,
            depth=crop_depth.astype(np.float32),
        )
        return SyntheticFrame(rgb=rgb, depth_m=depth, K=K.astype(np.float32),
                              bbox_xyxy_px=box.astype(np.float32), hand_mask=hand_mask,
                              object_mask=object_mask, sample=sample)

    def sample(self, index):
        """Return the :class:`HandObjectSample` of ``index`` (see :meth:`render_frame`)."""
        return self.render_frame(index).sample

    # -- image helpers ------------------------------------------------------------------------

    @staticmethod
    def _background_depth(rng, K, hand_far_z, width, height):
        """Depth (H, W) of a random plane 0.15-1.5 m behind the hand, tilted up to ~35 deg."""
        distance = hand_far_z + rng.uniform(0.15, 1.5)
        normal = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
        normal /= np.linalg.norm(normal)
        # Plane n . X = n . (0, 0, distance); ray X = z r with r = K^-1 (u, v, 1).
        offset = normal[2] * distance
        us = ((np.arange(width) - K[0, 2]) / K[0, 0]).astype(np.float32)
        vs = ((np.arange(height) - K[1, 2]) / K[1, 1]).astype(np.float32)
        denominator = np.float32(normal[0]) * us[None, :] + (
            np.float32(normal[1]) * vs[:, None] + np.float32(normal[2]))
        # Rays nearly parallel to the plane are capped at 10 m.
        return np.float32(offset) / np.maximum(denominator, np.float32(offset / 10.0))

    def _degrade(self, rng, image):
        """Blur, noise and JPEG on the full (H, W, 3) uint8 image; returns uint8 RGB."""
        cfg = self.cfg
        if rng.random() < cfg.blur_prob:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.6))
        if rng.random() < cfg.noise_prob:
            height, width = image.shape[:2]
            positive, negative = _noise_bank(height, width)[rng.integers(3)]
            dy, dx = rng.integers(0, 32, 2)
            image = cv2.subtract(cv2.add(image, positive[dy:dy + height, dx:dx + width]),
                                 negative[dy:dy + height, dx:dx + width])
        if rng.random() < cfg.jpeg_prob:
            quality = int(rng.integers(40, 96))
            ok, encoded = cv2.imencode('.jpg', image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY,
                                                                  quality])
            if ok:
                image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]
        return np.ascontiguousarray(image)


# ----------------------------------------------------------------------------------------------
# torch Dataset.

def sample_to_item(sample, index=None):
    """
    Return the tensor dict of one sample: ``sample.to_tensors()``, masks and crop depth.

    Items are in the network's frame: a left hand is mirrored into a right one first
    (:meth:`HandObjectSample.in_right_hand_frame`), as the Predictor runs it.

    :param sample: :class:`HandObjectSample`.
    :param index: sample index, added as ``'index'`` when given.
    :return: dict; extra keys ``hand_mask`` / ``object_mask`` (S, S) bool and ``depth``
        (S, S) float32 metres (zeros when the sample has none).
    """
    sample = sample.in_right_hand_frame()
    item = sample.to_tensors()
    size = sample.image.shape[0]
    for name in ('hand_mask', 'object_mask'):
        value = getattr(sample, name)
        item[name] = torch.from_numpy(np.ascontiguousarray(
            value if value is not None else np.zeros((size, size), bool)))
    depth = sample.depth if sample.depth is not None else np.zeros((size, size), np.float32)
    item['depth'] = torch.from_numpy(np.ascontiguousarray(depth, np.float32))
    if index is not None:
        item['index'] = torch.tensor(int(index))
    return item


class SyntheticDataset(torch.utils.data.Dataset):
    """Streams synthetic samples on the fly (rendered in the calling process / worker)."""

    def __init__(self, cfg=None, num_samples=10000, augment=None, mano_layer=None):
        """
        Create the data set.

        :param cfg: :class:`SyntheticConfig`.
        :param num_samples: length; item ``i`` is sample ``i`` of ``cfg.seed``.
        :param augment: optional callable ``(sample, rng) -> sample`` (training only), e.g.
            :class:`hand_object_pose_ros.data.augment.CropAugmentation`; its generator is
            seeded by ``(seed, index, epoch)`` through :attr:`epoch`.
        :param mano_layer: optional right-hand layer (``flat_hand_mean=True``).
        """
        self.cfg = cfg if cfg is not None else SyntheticConfig()
        self.num_samples = int(num_samples)
        self.augment = augment
        self.epoch = 0
        self.generator = SyntheticHandObjectGenerator(self.cfg, mano_layer)

    def __len__(self):
        """Return the number of samples."""
        return self.num_samples

    def __getitem__(self, index):
        """Return the tensor dict of sample ``index`` (see :func:`sample_to_item`)."""
        if not 0 <= index < self.num_samples:
            raise IndexError('sample %d out of range 0..%d' % (index, self.num_samples - 1))
        sample = self.generator.sample(index)
        if self.augment is not None:
            rng = np.random.default_rng([int(self.cfg.seed) & 0xFFFFFFFF, int(index),
                                         int(self.epoch), 7])
            sample = self.augment(sample, rng)
        return sample_to_item(sample, index)


# ----------------------------------------------------------------------------------------------
# Command line: benchmark and shard writing.

def worker_init_fn(worker_id=None):
    """
    Set up a rendering worker process (also usable as a DataLoader ``worker_init_fn``).

    One thread each for torch, OpenCV and llvmpipe: their pools fight over the cores otherwise.

    :param worker_id: ignored (DataLoader passes it).
    """
    os.environ.setdefault('LP_NUM_THREADS', '1')
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _render_range(args):
    cfg_dict, start, stop = args
    worker_init_fn()
    generator = SyntheticHandObjectGenerator(SyntheticConfig(**cfg_dict))
    cpu_start = time.process_time()
    for index in range(start, stop):
        generator.sample(index)
    return stop - start, generator.renderer.backend_name, time.process_time() - cpu_start


def benchmark(cfg, num, workers):
    """
    Measure samples per second with ``workers`` processes (warm-up excluded).

    :return: (samples per second (wall clock), CPU seconds per sample (summed over workers),
        renderer backend name).
    """
    import multiprocessing

    cfg_dict = asdict(cfg)
    chunk = max(1, num // max(workers, 1))
    context = multiprocessing.get_context('fork')
    with context.Pool(workers, initializer=worker_init_fn) as pool:
        # Warm-up: contexts, caches, numba compilation in each worker.
        pool.map(_render_range, [(cfg_dict, 10**7 + i, 10**7 + i + 2) for i in range(workers)])
        start = time.perf_counter()
        results = pool.map(_render_range, [(cfg_dict, i * chunk, (i + 1) * chunk)
                                           for i in range(workers)])
        elapsed = time.perf_counter() - start
    count = sum(r[0] for r in results)
    cpu = sum(r[2] for r in results)
    return count / elapsed, cpu / count, results[0][1]


def main(argv=None):
    """Command line: ``benchmark`` or ``write`` (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Synthetic hand-object data.')
    sub = parser.add_subparsers(dest='command', required=True)
    bench = sub.add_parser('benchmark', help='measure samples/s')
    bench.add_argument('--num', type=int, default=200)
    bench.add_argument('--workers', type=int, default=2)
    bench.add_argument('--renderer', default='auto', choices=('auto', 'gl', 'cpu'))
    bench.add_argument('--crop-size', type=int, default=constants.DEFAULT_CROP_SIZE_PX)
    write = sub.add_parser('write', help='write shards')
    write.add_argument('--out', required=True)
    write.add_argument('--num', type=int, required=True)
    write.add_argument('--seed', type=int, default=0)
    write.add_argument('--workers', type=int, default=2)
    write.add_argument('--shard-size', type=int, default=500)
    write.add_argument('--crop-size', type=int, default=constants.DEFAULT_CROP_SIZE_PX)
    write.add_argument('--renderer', default='auto', choices=('auto', 'gl', 'cpu'))
    write.add_argument('--heldout', action='store_true',
                       help='use the held-out seed (seed + %d)' % HELDOUT_SEED_OFFSET)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    if args.command == 'benchmark':
        cfg = SyntheticConfig(renderer=args.renderer, crop_size_px=args.crop_size)
        rate, cpu_per_sample, backend = benchmark(cfg, args.num, args.workers)
        print('synthetic: %.1f samples/s (%d workers, renderer %s, %dx%d frames, %d px crops); '
              '%.1f ms CPU per sample, i.e. %.0f samples/s on %d idle cores'
              % (rate, args.workers, backend, cfg.image_width_px, cfg.image_height_px,
                 cfg.crop_size_px, cpu_per_sample * 1000, args.workers / cpu_per_sample,
                 args.workers))
        return 0
    from hand_object_pose_ros.data.shards import write_shards

    cfg = SyntheticConfig(seed=args.seed, crop_size_px=args.crop_size, renderer=args.renderer)
    if args.heldout:
        cfg = heldout_config(cfg)
    write_shards(cfg, args.out, args.num, workers=args.workers, shard_size=args.shard_size)
    return 0


if __name__ == '__main__':
    sys.exit(main())
