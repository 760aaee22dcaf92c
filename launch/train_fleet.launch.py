"""
Train one ddpg_learner on several simulated robots: the ``train_fleet`` profile.

    ros2 launch ddpg_ros train_fleet.launch.py task:=inverted_pendulum robots:=4

One ``ddpg_learner`` and ``robots`` pairs of ``mujoco_sim`` + ``ddpg_agent`` (``learner:=remote``)
in namespaces ``robot_0`` ... ``robot_<N-1>``, from the ``train_fleet`` profile in
``ddpg_ros.ros.profiles``; ``ddpg-launch train_fleet ...`` runs the same profile, with the
same arguments, where ROS 2's launch tools are not installed. Arguments the profile does not
declare (``seed:=3``, ``batch_size:=128``, ``ddpg_learner.policy_every:=50``) are parameter
overrides.
"""

from ddpg_ros.ros.launch_description import profile_launch_description


def generate_launch_description():
    return profile_launch_description('train_fleet')
