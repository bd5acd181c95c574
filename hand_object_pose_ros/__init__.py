"""hand_object_pose_ros: MANO hand mesh and held-object 6D pose from one RGB crop (ROS 2)."""

__version__ = '0.1.0'
