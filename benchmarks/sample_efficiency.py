r"""
Sample efficiency and stability of the learner's extensions: ``ddpg-train`` per variant and seed.

A *variant* is a preset plus flags (``VARIANTS`` below): plain DDPG, TD3's three changes,
LayerNorm and dropout critics, widths, update-to-data ratios. Every run is a real
``ddpg-train`` process with one torch thread, evaluated without noise every ``--eval-every``
steps on ``--eval-episodes`` episodes. Reported per variant:

* **first solve**: the first evaluation step whose mean return reaches ``--solved`` (the
  pendulum's 1000: every episode balanced for 1000 steps); median over seeds, interquartile
  mean with a 95 % bootstrap interval (rliable's definitions) over the seeds that solved, and
  how many did;
* **stability**: the share of evaluations at ``--stable`` (950) or more from the first solve
  to the end of the run;
* **saturated**: seeds whose log reported a saturated actor;
* wall time per run (median), on this machine.

Results go into ``benchmarks/results/sample_efficiency.json`` as each run ends; finished
(env, variant, steps, seed) runs are skipped unless ``--force``. Examples::

    . .venv/bin/activate
    nohup python benchmarks/sample_efficiency.py --env InvertedPendulum-v5 --steps 15000 \
        --variants ddpg td3 td3_ln --seeds 0 1 2 3 4 --jobs 2 \
        > benchmarks/out/sample_efficiency/driver.log 2>&1 &
    python benchmarks/sample_efficiency.py --summarize
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from preset_check import load_results  # noqa: E402  (one results-file layout for both)
from report import replace_run  # noqa: E402
DEFAULT_OUT = HERE / 'out' / 'sample_efficiency'
DEFAULT_RESULTS = HERE / 'results' / 'sample_efficiency.json'

TD3 = ('--n-critics', '2', '--target-noise', '0.2', '--policy-delay', '2')
CROSSQ_PA = ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'batch_renorm',
             '--policy-delay', '3', '--adam-beta1', '0.5', '--target-noise', '0.2',
             '--actor-lr', '3e-4', '--pre-activation-penalty', '1e-2')
"""HalfCheetah's preset (section 8d) from plain DDPG's values, flag by flag."""
VARIANTS: dict[str, tuple[str, ...]] = {
    # The preset of the env as it is in presets.yaml (whatever it now holds).
    'preset': (),
    # The DDPG of the paper with the env's tuned values: every extension off.
    'ddpg': ('--preset', 'ddpg'),
    'ddpg_ln': ('--preset', 'ddpg', '--critic-norm', 'layer'),
    'td3': ('--preset', 'ddpg', *TD3),
    'td3_ln': ('--preset', 'ddpg', *TD3, '--critic-norm', 'layer'),
    'td3_ln_64': ('--preset', 'ddpg', *TD3, '--critic-norm', 'layer',
                  '--hidden-sizes', '64', '64'),
    'td3_64': ('--preset', 'ddpg', *TD3, '--hidden-sizes', '64', '64'),
    'twin_ln': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'layer'),
    'droq_ln': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'layer',
                '--critic-dropout', '0.01', '--target-noise', '0.2'),
    'td3_ln_utd2': ('--preset', 'ddpg', *TD3, '--critic-norm', 'layer',
                    '--updates-per-step', '2'),
    'ddpg_64_utd4': ('--preset', 'ddpg', '--hidden-sizes', '64', '64',
                     '--updates-per-step', '4'),
    'td3_64_utd4': ('--preset', 'ddpg', *TD3, '--hidden-sizes', '64', '64',
                    '--updates-per-step', '4'),
    'td3_ln_64_utd4': ('--preset', 'ddpg', *TD3, '--critic-norm', 'layer',
                       '--hidden-sizes', '64', '64', '--updates-per-step', '4'),
    'ddpg_64_utd4_n3': ('--preset', 'ddpg', '--hidden-sizes', '64', '64',
                        '--updates-per-step', '4', '--n-step', '3'),
    'td3_64_utd4_n3': ('--preset', 'ddpg', *TD3, '--hidden-sizes', '64', '64',
                       '--updates-per-step', '4', '--n-step', '3'),
    'ddpg_64_n3': ('--preset', 'ddpg', '--hidden-sizes', '64', '64', '--n-step', '3'),
    'ddpg_64': ('--preset', 'ddpg', '--hidden-sizes', '64', '64'),
    'ln_64_utd4': ('--preset', 'ddpg', '--critic-norm', 'layer', '--hidden-sizes', '64', '64',
                   '--updates-per-step', '4'),
    'twin_ln_64_utd4': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'layer',
                        '--target-noise', '0.2', '--hidden-sizes', '64', '64',
                        '--updates-per-step', '4'),
    'twin_ln_64_utd4_n3': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'layer',
                           '--target-noise', '0.2', '--hidden-sizes', '64', '64',
                           '--updates-per-step', '4', '--n-step', '3'),
    # CrossQ's critics for a deterministic actor: twin batch-renormalized critics, no target
    # networks, policy delay 3, Adam beta1 0.5, TD3's target smoothing; the actor at lr 3e-4
    # (at HalfCheetah's 1e-3 it went to the action bounds within 2,000 updates).
    'crossq': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'batch_renorm',
               '--policy-delay', '3', '--adam-beta1', '0.5', '--target-noise', '0.2',
               '--actor-lr', '3e-4'),
    # The same with MR.Q's penalty on the actor's pre-tanh outputs, against seed 1's actor
    # running to its bounds.
    'crossq_pa1e-2': CROSSQ_PA,
    # Against Walker2d's late collapses (RESULTS 8f): MR.Q's 3-step returns, which carry a
    # reward to the critic's target three times sooner; the critics at a third of the
    # learning rate, as their loss rose with each collapse;
    'crossq_pa1e-2_n3': (*CROSSQ_PA, '--n-step', '3'),
    'crossq_pa1e-2_clr3e-4': (*CROSSQ_PA, '--critic-lr', '3e-4'),
    # ... and the actor ascending the smaller of the two critics, as CrossQ's own code does.
    'crossq_pa1e-2_qmin': (*CROSSQ_PA, '--actor-q', 'min'),
    # HalfCheetah's gap to sbx's CrossQ (RESULTS 8d): the actor at CrossQ's lr 1e-3, which
    # ran it to its bounds before the penalty (8b). Hopper's seed 4 standing still (8f):
    # twice the exploration noise.
    'crossq_pa1e-2_alr1e-3': (*CROSSQ_PA, '--actor-lr', '1e-3'),
    'crossq_pa1e-2_sigma0.2': (*CROSSQ_PA, '--noise-sigma', '0.2'),
    # Walker2d's preset (3-step returns, 8g) with HalfCheetah's actor at lr 1e-3 (8h).
    'crossq_pa1e-2_n3_alr1e-3': (*CROSSQ_PA, '--n-step', '3', '--actor-lr', '1e-3'),
    # Walker2d's preset with its critics twice as wide (the actor stays 256-256): whether the
    # width that CrossQ's paper leans on pays where the preset stops short of 3,500.
    'crossq_pa1e-2_n3_c512': (*CROSSQ_PA, '--n-step', '3', '--critic-hidden-sizes', '512', '512'),
    # The same with wider critics (the actor stays 256-256): how the return grows with the
    # critics' width, CrossQ's paper using 2,048.
    **{f'crossq_pa1e-2_c{width}': (*CROSSQ_PA, '--critic-hidden-sizes', str(width), str(width))
       for width in (512, 1024, 2048)},
    # bfloat16 products, which the widest critics need here to be affordable, at 256 and 2048.
    **{f'crossq_pa1e-2_c{width}_bf16': (
        *CROSSQ_PA, '--critic-hidden-sizes', str(width), str(width), '--precision', 'bfloat16')
       for width in (256, 2048)},
    'crossq_lr1e-3': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'batch_renorm',
                      '--policy-delay', '3', '--adam-beta1', '0.5', '--target-noise', '0.2'),
    'crossq_64_utd4': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'batch_renorm',
                       '--policy-delay', '3', '--adam-beta1', '0.5', '--target-noise', '0.2',
                       '--hidden-sizes', '64', '64', '--updates-per-step', '4'),
    'crossq_64': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'batch_renorm',
                  '--policy-delay', '3', '--adam-beta1', '0.5', '--target-noise', '0.2',
                  '--hidden-sizes', '64', '64'),
    'droq_64_utd4': ('--preset', 'ddpg', '--n-critics', '2', '--critic-norm', 'layer',
                     '--critic-dropout', '0.01', '--target-noise', '0.2',
                     '--hidden-sizes', '64', '64', '--updates-per-step', '4'),
}


PEERS = ('sb3_ddpg', 'sb3_td3', 'sbx_crossq_256', 'sbx_crossq')
"""Other libraries' learners, run by ``peers.py`` into the same results (to summarize only)."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')


def _commit() -> str:
    result = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                            capture_output=True, text=True)
    return result.stdout.strip() or 'unknown'


def run_key(run: dict) -> tuple:
    return run['env'], run['variant'], run['steps'], run['seed']


def gets_further(new: dict, old: dict) -> bool:
    """
    Whether run ``new`` should replace ``old``, a record of the same run.

    A finished run (exit 0) always does. A stopped one never hides a finished run, nor a
    stopped one that had evaluated more of its curve: a rerun stopped early loses nothing.
    """
    if new['returncode'] == 0:
        return True
    return old['returncode'] != 0 and len(new['curve']) >= len(old['curve'])


def save_result(path: Path, run: dict) -> None:
    """Add (or replace) one run; other drivers on the same file wait their turn."""
    replace_run(path, run, run_key, load_results, gets_further)


class RunHeld(RuntimeError):
    """Another driver, or a run one started, holds the run directory."""


@contextlib.contextmanager
def own_run_directory(directory: Path) -> Iterator[int]:
    """
    Hold ``directory`` for one run: a second driver on the same run would remove its files.

    The hold is a ``flock`` on a lock file beside it, which the kernel releases when the last
    process holding it ends, however it ends: a driver that was killed leaves no stale hold,
    and a pid reused by another process cannot keep one. Pass the yielded descriptor to
    ``ddpg_train`` and the training process holds it too, so that a run left going by a
    killed driver keeps its directory until it ends.

    :raises RunHeld: when another process holds it; the message names its pid.
    """
    lock = directory.with_name(f'.{directory.name}.lock')
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors='replace').strip() or 'unknown'
        os.close(fd)
        raise RunHeld(f'{directory} is held by process {holder} or a run it started') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield fd
    finally:
        os.close(fd)  # the file stays: unlinking it would let two holders lock two files


def ddpg_train(directory: Path, env: str, steps: int, seed: int, eval_every: int,
               eval_episodes: int, flags: tuple[str, ...], held: int
               ) -> tuple[subprocess.CompletedProcess, float, list[list[float]]]:
    """
    Run ``ddpg-train`` afresh into ``directory``, which the caller holds (own_run_directory).

    ``held``, the descriptor ``own_run_directory`` yielded, is passed on to the process, which
    then holds the directory as long as it runs.

    :returns: the finished process, its wall time in seconds and its evaluation curve.
    """
    cmd = [str(Path(sys.executable).with_name('ddpg-train')), '--env', env,
           '--total-steps', str(steps), '--seed', str(seed), '--torch-threads', '1',
           '--eval-every', str(eval_every), '--eval-episodes', str(eval_episodes),
           '--no-tensorboard', '--no-progress', '--out', str(directory), *flags]
    if directory.exists():
        subprocess.run(['rm', '-rf', str(directory)], check=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          pass_fds=(held,))
    return proc, time.perf_counter() - start, read_curve(directory)


def one_run(args: argparse.Namespace, variant: str, seed: int) -> dict | None:
    """
    Run ``ddpg-train`` for one (variant, seed) and return its record.

    A run that another driver holds is that driver's to finish and record: it is skipped with
    a line that says so (``None``), and this driver goes on with the rest of its runs.
    """
    directory = args.out / f'{args.env}-{variant}-{args.steps}-seed{seed}'
    flags = VARIANTS[variant]
    try:
        with own_run_directory(directory) as held:
            proc, wall, curve = ddpg_train(directory, args.env, args.steps, seed,
                                           args.eval_every, args.eval_episodes, flags, held)
    except RunHeld as held_elsewhere:
        print(f'[{_now()}] {variant} seed {seed}: skipped, {held_elsewhere}', flush=True)
        return None
    saturated = 'saturated' in proc.stderr
    record = {'env': args.env, 'variant': variant, 'flags': list(flags), 'steps': args.steps,
              'seed': seed, 'returncode': proc.returncode, 'wall_time_s': round(wall, 1),
              'eval_every': args.eval_every, 'eval_episodes': args.eval_episodes,
              'saturated': saturated, 'curve': curve, 'commit': _commit(),
              'finished_utc': _now(), 'load_average': round(os.getloadavg()[0], 2)}
    if proc.returncode != 0:
        record['stderr_tail'] = proc.stderr[-2000:]
    print(f'[{_now()}] {variant} seed {seed}: exit {proc.returncode}, {wall:.0f} s, '
          f'first solve {first_solve(curve, args.solved)}', flush=True)
    return record


def read_curve(directory: Path) -> list[list[float]]:
    """``[env_steps, eval_return_mean]`` rows of a run's ``progress.csv``; none when absent."""
    progress = directory / 'progress.csv'
    if not progress.is_file():
        return []
    with open(progress, newline='') as f:
        return [[int(row['env_steps']), round(float(row['eval_return_mean']), 1)]
                for row in csv.DictReader(f)]


def first_solve(curve: list, solved: float) -> int | None:
    return next((step for step, ret in curve if ret >= solved), None)


def stability(curve: list, solved: float, stable: float) -> float | None:
    """Share of evaluations at ``stable`` or more from the first solve on."""
    first = first_solve(curve, solved)
    if first is None:
        return None
    after = [ret for step, ret in curve if step >= first]
    return sum(ret >= stable for ret in after) / len(after)


def iqm_interval(values: list[float], reps: int = 2000,
                 seed: int = 0) -> tuple[float, float, float]:
    """
    Interquartile mean and its 95 % percentile-bootstrap interval over the runs.

    Of one run: its value, three times.

    rliable's definitions (Agarwal et al. 2021: the mean of the middle 50 %, the runs
    resampled with replacement), computed here with numpy alone: rliable 1.2's dependency
    ``arch`` does not import beside the pandas this environment holds.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))

    def iqm(sample: np.ndarray) -> float:
        # scipy.stats.trim_mean(sample, 0.25): a quarter of the runs cut from each end.
        sample = np.sort(sample)
        cut = int(0.25 * len(sample))
        return float(np.mean(sample[cut:len(sample) - cut]))

    rng = np.random.default_rng(seed)
    boots = [iqm(rng.choice(x, size=len(x), replace=True)) for _ in range(reps)]
    low, high = np.percentile(boots, [2.5, 97.5])
    return iqm(x), float(low), float(high)


def summarize(results: dict, solved: float, stable: float) -> str:
    groups: dict[tuple, list[dict]] = {}
    for run in results['runs']:
        groups.setdefault((run['env'], run['steps'], run['variant']), []).append(run)
    lines = ['| env | steps | variant | seeds solved | first solve, median | first solve, IQM '
             '[95 % CI] | stable after solve, median (min) | saturated | wall s, median |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for (env, steps, variant), runs in sorted(groups.items()):
        # A run that did not finish (stopped, crashed) has no place in the statistics.
        runs = sorted((r for r in runs if r['returncode'] == 0), key=lambda r: r['seed'])
        if not runs:
            continue
        firsts = [first_solve(r['curve'], solved) for r in runs]
        solved_steps = [f for f in firsts if f is not None]
        stab = [s for s in (stability(r['curve'], solved, stable) for r in runs)
                if s is not None]
        if len(solved_steps) >= 2:
            iqm, low, high = iqm_interval(solved_steps)
            iqm_text = f'{iqm:,.0f} [{low:,.0f}, {high:,.0f}]'
        else:
            iqm_text = '-'
        # An unsolved seed counts as beyond the budget, so the median stays honest.
        median = np.median([f if f is not None else np.inf for f in firsts])
        median_text = f'{median:,.0f}' if np.isfinite(median) else f'> {steps:,}'
        stab_text = (f'{np.median(stab):.0%} ({min(stab):.0%})' if stab else '-')
        lines.append(
            f'| {env} | {steps:,} | {variant} | {len(solved_steps)}/{len(runs)} '
            f'(seeds {",".join(str(r["seed"]) for r in runs)}) | {median_text} | {iqm_text} '
            f'| {stab_text} | {sum(r["saturated"] for r in runs)} '
            f'| {np.median([r["wall_time_s"] for r in runs]):.0f} |')
    return '\n'.join(lines)


def final_returns(results: dict, env: str, steps: int, at: int | None = None) -> str:
    """
    Markdown: per variant, each seed's evaluation at ``at`` and their IQM [95 % CI].

    Beside them, each seed's best evaluation up to ``at``: the policy its ``best.pt`` holds,
    which a user would deploy. Chosen on the evaluation episodes themselves, it reads high.

    :param at: the step to read in runs of any length from ``at`` on (the shortest run of
        each variant and seed), a longer run being the same run up to there; default: the
        last evaluation of runs of ``steps``.
    """
    read = steps if at is None else at
    groups: dict[str, list[dict]] = {}
    for run in runs_at(results, env, read, exact=at is None):
        groups.setdefault(run['variant'], []).append(run)
    lines = [f'| {env}, {read:,} steps: variant | seeds | return at {read:,} per seed | '
             'IQM [95 % CI] | best up to it per seed (best.pt) | its IQM | actor saturated | '
             'wall s, median |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for variant, runs in sorted(groups.items()):
        runs.sort(key=lambda r: r['seed'])
        finals = [return_at(r, read) for r in runs]
        iqm, low, high = iqm_interval(finals)
        bests = [max(value for step, value in r['curve'] if step <= read) for r in runs]
        best_iqm = iqm_interval(bests)[0]
        lines.append(f'| {variant} | {len(runs)} | '
                     + ', '.join(f'{f:,.0f}' for f in finals)
                     + f' | {iqm:,.0f} [{low:,.0f}, {high:,.0f}] | '
                     + ', '.join(f'{b:,.0f}' for b in bests) + f' | {best_iqm:,.0f} | '
                     f'{sum(r["saturated"] for r in runs)} | '
                     f'{np.median([r["wall_time_s"] for r in runs]):.0f} |')
    return '\n'.join(lines)


PRESET_RUNS = {'HalfCheetah-v5': 'crossq_pa1e-2_alr1e-3', 'Hopper-v5': 'crossq_pa1e-2',
               'Walker2d-v5': 'crossq_pa1e-2_n3_c512'}
"""The variant whose flags give each env's default preset as presets.yaml holds it."""
SIDE_BY_SIDE = (('the preset', None), ('`--preset ddpg`', 'ddpg'), ('SB3 DDPG', 'sb3_ddpg'),
                ('SB3 TD3', 'sb3_td3'), ("sbx's CrossQ, 256 wide", 'sbx_crossq_256'))
"""The columns of :func:`side_by_side`: a title and a variant (``None``: the env's preset)."""


def side_by_side_runs(results: dict, steps: int) -> dict[str, list[list[dict]]]:
    """Per env of :data:`PRESET_RUNS`, the finished runs of ``steps`` of each column."""
    found = {}
    for env, preset in PRESET_RUNS.items():
        by_variant: dict[str, list[dict]] = {}
        for run in runs_at(results, env, steps, exact=True):
            by_variant.setdefault(run['variant'], []).append(run)
        found[env] = [sorted(by_variant.get(variant or preset, []), key=lambda r: r['seed'])
                      for _, variant in SIDE_BY_SIDE]
    return found


def side_by_side(results: dict, steps: int) -> str:
    """
    Markdown: per env of :data:`PRESET_RUNS`, the preset and the peers at ``steps``.

    Each cell: the IQM [95 % CI] of the returns at ``steps`` over the seeds run, the seeds'
    count, and the median wall time of a run in minutes.
    """
    lines = [f'| {steps:,} steps, IQM [95 % CI] (seeds; minutes a run) | '
             + ' | '.join(title for title, _ in SIDE_BY_SIDE) + ' |',
             '| --- |' + ' --- |' * len(SIDE_BY_SIDE)]
    for env, columns in side_by_side_runs(results, steps).items():
        cells = []
        for runs in columns:
            if not runs:
                cells.append('-')
                continue
            iqm, low, high = iqm_interval([return_at(r, steps) for r in runs])
            minutes = np.median([r['wall_time_s'] for r in runs]) / 60.0
            interval = f' [{low:,.0f}, {high:,.0f}]' if len(runs) > 1 else ''
            cells.append(f'{iqm:,.0f}{interval} ({len(runs)}; {minutes:.0f})')
        lines.append(f'| {env} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot_side_by_side(results: dict, steps: int, path: Path) -> None:
    """One panel per env: each column's IQM and 95 % CI at ``steps``, and every seed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    found = side_by_side_runs(results, steps)
    fig, axes = plt.subplots(1, len(found), figsize=(4.2 * len(found), 4.2), dpi=110)
    for ax, (env, columns) in zip(np.atleast_1d(axes), found.items()):
        for i, runs in enumerate(columns):
            if not runs:
                continue
            finals = [return_at(r, steps) for r in runs]
            iqm, low, high = iqm_interval(finals)
            ax.bar(i, iqm, color=f'C{i}', alpha=0.6)
            ax.errorbar(i, iqm, yerr=[[iqm - low], [high - iqm]], color='black', capsize=4)
            ax.scatter(np.full(len(finals), i) + np.linspace(-0.2, 0.2, len(finals)), finals,
                       color='black', s=9, zorder=3)
            ax.text(i, 0, f'{len(finals)}', ha='center', va='bottom', fontsize=7)
        ax.set_xticks(range(len(SIDE_BY_SIDE)))
        ax.set_xticklabels([title.replace('`', '').replace(', ', '\n')
                            for title, _ in SIDE_BY_SIDE], fontsize=7, rotation=30)
        ax.set_title(env)
        ax.grid(axis='y', alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel(f'noise-free return at {steps:,} steps')
    fig.suptitle('IQM with 95 % bootstrap CI (bars), each seed (dots), seeds per bar (base)',
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def runs_at(results: dict, env: str, step: int, exact: bool = False) -> list[dict]:
    """
    Return the finished runs at ``env`` with an evaluation at ``step``, one per variant and seed.

    :param exact: only runs of ``step`` steps; otherwise the shortest run from ``step`` on (a
        longer run is the same run up to there).
    """
    chosen: dict[tuple[str, int], dict] = {}
    for run in results['runs']:
        long_enough = run['steps'] == step if exact else run['steps'] >= step
        if run['env'] != env or run['returncode'] != 0 or not long_enough \
                or not any(s == step for s, _ in run['curve']):
            continue
        key = run['variant'], run['seed']
        if key not in chosen or run['steps'] < chosen[key]['steps']:
            chosen[key] = run
    return list(chosen.values())


def return_at(run: dict, step: int) -> float:
    """Return the run's evaluation at ``step``."""
    return next(ret for s, ret in run['curve'] if s == step)


def critic_width(run: dict) -> int:
    """Return the width of a run's critics: ``--critic-hidden-sizes`` when given, else 256."""
    flags = run['flags']
    if '--critic-hidden-sizes' in flags:
        return int(flags[flags.index('--critic-hidden-sizes') + 1])
    return 256


def plot_widths(results: dict, env: str, at: int, variants: list[str], path: Path) -> None:
    """Plot the return at step ``at`` against the critics' width: every seed, each median."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    runs = [run for run in runs_at(results, env, at) if run['variant'] in variants]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for precision, marker in (('float32', 'o'), ('bfloat16', 's')):
        points: dict[int, list[float]] = {}
        for run in runs:
            if ('bfloat16' in run['flags']) == (precision == 'bfloat16'):
                points.setdefault(critic_width(run), []).append(return_at(run, at))
        if not points:
            continue
        widths = sorted(points)
        color = 'C0' if precision == 'float32' else 'C1'
        for width in widths:
            ax.scatter([width] * len(points[width]), points[width], marker=marker,
                       color=color, alpha=0.5, s=18)
        ax.plot(widths, [np.median(points[w]) for w in widths], marker=marker, color=color,
                label=f'{precision} products (median; dots: seeds)')
    ax.set_xscale('log', base=2)
    shown = sorted({critic_width(run) for run in runs})
    ax.set_xticks(shown, [str(width) for width in shown])
    ax.minorticks_off()
    _save_figure(fig, ax, path, "critics' hidden width (two layers; the actor stays 256-256)",
                 f'noise-free return at {at:,} steps', f'{env}: return against critic width')


def plot_curves(results: dict, env: str, steps: int, variants: list[str], path: Path) -> None:
    """Each variant's evaluations against steps: the median over seeds and every seed thin."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for i, variant in enumerate(variants):
        runs = [r for r in results['runs'] if (r['env'], r['steps'], r['variant']) ==
                (env, steps, variant) and r['returncode'] == 0 and r['curve']]
        if not runs:
            continue
        color = f'C{i}'
        for run in runs:
            ax.plot(*zip(*run['curve']), color=color, alpha=0.25, linewidth=0.8)
        grid = sorted({step for run in runs for step, _ in run['curve']})
        median = [np.median([ret for run in runs for s, ret in run['curve'] if s == step])
                  for step in grid]
        ax.plot(grid, median, color=color, linewidth=2,
                label=f'{variant} (median of {len(runs)} seeds)' if len(runs) > 1
                else f'{variant} (1 seed)')
    _save_figure(fig, ax, path, 'environment steps', 'noise-free return',
                 f'{env}: evaluations during training')


def _save_figure(fig, ax, path: Path, xlabel: str, ylabel: str,  # noqa: ANN001
                 title: str) -> None:
    """Label, grid and legend the axes, write the PNG (its folder made), close the figure."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper left', fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--env', default='InvertedPendulum-v5')
    parser.add_argument('--steps', type=int, default=15_000)
    parser.add_argument('--variants', nargs='+', default=['ddpg', 'td3'],
                        choices=sorted(VARIANTS) + list(PEERS))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--eval-every', type=int, default=1000)
    parser.add_argument('--eval-episodes', type=int, default=5)
    parser.add_argument('--solved', type=float, default=1000.0)
    parser.add_argument('--stable', type=float, default=950.0)
    parser.add_argument('--jobs', type=int, default=1)
    parser.add_argument('--force', action='store_true',
                        help='run again the runs that already finished (a stopped run always is)')
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    parser.add_argument('--results', type=Path, default=DEFAULT_RESULTS)
    parser.add_argument('--summarize', action='store_true',
                        help='print the table of what has finished and run nothing')
    parser.add_argument('--plot', type=Path,
                        help="with --summarize: draw --variants' curves at --env and --steps "
                             '(with --at: their returns at that step against critic width)')
    parser.add_argument('--side-by-side-plot', type=Path,
                        help="with --summarize: draw the side-by-side table's returns at "
                             '--steps, one panel per env')
    parser.add_argument('--at', type=int,
                        help='with --summarize: returns at this step, from runs of any length')
    args = parser.parse_args()
    if args.summarize:
        results = load_results(args.results)
        print(summarize(results, args.solved, args.stable))
        print()
        print(final_returns(results, args.env, args.steps, args.at))
        if args.steps in (50_000, 100_000):
            print()
            print(side_by_side(results, args.steps))
        if args.side_by_side_plot is not None:
            plot_side_by_side(results, args.steps, args.side_by_side_plot)
        if args.plot is not None and args.at is not None:
            plot_widths(results, args.env, args.at, args.variants, args.plot)
        elif args.plot is not None:
            plot_curves(results, args.env, args.steps, args.variants, args.plot)
        return 0
    peers = [v for v in args.variants if v in PEERS]
    if peers:
        parser.error(f'{", ".join(peers)}: run by benchmarks/peers.py; here only summarized')
    # A run that was stopped, or failed, is recorded with its exit status but is not done:
    # asking for it again runs it again.
    done = {run_key(r) for r in load_results(args.results)['runs'] if r['returncode'] == 0}
    asked = [(v, s) for s in args.seeds for v in args.variants]
    todo = [(v, s) for v, s in asked if args.force or (args.env, v, args.steps, s) not in done]
    finished = len(asked) - len(todo)
    print(f'[{_now()}] {len(todo)} runs, {args.jobs} at a time'
          + (f'; {finished} already finished (--force runs them again)' if finished else ''),
          flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        for record in pool.map(lambda vs: one_run(args, *vs), todo):
            if record is not None:
                save_result(args.results, record)
    print(summarize(load_results(args.results), args.solved, args.stable))
    return 0


if __name__ == '__main__':
    sys.exit(main())
