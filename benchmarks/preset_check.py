r"""
Do the presets deliver? ``ddpg-train`` with no hyper-parameter flags, per env and seed.

Each run is ``ddpg-train --env ENV --total-steps N --seed S --torch-threads 1
--no-tensorboard``: everything else comes from the env's preset in ``ddpg_ros/core/presets.yaml``.
The final evaluation (10 noise-free episodes at the last step) of every finished run goes into
``benchmarks/results/presets.json`` as soon as it ends, and a markdown table is printed.
Finished (env, steps, seed) runs are skipped unless ``--force``; runs of one env go one at a
time unless ``--jobs`` says more. Examples::

    . .venv/bin/activate
    python benchmarks/preset_check.py --env InvertedPendulum-v5 --steps 20000 --jobs 2
    nohup python benchmarks/preset_check.py --env HalfCheetah-v5 --steps 100000 \\
        > benchmarks/out/presets/driver.log 2>&1 &
    python benchmarks/preset_check.py --summarize      # the table of what has finished
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from ddpg_ros.core.presets import describe, preset_for  # noqa: E402
from report import replace_run  # noqa: E402

DEFAULT_OUT = HERE / 'out' / 'presets'
DEFAULT_RESULTS = HERE / 'results' / 'presets.json'


def _now() -> str:
    return datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')


def _load_average() -> float:
    return os.getloadavg()[0]


def _commit() -> str:
    result = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                            capture_output=True, text=True)
    return result.stdout.strip() or 'unknown'


def run_dir(out: Path, env_id: str, steps: int, seed: int) -> Path:
    """Return where one run writes its outputs and log."""
    return out / f'{env_id}-{steps}-seed{seed}'


def command(env_id: str, steps: int, seed: int, directory: Path) -> list[str]:
    """Return the ddpg-train command line of one run: no hyper-parameter flags."""
    return [str(Path(sys.executable).with_name('ddpg-train')), '--env', env_id,
            '--total-steps', str(steps), '--seed', str(seed), '--torch-threads', '1',
            '--no-tensorboard', '--out', str(directory)]


def record(env_id: str, steps: int, seed: int, directory: Path, returncode: int,
           start: dict, wall_s: float) -> dict:
    """Return the JSON record of a finished run, read from its log and progress.csv."""
    log = (directory / 'log.txt').read_text()
    final = re.search(r'^final_eval_return: (\S+)$', log, re.MULTILINE)
    preset_line = next((line for line in log.splitlines() if line.startswith('ddpg-train: ')),
                       '')
    curve = []
    progress = directory / 'progress.csv'
    if progress.is_file():
        with open(progress, newline='') as f:
            curve = [[int(row['env_steps']), round(float(row['eval_return_mean']), 1)]
                     for row in csv.DictReader(f)]
    return {
        'env': env_id, 'steps': steps, 'seed': seed, 'returncode': returncode,
        'final_eval_return': float(final.group(1)) if final else None,
        'wall_time_s': round(wall_s, 1), **start, 'finished_utc': _now(),
        'preset_line': preset_line, 'curve': curve,
        'command': ' '.join(['ddpg-train', *command(env_id, steps, seed, directory)[1:-2]]),
    }


def run_key(run: dict) -> tuple[str, int, str, int]:
    """
    Return what identifies a run: env, steps, the preset it started from, and seed.

    Runs of an earlier version of a preset stay in the results beside the current one's.
    """
    return run['env'], run['steps'], describe(run['preset']), run['seed']


def preset_label(env_id: str, preset: dict) -> str:
    """Return 'current' for the preset in the file now, else the values that differ."""
    current = preset_for(env_id) or {}
    if preset == current:
        return 'current'
    changed = {k: v for k, v in preset.items() if current.get(k) != v}
    return 'earlier: ' + describe(changed)


def load_results(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {'machine': f'{platform.processor() or platform.machine()}, '
                       f'{os.cpu_count()} cores', 'runs': []}


def save_result(path: Path, run: dict) -> None:
    """Add (or replace) one run in the results file, written whole each time."""
    replace_run(path, run, run_key, load_results)


def markdown(results: dict) -> str:
    """Return a table row per env, steps and preset: final return per seed, mean, times."""
    groups: dict[tuple[str, int, str], list[dict]] = {}
    for run in results['runs']:
        groups.setdefault(run_key(run)[:3], []).append(run)
    lines = ['| env | steps | preset | seeds | final eval return per seed (10 ep.) '
             '| mean +- std | wall time per seed (min) |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for (env_id, steps, _), runs in sorted(groups.items()):
        label = preset_label(env_id, runs[0]['preset'])
        runs.sort(key=lambda r: r['seed'])
        finals = [r['final_eval_return'] for r in runs if r['final_eval_return'] is not None]
        per_seed = ', '.join('failed' if r['final_eval_return'] is None
                             else f"{r['final_eval_return']:.0f}" for r in runs)
        stats = f'{np.mean(finals):.0f} +- {np.std(finals):.0f}' if finals else '-'
        times = ', '.join(f"{r['wall_time_s'] / 60:.1f}" for r in runs)
        seeds = ', '.join(str(r['seed']) for r in runs)
        lines.append(f'| {env_id} | {steps} | {label} | {seeds} | {per_seed} | {stats} '
                     f'| {times} |')
    return '\n'.join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--env', dest='envs', nargs='+', default=['InvertedPendulum-v5'],
                        help='Gymnasium env ids (each needs a preset)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=20_000, help='--total-steps of each run')
    parser.add_argument('--jobs', type=int, default=1, help='runs at a time')
    parser.add_argument('--force', action='store_true', help='rerun finished runs')
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT, help='run outputs and logs')
    parser.add_argument('--results', type=Path, default=DEFAULT_RESULTS)
    parser.add_argument('--summarize', action='store_true', help='print the table, run nothing')
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f'--jobs {args.jobs} must be >= 1')
    for env_id in args.envs:
        if not args.summarize and preset_for(env_id) is None:
            parser.error(f'no preset for {env_id}')

    if not args.summarize:
        done = {run_key(r) for r in load_results(args.results)['runs']
                if r['final_eval_return'] is not None}
        todo = [(env_id, seed) for env_id in args.envs for seed in args.seeds
                if args.force or
                (env_id, args.steps, describe(preset_for(env_id)), seed) not in done]
        running: list[tuple[subprocess.Popen, tuple]] = []
        while todo or running:
            while todo and len(running) < args.jobs:
                env_id, seed = todo.pop(0)
                directory = run_dir(args.out, env_id, args.steps, seed)
                directory.mkdir(parents=True, exist_ok=True)
                with open(directory / 'log.txt', 'wb') as log:
                    process = subprocess.Popen(command(env_id, args.steps, seed, directory),
                                               stdin=subprocess.DEVNULL, stdout=log,
                                               stderr=subprocess.STDOUT, cwd=ROOT)
                print(f'{_now()} started {env_id} seed {seed} ({args.steps} steps), pid '
                      f'{process.pid}', flush=True)
                # What the run starts from, read now: the tree may change while it runs.
                start = {'started_utc': _now(), 'load_average_before': round(_load_average(), 2),
                         'commit': _commit(), 'preset': preset_for(env_id)}
                running.append((process, (env_id, seed, directory, start, time.perf_counter())))
            time.sleep(2)
            for process, info in list(running):
                if process.poll() is None:
                    continue
                running.remove((process, info))
                env_id, seed, directory, start, t0 = info
                run = record(env_id, args.steps, seed, directory, process.returncode, start,
                             time.perf_counter() - t0)
                save_result(args.results, run)
                print(f"{_now()} finished {env_id} seed {seed}: final_eval_return "
                      f"{run['final_eval_return']} in {run['wall_time_s'] / 60:.1f} min "
                      f'(exit {process.returncode})', flush=True)
    print(markdown(load_results(args.results)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
