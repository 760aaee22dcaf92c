"""Gymnasium environments: creation with clear errors, and their policy specs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ddpg_ros.core.checkpoint import PolicySpec
from ddpg_ros.sim.mujoco_warnings import route_mujoco_warnings


def make_env(env_id: str, render_mode: str | None = None, **kwargs) -> gym.Env:
    """
    ``gymnasium.make`` that fails with one clear line on bad input.

    :raises ValueError: unknown id, or an action space that is not a bounded ``Box``.
    """
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
    return env


def spec_for_task(task, control_period: float | None = None) -> PolicySpec:
    """
    Return the spec of a :class:`ddpg_ros.tasks.Task`.

    :param control_period: seconds per control step; ``None`` = the task's ``control_dt``.
    """
    return PolicySpec(
        task=task.name,
        observation_names=list(task.observation_names),
        action_names=list(task.action_names),
        action_low=[float(v) for v in task.action_low],
        action_high=[float(v) for v in task.action_high],
        joint_names=list(task.joint_names),
        env_id=task.env_id,
        control_period=float(control_period if control_period is not None
                             else task.control_dt),
    )


def spec_for_env(env_id: str, env: gym.Env) -> PolicySpec:
    """
    Return the spec of a Gymnasium env; a built-in task's when one mirrors it.

    Using the task's spec for its Gymnasium twin is what lets a checkpoint from
    ``ddpg-train --env HalfCheetah-v5`` drive ``ddpg_agent`` with ``task: half_cheetah``.
    """
    from ddpg_ros.tasks import make_task, task_for_env_id

    task_name = task_for_env_id(env_id)
    if task_name is not None:
        return spec_for_task(make_task(task_name))
    obs_dim = env.observation_space.shape[0]
    space = env.action_space
    return PolicySpec(
        task=f'gym:{env_id}',
        observation_names=[f'obs[{i}]' for i in range(obs_dim)],
        action_names=[f'action[{i}]' for i in range(space.shape[0])],
        action_low=[float(v) for v in space.low],
        action_high=[float(v) for v in space.high],
        env_id=env_id,
        control_period=float(env.unwrapped.dt),
    )
