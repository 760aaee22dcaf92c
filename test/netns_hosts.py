"""
Test hosts as Linux network namespaces: DDS between them goes over real UDP, never shared memory.

    with NetnsHosts(['a', 'b', 'c'], domain_id, log_dir) as hosts:
        learner = hosts.start('a', command, name='learner')     # a TestProcess, ended by pid
        hosts.link_down('b'); ...; hosts.link_up('b')

Each host is a namespace ``ddpgh<pid>-<n><i>`` with its loopback up and one interface,
``eth0``, the inner end of a veth pair whose outer end (``ddpgv<pid>-<n><i>``) is a port of
a bridge (``ddpgb<pid>-<n>``) in this machine's namespace. The bridge and the outer ends have
no address: the hosts' addresses (``10.213.<k>.<i+1>/24``) exist only inside their
namespaces, so no run, test or user on the machine sees them, and parallel runs cannot
collide (the names hold this process's pid and a counter). ``multicast=True`` adds the route
that DDS's multicast discovery needs (``224.0.0.0/4 dev eth0``); without it a host reaches
the others by unicast only (static peers, a Discovery Server).

Processes run through ``ip netns exec``, which enters the namespace and then *execs* the
command: the pid that was started is the command's own, so signals reach it, never a shell.
Their environment is the test's with ``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` (the default
range: other hosts are reachable), ``FASTDDS_BUILTIN_TRANSPORTS=UDPv4`` (no shared memory,
even between two processes of one host), the test's own ``ROS_DOMAIN_ID``, and whatever
discovery settings the test adds.

``link_down(host)`` sets the outer end of a host's veth down: the host loses its carrier,
keeps its address and routes (nothing inside it changes), and no packet passes either way
until ``link_up(host)``.

Cleanup (``close``, the context manager's exit, the ``netns_hosts`` fixture's finalizer,
also when a test fails): every process the hosts started is ended by pid (SIGINT, then
SIGKILL), then every namespace, veth and bridge made is deleted; namespaces left by a run
whose process is gone (killed outright) are deleted too, on the next run's start.

Where it cannot run (not root, no ``ip``, no network namespaces) the tests skip, saying why;
with ``DDPG_ROS_REQUIRE_NETNS=1`` (CI: ``.ci/run``, which runs as root) they fail instead.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import ProcessGroup, TestProcess, pid_alive

REQUIRE_VARIABLE = 'DDPG_ROS_REQUIRE_NETNS'
"""Set to 1 where the hosts must work (CI): then a missing capability fails the test."""
PREFIX = 'ddpgh'
"""Namespaces: ``ddpgh<pid>-<n><i>``; veth outer ends ``ddpgv...``, bridges ``ddpgb...``
(pid, set number n and host index i in base 36)."""
SUBNET_BASE = (10, 213)
"""The hosts' addresses are ``10.213.<k>.<i+1>``, k = the set's number mod 256."""
MULTICAST_ROUTE = '224.0.0.0/4'
DISCOVERY_VARIABLES = ('ROS_LOCALHOST_ONLY', 'ROS_STATIC_PEERS', 'ROS_DISCOVERY_SERVER',
                       'ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                       'FASTDDS_DEFAULT_PROFILES_FILE', 'RMW_FASTRTPS_USE_QOS_FROM_XML')
"""Settings of the caller's that would change how the hosts discover each other."""

_counter = itertools.count()


def base36(number: int) -> str:
    digits = '0123456789abcdefghijklmnopqrstuvwxyz'
    text = ''
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


class NetnsUnavailable(RuntimeError):
    """This machine (or user) cannot make network namespaces."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(['ip', *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetnsUnavailable(f"'ip {' '.join(args)}' failed: {result.stderr.strip()}")
    return result


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None if they can (as far as one can tell)."""
    if not sys.platform.startswith('linux'):
        return 'network namespaces are Linux only'
    if shutil.which('ip') is None:
        return "no 'ip' command (iproute2) on PATH"
    if os.geteuid() != 0:
        return 'network namespaces need root (ip netns add)'
    return None


def skip_or_fail(reason: str) -> None:
    """Skip the test for ``reason``; fail it where ``DDPG_ROS_REQUIRE_NETNS=1`` (CI)."""
    message = f'no test hosts (network namespaces): {reason}'
    if os.environ.get(REQUIRE_VARIABLE) == '1':
        pytest.fail(f'{message}; {REQUIRE_VARIABLE}=1 says they must work here', pytrace=False)
    pytest.skip(message)


def remove_stale() -> list[str]:
    """Delete namespaces, veths and bridges of earlier runs whose process is gone."""
    removed = []
    pattern = re.compile(r'^ddpg[hvb]([0-9a-z]+)-')
    namespaces = [line.split()[0] for line in _ip('netns', 'list', check=False).stdout.splitlines()
                  if line.strip()]
    links = re.findall(r'^\d+: ([^:@\s]+)', _ip('-o', 'link', 'show', check=False).stdout,
                       re.MULTILINE)
    for name in namespaces + links:
        match = pattern.match(name)
        if match and int(match[1], 36) != os.getpid() and not pid_alive(int(match[1], 36)):
            kind = 'netns' if name in namespaces else 'link'
            args = ('netns', 'delete', name) if kind == 'netns' else ('link', 'delete', name)
            if _ip(*args, check=False).returncode == 0:
                removed.append(name)
    return removed


class NetnsHosts:
    """
    N hosts (network namespaces) on one bridge; processes started in them; links cut and healed.

    :param hosts: the hosts' names, as the test calls them (``'a'``, ``'learner'``, ...).
    :param domain_id: the test's ``ROS_DOMAIN_ID``, used by every process on every host.
    :param log_dir: where each process's output goes (``<name>-<n>.log``).
    :param multicast: add the multicast route to every host (DDS multicast discovery).
    :param env: the base environment (default: this process's).
    """

    def __init__(self, hosts: Sequence[str], domain_id: int, log_dir: Path,
                 multicast: bool = True, env: dict[str, str] | None = None) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise NetnsUnavailable(reason)
        if len(set(hosts)) != len(hosts) or not 1 <= len(hosts) <= 36:
            raise ValueError(f'hosts must be 1..36 distinct names: {hosts}')
        number = next(_counter)
        # Interface names have at most 15 characters: the pid (<= 2**22) in base 36 takes 5.
        tag = f'{base36(os.getpid())}-{base36(number % 36)}'
        self.bridge = f'ddpgb{tag}'
        self.domain_id = domain_id
        self.multicast = multicast
        self.namespaces = {host: f'{PREFIX}{tag}{base36(i)}' for i, host in enumerate(hosts)}
        self._outer = {host: f'ddpgv{tag}{base36(i)}' for i, host in enumerate(hosts)}
        subnet = f'{SUBNET_BASE[0]}.{SUBNET_BASE[1]}.{number % 256}'
        self.addresses = {host: f'{subnet}.{i + 1}' for i, host in enumerate(hosts)}
        base = dict(os.environ if env is None else env)
        for name in DISCOVERY_VARIABLES:
            base.pop(name, None)
        base.update(ROS_AUTOMATIC_DISCOVERY_RANGE='SUBNET', FASTDDS_BUILTIN_TRANSPORTS='UDPv4',
                    ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED='1')
        self.env = base
        self.processes = ProcessGroup(base, log_dir)
        self._made: list[tuple[str, str]] = []
        try:
            remove_stale()
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        _ip('link', 'add', self.bridge, 'type', 'bridge')
        self._made.append(('link', self.bridge))
        # No IGMP querier here: flood multicast to every port rather than guess at listeners.
        _ip('link', 'set', self.bridge, 'type', 'bridge', 'mcast_snooping', '0')
        _ip('link', 'set', self.bridge, 'up')
        for host, namespace in self.namespaces.items():
            _ip('netns', 'add', namespace)
            self._made.append(('netns', namespace))
            outer = self._outer[host]
            _ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace)
            self._made.append(('link', outer))
            _ip('link', 'set', outer, 'master', self.bridge, 'up')
            inside = ('netns', 'exec', namespace, 'ip')
            _ip(*inside, 'link', 'set', 'lo', 'up')
            _ip(*inside, 'address', 'add', f'{self.addresses[host]}/24', 'dev', 'eth0')
            _ip(*inside, 'link', 'set', 'eth0', 'up')
            if self.multicast:
                _ip(*inside, 'route', 'add', MULTICAST_ROUTE, 'dev', 'eth0')

    def __enter__(self) -> NetnsHosts:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # Processes

    def command(self, host: str, command: Sequence[str]) -> list[str]:
        """Return ``command`` as run on ``host`` (``ip netns exec <namespace> ...``)."""
        return ['ip', 'netns', 'exec', self.namespaces[host], *command]

    def start(self, host: str, command: Sequence[str], name: str = 'process',
              env: dict[str, str] | None = None) -> TestProcess:
        """
        Start ``command`` on ``host``; its pid is the command's own (``ip netns exec`` execs).

        :param env: added to the hosts' environment (e.g. ``ROS_DISCOVERY_SERVER``).
        """
        return self.processes.start(self.command(host, command), name=name,
                                    env={**self.env, **(env or {})})

    def run(self, host: str, command: Sequence[str],
            timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run ``command`` on ``host`` to its end; its output as text."""
        return subprocess.run(self.command(host, command), env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    # Links

    def link_down(self, host: str) -> None:
        """Cut ``host`` off: no packet to or from it passes until :meth:`link_up`."""
        _ip('link', 'set', self._outer[host], 'down')

    def link_up(self, host: str) -> None:
        """Connect ``host`` again."""
        _ip('link', 'set', self._outer[host], 'up')

    def carrier(self, host: str) -> bool:
        """Return whether the host's ``eth0`` is connected: its link is up."""
        result = self.run(host, ['cat', '/sys/class/net/eth0/carrier'])
        return result.stdout.strip() == '1'

    # Discovery settings

    def static_peers(self) -> str:
        """Return the ``ROS_STATIC_PEERS`` value that lists every host."""
        return ';'.join(self.addresses.values())

    # Cleanup

    def close(self) -> None:
        """End every process by pid, then delete every namespace and link this set made."""
        try:
            self.processes.stop_all()
        finally:
            for kind, name in reversed(self._made):
                if kind == 'netns':
                    # Its processes are gone: the namespace, and the veth end in it, go too.
                    _ip('netns', 'delete', name, check=False)
                else:
                    _ip('link', 'delete', name, check=False)
            self._made.clear()

    def leftovers(self) -> list[str]:
        """Names of this set's namespaces and links that still exist (none after close)."""
        names = set(self.namespaces.values()) | set(self._outer.values()) | {self.bridge}
        present = _ip('netns', 'list', check=False).stdout.split() + re.findall(
            r'^\d+: ([^:@\s]+)', _ip('-o', 'link', 'show', check=False).stdout, re.MULTILINE)
        return sorted(names & set(present))


def make_hosts(hosts: Sequence[str], domain_id: int, log_dir: Path,
               multicast: bool = True) -> NetnsHosts:
    """Return a :class:`NetnsHosts`, or skip (fail under ``DDPG_ROS_REQUIRE_NETNS=1``)."""
    try:
        return NetnsHosts(hosts, domain_id, log_dir, multicast=multicast)
    except NetnsUnavailable as exc:
        skip_or_fail(str(exc))
        raise  # not reached


@pytest.fixture
def netns_hosts(request: pytest.FixtureRequest, ros_domain_id: int,
                tmp_path: Path) -> Iterator[Callable[..., NetnsHosts]]:
    """
    Make hosts through a factory, ``factory(['a', 'b'], multicast=True)``; remove them after.

    Teardown ends their processes and deletes their namespaces and links, also when the
    test failed; then it checks that nothing is left.
    """
    made: list[NetnsHosts] = []

    def factory(hosts: Sequence[str], multicast: bool = True) -> NetnsHosts:
        made.append(make_hosts(hosts, ros_domain_id, tmp_path, multicast=multicast))
        return made[-1]

    yield factory
    for hosts in made:
        hosts.close()
    left = [name for hosts in made for name in hosts.leftovers()]
    assert not left, f'left behind: {left}'


# Watching a fleet from a host: a probe node that prints what it hears as JSON lines

PROBE = '''
import json, sys
import rclpy
from rclpy.executors import ExternalShutdownException
from diagnostic_msgs.msg import DiagnosticArray
from ddpg_ros.ros.qos import DIAGNOSTICS_QOS
rclpy.init()
node = rclpy.create_node('netns_probe')


def on_diagnostics(array):
    for status in array.status:
        values = {kv.key: kv.value for kv in status.values}
        print(json.dumps({'name': status.name, 'message': status.message, **values}),
              flush=True)


node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, DIAGNOSTICS_QOS)
print('probe up', flush=True)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
node.destroy_node()
rclpy.try_shutdown()
'''


class DiagnosticsProbe:
    """A process on a host that prints every ``/diagnostics`` status it hears, one JSON a line."""

    def __init__(self, hosts: NetnsHosts, host: str, env: dict[str, str] | None = None) -> None:
        self.process = hosts.start(host, [sys.executable, '-c', PROBE], name=f'probe_{host}',
                                   env=env)
        self._offset = 0
        self._partial = ''
        self.statuses: list[tuple[float, dict[str, str]]] = []
        """Every status heard so far, with the monotonic time this process read it."""

    def poll(self) -> None:
        """Read the statuses printed since the last poll."""
        with open(self.process.log_path, errors='replace') as log:
            log.seek(self._offset)
            text = log.read()
            self._offset = log.tell()
        lines = (self._partial + text).split('\n')
        self._partial = lines.pop()
        now = time.monotonic()
        for line in lines:
            if line.startswith('{'):
                try:
                    self.statuses.append((now, json.loads(line)))
                except json.JSONDecodeError:
                    continue

    def latest(self, name: str, actor_id: str | None = None) -> dict[str, str] | None:
        """Return the newest status ``name`` (of ``actor_id`` where given), if any came."""
        for _, status in reversed(self.statuses):
            if status['name'] == name and (actor_id is None or
                                           status.get('actor_id') == actor_id):
                return status
        return None

    def learner(self) -> dict[str, str]:
        return self.latest('ddpg_learner: learner') or {}

    def actor(self, actor_id: str) -> dict[str, str]:
        """Return the learner's view of one actor."""
        return self.latest(f'ddpg_learner: actor {actor_id}') or {}

    def agent(self, actor_id: str) -> dict[str, str]:
        """One remote actor's own status."""
        return self.latest('ddpg_agent: agent', actor_id) or {}

    def wait(self, predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
        """Poll until ``predicate()`` holds; False after ``timeout`` s or if the probe ended."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if predicate():
                return True
            if time.monotonic() > deadline or self.process.popen.poll() is not None:
                return False
            time.sleep(interval)
