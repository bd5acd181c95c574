"""
Configuration dataclasses and a strict, generic YAML loader for nested dataclasses.

Every config is a (nested) dataclass with defaults. :func:`load_config` reads a YAML file and
``key.path=value`` overrides into one; an unknown key raises :class:`ConfigError` naming the key
and its close matches, and each value is type-checked (ints widen to floats, lists become tuples,
``Literal`` fields accept only their choices). :func:`config_to_dict` / :func:`config_from_dict`
give the plain-dict form stored in checkpoints. Other modules add their own dataclasses (a
training config, for example) and load them with the same functions.
"""

import dataclasses
import difflib
import os
import typing
from typing import Literal
from typing import Tuple

import yaml

# DexYCB's YCB class ids (1..21); a network's class index is the position in ``object_ids``.
DEXYCB_OBJECT_IDS = tuple(range(1, 22))


class ConfigError(ValueError):
    """A config file or override that does not match its dataclass."""


# --------------------------------------------------------------------------------------------
# Model configuration
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class BackboneConfig:
    """
    Shared feature extractor: a torchvision ResNet and a feature pyramid (torchvision.ops).

    :param architecture: one of ``resnet18``, ``resnet34``, ``resnet50`` (paper), ``resnet101``.
    :param weights_path: optional local torchvision ResNet state dict (``.pth``) to start from;
        empty = random initialisation. Nothing is ever downloaded.
    :param fpn_channels: channels of every pyramid level (the paper's stride-8 map has 256).
    :param fpn_levels: pyramid levels built, as strides 2**level (3 = stride 8 ... 5 = stride 32).
    """

    architecture: Literal['resnet18', 'resnet34', 'resnet50', 'resnet101'] = 'resnet50'
    weights_path: str = ''
    fpn_channels: int = 256
    fpn_levels: Tuple[int, ...] = (3, 4, 5)

    def __post_init__(self):
        """Check the pyramid levels."""
        if not self.fpn_levels or any(level not in (2, 3, 4, 5) for level in self.fpn_levels):
            raise ConfigError('backbone.fpn_levels must be a non-empty subset of 2, 3, 4, 5, '
                              'got %s' % (self.fpn_levels,))
        if self.fpn_channels < 1:
            raise ConfigError('backbone.fpn_channels must be positive')


@dataclasses.dataclass
class HandHeadConfig:
    """
    Hand branch: residual attention modules, joint heatmaps, FC to MANO parameters.

    :param feature_level: pyramid level the head reads (3 = stride 8).
    :param channels: channel width inside the head.
    :param num_modules: residual attention modules (paper: 3), a 2x2 max-pool between two.
    :param attention_reduction: query/key channels = channels / attention_reduction.
    :param fc_hidden: width of the FC + BatchNorm + ReLU layer before the 58 outputs.
    """

    feature_level: int = 3
    channels: int = 256
    num_modules: int = 3
    attention_reduction: int = 8
    fc_hidden: int = 512


@dataclasses.dataclass
class CVAEConfig:
    """
    Object branch of the paper: the cross-modal CVAE (pose CVAE + image VAE, one latent space).

    :param feature_level: pyramid level the image encoder reads (paper: 3, the stride-8 map).
    :param latent_size: size of the shared latent z.
    :param pose_encoder_sizes: FC sizes of the pose encoder (paper 128, 256, 512).
    :param pose_decoder_sizes: FC sizes of the pose decoder (paper 512, 256).
    :param image_encoder_conv_channels: output channels of the six convolutions (kernel 1, 3,
        1, 3, 1, 3) of the image encoder, ending at 2 (paper).
    :param image_encoder_fc_sizes: FC sizes after flattening (paper: 1024, then to 256).
    :param image_decoder_channels: channels of the image decoder, from the reshaped latent at
        stride 32 through five x2 transposed convolutions back to the input size.
    :param translation_scale: the network sees the object translation multiplied by this
        (10: metres -> decimetres), so that it has the magnitude of the rotation entries.
    :param leaky_relu_slope: negative slope of the LeakyReLUs.
    """

    feature_level: int = 3
    latent_size: int = 64
    pose_encoder_sizes: Tuple[int, ...] = (128, 256, 512)
    pose_decoder_sizes: Tuple[int, ...] = (512, 256)
    image_encoder_conv_channels: Tuple[int, ...] = (128, 64, 32, 16, 8, 2)
    image_encoder_fc_sizes: Tuple[int, ...] = (1024, 256, 256)
    image_decoder_channels: Tuple[int, ...] = (256, 128, 64, 32, 16, 8)
    translation_scale: float = 10.0
    leaky_relu_slope: float = 0.2

    def __post_init__(self):
        """Check the layer lists."""
        if len(self.image_encoder_conv_channels) != 6:
            raise ConfigError('cvae.image_encoder_conv_channels needs 6 values (the six '
                              'convolutions of the paper), got %d'
                              % len(self.image_encoder_conv_channels))
        if len(self.image_decoder_channels) != 6:
            raise ConfigError('cvae.image_decoder_channels needs 6 values (stride 32 + five '
                              'x2 upsamplings), got %d' % len(self.image_decoder_channels))
        if not self.pose_encoder_sizes or not self.pose_decoder_sizes or \
                not self.image_encoder_fc_sizes:
            raise ConfigError('cvae FC size lists must not be empty')


@dataclasses.dataclass
class DirectHeadConfig:
    """
    Baseline object head: an MLP from the pooled shared features (and y) to the 9-D pose.

    :param hidden_sizes: FC sizes (BatchNorm + LeakyReLU after each).
    """

    hidden_sizes: Tuple[int, ...] = (512, 256)


@dataclasses.dataclass
class ClassifierConfig:
    """
    Object classifier on the pooled shared features (beyond the paper: picks y when unknown).

    :param hidden_size: width of its hidden layer.
    """

    hidden_size: int = 256


@dataclasses.dataclass
class ModelConfig:
    """
    The whole network. Defaults are the paper's configuration (config/model_paper.yaml).

    :param input_size_px: side of the square RGB input crop (paper 256); a multiple of 32.
    :param object_ids: catalogue ids of the known objects; class index = position here.
    :param mano_model_path: MANO model file (.pkl / .npz) of the right hand; empty = the
        package's deterministic stand-in hand.
    :param object_head: ``cvae`` (the paper) or ``direct`` (MLP regression baseline).
    :param hand_attention: self-attention layers in the hand head (paper Table 4 ablation).
    :param object_attention: self-attention layers in the object head (Table 4).
    :param object_condition: condition the object pose on the one-hot object class y (Table 4).
    :param attention_heads: heads of every self-attention layer (1 = the paper's eq. 1).
    :param vector_attention_tokens: a feature vector of size D is attended as this many tokens
        of D / tokens values each.
    :param attention_gamma_init: initial scale of the attention residual branch.
    :param object_corner_heatmaps: add a training-only head (not in the paper) that predicts
        heatmaps of the object's 8 box corners from the CVAE's feature level, weighted by
        ``loss.object_corner_heatmap``; it makes the shared features encode the object's
        geometry, as the 2D joint heatmaps do for the hand. Inference never runs it.
    """

    input_size_px: int = 256
    object_ids: Tuple[int, ...] = DEXYCB_OBJECT_IDS
    mano_model_path: str = ''
    object_head: Literal['cvae', 'direct'] = 'cvae'
    hand_attention: bool = True
    object_attention: bool = True
    object_condition: bool = True
    attention_heads: int = 1
    vector_attention_tokens: int = 8
    attention_gamma_init: float = 0.1
    object_corner_heatmaps: bool = False
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    hand_head: HandHeadConfig = dataclasses.field(default_factory=HandHeadConfig)
    cvae: CVAEConfig = dataclasses.field(default_factory=CVAEConfig)
    direct_head: DirectHeadConfig = dataclasses.field(default_factory=DirectHeadConfig)
    classifier: ClassifierConfig = dataclasses.field(default_factory=ClassifierConfig)

    def __post_init__(self):
        """Check values that the layers depend on."""
        if self.input_size_px < 32 or self.input_size_px % 32:
            raise ConfigError('input_size_px must be a positive multiple of 32 (the ResNet '
                              'stride), got %d' % self.input_size_px)
        if not self.object_ids:
            raise ConfigError('object_ids must list at least one catalogue id')
        if len(set(self.object_ids)) != len(self.object_ids):
            raise ConfigError('object_ids has duplicates: %s' % (self.object_ids,))
        for name, level in (('hand_head.feature_level', self.hand_head.feature_level),
                            ('cvae.feature_level', self.cvae.feature_level)):
            if level not in self.backbone.fpn_levels:
                raise ConfigError('%s = %d is not among backbone.fpn_levels %s'
                                  % (name, level, self.backbone.fpn_levels))
        if self.attention_heads < 1:
            raise ConfigError('attention_heads must be >= 1')

    @property
    def num_objects(self):
        """Return the number of known objects (classifier outputs, size of the one-hot y)."""
        return len(self.object_ids)


@dataclasses.dataclass
class LossConfig:
    """
    Loss weights (paper eq. 8) and the unit choices that make them train.

    Joint distances are in centimetres (``joint_unit_scale`` = 100 per metre): a 1 cm error
    costs 1, so L_J3D has the magnitude of the object and BMC terms while the paper's relative
    weights (0.5 : 5e-7 : 5e-5) are kept. In metres it would be 1e-4 and never learn; in
    millimetres it would swamp the object branch.

    :param joints_3d: weight of L_J3D (mean squared joint distance, cm^2, wrist-relative).
    :param mano_pose: weight of L_theta (mean squared error of the 48 axis-angle values, rad^2).
    :param mano_shape: weight of L_beta (mean squared error of the 10 shape values).
    :param bmc: weight of L_BMC (biomechanical constraints, Spurr et al. 2020).
    :param heatmap: weight of the 2D heatmap loss (KL to a Gaussian target; not in eq. 8).
    :param branch1: lambda1, weight of the pose-CVAE branch (the paper gives no value here).
    :param branch2: lambda2, weight of the image-VAE branch.
    :param classifier: weight of the object classifier cross-entropy (beyond the paper).
    :param image_reconstruction: weight of the image L2 terms inside each branch.
    :param pose_reconstruction: weight of the 9-D pose L2 terms inside each branch.
    :param object_corner_heatmap: weight of the object corner heatmap loss (KL to Gaussians at
        the 8 projected box corners, like ``heatmap``; needs ``model.object_corner_heatmaps``).
    :param pose_corners: weight of the box-corner pose terms inside each branch (not in the
        paper; 0 = off): the mean distance, cm, between the object's bounding-box corners posed
        by the predicted and the true pose. Unlike the L2 on the 6D entries, whose optimum
        under look-alike rotations (a can or a box turned half-way about its axis) is their
        average, near zero and so a random rotation after Gram-Schmidt, it scores the rotation
        after Gram-Schmidt and so makes the network commit to one.
    :param joint_unit_scale: metres -> loss unit for joints (100 = centimetres).
    :param pose_translation_scale: metres -> loss unit of the object translation in the 9-D
        L2 (10 = decimetres, comparable to the rotation entries in [-1, 1]).
    :param heatmap_sigma_px: standard deviation of the target Gaussians, crop pixels.
    :param bmc_bone_length: weight of the bone-length part of L_BMC.
    :param bmc_palm: weight of the palm (root-bone angle, planarity) part of L_BMC.
    :param bmc_joint_angle: weight of the joint-angle-limit part of L_BMC.
    """

    joints_3d: float = 0.5
    mano_pose: float = 5e-7
    mano_shape: float = 5e-5
    bmc: float = 1.0
    heatmap: float = 1.0
    branch1: float = 1.0
    branch2: float = 1.0
    classifier: float = 0.1
    image_reconstruction: float = 1.0
    pose_reconstruction: float = 1.0
    pose_corners: float = 0.0
    object_corner_heatmap: float = 0.0
    joint_unit_scale: float = 100.0
    pose_translation_scale: float = 10.0
    heatmap_sigma_px: float = 8.0
    bmc_bone_length: float = 1.0
    bmc_palm: float = 1.0
    bmc_joint_angle: float = 1.0


# --------------------------------------------------------------------------------------------
# Generic strict loader
# --------------------------------------------------------------------------------------------


def _type_name(expected):
    """Return a readable name of a type annotation."""
    return getattr(expected, '__name__', None) or str(expected).replace('typing.', '')


def _coerce(value, expected, key):
    """
    Check ``value`` against the annotation ``expected`` and convert it where that is lossless.

    :param value: a plain YAML value (or a dataclass instance for a dataclass field).
    :param expected: the resolved type annotation of the field.
    :param key: dotted key, for error messages.
    :return: the converted value.
    :raises ConfigError: on a type mismatch.
    """
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if dataclasses.is_dataclass(expected):
        if isinstance(value, expected):
            return value
        if not isinstance(value, dict):
            raise ConfigError('%s: expected a mapping of %s fields, got %r'
                              % (key, expected.__name__, value))
        return _from_dict(expected, value, key + '.')
    if expected is typing.Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError('%s: %r matches none of %s' % (key, value, _type_name(expected)))
    if origin is Literal:
        if value not in args:
            raise ConfigError('%s: %r is not one of %s' % (key, value, list(args)))
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError('%s: expected a list, got %r' % (key, value))
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError('%s: expected %d values, got %d' % (key, len(args), len(value)))
            items = [_coerce(v, t, '%s[%d]' % (key, i))
                     for i, (v, t) in enumerate(zip(value, args))]
        else:
            item_type = args[0] if args else typing.Any
            items = [_coerce(v, item_type, '%s[%d]' % (key, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError('%s: expected a mapping, got %r' % (key, value))
        return dict(value)
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError('%s: expected true/false, got %r' % (key, value))
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError('%s: expected an integer, got %r' % (key, value))
        return value
    if expected is float:
        if isinstance(value, str):
            # PyYAML follows YAML 1.1, which reads '5e-4' (no dot) as a string.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError('%s: expected a number, got %r' % (key, value))
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError('%s: expected a string, got %r' % (key, value))
        return value
    if isinstance(expected, type) and not isinstance(value, expected):
        raise ConfigError('%s: expected %s, got %r' % (key, _type_name(expected), value))
    return value


def _unknown_key_error(cls, name, prefix):
    """Build the error for a key that ``cls`` does not have, with its close matches."""
    known = [field.name for field in dataclasses.fields(cls)]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = ('; did you mean %s?' % ' or '.join(prefix + c for c in close)) if close else ''
    return ConfigError('unknown config key "%s%s" for %s%s (known keys: %s)'
                       % (prefix, name, cls.__name__, hint, ', '.join(known)))


def _from_dict(cls, data, prefix=''):
    """Build ``cls`` from a (partial) dict; missing keys keep the defaults."""
    if not isinstance(data, dict):
        raise ConfigError('%s: expected a mapping, got %r' % (prefix.rstrip('.') or
                                                              cls.__name__, data))
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        if name not in fields:
            raise _unknown_key_error(cls, name, prefix)
        expected = hints[name]
        if dataclasses.is_dataclass(expected) and isinstance(value, dict):
            # A partial mapping updates the field's default (which may differ from the
            # nested class's own defaults).
            field = fields[name]
            if field.default_factory is not dataclasses.MISSING:
                base = config_to_dict(field.default_factory())
                value = deep_merge(base, value)
        kwargs[name] = _coerce(value, expected, prefix + name)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as error:
        raise ConfigError('%s: %s' % (cls.__name__, error)) from error


def deep_merge(base, update):
    """
    Return ``base`` updated recursively with ``update``; neither input is modified.

    :param base: plain dict.
    :param update: plain dict; its nested mappings update those of ``base``, other values
        replace them.
    :return: a new dict.
    """
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(cls, data):
    """
    Build a config dataclass from a plain (possibly partial) dict, strictly.

    :param cls: a dataclass type whose fields are plain types, tuples, Literals or dataclasses.
    :param data: dict of field values; missing fields keep their defaults.
    :return: an instance of ``cls``.
    :raises ConfigError: unknown key (named, with close matches) or a value of the wrong type.
    """
    return _from_dict(cls, data or {})


def config_to_dict(config):
    """
    Convert a config dataclass to plain Python (dicts, lists, str, int, float, bool, None).

    :param config: a dataclass instance.
    :return: a nested dict, safe for YAML and for ``torch.load(weights_only=True)``.
    """
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {field.name: plain(getattr(value, field.name))
                    for field in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value
    return plain(config)


def parse_override(text):
    """
    Split an override ``a.b.c=value`` into the key path and the YAML-parsed value.

    :param text: override string; the value is parsed as YAML (``true``, ``3``, ``[1, 2]``).
    :return: tuple (list of key names, value).
    :raises ConfigError: when there is no ``=`` or the key is empty.
    """
    if '=' not in text:
        raise ConfigError('override %r must look like key.path=value' % text)
    key, raw = text.split('=', 1)
    key = key.strip()
    if not key or any(not part for part in key.split('.')):
        raise ConfigError('override %r has an empty key' % text)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ''
    except yaml.YAMLError as error:
        raise ConfigError('override %r: value is not valid YAML: %s' % (text, error)) from error
    return key.split('.'), value


def apply_overrides(data, overrides):
    """
    Set ``a.b=value`` overrides into a nested plain dict, in place.

    :param data: plain dict; missing or non-mapping intermediate keys become mappings.
    :param overrides: iterable of ``'a.b=value'`` strings (see :func:`parse_override`), or None.
    :raises ConfigError: a malformed override.
    """
    for text in overrides or ():
        key_path, value = parse_override(text)
        node = data
        for part in key_path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[key_path[-1]] = value


def read_yaml_mapping(path):
    """
    Read a YAML file whose top level is a mapping (or empty); errors name the file.

    :param path: YAML file.
    :return: dict (empty for an empty file).
    :raises FileNotFoundError: the file does not exist.
    :raises ConfigError: invalid YAML, or a top level that is not a mapping.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError('config file not found: %s' % path)
    with open(path, encoding='utf-8') as stream:
        try:
            loaded = yaml.safe_load(stream)
        except yaml.YAMLError as error:
            raise ConfigError('%s: invalid YAML: %s' % (path, error)) from error
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError('%s: the top level must be a mapping' % path)
    return loaded or {}


def load_config(cls, yaml_path=None, overrides=()):
    """
    Load a config dataclass: defaults, then a YAML file, then ``key.path=value`` overrides.

    :param cls: the dataclass type (e.g. :class:`ModelConfig`).
    :param yaml_path: YAML file with a (partial) mapping of the fields, or None for defaults.
    :param overrides: iterable of ``'a.b=value'`` strings applied last.
    :return: an instance of ``cls``.
    :raises FileNotFoundError: the YAML file does not exist (the path is named).
    :raises ConfigError: unknown key (named, with close matches), wrong type, bad override.
    """
    data = {}
    if yaml_path is not None:
        yaml_path = os.fspath(yaml_path)
        data = read_yaml_mapping(yaml_path)
    apply_overrides(data, overrides)
    try:
        return config_from_dict(cls, data)
    except ConfigError as error:
        if yaml_path is not None:
            raise ConfigError('%s: %s' % (yaml_path, error)) from None
        raise


def load_model_config(yaml_path=None, overrides=()):
    """
    Load a :class:`ModelConfig` (shorthand for ``load_config(ModelConfig, ...)``).

    :param yaml_path: YAML file or None for the paper defaults.
    :param overrides: ``'a.b=value'`` strings.
    :return: ModelConfig.
    """
    return load_config(ModelConfig, yaml_path, overrides)


__all__ = [
    'BackboneConfig', 'CVAEConfig', 'ClassifierConfig', 'ConfigError', 'DEXYCB_OBJECT_IDS',
    'DirectHeadConfig', 'HandHeadConfig', 'LossConfig', 'ModelConfig',
    'apply_overrides', 'config_from_dict', 'config_to_dict', 'deep_merge', 'load_config',
    'load_model_config', 'parse_override', 'read_yaml_mapping',
]
