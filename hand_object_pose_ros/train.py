r"""
Training command line: ``hand_object_pose_train`` / ``python -m hand_object_pose_ros.train``.

Recipe of the paper (section 4.1): Adam, learning rate 1e-4 multiplied by
``optim.lr_decay_factor`` every ``optim.lr_decay_every_epochs`` epochs until epoch
``optim.lr_decay_until_epoch``, then constant; the beta_vae schedule of
:func:`hand_object_pose_ros.losses.beta_vae_schedule`; loss weights from the config.

Usage::

    hand_object_pose_train --config config/train_synthetic.yaml \\
        [--set optim.learning_rate=2e-4 --set batch_size=32] [--resume runs/x/checkpoints/last.pt]
        [--max-minutes 140] [--export-fp16 models/demo_lite.pt]

Several GPUs or machines: ``torchrun --nproc_per_node N -m hand_object_pose_ros.train ...``
(DistributedDataParallel; ``batch_size`` is per process; only rank 0 logs and saves).

Outputs under ``output_dir``: ``train_log.csv`` (every loss term, learning rate, beta_vae),
``validation.csv``, ``tensorboard/``, ``config.yaml`` (the resolved config) and
``checkpoints/last.pt`` (+ ``epoch_NNN.pt``). A checkpoint holds the model (through
:func:`hand_object_pose_ros.modeling.save_checkpoint`, so inference needs only its path), the
resolved training config, the object catalogue ids and the training state (optimizer,
scheduler, AMP scaler, epoch, step, RNG states as tensors and lists): ``--resume`` continues
bit-exactly, and everything loads with ``torch.load(weights_only=True)``.

Exact resume: the sample order comes from a generator seeded by ``(seed, epoch)`` and the
augmentation of each sample from ``(seed, index, epoch)``; neither touches the global RNGs, so
restoring them (torch, numpy, python, CUDA) and skipping the batches already seen reproduces an
uninterrupted run.
"""

import argparse
import contextlib
import csv
import dataclasses
import datetime
import difflib
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from typing import Literal
from typing import Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
import yaml

from hand_object_pose_ros import constants
from hand_object_pose_ros import losses
from hand_object_pose_ros import metrics
from hand_object_pose_ros.cli import run_command
from hand_object_pose_ros.config import apply_overrides
from hand_object_pose_ros.config import config_from_dict
from hand_object_pose_ros.config import config_to_dict
from hand_object_pose_ros.config import ConfigError
from hand_object_pose_ros.config import deep_merge
from hand_object_pose_ros.config import LossConfig
from hand_object_pose_ros.config import ModelConfig
from hand_object_pose_ros.config import read_yaml_mapping
from hand_object_pose_ros.data.synthetic import SyntheticConfig
from hand_object_pose_ros.modeling import build_model
from hand_object_pose_ros.modeling import checkpoint as checkpoint_io
from hand_object_pose_ros.objects import load_object_catalogue

LOGGER = logging.getLogger(__name__)

CHECKPOINT_DIR = 'checkpoints'
LAST_CHECKPOINT = 'last.pt'
TRAIN_LOG = 'train_log.csv'
VALIDATION_LOG = 'validation.csv'
# Loss terms shown on the progress bar (all of them go to the CSV and TensorBoard logs).
PROGRESS_TERMS = ('total', 'joints_3d', 'pose_from_image', 'branch1', 'branch2', 'classifier')
FREEZABLE_MODULES = ('backbone', 'hand_head', 'classifier', 'object_head')


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DataConfig:
    """
    Where the training and validation samples come from.

    :param dataset: ``synthetic`` (the package's generator), ``dexycb`` or ``obman``.
    :param root: DexYCB / ObMan root folder; for ``synthetic``, a folder of training shards
        written by ``python -m hand_object_pose_ros.data.synthetic write`` (empty: render
        on the fly).
    :param val_root: for ``synthetic``, a folder of held-out shards (empty: render the held-out
        seed on the fly); ignored for the real datasets (they validate on ``val_split``).
    :param train_split: split of the real datasets used for training.
    :param val_split: split of the real datasets used for validation.
    :param num_train_samples: samples per epoch of the on-the-fly synthetic set; for shards and
        real datasets a positive value keeps only the first N (0 = all).
    :param num_val_samples: validation samples (the first N of the validation split; 0 = all).
    :param epoch_samples: samples per epoch, drawn from a fresh shuffle of the whole training
        set each epoch (0 = the whole set). Lets a large shard set have epochs short enough
        for the per-epoch schedules (beta_vae, learning rate) to advance in a short run.
    :param augment: apply the paper's augmentation (scale, colour jitter, brightness,
        contrast) to training samples.
    :param num_workers: DataLoader worker processes per training process.
    :param synthetic: settings of the generator, any fields of
        :class:`hand_object_pose_ros.data.synthetic.SyntheticConfig` (checked by name; the
        crop size is always ``model.input_size_px``). Training uses ``seed``; validation the
        held-out seed of :func:`hand_object_pose_ros.data.synthetic.heldout_config`.
    """

    dataset: Literal['synthetic', 'dexycb', 'obman'] = 'synthetic'
    root: str = ''
    val_root: str = ''
    train_split: str = 'train'
    val_split: str = 'val'
    num_train_samples: int = 20000
    num_val_samples: int = 256
    epoch_samples: int = 0
    augment: bool = True
    num_workers: int = 2
    synthetic: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        """Check the synthetic generator's keys now, so a typo fails before training."""
        synthetic_config(self, constants.DEFAULT_CROP_SIZE_PX)


def synthetic_config(data_cfg, crop_size_px):
    """
    Build the generator's config from ``data_cfg.synthetic``.

    :param data_cfg: :class:`DataConfig`.
    :param crop_size_px: crop side (the model's input size).
    :return: :class:`hand_object_pose_ros.data.synthetic.SyntheticConfig`.
    :raises ConfigError: a key SyntheticConfig does not have (named) or a value of the wrong
        kind.
    """
    known = {field.name: field for field in dataclasses.fields(SyntheticConfig)}
    values = {}
    for name, value in data_cfg.synthetic.items():
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
            hint = ('; did you mean %s?' % ' or '.join('data.synthetic.' + c for c in close)
                    if close else '')
            raise ConfigError('unknown config key "data.synthetic.%s" for SyntheticConfig%s '
                              '(known keys: %s)' % (name, hint, ', '.join(known)))
        if name == 'crop_size_px':
            raise ConfigError('data.synthetic.crop_size_px is set by model.input_size_px; '
                              'remove it')
        default = getattr(SyntheticConfig(), name)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ConfigError('data.synthetic.%s: expected a list, got %r' % (name, value))
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError('data.synthetic.%s: expected true/false, got %r'
                                  % (name, value))
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError('data.synthetic.%s: expected a number, got %r'
                                  % (name, value))
            value = type(default)(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError('data.synthetic.%s: expected a string, got %r' % (name, value))
        values[name] = value
    return SyntheticConfig(crop_size_px=int(crop_size_px), **values)


@dataclasses.dataclass
class OptimConfig:
    """
    Optimiser and learning-rate schedule (paper 4.1; the decay factor is not given there).

    :param learning_rate: initial Adam learning rate.
    :param lr_decay_factor: learning-rate multiplier applied every ``lr_decay_every_epochs``.
    :param lr_decay_every_epochs: epochs between two decays.
    :param lr_decay_until_epoch: no decay from this epoch on (the rate stays constant).
    :param weight_decay: Adam weight decay (L2).
    :param grad_clip_norm: clip the gradient norm to this value (0 = no clipping).
    """

    learning_rate: float = 1e-4
    lr_decay_factor: float = 0.5
    lr_decay_every_epochs: int = 20
    lr_decay_until_epoch: int = 100
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0


@dataclasses.dataclass
class TrainConfig:
    """
    A training run: model, losses, data, optimiser and the loop's settings.

    :param model: the network (:class:`hand_object_pose_ros.config.ModelConfig`).
    :param loss: loss weights (:class:`hand_object_pose_ros.config.LossConfig`).
    :param data: :class:`DataConfig`.
    :param optim: :class:`OptimConfig`.
    :param epochs: number of epochs (paper 200).
    :param batch_size: samples per step and process (paper 128).
    :param seed: seed of the weights' initialisation, sample order and augmentation.
    :param amp: mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on CPU.
    :param device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    :param num_threads: torch CPU threads of the trainer (0 = torch's default). On a small,
        shared CPU, 1 avoids the thread oversubscription that slows a step several-fold.
    :param output_dir: folder of logs and checkpoints.
    :param log_every_steps: steps between two rows of the CSV / TensorBoard log.
    :param val_every_steps: steps between validation passes; 0 = at the end of every epoch.
    :param checkpoint_every_minutes: also save ``last.pt`` this often (0 = only per epoch).
    :param keep_epoch_checkpoints: also keep ``epoch_NNN.pt`` at the end of each epoch.
    :param max_steps: stop after this many optimiser steps in total (0 = no limit; smoke runs).
    :param init_weights: checkpoint whose tensors initialise the model where name and shape
        match (e.g. a trained backbone and hand head under another object head); '' = random.
        Only the weights are taken (not the optimiser, epoch or config); see ``--resume``.
    :param init_modules: the top-level submodules ``init_weights`` initialises (empty = all).
    :param frozen_modules: top-level submodules kept fixed (no gradient, BatchNorm statistics
        frozen): any of ``backbone``, ``hand_head``, ``classifier``, ``object_head``.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    epochs: int = 200
    batch_size: int = 128
    seed: int = 0
    amp: bool = True
    device: Literal['auto', 'cpu', 'cuda'] = 'auto'
    num_threads: int = 0
    output_dir: str = 'runs/train'
    log_every_steps: int = 10
    val_every_steps: int = 0
    checkpoint_every_minutes: float = 20.0
    keep_epoch_checkpoints: bool = False
    max_steps: int = 0
    init_weights: str = ''
    init_modules: Tuple[str, ...] = ()
    frozen_modules: Tuple[str, ...] = ()

    def __post_init__(self):
        """Check values the loop depends on."""
        if self.batch_size < 1:
            raise ConfigError('batch_size must be >= 1, got %d' % self.batch_size)
        if self.epochs < 0:
            raise ConfigError('epochs must be >= 0, got %d' % self.epochs)
        if self.optim.lr_decay_every_epochs < 1:
            raise ConfigError('optim.lr_decay_every_epochs must be >= 1')
        for key in ('init_modules', 'frozen_modules'):
            unknown = sorted(set(getattr(self, key)) - set(FREEZABLE_MODULES))
            if unknown:
                raise ConfigError('%s: %s not among %s'
                                  % (key, ', '.join(unknown), ', '.join(FREEZABLE_MODULES)))


def load_train_config(yaml_path=None, overrides=()):
    """
    Load a :class:`TrainConfig` from YAML and ``key.path=value`` overrides.

    The YAML may name a model config file with ``model_config: model_lite.yaml`` (relative to
    the YAML's folder); its values are the base of the ``model`` section, which the YAML's own
    ``model:`` mapping and the overrides then update.

    :param yaml_path: YAML file (partial mapping of the fields) or None for the defaults.
    :param overrides: iterable of ``'a.b=value'`` strings.
    :return: TrainConfig.
    :raises ConfigError: unknown key (named), wrong type or inconsistent values.
    :raises FileNotFoundError: missing YAML file or model config file (named).
    """
    data = {}
    if yaml_path is not None:
        data = read_yaml_mapping(yaml_path)
        include = data.pop('model_config', None)
        if include is not None:
            if not isinstance(include, str):
                raise ConfigError('%s: model_config must be a file name, got %r'
                                  % (yaml_path, include))
            include_path = os.path.join(os.path.dirname(os.path.abspath(yaml_path)), include)
            model_data = read_yaml_mapping(include_path)
            data['model'] = deep_merge(model_data, data.get('model') or {})
    apply_overrides(data, overrides)
    try:
        return config_from_dict(TrainConfig, data)
    except ConfigError as error:
        if yaml_path is not None:
            raise ConfigError('%s: %s' % (yaml_path, error)) from None
        raise


def learning_rate_factor(epoch, optim_cfg):
    """
    Multiplier of the initial learning rate during ``epoch`` (0-based).

    :param epoch: epoch index.
    :param optim_cfg: :class:`OptimConfig`.
    :return: ``lr_decay_factor ** (number of decays before epoch)``, decays every
        ``lr_decay_every_epochs`` up to ``lr_decay_until_epoch``.
    """
    decays = min(epoch, optim_cfg.lr_decay_until_epoch) // optim_cfg.lr_decay_every_epochs
    return optim_cfg.lr_decay_factor ** decays


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _require_dir(path, what):
    """Raise FileNotFoundError naming ``path`` when it is not a folder."""
    if not path or not os.path.isdir(path):
        raise FileNotFoundError('%s not found: %r (set it in the config)' % (what, path))


def _truncate(dataset, count):
    """First ``count`` items of ``dataset`` (all when count <= 0 or larger than it)."""
    if count <= 0 or count >= len(dataset):
        return dataset
    return torch.utils.data.Subset(dataset, range(count))


def build_dataset(data_cfg, crop_size_px, training, augment=None, seed=0):
    """
    Build the training or the validation dataset of a config.

    :param data_cfg: :class:`DataConfig`.
    :param crop_size_px: side of the crops (the model's input size).
    :param training: True for the training split, False for validation.
    :param augment: optional augmentation callable ``(sample, rng) -> sample`` for training.
    :param seed: augmentation seed of the real datasets (the synthetic set uses its own).
    :return: a torch Dataset of the dicts of ``HandObjectSample.to_tensors()``.
    :raises FileNotFoundError: a configured root that does not exist (the path is named).
    """
    count = data_cfg.num_train_samples if training else data_cfg.num_val_samples
    if data_cfg.dataset == 'synthetic':
        from hand_object_pose_ros.data import synthetic

        root = data_cfg.root if training else data_cfg.val_root
        if root:
            from hand_object_pose_ros.data.shards import ShardDataset

            _require_dir(root, 'synthetic shard folder (data.%s)'
                         % ('root' if training else 'val_root'))
            return _truncate(ShardDataset(root, augment=augment), count)
        generator_cfg = synthetic_config(data_cfg, crop_size_px)
        if training:
            return synthetic.SyntheticDataset(generator_cfg, count, augment=augment)
        return synthetic.SyntheticDataset(synthetic.heldout_config(generator_cfg), count)
    split = data_cfg.train_split if training else data_cfg.val_split
    _require_dir(data_cfg.root, '%s root (data.root)' % data_cfg.dataset)
    from hand_object_pose_ros.data.common import SkippingDataset

    if data_cfg.dataset == 'dexycb':
        from hand_object_pose_ros.data.dexycb import DexYCB

        loader = DexYCB(data_cfg.root, 's0', split, crop_size_px=crop_size_px, load_depth=False)
    else:
        from hand_object_pose_ros.data.obman import ObMan

        loader = ObMan(data_cfg.root, split, crop_size_px=crop_size_px, load_depth=False)
    if augment is not None:
        loader = _AugmentingLoader(loader, augment, seed)
    return _truncate(SkippingDataset(loader), count)


class _AugmentingLoader:
    """A dataset loader (``__len__``, ``load(index)``) whose samples are augmented."""

    def __init__(self, loader, augment, seed):
        """
        Wrap a loader.

        :param loader: DexYCB / ObMan loader.
        :param augment: callable ``(sample, rng) -> sample``.
        :param seed: base seed; sample ``i`` of epoch ``e`` uses the generator of
            ``(seed, i, e)``, so a resumed run augments exactly as an uninterrupted one.
        """
        self.loader = loader
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self):
        """Return the number of samples."""
        return len(self.loader)

    def load(self, index):
        """Load and augment sample ``index``."""
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(index), int(self.epoch), 13])
        return self.augment(self.loader.load(index), rng)


def _set_dataset_epoch(dataset, epoch):
    """Tell a dataset (or the one under a Subset) the epoch its augmentation is seeded with."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    for holder in (dataset, getattr(dataset, 'loader', None)):
        if holder is not None and hasattr(holder, 'epoch'):
            holder.epoch = epoch


class _SkipSampler(torch.utils.data.Sampler):
    """
    Yields a base sampler's indices from position ``skip`` up to position ``limit``.

    ``skip`` drops what a resumed epoch already did; ``limit`` ends an epoch early
    (``DataConfig.epoch_samples``, per process).
    """

    def __init__(self, base, skip, limit=None):
        self.base = base
        self.skip = skip
        self.limit = len(base) if limit is None else min(limit, len(base))

    def __iter__(self):
        for position, index in enumerate(self.base):
            if position >= self.limit:
                return
            if position >= self.skip:
                yield index

    def __len__(self):
        return max(0, self.limit - self.skip)


def _worker_init(worker_id):
    """Give each DataLoader worker one thread (the trainer owns the other cores)."""
    del worker_id
    torch.set_num_threads(1)


def _collate(items):
    """Batch the fixed-size tensors; drop the per-sample extras that vary in size."""
    keys = [key for key, value in items[0].items() if torch.is_tensor(value)]
    return {key: torch.stack([item[key] for item in items]) for key in keys}


# --------------------------------------------------------------------------------------------
# Training state (RNG states stored as tensors / lists: loadable with weights_only=True)
# --------------------------------------------------------------------------------------------


def capture_rng_state():
    """
    Return the global RNG states of python, numpy, torch and CUDA as plain values.

    :return: dict of tensors, ints, floats and lists (safe for ``weights_only`` loading).
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    return {
        'python_version': int(python_state[0]),
        'python_state': [int(value) for value in python_state[1]],
        'python_gauss_next': python_state[2],
        'numpy_keys': torch.from_numpy(numpy_state[1].astype(np.int64)),
        'numpy_pos': int(numpy_state[2]),
        'numpy_has_gauss': int(numpy_state[3]),
        'numpy_cached_gaussian': float(numpy_state[4]),
        'torch': torch.get_rng_state(),
        'cuda': list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def restore_rng_state(state):
    """Restore the states captured by :func:`capture_rng_state`."""
    random.setstate((state['python_version'], tuple(state['python_state']),
                     state['python_gauss_next']))
    np.random.set_state(('MT19937', state['numpy_keys'].numpy().astype(np.uint32),
                         state['numpy_pos'], state['numpy_has_gauss'],
                         state['numpy_cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def seed_everything(seed):
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------
# Distributed helpers
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DistributedContext:
    """
    Where this process stands in a (possibly single-process) run.

    :param rank: global rank.
    :param world_size: number of processes.
    :param local_rank: rank on this machine (picks the GPU).
    :param initialized: True when this module created the process group.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False

    @property
    def is_main(self):
        """Return True on rank 0 (the process that logs and saves)."""
        return self.rank == 0

    @property
    def distributed(self):
        """Return True with more than one process."""
        return self.world_size > 1


def setup_distributed(device_kind):
    """
    Join the process group described by torchrun's environment (RANK, WORLD_SIZE, ...).

    :param device_kind: ``cuda`` (NCCL backend) or ``cpu`` (gloo).
    :return: :class:`DistributedContext`; single-process when WORLD_SIZE is unset or 1.
    """
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ['RANK'])
    local_rank = int(os.environ.get('LOCAL_RANK', rank))
    initialized = False
    if not torch.distributed.is_initialized():
        backend = 'nccl' if device_kind == 'cuda' else 'gloo'
        torch.distributed.init_process_group(backend, rank=rank, world_size=world_size,
                                             timeout=datetime.timedelta(minutes=30))
        initialized = True
    return DistributedContext(rank, world_size, local_rank, initialized)


def _resolve_device(cfg, context):
    """Torch device of this process."""
    kind = cfg.device
    if kind == 'auto':
        kind = 'cuda' if torch.cuda.is_available() else 'cpu'
    if kind == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError('device: cuda requested but CUDA is not available')
        torch.cuda.set_device(context.local_rank)
        return torch.device('cuda', context.local_rank)
    return torch.device('cpu')


def _device_kind(cfg):
    """``cuda`` or ``cpu`` for the config's device setting."""
    if cfg.device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return cfg.device


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------


class _CsvLog:
    """Appends rows to a CSV file; the header is the first row's keys."""

    def __init__(self, path):
        self.path = path
        self.columns = None
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            with open(path, newline='', encoding='utf-8') as stream:
                self.columns = next(csv.reader(stream), None)

    def write(self, row):
        """Append one row (a dict); keys beyond the header are dropped, missing ones empty."""
        new_file = self.columns is None
        if new_file:
            self.columns = list(row)
        with open(self.path, 'a', newline='', encoding='utf-8') as stream:
            writer = csv.DictWriter(stream, self.columns, extrasaction='ignore')
            if new_file:
                writer.writeheader()
            writer.writerow(row)


def _truncate_csv(path, last_step):
    """Drop rows with step > ``last_step`` (written after the checkpoint a run resumes from)."""
    if not os.path.isfile(path):
        return
    with open(path, newline='', encoding='utf-8') as stream:
        rows = list(csv.reader(stream))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    step_column = header.index('step') if 'step' in header else None
    if step_column is None:
        return
    kept = [row for row in body if row and int(row[step_column]) <= last_step]
    with open(path, 'w', newline='', encoding='utf-8') as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(kept)


class _RunningMeans:
    """Running means of the loss terms since the last reset."""

    def __init__(self):
        self.sums = {}
        self.count = 0

    def add(self, values):
        """Add one step's float values."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def means(self):
        """Return the mean of every term (dict)."""
        return {key: value / max(self.count, 1) for key, value in self.sums.items()}

    def reset(self):
        """Forget everything."""
        self.sums = {}
        self.count = 0


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------


def initialise_from_checkpoint(model, path, modules=()):
    """
    Copy the tensors of a checkpoint whose name and shape match the model's (MANO excepted).

    :param model: HandObjectNetwork.
    :param path: checkpoint file of this package.
    :param modules: top-level submodule names to initialise (empty = all).
    :return: (number of tensors copied, names of the model's tensors left as initialised).
    :raises CheckpointError: the checkpoint shares no tensor with the model.
    """
    payload = checkpoint_io.read_checkpoint(path)
    state = checkpoint_io.model_state(model)
    copied = {}
    for name, value in payload['state_dict'].items():
        if name not in state:
            continue
        if modules and name.split('.', 1)[0] not in modules:
            continue
        if tuple(value.shape) == tuple(state[name].shape):
            copied[name] = value.to(state[name].dtype)
    if not copied:
        raise checkpoint_io.CheckpointError('%s shares no tensor (name and shape) with the '
                                            'model: nothing to initialise from' % path)
    model.load_state_dict(copied, strict=False)
    left = sorted(name for name in state if name not in copied)
    LOGGER.info('initialised %d tensors from %s; %d left as initialised%s', len(copied), path,
                len(left), (' (first: %s)' % ', '.join(left[:5])) if left else '')
    return len(copied), left


def batch_targets(batch, model_core, device):
    """
    Network inputs and targets of a batch.

    :param batch: dict of ``HandObjectSample.to_tensors()`` tensors, batched.
    :param model_core: the (unwrapped) network, for its catalogue-id -> class-index map.
    :param device: torch device.
    :return: tuple (images (B, 3, S, S), object_index (B,) int64, target_pose9d (B, 9), the
        batch moved to ``device``).
    """
    batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    object_index = model_core.object_indices(batch['object_id'])
    target_pose9d = losses.pose9d_target(batch)
    return batch['image'], object_index, target_pose9d, batch


class Trainer:
    """One training run (one process of it under torchrun)."""

    def __init__(self, cfg, context=None, resume=None, max_minutes=None, show_progress=True):
        """
        Build the model, optimiser, data and logs; load ``resume`` when given.

        :param cfg: :class:`TrainConfig` (the resolved config).
        :param context: :class:`DistributedContext` (None: single process).
        :param resume: checkpoint path to continue from, or None.
        :param max_minutes: wall-clock budget; the run checkpoints and stops when it is spent.
        :param show_progress: show the tqdm bar (rank 0 only).
        :raises FileNotFoundError: missing resume checkpoint or dataset root.
        :raises CheckpointError: a resume checkpoint of another architecture.
        """
        self.cfg = cfg
        self.context = context or DistributedContext()
        self.device = _resolve_device(cfg, self.context)
        self.max_seconds = None if not max_minutes else float(max_minutes) * 60.0
        self.show_progress = show_progress and self.context.is_main
        self.start_time = time.monotonic()
        self.use_amp = bool(cfg.amp and self.device.type == 'cuda')
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)

        seed_everything(cfg.seed)
        self.model_core = build_model(cfg.model).to(self.device)
        if cfg.init_weights and resume is None:
            initialise_from_checkpoint(self.model_core, cfg.init_weights, cfg.init_modules)
        # Box corners per class index, only for the (optional) corner losses: ObMan's objects
        # are not in the YCB catalogue.
        self.object_corners = None
        if cfg.loss.pose_corners > 0 or cfg.loss.object_corner_heatmap > 0:
            self.object_corners = losses.object_box_corners(self.model_core.object_ids).to(
                self.device)
        self.frozen = [getattr(self.model_core, name) for name in cfg.frozen_modules]
        for module in self.frozen:
            module.requires_grad_(False)
        if self.context.distributed:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model_core, device_ids=[self.device.index] if self.device.type == 'cuda'
                else None)
        else:
            self.model = self.model_core
        trainable = [parameter for parameter in self.model_core.parameters()
                     if parameter.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=cfg.optim.learning_rate,
                                          weight_decay=cfg.optim.weight_decay)
        optim_cfg = cfg.optim

        def lr_lambda(epoch):
            return learning_rate_factor(epoch, optim_cfg)

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda)
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.use_amp)

        augment = None
        if cfg.data.augment:
            from hand_object_pose_ros.data.augment import CropAugmentation

            augment = CropAugmentation()
        size = cfg.model.input_size_px
        self.train_set = build_dataset(cfg.data, size, training=True, augment=augment,
                                       seed=cfg.seed)
        self.val_set = build_dataset(cfg.data, size, training=False)
        if len(self.train_set) < cfg.batch_size * self.context.world_size:
            raise ValueError('the training set has %d samples, fewer than one batch (%d x %d '
                             'processes)' % (len(self.train_set), cfg.batch_size,
                                             self.context.world_size))
        self.catalogue_ids = tuple(load_object_catalogue().ids)

        self.epoch = 0
        self.batch_in_epoch = 0
        self.step = 0
        self.best_val_mje_mm = math.inf
        self._stop_requested = False
        if resume is not None:
            self._load_training_state(resume)
        else:
            # Each rank draws its own noise (CVAE samples) from here on.
            seed_everything(cfg.seed * 1000 + 17 + self.context.rank)

        self.output_dir = cfg.output_dir
        self.checkpoint_dir = os.path.join(self.output_dir, CHECKPOINT_DIR)
        self.writer = None
        self.train_log = None
        self.val_log = None
        if self.context.is_main:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
            with open(os.path.join(self.output_dir, 'config.yaml'), 'w',
                      encoding='utf-8') as stream:
                yaml.safe_dump(config_to_dict(cfg), stream, sort_keys=False)
            train_log_path = os.path.join(self.output_dir, TRAIN_LOG)
            val_log_path = os.path.join(self.output_dir, VALIDATION_LOG)
            if resume is not None:
                _truncate_csv(train_log_path, self.step)
                _truncate_csv(val_log_path, self.step)
            self.train_log = _CsvLog(train_log_path)
            self.val_log = _CsvLog(val_log_path)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.path.join(self.output_dir, 'tensorboard'),
                                        purge_step=self.step if resume is not None else None)

    # ---------------------------------------------------------------- checkpoints

    def _training_state(self):
        """Everything besides the weights that an exact resume needs (rank 0 gathers RNGs)."""
        rng_states = [capture_rng_state()]
        if self.context.distributed:
            gathered = [None] * self.context.world_size
            torch.distributed.all_gather_object(gathered, rng_states[0])
            rng_states = gathered
        return {
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'scaler': self.scaler.state_dict(),
            'epoch': self.epoch,
            'batch_in_epoch': self.batch_in_epoch,
            'step': self.step,
            'best_val_mje_mm': self.best_val_mje_mm,
            'world_size': self.context.world_size,
            'rng_states': rng_states,
        }

    def save(self, path):
        """
        Write a full checkpoint (collective under DDP: every rank must call it).

        :param path: file path; written by rank 0 only (atomically, through a temporary file).
        """
        state = self._training_state()
        if self.context.is_main:
            checkpoint_io.save_checkpoint(
                path, self.model_core, extra={
                    'train_config': config_to_dict(self.cfg),
                    'catalogue_ids': list(self.catalogue_ids),
                    'training_state': state,
                })
        if self.context.distributed:
            torch.distributed.barrier()

    def _load_training_state(self, path):
        """Load the weights and training state of a checkpoint written by :meth:`save`."""
        if not os.path.isfile(path):
            raise FileNotFoundError('resume checkpoint not found: %s' % path)
        payload = checkpoint_io.read_checkpoint(path)
        checkpoint_io.load_state_into(self.model_core, payload, path)
        extra = payload.get('extra') or {}
        state = extra.get('training_state')
        if state is None:
            raise checkpoint_io.CheckpointError(
                '%s holds no training state (an inference-only export?); cannot resume' % path)
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        self.scaler.load_state_dict(state['scaler'])
        self.epoch = int(state['epoch'])
        self.batch_in_epoch = int(state['batch_in_epoch'])
        self.step = int(state['step'])
        self.best_val_mje_mm = float(state['best_val_mje_mm'])
        rng_states = state['rng_states']
        if len(rng_states) == self.context.world_size:
            restore_rng_state(rng_states[self.context.rank])
        else:
            LOGGER.warning('checkpoint written by %d processes, resuming with %d: RNG streams '
                           'are re-seeded (the run continues, not bit-exactly)',
                           len(rng_states), self.context.world_size)
            seed_everything(self.cfg.seed * 1000 + 17 + self.context.rank + self.step)
        LOGGER.info('resumed from %s at epoch %d, step %d', path, self.epoch, self.step)

    # ---------------------------------------------------------------- loop

    def _out_of_time(self):
        """Return True when the wall-clock budget is spent (agreed by all ranks)."""
        spent = self.max_seconds is not None and \
            time.monotonic() - self.start_time >= self.max_seconds
        if self.context.distributed:
            flag = torch.tensor([1.0 if spent else 0.0])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            spent = bool(flag.item() > 0)
        return spent

    def _loader(self, epoch, skip_batches):
        """Return the DataLoader of one epoch, skipping the batches already done."""
        _set_dataset_epoch(self.train_set, epoch)
        sampler = DistributedSampler(self.train_set, num_replicas=self.context.world_size,
                                     rank=self.context.rank, shuffle=True, seed=self.cfg.seed,
                                     drop_last=True)
        sampler.set_epoch(epoch)
        generator = torch.Generator()
        generator.manual_seed(self.cfg.seed * 7919 + epoch)
        sampler = _SkipSampler(sampler, skip_batches * self.cfg.batch_size,
                               self._samples_per_epoch_per_process())
        workers = self.cfg.data.num_workers
        return DataLoader(self.train_set, batch_size=self.cfg.batch_size, sampler=sampler,
                          num_workers=workers, drop_last=True, collate_fn=_collate,
                          worker_init_fn=_worker_init, generator=generator,
                          pin_memory=self.device.type == 'cuda',
                          persistent_workers=False, prefetch_factor=4 if workers else None)

    def _samples_per_epoch_per_process(self):
        """Return the samples one process sees per epoch (``data.epoch_samples`` or all)."""
        total = len(self.train_set)
        if self.cfg.data.epoch_samples > 0:
            total = min(total, self.cfg.data.epoch_samples)
        return total // self.context.world_size

    def steps_per_epoch(self):
        """Optimiser steps in one epoch."""
        return self._samples_per_epoch_per_process() // self.cfg.batch_size

    def _train_step(self, batch):
        """One optimiser step; returns the loss terms as floats."""
        images, object_index, target_pose9d, batch = batch_targets(
            batch, self.model_core, self.device)
        beta_vae = losses.beta_vae_schedule(self.epoch)
        autocast = torch.autocast('cuda', dtype=torch.float16) if self.use_amp else \
            contextlib.nullcontext()
        with autocast:
            output = self.model(images, object_index, target_pose9d)
            terms = losses.compute_losses(output, batch, self.cfg.loss, beta_vae=beta_vae,
                                          object_corners=self.object_corners)
        total = terms['total']
        if not torch.isfinite(total):
            raise FloatingPointError('non-finite training loss at step %d: %s'
                                     % (self.step, {k: float(v) for k, v in terms.items()}))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.optim.grad_clip_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model_core.parameters(),
                                           self.cfg.optim.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values = {name: float(value.detach()) for name, value in terms.items()}
        values['beta_vae'] = float(beta_vae)
        return values

    def _log_train(self, means, samples_per_s):
        """Write one CSV row and the TensorBoard scalars (rank 0)."""
        if not self.context.is_main:
            return
        row = {'step': self.step, 'epoch': self.epoch,
               'lr': self.optimizer.param_groups[0]['lr'],
               'samples_per_s': samples_per_s}
        row.update(means)
        self.train_log.write(row)
        for name, value in row.items():
            if name not in ('step', 'epoch'):
                self.writer.add_scalar('train/' + name, value, self.step)

    def validate(self):
        """
        Root-relative hand MJE and object MCE (mm) on the validation set (rank 0 computes).

        The object pose is placed at the true wrist, so the MCE measures the pose relative
        to the hand (as a ground-truth crop gives it).

        :return: dict (``val_root_relative_mje_mm``, ``val_object_mce_mm``,
            ``val_classifier_accuracy``) on rank 0, empty elsewhere.
        """
        result = {}
        if self.context.is_main:
            result = evaluate_relative(self.model_core, self.val_set, self.cfg.batch_size,
                                       self.device, self.cfg.data.num_workers)
            row = {'step': self.step, 'epoch': self.epoch}
            row.update(result)
            self.val_log.write(row)
            for name, value in result.items():
                self.writer.add_scalar('val/' + name, value, self.step)
            self.writer.flush()
            LOGGER.info('validation at step %d: %s', self.step,
                        ', '.join('%s %.2f' % item for item in result.items()))
        if self.context.distributed:
            torch.distributed.barrier()
        return result

    def _save_last(self):
        """Save ``last.pt``."""
        self.save(os.path.join(self.checkpoint_dir, LAST_CHECKPOINT))

    def run(self):
        """
        Train until the last epoch, ``max_steps``, the time budget or Ctrl-C.

        A first Ctrl-C (SIGINT; single process, main thread) finishes the current step, saves
        ``last.pt`` and returns; a second one interrupts at once.

        :return: ``'finished'``, ``'max_steps'``, ``'time_budget'`` or ``'interrupted'``.
        """
        self._stop_requested = False
        if self.context.distributed or threading.current_thread() is not threading.main_thread():
            return self._run()
        previous = signal.getsignal(signal.SIGINT)

        def request_stop(signum, frame):
            self._stop_requested = True
            signal.signal(signal.SIGINT, previous)
            LOGGER.warning('Ctrl-C: stopping after this step and saving %s (press again to '
                           'abort without saving)',
                           os.path.join(self.checkpoint_dir, LAST_CHECKPOINT))

        signal.signal(signal.SIGINT, request_stop)
        try:
            return self._run()
        finally:
            signal.signal(signal.SIGINT, previous)

    def _run(self):
        """Run the training loop of :meth:`run`."""
        from tqdm import tqdm

        cfg = self.cfg
        steps_per_epoch = self.steps_per_epoch()
        last_checkpoint_time = time.monotonic()
        reason = 'finished'
        running = _RunningMeans()
        while self.epoch < cfg.epochs:
            self._train_mode()
            loader = self._loader(self.epoch, self.batch_in_epoch)
            bar = tqdm(total=steps_per_epoch, initial=self.batch_in_epoch,
                       desc='epoch %d/%d' % (self.epoch + 1, cfg.epochs),
                       disable=not self.show_progress, dynamic_ncols=True, leave=False)
            tick = time.monotonic()
            samples_since_tick = 0
            stop = None
            for batch in loader:
                values = self._train_step(batch)
                self.step += 1
                self.batch_in_epoch += 1
                samples_since_tick += cfg.batch_size * self.context.world_size
                running.add(values)
                bar.update(1)
                means = running.means()
                bar.set_postfix({key: '%.3g' % means[key] for key in PROGRESS_TERMS
                                 if key in means}, refresh=False)
                if self.step % cfg.log_every_steps == 0:
                    now = time.monotonic()
                    self._log_train(running.means(), samples_since_tick / max(now - tick, 1e-9))
                    running.reset()
                    tick = now
                    samples_since_tick = 0
                if cfg.val_every_steps and self.step % cfg.val_every_steps == 0:
                    self.validate()
                    self._train_mode()
                if cfg.max_steps and self.step >= cfg.max_steps:
                    stop = 'max_steps'
                elif self._out_of_time():
                    stop = 'time_budget'
                elif self._stop_requested:
                    stop = 'interrupted'
                if stop:
                    break
                if cfg.checkpoint_every_minutes > 0 and \
                        time.monotonic() - last_checkpoint_time >= \
                        cfg.checkpoint_every_minutes * 60.0:
                    self._save_last()
                    last_checkpoint_time = time.monotonic()
            bar.close()
            del loader
            if stop:
                reason = stop
                if running.count:
                    self._log_train(running.means(), float('nan'))
                if self.batch_in_epoch >= steps_per_epoch:
                    self._end_epoch()
                self._save_last()
                break
            self._end_epoch()
            self._save_last()
        else:
            self._save_last()
        if self.writer is not None:
            self.writer.flush()
        self._sync_buffers()
        LOGGER.info('training stopped (%s) at epoch %d, step %d', reason, self.epoch, self.step)
        return reason

    def _train_mode(self):
        """Training mode, except the frozen modules (their BatchNorm keeps its statistics)."""
        self.model.train()
        for module in self.frozen:
            module.eval()

    def _end_epoch(self):
        """Finish an epoch: validation, scheduler step, epoch checkpoint."""
        if not self.cfg.val_every_steps:
            self.validate()
        self.epoch += 1
        self.batch_in_epoch = 0
        self.scheduler.step()
        if self.cfg.keep_epoch_checkpoints:
            self.save(os.path.join(self.checkpoint_dir, 'epoch_%03d.pt' % self.epoch))

    def _sync_buffers(self):
        """Give every rank rank 0's BatchNorm statistics (parameters are already equal)."""
        if not self.context.distributed:
            return
        for buffer in self.model_core.buffers():
            torch.distributed.broadcast(buffer.data, src=0)

    def close(self):
        """Close the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@torch.no_grad()
def evaluate_relative(model, dataset, batch_size, device, num_workers=0):
    """
    Wrist-relative accuracy of a model: the validation pass of training.

    :param model: the network (``predict`` is called with the true object class).
    :param dataset: dataset of ``to_tensors()`` dicts.
    :param batch_size: batch size.
    :param device: torch device.
    :param num_workers: DataLoader workers.
    :return: dict ``val_root_relative_mje_mm`` (mean over joints and samples),
        ``val_object_mce_mm`` (8 box corners, the object placed relative to the true wrist)
        and ``val_classifier_accuracy``.
    """
    catalogue = load_object_catalogue()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=_collate, worker_init_fn=_worker_init)
    joint_errors = []
    corner_errors = []
    correct = 0
    for batch in loader:
        images = batch['image'].to(device)
        object_index = model.object_indices(batch['object_id'].to(device))
        prediction = model.predict(images, object_index)
        joint_errors.append(metrics.root_relative_mje_mm(
            prediction.joints.double().cpu().numpy(), batch['joints_rel'].double().numpy()))
        for i, object_id in enumerate(batch['object_id'].tolist()):
            if object_id not in catalogue:
                continue  # e.g. ObMan's ShapeNet objects: no mesh at hand
            corner_errors.append(metrics.object_mce_mm(
                prediction.object_rotation[i].double().cpu().numpy(),
                prediction.object_translation[i].double().cpu().numpy(),
                batch['object_rotation'][i].double().numpy(),
                batch['object_translation_rel'][i].double().numpy(),
                catalogue.get(object_id).vertices))
        correct += int((prediction.object_probs.argmax(dim=1) == object_index).sum())
    joint_errors = np.concatenate(joint_errors)
    return {
        'val_root_relative_mje_mm': float(joint_errors.mean()),
        'val_object_mce_mm': float(np.concatenate(corner_errors).mean()) if corner_errors
        else float('nan'),
        'val_classifier_accuracy': correct / max(len(joint_errors), 1),
    }


# --------------------------------------------------------------------------------------------
# Export and the command line
# --------------------------------------------------------------------------------------------


def export_inference_checkpoint(model, cfg, path):
    """
    Write the small inference-only checkpoint: float16 weights, config, no optimiser state.

    :param model: the trained network.
    :param cfg: :class:`TrainConfig` (stored for the record; the model config is inside).
    :param path: output file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    checkpoint_io.save_checkpoint(path, model, float16=True, extra={
        'train_config': config_to_dict(cfg),
        'catalogue_ids': list(load_object_catalogue().ids),
    })
    LOGGER.info('wrote the float16 inference checkpoint %s (%.1f MiB)', path,
                os.path.getsize(path) / 2 ** 20)


def run_training(cfg, resume=None, max_minutes=None, export_fp16=None, show_progress=True):
    """
    Train (one process; under torchrun each process calls this) and return the network.

    :param cfg: :class:`TrainConfig`.
    :param resume: checkpoint to continue from, or None.
    :param max_minutes: wall-clock budget in minutes (None: none).
    :param export_fp16: path of the float16 inference checkpoint to write at the end.
    :param show_progress: tqdm progress bar on rank 0.
    :return: tuple (the unwrapped network, stop reason).
    """
    context = setup_distributed(_device_kind(cfg))
    trainer = None
    try:
        trainer = Trainer(cfg, context, resume=resume, max_minutes=max_minutes,
                          show_progress=show_progress)
        reason = trainer.run()
        if export_fp16 and context.is_main:
            export_inference_checkpoint(trainer.model_core, cfg, export_fp16)
        return trainer.model_core, reason
    finally:
        if trainer is not None:
            trainer.close()
        if context.initialized:
            torch.distributed.destroy_process_group()


def _config_from_checkpoint(path, overrides):
    """Return the resolved training config saved in a checkpoint, with overrides applied."""
    payload = checkpoint_io.read_checkpoint(path)
    data = (payload.get('extra') or {}).get('train_config')
    if data is None:
        raise checkpoint_io.CheckpointError('%s holds no training config' % path)
    apply_overrides(data, overrides)
    return config_from_dict(TrainConfig, data)


def build_arg_parser():
    """Return the argparse parser of the command line."""
    parser = argparse.ArgumentParser(
        prog='hand_object_pose_train',
        description='Train the hand-object network (paper recipe; see config/train_*.yaml).')
    parser.add_argument('--config', help='training config YAML (config/train_*.yaml); '
                        'optional with --resume (the checkpoint carries its config)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config value, e.g. '
                        '--set optim.learning_rate=2e-4 (repeatable)')
    parser.add_argument('--resume', metavar='PATH', help='continue from a checkpoint')
    parser.add_argument('--max-minutes', type=float, default=None,
                        help='wall-clock budget: checkpoint and stop cleanly when spent')
    parser.add_argument('--export-fp16', metavar='PATH', default=None,
                        help='at the end, write the float16 inference-only checkpoint here')
    parser.add_argument('--export-only', action='store_true',
                        help='with --resume and --export-fp16: write the float16 checkpoint of '
                        'the --resume checkpoint without training')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv=None):
    """
    Command-line entry point.

    :param argv: arguments (default ``sys.argv[1:]``).
    :return: process exit status.
    """
    args = build_arg_parser().parse_args(argv)

    def train():
        if args.config:
            cfg = load_train_config(args.config, args.overrides)
        elif args.resume:
            cfg = _config_from_checkpoint(args.resume, args.overrides)
        else:
            raise ConfigError('give --config (or --resume with a checkpoint)')
        if args.export_only:
            if not (args.resume and args.export_fp16):
                raise ConfigError('--export-only needs --resume and --export-fp16')
            from hand_object_pose_ros.modeling import load_model_from_checkpoint

            model = load_model_from_checkpoint(args.resume)
            export_inference_checkpoint(model, cfg, args.export_fp16)
            print('wrote %s from %s' % (args.export_fp16, args.resume))
            return
        _, reason = run_training(cfg, resume=args.resume, max_minutes=args.max_minutes,
                                 export_fp16=args.export_fp16, show_progress=not args.no_progress)
        print('training stopped: %s; checkpoint %s' % (
            reason, os.path.join(cfg.output_dir, CHECKPOINT_DIR, LAST_CHECKPOINT)))

    return run_command('hand_object_pose_train', train,
                       (ConfigError, FileNotFoundError, checkpoint_io.CheckpointError))


if __name__ == '__main__':
    sys.exit(main())
