"""The perception graph: ingest -> perception -> tracking, each node its own process.

    ros2 launch depthtracker perception.launch.py [namespace:=rig] [device:=cpu] [cameras_config:=FILE]
        [params_file:=FILE] [tracking_params:=FILE] [use_sim_time:=true] [enable_ingest:=false] [respawn:=false] ...

Topics (all relative in the nodes, so `namespace` moves every one of them):

    ingest      camN/image_raw, camN/camera_info (N = 0 .. cameras-1; sensor-data QoS)
      -> perception  depth_heatmap (32FC1, metres), detections, target/measurement
      -> tracking    tracks;   target/set (camera, box) starts single-target tracking, target/clear stops it
    every node: /diagnostics

Under a namespace, rcl applies a params-file entry only when its key matches the node: key your files `/**/ingest:`
(as config/cameras.yaml does), not `ingest:`, which matches the node in the root namespace only.

The arguments and their defaults are those of config/graph.yaml, which `depthtracker launch` (the launcher of this
repository, for machines without launch_ros) reads to start the same graph. A bag replaces the ingest node with
`enable_ingest:=false use_sim_time:=true` and `depthtracker play BAG --clock` (or `ros2 bag play --clock`).

Needs a ROS 2 install with launch_ros (not on PyPI: the file is checked here against a stand-in).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def _config(name):
    return PathJoinSubstitution([FindPackageShare("depthtracker"), "config", name])


def _nodes(context):
    ns = LaunchConfiguration("namespace")
    sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    common = {
        "namespace": ns,
        "respawn": LaunchConfiguration("respawn"),
        # launch takes respawn_delay as a float only (no substitution): read the argument's value here.
        "respawn_delay": float(LaunchConfiguration("respawn_delay").perform(context)),
        "output": "screen",
    }
    ingest = Node(
        package="depthtracker",
        executable="ingest_node",
        name="ingest",
        parameters=[LaunchConfiguration("cameras_config"), {"use_sim_time": sim_time}],
        condition=IfCondition(LaunchConfiguration("enable_ingest")),
        **common,
    )
    # A lifecycle node (weights load on configure, free on cleanup). With autostart it configures and activates
    # itself; a lifecycle manager (e.g. nav2_lifecycle_manager) can drive it instead: set autostart false in
    # params_file and list the node in the manager's node_names.
    perception = LifecycleNode(
        package="depthtracker",
        executable="perception_node",
        name="perception",
        parameters=[LaunchConfiguration("params_file"), {
            "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
            "use_sim_time": sim_time,
            "autostart": True,
        }],
        condition=IfCondition(LaunchConfiguration("enable_perception")),
        **common,
    )
    tracking = Node(
        package="depthtracker",
        executable="tracking_node",
        name="tracking",
        parameters=[LaunchConfiguration("tracking_params"), {"use_sim_time": sim_time}],
        condition=IfCondition(LaunchConfiguration("enable_tracking")),
        **common,
    )
    return [ingest, perception, tracking]


def generate_launch_description():
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and relative topic"),
        DeclareLaunchArgument("params_file", default_value=_config("perception.yaml"),
                              description="perception node params (ROS params file)"),
        DeclareLaunchArgument("tracking_params", default_value=_config("tracking.yaml"),
                              description="tracking node params (ROS params file)"),
        DeclareLaunchArgument("cameras_config", default_value=_config("cameras.yaml"),
                              description="ingest node params (ROS params file): camera sources"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="perception device: auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="every node follows /clock"),
        DeclareLaunchArgument("enable_ingest", default_value="true", description="start the ingest node"),
        DeclareLaunchArgument("enable_perception", default_value="true", description="start the perception node"),
        DeclareLaunchArgument("enable_tracking", default_value="true", description="start the tracking node"),
        DeclareLaunchArgument("respawn", default_value="true", description="restart a node that dies"),
        DeclareLaunchArgument("respawn_delay", default_value="1.0", description="wait before a restart, s"),
    ]
    # Images between processes need Fast DDS's large-data transport (shared memory + TCP); without it best-effort
    # 640x480 images are dropped almost entirely.
    return LaunchDescription([
        SetEnvironmentVariable("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA"),
        *args,
        OpaqueFunction(function=_nodes),
    ])
