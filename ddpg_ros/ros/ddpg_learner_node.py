"""
The ``ddpg_learner`` node: one learner for any number of ``ddpg_agent`` actors over DDS.

It wires :class:`~ddpg_ros.fleet.learner.FleetLearner` to ROS: transition batches in on
``ddpg_learner/transitions``, versioned policies out on ``ddpg_learner/policy`` (reliable,
transient local, depth 1), the services ``save_checkpoint``, ``set_training`` and
``get_policy``, and ``/diagnostics`` with a status per actor. Learning runs in the core's
background thread; a new policy wakes this node's executor through a guard condition, so it
is encoded and published here, never in the learner thread.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from std_msgs.msg import UInt8MultiArray
from std_srvs.srv import SetBool, Trigger

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.control.settings import preset_report, resolve_preset
from ddpg_ros.sim.envs import spec_for_task
from ddpg_ros.fleet.learner import FleetLearner
from ddpg_ros.fleet.settings import LearnerSettings
from ddpg_ros.fleet.wire import WireError
from ddpg_ros.ros.episode_reset import steady_clock
from ddpg_ros.ros.parameters import declare_fields
from ddpg_ros.ros.fleet_messages import (LEARNER_NAME, POLICY_QOS, TRANSITIONS_QOS,
                                         message_parts, to_message)
from ddpg_ros.ros.qos import DIAGNOSTICS_QOS
from ddpg_ros.ros.spin import spin_until_stopped
from ddpg_ros.tasks import make_task

NODE_NAME = LEARNER_NAME
DIAGNOSTICS_PERIOD = 1.0
POLICY_CHECK_PERIOD = 0.1
"""Seconds between checks for a policy due without a new snapshot (re-publication, hold)."""
PROGRESS_PERIOD = 5.0
LOG_THROTTLE = 1.0
SILENT_ACTOR = 10.0
"""Seconds without a batch after which an actor's status warns."""


class DDPGLearnerNode(Node):
    """
    Trains on the transitions of every actor and publishes versioned policies.

    :param node_options: passed to :class:`rclpy.node.Node` (``context``,
        ``parameter_overrides``, ``namespace``, ...), e.g. to run the node inside a test.
    :raises ValueError: a bad parameter, an unknown task, or a checkpoint that does not match
        the task or the run (the message says what differs).
    """

    def __init__(self, **node_options: Any) -> None:
        super().__init__(NODE_NAME, **node_options)
        settings = LearnerSettings(**declare_fields(self, LearnerSettings, LearnerSettings()))
        self.settings = settings
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        task = self.task = make_task(settings.task)
        preset_name, preset = resolve_preset(settings.preset, task)
        config = DDPGConfig(**declare_fields(self, DDPGConfig, DDPGConfig(**preset)))
        log = self.get_logger()
        log.info(preset_report(preset_name, preset, config))
        period = 1.0 / settings.control_rate if settings.control_rate else task.control_dt
        self.spec = spec_for_task(task, control_period=period,
                                  observe_last_action=config.observe_last_action)
        self.core = FleetLearner(task, self.spec, settings, config, log.info, log.warning,
                                 log.error)
        self.finished = threading.Event()
        """Never set: the learner runs until Ctrl-C or SIGTERM."""
        self.last_refusal = ''
        self._reported_refusals = 0
        self._refusals_logged: dict[tuple[str, str], float] = {}
        self._last_progress_log = time.monotonic()
        self._policy_publisher = self.create_publisher(UInt8MultiArray, '~/policy', POLICY_QOS)
        self.create_subscription(UInt8MultiArray, '~/transitions', self._on_transitions,
                                 TRANSITIONS_QOS)
        self._diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        self.create_service(Trigger, '~/save_checkpoint', self._on_save_checkpoint)
        self.create_service(SetBool, '~/set_training', self._on_set_training)
        self.create_service(Trigger, '~/get_policy', self._on_get_policy)
        # The learner thread only triggers this; encoding and publishing happen here.
        self._policy_ready = self.create_guard_condition(self.publish_policy)
        self.core.notify = self._policy_ready.trigger
        self.create_timer(POLICY_CHECK_PERIOD, self.publish_policy, clock=steady_clock())
        self.create_timer(DIAGNOSTICS_PERIOD, self._on_diagnostics_timer, clock=steady_clock())
        self.publish_policy()
        core = self.core
        log.info(f'ready: learner for task {task.name}, run {core.run_id}, policy version '
                 f'{core.version} on {self._policy_publisher.topic_name}, transitions on '
                 f'{self.resolve_topic_name("~/transitions")}, device {core.agent.device}'
                 + (f', resumed at {core.transitions} transitions from {core.resumed_from}'
                    if core.resumed_from else ''))

    def publish_policy(self, force: bool = False) -> int:
        """Publish the policy if one is due (always with ``force``); return its size in bytes."""
        message = self.core.policy_message(force=force)
        if message is None:
            return 0
        self._policy_publisher.publish(to_message(message))
        return len(message.data)

    def _on_transitions(self, msg: UInt8MultiArray) -> None:
        try:
            self.core.ingest(*message_parts(msg))
        except WireError as exc:
            self.last_refusal = str(exc)
            # Throttled per sender and kind: one actor's flood hides no other's problem.
            now, key = time.monotonic(), (exc.actor_id, exc.kind)
            if now - self._refusals_logged.get(key, -LOG_THROTTLE) >= LOG_THROTTLE:
                self._refusals_logged[key] = now
                self.get_logger().warning(f'transition batch refused: {exc}')

    def _on_save_checkpoint(self, request: Trigger.Request, response: Trigger.Response
                            ) -> Trigger.Response:
        try:
            response.message, response.success = str(self.core.save_checkpoint()), True
        except (OSError, ValueError) as exc:
            response.success, response.message = False, f'checkpoint not written: {exc}'
        return response

    def _on_set_training(self, request: SetBool.Request, response: SetBool.Response
                         ) -> SetBool.Response:
        response.success, response.message = self.core.learner.set_training(request.data)
        return response

    def _on_get_policy(self, request: Trigger.Request, response: Trigger.Response
                       ) -> Trigger.Response:
        # A standard service cannot carry the weights (no std_srvs type has a byte array):
        # they go out again on the topic, and the reply says what to expect there.
        size = self.publish_policy(force=True)
        core = self.core
        response.success = True
        response.message = json.dumps({
            'policy_version': core.version, 'run_id': core.run_id, 'bytes': size,
            'topic': self._policy_publisher.topic_name, 'warmup': core.warmup})
        return response

    def _on_diagnostics_timer(self) -> None:
        self._diagnostics_publisher.publish(self.diagnostics())
        now = time.monotonic()
        if now - self._last_progress_log >= PROGRESS_PERIOD:
            self._last_progress_log = now
            values = self.core.diagnostic_values()
            self.get_logger().info(
                f'transitions {values["transitions"]} from {values["actors"]} actor(s)  '
                f'updates {values["updates"]} ({values["updates_per_s"]}/s)  policy version '
                f'{values["policy_version"]}  return (recent) '
                f'{values["train_return_mean"] or "-"}'
                + (f'  LEARNER FAULT: {values["learner_fault"]}'
                   if values['learner_fault'] else ''))

    def diagnostics(self) -> DiagnosticArray:
        """Return the learner's status and one status per actor."""
        core = self.core
        values = core.diagnostic_values()
        refused = sum(core.ledger.refused.values())
        fresh, self._reported_refusals = refused - self._reported_refusals, refused
        if values['learner_fault']:
            level, message = DiagnosticStatus.ERROR, f'learner fault: {values["learner_fault"]}'
        elif fresh:
            level, message = DiagnosticStatus.WARN, (f'{fresh} transition batch(es) refused: '
                                                     f'{self.last_refusal}')
        else:
            level = DiagnosticStatus.OK
            message = 'warming up' if core.warmup else ('learning' if values['training'] ==
                                                        'True' else 'paused')
        statuses = [self._status(level, 'learner', message, values)]
        for actor_id, actor in core.actor_values().items():
            silent = actor['silent_s'] and float(actor['silent_s']) > SILENT_ACTOR
            statuses.append(self._status(
                DiagnosticStatus.WARN if silent else DiagnosticStatus.OK, f'actor {actor_id}',
                f'silent for {actor["silent_s"]} s' if silent else
                f'{actor["transitions_per_s"]} transitions/s, {actor["policy_lag"]} '
                'version(s) behind', {'actor_id': actor_id, **actor}))
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self.get_clock().now().to_msg()
        return array

    def _status(self, level: bytes, what: str, message: str,
                values: dict[str, str]) -> DiagnosticStatus:
        return DiagnosticStatus(
            level=level, name=f'{self.get_name()}: {what}', message=message,
            hardware_id=self.task.name,
            values=[KeyValue(key=key, value=value) for key, value in values.items()])

    def shut_down(self) -> None:
        """Stop learning and write the exit checkpoint; call once spinning has stopped."""
        self.core.close(self.get_logger().error)
        self.get_logger().info('learner stopped; exiting')


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or SIGTERM; 1 if it cannot start."""
    return spin_until_stopped(DDPGLearnerNode, NODE_NAME, args)


if __name__ == '__main__':
    sys.exit(main())
