"""Finding a task by name: the built-in ones, or a user's as ``package.module:ClassName``."""

from __future__ import annotations

import importlib

from ddpg_ros.tasks.ant import Ant
from ddpg_ros.tasks.balancer import Balancer
from ddpg_ros.tasks.base import Task, validate_task
from ddpg_ros.tasks.half_cheetah import HalfCheetah
from ddpg_ros.tasks.hopper import Hopper
from ddpg_ros.tasks.inverted_pendulum import InvertedPendulum
from ddpg_ros.tasks.walker2d import Walker2d

BUILTIN_TASKS: dict[str, type[Task]] = {
    task.name: task for task in (InvertedPendulum, HalfCheetah, Hopper, Walker2d, Ant,
                                 Balancer)
}
"""Built-in tasks by name; those with an ``env_id`` reproduce that Gymnasium env exactly."""


def available_tasks() -> tuple[str, ...]:
    """Names of the built-in tasks."""
    return tuple(BUILTIN_TASKS)


def task_for_env_id(env_id: str) -> str | None:
    """
    Return the built-in task that reproduces a Gymnasium env exactly, if there is one.

    :param env_id: e.g. ``'HalfCheetah-v5'``.
    :return: e.g. ``'half_cheetah'``, or ``None`` (other versions differ, so they get none).
    """
    for name, task in BUILTIN_TASKS.items():
        if task.env_id == env_id:
            return name
    return None


def _import_task_class(spec: str) -> type[Task]:
    module_name, _, class_name = spec.partition(':')
    if not module_name or not class_name or ':' in class_name:
        raise ValueError(f'task {spec!r} is not of the form package.module:ClassName')
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f'task {spec!r}: cannot import {module_name!r}: {exc}') from exc
    try:
        task_class = getattr(module, class_name)
    except AttributeError:
        raise ValueError(f'task {spec!r}: module {module_name!r} has no {class_name!r}') \
            from None
    if not (isinstance(task_class, type) and issubclass(task_class, Task)):
        raise ValueError(f'task {spec!r}: {class_name!r} is not a subclass of '
                         'ddpg_ros.tasks.Task')
    return task_class


def make_task(spec: str) -> Task:
    """
    Build a task from its name.

    :param spec: a built-in name (see :func:`available_tasks`) or ``package.module:ClassName``
        naming a :class:`Task` subclass constructible without arguments.
    :raises ValueError: the name is unknown, the import fails, or the task's spec is
        inconsistent; the message names the value and the reason.
    """
    if not isinstance(spec, str):
        raise ValueError(f'task must be a string, got {spec!r}')
    if ':' in spec:
        task_class = _import_task_class(spec)
        try:
            task = task_class()
        except Exception as exc:  # a user's constructor may fail in any way; report it
            raise ValueError(f'task {spec!r}: {task_class.__name__}() failed: '
                             f'{type(exc).__name__}: {exc}') from exc
    elif spec in BUILTIN_TASKS:
        task = BUILTIN_TASKS[spec]()
    else:
        choices = ', '.join(available_tasks())
        raise ValueError(f'unknown task {spec!r}; choose one of {choices}, '
                         "or 'package.module:ClassName' for your own")
    validate_task(task)
    return task
