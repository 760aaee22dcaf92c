"""
The fleet across hosts: a learner on host a, robots on hosts b and c, DDS over real UDP.

Each host is a network namespace (``netns_hosts.py``): its own address, the default discovery
range, UDP only (no shared memory), the test's own ROS domain. What a host's nodes do is read
from their logs and, on host a, from a probe that prints ``/diagnostics`` (the learner's
per-actor counts; the robots' own statuses while their link is up). Pendulum robots in
lockstep with 64-64 networks: the claim is that data flows, not that the fleet learns.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from conftest import EVENT_TIMEOUT, TestProcess, node_command
from test_fleet_launch import PENDULUM_LEARNER, SOLVED, TRANSITION_BUDGET, CheckpointScores
import netns_hosts as netns_hosts_module
from netns_hosts import (MULTICAST_ROUTE, PREFIX, REQUIRE_VARIABLE, DiagnosticsProbe, NetnsHosts,
                         base36, make_hosts, netns_hosts)  # noqa: F401 (a fixture)

pytestmark = pytest.mark.ros

LEARNER = {'hidden_sizes': '[64, 64]', 'batch_size': '32', 'buffer_size': '20000',
           'learning_starts': '200', 'updates_per_step': '0.5', 'policy_every': '10',
           'policy_period': '0.5', 'device': 'cpu', 'tensorboard': 'false',
           'checkpoint_every': '100000', 'keep_checkpoints': '0'}
"""A small learner that publishes often: the policy stream is what crosses the network."""
ROBOTS = {'b': 'robot_b', 'c': 'robot_c'}
"""Host: the robot (sim and remote actor) it runs, in that namespace."""
FLOWING = 300
"""Transitions from each robot, and policy versions the robots acted with, that show a flow."""
CUT = 10.0
"""Seconds robot b's link is down."""
DISCOVERY_SERVER_PORT = 11811
"""Host a's port for the Discovery Server: every host is a namespace of its own, no clash."""
LEARNING_TIME_BUDGET = 480.0
"""Seconds for the fleet's run to 1000: long enough that TRANSITION_BUDGET decides. The
learner, held to one update per transition, takes in about 100 transitions a second on 2
cores, and two-robot fleets took 4,000 to 32,000 transitions to solve (a run through
ddpg-launch: 32,026 in 345 s), where 360 s would have failed a run still inside 40,000."""


def ros_args(**params: Any) -> list[str]:
    return [arg for name, value in params.items() for arg in ('-p', f'{name}:={value}')]


def actor_id(robot: str) -> str:
    return f'/{robot}/ddpg_agent'


class HostFleet:
    """A learner and a probe on host a, a robot (lockstep sim and remote actor) on b and c."""

    def __init__(self, hosts: NetnsHosts, directory: Path, env: dict[str, str] | None = None,
                 learner: dict[str, Any] = LEARNER, **actor_params: Any) -> None:
        self.hosts = hosts
        self.directory = directory
        self.learner = hosts.start('a', node_command(
            'ddpg_learner_node', *ros_args(checkpoint_dir=directory, **learner)),
            name='ddpg_learner', env=env)
        self.probe = DiagnosticsProbe(hosts, 'a', env=env)
        self.sims: dict[str, TestProcess] = {}
        self.actors: dict[str, TestProcess] = {}
        for index, (host, robot) in enumerate(ROBOTS.items()):
            namespace = ['-r', f'__ns:=/{robot}', '-r', '/clock:=clock']
            self.sims[robot] = hosts.start(host, node_command(
                'mujoco_sim_node', *namespace, '-p', f'seed:={index}'),
                name=f'mujoco_sim_{robot}', env=env)
            self.actors[robot] = hosts.start(host, node_command(
                'ddpg_agent_node', *namespace, *ros_args(
                    learner='remote', seed=index, use_sim_time='true', transition_batch=20,
                    **actor_params)), name=f'ddpg_agent_{robot}', env=env)

    def wait(self, predicate: Callable[[], bool], what: str,
             timeout: float = EVENT_TIMEOUT) -> None:
        if not self.probe.wait(predicate, timeout):
            raise AssertionError(f'{what}: not within {timeout:g} s; learner '
                                 f'{self.probe.learner()}\n{self.logs()}')

    def stored(self, robot: str) -> int:
        """Transitions of ``robot`` that the learner stored, as its newest status says."""
        return int(self.probe.actor(actor_id(robot)).get('transitions', 0))

    def acted_with(self, robot: str) -> int:
        """Return the policy version that ``robot``'s newest stored batch was acted with."""
        return int(self.probe.actor(actor_id(robot)).get('policy_version', 0))

    def flowing(self, at_least: int = FLOWING) -> bool:
        """Both robots' transitions reach the learner, acted with its published policies."""
        return all(self.stored(robot) >= at_least and self.acted_with(robot) >= 3
                   for robot in ROBOTS.values())

    def stop_robots(self) -> None:
        """End the actors first, by pid, while their sims are there to take the safe command."""
        for actor in self.actors.values():
            actor.send_signal(signal.SIGINT)
        for robot, actor in self.actors.items():
            assert actor.wait(30.0) == 0, actor.output()[-3000:]

    def logs(self) -> str:
        return '\n'.join(f'--- {process.command[4:7]}:\n{process.output()[-1500:]}'
                         for process in self.hosts.processes.processes)


def start_discovery_server(hosts: NetnsHosts) -> tuple[TestProcess, dict[str, str]]:
    """``ddpg-discovery-server`` on host a; return it and the clients' setting."""
    installed = Path(sys.executable).parent / 'ddpg-discovery-server'
    command = [str(installed)] if installed.is_file() else [
        sys.executable, '-m', 'ddpg_ros.fleet.discovery_server']
    server = hosts.start('a', [*command, '--port', str(DISCOVERY_SERVER_PORT)],
                         name='discovery_server')
    server.wait_for_line(r'### Server (is running|started) ###')  # Fast DDS 2.x | 3.x
    return server, {'ROS_DISCOVERY_SERVER': f"{hosts.addresses['a']}:{DISCOVERY_SERVER_PORT}"}


# The hosts themselves

UDP_ECHO = '''
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(float(sys.argv[3]))
if sys.argv[1] == 'serve':
    sock.bind(('0.0.0.0', int(sys.argv[2])))
    print('serving', flush=True)
    while True:
        data, peer = sock.recvfrom(100)
        sock.sendto(data, peer)
else:
    host, port = sys.argv[2].rsplit(':', 1)
    try:
        sock.sendto(b'ping', (host, int(port)))
        print(sock.recvfrom(100)[0].decode())
    except OSError as exc:
        print(f'no answer: {exc}')
'''


def test_hosts_reach_each_other_over_udp_a_cut_link_parts_them_and_nothing_is_left(
        netns_hosts: Callable[..., NetnsHosts]) -> None:
    hosts = netns_hosts(['a', 'b', 'c'])
    with hosts:
        assert len(set(hosts.addresses.values())) == 3
        for host in ('a', 'b', 'c'):
            routes = hosts.run(host, ['ip', 'route']).stdout
            assert MULTICAST_ROUTE.split('/')[0] in routes, routes
        echo = hosts.start('b', [sys.executable, '-c', UDP_ECHO, 'serve', '7777', '60'],
                           name='echo')
        assert echo.wait_for_output('serving', EVENT_TIMEOUT), echo.output()
        # ip netns exec execs the command: the pid started is the command's own.
        assert Path(f'/proc/{echo.pid}/cmdline').read_bytes().split(b'\0')[0] == \
            sys.executable.encode()
        target = f"{hosts.addresses['b']}:7777"

        def ask(host: str, timeout: str = '5') -> str:
            return hosts.run(host, [sys.executable, '-c', UDP_ECHO, 'ask', target,
                                    timeout]).stdout.strip()

        assert ask('a') == 'ping' and ask('c') == 'ping'
        # Not on this machine's own network: the addresses exist only inside the hosts.
        assert hosts.addresses['b'] not in hosts.run('a', ['ip', 'address']).stdout
        hosts.link_down('b')
        assert not hosts.carrier('b')
        assert ask('a', '1').startswith('no answer')
        hosts.link_up('b')
        assert hosts.carrier('b')
        assert ask('a') == 'ping'
    assert not hosts.leftovers()
    assert echo.popen.poll() is not None, 'the process on a host outlived its hosts'


def test_hosts_are_removed_when_a_test_fails_and_a_dead_runs_are_removed_by_the_next(
        ros_domain_id: int, tmp_path: Path) -> None:
    hosts = make_hosts(['a', 'b'], ros_domain_id, tmp_path)
    with pytest.raises(RuntimeError, match='a failing test'):
        with hosts:
            sleeper = hosts.start('a', ['sleep', '60'], name='sleep')
            raise RuntimeError('a failing test')
    assert sleeper.popen.poll() is not None and not hosts.leftovers()
    # A run killed outright leaves its namespace; the next run's hosts remove it.
    dead = subprocess.Popen(['true'])
    dead.wait()
    stale = f'{PREFIX}{base36(dead.pid)}-00'
    subprocess.run(['ip', 'netns', 'add', stale], check=True)
    try:
        with make_hosts(['a'], ros_domain_id, tmp_path):
            assert stale not in subprocess.run(['ip', 'netns', 'list'], capture_output=True,
                                               text=True).stdout
    finally:
        subprocess.run(['ip', 'netns', 'delete', stale], capture_output=True)


@pytest.mark.parametrize('required', ['', '1'])
def test_without_namespaces_the_hosts_skip_saying_why_or_fail_where_required(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, required: str) -> None:
    monkeypatch.setattr(netns_hosts_module, 'unavailable_reason',
                        lambda: 'network namespaces need root (ip netns add)')
    monkeypatch.setenv(REQUIRE_VARIABLE, required)
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match='no test hosts .network namespaces.: network '
                                       'namespaces need root'):
        make_hosts(['a'], 1, tmp_path)


# Data both ways, by each discovery mode

@pytest.mark.distro
@pytest.mark.parametrize('discovery', ['multicast', 'discovery_server', 'static_peers'])
def test_policies_reach_robots_on_other_hosts_and_their_transitions_reach_the_learner(
        netns_hosts: Callable[..., NetnsHosts], tmp_path: Path, discovery: str) -> None:
    hosts = netns_hosts(['a', 'b', 'c'], multicast=discovery == 'multicast')
    env: dict[str, str] = {}
    if discovery == 'discovery_server':
        _, env = start_discovery_server(hosts)
    elif discovery == 'static_peers':
        env = {'ROS_STATIC_PEERS': hosts.static_peers()}
    if discovery != 'multicast':
        # Multicast cannot be what connects them: no host has a route for it.
        for host in ('a', 'b', 'c'):
            assert MULTICAST_ROUTE.split('/')[0] not in hosts.run(host, ['ip', 'route']).stdout
    fleet = HostFleet(hosts, tmp_path / 'learner', env=env)
    fleet.wait(fleet.flowing, 'transitions from both robots, acted with the published policies')
    for robot, actor in fleet.actors.items():
        actor.wait_for_line(r'policy version \d+ of run \S+ received from the learner')
    learner = fleet.probe.learner()
    assert learner['actors'] == '2', learner
    # The robots' own statuses cross too: each acts with a recent policy, learner not lost.
    for robot in ROBOTS.values():
        fleet.wait(lambda: fleet.probe.agent(actor_id(robot)).get('learner_lost') == 'False'
                   and int(fleet.probe.agent(actor_id(robot)).get('policy_version') or 0) >= 3,
                   f'{robot} status')
    print(f'{discovery}: {learner}')
    fleet.stop_robots()


@pytest.mark.learning
def test_the_fleet_learns_the_pendulum_across_hosts(netns_hosts: Callable[..., NetnsHosts],
                                                    tmp_path: Path) -> None:
    # The single-host fleet test's learner (test_fleet_launch.py), multicast, to a solved
    # pendulum: the fleet's one run to 1000 (the launch test stops at a learned 100).
    torch.set_num_threads(1)  # this process evaluates; leave the cores to the nodes
    hosts = netns_hosts(['a', 'b', 'c'])
    fleet = HostFleet(hosts, tmp_path / 'learner', learner={
        **PENDULUM_LEARNER, 'seed': 0, 'checkpoint_every': 1000, 'keep_checkpoints': 0,
        'tensorboard': 'false'})
    scores = CheckpointScores(fleet.directory)
    started = time.monotonic()
    try:
        while time.monotonic() - started < LEARNING_TIME_BUDGET:
            fleet.probe.wait(lambda: False, 1.0)
            scores.poll()
            best = scores.best()
            transitions = int(fleet.probe.learner().get('transitions', 0))
            if best and best[1] >= SOLVED or transitions > TRANSITION_BUDGET:
                break
    finally:
        scores.close()
    print(f'across hosts: noise-free returns by transitions {dict(sorted(scores.returns.items()))}'
          f'; {time.monotonic() - started:.0f} s; learner {fleet.probe.learner()}')
    best = scores.best()
    assert best is not None and best[1] >= SOLVED, (scores.returns, fleet.logs())
    assert best[0] <= TRANSITION_BUDGET + 1000
    # Both robots fed it, acting with the policies it published as it learned.
    assert fleet.probe.learner()['actors'] == '2'
    assert all(fleet.acted_with(robot) > 10 for robot in ROBOTS.values())
    fleet.stop_robots()


@pytest.mark.distro
def test_a_half_cheetah_sized_policy_reaches_a_robot_that_joins_late_on_another_host(
        netns_hosts: Callable[..., NetnsHosts], tmp_path: Path) -> None:
    # 256-256 networks (HalfCheetah's preset): a 288 KB policy, fragmented over UDP.
    hosts = netns_hosts(['a', 'b'])
    learner = hosts.start('a', node_command('ddpg_learner_node', *ros_args(
        task='half_cheetah', checkpoint_dir=tmp_path / 'learner', device='cpu',
        tensorboard='false', checkpoint_every='0')), name='ddpg_learner')
    version = int(learner.wait_for_line(r'ready: .*policy version (\d+)')[1])
    started = time.monotonic()
    actor = hosts.start('b', node_command('ddpg_agent_node', '-r', '__ns:=/robot_b', *ros_args(
        task='half_cheetah', learner='remote', use_sim_time='true')), name='ddpg_agent')
    received = actor.wait_for_line(r'policy version (\d+) of run \S+ received from the learner')
    print(f'a 256-256 policy reached a robot on another host {time.monotonic() - started:.1f} s '
          'after its start (Python start-up, discovery and the transfer)')
    assert int(received[1]) >= version
    assert 'policy refused' not in actor.output()


# A partition

def test_a_cut_off_robot_acts_on_and_delivers_its_queue_once_and_a_cut_off_learner_loses_all(
        netns_hosts: Callable[..., NetnsHosts], tmp_path: Path) -> None:
    hosts = netns_hosts(['a', 'b', 'c'])
    fleet = HostFleet(hosts, tmp_path / 'learner', learner_timeout='2.0',
                      on_learner_lost='continue')
    fleet.wait(fleet.flowing, 'transitions from both robots, acted with the published policies')
    b, c = ROBOTS['b'], ROBOTS['c']
    actor_b, actor_c = fleet.actors[b], fleet.actors[c]
    actor_b.wait_for_line(r'received from the learner')
    mark_b = len(actor_b.output())

    hosts.link_down('b')
    cut = time.monotonic()
    fleet.probe.poll()
    at_cut = {robot: fleet.stored(robot) for robot in ROBOTS.values()}
    # b notices (learner_timeout 2 s) and goes on acting with its last policy, queueing.
    lost = actor_b.wait_for_line(r'no policy from the learner for 2 s: acting with policy '
                                 r'version (\d+) without noise; (\d+) transitions queued',
                                 mark_b, timeout=CUT)
    # c goes on: its transitions keep arriving at the learner during the cut.
    fleet.wait(lambda: fleet.stored(c) >= at_cut[c] + 100, f'{c} feeding during the cut',
               timeout=max(0.0, CUT - 1.0 - (time.monotonic() - cut)))
    during = {robot: fleet.stored(robot) for robot in ROBOTS.values()}
    time.sleep(max(0.0, CUT - (time.monotonic() - cut)))  # the cut itself
    hosts.link_up('b')
    healed = time.monotonic()
    fleet.probe.poll()
    print(f'cut {healed - cut:.1f} s; stored at the cut {at_cut}, during it {during}, at the '
          f'heal {({robot: fleet.stored(robot) for robot in ROBOTS.values()})}')
    assert healed - cut < CUT + 2.0, 'the cut went on too long to be the one claimed'

    back = actor_b.wait_for_line(r'learner back: policy version (\d+); sending (\d+) queued '
                                 r'transitions', lost.end())
    assert int(back[1]) > int(lost[1]), (lost[0], back[0])
    queued = int(back[2])
    assert queued > int(lost[2]) and queued >= 100, (lost[0], back[0])
    # Everything b acted during the cut arrives: what DDS held from before b noticed, and
    # its queue; then its stream goes on.
    fleet.wait(lambda: fleet.stored(b) >= at_cut[b] + queued + FLOWING,
               f'{b}: its queued transitions, and new ones')
    status_b = fleet.probe.actor(actor_id(b))
    assert status_b['lost_batches'] == '0' and status_b['refused'] == '0', status_b
    fleet.wait(lambda: fleet.probe.agent(actor_id(b)).get('learner_lost') == 'False'
               and fleet.probe.agent(actor_id(b)).get('transitions_queued') == '0',
               f'{b} back and its queue empty')
    assert int(fleet.probe.agent(actor_id(b))['transitions_dropped']) == 0
    # c never noticed.
    assert 'no policy from the learner' not in actor_c.output()
    seen_c = [s for _, s in fleet.probe.statuses if s['name'] == 'ddpg_agent: agent'
              and s.get('actor_id') == actor_id(c) and s.get('policy_version')]
    assert seen_c and all(s['learner_lost'] == 'False' for s in seen_c), seen_c

    # The learner's own link cut: every robot notices, acts on with its last policy, and takes
    # the next version once the link is back.
    marks = {robot: len(actor.output()) for robot, actor in fleet.actors.items()}
    hosts.link_down('a')
    lost_all = {robot: actor.wait_for_line(
        r'no policy from the learner for 2 s: acting with policy version (\d+)', marks[robot],
        timeout=CUT) for robot, actor in fleet.actors.items()}
    hosts.link_up('a')
    for robot, actor in fleet.actors.items():
        again = actor.wait_for_line(r'learner back: policy version (\d+)', lost_all[robot].end())
        assert int(again[1]) > int(lost_all[robot][1]), (lost_all[robot][0], again[0])

    # Nothing stored twice: no batch refused as a duplicate, no row twice in the buffer.
    learner = fleet.probe.learner()
    assert 'refused_duplicate' not in learner, learner
    fleet.stop_robots()
    assert fleet.learner.stop(timeout=60.0) == 0, fleet.learner.output()[-3000:]
    final = sorted(fleet.directory.glob('checkpoint_*.pt'))[-1]
    with np.load(final.with_suffix('.npz')) as saved:
        stored = np.concatenate([saved['obs'], saved['actions'], saved['rewards'][:, None],
                                 saved['next_obs']], axis=1)
    assert len(stored) >= sum(at_cut.values()) + queued
    assert len(np.unique(stored, axis=0)) == len(stored)
