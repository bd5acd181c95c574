"""The analysis scripts under scripts/ that the model card quotes, on rendered samples."""

import importlib.util
import json
import math
import os

from helpers import REPO_ROOT
from helpers import TINY_MODEL
import numpy as np
import pytest
import torch

from hand_object_pose_ros import evaluate
from hand_object_pose_ros.config import config_from_dict
from hand_object_pose_ros.config import ModelConfig
from hand_object_pose_ros.modeling import build_model
from hand_object_pose_ros.modeling import save_checkpoint

pytestmark = pytest.mark.usefixtures('one_torch_thread')


def _load_script(name):
    """Import scripts/<name>.py as a module."""
    path = os.path.join(REPO_ROOT, 'scripts', name + '.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_object_error_bounds_scores_the_network_as_evaluate_does(tmp_path):
    torch.manual_seed(0)
    checkpoint = str(tmp_path / 'tiny.pt')
    save_checkpoint(checkpoint, build_model(config_from_dict(ModelConfig, TINY_MODEL)))
    bounds = _load_script('object_error_bounds')
    count = 6
    results = bounds.compute_bounds(checkpoint, '', '', num_train=8, num_heldout=count)
    assert results['count'] == count
    for key, _ in bounds.ROWS:
        assert math.isfinite(results[key]) and results[key] > 0.0, key
    assert 0.0 <= results['long_axis_error_deg'] <= 90.0
    assert 0.0 <= results['rotation_error_deg'] <= 180.0
    # Same samples, same crops, same frames (left hands included): the same MCE as evaluate.
    out = tmp_path / 'eval'
    assert evaluate.main(['--checkpoint', checkpoint, '--num-samples', str(count),
                          '--crop-mode', 'gt', '--batch-size', '4',
                          '--output-dir', str(out)]) == 0
    report = json.loads((out / 'results.json').read_text())
    assert results['network'] == pytest.approx(report['results']['gt']['total']['mce_mm'],
                                               rel=1e-6)


def test_palm_axes_are_a_rotation():
    bounds = _load_script('object_error_bounds')
    joints = np.random.default_rng(3).normal(0.0, 0.05, (21, 3))
    axes = bounds.hand_axes(joints)
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-9)
    assert np.linalg.det(axes) == pytest.approx(1.0)
    # The first axis points from the wrist to the middle finger's first joint.
    direction = (joints[9] - joints[0]) / np.linalg.norm(joints[9] - joints[0])
    np.testing.assert_allclose(axes[:, 0], direction, atol=1e-9)
