"""
``ddpg-train``: DDPG on any Gymnasium environment with a continuous action space, no ROS.

Writes into ``--out``: ``checkpoint.pt`` (latest), ``best.pt`` (best evaluation),
``progress.csv``, ``learning_curve.png`` and TensorBoard event files; with ``--save-buffer``
also ``checkpoint.npz``, the replay buffer, so that ``--resume`` continues the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ddpg_ros.core.checkpoint import (Checkpoint, load_checkpoint, random_states,
                                      restore_random_states, save_checkpoint)
from ddpg_ros.cli.common import (HelpFormatter, add_config_arguments, config_from_args,
                                 given_config_values, run_cli)
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.sim.envs import make_env, spec_for_env
from ddpg_ros.sim.randomization_profile import LEVEL_NAMES, Profile, load_profile, parse_profile
from ddpg_ros.cli.evaluation import evaluate
from ddpg_ros.core.noise import make_noise
from ddpg_ros.core.nstep import NStepFolder
from ddpg_ros.core.presets import (NO_PRESET, PLAIN_DDPG, PRESETS_FILE, RUN_FIELDS, describe,
                                   preset_for, preset_name, preset_names)
from ddpg_ros.core.replay_buffer import ReplayBuffer
from ddpg_ros.core.run_log import RunLog, prepare_output_dir
from ddpg_ros.core.saturation import SaturationWatch


@dataclass
class RunConfig:
    """Settings of a training run that are not DDPG hyper-parameters."""

    env_id: str
    """Gymnasium environment id, e.g. HalfCheetah-v5."""
    out: Path
    """Output directory."""
    total_steps: int = 100_000
    """Environment steps to train for."""
    eval_every: int = 10_000
    """Environment steps between noise-free evaluations (and checkpoints)."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    progress: bool = True
    """Show a progress bar (a log line per evaluation when not on a terminal)."""
    tensorboard: bool = True
    """Write TensorBoard event files into the output directory."""
    save_buffer: bool = False
    """Write the replay buffer next to ``checkpoint.pt`` as ``checkpoint.npz``."""
    randomize: Profile = field(default_factory=Profile)
    """What to perturb in training and evaluation (:mod:`ddpg_ros.sim.randomization_profile`)."""

    def __post_init__(self) -> None:
        for name in ('total_steps', 'eval_every', 'eval_episodes'):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f'{name}={value} must be >= 1')


@dataclass
class TrainResult:
    """What a finished run reports."""

    checkpoint: Path
    env_steps: int
    updates: int
    wall_time_s: float
    eval_steps: list[int]
    eval_returns: list[float]


class Trainer:
    """
    Owns the environment, learner, replay buffer and noise of one training run.

    :param run: run settings (env, budget, evaluation, outputs).
    :param config: DDPG hyper-parameters.
    """

    def __init__(self, run: RunConfig, config: DDPGConfig) -> None:
        self.run_config = run
        self.config = config
        last = config.observe_last_action
        self.env = make_env(run.env_id, randomize=run.randomize, seed=config.seed,
                            observe_last_action=last)
        self.eval_env = make_env(run.env_id, randomize=run.randomize, seed=config.seed + 10_000,
                                 observe_last_action=last)
        self.spec = spec_for_env(run.env_id, self.env, last)
        if self.spec.obs_dim != self.env.observation_space.shape[0]:
            raise ValueError(f'{run.env_id}: spec has {self.spec.obs_dim} observations, '
                             f'env has {self.env.observation_space.shape[0]}')
        space = self.env.action_space
        self.low = space.low.astype(np.float64)
        self.high = space.high.astype(np.float64)
        self.agent = DDPG(self.spec.obs_dim, self.low, self.high, config)
        self.buffer = ReplayBuffer(min(config.buffer_size, run.total_steps), self.spec.obs_dim,
                                   self.low.size, seed=config.seed, device=self.agent.device)
        self.rng = np.random.default_rng(config.seed)
        self.noise = make_noise(config.noise_type, config.noise_sigma, self.low, self.high,
                                self.rng, theta=config.noise_theta)
        space.seed(config.seed)
        self.saturation = SaturationWatch(self.low, self.high)
        self.folder = NStepFolder(config.n_step, config.gamma)
        self.env_steps = 0
        self.episodes = 0
        self.resumed_from = 0
        self.best_eval_return = -math.inf
        self.eval_steps: list[int] = []
        self.eval_returns: list[float] = []

    def save(self, path: Path, buffer: bool = False) -> Path:
        """
        Checkpoint the learner with the run's counters, noise and random states.

        With ``buffer``, the replay buffer is written first, as ``<path>.npz``.
        """
        if buffer:
            self.buffer.save(path.with_suffix('.npz'))
        return save_checkpoint(path, self.agent, self.spec,
                               counters={'env_steps': self.env_steps, 'episodes': self.episodes},
                               extra={'env_id': self.run_config.env_id,
                                      'noise': self.noise.state_dict(),
                                      'n_step_pending': self.folder.state_dict(),
                                      'rng_state': random_states(self._random_streams()),
                                      'best_eval_return': self.best_eval_return,
                                      'randomize': {'name': self.run_config.randomize.name,
                                                    **self.run_config.randomize.to_yaml()}})

    def restore(self, checkpoint: Checkpoint, path: Path) -> bool:
        """
        Continue the run that ``checkpoint`` (read from ``path``) stopped.

        Restores networks, optimizers, counters, noise, random streams, best return, and the
        replay buffer when its ``.npz`` is beside it. The environment starts a new episode.
        Build the trainer with the checkpoint's config.

        :return: whether a replay buffer was restored.
        :raises CheckpointError: written for another robot (task, layout, bounds).
        """
        checkpoint.spec.check_matches(self.spec, path)
        self.agent.load_state_dict(checkpoint.agent_state)
        self.env_steps = self.resumed_from = checkpoint.counters.get('env_steps', 0)
        self.episodes = checkpoint.counters.get('episodes', 0)
        self.best_eval_return = float(checkpoint.extra.get('best_eval_return', -math.inf))
        if 'noise' in checkpoint.extra:
            self.noise.load_state_dict(checkpoint.extra['noise'])
        self.folder.load_state_dict(checkpoint.extra.get('n_step_pending', {}))
        restore_random_states(checkpoint, path, self._random_streams())
        buffer_file = Path(path).with_suffix('.npz')
        if not buffer_file.is_file():
            return False
        self.buffer.load(buffer_file)
        return True

    def _random_streams(self) -> dict[str, np.random.Generator]:
        return {'exploration': self.rng, 'replay': self.buffer.rng}

    def store_folded(self, transitions: list) -> None:
        """Store n-step transitions as the folder completes them."""
        for t in transitions:
            self.buffer.add(t.obs, t.action, t.reward, t.next_obs, t.terminated, t.horizon)

    def explore(self, obs: np.ndarray) -> np.ndarray:
        """Uniform random actions until learning starts, then the actor plus noise."""
        if self.env_steps < self.config.learning_starts:
            return self.env.action_space.sample().astype(np.float64)
        action = self.agent.act(obs)
        self.saturation.record(action)
        return np.clip(action + self.noise(), self.low, self.high)

    def run(self) -> TrainResult:
        """Train for ``total_steps`` environment steps and write every output."""
        run, config, env, buffer = self.run_config, self.config, self.env, self.buffer
        prepare_output_dir(run.out, '--out')
        logger = RunLog(run.out, run.tensorboard, append=self.resumed_from > 0,
                        title=run.env_id)
        bar = _ProgressBar(run, initial=self.resumed_from)
        # A resumed run starts a new episode, from a reset it has not seen before.
        obs, _ = env.reset(seed=config.seed + self.env_steps)
        episode_return = 0.0
        recent_returns: deque[float] = deque(maxlen=10)
        update_credit = 0.0
        info = None
        start = time.perf_counter()
        try:
            while self.env_steps < run.total_steps:
                action = self.explore(obs)
                next_obs, reward, terminated, truncated, _ = env.step(action)
                self.env_steps += 1
                step = self.env_steps
                # Store `terminated` only: a time-limit truncation is not an end of the MDP,
                # so the learner must keep bootstrapping from its next state.
                if config.n_step == 1:
                    buffer.add(obs, action, float(reward), next_obs, terminated)
                else:
                    self.store_folded(self.folder.add(obs, action, float(reward), next_obs,
                                                      terminated, truncated))
                    if step == run.total_steps:  # the last checkpoint keeps every step
                        self.store_folded(self.folder.flush())
                episode_return += float(reward)
                obs = next_obs
                if terminated or truncated:
                    recent_returns.append(episode_return)
                    logger.episode(episode_return, step)
                    self.episodes += 1
                    episode_return = 0.0
                    obs, _ = env.reset()
                    self.noise.reset()

                if step > config.learning_starts and len(buffer) >= config.batch_size:
                    update_credit += config.updates_per_step
                    while update_credit >= 1.0:
                        info = self.agent.update(buffer.sample(config.batch_size))
                        update_credit -= 1.0

                if step % run.eval_every == 0 or step == run.total_steps:
                    returns = evaluate(self.agent.act, self.eval_env, run.eval_episodes,
                                       seed=config.seed + 10_000)
                    elapsed = time.perf_counter() - start
                    mean, std = float(np.mean(returns)), float(np.std(returns))
                    self.eval_steps.append(step)
                    self.eval_returns.append(mean)
                    row = {
                        'env_steps': step, 'updates': self.agent.updates,
                        'episodes': self.episodes, 'time_s': round(elapsed, 3),
                        'steps_per_s': round((step - self.resumed_from) / elapsed, 2),
                        'eval_return_mean': mean, 'eval_return_std': std,
                        'train_return_mean':
                            float(np.mean(recent_returns)) if recent_returns else '',
                    }
                    if info is not None:
                        row.update(critic_loss=float(info.critic_loss),
                                   actor_loss=float(info.actor_loss), q_mean=float(info.q_mean))
                    share = self.saturation.share
                    row['actor_at_bound'] = round(share, 4) if share is not None else ''
                    logger.record(row)
                    if self.saturation.saturated:
                        bar.warn(f'ddpg-train: warning at step {step}: '
                                 f'{self.saturation.message()}')
                    if mean > self.best_eval_return:
                        self.best_eval_return = mean
                        self.save(run.out / 'best.pt')
                    self.save(run.out / 'checkpoint.pt', buffer=run.save_buffer)
                    bar.evaluated(step, mean, std)
                if step % 200 == 0:
                    bar.advance(step, self.agent.updates, recent_returns)
        except KeyboardInterrupt:
            bar.write(f'interrupted at step {self.env_steps}: saving {run.out / "checkpoint.pt"}')
            self.save(run.out / 'checkpoint.pt', buffer=run.save_buffer)
            raise
        finally:
            bar.close()
            env.close()
            self.eval_env.close()
            _plot(logger)
            logger.close()
        return TrainResult(checkpoint=run.out / 'checkpoint.pt', env_steps=self.env_steps,
                           updates=self.agent.updates, wall_time_s=time.perf_counter() - start,
                           eval_steps=self.eval_steps, eval_returns=self.eval_returns)


def train(run: RunConfig, config: DDPGConfig) -> TrainResult:
    """Train DDPG on ``run.env_id`` and write the outputs into ``run.out``."""
    return Trainer(run, config).run()


def _plot(logger: RunLog) -> None:
    try:
        if logger.plot() is None:
            print('ddpg-train: no learning curve plotted: no evaluation yet', file=sys.stderr)
    except OSError as exc:
        print(f'ddpg-train: no learning curve plotted: {exc}', file=sys.stderr)


class _ProgressBar:
    """tqdm on a terminal; one plain line per evaluation otherwise (CI logs, files)."""

    def __init__(self, run: RunConfig, initial: int = 0) -> None:
        self.total = run.total_steps
        self.start = time.perf_counter()
        self.initial = initial
        self.enabled = run.progress
        self.tqdm = None
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.tqdm = tqdm(total=run.total_steps, initial=initial, unit='step',
                             dynamic_ncols=True, desc=run.env_id)
        self.last = initial

    def advance(self, step: int, updates: int, recent: deque[float]) -> None:
        if self.tqdm is None:
            return
        self.tqdm.update(step - self.last)
        self.last = step
        postfix = {'updates': updates}
        if recent:
            postfix['return'] = f'{np.mean(recent):.1f}'
        self.tqdm.set_postfix(postfix, refresh=False)

    def evaluated(self, step: int, mean: float, std: float) -> None:
        elapsed = time.perf_counter() - self.start
        self.write(f'step {step}/{self.total}  eval return {mean:.1f} +- {std:.1f}  '
                   f'{(step - self.initial) / elapsed:.0f} steps/s')

    def write(self, text: str) -> None:
        if self.enabled:
            self.warn(text)

    def warn(self, text: str) -> None:
        """Say ``text`` even without a progress bar: warnings are never silenced."""
        if self.tqdm is not None:
            self.tqdm.write(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ddpg-train', description=__doc__.split('\n\n')[0],
        formatter_class=HelpFormatter)
    parser.add_argument('--env', required=True, help='Gymnasium environment id')
    parser.add_argument('--total-steps', type=int, default=RunConfig.total_steps,
                        help='environment steps to train for')
    parser.add_argument('--out', type=Path, default=None,
                        help='output directory (default runs/<env>-seed<seed>)')
    parser.add_argument('--eval-every', type=int, default=RunConfig.eval_every,
                        help='steps between noise-free evaluations and checkpoints')
    parser.add_argument('--eval-episodes', type=int, default=RunConfig.eval_episodes,
                        help='episodes per evaluation')
    parser.add_argument('--torch-threads', type=int, default=0,
                        help='CPU threads for torch (0 = torch default)')
    parser.add_argument('--no-progress', action='store_true', help='print nothing while running')
    parser.add_argument('--no-tensorboard', action='store_true', help='skip TensorBoard logs')
    parser.add_argument('--save-buffer', action='store_true',
                        help='also write the replay buffer beside checkpoint.pt, as '
                             'checkpoint.npz, so that --resume continues with it')
    parser.add_argument('--resume', type=Path, metavar='CHECKPOINT',
                        help="continue the run that this checkpoint.pt stopped, with its "
                             "hyper-parameters and seed (the flags' are ignored, but "
                             "--device), its counters, and its checkpoint.npz when there is "
                             "one; --total-steps counts from the start of that run; --out "
                             "defaults to the checkpoint's directory")
    parser.add_argument('--randomize', metavar='PROFILE', default=None,
                        help=f"train against a perturbed robot: {', '.join(LEVEL_NAMES)} or a "
                             'YAML profile (e.g. the timing.yaml a ddpg_agent wrote); '
                             'evaluations use it too (default: none, or the resumed run\'s)')
    parser.add_argument('--preset', metavar='NAME', default=argparse.SUPPRESS,
                        help="start from this preset of the presets file instead of --env's; "
                             f"'{PLAIN_DDPG}' for --env's plain DDPG preset (every extension "
                             f"off); '{NO_PRESET}' for the plain DDPGConfig defaults "
                             '(default: the preset of --env, when there is one)')
    add_config_arguments(parser, preset_note=(
        f'Unset flags take their value from the preset of --env in {PRESETS_FILE.name} '
        "(printed at start), else DDPGConfig's default; a flag given overrides one value. "
        'seed and device are never part of a preset.'))
    return parser


def _preset_config(args: argparse.Namespace) -> tuple[DDPGConfig, str]:
    """
    Return the run's config and the line that says where its values came from.

    The config is the preset's values (or DDPGConfig's defaults) under the flags given.
    """
    # seed and device are per run, so only a preset's own settings count as overriding it.
    given = {k: v for k, v in given_config_values(args).items() if k not in RUN_FIELDS}
    overrides = f'; flags override {describe(given)}' if given else ''
    asked = getattr(args, 'preset', None)
    if asked == NO_PRESET:
        return config_from_args(args), f'--preset {NO_PRESET}: DDPGConfig defaults{overrides}'
    name = preset_name(asked, args.env) if asked else args.env
    preset = preset_for(name, required=asked is not None)
    if preset is None:
        return config_from_args(args), (
            f'no preset for {name}: DDPGConfig defaults{overrides} '
            f'(presets: {", ".join(preset_names())})')
    return config_from_args(args, preset), f'preset {name}: {describe(preset)}{overrides}'


def _resumed_profile(saved: dict | None) -> Profile:
    """Return the randomization a checkpoint's run trained with (none before there was any)."""
    if not saved:
        return Profile()
    saved = dict(saved)
    return parse_profile(saved, saved.pop('name', 'resumed'))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        config, origin = _preset_config(args)
        if args.torch_threads < 0:
            raise ValueError(f'torch-threads={args.torch_threads} must be >= 0')
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        checkpoint = None
        profile = load_profile(args.randomize)
        if args.resume is not None:
            checkpoint = load_checkpoint(args.resume)
            config = dataclasses.replace(checkpoint.config, device=config.device)
            if args.randomize is None:
                profile = _resumed_profile(checkpoint.extra.get('randomize'))
        out = args.out or (args.resume.parent if args.resume is not None
                           else Path('runs') / f'{args.env}-seed{config.seed}')
        trainer = Trainer(RunConfig(env_id=args.env, out=out, total_steps=args.total_steps,
                                    eval_every=args.eval_every,
                                    eval_episodes=args.eval_episodes,
                                    progress=not args.no_progress,
                                    tensorboard=not args.no_tensorboard,
                                    save_buffer=args.save_buffer, randomize=profile), config)
        if checkpoint is not None:
            with_buffer = trainer.restore(checkpoint, args.resume)
            if trainer.env_steps >= args.total_steps:
                raise ValueError(f'--total-steps {args.total_steps} is not beyond the '
                                 f'{trainer.env_steps} steps that {args.resume} has run; it '
                                 'counts from the start of the run')
            if not with_buffer:
                print(f'ddpg-train: warning: no {args.resume.with_suffix(".npz")}: the replay '
                      'buffer starts empty (--save-buffer keeps one with the checkpoint)',
                      file=sys.stderr)
        if checkpoint is None:
            # Said once the flags and the environment are known to be good, so that bad input
            # still ends in exactly one error line.
            print(f'ddpg-train: {origin}', file=sys.stderr, flush=True)
        if profile.active:
            print(f'ddpg-train: randomization {profile.describe()}', file=sys.stderr, flush=True)
        result = trainer.run()
        final = result.eval_returns[-1] if result.eval_returns else float('nan')
        print(f'checkpoint: {result.checkpoint}')
        print(f'steps: {result.env_steps}  updates: {result.updates}  '
              f'wall_time_s: {result.wall_time_s:.1f}')
        print(f'final_eval_return: {final:.3f}')
        return 0

    return run_cli('ddpg-train', run)


if __name__ == '__main__':
    sys.exit(main())
