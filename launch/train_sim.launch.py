"""
Train in simulation: mujoco_sim + ddpg_agent in train mode.

    ros2 launch ddpg_ros train_sim.launch.py task:=half_cheetah seed:=3

The nodes, parameter files and overrides come from the ``train_sim`` profile in
``ddpg_ros.ros.profiles``; ``ddpg-launch train_sim ...`` runs the same profile, with the
same arguments, where ROS 2's launch tools are not installed. Arguments the profile does not
declare (``seed:=3``, ``mujoco_sim.mode:=realtime``, ``batch_size:=128``) are parameter overrides.
"""

from ddpg_ros.ros.launch_description import profile_launch_description


def generate_launch_description():
    return profile_launch_description('train_sim')
