"""
What a task is: robot state in, observation, reward and termination out.

A task is dm_control style: it knows how to read the robot, what to reward and when an
episode ends, and nothing of ROS or of the physics engine. The same task object therefore
serves a MuJoCo simulation, a real robot behind ros2_control, and the tests.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddpg_ros.tasks.sources import (COMMAND_INTERFACES, JOINT_STATES, POSITION_INTERFACES,
                                    TWIST_AXES, Source, check_sources)


def _as_vector(value: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f'{what} must be a 1-D array, got shape {array.shape}')
    return array


# eq=False: the generated __eq__ would compare arrays with ==, whose truth value is ambiguous.
@dataclass(frozen=True, eq=False)
class RobotState:
    """
    The robot's state at one control step: its joints, and every source the task reads.

    ``position``, ``velocity`` and ``effort`` come from the task's joint-state source,
    every array ordered as the task's ``joint_names``; ``sources`` holds the newest sample of
    each declared source by name (see :mod:`ddpg_ros.tasks.sources`), for tasks that read
    more than joints. The arrays are converted to 1-D float64 on construction and must all
    have the same length; a state that fails this raises ``ValueError`` and should never be
    acted on.
    """

    position: np.ndarray
    """Joint positions (m or rad)."""
    velocity: np.ndarray
    """Joint velocities (m/s or rad/s)."""
    effort: np.ndarray
    """Joint efforts (N or N m)."""
    stamp: float
    """Sample time in seconds (sim time in simulation)."""
    sources: Mapping[str, Any] = field(default_factory=dict)
    """The newest sample of every source by name, e.g. ``sources['imu']``."""

    def __post_init__(self) -> None:
        # object.__setattr__ because the dataclass is frozen; it is still construction time.
        for field_name in ('position', 'velocity', 'effort'):
            object.__setattr__(
                self, field_name, _as_vector(getattr(self, field_name), field_name))
        if not (len(self.position) == len(self.velocity) == len(self.effort)):
            raise ValueError(
                'position, velocity and effort must have the same length, got '
                f'{len(self.position)}, {len(self.velocity)} and {len(self.effort)}')
        object.__setattr__(self, 'stamp', float(self.stamp))

    @classmethod
    def from_joints(
        cls,
        joint_names: Sequence[str],
        names: Sequence[str],
        position: Sequence[float] | np.ndarray,
        velocity: Sequence[float] | np.ndarray,
        effort: Sequence[float] | np.ndarray,
        stamp: float,
    ) -> RobotState:
        """
        Pick ``joint_names`` out of a sample that reports ``names``, in any order.

        :param joint_names: the joints wanted, in the order the state should have.
        :param names: the joints the sample reports, one per entry of the arrays.
        :param position: positions, one per entry of ``names``.
        :param velocity: velocities, one per entry of ``names``.
        :param effort: efforts, one per entry of ``names``.
        :param stamp: sample time in seconds.
        :raises ValueError: a wanted joint is missing, or the arrays do not match ``names``.
        """
        index = {name: i for i, name in enumerate(names)}
        missing = [name for name in joint_names if name not in index]
        if missing:
            raise ValueError(f'joint state lacks joints {missing}; it has {list(names)}')
        arrays = []
        for what, values in (('position', position), ('velocity', velocity),
                             ('effort', effort)):
            array = _as_vector(values, what)
            if len(array) != len(names):
                raise ValueError(
                    f'joint state has {len(names)} names but {len(array)} {what} values')
            arrays.append(array)
        order = [index[name] for name in joint_names]
        return cls(arrays[0][order], arrays[1][order], arrays[2][order], stamp)


class Task(abc.ABC):
    """
    Observation, reward, termination and action bounds of one control problem.

    Subclasses set the attributes below (as class attributes or in ``__init__``) and
    implement :meth:`observation` and :meth:`reward`; :meth:`terminated` defaults to
    "never", which leaves episodes to end only at ``max_episode_steps``. A task must be
    constructible without arguments so that ``make_task('package.module:ClassName')`` can
    build it.
    """

    name: str
    """Short identifier, e.g. ``'inverted_pendulum'``; stored in checkpoints."""
    env_id: str | None = None
    """The Gymnasium env this task reproduces exactly, or ``None``."""
    joint_names: tuple[str, ...]
    """Joints read from ``joint_states``, by name; the order of every ``RobotState`` array."""
    observation_names: tuple[str, ...]
    """One name per observation entry, e.g. ``'hinge.position'``."""
    action_names: tuple[str, ...]
    """Actuators commanded, in command order."""
    action_low: np.ndarray
    """Lower action bound per actuator (float64)."""
    action_high: np.ndarray
    """Upper action bound per actuator (float64)."""
    control_dt: float
    """Seconds per control step."""
    max_episode_steps: int
    """Steps after which an episode is truncated (a time limit, so values still bootstrap)."""
    sources: tuple[Source, ...] = (JOINT_STATES,)
    """The state sources read at every control step; ``joint_names`` come from the first
    ``joint_state`` one."""
    command_interface: str = 'effort'
    """How actions reach the robot: one of ``COMMAND_INTERFACES``."""
    command_joints: tuple[str, ...] | None = None
    """For ``position`` and ``joint_trajectory``: the joint each action entry moves
    (``None``: ``action_names``); the safe command holds their measured positions."""

    @property
    def joint_source(self) -> Source | None:
        """Return the source ``joint_names`` are read from, or ``None`` for a task of none."""
        return next((s for s in self.sources if s.kind == 'joint_state'), None)

    @property
    def commanded_joints(self) -> tuple[str, ...]:
        """Return the joint of each action entry for position interfaces."""
        return tuple(self.command_joints) if self.command_joints is not None \
            else tuple(self.action_names)

    @property
    def obs_dim(self) -> int:
        """Length of the observation vector."""
        return len(self.observation_names)

    @property
    def action_dim(self) -> int:
        """Length of the action vector."""
        return len(self.action_names)

    @abc.abstractmethod
    def observation(self, state: RobotState) -> np.ndarray:
        """
        Return the policy's input for ``state``.

        :param state: the current robot state, ordered as ``joint_names``.
        :return: float64 array of shape ``(obs_dim,)``.
        """

    @abc.abstractmethod
    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        Reward for the transition ``previous --action--> state``.

        :param previous: the state the action was chosen in.
        :param action: the action that was commanded, shape ``(action_dim,)``.
        :param state: the state reached one control step later.
        """

    def terminated(self, state: RobotState) -> bool:
        """
        Whether ``state`` ends the episode for good (no bootstrapping past it).

        :param state: the state just reached.
        """
        return False


def validate_task(task: Task) -> None:
    """
    Check that a task's declared spec is complete and consistent.

    :param task: the task to check.
    :raises ValueError: saying which attribute is missing or wrong.
    """
    label = type(task).__name__
    for attribute in ('name', 'joint_names', 'observation_names', 'action_names',
                      'action_low', 'action_high', 'control_dt', 'max_episode_steps'):
        if not hasattr(task, attribute):
            raise ValueError(f'task {label} does not set {attribute!r}')
    if not isinstance(task.name, str) or not task.name:
        raise ValueError(f'task {label}: name must be a non-empty string')
    for attribute in ('joint_names', 'observation_names', 'action_names'):
        names = getattr(task, attribute)
        if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
            raise ValueError(f'task {label}: {attribute} must be a tuple of strings')
        if len(set(names)) != len(names):
            raise ValueError(f'task {label}: {attribute} has duplicates: {names}')
    if task.action_dim == 0:
        raise ValueError(f'task {label} has no actions')
    low = np.asarray(task.action_low, dtype=np.float64)
    high = np.asarray(task.action_high, dtype=np.float64)
    for what, bound in (('action_low', low), ('action_high', high)):
        if bound.shape != (task.action_dim,):
            raise ValueError(f'task {label}: {what} has shape {bound.shape}, expected '
                             f'({task.action_dim},) to match action_names')
        # DDPG squashes the actor's output into the bounds, so they must be finite.
        if not np.isfinite(bound).all():
            raise ValueError(f'task {label}: {what} must be finite, got {bound}')
    if not (low < high).all():
        raise ValueError(f'task {label}: action_low must be below action_high, got '
                         f'{low} and {high}')
    if not (isinstance(task.control_dt, (int, float)) and task.control_dt > 0):
        raise ValueError(f'task {label}: control_dt must be a positive number of seconds, '
                         f'got {task.control_dt!r}')
    steps = task.max_episode_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f'task {label}: max_episode_steps must be a positive int, '
                         f'got {steps!r}')
    check_sources(task.sources, label)
    if task.joint_names and task.joint_source is None:
        raise ValueError(f'task {label} reads joints {task.joint_names} but declares no '
                         'joint_state source')
    check_command_interface(task, task.command_interface)


def check_command_interface(task: Task, interface: str) -> None:
    """
    Check that ``task``'s actions can be sent through ``interface``.

    :raises ValueError: an unknown interface, a twist action that names no twist axis, or a
        position action whose joint the task does not read (its safe command would have no
        position to hold).
    """
    label = type(task).__name__
    if interface not in COMMAND_INTERFACES:
        raise ValueError(f'task {label}: unknown command interface {interface!r}; choose one '
                         f'of {", ".join(COMMAND_INTERFACES)}')
    if interface == 'twist':
        unknown = [name for name in task.action_names if name not in TWIST_AXES]
        if unknown:
            raise ValueError(f'task {label}: a twist command needs action names among '
                             f'{", ".join(TWIST_AXES)}; got {unknown}')
    if interface in POSITION_INTERFACES:
        joints = task.commanded_joints
        if len(joints) != task.action_dim:
            raise ValueError(f'task {label}: command_joints names {len(joints)} joints for '
                             f'{task.action_dim} actions')
        unread = [name for name in joints if name not in task.joint_names]
        if unread:
            raise ValueError(f'task {label}: {interface} commands joints {unread} that it '
                             f'does not read from joint states ({list(task.joint_names)}), so '
                             'there is no measured position to hold')
