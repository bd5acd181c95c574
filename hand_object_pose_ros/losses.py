"""
Training losses of the paper (eq. 2-8), the biomechanical constraints, and the beta schedule.

Units (see :class:`hand_object_pose_ros.config.LossConfig`): joint distances in centimetres
(L_J3D in cm^2), angles in radians, the object translation in decimetres inside the 9-D L2,
images in 0..1. Every term is returned by name so training can log it::

    terms = compute_losses(output, batch, loss_cfg, beta_vae=beta_vae_schedule(epoch))
    terms['total'].backward()

The batch is the collated dict of ``HandObjectSample.to_tensors()``; the keys read here are
``image``, ``joints_rel``, ``mano_pose``, ``mano_betas``, ``joints_2d_crop_px``,
``object_rotation`` and ``object_translation_rel``.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from hand_object_pose_ros import geometry
from hand_object_pose_ros.config import LossConfig
from hand_object_pose_ros.constants import HAND_JOINT_PARENTS
from hand_object_pose_ros.constants import MIDDLE_MCP_JOINT_INDEX
from hand_object_pose_ros.constants import WRIST_JOINT_INDEX
from hand_object_pose_ros.crop import MIRROR as MIRROR_NUMPY
from hand_object_pose_ros.objects import load_object_catalogue

MIRROR = torch.as_tensor(MIRROR_NUMPY)

# --------------------------------------------------------------------------------------------
# beta_vae schedule (paper section 4)
# --------------------------------------------------------------------------------------------


def beta_vae_schedule(epoch):
    """
    Weight of the KL terms at an epoch (0-based): the paper's schedule.

    0.5 for epochs 0-9, 0.1 for 10-19, 0.01 for 20-39, then divided by 10 every 20 epochs
    (1e-3 for 40-59, ...) down to a floor of 1e-4 (from epoch 60 on).

    :param epoch: epoch index, 0-based (int or float).
    :return: float.
    """
    if epoch < 10:
        return 0.5
    if epoch < 20:
        return 0.1
    if epoch < 40:
        return 0.01
    return max(1e-4, 0.01 * 0.1 ** (1 + int((epoch - 40) // 20)))


# --------------------------------------------------------------------------------------------
# Biomechanical constraints (Spurr et al. 2020, "Weakly supervised 3D hand pose estimation
# via biomechanical constraints"), on 21 joints in constants.HAND_JOINT_NAMES order.
# --------------------------------------------------------------------------------------------

# Finger chains: joint indices root (MCP / thumb CMC), then the next three joints.
_FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
_THUMB = 0
# Bone length / (wrist -> middle MCP length), [low, high] per bone (child joint index). Wide
# anatomical ranges (adult hands, MANO-like proportions, fingertips on the skin) rather than
# statistics of one data set; the net's hand comes from MANO, so this mostly guards shape.
_BONE_LENGTH_LIMITS = {
    1: (0.15, 0.60),   # wrist -> thumb CMC
    2: (0.25, 0.65), 3: (0.20, 0.55), 4: (0.15, 0.50),   # thumb
    5: (0.80, 1.15), 6: (0.30, 0.65), 7: (0.15, 0.45), 8: (0.15, 0.40),   # index
    9: (1.00, 1.00), 10: (0.35, 0.70), 11: (0.18, 0.48), 12: (0.15, 0.40),  # middle
    13: (0.80, 1.10), 14: (0.30, 0.65), 15: (0.18, 0.48), 16: (0.15, 0.40),  # ring
    17: (0.70, 1.05), 18: (0.22, 0.55), 19: (0.12, 0.40), 20: (0.12, 0.38),  # pinky
}
# Angles (degrees) between consecutive root bones (wrist -> MCP / CMC): thumb-index, index-
# middle, middle-ring, ring-pinky.
_ROOT_BONE_ANGLE_LIMITS_DEG = ((5.0, 80.0), (0.0, 30.0), (0.0, 30.0), (0.0, 35.0))
# Palm planarity: angle (degrees) between the normals of the planes spanned by consecutive
# pairs of the four finger root bones (index-middle vs middle-ring, middle-ring vs ring-pinky).
_PALM_BEND_LIMIT_DEG = 40.0
# Joint angle limits (degrees) of each finger bone in the frame of its parent bone: flexion
# (towards the palm, positive) and abduction (sideways, symmetric). Index 0 = the bone leaving
# the root joint (MCP; thumb CMC->MCP), 1 = the middle bone, 2 = the last bone.
_FINGER_FLEXION_LIMITS_DEG = ((-35.0, 100.0), (-15.0, 120.0), (-15.0, 100.0))
_FINGER_ABDUCTION_LIMITS_DEG = (35.0, 20.0, 20.0)
_THUMB_FLEXION_LIMITS_DEG = ((-60.0, 100.0), (-40.0, 100.0), (-40.0, 110.0))
_THUMB_ABDUCTION_LIMITS_DEG = (70.0, 40.0, 40.0)
_EPS = 1e-8


def _normalize(vectors):
    """Return unit vectors along the last dimension (zero-safe)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def _angle_between(a, b):
    """Angle (rad) between vectors along the last dimension, stable near 0 and pi."""
    cross = torch.linalg.cross(a, b, dim=-1).norm(dim=-1)
    return torch.atan2(cross, (a * b).sum(-1))


def _interval_loss(values, low, high):
    """Squared distance of values outside [low, high] (0 inside)."""
    return F.relu(low - values) ** 2 + F.relu(values - high) ** 2


def bone_lengths(joints):
    """
    Length of the 20 bones (child joint 1..20 to its parent).

    :param joints: (B, 21, 3).
    :return: (B, 20), same unit as the joints.
    """
    parents = torch.as_tensor(HAND_JOINT_PARENTS[1:], device=joints.device)
    return (joints[:, 1:] - joints.index_select(1, parents)).norm(dim=-1)


def hand_joint_angles(joints):
    """
    Flexion and abduction of every finger bone relative to its parent bone.

    Each bone is measured in a frame of its parent bone: z along the parent bone, y along the
    knuckle line (pinky MCP -> index MCP, the approximate hinge axis of the finger joints) made
    orthogonal to z, and x = y x z, which points to the palm side of a right hand. Flexion is
    the angle of the bone towards x (curling, positive; hyper-extension negative), abduction
    the angle towards y. The first bone of a finger is measured against its root bone
    (wrist -> MCP, for the thumb wrist -> CMC).

    :param joints: (B, 21, 3) right-hand joints, any unit.
    :return: tuple (flexion (B, 5, 3) rad, abduction (B, 5, 3) rad), fingers thumb..pinky,
        bones from the root joint outwards.
    """
    knuckle_line = joints[:, _FINGERS[1][0]] - joints[:, _FINGERS[4][0]]
    flexions, abductions = [], []
    for finger in _FINGERS:
        chain = [joints[:, WRIST_JOINT_INDEX]] + [joints[:, index] for index in finger]
        finger_flexion, finger_abduction = [], []
        for level in range(1, 4):
            z = _normalize(chain[level] - chain[level - 1])
            bone = _normalize(chain[level + 1] - chain[level])
            y = _normalize(knuckle_line - (knuckle_line * z).sum(-1, keepdim=True) * z)
            x = torch.linalg.cross(y, z, dim=-1)
            along, towards_x, towards_y = ((bone * z).sum(-1), (bone * x).sum(-1),
                                           (bone * y).sum(-1))
            finger_flexion.append(torch.atan2(towards_x, along))
            finger_abduction.append(torch.atan2(towards_y, torch.sqrt(
                along ** 2 + towards_x ** 2).clamp_min(_EPS)))
        flexions.append(torch.stack(finger_flexion, -1))
        abductions.append(torch.stack(finger_abduction, -1))
    return torch.stack(flexions, 1), torch.stack(abductions, 1)


def _limits_tensor(rows, device, dtype):
    return torch.tensor(rows, device=device, dtype=dtype)


def bmc_loss_terms(joints):
    """
    Compute the biomechanical constraint terms of Spurr et al. 2020 on predicted joints.

    Each term is the mean squared distance outside its allowed interval (0 inside):
    bone lengths relative to the wrist -> middle-MCP bone (scale-free), angles between
    consecutive root bones, palm planarity (bend between consecutive root-bone planes), and the
    flexion / abduction limits of every finger joint (see :func:`hand_joint_angles`).

    :param joints: (B, 21, 3) right-hand joints (any unit; wrist-relative or not).
    :return: dict with ``bmc_bone_length`` (relative length^2), ``bmc_root_angle``,
        ``bmc_palm_bend`` and ``bmc_joint_angle`` (rad^2), scalar tensors.
    """
    device, dtype = joints.device, joints.dtype
    lengths = bone_lengths(joints)
    reference = lengths[:, MIDDLE_MCP_JOINT_INDEX - 1:MIDDLE_MCP_JOINT_INDEX].clamp_min(_EPS)
    limits = _limits_tensor([_BONE_LENGTH_LIMITS[child] for child in range(1, 21)],
                            device, dtype)
    bone_term = _interval_loss(lengths / reference, limits[:, 0], limits[:, 1]).mean()

    wrist = joints[:, WRIST_JOINT_INDEX]
    roots = torch.stack([joints[:, finger[0]] for finger in _FINGERS], 1) - wrist[:, None]
    root_angles = _angle_between(roots[:, :-1], roots[:, 1:])
    root_limits = torch.deg2rad(_limits_tensor(_ROOT_BONE_ANGLE_LIMITS_DEG, device, dtype))
    root_term = _interval_loss(root_angles, root_limits[:, 0], root_limits[:, 1]).mean()

    finger_roots = roots[:, 1:]
    normals = torch.linalg.cross(finger_roots[:, :-1], finger_roots[:, 1:], dim=-1)
    bends = _angle_between(normals[:, :-1], normals[:, 1:])
    palm_term = F.relu(bends - math.radians(_PALM_BEND_LIMIT_DEG)).pow(2).mean()

    flexion, abduction = hand_joint_angles(joints)
    flex_limits = torch.deg2rad(_limits_tensor(
        [_THUMB_FLEXION_LIMITS_DEG] + [_FINGER_FLEXION_LIMITS_DEG] * 4, device, dtype))
    abd_limits = torch.deg2rad(_limits_tensor(
        [_THUMB_ABDUCTION_LIMITS_DEG] + [_FINGER_ABDUCTION_LIMITS_DEG] * 4, device, dtype))
    angle_term = (_interval_loss(flexion, flex_limits[..., 0], flex_limits[..., 1])
                  + _interval_loss(abduction, -abd_limits, abd_limits)).mean()
    return {'bmc_bone_length': bone_term, 'bmc_root_angle': root_term,
            'bmc_palm_bend': palm_term, 'bmc_joint_angle': angle_term}


def bmc_loss(joints, cfg=None):
    """
    Weighted L_BMC = w_len bone_length + w_palm (root_angle + palm_bend) + w_angle joint_angle.

    :param joints: (B, 21, 3) right-hand joints.
    :param cfg: LossConfig for the part weights (default weights 1).
    :return: scalar tensor.
    """
    cfg = cfg or LossConfig()
    terms = bmc_loss_terms(joints)
    return (cfg.bmc_bone_length * terms['bmc_bone_length']
            + cfg.bmc_palm * (terms['bmc_root_angle'] + terms['bmc_palm_bend'])
            + cfg.bmc_joint_angle * terms['bmc_joint_angle'])


# --------------------------------------------------------------------------------------------
# Hand, object, VAE terms
# --------------------------------------------------------------------------------------------


def joints_3d_loss(pred_joints, true_joints, unit_scale=100.0):
    """
    L_J3D (eq. 2): mean over joints of the squared Euclidean joint distance.

    :param pred_joints: (B, 21, 3) metres, wrist-relative.
    :param true_joints: (B, 21, 3) metres, wrist-relative.
    :param unit_scale: metres -> loss unit (100: the loss is in cm^2).
    :return: scalar tensor.
    """
    return ((pred_joints - true_joints) * unit_scale).pow(2).sum(-1).mean()


def heatmap_targets(joints_2d_crop_px, height, width, stride_px, sigma_px):
    """
    Normalised Gaussian target distributions on the heatmap grid, and a visibility mask.

    :param joints_2d_crop_px: (B, J, 2) crop pixels (pixel centres at integers).
    :param height: heatmap rows h.
    :param width: heatmap columns w.
    :param stride_px: crop pixels per cell.
    :param sigma_px: Gaussian standard deviation in crop pixels.
    :return: tuple (targets (B, J, h, w) summing to 1 per joint, visible (B, J) bool: the joint
        lies inside the crop).
    """
    dtype, device = joints_2d_crop_px.dtype, joints_2d_crop_px.device
    cell = (joints_2d_crop_px + 0.5) / stride_px - 0.5
    sigma = sigma_px / stride_px
    xs = torch.arange(width, device=device, dtype=dtype)
    ys = torch.arange(height, device=device, dtype=dtype)
    gx = torch.exp(-0.5 * ((xs - cell[..., 0:1]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((ys - cell[..., 1:2]) / sigma) ** 2)
    targets = gy[..., :, None] * gx[..., None, :]
    targets = targets / targets.flatten(2).sum(-1).clamp_min(_EPS)[..., None, None]
    size_x, size_y = width * stride_px, height * stride_px
    u, v = joints_2d_crop_px[..., 0], joints_2d_crop_px[..., 1]
    visible = (u >= -0.5) & (u <= size_x - 0.5) & (v >= -0.5) & (v <= size_y - 0.5)
    return targets, visible


def heatmap_loss(heatmap_logits, joints_2d_crop_px, stride_px, sigma_px=8.0):
    """
    Compute the KL divergence from Gaussian targets to the spatial softmax of the heatmaps.

    Only joints inside the crop count; 0 at a perfect match, and the soft-argmax then lands on
    the joint.

    :param heatmap_logits: (B, J, h, w).
    :param joints_2d_crop_px: (B, J, 2) true joints, crop pixels.
    :param stride_px: crop pixels per cell.
    :param sigma_px: target standard deviation, crop pixels.
    :return: scalar tensor (nats per visible joint).
    """
    batch, joints, height, width = heatmap_logits.shape
    targets, visible = heatmap_targets(joints_2d_crop_px.to(heatmap_logits.dtype), height,
                                       width, stride_px, sigma_px)
    log_probs = torch.log_softmax(heatmap_logits.flatten(2), dim=-1)
    flat_targets = targets.flatten(2)
    kl = (flat_targets * (torch.log(flat_targets.clamp_min(1e-12)) - log_probs)).sum(-1)
    weight = visible.to(kl.dtype)
    return (kl * weight).sum() / weight.sum().clamp_min(1.0)


def kl_divergence(mu, logvar):
    """
    KL(N(mu, sigma^2) || N(0, I)), mean over latent dimensions and batch.

    Averaging over the latent dimensions (not summing) keeps beta_vae independent of the
    latent size and comparable to the per-element L2 terms.

    :param mu: (B, L).
    :param logvar: (B, L).
    :return: scalar tensor, nats per latent dimension.
    """
    logvar = logvar.clamp(-10.0, 10.0)
    return (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).mean()


def pose9d_loss(pred_pose9d, true_pose9d, translation_scale=10.0):
    """
    L2 of the 9-D pose (eq. 4, 5 reconstruction term): mean squared error over the 9 values.

    :param pred_pose9d: (B, 9), translation metres.
    :param true_pose9d: (B, 9).
    :param translation_scale: metres -> loss unit of the translation (10: decimetres).
    :return: scalar tensor.
    """
    scale = torch.ones(9, dtype=pred_pose9d.dtype, device=pred_pose9d.device)
    scale[:3] = translation_scale
    return ((pred_pose9d - true_pose9d) * scale).pow(2).mean()


def object_box_corners(object_ids):
    """
    Return the bounding-box corners of catalogue objects, in class-index order.

    :param object_ids: catalogue ids, e.g. a network's ``object_ids`` (class index = position).
    :return: (len(object_ids), 8, 3) float32 tensor, metres, object frame.
    """
    catalogue = load_object_catalogue()
    return torch.as_tensor(np.stack([catalogue.get(int(i)).corners() for i in object_ids]))


def object_corners_2d_crop_px(batch, object_corners):
    """
    Project each sample's object box corners into its crop (targets of the corner heatmaps).

    :param batch: collated sample dict: ``crop_K`` (B, 3, 3), ``object_rotation`` (B, 3, 3)
        camera_from_object, ``object_translation`` (B, 3) metres, camera frame, and
        ``mirrored`` (B,) bool (a mirrored sample shows the mirror image of the object, whose
        corners are the mirrored ones).
    :param object_corners: (B, 8, 3) box corners of each sample's object, metres, object frame.
    :return: (B, 8, 2) crop pixels.
    """
    rotation = batch['object_rotation']
    corners = object_corners.to(rotation.dtype)
    mirrored = batch['mirrored'].to(rotation.device).bool().reshape(-1, 1, 1)
    corners = torch.where(mirrored, corners @ MIRROR.to(corners), corners)
    points = corners @ rotation.transpose(-1, -2) + batch['object_translation'][:, None]
    return geometry.project_points(points, batch['crop_K'].to(rotation.dtype))


def pose_corner_loss(pred_pose9d, true_pose9d, object_corners, unit_scale=100.0):
    """
    Mean distance between the object's box corners posed by the predicted and the true pose.

    The predicted rotation is taken after Gram-Schmidt (:func:`geometry.pose9d_to_rt`), so the
    loss scores the rotation the network outputs, as the MCE metric does. Left hands are
    trained mirrored (both poses mirrored alike); the corners of the unmirrored box are used
    for them as well: the loss still vanishes exactly when the two poses agree.

    :param pred_pose9d: (B, 9) predicted pose, translation metres.
    :param true_pose9d: (B, 9) target pose.
    :param object_corners: (B, 8, 3) box corners of each sample's object, metres, object frame.
    :param unit_scale: metres -> loss unit (100: centimetres).
    :return: scalar tensor, mean corner distance in the loss unit.
    """
    pred_rotation, pred_translation = geometry.pose9d_to_rt(pred_pose9d)
    true_rotation, true_translation = geometry.pose9d_to_rt(true_pose9d)
    corners = object_corners.to(pred_pose9d.dtype)
    pred_corners = corners @ pred_rotation.transpose(-1, -2) + pred_translation[:, None]
    true_corners = corners @ true_rotation.transpose(-1, -2) + true_translation[:, None]
    # The epsilon keeps the square root's gradient finite at a perfect prediction.
    squared = (pred_corners - true_corners).pow(2).sum(-1)
    return (squared + 1e-12).sqrt().mean() * unit_scale


def image_loss(pred_image, true_image):
    """
    L2 image reconstruction: mean squared error per pixel and channel (0..1 values).

    :param pred_image: (B, 3, S, S).
    :param true_image: (B, 3, S, S).
    :return: scalar tensor.
    """
    return (pred_image - true_image).pow(2).mean()


def pose9d_target(batch):
    """
    Return the 9-D object pose target of a batch: t relative to the wrist, then R's columns.

    :param batch: collated ``HandObjectSample.to_tensors()`` dict (``object_rotation``
        (B, 3, 3) camera_from_object, ``object_translation_rel`` (B, 3) metres).
    :return: (B, 9).
    """
    return geometry.rt_to_pose9d(batch['object_rotation'], batch['object_translation_rel'])


def compute_losses(output, batch, cfg=None, beta_vae=0.5, object_corners=None):
    """
    Every loss term of eq. 8 (and the extras), by name; ``total`` is the one to back-propagate.

    Terms: ``joints_3d`` (cm^2), ``mano_pose``, ``mano_shape``, ``bmc`` (and its parts
    ``bmc_*``), ``heatmap``, ``hand`` (= 0.5 J3D + 5e-7 theta + 5e-5 beta + BMC + heatmap);
    ``branch1`` (pose CVAE: pose->pose and pose->image L2 + beta KL; its parts
    ``pose_from_pose``, ``image_from_pose``, ``kl_pose``), ``branch2`` (image VAE: image->image
    and image->pose L2 + beta KL; parts ``image_from_image``, ``pose_from_image``,
    ``kl_image``); with ``cfg.pose_corners`` > 0 also ``corners_from_image`` and
    ``corners_from_pose`` (cm, inside branch2 and branch1); ``classifier`` (cross-entropy)
    and ``classifier_accuracy`` (logged, not optimised); ``total`` = hand + lambda1 branch1
    + lambda2 branch2 + w_cls classifier.
    For the ``direct`` head, branch2 = pose_from_image only and branch1 is 0.

    :param output: :class:`hand_object_pose_ros.modeling.NetworkOutput` of the training pass.
    :param batch: collated sample dict (keys listed in the module docstring).
    :param cfg: LossConfig (default: the paper's weights).
    :param beta_vae: KL weight, usually :func:`beta_vae_schedule` of the epoch.
    :param object_corners: (num_objects, 8, 3) box corners per class index, metres, object
        frame (:func:`object_box_corners`); needed when ``cfg.pose_corners`` > 0.
    :return: dict name -> scalar tensor.
    """
    cfg = cfg or LossConfig()
    if (cfg.pose_corners > 0 or cfg.object_corner_heatmap > 0) and object_corners is None:
        raise ValueError('loss.pose_corners / loss.object_corner_heatmap need the object box '
                         'corners (compute_losses(..., object_corners=object_box_corners(ids)))')
    if cfg.object_corner_heatmap > 0 and output.object_corner_heatmaps is None:
        raise ValueError('loss.object_corner_heatmap = %g needs a network built with '
                         'model.object_corner_heatmaps: true' % cfg.object_corner_heatmap)
    device = output.joints_rel.device
    terms = {}
    terms['joints_3d'] = joints_3d_loss(output.joints_rel, batch['joints_rel'].to(device),
                                        cfg.joint_unit_scale)
    terms['mano_pose'] = (output.mano_pose - batch['mano_pose'].to(device)).pow(2).mean()
    terms['mano_shape'] = (output.mano_betas - batch['mano_betas'].to(device)).pow(2).mean()
    bmc_parts = bmc_loss_terms(output.joints_rel)
    terms.update(bmc_parts)
    terms['bmc'] = (cfg.bmc_bone_length * bmc_parts['bmc_bone_length']
                    + cfg.bmc_palm * (bmc_parts['bmc_root_angle'] + bmc_parts['bmc_palm_bend'])
                    + cfg.bmc_joint_angle * bmc_parts['bmc_joint_angle'])
    terms['heatmap'] = heatmap_loss(output.heatmaps, batch['joints_2d_crop_px'].to(device),
                                    output.heatmap_stride_px, cfg.heatmap_sigma_px)
    terms['hand'] = (cfg.joints_3d * terms['joints_3d'] + cfg.mano_pose * terms['mano_pose']
                     + cfg.mano_shape * terms['mano_shape'] + cfg.bmc * terms['bmc']
                     + cfg.heatmap * terms['heatmap'])

    target_pose = pose9d_target({key: batch[key].to(device) for key in
                                 ('object_rotation', 'object_translation_rel')})
    image = batch['image'].to(device)
    zero = output.joints_rel.new_zeros(())
    sample_corners = None
    if object_corners is not None:
        sample_corners = object_corners.to(device)[output.object_index]

    def weighted_pose_terms(pred_pose9d, source):
        """Log the pose terms of one branch; return their weighted sum."""
        terms['pose_from_' + source] = pose9d_loss(pred_pose9d, target_pose,
                                                   cfg.pose_translation_scale)
        weighted = cfg.pose_reconstruction * terms['pose_from_' + source]
        if cfg.pose_corners > 0:
            terms['corners_from_' + source] = pose_corner_loss(
                pred_pose9d, target_pose, sample_corners, cfg.joint_unit_scale)
            weighted = weighted + cfg.pose_corners * terms['corners_from_' + source]
        return weighted

    pose_from_image = weighted_pose_terms(output.pose9d_from_image, 'image')
    if output.image_mu is not None:
        terms['image_from_image'] = image_loss(output.image_from_image, image)
        terms['kl_image'] = kl_divergence(output.image_mu, output.image_logvar)
        terms['branch2'] = (pose_from_image
                            + cfg.image_reconstruction * terms['image_from_image']
                            + beta_vae * terms['kl_image'])
    else:
        terms['branch2'] = pose_from_image
    if output.pose_mu is not None:
        pose_from_pose = weighted_pose_terms(output.pose9d_from_pose, 'pose')
        terms['image_from_pose'] = image_loss(output.image_from_pose, image)
        terms['kl_pose'] = kl_divergence(output.pose_mu, output.pose_logvar)
        terms['branch1'] = (pose_from_pose
                            + cfg.image_reconstruction * terms['image_from_pose']
                            + beta_vae * terms['kl_pose'])
    else:
        terms['branch1'] = zero

    if cfg.object_corner_heatmap > 0:
        keys = ('crop_K', 'object_rotation', 'object_translation', 'mirrored')
        corners_2d = object_corners_2d_crop_px({key: batch[key].to(device) for key in keys},
                                               sample_corners)
        terms['object_corner_heatmap'] = heatmap_loss(
            output.object_corner_heatmaps, corners_2d, output.object_corner_stride_px,
            cfg.heatmap_sigma_px)

    logits = output.object_logits
    terms['classifier'] = F.cross_entropy(logits, output.object_index)
    terms['classifier_accuracy'] = (logits.argmax(1) == output.object_index).float().mean(
    ).detach()
    terms['total'] = (terms['hand'] + cfg.branch1 * terms['branch1']
                      + cfg.branch2 * terms['branch2'] + cfg.classifier * terms['classifier'])
    if cfg.object_corner_heatmap > 0:
        terms['total'] = terms['total'] + cfg.object_corner_heatmap * terms[
            'object_corner_heatmap']
    return terms
