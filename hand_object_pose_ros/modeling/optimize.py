"""
The fast path: inference-only copies of a trained network, behind one option.

``prepare_inference(model, mode)`` returns an object with ``predict(images, object_index=None)``
that gives the same :class:`hand_object_pose_ros.types.NetworkPrediction` as
``model.predict`` (the reference) within :data:`TOLERANCES`. Modes:

- ``none``: ``model.predict`` itself (eager float32, the reference path).
- ``fused``: a deep copy that keeps only the inference graph (backbone, hand head + MANO,
  classifier, image encoder -> z = mu -> pose decoder), with every BatchNorm folded into the
  convolution / linear layer before it, channels_last memory, run under
  ``torch.inference_mode``.
- ``compile``: ``fused`` plus ``torch.compile`` (inductor; needs a C compiler on the CPU).
  The first calls of each batch size compile (tens of seconds to minutes).
- ``onnxruntime``: the ``fused`` graph exported to ONNX in memory and run by ONNX Runtime
  (CPU; CUDA provider when the device is CUDA and the provider exists).
- ``auto``: the first of (CPU: ``onnxruntime`` when importable) ``fused`` that agrees with
  the reference on a check run once at preparation (:func:`check_agreement`), else ``none``.

The model given is never modified. All modes take and return tensors on the model's device.
"""

import copy
import io
import itertools
import math
import warnings

import torch
from torch import nn
import torchvision

from hand_object_pose_ros import geometry
from hand_object_pose_ros.types import NetworkPrediction

OPTIMIZE_MODES = ('auto', 'none', 'fused', 'compile', 'onnxruntime')
# Agreement of every mode with the reference path (float32), tested in test/test_fast_path.py:
# hand joints / vertices and object translation (metres), rotation matrix entries, 2D joints
# (crop pixels), MANO parameters (rad, shape units) and class probabilities.
TOLERANCES = {'joints_m': 1e-4, 'vertices_m': 1e-4, 'translation_m': 1e-4,
              'rotation': 1e-3, 'joints_2d_px': 1e-2, 'mano': 1e-3, 'probs': 1e-4}
# Input names of the exported graph (an input may not share an output's name).
INPUT_NAMES = ('images', 'requested_object_index')
# Output names of the inference graph (ONNX outputs too), in order.
OUTPUT_NAMES = ('mano_pose', 'mano_betas', 'vertices', 'joints', 'joints_2d_crop_px',
                'object_rotation', 'object_translation', 'object_index', 'object_probs')
ONNX_OPSET = 17


class OptimizeError(ValueError):
    """A fast-path mode that is unknown or cannot run here (the message says why)."""


def _fold_batch_norm(weight, bias, batch_norm):
    """
    Fold an eval-mode BatchNorm into the layer before it.

    :param weight: (C_out, ...) weight of the convolution / linear layer.
    :param bias: (C_out,) bias or None.
    :param batch_norm: BatchNorm1d / BatchNorm2d with running statistics.
    :return: tuple (weight, bias) of the fused layer.
    """
    scale = batch_norm.weight if batch_norm.affine else torch.ones_like(batch_norm.running_var)
    shift = batch_norm.bias if batch_norm.affine else torch.zeros_like(batch_norm.running_var)
    factor = scale / torch.sqrt(batch_norm.running_var + batch_norm.eps)
    if bias is None:
        bias = torch.zeros_like(batch_norm.running_mean)
    fused_weight = weight * factor.reshape((-1,) + (1,) * (weight.dim() - 1))
    fused_bias = (bias - batch_norm.running_mean) * factor + shift
    return fused_weight, fused_bias


def _foldable(layer, batch_norm):
    """Return True when ``batch_norm`` directly follows ``layer`` and can be folded into it."""
    pairs = ((nn.Conv2d, nn.BatchNorm2d), (nn.Linear, nn.BatchNorm1d))
    return (any(isinstance(layer, a) and isinstance(batch_norm, b) for a, b in pairs)
            and batch_norm.track_running_stats and batch_norm.running_mean is not None)


def _fuse_pair(layer, batch_norm):
    """Fold ``batch_norm`` into ``layer`` in place (the BatchNorm must then be bypassed)."""
    with torch.no_grad():
        weight, bias = _fold_batch_norm(layer.weight, layer.bias, batch_norm)
        layer.weight.copy_(weight)
        if layer.bias is None:
            layer.bias = nn.Parameter(bias)
        else:
            layer.bias.copy_(bias)


def fuse_batch_norms(module):
    """
    Fold every BatchNorm that directly follows a Conv2d / Linear into it, in place.

    Covers ``nn.Sequential`` runs (conv, bn, ...) and torchvision ResNet blocks (convN, bnN).
    Only valid for inference (eval-mode statistics). Call it on a copy.

    :param module: nn.Module in eval mode.
    :return: number of BatchNorm layers folded (replaced by ``nn.Identity``).
    """
    folded = 0
    for child in list(module.modules()):
        if isinstance(child, nn.Sequential):
            names = list(child._modules)
            for first, second in zip(names[:-1], names[1:]):
                if _foldable(child._modules[first], child._modules[second]):
                    _fuse_pair(child._modules[first], child._modules[second])
                    child._modules[second] = nn.Identity()
                    folded += 1
        elif isinstance(child, (torchvision.models.resnet.BasicBlock,
                                torchvision.models.resnet.Bottleneck)):
            for index in (1, 2, 3):
                conv = getattr(child, 'conv%d' % index, None)
                batch_norm = getattr(child, 'bn%d' % index, None)
                if conv is not None and _foldable(conv, batch_norm):
                    _fuse_pair(conv, batch_norm)
                    setattr(child, 'bn%d' % index, nn.Identity())
                    folded += 1
    return folded


class InferenceGraph(nn.Module):
    """
    The inference path of a HandObjectNetwork as one tensor-in, tensors-out module.

    It shares (does not copy) the network's sub-modules: backbone, hand head, MANO layer,
    classifier and the object head's image encoder and pose decoder (never the image decoder
    or the pose encoder). Traceable: ONNX export and ``torch.compile`` take it as is.
    """

    def __init__(self, model):
        """
        Wrap a network.

        :param model: :class:`hand_object_pose_ros.modeling.network.HandObjectNetwork`.
        """
        super().__init__()
        self.network = model
        self.num_objects = model.num_objects
        self.is_cvae = hasattr(model.object_head, 'infer')

    def forward(self, images, object_index):
        """
        Run the inference path.

        :param images: (B, 3, S, S) float RGB in 0..1.
        :param object_index: (B,) int64 class indices; -1 where the classifier picks.
        :return: tuple of tensors in :data:`OUTPUT_NAMES` order (see NetworkPrediction).
        """
        network = self.network
        pyramid = network.backbone(images)
        _, joints_2d, theta, beta, joints_rel, vertices_rel = network._hand(pyramid)
        pooled = network._pooled(pyramid)
        probs = torch.softmax(network.classifier(pooled).float(), dim=1)
        chosen = torch.where(object_index >= 0, object_index, probs.argmax(dim=1))
        condition = network._condition(chosen, images.dtype)
        if self.is_cvae:
            pose9d = network.object_head.infer(pyramid[network.cfg.cvae.feature_level],
                                               condition)
        else:
            pose9d = network.object_head(pooled, condition)
        rotation, translation = geometry.pose9d_to_rt(pose9d.float())
        return (theta, beta, vertices_rel, joints_rel, joints_2d, rotation, translation,
                chosen, probs)


def _check_object_index(object_index, batch, num_objects, device):
    """Validate the class indices as ``model.predict`` does; return (B,) int64 (-1 = auto)."""
    if object_index is None:
        return torch.full((batch,), -1, dtype=torch.int64, device=device)
    object_index = torch.as_tensor(object_index, device=device).long().reshape(-1)
    if object_index.shape[0] != batch:
        raise ValueError('object_index has %d entries for %d images'
                         % (object_index.shape[0], batch))
    if bool(((object_index < 0) | (object_index >= num_objects)).any()):
        raise ValueError('object_index must lie in 0..%d, got %s'
                         % (num_objects - 1, object_index.tolist()))
    return object_index


def _prediction(outputs):
    """Return a NetworkPrediction from the graph's output tuple."""
    return NetworkPrediction(**dict(zip(OUTPUT_NAMES, outputs)))


class ReferenceInference:
    """Mode ``none``: ``model.predict`` (eager float32, the reference)."""

    mode = 'none'

    def __init__(self, model):
        """:param model: HandObjectNetwork (used as is)."""
        self.model = model

    def predict(self, images, object_index=None):
        """Run the reference path, ``model.predict``; return its NetworkPrediction."""
        return self.model.predict(images, object_index)


class TorchInference:
    """Modes ``fused`` and ``compile``: the folded inference graph in PyTorch."""

    def __init__(self, model, compile_graph=False, channels_last=True):
        """
        Prepare a deep copy.

        :param model: HandObjectNetwork (not modified).
        :param compile_graph: wrap the graph in ``torch.compile``.
        :param channels_last: channels_last memory (NHWC convolutions; measured faster on
            this CPU too).
        """
        self.mode = 'compile' if compile_graph else 'fused'
        network = copy.deepcopy(model).eval()
        # The training-only decoders are dropped from the copy (they hold parameters only).
        for name in ('image_decoder', 'pose_encoder'):
            if hasattr(network.object_head, name):
                setattr(network.object_head, name, None)
        network.object_corner_head = None
        self.folded_batch_norms = fuse_batch_norms(network)
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        self.device = next(network.parameters()).device
        self.channels_last = bool(channels_last)
        if self.channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.num_objects = network.num_objects
        self.graph = InferenceGraph(network).eval()
        self._run = self.graph
        if compile_graph:
            if not hasattr(torch, 'compile'):
                raise OptimizeError('torch.compile is not available in this torch')
            self._run = torch.compile(self.graph, dynamic=False)

    def predict(self, images, object_index=None):
        """
        Run the prepared graph.

        :param images: (B, 3, S, S) float RGB in 0..1 on the model's device.
        :param object_index: None (the classifier picks) or (B,) int64 class indices.
        :return: NetworkPrediction (as ``model.predict``).
        """
        index = _check_object_index(object_index, images.shape[0], self.num_objects,
                                    images.device)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return _prediction(self._run(images, index))


def export_onnx(model, destination, input_size_px=None, opset=ONNX_OPSET):
    """
    Write the fused inference graph of a network as ONNX (dynamic batch size).

    Inputs ``images`` (B, 3, S, S) float32 0..1 and ``requested_object_index`` (B,) int64
    (-1 = the classifier picks); outputs :data:`OUTPUT_NAMES`.

    :param model: HandObjectNetwork (not modified; exported from a fused CPU copy).
    :param destination: file path or a binary file object (e.g. ``io.BytesIO``).
    :param input_size_px: crop side S (default ``model.cfg.input_size_px``).
    :param opset: ONNX opset version.
    :return: number of BatchNorm layers folded before export.
    :raises OptimizeError: the export failed (the cause is chained).
    """
    prepared = TorchInference(copy.deepcopy(model).cpu(), channels_last=False)
    size = int(input_size_px or model.cfg.input_size_px)
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    index = torch.tensor([-1, 0], dtype=torch.int64)
    dynamic_axes = {name: {0: 'batch'} for name in INPUT_NAMES + OUTPUT_NAMES}
    try:
        with warnings.catch_warnings():
            # Shape checks in Python (e.g. ManoLayer's) are traced as constants: intended.
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            torch.onnx.export(prepared.graph, (images, index), destination, dynamo=False,
                              input_names=list(INPUT_NAMES),
                              output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes,
                              opset_version=opset, do_constant_folding=True)
    except Exception as error:  # the exporter raises many kinds
        raise OptimizeError('ONNX export failed: %s' % error) from error
    return prepared.folded_batch_norms


class OnnxRuntimeInference:
    """Mode ``onnxruntime``: the fused graph exported to ONNX and run by ONNX Runtime."""

    mode = 'onnxruntime'

    def __init__(self, model, num_threads=None):
        """
        Export in memory and open a session.

        :param model: HandObjectNetwork (not modified).
        :param num_threads: intra-op threads (default ``torch.get_num_threads()``).
        :raises OptimizeError: onnxruntime missing or the export failing.
        """
        try:
            import onnxruntime
        except ImportError as error:
            raise OptimizeError('optimize=onnxruntime needs the onnxruntime package '
                                '(pip install onnxruntime)') from error
        self.device = next(model.parameters()).device
        self.num_objects = model.num_objects
        buffer = io.BytesIO()
        self.folded_batch_norms = export_onnx(model, buffer)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: the node shares the CPU with the
        # camera driver and DDS (paper config end to end here: 7.2 vs 7.0 fps, network mean
        # inside the node 134 vs 148 ms).
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ['CPUExecutionProvider']
        if (self.device.type == 'cuda'
                and 'CUDAExecutionProvider' in onnxruntime.get_available_providers()):
            providers.insert(0, 'CUDAExecutionProvider')
        self.session = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                                    providers=providers)

    def predict(self, images, object_index=None):
        """
        Run the session (inputs copied to the host, outputs back to the model's device).

        :param images: (B, 3, S, S) float RGB in 0..1.
        :param object_index: None or (B,) int64 class indices.
        :return: NetworkPrediction (as ``model.predict``).
        """
        index = _check_object_index(object_index, images.shape[0], self.num_objects,
                                    images.device)
        feeds = {'images': images.detach().float().cpu().contiguous().numpy(),
                 'requested_object_index': index.cpu().numpy()}
        outputs = self.session.run(list(OUTPUT_NAMES), feeds)
        return _prediction([torch.from_numpy(value).to(images.device) for value in outputs])


def weights_fingerprint(model):
    """
    Return a cheap token that changes when any parameter or buffer of a model changes.

    Uses each tensor's identity, storage address and in-place version counter (bumped by
    ``fill_``, ``copy_``, ``load_state_dict``, optimiser steps), so no values are read.

    :param model: nn.Module.
    :return: tuple.
    """
    return _fingerprint_of(itertools.chain(model.parameters(), model.buffers()))


def _fingerprint_of(tensors):
    return tuple((id(tensor), tensor.data_ptr(), tensor._version) for tensor in tensors)


# Bumped whenever any module anywhere registers a parameter, buffer or submodule (assignment
# included), so that a WeightsWatch walks its model again only after such a change.
_registration_generation = [0]


def _count_registration(*unused):
    _registration_generation[0] += 1


torch.nn.modules.module.register_module_parameter_registration_hook(_count_registration)
torch.nn.modules.module.register_module_buffer_registration_hook(_count_registration)
torch.nn.modules.module.register_module_module_registration_hook(_count_registration)


class WeightsWatch:
    """
    :func:`weights_fingerprint` of one model, at a per-call cost the node can pay every frame.

    Walking a network's modules takes milliseconds in Python; the tensor list is kept and
    walked again only after some module registered a parameter, buffer or submodule.
    """

    def __init__(self, model):
        """
        Watch a model.

        :param model: nn.Module.
        """
        self.model = model
        self._generation = None
        self._tensors = ()

    def fingerprint(self):
        """Return the model's current :func:`weights_fingerprint`."""
        if self._generation != _registration_generation[0]:
            self._generation = _registration_generation[0]
            self._tensors = tuple(itertools.chain(self.model.parameters(),
                                                  self.model.buffers()))
        return _fingerprint_of(self._tensors)


class RefreshingInference:
    """
    A fast path that follows the reference model: rebuilt when the model's weights change.

    The fast paths run copies (fused weights, an ONNX Runtime session); when the model's
    parameters or buffers are modified afterwards (a checkpoint loaded into it, fine-tuning),
    the next call prepares the path again from the current weights, so that the fast path
    never runs stale weights.
    """

    def __init__(self, model, runner):
        """
        Wrap a prepared runner.

        :param model: the reference HandObjectNetwork the runner was prepared from.
        :param runner: the prepared runner (``mode``, ``predict``).
        """
        self.model = model
        self.runner = runner
        self.mode = runner.mode
        self.rebuilds = 0
        self._watch = WeightsWatch(model)
        self._fingerprint = self._watch.fingerprint()

    def predict(self, images, object_index=None):
        """
        Run the fast path (prepared again first when the model's weights changed).

        :param images: (B, 3, S, S) float RGB in 0..1.
        :param object_index: None or (B,) int64 class indices.
        :return: NetworkPrediction.
        """
        fingerprint = self._watch.fingerprint()
        if fingerprint != self._fingerprint:
            self.runner = _build(self.model, self.mode)
            self._fingerprint = fingerprint
            self.rebuilds += 1
        return self.runner.predict(images, object_index)


def _auto_candidates(device):
    """Fast modes worth trying on a device, best first (measured: docs/benchmark.md)."""
    candidates = []
    if torch.device(device).type == 'cpu':
        try:
            import onnxruntime  # noqa: F401
            candidates.append('onnxruntime')
        except ImportError:
            pass
    return candidates + ['fused']


def _build(model, mode):
    """Return the runner of a concrete mode."""
    if mode not in OPTIMIZE_MODES or mode == 'auto':
        raise OptimizeError('unknown optimize mode %r (use one of %s)'
                            % (mode, ', '.join(OPTIMIZE_MODES)))
    if mode == 'none':
        return ReferenceInference(model)
    if mode == 'onnxruntime':
        return OnnxRuntimeInference(model)
    return TorchInference(model, compile_graph=(mode == 'compile'))


def check_agreement(model, runner, batch=2, seed=0):
    """
    Compare a runner with ``model.predict`` on random crops; raise beyond :data:`TOLERANCES`.

    :param model: the reference HandObjectNetwork (eval mode).
    :param runner: object with ``predict(images, object_index)``.
    :param batch: crops compared (the first and the last object class are given).
    :param seed: seed of the random crops.
    :return: dict of the largest differences (:func:`max_abs_differences`).
    :raises OptimizeError: a quantity beyond its tolerance (named with both values).
    """
    device = next(model.parameters()).device
    size = int(model.cfg.input_size_px)
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    images = images.to(device)
    object_index = torch.arange(batch, device=device) * (model.num_objects - 1) // max(
        batch - 1, 1)
    differences = max_abs_differences(model.predict(images, object_index),
                                      runner.predict(images, object_index))
    beyond = {name: value for name, value in differences.items()
              if not value <= TOLERANCES[name]}
    if beyond:
        raise OptimizeError('optimize=%s disagrees with the reference path: %s (tolerances %s)'
                            % (getattr(runner, 'mode', '?'), beyond, TOLERANCES))
    return differences


def prepare_inference(model, mode='auto'):
    """
    Return the inference runner of a mode for an eval-mode network.

    ``auto`` tries the fast modes best first (CPU: onnxruntime when installed, then fused;
    CUDA: fused), checks each once against the reference (:func:`check_agreement`) and keeps
    the first that agrees; when none does (or none can run) it warns and uses ``none``.
    Fast paths come wrapped in :class:`RefreshingInference` (rebuilt when the weights change).

    :param model: HandObjectNetwork on its device (not modified).
    :param mode: one of :data:`OPTIMIZE_MODES`.
    :return: object with ``mode`` and ``predict(images, object_index=None)`` ->
        NetworkPrediction.
    :raises OptimizeError: unknown mode; for an explicit mode, a missing onnxruntime or a
        failed export.
    """
    if mode == 'none':
        return ReferenceInference(model)
    if mode != 'auto':
        return RefreshingInference(model, _build(model, mode))
    device = next(model.parameters()).device
    problems = []
    for candidate in _auto_candidates(device):
        try:
            runner = _build(model, candidate)
            check_agreement(model, runner)
            return RefreshingInference(model, runner)
        except OptimizeError as error:
            problems.append(str(error))
    warnings.warn('optimize=auto: no fast path usable, running the reference path (%s)'
                  % '; '.join(problems))
    return ReferenceInference(model)


def max_abs_differences(reference, candidate):
    """
    Largest absolute differences between two NetworkPredictions, per compared quantity.

    :param reference: NetworkPrediction of the reference path.
    :param candidate: NetworkPrediction of another path.
    :return: dict with the keys of :data:`TOLERANCES` (float; inf for mismatching classes).
    """
    def largest(name):
        first = getattr(reference, name).detach().float().cpu()
        second = getattr(candidate, name).detach().float().cpu()
        return float((first - second).abs().max()) if first.numel() else 0.0

    same_class = torch.equal(reference.object_index.cpu(), candidate.object_index.cpu())
    return {
        'joints_m': largest('joints'), 'vertices_m': largest('vertices'),
        'translation_m': largest('object_translation') if same_class else math.inf,
        'rotation': largest('object_rotation') if same_class else math.inf,
        'joints_2d_px': largest('joints_2d_crop_px'),
        'mano': max(largest('mano_pose'), largest('mano_betas')),
        'probs': largest('object_probs')}


__all__ = ['INPUT_NAMES', 'InferenceGraph', 'OPTIMIZE_MODES', 'OUTPUT_NAMES', 'OptimizeError',
           'RefreshingInference', 'TOLERANCES', 'WeightsWatch', 'check_agreement', 'export_onnx',
           'fuse_batch_norms', 'max_abs_differences', 'prepare_inference',
           'weights_fingerprint']
