"""Config dataclasses and the strict YAML loader."""

import dataclasses
import os
from typing import Literal
from typing import Optional
from typing import Tuple

import pytest
import torch
import yaml

from hand_object_pose_ros.config import config_from_dict
from hand_object_pose_ros.config import config_to_dict
from hand_object_pose_ros.config import ConfigError
from hand_object_pose_ros.config import DEXYCB_OBJECT_IDS
from hand_object_pose_ros.config import load_config
from hand_object_pose_ros.config import load_model_config
from hand_object_pose_ros.config import LossConfig
from hand_object_pose_ros.config import ModelConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_YAML = os.path.join(REPO_ROOT, 'config', 'model_paper.yaml')
LITE_YAML = os.path.join(REPO_ROOT, 'config', 'model_lite.yaml')


@dataclasses.dataclass
class _Inner:
    rate: float = 1.0
    name: str = 'a'


@dataclasses.dataclass
class _Outer:
    steps: int = 3
    mode: Literal['x', 'y'] = 'x'
    sizes: Tuple[int, ...] = (1, 2)
    note: Optional[str] = None
    inner: _Inner = dataclasses.field(default_factory=lambda: _Inner(name='from-factory'))


def test_paper_yaml_matches_paper_defaults():
    """The paper YAML is the paper configuration, identical to the dataclass defaults."""
    cfg = load_model_config(PAPER_YAML)
    assert cfg == ModelConfig()
    assert cfg.input_size_px == 256
    assert cfg.backbone.architecture == 'resnet50'
    assert cfg.backbone.fpn_channels == 256
    assert cfg.hand_head.num_modules == 3
    assert cfg.cvae.pose_encoder_sizes == (128, 256, 512)
    assert cfg.cvae.pose_decoder_sizes == (512, 256)
    assert len(cfg.cvae.image_encoder_conv_channels) == 6
    assert cfg.cvae.image_encoder_conv_channels[-1] == 2
    assert cfg.object_ids == DEXYCB_OBJECT_IDS == tuple(range(1, 22))
    assert cfg.num_objects == 21


def test_lite_yaml_is_resnet18_with_smaller_input():
    cfg = load_model_config(LITE_YAML)
    assert cfg.backbone.architecture == 'resnet18'
    assert cfg.input_size_px in (128, 160)
    assert cfg.object_head == 'cvae'


def test_loss_config_defaults_are_the_paper_weights():
    cfg = LossConfig()
    assert (cfg.joints_3d, cfg.mano_pose, cfg.mano_shape, cfg.bmc) == (0.5, 5e-7, 5e-5, 1.0)


def test_unknown_key_in_yaml_names_key_and_close_match(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('backbone:\n  architecure: resnet18\n')
    with pytest.raises(ConfigError) as info:
        load_model_config(path)
    message = str(info.value)
    assert 'backbone.architecure' in message
    assert 'backbone.architecture' in message
    assert str(path) in message


def test_unknown_key_in_override_is_an_error():
    with pytest.raises(ConfigError, match='input_size'):
        load_model_config(overrides=['input_size=128'])
    with pytest.raises(ConfigError, match='hand_head.chanels'):
        load_model_config(overrides=['hand_head.chanels=64'])


def test_overrides_are_parsed_and_applied_after_yaml():
    cfg = load_model_config(LITE_YAML, overrides=[
        'input_size_px=64', 'object_ids=[3, 7]', 'hand_attention=false',
        'backbone.fpn_channels=64', 'object_head=direct'])
    assert cfg.input_size_px == 64
    assert cfg.object_ids == (3, 7)
    assert cfg.hand_attention is False
    assert cfg.backbone.fpn_channels == 64
    assert cfg.backbone.architecture == 'resnet18'  # from the YAML, untouched
    assert cfg.object_head == 'direct'


def test_exponent_without_a_dot_is_a_float():
    # YAML 1.1 (PyYAML) reads 5e-4 as a string; a float field takes it as the number it means.
    cfg = load_model_config(LITE_YAML, overrides=['attention_gamma_init=5e-4'])
    assert cfg.attention_gamma_init == pytest.approx(5e-4)
    with pytest.raises(ConfigError) as info:
        load_model_config(overrides=['attention_gamma_init=fast'])
    assert 'attention_gamma_init' in str(info.value)


@pytest.mark.parametrize('override, fragment', [
    ('input_size_px=abc', 'input_size_px'),
    ('input_size_px=100', 'multiple of 32'),
    ('hand_attention=1', 'true/false'),
    ('object_head=regression', "'cvae', 'direct'"),
    ('cvae.latent_size=2.5', 'integer'),
    ('object_ids=[1, 1]', 'duplicates'),
    ('cvae.image_encoder_conv_channels=[8, 2]', '6 values'),
    ('hand_head.feature_level=2', 'fpn_levels'),
    ('backbone=3', 'mapping'),
    ('no_equals_sign', 'key.path=value'),
])
def test_bad_values_raise_clear_errors(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_model_config(overrides=[override])
    assert fragment in str(info.value)


def test_missing_yaml_names_the_path(tmp_path):
    missing = tmp_path / 'nope.yaml'
    with pytest.raises(FileNotFoundError, match='nope.yaml'):
        load_model_config(missing)


def test_round_trip_through_plain_dict_and_torch_weights_only(tmp_path):
    cfg = load_model_config(LITE_YAML, overrides=['object_ids=[4, 5, 6]'])
    plain = config_to_dict(cfg)
    assert isinstance(plain['object_ids'], list)
    path = tmp_path / 'cfg.pt'
    torch.save({'cfg': plain}, path)
    restored = config_from_dict(ModelConfig, torch.load(path, weights_only=True)['cfg'])
    assert restored == cfg
    assert config_from_dict(ModelConfig, yaml.safe_load(yaml.safe_dump(plain))) == cfg


def test_generic_loader_on_other_dataclasses(tmp_path):
    """Other modules' configs load with the same functions (nested, Literal, Optional)."""
    assert load_config(_Outer) == _Outer()
    path = tmp_path / 'outer.yaml'
    path.write_text('steps: 5\nsizes: [4]\ninner:\n  rate: 2\n')
    cfg = load_config(_Outer, path, overrides=['note=hello', 'mode=y'])
    assert cfg.steps == 5 and cfg.sizes == (4,) and cfg.mode == 'y' and cfg.note == 'hello'
    assert cfg.inner.rate == 2.0 and isinstance(cfg.inner.rate, float)
    # A partial nested mapping updates the field's default, not the nested class's default.
    assert cfg.inner.name == 'from-factory'
    assert load_config(_Outer, overrides=['note=null']).note is None
    with pytest.raises(ConfigError, match='inner.rat'):
        load_config(_Outer, overrides=['inner.rat=1'])
    with pytest.raises(ConfigError, match='did you mean steps'):
        config_from_dict(_Outer, {'step': 1})
