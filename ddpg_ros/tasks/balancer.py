"""
A two-wheeled self-balancing robot: stay upright from an IMU, driving wheel speeds.

The robot is :data:`MODEL_PATH`, shipped with the package; a real one needs the same three
things: a ``joint_states`` topic with its two wheel joints, an ``imu`` topic
(``sensor_msgs/Imu``) from a board whose y axis lies along the wheel axle, and a velocity
controller taking one speed target per wheel (``velocity_controller/commands``, rad/s).

Simulate it with ``mujoco_sim`` parameters ``model`` = :data:`MODEL_PATH` and
``frame_skip`` = :data:`FRAME_SKIP`: the task's ``control_dt`` is the model's timestep times
that frame skip, and a policy trained at one period does not balance at another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddpg_ros.tasks.base import RobotState, Task
from ddpg_ros.tasks.rotations import roll_pitch_yaw
from ddpg_ros.tasks.sources import JOINT_STATES, Source

MODEL_PATH = str(Path(__file__).resolve().parent.parent / 'models' / 'balancer.xml')
"""The MJCF model of the robot."""
TIMESTEP = 0.005
"""The model's physics timestep, seconds."""
FRAME_SKIP = 4
"""Physics steps per control step: ``mujoco_sim``'s ``frame_skip`` for this task."""
WHEEL_SPEED_LIMIT = 20.0
"""The wheel servos' ``ctrlrange``, rad/s."""

IMU = Source('imu', 'imu')
"""The chassis IMU: orientation, angular velocity, linear acceleration."""


class Balancer(Task):
    """
    Keep the chassis upright and still; the episode ends when it tips past ``max_tilt``.

    Observation ``[pitch, pitch rate, left wheel speed, right wheel speed]``: the pitch from
    the IMU's orientation (Z-Y-X Euler angles, so the heading does not matter), its rate
    from the gyro's y axis, the wheel speeds from joint states (relative to the chassis).
    Reward per step: ``alive_bonus - tilt_cost_weight * pitch^2 - speed_cost_weight *
    ground_speed^2``, where ``ground_speed`` is the wheels' mean speed over the ground
    (``mean(wheel speeds) + pitch rate``, rad/s), so that standing still beats rolling away.

    :param alive_bonus: reward per step upright.
    :param tilt_cost_weight: weight of the squared pitch (rad).
    :param speed_cost_weight: weight of the squared ground speed (rad/s of the wheels).
    :param max_tilt: |pitch| (rad) past which the robot has fallen.
    :param max_episode_steps: steps per episode (10 s at the default 50 Hz).
    """

    name = 'balancer'
    env_id = None
    joint_names = ('left_wheel', 'right_wheel')
    observation_names = ('imu.pitch', 'imu.pitch_rate', 'left_wheel.velocity',
                         'right_wheel.velocity')
    action_names = ('left_wheel', 'right_wheel')
    control_dt = TIMESTEP * FRAME_SKIP
    sources = (JOINT_STATES, IMU)
    command_interface = 'velocity'

    def __init__(
        self,
        alive_bonus: float = 1.0,
        tilt_cost_weight: float = 1.0,
        speed_cost_weight: float = 1e-3,
        max_tilt: float = 0.5,
        max_episode_steps: int = 500,
    ) -> None:
        if not 0.0 < max_tilt < np.pi / 2:
            raise ValueError(f'max_tilt {max_tilt!r} must be in (0, pi/2) rad')
        self.alive_bonus = alive_bonus
        self.tilt_cost_weight = tilt_cost_weight
        self.speed_cost_weight = speed_cost_weight
        self.max_tilt = max_tilt
        self.max_episode_steps = max_episode_steps
        self.action_low = np.full(2, -WHEEL_SPEED_LIMIT)
        self.action_high = np.full(2, WHEEL_SPEED_LIMIT)

    @staticmethod
    def pitch(state: RobotState) -> float:
        """
        Return the chassis tilt in rad, positive tipping forward, from the IMU orientation.

        :param state: a state with the ``imu`` sample.
        """
        return float(roll_pitch_yaw(state.sources[IMU.name].orientation)[1])

    def observation(self, state: RobotState) -> np.ndarray:
        """
        Pitch, pitch rate and wheel speeds.

        :param state: wheels ordered as ``joint_names``, with the ``imu`` sample.
        """
        pitch_rate = state.sources[IMU.name].angular_velocity[1]
        return np.array([self.pitch(state), pitch_rate, *state.velocity])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        Alive bonus minus the tilt and ground-speed costs of the state reached.

        :param previous: unused.
        :param action: unused: the speed cost already charges for driving.
        :param state: the state reached.
        """
        pitch, pitch_rate, left, right = self.observation(state)
        ground_speed = 0.5 * (left + right) + pitch_rate
        return float(self.alive_bonus - self.tilt_cost_weight * pitch ** 2
                     - self.speed_cost_weight * ground_speed ** 2)

    def terminated(self, state: RobotState) -> bool:
        """
        Return True once the chassis has tipped past ``max_tilt`` or the state is not finite.

        :param state: the state reached.
        """
        observation = self.observation(state)
        return bool(not np.isfinite(observation).all() or abs(observation[0]) > self.max_tilt)
