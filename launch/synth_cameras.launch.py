"""Synthetic cameras: the ingest node rendering the synthetic world live on camN/image_raw + camN/camera_info.

    ros2 launch depthtracker synth_cameras.launch.py [namespace:=rig] [reliability:=reliable] [synth_config:=FILE]

Needs a ROS 2 install with launch_ros (not on PyPI; here `depthtracker launch` arrives with the ROS graph issue).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    default_config = PathJoinSubstitution([FindPackageShare("depthtracker"), "config", "synth.yaml"])
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the camera topics"),
        DeclareLaunchArgument("synth_config", default_value=default_config,
                              description="synthetic world YAML (ROS params layout)"),
        DeclareLaunchArgument("reliability", default_value="best_effort",
                              description="camera topic QoS reliability: best_effort or reliable"),
        DeclareLaunchArgument("respawn", default_value="true", description="restart the node if it dies"),
        DeclareLaunchArgument("enable_ingest", default_value="true", description="start the ingest node"),
    ]
    ingest = Node(
        package="depthtracker",
        executable="ingest_node",
        name="ingest",
        namespace=LaunchConfiguration("namespace"),
        parameters=[{
            "source": "synth",
            "synth_config": LaunchConfiguration("synth_config"),
            "reliability": LaunchConfiguration("reliability"),
        }],
        respawn=LaunchConfiguration("respawn"),
        respawn_delay=1.0,
        output="screen",
        condition=IfCondition(LaunchConfiguration("enable_ingest")),
    )
    # Images between processes need Fast DDS's large-data transport (shared memory + TCP); without it best-effort
    # 640x480 images are dropped almost entirely.
    return LaunchDescription([SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA"), *args, ingest])
