r"""
Robustness through ROS: a checkpoint deployed on ddpg_agent's timer against a randomized sim.

For each checkpoint and try: ``mujoco_sim`` in realtime (``--real-time-factor``, 0.01 s
physics published at 100 Hz, as a ``joint_state_broadcaster`` would, ``randomize``
``--randomize``, seed = the try), ``ddpg_agent`` in deploy mode on its 25 Hz timer under
``use_sim_time``, and ``--burners`` processes spinning the CPU beside them; the try's result
is the first episode's return from ``ddpg_agent/episode_return`` after the agent's first
reset (1000 = the pole stayed up for the whole 40 s episode). DDS stays on this machine
(``ROS_AUTOMATIC_DISCOVERY_RANGE`` ``LOCALHOST``, a domain of its own); every process is ended
by its pid. Example::

    . .venv/bin/activate
    python benchmarks/robustness_ros.py --randomize hard --tries 3 --burners 2 \
        --checkpoint benchmarks/out/robustness/InvertedPendulum-v5-hard_last-15000-seed0/best.pt
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from preset_check import load_results  # noqa: E402
from sample_efficiency import _commit, _now  # noqa: E402

DEFAULT_RESULTS = HERE / 'results' / 'robustness_ros.json'
BURNER = 'while True:\n    pass\n'


def node(module: str, **params) -> list[str]:
    args = []
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ['-p', f'{name}:={text}']
    return [sys.executable, '-m', f'ddpg_ros.ros.{module}', '--ros-args', *args]


def one_try(checkpoint: Path, args: argparse.Namespace, seed: int, env: dict) -> dict:
    """Run one episode of the deployed policy; return its return and timing."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float64

    from ddpg_ros.core.checkpoint import load_checkpoint

    last = load_checkpoint(checkpoint).config.observe_last_action
    workdir = Path(tempfile.mkdtemp(prefix='robustness_ros_'))
    commands = [
        node('mujoco_sim_node', seed=seed, mode='realtime', timestep=0.01, frame_skip=4,
             state_rate=100.0, real_time_factor=args.real_time_factor,
             randomize=args.randomize),
        node('ddpg_agent_node', mode='deploy', task='inverted_pendulum',
             load_checkpoint=checkpoint, control_rate=25.0, use_sim_time=True,
             observe_last_action=last, checkpoint_dir=workdir),
    ] + [[sys.executable, '-c', BURNER]] * args.burners
    logs = [open(workdir / f'{name}.log', 'w') for name in
            ('mujoco_sim', 'ddpg_agent', *(f'burner{i}' for i in range(args.burners)))]
    processes = [subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
                 for cmd, log in zip(commands, logs)]
    returns: list[float] = []
    context = rclpy.Context()
    rclpy.init(context=context)
    listener = rclpy.create_node('robustness_listener', context=context)
    # The sim runs from its start, so the pole has fallen before the agent acts: that first
    # "episode" ends at its first step with return 0, then the agent resets the sim. A real
    # episode starts upright and cannot end at its first step.
    listener.create_subscription(Float64, 'ddpg_agent/episode_return',
                                 lambda msg: returns.append(msg.data) if returns or msg.data
                                 else None, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    start = time.monotonic()
    try:
        while not returns and time.monotonic() - start < args.timeout:
            executor.spin_once(timeout_sec=0.5)
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        executor.shutdown()
        listener.destroy_node()
        rclpy.shutdown(context=context)
    for log in logs:
        log.close()
    timing = workdir / 'timing.yaml'
    print(f'try {seed}: returns {returns}, logs in {workdir}', flush=True)
    return {'seed': seed, 'return': returns[0] if returns else None,
            'wall_s': round(time.monotonic() - start, 1),
            'timing': timing.read_text() if timing.is_file() else ''}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', type=Path, nargs='+', required=True)
    parser.add_argument('--randomize', default='hard')
    parser.add_argument('--tries', type=int, default=3)
    parser.add_argument('--burners', type=int, default=2)
    parser.add_argument('--real-time-factor', type=float, default=1.0)
    parser.add_argument('--timeout', type=float, default=180.0,
                        help='wall seconds to wait for one episode')
    parser.add_argument('--results', type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args()
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=str(random.randint(120, 160)), PYTHONUNBUFFERED='1')
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
                      ROS_DOMAIN_ID=env['ROS_DOMAIN_ID'])
    results = load_results(args.results)
    for checkpoint in args.checkpoint:
        tries = [one_try(checkpoint, args, seed, env) for seed in range(args.tries)]
        full = sum(t['return'] == 1000.0 for t in tries)
        print(f'[{_now()}] {checkpoint}: returns {[t["return"] for t in tries]}, full '
              f'{full}/{len(tries)}', flush=True)
        results['runs'].append({
            'checkpoint': str(checkpoint), 'randomize': args.randomize,
            'burners': args.burners, 'real_time_factor': args.real_time_factor,
            'tries': tries, 'full': full, 'commit': _commit(), 'finished_utc': _now(),
            'load_average': round(os.getloadavg()[0], 2)})
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
