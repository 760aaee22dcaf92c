"""
Learning quality: ddpg-train vs Stable-Baselines3 DDPG on HalfCheetah-v5, same settings.

Rerun everything (9 runs: ddpg-train in float32 and in bfloat16, and SB3, 3 seeds each; at
most 2 at a time, 1 torch thread each; resumable, finished runs are skipped; about 1.5 hours
on 2 cores)::

    . .venv/bin/activate
    nohup python benchmarks/learning_quality.py --jobs 2 \
        > benchmarks/out/quality/driver.log 2>&1 &

One piece only (e.g. SB3, seed 1)::

    python benchmarks/learning_quality.py --algo sb3 --seeds 1 --jobs 1

Summarise what has finished (JSON, markdown table, plot) without running anything::

    python benchmarks/learning_quality.py --summarize

All learners: actor/critic lr 1e-3, batch 256, 256-256 nets, 10,000 uniform random steps
before learning, then one update per step, Gaussian noise 0.1 of the half range, tau 0.005,
gamma 0.99, buffer 100k (the whole run). Evaluation protocol, identical for all: every 10,000
steps and at the end, 10 noise-free episodes on a separate env, episode i reset with
``seed + 10000 + i``; the final number is the evaluation at 100,000 steps.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / 'out' / 'quality'
ENV_ID = 'HalfCheetah-v5'
ALGOS = ('ours', 'ours_bf16', 'sb3')
"""ddpg-train in float32 (the default), ddpg-train with ``--precision bfloat16``, SB3."""
ANCHORS = {
    'CleanRL DDPG HalfCheetah-v4, 1M steps': '10,374 +- 157',
    "TD3 paper's re-tuned DDPG (HalfCheetah, 1M steps)": '8,577',
}


def settings(args: argparse.Namespace) -> dict:
    return {
        'env': ENV_ID, 'total_steps': args.steps, 'learning_starts': args.learning_starts,
        'actor_lr': 1e-3, 'critic_lr': 1e-3, 'batch_size': 256, 'hidden_sizes': [256, 256],
        'noise': 'gaussian', 'noise_sigma': 0.1, 'tau': 0.005, 'gamma': 0.99,
        'buffer_size': args.steps, 'eval_every': args.eval_every,
        'eval_episodes': args.eval_episodes, 'torch_threads': 1,
    }


def run_dir(out: Path, algo: str, seed: int) -> Path:
    return out / f'{algo}-seed{seed}'


# --------------------------------------------------------------------------------------------
# One run of each learner


def run_ours(args: argparse.Namespace, seed: int, directory: Path,
             precision: str = 'float32') -> dict:
    """ddpg-train, the installed CLI, as a subprocess."""
    s = settings(args)
    cmd = [
        str(Path(sys.executable).with_name('ddpg-train')), '--env', ENV_ID,
        '--total-steps', str(args.steps), '--out', str(directory / 'train'),
        '--eval-every', str(args.eval_every), '--eval-episodes', str(args.eval_episodes),
        '--torch-threads', '1', '--no-tensorboard', '--no-progress', '--seed', str(seed),
        '--actor-lr', str(s['actor_lr']), '--critic-lr', str(s['critic_lr']),
        '--batch-size', str(s['batch_size']), '--hidden-sizes', '256', '256',
        '--learning-starts', str(args.learning_starts), '--noise-type', 'gaussian',
        '--noise-sigma', str(s['noise_sigma']), '--tau', str(s['tau']),
        '--gamma', str(s['gamma']), '--buffer-size', str(s['buffer_size']), '--device', 'cpu',
        '--precision', precision,
    ]
    start = time.perf_counter()
    with open(directory / 'train.log', 'w') as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.perf_counter() - start
    steps, means, stds = [], [], []
    with open(directory / 'train' / 'progress.csv', newline='') as f:
        for row in csv.DictReader(f):
            steps.append(int(row['env_steps']))
            means.append(float(row['eval_return_mean']))
            stds.append(float(row['eval_return_std']))
    return {'command': cmd, 'wall_s': wall, 'eval_steps': steps, 'eval_mean': means,
            'eval_std': stds}


def evaluate_sb3(model, env, episodes: int, seed: int) -> list[float]:
    """Evaluate as ddpg_ros.cli.evaluation.evaluate does: episode i resets with seed + i."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def run_sb3(args: argparse.Namespace, seed: int, directory: Path) -> dict:
    """SB3 DDPG.learn in this process, with a periodic evaluation callback."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import DDPG
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    torch.set_num_threads(1)
    s = settings(args)
    env = gym.make(ENV_ID)
    eval_env = gym.make(ENV_ID)
    half = (env.action_space.high - env.action_space.low) / 2.0
    noise = NormalActionNoise(mean=np.zeros_like(half), sigma=s['noise_sigma'] * half)
    model = DDPG('MlpPolicy', env, learning_rate=s['actor_lr'], buffer_size=s['buffer_size'],
                 learning_starts=args.learning_starts, batch_size=s['batch_size'],
                 tau=s['tau'], gamma=s['gamma'], train_freq=1, gradient_steps=1,
                 action_noise=noise, policy_kwargs={'net_arch': [256, 256]}, seed=seed,
                 device='cpu', verbose=0)
    record: dict = {'eval_steps': [], 'eval_mean': [], 'eval_std': []}
    start = time.perf_counter()

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            n = self.num_timesteps
            if n % args.eval_every == 0 or n == args.steps:
                returns = evaluate_sb3(self.model, eval_env, args.eval_episodes, seed + 10_000)
                record['eval_steps'].append(n)
                record['eval_mean'].append(float(np.mean(returns)))
                record['eval_std'].append(float(np.std(returns)))
                with open(directory / 'train.log', 'a') as log:
                    print(f'step {n}  eval {np.mean(returns):.1f} +- {np.std(returns):.1f}  '
                          f'{time.perf_counter() - start:.0f} s', file=log, flush=True)
            return True

    model.learn(total_timesteps=args.steps, callback=Eval())
    record['wall_s'] = time.perf_counter() - start
    keys = ('actor_lr', 'buffer_size', 'learning_starts', 'batch_size', 'tau', 'gamma',
            'noise_sigma')
    record['sb3_kwargs'] = {k: s[k] for k in keys}
    return record


def run_one(args: argparse.Namespace, algo: str, seed: int) -> None:
    directory = run_dir(args.out, algo, seed)
    directory.mkdir(parents=True, exist_ok=True)
    result_path = directory / 'result.json'
    if result_path.exists():
        print(f'{algo} seed {seed}: already done ({result_path})', flush=True)
        return
    if algo == 'sb3':
        record = run_sb3(args, seed, directory)
    else:
        record = run_ours(args, seed, directory,
                          precision='bfloat16' if algo == 'ours_bf16' else 'float32')
    record.update(algo=algo, seed=seed, settings=settings(args),
                  final_eval=record['eval_mean'][-1], final_step=record['eval_steps'][-1],
                  finished=datetime.now(timezone.utc).isoformat(timespec='seconds'))
    tmp = result_path.with_suffix('.tmp')
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, result_path)
    print(f'{algo} seed {seed}: final {record["final_eval"]:.1f} in {record["wall_s"]:.0f} s',
          flush=True)


# --------------------------------------------------------------------------------------------
# Driver: at most --jobs child processes, one per (algo, seed)


def drive(args: argparse.Namespace) -> None:
    todo = [(a, s) for s in args.seeds for a in args.algos
            if not (run_dir(args.out, a, s) / 'result.json').exists()]
    running: list[tuple[subprocess.Popen, str, int]] = []
    while todo or running:
        while todo and len(running) < args.jobs:
            algo, seed = todo.pop(0)
            directory = run_dir(args.out, algo, seed)
            directory.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), '--single', algo, str(seed),
                   '--out', str(args.out), '--steps', str(args.steps),
                   '--learning-starts', str(args.learning_starts),
                   '--eval-every', str(args.eval_every),
                   '--eval-episodes', str(args.eval_episodes)]
            env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
            log = open(directory / 'driver_child.log', 'a')
            print(f'start {algo} seed {seed}', flush=True)
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                             env=env), algo, seed))
        time.sleep(5)
        for item in list(running):
            proc, algo, seed = item
            if proc.poll() is not None:
                print(f'end {algo} seed {seed}: exit {proc.returncode}', flush=True)
                running.remove(item)
    summarize(args)


# --------------------------------------------------------------------------------------------
# Summary


def summarize(args: argparse.Namespace) -> dict:
    results = {a: [] for a in ALGOS}
    for algo in ALGOS:
        for path in sorted(args.out.glob(f'{algo}-seed*/result.json')):
            results[algo].append(json.loads(path.read_text()))
    summary: dict = {'settings': settings(args), 'anchors': ANCHORS,
                     'machine': f'{platform.node()} {platform.processor() or platform.machine()}'
                                f' {os.cpu_count()} cpus, Python {platform.python_version()}',
                     'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
                     'algos': {}}
    for algo, runs in results.items():
        finals = [r['final_eval'] for r in runs if r['final_step'] == args.steps]
        summary['algos'][algo] = {
            'seeds': [r['seed'] for r in runs], 'final_evals': finals,
            'mean': float(np.mean(finals)) if finals else None,
            'std': float(np.std(finals)) if finals else None,
            'wall_s': [round(r['wall_s'], 1) for r in runs],
        }
    lines = ['| learner | seeds | final eval return per seed (10 ep., noise-free) | '
             'mean +- std across seeds | wall time per run (s, median) |',
             '| --- | --- | --- | --- | --- |']
    names = {'ours': 'ddpg_ros (ddpg-train)', 'ours_bf16': 'ddpg_ros, bfloat16',
             'sb3': 'SB3 2.9.2 DDPG'}
    for algo in ALGOS:
        a = summary['algos'][algo]
        if not a['final_evals']:
            lines.append(f'| {names[algo]} | none finished | | | |')
            continue
        per_seed = ', '.join(f'{v:.0f}' for v in a['final_evals'])
        lines.append(f'| {names[algo]} | {" ".join(map(str, a["seeds"]))} | {per_seed} | '
                     f'{a["mean"]:.0f} +- {a["std"]:.0f} | {np.median(a["wall_s"]):.0f} |')
    table = '\n'.join(lines)
    summary['markdown'] = table
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=1))
    (args.out / 'summary.md').write_text(table + '\n')
    print(table)
    plot(results, args.plot)
    return summary


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = {'ours': 'ddpg_ros', 'ours_bf16': 'ddpg_ros, bfloat16', 'sb3': 'SB3 DDPG'}
    for algo, runs in results.items():
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(r['eval_steps']) for r in runs)))
        curves = np.array([[dict(zip(r['eval_steps'], r['eval_mean']))[s] for s in steps]
                           for r in runs])
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(steps, mean, label=f'{labels[algo]} ({len(runs)} seeds)')
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel('environment steps')
    ax.set_ylabel('noise-free eval return (10 episodes)')
    ax.set_title(f'{ENV_ID}: mean +- std across seeds')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f'plot: {path}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--algo', dest='algos', nargs='+', choices=ALGOS, default=list(ALGOS))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--jobs', type=int, default=2, help='runs at a time')
    parser.add_argument('--steps', type=int, default=100_000)
    parser.add_argument('--learning-starts', type=int, default=10_000)
    parser.add_argument('--eval-every', type=int, default=10_000)
    parser.add_argument('--eval-episodes', type=int, default=10)
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    parser.add_argument('--plot', type=Path, default=HERE / 'learning_quality.png')
    parser.add_argument('--single', nargs=2, metavar=('ALGO', 'SEED'),
                        help='run one (algo, seed) in this process (used by the driver)')
    parser.add_argument('--summarize', action='store_true', help='only summarise and plot')
    args = parser.parse_args()
    if args.single:
        run_one(args, args.single[0], int(args.single[1]))
    elif args.summarize:
        summarize(args)
    else:
        drive(args)


if __name__ == '__main__':
    main()
