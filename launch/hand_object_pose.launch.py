"""
Launch the hand_object_pose node, optionally with a RealSense camera driver and RViz2.

    ros2 launch hand_object_pose_ros hand_object_pose.launch.py \
        checkpoint:=/path/to/model.pt mano_model_dir:=/path/to/mano use_rviz:=true

Topic arguments default to the RealSense ROS 2 wrapper's topics (aligned depth needs the
driver's ``align_depth.enable:=true``, which ``use_camera:=true`` sets). Parameters come from
``params_file`` (default: the package's config/node.yaml), then the arguments below override
checkpoint, mano_model_dir, device, use_depth and bbox_msg_type.
"""

from ament_index_python.packages import get_package_share_directory
from ament_index_python.packages import PackageNotFoundError
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import IncludeLaunchDescription
from launch.actions import LogInfo
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'hand_object_pose_ros'
CAMERA_PACKAGE = 'realsense2_camera'

# (name, default, description) of every launch argument.
ARGUMENTS = (
    ('image_topic', '/camera/camera/color/image_raw',
     'Colour image (rgb8, bgr8, rgba8, bgra8 or mono8).'),
    ('camera_info_topic', '/camera/camera/color/camera_info',
     'CameraInfo of the colour image.'),
    ('depth_topic', '/camera/camera/aligned_depth_to_color/image_raw',
     'Depth aligned to the colour image (16UC1 mm or 32FC1 m).'),
    ('bbox_topic', '/hand_bbox',
     'Hand boxes: vision_msgs/Detection2DArray or sensor_msgs/RegionOfInterest.'),
    ('params_file', None, "Node parameters YAML (default: the package's config/node.yaml)."),
    ('checkpoint', '', "Trained checkpoint (.pt); '' = random weights (wiring tests only)."),
    ('mano_model_dir', '', "Folder of the licensed MANO model; '' = the stand-in hand."),
    ('device', 'auto', 'Torch device: auto, cpu, cuda or cuda:N.'),
    ('use_depth', 'true', 'Synchronise the aligned depth image.'),
    ('bbox_msg_type', 'auto', 'Type on the bbox topic: auto, roi or detection2d.'),
    ('use_camera', 'false', 'Also launch realsense2_camera (rs_launch.py) with aligned depth.'),
    ('use_rviz', 'false', 'Also launch RViz2 with config/hand_object_pose.rviz.'),
)


def _camera_actions():
    """Include the RealSense driver when use_camera is true and the package is installed."""
    use_camera = IfCondition(LaunchConfiguration('use_camera'))
    try:
        camera_share = get_package_share_directory(CAMERA_PACKAGE)
    except PackageNotFoundError:
        return [LogInfo(condition=use_camera,
                        msg='use_camera:=true but %s is not installed; start your camera '
                            'driver yourself' % CAMERA_PACKAGE)]
    return [IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([camera_share, 'launch', 'rs_launch.py'])),
        launch_arguments={'align_depth.enable': 'true'}.items(),
        condition=use_camera)]


def generate_launch_description():
    """Build the launch description (arguments, optional camera, node, optional RViz2)."""
    default_params_file = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config',
                                                'node.yaml'])
    arguments = [DeclareLaunchArgument(
        name, default_value=default_params_file if default is None else default,
        description=text) for name, default, text in ARGUMENTS]
    node = Node(
        package=PACKAGE,
        executable='hand_object_pose_node',
        name='hand_object_pose',
        output='screen',
        emulate_tty=True,
        parameters=[
            LaunchConfiguration('params_file'),
            {
                'checkpoint': ParameterValue(LaunchConfiguration('checkpoint'), value_type=str),
                'mano_model_dir': ParameterValue(LaunchConfiguration('mano_model_dir'),
                                                 value_type=str),
                'device': ParameterValue(LaunchConfiguration('device'), value_type=str),
                'use_depth': ParameterValue(LaunchConfiguration('use_depth'), value_type=bool),
                'bbox_msg_type': ParameterValue(LaunchConfiguration('bbox_msg_type'),
                                                value_type=str),
            },
        ],
        remappings=[
            ('image', LaunchConfiguration('image_topic')),
            ('camera_info', LaunchConfiguration('camera_info_topic')),
            ('depth', LaunchConfiguration('depth_topic')),
            ('hand_bbox', LaunchConfiguration('bbox_topic')),
        ],
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        arguments=['-d', PathJoinSubstitution([FindPackageShare(PACKAGE), 'config',
                                               'hand_object_pose.rviz'])],
        condition=IfCondition(LaunchConfiguration('use_rviz')),
    )
    return LaunchDescription(arguments + _camera_actions() + [node, rviz])
