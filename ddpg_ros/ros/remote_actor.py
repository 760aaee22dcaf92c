"""
The learning side a ``ddpg_agent`` node gets, and the DDS wiring of a remote one.

:func:`make_policy` builds what the control step acts with, from the node's settings:
:class:`~ddpg_ros.control.training.Deployment` (``mode: deploy``),
:class:`~ddpg_ros.control.training.LocalTraining` (``learner: local``) or
:class:`~ddpg_ros.fleet.actor.RemoteTraining` (``learner: remote``), which this module
connects to ``/ddpg_learner/policy`` and ``/ddpg_learner/transitions``.

The policy subscription's callback runs in the node's executor thread, the control step's;
it only hands the message to the remote actor's own thread, which decodes it. Batches are
published from that thread too (``rcl_publish`` is thread-safe).
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.node import Node
from std_msgs.msg import UInt8MultiArray

from ddpg_ros.checkpoint import PolicySpec
from ddpg_ros.config import DDPGConfig
from ddpg_ros.control.settings import AgentSettings
from ddpg_ros.control.training import Deployment, LocalTraining
from ddpg_ros.fleet.actor import RemoteTraining
from ddpg_ros.ros.fleet_messages import (POLICY_QOS, POLICY_TOPIC, TRANSITIONS_QOS,
                                         TRANSITIONS_TOPIC, message_parts, to_message)
from ddpg_ros.tasks import Task

DRAIN_TIMEOUT = 2.0
"""Seconds an exiting actor waits for its last batches to be acknowledged."""


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
    publisher = node.create_publisher(UInt8MultiArray, TRANSITIONS_TOPIC, TRANSITIONS_QOS)
    node.create_subscription(UInt8MultiArray, POLICY_TOPIC,
                             lambda msg: remote.offer_policy(*message_parts(msg)), POLICY_QOS)
    remote.connect(send=lambda wire: publisher.publish(to_message(wire)),
                   present=lambda: publisher.get_subscription_count() > 0,
                   drain=lambda: publisher.wait_for_all_acked(Duration(seconds=DRAIN_TIMEOUT)))
    log.info(f'learner remote: acting as {remote.actor_id}; policies from {POLICY_TOPIC}, '
             f'transitions to {TRANSITIONS_TOPIC}')
    return remote


__all__ = ['make_policy']
