"""
Checkpoints travel between ddpg-train and ddpg_agent.

A policy trained in Gymnasium, deployed by ddpg_agent against mujoco_sim in lockstep, gets
exactly the return ddpg-eval reports; one trained against late commands (a randomization
profile of the loop's timing) balances full episodes on the agent's control timer against
the sim in real time, at full speed.

The policies are the session's ``ddpg-train`` pendulum runs (``pendulum_run`` in conftest.py,
shared with test_train_cli.py). The realtime deploy takes one to three 40 s episodes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ddpg_ros.core.checkpoint import load_checkpoint

from agent_helpers import START_TIMEOUT, AgentListener, agent_command, ddpg_cli, eval_mean_return
from conftest import PendulumRun, ProcessGroup, RosTestNode, node_command

pytestmark = [pytest.mark.ros, pytest.mark.learning]

SOLVED = 1000.0


@pytest.fixture
def gym_checkpoint(pendulum_run: PendulumRun) -> Path:
    """Return the solved checkpoint of the session's ``ddpg-train`` pendulum run (1000)."""
    # The best evaluation's checkpoint, not the last one: DDPG on the pendulum solves it and
    # can lose it again a few thousand steps later, and when depends on the machine's
    # floating-point kernels.
    best = pendulum_run.out / 'best.pt'
    assert load_checkpoint(best).extra['best_eval_return'] == SOLVED, \
        (pendulum_run.out / 'progress.csv').read_text()
    return best


@pytest.fixture
def randomized_checkpoint(pendulum_run: PendulumRun) -> Path:
    """Return the solved checkpoint of the session's run against late commands."""
    best = pendulum_run.randomized / 'best.pt'
    assert load_checkpoint(best).extra['best_eval_return'] == SOLVED, \
        (pendulum_run.randomized / 'progress.csv').read_text()
    return best


def test_ddpg_train_checkpoint_deploys_through_ros_with_the_ddpg_eval_return(
        ros_processes: ProcessGroup, ros_node: RosTestNode, gym_checkpoint: Path) -> None:
    seed = 5
    expected = eval_mean_return(ddpg_cli('ddpg-eval', '--checkpoint', str(gym_checkpoint),
                                         '--episodes', '1', '--seed', str(seed)))
    listener = AgentListener(ros_node)
    ros_processes.start(node_command('mujoco_sim_node', '-p', f'seed:={seed}'),
                        name='mujoco_sim')
    ros_processes.start(agent_command(mode='deploy', task='inverted_pendulum',
                                      load_checkpoint=gym_checkpoint), name='ddpg_agent')
    # The sim's first episode starts from gymnasium's reset(seed=5), as ddpg-eval's does.
    assert ros_node.spin_until(lambda: len(listener.returns) >= 2, START_TIMEOUT + 60.0), \
        ros_processes.processes[-1].output()[-3000:]
    assert listener.returns[0] == expected == SOLVED
    assert listener.returns[1] == SOLVED


def test_a_policy_trained_on_late_commands_balances_on_the_agent_timer_in_real_time(
        ros_processes: ProcessGroup, ros_node: RosTestNode,
        randomized_checkpoint: Path) -> None:
    # Shaped like a real robot: the sim runs on the clock at 100 Hz physics and publishes
    # every physics step (4x the policy's 25 Hz), and the agent acts on its own timer, not
    # per state message, so a command takes effect from the next physics step after it
    # arrives, and a tick that a busy machine delays lands later still. A policy trained in
    # lockstep never saw either and dropped the pole at this speed (returns 86, 75, 37 on a
    # loaded CI machine); this one trained against commands up to half a period late, 5 %
    # of them later still, observing the last command it sent.
    listener = AgentListener(ros_node)
    ros_processes.start(node_command(
        'mujoco_sim_node', '-p', 'seed:=3', '-p', 'mode:=realtime', '-p', 'timestep:=0.01',
        '-p', 'state_rate:=100.0', '-p', 'real_time_factor:=1.0'), name='mujoco_sim')
    agent = ros_processes.start(agent_command(
        mode='deploy', task='inverted_pendulum', load_checkpoint=randomized_checkpoint,
        control_rate=25.0, use_sim_time=True, observe_last_action=True), name='ddpg_agent')
    # An episode of the agent's counts its own steps, from its first command on; 1000 means
    # the policy kept the pole up for 1000 ticks of its timer in a row (40 s of sim time).
    assert ros_node.spin_until(lambda: SOLVED in listener.returns
                               or len(listener.returns) >= 3, START_TIMEOUT + 240.0), \
        (listener.returns, agent.output()[-3000:])
    assert SOLVED in listener.returns, (listener.returns, agent.output()[-3000:])
    assert 'control_rate 25 Hz' in agent.output()
