"""
One learner, many robots, over real DDS: ddpg_learner, remote ddpg_agent actors, train_fleet.

Real processes and rclpy nodes on the test's own ROS domain; the test node crafts transition
batches where a test needs a sender it controls, byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Float64MultiArray, UInt8MultiArray
from std_srvs.srv import SetBool, Trigger

from ddpg_ros.control.settings import AgentSettings
from ddpg_ros.sim.envs import spec_for_task
from ddpg_ros.fleet.wire import decode_policy_header, encode_transitions, row_width
from ddpg_ros.ros.ddpg_agent_node import DDPGAgentNode
from ddpg_ros.ros.fleet_messages import (POLICY_QOS, POLICY_TOPIC, TRANSITIONS_QOS,
                                         TRANSITIONS_TOPIC, message_parts, to_message)
from ddpg_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS
from ddpg_ros.tasks import make_task

from agent_helpers import REPLY_TIMEOUT, START_TIMEOUT
from conftest import ProcessGroup, RosTestNode, TestProcess, node_command, pid_alive

pytestmark = pytest.mark.ros

TASK = make_task('inverted_pendulum')
SPEC = spec_for_task(TASK)
WIDTH = row_width(SPEC.obs_dim, SPEC.action_dim)
PROBE = '/probe'
"""The actor id of the batches this test node sends."""
SMALL = {'hidden_sizes': '[32, 32]', 'batch_size': 32, 'buffer_size': 20_000,
         'learning_starts': 50, 'device': 'cpu', 'tensorboard': 'false', 'policy_every': 5}
"""A learner that starts and trains fast; no claim to learn anything."""
MAX_UPDATE_WAIT = AgentSettings().max_update_wait
"""ddpg_agent's default (1 s): the longest a lockstep actor holds a step for its learner."""
COMMAND_GAP_SLACK = 1.5
"""Seconds on top of it for the steps' own work, DDS and a loaded machine's stalls."""


def ros_args(**params: Any) -> list[str]:
    args = []
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ['-p', f'{name}:={text}']
    return args


def start_learner(processes: ProcessGroup, directory: Path, **params: Any) -> TestProcess:
    learner = processes.start(node_command(
        'ddpg_learner_node', *ros_args(**{**SMALL, 'checkpoint_dir': directory, **params})),
        name='ddpg_learner')
    assert learner.wait_for_output('ready:', START_TIMEOUT), learner.output()
    return learner


def rows(count: int, seed: int = 0, marker: float | None = None) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(-0.2, 0.2, (count, WIDTH)).astype(np.float32)
    values[:, -1] = 0.0
    if marker is not None:
        values[:, 0] = marker
    return values


class Fleet:
    """The test node's view: policies, diagnostics, commands; a sender; the learner's services."""

    def __init__(self, ros: RosTestNode) -> None:
        self.ros = ros
        node = ros.node
        self.policies: list[tuple[float, Any]] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.commands: dict[str, list[tuple[float, np.ndarray]]] = {}
        node.create_subscription(UInt8MultiArray, POLICY_TOPIC, self._on_policy, POLICY_QOS)
        node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append,
                                 DIAGNOSTICS_QOS)
        self.transitions = node.create_publisher(UInt8MultiArray, TRANSITIONS_TOPIC,
                                                 TRANSITIONS_QOS)
        self.save = node.create_client(Trigger, '/ddpg_learner/save_checkpoint')
        self.get_policy = node.create_client(Trigger, '/ddpg_learner/get_policy')
        self.set_training = node.create_client(SetBool, '/ddpg_learner/set_training')

    def _on_policy(self, msg: UInt8MultiArray) -> None:
        header, _ = decode_policy_header(*message_parts(msg))
        self.policies.append((time.monotonic(), header))

    def watch_commands(self, robot: str) -> None:
        found = self.commands.setdefault(robot, [])
        self.ros.node.create_subscription(
            Float64MultiArray, f'/{robot}/effort_controller/commands',
            lambda msg: found.append((time.monotonic(), np.array(msg.data))), COMMAND_QOS)

    @property
    def version(self) -> int:
        return self.policies[-1][1].version if self.policies else 0

    @property
    def run_id(self) -> str:
        return self.policies[-1][1].run_id

    def send(self, values: np.ndarray, sequence: int, version: int | None = None,
             run_id: str | None = None, spec: Any = SPEC, actor: str = PROBE) -> bytes:
        wire = encode_transitions(values, run_id=self.run_id if run_id is None else run_id,
                                  actor_id=actor, epoch=1, sequence=sequence,
                                  policy_version=self.version if version is None else version,
                                  spec=spec)
        self.transitions.publish(to_message(wire))
        return wire.data

    def status(self, what: str) -> dict[str, str] | None:
        """Return the newest ``ddpg_learner: <what>`` status values, if any came."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name == f'ddpg_learner: {what}':
                    return {'message': status.message,
                            **{kv.key: kv.value for kv in status.values}}
        return None

    def agent_status(self, robot: str) -> dict[str, str] | None:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name == 'ddpg_agent: agent' and any(
                        kv.key == 'actor_id' and kv.value == f'/{robot}/ddpg_agent'
                        for kv in status.values):
                    return {kv.key: kv.value for kv in status.values}
        return None

    def wait(self, predicate, timeout: float = START_TIMEOUT) -> bool:
        return self.ros.spin_until(predicate, timeout)

    def call(self, client: Any, request: Any) -> Any:
        assert self.wait(client.service_is_ready), client.srv_name
        future = client.call_async(request)
        assert self.wait(future.done, REPLY_TIMEOUT), f'{client.srv_name} silent'
        return future.result()

    def learner_value(self, key: str) -> str | None:
        status = self.status('learner')
        return status.get(key) if status else None


class OwnParticipant:
    """
    A ddpg_agent in an rclpy context (a DDS participant) of its own, spun by a thread.

    As a robot that joins late would be: it has to discover the learner first.
    """

    def __init__(self, domain_id: int, tmp_path: Path, **params: Any) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        overrides = [Parameter(name, value=value) for name, value in
                     {'learner': 'remote', 'checkpoint_dir': str(tmp_path / 'agent'),
                      'reset_service': '', **params}.items()]
        self.started = time.monotonic()
        self.node = DDPGAgentNode(context=self.context, parameter_overrides=overrides,
                                  namespace='/late')
        self.created = time.monotonic()
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = False
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.node.shut_down()
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def fleet(ros_node: RosTestNode) -> Fleet:
    return Fleet(ros_node)


def feed_until_version(fleet: Fleet, version: int, timeout: float = 60.0) -> int:
    """Send valid batches until the learner has published ``version``; the next sequence."""
    sequence = 0
    deadline = time.monotonic() + timeout
    while fleet.version < version:
        assert time.monotonic() < deadline, f'no policy version {version}: {fleet.version}'
        fleet.send(rows(40, sequence), sequence)
        sequence += 1
        fleet.ros.spin_for(0.1)
    return sequence


# The learner with batches the test controls


@pytest.mark.distro
def test_a_late_actor_gets_the_current_policy_from_the_topics_history(
        ros_processes: ProcessGroup, fleet: Fleet, ros_domain_id: int, tmp_path: Path) -> None:
    # No heartbeat within the test (policy_period 600 s): a policy that reaches the late actor
    # was kept for it by the learner's writer (transient local), not published again.
    learner = start_learner(ros_processes, tmp_path / 'learner', policy_period=600.0)
    assert fleet.wait(lambda: fleet.version >= 1), learner.output()
    assert fleet.policies[0][1].warmup
    feed_until_version(fleet, 6)

    # The learner works off the updates the last batches granted, and publishes the last
    # snapshot: two statuses in a row with no backlog and the newest version received.
    def settled() -> bool:
        status = fleet.status('learner') or {}
        return status.get('backlog') == '0' and status.get('hold') == 'False' and \
            status.get('policy_version') == str(fleet.version)

    for _ in range(2):
        statuses = len(fleet.diagnostics)
        assert fleet.wait(lambda: len(fleet.diagnostics) > statuses and settled(), 30.0), \
            fleet.status('learner')
    current = fleet.version

    late = OwnParticipant(ros_domain_id, tmp_path)
    try:
        node, discovered = late.node, None
        deadline = late.created + START_TIMEOUT
        while node.policy.agent.version < current and time.monotonic() < deadline:
            if discovered is None and node.count_publishers(POLICY_TOPIC):
                discovered = time.monotonic()
            time.sleep(0.005)
        acting = time.monotonic()
        assert node.policy.agent.version == current, (node.policy.agent.version, current)
        assert node.policy.run_id == fleet.run_id
        # That version reached the test before the late participant existed, and was not
        # published again since.
        arrivals = [t for t, header in fleet.policies if header.version == current]
        assert arrivals and max(arrivals) < late.started, (arrivals, late.started)
        discovered = acting if discovered is None else discovered
        print(f'late actor: policy version {current} {acting - late.created:.3f} s after the '
              f'node existed, {acting - discovered:.3f} s after it discovered the learner')
    finally:
        late.close()

    # get_policy: the weights go out again on the topic, the reply says which.
    before = len(fleet.policies)
    reply = fleet.call(fleet.get_policy, Trigger.Request())
    answer = json.loads(reply.message)
    assert reply.success and answer['policy_version'] >= current
    assert answer['run_id'] == fleet.run_id and answer['bytes'] > 4 * 1000
    assert fleet.wait(lambda: any(header.version == answer['policy_version']
                                  for _, header in fleet.policies[before:]), REPLY_TIMEOUT)


@pytest.mark.distro
def test_bad_batches_are_refused_counted_and_never_stored(
        ros_processes: ProcessGroup, fleet: Fleet, ros_domain_id: int, tmp_path: Path) -> None:
    learner = start_learner(ros_processes, tmp_path / 'learner', max_message_bytes=100_000)
    assert fleet.wait(lambda: fleet.version >= 1), learner.output()
    # The policy shows the learner's writer matched; a batch needs its reader matched too.
    assert fleet.wait(lambda: fleet.transitions.get_subscription_count() > 0)
    fleet.send(rows(40, 0), sequence=0)
    assert fleet.wait(lambda: fleet.learner_value('transitions') == '40'), learner.output()

    bad = rows(40, 1, marker=777.0)
    fleet.send(bad, sequence=1)  # stored: marked, to find it in the buffer below
    fleet.ros.spin_for(0.5)
    two_actions = dataclasses.replace(SPEC, action_names=['a', 'b'], action_low=[-1.0, -1.0],
                                      action_high=[1.0, 1.0])
    nan = bad.copy()
    nan[3, 2] = np.nan
    sends = [
        lambda: fleet.send(nan, sequence=2),                            # non-finite
        lambda: fleet.send(bad, sequence=1),                            # sequence 1 again
        lambda: fleet.send(bad, sequence=0),                            # replayed
        lambda: fleet.send(bad, sequence=3, version=fleet.version + 100),   # unknown version
        lambda: fleet.send(bad, sequence=4, run_id='another-run'),      # another run
        lambda: fleet.send(np.zeros((40, row_width(4, 2)), np.float32), sequence=5,
                           spec=two_actions),                   # another robot
        lambda: fleet.send(rows(3000, 2, marker=777.0), sequence=6),    # oversized
    ]
    for send in sends:
        send()
    truncated = encode_transitions(bad, run_id=fleet.run_id, actor_id=PROBE, epoch=1,
                                   sequence=7, policy_version=fleet.version, spec=SPEC)
    short = to_message(truncated)
    short.data = short.data[:-8]
    short.layout.dim = []
    fleet.transitions.publish(short)

    expected = {'refused_non_finite': '1', 'refused_duplicate': '2',
                'refused_policy_version': '1', 'refused_run_id': '1', 'refused_spec': '1',
                'refused_oversized': '1', 'refused_length': '1'}

    def counted() -> bool:
        status = fleet.status('learner') or {}
        return all(status.get(key) == value for key, value in expected.items())

    assert fleet.wait(counted, 20.0), (fleet.status('learner'), learner.output()[-3000:])
    status = fleet.status('learner')
    assert status['transitions'] == '80', 'only the good batches 0 and 1'
    output = learner.output()
    assert "action_names: learner ['slide'], actor ['a', 'b']" in output
    assert "batch of run 'another-run' refused" in output
    assert f'policy version {fleet.version + 100}, which this learner never published' in output
    actor = fleet.status(f'actor {PROBE}')
    assert actor['transitions'] == '80' and int(actor['refused']) >= 5

    # Nothing refused is in the buffer: the good batch 1 (marked 777) once, the rest never.
    reply = fleet.call(fleet.save, Trigger.Request())
    assert reply.success, reply.message
    with np.load(Path(reply.message).with_suffix('.npz')) as saved:
        obs = saved['obs']
    assert len(obs) == 80
    assert int((obs[:, 0] == np.float32(777.0)).sum()) == 40


@pytest.mark.distro
def test_an_actor_of_another_task_refuses_the_learners_policy_naming_the_difference(
        ros_processes: ProcessGroup, fleet: Fleet, ros_domain_id: int, tmp_path: Path) -> None:
    learner = start_learner(ros_processes, tmp_path / 'learner')
    assert fleet.wait(lambda: fleet.version >= 1), learner.output()
    other = OwnParticipant(ros_domain_id, tmp_path, task='half_cheetah')
    try:
        deadline = time.monotonic() + START_TIMEOUT
        remote = other.node.policy
        while not remote.stats['policies_refused'] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert remote.stats['policies_refused'] >= 1
        assert remote.agent.version == 0, 'it never acts with a policy for another robot'
        assert "task: robot 'half_cheetah', policy 'inverted_pendulum'" in remote.last_refusal
        assert 'observation_names: robot' in remote.last_refusal
    finally:
        other.close()


# Faults: a learner killed and restarted, an actor killed


def start_robot(processes: ProcessGroup, index: int, **params: Any) -> TestProcess:
    """Start robot ``index``'s sim and remote actor; return the actor."""
    namespace = ['-r', f'__ns:=/robot_{index}', '-r', '/clock:=clock']
    processes.start(node_command('mujoco_sim_node', *namespace, '-p', f'seed:={index}'),
                    name=f'mujoco_sim_{index}')
    return processes.start(node_command('ddpg_agent_node', *namespace, *ros_args(
        learner='remote', seed=index, use_sim_time=True, **params)), name=f'ddpg_agent_{index}')


def commands_since(fleet: Fleet, robot: str, since: float,
                   until: float = float('inf')) -> list[np.ndarray]:
    return [command for t, command in fleet.commands[robot] if since <= t < until]


def test_a_killed_learner_leaves_actors_acting_safely_and_a_restarted_one_continues(
        ros_processes: ProcessGroup, fleet: Fleet, tmp_path: Path) -> None:
    directory = tmp_path / 'learner'
    params = {'checkpoint_every': 500, 'keep_checkpoints': 0, 'learning_starts': 200}
    first = start_learner(ros_processes, directory, **params)
    robots = ['robot_0', 'robot_1']
    actors = [start_robot(ros_processes, i, on_learner_lost=lost, learner_timeout=1.0,
                          transition_batch=20)
              for i, lost in enumerate(('continue', 'safe'))]
    for robot in robots:
        fleet.watch_commands(robot)

    def learner_has(transitions: int, actors: int = 2) -> bool:
        status = fleet.status('learner') or {}
        return int(status.get('transitions', 0)) >= transitions and \
            status.get('actors') == str(actors)

    # The learner's own pace decides how many versions 1200 transitions make (a fast machine
    # feeds it before it has run its updates): wait for both.
    assert fleet.wait(lambda: learner_has(1200) and fleet.version > 5 and len(list(
        directory.glob('checkpoint_*.pt'))) >= 2, 120.0), first.output()[-3000:]
    version_before = fleet.version

    first.send_signal(signal.SIGKILL)
    assert first.wait(10.0) == -signal.SIGKILL
    killed = time.monotonic()
    lost_from = killed + 1.5  # learner_timeout 1 s, and the worker's next look
    # robot_0 (continue): goes on acting with its last policy, finite and in bounds.
    assert fleet.wait(lambda: len(commands_since(fleet, 'robot_0', lost_from)) > 20), \
        'robot_0 stopped acting without its learner'
    # robot_1 (safe): the safe command once it notices; the status says robot_0 lost it.
    assert fleet.wait(lambda: any(np.array_equal(c, [0.0]) for t, c in
                                  fleet.commands['robot_1'] if t >= killed)), \
        'robot_1 never sent the safe command'
    assert fleet.wait(lambda: (fleet.agent_status('robot_0') or {}).get('learner_lost')
                      == 'True' and int(fleet.agent_status('robot_0')['transitions_queued']) > 0)
    going_on = commands_since(fleet, 'robot_0', lost_from)
    assert any(abs(c[0]) > 1e-6 for c in going_on), 'robot_0 sends only safe commands'
    # robot_1 (safe): once it notices (learner_timeout, plus a loaded machine's slack), the
    # safe command only, until a policy arrives.
    after_kill = [(t, c) for t, c in fleet.commands['robot_1'] if t >= killed]
    first_safe = next((i for i, (_, c) in enumerate(after_kill) if np.array_equal(c, [0.0])),
                      None)
    assert first_safe is not None, 'robot_1 never sent the safe command'
    assert after_kill[first_safe][0] - killed <= 1.0 + 2.0, after_kill[first_safe][0] - killed
    held = [c for _, c in after_kill[first_safe:]]
    assert all(np.array_equal(c, [0.0]) for c in held), held[:5]
    status_0 = fleet.agent_status('robot_0')
    assert status_0['learner_lost'] == 'True' and int(status_0['transitions_queued']) > 0
    # From the kill until now, no robot went longer than max_update_wait (a held step's wait
    # for a policy that cannot come) plus COMMAND_GAP_SLACK without a command.
    now = time.monotonic()
    for robot in robots:
        times = [t for t, _ in fleet.commands[robot]]
        since_kill = [t for t in times if t < killed][-1:] + [t for t in times if t >= killed]
        gaps = np.diff([*since_kill, now])
        assert gaps.max() <= MAX_UPDATE_WAIT + COMMAND_GAP_SLACK, (robot, gaps.max())

    second = start_learner(ros_processes, directory, load_checkpoint='latest', **params)
    restarted = time.monotonic()
    resumed_at = int(second.output().split('resumed at ')[1].split()[0])
    resumed_from = Path(second.output().split(' transitions from ')[1].split()[0])
    assert fleet.wait(lambda: fleet.version > version_before, START_TIMEOUT), second.output()

    def back(robot: str) -> bool:
        status = fleet.agent_status(robot) or {}
        return status.get('learner_lost') == 'False' and \
            int(status.get('policy_version') or 0) > version_before

    assert fleet.wait(lambda: back('robot_0') and back('robot_1'), START_TIMEOUT)
    # robot_1 acts again; robot_0's queue reaches the new learner; both feed it.
    assert fleet.wait(lambda: any(abs(c[0]) > 1e-6 for c in commands_since(
        fleet, 'robot_1', restarted)), START_TIMEOUT)
    assert fleet.wait(lambda: learner_has(resumed_at + 600), 60.0), second.output()[-3000:]
    for robot in robots:
        commands = [c for _, c in fleet.commands[robot]]
        assert all(np.isfinite(c).all() and np.abs(c).max() <= 3.0 for c in commands)

    # An actor killed outright does not stop the learner.
    actors[0].send_signal(signal.SIGKILL)
    assert actors[0].wait(10.0) == -signal.SIGKILL
    fleet.ros.spin_for(1.0)  # what robot_0 sent before its kill has arrived by now
    before = fleet.status('learner')
    assert fleet.wait(lambda: int(fleet.learner_value('transitions')) > int(before['transitions'])
                      and int(fleet.learner_value('updates')) > int(before['updates'])), \
        'the learner stopped with an actor'
    after = fleet.status('learner')
    assert pid_alive(second.pid)

    assert second.stop(timeout=60.0) == 0, second.output()[-3000:]
    final = sorted(directory.glob('checkpoint_*.pt'))[-1]
    with np.load(final.with_suffix('.npz')) as saved, \
            np.load(resumed_from.with_suffix('.npz')) as resumed:
        stored = np.concatenate([saved['obs'], saved['actions'], saved['rewards'][:, None],
                                 saved['next_obs']], axis=1)
        # The resumed buffer goes on unchanged, and no transition is in it twice.
        for key in ('obs', 'actions', 'rewards', 'next_obs', 'terminated'):
            assert np.array_equal(saved[key][:len(resumed[key])], resumed[key]), key
        assert len(np.unique(stored, axis=0)) == len(stored)
    assert 'refused_duplicate' not in after, after


# Security


@pytest.mark.distro
def test_with_dds_security_enforced_a_node_fails_closed_never_unprotected(
        ros_env: dict[str, str], tmp_path: Path) -> None:
    """
    ``ROS_SECURITY_ENABLE`` with an enclave that proves nothing: the learner must not start.

    The pip Fast DDS has no security plugins, and says so; a Fast DDS with them refuses the
    enclave's missing certificates. Either way nothing runs without protection.
    """
    keystore = tmp_path / 'keystore'
    (keystore / 'enclaves' / 'fleet' / 'ddpg_learner').mkdir(parents=True)
    env = {**ros_env, 'ROS_SECURITY_KEYSTORE': str(keystore), 'ROS_SECURITY_ENABLE': 'true',
           'ROS_SECURITY_STRATEGY': 'Enforce'}
    result = subprocess.run(
        node_command('ddpg_learner_node', '--enclave', '/fleet/ddpg_learner',
                     *ros_args(checkpoint_dir=tmp_path / 'learner', tensorboard=False)),
        env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and 'ready:' not in output, output[-2000:]
    print('without plugins' if "doesn't have the security libraries" in output
          else 'plugins present: the empty enclave was refused')
