"""
One checkpoint format for ``ddpg-train``, ``ddpg-eval`` and the ``ddpg_agent`` node.

A checkpoint is a single ``torch.save`` file holding only tensors and plain Python types
(dicts, lists, strings, numbers), so it is read with ``torch.load(weights_only=True)``,
which refuses to unpickle arbitrary objects. It is written to a temporary file in the same
directory, flushed to disk and renamed over the target, so a crash at any moment leaves
either the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG

FORMAT = 'ddpg_ros.checkpoint'
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of another format, or for another robot."""


@dataclass
class PolicySpec:
    """What a policy sees and commands: the contract between a checkpoint and a robot."""

    task: str
    """Task name (``inverted_pendulum``, ``pkg.mod:Class``) or ``gym:<EnvId>``."""
    observation_names: list[str]
    """Meaning of each observation entry, in order."""
    action_names: list[str]
    """Meaning of each action entry (actuator or joint), in command order."""
    action_low: list[float]
    action_high: list[float]
    joint_names: list[str] = field(default_factory=list)
    """Joints read from ``joint_states``, by name."""
    env_id: str | None = None
    """The Gymnasium environment this task mirrors, when there is one."""
    control_period: float | None = None
    """Seconds per control step the policy acts at; ``None`` in checkpoints before it."""

    @property
    def obs_dim(self) -> int:
        return len(self.observation_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'PolicySpec':
        return cls(**data)

    def trained_on_twin_of(self, robot: 'PolicySpec') -> bool:
        """
        Return whether this was trained on the Gymnasium env that ``robot``'s task reproduces.

        A task with an ``env_id`` computes that env's observation, reward and termination bit
        for bit, so a ``gym:<EnvId>`` checkpoint (one trained before the package had the
        task) holds the same entries in the same order under generic names
        (``obs[i]``, ``action[i]``).
        """
        return (robot.env_id is not None and self.task == f'gym:{robot.env_id}'
                and len(self.observation_names) == len(robot.observation_names)
                and len(self.action_names) == len(robot.action_names))

    def differences(self, robot: 'PolicySpec') -> list[str]:
        """Human-readable list of what differs between this (checkpoint) and ``robot``."""
        diffs = []
        twin = self.trained_on_twin_of(robot)
        if self.task != robot.task and not twin:
            diffs.append(f'task: checkpoint {self.task!r}, robot {robot.task!r}')
        last = [_observes_last_command(s.observation_names) for s in (self, robot)]
        if last[0] != last[1]:
            diffs.append(f'the checkpoint {"observes" if last[0] else "does not observe"} the '
                         'last command: set observe_last_action to '
                         f'{str(last[0]).lower()} to match')
        for name in () if twin else ('observation_names', 'action_names', 'joint_names'):
            ours, theirs = getattr(self, name), getattr(robot, name)
            if list(ours) != list(theirs) and not (name == 'observation_names'
                                                   and last[0] != last[1]):
                diffs.append(f'{name}: checkpoint {list(ours)}, robot {list(theirs)}')
        for name in ('action_low', 'action_high'):
            ours, theirs = getattr(self, name), getattr(robot, name)
            if len(ours) != len(theirs) or not np.allclose(ours, theirs, rtol=0, atol=1e-6):
                diffs.append(f'{name}: checkpoint {list(ours)}, robot {list(theirs)}')
        return diffs

    def check_control_period(self, period: float, path: str | os.PathLike = '') -> None:
        """
        Refuse to run this policy at a control period 1 % or more off the one it learned at.

        A policy acts on what one step of its period does; at another period the same
        action moves the robot differently. A checkpoint that does not record its period
        (older files) is taken on trust.

        :raises CheckpointError: naming both periods.
        """
        trained = self.control_period
        if trained is None or abs(period - trained) <= 0.01 * trained:
            return
        where = f' {path}' if path else ''
        raise CheckpointError(
            f'checkpoint{where} was trained at a control period of {trained:g} s '
            f'({1 / trained:g} Hz); this robot runs at {period:g} s ({1 / period:g} Hz): '
            'set control_rate to match, or train at this rate')

    def check_matches(self, robot: 'PolicySpec', path: str | os.PathLike = '') -> None:
        """Raise :class:`CheckpointError` listing every difference from ``robot``."""
        diffs = self.differences(robot)
        if diffs:
            where = f' {path}' if path else ''
            raise CheckpointError(f'checkpoint{where} does not match this robot: '
                                  + '; '.join(diffs))


LAST_COMMAND = 'last_command.'
"""Prefix of the observation entries that ``observe_last_action`` appends."""


def _observes_last_command(names: list[str]) -> bool:
    return any(name.startswith(LAST_COMMAND) for name in names)


@dataclass
class Checkpoint:
    """The decoded contents of a checkpoint file."""

    config: DDPGConfig
    spec: PolicySpec
    agent_state: dict[str, Any]
    counters: dict[str, int]
    extra: dict[str, Any]

    def build_agent(self, device: str | None = None, optimizers: bool = True) -> DDPG:
        """Build a :class:`DDPG` with this checkpoint's networks (and optimizers) loaded."""
        config = self.config
        if device is not None:
            config = dataclasses.replace(config, device=device)
        agent = DDPG(self.spec.obs_dim, np.array(self.spec.action_low),
                     np.array(self.spec.action_high), config)
        agent.load_state_dict(self.agent_state, optimizers=optimizers)
        return agent


def save_checkpoint(path: str | os.PathLike, agent: DDPG, spec: PolicySpec,
                    counters: dict[str, int] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """
    Write a checkpoint atomically and return its path.

    :param counters: e.g. ``env_steps``, ``episodes`` (``updates`` is taken from the agent).
    :param extra: plain-typed data (noise state, best return, ...); no arbitrary objects.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        'format': FORMAT,
        'version': VERSION,
        'config': agent.config.to_dict(),
        'spec': spec.to_dict(),
        'agent': agent.state_dict(),
        'counters': {**(counters or {}), 'updates': agent.updates},
        'extra': extra or {},
    }
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def random_states(generators: dict[str, np.random.Generator]) -> dict[str, dict[str, Any]]:
    """
    Return the states of named numpy generators, for a checkpoint's ``extra['rng_state']``.

    Each is read under its generator's lock: another thread may be drawing from it, and
    numpy draws without the GIL.
    """
    states = {}
    for name, rng in generators.items():
        with rng.bit_generator.lock:
            states[name] = rng.bit_generator.state
    return states


def restore_random_states(checkpoint: Checkpoint, path: str | os.PathLike,
                          generators: dict[str, np.random.Generator]) -> None:
    """
    Set each named generator to the state :func:`random_states` saved in ``checkpoint``.

    So a resumed run draws what the interrupted one would have drawn next. Names the
    checkpoint lacks (older checkpoints) are left as they are.

    :raises CheckpointError: a saved state that numpy cannot use.
    """
    saved = checkpoint.extra.get('rng_state', {})
    for name, rng in generators.items():
        if saved.get(name) is None:
            continue
        try:
            rng.bit_generator.state = saved[name]
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f'checkpoint {path} has an unusable {name} random state: '
                                  f'{exc}') from exc


_TEMPORARY = re.compile(r'\..+\.tmp-(\d+)')


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """
    Delete the half-written ``.<name>.tmp-<pid>`` files of killed saves in ``directory``.

    A process killed in the middle of a save leaves one behind; files of processes still
    running stay.

    :return: the files removed.
    """
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and not _process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = 'cpu'
                    ) -> Checkpoint:
    """
    Read and validate a checkpoint without unpickling arbitrary objects.

    :raises CheckpointError: missing file, unreadable or unsafe content, or another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} does not exist')
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f'checkpoint {path} cannot be loaded safely: {first_line}') from exc
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise CheckpointError(f'{path} is not a ddpg_ros checkpoint')
    if payload.get('version') != VERSION:
        raise CheckpointError(f'checkpoint {path} has version {payload.get("version")}, '
                              f'this ddpg_ros reads version {VERSION}')
    try:
        return Checkpoint(
            config=DDPGConfig.from_dict(payload['config']),
            spec=PolicySpec.from_dict(payload['spec']),
            agent_state=payload['agent'],
            counters={k: int(v) for k, v in payload['counters'].items()},
            extra=payload.get('extra', {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f'checkpoint {path} is malformed: {exc}') from exc
