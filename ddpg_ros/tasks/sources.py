"""
What a task reads and how it commands: state sources, their samples, command interfaces.

A task declares the :class:`Source` objects it reads (joint states, an IMU, odometry, a pose,
a twist, a fixed-length array) and one command interface. The agent subscribes to one topic
per source (the source's name, relative, so namespaces and remapping work), turns each
message into the sample type below at the edge, and hands the task every source's newest
sample of one control step by name: ``state.sources['imu'].angular_velocity``.

Quaternions are ``(x, y, z, w)``, as ``geometry_msgs/Quaternion`` orders them. Odometry
follows REP 105: the pose is in the parent frame (``frame_id``, e.g. ``odom``), the twist in
the child (body) frame (``child_frame_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SOURCE_KINDS = ('joint_state', 'imu', 'odometry', 'pose', 'twist', 'array')
"""Kinds of state source, with the message each is read from (INTERFACE.md section 7)."""
COMMAND_INTERFACES = ('effort', 'velocity', 'position', 'joint_trajectory', 'twist')
"""How commands reach the robot (INTERFACE.md section 7)."""
POSITION_INTERFACES = ('position', 'joint_trajectory')
"""Interfaces whose safe command holds the last measured joint positions."""
TWIST_AXES = ('linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z')
"""The action names a ``twist`` interface accepts, one per commanded twist component."""
QUATERNION_NORM_TOLERANCE = 0.01
"""How far from 1 a received orientation's norm may be before the sample is refused."""


@dataclass(frozen=True)
class Source:
    """
    One stream of robot state a task reads.

    :param name: the key the task reads it by, and its default topic (relative).
    :param kind: one of :data:`SOURCE_KINDS`.
    :param required: a required source must be fresh at every control step; an optional one
        may be missing or stale (the task then finds no entry, or an old one, under ``name``).
    :param length: for ``array``: the number of values every sample must have.
    :param stamped: for ``twist``: ``TwistStamped`` (``True``) or plain ``Twist``.
    :param frame_id: for ``odometry`` and ``pose``: the parent frame samples must name;
        ``''`` accepts any.
    :param child_frame_id: for ``odometry``: the body frame samples must name; ``''`` any.
    """

    name: str
    kind: str
    required: bool = True
    length: int = 0
    stamped: bool = True
    frame_id: str = ''
    child_frame_id: str = ''

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name.startswith('/'):
            raise ValueError(f'source name {self.name!r} must be a non-empty relative topic '
                             'name')
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f'source {self.name!r}: unknown kind {self.kind!r}; choose one '
                             f'of {", ".join(SOURCE_KINDS)}')
        if self.kind == 'array' and (isinstance(self.length, bool)
                                     or not isinstance(self.length, int) or self.length < 1):
            raise ValueError(f'source {self.name!r}: an array source needs its length >= 1, '
                             f'got {self.length!r}')


JOINT_STATES = Source('joint_states', 'joint_state')
"""The source a task reads when it declares none: every joint on ``joint_states``."""


def _vector(value: Sequence[float] | np.ndarray, size: int, what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (size,):
        raise ValueError(f'{what} must have {size} values, got shape {array.shape}')
    if not np.isfinite(array).all():
        raise ValueError(f'{what} is not finite: {array.tolist()}')
    return array


def _unit_quaternion(value: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    quaternion = _vector(value, 4, what)
    norm = float(np.linalg.norm(quaternion))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise ValueError(f'{what} {quaternion.tolist()} has norm {norm:.6g}, not 1 '
                         f'(+-{QUATERNION_NORM_TOLERANCE:g})')
    return quaternion


# eq=False on every sample: the generated __eq__ would compare arrays with ==.
@dataclass(frozen=True, eq=False)
class ImuSample:
    """An IMU reading (``sensor_msgs/Imu``); raises ``ValueError`` when not valid."""

    orientation: np.ndarray
    """Unit quaternion (x, y, z, w) of the IMU frame in its reference frame."""
    angular_velocity: np.ndarray
    """rad/s about the IMU's x, y, z axes."""
    linear_acceleration: np.ndarray
    """m/s^2 along the IMU's axes (includes gravity's reaction, as accelerometers measure)."""
    stamp: float
    """Sample time in seconds."""

    def __post_init__(self) -> None:
        object.__setattr__(self, 'orientation',
                           _unit_quaternion(self.orientation, 'imu orientation'))
        object.__setattr__(self, 'angular_velocity',
                           _vector(self.angular_velocity, 3, 'imu angular_velocity'))
        object.__setattr__(self, 'linear_acceleration',
                           _vector(self.linear_acceleration, 3, 'imu linear_acceleration'))
        object.__setattr__(self, 'stamp', float(self.stamp))


@dataclass(frozen=True, eq=False)
class OdometrySample:
    """Odometry (``nav_msgs/Odometry``, REP 105); raises ``ValueError`` when not valid."""

    position: np.ndarray
    """Position (x, y, z) of the body in the parent frame, m."""
    orientation: np.ndarray
    """Unit quaternion (x, y, z, w) of the body in the parent frame."""
    linear_velocity: np.ndarray
    """Linear velocity in the child (body) frame, m/s."""
    angular_velocity: np.ndarray
    """Angular velocity in the child (body) frame, rad/s."""
    frame_id: str
    """The parent frame, e.g. ``odom``."""
    child_frame_id: str
    """The body frame."""
    stamp: float
    """Sample time in seconds."""

    def __post_init__(self) -> None:
        object.__setattr__(self, 'position', _vector(self.position, 3, 'odometry position'))
        object.__setattr__(self, 'orientation',
                           _unit_quaternion(self.orientation, 'odometry orientation'))
        object.__setattr__(self, 'linear_velocity',
                           _vector(self.linear_velocity, 3, 'odometry linear velocity'))
        object.__setattr__(self, 'angular_velocity',
                           _vector(self.angular_velocity, 3, 'odometry angular velocity'))
        object.__setattr__(self, 'stamp', float(self.stamp))


@dataclass(frozen=True, eq=False)
class PoseSample:
    """A pose (``geometry_msgs/PoseStamped``); raises ``ValueError`` when not valid."""

    position: np.ndarray
    """Position (x, y, z) in ``frame_id``, m."""
    orientation: np.ndarray
    """Unit quaternion (x, y, z, w) in ``frame_id``."""
    frame_id: str
    """The frame the pose is given in."""
    stamp: float
    """Sample time in seconds."""

    def __post_init__(self) -> None:
        object.__setattr__(self, 'position', _vector(self.position, 3, 'pose position'))
        object.__setattr__(self, 'orientation',
                           _unit_quaternion(self.orientation, 'pose orientation'))
        object.__setattr__(self, 'stamp', float(self.stamp))


@dataclass(frozen=True, eq=False)
class TwistSample:
    """A twist (``geometry_msgs/TwistStamped`` or ``Twist``); ``ValueError`` when not valid."""

    linear: np.ndarray
    """Linear velocity (x, y, z), m/s."""
    angular: np.ndarray
    """Angular velocity (x, y, z), rad/s."""
    stamp: float
    """Sample time in seconds (the time of arrival for a plain ``Twist``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, 'linear', _vector(self.linear, 3, 'twist linear'))
        object.__setattr__(self, 'angular', _vector(self.angular, 3, 'twist angular'))
        object.__setattr__(self, 'stamp', float(self.stamp))


@dataclass(frozen=True, eq=False)
class ArraySample:
    """A fixed-length vector (``std_msgs/Float64MultiArray``); ``ValueError`` when not valid."""

    values: np.ndarray
    """The values, as many as the source's ``length``."""
    stamp: float
    """Time of arrival in seconds (the message has no header)."""

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 1 or not np.isfinite(values).all():
            raise ValueError(f'array sample must be a finite 1-D vector, got {values!r}')
        object.__setattr__(self, 'values', values)
        object.__setattr__(self, 'stamp', float(self.stamp))


def check_sources(sources: Sequence[Source], label: str) -> None:
    """
    Check a task's declared sources as a whole.

    :param label: names the task in the error.
    :raises ValueError: not a tuple of :class:`Source`, or two sources with one name.
    """
    if not isinstance(sources, tuple) or not sources or \
            not all(isinstance(s, Source) for s in sources):
        raise ValueError(f'task {label}: sources must be a non-empty tuple of Source')
    names = [source.name for source in sources]
    if len(set(names)) != len(names):
        raise ValueError(f'task {label}: sources has duplicate names: {names}')
    if not any(source.required for source in sources):
        raise ValueError(f'task {label}: at least one source must be required, or nothing '
                         'would ever mark a control step as stale')


__all__ = ['ArraySample', 'COMMAND_INTERFACES', 'ImuSample', 'JOINT_STATES', 'OdometrySample',
           'POSITION_INTERFACES', 'PoseSample', 'QUATERNION_NORM_TOLERANCE', 'SOURCE_KINDS',
           'Source', 'TWIST_AXES', 'TwistSample', 'check_sources']
