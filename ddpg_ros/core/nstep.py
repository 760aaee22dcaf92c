"""
n-step returns: consecutive transitions folded into one, exactly, and never across a break.

With ``n_step`` n, the replay buffer holds ``(s_t, a_t, R, s_{t+m}, terminated, m)`` with
``R = r_t + gamma r_{t+1} + ... + gamma^(m-1) r_{t+m-1}`` and the critic's target
``y = R + gamma^m (1 - terminated) min_i Q'_i(s_{t+m}, mu'(s_{t+m}))`` (Sutton 1988; in
Rainbow, D4PG and MR.Q's deterministic actor-critic). ``m`` is n, or fewer where the chain
ends first:

* a termination ends it with no bootstrap;
* a time-limit truncation ends it and bootstraps from the last next state;
* a *break* ends it too: a transition whose ``obs`` is not the previous one's ``next_obs``
  (a reset, a refused or stale state the robot skipped, a step off its control period,
  another robot's transition) does not continue the chain, so the pending ones are folded up
  to where the chain was whole and bootstrap from there.

No ROS here; ``ddpg-train`` and the agent feed one :class:`NStepFolder` each.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np


class Folded(NamedTuple):
    """One n-step transition, ready for :meth:`ReplayBuffer.add`."""

    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    horizon: int
    """Steps folded into ``reward``: the target discounts by ``gamma ** horizon``."""


class _Step(NamedTuple):
    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray


class NStepFolder:
    """
    Folds 1-step transitions into n-step ones as they arrive.

    :param n: steps per folded transition; 1 passes transitions through unchanged.
    :param gamma: the discount of the rewards inside a fold.
    """

    def __init__(self, n: int, gamma: float) -> None:
        if n < 1:
            raise ValueError(f'n_step={n} must be >= 1')
        self.n = int(n)
        self.gamma = float(gamma)
        self._pending: deque[_Step] = deque()

    def __len__(self) -> int:
        """Transitions held back, waiting for the steps that follow them."""
        return len(self._pending)

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool, truncated: bool = False) -> list[Folded]:
        """
        Take one transition; return the folded transitions that are now complete, oldest first.

        :param truncated: the episode ended on a time limit here (bootstrap from
            ``next_obs``, but do not continue the chain).
        """
        out: list[Folded] = []
        if self._pending and not np.array_equal(self._pending[-1].next_obs, obs):
            out += self.flush()
        self._pending.append(_Step(np.array(obs, dtype=np.float64, copy=True),
                                   np.array(action, dtype=np.float64, copy=True),
                                   float(reward),
                                   np.array(next_obs, dtype=np.float64, copy=True)))
        if terminated or truncated:
            out += self._fold_all(terminated=bool(terminated))
        elif len(self._pending) == self.n:
            out.append(self._fold(terminated=False))
            self._pending.popleft()
        return out

    def flush(self) -> list[Folded]:
        """Fold everything pending up to the last next state, bootstrapping from it."""
        return self._fold_all(terminated=False)

    def state_dict(self) -> dict:
        """Return the transitions held back, in plain types, for a checkpoint."""
        pending = tuple(self._pending)  # one C-level copy: safe beside a thread that adds
        return {'pending': [[step.obs.tolist(), step.action.tolist(), step.reward,
                             step.next_obs.tolist()] for step in pending]}

    def load_state_dict(self, state: dict) -> None:
        """
        Hold back what :meth:`state_dict` saved.

        A resumed run folds it, as the interrupted one would have, when its next transition
        arrives (a new episode: a break).
        """
        self._pending = deque(_Step(np.array(obs, dtype=np.float64),
                                    np.array(action, dtype=np.float64), float(reward),
                                    np.array(next_obs, dtype=np.float64))
                              for obs, action, reward, next_obs in state.get('pending', []))

    def _fold_all(self, terminated: bool) -> list[Folded]:
        out = []
        while self._pending:
            out.append(self._fold(terminated))
            self._pending.popleft()
        return out

    def _fold(self, terminated: bool) -> Folded:
        """Fold from the oldest pending step to the newest one's next state."""
        steps = self._pending
        reward = 0.0
        for k, step in enumerate(steps):
            reward += self.gamma ** k * step.reward
        first, last = steps[0], steps[-1]
        return Folded(first.obs, first.action, reward, last.next_obs, terminated, len(steps))


__all__ = ['Folded', 'NStepFolder']
