"""
Train one ddpg_learner on several simulated robots: the ``train_fleet`` profile.

    ros2 launch ddpg_ros train_fleet.launch.py task:=inverted_pendulum robots:=4

One ``ddpg_learner`` and ``robots`` pairs of ``mujoco_sim`` + ``ddpg_agent`` (``learner:=remote``)
in namespaces ``robot_0`` ... ``robot_<N-1>``, from the ``train_fleet`` profile in
``ddpg_ros.ros.profiles``; ``ddpg-launch train_fleet ...`` runs the same profile, with the
same arguments, where ROS 2's launch tools are not installed. Arguments not declared below
(``seed:=3``, ``batch_size:=128``, ``ddpg_learner.policy_every:=50``) are parameter overrides.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import TextSubstitution
from launch_ros.actions import Node

from ddpg_ros.ros.profiles import PACKAGE, PROFILES

PROFILE = PROFILES['train_fleet']


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
