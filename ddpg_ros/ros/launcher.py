"""
``ddpg-launch``: runs a launch profile without ROS 2's launch tools.

    ddpg-launch train_sim task:=half_cheetah seed:=3
    ddpg-launch deploy checkpoint:=runs/hopper/checkpoint.pt params_file:=my_robot.yaml
    ddpg-launch launch/train_sim.launch.py task:=hopper       # the profile of that name

Each node of the profile (:mod:`ddpg_ros.ros.profiles`) runs as
``python -m ddpg_ros.ros.<module> --ros-args ...``, its output prefixed with ``[node]``.
SIGINT or SIGTERM is passed on to every node, which then gets ``--grace`` seconds before
SIGKILL (a second signal kills at once). When one node ends by itself the others are
stopped too: a training run without its simulation is no run. The exit status is 0 when
every node ended cleanly, 1 when one failed or had to be killed, 2 for a usage error.

DDS stays on this machine unless said otherwise: ``ROS_AUTOMATIC_DISCOVERY_RANGE`` is set to
``LOCALHOST`` when it is unset.
"""

from __future__ import annotations

import argparse
import ctypes
import os
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

from ddpg_ros.ros.profiles import PROFILES, NodeSpec, ProfileError, parse_arguments, \
    resolve_profile

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


class Launcher:
    """
    Starts the nodes, relays their output, stops them on a signal or when one ends.

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
        self._out_lock = threading.Lock()
        self._signals: list[int] = []
        self._wake = threading.Event()

    def _say(self, prefix: str, text: str) -> None:
        with self._out_lock:
            self._out.write(f'[{prefix}] {text}\n')
            self._out.flush()

    def _relay(self, name: str, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b''):
            self._say(name, line.decode(errors='replace').rstrip('\n'))
        stream.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._wake.set()

    def run(self) -> int:
        """Run until a signal comes or a node ends; the exit status (0 = all ended cleanly)."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> int:
        preexec = _die_with_launcher(os.getpid())
        children: dict[str, subprocess.Popen[bytes]] = {}
        start_failed = False
        self._say(PROG, f"ROS_DOMAIN_ID={self._env.get('ROS_DOMAIN_ID', '0')} "
                        f"ROS_AUTOMATIC_DISCOVERY_RANGE="
                        f"{self._env['ROS_AUTOMATIC_DISCOVERY_RANGE']}")
        for node in self._nodes:
            command = node.command()
            label = _label(node)
            try:
                # Own session: a Ctrl-C on the terminal reaches the launcher only, which
                # passes it on exactly once.
                children[label] = subprocess.Popen(
                    command, env=self._env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec)
            except OSError as exc:
                self._say(PROG, f'cannot start {label}: {exc}')
                start_failed = True
                break
            self._say(PROG, f'started {label} (pid {children[label].pid}): '
                            f'{shlex.join(command)}')
        # Relay threads only after every fork: preexec_fn must not run while threads exist.
        relays = [threading.Thread(target=self._relay, args=(name, child.stdout), daemon=True)
                  for name, child in children.items()]
        for relay in relays:
            relay.start()

        while not (self._signals or start_failed
                   or any(child.poll() is not None for child in children.values())):
            self._wake.wait(_POLL)
        failed = self._first_exit_failed(children) or start_failed
        sent = self._signals[0] if self._signals else signal.SIGINT
        for child in children.values():
            if child.poll() is None:
                child.send_signal(sent)
        killed = self._wait_or_kill(children)
        for relay in relays:
            relay.join(timeout=1.0)

        for name, child in children.items():
            status = child.returncode
            if name in killed:
                self._say(PROG, f'{name} did not stop within {self._grace:g} s: killed')
            elif status not in (0, -sent):
                failed = True
                self._say(PROG, f'{name} exited with status {status}')
        return 1 if failed or killed else 0

    def _first_exit_failed(self, children: dict[str, subprocess.Popen[bytes]]) -> bool:
        if self._signals:
            self._say(PROG, f'{signal.Signals(self._signals[0]).name}: stopping every node')
            return False
        for name, child in children.items():
            if child.poll() is not None:
                self._say(PROG, f'{name} ended (status {child.returncode}): stopping the rest')
                return child.returncode != 0
        return False  # the start failed, which the caller knows

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
            self._wake.wait(_POLL)
        return killed


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
