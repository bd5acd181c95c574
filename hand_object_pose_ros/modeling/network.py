"""
The joint hand-object network of Bandi & Thomas (VISAPP 2024) and its two forward paths.

Training: ``model(images, object_index, target_pose9d)`` -> :class:`NetworkOutput` (everything
the losses need). Inference: ``model.predict(images, object_index=None)`` ->
:class:`hand_object_pose_ros.types.NetworkPrediction`, running backbone, hand head + MANO,
classifier, image encoder -> z = mu -> pose decoder only.
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from hand_object_pose_ros import geometry
from hand_object_pose_ros.constants import NUM_BOX_CORNERS
from hand_object_pose_ros.constants import WRIST_JOINT_INDEX
from hand_object_pose_ros.modeling.backbone import ResNetFPNBackbone
from hand_object_pose_ros.modeling.hand_head import HandHead
from hand_object_pose_ros.modeling.hand_head import soft_argmax_px
from hand_object_pose_ros.modeling.object_cvae import CrossModalCVAE
from hand_object_pose_ros.modeling.object_cvae import DirectPoseHead
from hand_object_pose_ros.modeling.object_cvae import one_hot_condition
from hand_object_pose_ros.types import NetworkPrediction


@dataclass
class NetworkOutput:
    """
    Output of the training forward pass, for B crops of S x S pixels.

    Hand (camera orientation, wrist origin, metres):

    :param heatmaps: (B, 21, h, w) joint heatmap logits (h = S / heatmap_stride_px).
    :param heatmap_stride_px: crop pixels per heatmap cell (int).
    :param joints_2d_crop_px: (B, 21, 2) soft-argmax of the heatmaps, crop pixels.
    :param mano_pose: (B, 48) axis-angle, global orientation then 15 joints (flat-mean MANO).
    :param mano_betas: (B, 10).
    :param joints_rel: (B, 21, 3) joints minus the wrist joint.
    :param vertices_rel: (B, 778, 3) vertices minus the wrist joint.

    Object:

    :param object_index: (B,) int64 class index the object branch was conditioned on.
    :param object_logits: (B, K) classifier logits.
    :param pose9d_from_image: (B, 9) image -> pose (the inference path; for ``direct`` the MLP),
        translation in metres relative to the wrist, rotation entries not orthonormalised.
    :param image_mu: (B, L), image-VAE mean (None for ``direct``).
    :param image_logvar: (B, L), image-VAE log-variance (None for ``direct``).
    :param image_from_image: (B, 3, S, S) 0..1 reconstruction (None for ``direct``).
    :param pose_mu: (B, L) pose-CVAE mean (None without a target pose or for ``direct``).
    :param pose_logvar: (B, L) (None likewise).
    :param pose9d_from_pose: (B, 9) pose -> pose reconstruction, metres (None likewise).
    :param image_from_pose: (B, 3, S, S) pose -> image reconstruction (None likewise).
    :param object_corner_heatmaps: (B, 8, m, m) logits of the object's box corners on the
        CVAE's feature level (None without ``object_corner_heatmaps``; training only).
    :param object_corner_stride_px: crop pixels per cell of those heatmaps.
    """

    heatmaps: torch.Tensor
    heatmap_stride_px: int
    joints_2d_crop_px: torch.Tensor
    mano_pose: torch.Tensor
    mano_betas: torch.Tensor
    joints_rel: torch.Tensor
    vertices_rel: torch.Tensor
    object_index: torch.Tensor
    object_logits: torch.Tensor
    pose9d_from_image: torch.Tensor
    image_mu: Optional[torch.Tensor] = None
    image_logvar: Optional[torch.Tensor] = None
    image_from_image: Optional[torch.Tensor] = None
    pose_mu: Optional[torch.Tensor] = None
    pose_logvar: Optional[torch.Tensor] = None
    pose9d_from_pose: Optional[torch.Tensor] = None
    image_from_pose: Optional[torch.Tensor] = None
    object_corner_heatmaps: Optional[torch.Tensor] = None
    object_corner_stride_px: int = 0


class ObjectClassifier(nn.Sequential):
    """Pooled shared features -> object class logits (beyond the paper)."""

    def __init__(self, in_size, hidden_size, num_classes, slope=0.2):
        """
        Create the MLP.

        LeakyReLU, not ReLU: the pooled features are large and mostly shared by all images
        (the hand), and with ReLU every hidden unit died early in training on the synthetic
        set, leaving constant logits and no gradient to learn from.

        :param in_size: size of the pooled features.
        :param hidden_size: hidden width.
        :param num_classes: number of known objects.
        :param slope: LeakyReLU negative slope.
        """
        super().__init__(nn.Linear(in_size, hidden_size), nn.LeakyReLU(slope, inplace=True),
                         nn.Linear(hidden_size, num_classes))


class HandObjectNetwork(nn.Module):
    """Backbone + hand head + MANO + object head (CVAE or direct) + classifier."""

    def __init__(self, cfg, backbone, hand_head, object_head, classifier, mano_layer,
                 object_corner_head=None):
        """
        Assemble the parts (use :func:`hand_object_pose_ros.modeling.build_model`).

        :param cfg: :class:`hand_object_pose_ros.config.ModelConfig`, kept as ``self.cfg``.
        :param backbone: :class:`ResNetFPNBackbone`.
        :param hand_head: :class:`HandHead`.
        :param object_head: :class:`CrossModalCVAE` or :class:`DirectPoseHead`.
        :param classifier: :class:`ObjectClassifier`.
        :param mano_layer: a ``flat_hand_mean=True`` right-hand ManoLayer (its buffers are
            not saved in checkpoints).
        :param object_corner_head: training-only corner heatmap module, or None.
        """
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.hand_head = hand_head
        self.object_head = object_head
        self.classifier = classifier
        self.object_corner_head = object_corner_head
        self.mano_layer = mano_layer
        self.register_buffer('_object_ids', torch.as_tensor(cfg.object_ids, dtype=torch.int64),
                             persistent=False)

    @property
    def object_ids(self):
        """Catalogue ids of the known objects; class index = position (tuple of int)."""
        return tuple(self.cfg.object_ids)

    @property
    def num_objects(self):
        """Return the number of known objects."""
        return len(self.cfg.object_ids)

    @property
    def heatmap_stride_px(self):
        """Crop pixels per heatmap cell."""
        return 2 ** self.cfg.hand_head.feature_level

    def object_indices(self, catalogue_ids):
        """
        Map catalogue object ids (e.g. a batch's ``object_id``) to class indices.

        :param catalogue_ids: (B,) integer tensor of catalogue ids.
        :return: (B,) int64 class indices, on the model's device.
        :raises ValueError: an id the network does not know (named).
        """
        ids = torch.as_tensor(catalogue_ids, device=self._object_ids.device).long().reshape(-1)
        matches = ids[:, None] == self._object_ids[None, :]
        unknown = ~matches.any(dim=1)
        if bool(unknown.any()):
            raise ValueError('object ids %s are not among the object_ids %s of the network'
                             % (sorted(set(ids[unknown].tolist())), list(self.object_ids)))
        return matches.long().argmax(dim=1)

    def _pooled(self, pyramid):
        """Global average pool of every pyramid level, concatenated: (B, C * levels)."""
        return torch.cat([pyramid[level].mean(dim=(2, 3)) for level in sorted(pyramid)], dim=1)

    def _hand(self, pyramid):
        """Hand head + MANO; returns heatmaps, 2D joints, theta, beta, joints, vertices."""
        heatmaps, theta, beta = self.hand_head(pyramid[self.cfg.hand_head.feature_level])
        hand = self.mano_layer(theta[:, :3], theta[:, 3:], beta)
        wrist = hand.joints[:, WRIST_JOINT_INDEX:WRIST_JOINT_INDEX + 1]
        joints_2d = soft_argmax_px(heatmaps, self.heatmap_stride_px)
        return heatmaps, joints_2d, theta, beta, hand.joints - wrist, hand.vertices - wrist

    def _condition(self, object_index, dtype):
        """One-hot y (or empty when the condition is ablated)."""
        return one_hot_condition(object_index, self.num_objects, self.cfg.object_condition, dtype)

    def forward(self, images, object_index, target_pose9d=None):
        """
        Training pass (also valid in eval mode, where latents are means instead of samples).

        :param images: (B, 3, S, S) float RGB in 0..1 (normalised inside).
        :param object_index: (B,) int64 class indices of the held objects (the condition y).
        :param target_pose9d: (B, 9) true object pose (t metres relative to the wrist, then the
            first two columns of camera_from_object), or None to skip the pose encoder.
        :return: :class:`NetworkOutput`.
        """
        pyramid = self.backbone(images)
        heatmaps, joints_2d, theta, beta, joints_rel, vertices_rel = self._hand(pyramid)
        pooled = self._pooled(pyramid)
        object_index = object_index.to(images.device).long()
        condition = self._condition(object_index, images.dtype)
        out = NetworkOutput(
            heatmaps=heatmaps, heatmap_stride_px=self.heatmap_stride_px,
            joints_2d_crop_px=joints_2d, mano_pose=theta, mano_betas=beta,
            joints_rel=joints_rel, vertices_rel=vertices_rel, object_index=object_index,
            object_logits=self.classifier(pooled), pose9d_from_image=None)
        if isinstance(self.object_head, CrossModalCVAE):
            branch = self.object_head(pyramid[self.cfg.cvae.feature_level], condition,
                                      target_pose9d)
            for name, value in branch.items():
                setattr(out, name, value)
        else:
            out.pose9d_from_image = self.object_head(pooled, condition)
        if self.object_corner_head is not None:
            level = self.cfg.cvae.feature_level
            out.object_corner_heatmaps = self.object_corner_head(pyramid[level])
            out.object_corner_stride_px = 2 ** level
        return out

    @torch.no_grad()
    def predict(self, images, object_index=None):
        """
        Inference: hand mesh, 2D joints, object class and pose (eval-mode BatchNorm, no grad).

        Runs backbone, hand head + MANO, classifier and image encoder -> z = mu -> pose decoder;
        never the image decoder or the pose encoder, and never samples.

        :param images: (B, 3, S, S) float RGB in 0..1.
        :param object_index: None (the classifier picks y = argmax) or (B,) int64 class indices.
        :return: :class:`hand_object_pose_ros.types.NetworkPrediction` (metres, wrist origin,
            camera orientation; rotation orthonormal with det +1).
        """
        was_training = self.training
        self.eval()
        try:
            pyramid = self.backbone(images)
            _, joints_2d, theta, beta, joints_rel, vertices_rel = self._hand(pyramid)
            pooled = self._pooled(pyramid)
            probs = torch.softmax(self.classifier(pooled).float(), dim=1)
            if object_index is None:
                object_index = probs.argmax(dim=1)
            object_index = torch.as_tensor(object_index, device=images.device).long().reshape(-1)
            if object_index.shape[0] != images.shape[0]:
                raise ValueError('object_index has %d entries for %d images'
                                 % (object_index.shape[0], images.shape[0]))
            if bool(((object_index < 0) | (object_index >= self.num_objects)).any()):
                raise ValueError('object_index must lie in 0..%d, got %s'
                                 % (self.num_objects - 1, object_index.tolist()))
            condition = self._condition(object_index, images.dtype)
            if isinstance(self.object_head, CrossModalCVAE):
                pose9d = self.object_head.infer(pyramid[self.cfg.cvae.feature_level], condition)
            else:
                pose9d = self.object_head(pooled, condition)
            rotation, translation = geometry.pose9d_to_rt(pose9d.float())
        finally:
            self.train(was_training)
        return NetworkPrediction(
            mano_pose=theta, mano_betas=beta, vertices=vertices_rel, joints=joints_rel,
            joints_2d_crop_px=joints_2d, object_rotation=rotation,
            object_translation=translation, object_index=object_index, object_probs=probs)


def build_network(cfg, mano_layer):
    """
    Build :class:`HandObjectNetwork` from a ModelConfig (called by ``build_model``).

    :param cfg: :class:`hand_object_pose_ros.config.ModelConfig`.
    :param mano_layer: the ManoLayer to use (``flat_hand_mean=True``, right hand).
    :return: HandObjectNetwork in training mode.
    """
    backbone = ResNetFPNBackbone(cfg.backbone.architecture, cfg.backbone.fpn_channels,
                                 cfg.backbone.fpn_levels, cfg.backbone.weights_path)
    channels = backbone.out_channels
    hand_head = HandHead(
        channels, cfg.hand_head.channels, cfg.hand_head.num_modules, cfg.hand_attention,
        cfg.hand_head.attention_reduction, cfg.attention_heads, cfg.attention_gamma_init,
        cfg.hand_head.fc_hidden)
    num_condition = cfg.num_objects if cfg.object_condition else 0
    pooled_size = channels * len(cfg.backbone.fpn_levels)
    if cfg.object_head == 'cvae':
        object_head = CrossModalCVAE(
            channels, cfg.input_size_px // 2 ** cfg.cvae.feature_level, cfg.input_size_px,
            num_condition, cfg.cvae, use_attention=cfg.object_attention,
            attention_tokens=cfg.vector_attention_tokens, attention_heads=cfg.attention_heads,
            gamma_init=cfg.attention_gamma_init)
    else:
        object_head = DirectPoseHead(pooled_size, num_condition, cfg.direct_head.hidden_sizes,
                                     cfg.cvae.leaky_relu_slope, cfg.cvae.translation_scale)
    classifier = ObjectClassifier(pooled_size, cfg.classifier.hidden_size, cfg.num_objects)
    corner_head = None
    if cfg.object_corner_heatmaps:
        corner_head = nn.Sequential(
            nn.Conv2d(channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
            nn.LeakyReLU(cfg.cvae.leaky_relu_slope, inplace=True),
            nn.Conv2d(64, NUM_BOX_CORNERS, 1))
    return HandObjectNetwork(cfg, backbone, hand_head, object_head, classifier, mano_layer,
                             corner_head)
