r"""
Learning peers at ``sample_efficiency.py``'s budget: SB3's DDPG and TD3, sbx's CrossQ.

Each run trains one peer on one env and seed for ``--steps`` environment steps and evaluates
it as ``ddpg-train`` does (every ``--eval-every`` steps, ``--eval-episodes`` noise-free
episodes, episode i reset with ``seed + 10000 + i``). Its record goes into the same results
file as ``sample_efficiency.py``'s runs, under the peer's name as the variant, so that one
``sample_efficiency.py --summarize`` table holds ours and theirs.

Peers (benchmark-only dependencies: ``pip install -r benchmarks/requirements-peers.txt``,
best in a venv of its own):

* ``sb3_ddpg``: SB3 DDPG as ``learning_quality.py`` runs it (lr 1e-3, 256-256, batch 256,
  Gaussian noise 0.1, buffer = the whole run, 10,000 random steps): our ``--preset ddpg``;
* ``sb3_td3``: SB3 TD3 with rl-baselines3-zoo's MuJoCo settings (lr 1e-3, 256-256, Gaussian
  noise 0.1), 10,000 random steps as our HalfCheetah preset;
* ``sbx_crossq_256``: sbx's CrossQ (Bhatt et al. 2024: stochastic actor, entropy tuning,
  batch renormalization in actor and critics) with 256-256 critics, the width and so the
  compute of ours, and 10,000 random steps;
* ``sbx_crossq``: the same at sbx's default 1024-1024 critics (the paper's are 2048 wide).

One torch or XLA thread each, as our runs. Example::

    python3 -m venv .venv-bench && .venv-bench/bin/pip install -r benchmarks/requirements-peers.txt
    nohup .venv-bench/bin/python benchmarks/peers.py --env HalfCheetah-v5 --steps 100000 \
        --peers sbx_crossq_256 sb3_td3 --seeds 0 > benchmarks/out/peers.log 2>&1 &
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One XLA thread: set before jax is imported anywhere.
os.environ.setdefault('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false '
                                   'intra_op_parallelism_threads=1')

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from learning_quality import evaluate_sb3  # noqa: E402  (episode i from seed + i)
from sample_efficiency import DEFAULT_RESULTS, PEERS, _commit, _now, save_result  # noqa: E402

LEARNING_STARTS = 10_000


def make_model(peer: str, env, seed: int, total_steps: int):
    """Return the peer's model, untrained."""
    from stable_baselines3.common.noise import NormalActionNoise

    if peer in ('sb3_ddpg', 'sb3_td3'):
        import torch
        from stable_baselines3 import DDPG, TD3

        torch.set_num_threads(1)
        half = (env.action_space.high - env.action_space.low) / 2.0
        noise = NormalActionNoise(mean=np.zeros_like(half), sigma=0.1 * half)
        common = {'learning_rate': 1e-3, 'learning_starts': LEARNING_STARTS, 'batch_size': 256,
                  'action_noise': noise, 'policy_kwargs': {'net_arch': [256, 256]},
                  'seed': seed, 'device': 'cpu', 'verbose': 0}
        if peer == 'sb3_td3':
            return TD3('MlpPolicy', env, **common)
        return DDPG('MlpPolicy', env, buffer_size=total_steps, tau=0.005, gamma=0.99,
                    train_freq=1, gradient_steps=1, **common)
    from sbx import CrossQ

    kwargs = {'net_arch': {'pi': [256, 256], 'qf': [256, 256]}} if peer == 'sbx_crossq_256' \
        else {}
    return CrossQ('MlpPolicy', env, learning_starts=LEARNING_STARTS, policy_kwargs=kwargs,
                  seed=seed, verbose=0)


def one_run(args: argparse.Namespace, peer: str, seed: int) -> dict:
    """Train and evaluate one peer; return its record in ``sample_efficiency``'s layout."""
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    env, eval_env = gym.make(args.env), gym.make(args.env)
    model = make_model(peer, env, seed, args.steps)
    curve: list[list[float]] = []
    start = time.perf_counter()

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            steps = self.num_timesteps
            if steps % args.eval_every == 0:
                returns = evaluate_sb3(self.model, eval_env, args.eval_episodes, seed + 10_000)
                mean = float(np.mean(returns))
                curve.append([steps, round(mean, 1)])
                print(f'[{_now()}] {peer} seed {seed}: {steps} steps, eval {mean:.1f}, '
                      f'{time.perf_counter() - start:.0f} s', flush=True)
            return True

    model.learn(total_timesteps=args.steps, callback=Evaluate())
    return {'env': args.env, 'variant': peer, 'flags': [], 'steps': args.steps, 'seed': seed,
            'returncode': 0, 'wall_time_s': round(time.perf_counter() - start, 1),
            'eval_every': args.eval_every, 'eval_episodes': args.eval_episodes,
            'saturated': False, 'curve': curve, 'commit': _commit(), 'finished_utc': _now(),
            'load_average': round(os.getloadavg()[0], 2),
            'learning_starts': LEARNING_STARTS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--env', default='HalfCheetah-v5')
    parser.add_argument('--steps', type=int, default=100_000)
    parser.add_argument('--peers', nargs='+', default=['sbx_crossq_256'], choices=PEERS)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--eval-every', type=int, default=10_000)
    parser.add_argument('--eval-episodes', type=int, default=5)
    parser.add_argument('--results', type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args()
    for peer in args.peers:
        for seed in args.seeds:
            record = one_run(args, peer, seed)
            save_result(args.results, record)
            print(f'[{_now()}] {peer} seed {seed}: {record["curve"][-1][1]:.1f} at '
                  f'{args.steps} steps, {record["wall_time_s"]:.0f} s', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
