"""
ddpg_ros: online continuous control with DDPG for ROS 2 robots.

The core (``config``, ``networks``, ``replay_buffer``, ``noise``, ``ddpg``, ``checkpoint``,
``tasks``, ``sim``) never imports ROS; the nodes in ``ddpg_ros.ros`` wrap it.
"""

__version__ = '0.1.0'
