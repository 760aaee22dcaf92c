"""Gymnasium's ``Walker2d-v5``: walk forward on two legs without falling, from joint states."""

from __future__ import annotations

from ddpg_ros.tasks.base import RobotState
from ddpg_ros.tasks.hopper import Hopper, planar_observation_names

_JOINTS = ('rootx', 'rootz', 'rooty', 'thigh_joint', 'leg_joint', 'foot_joint',
           'thigh_left_joint', 'leg_left_joint', 'foot_left_joint')


class Walker2d(Hopper):
    """
    The hopper's observation, reward and termination, on a planar body with two legs.

    Exactly Gymnasium's v5 env: healthy is the torso height ``rootz`` and angle ``rooty`` in
    range, with no bound on the rest of the state (the hopper has one), and an unhealthy
    state ends the episode. Keyword arguments are the hopper's but ``healthy_state_range``,
    with Gymnasium's ``Walker2d-v5`` defaults.
    """

    name = 'walker2d'
    env_id = 'Walker2d-v5'
    joint_names = _JOINTS
    observation_names = planar_observation_names(_JOINTS)
    # Unnamed motors, as the hopper's: the simulation names them after their joints.
    action_names = _JOINTS[3:]

    def __init__(
        self,
        forward_reward_weight: float = 1.0,
        ctrl_cost_weight: float = 1e-3,
        healthy_reward: float = 1.0,
        terminate_when_unhealthy: bool = True,
        healthy_z_range: tuple[float, float] = (0.8, 2.0),
        healthy_angle_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__(forward_reward_weight, ctrl_cost_weight, healthy_reward,
                         terminate_when_unhealthy, healthy_z_range=healthy_z_range,
                         healthy_angle_range=healthy_angle_range)

    def is_healthy(self, state: RobotState) -> bool:
        """
        Torso height and angle are in range.

        :param state: ordered as ``joint_names``.
        """
        z, angle = state.position[1:3]
        min_z, max_z = self._healthy_z_range
        min_angle, max_angle = self._healthy_angle_range
        # Strict comparisons, as Gymnasium's: a NaN height or angle is unhealthy.
        return bool(min_z < z < max_z and min_angle < angle < max_angle)
