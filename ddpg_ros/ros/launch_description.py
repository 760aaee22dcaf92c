"""
The ``ros2 launch`` description of a launch profile: what each file in ``launch/`` returns.

ROS 2's ``launch`` and ``launch_ros`` are imported when a launch file asks for a description,
never when the package is imported: they are not installed everywhere, and ``ddpg-launch``
runs the same profiles without them.
"""

from __future__ import annotations

from typing import Any

from ddpg_ros.ros.profiles import PACKAGE, PROFILES


def profile_launch_description(profile_name: str) -> Any:
    """
    Return the ``LaunchDescription`` of the profile ``profile_name``.

    It declares the profile's arguments, with their defaults and descriptions, and builds the
    profile's nodes when launched. Every launch configuration, declared or not, goes to the
    profile: the undeclared ones are its parameter overrides. Values reach the nodes as
    ``TextSubstitution`` parameters, read as YAML as ``-p`` values are. What ends a launch is
    ``ddpg-launch``'s too: a ``required`` node gets ``on_exit=Shutdown()``, a ``respawn`` node
    launch_ros's ``respawn``, ``respawn_delay`` and ``respawn_max_retries`` (which there
    counts every new start, and leaves the others running when they are used up).
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
    from launch.substitutions import TextSubstitution
    from launch_ros.actions import Node

    profile = PROFILES[profile_name]

    def nodes(context: Any) -> list[Any]:
        return [
            Node(package=PACKAGE, executable=spec.executable, name=spec.name,
                 namespace=spec.namespace, output='screen', remappings=list(spec.remappings),
                 parameters=[*spec.parameter_files,
                             {name: TextSubstitution(text=value)
                              for name, value in spec.parameters.items()}],
                 respawn=spec.respawn, respawn_delay=spec.respawn_delay,
                 respawn_max_retries=spec.respawn_max_retries,
                 **({'on_exit': Shutdown(reason=f'{spec.name} ended: stopping the rest')}
                    if spec.required else {}))
            for spec in profile.nodes(dict(context.launch_configurations))
        ]

    return LaunchDescription([
        *(DeclareLaunchArgument(argument.name, default_value=argument.default,
                                description=argument.description)
          for argument in profile.arguments),
        OpaqueFunction(function=nodes),
    ])
