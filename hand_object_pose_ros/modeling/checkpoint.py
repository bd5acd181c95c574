"""
Checkpoints: weights + the resolved model config, so inference needs only the file path.

Layout of the saved dict (plain types only, read with ``torch.load(weights_only=True)``)::

    {
      'format': 'hand_object_pose_ros.checkpoint',
      'format_version': 1,
      'package_version': '0.1.0',
      'model_config': {...},        # config_to_dict(model.cfg)
      'object_ids': [1, 2, ...],    # catalogue ids; class index = position
      'mano_is_standin': bool,      # which hand the weights were trained with
      'float16': bool,              # float tensors stored as float16
      'state_dict': {name: tensor}, # the MANO layer's buffers are left out (licensed data)
      'extra': {...},               # caller's plain data (epoch, metrics, optimiser state...)
    }
"""

import os

import torch

from hand_object_pose_ros import __version__
from hand_object_pose_ros.config import config_from_dict
from hand_object_pose_ros.config import config_to_dict
from hand_object_pose_ros.config import ConfigError
from hand_object_pose_ros.config import ModelConfig
from hand_object_pose_ros.modeling.build import build_model

CHECKPOINT_FORMAT = 'hand_object_pose_ros.checkpoint'
CHECKPOINT_FORMAT_VERSION = 1
# State-dict entries of the MANO layer: never stored (real MANO data is licensed).
_MANO_PREFIX = 'mano_layer.'
# How many names of each kind a mismatch error lists.
_MAX_LISTED = 12


class CheckpointError(RuntimeError):
    """A checkpoint that is not ours, of another format version, or of another architecture."""


def model_state(model):
    """Return the model's state dict without the MANO layer's buffers (never saved)."""
    return {key: value for key, value in model.state_dict().items()
            if not key.startswith(_MANO_PREFIX)}


def save_checkpoint(path, model, extra=None, float16=False):
    """
    Save weights, the resolved config and the object ids.

    :param path: output file (``.pt``); its folder is created.
    :param model: HandObjectNetwork (has ``cfg``).
    :param extra: optional dict of plain data (numbers, strings, lists, dicts, tensors) stored
        under ``'extra'``; anything else fails to load with ``weights_only=True``.
    :param float16: store floating tensors as float16 (half the size; restored to the model's
        dtype on load).
    :return: the path written.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    state = {}
    for key, value in model_state(model).items():
        value = value.detach().cpu()
        if float16 and value.is_floating_point():
            value = value.half()
        state[key] = value.clone()
    mano = getattr(model, 'mano_layer', None)
    payload = {
        'format': CHECKPOINT_FORMAT,
        'format_version': CHECKPOINT_FORMAT_VERSION,
        'package_version': __version__,
        'model_config': config_to_dict(model.cfg),
        'object_ids': [int(i) for i in model.cfg.object_ids],
        'mano_is_standin': bool(getattr(mano, 'is_standin', True)),
        'float16': bool(float16),
        'state_dict': state,
        'extra': dict(extra or {}),
    }
    temporary = path + '.tmp'
    torch.save(payload, temporary)
    os.replace(temporary, path)
    return path


def read_checkpoint(path):
    """
    Read and check a checkpoint dict without building the model.

    :param path: checkpoint file.
    :return: the dict (see the module docstring).
    :raises FileNotFoundError: no file at ``path`` (named).
    :raises CheckpointError: not a checkpoint of this package, or another format version.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError('checkpoint not found: %s' % path)
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many kinds of errors for a foreign file
        raise CheckpointError('%s is not a readable hand_object_pose_ros checkpoint: %s'
                              % (path, error)) from error
    if not isinstance(payload, dict) or payload.get('format') != CHECKPOINT_FORMAT:
        raise CheckpointError('%s is not a hand_object_pose_ros checkpoint (no "format": "%s")'
                              % (path, CHECKPOINT_FORMAT))
    if payload.get('format_version') != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError('%s has checkpoint format version %s; this package reads %d'
                              % (path, payload.get('format_version'), CHECKPOINT_FORMAT_VERSION))
    return payload


def _check_state(path, current_state, saved_state):
    """Raise one CheckpointError listing missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(current_state) - set(saved_state))
    unexpected = sorted(set(saved_state) - set(current_state))
    mismatched = sorted(
        '%s: checkpoint %s vs model %s' % (key, tuple(saved_state[key].shape),
                                           tuple(current_state[key].shape))
        for key in set(current_state) & set(saved_state)
        if saved_state[key].shape != current_state[key].shape)
    if not (missing or unexpected or mismatched):
        return

    def listed(title, names):
        if not names:
            return ''
        more = '' if len(names) <= _MAX_LISTED else ' ... (%d more)' % (len(names) - _MAX_LISTED)
        return '\n  %s (%d): %s%s' % (title, len(names), ', '.join(names[:_MAX_LISTED]), more)

    raise CheckpointError(
        'checkpoint %s does not fit the model built from its config (another architecture):%s%s%s'
        % (path, listed('missing in checkpoint', missing),
           listed('unexpected in checkpoint', unexpected), listed('shape mismatch', mismatched)))


def load_state_into(model, payload, path='<checkpoint>'):
    """
    Copy a checkpoint's weights into a model, strictly (MANO buffers excepted).

    :param model: HandObjectNetwork.
    :param payload: dict from :func:`read_checkpoint`.
    :param path: name used in error messages.
    :raises CheckpointError: missing / unexpected keys or shape mismatches, all listed.
    """
    current_state = model_state(model)
    saved = {key: value for key, value in payload['state_dict'].items()
             if not key.startswith(_MANO_PREFIX)}
    _check_state(path, current_state, saved)
    converted = {key: value.to(current_state[key].dtype) for key, value in saved.items()}
    model.load_state_dict(converted, strict=False)


def load_model_from_checkpoint(path, device='cpu', mano_layer=None, config_overrides=None):
    """
    Build the network from the config stored in a checkpoint and load its weights.

    :param path: checkpoint file written by :func:`save_checkpoint`.
    :param device: torch device (or its name) for the model.
    :param mano_layer: a ``flat_hand_mean=True`` ManoLayer to use instead of the config's.
    :param config_overrides: optional dict of ModelConfig fields replacing stored ones (e.g.
        ``{'mano_model_path': '/path/MANO_RIGHT.pkl'}``); architecture fields must match.
    :return: HandObjectNetwork in eval mode on ``device``.
    :raises FileNotFoundError: no file at ``path`` (named).
    :raises CheckpointError: foreign file, another format version, or another architecture
        (missing / unexpected / mis-shaped tensors named).
    """
    payload = read_checkpoint(path)
    stored = dict(payload['model_config'])
    stored.update(config_overrides or {})
    try:
        cfg = config_from_dict(ModelConfig, stored)
    except ConfigError as error:
        raise CheckpointError('checkpoint %s has a model config this package cannot read: %s'
                              % (path, error)) from error
    # Weights in the checkpoint replace any initial weights: do not read the backbone file.
    cfg.backbone.weights_path = ''
    model = build_model(cfg, mano_layer=mano_layer)
    load_state_into(model, payload, os.fspath(path))
    return model.to(device).eval()
