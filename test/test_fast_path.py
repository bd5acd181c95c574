"""The fast inference paths agree with the reference path (model.predict) within TOLERANCES."""

import importlib.util
import os

import numpy as np
import pytest
import torch
from torch import nn

from hand_object_pose_ros.config import load_model_config
from hand_object_pose_ros.inference import Predictor
from hand_object_pose_ros.inference import PredictorError
from hand_object_pose_ros.modeling import build_model
from hand_object_pose_ros.modeling import optimize

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {name: os.path.join(REPO_ROOT, 'config', 'model_%s.yaml' % name)
           for name in ('lite', 'paper')}
SMALL_INPUT = ('input_size_px=64',)
HAS_ONNXRUNTIME = importlib.util.find_spec('onnxruntime') is not None
FAST_MODES = ['fused', pytest.param('onnxruntime', marks=pytest.mark.skipif(
    not HAS_ONNXRUNTIME, reason='onnxruntime is not installed'))]


def _model_with_trained_statistics(config_name, seed=0):
    """
    Return an eval-mode network whose BatchNorms hold non-trivial statistics.

    Fresh BatchNorms (mean 0, variance 1, weight 1, bias 0) would make folding them nearly an
    identity; random statistics make a wrong fold visible.
    """
    torch.manual_seed(seed)
    model = build_model(load_model_config(CONFIGS[config_name], SMALL_INPUT)).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                size = module.num_features
                module.running_mean.copy_(0.2 * torch.randn(size, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
                module.weight.copy_(0.8 + 0.4 * torch.rand(size, generator=generator))
                module.bias.copy_(0.1 * torch.randn(size, generator=generator))
    return model


@pytest.fixture(scope='module', params=sorted(CONFIGS))
def model(request):
    """Return a small-input network of each config (lite, paper), random BN statistics."""
    return _model_with_trained_statistics(request.param)


@pytest.fixture(scope='module')
def fused(model):
    """Return the fused runner of ``model`` (prepared once per config)."""
    return optimize.prepare_inference(model, 'fused')


def _crops(model, batch, seed=0):
    size = model.cfg.input_size_px
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_within_tolerance(reference, candidate):
    differences = optimize.max_abs_differences(reference, candidate)
    for name, value in differences.items():
        assert value <= optimize.TOLERANCES[name], (name, value, differences)
    assert torch.equal(reference.object_index.cpu(), candidate.object_index.cpu())


@pytest.mark.parametrize('mode', FAST_MODES)
def test_fast_path_agrees_with_reference(model, fused, mode):
    """Given and classifier-picked classes, batch 3 (not the export batch of 2) and 1."""
    runner = fused if mode == 'fused' else optimize.prepare_inference(model, mode)
    assert runner.mode == mode
    images = _crops(model, 3)
    given = torch.tensor([0, model.num_objects - 1, 5])
    _assert_within_tolerance(model.predict(images, given), runner.predict(images, given))
    _assert_within_tolerance(model.predict(images), runner.predict(images))
    single = _crops(model, 1, seed=3)
    _assert_within_tolerance(model.predict(single), runner.predict(single))


def test_fusion_folds_every_batch_norm_and_leaves_the_model_unchanged(model):
    before = {name: value.clone() for name, value in model.state_dict().items()}
    runner = optimize.prepare_inference(model, 'fused').runner
    graph = runner.graph.network
    remaining = [name for name, module in graph.named_modules()
                 if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert remaining == []
    assert runner.folded_batch_norms > 20
    # The training-only decoders are not part of the prepared graph.
    assert getattr(graph.object_head, 'image_decoder', None) is None
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert not model.training


def test_fuse_batch_norms_matches_eval_module():
    """Conv + BN and Linear + BN folds reproduce the eval-mode output exactly enough."""
    torch.manual_seed(0)
    conv_net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Conv2d(8, 4, 1, bias=False), nn.BatchNorm2d(4))
    fc_net = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.LeakyReLU(0.2))
    for net, shape in ((conv_net, (2, 3, 9, 9)), (fc_net, (4, 6))):
        for module in net:
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.2, 2)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.5, 0.5)
        net.eval()
        inputs = torch.randn(*shape)
        expected = net(inputs)
        folded = optimize.fuse_batch_norms(net)
        assert folded == (2 if net is conv_net else 1)
        torch.testing.assert_close(net(inputs), expected, atol=1e-5, rtol=1e-5)


def test_object_index_checks_match_the_reference(model, fused):
    images = _crops(model, 2)
    for bad in ([0], [0, model.num_objects]):
        with pytest.raises(ValueError):
            model.predict(images, torch.tensor(bad))
        with pytest.raises(ValueError):
            fused.predict(images, torch.tensor(bad))


def test_check_agreement_rejects_another_network(model, fused):
    differences = optimize.check_agreement(model, fused)
    assert differences['joints_m'] <= optimize.TOLERANCES['joints_m']
    if model.cfg.backbone.architecture != 'resnet18':
        pytest.skip('one config is enough for the mismatch case')
    other = optimize.prepare_inference(_model_with_trained_statistics('lite', seed=7), 'fused')
    with pytest.raises(optimize.OptimizeError, match='disagrees'):
        optimize.check_agreement(model, other)


def test_fast_path_follows_weight_changes_of_the_model():
    """Weights changed after preparation (e.g. a checkpoint loaded) are picked up."""
    model = _model_with_trained_statistics('lite', seed=2)
    runner = optimize.prepare_inference(model, 'fused')
    images = _crops(model, 2)
    runner.predict(images)
    assert runner.rebuilds == 0
    with torch.no_grad():
        model.hand_head.fc[-1].weight.mul_(50.0)
        model.backbone.stem[1].running_var.mul_(3.0)
    _assert_within_tolerance(model.predict(images), runner.predict(images))
    assert runner.rebuilds == 1
    runner.predict(images)
    assert runner.rebuilds == 1


def test_fast_path_follows_a_replaced_parameter_and_buffer():
    """Assigning new tensors (not in-place) is seen too, through the registration hooks."""
    model = _model_with_trained_statistics('lite', seed=3)
    runner = optimize.prepare_inference(model, 'fused')
    images = _crops(model, 1)
    runner.predict(images)
    last = model.hand_head.fc[-1]
    last.weight = torch.nn.Parameter(last.weight.detach() * 40.0)
    _assert_within_tolerance(model.predict(images), runner.predict(images))
    assert runner.rebuilds == 1
    batch_norm = model.backbone.stem[1]
    batch_norm.running_var = batch_norm.running_var * 5.0
    _assert_within_tolerance(model.predict(images), runner.predict(images))
    assert runner.rebuilds == 2
    watch = optimize.WeightsWatch(model)
    assert watch.fingerprint() == optimize.weights_fingerprint(model)


def test_unknown_mode_is_rejected():
    with pytest.raises(PredictorError, match='optimize'):
        Predictor.from_config(CONFIGS['lite'], device='cpu', overrides=SMALL_INPUT,
                              optimize='tensorrt-please')


def _scene(size=(240, 320)):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, size + (3,), dtype=np.uint8)
    K = np.array([[300.0, 0.0, size[1] / 2], [0.0, 300.0, size[0] / 2], [0.0, 0.0, 1.0]])
    boxes = np.array([[60.0, 50.0, 160.0, 150.0], [170.0, 90.0, 260.0, 200.0]])
    return rgb, K, boxes


def test_predictor_default_path_agrees_with_reference():
    """Predictor's default (auto) against optimize='none', through crop and lift (lite)."""
    reference = Predictor.from_config(CONFIGS['lite'], device='cpu', overrides=SMALL_INPUT,
                                      optimize='none')
    fast = Predictor.from_config(CONFIGS['lite'], device='cpu', overrides=SMALL_INPUT)
    assert reference.optimize_mode == 'none'
    assert fast.optimize_mode in ('onnxruntime', 'fused')
    if HAS_ONNXRUNTIME:
        assert fast.optimize_mode == 'onnxruntime'
    rgb, K, boxes = _scene()
    depth = np.full(rgb.shape[:2], 0.6, np.float32)
    for kwargs in ({}, {'depth': depth, 'object_ids': [1, 'auto'],
                        'is_right_hand': [True, False]}):
        expected = reference.predict_batch(rgb, boxes, K, **kwargs)
        got = fast.predict_batch(rgb, boxes, K, **kwargs)
        for first, second in zip(expected, got):
            # The lift (least squares on the 2D joints) turns crop-pixel differences into
            # small metric ones: same bound as the wrist-relative outputs.
            np.testing.assert_allclose(second.hand_joints, first.hand_joints, atol=1e-4)
            np.testing.assert_allclose(second.hand_vertices, first.hand_vertices, atol=1e-4)
            np.testing.assert_allclose(second.object_translation, first.object_translation,
                                       atol=1e-4)
            np.testing.assert_allclose(second.object_rotation, first.object_rotation,
                                       atol=1e-3)
            assert second.object_id == first.object_id
            assert second.wrist_depth_source == first.wrist_depth_source


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('HAND_OBJECT_POSE_TEST_COMPILE'),
                    reason='torch.compile takes minutes on a 2-core CPU; set '
                           'HAND_OBJECT_POSE_TEST_COMPILE=1 to run it')
def test_compile_path_agrees_with_reference():
    model = _model_with_trained_statistics('lite')
    runner = optimize.prepare_inference(model, 'compile')
    images = _crops(model, 2)
    _assert_within_tolerance(model.predict(images), runner.predict(images))


def test_benchmark_suite_writes_side_by_side_figures(tmp_path, capsys):
    """The suite (model part only, one run) prints the table and writes every path's times."""
    import json

    from hand_object_pose_ros import benchmark

    out = tmp_path / 'bench.json'
    threads = torch.get_num_threads()
    try:
        status = benchmark.main(['suite', '--configs', CONFIGS['lite'], '--batches', '2',
                                 '--paths', 'naive', 'none', 'fused', '--runs', '1',
                                 '--warmup', '0', '--threads', '1', '--no-e2e',
                                 '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
    assert status == 0
    printed = capsys.readouterr().out
    assert 'x nv' in printed and 'fused' in printed
    report = json.loads(out.read_text())
    (row,) = report['rows']
    assert row['batch'] == 2 and row['threads'] == 1
    assert set(row['model']) == {'naive', 'none', 'fused'}
    assert all(times['median_ms'] > 0 for times in row['model'].values())
    assert row['predictor']['none']['median_ms'] > 0
    assert row['markers_ms']['build_serialized'] > 0
    assert row['rss_mb'] > 0 and report['end_to_end'] == []


def test_node_overhead_uses_the_nodes_own_time_when_camera_bound():
    from hand_object_pose_ros.ros.benchmark import _add_overheads

    rows = [{'config': 'lite.yaml', 'device': 'cpu', 'batch': 1,
             'model': {'onnxruntime': {'median_ms': 20.0}}}]
    common = {'config': 'lite.yaml', 'device': 'cpu', 'resolved_mode': 'onnxruntime',
              'input_rate_hz': 30.0, 'latency_ms': {'p50': 26.0}}
    camera_bound = dict(common, throughput_fps=29.9, node={'processing_ms_mean': 22.0})
    node_bound = dict(common, throughput_fps=10.0, node={'processing_ms_mean': 95.0})
    _add_overheads(rows, [camera_bound, node_bound])
    assert camera_bound['overhead']['camera_bound']
    assert camera_bound['overhead']['overhead_ms'] == pytest.approx(2.0)
    assert camera_bound['overhead']['fraction_percent'] == pytest.approx(100.0 * 2 / 22)
    assert camera_bound['overhead']['latency_overhead_ms'] == pytest.approx(6.0)
    assert not node_bound['overhead']['camera_bound']
    assert node_bound['overhead']['frame_time_ms'] == pytest.approx(100.0)
    assert node_bound['overhead']['overhead_ms'] == pytest.approx(80.0)
