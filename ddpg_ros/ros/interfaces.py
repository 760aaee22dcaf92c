"""
The messages of state sources and command interfaces, converted at the node's edge.

One function per source kind turns a received message into the task's sample type
(:mod:`ddpg_ros.tasks.sources`), raising ``ValueError`` with the reason for a message that
cannot be trusted; one class publishes commands on the topic and in the type of a command
interface (INTERFACE.md section 7), as ros2_control's controllers take them.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration as DurationMessage
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ddpg_ros.ros.conversions import (joint_state_to_robot_state, stamp_seconds,
                                      to_float64_multi_array)
from ddpg_ros.ros.qos import COMMAND_QOS
from ddpg_ros.tasks import Task
from ddpg_ros.tasks.sources import (TWIST_AXES, ArraySample, ImuSample, OdometrySample,
                                    PoseSample, Source, TwistSample)

COMMAND_TOPICS = {
    'effort': ('effort_controller/commands', Float64MultiArray),
    'velocity': ('velocity_controller/commands', Float64MultiArray),
    'position': ('position_controller/commands', Float64MultiArray),
    'joint_trajectory': ('joint_trajectory_controller/joint_trajectory', JointTrajectory),
    'twist': ('cmd_vel', TwistStamped),
}
"""Default topic (relative, remappable) and message type of each command interface."""


def _xyz(v: Any) -> list[float]:
    return [v.x, v.y, v.z]


def _xyzw(q: Any) -> list[float]:
    return [q.x, q.y, q.z, q.w]


def _check_frame(source: Source, what: str, expected: str, got: str) -> None:
    if expected and got != expected:
        raise ValueError(f'{source.name}: {what} is {got!r}, expected {expected!r}')


def message_type(source: Source) -> type:
    """Return the message type a source of this kind is read from."""
    if source.kind == 'twist':
        return TwistStamped if source.stamped else Twist
    return {'joint_state': JointState, 'imu': Imu, 'odometry': Odometry,
            'pose': PoseStamped, 'array': Float64MultiArray}[source.kind]


def sample_reader(source: Source, task: Task) -> Callable[[Any, float], Any]:
    """
    Return ``read(msg, arrival) -> sample`` for ``source``; it raises ``ValueError``.

    :param task: for a ``joint_state`` source, the joints to pick by name.
    :param arrival: stands in as the stamp of messages without a header (seconds).
    """
    if source.kind == 'joint_state':
        return lambda msg, arrival: joint_state_to_robot_state(msg, task.joint_names)
    if source.kind == 'imu':
        return lambda msg, arrival: ImuSample(
            _xyzw(msg.orientation), _xyz(msg.angular_velocity),
            _xyz(msg.linear_acceleration), stamp_seconds(msg))
    if source.kind == 'odometry':
        def read_odometry(msg: Odometry, arrival: float) -> OdometrySample:
            _check_frame(source, 'frame_id', source.frame_id, msg.header.frame_id)
            _check_frame(source, 'child_frame_id', source.child_frame_id, msg.child_frame_id)
            pose, twist = msg.pose.pose, msg.twist.twist
            return OdometrySample(_xyz(pose.position), _xyzw(pose.orientation),
                                  _xyz(twist.linear), _xyz(twist.angular),
                                  msg.header.frame_id, msg.child_frame_id, stamp_seconds(msg))
        return read_odometry
    if source.kind == 'pose':
        def read_pose(msg: PoseStamped, arrival: float) -> PoseSample:
            _check_frame(source, 'frame_id', source.frame_id, msg.header.frame_id)
            return PoseSample(_xyz(msg.pose.position), _xyzw(msg.pose.orientation),
                              msg.header.frame_id, stamp_seconds(msg))
        return read_pose
    if source.kind == 'twist':
        if source.stamped:
            return lambda msg, arrival: TwistSample(
                _xyz(msg.twist.linear), _xyz(msg.twist.angular), stamp_seconds(msg))
        return lambda msg, arrival: TwistSample(_xyz(msg.linear), _xyz(msg.angular), arrival)

    def read_array(msg: Float64MultiArray, arrival: float) -> ArraySample:
        values = np.frombuffer(msg.data, dtype=np.float64) \
            if isinstance(msg.data, array.array) else np.asarray(msg.data, dtype=np.float64)
        if values.size != source.length:
            raise ValueError(f'{source.name}: {values.size} values, expected {source.length}')
        return ArraySample(values.copy(), arrival)
    return read_array


def type_name(msg_type: type) -> str:
    """Return a message class's ROS name, e.g. ``sensor_msgs/msg/Imu``."""
    return f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'


def source_topic_problems(node: Node, sources: tuple[Source, ...]) -> list[str]:
    """
    Return a sentence for each source whose topic has no publisher, or one of another type.

    A wrong type is a remapping mistake that rclpy does not report: the subscription simply
    never matches. The agent says so once, at start, naming the source, topic and types.
    """
    problems = []
    for source in sources:
        topic = node.resolve_topic_name(source.name)
        expected = type_name(message_type(source))
        found = sorted({info.topic_type for info in node.get_publishers_info_by_topic(topic)})
        if not found:
            problems.append(f'source {source.name!r}: nothing publishes {topic} yet '
                            f'(expects {expected})')
        elif expected not in found:
            problems.append(f'source {source.name!r}: {topic} carries {", ".join(found)}, '
                            f'not {expected}: remap the source to the right topic')
    return problems


ACK_TIMEOUT = 5.0
"""
Seconds an exiting node waits for every matched subscriber to acknowledge its last command.

The command itself is sent at once; a reliable reader acknowledges it when the writer's next
heartbeat comes, which Fast DDS sends every 3 s by default while a writer is idle. Measured
here, a healthy sim acknowledged an exiting agent's safe command 0.005-2.7 s after it was
published; 1 s would call most exits unacknowledged, and 5 s leaves a loaded machine 2 s.
"""


class CommandPublisher:
    """
    Publishes commands on the topic and in the type of one command interface.

    :param node: the node that publishes.
    :param task: the task (action names, commanded joints, control period).
    :param interface: one of :data:`COMMAND_TOPICS`.
    :param period: seconds per control step (``time_from_start`` of a trajectory point).
    """

    def __init__(self, node: Node, task: Task, interface: str, period: float) -> None:
        topic, msg_type = COMMAND_TOPICS[interface]
        self.interface = interface
        self.topic = topic
        self._node = node
        self._publisher = node.create_publisher(msg_type, topic, COMMAND_QOS)
        self._joints = list(task.commanded_joints)
        seconds, nanoseconds = divmod(int(round(period * 1e9)), 1_000_000_000)
        self._time_from_start = DurationMessage(sec=seconds, nanosec=nanoseconds)
        self._axes = [TWIST_AXES.index(name) for name in task.action_names] \
            if interface == 'twist' else []
        self._build = {'joint_trajectory': self._trajectory,
                       'twist': self._twist}.get(interface, to_float64_multi_array)

    @property
    def publisher(self) -> Any:
        """Return the rclpy publisher, for subscription counts and acknowledgements."""
        return self._publisher

    def publish(self, command: np.ndarray) -> None:
        """Publish one command: one value per action entry."""
        self._publisher.publish(self._build(command))

    def send_last(self, command: np.ndarray | None, logger: Any) -> None:
        """Publish the last command of a node that exits, and wait until it is delivered."""
        if command is None:
            logger.info('no position measured yet: no command to hold; exiting')
            return
        try:
            self.publish(command)
            # Reliable delivery of the last command before the publisher goes away.
            acked = self._publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT))
        except Exception as exc:  # the context may already be gone (external shutdown)
            logger.error(f'could not send the safe command: {exc}')
            return
        if not acked:
            logger.warning('safe command sent but not acknowledged by every subscriber '
                           f'within {ACK_TIMEOUT:g} s')
        logger.info(f'safe command {np.asarray(command).tolist()} sent; exiting')

    def _trajectory(self, command: np.ndarray) -> JointTrajectory:
        # One point, reached one control period from now: the controller interpolates to it.
        msg = JointTrajectory(joint_names=self._joints)
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.points = [JointTrajectoryPoint(
            positions=[float(v) for v in command], time_from_start=self._time_from_start)]
        return msg

    def _twist(self, command: np.ndarray) -> TwistStamped:
        values = [0.0] * 6
        for axis, value in zip(self._axes, command):
            values[axis] = float(value)
        msg = TwistStamped()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        (msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
         msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z) = values
        return msg


__all__ = ['COMMAND_TOPICS', 'CommandPublisher', 'message_type', 'sample_reader',
           'source_topic_problems', 'type_name']
