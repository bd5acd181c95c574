"""
Self-attention block of the paper (eq. 1), for convolutional feature maps and for vectors.

The block follows the SAGAN form the paper builds on: queries and keys are linear maps of the
input to a reduced size, the softmax of their dot products weighs a linear map (values) of the
input, and the result is added back with a learnt scale: ``y = x + gamma * W_o attend(x)``.
``num_heads > 1`` splits queries, keys and values into heads (multi-head attention). Dot products
are scaled by ``1 / sqrt(head size)`` (torch's scaled_dot_product_attention), which keeps the
softmax from saturating at any width.
"""

import math

import torch
from torch import nn
import torch.nn.functional as F


class TokenSelfAttention(nn.Module):
    """Residual multi-head self-attention over a set of tokens, shape (B, N, D) -> (B, N, D)."""

    def __init__(self, token_size, query_size=None, num_heads=1, gamma_init=0.1):
        """
        Create the projections.

        :param token_size: D, the size of each token (also the value size).
        :param query_size: size of queries and keys (default D); divisible by ``num_heads``.
        :param num_heads: number of attention heads; divides ``token_size``.
        :param gamma_init: initial value of the learnt residual scale gamma.
        """
        super().__init__()
        query_size = query_size or token_size
        if token_size % num_heads or query_size % num_heads:
            raise ValueError('attention sizes (token %d, query %d) must be divisible by '
                             'num_heads %d' % (token_size, query_size, num_heads))
        self.num_heads = num_heads
        self.query = nn.Linear(token_size, query_size)
        self.key = nn.Linear(token_size, query_size)
        self.value = nn.Linear(token_size, token_size)
        self.output = nn.Linear(token_size, token_size)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))

    def _heads(self, tensor):
        """Split (B, N, H*d) into (B, H, N, d)."""
        batch, tokens, size = tensor.shape
        head_size = size // self.num_heads
        return tensor.reshape(batch, tokens, self.num_heads, head_size).transpose(1, 2)

    def forward(self, tokens):
        """
        Attend.

        :param tokens: (B, N, D) float.
        :return: (B, N, D), ``tokens + gamma * attention(tokens)``.
        """
        batch, count, size = tokens.shape
        attended = F.scaled_dot_product_attention(
            self._heads(self.query(tokens)), self._heads(self.key(tokens)),
            self._heads(self.value(tokens)))
        attended = attended.transpose(1, 2).reshape(batch, count, size)
        return tokens + self.gamma * self.output(attended)


class ConvSelfAttention(nn.Module):
    """Self-attention over the positions of a feature map, (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels, reduction=8, num_heads=1, gamma_init=0.1):
        """
        Create the block (1x1 convolutions are the per-position linear maps).

        :param channels: C.
        :param reduction: queries and keys have ``C / reduction`` channels (SAGAN uses 8).
        :param num_heads: attention heads.
        :param gamma_init: initial residual scale.
        """
        super().__init__()
        query_size = max(num_heads, channels // reduction)
        query_size = int(math.ceil(query_size / num_heads) * num_heads)
        self.attention = TokenSelfAttention(channels, query_size, num_heads, gamma_init)

    def forward(self, features):
        """
        Attend over the H * W positions.

        :param features: (B, C, H, W).
        :return: (B, C, H, W).
        """
        batch, channels, height, width = features.shape
        tokens = features.flatten(2).transpose(1, 2)
        tokens = self.attention(tokens)
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class VectorSelfAttention(nn.Module):
    """
    Self-attention over a feature vector, (B, D) -> (B, D).

    The vector is split into ``num_tokens`` tokens of ``D / num_tokens`` values each, which
    attend to each other (a vector has no positions; its chunks play that part).
    """

    def __init__(self, size, num_tokens=8, num_heads=1, gamma_init=0.1):
        """
        Create the block.

        :param size: D; divisible by ``num_tokens`` (the token count falls back to the largest
            divisor of D not above ``num_tokens``).
        :param num_tokens: tokens the vector is split into.
        :param num_heads: attention heads; divides the token size.
        :param gamma_init: initial residual scale.
        """
        super().__init__()
        num_tokens = max(t for t in range(1, num_tokens + 1) if size % t == 0)
        self.num_tokens = num_tokens
        self.attention = TokenSelfAttention(size // num_tokens, None, num_heads, gamma_init)

    def forward(self, vector):
        """
        Attend.

        :param vector: (B, D).
        :return: (B, D).
        """
        tokens = vector.reshape(vector.shape[0], self.num_tokens, -1)
        return self.attention(tokens).reshape(vector.shape)


def conv_attention(enabled, channels, reduction, num_heads, gamma_init):
    """
    Return a :class:`ConvSelfAttention`, or an identity when the ablation switch is off.

    :param enabled: False replaces the block with ``nn.Identity`` (Table 4 ablation).
    :return: nn.Module mapping (B, C, H, W) to (B, C, H, W).
    """
    if not enabled:
        return nn.Identity()
    return ConvSelfAttention(channels, reduction, num_heads, gamma_init)


def vector_attention(enabled, size, num_tokens, num_heads, gamma_init):
    """
    Return a :class:`VectorSelfAttention`, or an identity when the ablation switch is off.

    :param enabled: False replaces the block with ``nn.Identity`` (Table 4 ablation).
    :return: nn.Module mapping (B, D) to (B, D).
    """
    if not enabled:
        return nn.Identity()
    return VectorSelfAttention(size, num_tokens, num_heads, gamma_init)
