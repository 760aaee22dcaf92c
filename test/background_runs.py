"""
Training runs that start when the session does and use only the CPU time tests leave idle.

Most of the suite waits: for DDS discovery, for a timeout to trip, for a realtime sim. A
training run whose result depends on its seed alone (one torch thread, no clock in the loop)
does not care when it gets the CPU, so it can fill those gaps. A :class:`BackgroundChain`
runs its commands one after another at idle priority: ``SCHED_IDLE`` for its threads, and
an autogroup of its own at nice 19 where the kernel groups sessions (``sched_autogroup``),
because a process in another session otherwise gets an equal share however low its own
priority. A test process that wants a core gets it at once; the run gets what is left. The
tests that read a run go last in the session (``conftest.pytest_collection_modifyitems``),
by which time it has usually finished. One that has not is then all that is left to wait
for, so the test that waits lifts it to normal priority: at idle priority it would get no CPU
at all while anything else on the machine is busy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

Step = Sequence[str] | Callable[[], None]
"""A command line, or a function run between commands (e.g. a copy of what one left)."""


_AT_IDLE_PRIORITY = '''import os, sys
try:
    with open('/proc/self/autogroup', 'w') as group:  # this session's group, not pytest's
        group.write('19')
except OSError:
    pass
try:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
except (AttributeError, OSError):
    os.nice(19)
os.execvp(sys.argv[1], sys.argv[1:])
'''
"""Run ``argv[1:]`` with the scheduling above. A wrapper process, not ``preexec_fn``: code
run between fork and exec in pytest, whose rclpy threads may hold locks, can deadlock."""


def at_idle_priority(command: Sequence[str]) -> list[str]:
    """Return ``command`` wrapped so that it runs only on CPU time nothing else wants."""
    return [sys.executable, '-c', _AT_IDLE_PRIORITY, *command]


def to_normal_priority(session: int) -> None:
    """
    Give every thread of every process in ``session`` normal scheduling again.

    Leaving ``SCHED_IDLE`` and lowering a nice value need root or ``CAP_SYS_NICE``; without
    them the threads keep their idle priority (best effort, never an error).
    """
    for process in Path('/proc').iterdir():
        if not process.name.isdigit():
            continue
        try:
            # The fields after the command's closing parenthesis: state, ppid, pgrp, session.
            if int((process / 'stat').read_text().rpartition(')')[2].split()[3]) != session:
                continue
            with contextlib.suppress(OSError):
                (process / 'autogroup').write_text('0')
            for thread in (process / 'task').iterdir():
                tid = int(thread.name)
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                os.setpriority(os.PRIO_PROCESS, tid, 0)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to change


class BackgroundChain:
    """
    Commands run one after another in a thread, each at idle priority in its own session.

    Each command's stdout and stderr go to ``<log_dir>/<name>.<i>.out`` and ``.err``; the
    chain stops at the first command that fails.

    :param name: names the log files and the failure messages.
    :param steps: command lines and functions, in order.
    :param log_dir: where the output goes; it must exist.
    """

    _LIFT_PERIOD = 1.0
    """Seconds between two lifts to normal priority while a test waits."""

    def __init__(self, name: str, steps: Sequence[Step], log_dir: Path) -> None:
        self.name = name
        self.log_dir = log_dir
        self._steps = list(steps)
        self._stderr: list[str] = []
        self._error: BaseException | None = None
        self._process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._wanted = threading.Event()
        """Set when a test waits: from then on the chain runs at normal priority."""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f'background {name}',
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for i, step in enumerate(self._steps):
                if self._stopping.is_set():
                    raise RuntimeError('stopped')
                if callable(step):
                    step()
                    continue
                out, err = (self.log_dir / f'{self.name}.{i}.{kind}' for kind in ('out', 'err'))
                with open(out, 'wb') as stdout, open(err, 'wb') as stderr, self._lock:
                    self._process = subprocess.Popen(
                        list(step) if self._wanted.is_set() else at_idle_priority(step),
                        stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                        start_new_session=True)
                returncode = self._process.wait()
                self._stderr.append(err.read_text(errors='replace'))
                if returncode != 0:
                    raise RuntimeError(f'{" ".join(step)} exited with {returncode}:\n'
                                       f'{self._stderr[-1][-3000:]}')
        except BaseException as error:  # reported by wait(), in the test that needs the run
            self._error = error

    def wait(self, timeout: float) -> list[str]:
        """
        Wait for the chain to finish; return each command's stderr.

        A test waiting for the run is all that is left to do, so the run stops yielding: the
        command running now and those after it get normal priority. Idle priority gets no
        CPU at all while anything else on the machine is busy, and a wait would otherwise be
        as long as that load lasts.

        :raises AssertionError: a command failed, or the chain is still running after
            ``timeout`` seconds (then it is stopped).
        """
        deadline = time.monotonic() + timeout
        while True:
            # Lifted again each second: a command started a moment ago may set its own idle
            # priority only after a lift (its wrapper has not run yet), and would keep it.
            with self._lock:
                self._wanted.set()
                if self._process is not None and self._process.poll() is None:
                    to_normal_priority(self._process.pid)  # its session: start_new_session
            left = deadline - time.monotonic()
            self._thread.join(min(self._LIFT_PERIOD, max(left, 0.0)))
            if not self._thread.is_alive() or left <= 0.0:
                break
        if self._thread.is_alive():
            self.stop()
            raise AssertionError(f'background run {self.name} did not finish in {timeout} s')
        if self._error is not None:
            raise AssertionError(f'background run {self.name} failed: {self._error}')
        return list(self._stderr)

    def stop(self) -> None:
        """End the running command by its pid and start no other; wait for the thread."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
        self._thread.join(30.0)
