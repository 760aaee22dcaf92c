"""
The command-line tools, built on the core and the simulation.

- :mod:`~ddpg_ros.cli.train`: ``ddpg-train``;
- :mod:`~ddpg_ros.cli.evaluate`: ``ddpg-eval``;
- :mod:`~ddpg_ros.cli.evaluation`: the noise-free evaluation both use;
- :mod:`~ddpg_ros.cli.common`: DDPG settings as flags, and one-line errors.
"""
