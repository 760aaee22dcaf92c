"""
The messages ``mujoco_sim`` publishes for one simulated state, built from its samples.

A state goes out as every sensor topic (``odom``, ``root_pose``, ``contact_forces``,
``imu``), then ``joint_states``, then ``/clock``, all stamped alike: an agent that acts once
per robot step takes a step as complete when every source has a sample newer than the last
step's. ``/clock`` comes last because a timer on sim time fires when the clock reaches its
period: published first, it would wake an agent's control timer before that instant's
states, and the agent would act on the state one tick old.

Odometry follows REP 105 (pose in ``odom``, twist in the root body's frame); the
covariances are zeros, which ``nav_msgs`` and ``sensor_msgs`` read as "not known": a
simulation's values are exact, and all of them are present (``-1`` in element 0 would say a
value is missing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time as TimeMessage
from geometry_msgs.msg import Point, PoseStamped, Quaternion, Vector3
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray

from ddpg_ros.ros.conversions import to_float64_multi_array
from ddpg_ros.ros.qos import CLOCK_QOS, STATE_QOS
from ddpg_ros.tasks.sources import ArraySample, ImuSample, OdometrySample, PoseSample

SENSOR_MESSAGES = {'odometry': Odometry, 'pose': PoseStamped, 'array': Float64MultiArray,
                   'imu': Imu}
"""The message type of each kind of sensor sample the simulation publishes."""


def stamp_message(stamp_ns: int) -> TimeMessage:
    """Return ``builtin_interfaces/Time`` for a time in integer nanoseconds."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return TimeMessage(sec=sec, nanosec=nanosec)


def _vector(values: np.ndarray) -> Vector3:
    return Vector3(x=float(values[0]), y=float(values[1]), z=float(values[2]))


def _point(values: np.ndarray) -> Point:
    return Point(x=float(values[0]), y=float(values[1]), z=float(values[2]))


def _quaternion(xyzw: np.ndarray) -> Quaternion:
    return Quaternion(x=float(xyzw[0]), y=float(xyzw[1]), z=float(xyzw[2]), w=float(xyzw[3]))


def joint_state_message(names: Sequence[str], position: np.ndarray, velocity: np.ndarray,
                        effort: np.ndarray, stamp: TimeMessage) -> JointState:
    """Return a ``JointState`` of every named joint."""
    msg = JointState(name=list(names), position=position.tolist(),
                     velocity=velocity.tolist(), effort=effort.tolist())
    msg.header.stamp = stamp
    return msg


def odometry_message(sample: OdometrySample, stamp: TimeMessage) -> Odometry:
    """Return the ``Odometry`` of a sample: pose in ``frame_id``, twist in the body frame."""
    msg = Odometry(child_frame_id=sample.child_frame_id)
    msg.header.stamp = stamp
    msg.header.frame_id = sample.frame_id
    msg.pose.pose.position = _point(sample.position)
    msg.pose.pose.orientation = _quaternion(sample.orientation)
    msg.twist.twist.linear = _vector(sample.linear_velocity)
    msg.twist.twist.angular = _vector(sample.angular_velocity)
    return msg


def pose_message(sample: PoseSample, stamp: TimeMessage) -> PoseStamped:
    """Return the ``PoseStamped`` of a sample."""
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = sample.frame_id
    msg.pose.position = _point(sample.position)
    msg.pose.orientation = _quaternion(sample.orientation)
    return msg


def imu_message(sample: ImuSample, stamp: TimeMessage, frame_id: str) -> Imu:
    """Return the ``Imu`` of a sample; ``frame_id`` is the IMU's (its site's name)."""
    msg = Imu()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.orientation = _quaternion(sample.orientation)
    msg.angular_velocity = _vector(sample.angular_velocity)
    msg.linear_acceleration = _vector(sample.linear_acceleration)
    return msg


def array_message(sample: ArraySample, stamp: TimeMessage) -> Float64MultiArray:
    """Return the values of a sample (the message has no header, so no stamp)."""
    return to_float64_multi_array(sample.values)


class StatePublishers:
    """
    Publishes one simulated state on every topic of the model, all with one stamp.

    :param node: the node that publishes.
    :param sensor_topics: the kind of sample on each topic besides ``joint_states``
        (``{'odom': 'odometry', 'imu': 'imu', ...}``, see
        :attr:`ddpg_ros.sim.sensors.SimSensors.topics`).
    :param joint_names: the names on ``joint_states``.
    :param imu_frame: ``frame_id`` of ``imu`` messages.
    :param publish_clock: also publish the stamp on ``/clock``.
    """

    def __init__(self, node: Node, sensor_topics: Mapping[str, str],
                 joint_names: Sequence[str], imu_frame: str, publish_clock: bool) -> None:
        self._joint_names = list(joint_names)
        self._clock = node.create_publisher(Clock, '/clock', CLOCK_QOS) \
            if publish_clock else None
        build: dict[str, Callable[[Any, TimeMessage], Any]] = {
            'odometry': odometry_message, 'pose': pose_message, 'array': array_message,
            'imu': lambda sample, stamp: imu_message(sample, stamp, imu_frame)}
        self._sensors = [(topic, build[kind], node.create_publisher(
            SENSOR_MESSAGES[kind], topic, STATE_QOS)) for topic, kind in sensor_topics.items()]
        self._joint_states = node.create_publisher(JointState, 'joint_states', STATE_QOS)

    @property
    def topics(self) -> list[str]:
        """Return the sensor topics, in the order they are published."""
        return [topic for topic, _, _ in self._sensors]

    def publish(self, stamp_ns: int, position: np.ndarray, velocity: np.ndarray,
                effort: np.ndarray, samples: Mapping[str, Any]) -> None:
        """
        Publish one state.

        :param stamp_ns: sim time of the state, integer nanoseconds.
        :param position: joint positions, ordered as ``joint_names``; so are the next two.
        :param samples: the sample of each sensor topic; a topic without one is left out
            this time (its value could not be read).
        """
        stamp = stamp_message(stamp_ns)
        for topic, build, publisher in self._sensors:
            sample = samples.get(topic)
            if sample is not None:
                publisher.publish(build(sample, stamp))
        self._joint_states.publish(
            joint_state_message(self._joint_names, position, velocity, effort, stamp))
        if self._clock is not None:
            self._clock.publish(Clock(clock=stamp))


__all__ = ['SENSOR_MESSAGES', 'StatePublishers', 'array_message', 'imu_message',
           'joint_state_message', 'odometry_message', 'pose_message', 'stamp_message']
