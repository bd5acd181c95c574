"""Build script: works under ``colcon build`` (ament_python) and ``pip install .`` alike."""

from glob import glob
import os

from setuptools import find_packages
from setuptools import setup

PACKAGE_NAME = 'hand_object_pose_ros'

# Executables: console scripts for pip users, and the same entry points as small wrapper files
# installed to lib/<package>/ through data_files, because pip ignores setup.cfg's
# install_scripts and `ros2 run` looks only there.
EXECUTABLES = {
    'hand_object_pose_node': 'hand_object_pose_ros.ros.node:main',
    'hand_object_pose_demo': 'hand_object_pose_ros.ros.demo:main',
    'hand_object_pose_synthetic_camera': 'hand_object_pose_ros.ros.synthetic_camera:main',
    'hand_object_pose_monitor': 'hand_object_pose_ros.ros.monitor:main',
    'hand_object_pose_train': 'hand_object_pose_ros.train:main',
    'hand_object_pose_evaluate': 'hand_object_pose_ros.evaluate:main',
    'hand_object_pose_benchmark': 'hand_object_pose_ros.benchmark:main',
}


def package_files(directory, patterns):
    """
    List the files of ``directory`` matching ``patterns`` for data_files.

    :param directory: folder relative to this file.
    :param patterns: glob patterns inside it.
    :return: sorted paths.
    """
    found = []
    for pattern in patterns:
        found.extend(glob(os.path.join(directory, pattern)))
    return sorted(path for path in found if os.path.isfile(path))


setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE_NAME: ['assets/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE_NAME]),
        ('share/' + PACKAGE_NAME, ['package.xml']),
        ('share/' + PACKAGE_NAME + '/launch', package_files('launch', ['*.py'])),
        ('share/' + PACKAGE_NAME + '/config', package_files('config', ['*.yaml', '*.xml',
                                                                       '*.rviz'])),
        ('share/' + PACKAGE_NAME + '/models', package_files('models', ['*.md', '*.pt'])),
        ('lib/' + PACKAGE_NAME, package_files('resource/bin', ['*'])),
    ],
    install_requires=['setuptools', 'numpy', 'scipy', 'pyyaml', 'opencv-python-headless'],
    zip_safe=False,
    maintainer='hand_object_pose_ros maintainers',
    maintainer_email='maintainers@hand-object-pose-ros.org',
    description='Real-time MANO hand mesh and held-object 6D pose from RGB: a ROS 2 node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            '{} = {}'.format(name, target) for name, target in sorted(EXECUTABLES.items())],
    },
)
