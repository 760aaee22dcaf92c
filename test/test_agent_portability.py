"""
Checkpoints travel between ddpg-train and ddpg_agent.

A policy trained in Gymnasium, deployed by ddpg_agent against mujoco_sim, gets exactly the
return ddpg-eval reports.

Budget: ``ddpg-train`` needs 15,000 steps to solve InvertedPendulum-v5 (about 30 s here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_helpers import START_TIMEOUT, AgentListener, agent_command, ddpg_cli, eval_mean_return
from conftest import ProcessGroup, RosTestNode, node_command

pytestmark = pytest.mark.ros

SOLVED = 1000.0


@pytest.fixture(scope='module')
def gym_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train ``ddpg-train`` on InvertedPendulum-v5 to a solved checkpoint (return 1000)."""
    out = tmp_path_factory.mktemp('ddpg_train')
    stdout = ddpg_cli('ddpg-train', '--env', 'InvertedPendulum-v5', '--total-steps', '15000',
                      '--learning-starts', '1000', '--actor-lr', '1e-3', '--critic-lr', '1e-3',
                      '--hidden-sizes', '64', '64', '--batch-size', '64', '--seed', '0',
                      '--torch-threads', '1', '--eval-every', '15000', '--eval-episodes', '3',
                      '--no-progress', '--no-tensorboard', '--out', str(out))
    assert 'final_eval_return: 1000.000' in stdout, stdout
    return out / 'checkpoint.pt'


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
