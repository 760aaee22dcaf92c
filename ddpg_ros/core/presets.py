"""
Tuned DDPG hyper-parameters per Gymnasium environment, read from ``presets.yaml``.

A preset maps :class:`ddpg_ros.core.config.DDPGConfig` field names to values, as
rl-baselines3-zoo's ``hyperparams/*.yml`` do for Stable-Baselines3. ``ddpg-train`` starts
from the preset of its ``--env``; ``ddpg_agent`` from the preset of its task's env id.
Nothing here imports ROS.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ddpg_ros.core.config import DDPGConfig

PRESETS_FILE = Path(__file__).with_name('presets.yaml')
"""The presets shipped with the package."""

NO_PRESET = 'none'
"""The preset name that asks for DDPGConfig's plain defaults."""

PLAIN_DDPG = 'ddpg'
"""The preset name that asks for the env's tuned values with every extension off: the preset
``<env id>/ddpg`` of the presets file."""

SHARED_PREFIX = '.'
"""A top-level key of a presets file that starts with it holds settings that presets merge in
(YAML's ``<<: [*block, *base]``) and is not a preset itself."""

RUN_FIELDS = ('seed', 'device')
"""DDPGConfig fields that belong to a run, never to a preset."""

_DEFAULTS = DDPGConfig()
PRESET_FIELDS: dict[str, type] = {
    f.name: type(getattr(_DEFAULTS, f.name)) for f in dataclasses.fields(DDPGConfig)
    if f.name not in RUN_FIELDS
}
"""Every setting a preset may hold, with the type its value must have (tuple: a list)."""

_TYPE_WORDS = {int: 'an integer', float: 'a float with a decimal point', str: 'a string',
               tuple: 'a list of integers', bool: 'true or false'}


def _check_value(where: str, key: str, value: Any) -> Any:
    """Return ``value`` when it has the type of setting ``key``; raise ``ValueError`` if not."""
    if key not in PRESET_FIELDS:
        reason = 'is per run, not part of a preset' if key in RUN_FIELDS else \
            f'is not a DDPG setting (known: {", ".join(PRESET_FIELDS)})'
        raise ValueError(f'{where}: {key}={value!r} {reason}')
    expected = PRESET_FIELDS[key]
    if expected is tuple:
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
    else:
        # bool is an int to Python, and 1 is no float to ROS: both are refused.
        ok = type(value) is expected
    if not ok:
        raise ValueError(f'{where}: {key}={value!r} must be {_TYPE_WORDS[expected]}')
    return list(value) if expected is tuple else value


def validate_preset(name: str, preset: Any, source: str = 'preset') -> dict[str, Any]:
    """
    Return ``preset`` checked: known keys, right types, values DDPGConfig accepts.

    :param name: the preset's env id, named in errors.
    :param preset: the mapping read for it.
    :param source: where it came from, named in errors (a file name).
    :raises ValueError: one line naming the preset, the key and the value.
    """
    where = f'{source}: preset {name}'
    if not isinstance(preset, dict):
        raise ValueError(f'{where}: {preset!r} must be a mapping of DDPG settings')
    checked = {str(key): _check_value(where, str(key), value) for key, value in preset.items()}
    try:
        DDPGConfig(**checked)
    except ValueError as exc:
        raise ValueError(f'{where}: {exc}') from None
    return checked


def load_presets(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """
    Return every preset of a presets file, validated, keyed by env id.

    Shared blocks (keys that start with :data:`SHARED_PREFIX`) are checked too, and merged
    into presets, not returned.

    :param path: a YAML file shaped as ``ddpg_ros/core/presets.yaml``; ``None`` for that file.
    :raises ValueError: a malformed file, or a preset with an unknown key, a wrong type or a
        value DDPGConfig refuses; one line naming the preset, the key and the value.
    :raises FileNotFoundError: ``path`` does not exist.
    """
    path = PRESETS_FILE if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'presets file {path} does not exist')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f'{path}: not valid YAML: {" ".join(str(exc).split())}') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f'{path}: must map env ids to presets, not {type(data).__name__}')
    checked = {str(name): validate_preset(str(name), preset, str(path))
               for name, preset in data.items()}  # shared blocks too: a typo there is found
    return {name: preset for name, preset in checked.items()
            if not name.startswith(SHARED_PREFIX)}


def preset_names(path: str | Path | None = None) -> tuple[str, ...]:
    """Return the env ids that have a preset."""
    return tuple(load_presets(path))


def preset_for(name: str, path: str | Path | None = None,
               required: bool = False) -> dict[str, Any] | None:
    """
    Return the DDPGConfig keyword arguments of a preset, or ``None`` when there is none.

    :param name: a Gymnasium env id, e.g. ``'HalfCheetah-v5'``.
    :param path: the presets file; ``None`` for the package's.
    :param required: raise instead of returning ``None``, for a preset asked for by name.
    :raises ValueError: ``required`` and no preset ``name``, naming the known ones.
    """
    presets = load_presets(path)
    if name in presets:
        return presets[name]
    if required:
        raise ValueError(f'unknown preset {name!r} (known: {", ".join(presets)}, '
                         f'or {NO_PRESET} for the DDPGConfig defaults)')
    return None


def preset_name(asked: str, env_id: str | None) -> str:
    """
    Return the presets-file key that a preset name asks for.

    ``ddpg`` (:data:`PLAIN_DDPG`) means the plain DDPG preset of the env, ``<env_id>/ddpg``;
    any other name is a key of the file already.

    :raises ValueError: ``ddpg`` asked for where there is no env id to complete it.
    """
    if asked != PLAIN_DDPG:
        return asked
    if not env_id:
        raise ValueError(f'preset {PLAIN_DDPG!r} needs an env id (this task mirrors none): '
                         f'name one, e.g. InvertedPendulum-v5/{PLAIN_DDPG}')
    return f'{env_id}/{PLAIN_DDPG}'


def env_id_for_task(task: str) -> str | None:
    """
    Return the Gymnasium env id a task reproduces, e.g. ``'Hopper-v5'`` for ``'hopper'``.

    :param task: a built-in task name or ``package.module:ClassName``, as ``ddpg_agent``'s
        ``task`` parameter.
    :return: the task's ``env_id``; ``None`` for a task that mirrors no Gymnasium env.
    :raises ValueError: an unknown task.
    """
    from ddpg_ros.tasks import make_task

    return make_task(task).env_id


def config_kwargs_for_task(task: str, path: str | Path | None = None) -> dict[str, Any]:
    """
    Return the DDPGConfig keyword arguments of a task's preset; ``{}`` when it has none.

    ``DDPGConfig(**config_kwargs_for_task('hopper'))`` is the learner ``ddpg_agent`` starts
    from for that task; parameters set for the node override single values.

    :raises ValueError: an unknown task, or a bad presets file.
    """
    env_id = env_id_for_task(task)
    preset = preset_for(env_id, path) if env_id is not None else None
    return dict(preset) if preset is not None else {}


def describe(preset: dict[str, Any]) -> str:
    """Return the ``key=value`` pairs of a preset in name order, for a one-line report."""
    parts = []
    for key in sorted(preset):
        value = preset[key]
        shown = ','.join(str(v) for v in value) if isinstance(value, (list, tuple)) else value
        parts.append(f'{key}={shown}')
    return ' '.join(parts)


__all__ = ['NO_PRESET', 'PLAIN_DDPG', 'PRESETS_FILE', 'PRESET_FIELDS', 'RUN_FIELDS',
           'SHARED_PREFIX', 'config_kwargs_for_task', 'describe', 'env_id_for_task',
           'load_presets', 'preset_for', 'preset_name', 'preset_names', 'validate_preset']
