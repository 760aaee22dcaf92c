"""A preallocated ring buffer of transitions, safe with one writer and one sampler thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A sampled mini-batch; every field has the batch size as its first axis."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    horizon: torch.Tensor | None = None
    """Steps folded into each reward (n-step returns); ``None``: one step each."""


class ReplayBuffer:
    """
    Fixed-capacity FIFO replay memory stored as float32 column arrays.

    No Python object is kept per transition: memory is allocated once, up front, and a
    transition costs ``4 * (2 * obs_dim + action_dim + 3)`` bytes. A lock makes ``add`` and
    ``sample`` atomic with respect to each other, so the control loop can append while the
    learner thread samples; the lock is held only for the row copy and the gather, never for a
    gradient step.

    Only ``terminated`` is stored. A time-limit truncation is not a property of the
    transition: its next state still has value, so it is stored with ``terminated = 0``.
    ``horizon`` is the number of steps an n-step transition folds (:mod:`ddpg_ros.core.nstep`),
    1 for the plain ones.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, seed: int = 0,
                 device: torch.device | str = 'cpu') -> None:
        if capacity < 1:
            raise ValueError(f'buffer capacity={capacity} must be >= 1')
        self.capacity = int(capacity)
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, action_dim), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.horizon = np.ones(capacity, dtype=np.float32)
        self.position = 0
        self.size = 0
        self.total_added = 0
        self.rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        """Bytes held by the transition arrays."""
        return sum(a.nbytes for a in self._columns().values())

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            terminated: bool, horizon: int = 1) -> None:
        """
        Append one transition, overwriting the oldest when full.

        Refuses non-finite values: one NaN sampled into a batch would poison every weight.
        """
        if not (np.isfinite(obs).all() and np.isfinite(action).all()
                and np.isfinite(next_obs).all() and np.isfinite(reward)):
            raise ValueError('refusing a transition with a non-finite value')
        with self._lock:
            i = self.position
            self.obs[i] = obs
            self.actions[i] = action
            self.rewards[i] = reward
            self.next_obs[i] = next_obs
            self.terminated[i] = float(terminated)
            self.horizon[i] = horizon
            self.position = (i + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)
            self.total_added += 1

    def add_batch(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                  next_obs: np.ndarray, terminated: np.ndarray,
                  horizon: np.ndarray | None = None) -> None:
        """
        Append ``len(rewards)`` transitions at once, in row order, as :meth:`add` would.

        :param horizon: steps folded into each row's reward; ``None``: one each.

        Refuses the whole batch if any value is non-finite; nothing is stored then.
        """
        count = len(rewards)
        columns = (obs, actions, rewards, next_obs)
        if not all(np.isfinite(column).all() for column in columns):
            raise ValueError('refusing a batch of transitions with a non-finite value')
        # Rows that a longer batch would overwrite within itself are skipped, not written.
        skip = max(count - self.capacity, 0)
        with self._lock:
            rows = (self.position + skip + np.arange(count - skip)) % self.capacity
            self.obs[rows] = obs[skip:]
            self.actions[rows] = actions[skip:]
            self.rewards[rows] = rewards[skip:]
            self.next_obs[rows] = next_obs[skip:]
            self.terminated[rows] = np.asarray(terminated[skip:], dtype=np.float32)
            self.horizon[rows] = 1.0 if horizon is None else horizon[skip:]
            self.position = (self.position + count) % self.capacity
            self.size = min(self.size + count, self.capacity)
            self.total_added += count

    def sample(self, batch_size: int) -> Batch:
        """Uniformly sample ``batch_size`` stored transitions (with replacement)."""
        with self._lock:
            if self.size == 0:
                raise ValueError('cannot sample from an empty replay buffer')
            idx = self.rng.integers(0, self.size, size=batch_size)
            # Fancy indexing copies, so the arrays handed out never alias rows being rewritten.
            arrays = (self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                      self.terminated[idx], self.horizon[idx])
        if self.device.type == 'cuda':
            return Batch(*(torch.from_numpy(a).pin_memory().to(self.device, non_blocking=True)
                           for a in arrays))
        return Batch(*(torch.from_numpy(a) for a in arrays))

    def _columns(self) -> dict[str, np.ndarray]:
        return {'obs': self.obs, 'actions': self.actions, 'rewards': self.rewards,
                'next_obs': self.next_obs, 'terminated': self.terminated,
                'horizon': self.horizon}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the stored transitions to an ``.npz`` file atomically (no pickle)."""
        return write_snapshot(path, self.snapshot())

    def snapshot(self) -> dict[str, np.ndarray]:
        """
        Return a copy of the stored transitions, oldest first, as :meth:`save` writes them.

        With :func:`write_snapshot`, a caller can take the copy at a moment of its choosing
        (with other state that must match it) and write it to disk later.
        """
        with self._lock:
            n, pos = self.size, self.position
            # Unroll the ring so that row 0 is the oldest transition.
            order = np.arange(n) if n < self.capacity else (np.arange(n) + pos) % self.capacity
            columns = {k: v[order] for k, v in self._columns().items()}
            meta = np.array([self.capacity, self.obs_dim, self.action_dim, self.total_added],
                            dtype=np.int64)
        return {'meta': meta, **columns}

    def load(self, path: str | os.PathLike) -> None:
        """Replace the contents with an ``.npz`` written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            _, obs_dim, action_dim, total_added = (int(v) for v in data['meta'])
            if (obs_dim, action_dim) != (self.obs_dim, self.action_dim):
                raise ValueError(
                    f'replay buffer {path} holds obs_dim={obs_dim}, action_dim={action_dim}; '
                    f'expected obs_dim={self.obs_dim}, action_dim={self.action_dim}')
            # Files from before n-step returns have no horizon: every row is one step.
            columns = {k: data[k] if k in data.files else np.ones(len(data['rewards']),
                                                                  dtype=np.float32)
                       for k in self._columns()}
        n = len(columns['rewards'])
        keep = min(n, self.capacity)
        with self._lock:
            for key, column in self._columns().items():
                column[:keep] = columns[key][n - keep:]
            self.size = keep
            self.position = keep % self.capacity
            self.total_added = total_added


def write_snapshot(path: str | os.PathLike, snapshot: dict[str, np.ndarray]) -> Path:
    """Write a :meth:`ReplayBuffer.snapshot` to an ``.npz`` file atomically (no pickle)."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    with open(tmp, 'wb') as f:
        np.savez(f, **snapshot)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
