"""
The ``mujoco_sim`` node: a MuJoCo simulation standing in for a robot.

It publishes what a robot's broadcasters would, all stamped alike with sim time
(:mod:`ddpg_ros.ros.sim_publishers`): ``joint_states``; ``odom``, ``root_pose`` and
``contact_forces`` for a free-floating root; ``imu`` for a model with an IMU site; then
``/clock``. Commands come in on the topic of the model's actuator kind, as ros2_control's
controllers take them (:func:`ddpg_ros.sim.simulation.command_interface`). ``~/reset``
starts a seeded episode, ``/diagnostics`` reports once a second, ``~/image`` carries
pictures at ``image_rate`` while anyone subscribes (:mod:`ddpg_ros.sim.rendering`).

``lockstep`` advances one control period per command, then publishes, so the agent sets the
pace. ``realtime`` advances on the wall clock at ``state_rate`` states per sim second and
``real_time_factor`` times the wall clock's speed (:mod:`ddpg_ros.sim.settings`), holding
the last command and applying zero after ``command_timeout`` s of sim time without one.
``randomize`` perturbs commands, physics and measurements as training does
(:mod:`ddpg_ros.sim.randomization`).

Stamps never go back: a reset advances them by one tick, so every new state is strictly
later than the one before, and a state lockstep re-sends carries its original stamp.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import fields
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_ros.sim.mujoco_warnings import route_mujoco_warnings
from ddpg_ros.sim.rendering import (TRACKING_CAMERA, RenderingError, RenderLoop, RenderSettings,
                                    copy_state, make_camera, select_gl_backend)
from ddpg_ros.ros.conversions import rgb_image
from ddpg_ros.ros.interfaces import COMMAND_TOPICS
from ddpg_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, IMAGE_QOS
from ddpg_ros.ros.sim_publishers import StatePublishers
from ddpg_ros.sim.settings import SimReport, SimSettings, SimStats, TickLedger, pacing

NODE_NAME = 'mujoco_sim'
REPUBLISH_PERIOD = 0.5
"""Wall seconds without a publish after which lockstep re-sends the current state."""
DIAGNOSTICS_PERIOD = 1.0
LOG_THROTTLE = 1.0
"""At most one log line per second for a repeated complaint (bad commands)."""


def _steady_clock() -> Clock:
    # Timers on the steady clock: the sim is the source of sim time, so its own timers must
    # never wait on /clock, even if someone starts it with use_sim_time.
    return Clock(clock_type=ClockType.STEADY_TIME)


class MujocoSimNode(Node):
    """
    Steps a :class:`~ddpg_ros.sim.simulation.Simulation` and publishes its state.

    :raises ValueError: a parameter is invalid or the model cannot be loaded.
    :raises ddpg_ros.sim.rendering.RenderingError: pictures were asked for and OpenGL fails.
    :raises rclpy.exceptions.ParameterException: a parameter override has the wrong type.
    """

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        self._settings = settings = self._declare(SimSettings)
        self._render_settings = self._declare(RenderSettings)
        # MuJoCo fixes its OpenGL backend when first imported, which is just below.
        gl = select_gl_backend() if self._render_settings.image_rate > 0.0 else ''
        route_mujoco_warnings(self.get_logger().warning)
        from ddpg_ros.sim.simulation import Simulation, command_interface

        self._sim = sim = Simulation(settings.model, seed=settings.seed,
                                     frame_skip=settings.frame_skip or None,
                                     imu_site=settings.imu_site,
                                     timestep=settings.timestep or None,
                                     randomize=settings.randomize,
                                     reset_noise=settings.reset_noise)
        try:
            self._interface = command_interface(sim.model, sim.actuator_names)
            self._pacing = pacing(settings, sim.model.opt.timestep, sim.frame_skip)
        except ValueError:
            sim.close()
            raise
        # Held while the physics changes, so that the render thread copies whole states.
        self._state_lock = threading.Lock()
        self._stats = SimStats()
        self._zero_command = np.zeros(len(sim.actuator_names))
        self._command_ns = 0
        self._holding_command = False
        # The watchdog counts sim time: an agent on use_sim_time paces its commands by it.
        self._timeout_ns = round(settings.command_timeout * 1e9)
        self._sim_time_ns = 0
        self._last_publish = -math.inf
        self._measured: tuple[Any, ...] | None = None
        """The last state published, as measured: what a re-send sends again."""
        self._report = SimReport(settings, sim.control_dt, self._interface, self._pacing,
                                 time.monotonic())

        sensor_topics = {topic: kind for topic, kind in sim.sensors.topics.items()
                         if kind != 'joint_state'}
        self._state_publishers = StatePublishers(
            self, sensor_topics, sim.joint_names, sim.imu_frame, settings.publish_clock)
        self._diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        command_topic = COMMAND_TOPICS[self._interface][0]
        self.create_subscription(Float64MultiArray, command_topic, self._on_command,
                                 COMMAND_QOS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        if settings.mode == 'lockstep':
            # Checked five times per period so that the first state goes out promptly.
            self.create_timer(REPUBLISH_PERIOD / 5, self._on_republish_timer,
                              clock=_steady_clock())
        else:
            # rclpy's steady clock is time.monotonic's.
            self._ledger = TickLedger(self._pacing.wall_period, time.monotonic())
            self.create_timer(self._pacing.wall_period, self._on_tick, clock=_steady_clock())
        self.create_timer(DIAGNOSTICS_PERIOD, self._on_diagnostics_timer, clock=_steady_clock())
        self._render_loop = self._start_render_loop()
        realtime = (f', states at {self._pacing.state_rate:g} Hz of sim time, real-time factor '
                    f'{settings.real_time_factor:g}' if settings.mode == 'realtime' else '')
        self.get_logger().info(
            f'ready: model {settings.model}, mode {settings.mode}, control period '
            f'{sim.control_dt:g} s{realtime}, joints {list(sim.joint_names)}, '
            f'{self._interface} commands on {command_topic} for {list(sim.actuator_names)}'
            + (f', sensors {list(sensor_topics)}' if sensor_topics else '')
            + (f', IMU {sim.imu_frame}' if sim.imu_frame else '')
            + (f', images {self._render_settings.image_rate:g} Hz (OpenGL: {gl})' if gl else '')
            + (f', randomized ({sim.randomizer.profile.describe()})' if sim.randomizer else ''))

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
            with self._state_lock:
                self._sim.send(command)
            self._command_ns = self._sim_time_ns
            self._holding_command = True

    def _command_problem(self, command: np.ndarray) -> str:
        # Checked on arrival, not when stepping: realtime holds a command for many steps.
        if command.shape != self._zero_command.shape:
            return (f'{command.size} values, expected one per actuator '
                    f'{list(self._sim.actuator_names)}')
        if not np.isfinite(command).all():
            return f'non-finite value in {command.tolist()}'
        return ''

    def _on_tick(self) -> None:
        self._stats.ticks_skipped += self._ledger.tick(time.monotonic())
        if self._holding_command and (
                self._sim_time_ns - self._command_ns > self._timeout_ns):
            self._holding_command = False
            with self._state_lock:
                self._sim.send(self._zero_command)
            self._stats.command_timeouts += 1
            self.get_logger().warn(
                f'no command for {self._settings.command_timeout:g} s of sim time: '
                'applying zero')
        self._advance(None)

    def _on_republish_timer(self) -> None:
        # Lockstep waits for a command, but an agent that joined late never saw the last
        # state: send it again, the same measurement. Publishing only; physics does not move.
        if time.monotonic() - self._last_publish >= REPUBLISH_PERIOD:
            if self._measured is None:
                self._publish_state()
            else:
                self._state_publishers.publish(self._sim_time_ns, *self._measured)
                self._last_publish = time.monotonic()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        with self._state_lock:
            self._sim.reset()
            self._sim_time_ns += self._pacing.tick_ns
        self._stats.resets += 1
        # A command chosen for the previous episode means nothing in the new one: the reset
        # zeroed the simulation's.
        self._holding_command = False
        self._publish_state()
        response.success = True
        response.message = (f'reset {self._stats.resets}: new initial state at sim time '
                            f'{self._sim_time_ns * 1e-9:.9g} s')
        return response

    def _advance(self, command: np.ndarray | None) -> None:
        # With a command (lockstep) it is sent first; without one the last sent holds.
        with self._state_lock:
            if command is not None:
                self._sim.send(command)
            self._sim.advance(self._pacing.physics_steps)
            self._sim_time_ns += self._pacing.tick_ns
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
                          self._on_render_error, settings, self._sim.camera_defaults,
                          wanted=lambda: publisher.get_subscription_count() > 0)
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
        sim = self._sim
        try:
            samples = sim.measured_samples(self._sim_time_ns * 1e-9)
        except ValueError as exc:  # a state gone non-finite: no sample of it can be built
            samples = {}
            self.get_logger().error(f'{self._state_publishers.topics} not published: {exc}',
                                    throttle_duration_sec=LOG_THROTTLE)
        positions, velocities = sim.measured_joints()
        self._measured = (positions, velocities, sim.joint_efforts(), samples)
        self._state_publishers.publish(self._sim_time_ns, *self._measured)
        self._last_publish = time.monotonic()

    def _on_diagnostics_timer(self) -> None:
        warn, message, values = self._report(self._stats, self._sim_time_ns,
                                             self._holding_command, time.monotonic())
        values['images'] = str(self._render_loop.frames if self._render_loop else 0)
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if warn else DiagnosticStatus.OK,
            name=f'{self.get_name()}: simulation', message=message,
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
