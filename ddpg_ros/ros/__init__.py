"""
The ROS 2 side of ddpg_ros: the nodes, their shared QoS, launch profiles and the launcher.

The nodes import ``rclpy``; ``profiles`` and ``launcher`` do not, so the launch profiles can
be built and checked without ROS. No other ``ddpg_ros`` package imports ROS.
"""
