"""State sources, command interfaces and orientations, as tasks declare and read them."""

import math

import numpy as np
import pytest

from ddpg_ros.tasks import (ImuSample, OdometrySample, PoseSample, RobotState, Source, Task,
                            validate_task)
from ddpg_ros.tasks.rotations import roll_pitch_yaw, rotate, rotate_inverse


def about(axis: str, angle: float) -> np.ndarray:
    """Return the (x, y, z, w) quaternion of a rotation by ``angle`` about a main axis."""
    quaternion = np.zeros(4)
    quaternion['xyz'.index(axis)] = math.sin(angle / 2)
    quaternion[3] = math.cos(angle / 2)
    return quaternion


def test_rotate_turns_body_vectors_into_the_parent_frame() -> None:
    # +90 degrees about z takes body x to parent y and body y to parent -x.
    np.testing.assert_allclose(rotate(about('z', math.pi / 2), [1.0, 0.0, 0.0]),
                               [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(rotate(about('z', math.pi / 2), [0.0, 1.0, 0.0]),
                               [-1.0, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(rotate_inverse(about('z', math.pi / 2), [0.0, 1.0, 0.0]),
                               [1.0, 0.0, 0.0], atol=1e-15)
    rng = np.random.default_rng(0)
    for _ in range(10):
        quaternion = rng.normal(size=4)
        quaternion /= np.linalg.norm(quaternion)
        vector = rng.normal(size=3)
        np.testing.assert_allclose(rotate_inverse(quaternion, rotate(quaternion, vector)),
                                   vector, atol=1e-14)
        np.testing.assert_allclose(np.linalg.norm(rotate(quaternion, vector)),
                                   np.linalg.norm(vector))
    with pytest.raises(ValueError, match=r'4 values \(x, y, z, w\), got shape \(3,\)'):
        rotate([0.0, 0.0, 1.0], [1.0, 0.0, 0.0])


def test_roll_pitch_yaw_reads_each_axis_and_pitch_ignores_heading() -> None:
    np.testing.assert_allclose(roll_pitch_yaw(about('x', 0.3)), [0.3, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(roll_pitch_yaw(about('y', -0.4)), [0.0, -0.4, 0.0], atol=1e-15)
    np.testing.assert_allclose(roll_pitch_yaw(about('z', 2.0)), [0.0, 0.0, 2.0], atol=1e-15)
    # Heading first, then a tilt about the body's y axis: the tilt is still the pitch.
    x1, y1, z1, w1 = about('z', 2.5)
    x2, y2, z2, w2 = about('y', 0.2)
    product = [w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2, w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
               w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2, w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2]
    np.testing.assert_allclose(roll_pitch_yaw(product), [0.0, 0.2, 2.5], atol=1e-14)


def test_samples_refuse_a_quaternion_far_from_unit_norm() -> None:
    with pytest.raises(ValueError, match=r'imu orientation \[0.0, 0.0, 0.0, 2.0\] has norm 2'):
        ImuSample([0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 9.81], 0.0)
    with pytest.raises(ValueError, match='odometry orientation .* has norm 0.9'):
        OdometrySample(np.zeros(3), [0.0, 0.0, 0.0, 0.9], np.zeros(3), np.zeros(3), 'odom',
                       'base_link', 0.0)
    with pytest.raises(ValueError, match='pose orientation .* has norm 0,'):
        PoseSample(np.zeros(3), np.zeros(4), 'map', 0.0)
    # Within tolerance: a quaternion that went through float32 still passes.
    sample = ImuSample(np.float32([0.0, 0.0, 0.6, 0.8]), np.zeros(3), np.zeros(3), 1)
    assert sample.orientation.dtype == np.float64 and sample.stamp == 1.0


def test_source_refuses_an_unknown_kind_and_a_bad_name() -> None:
    with pytest.raises(ValueError, match="source 'lidar': unknown kind 'laser_scan'; choose "
                                         'one of joint_state, imu, odometry'):
        Source('lidar', 'laser_scan')
    with pytest.raises(ValueError, match="source name '/odom' must be a non-empty relative"):
        Source('/odom', 'odometry')
    with pytest.raises(ValueError, match="source 'contacts': an array source needs its "
                                         'length >= 1, got 0'):
        Source('contacts', 'array')


class _Wheels(Task):
    name = 'wheels'
    joint_names = ('left', 'right')
    observation_names = ('left.velocity', 'right.velocity')
    action_names = ('left', 'right')
    action_low = np.array([-1.0, -1.0])
    action_high = np.array([1.0, 1.0])
    control_dt = 0.02
    max_episode_steps = 10
    sources = (Source('joint_states', 'joint_state'), Source('imu', 'imu'))
    command_interface = 'velocity'

    def observation(self, state: RobotState) -> np.ndarray:
        return state.velocity

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        return 0.0


def test_validate_task_names_a_bad_command_interface_or_source_set() -> None:
    validate_task(_Wheels())

    class Torque(_Wheels):
        command_interface = 'torque'

    with pytest.raises(ValueError, match="task Torque: unknown command interface 'torque'; "
                                         'choose one of effort, velocity, position'):
        validate_task(Torque())

    class TwoImus(_Wheels):
        sources = (Source('joint_states', 'joint_state'), Source('imu', 'imu'),
                   Source('imu', 'imu', required=False))

    with pytest.raises(ValueError, match='duplicate names'):
        validate_task(TwoImus())

    class NoJointSource(_Wheels):
        sources = (Source('imu', 'imu'),)

    with pytest.raises(ValueError, match=r"reads joints \('left', 'right'\) but declares no "
                                         'joint_state source'):
        validate_task(NoJointSource())
