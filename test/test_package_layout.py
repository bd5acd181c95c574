"""Package boundaries: ROS imports only under ros/, launch/ and test/."""

import ast
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO_ROOT, 'hand_object_pose_ros')
ROS_MODULES = ('rclpy', 'std_msgs', 'sensor_msgs', 'geometry_msgs', 'visualization_msgs',
               'diagnostic_msgs', 'lifecycle_msgs', 'builtin_interfaces', 'cv_bridge',
               'message_filters', 'vision_msgs', 'launch', 'launch_ros', 'tf2_ros',
               'rosidl_runtime_py', 'ament_index_python')
# The chain constants/types/config <- geometry <- mano <- modeling <- inference never imports
# the data, training or evaluation side.
CHAIN_MODULES = ('constants', 'types', 'config', 'geometry', 'crop', 'mano', 'modeling',
                 'inference')
SIDE_MODULES = ('data', 'losses', 'metrics', 'train', 'evaluate')


def imported_top_modules(path):
    """Return the (module, line) pairs imported by a Python file."""
    with open(path, encoding='utf-8') as source:
        tree = ast.parse(source.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def package_python_files():
    """Yield (relative path, absolute path) of the package's Python files."""
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, PACKAGE_DIR), path


def test_ros_imports_only_under_ros():
    """The core is importable and testable without ROS."""
    offenders = []
    for relative, path in package_python_files():
        if relative.startswith('ros' + os.sep):
            continue
        for module, line in imported_top_modules(path):
            if module.split('.')[0] in ROS_MODULES:
                offenders.append('%s:%d imports %s' % (relative, line, module))
    assert not offenders, '\n'.join(offenders)


def test_inference_chain_does_not_import_data_side():
    """Dependency direction of DESIGN.md section 6."""
    offenders = []
    for relative, path in package_python_files():
        top = relative.split(os.sep)[0].replace('.py', '')
        if top not in CHAIN_MODULES:
            continue
        for module, line in imported_top_modules(path):
            parts = module.split('.')
            if parts[0] == 'hand_object_pose_ros' and len(parts) > 1 and \
                    parts[1] in SIDE_MODULES:
                offenders.append('%s:%d imports %s' % (relative, line, module))
    assert not offenders, '\n'.join(offenders)
