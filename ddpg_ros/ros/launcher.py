"""
``ddpg-launch``: runs a launch profile without ROS 2's launch tools.

    ddpg-launch train_sim task:=half_cheetah seed:=3
    ddpg-launch deploy checkpoint:=runs/hopper/checkpoint.pt params_file:=my_robot.yaml
    ddpg-launch launch/train_sim.launch.py task:=hopper       # the profile of that name

Each node of the profile (:mod:`ddpg_ros.ros.profiles`) runs as
``python -m ddpg_ros.ros.<module> --ros-args ...``, its output prefixed with ``[node]``.
SIGINT or SIGTERM is passed on to every node, which then gets ``--grace`` seconds before
SIGKILL (a second signal kills at once). What happens when a node ends by itself is the
node's (:class:`~ddpg_ros.ros.profiles.NodeSpec`): a ``required`` node (train_sim, deploy)
stops the others, since a training run without its simulation is no run; a ``respawn`` node
(train_fleet's learner) is started again after its ``respawn_delay``, unless it keeps failing
at start (``respawn_max_retries``), when it stops the others too; any other node
(train_fleet's robots) is reported and the others go on. The exit status is 0 when every
node ended cleanly, 1 when one failed (also one started again) or had to be killed, 2 for a
usage error.

DDS stays on this machine unless said otherwise: ``ROS_AUTOMATIC_DISCOVERY_RANGE`` is set to
``LOCALHOST`` when it is unset.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import selectors
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import IO

from ddpg_ros.ros.profiles import PROFILES, RESPAWN_STEADY, NodeSpec, ProfileError, \
    parse_arguments, resolve_profile

PROG = 'ddpg-launch'
DEFAULT_GRACE = 10.0
_POLL = 0.05
_PR_SET_PDEATHSIG = 1


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment for the nodes: loopback discovery unless set, unbuffered output."""
    env = dict(os.environ if base is None else base)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    # Line by line, so that prefixed output interleaves by line and shows up at once.
    env['PYTHONUNBUFFERED'] = '1'
    env.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '1')
    return env


def _die_with_launcher(launcher_pid: int) -> Callable[[], None]:
    # Linux only: a node whose launcher is killed outright (SIGKILL, a crash) gets SIGTERM
    # instead of running on unseen. The libc handle is made here, before any fork.
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != launcher_pid:  # the launcher died before prctl took effect
            os._exit(1)

    return set_parent_death_signal


def _label(node: NodeSpec) -> str:
    # The node's full name without the leading slash: unique, unlike the bare name.
    return f"{node.namespace.strip('/')}/{node.name}" if node.namespace.strip('/') \
        else node.name


class _Output:
    """One process's output pipe, relayed line by line under its node's label."""

    def __init__(self, label: str, stream: IO[bytes]) -> None:
        self.label = label
        self.stream = stream
        self.partial = b''


class _Running:
    """A node of the launch: its spec, its current process, when to start it again."""

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.label = _label(spec)
        self.process: subprocess.Popen[bytes] | None = None
        self.restart_at: float | None = None
        """Monotonic time of the next start of a respawning node that ended."""
        self.seen_exit = False
        """Its current process's end has been reported."""
        self.started_at = 0.0
        """Monotonic time of its current process's start."""
        self.quick_ends = 0
        """Its runs in a row, up to the current one, that ended within ``RESPAWN_STEADY`` s."""


class Launcher:
    """
    Starts the nodes, relays their output, and acts on each end as the node's spec says.

    A ``required`` node that ends stops the others; a ``respawn`` node is started again after
    its ``respawn_delay``, up to ``respawn_max_retries`` times in a row while it ends within
    ``RESPAWN_STEADY`` s of each start, and then stops the others; any other node's end is
    reported and the rest go on. A signal stops every node. Output is relayed by this one
    thread (no relay threads), so a node can be started again at any time: ``preexec_fn``
    never runs while other threads exist.

    :param nodes: what to run.
    :param grace: seconds the nodes get to stop before SIGKILL.
    :param env: environment for the nodes; default :func:`child_environment`.
    :param out: where prefixed output goes.
    """

    def __init__(self, nodes: Sequence[NodeSpec], grace: float = DEFAULT_GRACE,
                 env: dict[str, str] | None = None, out: IO[str] | None = None) -> None:
        self._nodes = list(nodes)
        self._grace = grace
        self._env = child_environment() if env is None else env
        self._out = sys.stdout if out is None else out
        self._signals: list[int] = []
        self._wake = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._preexec: Callable[[], None] = lambda: None

    def _say(self, prefix: str, text: str) -> None:
        self._out.write(f'[{prefix}] {text}\n')
        self._out.flush()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._wake.set()

    def run(self) -> int:
        """Run until a signal comes or a required node ends; the exit status (0 = clean)."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._selector.close()

    # Output

    def _relay(self, timeout: float) -> None:
        """Relay the lines that arrive within ``timeout`` seconds (a signal cuts it short)."""
        if not self._selector.get_map():
            self._wake.wait(timeout)
            return
        for key, _ in self._selector.select(timeout):
            self._read(key.data)

    def _read(self, output: _Output) -> bool:
        """Relay what one pipe holds now; False once it is closed (and unregistered)."""
        chunk = os.read(output.stream.fileno(), 65536)
        if chunk:
            *lines, output.partial = (output.partial + chunk).split(b'\n')
        else:
            lines, output.partial = [output.partial] if output.partial else [], b''
            self._selector.unregister(output.stream)
            output.stream.close()
        for line in lines:
            self._say(output.label, line.decode(errors='replace'))
        return bool(chunk)

    def _drain(self, process: subprocess.Popen[bytes]) -> None:
        """Relay what an ended process left in its pipe, so that its last lines come first."""
        try:
            key = self._selector.get_key(process.stdout)
        except (KeyError, ValueError):
            return
        ready = select.poll()
        ready.register(key.fd, select.POLLIN)
        while ready.poll(0) and self._read(key.data):
            pass

    # Processes

    def _start(self, node: _Running) -> bool:
        command = node.spec.command()
        try:
            # Own session: a Ctrl-C on the terminal reaches the launcher only, which
            # passes it on exactly once.
            node.process = subprocess.Popen(
                command, env=self._env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=self._preexec)
        except OSError as exc:
            self._say(PROG, f'cannot start {node.label}: {exc}')
            return False
        node.seen_exit, node.restart_at = False, None
        node.started_at = time.monotonic()
        assert node.process.stdout is not None
        self._selector.register(node.process.stdout, selectors.EVENT_READ,
                                _Output(node.label, node.process.stdout))
        self._say(PROG, f'started {node.label} (pid {node.process.pid}): '
                        f'{shlex.join(command)}')
        return True

    def _run(self) -> int:
        self._preexec = _die_with_launcher(os.getpid())
        self._say(PROG, f"ROS_DOMAIN_ID={self._env.get('ROS_DOMAIN_ID', '0')} "
                        f"ROS_AUTOMATIC_DISCOVERY_RANGE="
                        f"{self._env['ROS_AUTOMATIC_DISCOVERY_RANGE']}")
        nodes = [_Running(spec) for spec in self._nodes]
        failed = not all(self._start(node) for node in nodes)
        if not failed:
            failed = self._supervise(nodes)
        sent = self._signals[0] if self._signals else signal.SIGINT
        # Every process whose end was not reported yet: the running ones, and one that
        # ended at the same moment as the node that stops the launch.
        stopping = {node.label: node.process for node in nodes
                    if node.process is not None and not node.seen_exit}
        for process in stopping.values():
            if process.poll() is None:
                process.send_signal(sent)
        killed = self._wait_or_kill(stopping)
        self._relay_rest()

        for name, process in stopping.items():
            if name in killed:
                self._say(PROG, f'{name} did not stop within {self._grace:g} s: killed')
            elif process.returncode not in (0, -sent):
                failed = True
                self._say(PROG, f'{name} exited with status {process.returncode}')
        return 1 if failed or killed else 0

    def _supervise(self, nodes: list[_Running]) -> bool:
        """
        Act on each node's end until a signal, a required node's end or nothing left to run.

        :returns: whether a node failed (ended with a status other than 0) or did not start.
        """
        failed = False
        while not self._signals:
            self._relay(_POLL)
            now = time.monotonic()
            for node in nodes:
                process = node.process
                if process is None or node.seen_exit or process.poll() is None:
                    continue
                self._drain(process)
                node.seen_exit = True
                status = process.returncode
                failed = failed or status != 0
                if node.spec.required:
                    self._say(PROG, f'{node.label} ended (status {status}): stopping the rest')
                    return failed
                if node.spec.respawn and self._gives_up(node, now):
                    self._say(PROG, f'{node.label} ended (status {status}) within '
                                    f'{RESPAWN_STEADY:g} s of its start {node.quick_ends} times '
                                    'in a row: not starting it again; stopping the rest')
                    return True
                if node.spec.respawn:
                    delay = node.spec.respawn_delay
                    self._say(PROG, f'{node.label} ended (status {status}): starting it again '
                                    f'in {delay:g} s')
                    node.restart_at = now + delay
                else:
                    self._say(PROG, f'{node.label} ended (status {status}); the others go on')
            for node in nodes:
                if node.restart_at is not None and now >= node.restart_at \
                        and not self._signals and not self._start(node):
                    return True
            if all(node.seen_exit and node.restart_at is None for node in nodes):
                self._say(PROG, 'every node has ended')
                return failed
        self._say(PROG, f'{signal.Signals(self._signals[0]).name}: stopping every node')
        return failed

    @staticmethod
    def _gives_up(node: _Running, now: float) -> bool:
        """Count a respawning node's end; say whether it failed at start too often in a row."""
        if now - node.started_at >= RESPAWN_STEADY:
            node.quick_ends = 0
            return False
        node.quick_ends += 1
        limit = node.spec.respawn_max_retries
        return limit >= 0 and node.quick_ends > limit

    def _wait_or_kill(self, children: dict[str, subprocess.Popen[bytes]]) -> set[str]:
        signals_seen = len(self._signals)
        deadline = time.monotonic() + self._grace
        killed: set[str] = set()
        while any(child.poll() is None for child in children.values()):
            # A signal while the nodes are stopping means: now.
            if time.monotonic() >= deadline or len(self._signals) > signals_seen:
                for name, child in children.items():
                    if child.poll() is None:
                        child.kill()
                        killed.add(name)
                for child in children.values():
                    child.wait()
                break
            self._wake.clear()
            self._relay(_POLL)
        return killed

    def _relay_rest(self) -> None:
        """Relay what the ended nodes left in their pipes (at most a second's worth)."""
        deadline = time.monotonic() + 1.0
        while self._selector.get_map() and time.monotonic() < deadline:
            self._relay(_POLL)


def _profiles_help() -> str:
    lines = ['profiles and their arguments:']
    for profile in PROFILES.values():
        lines.append(f'  {profile.name}: {profile.description}')
        for arg in profile.arguments:
            default = '(required)' if arg.default is None else repr(arg.default)
            lines.append(f'    {arg.name}:={default}')
            lines.append(textwrap.fill(arg.description, 79, initial_indent=' ' * 8,
                                       subsequent_indent=' ' * 8))
    lines.append('')
    lines.append(textwrap.fill(
        'Other name:=value arguments are parameter overrides: node.param:=value for one '
        'node, param:=value for the nodes that take it.', 79))
    return '\n'.join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Run a ddpg_ros launch profile without ROS 2 launch tools.',
        epilog=_profiles_help())
    parser.add_argument('profile', help='profile name, or a path ending in .launch.py')
    parser.add_argument('arguments', nargs='*', metavar='name:=value')
    parser.add_argument('--only', action='append', metavar='NODE',
                        help='start only this node of the profile (repeatable)')
    parser.add_argument('--grace', type=float, default=DEFAULT_GRACE,
                        help='seconds the nodes get to stop before SIGKILL (default %(default)s)')
    parser.add_argument('--print', dest='print_only', action='store_true',
                        help='print the commands that would run, and exit')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ddpg-launch``."""
    parser = _parser()
    args = parser.parse_intermixed_args(argv)
    try:
        nodes = resolve_profile(args.profile).nodes(parse_arguments(args.arguments))
        if args.only:
            unknown = sorted(set(args.only) - {node.name for node in nodes})
            if unknown:
                raise ProfileError(f"--only {', '.join(unknown)}: not in this profile, which "
                                   f"has {', '.join(node.name for node in nodes)}")
            nodes = [node for node in nodes if node.name in args.only]
    except ProfileError as exc:
        parser.print_usage(sys.stderr)
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    if args.print_only:
        for node in nodes:
            print(shlex.join(node.command()))
        return 0
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return Launcher(nodes, args.grace).run()


if __name__ == '__main__':
    sys.exit(main())
