"""mujoco_sim over real DDS: the robot side of INTERFACE.md, one test per promise."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import fields

import gymnasium
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_ros.ros.conversions import joint_state_to_robot_state, to_float64_multi_array
from ddpg_ros.ros.mujoco_sim_node import SimSettings
from ddpg_ros.ros.profiles import MUJOCO_SIM_PARAMETERS
from ddpg_ros.rendering import RenderSettings
from ddpg_ros.ros.qos import CLOCK_QOS, COMMAND_QOS, IMAGE_QOS, STATE_QOS
from ddpg_ros.tasks import RobotState, Task, make_task

from conftest import ProcessGroup, RosTestNode, TestProcess, node_command

START_TIMEOUT = 30.0
"""Seconds for a node to start and be discovered; generous for a loaded 2-core machine."""
REPLY_TIMEOUT = 5.0


def stamp_ns(msg: JointState | Clock | Image) -> int:
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


class SimClient:
    """What an agent sees of mujoco_sim: states and clock in, commands and resets out."""

    def __init__(self, ros: RosTestNode, namespace: str = '') -> None:
        prefix = f'{namespace}/' if namespace else ''
        self.ros = ros
        self.states: list[JointState] = []
        self.clocks: list[Clock] = []
        self.diagnostics: list[DiagnosticArray] = []
        node = ros.node
        self._state_sub = node.create_subscription(
            JointState, f'{prefix}joint_states', self.states.append, STATE_QOS)
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

    def latest_status(self) -> dict[str, str]:
        """Return the key/values of the newest mujoco_sim diagnostics status ({} if none yet)."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.endswith('simulation'):
                    return {'level': int.from_bytes(status.level, 'little'),
                            'message': status.message,
                            **{kv.key: kv.value for kv in status.values}}
        return {}


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
    sim_client.ros.spin_for(1.2)
    repeats = sim_client.states[count:]
    assert len(repeats) >= 1
    for repeat in repeats:
        assert stamp_ns(repeat) == stamp_ns(state)
        assert list(repeat.position) == list(state.position)
    assert stamp_ns(sim_client.clocks[-1]) == stamp_ns(state)


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

    count = len(sim_client.states)
    window = 2.0
    sim_client.ros.spin_for(window)
    received = sim_client.states[count:]
    # The rate is the wall clock's, within what a busy 2-core machine allows.
    assert 0.6 * window / dt <= len(received) <= 1.15 * window / dt, len(received)
    steps = np.diff([stamp_ns(msg) for msg in received])
    assert set(steps.tolist()) == {40_000_000}

    # One command, then silence: held for about command_timeout, then zero.
    count = len(sim_client.states)
    sim_client.send([1.0])
    sim_client.ros.spin_for(timeout + 0.8)
    slider_efforts = [msg.effort[0] for msg in sim_client.states[count:]]
    held = [effort for effort in slider_efforts if effort != 0.0]
    assert held, 'the command was never applied'
    assert set(held) == {100.0}  # gear 100 x command 1.0
    first_held = slider_efforts.index(100.0)
    last_held = len(slider_efforts) - 1 - slider_efforts[::-1].index(100.0)
    assert slider_efforts[first_held:last_held + 1] == held  # held without a gap
    assert 0.5 * timeout / dt <= len(held) <= 1.5 * timeout / dt + 2, len(held)
    assert slider_efforts[last_held + 1:] and not any(slider_efforts[last_held + 1:])
    assert sim_client.ros.spin_until(
        lambda: sim_client.latest_status().get('command_timeouts') == '1', 3.0)


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

    assert ros_node.spin_until(graph_complete, START_TIMEOUT), (
        node.get_topic_names_and_types(), node.get_service_names_and_types(),
        node.get_node_names_and_namespaces())
    published = dict(node.get_publisher_names_and_types_by_node('mujoco_sim', '/robot2'))
    assert '/robot2/joint_states' in published
    assert '/clock' not in published
    subscribed = dict(node.get_subscriber_names_and_types_by_node('mujoco_sim', '/robot1'))
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
])
def test_bad_parameters_exit_nonzero_with_a_clear_error(
        ros_processes: ProcessGroup, param: str, message: str) -> None:
    sim = start_sim(ros_processes, param)
    assert sim.wait(START_TIMEOUT) == 1
    assert message in sim.output()


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


def test_realtime_publishes_images_at_image_rate_and_keeps_its_own_pace(
        ros_processes: ProcessGroup, sim_client: SimClient, tmp_path) -> None:
    rate, window, dt = 5.0, 4.0, 0.05  # HalfCheetah-v5: a 0.05 s control period
    sim = start_sim(ros_processes, 'model:=HalfCheetah-v5', 'mode:=realtime',
                    f'image_rate:={rate}', cwd=tmp_path,
                    env=_headless_env(ros_processes.env))
    images: list[Image] = []
    sim_client.ros.node.create_subscription(Image, 'mujoco_sim/image', images.append,
                                            IMAGE_QOS)
    sim_client.connect()
    assert sim_client.ros.spin_until(lambda: bool(images), START_TIMEOUT), sim.output()

    states, count = len(sim_client.states), len(images)
    sim_client.ros.spin_for(window)
    received = images[count:]
    # A loaded 2-core machine: generous bands, for the pictures and for the control rate.
    assert 0.5 * rate * window <= len(received) <= 1.5 * rate * window, len(received)
    assert 0.6 * window / dt <= len(sim_client.states) - states <= 1.15 * window / dt
    for msg in received:
        assert (msg.width, msg.height, msg.step) == (320, 240, 960)
        assert msg.encoding == 'rgb8' and len(msg.data) == 320 * 240 * 3
        assert msg.header.frame_id == 'tracking_camera'
        assert stamp_ns(msg) % 50_000_000 == 0  # sim time: a whole number of periods
    stamps = [stamp_ns(msg) for msg in received]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    colours = np.unique(_pixels(received[-1]).reshape(-1, 3), axis=0)
    assert len(colours) > 50, 'the picture is (nearly) one colour'

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

    count, steps, started = len(images), 0, time.monotonic()
    while time.monotonic() - started < 3.0:
        state = sim_client.step(np.sin(np.arange(6) + 0.3 * steps), after=state)
        steps += 1
    assert steps > 100, steps  # acting was not held up by the pictures
    sim_client.ros.spin_for(0.3)
    received = images[count:]
    assert len(received) >= 10, len(received)
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
