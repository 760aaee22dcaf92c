"""mujoco_sim over real DDS: the robot side of INTERFACE.md, one test per promise."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any, NamedTuple

import gymnasium
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock as RosClock, ClockType
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, Imu, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_ros.ros.conversions import joint_state_to_robot_state, to_float64_multi_array
from ddpg_ros.ros.interfaces import COMMAND_TOPICS, message_type, sample_reader
from ddpg_ros.ros.mujoco_sim_node import SimSettings
from ddpg_ros.ros.profiles import MUJOCO_SIM_PARAMETERS
from ddpg_ros.ros.sim_publishers import (array_message, imu_message, odometry_message,
                                         pose_message, stamp_message)
from ddpg_ros.sim.rendering import RenderSettings
from ddpg_ros.ros.qos import CLOCK_QOS, COMMAND_QOS, IMAGE_QOS, STATE_QOS
from ddpg_ros.sim.simulation import Simulation
from ddpg_ros.tasks import RobotState, Task, make_task
from ddpg_ros.tasks.sources import Source

from conftest import ProcessGroup, RosTestNode, TestProcess, node_command

DEEP_STATE_QOS = QoSProfile(history=STATE_QOS.history, depth=1000,
                            reliability=STATE_QOS.reliability, durability=STATE_QOS.durability)
START_TIMEOUT = 30.0
"""Seconds for a node to start and be discovered; generous for a loaded 2-core machine."""
REPLY_TIMEOUT = 5.0


def stamp_ns(msg: JointState | Clock | Image | DiagnosticArray) -> int:
    stamp = msg.clock if isinstance(msg, Clock) else msg.header.stamp
    return Time.from_msg(stamp).nanoseconds


def start_sim(processes: ProcessGroup, *params: str, namespace: str = '', **options
              ) -> TestProcess:
    """Start mujoco_sim with ``name:=value`` parameters; ``options`` go to ``start``."""
    ros_args = [arg for param in params for arg in ('-p', param)]
    if namespace:
        ros_args += ['-r', f'__ns:={namespace}']
    return processes.start(node_command('mujoco_sim_node', *ros_args), name='mujoco_sim',
                           **options)


class Pace(NamedTuple):
    """The realtime sim's account of its pace between two of its reports."""

    made: int
    """Ticks made."""
    skipped: int
    """Ticks skipped, the sim having run late."""
    seconds: float
    """Wall seconds between the reports, on the sim's clock."""
    first: dict[str, Any]
    last: dict[str, Any]


class SimClient:
    """What an agent sees of mujoco_sim: states and clock in, commands and resets out."""

    def __init__(self, ros: RosTestNode, namespace: str = '') -> None:
        prefix = f'{namespace}/' if namespace else ''
        self.ros = ros
        self.states: list[JointState] = []
        self.clocks: list[Clock] = []
        self.diagnostics: list[DiagnosticArray] = []
        node = ros.node
        # STATE_QOS with a deep queue: at 100 states/s a test stalled for 0.1 s would lose
        # states from the robot's 10-deep one, and several tests count every state.
        self._state_sub = node.create_subscription(
            JointState, f'{prefix}joint_states', self.states.append, DEEP_STATE_QOS)
        node.create_subscription(Clock, '/clock', self.clocks.append, CLOCK_QOS)
        node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 10)
        self._commands = node.create_publisher(
            Float64MultiArray, f'{prefix}effort_controller/commands', COMMAND_QOS)
        self._reset = node.create_client(Trigger, f'{prefix}mujoco_sim/reset')

    def connect(self) -> JointState:
        """Wait until both directions are matched and a state has come; return it."""
        assert self.ros.spin_until(
            lambda: (self._commands.get_subscription_count() > 0 and self.states
                     and self._reset.service_is_ready()), START_TIMEOUT), 'sim not discovered'
        return self.states[-1]

    def send(self, command: list[float] | np.ndarray) -> None:
        self._commands.publish(to_float64_multi_array(command))

    def next_state(self, after: JointState, timeout: float = REPLY_TIMEOUT) -> JointState:
        """Wait for the first state stamped after ``after`` (re-published repeats are skipped)."""
        after_ns = stamp_ns(after)

        def first_newer() -> JointState | None:
            # Stamps never decrease, so scanning back from the newest stops early.
            found = None
            for msg in reversed(self.states):
                if stamp_ns(msg) <= after_ns:
                    break
                found = msg
            return found

        assert self.ros.spin_until(lambda: first_newer() is not None, timeout), \
            f'no state after {after_ns} ns within {timeout} s'
        return first_newer()

    def step(self, command: list[float] | np.ndarray, after: JointState) -> JointState:
        self.send(command)
        return self.next_state(after)

    def reset(self) -> Trigger.Response:
        future = self._reset.call_async(Trigger.Request())
        assert self.ros.spin_until(future.done, REPLY_TIMEOUT), 'reset service did not answer'
        return future.result()

    def latest_status(self) -> dict[str, Any]:
        """Return the key/values of the newest mujoco_sim diagnostics status ({} if none yet)."""
        statuses = self.statuses()
        return statuses[-1] if statuses else {}

    def statuses(self) -> list[dict[str, Any]]:
        """Every mujoco_sim status so far: key/values, level, message, stamp_ns (sim clock)."""
        return [{'level': int.from_bytes(status.level, 'little'), 'message': status.message,
                 'stamp_ns': stamp_ns(array), **{kv.key: kv.value for kv in status.values}}
                for array in self.diagnostics for status in array.status
                if status.name.endswith('simulation')]

    def assert_kept_pace(self, wall_period: float, tick_ns: int, span: float = 2.0,
                         meanwhile: Callable[[], None] | None = None) -> Pace:
        """
        Check the realtime sim's own account of its pace between two reports ``span`` s apart.

        Every timer period between them is a tick the sim made or one it reported skipped,
        having run late: a loaded machine may starve it, never change its pace. Both ends are
        read on the sim's clock, so a stall of the test's process cannot fail it.
        ``meanwhile`` runs just after the first report.
        """
        count = len(self.statuses())
        assert self.ros.spin_until(lambda: len(self.statuses()) > count, START_TIMEOUT)
        first = self.statuses()[count]
        if meanwhile is not None:
            meanwhile()
        assert self.ros.spin_until(
            lambda: self.statuses()[-1]['stamp_ns'] - first['stamp_ns'] >= span * 1e9,
            START_TIMEOUT)
        last = self.statuses()[-1]
        pace = Pace(*(int(last[key]) - int(first[key]) for key in ('steps', 'ticks_skipped')),
                    (last['stamp_ns'] - first['stamp_ns']) * 1e-9, first, last)
        periods = pace.seconds / wall_period
        # A tick either side of each report, as the two timers interleave.
        assert abs(pace.made + pace.skipped - periods) <= 2.0, (pace, periods)
        sim_seconds = float(last['sim_time']) - float(first['sim_time'])
        assert sim_seconds == pytest.approx(pace.made * tick_ns * 1e-9, abs=2e-3), \
            (sim_seconds, pace)
        print(f'{pace.made} ticks made, {pace.skipped} skipped in {periods:.1f} periods')
        return pace


class TaskClient:
    """
    What an agent sees of mujoco_sim for a task: every source it reads, commands out.

    Messages become the task's samples through the agent's own readers
    (:func:`ddpg_ros.ros.interfaces.sample_reader`), and a state is built from them as the
    agent's ``LatestSamples.state()`` builds it.
    """

    def __init__(self, ros: RosTestNode, task: Task) -> None:
        self.ros, self.task = ros, task
        self.messages: dict[str, list] = {source.name: [] for source in task.sources}
        self._readers = {source.name: sample_reader(source, task) for source in task.sources}
        self._stamped = {source.name: source.kind != 'array' for source in task.sources}
        self._joints = task.joint_source.name
        for source in task.sources:
            ros.node.create_subscription(message_type(source), source.name,
                                         self.messages[source.name].append, STATE_QOS)
        topic, command_type = COMMAND_TOPICS[task.command_interface]
        self._commands = ros.node.create_publisher(command_type, topic, COMMAND_QOS)
        self._reset = ros.node.create_client(Trigger, 'mujoco_sim/reset')

    def connect(self) -> RobotState:
        """Wait until commands are matched and every source has spoken; return the state."""
        assert self.ros.spin_until(
            lambda: (self._commands.get_subscription_count() > 0
                     and all(self.messages.values()) and self._reset.service_is_ready()),
            START_TIMEOUT), {name: len(msgs) for name, msgs in self.messages.items()}
        # Nothing has moved yet: every message so far shows the initial state.
        return self._wait_for(self.stamp_ns(), None)

    def stamp_ns(self) -> int:
        return stamp_ns(self.messages[self._joints][-1])

    def _wait_for(self, joints_after_ns: int, counts: dict[str, int] | None) -> RobotState:
        def arrived() -> bool:
            joints = self.messages[self._joints]
            if not joints or self.stamp_ns() < joints_after_ns:
                return False
            for name, msgs in self.messages.items():
                if self._stamped[name]:
                    if stamp_ns(msgs[-1]) != self.stamp_ns():  # this very step's message
                        return False
                # An array has no stamp, but the sim sends one with every joint state: as
                # many as joint states since the count, the last of them this step's.
                elif counts is not None and \
                        len(msgs) - counts[name] < len(joints) - counts[self._joints]:
                    return False
            return True

        assert self.ros.spin_until(arrived, REPLY_TIMEOUT), \
            {name: [stamp_ns(m) for m in msgs[-2:]] if self._stamped[name] else len(msgs)
             for name, msgs in self.messages.items()}
        return self.state()

    def state(self) -> RobotState:
        samples = {name: self._readers[name](msgs[-1], float(len(msgs)))
                   for name, msgs in self.messages.items()}
        joints = samples[self._joints]
        return RobotState(joints.position, joints.velocity, joints.effort, joints.stamp,
                          samples)

    def step(self, command: np.ndarray) -> RobotState:
        """Send one command and return the state that every source reports after it."""
        counts = {name: len(msgs) for name, msgs in self.messages.items()}
        after = self.stamp_ns() + 1
        self._commands.publish(to_float64_multi_array(command))
        return self._wait_for(after, counts)

    def reset(self) -> RobotState:
        counts = {name: len(msgs) for name, msgs in self.messages.items()}
        after = self.stamp_ns() + 1
        future = self._reset.call_async(Trigger.Request())
        assert self.ros.spin_until(future.done, REPLY_TIMEOUT), 'reset service did not answer'
        assert future.result().success
        return self._wait_for(after, counts)


def robot_state(task: Task, msg: JointState) -> RobotState:
    # The agent's own conversion, so that these tests cover the path it takes.
    return joint_state_to_robot_state(msg, task.joint_names)


@pytest.fixture
def sim_client(ros_node: RosTestNode) -> SimClient:
    return SimClient(ros_node)


def test_lockstep_publishes_every_joint_and_advances_one_period_per_command(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    start_sim(ros_processes, 'model:=HalfCheetah-v5')
    first = sim_client.connect()
    assert list(first.name) == ['rootx', 'rootz', 'rooty', 'bthigh', 'bshin', 'bfoot',
                                'fthigh', 'fshin', 'ffoot']
    assert len(first.position) == len(first.velocity) == len(first.effort) == 9
    dt_ns = 50_000_000  # HalfCheetah-v5: timestep 0.01 s x frame_skip 5

    state = first
    for _ in range(5):
        reached = sim_client.step(np.full(6, 0.3), after=state)
        assert stamp_ns(reached) - stamp_ns(state) == dt_ns
        assert reached.position != state.position
        state = reached
    # /clock is another topic, so it may arrive after the state; but it must arrive.
    assert sim_client.ros.spin_until(
        lambda: bool(sim_client.clocks) and stamp_ns(sim_client.clocks[-1]) == stamp_ns(state),
        REPLY_TIMEOUT)
    # Applied efforts show in joint_states: the actuated joints feel gear x command.
    assert np.count_nonzero(state.effort) == 6

    # While no command comes the state is re-sent, but physics stands still.
    count = len(sim_client.states)
    assert sim_client.ros.spin_until(lambda: len(sim_client.states) > count, REPLY_TIMEOUT), \
        'no state re-sent while no command came'
    sim_client.ros.spin_for(0.5)
    repeats = sim_client.states[count:]
    for repeat in repeats:
        assert stamp_ns(repeat) == stamp_ns(state)
        assert list(repeat.position) == list(state.position)
    assert stamp_ns(sim_client.clocks[-1]) == stamp_ns(state)


@pytest.mark.distro
def test_reset_is_seeded_and_published_at_once(
        ros_processes: ProcessGroup, ros_node: RosTestNode) -> None:
    start_sim(ros_processes, 'seed:=7', namespace='/a')
    start_sim(ros_processes, 'seed:=7', namespace='/b')
    sims = [SimClient(ros_node, '/a'), SimClient(ros_node, '/b')]
    firsts = [sim.connect() for sim in sims]
    env = gymnasium.make('InvertedPendulum-v5').unwrapped
    task = make_task('inverted_pendulum')

    expected, _ = env.reset(seed=7)
    for first in firsts:
        np.testing.assert_array_equal(task.observation(robot_state(task, first)), expected)

    states = [sim.step([1.0], after=first) for sim, first in zip(sims, firsts)]
    for _ in range(2):
        expected, _ = env.reset()
        for i, sim in enumerate(sims):
            response = sim.reset()
            assert response.success, response.message
            # Published at once, with no command, one control period later in sim time.
            new = sim.next_state(after=states[i])
            assert stamp_ns(new) - stamp_ns(states[i]) == 40_000_000
            np.testing.assert_array_equal(task.observation(robot_state(task, new)), expected)
            states[i] = new
    env.close()


def _pendulum_controller(k: int, observation: np.ndarray) -> np.ndarray:
    # Feedback makes any divergence grow; the amplitude exceeds the +-3 ctrlrange at times,
    # so MuJoCo's clamping is exercised too.
    return np.array([2.5 * np.sin(0.2 * k) + 6.0 * observation[1] + 0.5 * observation[3]])


def _cheetah_controller(k: int, observation: np.ndarray) -> np.ndarray:
    phases = np.arange(6)
    return 1.2 * np.sin(0.3 * k + phases) - 0.1 * observation[2:8]


@pytest.mark.parametrize('env_id, task_name, controller', [
    ('InvertedPendulum-v5', 'inverted_pendulum', _pendulum_controller),
    ('HalfCheetah-v5', 'half_cheetah', _cheetah_controller),
])
def test_lockstep_reproduces_gymnasium(
        ros_processes: ProcessGroup, sim_client: SimClient, env_id: str, task_name: str,
        controller: Callable[[int, np.ndarray], np.ndarray]) -> None:
    seed = 11
    start_sim(ros_processes, f'model:={env_id}', f'seed:={seed}')
    env = gymnasium.make(env_id).unwrapped
    task = make_task(task_name)
    expected, _ = env.reset(seed=seed)
    msg = sim_client.connect()
    state = robot_state(task, msg)
    np.testing.assert_allclose(task.observation(state), expected, rtol=0, atol=1e-9)

    steps = 0
    for episode_steps in (120, 60):
        for k in range(episode_steps):
            action = controller(k, task.observation(state))
            msg = sim_client.step(action, after=msg)
            reached = robot_state(task, msg)
            expected, reward, terminated, _, _ = env.step(action)
            observation = task.observation(reached)
            np.testing.assert_allclose(observation, expected, rtol=0, atol=1e-9,
                                       err_msg=f'step {steps}')
            assert abs(task.reward(state, action, reached) - reward) <= 1e-9, f'step {steps}'
            assert task.terminated(reached) == terminated, f'step {steps}'
            state = reached
            steps += 1
        # The next episode starts where Gymnasium's next reset() does.
        assert sim_client.reset().success
        msg = sim_client.next_state(after=msg)
        state = robot_state(task, msg)
        expected, _ = env.reset()
        np.testing.assert_allclose(task.observation(state), expected, rtol=0, atol=1e-9)
    env.close()


def test_a_randomized_lockstep_sim_publishes_what_the_randomized_env_observes(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    # The sim node and ddpg-train's wrapper share one randomization model: the same seed and
    # commands give the same measurements, latency, pushes and dynamics through ROS as well.
    from ddpg_ros.sim.envs import make_env

    seed = 4
    start_sim(ros_processes, f'seed:={seed}', 'randomize:=hard')
    env = make_env('InvertedPendulum-v5', randomize='hard')
    task = make_task('inverted_pendulum')
    expected, _ = env.reset(seed=seed)
    msg = sim_client.connect()
    rng = np.random.default_rng(0)
    for step in range(60):
        np.testing.assert_array_equal(task.observation(robot_state(task, msg)), expected,
                                      err_msg=f'step {step}')
        action = rng.uniform(-0.3, 0.3, size=1)
        msg = sim_client.step(action, after=msg)
        expected, _, terminated, _, _ = env.step(action)
        if terminated:
            break
    assert step > 10
    env.close()


def _with_unit_quaternion(observation: np.ndarray) -> np.ndarray:
    """
    Return Ant-v5's reset observation with its torso quaternion (entries 1-4) normalised.

    Gymnasium's reset noise is added to the quaternion in qpos too, so the first observation
    of an episode holds one of norm about 1.04; the physics normalises it before using it,
    and odometry can only carry a unit quaternion. Every later observation is unaffected.
    """
    observation = observation.copy()
    observation[1:5] /= np.linalg.norm(observation[1:5])
    return observation


def _ant_controller(k: int, observation: np.ndarray) -> np.ndarray:
    # A gait-like sinusoid with feedback on the joint angles (observation[5:13]); its
    # amplitude leaves the +-1 control range at times, so MuJoCo's clamping is exercised.
    return 0.8 * np.sin(0.25 * k + np.arange(8) * np.pi / 4) - 0.5 * observation[5:13]


@pytest.mark.distro
def test_lockstep_reproduces_gymnasium_ant_from_joint_states_odom_and_contact_forces(
        ros_processes: ProcessGroup, ros_node: RosTestNode) -> None:
    """
    A floating base through DDS: Ant-v5's observations to 1e-9, its rewards at every step.

    The task reads joint_states, odom, root_pose and contact_forces as the agent does, so
    every message of a step must carry that step's values and stamp.
    """
    seed = 3
    start_sim(ros_processes, 'model:=Ant-v5', f'seed:={seed}')
    env = gymnasium.make('Ant-v5').unwrapped
    task = make_task('ant')
    client = TaskClient(ros_node, task)
    expected, _ = env.reset(seed=seed)
    state = client.connect()
    np.testing.assert_allclose(task.observation(state), _with_unit_quaternion(expected),
                               rtol=0, atol=1e-9)
    errors = {'observation': 0.0, 'reward': 0.0}
    odom = state.sources['odom']
    assert (odom.frame_id, odom.child_frame_id) == ('odom', 'torso')

    steps = 0
    for episode_steps in (150, 60):
        for k in range(episode_steps):
            action = _ant_controller(k, task.observation(state))
            reached = client.step(action)
            assert reached.stamp - state.stamp == pytest.approx(0.05, abs=1e-9)
            expected, reward, terminated, _, _ = env.step(action)
            observation = task.observation(reached)
            np.testing.assert_allclose(observation, expected, rtol=0, atol=1e-9,
                                       err_msg=f'step {steps}')
            errors['observation'] = max(errors['observation'],
                                        float(np.max(np.abs(observation - expected))))
            errors['reward'] = max(errors['reward'],
                                   abs(task.reward(state, action, reached) - reward))
            assert task.terminated(reached) == terminated, f'step {steps}'
            state = reached
            steps += 1
            if terminated:
                break
        state = client.reset()
        expected, _ = env.reset()
        np.testing.assert_allclose(task.observation(state), _with_unit_quaternion(expected),
                                   rtol=0, atol=1e-9)
    env.close()
    print(f'Ant-v5 through DDS, {steps} steps: max |observation error| '
          f'{errors["observation"]:.3g}, max |reward error| {errors["reward"]:.3g}')
    assert errors['reward'] <= 1e-9
    assert steps >= 150


def test_bad_commands_are_rejected_and_reported(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    sim = start_sim(ros_processes)
    first = sim_client.connect()
    for bad in ([], [1.0, 2.0], [float('nan')], [float('inf')]):
        sim_client.send(bad)
    assert sim_client.ros.spin_until(
        lambda: sim_client.latest_status().get('commands_rejected') == '4', 5.0), \
        sim_client.latest_status()
    status = sim_client.latest_status()
    assert status['level'] == 1  # WARN
    assert status['mode'] == 'lockstep'
    assert status['steps'] == '0'
    assert 'command rejected' in sim.output()
    assert sim.popen.poll() is None

    # Nothing moved, and a good command still works: exactly one period after the start.
    reached = sim_client.step([0.5], after=first)
    assert stamp_ns(reached) - stamp_ns(first) == 40_000_000


FUZZ_ROUNDS = 3000
EXTREMES = (np.nan, np.inf, -np.inf)
"""Values that make a command unusable; 1e308 is finite, so it is clipped, not refused."""


def _fuzzed_bad_command(rng: np.random.Generator, actuators: int) -> list[float]:
    """Return a command the sim must refuse: a wrong length, or a NaN or infinity in it."""
    if rng.random() < 0.5:
        length = int(rng.choice([0, 1, actuators - 1, actuators + 1, 2 * actuators, 64, 4096]))
        values = rng.normal(0.0, 1e3, length)
        values[rng.random(length) < 0.2] = rng.choice(EXTREMES + (1e308, -1e308))
        return values.tolist()
    values = rng.uniform(-1.0, 1.0, actuators)
    values[rng.random(actuators) < 0.5] = 1e308  # large but finite values beside the bad one
    values[rng.integers(actuators)] = rng.choice(EXTREMES)
    return values.tolist()


def _fuzzed_good_command(rng: np.random.Generator, actuators: int) -> np.ndarray:
    """Return a usable command, sometimes far outside the control range (the sim clips those)."""
    values = rng.uniform(-1.5, 1.5, actuators)
    wild = rng.random(actuators) < 0.1
    values[wild] = rng.choice([1e308, -1e308, 1e300, -5e-324], size=int(wild.sum()))
    return values


def test_fuzzed_commands_leave_the_simulation_exactly_as_the_good_ones_alone_would(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    """
    Thousands of malformed commands between good ones leave the sim as the good ones would.

    The sim stays up, refuses and counts every bad one, and its trajectory is Gymnasium's
    under the good commands alone, to 1e-9, so no bad command moved the robot or corrupted
    its state.
    """
    seed = 5
    sim = start_sim(ros_processes, 'model:=HalfCheetah-v5', f'seed:={seed}')
    env = gymnasium.make('HalfCheetah-v5').unwrapped
    task = make_task('half_cheetah')
    actuators = len(task.action_names)
    expected, _ = env.reset(seed=seed)
    msg = sim_client.connect()
    rng = np.random.default_rng(2024)
    bad_sent = 0
    for step in range(FUZZ_ROUNDS):
        for _ in range(int(rng.integers(0, 4))):
            sim_client.send(_fuzzed_bad_command(rng, actuators))
            bad_sent += 1
        command = _fuzzed_good_command(rng, actuators)
        msg = sim_client.step(command, after=msg)
        observation = task.observation(robot_state(task, msg))
        assert np.isfinite(observation).all(), f'step {step}'
        # MuJoCo clamps Gymnasium's action to the control range, as the sim does.
        expected, _, _, _, _ = env.step(command)
        np.testing.assert_allclose(observation, expected, rtol=0, atol=1e-9,
                                   err_msg=f'step {step}')
    env.close()
    print(f'{FUZZ_ROUNDS} good commands, {bad_sent} malformed ones between them')
    assert bad_sent > 4000
    assert sim_client.ros.spin_until(
        lambda: sim_client.latest_status().get('commands_rejected') == str(bad_sent), 5.0), \
        (bad_sent, sim_client.latest_status())
    status = sim_client.latest_status()
    assert status['steps'] == str(FUZZ_ROUNDS)
    assert status['commands_received'] == str(FUZZ_ROUNDS + bad_sent)
    assert sim.popen.poll() is None
    assert 'Traceback' not in sim.output()


def test_realtime_steps_at_control_rate_and_zeroes_after_timeout(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    timeout = 0.4
    start_sim(ros_processes, 'mode:=realtime', f'command_timeout:={timeout}')
    sim_client.connect()
    dt = 0.04

    # The rate is the wall clock's, by the sim's own account; every state one tick after the
    # one before.
    count = len(sim_client.states)
    assert sim_client.assert_kept_pace(dt, 40_000_000).made >= 2
    steps = np.diff([stamp_ns(msg) for msg in sim_client.states[count:]])
    assert steps.size and set(steps.tolist()) == {40_000_000}

    # One command, then silence: held for command_timeout of sim time, then zero.
    count = len(sim_client.states)
    sim_client.send([1.0])

    def efforts() -> list[float]:
        return [msg.effort[0] for msg in sim_client.states[count:]]

    # gear 100 x command 1.0, then zero after it
    assert sim_client.ros.spin_until(
        lambda: 100.0 in efforts() and efforts()[-1] == 0.0 and efforts()[-2] == 0.0,
        START_TIMEOUT), efforts()
    received = sim_client.states[count:]
    slider_efforts = efforts()
    held = [effort for effort in slider_efforts if effort != 0.0]
    assert set(held) == {100.0}
    first_held = slider_efforts.index(100.0)
    last_held = len(slider_efforts) - 1 - slider_efforts[::-1].index(100.0)
    assert slider_efforts[first_held:last_held + 1] == held  # held without a gap
    # Sim time counts the timeout, so a stall of either process does not change how long:
    # from the first state after the command to the last check within command_timeout.
    held_ns = stamp_ns(received[last_held]) - stamp_ns(received[first_held])
    assert held_ns == round(timeout * 1e9), held_ns
    assert sim_client.ros.spin_until(
        lambda: sim_client.latest_status().get('command_timeouts') == '1', START_TIMEOUT)


def test_a_starved_realtime_sim_skips_the_ticks_it_missed_and_says_so(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    sim = start_sim(ros_processes, 'mode:=realtime')
    sim_client.connect()
    dt, stall = 0.04, 0.6

    def starve() -> None:  # the sim process gets no CPU for a while
        sim.popen.send_signal(signal.SIGSTOP)
        time.sleep(stall)
        sim.popen.send_signal(signal.SIGCONT)

    count = len(sim_client.states)
    pace = sim_client.assert_kept_pace(dt, 40_000_000, span=2.5, meanwhile=starve)
    # rcl fired once when the sim woke, and the periods it missed are skipped, not made up
    # in a burst: sim time fell behind the wall clock by them.
    assert pace.skipped >= round(stall / dt) - 1, pace
    steps = np.diff([stamp_ns(msg) for msg in sim_client.states[count:]])
    assert set(steps.tolist()) == {40_000_000}
    warned = [status for status in sim_client.statuses() if 'skipped' in status['message']]
    assert warned and warned[0]['level'] == 1, sim_client.statuses()[-3:]
    assert warned[0]['message'].startswith('behind the wall clock: skipped ')
    assert sim.popen.poll() is None


def _run_lengths(values: list) -> list[tuple]:
    """Return ``(value, count)`` for every run of equal consecutive values."""
    runs: list[list] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return [tuple(run) for run in runs]


def test_realtime_publishes_states_at_state_rate_while_commands_act_at_the_control_rate(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    # HalfCheetah-v5: 0.01 s physics steps, 0.05 s control period: 100 Hz is 5x the control rate.
    state_rate, control_period = 100.0, 0.05
    start_sim(ros_processes, 'model:=HalfCheetah-v5', 'mode:=realtime',
              f'state_rate:={state_rate}', 'command_timeout:=2.0')
    sim_client.connect()
    count = len(sim_client.states)
    assert sim_client.assert_kept_pace(1.0 / state_rate, 10_000_000).made >= 2
    received = sim_client.states[count:]
    # Every state one tick of 10 ms after the last; a subscriber that stalls on this loaded
    # machine may miss some (its queue is only so deep), never see one off the tick.
    gaps = np.diff([stamp_ns(msg) for msg in received])
    assert np.all(gaps % 10_000_000 == 0) and np.all(gaps > 0), gaps
    assert np.mean(gaps == 10_000_000) >= 0.9, gaps

    # An agent acting at the control rate: each command is applied from the next state on
    # and held, about state_rate x control_period states, until the next one comes.
    gear = Simulation('HalfCheetah-v5').model.actuator_gear[:, 0]
    commands = [np.full(6, value) for value in (0.2, -0.4, 0.6, -0.8, 1.0, -0.2, 0.4, -0.6)]
    count = len(sim_client.states)
    for command in commands:
        sim_client.send(command)
        sim_client.ros.spin_for(control_period)
    # The last command is never overwritten: wait until a state shows it, and a few more.
    last = tuple(gear * commands[-1])
    assert sim_client.ros.spin_until(
        lambda: [tuple(msg.effort[3:]) for msg in sim_client.states[-5:]] == [last] * 5,
        START_TIMEOUT)
    efforts = [tuple(msg.effort[3:]) for msg in sim_client.states[count:]]
    runs = _run_lengths(efforts)
    commanded = [tuple(gear * command) for command in commands]
    applied = [(effort, length) for effort, length in runs if effort in commanded]
    # In order, each once. A command that came within the same tick as the next one (a stall
    # of this loaded machine) is overwritten before a state shows it: at most two of eight.
    order = [commanded.index(effort) for effort, _ in applied]
    assert order == sorted(set(order)) and len(order) >= len(commanded) - 2, runs
    held = [length for _, length in applied[:-1]]  # the last one is held to the end
    assert 2.0 <= np.median(held) <= 8.0, held  # 5 states per command on time
    assert all(effort in commanded or effort == (0.0,) * 6 for effort, _ in runs), runs


@pytest.mark.distro
def test_realtime_factor_runs_sim_time_faster_and_sim_time_timers_follow(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    factor = 2.0
    start_sim(ros_processes, 'mode:=realtime', f'real_time_factor:={factor}')
    # An agent on use_sim_time with a ROS-time timer, as ddpg_agent's control_rate timer is.
    agent = rclpy.create_node('sim_time_agent', context=sim_client.ros.context,
                              parameter_overrides=[Parameter('use_sim_time', value=True)])
    sim_client.ros.executor.add_node(agent)
    ticks: list[int] = []
    agent.create_timer(0.1, lambda: ticks.append(agent.get_clock().now().nanoseconds))
    # The same period on the wall clock, beside it: what this process's lateness costs both.
    wall_ticks: list[float] = []
    agent.create_timer(0.1, lambda: wall_ticks.append(time.monotonic()),
                       clock=RosClock(clock_type=ClockType.STEADY_TIME))
    sim_client.connect()
    assert sim_client.ros.spin_until(lambda: len(ticks) >= 2, START_TIMEOUT)

    clock_start, ticks_start, wall_start = (stamp_ns(sim_client.clocks[-1]), len(ticks),
                                            len(wall_ticks))
    # Sim time runs at the factor, by the sim's own account: ticks of 40 ms of sim time every
    # 20 ms of wall time, made or (on a loaded machine) reported skipped. Never faster.
    pace = sim_client.assert_kept_pace(0.04 / factor, 40_000_000, span=3.0)
    sim_seconds = (stamp_ns(sim_client.clocks[-1]) - clock_start) * 1e-9
    # The sim-time timer fires once per 0.1 s of sim time: never more often than sim time
    # allows, and about as many times as often as the wall-time timer beside it as sim time
    # ran faster (the factor, less what the sim skipped). rcl skips periods of both alike
    # when this process's executor comes late.
    fired, fired_wall = len(ticks) - ticks_start, len(wall_ticks) - wall_start
    assert fired <= sim_seconds / 0.1 + 2, (fired, sim_seconds)
    achieved = factor * pace.made / (pace.made + pace.skipped)
    assert fired >= 0.75 * achieved * fired_wall - 2, (fired, fired_wall, pace)
    assert set(np.diff([stamp_ns(msg) for msg in sim_client.states[-20:]]).tolist()) == {
        40_000_000}
    sim_client.ros.executor.remove_node(agent)
    agent.destroy_node()


ARM_MJCF = '''
<mujoco>
  <option timestep="0.005"/>
  <worldbody>
    <body name="upper_arm" pos="0 0 1">
      <joint name="shoulder" type="hinge" axis="0 1 0" damping="0.5"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" mass="0.5"/>
      <site name="marker" pos="0.1 0 0"/>
      <site name="imu_board" pos="0.3 0 0"/>
      <body pos="0.3 0 0">
        <joint name="elbow" type="hinge" axis="0 1 0" damping="0.2"/>
        <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.02" mass="0.2"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position name="shoulder" joint="shoulder" kp="100" kv="5"/>
    <position name="elbow" joint="elbow" kp="40"/>
  </actuator>
  <sensor>
    <framequat objtype="site" objname="imu_board"/>
    <gyro site="imu_board"/>
    <accelerometer site="imu_board"/>
  </sensor>
</mujoco>
'''


def _xyzw(q) -> list[float]:
    return [q.x, q.y, q.z, q.w]


def _xyz(v) -> list[float]:
    return [v.x, v.y, v.z]


@pytest.mark.distro
def test_position_servos_take_position_commands_and_the_imu_reads_mujoco_sensors(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path) -> None:
    path = tmp_path / 'arm.xml'
    path.write_text(ARM_MJCF)
    start_sim(ros_processes, f'model:={path}', 'frame_skip:=4')
    replica = Simulation(str(path), frame_skip=4)  # the same physics, stepped here
    node = ros_node.node
    states: list[JointState] = []
    imus: list[Imu] = []
    node.create_subscription(JointState, 'joint_states', states.append, STATE_QOS)
    node.create_subscription(Imu, 'imu', imus.append, STATE_QOS)
    commands = node.create_publisher(Float64MultiArray, 'position_controller/commands',
                                     COMMAND_QOS)
    subscribed: dict[str, list[str]] = {}

    def ready() -> bool:
        # The sim's own list of subscriptions arrives in a graph update of its own.
        if not (commands.get_subscription_count() > 0 and states and imus
                and ('mujoco_sim', '/') in node.get_node_names_and_namespaces()):
            return False
        subscribed.update(node.get_subscriber_names_and_types_by_node('mujoco_sim', '/'))
        return '/position_controller/commands' in subscribed

    assert ros_node.spin_until(ready, START_TIMEOUT), subscribed
    assert '/effort_controller/commands' not in subscribed

    def sensor(index: int) -> np.ndarray:
        address, size = replica.model.sensor_adr[index], replica.model.sensor_dim[index]
        return replica.data.sensordata[address:address + size]

    target = np.array([0.4, -0.3])
    for k in range(60):
        command = target if k >= 20 else target * np.sin(0.2 * k)
        after = stamp_ns(states[-1])
        commands.publish(to_float64_multi_array(command))
        replica.step(command)
        assert ros_node.spin_until(
            lambda: stamp_ns(states[-1]) > after and stamp_ns(imus[-1]) == stamp_ns(states[-1]),
            REPLY_TIMEOUT), k
        imu, state = imus[-1], states[-1]
        quaternion = sensor(0)  # MuJoCo orders it (w, x, y, z)
        np.testing.assert_array_equal(_xyzw(imu.orientation), [*quaternion[1:], quaternion[0]])
        np.testing.assert_array_equal(_xyz(imu.angular_velocity), sensor(1))
        np.testing.assert_array_equal(_xyz(imu.linear_acceleration), sensor(2))
        np.testing.assert_array_equal(state.position, replica.joint_positions())
    assert imu.header.frame_id == 'imu_board'
    assert not any(imu.orientation_covariance) and not any(imu.linear_acceleration_covariance)
    # The servos hold the commanded angles (gravity sags them a little).
    np.testing.assert_allclose(state.position, target, atol=0.05)
    assert np.linalg.norm(_xyz(imu.linear_acceleration)) == pytest.approx(9.81, abs=0.1)


WHEELS_MJCF = '''
<mujoco>
  <option timestep="0.005" integrator="implicitfast"/>
  <default>
    <velocity kv="0.05" ctrlrange="-20 20" forcerange="-0.6 0.6"/>
  </default>
  <worldbody>
    <geom type="plane" size="0 0 0.05"/>
    <body name="chassis" pos="0 0 0.05">
      <freejoint/>
      <geom type="box" size="0.1 0.07 0.02" pos="0 0 0.03" mass="1"/>
      <geom type="sphere" size="0.02" pos="0.08 0 -0.025" mass="0.01" friction="0.1"/>
      <geom type="sphere" size="0.02" pos="-0.08 0 -0.025" mass="0.01" friction="0.1"/>
      <site name="imu"/>
      <body name="left_wheel" pos="0 0.09 0">
        <joint name="left_wheel" type="hinge" axis="0 1 0"/>
        <geom type="cylinder" size="0.05 0.01" euler="1.5708 0 0" mass="0.1"/>
      </body>
      <body name="right_wheel" pos="0 -0.09 0">
        <joint name="right_wheel" type="hinge" axis="0 1 0"/>
        <geom type="cylinder" size="0.05 0.01" euler="1.5708 0 0" mass="0.1"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <velocity name="left_wheel" joint="left_wheel"/>
    <velocity name="right_wheel" joint="right_wheel"/>
  </actuator>
  <sensor>
    <framequat objtype="site" objname="imu"/>
    <gyro site="imu"/>
    <accelerometer site="imu"/>
  </sensor>
</mujoco>
'''
"""A two-wheeled robot on casters: a free root body, velocity-driven wheels, an IMU."""


class _WheelsTask(Task):
    """Read what a wheeled robot publishes; command wheel speeds (nothing to learn)."""

    name = 'wheels'
    joint_names = ('left_wheel', 'right_wheel')
    observation_names = ()
    action_names = joint_names
    action_low, action_high = np.full(2, -20.0), np.full(2, 20.0)
    control_dt = 0.02
    max_episode_steps = 100
    sources = (Source('joint_states', 'joint_state'), Source('imu', 'imu'),
               Source('odom', 'odometry', frame_id='odom', child_frame_id='chassis'))
    command_interface = 'velocity'

    def observation(self, state: RobotState) -> np.ndarray:
        return np.zeros(0)

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        return 0.0


@pytest.mark.distro
def test_velocity_servos_take_velocity_commands_with_odom_and_imu_of_each_step(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path) -> None:
    path = tmp_path / 'wheels.xml'
    path.write_text(WHEELS_MJCF)
    start_sim(ros_processes, f'model:={path}', 'frame_skip:=4')
    client = TaskClient(ros_node, _WheelsTask())
    replica = Simulation(str(path), frame_skip=4)
    start = client.connect().sources['odom'].position
    for k in range(40):
        command = np.array([8.0, 8.0]) if k < 20 else np.array([-6.0, 6.0])
        state = client.step(command)
        replica.step(command)
        # Every source of this step, read as the agent reads it, is MuJoCo's state exactly.
        expected = replica.sensors.samples(replica.data, state.stamp)
        odom = state.sources['odom']
        for field in ('position', 'orientation', 'linear_velocity', 'angular_velocity'):
            np.testing.assert_array_equal(getattr(odom, field),
                                          getattr(expected['odom'], field), err_msg=field)
        for field in ('orientation', 'angular_velocity', 'linear_acceleration'):
            np.testing.assert_array_equal(getattr(state.sources['imu'], field),
                                          getattr(expected['imu'], field), err_msg=field)
        np.testing.assert_array_equal(state.velocity, replica.joint_velocities())
        if k == 19:
            # The servos hold both wheels at the commanded speed.
            np.testing.assert_allclose(state.velocity, [8.0, 8.0], atol=0.5)
    np.testing.assert_allclose(state.velocity, [-6.0, 6.0], atol=0.5)
    assert np.linalg.norm(state.sources['odom'].position - start) > 0.01  # it moved


def test_sensor_messages_read_back_as_the_samples_they_were_built_from(tmp_path) -> None:
    sim = Simulation('Ant-v5', seed=2)
    for _ in range(20):  # it starts in the air: let it land
        sim.step(np.full(8, 0.5))
    samples = sim.sensors.samples(sim.data, 1.25)
    task = make_task('ant')
    stamp = stamp_message(1_250_000_000)
    readers = {source.name: sample_reader(source, task) for source in task.sources}
    odom = readers['odom'](odometry_message(samples['odom'], stamp), 0.0)
    pose = readers['root_pose'](pose_message(samples['root_pose'], stamp), 0.0)
    forces = readers['contact_forces'](array_message(samples['contact_forces'], stamp), 7.0)
    for field in ('position', 'orientation', 'linear_velocity', 'angular_velocity'):
        np.testing.assert_array_equal(getattr(odom, field), getattr(samples['odom'], field))
    assert (odom.frame_id, odom.child_frame_id, odom.stamp) == ('odom', 'torso', 1.25)
    np.testing.assert_array_equal(pose.position, samples['root_pose'].position)
    np.testing.assert_array_equal(pose.orientation, samples['root_pose'].orientation)
    np.testing.assert_array_equal(forces.values, samples['contact_forces'].values)
    assert np.any(forces.values != 0.0)  # the ant stands on the floor

    path = tmp_path / 'wheels.xml'
    path.write_text(WHEELS_MJCF)
    wheels = Simulation(str(path))
    imu_sample = wheels.sensors.samples(wheels.data, 0.5)['imu']
    msg = imu_message(imu_sample, stamp_message(500_000_000), 'imu')
    read = sample_reader(Source('imu', 'imu'), task)(msg, 0.0)
    for field in ('orientation', 'angular_velocity', 'linear_acceleration'):
        np.testing.assert_array_equal(getattr(read, field), getattr(imu_sample, field))
    assert (msg.header.frame_id, read.stamp) == ('imu', 0.5)


@pytest.mark.distro
def test_graph_names_and_types_in_a_namespace(
        ros_processes: ProcessGroup, ros_node: RosTestNode) -> None:
    start_sim(ros_processes, namespace='/robot1')
    start_sim(ros_processes, 'publish_clock:=false', namespace='/robot2')
    node = ros_node.node
    expected_topics = {
        '/robot1/joint_states': ['sensor_msgs/msg/JointState'],
        '/robot1/effort_controller/commands': ['std_msgs/msg/Float64MultiArray'],
        '/clock': ['rosgraph_msgs/msg/Clock'],
        '/diagnostics': ['diagnostic_msgs/msg/DiagnosticArray'],
        '/robot2/joint_states': ['sensor_msgs/msg/JointState'],
    }
    expected_services = {
        '/robot1/mujoco_sim/reset': ['std_srvs/srv/Trigger'],
        '/robot2/mujoco_sim/reset': ['std_srvs/srv/Trigger'],
    }

    def graph_complete() -> bool:
        topics = dict(node.get_topic_names_and_types())
        services = dict(node.get_service_names_and_types())
        nodes = node.get_node_names_and_namespaces()
        return (all(topics.get(name) == types for name, types in expected_topics.items())
                and all(services.get(name) == types
                        for name, types in expected_services.items())
                and ('mujoco_sim', '/robot1') in nodes and ('mujoco_sim', '/robot2') in nodes)

    def by_node(robot: str) -> tuple[dict, dict]:
        return (dict(node.get_publisher_names_and_types_by_node('mujoco_sim', robot)),
                dict(node.get_subscriber_names_and_types_by_node('mujoco_sim', robot)))

    def endpoints_known() -> bool:
        # Which node owns an endpoint reaches the graph in updates of its own, after the topics
        # and the node's name. Each update lists all of a node's endpoints so far: once the
        # command subscription, the sim's last, is listed, so are its publishers.
        return all(f'{robot}/effort_controller/commands' in by_node(robot)[1]
                   for robot in ('/robot1', '/robot2'))

    assert ros_node.spin_until(lambda: graph_complete() and endpoints_known(), START_TIMEOUT), (
        node.get_topic_names_and_types(), node.get_service_names_and_types(),
        node.get_node_names_and_namespaces(), by_node('/robot1'), by_node('/robot2'))
    published, _ = by_node('/robot2')
    assert '/clock' in by_node('/robot1')[0] and '/clock' not in published
    _, subscribed = by_node('/robot1')
    assert subscribed['/robot1/effort_controller/commands'] == ['std_msgs/msg/Float64MultiArray']


def test_launch_profiles_know_every_sim_parameter() -> None:
    # They route name:=value arguments by these names, without importing rclpy.
    assert MUJOCO_SIM_PARAMETERS == tuple(
        setting.name for setting in fields(SimSettings) + fields(RenderSettings))


@pytest.mark.parametrize('param, message', [
    ('model:=NoSuchRobot-v0', "unknown model 'NoSuchRobot-v0'"),
    ('model:=/no/such/robot.xml', 'MJCF file not found'),
    ('mode:=fast', 'mode must be one of lockstep, realtime'),
    ('command_timeout:=0.0', 'command_timeout must be > 0'),
    ('seed:=-1', 'seed must be >= 0'),
    ('image_rate:=-1.0', 'image_rate must be >= 0 Hz (0 = no pictures), got -1.0'),
    ('image_rate:=.nan', 'image_rate must be >= 0 Hz (0 = no pictures), got nan'),
    ('image_width:=0', 'image_width must be 1..4096 pixels, got 0'),
    ('image_height:=-5', 'image_height must be 1..4096 pixels, got -5'),
    ('camera:=overhead', "camera 'overhead' is not in the model (its cameras: none"),
    ('mode:=realtime state_rate:=-1.0', 'state_rate must be >= 0 Hz'),
    ('mode:=realtime real_time_factor:=0.0', 'real_time_factor must be > 0, got 0.0'),
    ('mode:=realtime real_time_factor:=.inf', 'real_time_factor must be > 0, got inf'),
    ('state_rate:=100.0', 'state_rate applies to mode realtime only'),
    ('real_time_factor:=2.0', 'real_time_factor applies to mode realtime only'),
    ('mode:=realtime state_rate:=500.0', 'state_rate 500 Hz is above the physics rate 50 Hz'),
    ('imu_site:=nowhere', "imu_site 'nowhere': the model has no site 'nowhere'"),
    ('randomize:=hardest', "unknown randomization profile 'hardest'"),
    ('reset_noise:=-0.5', 'reset_noise must be >= 0, got -0.5'),
])
def test_bad_parameters_exit_nonzero_with_a_clear_error(
        ros_processes: ProcessGroup, param: str, message: str) -> None:
    sim = start_sim(ros_processes, *param.split())
    assert sim.wait(START_TIMEOUT) == 1
    lines = [line for line in sim.output().splitlines() if 'cannot start' in line]
    assert len(lines) == 1 and message in lines[0], sim.output()


def test_a_model_mixing_command_interfaces_is_refused_naming_its_actuators(
        ros_processes: ProcessGroup, tmp_path) -> None:
    path = tmp_path / 'mixed.xml'
    path.write_text(ARM_MJCF.replace('<position name="elbow" joint="elbow" kp="40"/>',
                                     '<motor name="elbow" joint="elbow"/>'))
    sim = start_sim(ros_processes, f'model:={path}')
    assert sim.wait(START_TIMEOUT) == 1
    lines = [line for line in sim.output().splitlines() if 'cannot start' in line]
    assert len(lines) == 1, sim.output()
    assert ("the model mixes command interfaces (position: ['shoulder']; effort: ['elbow'])"
            in lines[0])


@pytest.mark.distro
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_node_cleanly(
        ros_processes: ProcessGroup, sim_client: SimClient, sig: int) -> None:
    # Rendering too: its thread must not keep the process alive or fail loudly at the end.
    sim = start_sim(ros_processes, 'mode:=realtime', 'image_rate:=20.0')
    sim_client.connect()
    started = time.monotonic()
    assert sim.stop(sig) == 0, sim.output()
    assert time.monotonic() - started < 5.0
    assert 'Traceback' not in sim.output()


def _headless_env(env: dict[str, str]) -> dict[str, str]:
    """
    Return ``env`` without a display or a chosen OpenGL backend.

    The node must then choose a backend itself, as for a user on a headless machine.
    """
    return {key: value for key, value in env.items()
            if key not in ('MUJOCO_GL', 'PYOPENGL_PLATFORM', 'DISPLAY', 'WAYLAND_DISPLAY')}


def _pixels(msg: Image) -> np.ndarray:
    return np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)


@pytest.mark.distro
def test_realtime_publishes_images_at_image_rate_and_keeps_its_own_pace(
        ros_processes: ProcessGroup, sim_client: SimClient, tmp_path) -> None:
    rate, window, dt = 5.0, 4.0, 0.05  # HalfCheetah-v5: a 0.05 s control period
    sim = start_sim(ros_processes, 'model:=HalfCheetah-v5', 'mode:=realtime',
                    f'image_rate:={rate}', cwd=tmp_path,
                    env=_headless_env(ros_processes.env))
    sim_client.connect()
    # Nobody subscribes yet: after a second and a half of sim time, nothing has been rendered.
    assert sim_client.ros.spin_until(
        lambda: float(sim_client.latest_status().get('sim_time', 0.0)) >= 1.5, START_TIMEOUT)
    assert sim_client.latest_status()['images'] == '0', sim_client.latest_status()

    images: list[Image] = []
    sim_client.ros.node.create_subscription(Image, 'mujoco_sim/image', images.append,
                                            IMAGE_QOS)
    assert sim_client.ros.spin_until(lambda: bool(images), START_TIMEOUT), sim.output()

    count = len(images)
    pace = sim_client.assert_kept_pace(dt, 50_000_000, span=window)
    received = images[count:]
    assert received
    # By the sim's own account, on its clock: pictures at their rate (the render thread skips
    # those it is late for, so a generous band on this loaded machine), and the ticks at
    # theirs, held up by the pictures no more than a stall of the machine would.
    rendered = int(pace.last['images']) - int(pace.first['images'])
    assert 0.5 * rate * pace.seconds <= rendered <= 1.5 * rate * pace.seconds + 1, \
        (rendered, pace)
    assert pace.made >= 0.6 * (pace.made + pace.skipped), pace
    for msg in received:
        assert (msg.width, msg.height, msg.step) == (320, 240, 960)
        assert msg.encoding == 'rgb8' and len(msg.data) == 320 * 240 * 3
        assert msg.header.frame_id == 'tracking_camera'
        assert stamp_ns(msg) % 50_000_000 == 0  # sim time: a whole number of periods
    stamps = [stamp_ns(msg) for msg in received]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    colours = np.unique(_pixels(received[-1]).reshape(-1, 3), axis=0)
    assert len(colours) > 50, 'the picture is (nearly) one colour'
    assert int(sim_client.latest_status()['images']) >= len(received) - 2 * rate  # reported

    # MuJoCo's warning about HalfCheetah's model went to the node's log, once; no file.
    assert sim.output().count("compiler attribute 'settotalmass' is deprecated") == 1
    assert 'MuJoCo warning: ' in sim.output()
    assert not (tmp_path / 'MUJOCO_LOG.TXT').exists()


def test_lockstep_steps_go_on_while_images_show_the_states(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    start_sim(ros_processes, 'model:=HalfCheetah-v5', 'image_rate:=10.0', 'camera:=track',
              'image_width:=160', 'image_height:=120')
    images: list[Image] = []
    sim_client.ros.node.create_subscription(Image, 'mujoco_sim/image', images.append,
                                            IMAGE_QOS)
    state = sim_client.connect()
    assert sim_client.ros.spin_until(lambda: bool(images), START_TIMEOUT)

    def enough_pictures() -> bool:
        return len(images) - count >= 10 and len({stamp_ns(m) for m in images[count:]}) > 5

    # Step for 3 s, and on until ten pictures of moving states came (a stalled machine
    # delays them; it cannot make the sim draw them when the robot stands still).
    count, steps, in_3_s, started = len(images), 0, 0, time.monotonic()
    while time.monotonic() - started < 3.0 or not enough_pictures():
        assert time.monotonic() - started < 30.0, (steps, len(images) - count)
        state = sim_client.step(np.sin(np.arange(6) + 0.3 * steps), after=state)
        steps += 1
        if time.monotonic() - started < 3.0:
            in_3_s = steps
    assert in_3_s > 100, in_3_s  # acting was not held up by the pictures
    received = images[count:]
    state_stamps = {stamp_ns(msg) for msg in sim_client.states}
    for msg in received:
        assert (msg.width, msg.height, msg.step, msg.encoding) == (160, 120, 480, 'rgb8')
        assert msg.header.frame_id == 'track'
        # Each picture shows a state the sim published, stamped as that state was.
        assert stamp_ns(msg) in state_stamps
    assert len({stamp_ns(msg) for msg in received}) > 5  # they follow the robot as it moves


def test_viewer_without_a_display_is_refused_in_one_line_and_the_sim_runs(
        ros_processes: ProcessGroup, sim_client: SimClient) -> None:
    sim = start_sim(ros_processes, 'viewer:=true', env=_headless_env(ros_processes.env))
    first = sim_client.connect()
    sim_client.step([0.5], after=first)
    lines = [line for line in sim.output().splitlines() if 'viewer' in line]
    assert len(lines) == 1, sim.output()
    assert 'no display (DISPLAY and WAYLAND_DISPLAY are unset)' in lines[0]
    assert "going on without MuJoCo's viewer" in lines[0]
    assert sim.popen.poll() is None


def test_rendering_that_cannot_start_stops_the_node_with_one_line(
        ros_processes: ProcessGroup) -> None:
    # MuJoCo refuses OSMesa when PyOpenGL is told to use EGL.
    env = {**ros_processes.env, 'MUJOCO_GL': 'osmesa', 'PYOPENGL_PLATFORM': 'egl'}
    sim = start_sim(ros_processes, 'image_rate:=5.0', env=env)
    assert sim.wait(START_TIMEOUT) == 1
    lines = [line for line in sim.output().splitlines() if 'cannot start' in line]
    assert len(lines) == 1, sim.output()
    assert 'cannot render with OpenGL backend osmesa' in lines[0]
    assert 'MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa' in lines[0]  # the way out
