"""Test-wide settings: isolated ROS 2 discovery, the Fast DDS profile, and torch threads."""

import os
import random

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each pytest run gets its own DDS domain, so parallel runs on one machine never see each other,
# and discovery stays on this machine (no multicast to the network).
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      os.path.join(REPO_ROOT, 'config', 'fastdds_shm.xml'))
# Child processes started by tests import the package from this working tree.
os.environ['PYTHONPATH'] = REPO_ROOT + (
    os.pathsep + os.environ['PYTHONPATH'] if os.environ.get('PYTHONPATH') else '')


@pytest.fixture(scope='session')
def repo_root():
    """Absolute path of the repository root."""
    return REPO_ROOT


@pytest.fixture(scope='module')
def one_torch_thread():
    """
    Run a module's tests with one torch CPU thread, restoring the count afterwards.

    On a small, shared (oversubscribed) CPU, OpenMP threads wait on each other: one thread is
    several times faster for small tensors. Use with
    ``pytestmark = pytest.mark.usefixtures('one_torch_thread')``.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
