"""
Object branch: the paper's cross-modal CVAE, and a direct-regression baseline.

Branch 1 (pose CVAE): x = the 9-D pose (t, first two columns of R), conditioned on the one-hot
object class y. Encoder: FC 128, 256, 512 (BatchNorm + LeakyReLU after all but the last),
self-attention, linear maps to mu and log-variance. Decoder: (z, y) -> FC 512, 256 (BatchNorm +
LeakyReLU), self-attention, linear to 9.

Branch 2 (image VAE): the stride-8 pyramid map (256 x 32 x 32 at 256 px) -> six convolutions,
kernel 1 / 3 alternating, BatchNorm + LeakyReLU, down to 2 channels -> flatten -> FC 1024 ->
FC 256 -> FC 256 -> self-attention -> mu / log-variance. Its decoder (latent -> FC to a
stride-32 map -> five x2 transposed convolutions -> 3 x S x S image in 0..1) is for training only.

Both encoders share one latent space: as in Spurr et al. 2018 each latent is decoded into both
modalities during training (pose -> pose, pose -> image, image -> image, image -> pose);
inference runs only image encoder -> z = mu -> pose decoder.

Inside the branch the translation is multiplied by ``translation_scale`` (metres ->
decimetres by default) so that it has the magnitude of the rotation entries; inputs and outputs
of this module are in metres.
"""

import torch
from torch import nn
import torch.nn.functional as F

from hand_object_pose_ros.constants import POSE9D_SIZE
from hand_object_pose_ros.modeling.attention import vector_attention


def _fc_block(in_size, out_size, slope):
    """Linear + BatchNorm1d + LeakyReLU."""
    return nn.Sequential(nn.Linear(in_size, out_size), nn.BatchNorm1d(out_size),
                         nn.LeakyReLU(slope, inplace=True))


def _fc_blocks(in_size, sizes, slope):
    """
    Chain :func:`_fc_block` layers of the given output sizes.

    :param in_size: size of the input vector.
    :param sizes: output size of each block, in order.
    :param slope: LeakyReLU negative slope.
    :return: tuple (list of blocks, output size of the last block or ``in_size``).
    """
    blocks = []
    for size in sizes:
        blocks.append(_fc_block(in_size, size, slope))
        in_size = size
    return blocks, in_size


class _PoseScaler(nn.Module):
    """Scales the translation part of 9-D poses between metres and the branch's internal unit."""

    def __init__(self, translation_scale):
        super().__init__()
        scale = torch.ones(POSE9D_SIZE)
        scale[:3] = float(translation_scale)
        self.register_buffer('scale', scale, persistent=False)


class PoseEncoder(_PoseScaler):
    """q(z | x, y): 9-D pose (+ one-hot y) -> mu, log-variance."""

    def __init__(self, num_classes, latent_size, sizes=(128, 256, 512), use_attention=True,
                 attention_tokens=8, attention_heads=1, gamma_init=0.1, slope=0.2,
                 translation_scale=10.0):
        """
        Create the encoder.

        :param num_classes: size of y (0 when the branch is not conditioned).
        :param latent_size: size of z.
        :param sizes: FC sizes (BatchNorm + LeakyReLU after all but the last).
        """
        super().__init__(translation_scale)
        layers = []
        in_size = POSE9D_SIZE + num_classes
        for index, size in enumerate(sizes):
            layers.append(_fc_block(in_size, size, slope) if index < len(sizes) - 1
                          else nn.Linear(in_size, size))
            in_size = size
        self.layers = nn.Sequential(*layers)
        self.attention = vector_attention(use_attention, in_size, attention_tokens,
                                          attention_heads, gamma_init)
        self.mu = nn.Linear(in_size, latent_size)
        self.logvar = nn.Linear(in_size, latent_size)

    def forward(self, pose9d, condition):
        """
        Encode.

        :param pose9d: (B, 9) metres / rotation entries.
        :param condition: (B, num_classes) one-hot y, or (B, 0).
        :return: tuple (mu (B, L), logvar (B, L)).
        """
        hidden = self.attention(self.layers(torch.cat((pose9d * self.scale, condition), 1)))
        return self.mu(hidden), self.logvar(hidden)


class PoseDecoder(_PoseScaler):
    """p(x | z, y): latent (+ one-hot y) -> 9-D pose."""

    def __init__(self, num_classes, latent_size, sizes=(512, 256), use_attention=True,
                 attention_tokens=8, attention_heads=1, gamma_init=0.1, slope=0.2,
                 translation_scale=10.0):
        """Create the decoder (arguments as :class:`PoseEncoder`)."""
        super().__init__(translation_scale)
        layers, in_size = _fc_blocks(latent_size + num_classes, sizes, slope)
        self.layers = nn.Sequential(*layers)
        self.attention = vector_attention(use_attention, in_size, attention_tokens,
                                          attention_heads, gamma_init)
        self.output = nn.Linear(in_size, POSE9D_SIZE)

    def forward(self, latent, condition):
        """
        Decode.

        :param latent: (B, L).
        :param condition: (B, num_classes) one-hot y, or (B, 0).
        :return: (B, 9) pose, translation in metres, rotation entries not yet orthonormalised.
        """
        hidden = self.attention(self.layers(torch.cat((latent, condition), 1)))
        return self.output(hidden) / self.scale


class ImageEncoder(nn.Module):
    """q(z | image features): the stride-8 map -> mu, log-variance."""

    def __init__(self, in_channels, map_size, latent_size, conv_channels=(128, 64, 32, 16, 8, 2),
                 fc_sizes=(1024, 256, 256), use_attention=True, attention_tokens=8,
                 attention_heads=1, gamma_init=0.1, slope=0.2):
        """
        Create the encoder.

        :param in_channels: channels of the feature map (paper 256).
        :param map_size: side of the feature map (paper 32).
        :param latent_size: size of z.
        :param conv_channels: outputs of the six convolutions, kernels 1, 3, 1, 3, 1, 3.
        :param fc_sizes: FC sizes after flattening (BatchNorm + LeakyReLU after each).
        """
        super().__init__()
        convs = []
        channels = in_channels
        for index, out_channels in enumerate(conv_channels):
            kernel = 1 if index % 2 == 0 else 3
            convs += [nn.Conv2d(channels, out_channels, kernel, padding=kernel // 2, bias=False),
                      nn.BatchNorm2d(out_channels), nn.LeakyReLU(slope, inplace=True)]
            channels = out_channels
        self.convs = nn.Sequential(*convs)
        fcs, in_size = _fc_blocks(channels * map_size * map_size, fc_sizes, slope)
        self.fcs = nn.Sequential(*fcs)
        self.attention = vector_attention(use_attention, in_size, attention_tokens,
                                          attention_heads, gamma_init)
        self.mu = nn.Linear(in_size, latent_size)
        self.logvar = nn.Linear(in_size, latent_size)

    def forward(self, feature_map):
        """
        Encode.

        :param feature_map: (B, C, m, m).
        :return: tuple (mu (B, L), logvar (B, L)).
        """
        hidden = self.attention(self.fcs(self.convs(feature_map).flatten(1)))
        return self.mu(hidden), self.logvar(hidden)


class ImageDecoder(nn.Module):
    """p(image | z): latent -> (B, 3, S, S) RGB in 0..1 (training only)."""

    def __init__(self, latent_size, image_size_px, channels=(256, 128, 64, 32, 16, 8), slope=0.2):
        """
        Create the decoder.

        :param latent_size: size of z.
        :param image_size_px: S, a multiple of 32.
        :param channels: channels of the stride-32 start map and after each x2 upsampling.
        """
        super().__init__()
        self.start_size = image_size_px // 32
        self.start_channels = channels[0]
        self.fc = nn.Sequential(
            nn.Linear(latent_size, channels[0] * self.start_size ** 2),
            nn.LeakyReLU(slope, inplace=True))
        layers = []
        for in_channels, out_channels in zip(channels[:-1], channels[1:]):
            layers += [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1,
                                          bias=False),
                       nn.BatchNorm2d(out_channels), nn.LeakyReLU(slope, inplace=True)]
        layers.append(nn.Conv2d(channels[-1], 3, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, latent):
        """:param latent: (B, L). :return: (B, 3, S, S) float in 0..1."""
        start = self.fc(latent).view(-1, self.start_channels, self.start_size, self.start_size)
        return torch.sigmoid(self.layers(start))


def reparameterize(mu, logvar):
    """
    Sample z = mu + sigma * eps (the reparameterisation trick).

    :param mu: (B, L).
    :param logvar: (B, L) log-variance (clamped to [-10, 10] for stability).
    :return: (B, L).
    """
    std = torch.exp(0.5 * logvar.clamp(-10.0, 10.0))
    return mu + std * torch.randn_like(std)


class CrossModalCVAE(nn.Module):
    """The paper's object branch: pose CVAE and image VAE sharing one latent space."""

    def __init__(self, feature_channels, feature_map_size, image_size_px, num_classes, cfg,
                 use_attention=True, attention_tokens=8, attention_heads=1, gamma_init=0.1):
        """
        Create the four networks.

        :param feature_channels: channels of the stride-8 pyramid map.
        :param feature_map_size: its side (input size / 8).
        :param image_size_px: side of the decoded image.
        :param num_classes: size of the condition y (0 = unconditioned ablation).
        :param cfg: :class:`hand_object_pose_ros.config.CVAEConfig`.
        """
        super().__init__()
        common = {'use_attention': use_attention, 'attention_tokens': attention_tokens,
                  'attention_heads': attention_heads, 'gamma_init': gamma_init,
                  'slope': cfg.leaky_relu_slope}
        self.pose_encoder = PoseEncoder(num_classes, cfg.latent_size, cfg.pose_encoder_sizes,
                                        translation_scale=cfg.translation_scale, **common)
        self.pose_decoder = PoseDecoder(num_classes, cfg.latent_size, cfg.pose_decoder_sizes,
                                        translation_scale=cfg.translation_scale, **common)
        self.image_encoder = ImageEncoder(
            feature_channels, feature_map_size, cfg.latent_size,
            cfg.image_encoder_conv_channels, cfg.image_encoder_fc_sizes, **common)
        self.image_decoder = ImageDecoder(cfg.latent_size, image_size_px,
                                          cfg.image_decoder_channels, cfg.leaky_relu_slope)

    def forward(self, feature_map, condition, target_pose9d=None):
        """
        Training pass: encode both modalities, decode each latent into both.

        Samples z with the reparameterisation trick in training mode, uses z = mu in eval mode.

        :param feature_map: (B, C, m, m) stride-8 features.
        :param condition: (B, num_classes) one-hot y (or (B, 0)).
        :param target_pose9d: (B, 9) true pose (metres), or None to skip the pose encoder.
        :return: dict with image_mu, image_logvar, pose9d_from_image, image_from_image and,
            when a target is given, pose_mu, pose_logvar, pose9d_from_pose, image_from_pose.
        """
        out = {}
        image_mu, image_logvar = self.image_encoder(feature_map)
        image_z = reparameterize(image_mu, image_logvar) if self.training else image_mu
        out['image_mu'], out['image_logvar'] = image_mu, image_logvar
        out['pose9d_from_image'] = self.pose_decoder(image_z, condition)
        out['image_from_image'] = self.image_decoder(image_z)
        if target_pose9d is not None:
            pose_mu, pose_logvar = self.pose_encoder(target_pose9d, condition)
            pose_z = reparameterize(pose_mu, pose_logvar) if self.training else pose_mu
            out['pose_mu'], out['pose_logvar'] = pose_mu, pose_logvar
            out['pose9d_from_pose'] = self.pose_decoder(pose_z, condition)
            out['image_from_pose'] = self.image_decoder(pose_z)
        return out

    def infer(self, feature_map, condition):
        """
        Inference pass: image encoder -> z = mu -> pose decoder (nothing else runs).

        :param feature_map: (B, C, m, m).
        :param condition: (B, num_classes) one-hot y (or (B, 0)).
        :return: (B, 9) pose, translation metres.
        """
        image_mu, _ = self.image_encoder(feature_map)
        return self.pose_decoder(image_mu, condition)


class DirectPoseHead(_PoseScaler):
    """Baseline: MLP from pooled features (+ y) to the 9-D pose (no latent, no decoders)."""

    def __init__(self, in_size, num_classes, hidden_sizes=(512, 256), slope=0.2,
                 translation_scale=10.0):
        """
        Create the MLP.

        :param in_size: size of the pooled feature vector.
        :param num_classes: size of y (0 = unconditioned).
        :param hidden_sizes: FC sizes (BatchNorm + LeakyReLU after each).
        """
        super().__init__(translation_scale)
        layers, size = _fc_blocks(in_size + num_classes, hidden_sizes, slope)
        self.layers = nn.Sequential(*layers, nn.Linear(size, POSE9D_SIZE))

    def forward(self, pooled, condition):
        """
        Regress the pose.

        :param pooled: (B, D) pooled features.
        :param condition: (B, num_classes) one-hot y (or (B, 0)).
        :return: (B, 9) pose, translation metres.
        """
        return self.layers(torch.cat((pooled, condition), 1)) / self.scale


def one_hot_condition(object_index, num_classes, enabled, dtype):
    """
    Build the condition y.

    :param object_index: (B,) int64 class indices.
    :param num_classes: number of known objects.
    :param enabled: False gives an empty (B, 0) condition (Table 4 ablation).
    :param dtype: float dtype of the result.
    :return: (B, num_classes) one-hot or (B, 0).
    """
    if not enabled:
        return torch.zeros(object_index.shape[0], 0, dtype=dtype, device=object_index.device)
    return F.one_hot(object_index.long(), num_classes).to(dtype)
