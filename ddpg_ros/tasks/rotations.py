"""
Quaternion arithmetic for tasks that read orientations (IMU, odometry, poses).

Quaternions are ``(x, y, z, w)``, as ``geometry_msgs/Quaternion`` and the samples of
:mod:`ddpg_ros.tasks.sources` order them; a quaternion ``q`` maps vectors of the body frame
into the frame the orientation is given in. Plain numpy, so tasks stay free of any physics
engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _parts(quaternion: Sequence[float] | np.ndarray) -> tuple[np.ndarray, float]:
    q = np.asarray(quaternion, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f'a quaternion needs 4 values (x, y, z, w), got shape {q.shape}')
    return q[:3], float(q[3])


def rotate(quaternion: Sequence[float] | np.ndarray,
           vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """
    Return ``R(q) v``: a body-frame vector expressed in the orientation's parent frame.

    :param quaternion: unit quaternion (x, y, z, w).
    :param vector: 3 values in the body frame.
    """
    u, w = _parts(quaternion)
    v = np.asarray(vector, dtype=np.float64)
    # v + 2w (u x v) + 2 u x (u x v): the rotation without forming a matrix.
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def rotate_inverse(quaternion: Sequence[float] | np.ndarray,
                   vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """
    Return ``R(q)^T v``: a parent-frame vector expressed in the body frame.

    :param quaternion: unit quaternion (x, y, z, w).
    :param vector: 3 values in the parent frame.
    """
    u, w = _parts(quaternion)
    return rotate(np.concatenate([-u, [w]]), vector)


def roll_pitch_yaw(quaternion: Sequence[float] | np.ndarray) -> np.ndarray:
    """
    Return the Z-Y-X (yaw, then pitch, then roll) Euler angles of an orientation, in radians.

    Pitch is the tilt of the body's x axis out of the parent's horizontal plane, whatever the
    heading: what a balancing robot with its axle along body y must keep near zero.

    :param quaternion: unit quaternion (x, y, z, w).
    :return: ``[roll, pitch, yaw]``; pitch in [-pi/2, pi/2].
    """
    (x, y, z), w = _parts(quaternion)
    roll = np.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    # clip: rounding can push the sine a hair past 1 at +-90 degrees.
    pitch = np.arcsin(np.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


__all__ = ['roll_pitch_yaw', 'rotate', 'rotate_inverse']
