"""ddpg_agent learns through ROS: ddpg_agent + mujoco_sim in lockstep solve InvertedPendulum,
and the checkpoint ddpg_agent wrote evaluates in ``ddpg-eval``.

Budget (CPU, 2 shared cores): the agent reaches the noise-free return of 1000 within 40,000
environment steps; seed 0 takes about 18,000-19,000 (1-1.5 min here, with other load).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from ddpg_ros.checkpoint import CheckpointError, load_checkpoint
from ddpg_ros.envs import make_env
from ddpg_ros.evaluation import evaluate

from agent_helpers import agent_command, ddpg_cli, eval_mean_return
from conftest import ProcessGroup, node_command

pytestmark = pytest.mark.ros

PENDULUM_LEARNER = {'learning_starts': 1000, 'hidden_sizes': '[64, 64]', 'batch_size': 64,
                    'actor_lr': 0.001, 'critic_lr': 0.001, 'buffer_size': 100_000,
                    'device': 'cpu'}
"""Small networks and lr 1e-3: solves the pendulum quickly on a CPU."""
STEP_BUDGET = 40_000
TIME_BUDGET = 270.0
SOLVED = 1000.0


def test_agent_and_sim_in_lockstep_solve_the_pendulum(
        ros_processes: ProcessGroup, tmp_path: Path) -> None:
    torch.set_num_threads(1)  # this process evaluates; leave the cores to the nodes
    checkpoints = tmp_path / 'checkpoints'
    ros_processes.start(node_command('mujoco_sim_node', '-p', 'seed:=0'), name='mujoco_sim')
    agent = ros_processes.start(agent_command(
        seed=0, checkpoint_dir=checkpoints, checkpoint_every=1000, keep_checkpoints=0,
        total_steps=STEP_BUDGET, **PENDULUM_LEARNER), name='ddpg_agent')
    env = make_env('InvertedPendulum-v5')
    evaluated: dict[int, float] = {}
    solved: Path | None = None
    deadline = time.monotonic() + TIME_BUDGET
    while solved is None and time.monotonic() < deadline:
        for path in sorted(checkpoints.glob('checkpoint_*.pt')):
            steps = int(path.stem.split('_')[1])
            if steps in evaluated or steps < 4000:
                continue
            try:
                policy = load_checkpoint(path).build_agent(device='cpu', optimizers=False)
            except CheckpointError:
                continue  # not there any more or not yet: atomic, but pruned or renamed
            evaluated[steps] = min(evaluate(policy.act, env, 3, seed=1000))
            if evaluated[steps] >= SOLVED:
                solved = path
                break
        if solved is None and agent.popen.poll() is not None:
            break
        time.sleep(0.5)
    env.close()
    assert solved is not None, f'noise-free returns by env step: {evaluated}\n' \
                               f'{agent.output()[-3000:]}'
    print(f'solved after {int(solved.stem.split("_")[1])} env steps: {evaluated}')
    # The checkpoint ddpg_agent wrote evaluates in ddpg-eval, unchanged.
    assert eval_mean_return(ddpg_cli('ddpg-eval', '--checkpoint', str(solved),
                                     '--episodes', '5', '--seed', '0')) == SOLVED
