"""Evaluation command line: reports, plots, the mean-pose baseline, jittered crops, errors."""

import json
import math
import os

from helpers import TINY_MODEL
import numpy as np
from PIL import Image
import pytest
import torch

from hand_object_pose_ros import evaluate
from hand_object_pose_ros.config import config_from_dict
from hand_object_pose_ros.config import ModelConfig
from hand_object_pose_ros.data.synthetic import SyntheticConfig
from hand_object_pose_ros.data.synthetic import SyntheticHandObjectGenerator
from hand_object_pose_ros.inference import project
from hand_object_pose_ros.modeling import build_model
from hand_object_pose_ros.modeling import save_checkpoint

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    """Save an (untrained) tiny network as a checkpoint; return its path."""
    torch.manual_seed(0)
    model = build_model(config_from_dict(ModelConfig, TINY_MODEL))
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
    save_checkpoint(str(path), model)
    return str(path)


def test_checkpoint_evaluation_writes_json_markdown_and_plots(tiny_checkpoint, tmp_path):
    """Both crop modes: finite totals, per-object rows summing to N, the PNGs."""
    out = tmp_path / 'eval'
    assert evaluate.main(['--checkpoint', tiny_checkpoint, '--num-samples', '3',
                          '--batch-size', '2', '--output-dir', str(out)]) == 0
    report = json.loads((out / 'results.json').read_text())
    assert report['run']['samples'] == 3
    for mode in ('gt', 'jitter'):
        result = report['results'][mode]
        total = result['total']
        for key in ('mje_abs_mm', 'mje_rr_mm', 'mje_pa_mm', 'mce_mm', 'mce_abs_mm', 'add_mm',
                    'adds_mm', 'add_s_mm', 'pen_mean_mm', 'pen_max_mm', 'chamfer_mm2',
                    'rotation_error_deg', 'translation_error_mm'):
            assert total[key] is not None and math.isfinite(total[key]), key
            assert total[key] >= 0.0, key
        assert total['mce_cm'] == pytest.approx(total['mce_mm'] / 10.0)
        assert total['adds_mm'] <= total['add_mm'] + 1e-9
        assert total['rotation_error_deg'] <= 180.0
        assert total['pen_mean_mm'] <= total['pen_max_mm'] + 1e-9
        assert sum(row['count'] for row in result['per_object'].values()) == 3
        assert len(result['per_joint_rr_mm']) == 21 and result['per_joint_rr_mm'][0] == 0.0
        curve = result['pck']['fraction']
        assert all(a <= b for a, b in zip(curve, curve[1:]))
        for name in ('per_joint_error_%s.png', 'pck_%s.png', 'object_error_hist_%s.png'):
            with Image.open(out / (name % mode)) as image:
                assert image.size[0] > 100
    # The jitter changes the crops, hence the network's output.
    assert report['results']['gt']['total']['mje_rr_mm'] != \
        report['results']['jitter']['total']['mje_rr_mm']
    markdown = (out / 'results.md').read_text()
    assert '| **Total** | 3 |' in markdown and 'Jittered hand box' in markdown
    first_id = next(iter(report['results']['gt']['per_object']))
    assert report['results']['gt']['per_object'][first_id]['name'] in markdown


def test_mean_pose_baseline_fitted_on_one_sample_is_exact_on_it(tmp_path):
    """The baseline fitted on one sample reproduces that sample's wrist-relative pose."""
    stats = tmp_path / 'mean_pose.json'
    assert evaluate.main(['--fit-baseline', str(stats), '--split', 'train',
                          '--num-samples', '1', '--input-size', '64']) == 0
    fitted = json.loads(stats.read_text())
    rotation = np.array(fitted['objects']['all']['rotation'])
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    out = tmp_path / 'baseline'
    assert evaluate.main(['--baseline', 'mean-pose', '--baseline-stats', str(stats),
                          '--split', 'train', '--num-samples', '1', '--input-size', '64',
                          '--crop-mode', 'gt', '--output-dir', str(out)]) == 0
    total = json.loads((out / 'results.json').read_text())['results']['gt']['total']
    for key in ('mje_rr_mm', 'mje_pa_mm', 'mce_mm', 'add_mm', 'chamfer_mm2'):
        assert total[key] < 1e-3, key
    assert total['class_accuracy'] is None


def test_left_hand_training_item_is_what_evaluation_scores_as_exact():
    """A left hand's training targets, read as a prediction, score zero error in its frame."""
    from hand_object_pose_ros.data.synthetic import sample_to_item
    from hand_object_pose_ros.objects import load_object_catalogue

    cfg = SyntheticConfig(crop_size_px=64, seed=3, left_hand_prob=1.0).clean()
    sample = SyntheticHandObjectGenerator(cfg).sample(0)
    assert not sample.is_right_hand
    item = sample_to_item(sample)
    net_input = evaluate.network_input(sample, 'gt', np.random.default_rng(0), 0.1, 0.1)
    assert net_input.mirrored
    # The network sees the same pixels in training as in evaluation and in the node.
    np.testing.assert_array_equal(
        (item['image'].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8),
        net_input.image)
    np.testing.assert_allclose(item['crop_K'].numpy(), net_input.network_K, atol=1e-4)
    prediction = evaluate.RawPrediction(
        item['joints_rel'].double().numpy(), item['vertices_rel'].double().numpy(),
        item['joints_2d_crop_px'].double().numpy(), item['object_rotation'].double().numpy(),
        item['object_translation_rel'].double().numpy(), sample.object_id, None)
    model = load_object_catalogue().get(sample.object_id)
    mesh = evaluate.ObjectMesh(np.asarray(model.vertices, np.float64),
                               np.asarray(model.faces, np.int64), False)
    values = evaluate.sample_metrics(sample, prediction, net_input, mesh, 64)
    for key in ('mje_rr_mm', 'mje_pa_mm', 'mce_mm', 'add_mm'):
        assert values[key] < 0.05, (key, values[key])


def test_jittered_crop_keeps_intrinsics_consistent():
    """After the re-crop, the new crop_K projects the joints where the pixels moved to."""
    sample = SyntheticHandObjectGenerator(SyntheticConfig(crop_size_px=64, seed=2)).sample(0)
    rng = np.random.default_rng(0)
    image, crop_K = evaluate.jitter_crop(sample.image, sample.crop_K,
                                         evaluate.hand_box_in_crop(sample), rng, 0.2, 0.2)
    assert image.shape == sample.image.shape
    affine = crop_K @ np.linalg.inv(np.asarray(sample.crop_K, np.float64))
    assert np.allclose(affine[2], [0, 0, 1], atol=1e-9)
    moved = np.asarray(sample.joints_2d_crop_px, np.float64) @ affine[:2, :2].T + affine[:2, 2]
    assert np.allclose(project(sample.joints_cam, crop_K), moved, atol=1e-2)
    assert not np.allclose(affine, np.eye(3))


def test_missing_dataset_root_is_named(tiny_checkpoint, tmp_path, capsys):
    """A missing DexYCB root: exit status 2 and the path in the message."""
    missing = str(tmp_path / 'nowhere')
    assert evaluate.main(['--checkpoint', tiny_checkpoint, '--dataset', 'dexycb',
                          '--root', missing]) == 2
    assert missing in capsys.readouterr().err


def test_checkpoint_of_another_architecture_names_tensors(tmp_path, capsys):
    """Weights that do not fit the stored config: the mismatching tensors are listed."""
    model = build_model(config_from_dict(ModelConfig, TINY_MODEL))
    path = str(tmp_path / 'bad.pt')
    save_checkpoint(path, model)
    payload = torch.load(path, weights_only=True)
    payload['model_config']['backbone']['fpn_channels'] = 8
    torch.save(payload, path)
    assert evaluate.main(['--checkpoint', path, '--num-samples', '1']) == 2
    error = capsys.readouterr().err
    assert 'shape mismatch' in error and 'backbone' in error


def test_missing_baseline_stats_is_named(tmp_path, capsys):
    """The baseline without its stats file names the path."""
    missing = str(tmp_path / 'none.json')
    assert evaluate.main(['--baseline', 'mean-pose', '--baseline-stats', missing]) == 2
    assert missing in capsys.readouterr().err
    assert not os.path.exists(missing)
