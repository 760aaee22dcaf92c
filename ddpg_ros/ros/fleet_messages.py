"""
The fleet's topics on DDS: names, QoS, and ``UInt8MultiArray`` <-> :mod:`ddpg_ros.fleet.wire`.

Large arrays never pass through Python lists: bytes go into the ``uint8[]`` field as one
``array.array('B')`` (``frombytes``), and come out as the array rclpy hands over, which the
wire module reads with ``np.frombuffer``.
"""

from __future__ import annotations

import array
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import MultiArrayDimension, UInt8MultiArray

from ddpg_ros.fleet.wire import WireMessage

LEARNER_NAME = 'ddpg_learner'
POLICY_TOPIC = f'/{LEARNER_NAME}/policy'
"""Where an actor listens: absolute, so that robots in any namespace reach one learner."""
TRANSITIONS_TOPIC = f'/{LEARNER_NAME}/transitions'

POLICY_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""``ddpg_learner/policy``: only the newest policy matters, and an actor that joins late
gets it from the learner's writer at once (transient local)."""

TRANSITIONS_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""``ddpg_learner/transitions``: reliable, and 1000 batches deep, shared by every actor at the
learner's end: bursts from many robots, or a learner busy for a moment, lose nothing (the
depth of 100 lost batches at 1000 batches/s here, 1000 loses none: benchmarks/RESULTS.md);
volatile, because batches kept for a learner that is away are the actor's to keep (bounded,
counted), not DDS's."""


def to_message(wire: WireMessage) -> UInt8MultiArray:
    """Return ``wire`` as a ``UInt8MultiArray``, its bytes copied once."""
    data = array.array('B')
    data.frombytes(wire.data)
    msg = UInt8MultiArray()
    msg.data = data
    msg.layout.data_offset = wire.data_offset
    msg.layout.dim = [MultiArrayDimension(label=label, size=size, stride=stride)
                      for label, size, stride in wire.dims]
    return msg


def message_parts(msg: UInt8MultiArray) -> tuple[Any, int, list[tuple[str, int, int]]]:
    """Return what the wire decoders take: ``data`` (not copied), ``data_offset``, dims."""
    return (msg.data, int(msg.layout.data_offset),
            [(dim.label, int(dim.size), int(dim.stride)) for dim in msg.layout.dim])


__all__ = ['LEARNER_NAME', 'POLICY_QOS', 'POLICY_TOPIC', 'TRANSITIONS_QOS',
           'TRANSITIONS_TOPIC', 'message_parts', 'to_message']
