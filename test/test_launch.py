"""
The launch file, config/node.yaml, the RViz config and the parameter declarations agree.

launch / launch_ros are not on PyPI: where they are missing the launch file is checked from its
syntax tree (it parses, names only declared parameters and the node's own topics); where they
are installed, ``generate_launch_description()`` is also built and inspected.
"""

import ast
import importlib.util
import os

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
import yaml

from hand_object_pose_ros.ros import params as node_params
from hand_object_pose_ros.ros.node import HandObjectPoseNode

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_FILE = os.path.join(REPO_ROOT, 'launch', 'hand_object_pose.launch.py')
NODE_YAML = os.path.join(REPO_ROOT, 'config', 'node.yaml')
RVIZ_FILE = os.path.join(REPO_ROOT, 'config', 'hand_object_pose.rviz')
DECLARED = {spec.name for spec in node_params.PARAMETER_SPECS}
NODE_INPUTS = {'image', 'camera_info', 'depth', 'hand_bbox'}
NODE_OUTPUTS = {'object_pose', 'markers', 'debug_image', 'hand_joints'}
REALSENSE_TOPICS = {
    'image_topic': '/camera/camera/color/image_raw',
    'camera_info_topic': '/camera/camera/color/camera_info',
    'depth_topic': '/camera/camera/aligned_depth_to_color/image_raw',
}


def _launch_ros_available():
    """Return True when launch and launch_ros can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ('launch', 'launch_ros'))


def _node_call(tree):
    """Return the ``Node(...)`` call of the launch file whose package is ours."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'Node':
            keywords = {k.arg: k.value for k in node.keywords}
            package = keywords.get('package')
            if isinstance(package, ast.Name) and package.id == 'PACKAGE' or \
                    isinstance(package, ast.Constant) and package.value == 'hand_object_pose_ros':
                return keywords
    raise AssertionError('no Node(package=hand_object_pose_ros) in the launch file')


def _node_yaml_parameters():
    """Return the ros__parameters mapping of config/node.yaml."""
    with open(NODE_YAML, encoding='utf-8') as stream:
        data = yaml.safe_load(stream)
    assert list(data) == ['/**'], 'node.yaml must hold one /** section'
    return data['/**']['ros__parameters']


def test_launch_file_names_only_declared_parameters_and_node_topics():
    """Parameter overrides, remappings and the executable match the node (syntax tree)."""
    with open(LAUNCH_FILE, encoding='utf-8') as stream:
        tree = ast.parse(stream.read(), LAUNCH_FILE)
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    keywords = _node_call(tree)
    assert keywords['executable'].value == 'hand_object_pose_node'
    overrides = [item for item in keywords['parameters'].elts if isinstance(item, ast.Dict)]
    assert overrides, 'the launch file overrides no parameter'
    keys = {key.value for override in overrides for key in override.keys}
    assert keys <= DECLARED, 'undeclared parameters: %s' % (keys - DECLARED)
    assert {'checkpoint', 'mano_model_dir', 'device'} <= keys
    remapped = {pair.elts[0].value for pair in keywords['remappings'].elts}
    assert remapped == NODE_INPUTS
    arguments = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'ARGUMENTS':
            arguments = {item.elts[0].value: item.elts[1].value for item in node.value.elts}
    for name, topic in REALSENSE_TOPICS.items():
        assert arguments[name] == topic
    for name in ('bbox_topic', 'checkpoint', 'mano_model_dir', 'device', 'use_rviz',
                 'use_camera'):
        assert name in arguments


@pytest.mark.skipif(not _launch_ros_available(),
                    reason='launch / launch_ros are not installed (not on PyPI)')
def test_generate_launch_description_with_launch_ros():
    """With launch_ros installed, the description builds and declares the arguments."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    spec = importlib.util.spec_from_file_location('hand_object_pose_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    declared = {action.name for action in description.entities
                if isinstance(action, DeclareLaunchArgument)}
    assert set(REALSENSE_TOPICS) | {'checkpoint', 'mano_model_dir', 'device',
                                    'use_rviz'} <= declared


def test_node_yaml_keys_equal_declared_parameters_and_defaults():
    """config/node.yaml lists every declared parameter, no other, with the same defaults."""
    values = _node_yaml_parameters()
    assert set(values) == DECLARED
    for spec in node_params.PARAMETER_SPECS:
        expected = spec.default
        if isinstance(expected, float):
            assert values[spec.name] == pytest.approx(expected), spec.name
        else:
            assert values[spec.name] == expected, spec.name


def test_node_yaml_loads_through_rcl_into_the_node():
    """The real rcl YAML parser accepts node.yaml and the node reads valid values from it."""
    context = rclpy.Context()
    rclpy.init(args=['--ros-args', '--params-file', NODE_YAML], context=context)
    try:
        node = HandObjectPoseNode(context=context)
        try:
            values = node_params.read_parameters(node)
            assert values.autostart is True
            assert values.object_id == 'auto'
            assert values.fallback_K is None
            assert values.marker_hand_color == pytest.approx((0.95, 0.75, 0.6, 0.8))
            # Ranges reach rclpy: an out-of-range value is refused, a valid one accepted.
            assert not node.set_parameters([Parameter('bbox_scale', value=9.0)])[0].successful
            assert node.set_parameters([Parameter('bbox_scale', value=2.0)])[0].successful
            # Choices and parsed values are checked by the node's validator.
            refused = node.set_parameters([Parameter('hand_side', value='middle')])[0]
            assert not refused.successful and 'hand_side' in refused.reason
            assert not node.set_parameters([Parameter('object_id', value=-3)])[0].successful
            assert node.set_parameters([Parameter('object_id', value=4)])[0].successful
            assert not node.set_parameters(
                [Parameter('fallback_K', value=[1.0, 2.0, 3.0])])[0].successful
            assert node.set_parameters(
                [Parameter('fallback_K', value=[500.0, 500.0, 160.0, 120.0])])[0].successful
            K = node_params.read_parameters(node).fallback_K
            np.testing.assert_allclose(K, [[500, 0, 160], [0, 500, 120], [0, 0, 1]])
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_out_of_range_override_fails_with_the_parameter_name():
    """A bad command-line override stops node creation with a message naming it."""
    context = rclpy.Context()
    rclpy.init(args=['--ros-args', '-p', 'qos_depth:=0'], context=context)
    try:
        with pytest.raises(node_params.ParameterError, match='qos_depth'):
            HandObjectPoseNode(context=context)
    finally:
        rclpy.shutdown(context=context)


def test_parameter_descriptors_carry_ranges_and_descriptions():
    """Every parameter has a description; numeric ones with a range get a ROS range."""
    for spec in node_params.PARAMETER_SPECS:
        descriptor = node_params.descriptor(spec)
        assert descriptor.description
        if spec.value_range is not None:
            ranges = list(descriptor.integer_range) + list(descriptor.floating_point_range)
            assert len(ranges) == 1, spec.name
            assert ranges[0].from_value == spec.value_range[0]
            assert ranges[0].to_value == spec.value_range[1]


def test_resolve_path_tries_source_tree(tmp_path, monkeypatch):
    """Relative paths resolve against the working directory, the package share, the source."""
    monkeypatch.chdir(tmp_path)
    share = node_params.package_share_directory()
    installed = os.path.join(share, 'config', 'node.yaml') if share else None
    expected = installed if installed and os.path.exists(installed) else NODE_YAML
    assert node_params.resolve_path('config/node.yaml') == os.path.abspath(expected)
    (tmp_path / 'config').mkdir()
    (tmp_path / 'config' / 'node.yaml').write_text('x: 1\n')
    assert node_params.resolve_path('config/node.yaml') == str(tmp_path / 'config' / 'node.yaml')
    assert node_params.resolve_path('does/not/exist.pt') is None


def test_rviz_config_shows_the_node_outputs():
    """The RViz2 config is valid YAML with displays of the four outputs."""
    with open(RVIZ_FILE, encoding='utf-8') as stream:
        config = yaml.safe_load(stream)
    displays = config['Visualization Manager']['Displays']
    by_class = {}
    for display in displays:
        topic = display.get('Topic', {})
        by_class.setdefault(display['Class'], []).append(
            topic.get('Value') if isinstance(topic, dict) else topic)
    assert by_class['rviz_default_plugins/Image'] == ['/debug_image']
    assert by_class['rviz_default_plugins/MarkerArray'] == ['/markers']
    assert by_class['rviz_default_plugins/Pose'] == ['/object_pose']
    assert by_class['rviz_default_plugins/PoseArray'] == ['/hand_joints']
    topics = {value.lstrip('/') for values in by_class.values() for value in values if value}
    assert topics == NODE_OUTPUTS
    assert config['Visualization Manager']['Global Options']['Fixed Frame']
