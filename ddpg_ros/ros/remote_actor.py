"""
The learning side a ``ddpg_agent`` node gets, and the DDS wiring of a remote one.

:func:`make_policy` builds what the control step acts with, from the node's settings:
:class:`~ddpg_ros.control.training.Deployment` (``mode: deploy``),
:class:`~ddpg_ros.control.training.LocalTraining` (``learner: local``) or
:class:`~ddpg_ros.fleet.actor.RemoteTraining` (``learner: remote``), which a
:class:`LearnerLink` connects to ``/ddpg_learner/policy`` and ``/ddpg_learner/transitions``.

Why a node and an executor thread of the link's own: the agent's single executor thread runs
the control step, and a lockstep step may wait for the learner (``hold``); the policy that
ends the wait must arrive through a thread that is not the one waiting. The link's callback
only hands each message to the remote actor's worker thread, which decodes it; batches are
published from that thread (``rcl_publish`` is thread-safe).
"""

from __future__ import annotations

import threading

from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import UInt8MultiArray

from ddpg_ros.core.checkpoint import PolicySpec
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.control.settings import AgentSettings
from ddpg_ros.control.training import Deployment, LocalTraining
from ddpg_ros.fleet.actor import RemoteTraining
from ddpg_ros.ros.fleet_messages import (POLICY_QOS, POLICY_TOPIC, TRANSITIONS_QOS,
                                         TRANSITIONS_TOPIC, message_parts, to_message)
from ddpg_ros.tasks import Task

DRAIN_TIMEOUT = 2.0
"""Seconds an exiting actor waits for its last batches to be acknowledged."""
SPIN_TIMEOUT = 0.1
"""Seconds the link's thread waits for work before it checks for a stop."""


class LearnerLink:
    """
    A node of the actor's own for the learner's topics, spun by a thread of its own.

    It ignores the process's global ROS arguments (``__node:=`` would rename it to its
    parent's name); the topics are the parent's, resolved with the parent's remappings.

    :param parent: the ``ddpg_agent`` node.
    :param remote: the remote actor to connect.
    """

    def __init__(self, parent: Node, remote: RemoteTraining) -> None:
        policy_topic = parent.resolve_topic_name(POLICY_TOPIC)
        transitions_topic = parent.resolve_topic_name(TRANSITIONS_TOPIC)
        self.node = Node(f'{parent.get_name()}_learner_link', namespace=parent.get_namespace(),
                         context=parent.context, use_global_arguments=False,
                         start_parameter_services=False)
        publisher = self.node.create_publisher(UInt8MultiArray, transitions_topic,
                                               TRANSITIONS_QOS)
        self.node.create_subscription(UInt8MultiArray, policy_topic,
                                      lambda msg: remote.offer_policy(*message_parts(msg)),
                                      POLICY_QOS)
        self.topics = (policy_topic, transitions_topic)
        self._executor = SingleThreadedExecutor(context=parent.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name='learner_link', daemon=True)
        self._thread.start()
        remote.connect(
            send=lambda wire: publisher.publish(to_message(wire)),
            present=lambda: publisher.get_subscription_count() > 0,
            drain=lambda: publisher.wait_for_all_acked(Duration(seconds=DRAIN_TIMEOUT)),
            disconnect=self.close)

    def _spin(self) -> None:
        while not self._stop.is_set() and self.node.context.ok():
            try:
                self._executor.spin_once(timeout_sec=SPIN_TIMEOUT)
            except ExternalShutdownException:
                return

    def close(self) -> None:
        """Stop the thread and destroy the node (once)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._executor.shutdown()
        self.node.destroy_node()


def make_policy(node: Node, task: Task, spec: PolicySpec, settings: AgentSettings,
                config: DDPGConfig) -> LocalTraining | Deployment | RemoteTraining:
    """
    Return the learning side the settings ask for; a remote one is connected to the learner.

    :raises ValueError: as the chosen class does (a bad checkpoint, an unwritable directory).
    """
    log = node.get_logger()
    if settings.mode == 'deploy':
        return Deployment(settings.load_checkpoint, spec)
    if settings.learner == 'local':
        return LocalTraining(task, spec, settings, config, log.info, log.warning, log.error)
    remote = RemoteTraining(task, spec, settings, config,
                            settings.actor_id or node.get_fully_qualified_name(),
                            log.info, log.warning, log.error)
    link = LearnerLink(node, remote)
    log.info(f'learner remote: acting as {remote.actor_id}; policies from {link.topics[0]}, '
             f'transitions to {link.topics[1]}')
    return remote


__all__ = ['LearnerLink', 'make_policy']
