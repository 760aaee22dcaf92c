"""
Lockstep env steps/s through ``mujoco_sim`` <-> ``ddpg_agent``, next to the bare rclpy floor.

Rerun (about 3 minutes on 2 idle cores)::

    . .venv/bin/activate
    python benchmarks/lockstep_throughput.py --repeats 3 --window 20 --warmup 5

What runs, all in one ROS domain claimed with ``test/conftest.py``'s ``claim_domain_id`` and
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``; every process started here is ended by its pid:

1. **Floor** (``--floor-repeats`` times): two plain rclpy processes of this script. ``ping``
   publishes a ``sensor_msgs/JointState`` (2 joints, like InvertedPendulum) and spins a
   ``SingleThreadedExecutor`` until the ``std_msgs/Float64MultiArray`` reply from ``echo``
   arrives, then sends the next; 300 warm-up round trips, then ``--round-trips`` timed. Same
   QoS as the nodes (reliable, keep last 10, volatile).
2. **The real pair**: ``python -m ddpg_ros.ros.mujoco_sim_node`` (``InvertedPendulum-v5``,
   ``mode:=lockstep``) and ``python -m ddpg_ros.ros.ddpg_agent_node`` (``mode:=train``,
   ``task:=inverted_pendulum``, ``hidden_sizes:=[64, 64]``, batch 256,
   ``updates_per_step:=1.0``, ``learning_starts`` = ``--learning-starts``, the reset service
   ``mujoco_sim/reset``, ``checkpoint_every:=0``, ``total_steps:=0``, ``torch_threads`` 1 by
   default). ``--image-rate`` > 0 also has the sim render ``mujoco_sim/image`` pictures (at
   its default 320x240) at that rate, to show what rendering costs the loop; this process
   subscribes to them, as the sim renders only while someone does (``--no-image-subscriber``
   shows what an unwatched ``image_rate`` costs). Once learning has
   started, the run alternates ``--repeats`` times between *learning paused*
   (``ddpg_agent/set_training`` false: acting, noise and replay go on, no gradient updates,
   no waiting for the learner) and *learning on* (``set_training`` true: one update per env
   step, held by the agent delaying its next command). Each phase gets ``--warmup`` s to
   settle, then a ``--window`` s measurement.

Steps/s come from the nodes' own counters on ``/diagnostics`` (1 Hz): the change of the
agent's ``env_steps`` (and the sim's ``steps``) between the first and the last message of the
window, divided by the difference of their ``header.stamp`` (wall clock, no sim time). No extra
subscriber to ``joint_states`` runs during the windows, so the measurement adds no load to the
loop. The CPU share of each node over the window comes from ``/proc/<pid>/stat``.

Output: ``--out-dir``/lockstep_throughput.{json,md} (default ``benchmarks/results``); node logs
in a temporary directory named in the JSON. Medians over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ros_processes import (DiagnosticsObserver, claim_domain_id, cpu_seconds, report_header,
                           ros_env, start, stop, uptime, write_report)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FLOOR_WARMUP_TRIPS = 300


# ----------------------------------------------------------------------------- helpers
def percentile(values: list[float], q: float) -> float:
    import numpy as np
    return float(np.percentile(values, q)) if values else float('nan')


# ----------------------------------------------------------------------------- floor roles
def _floor_node(name: str):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    rclpy.init()
    node = rclpy.create_node(name)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    return rclpy, node, executor, qos


def run_echo() -> int:
    """Answer every JointState with a Float64MultiArray, until SIGINT."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    rclpy, node, executor, qos = _floor_node('floor_echo')
    publisher = node.create_publisher(Float64MultiArray, 'floor/commands', qos)

    def on_state(msg: JointState) -> None:
        publisher.publish(Float64MultiArray(data=[float(msg.position[0])]))

    node.create_subscription(JointState, 'floor/joint_states', on_state, qos)
    try:
        executor.spin()
    except (KeyboardInterrupt, Exception):
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def run_ping(round_trips: int) -> int:
    """Time ``round_trips`` JointState -> Float64MultiArray round trips; one JSON line out."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    rclpy, node, executor, qos = _floor_node('floor_ping')
    replies = [0]
    node.create_subscription(Float64MultiArray, 'floor/commands',
                             lambda msg: replies.__setitem__(0, replies[0] + 1), qos)
    publisher = node.create_publisher(JointState, 'floor/joint_states', qos)
    deadline = time.monotonic() + 30.0
    while (publisher.get_subscription_count() < 1
           or node.count_publishers('floor/commands') < 1):
        if time.monotonic() > deadline:
            print(json.dumps({'error': 'echo not discovered in 30 s'}))
            return 1
        executor.spin_once(timeout_sec=0.05)
    end = time.monotonic() + 0.5  # let both reliable matches settle
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    msg = JointState(name=['slider', 'hinge'], position=[0.0, 0.0], velocity=[0.0, 0.0],
                     effort=[0.0, 0.0])
    latencies: list[float] = []
    timeouts = 0
    started = 0.0
    for trip in range(FLOOR_WARMUP_TRIPS + round_trips):
        if trip == FLOOR_WARMUP_TRIPS:
            started = time.perf_counter()
        want = replies[0] + 1
        msg.position[0] = float(trip)
        sent = time.perf_counter()
        publisher.publish(msg)
        while replies[0] < want:
            executor.spin_once(timeout_sec=1.0)
            if replies[0] < want and time.perf_counter() - sent > 1.0:
                timeouts += 1
                break
        if trip >= FLOOR_WARMUP_TRIPS:
            latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    print(json.dumps({'round_trips': round_trips, 'seconds': elapsed,
                      'round_trips_per_s': round_trips / elapsed,
                      'p50_ms': percentile(latencies, 50) * 1e3,
                      'p99_ms': percentile(latencies, 99) * 1e3,
                      'max_ms': max(latencies) * 1e3, 'timeouts': timeouts}))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def measure_floor(args: argparse.Namespace, env: dict[str, str], log_dir: Path) -> list[dict]:
    results = []
    for repeat in range(args.floor_repeats):
        echo = start([sys.executable, __file__, '--role', 'echo'], env,
                     log_dir / f'floor_echo_{repeat}.log')
        ping_log = log_dir / f'floor_ping_{repeat}.log'
        ping = start([sys.executable, __file__, '--role', 'ping', '--round-trips',
                      str(args.round_trips)], env, ping_log)
        try:
            ping.wait(180)
        except subprocess.TimeoutExpired:
            stop(ping)
        stop(echo)
        lines = [line for line in ping_log.read_text().splitlines() if line.startswith('{')]
        result = json.loads(lines[-1]) if lines else {'error': 'ping wrote no result'}
        print(f'floor {repeat}: {result}', flush=True)
        results.append(result)
    return results


# ----------------------------------------------------------------------------- the pair
class Observer(DiagnosticsObserver):
    """/diagnostics of both nodes, the agent's set_training service, the sim's pictures."""

    def __init__(self, domain_id: int, images: bool) -> None:
        from std_srvs.srv import SetBool
        super().__init__(domain_id, 'lockstep_benchmark')
        if images:
            from sensor_msgs.msg import Image

            from ddpg_ros.ros.qos import IMAGE_QOS
            self.node.create_subscription(Image, '/mujoco_sim/image', lambda msg: None,
                                          IMAGE_QOS)
        self.set_training_client = self.node.create_client(SetBool,
                                                           '/ddpg_agent/set_training')
        self._SetBool = SetBool

    def set_training(self, enabled: bool) -> str:
        if not self.set_training_client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError('ddpg_agent/set_training not available')
        future = self.set_training_client.call_async(self._SetBool.Request(data=enabled))
        if not self.spin_until(future.done, 10.0):
            raise RuntimeError('set_training did not answer in 10 s')
        response = future.result()
        if not response.success:
            raise RuntimeError(f'set_training({enabled}) failed: {response.message}')
        return response.message


def window_rates(records: list[dict], t0: float, t1: float, counters: tuple[str, ...]
                 ) -> dict[str, float]:
    inside = [r for r in records if t0 <= r['received'] <= t1]
    if len(inside) < 2:
        return {f'{c}_per_s': float('nan') for c in counters}
    first, last = inside[0], inside[-1]
    span = last['stamp'] - first['stamp']
    rates = {f'{c}_per_s': (float(last[c]) - float(first[c])) / span for c in counters}
    rates['span_s'] = span
    return rates


def measure_pair(args: argparse.Namespace, env: dict[str, str], domain_id: int,
                 log_dir: Path) -> tuple[list[dict], dict]:
    checkpoint_dir = log_dir / 'checkpoints'
    sim_cmd = [sys.executable, '-m', 'ddpg_ros.ros.mujoco_sim_node', '--ros-args',
               '-p', 'model:=InvertedPendulum-v5', '-p', 'mode:=lockstep',
               '-p', f'seed:={args.seed}', '-p', f'image_rate:={args.image_rate}']
    hidden = '[' + ', '.join(str(h) for h in args.hidden_sizes) + ']'
    agent_cmd = [sys.executable, '-m', 'ddpg_ros.ros.ddpg_agent_node', '--ros-args',
                 '-p', 'mode:=train', '-p', 'task:=inverted_pendulum',
                 '-p', f'seed:={args.seed}', '-p', f'checkpoint_dir:={checkpoint_dir}',
                 '-p', 'checkpoint_every:=0', '-p', f'learning_starts:={args.learning_starts}',
                 '-p', 'updates_per_step:=1.0', '-p', f'hidden_sizes:={hidden}',
                 '-p', f'batch_size:={args.batch_size}',
                 '-p', f'buffer_size:={args.buffer_size}',
                 '-p', f'torch_threads:={args.torch_threads}',
                 '-p', 'total_steps:=0', '-p', 'reset_service:=mujoco_sim/reset',
                 '-p', 'device:=cpu']
    commands = {'sim': ' '.join(sim_cmd[1:]), 'agent': ' '.join(agent_cmd[1:])}
    observer = Observer(domain_id, images=args.image_rate > 0.0 and args.image_subscriber)
    sim = start(sim_cmd, env, log_dir / 'mujoco_sim.log')
    agent = start(agent_cmd, env, log_dir / 'ddpg_agent.log')
    phases: list[dict] = []
    try:
        target = args.learning_starts + 500
        if not observer.spin_until(
                lambda: int(observer.latest('agent').get('env_steps', 0) or 0) >= target
                and int(observer.latest('agent').get('updates', 0) or 0) > 0, 300.0):
            raise RuntimeError(f'agent did not reach {target} env steps with updates in 300 s '
                               f'(last diagnostics: {observer.latest("agent")})')
        order = ['paused', 'learning']
        for repeat in range(args.repeats):
            for phase in (order if repeat % 2 == 0 else order[::-1]):
                message = observer.set_training(phase == 'learning')
                observer.spin_for(args.warmup)
                cpu0 = {'sim': cpu_seconds(sim.pid), 'agent': cpu_seconds(agent.pid)}
                t0 = time.monotonic()
                observer.spin_for(args.window)
                t1 = time.monotonic()
                cpu1 = {'sim': cpu_seconds(sim.pid), 'agent': cpu_seconds(agent.pid)}
                agent_rates = window_rates(observer.records['agent'], t0, t1,
                                           ('env_steps', 'updates', 'episodes'))
                sim_rates = window_rates(observer.records['sim'], t0, t1,
                                         ('steps', 'resets', 'images'))
                last = observer.latest('agent')
                result = {
                    'repeat': repeat, 'phase': phase, 'set_training_reply': message,
                    'env_steps_per_s': agent_rates['env_steps_per_s'],
                    'updates_per_s': agent_rates['updates_per_s'],
                    'episodes_per_s': agent_rates['episodes_per_s'],
                    'sim_steps_per_s': sim_rates['steps_per_s'],
                    'sim_resets_per_s': sim_rates['resets_per_s'],
                    'sim_images_per_s': sim_rates['images_per_s'],
                    'diagnostics_span_s': agent_rates.get('span_s'),
                    'cpu_sim_pct': 100 * (cpu1['sim'] - cpu0['sim']) / (t1 - t0),
                    'cpu_agent_pct': 100 * (cpu1['agent'] - cpu0['agent']) / (t1 - t0),
                    'agent_action_latency_p50_ms': float(last.get('action_latency_p50_ms',
                                                                  'nan')),
                    'agent_action_latency_p99_ms': float(last.get('action_latency_p99_ms',
                                                                  'nan')),
                    'agent_update_wait_mean_ms': float(last.get('update_wait_mean_ms', 'nan')),
                    'agent_update_to_data': last.get('update_to_data', ''),
                    'agent_warnings': last.get('warnings', ''),
                    'agent_training': last.get('training', ''),
                }
                print(f'{phase} {repeat}: {result}', flush=True)
                phases.append(result)
    finally:
        statuses = {'agent': stop(agent), 'sim': stop(sim)}
        observer.close()
    return phases, {'commands': commands, 'exit_status': statuses}


# ----------------------------------------------------------------------------- report
def med(rows: list[dict], key: str) -> float:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else float('nan')


def summarize(floor: list[dict], phases: list[dict]) -> dict:
    ok_floor = [f for f in floor if 'round_trips_per_s' in f]
    summary = {'floor_round_trips_per_s': med(ok_floor, 'round_trips_per_s'),
               'floor_p50_ms': med(ok_floor, 'p50_ms'), 'floor_p99_ms': med(ok_floor, 'p99_ms')}
    for phase in ('paused', 'learning'):
        rows = [p for p in phases if p['phase'] == phase]
        for key in ('env_steps_per_s', 'sim_steps_per_s', 'updates_per_s', 'episodes_per_s',
                    'cpu_sim_pct', 'cpu_agent_pct', 'agent_action_latency_p50_ms',
                    'agent_action_latency_p99_ms', 'agent_update_wait_mean_ms',
                    'sim_images_per_s'):
            summary[f'{phase}_{key}'] = med(rows, key)
        summary[f'{phase}_vs_floor'] = (summary[f'{phase}_env_steps_per_s']
                                        / summary['floor_round_trips_per_s'])
    return summary


def markdown(report: dict) -> str:
    s = report['summary']
    a = report['args']
    lines = [
        f'Lockstep throughput, {report["date_utc"]}, {report["machine"]}',
        '',
        f'Command: `{report["command"]}`',
        '',
        f'- uptime before: `{report["uptime_before"]}`',
        f'- uptime after: `{report["uptime_after"]}`',
        '',
        f'Agent: InvertedPendulum-v5 / task inverted_pendulum, hidden_sizes '
        f'{a["hidden_sizes"]}, batch {a["batch_size"]}, learning_starts '
        f'{a["learning_starts"]}, torch_threads {a["torch_threads"]}, CPU; sim image_rate '
        f'{a.get("image_rate", 0.0):g} Hz'
        f'{"" if a.get("image_subscriber", True) else " with no subscriber"}; '
        f'{a["repeats"]} repeats x {a["window"]} s windows after {a["warmup"]} s settling; '
        f'floor {a["floor_repeats"]} x {a["round_trips"]} round trips.',
        '',
        '| loop | env steps/s (median) | vs floor | updates/s | episodes/s | '
        'CPU sim / agent | agent latency p50 / p99 (ms) |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        f'| bare rclpy round trip (floor) | {s["floor_round_trips_per_s"]:.0f} | 1.00 | - | - '
        f'| - | RTT {s["floor_p50_ms"]:.3f} / {s["floor_p99_ms"]:.3f} |',
    ]
    for phase, label in (('paused', 'sim <-> agent, learning paused'),
                         ('learning', 'sim <-> agent, learning on (1 update/step)')):
        lines.append(
            f'| {label} | {s[f"{phase}_env_steps_per_s"]:.0f} | '
            f'{s[f"{phase}_vs_floor"]:.2f} | {s[f"{phase}_updates_per_s"]:.0f} | '
            f'{s[f"{phase}_episodes_per_s"]:.1f} | {s[f"{phase}_cpu_sim_pct"]:.0f}% / '
            f'{s[f"{phase}_cpu_agent_pct"]:.0f}% | {s[f"{phase}_agent_action_latency_p50_ms"]:.3f}'
            f' / {s[f"{phase}_agent_action_latency_p99_ms"]:.3f} |')
    lines += ['', 'Per window:', '',
              '| repeat | phase | env steps/s | sim steps/s | updates/s | episodes/s | '
              'sim pictures/s |',
              '| --- | --- | --- | --- | --- | --- | --- |']
    for p in report['phases']:
        lines.append(f'| {p["repeat"]} | {p["phase"]} | {p["env_steps_per_s"]:.0f} | '
                     f'{p["sim_steps_per_s"]:.0f} | {p["updates_per_s"]:.0f} | '
                     f'{p["episodes_per_s"]:.1f} | {p.get("sim_images_per_s", 0.0):.1f} |')
    lines += ['', 'Floor runs: ' + ', '.join(
        f'{f.get("round_trips_per_s", float("nan")):.0f}/s' for f in report['floor'])]
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--role', choices=('main', 'echo', 'ping'), default='main',
                        help=argparse.SUPPRESS)
    parser.add_argument('--round-trips', type=int, default=3000)
    parser.add_argument('--floor-repeats', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--window', type=float, default=20.0)
    parser.add_argument('--warmup', type=float, default=5.0)
    parser.add_argument('--learning-starts', type=int, default=1000)
    parser.add_argument('--hidden-sizes', type=int, nargs='+', default=[64, 64])
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--buffer-size', type=int, default=200_000)
    parser.add_argument('--torch-threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-rate', type=float, default=0.0,
                        help="the sim's image_rate (Hz): what rendering pictures costs")
    parser.add_argument('--image-subscriber', action=argparse.BooleanOptionalAction,
                        default=True, help='subscribe to the pictures (the sim renders only '
                        'while someone does)')
    parser.add_argument('--skip-floor', action='store_true')
    parser.add_argument('--out-dir', type=Path, default=HERE / 'results')
    args = parser.parse_args()
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
    if args.role == 'echo':
        return run_echo()
    if args.role == 'ping':
        return run_ping(args.round_trips)

    log_dir = Path(tempfile.mkdtemp(prefix='lockstep_throughput_'))
    report: dict = {
        **report_header(args),
        'log_dir': str(log_dir),
    }
    print(f'logs in {log_dir}; {report["uptime_before"]}', flush=True)
    with claim_domain_id() as domain_id:
        report['ros_domain_id'] = domain_id
        env = ros_env(domain_id)
        report['floor'] = [] if args.skip_floor else measure_floor(args, env, log_dir)
        report['phases'], report['pair'] = measure_pair(args, env, domain_id, log_dir)
    report['uptime_after'] = uptime()
    report['summary'] = summarize(report['floor'], report['phases'])
    write_report(args.out_dir, 'lockstep_throughput', report, markdown(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
