"""
One smoke test per node: it starts, takes a lockstep step with its peers, and exits with 0.

These are the ROS half of ``scripts/test.sh --quick``, the edit-test loop's tier; the promises
themselves are held by the other test files, which CI runs in full.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from agent_helpers import SMALL_LEARNER, START_TIMEOUT, AgentListener, agent_command
from conftest import ProcessGroup, RosTestNode, node_command
from test_fleet_nodes import Fleet, start_learner, start_robot
from test_mujoco_sim_node import SimClient, stamp_ns

pytestmark = [pytest.mark.ros, pytest.mark.smoke]


def test_mujoco_sim_steps_once_per_command_and_exits_0(
        ros_processes: ProcessGroup, ros_node: RosTestNode) -> None:
    sim = ros_processes.start(node_command('mujoco_sim_node'), name='mujoco_sim')
    client = SimClient(ros_node)
    first = client.connect()
    second = client.step([0.5], first)
    assert stamp_ns(second) > stamp_ns(first)
    assert list(second.position) != list(first.position), 'a command moved nothing'
    assert sim.stop() == 0, sim.output()


def test_ddpg_agent_acts_on_the_sim_and_exits_0_after_its_safe_command(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path: Path) -> None:
    listener = AgentListener(ros_node)
    sim = ros_processes.start(node_command('mujoco_sim_node'), name='mujoco_sim')
    agent = ros_processes.start(agent_command(
        checkpoint_dir=tmp_path / 'checkpoints', safe_command='[0.25]', **SMALL_LEARNER),
        name='ddpg_agent')
    # Two commands: the second was computed from the state the first one's step produced.
    assert ros_node.spin_until(lambda: len(listener.commands) >= 2, START_TIMEOUT), \
        agent.output()
    agent.send_signal(signal.SIGINT)
    assert agent.wait(START_TIMEOUT) == 0, agent.output()
    assert 'safe command [0.25] sent; exiting' in agent.output()
    assert 'not acknowledged' not in agent.output()
    assert ros_node.spin_until(lambda: listener.commands[-1][0] == 0.25, START_TIMEOUT)
    assert sim.stop() == 0, sim.output()


def test_ddpg_learner_serves_a_remote_actor_and_exits_0(
        ros_processes: ProcessGroup, ros_node: RosTestNode, tmp_path: Path) -> None:
    fleet = Fleet(ros_node)
    learner = start_learner(ros_processes, tmp_path / 'learner', learning_starts=20)
    actor = start_robot(ros_processes, 0, transition_batch=10)
    fleet.watch_commands('robot_0')

    def served() -> bool:
        status = fleet.agent_status('robot_0') or {}
        return (int((fleet.status('learner') or {}).get('transitions', 0)) >= 10
                and int(status.get('policy_version') or 0) >= 1)

    assert fleet.wait(served, START_TIMEOUT), (learner.output()[-2000:], actor.output())
    assert all(np.isfinite(c).all() for _, c in fleet.commands['robot_0'])
    assert actor.stop() == 0, actor.output()
    assert learner.stop() == 0, learner.output()
