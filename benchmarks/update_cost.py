"""
What each learner extension costs per update, and so per robot step at 1, 5 and 20 updates.

Rerun (about 5 minutes; RESULTS.md quotes the CPU-time medians)::

    . .venv/bin/activate
    python benchmarks/update_cost.py

Every learner gets HalfCheetah-v5 sizes (obs 17, action 6), 256-256 networks, batch 256,
Adam lr 1e-3, float32 on the CPU, one torch thread, and samples from the same filled
100k-transition buffer (``ReplayBuffer.sample`` + ``DDPG.update``):

* ``ddpg``: today's learner, every extension off (the paper's update);
* ``td3``: 2 critics, target smoothing 0.2, policy delay 2; next to it Stable-Baselines3's
  TD3 (``TD3.train(gradient_steps=N)``, the same sizes) as the peer;
* ``droq``: 2 critics with LayerNorm and dropout 0.01, target smoothing 0.2 (DroQ's critics);
* ``crossq``: 2 batch-renormalized critics without target networks, policy delay 3;
* ``redq10_batched`` and ``redq10_loop``: 10 critics (REDQ's ensemble size) as our one
  batched module, and the same update with the critics as 10 separate modules evaluated in
  a Python loop: what batching the ensemble buys;
* ``crossq_c512``, ``crossq_c1024``, ``crossq_c2048`` (not run unless named in
  ``--learners``): ``crossq`` with wider critics (``critic_hidden_sizes``) and the actor kept
  at 256-256, up to the width of CrossQ's paper: what a wider critic costs here::

      python benchmarks/update_cost.py --learners crossq crossq_c512 crossq_c1024 \
          crossq_c2048 --block 20 --blocks 5 --out benchmarks/results/update_cost_width.json

* each of those with ``_bf16`` (``crossq_bf16``, ``crossq_c512_bf16``, ...): the same under
  ``precision: bfloat16``, whose matrix products run on a CPU's bfloat16 units (AMX on a
  Sapphire Rapids Xeon) and are emulated, slowly, elsewhere.

Blocks of ``--block`` updates of every learner in turn, ``--blocks`` rounds, order rotating;
rates from CPU time (``time.process_time``, one thread: it barely moves when other
processes share the cores) and wall time; medians. The cost of a robot step at an
update-to-data ratio k is k updates: ``k / rate``, given relative to ``ddpg`` at k = 1 (or to
the first learner named when ``ddpg`` is not among them), and the CPU-hours of a 100k-step run
at one update per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from learner_speed import (ACT_DIM, BATCH, HIDDEN, LR, OBS_DIM, fill_sb3_buffer, machine,
                           random_transitions)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import save_report  # noqa: E402
TD3 = dict(n_critics=2, target_noise=0.2, policy_delay=2)
CROSSQ = dict(n_critics=2, critic_norm='batch_renorm', policy_delay=3, adam_beta1=0.5,
              target_noise=0.2)
VARIANTS: dict[str, dict] = {
    'ddpg': {},
    'td3': TD3,
    'droq': dict(n_critics=2, critic_norm='layer', critic_dropout=0.01, target_noise=0.2),
    'crossq': CROSSQ,
    'redq10_batched': dict(n_critics=10, target_noise=0.2),
    'redq10_loop': dict(n_critics=10, target_noise=0.2),
}
WIDE: dict[str, dict] = {f'crossq_c{width}': dict(CROSSQ, critic_hidden_sizes=(width, width))
                         for width in (512, 1024, 2048)}
WIDE.update({f'{name}_bf16': dict(learner, precision='bfloat16')
             for name, learner in [('crossq', CROSSQ), *WIDE.items()]})
"""Run only when named: a 2,048-wide update takes seconds of CPU per block. ``_bf16``: the
same with ``precision: bfloat16``, for CPUs with bfloat16 units (AMX, ``avx512_bf16``)."""
LEARNERS = {**VARIANTS, **WIDE}
"""Every learner of ours by name."""
RATIOS = (1, 5, 20)
RUN_STEPS = 100_000
"""The budget of the issue's MuJoCo comparisons, for the CPU-hours column."""


class LoopCritics(nn.Module):
    """The ensemble as separate plain critics, evaluated one after another."""

    def __init__(self, n: int) -> None:
        super().__init__()
        from ddpg_ros.core.networks import Critic
        self.members = nn.ModuleList(Critic(OBS_DIM, ACT_DIM, HIDDEN) for _ in range(n))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(obs, action) for member in self.members])


class Ours:
    def __init__(self, name: str, fill: dict[str, np.ndarray]) -> None:
        import copy
        from ddpg_ros.core.config import DDPGConfig
        from ddpg_ros.core.ddpg import DDPG
        from ddpg_ros.core.replay_buffer import ReplayBuffer

        config = DDPGConfig(actor_lr=LR, critic_lr=LR, batch_size=BATCH, hidden_sizes=HIDDEN,
                            buffer_size=len(fill['rewards']), device='cpu', seed=0,
                            **LEARNERS[name])
        self.agent = DDPG(OBS_DIM, -np.ones(ACT_DIM), np.ones(ACT_DIM), config)
        if name.endswith('_loop'):
            self.agent.critic = LoopCritics(config.n_critics)
            self.agent.critic_target = copy.deepcopy(self.agent.critic).requires_grad_(False)
            self.agent.critic_optimizer = torch.optim.Adam(self.agent.critic.parameters(),
                                                           lr=LR, fused=True)
        self.buffer = ReplayBuffer(len(fill['rewards']), OBS_DIM, ACT_DIM, seed=0, device='cpu')
        for key, column in fill.items():
            getattr(self.buffer, key)[:] = column
        self.buffer.size = self.buffer.capacity

    def run(self, n: int) -> None:
        for _ in range(n):
            self.agent.update(self.buffer.sample(BATCH))


class SB3TD3:
    def __init__(self, fill: dict[str, np.ndarray]) -> None:
        import gymnasium as gym
        from stable_baselines3 import TD3 as SB3_TD3
        from stable_baselines3.common.logger import configure

        self.model = SB3_TD3('MlpPolicy', gym.make('HalfCheetah-v5'), learning_rate=LR,
                             buffer_size=len(fill['rewards']), batch_size=BATCH,
                             policy_kwargs={'net_arch': list(HIDDEN)}, seed=0, device='cpu')
        self.model.set_logger(configure(None, []))
        fill_sb3_buffer(self.model, fill)

    def run(self, n: int) -> None:
        self.model.train(gradient_steps=n, batch_size=BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--blocks', type=int, default=7, help='interleaved rounds')
    parser.add_argument('--block', type=int, default=60, help='updates per learner per round')
    parser.add_argument('--learners', nargs='+', default=[*VARIANTS, 'sb3_td3'],
                        choices=[*VARIANTS, 'sb3_td3', *WIDE])
    parser.add_argument('--out', type=Path, default=HERE / 'results' / 'update_cost.json')
    args = parser.parse_args()

    torch.set_num_threads(1)
    fill = random_transitions(100_000, seed=0)
    learners = {name: SB3TD3(fill) if name == 'sb3_td3' else Ours(name, fill)
                for name in args.learners}
    for learner in learners.values():
        learner.run(10)  # untimed warm-up
    cpu: dict[str, list[float]] = {name: [] for name in learners}
    wall: dict[str, list[float]] = {name: [] for name in learners}
    names = list(learners)
    started = datetime.now(timezone.utc).isoformat(timespec='seconds')
    for r in range(args.blocks):
        for name in names[r % len(names):] + names[:r % len(names)]:
            w0, c0 = time.perf_counter(), time.process_time()
            learners[name].run(args.block)
            w1, c1 = time.perf_counter(), time.process_time()
            cpu[name].append(args.block / (c1 - c0))
            wall[name].append(args.block / (w1 - w0))
        print(f'round {r}: ' + '  '.join(f'{n} {cpu[n][-1]:.0f}/CPU-s' for n in names),
              flush=True)
    rate = {name: statistics.median(v) for name, v in cpu.items()}
    reference = 'ddpg' if 'ddpg' in rate else names[0]
    base = rate[reference]
    lines = ['| learner | updates per CPU-s (median) | updates/s wall (median) | '
             + ' | '.join(f'CPU per robot step at {k} updates, vs {reference} at 1'
                          for k in RATIOS)
             + f' | CPU-hours of {RUN_STEPS:,} updates |',
             '| --- | --- | --- |' + ' --- |' * (len(RATIOS) + 1)]
    for name in names:
        costs = ' | '.join(f'{k * base / rate[name]:.2f}x' for k in RATIOS)
        lines.append(f'| {name} | {rate[name]:.1f} | {statistics.median(wall[name]):.1f} | '
                     f'{costs} | {RUN_STEPS / rate[name] / 3600:.2f} |')
    table = '\n'.join(lines)
    result = {'machine': machine(), 'threads': 1, 'started': started,
              'finished': datetime.now(timezone.utc).isoformat(timespec='seconds'),
              'settings': {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items()},
              'variants': {k: LEARNERS.get(k, 'stable-baselines3 TD3') for k in names},
              'cpu_rates': cpu, 'wall_rates': wall, 'markdown': table}
    save_report(args.out, result, table)


if __name__ == '__main__':
    main()
