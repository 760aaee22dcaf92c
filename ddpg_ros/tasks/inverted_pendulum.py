"""Gymnasium's ``InvertedPendulum-v5``: balance a pole on a cart, computed from joint states."""

from __future__ import annotations

import numpy as np

from ddpg_ros.tasks.base import RobotState, Task

# The model's timestep and Gymnasium's frame_skip; their product is Gymnasium's dt, bit for bit.
_TIMESTEP = 0.02
_FRAME_SKIP = 2


class InvertedPendulum(Task):
    """
    Keep the hinge within 0.2 rad of upright; reward 1 per step survived.

    Observation ``[slider, hinge positions, slider, hinge velocities]``, termination when the
    pole tips past 0.2 rad or the observation is not finite, exactly as Gymnasium's v5 env.
    """

    name = 'inverted_pendulum'
    env_id = 'InvertedPendulum-v5'
    joint_names = ('slider', 'hinge')
    observation_names = ('slider.position', 'hinge.position',
                         'slider.velocity', 'hinge.velocity')
    action_names = ('slide',)
    control_dt = _TIMESTEP * _FRAME_SKIP
    max_episode_steps = 1000

    def __init__(self) -> None:
        self.action_low = np.array([-3.0])
        self.action_high = np.array([3.0])

    def observation(self, state: RobotState) -> np.ndarray:
        """
        ``concatenate([qpos, qvel])``.

        :param state: ordered as ``joint_names``.
        """
        return np.concatenate([state.position, state.velocity])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        1 while the pole is up, 0 on the step that ends the episode.

        :param previous: unused.
        :param action: unused; this env has no control cost.
        :param state: the state reached.
        """
        return float(not self.terminated(state))

    def terminated(self, state: RobotState) -> bool:
        """
        Return True when the pole has tipped past 0.2 rad or the state is not finite.

        :param state: the state reached.
        """
        observation = self.observation(state)
        return bool(not np.isfinite(observation).all() or np.abs(observation[1]) > 0.2)
