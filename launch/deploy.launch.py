"""
Run a trained policy on a robot: ddpg_agent in deploy mode.

    ros2 launch ddpg_ros deploy.launch.py checkpoint:=runs/hopper/checkpoint.pt \
        params_file:=my_robot.yaml

The nodes, parameter files and overrides come from the ``deploy`` profile in
``ddpg_ros.ros.profiles``; ``ddpg-launch deploy ...`` runs the same profile, with the
same arguments, where ROS 2's launch tools are not installed. Arguments the profile does not
declare (``device:=cpu``) are parameter overrides.
"""

from ddpg_ros.ros.launch_description import profile_launch_description


def generate_launch_description():
    return profile_launch_description('deploy')
