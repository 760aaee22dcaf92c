"""
A training ddpg_agent killed (kill -9) at random moments while it checkpoints every few steps.

Its newest checkpoint, and the replay buffer saved with it, always load.

``DDPG_ROS_KILL_TRIALS=50 pytest test/test_agent_crash_safety.py -s`` runs a longer campaign.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from ddpg_ros.core.checkpoint import load_checkpoint, remove_stale_temporaries
from ddpg_ros.core.replay_buffer import ReplayBuffer

from agent_helpers import START_TIMEOUT, agent_command
from conftest import ProcessGroup, node_command

pytestmark = pytest.mark.ros

TRIALS = int(os.environ.get('DDPG_ROS_KILL_TRIALS', '5'))
"""Agents killed; each checkpoints (with its buffer) every 25 steps, many saves a second.
A trial costs two node start-ups (about 7 s on 2 cores); test_checkpoint.py kills a saving
writer 12 times in one process, a fraction of a second each."""


def _newest(directory: Path) -> Path | None:
    checkpoints = sorted(directory.glob('checkpoint_*.pt'))
    return checkpoints[-1] if checkpoints else None


def test_kill_9_while_checkpointing_never_leaves_an_unreadable_latest_checkpoint(
        ros_processes: ProcessGroup, tmp_path: Path) -> None:
    rng = random.Random(0)
    failures: list[str] = []
    steps_at_kill = []
    mid_write = 0
    for trial in range(TRIALS):
        directory = tmp_path / f'trial{trial}'
        # A new robot for each agent: a long-lived Fast DDS peer of participants killed with
        # SIGKILL can stop delivering to their successors over shared memory (one CI run saw
        # the eighth agent get no state in 57 s), and that is not what this test is about.
        sim = ros_processes.start(node_command('mujoco_sim_node'), name=f'mujoco_sim{trial}')
        agent = ros_processes.start(agent_command(
            checkpoint_dir=str(directory), checkpoint_every=25, save_buffer=True,
            keep_checkpoints=2, hidden_sizes=[256, 256], batch_size=32, buffer_size=20_000,
            learning_starts=10_000, device='cpu'), name=f'ddpg_agent{trial}')
        deadline = time.monotonic() + START_TIMEOUT + 30.0
        while _newest(directory) is None and time.monotonic() < deadline:
            assert agent.popen.poll() is None, agent.output()
            time.sleep(0.05)
        assert _newest(directory) is not None, agent.output()
        time.sleep(rng.uniform(0.0, 1.5))
        agent.send_signal(signal.SIGKILL)
        assert agent.wait(10.0) == -signal.SIGKILL
        assert sim.stop() == 0, sim.output()

        newest = _newest(directory)
        try:
            checkpoint = load_checkpoint(newest)
            steps_at_kill.append(checkpoint.counters['env_steps'])
            # The buffer is written before its checkpoint: the newest always has one.
            buffer = ReplayBuffer(20_000, checkpoint.spec.obs_dim, checkpoint.spec.action_dim)
            buffer.load(newest.with_suffix('.npz'))
            # Counted before stored: a save may fall between the two for the newest step.
            assert len(buffer) >= checkpoint.counters['env_steps'] - 1 > 0
        except Exception as exc:  # every failure is counted, then reported together
            failures.append(f'trial {trial}: {newest.name}: {type(exc).__name__}: {exc}')
        # A kill that landed inside a write leaves its temporary file; the next start sweeps.
        mid_write += bool(remove_stale_temporaries(directory))
    print(f'kill -9 trials: {TRIALS}, failures: {len(failures)}, killed mid-write: '
          f'{mid_write}, env_steps at the newest checkpoints: {steps_at_kill}')
    assert failures == []
    assert len(set(steps_at_kill)) > 1, 'the kills should land at different moments'
