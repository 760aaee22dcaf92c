"""
Where ddpg_ros's DDPG update spends its time, and what candidate patches would gain.

Rerun (about 2 minutes)::

    . .venv/bin/activate
    python benchmarks/profile_learner.py --threads 1 --updates 200 --rounds 9 --block 100
    python benchmarks/profile_learner.py --skip-profile --variants fused_adam bf16_autocast \
        --out benchmarks/results/profile_bf16.json

Three parts, all at HalfCheetah-v5 sizes (obs 17, action 6), 256-256 nets, batch 256:

1. torch.profiler over ``--updates`` calls of ``DDPG.update(ReplayBuffer.sample(256))``: the
   top operators by self CPU time, grouped (matmuls, Adam, elementwise, ...).
2. phase timing with ``time.process_time`` (CPU seconds; robust on a shared machine): sample,
   critic step, actor step, soft updates.
3. variants of the learner, patched here only (ddpg_ros is untouched), interleaved in rounds,
   median CPU-time rate per variant and its ratio to the unpatched learner:
   ``fused_adam`` (Adam(fused=True)), ``foreach_adam`` (Adam(foreach=True)),
   ``no_check`` (``update(check_finite=False)``), ``packed_sample`` (one gather from a
   single row-packed array instead of five), ``all`` (fused Adam + packed sample) and
   ``bf16_autocast`` (fused Adam + ``torch.autocast('cpu', torch.bfloat16)``: speed only,
   learning quality not checked).
   Also the floor: the same network forward/backward passes alone, without any optimizer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import save_report  # noqa: E402
VARIANTS = ('fused_adam', 'foreach_adam', 'no_check', 'packed_sample', 'all', 'bf16_autocast')
OBS_DIM, ACT_DIM, BATCH, LR = 17, 6, 256, 1e-3


def make(fused: bool = False, foreach: bool = False, capacity: int = 100_000):
    from ddpg_ros.core.config import DDPGConfig
    from ddpg_ros.core.ddpg import DDPG
    from ddpg_ros.core.replay_buffer import ReplayBuffer

    config = DDPGConfig(actor_lr=LR, critic_lr=LR, batch_size=BATCH, hidden_sizes=(256, 256),
                        buffer_size=capacity, device='cpu')
    agent = DDPG(OBS_DIM, -np.ones(ACT_DIM), np.ones(ACT_DIM), config)
    if fused or foreach:
        kw = {'fused': True} if fused else {'foreach': True}
        agent.actor_optimizer = torch.optim.Adam(agent.actor.parameters(), lr=LR, **kw)
        agent.critic_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=LR, **kw)
    buffer = ReplayBuffer(capacity, OBS_DIM, ACT_DIM)
    rng = np.random.default_rng(0)
    buffer.obs[:] = rng.standard_normal(buffer.obs.shape)
    buffer.next_obs[:] = rng.standard_normal(buffer.obs.shape)
    buffer.actions[:] = rng.uniform(-1, 1, buffer.actions.shape)
    buffer.rewards[:] = rng.standard_normal(capacity)
    buffer.size = capacity
    return agent, buffer


class PackedSampler:
    """One float32 (capacity, 2 * obs + act + 2) array, one fancy-index gather per batch."""

    def __init__(self, buffer) -> None:
        from ddpg_ros.core.replay_buffer import Batch

        self.Batch = Batch
        self.rows = np.concatenate([buffer.obs, buffer.actions, buffer.rewards[:, None],
                                    buffer.next_obs, buffer.terminated[:, None]], axis=1)
        self.rng = np.random.default_rng(0)
        o, a = OBS_DIM, ACT_DIM
        self.cuts = (o, o + a, o + a + 1, 2 * o + a + 1)

    def sample(self, batch_size: int):
        idx = self.rng.integers(0, len(self.rows), size=batch_size)
        t = torch.from_numpy(self.rows[idx])
        c = self.cuts
        return self.Batch(t[:, :c[0]], t[:, c[0]:c[1]], t[:, c[1]], t[:, c[2]:c[3]], t[:, c[3]])


def profile_ops(n: int) -> list[dict]:
    agent, buffer = make()
    for _ in range(20):
        agent.update(buffer.sample(BATCH))
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            agent.update(buffer.sample(BATCH))
    rows = []
    for e in prof.key_averages():
        rows.append({'op': e.key, 'calls_per_update': e.count / n,
                     'self_cpu_us_per_update': e.self_cpu_time_total / n})
    rows.sort(key=lambda r: -r['self_cpu_us_per_update'])
    return rows


def group(op: str) -> str:
    if op in ('aten::addmm', 'aten::mm', 'aten::bmm', 'aten::matmul', 'aten::linear'):
        return 'matmul (addmm/mm)'
    if 'adam' in op.lower() or op.startswith('aten::_foreach') or op in (
            'aten::addcmul_', 'aten::addcdiv_', 'aten::lerp_', 'aten::sqrt', 'aten::div_'):
        return 'optimizer + soft update (foreach/lerp/adam math)'
    if op.startswith('Optimizer.') or op.startswith('Optimizer'):
        return 'optimizer + soft update (foreach/lerp/adam math)'
    if op in ('aten::relu', 'aten::threshold_backward', 'aten::tanh', 'aten::tanh_backward',
              'aten::clamp_min'):
        return 'activations fwd/bwd'
    if op in ('aten::sum', 'aten::mean', 'aten::mul', 'aten::add', 'aten::sub', 'aten::pow',
              'aten::neg', 'aten::rsub', 'aten::cat', 'aten::mse_loss', 'aten::copy_',
              'aten::fill_', 'aten::zero_', 'aten::ones_like', 'aten::isfinite', 'aten::eq',
              'aten::abs', 'aten::ne', 'aten::all', 'aten::item', 'aten::is_nonzero',
              'aten::_local_scalar_dense', 'aten::mul_', 'aten::add_', 'aten::expand',
              'aten::squeeze', 'aten::div', 'aten::t', 'aten::transpose', 'aten::as_strided',
              'aten::view', 'aten::reshape', 'aten::empty', 'aten::empty_like',
              'aten::empty_strided', 'aten::detach', 'aten::slice', 'aten::select'):
        return 'elementwise, loss, cat and tensor bookkeeping'
    if op.startswith('autograd::') or 'Backward' in op:
        return 'autograd engine nodes'
    return 'other'


def phases(n: int) -> dict[str, float]:
    """CPU microseconds per update of each phase, mirroring DDPG.update."""
    from ddpg_ros.core.ddpg import soft_update

    agent, buffer = make()
    acc: dict[str, float] = defaultdict(float)
    clock = time.process_time
    for i in range(n + 20):
        t0 = clock()
        batch = buffer.sample(BATCH)
        t1 = clock()
        loss, _ = agent.critic_loss(batch)
        bool(torch.isfinite(loss))
        t2 = clock()
        agent.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = clock()
        agent.critic_optimizer.step()
        t4 = clock()
        agent.critic.requires_grad_(False)
        aloss = agent.actor_loss(batch.obs)
        bool(torch.isfinite(aloss))
        t5 = clock()
        agent.actor_optimizer.zero_grad(set_to_none=True)
        aloss.backward()
        t6 = clock()
        agent.actor_optimizer.step()
        agent.critic.requires_grad_(True)
        t7 = clock()
        soft_update(agent.actor_target, agent.actor, agent.config.tau)
        soft_update(agent.critic_target, agent.critic, agent.config.tau)
        t8 = clock()
        if i >= 20:
            for k, a, b in (('sample', t0, t1), ('critic forward + target', t1, t2),
                            ('critic backward', t2, t3), ('critic Adam step', t3, t4),
                            ('actor forward (through critic)', t4, t5),
                            ('actor backward', t5, t6), ('actor Adam step', t6, t7),
                            ('soft updates', t7, t8)):
                acc[k] += (b - a) * 1e6 / n
    return dict(acc)


def variants(rounds: int, block: int, only: list[str]) -> dict:
    made = {'baseline': make(), 'fused_adam': make(fused=True),
            'foreach_adam': make(foreach=True), 'no_check': make(),
            'packed_sample': make(), 'all': make(fused=True),
            'bf16_autocast': make(fused=True)}
    made = {k: v for k, v in made.items() if k in only or k == 'baseline'}
    samplers = {k: (PackedSampler(b) if k in ('packed_sample', 'all') else b)
                for k, (_, b) in made.items()}

    def run(name: str, n: int) -> None:
        agent, _ = made[name]
        sampler = samplers[name]
        check = name != 'no_check'
        if name == 'bf16_autocast':
            with torch.autocast('cpu', dtype=torch.bfloat16):
                for _ in range(n):
                    agent.update(sampler.sample(BATCH), check_finite=check)
            return
        for _ in range(n):
            agent.update(sampler.sample(BATCH), check_finite=check)

    # The floor: the same passes with gradients, no optimizer step, no sampling.
    agent, buffer = make()
    fixed = buffer.sample(BATCH)

    def floor(n: int) -> None:
        for _ in range(n):
            loss, _ = agent.critic_loss(fixed)
            loss.backward()
            agent.critic.requires_grad_(False)
            agent.actor_loss(fixed.obs).backward()
            agent.critic.requires_grad_(True)
            agent.actor.zero_grad(set_to_none=True)
            agent.critic.zero_grad(set_to_none=True)

    fns = {name: (lambda n, name=name: run(name, n)) for name in made}
    fns['floor: passes only'] = floor
    for fn in fns.values():
        fn(20)
    rates: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            c0 = time.process_time()
            fns[name](block)
            rates[name].append(block / (time.process_time() - c0))
    out = {}
    for name, v in rates.items():
        out[name] = {'median_updates_per_cpu_s': statistics.median(v),
                     'ratio_vs_baseline': statistics.median(
                         [a / b for a, b in zip(v, rates['baseline'])])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--updates', type=int, default=300, help='updates profiled / timed')
    parser.add_argument('--rounds', type=int, default=9)
    parser.add_argument('--block', type=int, default=150)
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--skip-profile', action='store_true',
                        help='only the variant comparison (parts 1 and 2 skipped)')
    parser.add_argument('--out', type=Path, default=HERE / 'results' / 'profile_learner.json')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.skip_profile:
        var = variants(args.rounds, args.block, args.variants)
        lines = [f'torch threads: {args.threads}', '',
                 '| variant (patched copy, not in ddpg_ros) | updates / CPU-s (median) | '
                 'ratio vs unpatched |', '| --- | --- | --- |']
        lines += [f'| {k} | {v["median_updates_per_cpu_s"]:.1f} | '
                  f'{v["ratio_vs_baseline"]:.2f}x |' for k, v in var.items()]
        table = '\n'.join(lines)
        save_report(args.out, {'date': datetime.now(timezone.utc).isoformat(
            timespec='seconds'), 'threads': args.threads, 'variants': var,
            'markdown': table}, table)
        return
    ops = profile_ops(args.updates)
    grouped: dict[str, float] = defaultdict(float)
    for r in ops:
        grouped[group(r['op'])] += r['self_cpu_us_per_update']
    total_ops = sum(grouped.values())
    ph = phases(args.updates)
    var = variants(args.rounds, args.block, args.variants)

    lines = [f'torch threads: {args.threads}', '',
             '| profiler group (self CPU) | us / update | share |', '| --- | --- | --- |']
    for k, v in sorted(grouped.items(), key=lambda kv: -kv[1]):
        lines.append(f'| {k} | {v:.0f} | {v / total_ops:.0%} |')
    lines += ['', '| top operators | calls / update | self CPU us / update |',
              '| --- | --- | --- |']
    for r in ops[:12]:
        lines.append(f'| {r["op"]} | {r["calls_per_update"]:.0f} | '
                     f'{r["self_cpu_us_per_update"]:.0f} |')
    total_ph = sum(ph.values())
    lines += ['', '| phase of DDPG.update (process_time) | CPU us / update | share |',
              '| --- | --- | --- |']
    for k, v in ph.items():
        lines.append(f'| {k} | {v:.0f} | {v / total_ph:.0%} |')
    lines += ['', '| variant (patched copy, not in ddpg_ros) | updates / CPU-s (median) | '
              'ratio vs unpatched |', '| --- | --- | --- |']
    for k, v in var.items():
        lines.append(f'| {k} | {v["median_updates_per_cpu_s"]:.1f} | '
                     f'{v["ratio_vs_baseline"]:.2f}x |')
    table = '\n'.join(lines)
    result = {'date': datetime.now(timezone.utc).isoformat(timespec='seconds'),
              'threads': args.threads, 'cpus': os.cpu_count(),
              'torch': torch.__version__, 'top_ops': ops[:40], 'groups_us': grouped,
              'phases_us': ph, 'variants': var, 'markdown': table}
    save_report(args.out, result, table)


if __name__ == '__main__':
    main()
