"""
What a randomization profile holds and how one is read: no MuJoCo, no ROS.

A :class:`Profile` says what a robot does that a nominal simulation does not;
:class:`~ddpg_ros.sim.randomization.Randomizer` applies it to the physics. A profile is a
built-in level (:data:`LEVEL_NAMES`) or a YAML file with the same keys (:data:`PROFILE_KEYS`),
``timing.yaml`` included:

- **command latency** (``command_latency``, control periods, drawn per episode): a command
  takes effect that long after it is sent, counted in physics steps, i.e. in sim time, so
  the same in lockstep and in realtime;
- **late periods** (``late_periods``, drawn per command): with ``probability`` a command
  lands later still, by a ``delay`` drawn in control periods, as on a busy computer's timer;
  commands never overtake one another;
- **observation noise** (``observation_noise``, standard deviations, drawn per state):
  ``joint_position`` (rad or m), ``joint_velocity`` (rad/s or m/s), ``imu`` (rad/s on the
  gyro, m/s^2 on the accelerometer) and ``odometry`` (m and m/s on position and velocities);
- **dynamics** (``dynamics``, scale ranges, drawn per episode): ``mass`` (each body's mass and
  inertia), ``friction`` (every geom's sliding friction), ``damping`` (every joint's),
  ``actuator_gain`` (each actuator's gain and, for servos, its bias alike), applied to the
  model's nominal values at every reset, so nothing accumulates;
- **pushes** (``pushes``): every ``interval`` seconds (a range, drawn per push) the root
  body's translational velocity changes by up to ``velocity`` m/s per axis.

Latencies and delays are in control periods, so the built-in levels (:data:`LEVELS`) scale
with the task's control period.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

NONE = 'none'
LEVEL_NAMES = (NONE, 'easy', 'medium', 'hard')
OBSERVATION_QUANTITIES = ('joint_position', 'joint_velocity', 'imu', 'odometry')
DYNAMICS_QUANTITIES = ('mass', 'friction', 'damping', 'actuator_gain')
PROFILE_KEYS = ('command_latency', 'late_periods', 'observation_noise', 'dynamics', 'pushes',
                'measured')
"""``measured`` holds what a robot measured (``timing.yaml``); the model does not read it."""


class ProfileError(ValueError):
    """A randomization profile that cannot be used; the message names the value."""


@dataclass(frozen=True)
class Draw:
    """
    A distribution over non-negative numbers: uniform on ``[low, high]``, or ``values``.

    :param values: with ``weights``, a histogram (what ``timing.yaml`` records).
    """

    low: float = 0.0
    high: float = 0.0
    values: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()

    def sample(self, rng: np.random.Generator) -> float:
        """Return one draw."""
        if self.values:
            return float(rng.choice(self.values, p=self.weights))
        return float(rng.uniform(self.low, self.high))

    @property
    def largest(self) -> float:
        """Return the largest value this can draw."""
        return max(self.values) if self.values else self.high

    def to_yaml(self) -> Any:
        """Return the form a profile file writes."""
        if self.values:
            return {'values': list(self.values), 'weights': list(self.weights)}
        return [self.low, self.high]


ZERO = Draw()


@dataclass(frozen=True)
class Profile:
    """What to perturb; every field's zero value perturbs nothing."""

    name: str = NONE
    command_latency: Draw = ZERO
    """Control periods from sending a command to its taking effect."""
    late_probability: float = 0.0
    """Chance that a command is late on top of the latency."""
    late_delay: Draw = ZERO
    """How late, in control periods."""
    observation_noise: dict[str, float] = field(default_factory=dict)
    """Standard deviation per quantity of :data:`OBSERVATION_QUANTITIES`."""
    dynamics: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Scale range per quantity of :data:`DYNAMICS_QUANTITIES`."""
    push_velocity: float = 0.0
    """Largest velocity change per axis of a push, m/s; 0 = no pushes."""
    push_interval: tuple[float, float] = (0.0, 0.0)
    """Seconds between pushes, drawn per push."""
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Return whether this perturbs anything."""
        return bool(self.command_latency.largest or self.late_probability
                    or any(self.observation_noise.values())
                    or any(r != (1.0, 1.0) for r in self.dynamics.values())
                    or self.push_velocity)

    def describe(self) -> str:
        """Return one line saying what is perturbed."""
        if not self.active:
            return f'{self.name}: nothing perturbed'
        parts = []
        if self.command_latency.largest:
            parts.append(f'command latency {_describe(self.command_latency)} periods')
        if self.late_probability:
            parts.append(f'{self.late_probability:g} of commands late by '
                         f'{_describe(self.late_delay)} periods')
        noise = {k: v for k, v in self.observation_noise.items() if v}
        if noise:
            parts.append('noise ' + ', '.join(f'{k} {v:g}' for k, v in noise.items()))
        scales = {k: r for k, r in self.dynamics.items() if r != (1.0, 1.0)}
        if scales:
            parts.append(', '.join(f'{k} x{lo:g}-{hi:g}' for k, (lo, hi) in scales.items()))
        if self.push_velocity:
            parts.append(f'pushes of {self.push_velocity:g} m/s every '
                         f'{self.push_interval[0]:g}-{self.push_interval[1]:g} s')
        return f'{self.name}: ' + '; '.join(parts)

    def to_yaml(self) -> dict[str, Any]:
        """Return the profile as a file would hold it (what :func:`load_profile` reads)."""
        out: dict[str, Any] = {}
        if self.command_latency != ZERO:
            out['command_latency'] = self.command_latency.to_yaml()
        if self.late_probability:
            out['late_periods'] = {'probability': self.late_probability,
                                   'delay': self.late_delay.to_yaml()}
        if self.observation_noise:
            out['observation_noise'] = dict(self.observation_noise)
        if self.dynamics:
            out['dynamics'] = {k: list(v) for k, v in self.dynamics.items()}
        if self.push_velocity:
            out['pushes'] = {'velocity': self.push_velocity,
                             'interval': list(self.push_interval)}
        if self.measured:
            out['measured'] = self.measured
        return out


def _describe(draw: Draw) -> str:
    if draw.values:
        return f'{min(draw.values):g}-{max(draw.values):g} (histogram)'
    return f'{draw.low:g}-{draw.high:g}'


LEVELS: dict[str, dict[str, Any]] = {
    NONE: {},
    'easy': {
        'command_latency': [0.0, 0.25],
        'late_periods': {'probability': 0.01, 'delay': [0.0, 0.25]},
        'observation_noise': {'joint_position': 0.001, 'joint_velocity': 0.01,
                              'imu': 0.01, 'odometry': 0.005},
        'dynamics': {'mass': [0.9, 1.1], 'friction': [0.9, 1.1]},
    },
    'medium': {
        'command_latency': [0.0, 0.5],
        'late_periods': {'probability': 0.02, 'delay': [0.0, 0.5]},
        'observation_noise': {'joint_position': 0.003, 'joint_velocity': 0.03,
                              'imu': 0.03, 'odometry': 0.01},
        'dynamics': {'mass': [0.8, 1.2], 'friction': [0.8, 1.2], 'damping': [0.8, 1.2],
                     'actuator_gain': [0.9, 1.1]},
        'pushes': {'velocity': 0.1, 'interval': [3.0, 5.0]},
    },
    'hard': {
        'command_latency': [0.0, 1.0],
        'late_periods': {'probability': 0.05, 'delay': [0.0, 0.5]},
        'observation_noise': {'joint_position': 0.005, 'joint_velocity': 0.05,
                              'imu': 0.05, 'odometry': 0.02},
        'dynamics': {'mass': [0.7, 1.3], 'friction': [0.7, 1.3], 'damping': [0.7, 1.3],
                     'actuator_gain': [0.8, 1.2]},
        'pushes': {'velocity': 0.2, 'interval': [2.0, 4.0]},
    },
}
"""The built-in profiles, in the form a YAML profile file takes."""


def load_profile(profile: str | None) -> Profile:
    """
    Return the profile a name (:data:`LEVEL_NAMES`) or a YAML file's path selects.

    ``None`` and ``''`` are ``none``.

    :raises ProfileError: an unknown name, a missing or unreadable file, an unknown key, a
        negative or inverted range, a probability outside [0, 1]; the message names it.
    """
    if not profile:
        return Profile()
    if profile in LEVELS:
        return parse_profile(LEVELS[profile], profile)
    if not (profile.endswith(('.yaml', '.yml')) or os.path.isfile(profile)):
        raise ProfileError(f'unknown randomization profile {profile!r}: expected one of '
                           f'{", ".join(LEVEL_NAMES)} or the path of a YAML file')
    try:
        with open(profile, encoding='utf-8') as stream:
            values = yaml.safe_load(stream)
    except OSError as exc:
        raise ProfileError(f'randomization profile {profile}: {exc.strerror}') from None
    except yaml.YAMLError as exc:
        raise ProfileError(f'randomization profile {profile}: not valid YAML '
                           f'({str(exc).splitlines()[0]})') from None
    return parse_profile(values if values is not None else {}, profile)


def parse_profile(values: Any, name: str) -> Profile:
    """
    Return the profile a mapping of :data:`PROFILE_KEYS` describes.

    :raises ProfileError: as :func:`load_profile`.
    """
    where = f'randomization profile {name}'
    _check_keys(values, PROFILE_KEYS, where)
    late = values.get('late_periods') or {}
    _check_keys(late, ('probability', 'delay'), f'{where}: late_periods')
    probability = _number(late.get('probability', 0.0), f'{where}: late_periods.probability')
    if not 0.0 <= probability <= 1.0:
        raise ProfileError(f'{where}: late_periods.probability {probability:g} is outside '
                           '[0, 1]')
    noise = values.get('observation_noise') or {}
    _check_keys(noise, OBSERVATION_QUANTITIES, f'{where}: observation_noise')
    dynamics = values.get('dynamics') or {}
    _check_keys(dynamics, DYNAMICS_QUANTITIES, f'{where}: dynamics')
    pushes = values.get('pushes') or {}
    _check_keys(pushes, ('velocity', 'interval'), f'{where}: pushes')
    push_velocity = _number(pushes.get('velocity', 0.0), f'{where}: pushes.velocity')
    interval = _range(pushes.get('interval', [1.0, 1.0]), f'{where}: pushes.interval')
    if push_velocity and interval[0] <= 0.0:
        raise ProfileError(f'{where}: pushes.interval {list(interval)} must be > 0 s')
    measured = values.get('measured') or {}
    if not isinstance(measured, dict):
        raise ProfileError(f'{where}: measured must be a mapping, got {measured!r}')
    return Profile(
        name=name,
        command_latency=_draw(values.get('command_latency', [0.0, 0.0]),
                              f'{where}: command_latency'),
        late_probability=probability,
        late_delay=_draw(late.get('delay', [0.0, 0.0]), f'{where}: late_periods.delay'),
        observation_noise={k: _number(v, f'{where}: observation_noise.{k}')
                           for k, v in noise.items()},
        dynamics={k: _range(v, f'{where}: dynamics.{k}') for k, v in dynamics.items()},
        push_velocity=push_velocity,
        push_interval=interval,
        measured=measured)


def _check_keys(values: Any, known: tuple[str, ...], where: str) -> None:
    if not isinstance(values, dict):
        raise ProfileError(f'{where} must be a mapping of {", ".join(known)}, got {values!r}')
    for key in values:
        if key not in known:
            raise ProfileError(f'{where}: unknown key {key!r} (known: {", ".join(known)})')


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ProfileError(f'{where} must be a finite number, got {value!r}')
    if value < 0.0:
        raise ProfileError(f'{where} must be >= 0, got {value:g}')
    return float(value)


def _range(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ProfileError(f'{where} must be a range [low, high], got {value!r}')
    low, high = (_number(v, where) for v in value)
    if low > high:
        raise ProfileError(f'{where} range [{low:g}, {high:g}] is inverted (low > high)')
    return low, high


def _draw(value: Any, where: str) -> Draw:
    if isinstance(value, dict):
        _check_keys(value, ('values', 'weights'), where)
        values = value.get('values')
        weights = value.get('weights')
        if not isinstance(values, list) or not values or not isinstance(weights, list) \
                or len(weights) != len(values):
            raise ProfileError(f'{where} needs values and weights, two lists of one length')
        values = [_number(v, f'{where}.values') for v in values]
        weights = [_number(w, f'{where}.weights') for w in weights]
        total = sum(weights)
        if total <= 0.0:
            raise ProfileError(f'{where}.weights sum to 0')
        return Draw(values=tuple(values), weights=tuple(w / total for w in weights))
    low, high = _range(value, where)
    return Draw(low, high)
