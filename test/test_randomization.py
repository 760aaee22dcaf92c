"""Randomization: each perturbation does what it says, seeded, alike in the sim and the env."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from ddpg_ros.sim.envs import RandomizedEnv, make_env
from ddpg_ros.sim.randomization import Randomizer
from ddpg_ros.sim.randomization_profile import (LEVELS, NONE, ProfileError, load_profile,
                                                parse_profile)
from ddpg_ros.sim.simulation import Simulation

PENDULUM = 'InvertedPendulum-v5'
"""frame_skip 2: one control period is two physics steps of 0.02 s."""


def profile(**values):
    return parse_profile(values, 'test')


def pendulum(randomize=None, seed=0, frame_skip=None):
    return Simulation(PENDULUM, seed=seed, randomize=randomize, frame_skip=frame_skip)


def applied_per_physics_step(sim, commands, steps_per_command=None):
    """Send each command, then step one physics step at a time; the ctrl seen at each."""
    seen = []
    for command in commands:
        sim.send(np.array([command]))
        for _ in range(steps_per_command or sim.frame_skip):
            sim.advance(1)
            seen.append(float(sim.data.ctrl[0]))
    return seen


@pytest.mark.parametrize('periods, steps', [(0.25, 1), (0.5, 2), (1.0, 4), (1.5, 6)])
def test_a_latency_of_k_physics_steps_delays_the_command_by_k_steps_of_sim_time(periods, steps):
    sim = pendulum(profile(command_latency=[periods, periods]), frame_skip=4)
    assert sim.randomizer.latency_steps == steps
    commands = [0.1 * (i + 1) for i in range(6)]
    seen = applied_per_physics_step(sim, commands)
    # The ctrl in effect during physics step t is the command sent at step t - k (0 before).
    sent = np.repeat(commands, 4)
    expected = np.concatenate([np.zeros(steps), sent[:len(sent) - steps]])
    np.testing.assert_allclose(seen, expected)


def test_latency_counts_physics_steps_however_the_steps_are_grouped():
    # Lockstep advances a whole period per command, realtime may advance a step per tick:
    # the trajectory is the same.
    late = profile(command_latency=[0.5, 0.5])
    whole, single = pendulum(late, frame_skip=4), pendulum(late, frame_skip=4)
    for command in (0.3, -0.2, 0.5, 0.0, -0.4):
        whole.step(np.array([command]))
        single.send(np.array([command]))
        for _ in range(4):
            single.advance(1)
    np.testing.assert_array_equal(whole.data.qpos, single.data.qpos)
    np.testing.assert_array_equal(whole.data.qvel, single.data.qvel)


def test_a_latency_equals_holding_the_previous_command_in_a_nominal_simulation():
    delayed, nominal = pendulum(profile(command_latency=[0.5, 0.5]), frame_skip=4), \
        pendulum(frame_skip=4)
    previous = 0.0
    for command in (0.3, -0.2, 0.5, 0.0, -0.4):
        delayed.step(np.array([command]))
        nominal.step(np.array([previous]), physics_steps=2)
        nominal.step(np.array([command]), physics_steps=2)
        previous = command
    np.testing.assert_array_equal(delayed.data.qpos, nominal.data.qpos)


def test_every_late_command_lands_by_its_delay_and_none_overtakes_another():
    sim = pendulum(profile(late_periods={'probability': 1.0, 'delay': [0.5, 0.5]}),
                   frame_skip=4)
    seen = applied_per_physics_step(sim, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(seen, [0, 0, .1, .1, .1, .1, .2, .2, .2, .2, .3, .3])
    # A command that would land before an earlier, later one waits for it.
    randomizer = sim.randomizer
    randomizer.reset()
    randomizer.latency_steps = 3
    assert randomizer.send(np.array([1.0])) == 3 + 2
    randomizer.latency_steps = 0
    assert randomizer.send(np.array([2.0])) == 5


def test_late_periods_come_with_the_stated_probability():
    sim = pendulum(profile(late_periods={'probability': 0.2, 'delay': [0.0, 0.5]}))
    for _ in range(5000):
        sim.send(np.array([0.0]))
    assert sim.randomizer.late_commands / 5000 == pytest.approx(0.2, abs=0.02)


def test_observation_noise_has_the_stated_standard_deviation_and_no_bias():
    sim = pendulum(profile(observation_noise={'joint_position': 0.01, 'joint_velocity': 0.2}))
    true_position, true_velocity = sim.joint_positions(), sim.joint_velocities()
    draws = [sim.measured_joints() for _ in range(4000)]
    position = np.array([p for p, _ in draws]) - true_position
    velocity = np.array([v for _, v in draws]) - true_velocity
    np.testing.assert_allclose(position.std(axis=0), 0.01, rtol=0.05)
    np.testing.assert_allclose(velocity.std(axis=0), 0.2, rtol=0.05)
    np.testing.assert_allclose(position.mean(axis=0), 0.0, atol=0.01 * 4 / np.sqrt(4000))
    # The state itself is untouched: only what is measured carries noise.
    np.testing.assert_array_equal(sim.joint_positions(), true_position)


def test_masses_are_scaled_in_the_model_and_restored_on_every_reset():
    sim = pendulum(profile(dynamics={'mass': [0.5, 1.5], 'friction': [2.0, 2.0],
                                     'damping': [3.0, 3.0], 'actuator_gain': [0.5, 0.5]}))
    nominal = Simulation(PENDULUM).model
    for _ in range(3):
        sim.reset()
        scales = sim.randomizer.scales['mass']
        np.testing.assert_allclose(sim.model.body_mass, nominal.body_mass * scales)
        np.testing.assert_allclose(sim.model.body_inertia,
                                   nominal.body_inertia * scales[:, None])
        np.testing.assert_allclose(sim.model.geom_friction[:, 0],
                                   2.0 * nominal.geom_friction[:, 0])
        np.testing.assert_allclose(sim.model.dof_damping, 3.0 * nominal.dof_damping)
        np.testing.assert_allclose(sim.model.actuator_gainprm[:, 0],
                                   0.5 * nominal.actuator_gainprm[:, 0])
    assert len({tuple(np.round(sim.model.body_mass, 9))}) == 1
    sim.randomizer.restore()
    np.testing.assert_array_equal(sim.model.body_mass, nominal.body_mass)


def test_pushes_kick_the_root_body_at_the_stated_interval():
    sim = pendulum(profile(pushes={'velocity': 0.5, 'interval': [0.2, 0.2]}))
    still = pendulum()
    for _ in range(int(1.0 / sim.control_dt)):  # one second
        sim.step(np.zeros(1))
        still.step(np.zeros(1))
    # At 0.2, 0.4, 0.6 and 0.8 s; the one at 1.0 s starts the step from 1.0 s.
    assert sim.randomizer.pushes == 4
    assert abs(sim.data.qpos[0] - still.data.qpos[0]) > 1e-3  # the cart moved


def test_the_same_seed_gives_the_same_perturbations_and_another_does_not():
    def run(seed):
        sim = pendulum(load_profile('hard'), seed=seed)
        rng = np.random.default_rng(0)
        out = []
        for step in range(200):
            sim.step(rng.uniform(-1, 1, size=1))
            out.append(np.concatenate(sim.measured_joints()))
            if step % 50 == 49:
                sim.reset()
        return np.array(out)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


@pytest.mark.parametrize('env_id', [PENDULUM, 'HalfCheetah-v5'])
def test_in_lockstep_the_sim_and_the_wrapped_env_follow_one_trajectory(env_id):
    sim = Simulation(env_id, seed=7, randomize='hard')
    env = make_env(env_id, randomize='hard')
    obs, _ = env.reset(seed=7)
    base = env.unwrapped
    rng = np.random.default_rng(1)
    positions, velocities = sim.measured_joints()
    for step in range(150):
        # The env's observation is its own function of the joints the sim publishes.
        np.testing.assert_array_equal(obs, _observation(env_id, positions, velocities))
        action = rng.uniform(-0.5, 0.5, size=env.action_space.shape)
        sim.step(action)
        obs, _, terminated, _, _ = env.step(action)
        positions, velocities = sim.measured_joints()
        np.testing.assert_array_equal(sim.data.qpos, base.data.qpos)
        np.testing.assert_array_equal(sim.data.qvel, base.data.qvel)
        if terminated:
            break
    assert step > 5
    assert sim.randomizer.latency_steps == env.randomizer.latency_steps
    env.close()


def _observation(env_id, positions, velocities):
    # What the built-in tasks observe from joint states, as Gymnasium's _get_obs does.
    if env_id == PENDULUM:
        return np.concatenate([positions, velocities])
    return np.concatenate([positions[1:], velocities])  # HalfCheetah drops rootx


def test_the_wrapped_env_passes_gymnasiums_env_checker():
    env = make_env(PENDULUM, randomize='hard')
    assert isinstance(env, RandomizedEnv)
    check_env(env, skip_render_check=True)
    env.close()


def test_no_profile_leaves_the_env_unwrapped():
    env = make_env(PENDULUM, randomize=NONE)
    assert not isinstance(env, RandomizedEnv)
    env.close()
    assert Simulation(PENDULUM, randomize='').randomizer is None


@pytest.mark.parametrize('level', list(LEVELS))
def test_built_in_levels_round_trip_through_a_profile_file(level, tmp_path):
    path = tmp_path / f'{level}.yaml'
    path.write_text(yaml.safe_dump(load_profile(level).to_yaml()))
    loaded = load_profile(str(path))
    assert loaded.to_yaml() == load_profile(level).to_yaml()


def test_hard_holds_what_the_interface_promises():
    hard = load_profile('hard')
    assert (hard.command_latency.low, hard.command_latency.high) == (0.0, 1.0)
    assert hard.late_probability >= 0.05 and hard.late_delay.high >= 0.5
    assert hard.dynamics['mass'][0] <= 0.7 and hard.dynamics['mass'][1] >= 1.3
    assert hard.dynamics['friction'][0] <= 0.7 and hard.dynamics['friction'][1] >= 1.3
    assert hard.push_velocity > 0 and all(hard.observation_noise.values())


def test_a_histogram_draws_only_its_values_by_their_weights():
    # timing.yaml records measured delays as a histogram: 0.5 or 1 period, 3 to 1.
    late = profile(late_periods={'probability': 1.0,
                                 'delay': {'values': [0.5, 1.0], 'weights': [3, 1]}})
    sim = pendulum()
    draws = [Randomizer(late, sim.model, sim.data, sim.frame_skip, seed).send(np.zeros(1))
             for seed in range(800)]  # the first command's delay, in physics steps
    assert set(draws) == {1, 2}
    assert draws.count(1) / len(draws) == pytest.approx(0.75, abs=0.05)


@pytest.mark.parametrize('values, named', [
    ({'latency': [0, 1]}, "unknown key 'latency'"),
    ({'command_latency': [1.0, 0.5]}, 'range [1, 0.5] is inverted'),
    ({'command_latency': [-0.5, 0.5]}, 'must be >= 0, got -0.5'),
    ({'command_latency': 0.5}, 'must be a range [low, high], got 0.5'),
    ({'late_periods': {'probability': 1.5}}, 'late_periods.probability 1.5 is outside [0, 1]'),
    ({'late_periods': {'probability': 0.1, 'jitter': 1}}, "unknown key 'jitter'"),
    ({'observation_noise': {'joint_torque': 0.1}}, "unknown key 'joint_torque'"),
    ({'observation_noise': {'joint_position': -0.1}}, 'must be >= 0, got -0.1'),
    ({'dynamics': {'mass': [1.3, 0.7]}}, 'dynamics.mass range [1.3, 0.7] is inverted'),
    ({'pushes': {'velocity': 0.5, 'interval': [0, 1]}}, 'pushes.interval [0.0, 1.0] must be > 0'),
    ({'command_latency': {'values': [0.1], 'weights': [0]}}, 'weights sum to 0'),
    (['hard'], 'must be a mapping'),
])
def test_bad_profiles_are_refused_with_one_line_naming_the_value(values, named, tmp_path):
    path = tmp_path / 'profile.yaml'
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(ProfileError) as raised:
        load_profile(str(path))
    message = str(raised.value)
    assert named in message and '\n' not in message
    assert str(path) in message


def test_an_unknown_profile_name_is_refused_naming_the_choices():
    with pytest.raises(ProfileError, match=r"unknown randomization profile 'hardest'.*none, "
                                           r'easy, medium, hard'):
        load_profile('hardest')
    with pytest.raises(ProfileError, match='No such file'):
        load_profile('/nonexistent/profile.yaml')


def test_profiles_are_read_and_checked_without_mujoco(tmp_path):
    # A robot's timing.yaml is checked where the robot is, which need not have a simulator.
    path = tmp_path / 'timing.yaml'
    path.write_text(yaml.safe_dump({'command_latency': {'values': [0.0, 0.5],
                                                        'weights': [3, 1]}}))
    script = textwrap.dedent(f'''
        import sys

        class BlockMujoco:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] == 'mujoco':
                    raise ImportError('MuJoCo is blocked in this test')
                return None

        sys.meta_path.insert(0, BlockMujoco())
        from ddpg_ros.sim.randomization_profile import load_profile
        print(load_profile('hard').active, load_profile({str(path)!r}).command_latency.largest)
    ''')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', '0.5']


def test_observe_last_action_appends_the_clipped_action_and_names_it_in_the_spec():
    from ddpg_ros.sim.envs import spec_for_env

    env = make_env(PENDULUM, observe_last_action=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and obs[-1] == 0.0
    obs, *_ = env.step(np.array([7.0]))  # beyond the bound of 3
    assert obs[-1] == 3.0
    spec = spec_for_env(PENDULUM, env, observe_last_action=True)
    assert spec.obs_dim == 5
    assert spec.observation_names[-1] == 'last_command.' + spec.action_names[0]
    obs, _ = env.reset(seed=1)
    assert obs[-1] == 0.0
    check_env(env, skip_render_check=True)
    env.close()


def test_a_policy_that_observes_the_last_action_is_refused_by_a_robot_that_does_not():
    from ddpg_ros.core.checkpoint import CheckpointError
    from ddpg_ros.sim.envs import spec_for_task
    from ddpg_ros.tasks import make_task

    task = make_task('inverted_pendulum')
    trained = spec_for_task(task, observe_last_action=True)
    with pytest.raises(CheckpointError, match='set observe_last_action to true'):
        trained.check_matches(spec_for_task(task))
    with pytest.raises(CheckpointError, match='set observe_last_action to false'):
        spec_for_task(task).check_matches(trained)
    trained.check_matches(spec_for_task(task, observe_last_action=True))
