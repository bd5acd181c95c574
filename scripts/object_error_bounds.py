#!/usr/bin/env python3
r"""
Split a checkpoint's object error into its parts and set it beside what simple knowledge buys.

On the held-out synthetic split (ground-truth boxes, as ``evaluate``), prints the mean corner
error (MCE, mm, the predicted pose at the true wrist) of:

- ``network``: the checkpoint's object pose (what ``evaluate`` reports);
- ``network rotation, true translation`` and ``true rotation, network translation``: which
  of the two parts the network's error comes from;
- ``class mean, camera axes``: the per-class mean pose relative to the wrist in camera axes
  (the object part of ``evaluate``'s mean-pose baseline);
- ``class mean, true hand frame``: the per-class mean pose relative to the palm frame of the
  TRUE joints (:func:`~hand_object_pose_ros.data.synthetic.palm_frame`), rotated by that
  frame: what knowing the hand exactly and the grasp only on average gives;
- ``class mean, network hand frame``: the same in the palm frame of the network's joints;
- ``true long axis and translation, random spin``: the true pose turned by a random angle
  about the object's longest box axis: all but the turn about that axis known;
- ``true translation, half turn about the long axis``: the look-alike pose of a box or a can.

Means are fitted on ``--num-train`` training shard samples (the chordal mean rotation and the
mean offset per class, as the baseline's). Also prints the network's mean rotation error and the
angle between its and the true long axis (random lines: 57.3 degrees on average). Left hands
are handled in the network's mirrored frame, as in inference.

Usage (about 2 minutes)::

    .venv/bin/python scripts/object_error_bounds.py --checkpoint models/demo_lite.pt \
        --train-root data/synth_train_128 --heldout-root data/synth_heldout_128
"""

import argparse
import os
import sys

import numpy as np
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from hand_object_pose_ros import evaluate  # noqa: E402
from hand_object_pose_ros import geometry  # noqa: E402
from hand_object_pose_ros import metrics  # noqa: E402
from hand_object_pose_ros.data.synthetic import palm_frame  # noqa: E402
from hand_object_pose_ros.modeling.checkpoint import load_model_from_checkpoint  # noqa: E402
from hand_object_pose_ros.objects import load_object_catalogue  # noqa: E402

ALL_CLASSES = 'all'
BATCH_SIZE = 32
ROWS = (
    ('network', 'network'),
    ('network_rotation', 'network rotation, true translation'),
    ('network_translation', 'true rotation, network translation'),
    ('mean_camera', 'class mean, camera axes'),
    ('mean_true_hand', 'class mean, true hand frame'),
    ('mean_network_hand', 'class mean, network hand frame'),
    ('random_spin', 'true long axis and translation, random spin'),
    ('half_turn', 'true translation, half turn about the long axis'),
)


def hand_axes(joints):
    """
    Palm frame of a right hand as a rotation.

    :param joints: (21, 3) joints, metres, any frame (the network's mirrored one for left hands).
    :return: (3, 3) frame_from_palm rotation: columns finger direction, palm normal, lateral.
    """
    _, normal, finger_direction, lateral = palm_frame(joints, True)
    return np.stack([finger_direction, normal, lateral], axis=1)


def network_frame(sample):
    """
    Return a sample's joints and object pose in the network's frame (mirrored for left hands).

    :param sample: HandObjectSample.
    :return: (joints (21, 3) metres, object rotation (3, 3), object translation (3,) metres).
    """
    sample = sample.in_right_hand_frame()
    return (np.asarray(sample.joints_cam, np.float64),
            np.asarray(sample.object_rotation, np.float64),
            np.asarray(sample.object_translation, np.float64))


def axis_rotation(axis, angle_rad):
    """
    Return the (3, 3) rotation of ``angle_rad`` about a unit ``axis`` (3,).

    :param axis: (3,) unit vector.
    :param angle_rad: angle, radians.
    """
    axis_angle = torch.as_tensor(np.asarray(axis, np.float64) * angle_rad)
    return geometry.axis_angle_to_matrix(axis_angle).numpy()


def fit_class_means(source, count):
    """
    Fit per-class mean object poses on training samples, in camera axes and in the palm frame.

    The rotation is the chordal mean (:func:`~hand_object_pose_ros.evaluate.mean_rotation`) and
    the offset the mean wrist-relative translation, as the mean-pose baseline's.

    :param source: :class:`~hand_object_pose_ros.evaluate.EvalSource` of the training shards.
    :param count: number of samples.
    :return: dict frame name -> {object id or ``ALL_CLASSES``: (rotation (3, 3), wrist-relative
        offset (3,) metres)}.
    """
    collected = {'camera': {}, 'hand': {}}
    for _, sample in evaluate.iterate_samples(source, count):
        joints, rotation, translation = network_frame(sample)
        axes = hand_axes(joints)
        offset = translation - joints[0]
        # Classes the training samples lack get the mean over all of them.
        for key in (int(sample.object_id), ALL_CLASSES):
            collected['camera'].setdefault(key, []).append((rotation, offset))
            collected['hand'].setdefault(key, []).append((axes.T @ rotation, axes.T @ offset))
    return {frame: {key: (evaluate.mean_rotation([rotation for rotation, _ in poses]),
                          np.mean([offset for _, offset in poses], axis=0))
                    for key, poses in per_class.items()}
            for frame, per_class in collected.items()}


def compute_bounds(checkpoint, train_root, heldout_root, num_train, num_heldout, seed=0):
    """
    Score the network and the reference poses on held-out samples.

    :param checkpoint: checkpoint path.
    :param train_root: training shard folder ('' renders the synthetic training split).
    :param heldout_root: held-out shard folder ('' renders the held-out split).
    :param num_train: training samples the class means are fitted on.
    :param num_heldout: held-out samples scored.
    :param seed: seed of the random spins.
    :return: dict: each ``ROWS`` key -> mean MCE (mm); ``rotation_error_deg``,
        ``long_axis_error_deg`` (the network's means) and ``count``.
    """
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    device = torch.device('cpu')
    model = load_model_from_checkpoint(checkpoint, device=device)
    input_size = int(model.cfg.input_size_px)
    predictor = evaluate.NetworkPredictor(model, device)
    train_source = evaluate.open_source('synthetic', train_root, 'train', input_size)
    heldout_source = evaluate.open_source('synthetic', heldout_root, None, input_size)
    corners_by_id = {}

    def catalogue_corners(object_id):
        if object_id not in corners_by_id:
            mesh = load_object_catalogue().get(object_id)
            corners_by_id[object_id] = metrics.box_corners(mesh.vertices)
        return corners_by_id[object_id]

    print('fitting class means on %d training samples' % num_train, flush=True)
    means = fit_class_means(train_source, num_train)
    camera_means, hand_means = means['camera'], means['hand']
    rng = np.random.default_rng(seed)
    errors = {key: [] for key, _ in ROWS}
    rotation_errors, long_axis_errors = [], []
    batch = []

    def score(items):
        inputs = [evaluate.network_input(sample, 'gt', None, 0.0, 0.0) for sample in items]
        predictions = predictor(inputs, [int(sample.object_id) for sample in items])
        for sample, prediction in zip(items, predictions):
            joints, true_rotation, true_translation = network_frame(sample)
            wrist = joints[0]
            object_id = int(sample.object_id)
            corners = catalogue_corners(object_id)
            extent = corners.max(0) - corners.min(0)
            long_axis = np.eye(3)[int(np.argmax(extent))]

            def mce(rotation, translation):
                return float(metrics.object_mce_mm(rotation[None], translation[None],
                                                   true_rotation[None], true_translation[None],
                                                   corners)[0])

            rotation = prediction.object_rotation
            translation = wrist + prediction.object_translation_rel
            errors['network'].append(mce(rotation, translation))
            errors['network_rotation'].append(mce(rotation, true_translation))
            errors['network_translation'].append(mce(true_rotation, translation))
            mean_rotation, mean_offset = camera_means.get(object_id, camera_means[ALL_CLASSES])
            errors['mean_camera'].append(mce(mean_rotation, wrist + mean_offset))
            mean_rotation, mean_offset = hand_means.get(object_id, hand_means[ALL_CLASSES])
            for key, hand in (('mean_true_hand', joints),
                              ('mean_network_hand', prediction.joints_rel + wrist)):
                axes = hand_axes(hand)
                errors[key].append(mce(axes @ mean_rotation, wrist + axes @ mean_offset))
            spin = axis_rotation(long_axis, rng.uniform(0.0, 2.0 * np.pi))
            errors['random_spin'].append(mce(true_rotation @ spin, true_translation))
            errors['half_turn'].append(mce(true_rotation @ axis_rotation(long_axis, np.pi),
                                           true_translation))
            rotation_errors.append(float(metrics.rotation_error_deg(rotation, true_rotation)[0]))
            cosine = abs(float((rotation @ long_axis) @ (true_rotation @ long_axis)))
            long_axis_errors.append(float(np.degrees(np.arccos(min(1.0, cosine)))))

    for _, sample in evaluate.iterate_samples(heldout_source, num_heldout):
        batch.append(sample)
        if len(batch) == BATCH_SIZE:
            score(batch)
            batch = []
    if batch:
        score(batch)
    results = {key: float(np.mean(values)) for key, values in errors.items()}
    results.update(rotation_error_deg=float(np.mean(rotation_errors)),
                   long_axis_error_deg=float(np.mean(long_axis_errors)),
                   count=len(errors['network']))
    return results


def main(argv=None):
    """Run the comparison and print the table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', default='models/demo_lite.pt')
    parser.add_argument('--train-root', default='data/synth_train_128',
                        help="training shards ('' renders them)")
    parser.add_argument('--heldout-root', default='data/synth_heldout_128',
                        help="held-out shards ('' renders them)")
    parser.add_argument('--num-train', type=int, default=4000)
    parser.add_argument('--num-heldout', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0, help='seed of the random spins')
    args = parser.parse_args(argv)
    results = compute_bounds(args.checkpoint, args.train_root, args.heldout_root,
                             args.num_train, args.num_heldout, args.seed)
    print('\n%s, %d held-out samples, ground-truth boxes\n' % (args.checkpoint,
                                                               results['count']))
    print('| object pose | MCE (mm) |')
    print('|---|---:|')
    for key, title in ROWS:
        print('| %s | %.1f |' % (title, results[key]))
    print('\nnetwork: rotation error %.1f deg, long-axis error %.1f deg (random lines: 57.3)'
          % (results['rotation_error_deg'], results['long_axis_error_deg']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
