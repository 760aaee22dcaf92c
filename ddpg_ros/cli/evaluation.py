"""Noise-free evaluation of a policy on a Gymnasium environment, optionally filmed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]


def evaluate(policy: Policy, env: gym.Env, episodes: int, seed: int,
             frames: list[np.ndarray] | None = None,
             full: list[bool] | None = None) -> list[float]:
    """
    Undiscounted return of each of ``episodes`` deterministic episodes.

    Episode ``i`` starts from ``env.reset(seed=seed + i)``, so every evaluation of a run sees
    the same initial states and returns are comparable across the learning curve.

    :param frames: when given, ``env.render()`` frames of every step are appended to it.
    :param full: when given, whether each episode ran to the time limit (was never
        terminated: the robot did not fall) is appended to it.
    """
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        if frames is not None:
            frames.append(env.render())
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
            if frames is not None:
                frames.append(env.render())
        returns.append(total)
        if full is not None:
            full.append(not terminated)
    return returns


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float) -> Path:
    """Save rendered frames as an animated GIF."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    return path
