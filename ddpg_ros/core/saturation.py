"""
Is the actor stuck at its action bounds? A watch on the policy's noise-free actions.

A tanh actor whose pre-activations grow large outputs a bound for every state, and the
gradient through a saturated tanh is nearly zero, so it stays there: on the inverted pendulum
every episode then ends after 2 steps while the run goes on as if learning. Such a run is
better stopped, or seen, than left for hours. The watch keeps the share of the last ``window``
actions that sit at a bound in every dimension; a share of ``threshold`` or more is reported.
A policy that is bang-bang by design looks the same, so this is a warning, never a stop.
"""

from __future__ import annotations

from collections import deque

import numpy as np

SATURATION_WINDOW = 500
"""Actions looked at: long enough that a few swings to a bound are no alarm."""
SATURATION_MARGIN = 0.01
"""An action within this fraction of the half range of a bound is at that bound."""
SATURATION_THRESHOLD = 0.98
"""Share of the window at a bound from which the actor is reported saturated."""


class SaturationWatch:
    """
    Share of the actor's recent noise-free actions that sit at a bound in every dimension.

    :param low: lower action bound per dimension.
    :param high: upper action bound per dimension.
    :param window: actions looked at.
    :param margin: distance to a bound, in half ranges, that counts as at it.
    :param threshold: share of the window at a bound reported as saturated.
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, window: int = SATURATION_WINDOW,
                 margin: float = SATURATION_MARGIN,
                 threshold: float = SATURATION_THRESHOLD) -> None:
        self._low = np.asarray(low, dtype=np.float64)
        self._high = np.asarray(high, dtype=np.float64)
        self._tolerance = margin * (self._high - self._low) / 2.0
        self._recent: deque[bool] = deque(maxlen=int(window))
        self._at_bound = 0
        self.threshold = float(threshold)

    def record(self, action: np.ndarray) -> None:
        """Note one noise-free action of the actor, in robot units."""
        action = np.asarray(action, dtype=np.float64)
        at_bound = bool(np.all((action <= self._low + self._tolerance)
                               | (action >= self._high - self._tolerance)))
        if len(self._recent) == self._recent.maxlen:
            self._at_bound -= self._recent[0]
        self._recent.append(at_bound)
        self._at_bound += at_bound

    @property
    def share(self) -> float | None:
        """Share of the window at a bound; ``None`` until the window has filled once."""
        if len(self._recent) < (self._recent.maxlen or 0):
            return None
        return self._at_bound / len(self._recent)

    @property
    def saturated(self) -> bool:
        share = self.share
        return share is not None and share >= self.threshold

    def message(self) -> str:
        """Return the warning for a saturated actor, with its numbers and what to try."""
        return (f'actor saturated: {self.share:.0%} of its last {len(self._recent)} noise-free '
                'actions at an action bound in every dimension; a tanh actor stuck there '
                'gets almost no gradient and may never leave (try the default preset, '
                'a lower actor_lr, or critic_norm: layer)')


__all__ = ['SATURATION_MARGIN', 'SATURATION_THRESHOLD', 'SATURATION_WINDOW', 'SaturationWatch']
