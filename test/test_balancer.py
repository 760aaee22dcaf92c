"""The balancing robot: its model, its IMU-and-wheels task, and DDPG learning it."""

import mujoco
import numpy as np
import pytest

from ddpg_ros.tasks import Balancer, ImuSample, RobotState, make_task
from ddpg_ros.tasks.balancer import TIMESTEP

from balancer_learning import run_episode, simulation


def test_balancer_matches_its_model() -> None:
    task = make_task('balancer')
    sim, sensors = simulation()
    assert task.env_id is None and task.command_interface == 'velocity'
    assert task.joint_names == sim.joint_names and task.action_names == sim.actuator_names
    assert sim.model.opt.timestep == TIMESTEP and task.control_dt == sim.control_dt == 0.02
    np.testing.assert_array_equal(task.action_low, sim.control_low)
    np.testing.assert_array_equal(task.action_high, sim.control_high)
    # Velocity servos: force = kv * (ctrl - velocity), MuJoCo's <velocity> actuator.
    assert (sim.model.actuator_gainprm[:, 0] == -sim.model.actuator_biasprm[:, 2]).all()
    assert (sim.model.actuator_biasprm[:, 2] < 0).all()
    assert {source.name: source.kind for source in task.sources}.items() <= \
        sensors.topics.items()
    assert sensors.topics['odom'] == 'odometry'
    assert mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_CAMERA, 'track') >= 0
    sim.close()


def test_balancer_observes_the_start_tilt_from_the_imu() -> None:
    task = make_task('balancer')
    sim, sensors = simulation()
    state = sensors.robot_state(task, sim.data)
    np.testing.assert_allclose(task.observation(state), [0.1, 0.0, 0.0, 0.0], atol=1e-6)
    # Upright and still scores the full bonus; the start tilt costs pitch squared.
    assert abs(task.reward(state, np.zeros(2), state) - (1.0 - 0.1 ** 2)) < 1e-6
    assert not task.terminated(state)
    sim.close()


def test_balancer_falls_without_control_and_stands_with_a_feedback_law() -> None:
    task = make_task('balancer')
    sim, sensors = simulation()
    _, steps, pitches = run_episode(task, lambda obs: np.zeros(2), sim, sensors)
    assert steps < 50 and pitches[-1] > task.max_tilt  # tipped forward, as it started
    sim.reset()

    # Drive the wheels under the falling chassis: speed up by the tilt and its rate.
    def feedback(obs: np.ndarray) -> np.ndarray:
        pitch, pitch_rate, left, right = obs
        return np.full(2, 0.5 * (left + right) + 100.0 * pitch + 10.0 * pitch_rate)

    total, steps, pitches = run_episode(task, feedback, sim, sensors)
    assert steps == task.max_episode_steps
    assert max(abs(p) for p in pitches[100:]) < 0.02
    assert total > 0.95 * task.max_episode_steps
    sim.close()


def test_balancer_reward_and_termination_follow_the_tilt() -> None:
    task = Balancer(max_tilt=0.3)

    def state(pitch: float, wheels: float, pitch_rate: float = 0.0) -> RobotState:
        imu = ImuSample([0.0, np.sin(pitch / 2), 0.0, np.cos(pitch / 2)],
                        [0.0, pitch_rate, 0.0], [0.0, 0.0, 9.81], 0.0)
        return RobotState([0.0, 0.0], [wheels, wheels], [0.0, 0.0], 0.0, {'imu': imu})

    upright, tilted, rolling = state(0.0, 0.0), state(0.2, 0.0), state(0.0, 10.0)
    assert task.reward(upright, np.zeros(2), upright) == 1.0
    assert abs(task.reward(upright, np.zeros(2), tilted) - (1.0 - 0.04)) < 1e-12
    assert abs(task.reward(upright, np.zeros(2), rolling) - (1.0 - 1e-3 * 100.0)) < 1e-12
    # Rolling back under a chassis tipping forward is standing still over the ground.
    assert task.reward(upright, np.zeros(2), state(0.0, -3.0, pitch_rate=3.0)) == 1.0
    assert not task.terminated(state(0.29, 0.0)) and task.terminated(state(-0.31, 0.0))


@pytest.mark.learning
def test_ddpg_learns_to_balance_within_30k_steps(balancer_run) -> None:
    """
    Stand within 30,000 steps, trained by :mod:`balancer_learning`.

    config/balancer.yaml's hyper-parameters, one update per step, no ROS, seed 0; trained in
    the background while other tests run.
    """
    evaluations = balancer_run
    task = make_task('balancer')
    # Random and untrained policies fall within ~20 steps; a learned one stands 10 s.
    assert evaluations[0][2] < 50, evaluations
    assert evaluations[-1][2] == task.max_episode_steps, evaluations
    assert evaluations[-1][1] > 0.9 * task.max_episode_steps, evaluations
