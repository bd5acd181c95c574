"""The network: shapes, gradients, the inference path, ablations, checkpoints."""

import os

from helpers import BATCH
from helpers import LITE_YAML
from helpers import make_batch
from helpers import REPO_ROOT
import pytest
import torch
from torch import nn
import torchvision
from torchvision.ops import FeaturePyramidNetwork

from hand_object_pose_ros import geometry
from hand_object_pose_ros.config import load_model_config
from hand_object_pose_ros.losses import compute_losses
from hand_object_pose_ros.modeling import build_model
from hand_object_pose_ros.modeling import CheckpointError
from hand_object_pose_ros.modeling import load_model_from_checkpoint
from hand_object_pose_ros.modeling import save_checkpoint
from hand_object_pose_ros.modeling.attention import ConvSelfAttention
from hand_object_pose_ros.modeling.attention import VectorSelfAttention
from hand_object_pose_ros.modeling.hand_head import soft_argmax_px
from hand_object_pose_ros.types import NetworkPrediction

PAPER_YAML = os.path.join(REPO_ROOT, 'config', 'model_paper.yaml')
SIZE = 64
OBJECT_IDS = '[2, 5, 9]'
pytestmark = pytest.mark.usefixtures('one_torch_thread')


def lite_config(*overrides):
    """Lite config at a small input size (fast on CPU)."""
    return load_model_config(LITE_YAML, ['input_size_px=%d' % SIZE, 'object_ids=' + OBJECT_IDS]
                             + list(overrides))


@pytest.fixture(scope='module')
def lite_model():
    torch.manual_seed(0)
    return build_model(lite_config())


def pose_target(batch):
    return geometry.rt_to_pose9d(batch['object_rotation'], batch['object_translation_rel'])


def check_training_output(model, out, batch_size):
    size = model.cfg.input_size_px
    cells = size // model.heatmap_stride_px
    latent = model.cfg.cvae.latent_size
    expected = {
        'heatmaps': (batch_size, 21, cells, cells), 'joints_2d_crop_px': (batch_size, 21, 2),
        'mano_pose': (batch_size, 48), 'mano_betas': (batch_size, 10),
        'joints_rel': (batch_size, 21, 3), 'vertices_rel': (batch_size, 778, 3),
        'object_logits': (batch_size, model.num_objects), 'pose9d_from_image': (batch_size, 9),
        'image_mu': (batch_size, latent), 'image_logvar': (batch_size, latent),
        'pose_mu': (batch_size, latent), 'pose_logvar': (batch_size, latent),
        'pose9d_from_pose': (batch_size, 9),
        'image_from_image': (batch_size, 3, size, size),
        'image_from_pose': (batch_size, 3, size, size),
    }
    for name, shape in expected.items():
        value = getattr(out, name)
        assert tuple(value.shape) == shape, name
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value).all(), name
    assert out.object_index.dtype == torch.int64
    image = out.image_from_image.detach()
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    # Wrist-relative outputs.
    assert torch.allclose(out.joints_rel[:, 0], torch.zeros(batch_size, 3))


def check_prediction(model, prediction, batch_size):
    assert isinstance(prediction, NetworkPrediction)
    shapes = {'mano_pose': (batch_size, 48), 'mano_betas': (batch_size, 10),
              'vertices': (batch_size, 778, 3), 'joints': (batch_size, 21, 3),
              'joints_2d_crop_px': (batch_size, 21, 2), 'object_rotation': (batch_size, 3, 3),
              'object_translation': (batch_size, 3), 'object_probs': (batch_size,
                                                                      model.num_objects)}
    for name, shape in shapes.items():
        value = getattr(prediction, name)
        assert tuple(value.shape) == shape, name
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value).all(), name
        assert not value.requires_grad, name
    assert prediction.object_index.dtype == torch.int64
    assert tuple(prediction.object_index.shape) == (batch_size,)
    rotation = prediction.object_rotation
    eye = torch.eye(3).expand(batch_size, 3, 3)
    assert torch.allclose(rotation.transpose(1, 2) @ rotation, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(batch_size), atol=1e-5)
    assert torch.allclose(prediction.object_probs.sum(1), torch.ones(batch_size), atol=1e-5)
    size = model.cfg.input_size_px
    uv = prediction.joints_2d_crop_px
    assert float(uv.min()) >= -0.5 and float(uv.max()) <= size - 0.5


def test_lite_training_forward_shapes(lite_model):
    batch = make_batch(lite_model)
    lite_model.train()
    out = lite_model(batch['image'], lite_model.object_indices(batch['object_id']),
                     pose_target(batch))
    check_training_output(lite_model, out, BATCH)
    assert out.heatmap_stride_px == 8


def test_lite_predict_shapes_and_rotation(lite_model):
    batch = make_batch(lite_model, batch=3)
    lite_model.train()
    prediction = lite_model.predict(batch['image'])
    check_prediction(lite_model, prediction, 3)
    # No object given: the classifier's argmax was used; predict restored training mode.
    assert torch.equal(prediction.object_index, prediction.object_probs.argmax(1))
    assert lite_model.training
    given = torch.tensor([2, 0, 1])
    assert torch.equal(lite_model.predict(batch['image'], given).object_index, given)
    with pytest.raises(ValueError, match='object_index'):
        lite_model.predict(batch['image'], torch.tensor([0, 1, 3]))


def test_paper_config_is_resnet50_fpn_and_runs():
    torch.manual_seed(0)
    cfg = load_model_config(PAPER_YAML, ['input_size_px=%d' % SIZE])
    model = build_model(cfg)
    backbone = model.backbone
    assert isinstance(backbone.fpn, FeaturePyramidNetwork)
    bottlenecks = [m for m in backbone.modules()
                   if isinstance(m, torchvision.models.resnet.Bottleneck)]
    assert len(bottlenecks) == 3 + 4 + 6 + 3  # ResNet-50
    assert backbone.out_channels == 256
    assert model.object_head.image_encoder.convs[0].in_channels == 256
    assert len([m for m in model.hand_head.modules() if isinstance(m, ConvSelfAttention)]) == 6
    batch = make_batch(model)
    out = model(batch['image'], model.object_indices(batch['object_id']), pose_target(batch))
    check_training_output(model, out, BATCH)
    check_prediction(model, model.predict(batch['image'][:1]), 1)


def test_every_parameter_learns(lite_model):
    """In training mode the total loss reaches every parameter with a finite, non-zero grad."""
    batch = make_batch(lite_model, batch=4)
    lite_model.train()
    lite_model.zero_grad(set_to_none=True)
    out = lite_model(batch['image'], lite_model.object_indices(batch['object_id']),
                     pose_target(batch))
    compute_losses(out, batch, beta_vae=0.5)['total'].backward()
    no_grad, zero_grad = [], []
    for name, parameter in lite_model.named_parameters():
        assert parameter.requires_grad, name
        if parameter.grad is None:
            no_grad.append(name)
        elif not torch.isfinite(parameter.grad).all():
            raise AssertionError('non-finite gradient: %s' % name)
        elif float(parameter.grad.abs().max()) == 0.0:
            zero_grad.append(name)
    assert not no_grad, no_grad
    assert not zero_grad, zero_grad
    assert not list(lite_model.mano_layer.parameters())  # MANO is fixed (buffers only)


def test_predict_runs_only_the_inference_path(lite_model):
    calls = []
    watched = {
        'image_decoder': lite_model.object_head.image_decoder,
        'pose_encoder': lite_model.object_head.pose_encoder,
        'image_encoder': lite_model.object_head.image_encoder,
        'pose_decoder': lite_model.object_head.pose_decoder,
    }
    handles = [module.register_forward_hook(
        lambda module, inputs, output, name=name: calls.append(name))
        for name, module in watched.items()]
    try:
        batch = make_batch(lite_model)
        lite_model.predict(batch['image'])
        assert sorted(calls) == ['image_encoder', 'pose_decoder']
        calls.clear()
        lite_model(batch['image'], lite_model.object_indices(batch['object_id']),
                   pose_target(batch))
        assert {'image_decoder', 'pose_encoder'} <= set(calls)
    finally:
        for handle in handles:
            handle.remove()


def test_predict_is_deterministic_and_matches_eval_forward(lite_model):
    batch = make_batch(lite_model)
    index = torch.tensor([1, 2])
    first = lite_model.predict(batch['image'], index)
    second = lite_model.predict(batch['image'], index)
    assert torch.equal(first.object_translation, second.object_translation)
    lite_model.eval()
    with torch.no_grad():
        out = lite_model(batch['image'], index)
    lite_model.train()
    rotation, translation = geometry.pose9d_to_rt(out.pose9d_from_image)
    assert torch.allclose(translation, first.object_translation, atol=1e-5)
    assert torch.allclose(rotation, first.object_rotation, atol=1e-5)
    assert torch.allclose(out.joints_rel, first.joints, atol=1e-6)


@pytest.mark.parametrize('overrides', [
    ('hand_attention=false',),
    ('object_attention=false',),
    ('object_condition=false',),
    ('object_head=direct',),
    ('attention_heads=2',),
])
def test_ablations_build_and_train(overrides):
    torch.manual_seed(0)
    model = build_model(lite_config(*overrides))
    cfg = model.cfg
    hand_attention = [m for m in model.hand_head.modules() if isinstance(m, ConvSelfAttention)]
    assert len(hand_attention) == (6 if cfg.hand_attention else 0)
    object_attention = [m for m in model.object_head.modules()
                        if isinstance(m, VectorSelfAttention)]
    expected_object = 3 if cfg.object_head == 'cvae' and cfg.object_attention else 0
    assert len(object_attention) == expected_object
    batch = make_batch(model, batch=3)
    out = model(batch['image'], model.object_indices(batch['object_id']), pose_target(batch))
    terms = compute_losses(out, batch, beta_vae=0.1)
    assert torch.isfinite(terms['total'])
    terms['total'].backward()
    if cfg.object_head == 'direct':
        assert out.image_mu is None and out.image_from_image is None
        assert float(terms['branch1']) == 0.0
    if not cfg.object_condition:
        decoder_in = model.object_head.pose_decoder.layers[0][0].in_features
        assert decoder_in == cfg.cvae.latent_size
    check_prediction(model, model.predict(batch['image']), 3)


def test_condition_changes_the_pose(lite_model):
    batch = make_batch(lite_model)
    image = batch['image'][:1].expand(3, -1, -1, -1)
    prediction = lite_model.predict(image, torch.tensor([0, 1, 2]))
    translations = prediction.object_translation
    assert not torch.allclose(translations[0], translations[1])


def test_classifier_keeps_learning_when_every_hidden_unit_is_negative():
    """Pushed below zero (how ReLU units died in training), logits still follow the input."""
    from hand_object_pose_ros.modeling.network import ObjectClassifier

    torch.manual_seed(0)
    classifier = ObjectClassifier(16, 8, 3)
    with torch.no_grad():
        classifier[0].bias.fill_(-100.0)
    features = torch.randn(4, 16, requires_grad=True)
    logits = classifier(features)
    assert logits.std(dim=0).max() > 1e-3
    logits[:, 0].sum().backward()
    assert features.grad.abs().max() > 0
    assert classifier[0].weight.grad.abs().max() > 0


def test_object_indices_maps_catalogue_ids(lite_model):
    assert lite_model.object_indices(torch.tensor([9, 2, 5])).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match='7'):
        lite_model.object_indices(torch.tensor([2, 7]))


def test_soft_argmax_returns_crop_pixel_centres():
    logits = torch.full((1, 2, 8, 8), -30.0)
    logits[0, 0, 3, 5] = 30.0  # row 3, column 5
    logits[0, 1, 0, 0] = 30.0
    uv = soft_argmax_px(logits, 8)
    assert torch.allclose(uv[0, 0], torch.tensor([5.5 * 8 - 0.5, 3.5 * 8 - 0.5]), atol=1e-3)
    assert torch.allclose(uv[0, 1], torch.tensor([3.5, 3.5]), atol=1e-3)


def test_imagenet_normalisation_is_inside_the_model(lite_model):
    backbone = lite_model.backbone
    assert torch.allclose(backbone.pixel_mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert 'backbone.pixel_mean' not in lite_model.state_dict()


def test_backbone_weights_from_local_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / 'resnet18.pth'
    torch.save(reference.state_dict(), path)
    model = build_model(lite_config('backbone.weights_path=%s' % path))
    assert torch.equal(model.backbone.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.backbone.stages[1][0].conv1.weight, reference.layer2[0].conv1.weight)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_model(lite_config('backbone.weights_path=%s' % (tmp_path / 'missing.pth')))


def test_checkpoint_round_trip(lite_model, tmp_path):
    batch = make_batch(lite_model)
    index = torch.tensor([0, 2])
    path = save_checkpoint(tmp_path / 'sub' / 'model.pt', lite_model, extra={'epoch': 3})
    payload = torch.load(path, weights_only=True)
    assert payload['format_version'] == 1
    assert payload['object_ids'] == [2, 5, 9]
    assert payload['extra'] == {'epoch': 3}
    assert not any(key.startswith('mano_layer.') for key in payload['state_dict'])
    loaded = load_model_from_checkpoint(path)
    assert loaded.cfg == lite_model.cfg
    assert not loaded.training
    expected = lite_model.predict(batch['image'], index)
    got = loaded.predict(batch['image'], index)
    assert torch.allclose(got.joints, expected.joints, atol=1e-6)
    assert torch.allclose(got.object_translation, expected.object_translation, atol=1e-6)

    half_path = save_checkpoint(tmp_path / 'half.pt', lite_model, float16=True)
    assert os.path.getsize(half_path) < 0.6 * os.path.getsize(path)
    half = load_model_from_checkpoint(half_path)
    assert next(half.parameters()).dtype == torch.float32
    got_half = half.predict(batch['image'], index)
    assert torch.allclose(got_half.joints, expected.joints, atol=2e-3)


def test_checkpoint_architecture_mismatch_is_one_clear_error(lite_model, tmp_path):
    path = save_checkpoint(tmp_path / 'lite.pt', lite_model)
    payload = torch.load(path, weights_only=True)
    payload['model_config']['object_head'] = 'direct'
    payload['model_config']['hand_head']['fc_hidden'] = 64
    foreign = tmp_path / 'foreign.pt'
    torch.save(payload, foreign)
    with pytest.raises(CheckpointError) as info:
        load_model_from_checkpoint(foreign)
    message = str(info.value)
    assert str(foreign) in message
    assert 'missing in checkpoint' in message and 'object_head.layers' in message
    assert 'unexpected in checkpoint' in message and 'object_head.image_decoder' in message
    assert 'shape mismatch' in message and 'hand_head.fc.0.weight' in message


def test_checkpoint_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='absent.pt'):
        load_model_from_checkpoint(tmp_path / 'absent.pt')
    other = tmp_path / 'other.pt'
    torch.save({'weights': torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match='not a hand_object_pose_ros checkpoint'):
        load_model_from_checkpoint(other)
    plain = tmp_path / 'plain.pt'
    torch.save(nn.Linear(2, 2).state_dict(), plain)
    with pytest.raises(CheckpointError):
        load_model_from_checkpoint(plain)
