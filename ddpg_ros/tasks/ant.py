"""
Gymnasium's ``Ant-v5``: walk forward on four legs, from joint states and odometry.

The ant's torso floats free, so its joint states say nothing of where it is or how it moves:
the task reads the torso from ``odom`` (``nav_msgs/Odometry``) as a legged robot's state
estimator publishes it, and turns that back into Gymnasium's ``qpos``/``qvel`` layout
(position and ``(w, x, y, z)`` quaternion; linear velocity in the world frame, angular
velocity in the body frame).

Two quantities of Gymnasium's Ant exist only inside a simulator:

- **Contact forces.** The default observation ends with the clipped external wrench on every
  body (MuJoCo's ``cfrc_ext[1:]``, 78 values) and the reward subtracts a cost on it. No robot
  measures a wrench on every link. :class:`Ant` reads them from an ``array`` source
  ``contact_forces`` that ``mujoco_sim`` publishes for models with a free root
  (:func:`ddpg_ros.sim.sensors.contact_forces`): without them neither the observation nor
  the reward could match, and a policy trained in Gymnasium could not run through ROS.
- **The pose progress is measured by.** Gymnasium takes the forward velocity from the
  torso's ``data.body(1).xpos`` before and after a step, not from ``qpos``. MuJoCo computes
  ``xpos`` in the forward pass that starts each physics step, and the Ant integrates with
  RK4, so after a step it holds the torso's position at the last Runge-Kutta stage: about
  1e-4 m away from the true position, which moves the per-step forward reward by up to
  ~1e-2. No odometry can reproduce it, so :class:`Ant` reads it from a ``pose`` source
  ``root_pose`` (:func:`ddpg_ros.sim.sensors.root_pose`), as a motion-capture system would
  report the torso. The episode sums telescope, so returns differ only by the last lag.

Both are required sources of :class:`Ant`, which therefore matches Gymnasium exactly but runs
only on a simulation. :class:`AntOnRobot` is the same task for a real quadruped: it reads
only ``joint_states`` and ``odom``, leaves the contact forces out of the observation
(Gymnasium's ``include_cfrc_ext_in_observation=False``) and the reward
(``contact_cost_weight=0``), and measures progress by the odometry's position.
"""

from __future__ import annotations

import numpy as np

from ddpg_ros.tasks.base import RobotState, Task
from ddpg_ros.tasks.rotations import rotate
from ddpg_ros.tasks.sources import JOINT_STATES, Source

# The model's timestep and Gymnasium's frame_skip; their product is Gymnasium's dt, bit for bit.
_TIMESTEP = 0.01
_FRAME_SKIP = 5
_JOINTS = ('hip_1', 'ankle_1', 'hip_2', 'ankle_2', 'hip_3', 'ankle_3', 'hip_4', 'ankle_4')
# The model's actuator order, which is not its joint order; the motors are unnamed, so the
# simulation names them after the joints they drive.
_ACTUATORS = ('hip_4', 'ankle_4', 'hip_1', 'ankle_1', 'hip_2', 'ankle_2', 'hip_3', 'ankle_3')
_BODIES = 13
"""Bodies of the model besides the world: six contact-force values each."""
_WRENCH = ('torque.x', 'torque.y', 'torque.z', 'force.x', 'force.y', 'force.z')
PROGRESS_SOURCES = ('root_pose', 'odom')
"""Where forward progress is measured: Gymnasium's kinematic pose, or the odometry."""

ODOM = Source('odom', 'odometry')
"""The torso's odometry: position, orientation, body-frame twist."""
ROOT_POSE = Source('root_pose', 'pose')
"""The torso's pose as the simulator's kinematics last computed it (Gymnasium's ``xpos``)."""
CONTACT_FORCES = Source('contact_forces', 'array', length=6 * _BODIES)
"""``cfrc_ext`` of every body but the world, six values per body."""


class Ant(Task):
    """
    Reward forward speed and staying healthy, minus control and contact costs.

    Exactly Gymnasium's v5 env with its default keyword arguments: observation
    ``[z, quaternion (w, x, y, z), 8 joint angles, world linear velocity, body angular
    velocity, 8 joint velocities, clip(contact forces)]`` (105 values); the ant is healthy
    while the state is finite and the torso height is in ``healthy_z_range`` (closed bounds),
    and an unhealthy state ends the episode. Keyword arguments carry Gymnasium's names and
    defaults, plus ``progress_from``.

    :param forward_reward_weight: weight of the forward velocity.
    :param ctrl_cost_weight: weight of the squared action.
    :param contact_cost_weight: weight of the squared clipped contact forces; 0 with
        ``include_cfrc_ext_in_observation=False`` drops the ``contact_forces`` source.
    :param healthy_reward: reward per healthy step.
    :param terminate_when_unhealthy: end the episode when unhealthy.
    :param healthy_z_range: closed bounds on the torso height.
    :param contact_force_range: the contact forces are clipped to it.
    :param include_cfrc_ext_in_observation: end the observation with the contact forces.
    :param progress_from: ``'root_pose'`` (Gymnasium's measure, a simulation's source) or
        ``'odom'`` (the odometry's position, what a robot has).
    """

    name = 'ant'
    env_id = 'Ant-v5'
    joint_names = _JOINTS
    action_names = _ACTUATORS
    control_dt = _TIMESTEP * _FRAME_SKIP
    max_episode_steps = 1000
    command_interface = 'effort'

    def __init__(
        self,
        forward_reward_weight: float = 1.0,
        ctrl_cost_weight: float = 0.5,
        contact_cost_weight: float = 5e-4,
        healthy_reward: float = 1.0,
        terminate_when_unhealthy: bool = True,
        healthy_z_range: tuple[float, float] = (0.2, 1.0),
        contact_force_range: tuple[float, float] = (-1.0, 1.0),
        include_cfrc_ext_in_observation: bool = True,
        progress_from: str = 'root_pose',
    ) -> None:
        if progress_from not in PROGRESS_SOURCES:
            raise ValueError(f'progress_from {progress_from!r} is not one of '
                             f'{", ".join(PROGRESS_SOURCES)}')
        self.action_low = np.full(len(self.action_names), -1.0)
        self.action_high = np.full(len(self.action_names), 1.0)
        self._forward_reward_weight = forward_reward_weight
        self._ctrl_cost_weight = ctrl_cost_weight
        self._contact_cost_weight = contact_cost_weight
        self._healthy_reward = healthy_reward
        self._terminate_when_unhealthy = terminate_when_unhealthy
        self._healthy_z_range = healthy_z_range
        self._contact_force_range = contact_force_range
        self._include_contact_forces = include_cfrc_ext_in_observation
        self._progress_from = progress_from
        self._reads_contact_forces = include_cfrc_ext_in_observation or contact_cost_weight != 0
        sources = [JOINT_STATES, ODOM]
        if progress_from == 'root_pose':
            sources.append(ROOT_POSE)
        if self._reads_contact_forces:
            sources.append(CONTACT_FORCES)
        self.sources = tuple(sources)
        names = (('torso.z', 'torso.qw', 'torso.qx', 'torso.qy', 'torso.qz')
                 + tuple(f'{joint}.position' for joint in _JOINTS)
                 + ('torso.vx', 'torso.vy', 'torso.vz', 'torso.wx', 'torso.wy', 'torso.wz')
                 + tuple(f'{joint}.velocity' for joint in _JOINTS))
        if include_cfrc_ext_in_observation:
            names += tuple(f'contact_forces.body{body}.{part}'
                           for body in range(1, _BODIES + 1) for part in _WRENCH)
        self.observation_names = names

    def _qpos_qvel(self, state: RobotState) -> tuple[np.ndarray, np.ndarray]:
        """Return Gymnasium's ``qpos`` and ``qvel`` from odometry and joint states."""
        odom = state.sources[ODOM.name]
        x, y, z, w = odom.orientation
        qpos = np.concatenate([odom.position, [w, x, y, z], state.position])
        # Odometry's twist is in the body frame (REP 105); MuJoCo's free joint keeps the
        # linear velocity in the world frame and the angular one in the body frame.
        qvel = np.concatenate([rotate(odom.orientation, odom.linear_velocity),
                               odom.angular_velocity, state.velocity])
        return qpos, qvel

    def _clipped_contact_forces(self, state: RobotState) -> np.ndarray:
        low, high = self._contact_force_range
        return np.clip(state.sources[CONTACT_FORCES.name].values, low, high)

    def is_healthy(self, state: RobotState) -> bool:
        """
        Whole state finite and torso height within ``healthy_z_range`` (closed bounds).

        :param state: joints ordered as ``joint_names``, with the ``odom`` sample.
        """
        qpos, qvel = self._qpos_qvel(state)
        min_z, max_z = self._healthy_z_range
        finite = np.isfinite(qpos).all() and np.isfinite(qvel).all()
        return bool(finite and min_z <= qpos[2] <= max_z)

    def observation(self, state: RobotState) -> np.ndarray:
        """
        ``concatenate([qpos[2:], qvel, clip(cfrc_ext[1:])])``.

        :param state: joints ordered as ``joint_names``, with the declared sources.
        """
        qpos, qvel = self._qpos_qvel(state)
        parts = [qpos[2:], qvel]
        if self._include_contact_forces:
            parts.append(self._clipped_contact_forces(state))
        return np.concatenate(parts)

    def _progress(self, state: RobotState) -> float:
        return float(state.sources[self._progress_from].position[0])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        ``forward velocity + healthy reward - ctrl cost - contact cost``.

        The velocity is the change of the torso's x over ``control_dt``; the contact cost
        squares the clipped forces of every body, the world's (always zero) included, as
        Gymnasium does. Terms are grouped as Gymnasium groups them so that the float result
        is identical.

        :param previous: the state the action was chosen in.
        :param action: the action as commanded (the cost is on it, before any clipping).
        :param state: the state reached.
        """
        x_velocity = (self._progress(state) - self._progress(previous)) / self.control_dt
        forward_reward = x_velocity * self._forward_reward_weight
        healthy_reward = self.is_healthy(state) * self._healthy_reward
        rewards = forward_reward + healthy_reward
        # No dtype cast: Gymnasium squares the action in its own dtype, and so must we.
        ctrl_cost = self._ctrl_cost_weight * np.sum(np.square(action))
        contact_cost = 0.0
        if self._reads_contact_forces:
            # The world's row of cfrc_ext, which MuJoCo leaves zero, goes back in front so
            # that the sum runs over Gymnasium's (14, 6) array in its order.
            forces = np.concatenate([np.zeros(6), self._clipped_contact_forces(state)])
            contact_cost = self._contact_cost_weight * np.sum(
                np.square(forces.reshape(_BODIES + 1, 6)))
        return float(rewards - (ctrl_cost + contact_cost))

    def terminated(self, state: RobotState) -> bool:
        """
        Return True when the ant is unhealthy (and ``terminate_when_unhealthy``).

        :param state: the state reached.
        """
        return (not self.is_healthy(state)) and self._terminate_when_unhealthy


class AntOnRobot(Ant):
    """
    The Ant task for a real quadruped: joint states and odometry only.

    Gymnasium's ``Ant-v5`` with ``contact_cost_weight=0`` and
    ``include_cfrc_ext_in_observation=False`` (27 observations), with forward progress
    measured by the odometry's position: no source a robot cannot publish. Its observation
    and termination equal that Gymnasium configuration's; its reward differs from it by the
    forward term's measure (see the module docstring), so it claims no ``env_id``. Select it
    with ``task: ddpg_ros.tasks.ant:AntOnRobot``.

    :param kwargs: as :class:`Ant`'s, but for the three fixed above.
    """

    name = 'ant_on_robot'
    env_id = None

    def __init__(self, **kwargs: object) -> None:
        fixed = ('contact_cost_weight', 'include_cfrc_ext_in_observation', 'progress_from')
        given = sorted(set(kwargs) & set(fixed))
        if given:
            raise ValueError(f'AntOnRobot fixes {", ".join(given)}; use Ant to set them')
        super().__init__(contact_cost_weight=0.0, include_cfrc_ext_in_observation=False,
                         progress_from='odom', **kwargs)  # type: ignore[arg-type]
