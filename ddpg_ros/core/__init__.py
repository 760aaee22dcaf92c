"""
The algorithm and what it keeps, without ROS or a simulator.

- :mod:`~ddpg_ros.core.config`: every DDPG hyper-parameter, validated;
- :mod:`~ddpg_ros.core.networks`, :mod:`~ddpg_ros.core.noise`,
  :mod:`~ddpg_ros.core.replay_buffer`: the parts;
- :mod:`~ddpg_ros.core.ddpg`: one DDPG update (critic, actor, soft target update);
- :mod:`~ddpg_ros.core.learner`: updates in a background thread, published as snapshots;
- :mod:`~ddpg_ros.core.checkpoint`: the one checkpoint format, and the policy spec it holds;
- :mod:`~ddpg_ros.core.presets`: tuned hyper-parameters per environment (``presets.yaml``);
- :mod:`~ddpg_ros.core.run_log`, :mod:`~ddpg_ros.core.plotting`: ``progress.csv``,
  TensorBoard and the learning curve of a run.
"""
