"""Gymnasium's ``HalfCheetah-v5``: run forward, computed from joint states."""

from __future__ import annotations

import numpy as np

from ddpg_ros.tasks.base import RobotState, Task

# The model's timestep and Gymnasium's frame_skip; their product is Gymnasium's dt, bit for bit.
_TIMESTEP = 0.01
_FRAME_SKIP = 5
_JOINTS = ('rootx', 'rootz', 'rooty', 'bthigh', 'bshin', 'bfoot', 'fthigh', 'fshin', 'ffoot')


class HalfCheetah(Task):
    """
    Reward forward speed minus a control cost; the episode never terminates early.

    The observation leaves out ``rootx`` (the distance run) so that the policy does not
    depend on where the robot is, exactly as Gymnasium's v5 env with default kwargs.

    :param forward_reward_weight: weight of the forward velocity (Gymnasium's name).
    :param ctrl_cost_weight: weight of the squared action (Gymnasium's name).
    """

    name = 'half_cheetah'
    env_id = 'HalfCheetah-v5'
    joint_names = _JOINTS
    observation_names = (tuple(f'{joint}.position' for joint in _JOINTS[1:])
                         + tuple(f'{joint}.velocity' for joint in _JOINTS))
    action_names = _JOINTS[3:]
    control_dt = _TIMESTEP * _FRAME_SKIP
    max_episode_steps = 1000

    def __init__(self, forward_reward_weight: float = 1.0, ctrl_cost_weight: float = 0.1) -> None:
        self.action_low = np.full(len(self.action_names), -1.0)
        self.action_high = np.full(len(self.action_names), 1.0)
        self._forward_reward_weight = forward_reward_weight
        self._ctrl_cost_weight = ctrl_cost_weight

    def observation(self, state: RobotState) -> np.ndarray:
        """
        ``concatenate([qpos[1:], qvel])``.

        :param state: ordered as ``joint_names``.
        """
        return np.concatenate([state.position[1:], state.velocity])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        ``forward_reward_weight * x_velocity - ctrl_cost_weight * sum(action ** 2)``.

        The velocity is the change of ``rootx`` over ``control_dt``, not over the stamps,
        so that jitter in the stamps cannot change the reward.

        :param previous: the state the action was chosen in.
        :param action: the action as commanded (the cost is on it, before any clipping).
        :param state: the state reached.
        """
        x_velocity = (state.position[0] - previous.position[0]) / self.control_dt
        forward_reward = self._forward_reward_weight * x_velocity
        # No dtype cast: Gymnasium squares the action in its own dtype, and so must we.
        ctrl_cost = self._ctrl_cost_weight * np.sum(np.square(action))
        return float(forward_reward - ctrl_cost)
