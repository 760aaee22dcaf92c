"""
What the ROS benchmarks share.

A ROS domain of their own on loopback DDS, the node processes they start and end by pid, and
the header of their reports.

Every process gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and the benchmark's own domain
id (claimed as the tests claim theirs), writes its output to a log file, and is ended by its
pid (SIGINT, then SIGKILL).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'test'))
from conftest import RosTestNode, claim_domain_id, loopback_env as ros_env  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import save_report  # noqa: E402

STOP_TIMEOUT = 15.0
"""Seconds a node gets to end after SIGINT before it is killed."""

__all__ = ['DiagnosticsObserver', 'claim_domain_id', 'cpu_seconds', 'report_header',
           'ros_env', 'start', 'stop', 'uptime', 'write_report']


class DiagnosticsObserver(RosTestNode):
    """
    An rclpy node in this process that keeps the agent's and the sim's ``/diagnostics``.

    Every status is kept with the time it arrived and its header stamp. The node is the tests'
    :class:`RosTestNode` (its own context, ``spin_until``, ``spin_for``, ``close``).
    """

    def __init__(self, domain_id: int, name: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from ddpg_ros.ros.qos import DIAGNOSTICS_QOS
        super().__init__(domain_id, name)
        self.records: dict[str, list[dict]] = {'agent': [], 'sim': []}
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      DIAGNOSTICS_QOS)

    def annotate(self) -> dict:
        """Extra keys for each record; a benchmark's own marks (e.g. a window)."""
        return {}

    def _on_diagnostics(self, msg) -> None:
        now = time.monotonic()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            who = ('agent' if status.name.startswith('ddpg_agent') else
                   'sim' if status.name.startswith('mujoco_sim') else None)
            if who:
                self.records[who].append({'received': now, 'stamp': stamp,
                                          'message': status.message, **self.annotate(),
                                          **values})

    def latest(self, who: str) -> dict:
        """Return the newest record of ``who`` ('agent' or 'sim'), {} before the first."""
        return self.records[who][-1] if self.records[who] else {}


def report_header(args: argparse.Namespace) -> dict:
    """When, where and how a benchmark ran: the first keys of its JSON report."""
    return {
        'date_utc': datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores',
        'command': f'python benchmarks/{Path(sys.argv[0]).name} ' + ' '.join(sys.argv[1:]),
        'args': {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        'uptime_before': uptime(),
    }


def start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``command`` in a session of its own, stdout and stderr to ``log_path``."""
    with open(log_path, 'wb') as log:
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> int | None:
    """SIGINT by pid, then SIGKILL by pid if it does not end; the exit status or None."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)
    try:
        return process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def uptime() -> str:
    """``uptime``'s line: how loaded the machine was."""
    return subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()


def write_report(out_dir: Path, name: str, report: dict, text: str) -> None:
    """Write ``<name>.json`` (the report) and ``<name>.md`` (``text``) in ``out_dir``; print."""
    save_report(out_dir / f'{name}.json', report, text)
