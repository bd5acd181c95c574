"""The package installs both ways users install it, and the ament index finds it each time."""

import os
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'hand_object_pose_ros'
EXECUTABLES = ('hand_object_pose_node', 'hand_object_pose_demo', 'hand_object_pose_train',
               'hand_object_pose_evaluate', 'hand_object_pose_benchmark')


def copy_sources(destination):
    """Copy the tracked files of the repository (what a fresh clone has) to ``destination``."""
    listed = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO_ROOT, check=True,
                            capture_output=True).stdout.decode().split('\0')
    for relative in filter(None, listed):
        source = os.path.join(REPO_ROOT, relative)
        if not os.path.isfile(source):
            continue
        target = os.path.join(destination, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)


def find_package_share(prefix):
    """Ask ament_index_python (in a child process) for the package's share dir under prefix."""
    code = ('from ament_index_python.packages import get_package_share_directory as g;'
            'print(g(%r))' % PACKAGE)
    env = dict(os.environ, AMENT_PREFIX_PATH=prefix)
    result = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def check_install_prefix(prefix):
    """Check the ament index marker, executables, launch, config and package.xml."""
    marker = os.path.join(prefix, 'share', 'ament_index', 'resource_index', 'packages', PACKAGE)
    assert os.path.isfile(marker), 'ament index marker missing: ' + marker
    for name in EXECUTABLES:
        path = os.path.join(prefix, 'lib', PACKAGE, name)
        assert os.access(path, os.X_OK), 'not executable (ros2 run needs it): ' + path
    share = find_package_share(prefix)
    assert os.path.realpath(share) == os.path.realpath(os.path.join(prefix, 'share', PACKAGE))
    for relative in ('package.xml', 'launch/hand_object_pose.launch.py'):
        assert os.path.isfile(os.path.join(share, relative)), relative


@pytest.mark.slow
def test_pip_install_is_found_by_ament_index(tmp_path):
    """`pip install .` (not editable) installs the data_files the ament index needs."""
    source = tmp_path / 'src'
    copy_sources(str(source))
    prefix = str(tmp_path / 'prefix')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
                    '--no-build-isolation', '--prefix', prefix, str(source)],
                   check=True, timeout=300)
    check_install_prefix(prefix)


@pytest.mark.slow
def test_colcon_build_is_found_by_ament_index(tmp_path):
    """`colcon build` in a workspace installs the package as a ROS package."""
    colcon = shutil.which('colcon', path=os.path.dirname(sys.executable))
    if colcon is None:
        pytest.skip('colcon is not installed in this environment')
    copy_sources(str(tmp_path / 'src' / PACKAGE))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    result = subprocess.run([colcon, 'build', '--event-handlers', 'console_direct-'],
                            cwd=str(tmp_path), env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    check_install_prefix(str(tmp_path / 'install' / PACKAGE))
