"""
Where ROS messages meet numpy: the only module that converts between them.

Everything else in the agent sees :class:`~ddpg_ros.tasks.RobotState` and arrays. A message
that cannot be trusted becomes a ``ValueError`` here, with a message naming the problem,
so that the control loop can refuse it before any value of it reaches a task or a network.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from ddpg_ros.tasks import RobotState


def stamp_seconds(msg: JointState) -> float:
    """
    Return the message's ``header.stamp`` in seconds (sim time under ``use_sim_time``).

    :param msg: any message with a ``header``.
    """
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def joint_state_to_robot_state(msg: JointState, joint_names: Sequence[str]) -> RobotState:
    """
    Pick ``joint_names`` out of a ``JointState`` by name, in any order, and validate them.

    ``effort`` may be left empty, as many drivers do; the state then carries NaN efforts, so
    a task that reads effort yields a non-finite observation, which the agent refuses, rather
    than silently reading zero. ``position`` and ``velocity`` must give one value per name.

    :param msg: the joint state as received.
    :param joint_names: the joints wanted, in the order the state should have.
    :return: a state whose arrays are ordered as ``joint_names``.
    :raises ValueError: duplicate names, a missing joint, an array whose length differs from
        ``name``, or a NaN/infinite position, velocity or effort of a wanted joint.
    """
    names = list(msg.name)
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f'joint state names joints more than once: {duplicates}')
    effort = msg.effort if len(msg.effort) else np.full(len(names), np.nan)
    state = RobotState.from_joints(joint_names, names, _as_array(msg.position),
                                   _as_array(msg.velocity), _as_array(effort),
                                   stamp_seconds(msg))
    for what in ('position', 'velocity', 'effort'):
        values = getattr(state, what)
        # Absent efforts are NaN on purpose (see above); only reported ones must be finite.
        if what == 'effort' and not len(msg.effort):
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            joints = [name for name, is_bad in zip(joint_names, bad) if is_bad]
            raise ValueError(f'joint state has non-finite {what} for joints {joints}: '
                             f'{values[bad].tolist()}')
    return state


def to_float64_multi_array(values: np.ndarray | Sequence[float]) -> Float64MultiArray:
    """
    Return a ``Float64MultiArray`` holding ``values`` as a flat array.

    It has no layout, as ros2_control's forward controllers expect.

    :param values: 1-D command, e.g. one effort per actuator.
    """
    msg = Float64MultiArray()
    msg.data = array.array('d', np.asarray(values, dtype=np.float64).ravel().tobytes())
    return msg


def rgb_image(frame: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """
    Return an ``rgb8`` ``Image`` of a picture.

    :param frame: uint8 array of shape (height, width, 3), rows top to bottom.
    :param stamp_ns: ``header.stamp`` in nanoseconds.
    :param frame_id: ``header.frame_id``, e.g. the camera's name.
    """
    height, width, _ = frame.shape
    msg = Image(height=height, width=width, encoding='rgb8', is_bigendian=0, step=3 * width)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    msg.header.frame_id = frame_id
    # One copy of the pixel buffer into an array('B'), which the message takes as it is;
    # bytes or a list would be checked element by element when field checks are on.
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(frame, dtype=np.uint8))
    msg.data = data
    return msg


def _as_array(values: Sequence[float] | np.ndarray) -> np.ndarray:
    # rclpy hands over array.array('d'); reading its buffer avoids a per-element copy.
    if isinstance(values, array.array) and values.typecode == 'd':
        return np.frombuffer(values, dtype=np.float64) if len(values) else np.zeros(0)
    return np.asarray(values, dtype=np.float64)


__all__ = ['joint_state_to_robot_state', 'stamp_seconds', 'to_float64_multi_array']
