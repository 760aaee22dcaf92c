"""
State-to-command latency of ``ddpg_agent`` against ``mujoco_sim`` in realtime mode at 100 Hz.

Rerun (about 2 minutes on 2 idle cores)::

    . .venv/bin/activate
    python benchmarks/realtime_latency.py --window 60
    python benchmarks/realtime_latency.py --window 60 --learner remote

What runs, in one ROS domain claimed with ``test/conftest.py``'s ``claim_domain_id`` and
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``; every process started here is ended by its pid:

* ``python -m ddpg_ros.ros.mujoco_sim_node`` with ``model:=HalfCheetah-v5 mode:=realtime
  frame_skip:=1``: HalfCheetah's MuJoCo timestep is 0.01 s and its own frame_skip 5, so
  frame_skip 1 gives a 0.01 s control period, i.e. 100 Hz (InvertedPendulum's period is
  0.04 s; the two-link arm MJCF's 0.02 s). The dynamics per physics step are HalfCheetah's;
  only the control period is shorter (the task's forward-velocity reward, computed over its
  0.05 s period, is then 5x off: irrelevant to latency).
* ``python -m ddpg_ros.ros.ddpg_agent_node`` with ``mode:=train task:=half_cheetah
  updates_per_step:=0.0`` (free-running learner, as on a real robot) and a small
  ``learning_starts`` (default 500 steps, 5 s), so the learner trains flat out during the whole
  measurement; default nets 256-256, batch 256, ``torch_threads:=1``, CPU.
* With ``--learner remote``: ``python -m ddpg_ros.ros.ddpg_learner_node`` with the same
  learner settings trains flat out in a process of its own, and the agent runs with
  ``learner:=remote`` (it acts with the newest published policy and sends its transitions):
  the control loop no longer shares an interpreter with the gradient updates.
  ``--learner-cpu N`` also runs the learner alone on CPU ``N`` and the rest on the other CPUs,
  the nearest this machine gets to a learner on a workstation of its own.
* This process is the observer, a third process: it subscribes to ``joint_states``,
  ``effort_controller/commands``, ``ddpg_agent/episode_return`` and ``/diagnostics`` and keeps
  each message's rmw ``source_timestamp`` (when the writer published) and
  ``received_timestamp`` (when this process's DDS received it).

Once the learner runs (``updates`` > 0 on ``/diagnostics``) and ``--settle`` s have passed, it
records ``--window`` s. For every state, the latency is the time to the first command after
it, on two time bases: *publish* (sim's publish of the state -> agent's publish of the
command, i.e. DDS delivery to the agent + the agent's control step) and *receipt* (this
observer's receipt of the state -> its receipt of the command). A control period is *missed*
when no command comes between a state and the next state (a late command or none). States
within [-0.02, +0.1] s of an episode end are counted apart: the agent does not act on a
terminal state and waits for the reset service, so a miss there is by design. The agent's own
``action_latency_p50_ms`` / ``_p99_ms`` (callback entry -> publish, last 1000 commands) are
read from ``/diagnostics``.

Output: ``--out-dir``/realtime_latency.{json,md} (default ``benchmarks/results``); node logs in
a temporary directory named in the JSON.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lockstep_throughput import measure_floor
from ros_processes import (DiagnosticsObserver, claim_domain_id, cpu_seconds, report_header,
                           ros_env, start, stop, uptime)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LEARNER_WHERE = {'local': "in the agent's process", 'remote': 'a ddpg_learner process'}
RESET_MARGIN = (-0.02, 0.1)
"""Seconds around an episode end in which a missed period is by design."""


class Observer(DiagnosticsObserver):
    """
    Timestamps of states, commands and episode ends, and /diagnostics of both nodes.

    Each is marked with whether it came inside the measured window.
    """

    def __init__(self, domain_id: int) -> None:
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64, Float64MultiArray

        from ddpg_ros.ros.qos import COMMAND_QOS, STATE_QOS
        self.recording = False
        super().__init__(domain_id, 'realtime_latency_observer')
        self.times: dict[str, list[tuple[int, int]]] = {'state': [], 'command': [],
                                                        'episode': []}
        self.node.create_subscription(JointState, 'joint_states',
                                      lambda m, i: self._keep('state', i), STATE_QOS)
        self.node.create_subscription(Float64MultiArray, 'effort_controller/commands',
                                      lambda m, i: self._keep('command', i), COMMAND_QOS)
        self.node.create_subscription(Float64, 'ddpg_agent/episode_return',
                                      lambda m, i: self._keep('episode', i), 10)
        self.records['learner'] = []

    def _on_diagnostics(self, msg) -> None:
        super()._on_diagnostics(msg)
        for status in msg.status:
            if status.name == 'ddpg_learner: learner':
                self.records['learner'].append({**self.annotate(),
                                                **{kv.key: kv.value for kv in status.values}})

    def annotate(self) -> dict:
        return {'recording': self.recording}

    def _keep(self, kind: str, info) -> None:
        if self.recording:
            self.times[kind].append((int(info['source_timestamp']),
                                     int(info['received_timestamp'])))


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float('nan')


def analyse(states: list[int], commands: list[int], episodes: list[int]) -> dict:
    """Latencies (ms) from each state to the first command after it, and missed periods."""
    states, commands, episodes = sorted(states), sorted(commands), sorted(episodes)
    lo, hi = (int(m * 1e9) for m in RESET_MARGIN)
    latencies_all, latencies_in_period = [], []
    missed = missed_reset = reset_states = 0
    for i, s in enumerate(states[:-1]):
        j = bisect.bisect_right(commands, s)
        k = bisect.bisect_left(episodes, s - hi)
        near_reset = k < len(episodes) and episodes[k] <= s - lo
        reset_states += near_reset
        nxt = states[i + 1]
        if j < len(commands):
            latency = (commands[j] - s) * 1e-6
            latencies_all.append(latency)
        if j < len(commands) and commands[j] < nxt:
            latencies_in_period.append((commands[j] - s) * 1e-6)
        elif near_reset:
            missed_reset += 1
        else:
            missed += 1
    periods = np.diff(states) * 1e-6 if len(states) > 1 else np.array([])
    intervals = np.diff(commands) * 1e-6 if len(commands) > 1 else np.array([])
    return {
        'states': len(states), 'commands': len(commands), 'episode_ends': len(episodes),
        'p50_ms': pct(latencies_in_period, 50), 'p99_ms': pct(latencies_in_period, 99),
        'max_ms': max(latencies_in_period, default=float('nan')),
        'all_p50_ms': pct(latencies_all, 50), 'all_p99_ms': pct(latencies_all, 99),
        'all_max_ms': max(latencies_all, default=float('nan')),
        'missed_periods': missed, 'missed_periods_near_reset': missed_reset,
        'states_near_reset': reset_states,
        'missed_fraction': missed / max(len(states) - 1 - reset_states, 1),
        'state_interval_p50_ms': pct(periods, 50), 'state_interval_p99_ms': pct(periods, 99),
        'state_interval_max_ms': float(periods.max()) if len(periods) else float('nan'),
        # A timer-paced agent: how evenly commands go out, whatever the state rate.
        'command_interval_p50_ms': pct(intervals, 50),
        'command_interval_p99_ms': pct(intervals, 99),
        'command_interval_max_ms': float(intervals.max()) if len(intervals) else float('nan'),
        'command_intervals': len(intervals),
        'late_commands': int(np.sum(intervals > 1.5 * np.median(intervals)))
        if len(intervals) else 0,
    }


def _floor_summary(floor: list[dict]) -> dict:
    ok = [f for f in floor if 'p99_ms' in f]
    if not ok:
        return {}
    return {'round_trips': sum(int(f.get('round_trips', 0)) for f in ok),
            'p50_ms': statistics.median(f['p50_ms'] for f in ok),
            'p99_ms': statistics.median(f['p99_ms'] for f in ok),
            'max_ms': max(f.get('max_ms', float('nan')) for f in ok)}


def med(rows: list[dict], key: str) -> float:
    values = [float(r[key]) for r in rows if r.get(key) not in (None, '', 'nan')]
    return statistics.median(values) if values else float('nan')


def markdown(report: dict) -> str:
    a, r = report['args'], report['result']
    pub, rec, d = r['publish'], r['receipt'], r['diagnostics']
    rows = [
        f'Realtime latency, {report["date_utc"]}, {report["machine"]}',
        '',
        f'Command: `{report["command"]}`',
        '',
        f'- uptime before: `{report["uptime_before"]}`',
        f'- uptime after: `{report["uptime_after"]}`',
        '',
        f'Sim: {a["model"]} realtime, frame_skip {a["frame_skip"]} -> control period '
        f'{d["sim_control_dt"]} s, state_rate {a["state_rate"]:g} Hz (0 = once per period); '
        f'agent: control_rate {a["control_rate"]:g} Hz (0 = a command per state), task '
        f'{a["task"]}, train, learner {LEARNER_WHERE[a["learner"]]}, updates_per_step 0.0 '
        f'(free-running), learning_starts {a["learning_starts"]}, hidden_sizes '
        f'{a["hidden_sizes"]}, batch {a["batch_size"]}, torch_threads {a["torch_threads"]}, '
        f'CPU; window {a["window"]} s after {a["settle"]} s settling.',
        '',
        '| time base | states | commands | latency p50 / p99 / max (ms) | missed periods '
        '(not near reset) | near reset (by design) |',
        '| --- | --- | --- | --- | --- | --- |',
    ]
    for label, x in (('publish (sim pub -> agent pub)', pub),
                     ('receipt (observer rx state -> rx command)', rec)):
        rows.append(f'| {label} | {x["states"]} | {x["commands"]} | {x["p50_ms"]:.3f} / '
                    f'{x["p99_ms"]:.3f} / {x["max_ms"]:.3f} | {x["missed_periods"]} '
                    f'({100 * x["missed_fraction"]:.2f}%) | {x["missed_periods_near_reset"]} of '
                    f'{x["states_near_reset"]} |')
    floor = r.get('floor', {})
    if floor:
        rows.append(f'| bare rclpy round trip, same run (JointState -> Float64MultiArray '
                    f'echo) | - | {floor["round_trips"]} | {floor["p50_ms"]:.3f} / '
                    f'{floor["p99_ms"]:.3f} / {floor["max_ms"]:.3f} | - | - |')
    rows += [
        '',
        f'Command intervals (publish time base): p50 / p99 / max '
        f'{pub["command_interval_p50_ms"]:.2f} / {pub["command_interval_p99_ms"]:.2f} / '
        f'{pub["command_interval_max_ms"]:.2f} ms over {pub["command_intervals"]} intervals; '
        f'{pub["late_commands"]} came more than 1.5 median intervals after the one before.',
    ]
    rows += [
        '',
        f'Agent `/diagnostics` (median over the window): action_latency p50 '
        f'{d["agent_action_latency_p50_ms"]:.3f} ms, p99 {d["agent_action_latency_p99_ms"]:.3f}'
        f' ms; learner {d["agent_updates_per_s"]:.0f} updates/s '
        f'({d["agent_updates_in_window"]} updates in the window, {a["learner"]}). Sim: '
        f'{d["sim_steps_per_s"]:.1f} steps/s, real-time factor {d["sim_real_time_factor"]:.3f},'
        f' command timeouts {d["sim_command_timeouts_in_window"]}. State interval p50 / p99 / '
        f'max {pub["state_interval_p50_ms"]:.2f} / {pub["state_interval_p99_ms"]:.2f} / '
        f'{pub["state_interval_max_ms"]:.2f} ms. CPU over the window: sim '
        f'{r["cpu_sim_pct"]:.0f}%, agent {r["cpu_agent_pct"]:.0f}%, '
        + (f'learner {r["cpu_learner_pct"]:.0f}%, ' if 'cpu_learner_pct' in r else '')
        + f'observer {r["cpu_observer_pct"]:.0f}%.',
    ]
    return '\n'.join(rows) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--window', type=float, default=60.0)
    parser.add_argument('--settle', type=float, default=5.0)
    parser.add_argument('--model', default='HalfCheetah-v5')
    parser.add_argument('--frame-skip', type=int, default=1)
    parser.add_argument('--task', default='half_cheetah')
    parser.add_argument('--learning-starts', type=int, default=500)
    parser.add_argument('--hidden-sizes', type=int, nargs='+', default=[256, 256])
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--buffer-size', type=int, default=200_000)
    parser.add_argument('--torch-threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--control-rate', type=float, default=0.0,
                        help="the agent's control_rate (Hz); 0 = a command per state")
    parser.add_argument('--state-rate', type=float, default=0.0,
                        help="the sim's state_rate (Hz); 0 = once per control period")
    parser.add_argument('--floor-repeats', type=int, default=1,
                        help='bare rclpy round-trip measurements in the same run')
    parser.add_argument('--round-trips', type=int, default=2000)
    parser.add_argument('--learner', choices=sorted(LEARNER_WHERE), default='local',
                        help="local: the agent's own learner thread; remote: a ddpg_learner "
                             "process, the agent with learner:=remote")
    parser.add_argument('--learner-cpu', type=int, default=None,
                        help='with --learner remote: run the learner on this CPU alone and '
                             'everything else on the other CPUs, as if it had a machine '
                             'of its own')
    parser.add_argument('--out-dir', type=Path, default=HERE / 'results')
    parser.add_argument('--name', default='realtime_latency',
                        help='output file stem under --out-dir')
    args = parser.parse_args()
    if args.learner_cpu is not None:
        if args.learner != 'remote':
            parser.error('--learner-cpu needs --learner remote')
        others = os.sched_getaffinity(0) - {args.learner_cpu}
        if args.learner_cpu not in os.sched_getaffinity(0) or not others:
            parser.error(f'--learner-cpu {args.learner_cpu}: not one of this process\'s CPUs '
                         f'{sorted(os.sched_getaffinity(0))}, or the only one')
        os.sched_setaffinity(0, others)  # this process, the floor, the sim and the agent
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ.pop('ROS_LOCALHOST_ONLY', None)
    log_dir = Path(tempfile.mkdtemp(prefix='realtime_latency_'))
    report: dict = {
        **report_header(args),
        'log_dir': str(log_dir),
    }
    print(f'logs in {log_dir}; {report["uptime_before"]}', flush=True)
    hidden = '[' + ', '.join(str(h) for h in args.hidden_sizes) + ']'
    sim_cmd = [sys.executable, '-m', 'ddpg_ros.ros.mujoco_sim_node', '--ros-args',
               '-p', f'model:={args.model}', '-p', 'mode:=realtime',
               '-p', f'frame_skip:={args.frame_skip}', '-p', f'seed:={args.seed}',
               '-p', f'state_rate:={args.state_rate}']
    agent_cmd = [sys.executable, '-m', 'ddpg_ros.ros.ddpg_agent_node', '--ros-args',
                 '-p', 'mode:=train', '-p', f'task:={args.task}', '-p', f'seed:={args.seed}',
                 '-p', f'checkpoint_dir:={log_dir / "checkpoints"}', '-p', 'checkpoint_every:=0',
                 '-p', f'learning_starts:={args.learning_starts}', '-p', 'updates_per_step:=0.0',
                 '-p', f'hidden_sizes:={hidden}', '-p', f'batch_size:={args.batch_size}',
                 '-p', f'buffer_size:={args.buffer_size}',
                 '-p', f'torch_threads:={args.torch_threads}', '-p', 'total_steps:=0',
                 '-p', 'reset_service:=mujoco_sim/reset', '-p', 'device:=cpu',
                 '-p', f'control_rate:={args.control_rate}']
    learner_cmd = []
    if args.learner == 'remote':
        pin = [] if args.learner_cpu is None else ['taskset', '-c', str(args.learner_cpu)]
        learner_cmd = [*pin, sys.executable, '-m', 'ddpg_ros.ros.ddpg_learner_node',
                       '--ros-args',
                       '-p', f'task:={args.task}', '-p', f'seed:={args.seed}',
                       '-p', f'checkpoint_dir:={log_dir / "learner"}',
                       '-p', 'checkpoint_every:=0', '-p', 'log_every:=0',
                       '-p', 'tensorboard:=false',
                       '-p', f'learning_starts:={args.learning_starts}',
                       '-p', 'updates_per_step:=0.0', '-p', f'hidden_sizes:={hidden}',
                       '-p', f'batch_size:={args.batch_size}',
                       '-p', f'buffer_size:={args.buffer_size}',
                       '-p', f'torch_threads:={args.torch_threads}', '-p', 'device:=cpu',
                       '-p', f'control_rate:={args.control_rate}']
        agent_cmd += ['-p', 'learner:=remote']
    report['node_commands'] = {'sim': ' '.join(sim_cmd[1:]), 'agent': ' '.join(agent_cmd[1:]),
                               'learner': ' '.join(learner_cmd[1:])}
    with claim_domain_id() as domain_id:
        report['ros_domain_id'] = domain_id
        env = ros_env(domain_id)
        floor = measure_floor(args, env, log_dir)
        observer = Observer(domain_id)
        learner = start(learner_cmd, env, log_dir / 'ddpg_learner.log') if learner_cmd else None
        sim = start(sim_cmd, env, log_dir / 'mujoco_sim.log')
        agent = start(agent_cmd, env, log_dir / 'ddpg_agent.log')
        pids = [sim.pid, agent.pid, os.getpid()] + ([learner.pid] if learner else [])
        learning = 'learner' if learner else 'agent'

        def updates() -> int:
            rows = observer.records[learning]
            return int(rows[-1].get('updates', 0) or 0) if rows else 0

        try:
            if not observer.spin_until(lambda: updates() > 0, 300.0):
                raise RuntimeError('the learner did not start in 300 s; last diagnostics: '
                                   f'{observer.records[learning][-1:]}')
            observer.spin_for(args.settle)
            cpu0 = [cpu_seconds(p) for p in pids]
            t0 = time.monotonic()
            observer.recording = True
            observer.spin_for(args.window)
            observer.recording = False
            t1 = time.monotonic()
            cpu1 = [cpu_seconds(p) for p in pids]
        finally:
            report['exit_status'] = {'agent': stop(agent), 'sim': stop(sim)}
            if learner:
                report['exit_status']['learner'] = stop(learner)
            observer.close()
    report['uptime_after'] = uptime()
    times = observer.times
    agent_rows = [r for r in observer.records['agent'] if r['recording']]
    learner_rows = [r for r in observer.records[learning] if r['recording']]
    sim_rows = [r for r in observer.records['sim'] if r['recording']]
    cpu = [100 * (b - a) / (t1 - t0) for a, b in zip(cpu0, cpu1)]
    result = {
        'publish': analyse([s for s, _ in times['state']], [s for s, _ in times['command']],
                           [s for s, _ in times['episode']]),
        'receipt': analyse([r for _, r in times['state']], [r for _, r in times['command']],
                           [r for _, r in times['episode']]),
        'diagnostics': {
            'sim_control_dt': observer.latest('sim').get('control_dt', ''),
            'agent_action_latency_p50_ms': med(agent_rows, 'action_latency_p50_ms'),
            'agent_action_latency_p99_ms': med(agent_rows, 'action_latency_p99_ms'),
            'agent_action_latency_p99_ms_max': max(
                (float(r['action_latency_p99_ms']) for r in agent_rows), default=float('nan')),
            'agent_updates_per_s': med(learner_rows, 'updates_per_s'),
            'agent_updates_in_window': (int(learner_rows[-1]['updates'])
                                        - int(learner_rows[0]['updates']))
            if learner_rows else 0,
            'agent_env_steps_in_window': (int(agent_rows[-1]['env_steps'])
                                          - int(agent_rows[0]['env_steps']))
            if agent_rows else 0,
            'agent_warnings': sorted({r['warnings'] for r in agent_rows if r['warnings']}),
            'sim_steps_per_s': med(sim_rows, 'steps_per_second'),
            'sim_real_time_factor': med(sim_rows, 'real_time_factor'),
            'sim_command_timeouts_in_window': (int(sim_rows[-1]['command_timeouts'])
                                               - int(sim_rows[0]['command_timeouts']))
            if sim_rows else 0,
        },
        'floor': _floor_summary(floor),
        'cpu_sim_pct': cpu[0], 'cpu_agent_pct': cpu[1], 'cpu_observer_pct': cpu[2],
        **({'cpu_learner_pct': cpu[3]} if learner else {}),
        'window_s': t1 - t0,
    }
    report['result'] = result
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f'{args.name}.json').write_text(json.dumps(report, indent=2) + '\n')
    text = markdown(report)
    (args.out_dir / f'{args.name}.md').write_text(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
