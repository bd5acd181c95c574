"""
Hand branch of the paper: residual attention modules, 2D joint heatmaps, MANO parameters.

Layout (paper section 3): three residual attention modules, each of two convolutional
self-attention layers (3x3 convolution + BatchNorm + ReLU, then self-attention), with a 2x2
max-pool between two modules; global average pooling; FC + BatchNorm + ReLU; FC to 58 = MANO
pose theta (48, axis-angle, global orientation first) + shape beta (10). The 21 joint heatmaps
are read from the first module's output (the finest resolution: stride 8, 32x32 at 256 px) and
fed back into the features, so the MANO regression sees where the joints are.
"""

import torch
from torch import nn

from hand_object_pose_ros.constants import NUM_HAND_JOINTS
from hand_object_pose_ros.constants import NUM_MANO_POSE_WITH_GLOBAL
from hand_object_pose_ros.constants import NUM_MANO_SHAPE_PARAMS
from hand_object_pose_ros.modeling.attention import conv_attention


class ConvAttentionLayer(nn.Sequential):
    """3x3 convolution + BatchNorm + ReLU, then convolutional self-attention (or identity)."""

    def __init__(self, channels, use_attention, reduction, num_heads, gamma_init):
        """
        Create the layer.

        :param channels: input = output channels.
        :param use_attention: False replaces the attention by identity (ablation).
        """
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            conv_attention(use_attention, channels, reduction, num_heads, gamma_init))


class ResidualAttentionModule(nn.Module):
    """Two convolutional attention layers with a residual connection: relu(x + f(x))."""

    def __init__(self, channels, use_attention, reduction, num_heads, gamma_init):
        """Create the module (arguments as :class:`ConvAttentionLayer`)."""
        super().__init__()
        self.body = nn.Sequential(
            ConvAttentionLayer(channels, use_attention, reduction, num_heads, gamma_init),
            ConvAttentionLayer(channels, use_attention, reduction, num_heads, gamma_init))

    def forward(self, features):
        """:param features: (B, C, H, W). :return: (B, C, H, W)."""
        return torch.relu(features + self.body(features))


class HandHead(nn.Module):
    """Maps one pyramid level to joint heatmaps and MANO parameters."""

    def __init__(self, in_channels, channels=256, num_modules=3, use_attention=True,
                 attention_reduction=8, attention_heads=1, gamma_init=0.1, fc_hidden=512):
        """
        Create the head.

        :param in_channels: channels of the pyramid level it reads.
        :param channels: width inside the head (a 1x1 projection adapts the input).
        :param num_modules: residual attention modules (paper: 3).
        :param use_attention: self-attention in the modules (Table 4 ablation).
        :param attention_reduction: query/key reduction of the attention layers.
        :param attention_heads: heads of the attention layers.
        :param gamma_init: initial attention residual scale.
        :param fc_hidden: width of the FC + BatchNorm + ReLU layer.
        """
        super().__init__()
        self.input_projection = (nn.Identity() if in_channels == channels else nn.Sequential(
            nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True)))
        self.attention_modules = nn.ModuleList([
            ResidualAttentionModule(channels, use_attention, attention_reduction,
                                    attention_heads, gamma_init)
            for _ in range(num_modules)])
        self.pool = nn.MaxPool2d(2)
        self.heatmap = nn.Conv2d(channels, NUM_HAND_JOINTS, 1)
        self.heatmap_feedback = nn.Conv2d(NUM_HAND_JOINTS, channels, 1)
        self.fc = nn.Sequential(
            nn.Linear(channels, fc_hidden), nn.BatchNorm1d(fc_hidden), nn.ReLU(inplace=True),
            nn.Linear(fc_hidden, NUM_MANO_POSE_WITH_GLOBAL + NUM_MANO_SHAPE_PARAMS))
        # Start at the flat mean hand (theta = 0, beta = 0): small last-layer weights.
        nn.init.normal_(self.fc[-1].weight, std=1e-3)
        nn.init.zeros_(self.fc[-1].bias)

    def forward(self, features):
        """
        Run the head.

        :param features: (B, C_in, h, w) pyramid level.
        :return: tuple (heatmap logits (B, 21, h, w), mano_pose (B, 48) axis-angle rad,
            mano_betas (B, 10)).
        """
        x = self.input_projection(features)
        heatmaps = None
        for index, module in enumerate(self.attention_modules):
            if index > 0:
                x = self.pool(x)
            x = module(x)
            if index == 0:
                heatmaps = self.heatmap(x)
                x = x + self.heatmap_feedback(heatmaps)
        params = self.fc(x.mean(dim=(2, 3)))
        return (heatmaps, params[:, :NUM_MANO_POSE_WITH_GLOBAL],
                params[:, NUM_MANO_POSE_WITH_GLOBAL:])


def soft_argmax_px(heatmap_logits, stride_px):
    """
    Return the expected joint positions under the heatmaps' spatial softmax, crop pixels.

    Cell (i, j) of a stride-s map covers crop pixels centred at ``(j + 0.5) s - 0.5`` (x) and
    ``(i + 0.5) s - 0.5`` (y); crop pixel (u, v) has its centre at integer (u, v).

    :param heatmap_logits: (B, J, h, w) float.
    :param stride_px: crop pixels per heatmap cell.
    :return: (B, J, 2) float (u, v) crop pixels.
    """
    batch, joints, height, width = heatmap_logits.shape
    probs = torch.softmax(heatmap_logits.flatten(2).float(), dim=-1).view(
        batch, joints, height, width)
    xs = (torch.arange(width, device=probs.device, dtype=probs.dtype) + 0.5) * stride_px - 0.5
    ys = (torch.arange(height, device=probs.device, dtype=probs.dtype) + 0.5) * stride_px - 0.5
    u = (probs.sum(dim=2) * xs).sum(-1)
    v = (probs.sum(dim=3) * ys).sum(-1)
    return torch.stack((u, v), dim=-1).to(heatmap_logits.dtype)
