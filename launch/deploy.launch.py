"""
Run a trained policy on a robot: ddpg_agent in deploy mode.

    ros2 launch ddpg_ros deploy.launch.py checkpoint:=runs/hopper/checkpoint.pt \
        params_file:=my_robot.yaml

The nodes, parameter files and overrides come from the ``deploy`` profile in
``ddpg_ros.ros.profiles``; ``ddpg-launch deploy ...`` runs the same profile, with the
same arguments, where ROS 2's launch tools are not installed. Arguments not declared below
(``device:=cpu``) are parameter overrides.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import TextSubstitution
from launch_ros.actions import Node

from ddpg_ros.ros.profiles import PACKAGE, PROFILES

PROFILE = PROFILES['deploy']


def _nodes(context: LaunchContext) -> list[Node]:
    # Every launch configuration, declared or not, goes to the profile: the undeclared ones
    # are its parameter overrides. TextSubstitution values are read as YAML, as -p values are.
    return [
        Node(package=PACKAGE, executable=spec.executable, name=spec.name,
             namespace=spec.namespace, output='screen', remappings=list(spec.remappings),
             parameters=[*spec.parameter_files,
                         {name: TextSubstitution(text=value)
                          for name, value in spec.parameters.items()}])
        for spec in PROFILE.nodes(dict(context.launch_configurations))
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *(DeclareLaunchArgument(argument.name, default_value=argument.default,
                                description=argument.description)
          for argument in PROFILE.arguments),
        OpaqueFunction(function=_nodes),
    ])
