"""
How long a policy takes to reach a robot that joins late on another host, by socket buffers.

Rerun (as root, with iproute2; about 3 minutes)::

    . .venv/bin/activate
    python benchmarks/policy_delivery.py --repeats 5

Two hosts as network namespaces (``test/netns_hosts.py``: a veth each on a bridge, UDP only,
multicast discovery): ``ddpg_learner`` on host a publishes its first policy; then a remote
``ddpg_agent`` starts on host b, and the time from its start to its log line ``policy
version N ... received from the learner`` is taken (Python start-up and DDS discovery
included, which is why the 64-64 policy, a few KB, is timed beside the 256-256 one, 288 KB
in about 200 UDP fragments). Each pair of sizes runs under each socket buffer setting:

- ``linux-default``: ``net.core.rmem_max`` and ``wmem_max`` at 212992 (Linux's own default),
- ``readme``: 8388608, as the README recommends for policies beyond 64 KB,

set machine-wide with ``sysctl -w`` (these keys are not per namespace) and restored to what
they were at the end, also when the run fails.

Output: ``--out-dir``/policy_delivery.{json,md} (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ros_processes import claim_domain_id, report_header, uptime, write_report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'test'))
from netns_hosts import NetnsHosts  # noqa: E402

HERE = Path(__file__).resolve().parent
SETTINGS = {'linux-default': 212992, 'readme': 8388608}
KEYS = ('net.core.rmem_max', 'net.core.wmem_max')
SIZES = {'64-64': '[64, 64]', '256-256': '[256, 256]'}


def sysctl(key: str, value: int | None = None) -> int:
    """Read ``key``, or set it to ``value``; return its value."""
    if value is not None:
        subprocess.run(['sysctl', '-q', '-w', f'{key}={value}'], check=True)
    return int(subprocess.run(['sysctl', '-n', key], check=True, capture_output=True,
                              text=True).stdout)


def node(module: str, *params: str) -> list[str]:
    return [sys.executable, '-m', f'ddpg_ros.ros.{module}', '--ros-args',
            *[arg for param in params for arg in ('-p', param)]]


def deliver(domain_id: int, logs: Path, hidden: str) -> float:
    """Seconds from a late actor's start on host b to the learner's policy in its hands."""
    with NetnsHosts(['a', 'b'], domain_id, logs) as hosts:
        learner = hosts.start('a', node(
            'ddpg_learner_node', 'task:=half_cheetah', f'hidden_sizes:={hidden}',
            f'checkpoint_dir:={tempfile.mkdtemp(dir=logs)}', 'device:=cpu',
            'tensorboard:=false', 'checkpoint_every:=0'), name='ddpg_learner')
        learner.wait_for_line(r'ready: .*policy version \d+')
        started = time.monotonic()
        actor = hosts.start('b', node('ddpg_agent_node', 'task:=half_cheetah',
                                      'learner:=remote', 'use_sim_time:=true'),
                            name='ddpg_agent')
        actor.wait_for_line(r'policy version \d+ of run \S+ received from the learner')
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out-dir', type=Path, default=HERE / 'results')
    args = parser.parse_args()
    report = report_header(args)
    logs = Path(tempfile.mkdtemp(prefix='policy_delivery_'))
    saved = {key: sysctl(key) for key in KEYS}
    report['sysctl_before'] = saved
    report['rows'] = []
    try:
        with claim_domain_id() as domain_id:
            for setting, value in SETTINGS.items():
                for key in KEYS:
                    sysctl(key, value)
                for size, hidden in SIZES.items():
                    seconds = [deliver(domain_id, logs, hidden) for _ in range(args.repeats)]
                    row = {'buffers': setting, 'rmem_max': value, 'policy': size,
                           'seconds': [round(s, 2) for s in seconds],
                           'median_s': round(statistics.median(seconds), 2)}
                    report['rows'].append(row)
                    print(row, flush=True)
    finally:
        for key, value in saved.items():
            sysctl(key, value)
    report['uptime_after'] = uptime()
    lines = [f"Run {report['date_utc']} on {report['machine']}; `{report['command']}`; "
             f"sysctl before (restored after): {saved}.", '',
             '| socket buffers (rmem_max, wmem_max) | policy | seconds, start to policy '
             '(median) | every run |', '| --- | --- | --- | --- |']
    lines += [f"| {r['buffers']} ({r['rmem_max']}) | {r['policy']} | {r['median_s']} | "
              f"{r['seconds']} |" for r in report['rows']]
    write_report(args.out_dir, 'policy_delivery', report, '\n'.join(lines) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
