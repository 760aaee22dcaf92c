"""
Whole-process wall clock: the installed ``ddpg-train`` CLI vs SB3 ``DDPG.learn``, same steps.

Rerun (about 3 minutes per repeat on 2 idle cores)::

    . .venv/bin/activate
    python benchmarks/whole_process.py --steps 20000 --learning-starts 5000 --repeats 2 \
        --threads 1

Each side is a fresh subprocess, timed from launch to exit (wall clock, and the child's user +
sys CPU seconds, which a shared machine disturbs far less), so interpreter start, imports,
environment creation, training, the final evaluation and writing the outputs all count:

* ours: ``ddpg-train --env HalfCheetah-v5 --no-tensorboard --no-progress`` with
  ``--eval-every`` = total steps and ``--eval-episodes 1`` (one noise-free episode at the end,
  plus its checkpoint, best.pt, progress.csv and learning-curve plot);
* SB3: this script with ``--sb3-child``: ``DDPG.learn`` on the same steps, then the same one
  noise-free evaluation episode and ``model.save``.

Same settings on both sides: batch 256, 256-256 nets, actor/critic lr 1e-3, tau 0.005,
gamma 0.99, Gaussian noise 0.1 of the half range, 1 update per env step after learning
starts, buffer = total steps, ``--threads`` torch threads. Repeats alternate the order.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import save_report  # noqa: E402
ROOT = HERE.parent
ENV_ID = 'HalfCheetah-v5'


def ours_command(args: argparse.Namespace, out: Path) -> list[str]:
    return [str(Path(sys.executable).with_name('ddpg-train')), '--env', ENV_ID,
            '--total-steps', str(args.steps), '--learning-starts', str(args.learning_starts),
            '--eval-every', str(args.steps), '--eval-episodes', '1', '--no-tensorboard',
            '--no-progress', '--torch-threads', str(args.threads), '--batch-size', '256',
            '--hidden-sizes', '256', '256', '--actor-lr', '1e-3', '--critic-lr', '1e-3',
            '--tau', '0.005', '--gamma', '0.99', '--noise-type', 'gaussian',
            '--noise-sigma', '0.1', '--buffer-size', str(args.steps), '--device', 'cpu',
            '--seed', '0', '--out', str(out)]


def sb3_command(args: argparse.Namespace, out: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), '--sb3-child', '--steps',
            str(args.steps), '--learning-starts', str(args.learning_starts), '--threads',
            str(args.threads), '--child-out', str(out)]


def sb3_child(args: argparse.Namespace) -> None:
    """Run in the SB3 subprocess: learn, one noise-free episode, save."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import DDPG
    from stable_baselines3.common.noise import NormalActionNoise

    torch.set_num_threads(args.threads)
    env = gym.make(ENV_ID)
    half = (env.action_space.high - env.action_space.low) / 2.0
    model = DDPG('MlpPolicy', env, learning_rate=1e-3, buffer_size=args.steps,
                 learning_starts=args.learning_starts, batch_size=256, tau=0.005, gamma=0.99,
                 train_freq=1, gradient_steps=1,
                 action_noise=NormalActionNoise(np.zeros_like(half), 0.1 * half),
                 policy_kwargs={'net_arch': [256, 256]}, seed=0, device='cpu', verbose=0)
    model.learn(total_timesteps=args.steps)
    eval_env = gym.make(ENV_ID)
    obs, _ = eval_env.reset(seed=10_000)
    total, done = 0.0, False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = eval_env.step(action)
        total += float(reward)
        done = terminated or truncated
    args.child_out.mkdir(parents=True, exist_ok=True)
    model.save(args.child_out / 'model.zip')
    print(f'final_eval_return: {total:.3f}')


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + sys of the child) and stdout of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f'{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}')
    return wall, cpu, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=20_000)
    parser.add_argument('--learning-starts', type=int, default=5_000)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2, help='torch threads on both sides')
    parser.add_argument('--out', type=Path, default=HERE / 'results' / 'whole_process.json')
    parser.add_argument('--sb3-child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--child-out', type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sb3_child:
        sb3_child(args)
        return

    env = dict(os.environ)
    walls: dict[str, list[float]] = {'ours': [], 'sb3': []}
    cpus: dict[str, list[float]] = {'ours': [], 'sb3': []}
    finals: dict[str, list[str]] = {'ours': [], 'sb3': []}
    started = datetime.now(timezone.utc).isoformat(timespec='seconds')
    load = os.getloadavg()[0]
    commands = {}
    with tempfile.TemporaryDirectory(prefix='whole_process_') as tmp:
        for r in range(args.repeats):
            order = ('ours', 'sb3') if r % 2 == 0 else ('sb3', 'ours')
            for who in order:
                out = Path(tmp) / f'{who}-{r}'
                cmd = ours_command(args, out) if who == 'ours' else sb3_command(args, out)
                commands[who] = ' '.join(cmd).replace(tmp, '<tmp>')
                wall, cpu, stdout = timed(cmd, env)
                walls[who].append(wall)
                cpus[who].append(cpu)
                finals[who].extend(line.split()[-1] for line in stdout.splitlines()
                                   if line.startswith('final_eval_return'))
                print(f'repeat {r}  {who:4s} {wall:7.1f} s wall  {cpu:7.1f} s CPU', flush=True)
                shutil.rmtree(out, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in walls.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpus.items()}
    ratio = med['sb3'] / med['ours']
    ratio_cpu = med_cpu['sb3'] / med_cpu['ours']
    table = '\n'.join([
        f'{args.steps} steps, learning starts {args.learning_starts}, torch threads '
        f'{args.threads}, {args.repeats} alternating repeats', '',
        '| learner | wall per repeat (s) | wall median (s) | wall speed-up vs SB3 | '
        'CPU per repeat (s) | CPU median (s) | CPU speed-up vs SB3 |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        *(f'| {name} | {", ".join(f"{w:.1f}" for w in walls[k])} | {med[k]:.1f} | '
          f'{med["sb3"] / med[k]:.2f}x | {", ".join(f"{c:.1f}" for c in cpus[k])} | '
          f'{med_cpu[k]:.1f} | {med_cpu["sb3"] / med_cpu[k]:.2f}x |'
          for k, name in (('ours', 'ddpg-train (CLI)'), ('sb3', 'SB3 2.9.2 DDPG.learn')))])
    result = {
        'machine': f'{platform.node()}, {os.cpu_count()} CPUs, Python '
                   f'{platform.python_version()}, load average at start {load:.2f}',
        'started': started, 'finished': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'settings': {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if not k.startswith('child') and k != 'sb3_child'},
        'commands': commands, 'wall_s': walls, 'median_s': med, 'speedup_vs_sb3': ratio,
        'cpu_s': cpus, 'median_cpu_s': med_cpu, 'cpu_speedup_vs_sb3': ratio_cpu,
        'final_eval_return_1_episode': finals, 'markdown': table,
    }
    save_report(args.out, result, table)


if __name__ == '__main__':
    main()
