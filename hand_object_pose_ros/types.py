"""
Dataclasses passed between the parts of the package.

Frames: ``camera`` is the camera optical frame (x right, y down, z forward); ``crop`` pixels are
those of the square network input. Units are SI (metres, radians) unless a suffix says otherwise.
"""

from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from hand_object_pose_ros.crop import AXIS_ANGLE_MIRROR
from hand_object_pose_ros.crop import MIRROR
from hand_object_pose_ros.crop import mirror_crop


@dataclass
class ManoOutput:
    """
    Output of :class:`hand_object_pose_ros.mano.ManoLayer`.

    :param vertices: (B, 778, 3), metres, in the frame of ``transl`` (camera frame when the
        global orientation and translation are given in it).
    :param joints: (B, 21, 3), metres, same frame, order of ``constants.HAND_JOINT_NAMES``.
    """

    vertices: torch.Tensor
    joints: torch.Tensor


@dataclass
class HandObjectSample:
    """
    One training / evaluation sample, identical for the synthetic set, DexYCB and ObMan.

    All arrays are numpy; ``to_tensors`` gives the dict that torch's default collate batches.

    :param image: (S, S, 3) uint8 RGB, the network crop.
    :param crop_K: (3, 3) float32, intrinsics of the crop (maps camera points to crop pixels).
    :param camera_K: (3, 3) float32, intrinsics of the full camera image.
    :param bbox_xyxy_px: (4,) float32, hand box in full-image pixels (x0, y0, x1, y1).
    :param mano_pose: (48,) float32, axis-angle, global orientation (camera frame) then 15 joints,
        full pose (the mean hand already added: ``flat_hand_mean=True`` convention).
    :param mano_betas: (10,) float32, MANO shape.
    :param joints_cam: (21, 3) float32, metres, camera frame.
    :param vertices_cam: (778, 3) float32, metres, camera frame.
    :param joints_2d_crop_px: (21, 2) float32, projected joints in crop pixels.
    :param object_id: catalogue id of the held object (DexYCB's YCB class id for YCB objects).
    :param object_rotation: (3, 3) float32, camera_from_object rotation.
    :param object_translation: (3,) float32, metres, object-frame origin in the camera frame.
    :param object_vertices_cam: (N, 3) float32, metres, camera frame (varies in N; not batched).
    :param is_right_hand: True for a right hand.
    :param hand_mask: (S, S) bool crop mask of the hand, or None.
    :param object_mask: (S, S) bool crop mask of the object, or None.
    :param depth: (S, S) float32 crop depth in metres (0 = none), or None.
    :param mirrored: True when the crop and the camera-frame fields are the mirror image of the
        scene (a left hand shown as a right one; see :meth:`in_right_hand_frame`).
    """

    image: np.ndarray
    crop_K: np.ndarray
    camera_K: np.ndarray
    bbox_xyxy_px: np.ndarray
    mano_pose: np.ndarray
    mano_betas: np.ndarray
    joints_cam: np.ndarray
    vertices_cam: np.ndarray
    joints_2d_crop_px: np.ndarray
    object_id: int
    object_rotation: np.ndarray
    object_translation: np.ndarray
    object_vertices_cam: Optional[np.ndarray] = None
    is_right_hand: bool = True
    hand_mask: Optional[np.ndarray] = None
    object_mask: Optional[np.ndarray] = None
    depth: Optional[np.ndarray] = None
    mirrored: bool = False

    # Fields left out of batches: they vary in size or may be missing.
    UNBATCHED_FIELDS = ('object_vertices_cam', 'hand_mask', 'object_mask', 'depth')

    def in_right_hand_frame(self) -> 'HandObjectSample':
        """
        Return the sample as the network sees it: a left hand mirrored into a right one.

        The network has one (right-hand) MANO layer; the Predictor and evaluation run a left
        hand on the flipped crop and mirror the outputs back, so training must see left hands
        the same way. For a left hand the crop, masks and depth are flipped, every camera-frame
        field is mirrored (x -> -x, :data:`hand_object_pose_ros.crop.MIRROR`), the 2D joints
        follow the flip, the MANO pose becomes the right-hand layer's (axis-angle
        ``(x, -y, -z)`` per joint; the shape is unchanged) and the object pose becomes
        ``(MIRROR R MIRROR, MIRROR t)``, the pose of the mirrored object. ``camera_K`` and
        ``bbox_xyxy_px`` still describe the unmirrored full image.

        :return: a new sample with ``mirrored=True``, or ``self`` for a right hand or a sample
            that is already mirrored.
        """
        if self.is_right_hand or self.mirrored:
            return self
        image, crop_K = mirror_crop(self.image, self.crop_K)
        size_px = image.shape[1]

        def flipped(crop_map):
            return None if crop_map is None else mirror_crop(crop_map, self.crop_K)[0]

        def mirrored_points(points):
            return None if points is None else (
                np.asarray(points) * np.diag(MIRROR)).astype(np.float32)

        joints_2d = np.array(self.joints_2d_crop_px, np.float32, copy=True)
        joints_2d[:, 0] = size_px - 1 - joints_2d[:, 0]
        pose = (np.asarray(self.mano_pose).reshape(-1, 3) * AXIS_ANGLE_MIRROR).reshape(-1)
        return replace(
            self, image=image, crop_K=crop_K.astype(np.float32),
            mano_pose=pose.astype(np.float32),
            joints_cam=mirrored_points(self.joints_cam),
            vertices_cam=mirrored_points(self.vertices_cam),
            joints_2d_crop_px=joints_2d,
            object_rotation=(MIRROR @ self.object_rotation @ MIRROR).astype(np.float32),
            object_translation=mirrored_points(self.object_translation),
            object_vertices_cam=mirrored_points(self.object_vertices_cam),
            hand_mask=flipped(self.hand_mask), object_mask=flipped(self.object_mask),
            depth=flipped(self.depth), mirrored=True)

    def to_tensors(self) -> dict:
        """
        Return the batchable fields as tensors; the image becomes (3, S, S) float32 in 0..1.

        Also adds the training targets relative to the wrist: ``object_translation_rel``
        (3,) metres and ``joints_rel`` (21, 3) / ``vertices_rel`` (778, 3) metres, camera frame.
        """
        out = {}
        for field in fields(self):
            if field.name in self.UNBATCHED_FIELDS:
                continue
            value = getattr(self, field.name)
            if field.name == 'image':
                out['image'] = torch.from_numpy(
                    np.ascontiguousarray(value.transpose(2, 0, 1))).float() / 255.0
            elif isinstance(value, np.ndarray):
                out[field.name] = torch.from_numpy(np.ascontiguousarray(value)).float()
            else:
                out[field.name] = torch.tensor(value)
        wrist = out['joints_cam'][0]
        out['joints_rel'] = out['joints_cam'] - wrist
        out['vertices_rel'] = out['vertices_cam'] - wrist
        out['object_translation_rel'] = out['object_translation'] - wrist
        return out


@dataclass
class NetworkPrediction:
    """
    Output of ``model.predict`` for a batch of B crops. Camera orientation, wrist origin.

    :param mano_pose: (B, 48) axis-angle (global orientation then 15 joints).
    :param mano_betas: (B, 10).
    :param vertices: (B, 778, 3) metres, relative to the wrist joint, camera orientation.
    :param joints: (B, 21, 3) metres, relative to the wrist joint.
    :param joints_2d_crop_px: (B, 21, 2) crop pixels.
    :param object_rotation: (B, 3, 3) camera_from_object rotation, orthonormal, det +1.
    :param object_translation: (B, 3) metres, object origin relative to the wrist joint.
    :param object_index: (B,) int64 class index (0..num_objects-1, the position of the object's
        catalogue id in the config's ``object_ids``) used to condition the pose decoder.
    :param object_probs: (B, num_objects) classifier probabilities (always computed; the
        classifier chose ``object_index`` when no index was given).
    """

    mano_pose: torch.Tensor
    mano_betas: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor
    joints_2d_crop_px: torch.Tensor
    object_rotation: torch.Tensor
    object_translation: torch.Tensor
    object_index: torch.Tensor
    object_probs: Optional[torch.Tensor] = None


@dataclass
class Prediction:
    """
    One hand and its object, in the full camera frame (numpy, metres).

    :param hand_vertices: (778, 3) float32, camera frame.
    :param hand_joints: (21, 3) float32, camera frame.
    :param joints_2d_px: (21, 2) float32, full-image pixels.
    :param mano_pose: (48,) float32 axis-angle.
    :param mano_betas: (10,) float32.
    :param object_rotation: (3, 3) float32, camera_from_object.
    :param object_translation: (3,) float32 metres, camera frame.
    :param object_id: catalogue id of the object.
    :param object_score: classifier probability of ``object_id`` (1.0 when it was given).
    :param is_right_hand: side of the hand.
    :param wrist_depth_source: 'depth' when the wrist depth came from the depth image,
        'hand_size' when from the hand's metric size against its pixel size.
    """

    hand_vertices: np.ndarray
    hand_joints: np.ndarray
    joints_2d_px: np.ndarray
    mano_pose: np.ndarray
    mano_betas: np.ndarray
    object_rotation: np.ndarray
    object_translation: np.ndarray
    object_id: int
    object_score: float
    is_right_hand: bool = True
    wrist_depth_source: str = 'hand_size'
