"""
ddpg_agent over real DDS with mujoco_sim: the agent's side of INTERFACE.md.

One test per promise (names and types, services, parameters, shut-down). Learning end to end
is in test_agent_learning.py.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import DescribeParameters
from rclpy.exceptions import ParameterException
from rclpy.qos import ReliabilityPolicy
from std_srvs.srv import Trigger

from ddpg_ros.core.checkpoint import load_checkpoint
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.sim.envs import spec_for_task
from ddpg_ros.core.presets import preset_for
from ddpg_ros.ros.ddpg_agent_node import AgentSettings
from ddpg_ros.ros.interfaces import ACK_TIMEOUT
from ddpg_ros.tasks import make_task

from agent_helpers import (REPLY_TIMEOUT, SMALL_LEARNER, START_TIMEOUT, AgentListener,
                           agent_command, joint_state, start_agent, stop_agent)
from conftest import ProcessGroup, RosTestNode, TestProcess, node_command

pytestmark = pytest.mark.ros

PARAMETER_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                   float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
                   tuple: ParameterType.PARAMETER_INTEGER_ARRAY,
                   list: ParameterType.PARAMETER_DOUBLE_ARRAY}


def start_sim(processes: ProcessGroup, *params: str) -> TestProcess:
    return processes.start(node_command('mujoco_sim_node', *params), name='mujoco_sim')


def start_agent_process(processes: ProcessGroup, tmp_path: Path, **params) -> TestProcess:
    params.setdefault('checkpoint_dir', str(tmp_path / 'checkpoints'))
    return processes.start(agent_command(**params), name='ddpg_agent')


def describe(ros: RosTestNode, node: str, names: list[str]) -> dict[str, int]:
    client = ros.node.create_client(DescribeParameters, f'{node}/describe_parameters')
    assert ros.spin_until(client.service_is_ready, START_TIMEOUT), f'{node} has no parameters'
    future = client.call_async(DescribeParameters.Request(names=names))
    assert ros.spin_until(future.done, REPLY_TIMEOUT)
    return {d.name: d.type for d in future.result().descriptors}


@pytest.mark.distro
def test_topics_services_and_parameters_of_the_interface(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path) -> None:
    start_sim(ros_processes)
    start_agent_process(ros_processes, tmp_path, **SMALL_LEARNER)
    node = ros_node.node
    topics = {
        '/joint_states': ['sensor_msgs/msg/JointState'],
        '/effort_controller/commands': ['std_msgs/msg/Float64MultiArray'],
        '/clock': ['rosgraph_msgs/msg/Clock'],
        '/diagnostics': ['diagnostic_msgs/msg/DiagnosticArray'],
        '/ddpg_agent/episode_return': ['std_msgs/msg/Float64'],
    }
    services = {
        '/mujoco_sim/reset': ['std_srvs/srv/Trigger'],
        '/ddpg_agent/save_checkpoint': ['std_srvs/srv/Trigger'],
        '/ddpg_agent/set_training': ['std_srvs/srv/SetBool'],
        '/ddpg_agent/set_exploration': ['std_srvs/srv/SetBool'],
    }

    def graph_complete() -> bool:
        found_topics = dict(node.get_topic_names_and_types())
        found_services = dict(node.get_service_names_and_types())
        return (('ddpg_agent', '/') in node.get_node_names_and_namespaces()
                and all(found_topics.get(name) == types for name, types in topics.items())
                and all(found_services.get(name) == types for name, types in services.items()))

    assert ros_node.spin_until(graph_complete, START_TIMEOUT), (
        node.get_topic_names_and_types(), node.get_service_names_and_types())
    agent_pubs: dict[str, list[str]] = {}
    agent_subs: dict[str, list[str]] = {}

    def agent_endpoints() -> bool:
        agent_pubs.update(node.get_publisher_names_and_types_by_node('ddpg_agent', '/'))
        agent_subs.update(node.get_subscriber_names_and_types_by_node('ddpg_agent', '/'))
        return (set(agent_pubs) >= {'/effort_controller/commands', '/diagnostics',
                                    '/ddpg_agent/episode_return'}
                and '/joint_states' in agent_subs)

    assert ros_node.spin_until(agent_endpoints, START_TIMEOUT), (agent_pubs, agent_subs)
    assert agent_subs['/joint_states'] == ['sensor_msgs/msg/JointState']
    # Commands and states are reliable, as ros2_control's controllers subscribe.
    for info in (node.get_publishers_info_by_topic('/effort_controller/commands')
                 + node.get_subscriptions_info_by_topic('/joint_states')):
        if info.node_name == 'ddpg_agent':
            assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE

    expected = {
        'mode': ParameterType.PARAMETER_STRING, 'task': ParameterType.PARAMETER_STRING,
        'load_checkpoint': ParameterType.PARAMETER_STRING,
        'checkpoint_dir': ParameterType.PARAMETER_STRING,
        'seed': ParameterType.PARAMETER_INTEGER, 'device': ParameterType.PARAMETER_STRING,
        'reset_service': ParameterType.PARAMETER_STRING,
    }
    # One parameter per DDPG hyper-parameter and per agent setting, typed as its field.
    for cls in (DDPGConfig, AgentSettings):
        defaults = cls()
        for f in dataclasses.fields(cls):
            expected[f.name] = PARAMETER_TYPES[type(getattr(defaults, f.name))]
    assert {'gamma', 'tau', 'batch_size', 'buffer_size', 'actor_lr', 'critic_lr',
            'noise_sigma'} <= set(expected)
    assert describe(ros_node, '/ddpg_agent', list(expected)) == expected
    assert describe(ros_node, '/mujoco_sim',
                    ['model', 'mode', 'seed', 'command_timeout', 'publish_clock']) == {
        'model': ParameterType.PARAMETER_STRING, 'mode': ParameterType.PARAMETER_STRING,
        'seed': ParameterType.PARAMETER_INTEGER,
        'command_timeout': ParameterType.PARAMETER_DOUBLE,
        'publish_clock': ParameterType.PARAMETER_BOOL}


def test_services_save_pause_and_explore(ros_processes: ProcessGroup, ros_node: RosTestNode,
                                         tmp_path) -> None:
    start_sim(ros_processes, '-p', 'seed:=4')
    start_agent_process(ros_processes, tmp_path, seed=4, **SMALL_LEARNER)
    listener = AgentListener(ros_node)
    status = listener.wait_for_status(lambda s: int(s.get('updates') or 0) >= 50,
                                      timeout=START_TIMEOUT + 30.0)
    assert status is not None, listener.agent_status()
    assert status['level'] == 0 and status['training'] == 'True'
    for key in ('mode', 'env_steps', 'updates', 'updates_per_s', 'buffer_size', 'critic_loss',
                'actor_loss', 'action_latency_p50_ms', 'action_latency_p99_ms',
                'learner_fault', 'warnings'):
        assert key in status, key

    response = listener.call(listener.save_checkpoint, Trigger.Request())
    assert response.success, response.message
    path = Path(response.message)
    assert path.parent == tmp_path / 'checkpoints' and path.is_file()
    checkpoint = load_checkpoint(path)
    checkpoint.spec.check_matches(spec_for_task(make_task('inverted_pendulum')))
    assert checkpoint.counters['env_steps'] > 50 and checkpoint.counters['updates'] > 0
    assert checkpoint.config.hidden_sizes == (32, 32)
    assert (tmp_path / 'checkpoints' / 'best.pt').is_file()

    # Paused: gradient updates stop, acting (env steps) goes on.
    response = listener.switch(listener.set_training, False)
    assert response.success and response.message == 'gradient updates paused'
    paused = listener.wait_for_status(lambda s: s['training'] == 'False')
    assert paused is not None
    # From the next report on (an update in flight at the pause may still land in this one).
    first = listener.wait_for_status(lambda s: int(s['env_steps']) > int(paused['env_steps']))
    second = listener.wait_for_status(lambda s: int(s['env_steps']) > int(first['env_steps'])
                                      + 20)
    assert first is not None and second is not None
    assert second['updates'] == first['updates']
    response = listener.switch(listener.set_training, True)
    assert response.success and response.message == 'gradient updates resumed'
    updates = int(second['updates'])
    assert listener.wait_for_status(lambda s: int(s['updates']) > updates + 20) is not None

    response = listener.switch(listener.set_exploration, False)
    assert response.success and response.message == 'exploration off'
    assert listener.wait_for_status(lambda s: s['exploration'] == 'False') is not None
    assert listener.switch(listener.set_exploration, True).success


@pytest.mark.distro
def test_deploy_mode_services_refuse_learning(ros_node: RosTestNode, tmp_path) -> None:
    trainer = start_agent(ros_node, tmp_path, reset_service='', **SMALL_LEARNER)
    path = trainer.save_checkpoint()
    stop_agent(ros_node, trainer)
    agent = start_agent(ros_node, tmp_path, mode='deploy', load_checkpoint=str(path),
                        reset_service='')
    listener = AgentListener(ros_node)
    try:
        assert agent.learner is None and agent.buffer is None
        response = listener.switch(listener.set_training, True)
        assert not response.success and 'deploy mode' in response.message
        response = listener.switch(listener.set_exploration, True)
        assert not response.success and 'never explores' in response.message
        response = listener.call(listener.save_checkpoint, Trigger.Request())
        assert not response.success and 'deploy mode' in response.message
    finally:
        stop_agent(ros_node, agent)


@pytest.mark.distro
@pytest.mark.parametrize('param, message', [
    ('task:=no_such_task', "unknown task 'no_such_task'"),
    ('gamma:=1', "Trying to set parameter 'gamma' to '1' of type 'INTEGER', expecting type "
                 "'DOUBLE'"),
])
def test_startup_errors_exit_nonzero(ros_processes: ProcessGroup, param: str,
                                     message: str) -> None:
    agent = ros_processes.start(node_command('ddpg_agent_node', '-p', param),
                                name='ddpg_agent')
    assert agent.wait(START_TIMEOUT) == 1, agent.output()
    assert message in agent.output()
    assert 'Traceback' not in agent.output()


@pytest.mark.distro
@pytest.mark.parametrize('params, error, message', [
    ({'tau': 2.0}, ValueError, 'tau=2.0 must be in (0, 1]'),
    ({'batch_size': 64, 'buffer_size': 32}, ValueError, 'must not exceed buffer_size (32)'),
    ({'noise_type': 'pink'}, ValueError, "noise_type='pink' must be one of gaussian"),
    ({'device': 'tpu'}, ValueError, "device='tpu' must be one of auto, cpu, cuda"),
    ({'mode': 'fly'}, ValueError, "mode='fly' must be one of train, deploy"),
    ({'mode': 'deploy'}, ValueError, "load_checkpoint='' must name a checkpoint in deploy mode"),
    ({'state_timeout': -1.0}, ValueError, 'state_timeout=-1.0 must be >= 0'),
    ({'safe_command': [0.0, 0.0]}, ValueError, "safe_command has 2 values, expected one per "
                                               "actuator ['slide']"),
    ({'safe_command': [9.0]}, ValueError, 'safe_command [9.0] is outside the action bounds'),
    ({'task': 'os.path:join'}, ValueError, "'join' is not a subclass of ddpg_ros.tasks.Task"),
    ({'load_checkpoint': '/no/such.pt'}, ValueError, 'checkpoint /no/such.pt does not exist'),
    ({'hidden_sizes': [1.5]}, ParameterException, "expecting type 'INTEGER_ARRAY'"),
    ({'save_buffer': 'yes'}, ParameterException, "expecting type 'BOOL'"),
    ({'preset': 'Pendulum-v9'}, ValueError, "preset='Pendulum-v9': unknown preset "
                                            "'Pendulum-v9' (known: InvertedPendulum-v5/ddpg, "),
])
def test_bad_parameters_raise_clear_errors(ros_node: RosTestNode, tmp_path, params: dict,
                                           error: type, message: str) -> None:
    with pytest.raises(error) as info:
        start_agent(ros_node, tmp_path, **params)
    assert message in str(info.value)


@pytest.mark.parametrize('params, preset, overrides', [
    ({'task': 'inverted_pendulum'}, 'InvertedPendulum-v5', {}),
    ({'task': 'hopper', 'batch_size': 64}, 'Hopper-v5', {'batch_size': 64}),
    ({'task': 'inverted_pendulum', 'critic_hidden_sizes': [32, 32]}, 'InvertedPendulum-v5',
     {'critic_hidden_sizes': (32, 32)}),
    ({'task': 'inverted_pendulum', 'preset': 'HalfCheetah-v5', 'actor_lr': 0.002},
     'HalfCheetah-v5', {'actor_lr': 0.002}),
    ({'task': 'inverted_pendulum', 'preset': 'none'}, None, {}),
])
def test_hyper_parameters_come_from_the_preset_and_parameters_override_them(
        ros_node: RosTestNode, tmp_path, params: dict, preset: str | None,
        overrides: dict) -> None:
    agent = start_agent(ros_node, tmp_path, device='cpu', buffer_size=1000, **params)
    try:
        expected = dataclasses.replace(
            DDPGConfig(**(preset_for(preset) if preset else {})), device='cpu',
            buffer_size=1000, **overrides)
        assert agent.config == expected
    finally:
        stop_agent(ros_node, agent)


# On Kilted, SIGTERM here and SIGINT through the launcher (test_launcher.py): each signal once.
@pytest.mark.parametrize('sig', [signal.SIGINT, pytest.param(signal.SIGTERM,
                                                             marks=pytest.mark.distro)])
def test_signal_checkpoints_sends_the_safe_command_and_exits_0(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path, sig: int) -> None:
    start_sim(ros_processes)
    agent = start_agent_process(ros_processes, tmp_path, safe_command='[0.25]',
                                **SMALL_LEARNER)
    listener = AgentListener(ros_node)
    assert ros_node.spin_until(lambda: len(listener.commands) > 100, START_TIMEOUT + 30.0), \
        agent.output()
    agent.send_signal(sig)
    assert agent.wait(30.0) == 0, agent.output()
    # Acknowledged before the agent exited: it is in this node's reader, spun or not yet.
    assert ros_node.spin_until(lambda: listener.commands[-1][0] == 0.25, REPLY_TIMEOUT)
    checkpoints = sorted((tmp_path / 'checkpoints').glob('checkpoint_*.pt'))
    assert checkpoints, agent.output()
    # Not every command closes a transition (episode ends), but most do.
    assert load_checkpoint(checkpoints[-1]).counters['env_steps'] >= 50
    output = agent.output()
    assert 'Traceback' not in output and 'never retrieved' not in output
    assert 'safe command [0.25] sent; exiting' in output
    assert 'not acknowledged' not in output


@pytest.mark.distro
def test_the_safe_command_on_exit_waits_a_bounded_time_for_every_acknowledgement(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path) -> None:
    # A subscriber that cannot acknowledge (its process stopped) holds the agent's exit for
    # the bound and is reported; the subscribers that can, have the command.
    sim = start_sim(ros_processes)
    agent = start_agent_process(ros_processes, tmp_path, safe_command='[0.25]',
                                **SMALL_LEARNER)
    listener = AgentListener(ros_node)
    assert ros_node.spin_until(lambda: len(listener.commands) > 10, START_TIMEOUT + 30.0), \
        agent.output()
    sim.send_signal(signal.SIGSTOP)
    try:
        agent.send_signal(signal.SIGINT)
        assert agent.wait(30.0) == 0, agent.output()
    finally:
        sim.send_signal(signal.SIGCONT)
    output = agent.output()
    assert ('safe command sent but not acknowledged by every subscriber within '
            f'{ACK_TIMEOUT:g} s') in output
    assert 'safe command [0.25] sent; exiting' in output
    assert ros_node.spin_until(lambda: listener.commands[-1][0] == 0.25, REPLY_TIMEOUT)


def drive(ros: RosTestNode, listener: AgentListener, steps: int, stamp: list[int]) -> None:
    """Lockstep by hand: a new valid pendulum state after every command."""
    rng = np.random.default_rng(stamp[0])
    for _ in range(steps):
        stamp[0] += 40_000_000
        count = len(listener.commands)
        listener.states.publish(joint_state(['hinge', 'slider'], rng.uniform(-0.1, 0.1, 2),
                                            rng.normal(0, 0.1, 2), [0, 0], stamp[0]))
        assert ros.spin_until(lambda: len(listener.commands) > count, REPLY_TIMEOUT)


def test_resume_restores_networks_optimizers_counters_noise_and_buffer(
        ros_node: RosTestNode, tmp_path) -> None:
    params = dict(reset_service='', state_timeout=0.0, noise_type='ornstein_uhlenbeck',
                  save_buffer=True, keep_checkpoints=2, **SMALL_LEARNER)
    directory = tmp_path / 'checkpoints'
    directory.mkdir()
    # What a process killed mid-save leaves: a temporary file, and a buffer whose checkpoint
    # was never written. The first is swept at start, the second by pruning.
    finished = subprocess.Popen([sys.executable, '-c', 'pass'])
    finished.wait()
    (directory / f'.checkpoint_000000007.pt.tmp-{finished.pid}').write_bytes(b'half')
    (directory / 'checkpoint_000000007.npz').write_bytes(b'orphan')
    first = start_agent(ros_node, tmp_path, **params)
    listener = AgentListener(ros_node)
    stamp = [0]
    assert ros_node.spin_until(lambda: listener.states.get_subscription_count() > 0,
                               START_TIMEOUT)
    saved = []
    for steps in (80, 30, 30):
        drive(ros_node, listener, steps, stamp)
        saved.append(first.save_checkpoint())
    stop_agent(ros_node, first)
    # The last two checkpoints with their buffers remain; no episode ended, so no best.pt.
    run_log = ('progress.csv', 'episodes.csv', 'learning_curve.png', 'events.out.tfevents.')
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(run_log)) == sorted(
        [saved[1].name, saved[2].name, saved[1].with_suffix('.npz').name,
         saved[2].with_suffix('.npz').name])
    checkpoint = load_checkpoint(saved[2])
    assert checkpoint.counters['env_steps'] == 139 and checkpoint.counters['updates'] > 50

    second = start_agent(ros_node, tmp_path, load_checkpoint=str(saved[2]), **params)
    try:
        assert second.env_steps == 139
        assert second.agent.updates == checkpoint.counters['updates']
        state = second.agent.state_dict()
        targets = ('actor_target', 'critic_target') if checkpoint.config.target_networks else ()
        assert set(state) >= {'actor', 'critic', *targets}
        for net in ('actor', 'critic', *targets):
            for key, tensor in checkpoint.agent_state[net].items():
                assert torch.equal(state[net][key], tensor), (net, key)
        for optimizer in ('actor_optimizer', 'critic_optimizer'):
            resumed = state[optimizer]['state']
            for index, saved_state in checkpoint.agent_state[optimizer]['state'].items():
                assert torch.equal(resumed[index]['step'], saved_state['step'])
                assert torch.equal(resumed[index]['exp_avg'], saved_state['exp_avg'])
        assert second.policy.noise.x.tolist() == checkpoint.extra['noise']['x']
        # Exploration and replay sampling go on with the streams' next draws, not their first.
        rng_state = checkpoint.extra['rng_state']
        assert second.policy.rng.bit_generator.state == rng_state['exploration']
        assert second.buffer.rng.bit_generator.state == rng_state['replay']
        fresh = np.random.default_rng(0).bit_generator.state  # seed 0, the default
        assert rng_state['exploration'] != fresh and rng_state['replay'] != fresh
        assert len(second.buffer) == 139
        with np.load(saved[2].with_suffix('.npz')) as data:
            np.testing.assert_array_equal(second.buffer.obs[:139], data['obs'])
            np.testing.assert_array_equal(second.buffer.actions[:139], data['actions'])
    finally:
        stop_agent(ros_node, second)


@pytest.mark.distro
def test_total_steps_ends_the_run_with_a_checkpoint_and_exit_0(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path) -> None:
    listener = AgentListener(ros_node)
    agent = start_agent_process(ros_processes, tmp_path, total_steps=150,
                                safe_command='[-0.5]', **SMALL_LEARNER)
    # The run takes well under a second once the sim is there: the robot comes only after
    # the agent's command publisher has matched this listener, or the listener could miss
    # every command of the run.
    assert listener.wait_for_status(lambda s: int(s['command_subscribers']) >= 1,
                                    START_TIMEOUT), agent.output()
    start_sim(ros_processes)
    assert agent.wait(START_TIMEOUT + 60.0) == 0, agent.output()
    assert 'reached total_steps=150' in agent.output()
    assert (tmp_path / 'checkpoints' / 'checkpoint_000000150.pt').is_file()
    assert 'not acknowledged' not in agent.output()
    assert ros_node.spin_until(
        lambda: listener.commands and listener.commands[-1][0] == -0.5, REPLY_TIMEOUT), \
        (listener.commands[-3:], agent.output()[-2000:])
