"""
ddpg_ros: online continuous control with DDPG for ROS 2 robots.

The packages, each importing only the ones listed before it:

- :mod:`ddpg_ros.tasks`: what a robot is to a policy (joints, sources, reward, limits);
- :mod:`ddpg_ros.core`: the algorithm (config, networks, replay buffer, noise, the DDPG
  update, the background learner), checkpoints, presets and the run log;
- :mod:`ddpg_ros.sim`: MuJoCo simulation, simulated sensors, rendering and Gymnasium envs;
- :mod:`ddpg_ros.control`: the agent's control step and training, without ROS;
- :mod:`ddpg_ros.fleet`: one learner, many robots, without ROS;
- :mod:`ddpg_ros.ros`: the nodes, their QoS, launch profiles and the launcher (ROS lives
  here and nowhere else);
- :mod:`ddpg_ros.cli`: ``ddpg-train`` and ``ddpg-eval``.
"""

__version__ = '0.1.0'
