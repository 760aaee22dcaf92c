"""
ddpg_agent under abuse: garbage joint states, stalled robots, wrong checkpoints, a failing learner.

The robot must only ever see finite, in-bounds commands, and the replay buffer only
transitions between consecutive valid states.
"""

from __future__ import annotations

import math
import signal
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState

from ddpg_ros.core.checkpoint import CheckpointError, PolicySpec, save_checkpoint
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.sim.envs import spec_for_task
from ddpg_ros.ros.qos import STATE_QOS
from ddpg_ros.tasks import make_task

from agent_helpers import (REPLY_TIMEOUT, SMALL_LEARNER, START_TIMEOUT, AgentListener,
                           agent_command, assert_tripped_on_time, joint_state, start_agent,
                           stop_agent)
from conftest import ProcessGroup, RosTestNode, node_command

pytestmark = pytest.mark.ros

PENDULUM = make_task('inverted_pendulum')
FUZZ_MESSAGES = 3000
BAD_VALUES = (math.nan, math.inf, -math.inf, 1e308, -1e308, 3e38, 1e7)
"""Non-finite, beyond float64-safe, beyond float32, and beyond value_limit (1e6)."""


def fuzz_message(rng: np.random.Generator, stamp_ns: int) -> tuple[JointState, bool]:
    """Return a random joint state and whether the agent must accept it."""
    kind = rng.choice(['valid', 'valid', 'valid', 'bad value', 'lengths', 'empty',
                       'duplicate', 'missing'])
    names = ['slider', 'hinge'] + (['wheel'] if rng.random() < 0.3 else [])
    names = [names[i] for i in rng.permutation(len(names))]
    n = len(names)
    position = rng.uniform(-0.3, 0.3, n)  # the pole falls past 0.2 rad now and then
    velocity = rng.normal(0.0, 1.0, n)
    effort = rng.normal(0.0, 1.0, n) if rng.random() < 0.7 else np.zeros(0)
    if rng.random() < 0.1 and len(effort):
        effort[rng.integers(n)] = 1e308  # a task that does not read effort must not care
    valid = kind == 'valid'
    if kind == 'bad value':
        joint = names.index(rng.choice(['slider', 'hinge']))
        target = position if rng.random() < 0.5 else velocity
        target[joint] = rng.choice(BAD_VALUES)
    elif kind == 'lengths':
        # One array of a length that matches no name list (an empty effort would be fine).
        sizes = [n, n, len(effort)]
        which = int(rng.integers(3))
        sizes[which] = int(rng.choice([size for size in range(7)
                                       if size != n and (which < 2 or size != 0)]))
        position, velocity, effort = (rng.normal(size=size) for size in sizes)
    elif kind == 'empty':
        names, position, velocity, effort = [], [], [], []
    elif kind == 'duplicate':
        names.append(names[rng.integers(n)])
        position, velocity = np.append(position, 0.0), np.append(velocity, 0.0)
        if len(effort):
            effort = np.append(effort, 0.0)
    elif kind == 'missing':
        names[names.index(rng.choice(['slider', 'hinge']))] = 'elbow'
    return joint_state(names, position, velocity, effort, stamp_ns), valid


def test_fuzzed_joint_states_never_reach_a_command_or_the_buffer(
        ros_node: RosTestNode, tmp_path) -> None:
    agent = start_agent(ros_node, tmp_path, reset_service='', state_timeout=0.0, seed=3,
                        **SMALL_LEARNER)
    listener = AgentListener(ros_node)
    try:
        assert ros_node.spin_until(
            lambda: (listener.states.get_subscription_count() > 0
                     and agent.commands.publisher.get_subscription_count() > 0),
            START_TIMEOUT)
        rng = np.random.default_rng(0)
        observations: list[np.ndarray | None] = []
        for i in range(FUZZ_MESSAGES):
            msg, valid = fuzz_message(rng, stamp_ns=(i + 1) * 40_000_000)
            received, commanded = agent.states_received, len(listener.commands)
            listener.states.publish(msg)
            assert ros_node.spin_until(lambda: agent.states_received > received,
                                       REPLY_TIMEOUT), f'message {i} never arrived'
            if valid:
                assert ros_node.spin_until(lambda: len(listener.commands) > commanded,
                                           REPLY_TIMEOUT), f'valid message {i} not acted on'
                order = [list(msg.name).index(j) for j in PENDULUM.joint_names]
                observations.append(np.concatenate([np.take(msg.position, order),
                                                    np.take(msg.velocity, order)]))
            else:
                observations.append(None)
        # The node is still up and acting.
        commanded = len(listener.commands)
        listener.states.publish(joint_state(['slider', 'hinge'], [0, 0], [0, 0], [0, 0],
                                            (FUZZ_MESSAGES + 1) * 40_000_000))
        assert ros_node.spin_until(lambda: len(listener.commands) > commanded, REPLY_TIMEOUT)
        ros_node.spin_for(0.2)
        commands = np.array(listener.commands)
    finally:
        stop_agent(ros_node, agent)

    valid_count = sum(obs is not None for obs in observations)
    assert 1000 < valid_count < FUZZ_MESSAGES - 1000
    # Exactly one command per valid state (+1 for the last probe), none for an invalid one,
    # and every one finite and within the bounds.
    assert len(commands) == valid_count + 1
    assert np.isfinite(commands).all()
    assert (np.abs(commands) <= 3.0).all()
    assert agent.stats['invalid_states'] == FUZZ_MESSAGES - valid_count
    assert agent.stats['non_finite_actions'] == 0

    # Transitions only between consecutive valid states, in order, with the action sent.
    pairs = [(i, observations[i], observations[i + 1]) for i in range(FUZZ_MESSAGES - 1)
             if observations[i] is not None and observations[i + 1] is not None]
    buffer = agent.buffer
    assert len(buffer) == len(pairs) + 1  # the probe closed one more transition
    for row, (_, obs, next_obs) in enumerate(pairs):
        np.testing.assert_array_equal(buffer.obs[row], obs.astype(np.float32))
        np.testing.assert_array_equal(buffer.next_obs[row], next_obs.astype(np.float32))
        assert buffer.terminated[row] == float(abs(next_obs[1]) > 0.2)
    n = len(buffer)
    for column in (buffer.obs, buffer.actions, buffer.rewards, buffer.next_obs):
        assert np.isfinite(column[:n]).all() and (np.abs(column[:n]) <= 1e6).all()
    # Learning on what got through stayed healthy.
    assert agent.learner.fault is None
    assert agent.learner.updates > 0


def write_checkpoint(path, spec: PolicySpec) -> None:
    agent = DDPG(spec.obs_dim, np.array(spec.action_low), np.array(spec.action_high),
                 DDPGConfig(hidden_sizes=(8,), batch_size=4, buffer_size=10, device='cpu'))
    save_checkpoint(path, agent, spec)


def test_deploy_refuses_another_robots_checkpoint_and_exits_nonzero(
        ros_processes: ProcessGroup, tmp_path) -> None:
    path = tmp_path / 'hopper.pt'
    write_checkpoint(path, spec_for_task(make_task('hopper')))
    agent = ros_processes.start(node_command(
        'ddpg_agent_node', '-p', 'mode:=deploy', '-p', 'task:=inverted_pendulum',
        '-p', f'load_checkpoint:={path}'), name='ddpg_agent')
    assert agent.wait(START_TIMEOUT) == 1, agent.output()
    output = agent.output()
    assert f'checkpoint {path} does not match this robot' in output
    assert "task: checkpoint 'hopper', robot 'inverted_pendulum'" in output
    assert "joint_names: checkpoint ['rootx'" in output
    assert 'Traceback' not in output


@pytest.mark.parametrize('field, value, message', [
    ('action_high', [2.0], 'action_high: checkpoint [2.0], robot [3.0]'),
    ('joint_names', ['slider', 'pole'], "joint_names: checkpoint ['slider', 'pole'], "
                                        "robot ['slider', 'hinge']"),
    ('observation_names', ['a', 'b', 'c', 'd'], "observation_names: checkpoint ['a', 'b'"),
])
def test_deploy_names_each_difference(ros_node: RosTestNode, tmp_path, field: str, value,
                                      message: str) -> None:
    spec = spec_for_task(PENDULUM)
    setattr(spec, field, value)
    path = tmp_path / 'other.pt'
    write_checkpoint(path, spec)
    with pytest.raises(CheckpointError) as info:
        start_agent(ros_node, tmp_path, mode='deploy', load_checkpoint=str(path))
    assert message in str(info.value)
    assert str(info.value).count(':') == 2, 'only the one difference is named'


@pytest.mark.distro
def test_watchdog_sends_the_safe_command_once_and_acting_resumes(
        ros_node: RosTestNode, tmp_path) -> None:
    timeout = 0.4
    agent = start_agent(ros_node, tmp_path, reset_service='', state_timeout=timeout,
                        safe_command=[0.5], learning_starts=1_000_000, seed=1,
                        hidden_sizes=[16, 16])
    listener = AgentListener(ros_node)
    rng = np.random.default_rng(1)
    stamp = [0]

    def send_state() -> int:
        stamp[0] += 40_000_000
        commanded = len(listener.commands)
        listener.states.publish(joint_state(['slider', 'hinge'], rng.uniform(-0.1, 0.1, 2),
                                            rng.normal(0, 0.1, 2), [0, 0], stamp[0]))
        assert ros_node.spin_until(lambda: len(listener.commands) > commanded,
                                   REPLY_TIMEOUT), 'no command for a valid state'
        return commanded

    try:
        assert ros_node.spin_until(
            lambda: (listener.states.get_subscription_count() > 0
                     and agent.commands.publisher.get_subscription_count() > 0),
            START_TIMEOUT)
        # Before the first command there is no acting to stop: the watchdog stays quiet.
        ros_node.spin_for(timeout + 0.3)
        assert listener.commands == []
        for _ in range(20):
            send_state()
        stored = len(agent.buffer)
        assert stored == 19
        last_command_at = listener.command_times[-1]
        count = len(listener.commands)
        # The state stream stops: one safe command after state_timeout, then silence.
        assert ros_node.spin_until(lambda: len(listener.commands) > count, timeout + 3.0)
        np.testing.assert_array_equal(listener.commands[count], [0.5])
        waited = listener.command_times[count] - last_command_at
        assert waited >= timeout - 0.05, waited
        assert_tripped_on_time(agent, timeout)
        status = listener.wait_for_status(lambda s: s['acting'] == 'False')
        assert status is not None and status['level'] == 1
        assert 'no valid joint state' in status['message']
        assert len(listener.commands) == count + 1, 'the safe command is sent once'
        # States return: acting resumes on a new chain, with no transition across the gap.
        send_state()
        assert len(listener.commands) == count + 2
        assert len(agent.buffer) == stored
        send_state()
        assert len(agent.buffer) == stored + 1
        assert agent.stats['watchdog_trips'] >= 1
    finally:
        stop_agent(ros_node, agent)
    assert np.isfinite(np.array(listener.commands)).all()


def test_watchdog_trips_while_a_reset_is_pending_and_nothing_kept_acts_later(
        ros_node: RosTestNode, tmp_path) -> None:
    """
    A robot that falls silent while its reset is pending (a sim dying in its reset).

    The safe command still comes after state_timeout, not after reset_timeout, and the state
    kept for the new episode is never acted on.
    """
    timeout = 0.4
    agent = start_agent(ros_node, tmp_path, reset_service='nobody/reset', reset_timeout=60.0,
                        state_timeout=timeout, safe_command=[0.5], learning_starts=1_000_000,
                        seed=3, hidden_sizes=[16, 16])
    listener = AgentListener(ros_node)
    stamp = [0]

    def publish(hinge: float) -> None:
        stamp[0] += 40_000_000
        listener.states.publish(joint_state(['slider', 'hinge'], [0.0, hinge], [0.0, 0.0],
                                            [0.0, 0.0], stamp[0]))

    try:
        assert ros_node.spin_until(lambda: listener.states.get_subscription_count() > 0,
                                   START_TIMEOUT)
        for _ in range(5):
            count = len(listener.commands)
            publish(0.0)
            assert ros_node.spin_until(lambda: len(listener.commands) > count, REPLY_TIMEOUT)
        publish(0.5)  # the pole is down: the episode ends and a reset is requested
        assert ros_node.spin_until(lambda: agent.reset.pending, REPLY_TIMEOUT)
        publish(0.01)  # a new episode's first state, kept until the reset is confirmed
        ros_node.spin_until(lambda: agent.samples.complete(), REPLY_TIMEOUT)
        count = len(listener.commands)
        assert ros_node.spin_until(lambda: len(listener.commands) > count, timeout + 3.0), \
            'no safe command while the reset was pending'
        np.testing.assert_array_equal(listener.commands[count], [0.5])
        assert_tripped_on_time(agent, timeout)  # after state_timeout, not reset_timeout
        ros_node.spin_for(1.0)
        assert len(listener.commands) == count + 1, 'a kept state was acted on after the trip'
        # Fresh state: acting resumes on a new chain, the abandoned reset forgotten.
        publish(0.0)
        assert ros_node.spin_until(lambda: len(listener.commands) > count + 1, REPLY_TIMEOUT)
        assert not agent.reset.pending
    finally:
        stop_agent(ros_node, agent)


def test_a_crashed_sim_gets_the_safe_command_and_acting_resumes_when_it_returns(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path) -> None:
    """
    The real pair in realtime mode; the sim is killed (SIGKILL, mid-episode) and restarted.

    The sim plays a robot driver that crashes and is started again.
    """
    timeout = 1.0
    safe = 0.25
    sim_command = node_command('mujoco_sim_node', '-p', 'mode:=realtime', '-p', 'seed:=4')
    sim = ros_processes.start(sim_command, name='mujoco_sim')
    agent = ros_processes.start(agent_command(
        state_timeout=timeout, safe_command=f'[{safe}]', learning_starts=1_000_000, seed=4,
        hidden_sizes='[16, 16]', checkpoint_dir=tmp_path / 'checkpoints',
        checkpoint_every=0), name='ddpg_agent')
    listener = AgentListener(ros_node)
    state_times: list[float] = []
    ros_node.node.create_subscription(JointState, 'joint_states',
                                      lambda _: state_times.append(time.monotonic()),
                                      STATE_QOS)

    def acting_steadily(start: int) -> bool:
        """Whether the commands from ``start`` on end in 30 that are not the safe one."""
        tail = [c[0] == safe for c in listener.commands[start:]][-30:]
        return len(tail) == 30 and not any(tail)

    # A stall of the loaded machine over state_timeout trips the watchdog, rightly, and acting
    # resumes with the next state; what counts is a steady run before the kill.
    assert ros_node.spin_until(lambda: acting_steadily(0), START_TIMEOUT), agent.output()

    sim.send_signal(signal.SIGKILL)
    assert sim.wait(REPLY_TIMEOUT) == -signal.SIGKILL
    count = len(listener.commands)
    # Commands that cross the sim's death answer states it sent before it; then the safe one.
    assert ros_node.spin_until(
        lambda: any(c[0] == safe for c in listener.commands[count:]), REPLY_TIMEOUT), \
        'no safe command after the sim died'
    safe_index = next(i for i in range(count, len(listener.commands))
                      if listener.commands[i][0] == safe)
    waited = listener.command_times[safe_index] - state_times[-1]
    assert waited >= timeout - 0.05, f'the safe command came {waited:.3f} s after the last state'
    # How late it came is timed on the agent's clock: on this one, DDS delivery and the
    # scheduling of three processes on a loaded machine add to it.
    status = listener.wait_for_status(lambda s: s['acting'] == 'False')
    assert status is not None, 'the agent does not report that it stopped acting'
    silence, gap = float(status['trip_silence_s']), float(status['trip_check_gap_s'])
    print(f'safe command {waited:.3f} s after the last state here; the agent tripped '
          f'{silence:.3f} s after its last activity, {gap:.3f} s after its previous check')
    assert status['stale_sources'] == 'joint_states'
    # It trips at the first check past the timeout: never before, and never a check later.
    assert timeout < silence <= timeout + gap + 1e-3, (silence, gap)
    ros_node.spin_for(1.5)
    assert len(listener.commands) == safe_index + 1, 'the safe command is sent once, then silence'

    ros_processes.start(sim_command, name='mujoco_sim')
    assert ros_node.spin_until(lambda: acting_steadily(safe_index + 1), START_TIMEOUT), \
        'acting did not resume with the new sim'
    assert listener.wait_for_status(lambda s: s['acting'] == 'True') is not None
    resumed = np.concatenate(listener.commands[safe_index + 1:])
    assert np.isfinite(resumed).all() and (np.abs(resumed) <= 3).all()
    assert agent.popen.poll() is None


def test_learner_faults_are_errors_in_diagnostics_and_acting_goes_on(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path) -> None:
    ros_processes.start(node_command('mujoco_sim_node', '-p', 'seed:=2'), name='mujoco_sim')
    agent = start_agent(ros_node, tmp_path, seed=2, snapshot_every=5, **SMALL_LEARNER)
    listener = AgentListener(ros_node)
    learner = agent.learner
    try:
        assert ros_node.spin_until(lambda: learner.updates >= 30, START_TIMEOUT + 30.0), \
            'the agent never started learning against mujoco_sim'

        def acts_on() -> None:
            count = len(listener.commands)
            assert ros_node.spin_until(lambda: len(listener.commands) > count + 20,
                                       REPLY_TIMEOUT), 'acting stopped'

        learner.inject_nan_batch()
        status = listener.wait_for_status(lambda s: s['level'] == 2)
        assert status is not None, 'no ERROR status after a NaN loss'
        assert status['message'].startswith('learner fault: non-finite loss')
        assert status['training'] == 'False'
        snapshot = learner.snapshot
        acts_on()
        assert learner.snapshot is snapshot
        # set_training(true) clears the fault: the NaN loss was refused, the weights are fine.
        response = listener.switch(listener.set_training, True)
        assert response.success, response.message
        assert listener.wait_for_status(lambda s: s['level'] != 2 and s['learner_fault'] == ''
                                        and s['training'] == 'True') is not None

        def failing_update(batch):
            raise RuntimeError('injected failure')

        learner.update_fn = failing_update
        status = listener.wait_for_status(lambda s: s['level'] == 2)
        assert status is not None
        assert status['learner_fault'] == 'update failed: RuntimeError: injected failure'
        acts_on()
        # Resuming without a fix fails again at once, and still acting goes on.
        assert listener.switch(listener.set_training, True).success
        assert listener.wait_for_status(lambda s: s['level'] == 2) is not None
        acts_on()
    finally:
        stop_agent(ros_node, agent)
    commands = np.array(listener.commands)
    assert len(commands) > 60
    assert np.isfinite(commands).all() and (np.abs(commands) <= 3.0).all()


def test_a_state_that_breaks_the_task_is_refused_not_fatal(
        ros_node: RosTestNode, tmp_path) -> None:
    agent = start_agent(ros_node, tmp_path, task='ddpg_ros.tasks.examples:ReachTarget',
                        reset_service='', state_timeout=0.0, learning_starts=1_000_000,
                        hidden_sizes=[16, 16])
    listener = AgentListener(ros_node)
    try:
        assert ros_node.spin_until(lambda: listener.states.get_subscription_count() > 0,
                                   START_TIMEOUT)

        def broken_reward(previous, action, state):
            raise IndexError('user bug')

        agent.task.reward = broken_reward
        for i in range(3):
            received = agent.states_received
            listener.states.publish(joint_state(['shoulder', 'elbow'], [0.1 * i, 0], [0, 0],
                                                [0, 0], (i + 1) * 20_000_000))
            assert ros_node.spin_until(lambda: agent.states_received > received,
                                       REPLY_TIMEOUT)
        assert ros_node.spin_until(lambda: len(listener.commands) >= 2, REPLY_TIMEOUT)
        ros_node.spin_for(0.2)  # and no third one
        commands = len(listener.commands)
    finally:
        stop_agent(ros_node, agent)
    # State 0 acted on; state 1's reward failed (refused, chain broken); state 2 starts anew.
    assert agent.stats['invalid_states'] == 1
    assert 'IndexError: user bug' in agent.last_problem
    assert len(agent.buffer) == 0
    assert commands == 2
