"""
Replay buffer memory per transition: ddpg_ros's ReplayBuffer next to SB3's ReplayBuffer.

Rerun (a few seconds)::

    . .venv/bin/activate
    python benchmarks/memory.py

Sizes are HalfCheetah-v5's (obs 17, action 6). The raw size of a transition in float32 is
``4 * (obs + action + reward + next_obs + terminated) = 4 * (17 + 6 + 1 + 17 + 1)`` bytes.
SB3's buffer is built from the real env's spaces (its observation space is float64, which SB3
keeps; it casts float64 actions to float32), in both its default layout and
``optimize_memory_usage=True`` (which SB3 only allows without timeout handling, so it would
bootstrap wrongly through HalfCheetah's time limit); its ``timeouts`` column is counted.
Arrays are allocated lazily by the OS, so ``nbytes`` is what a full buffer holds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import save_report  # noqa: E402

ENV_ID = 'HalfCheetah-v5'


def sb3_nbytes(buffer) -> int:
    names = ('observations', 'next_observations', 'actions', 'rewards', 'dones', 'timeouts')
    return sum(getattr(buffer, n).nbytes for n in names
               if isinstance(getattr(buffer, n, None), np.ndarray))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--capacity', type=int, default=1_000_000)
    parser.add_argument('--out', type=Path, default=HERE / 'results' / 'memory.json')
    args = parser.parse_args()

    import gymnasium as gym
    from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer

    from ddpg_ros.core.replay_buffer import ReplayBuffer

    env = gym.make(ENV_ID)
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    cap = args.capacity
    raw = 4 * (obs_dim + act_dim + 1 + obs_dim + 1)
    ours = ReplayBuffer(cap, obs_dim, act_dim)
    rows = [('raw float32 (obs, action, reward, next_obs, terminated)', raw, None),
            ('ddpg_ros ReplayBuffer', ours.nbytes / cap, 'float32 columns')]
    for optimize in (False, True):
        sb3 = SB3ReplayBuffer(cap, env.observation_space, env.action_space, device='cpu',
                              n_envs=1, optimize_memory_usage=optimize,
                              handle_timeout_termination=not optimize)
        dtypes = f'obs {sb3.observations.dtype}, actions {sb3.actions.dtype}'
        name = ('SB3 ReplayBuffer, optimize_memory_usage=True (needs '
                'handle_timeout_termination=False)' if optimize
                else 'SB3 ReplayBuffer (default, what SB3 DDPG uses)')
        rows.append((name, sb3_nbytes(sb3) / cap, dtypes))
        del sb3
    env.close()

    lines = ['| buffer | bytes / transition | vs raw float32 | note |',
             '| --- | --- | --- | --- |']
    for name, per, note in rows:
        lines.append(f'| {name} | {per:.1f} | {per / raw:.2f}x | {note or ""} |')
    lines.append(f'\n(obs {obs_dim}, action {act_dim}, capacity {cap:,}: ddpg_ros holds '
                 f'{ours.nbytes / 2**20:.0f} MiB when full.)')
    table = '\n'.join(lines)
    result = {'env': ENV_ID, 'obs_dim': obs_dim, 'action_dim': act_dim, 'capacity': cap,
              'bytes_per_transition': {name: per for name, per, _ in rows},
              'machine': f'{platform.node()}, {os.cpu_count()} CPUs, '
                         f'Python {platform.python_version()}',
              'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
              'markdown': table}
    save_report(args.out, result, table)


if __name__ == '__main__':
    main()
