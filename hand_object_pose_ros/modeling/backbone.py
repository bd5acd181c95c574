"""
Shared features: a torchvision ResNet with a feature pyramid (torchvision.ops).

Inputs are RGB in 0..1; the ImageNet normalisation happens here, inside the model, so every
caller (training, the Predictor, the ROS node) feeds the same plain images. Weights are never
downloaded: a local torchvision state dict may be given instead.
"""

from collections import OrderedDict
import os

import torch
from torch import nn
import torchvision
from torchvision.ops import FeaturePyramidNetwork

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Output channels of ResNet stages 1..4 (strides 4, 8, 16, 32) = pyramid levels 2..5.
_STAGE_CHANNELS = {
    'resnet18': (64, 128, 256, 512),
    'resnet34': (64, 128, 256, 512),
    'resnet50': (256, 512, 1024, 2048),
    'resnet101': (256, 512, 1024, 2048),
}


def load_resnet_weights(resnet, weights_path):
    """
    Load a local torchvision ResNet state dict (the classifier ``fc`` is ignored).

    :param resnet: a torchvision ResNet.
    :param weights_path: path of a ``.pth`` file holding its ``state_dict``.
    :raises FileNotFoundError: the file does not exist (path named).
    :raises RuntimeError: the tensors do not fit this architecture (keys named).
    """
    if not os.path.isfile(weights_path):
        raise FileNotFoundError('backbone weights not found: %s' % weights_path)
    state = torch.load(weights_path, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    state = {key: value for key, value in state.items() if not key.startswith('fc.')}
    result = resnet.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith('fc.')]
    if missing or result.unexpected_keys:
        raise RuntimeError('backbone weights %s do not fit %s: missing %s, unexpected %s'
                           % (weights_path, type(resnet).__name__, missing[:10],
                              list(result.unexpected_keys)[:10]))


class ResNetFPNBackbone(nn.Module):
    """ResNet stages and an FPN over the chosen levels: {level: (B, C, S / 2^l, S / 2^l)}."""

    def __init__(self, architecture='resnet50', fpn_channels=256, fpn_levels=(3, 4, 5),
                 weights_path=''):
        """
        Build the backbone.

        :param architecture: ``resnet18`` / ``resnet34`` / ``resnet50`` / ``resnet101``.
        :param fpn_channels: channels of every pyramid output.
        :param fpn_levels: pyramid levels (2..5) to output; stages above the highest are skipped.
        :param weights_path: optional local torchvision state dict of the ResNet.
        """
        super().__init__()
        if architecture not in _STAGE_CHANNELS:
            raise ValueError('unknown backbone %r, expected one of %s'
                             % (architecture, sorted(_STAGE_CHANNELS)))
        resnet = getattr(torchvision.models, architecture)(weights=None)
        if weights_path:
            load_resnet_weights(resnet, weights_path)
        self.fpn_levels = tuple(sorted(fpn_levels))
        self.register_buffer('pixel_mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('pixel_std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        top = max(self.fpn_levels)
        self.stages = nn.ModuleList(
            [getattr(resnet, 'layer%d' % (level - 1)) for level in range(2, top + 1)])
        channels = _STAGE_CHANNELS[architecture]
        self.fpn = FeaturePyramidNetwork(
            [channels[level - 2] for level in self.fpn_levels], fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, images):
        """
        Compute the pyramid.

        :param images: (B, 3, S, S) float RGB in 0..1 (not normalised).
        :return: dict level -> (B, fpn_channels, S / 2**level, S / 2**level).
        """
        features = self.stem((images - self.pixel_mean) / self.pixel_std)
        stage_outputs = OrderedDict()
        for level, stage in zip(range(2, 6), self.stages):
            features = stage(features)
            if level in self.fpn_levels:
                stage_outputs[str(level)] = features
        pyramid = self.fpn(stage_outputs)
        return {int(name): value for name, value in pyramid.items()}
