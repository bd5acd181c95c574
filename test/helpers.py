"""
What several test files share: tiny network configs and starting the node, as a process or here.

Plain functions and constants, imported as ``from helpers import ...`` (pytest puts test/ on
``sys.path``). ROS modules are imported inside the functions that need them, so that the
non-ROS tests importing this module never load rclpy.
"""

import contextlib
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LITE_YAML = os.path.join(REPO_ROOT, 'config', 'model_lite.yaml')

# A tiny network for the node tests (ResNet-18, 128 px input, narrow heads): random weights,
# fast on the CPU. YAML text, written to a file by write_tiny_model_config.
TINY_MODEL_CONFIG = """\
input_size_px: 128
backbone: {architecture: resnet18, fpn_channels: 32}
hand_head: {channels: 32, num_modules: 1, fc_hidden: 64}
cvae:
  latent_size: 16
  pose_encoder_sizes: [32, 64]
  pose_decoder_sizes: [64, 32]
  image_encoder_conv_channels: [32, 16, 16, 8, 8, 2]
  image_encoder_fc_sizes: [128, 64]
  image_decoder_channels: [32, 16, 16, 8, 8, 8]
classifier: {hidden_size: 32}
"""

# A smaller network for the training and evaluation tests (64 px, narrow layers): a step costs
# well under a second on a CPU. A ModelConfig mapping.
TINY_MODEL = {
    'input_size_px': 64,
    'backbone': {'architecture': 'resnet18', 'fpn_channels': 16},
    'hand_head': {'channels': 16, 'fc_hidden': 32, 'num_modules': 2},
    'cvae': {'latent_size': 8, 'pose_encoder_sizes': [16, 16, 16],
             'pose_decoder_sizes': [16, 16],
             'image_encoder_conv_channels': [8, 8, 4, 4, 2, 2],
             'image_encoder_fc_sizes': [32, 16, 16],
             'image_decoder_channels': [8, 8, 8, 8, 8, 8]},
    'classifier': {'hidden_size': 16},
}

NODE_STOP_TIMEOUT_S = 20.0
# Default batch size of make_batch.
BATCH = 2


def write_tiny_model_config(folder, name='tiny_model.yaml'):
    """
    Write :data:`TINY_MODEL_CONFIG` into a folder.

    :param folder: pathlib.Path of an existing folder.
    :param name: file name.
    :return: str, path of the written YAML file.
    """
    path = folder / name
    path.write_text(TINY_MODEL_CONFIG)
    return str(path)


def node_command(parameters):
    """
    Return the argv that runs the hand_object_pose node with ROS parameters.

    :param parameters: iterable of ``'name:=value'`` strings.
    :return: list of str.
    """
    command = [sys.executable, '-m', 'hand_object_pose_ros.ros.node', '--ros-args']
    for parameter in parameters:
        command += ['-p', parameter]
    return command


def start_node_piped(cwd, parameters):
    """
    Start the node with its output (stdout and stderr) on a pipe, for runs that must exit.

    :param cwd: working directory.
    :param parameters: iterable of ``'name:=value'`` strings.
    :return: subprocess.Popen; read it with ``communicate``.
    """
    return subprocess.Popen(node_command(parameters), cwd=str(cwd), env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def running_node(parameters, log_path):
    """
    Run the node from the repository root, output to a log; stop it when the block ends.

    :param parameters: iterable of ``'name:=value'`` strings.
    :param log_path: pathlib.Path of the log file (stdout and stderr).
    :return: context manager yielding the subprocess.Popen; on exit SIGTERM, then SIGKILL
        after :data:`NODE_STOP_TIMEOUT_S`.
    """
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(node_command(parameters), cwd=REPO_ROOT, env=dict(os.environ),
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(NODE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextlib.contextmanager
def active_node(parameter_overrides, prepare=None):
    """
    Create a HandObjectPoseNode in this process, configure and activate it; never spun.

    :param parameter_overrides: list of rclpy.parameter.Parameter.
    :param prepare: optional callable receiving the node before it is configured.
    :return: context manager yielding the active node; on exit the node is deactivated,
        released and destroyed and its own rclpy context shut down.
    """
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn

    from hand_object_pose_ros.ros.node import HandObjectPoseNode

    context = rclpy.Context()
    rclpy.init(context=context)
    node = HandObjectPoseNode(context=context, parameter_overrides=parameter_overrides)
    if prepare is not None:
        prepare(node)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        yield node
    finally:
        node._deactivate()
        node._release()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def make_batch(model, batch=BATCH, seed=0):
    """
    Build a random batch dict with the keys of HandObjectSample.to_tensors(), consistent targets.

    The hand targets come from the model's MANO layer; the 2-D joints are their projection
    with a fixed crop K (wrist 0.5 m in front of the camera).

    :param model: a built network (its ``cfg.input_size_px``, ``mano_layer``, ``object_ids``).
    :param batch: number of samples.
    :param seed: seed of the torch generator drawing every random value.
    :return: dict of tensors (float32; ``object_id`` int64).
    """
    import torch

    from hand_object_pose_ros import geometry

    generator = torch.Generator().manual_seed(seed)
    size = model.cfg.input_size_px
    pose = torch.cat((0.5 * torch.randn(batch, 3, generator=generator),
                      0.3 * torch.randn(batch, 45, generator=generator)), 1)
    betas = 0.5 * torch.randn(batch, 10, generator=generator)
    with torch.no_grad():
        hand = model.mano_layer(pose[:, :3], pose[:, 3:], betas)
    wrist = hand.joints[:, :1]
    crop_k = torch.tensor([[2.3 * size, 0.0, size / 2 - 0.5], [0.0, 2.3 * size, size / 2 - 0.5],
                           [0.0, 0.0, 1.0]]).expand(batch, 3, 3)
    wrist_cam = torch.tensor([0.0, 0.0, 0.5])
    joints_2d = geometry.project_points(hand.joints - wrist + wrist_cam, crop_k)
    ids = torch.tensor(model.object_ids)[torch.arange(batch) % model.num_objects]
    return {
        'image': torch.rand(batch, 3, size, size, generator=generator),
        'crop_K': crop_k.clone(),
        'mano_pose': pose, 'mano_betas': betas,
        'joints_rel': hand.joints - wrist, 'vertices_rel': hand.vertices - wrist,
        'joints_2d_crop_px': joints_2d,
        'object_id': ids,
        'object_rotation': geometry.axis_angle_to_matrix(
            torch.randn(batch, 3, generator=generator)),
        'object_translation_rel': 0.05 * torch.randn(batch, 3, generator=generator),
    }
