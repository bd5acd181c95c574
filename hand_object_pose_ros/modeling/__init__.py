"""The joint hand-object network (backbone, hand head, cross-modal CVAE), builder, checkpoints."""

from hand_object_pose_ros.modeling.build import build_mano_layer
from hand_object_pose_ros.modeling.build import build_model
from hand_object_pose_ros.modeling.checkpoint import CheckpointError
from hand_object_pose_ros.modeling.checkpoint import load_model_from_checkpoint
from hand_object_pose_ros.modeling.checkpoint import save_checkpoint
from hand_object_pose_ros.modeling.network import HandObjectNetwork
from hand_object_pose_ros.modeling.network import NetworkOutput

__all__ = ['CheckpointError', 'HandObjectNetwork', 'NetworkOutput', 'build_mano_layer',
           'build_model', 'load_model_from_checkpoint', 'save_checkpoint']
