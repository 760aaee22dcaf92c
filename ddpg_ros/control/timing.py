"""
The timing a robot's control loop really has, written as a randomization profile.

``ddpg_agent`` records, for every command, how old the state it acted on was (on the ROS
clock, so sim time in a simulation) and, on a timer, how late each period's tick came.
:meth:`TimingRecord.profile` turns both into ``command_latency`` and ``late_periods``
histograms in control periods: a valid profile (:mod:`ddpg_ros.sim.randomization_profile`), so
``ddpg-train --randomize checkpoints/timing.yaml`` trains against the robot's own timing.
No ROS import here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BIN = 0.05
"""Histogram bin width, in control periods."""
LATE_TOLERANCE = 0.05
"""A tick more than this fraction of a period after the one before plus a period is late."""
_MAX_PERIODS = 20.0
"""Longer latencies or delays (a stalled machine, a pause in a debugger) are not timing the
policy can learn to live with: counted in ``measured``, left out of the histograms."""


class TimingRecord:
    """
    Counts of state ages and tick delays, in bins of :data:`BIN` control periods.

    :param period: the control period in seconds.
    """

    def __init__(self, period: float) -> None:
        if not period > 0.0:
            raise ValueError(f'control period must be > 0 s, got {period}')
        self.period = float(period)
        bins = int(_MAX_PERIODS / BIN) + 1
        self.latency = np.zeros(bins, dtype=np.int64)
        self.delay = np.zeros(bins, dtype=np.int64)
        self.ticks = 0
        self.late = 0
        self.beyond = 0
        self._last_tick: float | None = None

    def command(self, state_age: float) -> None:
        """Record a command sent ``state_age`` seconds after the state it acts on."""
        self._count(self.latency, max(state_age, 0.0))

    def tick(self, now: float) -> None:
        """Record a timer tick at ``now`` (monotonic seconds)."""
        if self._last_tick is not None:
            self.ticks += 1
            delay = now - self._last_tick - self.period
            if delay > LATE_TOLERANCE * self.period and self._count(self.delay, delay):
                self.late += 1
        self._last_tick = now

    def _count(self, histogram: np.ndarray, seconds: float) -> bool:
        periods = seconds / self.period
        if not math.isfinite(periods) or periods > _MAX_PERIODS:
            self.beyond += 1
            return False
        histogram[int(round(periods / BIN))] += 1
        return True

    @property
    def commands(self) -> int:
        """Return the commands recorded."""
        return int(self.latency.sum())

    def profile(self) -> dict[str, Any]:
        """Return the timing as a randomization profile, with what was measured."""
        out: dict[str, Any] = {'command_latency': _histogram(self.latency)}
        if self.ticks:
            out['late_periods'] = {'probability': round(self.late / self.ticks, 6),
                                   'delay': _histogram(self.delay)}
        latencies = _percentiles(self.latency, self.period)
        out['measured'] = {
            'control_period_s': self.period, 'commands': self.commands,
            'ticks': self.ticks, 'late_ticks': self.late,
            'beyond_histograms': self.beyond,
            'state_age_ms': latencies,
            'late_delay_ms': _percentiles(self.delay, self.period),
        }
        return out

    def write(self, path: str | os.PathLike) -> Path:
        """Write :meth:`profile` as YAML, atomically, and return the path."""
        path = Path(path)
        temporary = path.with_suffix('.yaml.tmp')
        temporary.write_text(
            '# The control timing ddpg_agent measured: a randomization profile for\n'
            f'# ddpg-train --randomize {path.name} (values in control periods).\n'
            + yaml.safe_dump(self.profile(), sort_keys=False), encoding='utf-8')
        os.replace(temporary, path)
        return path


def _histogram(counts: np.ndarray) -> Any:
    used = np.flatnonzero(counts)
    if used.size == 0:
        return [0.0, 0.0]
    return {'values': [round(float(i) * BIN, 6) for i in used],
            'weights': [int(counts[i]) for i in used]}


def _percentiles(counts: np.ndarray, period: float) -> dict[str, float]:
    total = counts.sum()
    if not total:
        return {}
    cumulative = np.cumsum(counts) / total
    return {f'p{q}': round(float(np.searchsorted(cumulative, q / 100.0)) * BIN * period * 1e3,
                           3) for q in (50, 90, 99)}


__all__ = ['BIN', 'LATE_TOLERANCE', 'TimingRecord']
