"""
A worked example of a user task: bring a 2-link arm's joints to target angles.

Copy this file to start your own task. Select it with the ``ddpg_agent`` parameter
``task: ddpg_ros.tasks.examples:ReachTarget`` and simulate its robot with the
``mujoco_sim`` parameter ``model`` set to :data:`MODEL_PATH`. A task

- names the joints it reads from ``joint_states`` (``joint_names``); every ``RobotState``
  it receives is ordered that way, whatever order the robot publishes in;
- names its observation entries and the actuators it commands, in command order;
- gives action bounds, the control period and the episode length;
- computes observation, reward and termination from states alone: no ROS, no physics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ddpg_ros.tasks.base import RobotState, Task

MODEL_PATH = str(Path(__file__).resolve().parent.parent / 'models' / 'two_link_arm.xml')
"""The MJCF model of the arm this example drives."""


class ReachTarget(Task):
    """
    Drive the shoulder and elbow of a planar arm to target angles and hold them there.

    Observation: joint angles, joint velocities and the angle errors (target - angle). The
    error is in the observation because the policy cannot otherwise know the target.
    Reward: ``-sum(error ** 2) - ctrl_cost_weight * sum(action ** 2)``, dense so that DDPG
    learns quickly. The episode ends early only if the state is not finite; otherwise it is
    truncated after ``max_episode_steps``, which keeps bootstrapping.

    :param target: target angles of (shoulder, elbow) in radians.
    :param ctrl_cost_weight: weight of the squared action, to discourage flailing.
    :param max_episode_steps: steps per episode.
    """

    name = 'reach_target'
    env_id = None
    joint_names = ('shoulder', 'elbow')
    observation_names = ('shoulder.position', 'elbow.position',
                         'shoulder.velocity', 'elbow.velocity',
                         'shoulder.error', 'elbow.error')
    action_names = ('shoulder', 'elbow')
    # Must equal the simulation's control period: the model's timestep times frame_skip (1).
    control_dt = 0.02

    def __init__(
        self,
        target: Sequence[float] = (0.8, -1.2),
        ctrl_cost_weight: float = 0.01,
        max_episode_steps: int = 200,
    ) -> None:
        self.target = np.array(target, dtype=np.float64)
        if self.target.shape != (len(self.joint_names),):
            raise ValueError(f'target needs one angle per joint {self.joint_names}, '
                             f'got {target!r}')
        self.ctrl_cost_weight = ctrl_cost_weight
        self.max_episode_steps = max_episode_steps
        # Bounds as the model's ctrlrange: the agent squashes its actions into them.
        self.action_low = np.array([-1.0, -1.0])
        self.action_high = np.array([1.0, 1.0])

    def observation(self, state: RobotState) -> np.ndarray:
        """
        Angles, velocities and errors.

        :param state: ordered as ``joint_names``.
        """
        return np.concatenate([state.position, state.velocity, self.target - state.position])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        Negative squared error of the state reached, minus the control cost.

        :param previous: unused; the reward depends on where the arm got to.
        :param action: the action as commanded.
        :param state: the state reached.
        """
        error = self.target - state.position
        action = np.asarray(action, dtype=np.float64)
        return float(-np.sum(np.square(error)) - self.ctrl_cost_weight * np.sum(np.square(action)))

    def terminated(self, state: RobotState) -> bool:
        """
        Only a non-finite state ends the episode: there is nowhere to bootstrap from.

        :param state: the state reached.
        """
        return not (np.isfinite(state.position).all() and np.isfinite(state.velocity).all())
