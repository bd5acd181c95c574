"""
Parameters of the hand_object_pose node: declared once here, with descriptors and ranges.

``config/node.yaml`` holds the defaults a user edits; the values below are the same defaults,
so a node started without the file behaves the same. Every parameter is read when the node is
configured (lifecycle ``configure``): changing one takes effect at the next configure.
A test checks that node.yaml, the launch file and :data:`PARAMETER_SPECS` agree.
"""

from dataclasses import dataclass
import math
import os
import re
from typing import Optional

import numpy as np
from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterUninitializedException

PACKAGE_NAME = 'hand_object_pose_ros'
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

AUTO = 'auto'
DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda|cuda:\d+|mps)$')


@dataclass(frozen=True)
class ParameterSpec:
    """
    One node parameter.

    :param name: parameter name.
    :param default: default value (its Python type fixes the ROS type unless ``dynamic_typing``).
    :param description: what it does, with units.
    :param choices: allowed string values (checked by :func:`validate_value`), or empty.
    :param value_range: (from, to) inclusive bounds for numbers (a ROS descriptor range), or None.
    :param dynamic_typing: accept several ROS types (e.g. int or the string 'auto').
    """

    name: str
    default: object
    description: str
    choices: tuple = ()
    value_range: Optional[tuple] = None
    dynamic_typing: bool = False


PARAMETER_SPECS = (
    ParameterSpec('autostart', True,
                  'Configure and activate at start-up (plain `ros2 run`). false: wait for a '
                  'lifecycle manager. With true, a failed configure ends the process with '
                  'exit code 1.'),
    ParameterSpec('checkpoint', '',
                  "Trained checkpoint (.pt). '' = random weights from model_config (outputs "
                  'are meaningless; for tests and wiring). Relative paths resolve against the '
                  'working directory, then the package share directory, then the source tree.'),
    ParameterSpec('model_config', '',
                  "Model config YAML used only when checkpoint is '' (a checkpoint carries "
                  "its own config); '' = the paper configuration. Relative paths resolve like "
                  'checkpoint.'),
    ParameterSpec('seed', 0,
                  "Seed of the random weights when checkpoint is '' (same seed, same weights).",
                  value_range=(0, 2 ** 31 - 1)),
    ParameterSpec('mano_model_dir', '',
                  "Folder (or .pkl file) of the licensed MANO model. '' = the built-in "
                  'stand-in hand model (not MANO: shapes are approximate).'),
    ParameterSpec('device', AUTO,
                  'Torch device: auto (cuda when available), cpu, cuda or cuda:N.'),
    ParameterSpec('fp16', False,
                  'Half-precision inference on CUDA (checkpoint only; ignored on CPU).'),
    ParameterSpec('optimize', AUTO,
                  'Network path: auto (the fastest path checked at configure to agree with '
                  'the reference: ONNX Runtime on CPU when installed, else fused BatchNorm), '
                  'none (the eager reference), fused, compile (torch.compile; slow start), '
                  'onnxruntime. See docs/benchmark.md.',
                  choices=(AUTO, 'none', 'fused', 'compile', 'onnxruntime')),
    ParameterSpec('object_id', AUTO,
                  "Catalogue id of the held object (int), or 'auto' = the network's "
                  'classifier picks it. A Detection2D class id, when it is an int, wins.',
                  dynamic_typing=True),
    ParameterSpec('hand_side', 'right', 'Side of the hand in the boxes: right or left.',
                  choices=('right', 'left')),
    ParameterSpec('bbox_scale', 1.5,
                  'The hand box is squared and enlarged by this factor before cropping.',
                  value_range=(1.0, 4.0)),
    ParameterSpec('bbox_msg_type', AUTO,
                  'Type on hand_bbox: detection2d (vision_msgs/Detection2DArray), roi '
                  '(sensor_msgs/RegionOfInterest), auto = detection2d when vision_msgs is '
                  'importable, else roi.',
                  choices=(AUTO, 'roi', 'detection2d')),
    ParameterSpec('bbox_max_age_s', 0.5,
                  'A RegionOfInterest (no header) pairs with an image received within this '
                  'many seconds of it.',
                  value_range=(0.0, 10.0)),
    ParameterSpec('use_depth', True,
                  'Subscribe to the aligned depth image and synchronise it with the colour '
                  'image (the wrist depth then comes from it).'),
    ParameterSpec('depth_timeout_s', 1.0,
                  'With use_depth, images are processed without depth when no depth message '
                  'came for this long (0 = always wait for depth).',
                  value_range=(0.0, 60.0)),
    ParameterSpec('sync_slop_s', 0.05,
                  'Largest stamp difference between synchronised messages, seconds.',
                  value_range=(0.0, 1.0)),
    ParameterSpec('sync_queue_size', 10, 'Messages kept per synchronised input.',
                  value_range=(1, 100)),
    ParameterSpec('qos_reliability', 'best_effort',
                  'Reliability of the input subscriptions (best_effort matches every '
                  'publisher; reliable only reliable ones).',
                  choices=('best_effort', 'reliable')),
    ParameterSpec('qos_depth', 2, 'History depth of the input subscriptions.',
                  value_range=(1, 100)),
    ParameterSpec('publish_markers', True, 'Publish the markers MarkerArray.'),
    ParameterSpec('publish_debug_image', True,
                  'Publish debug_image (overlay drawn on the input, rgb8).'),
    ParameterSpec('marker_hand_color', [0.95, 0.75, 0.6, 0.8],
                  'RGBA (0..1) of the hand mesh marker.'),
    ParameterSpec('marker_object_color', [0.2, 0.6, 1.0, 0.8],
                  'RGBA (0..1) of the object marker.'),
    ParameterSpec('marker_skeleton', True, 'Add the hand skeleton LINE_LIST marker.'),
    ParameterSpec('marker_lifetime_s', 0.5,
                  'Marker lifetime, seconds (0 = until replaced).',
                  value_range=(0.0, 3600.0)),
    ParameterSpec('fallback_K', [],
                  'Intrinsics used while no valid camera_info has arrived: [fx, fy, cx, cy] '
                  'or the 9 row-major K entries (pixels). [] = none: frames wait for '
                  'camera_info.',
                  dynamic_typing=True),
    ParameterSpec('warn_throttle_s', 5.0,
                  'Each kind of warning about a bad input is logged at most once per this '
                  'many seconds.',
                  value_range=(0.0, 3600.0)),
    ParameterSpec('diagnostics_period_s', 1.0,
                  'Period of the /diagnostics status with the frame counters (0 = off).',
                  value_range=(0.0, 60.0)),
)

SPECS_BY_NAME = {spec.name: spec for spec in PARAMETER_SPECS}


class ParameterError(ValueError):
    """A parameter value the node cannot use; the message names the parameter."""


@dataclass
class NodeParameters:
    """
    The validated parameter values (see :data:`PARAMETER_SPECS` for their meaning).

    ``object_id`` is an int or 'auto'; ``fallback_K`` a (3, 3) float64 array or None; colours
    are 4-tuples of floats; paths are as given (resolve them with :func:`resolve_path`).
    """

    autostart: bool
    checkpoint: str
    model_config: str
    seed: int
    mano_model_dir: str
    device: str
    fp16: bool
    optimize: str
    object_id: object
    hand_side: str
    bbox_scale: float
    bbox_msg_type: str
    bbox_max_age_s: float
    use_depth: bool
    depth_timeout_s: float
    sync_slop_s: float
    sync_queue_size: int
    qos_reliability: str
    qos_depth: int
    publish_markers: bool
    publish_debug_image: bool
    marker_hand_color: tuple
    marker_object_color: tuple
    marker_skeleton: bool
    marker_lifetime_s: float
    fallback_K: Optional[np.ndarray]
    warn_throttle_s: float
    diagnostics_period_s: float


def descriptor(spec):
    """
    Build the ROS parameter descriptor of a spec.

    :param spec: :class:`ParameterSpec`.
    :return: rcl_interfaces/ParameterDescriptor (description, choices in the constraints text,
        integer or floating point range).
    """
    text = spec.description
    constraints = ''
    if spec.choices:
        constraints = 'one of: ' + ', '.join(spec.choices)
    result = ParameterDescriptor(name=spec.name, description=text,
                                 additional_constraints=constraints,
                                 dynamic_typing=spec.dynamic_typing)
    if spec.value_range is not None:
        low, high = spec.value_range
        if isinstance(spec.default, bool):
            pass
        elif isinstance(spec.default, int):
            result.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            result.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return result


def declare_parameters(node):
    """
    Declare every parameter of :data:`PARAMETER_SPECS` on a node and install the validator.

    :param node: rclpy Node.
    :raises ParameterError: when an override (command line, params file) is out of range or of
        the wrong type; the message names the parameter.
    """
    for spec in PARAMETER_SPECS:
        try:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
        except Exception as error:  # rclpy raises several exception types here
            raise ParameterError('parameter %r: invalid value given (%s). %s'
                                 % (spec.name, error, spec.description)) from error
    node.add_on_set_parameters_callback(_on_set_parameters)


def _on_set_parameters(parameters):
    """Reject invalid values set at run time (ranges are checked by rclpy itself)."""
    for parameter in parameters:
        if parameter.name not in SPECS_BY_NAME:
            continue
        try:
            validate_value(parameter.name, parameter.value)
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
    return SetParametersResult(successful=True)


def _as_float_list(name, value):
    """Return a list of finite floats or raise ParameterError."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, '__len__'):
        raise ParameterError('parameter %r must be a list of numbers, got %r' % (name, value))
    try:
        numbers = [float(item) for item in value]
    except (TypeError, ValueError):
        raise ParameterError('parameter %r must be a list of numbers, got %r'
                             % (name, value)) from None
    if not all(math.isfinite(number) for number in numbers):
        raise ParameterError('parameter %r has NaN or infinite entries: %r' % (name, numbers))
    return numbers


def parse_object_id(value):
    """
    Parse the object_id parameter.

    :param value: int, or a string holding an int or 'auto'.
    :return: int >= 0 or 'auto'.
    :raises ParameterError: anything else.
    """
    if isinstance(value, bool):
        raise ParameterError("parameter 'object_id' must be an int or 'auto', got %r" % value)
    if isinstance(value, int):
        object_id = value
    elif isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    else:
        try:
            object_id = int(str(value).strip())
        except ValueError:
            raise ParameterError("parameter 'object_id' must be an int or 'auto', got %r"
                                 % (value,)) from None
    if object_id < 0:
        raise ParameterError("parameter 'object_id' must be >= 0, got %d" % object_id)
    return object_id


def parse_fallback_K(value):
    """
    Parse the fallback_K parameter.

    :param value: [] / None / all zeros (none), [fx, fy, cx, cy] or 9 row-major entries, pixels.
    :return: (3, 3) float64 K, or None.
    :raises ParameterError: another length, non-finite values or fx, fy <= 0.
    """
    numbers = _as_float_list('fallback_K', value)
    if not numbers or not any(numbers):
        return None
    if len(numbers) == 4:
        fx, fy, cx, cy = numbers
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    elif len(numbers) == 9:
        K = np.array(numbers, dtype=np.float64).reshape(3, 3)
    else:
        raise ParameterError('parameter %r must have 0, 4 (fx, fy, cx, cy) or 9 values, got %d'
                             % ('fallback_K', len(numbers)))
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ParameterError("parameter 'fallback_K' needs fx, fy > 0, got fx=%g, fy=%g"
                             % (K[0, 0], K[1, 1]))
    return K


def parse_color(name, value):
    """
    Parse an RGBA colour parameter.

    :param name: parameter name (for the message).
    :param value: 3 or 4 numbers in 0..1 (alpha 1 when 3).
    :return: (r, g, b, a) floats.
    :raises ParameterError: another length or values outside 0..1.
    """
    numbers = _as_float_list(name, value)
    if len(numbers) == 3:
        numbers.append(1.0)
    if len(numbers) != 4 or not all(0.0 <= number <= 1.0 for number in numbers):
        raise ParameterError('parameter %r must be 3 or 4 values in 0..1 (RGBA), got %r'
                             % (name, numbers))
    return tuple(numbers)


def validate_value(name, value):
    """
    Check one parameter value beyond what its ROS descriptor checks.

    :param name: parameter name (one of :data:`PARAMETER_SPECS`).
    :param value: the value.
    :return: the parsed value (as stored in :class:`NodeParameters`).
    :raises ParameterError: with a message naming the parameter and the allowed values.
    """
    spec = SPECS_BY_NAME[name]
    if spec.choices:
        if value not in spec.choices:
            raise ParameterError('parameter %r must be one of %s, got %r'
                                 % (name, ', '.join(spec.choices), value))
        return value
    if name == 'device':
        if not isinstance(value, str) or not DEVICE_PATTERN.match(value):
            raise ParameterError("parameter 'device' must be auto, cpu, cuda or cuda:N, got %r"
                                 % (value,))
        return value
    if name == 'object_id':
        return parse_object_id(value)
    if name == 'fallback_K':
        return parse_fallback_K(value)
    if name in ('marker_hand_color', 'marker_object_color'):
        return parse_color(name, value)
    return value


def read_parameters(node):
    """
    Read and validate every parameter of a node.

    :param node: rclpy Node on which :func:`declare_parameters` ran.
    :return: :class:`NodeParameters`.
    :raises ParameterError: the first invalid value, naming the parameter.
    """
    values = {}
    for spec in PARAMETER_SPECS:
        try:
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            # An empty list in a params file or on the command line leaves the parameter
            # unset; it means "none" for the list parameters.
            value = spec.default
        values[spec.name] = validate_value(spec.name, value)
    return NodeParameters(**values)


def package_share_directory():
    """Return the installed share directory of the package, or None when not installed."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return get_package_share_directory(PACKAGE_NAME)
    except Exception:  # not importable, or the package is not on the ament index
        return None


def resolve_parameter_path(name, value, reason=''):
    """
    Resolve the path a parameter names, or fail naming the parameter.

    :param name: parameter name, for the message.
    :param value: the parameter's (non-empty) path.
    :param reason: optional text appended to the message (why the file is needed).
    :return: the absolute path that exists.
    :raises ParameterError: the path exists nowhere :func:`resolve_path` looks.
    """
    path = resolve_path(value)
    if path is None:
        raise ParameterError(
            "parameter '%s': %r not found (relative paths are tried against the working "
            'directory, the package share directory and the source tree)%s'
            % (name, value, reason))
    return path


def resolve_path(path):
    """
    Find a file or folder named by a parameter.

    :param path: absolute path, or relative to the working directory, the package share
        directory or the source tree root (tried in that order); ``~`` is expanded.
    :return: the absolute path that exists, or None.
    """
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path if os.path.exists(path) else None
    roots = [os.getcwd(), package_share_directory(), SOURCE_ROOT]
    for root in roots:
        if root is None:
            continue
        candidate = os.path.abspath(os.path.join(root, path))
        if os.path.exists(candidate):
            return candidate
    return None
