"""
The ``train_fleet`` launch profile, and a fleet learning the pendulum through ``ddpg-launch``.

Budget of the learning test (CPU, 2 shared cores, five processes): one ``ddpg_learner`` and
two lockstep pendulums, started by ``ddpg-launch``, take a checkpoint of the learner from an
untrained policy's noise-free return (5-8 over 5 episodes, ``ddpg-eval``'s seed 0) to
:data:`LEARNED`, within 40,000 transitions and 360 s. The learner holds one update per
transition (lockstep actors wait for it). That the fleet's learner goes on to solve the
pendulum (1000) is ``test_fleet_hosts.py``'s claim, across three hosts: the same learner,
actors and messages, which took 4,000 to 32,000 transitions (54 to 345 s) in five runs on a
2-core AMD EPYC; every one of them was past 100 by 3,100. Here the launch profile is under
test.
"""

from __future__ import annotations

import os
import re
import runpy
import signal
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ddpg_ros.control.settings import AgentSettings
from ddpg_ros.core.checkpoint import CheckpointError, load_checkpoint
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.presets import preset_for
from ddpg_ros.fleet.settings import LearnerSettings
from ddpg_ros.sim.envs import make_env
from ddpg_ros.cli.evaluation import evaluate
from ddpg_ros.ros.profiles import LEARNER_RESPAWN_DELAY, LEARNER_RESPAWN_MAX_RETRIES, \
    PROFILES, ProfileError, config_directory

from agent_helpers import ddpg_cli, eval_mean_return
from conftest import ProcessGroup, RosTestNode, pid_alive
from test_launcher import launcher_command, started_pids

ROOT = Path(__file__).resolve().parents[1]
PENDULUM_LEARNER = {'buffer_size': '100000', 'updates_per_step': '1.0', 'device': 'cpu'}
"""The pendulum preset (CrossQ's critics on 64-64 networks, one update per transition), its
ratio named because the test checks that the learner holds it."""
TRANSITION_BUDGET = 40_000
TIME_BUDGET = 360.0
SOLVED = 1000.0
"""A solved pendulum: every one of the 5 noise-free episodes balances for 1000 steps."""
LEARNED = 100.0
"""Learning through the launch profile: 100 steps balanced on average, 12 times what the
untrained actor holds."""
EVAL_EPISODES = 5
EVAL_SEED = 0


def fleet_nodes(**arguments: str) -> list[Any]:
    return PROFILES['train_fleet'].nodes(arguments)


# The profile


def test_train_fleet_runs_one_learner_and_a_sim_and_actor_per_robot() -> None:
    nodes = fleet_nodes(robots='3')
    assert [(n.name, n.namespace) for n in nodes] == [
        ('ddpg_learner', ''), ('mujoco_sim', '/robot_0'), ('ddpg_agent', '/robot_0'),
        ('mujoco_sim', '/robot_1'), ('ddpg_agent', '/robot_1'), ('mujoco_sim', '/robot_2'),
        ('ddpg_agent', '/robot_2')]
    learner, sim, actor = nodes[:3]
    assert (learner.executable, learner.module) == ('ddpg_learner',
                                                    'ddpg_ros.ros.ddpg_learner_node')
    # The task file's values reach nodes in namespaces as parameters, not as a file keyed
    # by a node name that a namespaced node would not match.
    assert all(not n.parameter_files for n in nodes)
    assert sim.parameters['model'] == "'InvertedPendulum-v5'"
    assert sim.parameters['mode'] == "'lockstep'"
    assert actor.parameters['reset_service'] == "'mujoco_sim/reset'"
    assert (actor.parameters['learner'], actor.parameters['mode']) == ('remote', 'train')
    assert 'checkpoint_dir' not in actor.parameters, 'a remote actor writes no checkpoints'
    assert learner.parameters['checkpoint_dir'] == "'runs/inverted_pendulum'"
    assert learner.parameters['task'] == "'inverted_pendulum'"
    # Each robot keeps its own clock; the actor follows it.
    for node in nodes[1:]:
        assert node.remappings == (('/clock', 'clock'),)
    assert actor.parameters['use_sim_time'] == 'true'


def test_train_fleet_gives_each_robot_its_own_seed() -> None:
    nodes = fleet_nodes(robots='2', seed='7')
    assert [n.parameters['seed'] for n in nodes] == ['7', '7', '7', '8', '8']
    assert [n.parameters['seed'] for n in fleet_nodes()] == ['0', '0', '0', '1', '1']


def test_train_fleet_routes_overrides_to_the_nodes_that_take_them() -> None:
    learner, sim, actor, *_ = fleet_nodes(
        batch_size='64', checkpoint_dir='/runs/f', load_checkpoint='latest', policy_every='5',
        learner_timeout='2.0', command_timeout='1.0', noise_sigma='0.2',
        **{'ddpg_learner.max_backlog': '50', 'mujoco_sim.mode': 'realtime',
           'ddpg_agent.on_learner_lost': 'safe'})
    assert {k: learner.parameters[k] for k in ('batch_size', 'checkpoint_dir',
                                               'load_checkpoint', 'policy_every',
                                               'max_backlog', 'noise_sigma')} == {
        'batch_size': '64', 'checkpoint_dir': '/runs/f', 'load_checkpoint': 'latest',
        'policy_every': '5', 'max_backlog': '50', 'noise_sigma': '0.2'}
    assert 'learner_timeout' not in learner.parameters
    assert (sim.parameters['command_timeout'], sim.parameters['mode']) == ('1.0', 'realtime')
    assert {k: actor.parameters[k] for k in ('batch_size', 'learner_timeout', 'noise_sigma',
                                             'on_learner_lost')} == {
        'batch_size': '64', 'learner_timeout': '2.0', 'noise_sigma': '0.2',
        'on_learner_lost': 'safe'}
    assert not {'load_checkpoint', 'policy_every', 'checkpoint_dir'} & set(actor.parameters)


def test_train_fleet_takes_a_users_parameter_file_by_node_name(tmp_path: Path) -> None:
    params = tmp_path / 'fleet.yaml'
    params.write_text('ddpg_learner:\n  ros__parameters:\n    policy_every: 7\n'
                      'mujoco_sim:\n  ros__parameters:\n    frame_skip: 3\n'
                      'ddpg_agent:\n  ros__parameters:\n    transition_batch: 25\n'
                      '    run_id: exp-1\n')
    learner, sim, actor = fleet_nodes(params_file=str(params), robots='1')
    assert learner.parameters['policy_every'] == '7' and sim.parameters['frame_skip'] == '3'
    assert actor.parameters['transition_batch'] == '25'
    assert learner.parameters['run_id'] == actor.parameters['run_id'] == "'exp-1'"


def test_a_fleet_learner_starts_again_on_its_own_run_and_robots_are_optional() -> None:
    learner, *robots = fleet_nodes(robots='2')
    assert (learner.respawn, learner.required) == (True, False)
    assert (learner.respawn_delay, learner.respawn_max_retries) == (
        LEARNER_RESPAWN_DELAY, LEARNER_RESPAWN_MAX_RETRIES)
    assert not any(n.respawn or n.required for n in robots)
    # A run of its own, so that only a start after a crash finds checkpoints to resume.
    assert learner.parameters['load_checkpoint'] == 'latest'
    run_id = learner.parameters['run_id']
    assert re.fullmatch(r"'inverted_pendulum-\d{8}T\d{6}Z'", run_id), run_id
    assert [n.parameters['run_id'] for n in robots if n.name == 'ddpg_agent'] == [run_id] * 2


def test_a_fleet_learner_keeps_the_users_run_and_checkpoint(tmp_path: Path) -> None:
    learner, _, actor = fleet_nodes(robots='1', run_id='exp-2')
    assert (learner.parameters['run_id'], actor.parameters['run_id']) == ('exp-2', 'exp-2')
    assert learner.parameters['load_checkpoint'] == 'latest'
    checkpoint = str(tmp_path / 'c.pt')
    for chosen in (checkpoint, 'latest'):
        learner, _, actor = fleet_nodes(robots='1', load_checkpoint=chosen)
        assert learner.parameters['load_checkpoint'] == chosen
        assert 'run_id' not in learner.parameters and 'run_id' not in actor.parameters


@pytest.mark.parametrize('arguments, text', [
    ({'robots': '0'}, 'robots:=0 must be an integer in 1..100'),
    ({'robots': 'two'}, 'robots:=two must be an integer'),
    ({'mode': 'realtime'}, 'mujoco_sim.mode'),
    ({'task': 'walker'}, 'no config/walker.yaml'),
    ({'seed': 'x'}, 'seed:=x must be an integer'),
])
def test_train_fleet_refuses_bad_arguments(arguments: dict[str, str], text: str) -> None:
    with pytest.raises(ProfileError, match=text):
        fleet_nodes(**arguments)


class _Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


def test_the_launch_file_builds_the_profiles_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    modules = {'launch': ('LaunchContext', 'LaunchDescription'),
               'launch.actions': ('DeclareLaunchArgument', 'OpaqueFunction', 'Shutdown'),
               'launch.substitutions': ('TextSubstitution',), 'launch_ros': (),
               'launch_ros.actions': ('Node',)}
    for name, classes in modules.items():
        module = types.ModuleType(name)
        for class_name in classes:
            setattr(module, class_name, type(class_name, (_Recorded,), {}))
        monkeypatch.setitem(sys.modules, name, module)
    launch_file = runpy.run_path(str(ROOT / 'launch' / 'train_fleet.launch.py'))
    entities = launch_file['generate_launch_description']().args[0]
    declared = {e.args[0]: e.kwargs['default_value'] for e in entities
                if type(e).__name__ == 'DeclareLaunchArgument'}
    assert declared == {a.name: a.default for a in PROFILES['train_fleet'].arguments}
    [opaque] = [e for e in entities if type(e).__name__ == 'OpaqueFunction']
    nodes = opaque.kwargs['function'](types.SimpleNamespace(
        launch_configurations={**declared, 'robots': '2', 'seed': '4', 'run_id': 'r'}))
    specs = fleet_nodes(robots='2', seed='4', run_id='r')
    assert [(n.kwargs['executable'], n.kwargs['namespace'], n.kwargs['remappings'])
            for n in nodes] == [(s.executable, s.namespace, list(s.remappings)) for s in specs]
    assert [{k: v.kwargs['text'] for k, v in n.kwargs['parameters'][-1].items()}
            for n in nodes] == [dict(s.parameters) for s in specs]
    # Only Ctrl-C stops a fleet: the learner respawns, no node's end shuts the launch down.
    assert [(n.kwargs['respawn'], n.kwargs['respawn_delay'], n.kwargs['respawn_max_retries'])
            for n in nodes] == [(True, LEARNER_RESPAWN_DELAY, LEARNER_RESPAWN_MAX_RETRIES)] + [
                (False, 0.0, -1)] * 4
    assert not any('on_exit' in n.kwargs for n in nodes)


def test_the_task_configs_need_no_fleet_section() -> None:
    # train_fleet reads the same config/<task>.yaml as train_sim.
    for task in ('inverted_pendulum', 'half_cheetah', 'hopper', 'walker2d'):
        assert (config_directory() / f'{task}.yaml').is_file()
        assert len(fleet_nodes(task=task, robots='1')) == 3


# Learning from two robots, through ddpg-launch


class CheckpointScores:
    """Noise-free mean returns of the learner's checkpoints as they appear."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.returns: dict[int, float] = {}
        self._env = make_env('InvertedPendulum-v5')

    def poll(self) -> None:
        for path in sorted(self.directory.glob('checkpoint_*.pt')):
            steps = int(path.stem.split('_')[1])
            if steps in self.returns:
                continue
            try:
                policy = load_checkpoint(path).build_agent(device='cpu', optimizers=False)
            except CheckpointError:
                continue  # written atomically, but possibly pruned meanwhile
            self.returns[steps] = float(np.mean(evaluate(policy.act, self._env, EVAL_EPISODES,
                                                         seed=EVAL_SEED)))

    def best(self) -> tuple[int, float] | None:
        return max(self.returns.items(), key=lambda item: item[1], default=None)

    def close(self) -> None:
        self._env.close()


@pytest.mark.learning
def test_two_robots_teach_one_learner_the_pendulum_through_ddpg_launch(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path: Path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    from ddpg_ros.ros.qos import DIAGNOSTICS_QOS

    torch.set_num_threads(1)  # this process evaluates; leave the cores to the nodes
    directory = tmp_path / 'fleet'
    statuses: dict[str, dict[str, str]] = {}

    def on_diagnostics(array: DiagnosticArray) -> None:
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            # Both actors are 'ddpg_agent: agent'; their actor ids tell them apart.
            name = status.name
            if name == 'ddpg_agent: agent':
                name = f'agent {values.get("actor_id")}'
            statuses[name] = values

    ros_node.node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics,
                                      DIAGNOSTICS_QOS)
    arguments = {'task': 'inverted_pendulum', 'robots': '2', 'seed': '0',
                 'checkpoint_dir': str(directory), 'checkpoint_every': '1000',
                 'keep_checkpoints': '0', **PENDULUM_LEARNER}
    started = time.monotonic()
    launcher = ros_processes.start(
        [sys.executable, '-m', 'ddpg_ros.ros.launcher', 'train_fleet',
         *(f'{k}:={v}' for k, v in arguments.items())], name='ddpg-launch')
    scores = CheckpointScores(directory)
    seen_versions: dict[str, set[int]] = {'/robot_0/ddpg_agent': set(),
                                          '/robot_1/ddpg_agent': set()}
    rates: dict[str, float] = {}
    try:
        while time.monotonic() - started < TIME_BUDGET:
            ros_node.spin_for(1.0)
            for actor_id in seen_versions:
                status = statuses.get(f'ddpg_learner: actor {actor_id}')
                if status:
                    seen_versions[actor_id].add(int(status['policy_version']))
                    rates[actor_id] = max(rates.get(actor_id, 0.0),
                                          float(status['transitions_per_s']))
            scores.poll()
            best = scores.best()
            # Learned, and each robot seen acting with three of the learner's policies: the
            # diagnostics are samples (1 Hz), so a fast run waits for the third, not a window.
            if best and best[1] >= LEARNED and all(len(v) >= 3 for v in seen_versions.values()) \
                    or launcher.popen.poll() is not None:
                break
            learner = statuses.get('ddpg_learner: learner', {})
            if int(learner.get('transitions', 0)) > TRANSITION_BUDGET:
                break
        elapsed = time.monotonic() - started
    finally:
        scores.close()
    learner = statuses.get('ddpg_learner: learner', {})
    print(f'noise-free returns by transitions: {dict(sorted(scores.returns.items()))}; '
          f'{elapsed:.0f} s; learner: {learner}; actor rates (max): {rates}')
    best = scores.best()
    assert best is not None and best[1] >= LEARNED, (scores.returns, launcher.output()[-4000:])
    assert scores.returns[min(scores.returns)] < LEARNED / 2, 'the first policy already balanced'
    steps, score = best
    assert steps <= TRANSITION_BUDGET + 1000

    # Both robots fed the learner, acting with policies it published as it learned.
    assert learner['actors'] == '2' and learner['run_id'].startswith('inverted_pendulum-')
    for actor_id, versions in seen_versions.items():
        assert rates.get(actor_id, 0.0) > 0.0, actor_id
        assert len(versions) >= 3 and max(versions) > 10, (actor_id, versions)
    # The update-to-data ratio across both robots' transitions: never above it, and short of
    # it by no more than the backlog at which the learner holds lockstep robots (max_backlog)
    # plus, from each robot, a batch being filled and one on its way (transition_batch).
    ratio = float(PENDULUM_LEARNER['updates_per_step'])
    learned = int(learner['transitions']) - DDPGConfig(**preset_for(
        'InvertedPendulum-v5')).learning_starts
    lag = LearnerSettings().max_backlog + 2 * 2 * AgentSettings().transition_batch
    assert float(learner['update_to_data']) <= ratio, learner
    assert int(learner['updates']) >= ratio * learned - lag, learner
    # Held lockstep actors are released by the learner's next policy, not by timing out
    # (max_update_wait, 1 s): a policy that could not arrive while the step waited made every
    # hold a timeout, dozens in a run; a few come from a learner starved of CPU here.
    for actor_id in seen_versions:
        agent = statuses[f'agent {actor_id}']
        assert agent['learner'] == 'remote' and agent['learner_lost'] == 'False'
        assert int(agent['update_wait_timeouts']) <= 10, agent

    # The learner's checkpoint scores the same in ddpg-eval.
    path = directory / f'checkpoint_{steps:09d}.pt'
    assert eval_mean_return(ddpg_cli('ddpg-eval', '--checkpoint', str(path), '--episodes',
                                     str(EVAL_EPISODES), '--seed', str(EVAL_SEED))) == score

    # The launcher names each node it starts as it starts it: read them all once the run is over
    # (the first look, a second in, may come before the last robot's nodes are up).
    pids = dict(re.findall(r'started (\S+) \(pid (\d+)\)', launcher.output()))
    assert len(pids) == 5, pids
    assert launcher.stop() == 0, launcher.output()[-4000:]
    assert not any(pid_alive(int(pid)) for pid in pids.values())
    for name in ('progress.csv', 'learning_curve.png', 'best.pt'):
        assert (directory / name).is_file(), name
    assert list(directory.glob('events.out.tfevents.*')), 'no TensorBoard scalars'


# A part that fails, through ddpg-launch

def test_a_killed_learner_starts_again_and_the_robots_go_on_through_ddpg_launch(
        ros_processes: ProcessGroup, tmp_path: Path) -> None:
    directory = tmp_path / 'fleet'
    arguments = {'task': 'inverted_pendulum', 'robots': '2', 'seed': '0',
                 'checkpoint_dir': str(directory), 'checkpoint_every': '300',
                 'keep_checkpoints': '2', 'tensorboard': 'false', 'learning_starts': '200',
                 'hidden_sizes': '[64, 64]', 'batch_size': '32', 'buffer_size': '10000',
                 'updates_per_step': '1.0', 'device': 'cpu', 'policy_every': '10',
                 'policy_period': '0.25', 'learner_timeout': '1.0'}
    launcher = ros_processes.start(launcher_command(
        'train_fleet', *(f'{k}:={v}' for k, v in arguments.items())), name='ddpg-launch')
    pids = started_pids(launcher, 5)
    robots = ('robot_0', 'robot_1')
    for robot in robots:
        launcher.wait_for_line(rf'^\[{robot}/ddpg_agent\] .*policy version \d+ of run '
                               r'inverted_pendulum-\S+ received from the learner')
    launcher.wait_for_line(r'^\[ddpg_learner\] .*checkpoint written: ')

    # SIGKILL: no exit checkpoint, the learner's state is its newest periodic one.
    mark = len(launcher.output())
    os.kill(pids['ddpg_learner'], signal.SIGKILL)
    launcher.wait_for_line(r'ddpg_learner ended \(status -9\): starting it again in '
                           f'{LEARNER_RESPAWN_DELAY:g} s', mark)
    lost = {}
    for robot in robots:
        lost[robot] = launcher.wait_for_line(
            rf'^\[{robot}/ddpg_agent\] .*no policy from the learner for 1 s: '
            r'acting with policy version (\d+) without noise; (\d+) transitions queued', mark)
    restarted = int(launcher.wait_for_line(r'started ddpg_learner \(pid (\d+)\)', mark)[1])
    assert restarted != pids['ddpg_learner']
    ready = launcher.wait_for_line(r'^\[ddpg_learner\] .*ready: .* policy version (\d+) .*'
                                   r'resumed at (\d+) transitions from (\S+)$', mark)
    resumed_at = int(ready[2])
    assert Path(ready[3]).parent == directory and resumed_at >= 300, ready[0]
    for robot in robots:
        back = launcher.wait_for_line(rf'^\[{robot}/ddpg_agent\] .*learner back: policy '
                                      r'version (\d+); sending (\d+) queued transitions', mark)
        # A higher version, taken up; and the robot acted (queued) while the learner was away.
        assert int(back[1]) > int(lost[robot][1]), (back[0], lost[robot][0])
        assert int(back[2]) > int(lost[robot][2]), (back[0], lost[robot][0])
    # The respawned learner stores the robots' transitions: a checkpoint past the resumed one.
    after = launcher.wait_for_line(r'^\[ddpg_learner\] .*checkpoint written: \S+'
                                   r'checkpoint_(\d+)\.pt', ready.end())
    assert int(after[1]) > resumed_at

    # A robot's node that ends is reported; the rest go on (robot_0 still feeds the learner).
    mark = len(launcher.output())
    os.kill(pids['robot_1/mujoco_sim'], signal.SIGKILL)
    launcher.wait_for_line(r'robot_1/mujoco_sim ended \(status -9\); the others go on', mark)
    # The first checkpoint after the kill may hold no more than the last: the robots' queued
    # transitions arrive at once, and lockstep robots wait while the learner's updates catch
    # up with them. Wait for one that holds more.
    checkpoint = r'^\[ddpg_learner\] .*checkpoint written: \S+checkpoint_(\d+)\.pt'
    written = launcher.wait_for_line(checkpoint, mark)
    while int(written[1]) <= int(after[1]):
        written = launcher.wait_for_line(checkpoint, written.end())
    assert 'stopping the rest' not in launcher.output()

    # Only a signal stops the fleet; the learner's SIGKILL makes the exit status 1.
    assert launcher.stop(signal.SIGINT, timeout=30.0) == 1, launcher.output()[-4000:]
    assert 'SIGINT: stopping every node' in launcher.output()
    assert not any(pid_alive(pid) for pid in [*pids.values(), restarted])
