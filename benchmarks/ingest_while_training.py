"""
What ingest costs a training ``ddpg_learner``, per CPU-second, so that 2 cores cannot hide it.

Rerun (about 3 minutes on 2 idle cores)::

    . .venv/bin/activate
    python benchmarks/ingest_while_training.py --senders 3 --rates 1000 50000 --window 15

On a machine with 2 cores the learner's update rate falls when robots share them, whatever
ingest itself costs (benchmarks/RESULTS.md section 7). Counting the learner's updates per
CPU-second it used separates the two: the core shortage lowers the seconds, not the ratio.

One ``ddpg_learner`` (the fleet test's learner: 64-64 networks, batch 64, one torch thread)
runs free (``updates_per_step`` 0: it trains flat out on what it has), on loopback DDS in a
domain of its own. ``--senders`` sender processes (this script, ``--send``), each an actor
id of its own, publish pre-encoded batches of ``--batch`` pendulum transitions on
``ddpg_learner/transitions`` at a fixed pace. The steps, each measured over ``--window`` s:

1. **alone**: nothing sent (after the first ``learning_starts`` transitions), the learner
   training;
2. **ingesting** at each of ``--rates`` transitions/s in all, while it trains.

Per step: the learner's updates/s and transitions stored/s (its ``/diagnostics``), batches
lost (gaps in the senders' sequences, as the learner counts them), the learner process's CPU
and that of its busiest thread (the training thread: torch's kernels run on it), and
updates per CPU-second of each, against the alone step's.

Output: ``--out-dir``/ingest_while_training.{json,md} (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fleet import LEARNER, FleetObserver, node, params, rate
from ros_processes import (claim_domain_id, cpu_seconds, report_header, ros_env, start, stop,
                           uptime, write_report)

HERE = Path(__file__).resolve().parent


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of ``pid``."""
    ticks = os.sysconf('SC_CLK_TCK')
    seconds = {}
    for task in Path(f'/proc/{pid}/task').iterdir():
        try:
            fields = (task / 'stat').read_text().rpartition(')')[2].split()
        except FileNotFoundError:
            continue  # a thread that ended
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def send(args: argparse.Namespace) -> int:
    """``--send``: publish batches at ``--pace`` batches/s for ``--seconds``, then exit."""
    from std_msgs.msg import UInt8MultiArray

    from ddpg_ros.fleet.wire import decode_policy_header, encode_transitions
    from ddpg_ros.ros.fleet_messages import (POLICY_QOS, POLICY_TOPIC, TRANSITIONS_QOS,
                                             TRANSITIONS_TOPIC, message_parts, to_message)
    from ddpg_ros.sim.envs import spec_for_task
    from ddpg_ros.tasks import make_task
    from ros_processes import RosTestNode

    ros = RosTestNode(int(os.environ['ROS_DOMAIN_ID']), f'sender_{os.getpid()}')
    headers: list = []
    ros.node.create_subscription(
        UInt8MultiArray, POLICY_TOPIC,
        lambda msg: headers.append(decode_policy_header(*message_parts(msg))[0]), POLICY_QOS)
    publisher = ros.node.create_publisher(UInt8MultiArray, TRANSITIONS_TOPIC, TRANSITIONS_QOS)
    try:
        if not ros.spin_until(lambda: headers and publisher.get_subscription_count(), 60.0):
            print('no learner', flush=True)
            return 1
        spec = spec_for_task(make_task('inverted_pendulum'))
        rows = np.random.default_rng(os.getpid()).uniform(-1, 1, (args.batch, 11))
        rows = rows.astype(np.float32)
        rows[:, -1] = 0.0
        count = int(args.pace * args.seconds)
        # Encoded before the clock starts: what is measured is the learner's side.
        pool = [to_message(encode_transitions(
            rows, run_id=headers[-1].run_id, actor_id=args.actor_id, epoch=1, sequence=i,
            policy_version=headers[-1].version, spec=spec)) for i in range(count)]
        print('sending', flush=True)
        started = time.monotonic()
        for i, message in enumerate(pool):
            due = started + i / args.pace
            while time.monotonic() < due:
                ros.executor.spin_once(timeout_sec=max(due - time.monotonic(), 0.0))
            publisher.publish(message)
        ros.spin_for(2.0)  # the last ones acknowledged before this participant leaves
        print(f'sent {count} in {time.monotonic() - started:.1f} s', flush=True)
        return 0
    finally:
        ros.close()


class Senders:
    """Sender processes of one step, each its own actor id, ended by pid."""

    def __init__(self, env: dict[str, str], logs: Path, name: str, senders: int,
                 transitions_per_s: float, seconds: float, batch: int) -> None:
        pace = transitions_per_s / batch / senders
        self.processes = [start([sys.executable, __file__, '--send', '--actor-id',
                                 f'/bench_{name}_{k}', '--pace', str(pace), '--seconds',
                                 str(seconds), '--batch', str(batch)], env,
                                logs / f'sender_{name}_{k}.log') for k in range(senders)]
        self.logs = [logs / f'sender_{name}_{k}.log' for k in range(senders)]

    def wait_sending(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all('sending' in log.read_text() for log in self.logs):
                return
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.05)
        raise RuntimeError('senders did not start: ' +
                           ' | '.join(log.read_text()[-300:] for log in self.logs))

    def stop(self) -> None:
        for process in self.processes:
            stop(process)


def measure(observer: FleetObserver, learner_pid: int, window: float,
            training_thread: int | None) -> dict:
    """Measure the learner's updates, transitions and CPU over ``window`` s from now."""
    since = time.monotonic()
    cpu, threads = cpu_seconds(learner_pid), thread_cpu_seconds(learner_pid)
    actors_before = {r['actor_id']: int(r.get('lost_batches', 0))
                     for r in observer.records['actors'] if 'actor_id' in r}
    observer.spin_for(window)
    until = time.monotonic()
    elapsed = until - since
    cpu = cpu_seconds(learner_pid) - cpu
    after = thread_cpu_seconds(learner_pid)
    per_thread = {tid: after[tid] - threads.get(tid, 0.0) for tid in after}
    training_thread = training_thread or max(per_thread, key=per_thread.get)
    learner = observer.records['learner']
    updates_per_s = rate(learner, 'updates', since, until)
    latest = {r['actor_id']: int(r.get('lost_batches', 0))
              for r in observer.records['actors'] if 'actor_id' in r}
    return {
        'seconds': round(elapsed, 1),
        'updates_per_s': round(updates_per_s, 1),
        'stored_transitions_per_s': round(rate(learner, 'transitions', since, until)),
        'lost_batches': sum(v - actors_before.get(k, 0) for k, v in latest.items()),
        'learner_cpu_percent': round(100 * cpu / elapsed),
        'training_thread': training_thread,
        'training_thread_cpu_percent': round(100 * per_thread[training_thread] / elapsed),
        'updates_per_cpu_s': round(updates_per_s * elapsed / cpu, 1),
        'updates_per_training_thread_cpu_s': round(
            updates_per_s * elapsed / per_thread[training_thread], 1),
    }


def markdown(report: dict) -> str:
    alone = report['steps'][0]
    per_cpu, per_thread = alone['updates_per_cpu_s'], alone['updates_per_training_thread_cpu_s']
    lines = [f"Run {report['date_utc']} on {report['machine']}; `{report['command']}`; "
             f"load before: {report['uptime_before']}.", '',
             '| step | transitions/s stored | batches lost | updates/s | learner CPU % | '
             'training thread CPU % | updates per learner CPU-s (vs alone) | '
             'updates per training-thread CPU-s (vs alone) |', '| --- ' * 8 + '|']
    for step in report['steps']:
        lines.append(
            f"| {step['name']} | {step['stored_transitions_per_s']} | {step['lost_batches']} | "
            f"{step['updates_per_s']} | {step['learner_cpu_percent']} | "
            f"{step['training_thread_cpu_percent']} | {step['updates_per_cpu_s']} "
            f"({step['updates_per_cpu_s'] / per_cpu:.2f}) | "
            f"{step['updates_per_training_thread_cpu_s']} "
            f"({step['updates_per_training_thread_cpu_s'] / per_thread:.2f}) |")
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--senders', type=int, default=3)
    parser.add_argument('--rates', type=float, nargs='+', default=[1000.0, 50000.0],
                        help='transitions/s in all, one step each')
    parser.add_argument('--window', type=float, default=15.0)
    parser.add_argument('--batch', type=int, default=50)
    parser.add_argument('--out-dir', type=Path, default=HERE / 'results')
    parser.add_argument('--send', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--actor-id', default='/bench', help=argparse.SUPPRESS)
    parser.add_argument('--pace', type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument('--seconds', type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        return send(args)
    report = report_header(args)
    logs = Path(tempfile.mkdtemp(prefix='ingest_training_'))
    report['logs'] = str(logs)
    report['steps'] = []
    with claim_domain_id() as domain_id:
        env = ros_env(domain_id)
        learner = start(node('ddpg_learner_node', *params(
            {**LEARNER, 'updates_per_step': '0.0', 'buffer_size': '2000000',
             'checkpoint_dir': logs / 'learner', 'save_buffer': 'false'})), env,
            logs / 'learner.log')
        observer = FleetObserver(domain_id, 'ingest_observer')
        try:
            # Past learning_starts, so that the learner trains from here on.
            fill = Senders(env, logs, 'fill', 1, 2000.0, 2.0, args.batch)
            fill.wait_sending(60.0)
            learner_records = observer.records['learner']
            assert observer.spin_until(
                lambda: learner_records and float(learner_records[-1].get('updates', 0)) > 0,
                60.0), 'the learner did not start training'
            fill.stop()
            observer.spin_for(3.0)
            alone = measure(observer, learner.pid, args.window, None)
            report['steps'].append({'name': 'alone', **alone})
            print('alone:', alone, flush=True)
            for transitions_per_s in args.rates:
                name = f'{transitions_per_s:.0f}'
                senders = Senders(env, logs, name, args.senders, transitions_per_s,
                                  args.window + 8.0, args.batch)
                senders.wait_sending(60.0)
                observer.spin_for(2.0)
                step = measure(observer, learner.pid, args.window, alone['training_thread'])
                senders.stop()
                report['steps'].append({'name': f'ingesting {name}/s', **step})
                print(f'ingesting {name}/s:', step, flush=True)
                observer.spin_for(3.0)
        finally:
            observer.close()
            stop(learner)
    report['uptime_after'] = uptime()
    write_report(args.out_dir, 'ingest_while_training', report, markdown(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
