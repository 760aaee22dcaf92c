"""Gymnasium environments: creation with clear errors, and their policy specs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ddpg_ros.core.checkpoint import LAST_COMMAND, PolicySpec
from ddpg_ros.sim.mujoco_warnings import route_mujoco_warnings
from ddpg_ros.sim.randomization import Randomizer
from ddpg_ros.sim.randomization_profile import Profile, load_profile


def make_env(env_id: str, render_mode: str | None = None,
             randomize: str | Profile | None = None, seed: int | None = None,
             observe_last_action: bool = False, **kwargs) -> gym.Env:
    """
    ``gymnasium.make`` that fails with one clear line on bad input.

    :param randomize: a randomization profile (or its name or file): a profile that
        perturbs anything wraps the env in :class:`RandomizedEnv`.
    :param seed: seeds the randomization until a ``reset(seed=...)`` reseeds it.
    :param observe_last_action: append the last action to the observation
        (:class:`LastActionObservation`).
    :raises ValueError: unknown id, or an action space that is not a bounded ``Box``;
        :class:`~ddpg_ros.sim.randomization_profile.ProfileError` for a bad profile.
    """
    profile = randomize if isinstance(randomize, Profile) else load_profile(randomize)
    # MuJoCo envs warn while compiling their model (HalfCheetah-v5 does): into the log, not
    # into a MUJOCO_LOG.TXT in the user's working directory.
    route_mujoco_warnings()
    try:
        env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except gym.error.Error as exc:
        raise ValueError(f'unknown Gymnasium environment {env_id!r}: {exc}') from exc
    except ImportError as exc:
        raise ValueError(f'environment {env_id!r} cannot be created: {exc}') from exc
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        env.close()
        raise ValueError(f'environment {env_id!r} has a {type(space).__name__} action space; '
                         'DDPG needs a continuous (Box) action space')
    if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        env.close()
        raise ValueError(f'environment {env_id!r} has unbounded actions; DDPG needs bounds')
    if not isinstance(env.observation_space, gym.spaces.Box) or \
            len(env.observation_space.shape) != 1:
        env.close()
        raise ValueError(f'environment {env_id!r} must have a flat Box observation space')
    if profile.active:
        try:
            env = RandomizedEnv(env, profile, seed)
        except ValueError:
            env.close()
            raise
    return LastActionObservation(env) if observe_last_action else env


class LastActionObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """
    The observation followed by the last action, clipped to the bounds (zero after a reset).

    ``ddpg_agent`` builds the same observation from the command it published.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        space = env.action_space
        self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
        self._last = np.zeros(space.shape, dtype=np.float64)
        inner = env.observation_space
        self.observation_space = gym.spaces.Box(
            np.concatenate([inner.low, space.low]).astype(inner.dtype),
            np.concatenate([inner.high, space.high]).astype(inner.dtype), dtype=inner.dtype)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset; the last action is zero."""
        self._last = np.zeros_like(self._last)
        return super().reset(**kwargs)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step, remembering the action taken."""
        self._last = np.clip(np.asarray(action, dtype=np.float64), self._low, self._high)
        return super().step(action)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Return ``observation`` with the last action appended."""
        return np.concatenate([observation, self._last]).astype(observation.dtype)


class RandomizedEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """
    A Gymnasium MuJoCo env whose physics and observations go through a :class:`Randomizer`.

    Commands are queued and applied at the physics step they are due (the env's own
    ``step`` still computes its reward and termination from the true state); observations
    are the env's own, computed from joint positions and velocities with the profile's noise
    added, as the simulation publishes them. ``reset(seed=s)`` reseeds the perturbations
    with ``s``, exactly as ``mujoco_sim`` does with its ``seed``.

    :raises ValueError: the env is not a Gymnasium MuJoCo env.
    """

    def __init__(self, env: gym.Env, profile: Profile, seed: int | None = None) -> None:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

        gym.utils.RecordConstructorArgs.__init__(self, profile=profile, seed=seed)
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        if not isinstance(base, MujocoEnv):
            name = env.spec.id if env.spec else env
            raise ValueError(f'randomization needs a MuJoCo env; {name} is not one')
        self.profile = profile
        self.randomizer = Randomizer(profile, base.model, base.data, base.frame_skip, seed)
        # MujocoEnv.do_simulation steps through this method: shadowing it on the instance
        # routes the env's own step through the randomizer's command queue and pushes.
        base._step_mujoco_simulation = self._physics

    def _physics(self, ctrl: np.ndarray, n_frames: int) -> None:
        self.randomizer.send(ctrl)
        self.randomizer.advance(n_frames)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env, then draw the episode's perturbations (reseeded by ``seed``)."""
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self.randomizer.seed(seed)
        self.randomizer.reset()
        return self._observe(obs), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the env through the randomizer; the observation carries noise."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(obs), reward, terminated, truncated, info

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        randomizer = self.randomizer
        position_noise, velocity_noise = randomizer.joint_noise()
        if not (position_noise.any() or velocity_noise.any()):
            return obs
        base, data = self.env.unwrapped, randomizer.data
        qpos, qvel = data.qpos.copy(), data.qvel.copy()
        data.qpos[randomizer.qpos_index] += position_noise
        data.qvel[randomizer.dof_index] += velocity_noise
        try:
            noisy = base._get_obs()
        finally:
            data.qpos[:] = qpos
            data.qvel[:] = qvel
        return np.asarray(noisy, dtype=obs.dtype)

    def close(self) -> None:
        """Put the model's nominal dynamics back and close the env."""
        self.randomizer.restore()
        super().close()


def spec_for_task(task, control_period: float | None = None,
                  observe_last_action: bool = False) -> PolicySpec:
    """
    Return the spec of a :class:`ddpg_ros.tasks.Task`.

    :param control_period: seconds per control step; ``None`` = the task's ``control_dt``.
    :param observe_last_action: the observation ends with the last command, one entry per
        action named ``last_command.<action>``.
    """
    last = [LAST_COMMAND + name for name in task.action_names] if observe_last_action else []
    return PolicySpec(
        task=task.name,
        observation_names=list(task.observation_names) + last,
        action_names=list(task.action_names),
        action_low=[float(v) for v in task.action_low],
        action_high=[float(v) for v in task.action_high],
        joint_names=list(task.joint_names),
        env_id=task.env_id,
        control_period=float(control_period if control_period is not None
                             else task.control_dt),
    )


def spec_for_env(env_id: str, env: gym.Env, observe_last_action: bool = False) -> PolicySpec:
    """
    Return the spec of a Gymnasium env; a built-in task's when one mirrors it.

    :param observe_last_action: ``env`` is wrapped in :class:`LastActionObservation`.

    Using the task's spec for its Gymnasium twin is what lets a checkpoint from
    ``ddpg-train --env HalfCheetah-v5`` drive ``ddpg_agent`` with ``task: half_cheetah``.
    """
    from ddpg_ros.tasks import make_task, task_for_env_id

    task_name = task_for_env_id(env_id)
    if task_name is not None:
        return spec_for_task(make_task(task_name), observe_last_action=observe_last_action)
    space = env.action_space
    obs_dim = env.observation_space.shape[0] - (space.shape[0] if observe_last_action else 0)
    actions = [f'action[{i}]' for i in range(space.shape[0])]
    return PolicySpec(
        task=f'gym:{env_id}',
        observation_names=[f'obs[{i}]' for i in range(obs_dim)]
        + ([LAST_COMMAND + name for name in actions] if observe_last_action else []),
        action_names=actions,
        action_low=[float(v) for v in space.low],
        action_high=[float(v) for v in space.high],
        env_id=env_id,
        control_period=float(env.unwrapped.dt),
    )
