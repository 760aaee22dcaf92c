"""
Does a resumed ``ddpg_agent`` run continue its learning curve? Figures and a plot.

Rerun (per seed on 2 cores: about 4.5 minutes for HalfCheetah, 2.5 for the pendulum)::

    . .venv/bin/activate
    python benchmarks/resume_continuity.py --task half_cheetah --seeds 0 1 2
    python benchmarks/resume_continuity.py --task inverted_pendulum --seeds 0 1 2

For each seed, in a ROS domain claimed with ``test/conftest.py``'s ``claim_domain_id`` and
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (every process ended by its pid), the real nodes
``mujoco_sim`` (lockstep) and ``ddpg_agent`` (train mode) run three times, on ``--task``
(``inverted_pendulum``, the default, or ``half_cheetah``; learners in ``TASKS`` below):

1. **uninterrupted**: ``--steps`` env steps from scratch, a checkpoint every
   ``--checkpoint-every`` steps with ``save_buffer:=true``;
2. **resumed**: a new agent process with ``load_checkpoint`` = run 1's checkpoint at
   ``--resume-at`` and its ``.npz`` buffer, on to ``--steps`` (a fresh sim, another seed);
3. **resumed without buffer** (the control): the same checkpoint copied without its buffer,
   so the resumed learner starts from an empty replay buffer. It shows what a broken resume
   looks like on this measure; skip it with ``--no-control``.

Every checkpoint is then evaluated without noise on Gymnasium's env: ``--episodes`` episodes
from the seeds 1000, 1001, ... (the same initial states for every checkpoint).

Figures: for each run, the mean evaluation return over the checkpoints after the resume point
(``window``); the **seed spread** is the standard deviation over seeds of the uninterrupted
runs' window means; the **drop** of a resumed run is its uninterrupted twin's window mean minus
its own, and the drop of the mean curve is the mean of those over seeds. A resume continues
the curve when the drop of the mean curve is within one seed spread.

Output: ``--out-dir``/resume_continuity_<task>.{json,md,png}; ``--from-json`` redoes the
figures and the plot from such a JSON without training again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ros_processes import claim_domain_id, report_header, ros_env, start, stop, uptime

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKS = {
    'inverted_pendulum': {
        'model': 'InvertedPendulum-v5', 'steps': 30_000, 'resume_at': 15_000,
        # The end-to-end learning test's learner: small networks, lr 1e-3.
        'learner': {'learning_starts': 1000, 'hidden_sizes': '[64, 64]', 'batch_size': 64,
                    'actor_lr': 0.001, 'critic_lr': 0.001, 'buffer_size': 100_000}},
    'half_cheetah': {
        'model': 'HalfCheetah-v5', 'steps': 30_000, 'resume_at': 20_000,
        # config/half_cheetah.yaml's learner.
        'learner': {'learning_starts': 10_000, 'hidden_sizes': '[256, 256]',
                    'batch_size': 256, 'actor_lr': 0.001, 'critic_lr': 0.001,
                    'buffer_size': 1_000_000}},
}
"""Per task: the sim's model, default run length and resume point, and the learner."""
EVAL_SEED = 1000
COMMON = {'device': 'cpu', 'torch_threads': 1}


def node(module: str, params: dict) -> list[str]:
    args = []
    for name, value in params.items():
        args += ['-p', f'{name}:={str(value).lower() if isinstance(value, bool) else value}']
    return [sys.executable, '-m', f'ddpg_ros.ros.{module}', '--ros-args', *args]


def train(task: str, name: str, seed: int, steps: int, checkpoint_every: int,
          checkpoint_dir: Path, env: dict[str, str], log_dir: Path, load: Path | None,
          timeout: float) -> dict:
    """One agent run with a fresh sim, until the agent reaches ``steps`` and exits."""
    sim = start(node('mujoco_sim_node', {'model': TASKS[task]['model'], 'mode': 'lockstep',
                                         'seed': seed + (100 if load else 0)}),
                env, log_dir / f'{name}_sim.log')
    params = {'mode': 'train', 'task': task, 'seed': seed, 'checkpoint_dir': checkpoint_dir,
              'checkpoint_every': checkpoint_every, 'keep_checkpoints': 0,
              'save_buffer': True, 'total_steps': steps, **TASKS[task]['learner'], **COMMON}
    if load is not None:
        params['load_checkpoint'] = load
    began = time.monotonic()
    agent = start(node('ddpg_agent_node', params), env, log_dir / f'{name}_agent.log')
    try:
        while agent.poll() is None and time.monotonic() - began < timeout:
            time.sleep(1.0)
    finally:
        agent_status = stop(agent)
        sim_status = stop(sim)
    seconds = time.monotonic() - began
    print(f'  {name}: agent exit {agent_status} after {seconds:.0f} s', flush=True)
    if agent_status != 0:
        raise RuntimeError(f'{name}: the agent exited with {agent_status}; see '
                           f'{log_dir / f"{name}_agent.log"}')
    return {'seconds': round(seconds, 1), 'agent_exit': agent_status, 'sim_exit': sim_status}


def resume_point(checkpoint_dir: Path, steps: int) -> Path:
    """
    Return the first checkpoint at or after ``steps``.

    Periodic checkpoints are written off the control loop, so one may hold a step or two more
    than its multiple.
    """
    for path in sorted(checkpoint_dir.glob('checkpoint_*.pt')):
        if int(path.stem.split('_')[1]) >= steps:
            return path
    raise RuntimeError(f'no checkpoint at or after step {steps} in {checkpoint_dir}')


def curve(model: str, checkpoint_dir: Path, episodes: int) -> dict[int, float]:
    """Mean noise-free return of each ``checkpoint_<steps>.pt``, by env steps."""
    from ddpg_ros.core.checkpoint import load_checkpoint
    from ddpg_ros.sim.envs import make_env
    from ddpg_ros.cli.evaluation import evaluate

    env = make_env(model)
    found = {}
    for path in sorted(checkpoint_dir.glob('checkpoint_*.pt')):
        policy = load_checkpoint(path).build_agent(device='cpu', optimizers=False)
        found[int(path.stem.split('_')[1])] = statistics.fmean(
            evaluate(policy.act, env, episodes, seed=EVAL_SEED))
    env.close()
    return found


def window_mean(points: dict[int, float], after: int) -> float:
    return statistics.fmean(v for k, v in points.items() if k > after)


def summarize(runs: dict[int, dict[str, dict]], resume_at: int) -> dict:
    """
    Summarize the runs: window means per run, the seed spread and each resumed kind's drop.

    The drop is against the uninterrupted runs, per seed and for the mean curve over seeds.
    """
    seeds = sorted(runs)
    means = {kind: {s: window_mean(runs[s][kind]['curve'], resume_at) for s in seeds
                    if kind in runs[s]} for kind in ('uninterrupted', 'resumed', 'no_buffer')}
    spread = statistics.stdev(means['uninterrupted'].values()) if len(seeds) > 1 else None
    summary = {'window_means': means, 'seed_spread': spread}
    for kind in ('resumed', 'no_buffer'):
        drops = [means['uninterrupted'][s] - means[kind][s] for s in means[kind]]
        if drops:
            summary[f'{kind}_drops'] = drops
            summary[f'{kind}_median_drop'] = statistics.median(drops)
            # The mean curve over seeds, resumed against uninterrupted.
            summary[f'{kind}_mean_drop'] = statistics.fmean(drops)
            summary[f'{kind}_continues'] = (None if spread is None
                                            else statistics.fmean(drops) <= spread)
    return summary


def markdown(report: dict) -> str:
    s = report['summary']
    a = report['args']
    lines = [
        f'# Resume continuity ({report["date_utc"]}, {report["machine"]})', '',
        f'`{report["command"]}`', '',
        f'{report["model"]} through `mujoco_sim` <-> `ddpg_agent` in lockstep, '
        f'{a["steps"]} steps, resumed at {a["resume_at"]}; noise-free evaluation of every '
        f'checkpoint ({a["episodes"]} episodes). Window = checkpoints after '
        f'{a["resume_at"]}.', '',
        '| seed | uninterrupted | resumed with buffer | resumed without buffer |',
        '|---|---|---|---|']
    for seed in sorted(s['window_means']['uninterrupted']):
        row = [f'{s["window_means"][k].get(seed, float("nan")):.0f}'
               for k in ('uninterrupted', 'resumed', 'no_buffer')]
        lines.append(f'| {seed} | ' + ' | '.join(row) + ' |')
    lines.append('')
    if s['seed_spread'] is not None:
        lines.append(f'Seed spread (std of the uninterrupted window means): '
                     f'{s["seed_spread"]:.0f}.')
    for kind, label in (('resumed', 'Resumed with buffer'),
                        ('no_buffer', 'Resumed without buffer')):
        if f'{kind}_drops' in s:
            drops = ', '.join(f'{d:.0f}' for d in s[f'{kind}_drops'])
            lines.append(f'{label}: drop of the mean curve {s[f"{kind}_mean_drop"]:.0f}'
                         + ('' if s[f'{kind}_continues'] is None else
                            f' ({"within" if s[f"{kind}_continues"] else "beyond"} '
                            'the seed spread)')
                         + f'; per seed {drops} (median {s[f"{kind}_median_drop"]:.0f}).')
    lines += ['', f'Machine load: before `{report["uptime_before"]}`, '
              f'after `{report["uptime_after"]}`.', '']
    return '\n'.join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    runs = report['runs']
    seeds = sorted(runs, key=int)
    fig, axes = plt.subplots(1, len(seeds), figsize=(4.2 * len(seeds), 3.6), dpi=110,
                             sharey=True, squeeze=False)
    styles = {'uninterrupted': ('tab:blue', '-', 'uninterrupted'),
              'resumed': ('tab:green', '--', 'resumed with buffer'),
              'no_buffer': ('tab:red', ':', 'resumed without buffer')}
    for ax, seed in zip(axes[0], seeds):
        for kind, (color, style, label) in styles.items():
            if kind in runs[seed]:
                points = sorted((int(k), v) for k, v in runs[seed][kind]['curve'].items())
                ax.plot(*zip(*points), style, color=color, marker='.', label=label)
        ax.axvline(report['args']['resume_at'], color='grey', alpha=0.5)
        ax.set_title(f'seed {seed}')
        ax.set_xlabel('environment steps')
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('noise-free return')
    axes[0][0].legend(loc='upper left', fontsize=8)
    fig.suptitle(f'{report["model"]} through ROS: resumed at the grey line')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--task', choices=sorted(TASKS), default='inverted_pendulum')
    parser.add_argument('--steps', type=int, help="default: the task's in TASKS")
    parser.add_argument('--resume-at', type=int, help="default: the task's in TASKS")
    parser.add_argument('--checkpoint-every', type=int, default=1000)
    parser.add_argument('--episodes', type=int, default=5)
    parser.add_argument('--no-control', action='store_true',
                        help='skip the resume without buffer')
    parser.add_argument('--run-timeout', type=float, default=900.0)
    parser.add_argument('--out-dir', type=Path, default=HERE / 'results')
    parser.add_argument('--from-json', type=Path,
                        help='summarize and plot this earlier report instead of training')
    args = parser.parse_args()
    if args.from_json:
        return write_outputs(json.loads(args.from_json.read_text()), args.out_dir)
    args.steps = args.steps or TASKS[args.task]['steps']
    args.resume_at = args.resume_at or TASKS[args.task]['resume_at']
    if args.resume_at % args.checkpoint_every or not 0 < args.resume_at < args.steps:
        parser.error('--resume-at must be a multiple of --checkpoint-every below --steps')

    work = Path(tempfile.mkdtemp(prefix='resume_continuity_'))
    report: dict = {
        **report_header(args),
        'model': TASKS[args.task]['model'], 'learner': {**TASKS[args.task]['learner'], **COMMON},
        'work_dir': str(work), 'runs': {},
    }
    print(f'checkpoints and logs in {work}; {report["uptime_before"]}', flush=True)
    with claim_domain_id() as domain_id:
        env = ros_env(domain_id)
        for seed in args.seeds:
            print(f'seed {seed}', flush=True)
            base = work / f'seed{seed}'
            plan = ['uninterrupted', 'resumed'] + ([] if args.no_control else ['no_buffer'])
            runs = report['runs'][str(seed)] = {}
            load = None
            for kind in plan:
                if kind == 'resumed':
                    load = resume_point(base / 'uninterrupted', args.resume_at)
                elif kind == 'no_buffer':  # the same checkpoint, without its .npz beside it
                    bare = base / 'no_buffer_source'
                    bare.mkdir()
                    load = Path(shutil.copy2(load, bare / load.name))
                run = train(args.task, f'seed{seed}_{kind}', seed, args.steps,
                            args.checkpoint_every, base / kind, env, work, load,
                            args.run_timeout)
                run['load_checkpoint'] = str(load) if load else ''
                run['curve'] = curve(report['model'], base / kind, args.episodes)
                runs[kind] = run
                print(f'  {kind}: ' + ' '.join(f'{k // 1000}k:{v:.0f}'
                                               for k, v in run['curve'].items()), flush=True)
    report['uptime_after'] = uptime()
    return write_outputs(report, args.out_dir)


def write_outputs(report: dict, out_dir: Path) -> int:
    # Through JSON, step and seed keys are strings; make them numbers again.
    for runs in report['runs'].values():
        for run in runs.values():
            run['curve'] = {int(k): v for k, v in run['curve'].items()}
    report['summary'] = summarize({int(s): runs for s, runs in report['runs'].items()},
                                  report['args']['resume_at'])
    stem = f'resume_continuity_{report["args"]["task"]}'
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f'{stem}.json').write_text(json.dumps(report, indent=2) + '\n')
    text = markdown(report)
    (out_dir / f'{stem}.md').write_text(text)
    plot(report, out_dir / f'{stem}.png')
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
