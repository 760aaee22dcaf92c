"""Exploration noise added to the actor's action while training."""

from __future__ import annotations

from typing import Any

import numpy as np


class ActionNoise:
    """Zero-mean noise in action units; ``scale`` is each action's half range times sigma."""

    def __init__(self, scale: np.ndarray, rng: np.random.Generator) -> None:
        self.scale = np.asarray(scale, dtype=np.float64)
        self.rng = rng

    def __call__(self) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Prepare for a new episode; called at the start of every episode."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class NoNoise(ActionNoise):
    """For deployment and evaluation."""

    def __call__(self) -> np.ndarray:
        return np.zeros_like(self.scale)


class GaussianNoise(ActionNoise):
    """Independent ``N(0, scale^2)`` per step, as in TD3 and CleanRL."""

    def __call__(self) -> np.ndarray:
        return self.rng.normal(0.0, 1.0, size=self.scale.shape) * self.scale


class OrnsteinUhlenbeckNoise(ActionNoise):
    """
    Temporally correlated noise of the original DDPG paper.

    ``x += theta * (0 - x) * dt + sqrt(dt) * N(0, 1)``; its stationary standard deviation is
    ``scale / sqrt(2 theta)`` in units of ``scale`` per unit time, so with ``dt = 1`` and the
    usual ``theta = 0.15`` it wanders further than Gaussian noise of the same sigma.
    """

    def __init__(self, scale: np.ndarray, rng: np.random.Generator, theta: float = 0.15,
                 dt: float = 1.0) -> None:
        super().__init__(scale, rng)
        self.theta = theta
        self.dt = dt
        self.x = np.zeros_like(self.scale)

    def __call__(self) -> np.ndarray:
        self.x = (self.x - self.theta * self.x * self.dt
                  + np.sqrt(self.dt) * self.rng.normal(0.0, 1.0, size=self.x.shape))
        return self.x * self.scale

    def reset(self) -> None:
        self.x = np.zeros_like(self.scale)

    def state_dict(self) -> dict[str, Any]:
        return {'x': self.x.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        x = np.asarray(state['x'], dtype=np.float64)
        if x.shape != self.x.shape:
            raise ValueError(f'noise state has shape {x.shape}, expected {self.x.shape}')
        self.x = x


def make_noise(noise_type: str, sigma: float, action_low: np.ndarray, action_high: np.ndarray,
               rng: np.random.Generator, theta: float = 0.15) -> ActionNoise:
    """Noise of the configured type with sigma as a fraction of each action's half range."""
    scale = sigma * (np.asarray(action_high, np.float64) - np.asarray(action_low, np.float64)) / 2
    if noise_type == 'none':
        return NoNoise(scale, rng)
    if noise_type == 'gaussian':
        return GaussianNoise(scale, rng)
    if noise_type == 'ornstein_uhlenbeck':
        return OrnsteinUhlenbeckNoise(scale, rng, theta=theta)
    raise ValueError(f'noise_type={noise_type!r} is not one of gaussian, ornstein_uhlenbeck, none')
