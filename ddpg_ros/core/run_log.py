"""
What a training run writes for people to look at: CSV files, TensorBoard, a PNG.

``progress.csv`` holds a row per logging interval, ``episodes.csv`` a row per episode.

``ddpg-train``, ``ddpg_agent`` and ``ddpg_learner`` write the same files into their output
directory, with the same CSV columns, so one set of tools (TensorBoard, a spreadsheet, the
PNG) reads any of them. :class:`RunLog` writes synchronously, for a loop that may wait on
the disk; :class:`BackgroundRunLog` hands every write to a thread of its own, for a control
loop that must not.
"""

from __future__ import annotations

import csv
import math
import os
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

CSV_FIELDS = ('env_steps', 'updates', 'episodes', 'time_s', 'steps_per_s', 'eval_return_mean',
              'eval_return_std', 'train_return_mean', 'critic_loss', 'actor_loss', 'q_mean',
              'actor_at_bound')
"""The columns of ``progress.csv``; a value not known at a row is left empty."""
EPISODE_FIELDS = ('env_steps', 'episode_return')
"""The columns of ``episodes.csv``: one row per finished training episode, as SB3's Monitor
writes, at the step it ended."""
EPISODES_FILE = 'episodes.csv'
CURVE_FILE = 'learning_curve.png'


def prepare_output_dir(path: str | os.PathLike, what: str = 'output directory') -> Path:
    """
    Create ``path`` if needed and make sure files can be written into it.

    :param what: how the error names the setting, e.g. ``checkpoint_dir``.
    :raises ValueError: the directory cannot be created or written, naming it and why.
    """
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f'{what}={str(directory)!r} cannot be created: '
                         f'{exc.strerror or exc}') from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f'{what}={str(directory)!r} is not writable')
    return directory


class RunLog:
    """
    ``progress.csv``, ``episodes.csv``, TensorBoard scalars and ``learning_curve.png``.

    :param out: the directory; it must exist (see :func:`prepare_output_dir`).
    :param tensorboard: also write TensorBoard event files into ``out``.
    :param append: continue an existing ``progress.csv`` (a resumed run) instead of
        starting a new one.
    :param title: the plot's title; the directory's name by default.
    """

    def __init__(self, out: str | os.PathLike, tensorboard: bool = True, append: bool = False,
                 title: str = '') -> None:
        self.out = Path(out)
        self.title = title
        path = self.out / 'progress.csv'
        header = not (append and path.is_file() and path.stat().st_size)
        self.fields = CSV_FIELDS
        if not header:
            # A run continued from an older version keeps that file's columns, so that no
            # row of it ever has more cells than its header.
            with open(path, newline='') as existing:
                self.fields = tuple(next(csv.reader(existing), CSV_FIELDS))
        self._csv_file = open(path, 'a' if append else 'w', newline='')
        self._csv = csv.DictWriter(self._csv_file, fieldnames=self.fields, extrasaction='ignore')
        if header:
            self._csv.writeheader()
            self._csv_file.flush()
        episodes = self.out / EPISODES_FILE
        header = not (append and episodes.is_file() and episodes.stat().st_size)
        self._episodes_file = open(episodes, 'a' if append else 'w', newline='')
        self._episodes = csv.writer(self._episodes_file)
        if header:
            self._episodes.writerow(EPISODE_FIELDS)
            self._episodes_file.flush()
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(log_dir=str(self.out))

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Add one TensorBoard scalar; a non-finite value is skipped."""
        value = float(value)
        if self._writer is not None and math.isfinite(value):
            self._writer.add_scalar(tag, value, step)

    def episode(self, episode_return: float, env_steps: int) -> None:
        """One finished training episode: a row of ``episodes.csv`` and a TensorBoard scalar."""
        self._episodes.writerow((int(env_steps), float(episode_return)))
        self._episodes_file.flush()
        self.scalar('train/episode_return', episode_return, env_steps)

    def record(self, row: Mapping[str, Any]) -> None:
        """
        Append one row to ``progress.csv`` and its values as TensorBoard scalars.

        Values may be numbers, 0-d tensors (converted here) or ``''`` for unknown.
        """
        row = {key: ('' if value is None or isinstance(value, str) else _number(value))
               for key, value in row.items()}
        self._csv.writerow({key: row.get(key, '') for key in self.fields})
        self._csv_file.flush()
        step = int(row['env_steps'])
        for key, value in row.items():
            if key != 'env_steps' and value != '':
                self.scalar(f'eval/{key}' if key.startswith('eval') else f'train/{key}',
                            value, step)
        if self._writer is not None:
            self._writer.flush()

    def plot(self) -> Path | None:
        """
        Redraw ``learning_curve.png`` from ``progress.csv``; ``None`` while it has no data.

        :raises OSError: the PNG cannot be written.
        """
        from ddpg_ros.core.plotting import plot_learning_curve

        self._csv_file.flush()
        try:
            return plot_learning_curve(self.out / 'progress.csv', self.out / CURVE_FILE,
                                       title=self.title)
        except ValueError:
            return None

    def close(self) -> None:
        """Flush and close the files."""
        self._csv_file.close()
        self._episodes_file.close()
        if self._writer is not None:
            self._writer.close()


class BackgroundRunLog:
    """
    A :class:`RunLog` written by a thread of its own: every call returns at once.

    The caller's thread only puts a small item on a queue; the files, TensorBoard and
    matplotlib run in the writer thread. A failing write is reported through ``on_error``
    once per kind of failure and never reaches the caller.

    :param on_error: called in the writer thread with a one-line description.
    """

    _STOP = object()

    def __init__(self, out: str | os.PathLike, tensorboard: bool = True, append: bool = False,
                 title: str = '', on_error: Callable[[str], None] | None = None) -> None:
        self._log = RunLog(out, tensorboard=False, append=append, title=title)
        self._tensorboard = tensorboard
        self._on_error = on_error or (lambda message: None)
        self._reported: set[str] = set()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name='run_log', daemon=True)
        self._thread.start()

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Queue one TensorBoard scalar."""
        self._queue.put(('scalar', (tag, value, step)))

    def episode(self, episode_return: float, env_steps: int) -> None:
        """Queue one ``episodes.csv`` row (see :meth:`RunLog.episode`)."""
        self._queue.put(('episode', (episode_return, env_steps)))

    def record(self, row: Mapping[str, Any]) -> None:
        """Queue one ``progress.csv`` row (see :meth:`RunLog.record`)."""
        self._queue.put(('record', (dict(row),)))

    def plot(self) -> None:
        """Queue a redraw of ``learning_curve.png``."""
        self._queue.put(('plot', ()))

    def close(self, timeout: float = 30.0) -> bool:
        """
        Write what is queued, draw the curve a last time, and close the files.

        :return: whether the writer finished within ``timeout`` seconds.
        """
        self._queue.put(('plot', ()))
        self._queue.put(self._STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        log = self._log
        if self._tensorboard:
            # Importing TensorBoard takes seconds: here, not in the caller's start-up.
            self._call('TensorBoard', self._open_tensorboard)
        while True:
            item = self._queue.get()
            if item is self._STOP:
                break
            name, args = item
            self._call(name, getattr(log, name), *args)
        self._call('close', log.close)

    def _open_tensorboard(self) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self._log._writer = SummaryWriter(log_dir=str(self._log.out))

    def _call(self, what: str, function: Callable[..., Any], *args: Any) -> None:
        try:
            function(*args)
        except Exception as exc:  # a full disk or a plotting problem must not stop a run
            if what not in self._reported:
                self._reported.add(what)
                self._on_error(f'run log ({what}) failed: {type(exc).__name__}: {exc}')


def _number(value: Any) -> float | int:
    if isinstance(value, int):
        return value
    return float(value)
