"""Starting and ending the node processes a ROS benchmark runs, on loopback DDS.

Every process gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and the benchmark's own domain
id, writes its output to a log file, and is ended by its pid (SIGINT, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

STOP_TIMEOUT = 15.0
"""Seconds a node gets to end after SIGINT before it is killed."""


def ros_env(domain_id: int) -> dict[str, str]:
    """This process's environment, confined to ``domain_id`` on loopback."""
    env = dict(os.environ)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=str(domain_id),
               PYTHONUNBUFFERED='1')
    env.pop('ROS_LOCALHOST_ONLY', None)
    return env


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
