"""Tasks: built-in ones reproduce Gymnasium's v5 envs exactly; users' tasks load by path."""

import sys

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from ddpg_ros.sim.simulation import Simulation
from ddpg_ros.sim.sensors import SimSensors
from ddpg_ros.tasks import (AntOnRobot, Hopper, RobotState, Task, Walker2d, available_tasks,
                            make_task, task_for_env_id, validate_task)
from ddpg_ros.tasks.examples import MODEL_PATH, ReachPoint, ReachTarget
from ddpg_ros.tasks.sources import PoseSample

BUILTINS = [('inverted_pendulum', 'InvertedPendulum-v5'),
            ('half_cheetah', 'HalfCheetah-v5'),
            ('hopper', 'Hopper-v5'),
            ('walker2d', 'Walker2d-v5')]


def read_state(sim: Simulation, task: Task) -> RobotState:
    """Return what a joint_states message from the simulation gives the agent."""
    return RobotState.from_joints(task.joint_names, sim.joint_names, sim.joint_positions(),
                                  sim.joint_velocities(), sim.joint_efforts(), sim.time)


def sinusoid(step: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Return a deterministic command that sweeps each actuator, a little past its bounds."""
    phase = np.arange(len(low))
    wave = np.sin(0.3 * step + phase) * np.cos(0.07 * step * (phase + 1))
    # float32, as an actor's output would be: the control cost must match in that dtype too.
    return (0.5 * (low + high) + 0.55 * (high - low) * wave).astype(np.float32)


def assert_matches_gymnasium(task: Task, env_id: str, seed: int, steps: int,
                             expect_terminations: bool, **env_kwargs) -> None:
    env = gym.make(env_id, **env_kwargs)
    sim = Simulation(env_id, seed=seed)
    gym_obs, _ = env.reset(seed=seed)
    state = read_state(sim, task)
    np.testing.assert_array_equal(task.observation(state), gym_obs)
    terminations = 0
    for step in range(steps):
        action = sinusoid(step, task.action_low, task.action_high)
        gym_obs, gym_reward, gym_terminated, _, _ = env.step(action)
        sim.step(action)
        previous, state = state, read_state(sim, task)
        observation = task.observation(state)
        assert observation.dtype == np.float64 and observation.shape == (task.obs_dim,)
        # Same floats through the same operations: equal bit for bit, not just within 1e-9.
        np.testing.assert_array_equal(observation, gym_obs)
        assert task.reward(previous, action, state) == gym_reward, f'step {step}'
        assert task.terminated(state) == gym_terminated, f'step {step}'
        if gym_terminated:
            terminations += 1
            # The next reset draws from the same stream in both, so states stay identical.
            gym_obs, _ = env.reset()
            sim.reset()
            state = read_state(sim, task)
            np.testing.assert_array_equal(task.observation(state), gym_obs)
    env.close()
    sim.close()
    # Episodes that end show that the reset streams stay in step too.
    assert (terminations > 0) == expect_terminations


@pytest.mark.parametrize(('name', 'env_id'), BUILTINS)
def test_builtin_task_matches_gymnasium_step_by_step(name: str, env_id: str) -> None:
    assert_matches_gymnasium(make_task(name), env_id, seed=7, steps=300,
                             expect_terminations=name != 'half_cheetah')


def test_hopper_keyword_arguments_match_gymnasium_kwargs() -> None:
    kwargs = {'ctrl_cost_weight': 0.05, 'healthy_reward': 0.5,
              'terminate_when_unhealthy': False, 'healthy_angle_range': (-0.5, 0.5)}
    assert_matches_gymnasium(Hopper(**kwargs), 'Hopper-v5', seed=3, steps=150,
                             expect_terminations=False, **kwargs)


def test_walker2d_keyword_arguments_match_gymnasium_kwargs() -> None:
    # A narrow height range ends episodes the default would not; the angle bound is wide.
    kwargs = {'ctrl_cost_weight': 0.05, 'healthy_reward': 0.5,
              'healthy_z_range': (1.0, 1.5), 'healthy_angle_range': (-2.0, 2.0)}
    assert_matches_gymnasium(Walker2d(**kwargs), 'Walker2d-v5', seed=3, steps=150,
                             expect_terminations=True, **kwargs)


def test_walker2d_bounds_only_the_torso_unlike_the_hopper() -> None:
    # The hopper is unhealthy when any other state entry leaves (-100, 100); Gymnasium's
    # walker has no such bound, so a fast joint alone does not end its episode.
    walker, hopper = Walker2d(), Hopper()
    upright = RobotState(position=np.r_[0.0, 1.25, 0.0, np.zeros(6)],
                         velocity=np.r_[np.zeros(3), 150.0, np.zeros(5)], effort=np.zeros(9),
                         stamp=0.0)
    assert walker.is_healthy(upright) and not walker.terminated(upright)
    hopper_state = RobotState(position=upright.position[:6], velocity=upright.velocity[:6],
                              effort=np.zeros(6), stamp=0.0)
    assert not hopper.is_healthy(hopper_state)
    fallen = RobotState(position=np.r_[0.0, 0.7, np.zeros(7)], velocity=np.zeros(9),
                        effort=np.zeros(9), stamp=0.0)
    assert walker.terminated(fallen)
    assert not Walker2d(terminate_when_unhealthy=False).terminated(fallen)


@pytest.mark.parametrize(('name', 'env_id'), BUILTINS + [('ant', 'Ant-v5')])
def test_builtin_task_spec_matches_gymnasium(name: str, env_id: str) -> None:
    task = make_task(name)
    env = gym.make(env_id)
    sim = Simulation(env_id, seed=0)
    assert task.name == name and task.env_id == env_id
    assert task_for_env_id(env_id) == name
    assert task.obs_dim == env.observation_space.shape[0] == len(task.observation_names)
    assert task.action_dim == env.action_space.shape[0]
    assert task.action_low.dtype == np.float64 and task.action_high.dtype == np.float64
    np.testing.assert_array_equal(task.action_low, env.action_space.low)
    np.testing.assert_array_equal(task.action_high, env.action_space.high)
    assert task.control_dt == env.unwrapped.dt == sim.control_dt
    assert task.max_episode_steps == env.spec.max_episode_steps
    assert task.joint_names == sim.joint_names
    assert task.action_names == sim.actuator_names
    env.close()
    sim.close()


def test_task_for_env_id_is_none_for_other_envs() -> None:
    assert task_for_env_id('HalfCheetah-v4') is None
    assert task_for_env_id('Pendulum-v1') is None


def test_make_task_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown task 'walker'") as info:
        make_task('walker')
    for name in available_tasks():
        assert name in str(info.value)
    assert 'package.module:ClassName' in str(info.value)


@pytest.mark.parametrize(('spec', 'reason'), [
    ('no_such_package.tasks:Mine', "cannot import 'no_such_package.tasks'"),
    ('ddpg_ros.tasks.examples:Nope', "has no 'Nope'"),
    ('collections:OrderedDict', 'not a subclass of ddpg_ros.tasks.Task'),
    ('ddpg_ros.tasks.examples:MODEL_PATH', 'not a subclass'),
    (':ReachTarget', 'package.module:ClassName'),
    ('ddpg_ros.tasks.examples:', 'package.module:ClassName'),
    ('a:b:c', 'package.module:ClassName'),
])
def test_make_task_bad_import_path_says_why(spec: str, reason: str) -> None:
    with pytest.raises(ValueError, match='task') as info:
        make_task(spec)
    assert reason in str(info.value)
    assert spec in str(info.value)


def test_make_task_loads_the_user_example() -> None:
    task = make_task('ddpg_ros.tasks.examples:ReachTarget')
    assert isinstance(task, ReachTarget)
    assert task.obs_dim == 6 and task.action_dim == 2


USER_MODULE = '''
import numpy as np
from ddpg_ros.tasks import Task


class NoBounds(Task):
    name = 'no_bounds'
    joint_names = ('j',)
    observation_names = ('j.position',)
    action_names = ('j',)
    control_dt = 0.01
    max_episode_steps = 10
    action_low = np.array([-np.inf])
    action_high = np.array([np.inf])

    def observation(self, state):
        return state.position

    def reward(self, previous, action, state):
        return 0.0


class NeedsArguments(NoBounds):
    def __init__(self, gain):
        self.gain = gain
'''


def test_make_task_rejects_a_broken_user_task(tmp_path, monkeypatch) -> None:
    (tmp_path / 'my_robot_tasks.py').write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match='action_low must be finite'):
        make_task('my_robot_tasks:NoBounds')
    with pytest.raises(ValueError, match=r'NeedsArguments\(\) failed: TypeError'):
        make_task('my_robot_tasks:NeedsArguments')
    sys.modules.pop('my_robot_tasks', None)


def test_reach_target_example_runs_on_its_model() -> None:
    task = make_task('ddpg_ros.tasks.examples:ReachTarget')
    sim = Simulation(MODEL_PATH, seed=0)
    assert task.joint_names == sim.joint_names and task.action_names == sim.actuator_names
    assert task.control_dt == sim.control_dt
    state = read_state(sim, task)
    first_error = np.abs(task.observation(state)[4:]).max()
    rewards = []
    for _ in range(task.max_episode_steps):
        # A PD controller stands in for a trained policy: the task must reward reaching.
        action = np.clip(5.0 * (task.target - state.position) - 1.0 * state.velocity,
                         task.action_low, task.action_high)
        sim.step(action)
        previous, state = state, read_state(sim, task)
        rewards.append(task.reward(previous, action, state))
        assert not task.terminated(state)
    assert np.abs(task.observation(state)[4:]).max() < 0.05 < first_error
    assert rewards[-1] > rewards[0]


def test_reach_point_fingertip_is_the_models_fingertip() -> None:
    sim = Simulation(MODEL_PATH, seed=0)
    rng = np.random.default_rng(4)
    for _ in range(5):
        sim.data.qpos[:] = rng.uniform(-2.5, 2.5, size=2)
        mujoco.mj_forward(sim.model, sim.data)
        np.testing.assert_allclose(ReachPoint.fingertip(sim.data.qpos),
                                   sim.data.site('fingertip').xpos[:2], atol=1e-12)
    sim.close()


def test_reach_point_reads_an_optional_goal_from_a_second_source() -> None:
    task = make_task('ddpg_ros.tasks.examples:ReachPoint')
    assert [(s.name, s.kind, s.required) for s in task.sources] == [
        ('joint_states', 'joint_state', True), ('goal', 'pose', False)]
    straight = RobotState([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], 0.0)
    # No goal yet: the default one (0.3, 0.3), from a fingertip at (0.55, 0).
    np.testing.assert_allclose(task.observation(straight)[4:], [-0.25, 0.3])
    goal = PoseSample([0.55, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], 'base', 0.0)
    at_goal = RobotState([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], 0.0, {'goal': goal})
    np.testing.assert_allclose(task.observation(at_goal)[4:], [0.0, 0.0], atol=1e-15)
    assert task.reward(at_goal, np.zeros(2), at_goal) == 0.0
    assert task.reward(straight, np.zeros(2), straight) == pytest.approx(-(0.25 ** 2 + 0.09))


def test_reach_point_rewards_chasing_the_published_goal() -> None:
    task = ReachPoint()
    sim = Simulation(MODEL_PATH, seed=0)
    goal = PoseSample([-0.1, 0.4, 0.0], [0.0, 0.0, 0.0, 1.0], 'base', 0.0)

    def read() -> RobotState:
        joints = read_state(sim, task)
        return RobotState(joints.position, joints.velocity, joints.effort, joints.stamp,
                          {'goal': goal})

    state = read()
    rewards = []
    for _ in range(task.max_episode_steps):
        # Jacobian-transpose control with damping stands in for a trained policy.
        shoulder, elbow = state.position
        jacobian = np.array([
            [-0.3 * np.sin(shoulder) - 0.25 * np.sin(shoulder + elbow),
             -0.25 * np.sin(shoulder + elbow)],
            [0.3 * np.cos(shoulder) + 0.25 * np.cos(shoulder + elbow),
             0.25 * np.cos(shoulder + elbow)]])
        action = np.clip(20.0 * jacobian.T @ task.observation(state)[4:] - state.velocity,
                         task.action_low, task.action_high)
        sim.step(action)
        previous, state = state, read()
        rewards.append(task.reward(previous, action, state))
    sim.close()
    assert np.linalg.norm(task.observation(state)[4:]) < 0.02
    assert rewards[-1] > rewards[0]


def test_robot_state_converts_and_validates() -> None:
    state = RobotState([1, 2], [0, 0], [0.5, 0.5], stamp=3)
    assert state.position.dtype == np.float64 and isinstance(state.stamp, float)
    with pytest.raises(ValueError, match='same length'):
        RobotState(np.zeros(2), np.zeros(3), np.zeros(2), 0.0)
    with pytest.raises(ValueError, match='1-D'):
        RobotState(np.zeros((2, 2)), np.zeros(2), np.zeros(2), 0.0)


def test_robot_state_from_joints_reorders_by_name() -> None:
    state = RobotState.from_joints(('hinge', 'slider'), ['slider', 'extra', 'hinge'],
                                   [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], 1.5)
    np.testing.assert_array_equal(state.position, [3.0, 1.0])
    np.testing.assert_array_equal(state.velocity, [6.0, 4.0])
    np.testing.assert_array_equal(state.effort, [9.0, 7.0])
    with pytest.raises(ValueError, match=r"lacks joints \['hinge'\]"):
        RobotState.from_joints(('hinge',), ['slider'], [1.0], [1.0], [1.0], 0.0)
    with pytest.raises(ValueError, match='2 names but 1 velocity'):
        RobotState.from_joints(('a',), ['a', 'b'], [1.0, 2.0], [1.0], [1.0, 2.0], 0.0)


def test_builtin_tasks_validate() -> None:
    for name in available_tasks():
        validate_task(make_task(name))


ANT_QUATERNION = slice(1, 5)
"""Where the torso's (w, x, y, z) quaternion sits in Ant-v5's observation."""


def assert_reset_observation_matches(observation: np.ndarray, gym_obs: np.ndarray) -> None:
    """
    Compare an episode's first Ant observation with Gymnasium's.

    Gymnasium's reset noise is added to the quaternion too, so its first observation holds
    an unnormalised one (the physics normalises it); odometry carries the unit quaternion.
    """
    expected = gym_obs.copy()
    quaternion = expected[ANT_QUATERNION]
    assert abs(np.linalg.norm(quaternion) - 1.0) > 1e-3  # the case this function is for
    expected[ANT_QUATERNION] = quaternion / np.linalg.norm(quaternion)
    np.testing.assert_allclose(observation, expected, rtol=0.0, atol=1e-12)


def test_ant_matches_gymnasium_step_by_step() -> None:
    """The sim's odom, root_pose and contact_forces give Ant-v5's observation and reward."""
    task = make_task('ant')
    env = gym.make('Ant-v5')
    gym_obs, _ = env.reset(seed=1)
    # What mujoco_sim would publish, read from the env itself and from the Simulation the
    # node steps: both must give Gymnasium's numbers.
    sim = Simulation('Ant-v5', seed=1)
    readers = [(SimSensors(env.unwrapped.model), env.unwrapped.data),
               (SimSensors(sim.model), sim.data)]
    states = [sensors.robot_state(task, data) for sensors, data in readers]
    for state in states:
        assert_reset_observation_matches(task.observation(state), gym_obs)
    terminations = 0
    obs_error = 0.0
    for step in range(300):
        action = sinusoid(step, task.action_low, task.action_high)
        gym_obs, gym_reward, gym_terminated, _, _ = env.step(action)
        sim.step(action)
        previous_states = states
        states = [sensors.robot_state(task, data) for sensors, data in readers]
        for previous, state in zip(previous_states, states):
            observation = task.observation(state)
            assert observation.dtype == np.float64 and observation.shape == (task.obs_dim,)
            # The twist is rotated into the body frame and back: equal to rounding.
            np.testing.assert_allclose(observation, gym_obs, rtol=0.0, atol=1e-9)
            obs_error = max(obs_error, float(np.abs(observation - gym_obs).max()))
            # Every term is a copy of what Gymnasium reads: equal bit for bit.
            assert task.reward(previous, action, state) == gym_reward, f'step {step}'
            assert task.terminated(state) == gym_terminated, f'step {step}'
        if gym_terminated:
            terminations += 1
            gym_obs, _ = env.reset()
            sim.reset()
            states = [sensors.robot_state(task, data) for sensors, data in readers]
            for state in states:
                assert_reset_observation_matches(task.observation(state), gym_obs)
    env.close()
    sim.close()
    assert terminations > 0
    assert obs_error < 1e-12


def test_ant_on_robot_reads_only_what_a_robot_publishes() -> None:
    """Gymnasium's Ant without contact forces, progress measured by odometry."""
    task = make_task('ddpg_ros.tasks.ant:AntOnRobot')
    assert [(s.name, s.kind) for s in task.sources] == [('joint_states', 'joint_state'),
                                                        ('odom', 'odometry')]
    assert task.env_id is None and task.obs_dim == 27
    kwargs = {'contact_cost_weight': 0.0, 'include_cfrc_ext_in_observation': False}
    env = gym.make('Ant-v5', **kwargs)
    gym_obs, _ = env.reset(seed=2)
    sensors, data = SimSensors(env.unwrapped.model), env.unwrapped.data
    state = sensors.robot_state(task, data)
    forward_gap = 0.0
    for step in range(100):
        # float64: a float32 action makes Gymnasium's reward float32, too coarse for 1e-9.
        action = sinusoid(step, task.action_low, task.action_high).astype(np.float64)
        gym_obs, gym_reward, gym_terminated, _, info = env.step(action)
        previous, state = state, sensors.robot_state(task, data)
        np.testing.assert_allclose(task.observation(state), gym_obs, rtol=0.0, atol=1e-9)
        assert task.terminated(state) == gym_terminated
        # Only the forward term differs: odometry's x instead of Gymnasium's kinematic one.
        odom_velocity = (state.sources['odom'].position[0]
                         - previous.sources['odom'].position[0]) / task.control_dt
        assert task.reward(previous, action, state) == pytest.approx(
            gym_reward - info['x_velocity'] + odom_velocity, abs=1e-9)
        forward_gap = max(forward_gap, abs(odom_velocity - info['x_velocity']))
        assert not gym_terminated
    env.close()
    # The reason Ant reads root_pose: the two measures really differ.
    assert forward_gap > 1e-4


def test_ant_sources_follow_its_keyword_arguments() -> None:
    def names(task: Task) -> list[str]:
        return [source.name for source in task.sources]

    assert names(make_task('ant')) == ['joint_states', 'odom', 'root_pose', 'contact_forces']
    from ddpg_ros.tasks import Ant

    assert names(Ant(progress_from='odom', contact_cost_weight=0.0)) == [
        'joint_states', 'odom', 'contact_forces']
    assert names(Ant(include_cfrc_ext_in_observation=False)) == [
        'joint_states', 'odom', 'root_pose', 'contact_forces']
    assert Ant(include_cfrc_ext_in_observation=False).obs_dim == 27
    with pytest.raises(ValueError, match="progress_from 'gps' is not one of root_pose, odom"):
        Ant(progress_from='gps')
    with pytest.raises(ValueError, match='AntOnRobot fixes progress_from; use Ant'):
        AntOnRobot(progress_from='root_pose')
