"""
ddpg_agent on robots shaped like real ones (INTERFACE.md section 7), over real DDS.

Several state sources, a control timer, every command interface with its safe command,
and the inputs a real robot gets wrong. The robot here is the test itself, publishing what a
ros2_control robot would, so that every timing and every bad message is under its control.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from ddpg_ros.core.checkpoint import save_checkpoint
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.sim.envs import spec_for_task
from ddpg_ros.ros.qos import COMMAND_QOS, STATE_QOS
from ddpg_ros.tasks import RobotState, Source, Task, make_task

from agent_helpers import (REPLY_TIMEOUT, START_TIMEOUT, agent_command,
                           assert_tripped_on_time, joint_state, start_agent, stop_agent)
from conftest import ProcessGroup, RosTestNode

pytestmark = pytest.mark.ros

QUIET = {'hidden_sizes': [16, 16], 'batch_size': 16, 'buffer_size': 10_000,
         'learning_starts': 1_000_000, 'device': 'cpu', 'reset_service': ''}
"""Warm-up forever: uniform random actions, transitions stored, no learning to wait for."""


class ImuTask(Task):
    """A hinge and an IMU, both required: the observation needs the gyro."""

    name = 'imu_test'
    joint_names = ('hinge',)
    sources = (Source('joint_states', 'joint_state'), Source('imu', 'imu'))
    observation_names = ('hinge.position', 'imu.gyro_z')
    action_names = ('hinge',)
    control_dt = 0.05
    max_episode_steps = 100_000

    def __init__(self) -> None:
        self.action_low, self.action_high = np.array([-1.0]), np.array([1.0])

    def observation(self, state: RobotState) -> np.ndarray:
        return np.array([state.position[0], state.sources['imu'].angular_velocity[2]])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        return -abs(float(state.position[0]))


class OdomTask(ImuTask):
    """Reads odometry that must be in the odom frame, of the body base_link."""

    name = 'odom_test'
    sources = (Source('joint_states', 'joint_state'),
               Source('odom', 'odometry', frame_id='odom', child_frame_id='base_link'))

    def observation(self, state: RobotState) -> np.ndarray:
        return np.array([state.position[0], state.sources['odom'].angular_velocity[2]])


class TwistTask(Task):
    """A mobile base: wheel joints in, a twist (forward speed, turn rate) out."""

    name = 'twist_test'
    joint_names = ('left_wheel', 'right_wheel')
    observation_names = ('left_wheel.velocity', 'right_wheel.velocity')
    action_names = ('linear.x', 'angular.z')
    command_interface = 'twist'
    control_dt = 0.05
    max_episode_steps = 100_000

    def __init__(self) -> None:
        self.action_low = np.array([-0.5, -1.0])
        self.action_high = np.array([0.5, 1.0])

    def observation(self, state: RobotState) -> np.ndarray:
        return np.asarray(state.velocity)

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        return 0.0


def imu_message(gyro_z: float, stamp_ns: int, quaternion=(0.0, 0.0, 0.0, 1.0)) -> Imu:
    msg = Imu()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    (msg.orientation.x, msg.orientation.y, msg.orientation.z,
     msg.orientation.w) = (float(v) for v in quaternion)
    msg.angular_velocity.z = gyro_z
    return msg


def odom_message(stamp_ns: int, frame_id: str = 'odom', child: str = 'base_link') -> Odometry:
    msg = Odometry()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id, msg.child_frame_id = frame_id, child
    msg.pose.pose.orientation.w = 1.0
    return msg


class Received:
    """Every message on one topic, with its monotonic arrival time."""

    def __init__(self, ros: RosTestNode, msg_type: type, topic: str) -> None:
        self.messages: list[Any] = []
        self.times: list[float] = []
        ros.node.create_subscription(msg_type, topic, self._on_message, COMMAND_QOS)

    def _on_message(self, msg: Any) -> None:
        self.messages.append(msg)
        self.times.append(time.monotonic())

    def __len__(self) -> int:
        return len(self.messages)


def test_a_silent_source_of_several_trips_the_safe_command_and_names_itself(
        ros_node: RosTestNode, tmp_path: Path) -> None:
    """Timer pacing with two required sources; the IMU stops, then comes back."""
    agent = start_agent(ros_node, tmp_path, task='test_agent_interfaces:ImuTask',
                        control_rate=20.0, state_timeout=0.3, **QUIET)
    node = ros_node.node
    joints = node.create_publisher(JointState, 'joint_states', STATE_QOS)
    imu = node.create_publisher(Imu, 'imu', STATE_QOS)
    commands = Received(ros_node, Float64MultiArray, 'effort_controller/commands')
    statuses: list[dict[str, str]] = []
    from diagnostic_msgs.msg import DiagnosticArray

    from ddpg_ros.ros.qos import DIAGNOSTICS_QOS
    node.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda msg: statuses.extend({**{kv.key: kv.value for kv in s.values},
                                     'message': s.message} for s in msg.status),
        DIAGNOSTICS_QOS)
    imu_on = [True]

    def robot() -> None:  # a 100 Hz joint_state_broadcaster and IMU, stamped when sampled
        now = node.get_clock().now().nanoseconds
        joints.publish(joint_state(['hinge'], [0.1], [0.0], [0.0], now))
        if imu_on[0]:
            imu.publish(imu_message(0.2, now))

    def unstored() -> int:  # steps a late tick made longer than a period: acted on only
        return agent.stats['off_period_steps']

    try:
        node.create_timer(0.01, robot)
        assert ros_node.spin_until(lambda: len(commands) >= 5, START_TIMEOUT)
        start = len(commands)
        assert ros_node.spin_until(lambda: len(commands) >= start + 40, START_TIMEOUT)
        # The control rate (a command every 50 ms), not the 100 Hz state rate. The median
        # gap, so that a stall of this shared machine (one long gap) does not count.
        gap = np.median(np.diff(commands.times[start:]))
        assert 0.04 <= gap <= 0.1, gap
        steps_before = agent.env_steps
        # Every step is stored, but one a late tick (on this shared machine) made longer.
        assert steps_before > 10 and len(agent.buffer) + unstored() == steps_before
        assert len(agent.buffer) >= steps_before // 2

        imu_on[0] = False
        silenced = time.monotonic()
        count = len(commands)
        assert ros_node.spin_until(
            lambda: any(not m.data[0] for m in commands.messages[count:]), 3.0), \
            'no safe command after the IMU fell silent'
        tripped = commands.times[len(commands) - 1] - silenced
        assert tripped >= 0.3 - 0.05, tripped  # no sooner than state_timeout
        assert_tripped_on_time(agent, 0.3)  # and on time, on the agent's clock
        since = len(statuses)
        assert ros_node.spin_until(
            lambda: any(s.get('stale_sources') for s in statuses[since:]), 5.0), statuses[-1:]
        ros_node.spin_for(0.5)  # then silence
        gap = [m.data[0] for m in commands.messages[count:]]
        assert gap[-1] == 0.0 and gap.count(0.0) == 1, 'one safe command, then silence'
        stale = [s for s in statuses[since:] if s.get('stale_sources')]
        assert stale and stale[-1]['stale_sources'] == 'imu', statuses[-1:]
        assert 'no valid imu (imu)' in stale[-1]['message']
        stored, late = len(agent.buffer), unstored()
        assert agent.env_steps == stored + late  # nothing stored across the gap

        imu_on[0] = True
        resumed_at = len(commands)
        assert ros_node.spin_until(lambda: len(commands) >= resumed_at + 10, 5.0)
        imu_on[0] = False
        # It trips again: once that safe command is in, the count below is final.
        assert ros_node.spin_until(
            lambda: any(m.data[0] == 0.0 for m in commands.messages[resumed_at:]), 3.0)
        acted = [m for m in commands.messages[resumed_at:] if m.data[0] != 0.0]
        # A new chain: the first step after the gap stores nothing, each later one a step.
        assert len(agent.buffer) - stored == len(acted) - 1 - (unstored() - late)
    finally:
        stop_agent(ros_node, agent)


def drive(ros: RosTestNode, publish_state, commands: Received, steps: int) -> None:
    """Lockstep: a new state after each command, ``steps`` times."""
    for _ in range(steps):
        count = len(commands)
        publish_state()
        assert ros.spin_until(lambda: len(commands) > count, REPLY_TIMEOUT)


@pytest.mark.distro
@pytest.mark.parametrize('interface, msg_type, topic', [
    ('effort', Float64MultiArray, 'effort_controller/commands'),
    ('velocity', Float64MultiArray, 'velocity_controller/commands'),
    ('position', Float64MultiArray, 'position_controller/commands'),
    ('joint_trajectory', JointTrajectory, 'joint_trajectory_controller/joint_trajectory'),
])
def test_each_joint_command_interface_reaches_its_controller_with_its_safe_command(
        ros_node: RosTestNode, tmp_path: Path, interface: str, msg_type: type,
        topic: str) -> None:
    task = make_task('ddpg_ros.tasks.examples:ReachTarget')
    agent = start_agent(ros_node, tmp_path, task='ddpg_ros.tasks.examples:ReachTarget',
                        command_interface=interface, state_timeout=0.3, **QUIET)
    states = ros_node.node.create_publisher(JointState, 'joint_states', STATE_QOS)
    commands = Received(ros_node, msg_type, topic)
    stamp, positions = [0], np.array([0.3, -0.7])

    def publish_state() -> None:
        stamp[0] += 20_000_000
        states.publish(joint_state(['elbow', 'shoulder'], positions[::-1], [0.0, 0.0],
                                   [0.0, 0.0], stamp[0]))

    def values(msg: Any) -> list[float]:
        return list(msg.points[0].positions) if interface == 'joint_trajectory' \
            else list(msg.data)

    try:
        assert ros_node.spin_until(lambda: states.get_subscription_count() > 0, START_TIMEOUT)
        drive(ros_node, publish_state, commands, 5)
        for msg in commands.messages:
            command = np.array(values(msg))
            assert command.shape == (2,)
            assert np.all(command >= task.action_low) and np.all(command <= task.action_high)
        if interface == 'joint_trajectory':
            msg = commands.messages[-1]
            assert list(msg.joint_names) == ['shoulder', 'elbow'] and len(msg.points) == 1
            # One control period ahead: the controller interpolates to the point by then.
            assert (msg.points[0].time_from_start.sec,
                    msg.points[0].time_from_start.nanosec) == (0, 20_000_000)
        count = len(commands)
        assert ros_node.spin_until(lambda: len(commands) > count, 3.0), 'no safe command'
        safe = values(commands.messages[-1])
        # Position interfaces hold where the joints are; a zero position would swing them.
        expected = positions.tolist() if interface in ('position', 'joint_trajectory') \
            else [0.0, 0.0]
        assert safe == expected, (interface, safe)
    finally:
        stop_agent(ros_node, agent)


@pytest.mark.distro
def test_a_twist_command_reaches_cmd_vel_and_stops_with_a_zero_twist(
        ros_node: RosTestNode, tmp_path: Path) -> None:
    agent = start_agent(ros_node, tmp_path, task='test_agent_interfaces:TwistTask',
                        state_timeout=0.3, **QUIET)
    states = ros_node.node.create_publisher(JointState, 'joint_states', STATE_QOS)
    commands = Received(ros_node, TwistStamped, 'cmd_vel')
    stamp = [0]

    def publish_state() -> None:
        stamp[0] += 50_000_000
        states.publish(joint_state(['left_wheel', 'right_wheel'], [0.0, 0.0], [1.0, 1.2],
                                   [0.0, 0.0], stamp[0]))

    try:
        assert ros_node.spin_until(lambda: states.get_subscription_count() > 0, START_TIMEOUT)
        drive(ros_node, publish_state, commands, 5)
        for msg in commands.messages:
            twist = msg.twist
            assert abs(twist.linear.x) <= 0.5 and abs(twist.angular.z) <= 1.0
            assert (twist.linear.y, twist.linear.z, twist.angular.x, twist.angular.y) == \
                (0.0, 0.0, 0.0, 0.0)
        assert any(msg.twist.linear.x != 0.0 for msg in commands.messages)
        count = len(commands)
        assert ros_node.spin_until(lambda: len(commands) > count, 3.0), 'no safe command'
        twist = commands.messages[-1].twist
        assert (twist.linear.x, twist.angular.z) == (0.0, 0.0)
    finally:
        stop_agent(ros_node, agent)


@pytest.mark.distro
@pytest.mark.parametrize('bad, problem', [
    (lambda stamp: imu_message(0.0, stamp, quaternion=(0.0, 0.0, 0.0, 2.0)),
     'imu orientation [0.0, 0.0, 0.0, 2.0] has norm 2'),
    (lambda stamp: imu_message(float('nan'), stamp), 'imu angular_velocity is not finite'),
])
def test_an_imu_sample_that_cannot_be_true_is_refused_and_never_acted_on(
        ros_node: RosTestNode, tmp_path: Path, bad, problem: str) -> None:
    agent = start_agent(ros_node, tmp_path, task='test_agent_interfaces:ImuTask', **QUIET)
    node = ros_node.node
    joints = node.create_publisher(JointState, 'joint_states', STATE_QOS)
    imu = node.create_publisher(Imu, 'imu', STATE_QOS)
    commands = Received(ros_node, Float64MultiArray, 'effort_controller/commands')
    try:
        assert ros_node.spin_until(lambda: imu.get_subscription_count() > 0, START_TIMEOUT)
        for stamp in (50_000_000, 100_000_000):
            joints.publish(joint_state(['hinge'], [0.0], [0.0], [0.0], stamp))
            imu.publish(imu_message(0.1, stamp))
        assert ros_node.spin_until(lambda: len(commands) == 2, REPLY_TIMEOUT)
        joints.publish(joint_state(['hinge'], [0.0], [0.0], [0.0], 150_000_000))
        imu.publish(bad(150_000_000))
        assert ros_node.spin_until(lambda: agent.stats['invalid_states'] == 1, REPLY_TIMEOUT)
        ros_node.spin_for(0.3)
        assert len(commands) == 2 and problem in agent.last_problem, agent.last_problem
        assert len(agent.buffer) == 1
    finally:
        stop_agent(ros_node, agent)


@pytest.mark.distro
def test_odometry_in_another_frame_is_refused_naming_both(
        ros_node: RosTestNode, tmp_path: Path) -> None:
    agent = start_agent(ros_node, tmp_path, task='test_agent_interfaces:OdomTask', **QUIET)
    odom = ros_node.node.create_publisher(Odometry, 'odom', STATE_QOS)
    try:
        assert ros_node.spin_until(lambda: odom.get_subscription_count() > 0, START_TIMEOUT)
        odom.publish(odom_message(50_000_000, frame_id='map'))
        assert ros_node.spin_until(lambda: agent.stats['invalid_states'] == 1, REPLY_TIMEOUT)
        assert "frame_id is 'map', expected 'odom'" in agent.last_problem
        odom.publish(odom_message(100_000_000, child='imu_link'))
        assert ros_node.spin_until(lambda: agent.stats['invalid_states'] == 2, REPLY_TIMEOUT)
        assert "child_frame_id is 'imu_link', expected 'base_link'" in agent.last_problem
    finally:
        stop_agent(ros_node, agent)


@pytest.mark.distro
def test_a_source_topic_of_another_type_is_reported_by_name(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path: Path) -> None:
    # A remapping mistake: joint states published where the IMU should be. (Another
    # process: one DDS participant cannot hold one topic with two types.)
    ros_node.node.create_publisher(JointState, 'imu', STATE_QOS)
    env = {**ros_processes.env, 'PYTHONPATH': str(Path(__file__).parent)}
    agent = ros_processes.start(agent_command(task='test_agent_interfaces:ImuTask',
                                              checkpoint_dir=tmp_path / 'runs',
                                              **{**QUIET, 'reset_service': "''"}),
                                name='ddpg_agent', env=env)
    expected = ("source 'imu': /imu carries sensor_msgs/msg/JointState, not "
                'sensor_msgs/msg/Imu: remap the source to the right topic')
    deadline = time.monotonic() + START_TIMEOUT
    while expected not in agent.output() and time.monotonic() < deadline:
        ros_node.spin_for(0.2)
    assert expected in agent.output(), agent.output()
    assert agent.popen.poll() is None, 'the node stays up: the topic may be fixed later'


@pytest.mark.parametrize('params, message', [
    ({'command_interface': 'torque'}, "unknown command interface 'torque'; choose one of "
                                      'effort, velocity, position, joint_trajectory, twist'),
    ({'command_interface': 'position'}, "position commands joints ['slide'] that it does not "
                                        "read from joint states (['slider', 'hinge'])"),
    ({'command_interface': 'twist'}, 'a twist command needs action names among linear.x'),
    ({'control_rate': -5.0}, 'control_rate=-5.0 must be >= 0'),
])
def test_bad_timing_and_interface_parameters_stop_the_agent_with_the_reason(
        ros_node: RosTestNode, tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        start_agent(ros_node, tmp_path, **params)
    assert message in str(info.value)


def test_deploy_refuses_a_checkpoint_trained_at_another_control_period(
        ros_node: RosTestNode, tmp_path: Path) -> None:
    task = make_task('inverted_pendulum')
    agent = DDPG(task.obs_dim, task.action_low, task.action_high,
                 DDPGConfig(hidden_sizes=(8,), device='cpu'))
    trained_at_25hz = save_checkpoint(tmp_path / 'pendulum.pt', agent, spec_for_task(task))
    with pytest.raises(ValueError) as info:
        start_agent(ros_node, tmp_path, mode='deploy', load_checkpoint=str(trained_at_25hz),
                    control_rate=50.0)
    assert 'trained at a control period of 0.04 s (25 Hz); this robot runs at 0.02 s (50 Hz)' \
        in str(info.value)
    # At its own rate it deploys.
    agent_node = start_agent(ros_node, tmp_path, mode='deploy',
                             load_checkpoint=str(trained_at_25hz), control_rate=25.0)
    stop_agent(ros_node, agent_node)
