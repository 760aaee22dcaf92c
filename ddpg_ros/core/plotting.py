"""Learning curves as PNG files (matplotlib's file-only Agg backend, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path


def plot_learning_curve(csv_path: str | Path, png_path: str | Path, title: str = '') -> Path:
    """
    Plot the returns in a ``progress.csv`` against environment steps.

    Noise-free evaluations (mean and one standard deviation) when the run has them, as
    ``ddpg-train`` does; the mean return of the recent training episodes (with noise)
    always, which is all a robot's run has; and each training episode's return as a dot when
    ``episodes.csv`` lies beside the CSV (the mean of ten lags them).

    :raises ValueError: when the CSV holds no return yet.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    with open(csv_path, newline='') as f:
        rows = list(csv.DictReader(f))
    evaluated = [r for r in rows if r.get('eval_return_mean')]
    train = [(int(r['env_steps']), float(r['train_return_mean']))
             for r in rows if r.get('train_return_mean')]
    episodes = _episodes(Path(csv_path).with_name('episodes.csv'))
    if not evaluated and not train and not episodes:
        raise ValueError(f'{csv_path} has no returns yet')

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if evaluated:
        steps = [int(r['env_steps']) for r in evaluated]
        mean = [float(r['eval_return_mean']) for r in evaluated]
        std = [float(r['eval_return_std'] or 0.0) for r in evaluated]
        ax.plot(steps, mean, marker='o', color='tab:blue', label='evaluation (no noise)')
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)],
                        [m + s for m, s in zip(mean, std)], color='tab:blue', alpha=0.2)
    if episodes:
        ax.scatter(*zip(*episodes), color='tab:orange', alpha=0.6, s=12, linewidths=0,
                   label='each training episode (with noise)')
    if train:
        ax.plot(*zip(*train), color='tab:orange', alpha=0.8,
                label='training episodes (last 10, with noise)')
    ax.set_xlabel('environment steps')
    ax.set_ylabel('episode return')
    ax.set_title(title or Path(csv_path).parent.name)
    ax.grid(alpha=0.3)
    ax.legend(loc='best')
    fig.tight_layout()
    png_path = Path(png_path)
    # Drawn beside the file and renamed over it: a viewer never shows a half-written PNG.
    partial = png_path.with_name(f'.{png_path.name}.partial')
    fig.savefig(partial, format='png')
    plt.close(fig)
    partial.replace(png_path)
    return png_path


def _episodes(path: Path) -> list[tuple[int, float]]:
    """``(env_steps, episode_return)`` of each row of an ``episodes.csv``; none when absent."""
    if not path.is_file():
        return []
    with open(path, newline='') as f:
        # A row being written as the file is read ends early: skipped.
        return [(int(r['env_steps']), float(r['episode_return'])) for r in csv.DictReader(f)
                if r.get('env_steps') and r.get('episode_return')]
