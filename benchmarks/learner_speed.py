"""
Gradient updates per second: ddpg_ros's DDPG learner next to Stable-Baselines3 DDPG.

Rerun (about 8 minutes on 2 loaded cores; RESULTS.md's numbers come from the 1-thread run;
the 2-thread run is what the brief asked for, but it collapsed under a shared machine's load)::

    . .venv/bin/activate
    python benchmarks/learner_speed.py --threads 1 --out benchmarks/results/learner_speed_t1.json
    python benchmarks/learner_speed.py --threads 2

Both learners get the same work: HalfCheetah-v5 sizes (obs 17, action 6), 256-256 actor and
critic, batch 256, Adam lr 1e-3, tau 0.005, gamma 0.99, float32 on the CPU, the same number of
torch threads, in the same process. Two measurements:

* ``updates``: gradient updates only, sampling from an already filled 100k-transition buffer
  (ours: ``ReplayBuffer.sample`` + ``DDPG.update``; SB3: ``DDPG.train(gradient_steps=N)``).
* ``env``: the training loop including HalfCheetah-v5 env steps after ``--warmup`` uniform
  random steps: act + Gaussian noise 0.1 + env step + buffer add + one update per step. Ours
  is ddpg_ros/cli/train.py's loop body (same calls, no eval/logging); SB3 is
  ``DDPG.learn(block, reset_num_timesteps=False)`` continued block after block.

The machine is shared and noisy, so the learners are interleaved finely: every learner is
built once, then ``--blocks`` rounds each time ``--block`` updates of every learner in turn
(the order rotates each round). Each block gives a wall-clock rate and a CPU-time rate
(``time.process_time``: at 1 thread it barely moves when other processes steal the cores);
the medians over blocks are reported, and ratios are medians of the per-round ratios.

``ours_bf16`` is ddpg_ros with its opt-in ``precision='bfloat16'`` (bfloat16 autocast of the
matrix products; weights, Adam state and losses stay float32).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ENV_ID = 'HalfCheetah-v5'
OBS_DIM, ACT_DIM = 17, 6
LR, TAU, GAMMA, BATCH, HIDDEN = 1e-3, 0.005, 0.99, 256, (256, 256)


def random_transitions(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        'obs': rng.standard_normal((n, OBS_DIM), dtype=np.float32),
        'actions': rng.uniform(-1, 1, (n, ACT_DIM)).astype(np.float32),
        'rewards': rng.standard_normal(n, dtype=np.float32),
        'next_obs': rng.standard_normal((n, OBS_DIM), dtype=np.float32),
        'terminated': np.zeros(n, dtype=np.float32),
    }


# --------------------------------------------------------------------------------------------
# Learners: each exposes run_updates(n) and run_env(n), built once.


class Ours:
    def __init__(self, fill: dict[str, np.ndarray], warmup: int, env_capacity: int,
                 precision: str = 'float32') -> None:
        from ddpg_ros.core.config import DDPGConfig
        from ddpg_ros.core.ddpg import DDPG
        from ddpg_ros.sim.envs import make_env
        from ddpg_ros.core.noise import make_noise
        from ddpg_ros.core.replay_buffer import ReplayBuffer

        def agent_and_buffer(capacity: int):
            config = DDPGConfig(actor_lr=LR, critic_lr=LR, tau=TAU, gamma=GAMMA,
                                batch_size=BATCH, hidden_sizes=HIDDEN, buffer_size=capacity,
                                seed=0, device='cpu', precision=precision)
            agent = DDPG(OBS_DIM, -np.ones(ACT_DIM), np.ones(ACT_DIM), config)
            return agent, ReplayBuffer(capacity, OBS_DIM, ACT_DIM, seed=0, device='cpu')

        # updates only: a full buffer
        self.agent, self.buffer = agent_and_buffer(len(fill['rewards']))
        for key, column in fill.items():
            getattr(self.buffer, key)[:] = column
        self.buffer.size = self.buffer.capacity
        # training loop: a separate learner, env and buffer, after `warmup` random steps
        self.env = make_env(ENV_ID)
        self.env_agent, self.env_buffer = agent_and_buffer(env_capacity)
        self.low = self.env.action_space.low.astype(np.float64)
        self.high = self.env.action_space.high.astype(np.float64)
        self.noise = make_noise('gaussian', 0.1, self.low, self.high, np.random.default_rng(0))
        self.env.action_space.seed(0)
        self.obs, _ = self.env.reset(seed=0)
        for _ in range(warmup):
            self._env_step(self.env.action_space.sample().astype(np.float64))

    def _env_step(self, action: np.ndarray) -> None:
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.env_buffer.add(self.obs, action, float(reward), next_obs, terminated)
        self.obs = next_obs
        if terminated or truncated:
            self.obs, _ = self.env.reset()
            self.noise.reset()

    def run_updates(self, n: int) -> None:
        for _ in range(n):
            self.agent.update(self.buffer.sample(BATCH))

    def run_env(self, n: int) -> None:
        """ddpg_ros/cli/train.py's loop body after learning starts."""
        agent, buffer = self.env_agent, self.env_buffer
        for _ in range(n):
            self._env_step(np.clip(agent.act(self.obs) + self.noise(), self.low, self.high))
            agent.update(buffer.sample(BATCH))


def fill_sb3_buffer(model, fill: dict[str, np.ndarray]) -> None:
    """Make a Stable-Baselines3 model's replay buffer hold exactly ``fill``, full."""
    rb = model.replay_buffer
    rb.observations[:, 0] = fill['obs']
    rb.next_observations[:, 0] = fill['next_obs']
    rb.actions[:, 0] = fill['actions']
    rb.rewards[:, 0] = fill['rewards']
    rb.dones[:, 0] = fill['terminated']
    rb.full, rb.pos = True, 0


class SB3:
    def __init__(self, fill: dict[str, np.ndarray], warmup: int, env_capacity: int) -> None:
        from stable_baselines3.common.logger import configure

        self.model = self._model(len(fill['rewards']), 0)
        self.model.set_logger(configure(None, []))
        fill_sb3_buffer(self.model, fill)
        self.env_model = self._model(env_capacity, warmup)
        self.env_model.learn(total_timesteps=warmup)  # random steps, no update yet

    @staticmethod
    def _model(buffer_size: int, learning_starts: int):
        import gymnasium as gym
        from stable_baselines3 import DDPG
        from stable_baselines3.common.noise import NormalActionNoise

        env = gym.make(ENV_ID)
        half = (env.action_space.high - env.action_space.low) / 2.0
        noise = NormalActionNoise(mean=np.zeros_like(half), sigma=0.1 * half)
        return DDPG('MlpPolicy', env, learning_rate=LR, buffer_size=buffer_size,
                    learning_starts=learning_starts, batch_size=BATCH, tau=TAU, gamma=GAMMA,
                    train_freq=1, gradient_steps=1, action_noise=noise,
                    policy_kwargs={'net_arch': list(HIDDEN)}, seed=0, device='cpu',
                    verbose=0)

    def run_updates(self, n: int) -> None:
        self.model.train(gradient_steps=n, batch_size=BATCH)

    def run_env(self, n: int) -> None:
        before = self.env_model._n_updates
        self.env_model.learn(total_timesteps=n, reset_num_timesteps=False)
        assert self.env_model._n_updates - before == n


NAMES = {'ours': 'ddpg_ros', 'sb3': 'SB3 2.9.2 DDPG',
         'ours_bf16': "ddpg_ros, precision='bfloat16'"}


def build(name: str, fill, args):
    capacity = args.warmup + args.blocks * args.block + 4 * args.block
    if name == 'sb3':
        return SB3(fill, args.warmup, capacity)
    return Ours(fill, args.warmup, capacity,
                precision='bfloat16' if name == 'ours_bf16' else 'float32')


def machine() -> str:
    return (f'{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}, Python '
            f'{platform.python_version()}, torch {torch.__version__}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--blocks', type=int, default=15, help='interleaved rounds')
    parser.add_argument('--block', type=int, default=200, help='updates per learner per round')
    parser.add_argument('--warmup', type=int, default=1000, help='random env steps first')
    parser.add_argument('--buffer', type=int, default=100_000, help='filled buffer size')
    parser.add_argument('--threads', type=int, default=2, help='torch threads')
    parser.add_argument('--modes', nargs='+', choices=('updates', 'env'),
                        default=['updates', 'env'])
    parser.add_argument('--learners', nargs='+', choices=tuple(NAMES),
                        default=['ours', 'sb3', 'ours_bf16'])
    parser.add_argument('--out', type=Path, default=HERE / 'results' / 'learner_speed.json')
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    fill = random_transitions(args.buffer, seed=0)
    info: dict = {'machine': machine(), 'threads': args.threads,
                  'load_average_start': os.getloadavg(),
                  'started': datetime.now(timezone.utc).isoformat(timespec='seconds')}
    learners = {name: build(name, fill, args) for name in args.learners}
    for learner in learners.values():  # warm-up, untimed
        for mode in args.modes:
            getattr(learner, f'run_{mode}')(20)
    wall = {m: {k: [] for k in learners} for m in args.modes}
    cpu = {m: {k: [] for k in learners} for m in args.modes}
    names = list(learners)
    for mode in args.modes:
        for r in range(args.blocks):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                run = getattr(learners[name], f'run_{mode}')
                w0, c0 = time.perf_counter(), time.process_time()
                run(args.block)
                w1, c1 = time.perf_counter(), time.process_time()
                wall[mode][name].append(args.block / (w1 - w0))
                cpu[mode][name].append(args.block / (c1 - c0))
            print(f'{mode:7s} round {r:2d}  ' + '  '.join(
                f'{n} {wall[mode][n][-1]:6.1f}/s wall {cpu[mode][n][-1]:6.1f}/s cpu'
                for n in names), flush=True)

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    result: dict = {'wall': {}, 'cpu': {}}
    for kind, data in (('wall', wall), ('cpu', cpu)):
        for mode in args.modes:
            result[kind][mode] = {
                name: {'median': med(v), 'per_block': [round(x, 1) for x in v],
                       'ratio_vs_sb3': (med([a / b for a, b in zip(v, data[mode]['sb3'])])
                                        if 'sb3' in data[mode] else None)}
                for name, v in data[mode].items()}
    labels = {'updates': 'updates only (filled 100k buffer)',
              'env': f'incl. {ENV_ID} env steps (1 update/step)'}
    lines = [f'torch threads: {args.threads}; {args.blocks} interleaved rounds of '
             f'{args.block} updates per learner', '',
             '| measurement | learner | wall: updates/s (median) | wall: ratio vs SB3 | '
             'CPU time: updates/CPU-s (median) | CPU: ratio vs SB3 |',
             '| --- | --- | --- | --- | --- | --- |']
    for mode in args.modes:
        for name in names:
            w, c = result['wall'][mode][name], result['cpu'][mode][name]
            fmt = (lambda x: f'{x:.2f}x' if x is not None else 'n/a')
            lines.append(f'| {labels[mode]} | {NAMES[name]} | {w["median"]:.1f} | '
                         f'{fmt(w["ratio_vs_sb3"])} | {c["median"]:.1f} | '
                         f'{fmt(c["ratio_vs_sb3"])} |')
    table = '\n'.join(lines)
    info.update(finished=datetime.now(timezone.utc).isoformat(timespec='seconds'),
                load_average_end=os.getloadavg(),
                settings={k: (str(v) if isinstance(v, Path) else v)
                          for k, v in vars(args).items()},
                results=result, markdown=table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=1))
    args.out.with_suffix('.md').write_text(table + '\n')
    print(table)


if __name__ == '__main__':
    main()
