"""The ``mujoco_sim`` node: a MuJoCo simulation standing in for a robot.

It speaks the robot's side of the contract: ``joint_states`` and ``/clock`` out every control
step, ``effort_controller/commands`` in (one value per actuator, as ros2_control's
``JointGroupEffortController`` takes them), ``~/reset`` for a new seeded initial state, and
``/diagnostics`` once a second; pictures on ``~/image`` at ``image_rate``, rendered from a
copy of the state in a thread of their own (:mod:`ddpg_ros.rendering`), never holding up a step.

``lockstep`` mode advances exactly one control period per command and then publishes the new
state, so the agent sets the pace. ``realtime`` mode advances on the wall clock at the
control rate holding the last command, and applies zero once no command has come for
``command_timeout`` seconds, as a robot's safety watchdog would.

Time: ``header.stamp`` and ``/clock`` count simulated time since the node started. A reset
does not rewind them (``/clock`` going backwards upsets every node that uses sim time); it
advances them by one control period instead. So every new state carries a strictly later
stamp than the one before it, and a state that lockstep re-publishes while it waits carries
its original stamp: that is how a subscriber tells a repeat from a new state.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.time import Time
from rosgraph_msgs.msg import Clock as ClockMessage
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_ros.mujoco_warnings import route_mujoco_warnings
from ddpg_ros.rendering import (TRACKING_CAMERA, RenderingError, RenderLoop, RenderSettings,
                                copy_state, make_camera, select_gl_backend)
from ddpg_ros.ros.conversions import rgb_image
from ddpg_ros.ros.qos import CLOCK_QOS, COMMAND_QOS, DIAGNOSTICS_QOS, IMAGE_QOS, STATE_QOS

NODE_NAME = 'mujoco_sim'
MODES = ('lockstep', 'realtime')
REPUBLISH_PERIOD = 0.5
"""Wall seconds without a publish after which lockstep re-sends the current state."""
DIAGNOSTICS_PERIOD = 1.0
LOG_THROTTLE = 1.0
"""At most one log line per second for a repeated complaint (bad commands)."""


@dataclass(frozen=True)
class SimSettings:
    """The node's parameters: one read-only ROS parameter per field, these the defaults.

    :raises ValueError: a value out of range (the simulation checks the model and seed).
    """

    model: str = field(default='InvertedPendulum-v5', metadata={
        'description': 'Gymnasium MuJoCo env id (e.g. HalfCheetah-v5) or MJCF file path'})
    mode: str = field(default='lockstep', metadata={
        'description': "'lockstep': one control period per command; "
                       "'realtime': advance on the wall clock"})
    seed: int = field(default=0, metadata={'description': 'seeds the reset distribution'})
    command_timeout: float = field(default=0.5, metadata={
        'description': 'realtime: seconds without a command before applying zero'})
    publish_clock: bool = field(default=True, metadata={
        'description': 'publish sim time on /clock'})
    frame_skip: int = field(default=0, metadata={
        'description': "physics steps per control period; 0 = the model's own"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not (math.isfinite(self.command_timeout) and self.command_timeout > 0.0):
            raise ValueError(f'command_timeout must be > 0 s, got {self.command_timeout}')
        if self.frame_skip < 0:
            raise ValueError("frame_skip must be >= 0 (0 = the model's own), "
                             f'got {self.frame_skip}')


@dataclass
class SimStats:
    """Counters since the node started, as ``/diagnostics`` reports them."""

    steps: int = 0
    resets: int = 0
    commands_received: int = 0
    commands_rejected: int = 0
    command_timeouts: int = 0


def _steady_clock() -> Clock:
    # Timers on the steady clock: the sim is the source of sim time, so its own timers must
    # never wait on /clock, even if someone starts it with use_sim_time.
    return Clock(clock_type=ClockType.STEADY_TIME)


class MujocoSimNode(Node):
    """Steps a :class:`~ddpg_ros.sim.Simulation` and publishes its joints.

    :raises ValueError: a parameter is invalid or the model cannot be loaded.
    :raises ddpg_ros.rendering.RenderingError: pictures were asked for and OpenGL fails.
    :raises rclpy.exceptions.ParameterException: a parameter override has the wrong type.
    """

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self._settings = self._declare(SimSettings)
        self._render_settings = self._declare(RenderSettings)
        # MuJoCo fixes its OpenGL backend when first imported, which is just below.
        gl = select_gl_backend() if self._render_settings.image_rate > 0.0 else ''
        route_mujoco_warnings(self.get_logger().warning)
        from ddpg_ros.sim import Simulation

        self._sim = Simulation(self._settings.model, seed=self._settings.seed,
                               frame_skip=self._settings.frame_skip or None)
        # Held while the physics changes, so that the render thread copies whole states.
        self._state_lock = threading.Lock()
        self._stats = SimStats()
        self._joint_names = list(self._sim.joint_names)
        self._zero_command = np.zeros(len(self._sim.actuator_names))
        self._command = self._zero_command
        self._command_time = -math.inf
        self._holding_command = False
        # Integer nanoseconds, so that stamps advance by exactly one control period per step.
        self._dt_ns = round(self._sim.control_dt * 1e9)
        self._sim_time_ns = 0
        self._last_publish = -math.inf
        self._last_report = (time.monotonic(), SimStats(), 0)

        self._state_publisher = self.create_publisher(JointState, 'joint_states', STATE_QOS)
        self._clock_publisher = (self.create_publisher(ClockMessage, '/clock', CLOCK_QOS)
                                 if self._settings.publish_clock else None)
        self._diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        self.create_subscription(
            Float64MultiArray, 'effort_controller/commands', self._on_command, COMMAND_QOS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        if self._settings.mode == 'lockstep':
            # Checked five times per period so that the first state goes out promptly.
            self.create_timer(REPUBLISH_PERIOD / 5, self._on_republish_timer,
                              clock=_steady_clock())
        else:
            self.create_timer(self._sim.control_dt, self._on_control_timer,
                              clock=_steady_clock())
        self.create_timer(DIAGNOSTICS_PERIOD, self._on_diagnostics_timer, clock=_steady_clock())
        self._render_loop = self._start_render_loop()
        self.get_logger().info(
            f'ready: model {self._settings.model}, mode {self._settings.mode}, control '
            f'period {self._sim.control_dt:g} s, joints {self._joint_names}, '
            f'actuators {list(self._sim.actuator_names)}'
            + (f', images {self._render_settings.image_rate:g} Hz (OpenGL: {gl})' if gl else ''))

    def _declare(self, settings_type: type[Any]) -> Any:
        # One read-only parameter per field: the simulation is built from them once, so a
        # later change would lie.
        return settings_type(**{
            setting.name: self.declare_parameter(
                setting.name, setting.default, ParameterDescriptor(
                    description=setting.metadata['description'], read_only=True)).value
            for setting in fields(settings_type)})

    def _on_command(self, msg: Float64MultiArray) -> None:
        self._stats.commands_received += 1
        command = np.array(msg.data, dtype=np.float64)
        problem = self._command_problem(command)
        if problem:
            self._stats.commands_rejected += 1
            self.get_logger().error(f'command rejected ({problem}); state left unchanged',
                                    throttle_duration_sec=LOG_THROTTLE)
            return
        if self._settings.mode == 'lockstep':
            self._advance(command)
        else:
            self._command = command
            self._command_time = time.monotonic()
            self._holding_command = True

    def _command_problem(self, command: np.ndarray) -> str:
        # Checked on arrival, not when stepping: realtime holds a command for many steps.
        if command.shape != self._zero_command.shape:
            return (f'{command.size} values, expected one per actuator '
                    f'{list(self._sim.actuator_names)}')
        if not np.isfinite(command).all():
            return f'non-finite value in {command.tolist()}'
        return ''

    def _on_control_timer(self) -> None:
        if self._holding_command and (
                time.monotonic() - self._command_time > self._settings.command_timeout):
            self._holding_command = False
            self._command = self._zero_command
            self._stats.command_timeouts += 1
            self.get_logger().warn(
                f'no command for {self._settings.command_timeout:g} s: applying zero')
        self._advance(self._command)

    def _on_republish_timer(self) -> None:
        # Lockstep waits for a command, but an agent that joined late never saw the last
        # state: send it again. Publishing only; physics does not move.
        if time.monotonic() - self._last_publish >= REPUBLISH_PERIOD:
            self._publish_state()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        with self._state_lock:
            self._sim.reset()
            self._sim_time_ns += self._dt_ns
        self._stats.resets += 1
        # A command chosen for the previous episode means nothing in the new one.
        self._command = self._zero_command
        self._holding_command = False
        self._publish_state()
        response.success = True
        response.message = (f'reset {self._stats.resets}: new initial state at sim time '
                            f'{self._sim_time_ns * 1e-9:.9g} s')
        return response

    def _advance(self, command: np.ndarray) -> None:
        with self._state_lock:
            self._sim.step(command)
            self._sim_time_ns += self._dt_ns
        self._stats.steps += 1
        self._publish_state()

    def _start_render_loop(self) -> RenderLoop | None:
        settings = self._render_settings
        make_camera(self._sim.model, settings.camera)  # a wrong name fails even if unused
        if not settings.wanted:
            return None
        publisher = (self.create_publisher(Image, '~/image', IMAGE_QOS)
                     if settings.image_rate > 0.0 else None)
        frame_id = settings.camera or TRACKING_CAMERA
        loop = RenderLoop(self._sim.model, self._snapshot,
                          lambda frame, stamp_ns: publisher.publish(
                              rgb_image(frame, stamp_ns, frame_id)),
                          self._on_render_error, settings, self._sim.camera_defaults)
        loop.start()
        if loop.viewer_error:
            self.get_logger().warning(
                f"viewer: {loop.viewer_error}: going on without MuJoCo's viewer "
                '(image_rate > 0 publishes mujoco_sim/image instead)')
        return loop

    def _snapshot(self, target: Any) -> int:
        # In the render thread: the only moment it touches the simulation, and a short one.
        with self._state_lock:
            copy_state(self._sim.data, target)
            return self._sim_time_ns

    def _on_render_error(self, line: str) -> None:
        if self.context.ok():  # a publish that fails because of a shutdown is no error
            self.get_logger().error(line)

    def _publish_state(self) -> None:
        stamp = Time(nanoseconds=self._sim_time_ns).to_msg()
        # /clock first: an agent on sim time that reads its clock on a state sees that time.
        if self._clock_publisher is not None:
            self._clock_publisher.publish(ClockMessage(clock=stamp))
        state = JointState(name=self._joint_names,
                           position=self._sim.joint_positions().tolist(),
                           velocity=self._sim.joint_velocities().tolist(),
                           effort=self._sim.joint_efforts().tolist())
        state.header.stamp = stamp
        self._state_publisher.publish(state)
        self._last_publish = time.monotonic()

    def _on_diagnostics_timer(self) -> None:
        now = time.monotonic()
        last_time, last, last_sim_ns = self._last_report
        self._last_report = (now, replace(self._stats), self._sim_time_ns)
        elapsed = max(now - last_time, 1e-9)
        rejected = self._stats.commands_rejected - last.commands_rejected
        level, message = DiagnosticStatus.OK, 'running'
        if rejected:
            level, message = DiagnosticStatus.WARN, f'rejected {rejected} bad command(s)'
        elif self._settings.mode == 'realtime' and not self._holding_command:
            message = 'no recent command: applying zero'
        elif self._settings.mode == 'lockstep' and self._stats.steps == last.steps:
            message = 'waiting for commands'
        values = {
            'model': self._settings.model,
            'mode': self._settings.mode,
            'control_dt': f'{self._sim.control_dt:g}',
            'sim_time': f'{self._sim_time_ns * 1e-9:.3f}',
            **{name: str(count) for name, count in asdict(self._stats).items()},
            'steps_per_second': f'{(self._stats.steps - last.steps) / elapsed:.1f}',
            'real_time_factor': f'{(self._sim_time_ns - last_sim_ns) * 1e-9 / elapsed:.3f}',
        }
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: simulation', message=message,
            hardware_id=self._settings.model,
            values=[KeyValue(key=key, value=value) for key, value in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_publisher.publish(array)

    def destroy_node(self) -> None:
        """Stop rendering, then release the simulation with the node."""
        if self._render_loop is not None:
            self._render_loop.stop()
        self._sim.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or SIGTERM; 1 if it cannot start (bad model or parameter)."""
    rclpy.init(args=args)
    node: MujocoSimNode | None = None
    try:
        try:
            node = MujocoSimNode()
        except (ValueError, ParameterException, RenderingError) as exc:
            rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {exc}')
            return 1
        # One thread: the simulation is not thread-safe, and a single-threaded executor runs
        # commands, resets and timers one after another.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # rclpy's signal handler shuts the context down from another thread, so a callback
        # publishing at that moment fails with "context is invalid": after a shutdown that
        # is a clean stop; before one it is a real error.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
