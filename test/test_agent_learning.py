"""ddpg_agent learns through ROS: ddpg_agent + mujoco_sim in lockstep solve InvertedPendulum,
the checkpoint ddpg_agent wrote evaluates in ``ddpg-eval``, and a run resumed from a
checkpoint and its replay buffer goes on holding the solution.

Budget (CPU, 2 shared cores): the agent reaches the noise-free return of 1000 within 40,000
environment steps; seed 0 takes about 17,000-19,000 (1-1.5 min here, with other load) and
holds it for three checkpoints in a row by about 21,000.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import pytest
import torch

from ddpg_ros.checkpoint import CheckpointError, load_checkpoint
from ddpg_ros.envs import make_env
from ddpg_ros.evaluation import evaluate

from agent_helpers import agent_command, ddpg_cli, eval_mean_return
from conftest import ProcessGroup, TestProcess, node_command

pytestmark = pytest.mark.ros

PENDULUM_LEARNER = {'learning_starts': 1000, 'hidden_sizes': '[64, 64]', 'batch_size': 64,
                    'actor_lr': 0.001, 'critic_lr': 0.001, 'buffer_size': 100_000,
                    'device': 'cpu'}
"""Small networks and lr 1e-3: solves the pendulum quickly on a CPU."""
STEP_BUDGET = 40_000
TIME_BUDGET = 300.0
SOLVED = 1000.0
HELD = 3
"""Checkpoints in a row at SOLVED that count as a learned policy to resume from."""
RESUMED_STEPS = 6000
EVAL_EPISODES = 3


class CheckpointWatcher:
    """Noise-free returns of a run's checkpoints as they appear, by env steps."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.returns: dict[int, float] = {}
        self.paths: dict[int, Path] = {}
        self._env = make_env('InvertedPendulum-v5')

    def poll(self) -> None:
        for path in sorted(self.directory.glob('checkpoint_*.pt')):
            steps = int(path.stem.split('_')[1])
            if steps in self.returns:
                continue
            try:
                policy = load_checkpoint(path).build_agent(device='cpu', optimizers=False)
            except CheckpointError:
                continue  # not there any more or not yet: atomic, but pruned or renamed
            # The worst of a few episodes: solved means every start state is balanced.
            self.returns[steps] = min(evaluate(policy.act, self._env, EVAL_EPISODES,
                                               seed=1000))
            self.paths[steps] = path

    def first_solved(self) -> int | None:
        return next((s for s, r in sorted(self.returns.items()) if r >= SOLVED), None)

    def first_held(self) -> int | None:
        """The step of the last of the first ``HELD`` consecutive solved checkpoints."""
        run = 0
        for steps, value in sorted(self.returns.items()):
            run = run + 1 if value >= SOLVED else 0
            if run == HELD:
                return steps
        return None

    def close(self) -> None:
        self._env.close()


def watch(agent: TestProcess, watcher: CheckpointWatcher, done, deadline: float) -> None:
    """Evaluate new checkpoints until ``done()`` or the agent exits or time runs out."""
    while time.monotonic() < deadline:
        watcher.poll()
        if done() or agent.popen.poll() is not None:
            watcher.poll()
            return
        time.sleep(0.5)


def test_agent_and_sim_in_lockstep_solve_the_pendulum_and_a_resumed_run_holds_it(
        ros_processes: ProcessGroup, tmp_path: Path) -> None:
    torch.set_num_threads(1)  # this process evaluates; leave the cores to the nodes
    first_dir, resumed_dir = tmp_path / 'first', tmp_path / 'resumed'
    sim = ros_processes.start(node_command('mujoco_sim_node', '-p', 'seed:=0'),
                              name='mujoco_sim')
    agent = ros_processes.start(agent_command(
        seed=0, checkpoint_dir=first_dir, checkpoint_every=1000, keep_checkpoints=0,
        save_buffer=True, total_steps=STEP_BUDGET, **PENDULUM_LEARNER), name='ddpg_agent')
    first = CheckpointWatcher(first_dir)
    watch(agent, first, lambda: first.first_held() is not None,
          time.monotonic() + TIME_BUDGET)
    assert first.first_solved() is not None, \
        f'noise-free returns by env step: {first.returns}\n{agent.output()[-3000:]}'
    solved = first.paths[first.first_solved()]
    print(f'solved after {first.first_solved()} env steps: {first.returns}')
    # The checkpoint ddpg_agent wrote evaluates in ddpg-eval, unchanged.
    assert eval_mean_return(ddpg_cli('ddpg-eval', '--checkpoint', str(solved),
                                     '--episodes', '5', '--seed', '0')) == SOLVED

    # Resume from the learned policy, with its buffer, in new processes (a new sim episode):
    # the run goes on from its step count and holds what it learned.
    held = first.first_held()
    assert held is not None, f'never solved {HELD} checkpoints in a row: {first.returns}'
    assert first.paths[held].with_suffix('.npz').is_file()
    assert agent.stop() == 0 and sim.stop() == 0
    ros_processes.start(node_command('mujoco_sim_node', '-p', 'seed:=1'), name='mujoco_sim')
    resumed_agent = ros_processes.start(agent_command(
        seed=0, checkpoint_dir=resumed_dir, checkpoint_every=1000, keep_checkpoints=0,
        save_buffer=True, total_steps=held + RESUMED_STEPS,
        load_checkpoint=first.paths[held], **PENDULUM_LEARNER), name='ddpg_agent')
    assert resumed_agent.wait(TIME_BUDGET) == 0, resumed_agent.output()[-3000:]
    resumed = CheckpointWatcher(resumed_dir)
    resumed.poll()
    first.close()
    resumed.close()
    output = resumed_agent.output()
    match = re.search(r'resumed at step (\d+)', output)
    assert match and int(match.group(1)) == held, output[-3000:]
    assert 'no replay buffer' not in output
    # Counting went on from the checkpoint: no warm-up again, no checkpoint before it.
    assert min(resumed.returns) > held and max(resumed.returns) == held + RESUMED_STEPS
    print(f'resumed at {held}: {resumed.returns}')
    values = list(resumed.returns.values())
    assert len(values) >= RESUMED_STEPS // 1000
    assert statistics.median(values) >= SOLVED, resumed.returns
