"""
The agent's control step and training, without ROS.

The ``ddpg_agent`` node converts messages at the edge and owns timers, services and
publishers; everything it decides lives here, testable without DDS:

- :mod:`~ddpg_ros.control.settings`: the node's parameters that are not DDPG settings;
- :mod:`~ddpg_ros.control.episodes`: consecutive states -> transitions and episodes;
- :mod:`~ddpg_ros.control.safety`: clip, rate limit, non-finite actions, safe commands and
  the freshness of every state source;
- :mod:`~ddpg_ros.control.training`: the acting policy, replay buffer, background learner,
  checkpoints and run log of a training run (or the fixed policy of a deployment);
- :mod:`~ddpg_ros.control.step`: the control step that ties them together.
"""
