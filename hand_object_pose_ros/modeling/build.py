"""``build_model``: the one place that turns a ModelConfig into a network."""

import os

from hand_object_pose_ros.config import load_model_config
from hand_object_pose_ros.config import ModelConfig
from hand_object_pose_ros.mano import ManoLayer
from hand_object_pose_ros.modeling.network import build_network


def build_mano_layer(cfg):
    """
    Return the MANO layer a config asks for (right hand, ``flat_hand_mean=True``).

    :param cfg: ModelConfig; ``mano_model_path`` empty gives the package's stand-in hand.
    :return: ManoLayer (``is_standin`` tells which).
    """
    if cfg.mano_model_path:
        return ManoLayer.from_file(cfg.mano_model_path, flat_hand_mean=True, side='right')
    return ManoLayer.standin(side='right', flat_hand_mean=True)


def build_model(cfg=None, mano_layer=None):
    """
    Build the network of the paper (or an ablation / lite variant) from a config.

    :param cfg: ModelConfig, a YAML path, or None for the paper defaults; kept as ``model.cfg``.
    :param mano_layer: a ManoLayer to use instead of the one the config names; it must use the
        ``flat_hand_mean=True`` convention (the network regresses the full finger pose).
    :return: :class:`hand_object_pose_ros.modeling.network.HandObjectNetwork`, training mode,
        on the CPU.
    :raises ValueError: a MANO layer with ``flat_hand_mean=False`` or a pose-PCA layer.
    """
    if cfg is None:
        cfg = ModelConfig()
    elif isinstance(cfg, (str, os.PathLike)):
        cfg = load_model_config(cfg)
    if mano_layer is None:
        mano_layer = build_mano_layer(cfg)
    if not getattr(mano_layer, 'flat_hand_mean', True) or getattr(mano_layer, 'use_pca', False):
        raise ValueError('the network needs a MANO layer with flat_hand_mean=True and '
                         'use_pca=False (it regresses the full 45-value finger pose)')
    return build_network(cfg, mano_layer)
