"""The balancing robot: its model, its IMU-and-wheels task, and DDPG learning it."""

import mujoco
import numpy as np
import pytest
import torch

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.core.noise import make_noise
from ddpg_ros.core.replay_buffer import ReplayBuffer
from ddpg_ros.sim.simulation import Simulation
from ddpg_ros.sim.sensors import SimSensors
from ddpg_ros.tasks import Balancer, ImuSample, RobotState, make_task
from ddpg_ros.tasks.balancer import FRAME_SKIP, MODEL_PATH, TIMESTEP


def simulation() -> tuple[Simulation, SimSensors]:
    """Return the robot as mujoco_sim runs it for this task, and what it publishes."""
    sim = Simulation(MODEL_PATH, seed=0, frame_skip=FRAME_SKIP)
    return sim, SimSensors(sim.model)


def run_episode(task: Balancer, policy, sim: Simulation, sensors: SimSensors
                ) -> tuple[float, int, list[float]]:
    """Run ``policy`` for one episode; return its return, length and pitch per step."""
    state = sensors.robot_state(task, sim.data)
    total, pitches = 0.0, []
    for step in range(task.max_episode_steps):
        action = policy(task.observation(state))
        sim.step(action)
        previous, state = state, sensors.robot_state(task, sim.data)
        total += task.reward(previous, action, state)
        pitches.append(task.pitch(state))
        if task.terminated(state):
            return total, step + 1, pitches
    return total, task.max_episode_steps, pitches


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


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread: reproducible sums, and fair to a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.learning
def test_ddpg_learns_to_balance_within_30k_steps(one_torch_thread) -> None:
    """
    Train with config/balancer.yaml's hyper-parameters, one update per step, no ROS.

    About 80 s on one core: seed 0 first stands a whole deterministic episode after 22,500
    steps (seeds 1 and 2: 20,000 and 30,000).
    """
    task = make_task('balancer')
    config = DDPGConfig(hidden_sizes=(64, 64), actor_lr=1e-3, critic_lr=1e-3, batch_size=128,
                        buffer_size=100_000, learning_starts=1000, noise_sigma=0.1, seed=0,
                        device='cpu')
    agent = DDPG(task.obs_dim, task.action_low, task.action_high, config)
    buffer = ReplayBuffer(config.buffer_size, task.obs_dim, task.action_dim, seed=0)
    rng = np.random.default_rng(0)
    noise = make_noise(config.noise_type, config.noise_sigma, task.action_low,
                       task.action_high, rng)
    sim, sensors = simulation()
    state = sensors.robot_state(task, sim.data)
    length, evaluations = 0, []
    for step in range(1, 30_001):
        observation = task.observation(state)
        if step <= config.learning_starts:
            action = rng.uniform(task.action_low, task.action_high)
        else:
            action = np.clip(agent.act(observation) + noise(), task.action_low,
                             task.action_high)
        sim.step(action)
        previous, state = state, sensors.robot_state(task, sim.data)
        terminated = task.terminated(state)
        # A time-limit truncation keeps bootstrapping: only a fall is stored as terminal.
        buffer.add(observation, action, task.reward(previous, action, state),
                   task.observation(state), terminated)
        length += 1
        if step > config.learning_starts:
            agent.update(buffer.sample(config.batch_size))
        if terminated or length == task.max_episode_steps:
            sim.reset()
            noise.reset()
            state, length = sensors.robot_state(task, sim.data), 0
        if step % 2500 == 0:
            evaluation = Simulation(MODEL_PATH, seed=0, frame_skip=FRAME_SKIP)
            total, steps, _ = run_episode(task, agent.act, evaluation, sensors)
            evaluation.close()
            evaluations.append((step, round(total, 1), steps))
            if steps == task.max_episode_steps:
                break
    sim.close()
    # Random and untrained policies fall within ~20 steps; a learned one stands 10 s.
    assert evaluations[0][2] < 50, evaluations
    assert evaluations[-1][2] == task.max_episode_steps, evaluations
    assert evaluations[-1][1] > 0.9 * task.max_episode_steps, evaluations
