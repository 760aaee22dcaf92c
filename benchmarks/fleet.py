"""
One learner, many robots: how fast the fleet runs against what its learner can do alone.

Rerun (about 4 minutes on 2 idle cores)::

    . .venv/bin/activate
    python benchmarks/fleet.py --robots 1 2 --window 15 --warmup 10

What runs, in one ROS domain claimed with ``test/conftest.py``'s ``claim_domain_id`` on
loopback DDS; every process started here is ended by its pid:

1. **Learner alone** (this process): the learner's networks, replay buffer and
   ``BackgroundLearner`` thread, free-running on 10,000 random pendulum transitions: the
   update rate the learner reaches with nothing else to do (64-64 networks, batch 64, one
   torch thread: the fleet test's learner).
2. **Lockstep fleet** (``--robots``, each count in turn): ``ddpg_learner`` and N pairs of
   ``mujoco_sim`` (lockstep) + ``ddpg_agent`` (``learner:=remote``), learning at one update
   per transition; once past ``learning_starts``, ``--warmup`` s to settle, then a
   ``--window`` s measurement of the learner's stored transitions/s and updates/s (from its
   ``/diagnostics``), and each actor's action latency. Then learning is paused
   (``ddpg_learner/set_training`` false: no updates, so no actor waits) and the same window
   again: what DDS and the simulators allow.
3. **Ingest capacity**: ``ddpg_learner`` with learning paused, fed by this process with
   pre-encoded batches of ``--batch`` pendulum transitions at each of ``--ingest-rates``
   batches/s for ``--ingest-seconds`` s: transitions stored per second, and batches lost on
   the way (gaps in the sequence: the learner's reader history, 1000 batches deep, overflows
   when its executor falls behind). Also the same decode-check-store path in this process
   without DDS (``FleetLearner.ingest``).

Output: ``--out-dir``/fleet.{json,md} (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ros_processes import (DiagnosticsObserver, claim_domain_id, cpu_seconds, report_header,
                           ros_env, start, stop, uptime, write_report)

HERE = Path(__file__).resolve().parent
LEARNER = {'hidden_sizes': '[64, 64]', 'batch_size': '64', 'actor_lr': '0.001',
           'critic_lr': '0.001', 'learning_starts': '1000', 'buffer_size': '100000',
           'device': 'cpu', 'tensorboard': 'false', 'checkpoint_every': '0', 'log_every': '0'}


class FleetObserver(DiagnosticsObserver):
    """The agent's and sim's statuses as the base class keeps them, and the learner's."""

    def __init__(self, domain_id: int, name: str) -> None:
        super().__init__(domain_id, name)
        self.records['learner'] = []
        self.records['actors'] = []

    def _on_diagnostics(self, msg) -> None:
        super()._on_diagnostics(msg)
        now = time.monotonic()
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if status.name == 'ddpg_learner: learner':
                self.records['learner'].append({'received': now, **values})
            elif status.name.startswith('ddpg_learner: actor'):
                self.records['actors'].append({'received': now, **values})


def rate(records: list[dict], key: str, since: float, until: float) -> float:
    window = [r for r in records if since <= r['received'] <= until and r.get(key)]
    if len(window) < 2:
        return float('nan')
    first, last = window[0], window[-1]
    return (float(last[key]) - float(first[key])) / (last['received'] - first['received'])


def learner_alone(seconds: float) -> dict:
    import torch

    from ddpg_ros.core.config import DDPGConfig
    from ddpg_ros.core.ddpg import DDPG
    from ddpg_ros.core.learner import BackgroundLearner
    from ddpg_ros.core.replay_buffer import ReplayBuffer

    torch.set_num_threads(1)
    config = DDPGConfig(hidden_sizes=(64, 64), batch_size=64, actor_lr=1e-3, critic_lr=1e-3,
                        device='cpu')
    agent = DDPG(4, np.array([-3.0]), np.array([3.0]), config)
    buffer = ReplayBuffer(100_000, 4, 1)
    rng = np.random.default_rng(0)
    for _ in range(10_000):
        buffer.add(rng.normal(size=4), rng.uniform(-3, 3, 1), 1.0, rng.normal(size=4), False)
    learner = BackgroundLearner(agent, buffer, config.batch_size, snapshot_every=20)
    learner.start()
    time.sleep(2.0)
    before, started = learner.updates, time.monotonic()
    time.sleep(seconds)
    updates = learner.updates - before
    elapsed = time.monotonic() - started
    learner.stop()
    return {'updates_per_s': round(updates / elapsed, 1), 'seconds': round(elapsed, 1)}


def node(module: str, *args: str) -> list[str]:
    return [sys.executable, '-m', f'ddpg_ros.ros.{module}', '--ros-args', *args]


def params(values: dict) -> list[str]:
    return [arg for name, value in values.items() for arg in ('-p', f'{name}:={value}')]


def switch_training(observer: FleetObserver, on: bool) -> None:
    from std_srvs.srv import SetBool

    client = observer.node.create_client(SetBool, '/ddpg_learner/set_training')
    assert observer.spin_until(client.service_is_ready, 30.0), 'no set_training service'
    future = client.call_async(SetBool.Request(data=on))
    assert observer.spin_until(future.done, 10.0), 'set_training did not answer'


def fleet_run(domain_id: int, robots: int, args: argparse.Namespace, logs: Path) -> dict:
    env = ros_env(domain_id)
    directory = Path(tempfile.mkdtemp(prefix='fleet_', dir=logs))
    processes = {'ddpg_learner': start(node('ddpg_learner_node', *params(
        {**LEARNER, 'checkpoint_dir': directory, **dict(args.learner_param)})), env,
        logs / f'learner_{robots}.log')}
    for i in range(robots):
        namespace = ['-r', f'__ns:=/robot_{i}', '-r', '/clock:=clock']
        processes[f'mujoco_sim_{i}'] = start(node('mujoco_sim_node', *namespace, '-p',
                                                  f'seed:={i}'), env, logs / f'sim_{i}.log')
        processes[f'ddpg_agent_{i}'] = start(node('ddpg_agent_node', *namespace, *params(
            {'learner': 'remote', 'seed': i, 'use_sim_time': 'true',
             **dict(args.actor_param)})), env,
            logs / f'agent_{i}_{robots}.log')
    observer = FleetObserver(domain_id, f'fleet_observer_{robots}')
    result: dict = {'robots': robots}
    try:
        learner = observer.records['learner']
        assert observer.spin_until(lambda: learner and int(learner[-1]['transitions']) > 1500,
                                   180.0), 'the fleet did not start learning'
        for phase, training in (('learning', True), ('paused', False)):
            switch_training(observer, training)
            observer.spin_for(args.warmup)
            since = time.monotonic()
            cpu = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            observer.spin_for(args.window)
            until = time.monotonic()
            cpu = {name: round(100 * (cpu_seconds(p.pid) - cpu[name]) / (until - since))
                   for name, p in processes.items()}
            agents = [r for r in observer.records['agent'] if since <= r['received'] <= until]
            result[phase] = {
                'transitions_per_s': round(rate(learner, 'transitions', since, until), 1),
                'updates_per_s': round(rate(learner, 'updates', since, until), 1),
                'latency_p50_ms': statistics.median(float(r['action_latency_p50_ms'])
                                                    for r in agents) if agents else None,
                'latency_p99_ms': max(float(r['action_latency_p99_ms']) for r in agents)
                if agents else None,
                'update_wait_mean_ms': statistics.median(float(r['update_wait_mean_ms'])
                                                         for r in agents) if agents else None,
                'cpu_percent': cpu,
            }
    finally:
        observer.close()
        for process in reversed(list(processes.values())):
            stop(process)
    return result


def ingest_in_process(batch: int, count: int) -> dict:
    from ddpg_ros.core.config import DDPGConfig
    from ddpg_ros.sim.envs import spec_for_task
    from ddpg_ros.fleet.learner import FleetLearner
    from ddpg_ros.fleet.settings import LearnerSettings
    from ddpg_ros.fleet.wire import encode_transitions
    from ddpg_ros.tasks import make_task

    task = make_task('inverted_pendulum')
    spec = spec_for_task(task)
    with tempfile.TemporaryDirectory() as directory:
        learner = FleetLearner(task, spec, LearnerSettings(checkpoint_dir=directory,
                                                           tensorboard=False,
                                                           checkpoint_every=0, log_every=0),
                               DDPGConfig(hidden_sizes=(64, 64), device='cpu',
                                          buffer_size=1_000_000, learning_starts=10**9),
                               lambda line: None, lambda line: None, lambda line: None)
        rows = np.random.default_rng(0).uniform(-1, 1, (batch, 11)).astype(np.float32)
        rows[:, -1] = 0.0
        messages = [encode_transitions(rows, run_id=learner.run_id, actor_id='/bench', epoch=1,
                                       sequence=i, policy_version=1, spec=spec)
                    for i in range(count)]
        started = time.perf_counter()
        for message in messages:
            learner.ingest(message.data, message.data_offset, message.dims)
        elapsed = time.perf_counter() - started
        learner.close(lambda line: None)
    return {'transitions_per_s': round(batch * count / elapsed), 'batches': count}


def ingest_over_dds(domain_id: int, args: argparse.Namespace, logs: Path) -> dict:
    from std_msgs.msg import UInt8MultiArray

    from ddpg_ros.sim.envs import spec_for_task
    from ddpg_ros.fleet.wire import decode_policy_header, encode_transitions
    from ddpg_ros.ros.fleet_messages import (POLICY_QOS, POLICY_TOPIC, TRANSITIONS_QOS,
                                             TRANSITIONS_TOPIC, message_parts, to_message)
    from ddpg_ros.tasks import make_task

    env = ros_env(domain_id)
    directory = Path(tempfile.mkdtemp(prefix='ingest_', dir=logs))
    learner = start(node('ddpg_learner_node', *params(
        {**LEARNER, 'checkpoint_dir': directory, 'save_buffer': 'false',
         'buffer_size': '2000000'})), env, logs / 'learner_ingest.log')
    observer = FleetObserver(domain_id, 'ingest_observer')
    headers: list = []
    observer.node.create_subscription(
        UInt8MultiArray, POLICY_TOPIC,
        lambda msg: headers.append(decode_policy_header(*message_parts(msg))[0]), POLICY_QOS)
    publisher = observer.node.create_publisher(UInt8MultiArray, TRANSITIONS_TOPIC,
                                               TRANSITIONS_QOS)
    try:
        assert observer.spin_until(lambda: headers and publisher.get_subscription_count(),
                                   60.0), 'no learner'
        switch_training(observer, False)
        assert observer.spin_until(lambda: observer.records['learner'], 10.0), 'no diagnostics'
        spec = spec_for_task(make_task('inverted_pendulum'))
        rows = np.random.default_rng(0).uniform(-1, 1, (args.batch, 11)).astype(np.float32)
        rows[:, -1] = 0.0
        run_id = headers[-1].run_id
        # Encoded before the clock starts: the sender shares the two cores with the learner.
        pool = [to_message(encode_transitions(rows, run_id=run_id, actor_id='/bench', epoch=1,
                                              sequence=i, policy_version=1, spec=spec))
                for i in range(int(sum(args.ingest_rates) * args.ingest_seconds) + 1)]
        sent, steps = 0, []
        for target in args.ingest_rates:
            before = dict(observer.records['learner'][-1])
            before_actor = ([r for r in observer.records['actors']
                             if r.get('actor_id') == '/bench'] or [{}])[-1]
            cpu = cpu_seconds(learner.pid)
            started = time.monotonic()
            count = int(target * args.ingest_seconds)
            # Paced: a batch every 1/target s (sequences go on rising across the steps).
            for i in range(count):
                due = started + i / target
                while time.monotonic() < due:
                    observer.executor.spin_once(timeout_sec=max(due - time.monotonic(), 0.0))
                publisher.publish(pool[sent + i])
            elapsed = time.monotonic() - started
            sent += count
            observer.spin_for(3.0)  # what is still queued is stored, and reported
            after = observer.records['learner'][-1]
            actor = [r for r in observer.records['actors'] if r.get('actor_id') == '/bench'][-1]
            stored = int(after['transitions']) - int(before['transitions'])
            steps.append({
                'target_batches_per_s': target, 'sent_batches_per_s': round(count / elapsed),
                'stored_transitions_per_s': round(stored / elapsed),
                'lost_batches': int(actor['lost_batches']) - int(before_actor.get(
                    'lost_batches', 0)),
                'learner_cpu_percent': round(100 * (cpu_seconds(learner.pid) - cpu)
                                             / (elapsed + 3.0)),
                'refused': {k: v for k, v in after.items() if k.startswith('refused_')}})
            print('ingest step:', steps[-1], flush=True)
        return {'batch': args.batch, 'steps': steps}
    finally:
        observer.close()
        stop(learner)


def markdown(report: dict) -> str:
    lines = [f"Run {report['date_utc']} on {report['machine']}; `{report['command']}`; "
             f"load before: {report['uptime_before']}.", '',
             f"Learner alone (64-64, batch 64, 1 thread): "
             f"**{report['learner_alone']['updates_per_s']} updates/s**.", '',
             '| robots | phase | transitions/s | updates/s | vs learner alone | '
             'latency p50 / p99 (ms) | update wait (ms) | CPU % |', '| --- ' * 8 + '|']
    alone = report['learner_alone']['updates_per_s']
    for run in report['fleet']:
        for phase in ('learning', 'paused'):
            r = run[phase]
            lines.append(f"| {run['robots']} | {phase} | {r['transitions_per_s']} | "
                         f"{r['updates_per_s']} | {r['updates_per_s'] / alone:.2f} | "
                         f"{r['latency_p50_ms']} / {r['latency_p99_ms']} | "
                         f"{r['update_wait_mean_ms']} | {r['cpu_percent']} |")
    ingest = report['ingest']
    lines += ['', f"Ingest, batches of {ingest['dds']['batch']} pendulum transitions: in process "
              f"(decode, check, store, no DDS) {ingest['in_process']['transitions_per_s']} "
              'transitions/s. Over DDS, paced:', '',
              '| batches/s sent | transitions/s stored | batches lost | learner CPU % |',
              '| --- | --- | --- | --- |']
    lines += [f"| {step['sent_batches_per_s']} | {step['stored_transitions_per_s']} | "
              f"{step['lost_batches']} | {step['learner_cpu_percent']} |"
              for step in ingest['dds']['steps']]
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--robots', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--window', type=float, default=15.0)
    parser.add_argument('--warmup', type=float, default=10.0)
    parser.add_argument('--batch', type=int, default=50)
    parser.add_argument('--ingest-rates', type=int, nargs='+', default=[200, 500, 1000, 2000],
                        help='batches/s to send the learner, one step each')
    parser.add_argument('--ingest-seconds', type=float, default=5.0)
    parser.add_argument('--learner-param', nargs=2, action='append', default=[],
                        metavar=('NAME', 'VALUE'), help='a ddpg_learner parameter (repeatable)')
    parser.add_argument('--actor-param', nargs=2, action='append', default=[],
                        metavar=('NAME', 'VALUE'), help='a ddpg_agent parameter (repeatable)')
    parser.add_argument('--out-dir', type=Path, default=HERE / 'results')
    args = parser.parse_args()
    report = report_header(args)
    logs = Path(tempfile.mkdtemp(prefix='fleet_bench_'))
    report['logs'] = str(logs)
    report['learner_alone'] = learner_alone(args.window)
    print('learner alone:', report['learner_alone'], flush=True)
    with claim_domain_id() as domain_id:
        report['fleet'] = []
        for robots in args.robots:
            report['fleet'].append(fleet_run(domain_id, robots, args, logs))
            print('fleet:', report['fleet'][-1], flush=True)
        report['ingest'] = {'in_process': ingest_in_process(args.batch, 2000),
                            'dds': ingest_over_dds(domain_id, args, logs)}
        print('ingest:', report['ingest'], flush=True)
    report['uptime_after'] = uptime()
    write_report(args.out_dir, 'fleet', report, markdown(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
