"""Gymnasium's ``Hopper-v5``: hop forward without falling, computed from joint states."""

from __future__ import annotations

import numpy as np

from ddpg_ros.tasks.base import RobotState, Task

# The model's timestep and Gymnasium's frame_skip; their product is Gymnasium's dt, bit for bit.
_TIMESTEP = 0.002
_FRAME_SKIP = 4
_JOINTS = ('rootx', 'rootz', 'rooty', 'thigh_joint', 'leg_joint', 'foot_joint')


def planar_observation_names(joints: tuple[str, ...]) -> tuple[str, ...]:
    """Name a planar body's observation: every position but ``rootx``, then every velocity."""
    return (tuple(f'{joint}.position' for joint in joints[1:])
            + tuple(f'{joint}.velocity' for joint in joints))


class Hopper(Task):
    """
    Reward forward speed and staying healthy, minus a control cost.

    Exactly Gymnasium's v5 env: the observation leaves out ``rootx`` and clips velocities to
    [-10, 10]; the hopper is healthy while its torso height ``rootz`` and angle ``rooty``
    are in range and every other state entry is within ``healthy_state_range``, and an
    unhealthy state ends the episode. Keyword arguments carry Gymnasium's names and defaults.

    :param forward_reward_weight: weight of the forward velocity.
    :param ctrl_cost_weight: weight of the squared action.
    :param healthy_reward: reward per healthy step.
    :param terminate_when_unhealthy: end the episode when unhealthy.
    :param healthy_state_range: open bounds on ``[qpos[2:], qvel]``.
    :param healthy_z_range: open bounds on the torso height.
    :param healthy_angle_range: open bounds on the torso angle.
    """

    name = 'hopper'
    env_id = 'Hopper-v5'
    joint_names = _JOINTS
    observation_names = planar_observation_names(_JOINTS)
    # The model's motors are unnamed; the simulation names them after the joints they drive.
    action_names = _JOINTS[3:]
    control_dt = _TIMESTEP * _FRAME_SKIP
    max_episode_steps = 1000

    def __init__(
        self,
        forward_reward_weight: float = 1.0,
        ctrl_cost_weight: float = 1e-3,
        healthy_reward: float = 1.0,
        terminate_when_unhealthy: bool = True,
        healthy_state_range: tuple[float, float] = (-100.0, 100.0),
        healthy_z_range: tuple[float, float] = (0.7, float('inf')),
        healthy_angle_range: tuple[float, float] = (-0.2, 0.2),
    ) -> None:
        self.action_low = np.full(len(self.action_names), -1.0)
        self.action_high = np.full(len(self.action_names), 1.0)
        self._forward_reward_weight = forward_reward_weight
        self._ctrl_cost_weight = ctrl_cost_weight
        self._healthy_reward = healthy_reward
        self._terminate_when_unhealthy = terminate_when_unhealthy
        self._healthy_state_range = healthy_state_range
        self._healthy_z_range = healthy_z_range
        self._healthy_angle_range = healthy_angle_range

    def is_healthy(self, state: RobotState) -> bool:
        """
        Torso height, torso angle and the rest of the state are all in range.

        :param state: ordered as ``joint_names``.
        """
        z, angle = state.position[1:3]
        rest = np.concatenate([state.position, state.velocity])[2:]
        min_state, max_state = self._healthy_state_range
        min_z, max_z = self._healthy_z_range
        min_angle, max_angle = self._healthy_angle_range
        # Strict comparisons, as Gymnasium's: NaN anywhere makes the hopper unhealthy.
        healthy_state = bool(np.all(np.logical_and(min_state < rest, rest < max_state)))
        return bool(healthy_state and min_z < z < max_z and min_angle < angle < max_angle)

    def observation(self, state: RobotState) -> np.ndarray:
        """
        ``concatenate([qpos[1:], clip(qvel, -10, 10)])``.

        :param state: ordered as ``joint_names``.
        """
        return np.concatenate([state.position[1:], np.clip(state.velocity, -10, 10)])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        ``forward velocity + healthy reward - ctrl_cost_weight * sum(action ** 2)``.

        The velocity is the change of ``rootx`` over ``control_dt``, not over the stamps.
        Terms are added in Gymnasium's order so that the float result is identical.

        :param previous: the state the action was chosen in.
        :param action: the action as commanded (the cost is on it, before any clipping).
        :param state: the state reached.
        """
        x_velocity = (state.position[0] - previous.position[0]) / self.control_dt
        forward_reward = self._forward_reward_weight * x_velocity
        healthy_reward = self.is_healthy(state) * self._healthy_reward
        # No dtype cast: Gymnasium squares the action in its own dtype, and so must we.
        ctrl_cost = self._ctrl_cost_weight * np.sum(np.square(action))
        return float(forward_reward + healthy_reward - ctrl_cost)

    def terminated(self, state: RobotState) -> bool:
        """
        Return True when the hopper is unhealthy (and ``terminate_when_unhealthy``).

        :param state: the state reached.
        """
        return (not self.is_healthy(state)) and self._terminate_when_unhealthy
