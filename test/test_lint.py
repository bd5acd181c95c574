"""The real ROS linters over the whole package, as colcon test runs them."""

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINTED_PATHS = [os.path.join(REPO_ROOT, name)
                for name in ('hand_object_pose_ros', 'launch', 'test', 'scripts', 'setup.py')]


def run_linter(module, extra_args):
    """
    Run an ament linter in a fresh interpreter and return (exit code, output).

    A child process, because flake8 forks workers: forking this test process, which has
    torch and rclpy threads running from earlier tests, crashes the workers.
    """
    result = subprocess.run([sys.executable, '-m', module] + extra_args + LINTED_PATHS,
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    """ament_flake8: single quotes, 99 columns, import order, docstrings, builtins."""
    rc, output = run_linter('ament_flake8.main',
                            ['--config', os.path.join(REPO_ROOT, 'setup.cfg')])
    assert rc == 0, 'ament_flake8 found code style errors:\n' + output


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    """ament_pep257: docstring conventions."""
    rc, output = run_linter('ament_pep257.main', [])
    assert rc == 0, 'ament_pep257 found code style errors:\n' + output
