#!/usr/bin/env python3
r"""
Probe whether a checkpoint's frozen backbone features carry the held object's 6D pose.

Runs the checkpoint's backbone once over ``--num-train`` training crops and ``--num-heldout``
held-out crops (ground-truth boxes, no augmentation), keeps the two feature tensors the object
heads read (the CVAE's stride-8 map and the pooled vector), then fits small fresh heads on
them for ``--seconds`` each and reports the held-out mean corner error and rotation error:

- ``network``: the checkpoint's own object head (image encoder -> z = mu -> pose decoder);
- ``pooled``: an MLP on the pooled features (+ one-hot y), box-corner loss;
- ``map``: three convolutions on the stride-8 map, then an MLP (+ y), box-corner loss;
- ``map-l2``: the same on the paper's 9-D L2 loss.

If no head gets far below the network's own figure, the features lack the information and
the backbone has to learn it (more data, longer training, an auxiliary signal); if a head does,
the object head is what falls short. The MCE here places the object at the true wrist plus
the predicted offset, as ``evaluate`` does with ground-truth boxes.

Usage::

    .venv/bin/python scripts/probe_object_features.py --checkpoint models/demo_lite.pt \
        --train-root data/synth_train_128 --heldout-root data/synth_heldout_128
"""

import argparse
import copy
import os
import sys
import time

import torch
from torch import nn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from hand_object_pose_ros import geometry  # noqa: E402
from hand_object_pose_ros import losses  # noqa: E402
from hand_object_pose_ros.data.shards import ShardDataset  # noqa: E402
from hand_object_pose_ros.modeling.checkpoint import load_model_from_checkpoint  # noqa: E402
from hand_object_pose_ros.train import _collate  # noqa: E402
from hand_object_pose_ros.train import batch_targets  # noqa: E402

BATCH_SIZE = 64
LOG_EVERY_STEPS = 500


def cache_features(model, root, count):
    """
    Run the frozen backbone over the first ``count`` samples of a shard directory.

    :param model: the checkpoint's network (eval mode, CPU).
    :param root: shard directory.
    :param count: number of samples.
    :return: dict: ``map`` (N, C, m, m) float16, ``pooled`` (N, D), ``pose9d`` (N, 9) targets
        (metres, camera axes, wrist origin), ``index`` (N,) class indices.
    """
    dataset = ShardDataset(root)
    count = min(count, len(dataset))
    parts = {'map': [], 'pooled': [], 'pose9d': [], 'index': []}
    with torch.no_grad():
        for start in range(0, count, BATCH_SIZE):
            batch = _collate([dataset[i] for i in range(start, min(count, start + BATCH_SIZE))])
            images, index, pose9d, _ = batch_targets(batch, model, torch.device('cpu'))
            pyramid = model.backbone(images)
            parts['map'].append(pyramid[model.cfg.cvae.feature_level].half())
            parts['pooled'].append(model._pooled(pyramid))
            parts['pose9d'].append(pose9d)
            parts['index'].append(index)
    return {name: torch.cat(values) for name, values in parts.items()}


def pose_errors(pred_pose9d, data, corners):
    """
    Return (mean corner error mm, mean rotation error degrees) of predicted poses.

    :param pred_pose9d: (N, 9) predictions.
    :param data: cached dict of :func:`cache_features`.
    :param corners: (K, 8, 3) box corners per class index, metres.
    """
    mce_mm = losses.pose_corner_loss(pred_pose9d, data['pose9d'], corners[data['index']],
                                     unit_scale=1000.0)
    pred_rotation, _ = geometry.pose9d_to_rt(pred_pose9d)
    true_rotation, _ = geometry.pose9d_to_rt(data['pose9d'])
    relative = pred_rotation.transpose(1, 2) @ true_rotation
    cosine = (relative.diagonal(dim1=1, dim2=2).sum(-1) - 1.0) / 2.0
    angle = torch.rad2deg(torch.arccos(cosine.clamp(-1.0, 1.0)))
    return float(mce_mm), float(angle.mean())


class PooledHead(nn.Module):
    """MLP on the pooled features and the one-hot class: (N, D) -> (N, 9)."""

    def __init__(self, pooled_size, num_objects):
        super().__init__()
        self.num_objects = num_objects
        self.layers = nn.Sequential(
            nn.Linear(pooled_size + num_objects, 512), nn.BatchNorm1d(512), nn.LeakyReLU(0.2),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2), nn.Linear(256, 9))

    def forward(self, data):
        condition = nn.functional.one_hot(data['index'], self.num_objects).float()
        return self.layers(torch.cat((data['pooled'], condition), 1))


class MapHead(nn.Module):
    """Convolutions on the stride-8 map, then an MLP with the class: (N, C, m, m) -> (N, 9)."""

    def __init__(self, channels, map_size, num_objects):
        super().__init__()
        self.num_objects = num_objects
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 128, 3, padding=1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 128, 3, stride=2, padding=1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
            nn.Conv2d(128, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2))
        flat = 64 * ((map_size + 3) // 4) ** 2
        self.layers = nn.Sequential(nn.Linear(flat + num_objects, 256), nn.LeakyReLU(0.2),
                                    nn.Linear(256, 9))

    def forward(self, data):
        condition = nn.functional.one_hot(data['index'], self.num_objects).float()
        features = self.convs(data['map'].float()).flatten(1)
        return self.layers(torch.cat((features, condition), 1))


def fit_head(head, loss_name, train, heldout, corners, seconds, label):
    """
    Fit a head on cached features with Adam (lr 1e-3, batch 64) for ``seconds``.

    :param loss_name: ``corner`` (box-corner distance + translation L2) or ``l2`` (the
        paper's 9-D L2).
    :return: tuple (steps, held-out MCE mm, held-out rotation error degrees).
    """
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    scale = torch.ones(9)
    scale[:3] = 10.0
    count = train['index'].shape[0]
    steps, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        head.train()
        chosen = torch.randint(0, count, (BATCH_SIZE,))
        batch = {name: value[chosen] for name, value in train.items()}
        pred = head(batch)
        if loss_name == 'l2':
            loss = ((pred - batch['pose9d']) * scale).pow(2).mean()
        else:
            loss = (losses.pose_corner_loss(pred, batch['pose9d'], corners[batch['index']])
                    + ((pred[:, :3] - batch['pose9d'][:, :3]) * 10.0).pow(2).mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if steps % LOG_EVERY_STEPS == 0:
            head.eval()
            with torch.no_grad():
                print('  %s step %d: held-out MCE %.1f mm, rotation %.1f deg'
                      % ((label, steps) + pose_errors(head(heldout), heldout, corners)),
                      flush=True)
    head.eval()
    with torch.no_grad():
        return (steps,) + pose_errors(head(heldout), heldout, corners)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--train-root', default='data/synth_train_128')
    parser.add_argument('--heldout-root', default='data/synth_heldout_128')
    parser.add_argument('--num-train', type=int, default=6000)
    parser.add_argument('--num-heldout', type=int, default=500)
    parser.add_argument('--seconds', type=float, default=180.0, help='fitting time per head')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    for root in (args.train_root, args.heldout_root):
        if not os.path.isdir(root):
            parser.error('shard directory %s does not exist (models/README.md has the command '
                         'that writes it)' % root)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_model_from_checkpoint(args.checkpoint, device=torch.device('cpu')).float()
    model.eval()
    start = time.monotonic()
    train = cache_features(model, args.train_root, args.num_train)
    heldout = cache_features(model, args.heldout_root, args.num_heldout)
    print('features of %d training and %d held-out crops in %.0f s: map %s, pooled %s'
          % (train['index'].shape[0], heldout['index'].shape[0], time.monotonic() - start,
             tuple(train['map'].shape[1:]), tuple(train['pooled'].shape[1:])), flush=True)
    corners = losses.object_box_corners(model.object_ids)
    num_objects = len(model.object_ids)
    rows = []
    if model.cfg.object_head == 'cvae':
        own = copy.deepcopy(model.object_head).eval()
        with torch.no_grad():
            pred = own.infer(heldout['map'].float(),
                             nn.functional.one_hot(heldout['index'], num_objects).float())
        rows.append(('network (its own head)', '-', 0) + pose_errors(pred, heldout, corners))
    channels, map_size = train['map'].shape[1], train['map'].shape[-1]
    heads = (('pooled', 'corner', PooledHead(train['pooled'].shape[1], num_objects)),
             ('map', 'corner', MapHead(channels, map_size, num_objects)),
             ('map-l2', 'l2', MapHead(channels, map_size, num_objects)))
    for label, loss_name, head in heads:
        result = fit_head(head, loss_name, train, heldout, corners, args.seconds, label)
        rows.append((label, loss_name) + result)
    print('\n| head | loss | steps | held-out MCE (mm) | rotation error (deg) |')
    print('|---|---|---:|---:|---:|')
    for label, loss_name, steps, mce_mm, angle in rows:
        print('| %s | %s | %d | %.1f | %.1f |' % (label, loss_name, steps, mce_mm, angle))
    return 0


if __name__ == '__main__':
    sys.exit(main())
