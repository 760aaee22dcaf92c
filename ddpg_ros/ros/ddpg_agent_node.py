"""
The ``ddpg_agent`` node: wires a robot's topics to the ROS-free control step and learner.

Each state source's messages are converted at the edge (:mod:`ddpg_ros.ros.interfaces`) and
go down into :class:`~ddpg_ros.control.loop.ControlLoop`, which runs the control step when
every required source has a new sample (``control_rate`` 0, lockstep sims) or on a timer on
ROS time (``control_rate`` > 0, robots behind ros2_control). The node publishes the command
on the command interface's topic and runs the reset protocol, the watchdog timer, services
and ``/diagnostics``; learning runs in :class:`~ddpg_ros.control.training.LocalTraining`'s
background thread or in a remote ``ddpg_learner`` (``learner: remote``). See DESIGN.md.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Float64
from std_srvs.srv import SetBool, Trigger

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.control.episodes import Episodes
from ddpg_ros.control.loop import ControlLoop, LoopActions
from ddpg_ros.control.safety import CommandFilter, SafeCommand
from ddpg_ros.control.sampling import LatestSamples
from ddpg_ros.control.settings import AgentSettings, preset_report, resolve_preset
from ddpg_ros.control.step import ControlStep
from ddpg_ros.control.timing import TimingRecord
from ddpg_ros.control.training import LocalTraining
from ddpg_ros.sim.envs import spec_for_task
from ddpg_ros.ros.agent_status import AgentStatus, LatencyWindow, progress_line, ready_line
from ddpg_ros.ros.episode_reset import EpisodeReset, steady_clock
from ddpg_ros.ros.interfaces import (CommandPublisher, message_type, sample_reader,
                                     source_topic_problems)
from ddpg_ros.ros.parameters import declare_fields
from ddpg_ros.ros.qos import DIAGNOSTICS_QOS, STATE_QOS
from ddpg_ros.ros.remote_actor import make_policy
from ddpg_ros.ros.spin import spin_until_stopped
from ddpg_ros.tasks import make_task
from ddpg_ros.tasks.base import check_command_interface

NODE_NAME = 'ddpg_agent'
DIAGNOSTICS_PERIOD = 1.0
PROGRESS_PERIOD = 5.0
"""Seconds between progress lines in the log."""
LOG_THROTTLE = 1.0
TOPIC_CHECK_DELAY = 3.0
"""Seconds after start when each source's topic is checked for publishers of its type."""


class DDPGAgentNode(Node):
    """
    Online DDPG for one robot: sources in, commands out, a background learner, services.

    :param node_options: passed to :class:`rclpy.node.Node` (``context``,
        ``parameter_overrides``, ``namespace``, ...), e.g. to run the node inside a test.
    :raises ValueError: a bad parameter, an unknown task, or a checkpoint that does not match
        the task (the message says what differs).
    :raises rclpy.exceptions.ParameterException: a parameter override of the wrong type.
    """

    def __init__(self, **node_options: Any) -> None:
        super().__init__(NODE_NAME, **node_options)
        settings = AgentSettings(**declare_fields(self, AgentSettings, AgentSettings()))
        self.settings = settings
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        task = self.task = make_task(settings.task)
        interface = settings.command_interface or task.command_interface
        check_command_interface(task, interface)
        preset_name, preset = resolve_preset(settings.preset, task)
        config = DDPGConfig(**declare_fields(self, DDPGConfig, DDPGConfig(**preset)))
        log = self.get_logger()
        log.info(preset_report(preset_name, preset, config))
        period = 1.0 / settings.control_rate if settings.control_rate else task.control_dt
        self.spec = spec_for_task(task, control_period=period,
                                  observe_last_action=config.observe_last_action)
        safe = SafeCommand(task, interface, settings.safe_command)
        self.policy = make_policy(self, task, self.spec, settings, config)
        self.config = self.policy.config
        episodes = Episodes(task, settings.value_limit, **self.policy.counters)
        if isinstance(self.policy, LocalTraining):
            self.policy.bind(episodes)
        self.control = ControlStep(
            task, self.policy, episodes,
            CommandFilter(task.action_low, task.action_high, settings.max_command_rate), safe,
            total_steps=settings.total_steps, resets=bool(settings.reset_service),
            period=period if settings.control_rate else 0.0,
            observe_last_action=config.observe_last_action)
        self.latency = LatencyWindow()
        self.timing = TimingRecord(period)
        """The loop's measured timing, written to ``checkpoint_dir/timing.yaml``."""
        self._timing_error = ''
        self._status = AgentStatus()
        self.last_problem = ''
        self._last_progress_log = time.monotonic()
        self._topics_unchecked = True
        self.states_received = 0
        """State messages taken in, valid or not (for tests and diagnostics)."""
        self.finished = threading.Event()
        """Set when ``total_steps`` is reached; ``main`` spins until then."""
        self.commands = CommandPublisher(self, task, interface, period)
        self.reset = (EpisodeReset(self, settings.reset_service, settings.reset_timeout,
                                   lambda: self.loop.on_reset_done(), self._problem)
                      if settings.reset_service else None)
        self.loop = ControlLoop(
            self.control, LatestSamples(task, settings.state_timeout),
            LoopActions(publish=self._publish_command, episode_return=self._on_episode_return,
                        request_reset=self.reset.request if self.reset else None,
                        problem=self._problem, info=log.info, finished=self._on_finished),
            settings.control_rate, settings.state_timeout)
        self.loop.on_latency = lambda latency: self.latency.record(latency,
                                                                   self.policy.last_wait)

        self._return_publisher = self.create_publisher(Float64, '~/episode_return', 10)
        self._diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        for source in task.sources:
            read = sample_reader(source, task)
            self.create_subscription(
                message_type(source), source.name,
                lambda msg, source=source, read=read: self._on_sample(source.name, read, msg),
                STATE_QOS)
        self.create_service(Trigger, '~/save_checkpoint', self._on_save_checkpoint)
        self.create_service(SetBool, '~/set_training', self._on_set_training)
        self.create_service(SetBool, '~/set_exploration', self._on_set_exploration)
        self.create_timer(DIAGNOSTICS_PERIOD, self._on_diagnostics_timer, clock=steady_clock())
        if settings.state_timeout > 0.0:
            self.create_timer(min(settings.state_timeout / 4, 0.05), self._on_watchdog_timer,
                              clock=steady_clock())
        if settings.control_rate > 0.0:
            # ROS time: under use_sim_time the control loop follows /clock.
            self.create_timer(period, self._on_control_tick)
        log.info(ready_line(self))

    @property
    def env_steps(self) -> int:
        """Return the transitions completed since the run began."""
        return self.control.episodes.env_steps

    @property
    def agent(self) -> Any:
        """Return the DDPG networks the agent acts with (and learns, in train mode)."""
        return self.policy.agent

    @property
    def samples(self) -> LatestSamples:
        """Return the newest valid sample of every source."""
        return self.loop.samples

    @property
    def buffer(self) -> Any:
        """Return the replay buffer of a training run, else ``None``."""
        return self.policy.buffer

    @property
    def learner(self) -> Any:
        """Return the background learner of a training run, else ``None``."""
        return self.policy.learner

    @property
    def stats(self) -> dict[str, int]:
        """Return the counts of everything refused, replaced, tripped or failed."""
        policy = self.policy
        return {**self.control.stats, **self.loop.counts,
                'reset_failures': self.reset.failures if self.reset else 0,
                'update_wait_timeouts': getattr(policy, 'wait_timeouts', 0),
                'checkpoint_failures': getattr(policy, 'checkpoint_failures', 0)}

    def _on_sample(self, name: str, read: Any, msg: Any) -> None:
        received = time.perf_counter()
        self.states_received += 1
        try:
            sample = read(msg, time.monotonic())
        except ValueError as exc:
            self.loop.on_invalid(f'invalid {name}: {exc}')
            return
        self.loop.on_sample(name, sample, received)

    def _on_control_tick(self) -> None:
        self.timing.tick(self._now())
        self.loop.on_tick()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_command(self, command: Any) -> None:
        self.commands.publish(command)
        state = self.control.last_state
        if state is not None:
            self.timing.command(self._now() - state.stamp)

    def write_timing(self) -> Path | None:
        """
        Write ``checkpoint_dir/timing.yaml`` when that directory exists.

        A local training run makes it; a deployment or a remote learner's actor writes there
        only where the user made one, never a directory behind their back.

        :return: the file, or ``None`` when there is nothing to write or nowhere to.
        """
        directory = Path(self.settings.checkpoint_dir)
        if not self.timing.commands or not directory.is_dir():
            return None
        try:
            return self.timing.write(directory / 'timing.yaml')
        except OSError as exc:
            if str(exc) != self._timing_error:
                self._timing_error = str(exc)
                self.get_logger().warning(f'timing.yaml not written: {exc}')
            return None

    def _on_finished(self) -> None:
        self.get_logger().info(f'reached total_steps={self.settings.total_steps}')
        self.finished.set()

    def _on_episode_return(self, value: float) -> None:
        self._return_publisher.publish(Float64(data=value))

    def _problem(self, problem: str) -> None:
        if problem:
            self.last_problem = problem
            self.get_logger().warning(problem, throttle_duration_sec=LOG_THROTTLE)

    def _on_watchdog_timer(self) -> None:
        if self.loop.check_watchdog() and self.reset and self.reset.pending:
            self.reset.abandon()  # the robot went silent while starting an episode

    def _on_set_training(self, request: SetBool.Request, response: SetBool.Response
                         ) -> SetBool.Response:
        if self.learner is None:
            response.success, response.message = False, (
                'learner remote: switch ddpg_learner/set_training' if self.settings.learner ==
                'remote' else 'deploy mode: nothing to switch')
        else:
            response.success, response.message = self.learner.set_training(request.data)
        return response

    def _on_set_exploration(self, request: SetBool.Request, response: SetBool.Response
                            ) -> SetBool.Response:
        if not self.policy.training:
            response.success, response.message = False, 'deploy mode: the policy never explores'
            return response
        self.control.explore = bool(request.data)
        response.success = True
        response.message = f'exploration {"on" if self.control.explore else "off"}'
        return response

    def _on_save_checkpoint(self, request: Trigger.Request, response: Trigger.Response
                            ) -> Trigger.Response:
        try:
            response.message, response.success = str(self.save_checkpoint()), True
        except (OSError, ValueError) as exc:
            response.success, response.message = False, f'checkpoint not written: {exc}'
        return response

    def save_checkpoint(self) -> Path:
        """
        Write a checkpoint now (see :meth:`LocalTraining.save_checkpoint`).

        :raises ValueError: deploy mode, or the weights are not finite.
        :raises OSError: the directory cannot be written.
        """
        if not isinstance(self.policy, LocalTraining):
            raise ValueError('deploy mode does not write checkpoints')
        return self.policy.save_checkpoint()

    def _on_diagnostics_timer(self) -> None:
        self._diagnostics_publisher.publish(self.diagnostics())
        now = time.monotonic()
        if self._topics_unchecked and now - self._last_progress_log >= TOPIC_CHECK_DELAY:
            self._topics_unchecked = False  # once, when discovery has had time
            for problem in source_topic_problems(self, self.task.sources):
                self.last_problem = problem
                self.get_logger().warning(problem)
        if now - self._last_progress_log >= PROGRESS_PERIOD and self.env_steps:
            self._last_progress_log = now
            self.get_logger().info(progress_line(self))
            self.write_timing()

    def diagnostics(self) -> DiagnosticArray:
        """Return the agent's status: counters, learning, latency, and what is wrong."""
        return self._status.diagnostics(self)

    def shut_down(self) -> None:
        """
        Stop acting and learning, checkpoint (train mode), and send the safe command.

        Call once the executor has stopped spinning; the node can still publish afterwards.
        """
        self.loop.stopping = True
        self.policy.close(self.get_logger().error)
        self.write_timing()
        self.commands.send_last(self.control.safe(), self.get_logger())


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C, SIGTERM or ``total_steps``; 1 if it cannot start."""
    return spin_until_stopped(DDPGAgentNode, NODE_NAME, args)


if __name__ == '__main__':
    sys.exit(main())
