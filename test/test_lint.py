"""The real ROS linters over the whole package, as colcon test runs them."""

import os

from ament_flake8.main import main_with_errors as flake8_main
from ament_pep257.main import main as pep257_main
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINTED_PATHS = [os.path.join(REPO_ROOT, name)
                for name in ('hand_object_pose_ros', 'launch', 'test', 'scripts', 'setup.py')]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    """ament_flake8: single quotes, 99 columns, import order, docstrings, builtins."""
    config = os.path.join(REPO_ROOT, 'setup.cfg')
    rc, errors = flake8_main(argv=['--config', config] + LINTED_PATHS)
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    """ament_pep257: docstring conventions."""
    rc = pep257_main(argv=LINTED_PATHS)
    assert rc == 0, 'Found code style errors / warnings'
