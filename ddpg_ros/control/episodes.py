"""
Consecutive robot states -> transitions and episodes, the way the replay buffer needs them.

One control step sees the state ``s_t+1`` that the action ``a_t`` chosen in ``s_t`` led to.
:class:`Episodes` turns that pair into the transition ``(o_t, a_t, r_t, o_t+1, terminated)``
with the task's reward and termination, counts environment steps and episodes, and keeps the
recent returns. Only a true termination stops bootstrapping: reaching ``max_episode_steps``
is a time limit, so the transition is stored with ``terminated=False`` and the episode still
ends (as SB3's ``collect_rollouts`` and Spinning Up do).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ddpg_ros.tasks import RobotState, Task

RETURN_WINDOW = 10
"""Episodes whose mean return is reported, and decides ``best.pt``."""


@dataclass(frozen=True, eq=False)
class Transition:
    """One step of experience, as the replay buffer stores it."""

    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool


@dataclass(frozen=True)
class StepOutcome:
    """What completing one step decided."""

    transition: Transition
    episode_over: bool
    """The episode ended here (terminated or truncated at the time limit)."""
    episode_return: float | None
    """The finished episode's return when ``episode_over``."""


class Episodes:
    """
    The task's view of a run: observations, rewards, termination, and the counters.

    :param task: the task.
    :param value_limit: largest magnitude allowed in an observation or a reward: the
        networks compute in float32, and a huge but finite value overflows there (one
        transition whose target is inf makes every batch holding it a NaN loss).
    :param env_steps: steps already taken (a resumed run).
    :param episodes: episodes already finished (a resumed run).
    """

    def __init__(self, task: Task, value_limit: float, env_steps: int = 0,
                 episodes: int = 0) -> None:
        self.task = task
        self.value_limit = float(value_limit)
        self.env_steps = int(env_steps)
        self.episodes = int(episodes)
        self.episode_steps = 0
        self.episode_return = 0.0
        self.recent_returns: deque[float] = deque(maxlen=RETURN_WINDOW)

    def observe(self, state: RobotState) -> np.ndarray:
        """
        Return the task's observation of ``state``, checked.

        :raises ValueError: wrong shape, non-finite, or beyond ``value_limit``; or the task
            itself failed (a user's task may fail in any way), with the exception's name.
        """
        try:
            obs = np.asarray(self.task.observation(state), dtype=np.float64)
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f'task {self.task.name} failed on a state: '
                             f'{type(exc).__name__}: {exc}') from exc
        if obs.shape != (self.task.obs_dim,):
            raise ValueError(f'observation has shape {obs.shape}, expected '
                             f'({self.task.obs_dim},)')
        if not np.all(np.abs(obs) <= self.value_limit):
            raise ValueError(f'observation exceeds value_limit={self.value_limit:g} '
                             f'or is not finite: {obs.tolist()}')
        return obs

    def complete(self, previous: RobotState, previous_obs: np.ndarray, action: np.ndarray,
                 state: RobotState, obs: np.ndarray) -> StepOutcome:
        """
        Complete the step from ``previous`` to ``state`` and count it.

        :raises ValueError: the task failed, or the reward is not finite or beyond
            ``value_limit``; nothing is counted then.
        """
        try:
            reward = float(self.task.reward(previous, action, state))
            terminated = bool(self.task.terminated(state))
        except Exception as exc:  # a user's task may fail in any way
            raise ValueError(f'task {self.task.name} failed on a transition: '
                             f'{type(exc).__name__}: {exc}') from exc
        if not abs(reward) <= self.value_limit:
            raise ValueError(f'reward {reward} exceeds value_limit={self.value_limit:g} '
                             'or is not finite')
        self.env_steps += 1
        self.episode_steps += 1
        self.episode_return += reward
        transition = Transition(previous_obs, action, reward, obs, terminated)
        if not (terminated or self.episode_steps >= self.task.max_episode_steps):
            return StepOutcome(transition, False, None)
        finished = self.episode_return
        self.episodes += 1
        self.recent_returns.append(finished)
        self.episode_steps = 0
        self.episode_return = 0.0
        return StepOutcome(transition, True, finished)

    @property
    def recent_mean(self) -> float | None:
        """Return the mean return of the last finished episodes, if any."""
        return float(np.mean(self.recent_returns)) if self.recent_returns else None
