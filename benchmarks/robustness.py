r"""
Robustness: policies trained with and without randomization, evaluated under each perturbation.

For every *training variant* (``VARIANTS``: no randomization; ``hard`` with the last
command observed; ...) and seed, a real ``ddpg-train`` run; then each final checkpoint is
evaluated without noise, in this process, on ``--episodes`` seeded episodes under every
*condition*: none, each factor of ``hard`` alone (command latency, late periods, observation
noise, dynamics, pushes), and the levels easy, medium, hard
(:mod:`ddpg_ros.sim.randomization`). Reported per variant and condition:

* **full episodes**: the share of episodes that reached the time limit (the robot never fell),
  over all seeds' episodes;
* **return**: the interquartile mean over seeds of each seed's mean return, with a 95 %
  bootstrap interval (rliable's definitions), and the ratio to the same policies' nominal
  return;
* the first evaluation step that reached ``--solved`` during training (median over seeds).

Results go into ``benchmarks/results/robustness.json`` as each seed ends; finished runs are
skipped unless ``--force``. Examples::

    . .venv/bin/activate
    nohup python benchmarks/robustness.py --env InvertedPendulum-v5 --steps 15000 \
        --variants nominal hard_last --seeds 0 1 2 3 4 5 6 7 8 9 --jobs 2 \
        > benchmarks/out/robustness/driver.log 2>&1 &
    python benchmarks/robustness.py --summarize
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from preset_check import load_results  # noqa: E402  (one results-file layout for all)
from sample_efficiency import (_commit, _now, first_solve, iqm_interval,  # noqa: E402
                               ddpg_train, own_run_directory, run_key, save_result)

DEFAULT_OUT = HERE / 'out' / 'robustness'
DEFAULT_RESULTS = HERE / 'results' / 'robustness.json'
FACTORS = ('command_latency', 'late_periods', 'observation_noise', 'dynamics', 'pushes')
CONDITIONS = ('none', *FACTORS, 'easy', 'medium', 'hard')
"""Each factor alone is ``hard``'s value of it."""
LAST = ('--observe-last-action', 'true')
TD3 = ('--n-critics', '2', '--target-noise', '0.2', '--policy-delay', '2')
CROSSQ_64 = ('--preset', 'ddpg', '--hidden-sizes', '64', '64', '--n-critics', '2',
             '--critic-norm', 'batch_renorm', '--policy-delay', '3', '--adam-beta1', '0.5',
             '--target-noise', '0.2')
VARIANTS: dict[str, tuple[str, ...]] = {
    # The env's preset as it is, trained on the nominal model.
    'nominal': (),
    'nominal_td3_last': (*TD3, *LAST),
    'hard': ('--randomize', 'hard'),
    'hard_last': ('--randomize', 'hard', *LAST),
    'medium_last': ('--randomize', 'medium', *LAST),
    # Twin critics and target smoothing keep learning stable under randomization.
    'hard_td3_last': ('--randomize', 'hard', *TD3, *LAST),
    'medium_td3_last': ('--randomize', 'medium', *TD3, *LAST),
    # Named in full rather than "the preset": the variants above ran on the pendulum's earlier
    # preset (plain DDPG, 64-64, 4 updates per step; their records hold the commit), these on
    # CrossQ's critics at one update per step, the preset since.
    'nominal_crossq_64': CROSSQ_64,
    'hard_crossq_64_last': (*CROSSQ_64, '--randomize', 'hard', *LAST),
    # Plain DDPG by name, whatever the env's preset becomes (HalfCheetah under medium).
    'nominal_ddpg': ('--preset', 'ddpg'),
    'medium_ddpg_last': ('--preset', 'ddpg', '--randomize', 'medium', *LAST),
}


def condition_profile(condition: str):
    """Return the profile of a condition: a level, or one factor of ``hard`` alone."""
    from ddpg_ros.sim.randomization_profile import LEVELS, load_profile, parse_profile

    if condition in FACTORS:
        return parse_profile({condition: LEVELS['hard'][condition]}, f'hard {condition} only')
    return load_profile(condition)


def evaluate_checkpoint(path: str, env_id: str, episodes: int, seed: int) -> dict:
    """Evaluate one checkpoint under every condition; in a worker process."""
    import torch

    from ddpg_ros.cli.evaluation import evaluate
    from ddpg_ros.core.checkpoint import load_checkpoint
    from ddpg_ros.sim.envs import make_env

    torch.set_num_threads(1)
    checkpoint = load_checkpoint(path)
    agent = checkpoint.build_agent(device='cpu', optimizers=False)
    last = checkpoint.config.observe_last_action
    out = {}
    for condition in CONDITIONS:
        env = make_env(env_id, randomize=condition_profile(condition), seed=seed,
                       observe_last_action=last)
        full: list[bool] = []
        returns = evaluate(agent.act, env, episodes, seed, full=full)
        env.close()
        out[condition] = {'mean_return': round(float(np.mean(returns)), 2),
                          'full': int(sum(full)), 'episodes': episodes}
    return out


def train(args: argparse.Namespace, variant: str, seed: int) -> dict:
    """Run ``ddpg-train`` for one (variant, seed); evaluate its final checkpoint."""
    directory = args.out / f'{args.env}-{variant}-{args.steps}-seed{seed}'
    flags = VARIANTS[variant]
    # Held through the evaluation: its checkpoint is in there.
    with own_run_directory(directory) as held:
        proc, wall, curve = ddpg_train(directory, args.env, args.steps, seed, args.eval_every,
                                       10, flags, held)
        record = {'env': args.env, 'variant': variant, 'flags': list(flags),
                  'steps': args.steps, 'seed': seed, 'returncode': proc.returncode,
                  'wall_time_s': round(wall, 1), 'curve': curve,
                  'commit': _commit(), 'finished_utc': _now(),
                  'load_average': round(os.getloadavg()[0], 2)}
        if proc.returncode != 0:
            record['stderr_tail'] = proc.stderr[-2000:]
        else:
            record['evaluation'] = evaluate_checkpoint(
                str(directory / 'checkpoint.pt'), args.env, args.episodes, 100_000 + seed)
            record['eval_seed'] = 100_000 + seed
    hard = record.get('evaluation', {}).get('hard', {})
    print(f'[{_now()}] {variant} seed {seed}: exit {proc.returncode}, {wall:.0f} s, first '
          f"solve {first_solve(curve, args.solved)}, hard {hard.get('full')}/"
          f"{hard.get('episodes')}", flush=True)
    return record


def summarize(results: dict, solved: float) -> str:
    """Markdown: one table per (env, steps), variants as columns, conditions as rows."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for run in results['runs']:
        if 'evaluation' in run:
            groups.setdefault((run['env'], run['steps']), {}).setdefault(
                run['variant'], []).append(run)
    lines = []
    for (env, steps), variants in sorted(groups.items()):
        names = sorted(variants)
        lines += [f'**{env}, {steps:,} training steps**', '',
                  '| condition | ' + ' | '.join(
                      f'{name} ({len(variants[name])} seeds)' for name in names) + ' |',
                  '|---|' + '---|' * len(names)]
        for condition in CONDITIONS:
            cells = []
            for name in names:
                runs = variants[name]
                full = sum(r['evaluation'][condition]['full'] for r in runs)
                total = sum(r['evaluation'][condition]['episodes'] for r in runs)
                means = [r['evaluation'][condition]['mean_return'] for r in runs]
                nominal = np.mean([r['evaluation']['none']['mean_return'] for r in runs])
                iqm, low, high = iqm_interval(means)
                cells.append(f'{100 * full / total:.0f} % full; IQM {iqm:,.0f} '
                             f'[{low:,.0f}, {high:,.0f}] ({iqm / nominal:.2f}x)')
            lines.append(f'| {condition} | ' + ' | '.join(cells) + ' |')
        solves = []
        for name in names:
            firsts = [first_solve(r['curve'], solved) for r in variants[name]]
            done = [f for f in firsts if f is not None]
            median = f'{np.median(done):,.0f}' if done else '-'
            solves.append(f'{median} ({len(done)}/{len(firsts)} solved)')
        lines += ['| first solve (median step) | ' + ' | '.join(solves) + ' |', '']
    return '\n'.join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--env', default='InvertedPendulum-v5')
    parser.add_argument('--steps', type=int, default=15_000)
    parser.add_argument('--variants', nargs='+', default=['nominal', 'hard_last'],
                        choices=sorted(VARIANTS))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--episodes', type=int, default=20,
                        help='evaluation episodes per condition and seed')
    parser.add_argument('--eval-every', type=int, default=2500)
    parser.add_argument('--solved', type=float, default=1000.0)
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    parser.add_argument('--results', type=Path, default=DEFAULT_RESULTS)
    parser.add_argument('--force', action='store_true')
    parser.add_argument('--summarize', action='store_true', help='print the tables and exit')
    args = parser.parse_args()
    if args.summarize:
        print(summarize(load_results(args.results), args.solved))
        return 0
    done = {run_key(r) for r in load_results(args.results)['runs'] if 'evaluation' in r}
    todo = [(v, s) for v in args.variants for s in args.seeds
            if args.force or (args.env, v, args.steps, s) not in done]
    print(f'[{_now()}] {len(todo)} runs: {todo}', flush=True)
    failed = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(train, args, v, s): (v, s) for v, s in todo}
        # Each run is saved as it ends; one that raises is reported at once and the rest go on.
        for future in as_completed(futures):
            try:
                save_result(args.results, future.result())
            except Exception as exc:  # noqa: BLE001  (any failure of one run)
                failed += 1
                print(f'[{_now()}] {futures[future]} failed: {exc!r}', flush=True)
    print(summarize(load_results(args.results), args.solved))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
