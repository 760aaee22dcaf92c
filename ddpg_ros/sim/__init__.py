"""
The simulated robot, without ROS.

- :mod:`~ddpg_ros.sim.simulation`: a MuJoCo model stepped at the task's control period;
- :mod:`~ddpg_ros.sim.sensors`: the sources a real robot would publish, read from MuJoCo;
- :mod:`~ddpg_ros.sim.settings`: the ``mujoco_sim`` node's parameters;
- :mod:`~ddpg_ros.sim.rendering`: offscreen pictures and the OpenGL backend;
- :mod:`~ddpg_ros.sim.mujoco_warnings`: MuJoCo's warnings into the log;
- :mod:`~ddpg_ros.sim.envs`: Gymnasium environments and the policy spec of each.
"""
