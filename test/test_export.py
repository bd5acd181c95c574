"""The ONNX export command writes a valid file whose outputs agree with PyTorch."""

import importlib.util
import os

import numpy as np
import pytest
import torch

from hand_object_pose_ros import export
from hand_object_pose_ros.config import load_model_config
from hand_object_pose_ros.modeling import build_model
from hand_object_pose_ros.modeling import optimize
from hand_object_pose_ros.modeling import save_checkpoint

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LITE = os.path.join(REPO_ROOT, 'config', 'model_lite.yaml')
needs_onnxruntime = pytest.mark.skipif(importlib.util.find_spec('onnxruntime') is None,
                                       reason='onnxruntime is not installed')
needs_onnx = pytest.mark.skipif(importlib.util.find_spec('onnx') is None,
                                reason='onnx is not installed')


@needs_onnxruntime
def test_export_from_config_checks_against_pytorch(tmp_path, capsys):
    out = tmp_path / 'lite.onnx'
    status = export.main(['--config', LITE, '--set', 'input_size_px=64', '--out', str(out),
                          '--check-batch', '3'])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert out.stat().st_size > 1e6
    assert 'check passed' in printed
    import onnxruntime
    session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == list(optimize.INPUT_NAMES)
    assert [o.name for o in session.get_outputs()] == list(optimize.OUTPUT_NAMES)
    # Dynamic batch: one crop, another size than the check's.
    images = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    outputs = dict(zip(optimize.OUTPUT_NAMES, session.run(
        None, {'images': images, 'requested_object_index': np.array([4], np.int64)})))
    assert outputs['vertices'].shape == (1, 778, 3)
    assert outputs['joints'].shape == (1, 21, 3)
    assert int(outputs['object_index'][0]) == 4
    rotation = outputs['object_rotation'][0].astype(np.float64)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)


@needs_onnxruntime
def test_export_from_checkpoint_keeps_the_trained_weights(tmp_path, capsys):
    torch.manual_seed(3)
    model = build_model(load_model_config(LITE, ('input_size_px=64', 'object_head=direct')))
    model.eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 2.0)
    checkpoint = save_checkpoint(tmp_path / 'model.pt', model)
    out = tmp_path / 'model.onnx'
    assert export.main(['--checkpoint', str(checkpoint), '--out', str(out)]) == 0
    assert 'check passed' in capsys.readouterr().out
    # Against the original in-memory model too (not only the reloaded one).
    differences = export.check_onnx_file(model, str(out), batch=2, seed=5)
    assert all(value <= optimize.TOLERANCES[name] for name, value in differences.items())


@needs_onnx
def test_exported_graph_is_valid_onnx_without_decoders(tmp_path):
    import onnx
    out = tmp_path / 'lite.onnx'
    assert export.main(['--config', LITE, '--set', 'input_size_px=64', '--out', str(out),
                        '--no-check']) == 0
    graph = onnx.load(str(out))
    onnx.checker.check_model(graph)
    ops = {node.op_type for node in graph.graph.node}
    assert 'BatchNormalization' not in ops  # folded into the convolutions
    assert 'ConvTranspose' not in ops  # the image decoder is not exported


def test_export_reports_a_missing_checkpoint(tmp_path, capsys):
    status = export.main(['--checkpoint', str(tmp_path / 'missing.pt'),
                          '--out', str(tmp_path / 'x.onnx')])
    assert status == 2
    assert 'missing.pt' in capsys.readouterr().err
    assert not (tmp_path / 'x.onnx').exists()
