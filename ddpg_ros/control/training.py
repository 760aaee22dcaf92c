"""
The learning side of an agent: what acts, what learns, and what is written to disk.

:class:`LocalTraining` owns a training run on this machine: the DDPG networks and
optimizers, the replay buffer, exploration noise, the :class:`BackgroundLearner` thread, the
periodic :class:`CheckpointWriter` thread, :class:`CheckpointRotation` and the run log; its
end (:class:`CheckpointedRun`) is shared with the fleet's learner. Its
:meth:`~LocalTraining.act` is what the control step calls: uniform random actions during the
warm-up, then the learner's latest policy snapshot plus noise; in lockstep it first waits
(bounded) for the updates granted to earlier steps, which holds the update-to-data ratio by
delaying the command, never by dropping data.

:class:`Deployment` is the same surface for a trained policy alone: a deterministic actor
from a checkpoint, no noise, nothing written.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ddpg_ros.core.checkpoint import (PolicySpec, load_checkpoint, random_states,
                                      remove_stale_temporaries, restore_random_states,
                                      save_checkpoint)
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.control.episodes import Episodes, Transition
from ddpg_ros.control.settings import AgentSettings
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.core.learner import BackgroundLearner, snapshot_finite
from ddpg_ros.core.networks import Actor
from ddpg_ros.core.noise import make_noise
from ddpg_ros.core.nstep import NStepFolder
from ddpg_ros.core.replay_buffer import ReplayBuffer
from ddpg_ros.core.run_log import BackgroundRunLog, prepare_output_dir
from ddpg_ros.core.saturation import SaturationWatch
from ddpg_ros.tasks import Task

Log = Callable[[str], None]


def policy_action(snapshot: Actor, obs: np.ndarray) -> np.ndarray:
    """Return the action of a CPU actor snapshot for one observation."""
    # float32 as ddpg-eval feeds the actor, so the same checkpoint acts bit for bit alike.
    with torch.inference_mode():
        return snapshot(torch.as_tensor(obs, dtype=torch.float32)).numpy().astype(np.float64)


class CheckpointRotation:
    """
    ``checkpoint_<env_steps>.pt`` files in one directory: naming, ``best.pt`` and pruning.

    :param directory: where the files go (created).
    :param keep: periodic checkpoints kept besides ``best.pt``; 0 = keep all.
    :param best_score: the best score of the run so far (a resumed run's).
    """

    def __init__(self, directory: str | Path, keep: int, best_score: float = -math.inf) -> None:
        self.directory = Path(directory)
        self.keep = int(keep)
        self.best_score = float(best_score)

    def path(self, env_steps: int) -> Path:
        """Return the checkpoint file of a run at ``env_steps``."""
        return self.directory / f'checkpoint_{env_steps:09d}.pt'

    def improves(self, score: float | None) -> bool:
        """Record ``score``; return whether it beats the best so far (so ``best.pt`` is due)."""
        if score is None or not score > self.best_score:
            return False
        self.best_score = float(score)
        return True

    def prune(self) -> None:
        """Delete all but the newest ``keep`` checkpoints, with their buffers."""
        if not self.keep:
            return
        checkpoints = sorted(self.directory.glob('checkpoint_*.pt'))
        for old in checkpoints[:-self.keep]:
            old.unlink(missing_ok=True)
            old.with_suffix('.npz').unlink(missing_ok=True)
        # A buffer whose checkpoint was never written (the process died between the two).
        oldest_kept = checkpoints[-self.keep:][0].stem if checkpoints else ''
        for buffer in self.directory.glob('checkpoint_*.npz'):
            if buffer.stem < oldest_kept and not buffer.with_suffix('.pt').exists():
                buffer.unlink(missing_ok=True)

    def write(self, path: Path, agent: DDPG, spec: PolicySpec, counters: dict[str, int],
              extra: dict, best: bool) -> None:
        """Write the checkpoint ``path`` (and ``best.pt`` when ``best``), then prune."""
        save_checkpoint(path, agent, spec, counters=counters, extra=extra)
        if best:
            save_checkpoint(self.directory / 'best.pt', agent, spec, counters=counters,
                            extra=extra)
        self.prune()


class CheckpointWriter:
    """
    A thread that writes checkpoints when asked, off the path of the one who asks.

    :param save: writes one checkpoint; an ``OSError`` or ``ValueError`` from it is counted
        in :attr:`failures` and reported, and the thread goes on.
    :param on_error: called with a sentence for each checkpoint not written.
    :param name: the thread's name.
    """

    def __init__(self, save: Callable[[], Path], on_error: Log, name: str) -> None:
        self._save = save
        self._on_error = on_error
        self.failures = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a checkpoint: written as soon as the thread is free (requests coalesce)."""
        self._due.set()

    def stop(self) -> None:
        """Let a write in progress finish and end the thread; a pending request is dropped."""
        self._stopping = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._due.wait()
            if self._stopping:
                return
            self._due.clear()
            try:
                self._save()
            except (OSError, ValueError) as exc:
                self.failures += 1
                self._on_error(f'periodic checkpoint not written: {exc}')


class CheckpointedRun(ABC):
    """
    What a training run with a checkpoint writer does at its end; shared with the fleet.

    A subclass sets ``_writer`` (:class:`CheckpointWriter`), ``learner``
    (:class:`BackgroundLearner`) and ``run_log`` (:class:`BackgroundRunLog`), and has
    ``save_checkpoint()`` and ``record_progress()``.
    """

    _writer: CheckpointWriter
    learner: BackgroundLearner
    run_log: BackgroundRunLog

    @abstractmethod
    def save_checkpoint(self) -> Path:
        """Write a checkpoint now and return its path."""

    @abstractmethod
    def record_progress(self) -> None:
        """Queue a row of ``progress.csv``."""

    @property
    def checkpoint_failures(self) -> int:
        """Return how many periodic checkpoints could not be written."""
        return self._writer.failures

    def close(self, log: Log) -> None:
        """Stop the writer and the learner, write the exit checkpoint and the run log."""
        self._writer.stop()
        if not self.learner.stop(timeout=30.0):
            log('learner thread did not stop within 30 s')
        try:
            self.save_checkpoint()
        except (OSError, ValueError) as exc:
            log(f'no checkpoint at exit: {exc}')
        self.record_progress()
        if not self.run_log.close():
            log('progress.csv and learning_curve.png not finished within 30 s')


class Deployment:
    """
    A trained policy alone: deterministic, on the CPU, nothing learned or written.

    :raises ValueError: the checkpoint does not exist, does not match ``spec``, or holds
        non-finite actor weights.
    """

    training = False
    learner = None
    buffer = None

    def __init__(self, path: str, spec: PolicySpec) -> None:
        checkpoint = load_checkpoint(path)
        checkpoint.spec.check_matches(spec, path)
        if spec.control_period is not None:
            checkpoint.spec.check_control_period(spec.control_period, path)
        # Acting needs no optimizer and no GPU: a small actor on the CPU is fastest.
        self.agent = checkpoint.build_agent(device='cpu', optimizers=False)
        self.config = self.agent.config
        self.checkpoint = checkpoint
        self._snapshot = self.agent.policy_snapshot()
        if not snapshot_finite(self._snapshot):
            raise ValueError(f'checkpoint {path} has non-finite actor weights')
        self.counters = {'env_steps': 0, 'episodes': 0}
        self.last_wait = 0.0

    def act(self, obs: np.ndarray, explore: bool, env_steps: int) -> np.ndarray:
        """Return the deterministic action (``explore`` is ignored: a deployment never does)."""
        return policy_action(self._snapshot, obs)

    def store(self, transition: Transition, env_steps: int) -> None:
        """Store nothing: a deployment does not learn."""

    def episode_ended(self, episode_return: float, env_steps: int) -> None:
        """Nothing to reset."""

    def close(self, log: Log) -> None:
        """Nothing to write."""


class LocalTraining(CheckpointedRun):
    """
    A training run on this machine: learner thread, replay buffer, noise, checkpoints, logs.

    :param task: the task (bounds, dimensions, name).
    :param spec: the policy spec stored in checkpoints.
    :param settings: the node's settings (checkpoints, logs, waiting, snapshots).
    :param config: the DDPG hyper-parameters; a resumed checkpoint's win.
    :param info: logs a line; ``warn`` logs a warning; ``error`` logs an error.
    :raises ValueError: an unwritable ``checkpoint_dir``, or a checkpoint that does not exist
        or does not match the task.
    """

    training = True

    def __init__(self, task: Task, spec: PolicySpec, settings: AgentSettings,
                 config: DDPGConfig, info: Log, warn: Log, error: Log) -> None:
        # Before anything is built: a run that cannot keep its results does not start.
        prepare_output_dir(settings.checkpoint_dir, 'checkpoint_dir')
        self.task, self.spec, self.settings = task, spec, settings
        self._info, self._warn = info, warn
        low = np.asarray(task.action_low, dtype=np.float64)
        high = np.asarray(task.action_high, dtype=np.float64)
        self._low, self._high = low, high
        self.counters = {'env_steps': 0, 'episodes': 0}
        best = -math.inf
        checkpoint = None
        if settings.load_checkpoint:
            checkpoint = load_checkpoint(settings.load_checkpoint)
            checkpoint.spec.check_matches(spec, settings.load_checkpoint)
            self.agent = checkpoint.build_agent(device=config.device)
            # Resuming continues the run it came from, so its hyper-parameters win.
            differing = [f'{f.name}: checkpoint {getattr(self.agent.config, f.name)!r}, '
                         f'parameter {getattr(config, f.name)!r}'
                         for f in dataclasses.fields(DDPGConfig) if f.name != 'device'
                         and getattr(self.agent.config, f.name) != getattr(config, f.name)]
            if differing:
                warn("resuming with the checkpoint's hyper-parameters, not the parameters: "
                     + '; '.join(differing))
            for key in self.counters:
                self.counters[key] = int(checkpoint.counters.get(key, 0))
            best = float(checkpoint.extra.get('best_return', -math.inf))
        else:
            self.agent = DDPG(spec.obs_dim, low, high, config)
        self.config = self.agent.config
        self.rng = np.random.default_rng(self.config.seed)
        self.noise = make_noise(self.config.noise_type, self.config.noise_sigma, low, high,
                                self.rng, theta=self.config.noise_theta)
        self.buffer = ReplayBuffer(self.config.buffer_size, spec.obs_dim, task.action_dim,
                                   seed=self.config.seed, device=self.agent.device)
        self.folder = NStepFolder(self.config.n_step, self.config.gamma)
        """n-step returns: a step skipped (refused, stale, off period) or a reset breaks the
        chain, because the next stored transition then starts elsewhere."""
        if checkpoint is not None:
            if 'noise' in checkpoint.extra:
                self.noise.load_state_dict(checkpoint.extra['noise'])
            self.folder.load_state_dict(checkpoint.extra.get('n_step_pending', {}))
            restore_random_states(checkpoint, settings.load_checkpoint, self._random_streams())
            buffer_file = Path(settings.load_checkpoint).with_suffix('.npz')
            if buffer_file.is_file():
                self.buffer.load(buffer_file)
            else:
                warn(f'no replay buffer {buffer_file} next to the checkpoint: learning resumes '
                     'from an empty buffer (save_buffer:=true keeps one with every checkpoint)')
        self.learner = BackgroundLearner(
            self.agent, self.buffer, self.config.batch_size,
            snapshot_every=settings.snapshot_every,
            limit_updates=self.config.updates_per_step > 0.0)
        self.rotation = CheckpointRotation(settings.checkpoint_dir, settings.keep_checkpoints,
                                           best)
        self.resumed_at = self.counters['env_steps']
        self.saturation = SaturationWatch(low, high)
        """The actor's noise-free actions while it trains: stuck at the bounds?"""

        self._saturation_said = False
        self.last_wait = 0.0
        """Seconds the latest action waited for the learner (lockstep's update-to-data)."""
        self.wait_timeouts = 0
        self._episodes: Episodes | None = None
        self._learning_started = False
        self._save_lock = threading.Lock()
        """Serialises checkpoint writes: service, periodic writer thread and exit."""
        self._started = time.monotonic()
        self._logged_steps = -1
        for stale in remove_stale_temporaries(settings.checkpoint_dir):
            info(f'removed {stale}, left by a process killed mid-save')
        self._writer = CheckpointWriter(self.save_checkpoint, error, 'ddpg_checkpoints')
        # progress.csv, TensorBoard and learning_curve.png, as ddpg-train writes them; a
        # resumed run continues the CSV it finds.
        self.run_log = BackgroundRunLog(
            settings.checkpoint_dir, tensorboard=settings.tensorboard,
            append=bool(settings.load_checkpoint), title=f'{task.name} (ddpg_agent)',
            on_error=error)

    def bind(self, episodes: Episodes) -> None:
        """Read counters and returns from ``episodes`` when checkpointing and logging."""
        self._episodes = episodes

    def _random_streams(self) -> dict[str, np.random.Generator]:
        # Exploration (warm-up actions and noise) and replay sampling (the learner thread).
        return {'exploration': self.rng, 'replay': self.buffer.rng}

    def act(self, obs: np.ndarray, explore: bool, env_steps: int) -> np.ndarray:
        """
        Return the action for ``obs``: warm-up uniform, or the latest snapshot plus noise.

        Per robot step (lockstep, ``control_rate`` 0) it waits first, at most
        ``max_update_wait`` s, for the updates granted to earlier steps, which holds
        ``updates_per_step``; the learner takes no lock of ours, so this cannot deadlock. On a
        control timer the robot does not wait: the ratio floats below its target when the
        learner falls behind, and ``/diagnostics`` reports it.
        """
        self.last_wait = 0.0
        if self.learner.limit_updates and not self.settings.control_rate:
            started = time.perf_counter()
            if not self.learner.wait_caught_up(self.settings.max_update_wait):
                self.wait_timeouts += 1
            self.last_wait = time.perf_counter() - started
        if explore and env_steps < self.config.learning_starts:
            return self.rng.uniform(self._low, self._high)
        action = policy_action(self.learner.snapshot, obs)
        if not explore:
            return action
        self.saturation.record(action)
        return action + self.noise()

    def store(self, transition: Transition, env_steps: int) -> None:
        """Store a transition, grant its updates, and note what is due at this step."""
        t = transition
        if self.config.n_step == 1:
            self.buffer.add(t.obs, t.action, t.reward, t.next_obs, t.terminated)
        else:
            for f in self.folder.add(t.obs, t.action, t.reward, t.next_obs, t.terminated):
                self.buffer.add(f.obs, f.action, f.reward, f.next_obs, f.terminated, f.horizon)
        if env_steps > self.config.learning_starts and len(self.buffer) >= self.config.batch_size:
            if not self._learning_started:
                # Started here, not at construction: a free-running learner (updates_per_step
                # 0) must not train on the warm-up's first batch before learning_starts.
                self._learning_started = True
                self.learner.start()
            self.learner.allow(self.config.updates_per_step)
        settings = self.settings
        if settings.checkpoint_every and env_steps % settings.checkpoint_every == 0:
            self._writer.request()
        if settings.log_every and env_steps % settings.log_every == 0:
            self.record_progress()

    def episode_ended(self, episode_return: float, env_steps: int) -> None:
        """Log the return and start the next episode's noise afresh."""
        self.run_log.episode(episode_return, env_steps)
        self.noise.reset()

    def record_progress(self) -> None:
        """Queue one row of ``progress.csv``; the losses stay tensors for the writer."""
        episodes = self._episodes
        if episodes is None or episodes.env_steps == self._logged_steps:
            return  # the exit comes right after a row at the same step
        self._logged_steps = episodes.env_steps
        elapsed = time.monotonic() - self._started
        info = self.learner.last_info
        mean = episodes.recent_mean
        self.run_log.record({
            'env_steps': episodes.env_steps, 'updates': self.learner.updates,
            'episodes': episodes.episodes, 'time_s': round(elapsed, 3),
            'steps_per_s': round((episodes.env_steps - self.resumed_at) / max(elapsed, 1e-9),
                                 2),
            'train_return_mean': mean if mean is not None else '',
            'critic_loss': info.critic_loss if info else '',
            'actor_loss': info.actor_loss if info else '',
            'q_mean': info.q_mean if info else '',
            'actor_at_bound': self.saturation.share,
        })
        # Said in the log once when it starts and once when it ends; /diagnostics says it
        # all along.
        if self.saturation.saturated != self._saturation_said:
            self._saturation_said = self.saturation.saturated
            if self._saturation_said:
                self._warn(f'at step {episodes.env_steps}: {self.saturation.message()}')
            else:
                self._info(f'at step {episodes.env_steps}: the actor has left its action '
                           'bounds again')

    def save_checkpoint(self) -> Path:
        """
        Write ``checkpoint_<env_steps>.pt`` (and its buffer when ``save_buffer``).

        Also update ``best.pt`` when the recent mean return is the best so far, prune old
        checkpoints and redraw the learning curve.

        :return: the checkpoint's path.
        :raises ValueError: the weights are not finite.
        :raises OSError: the directory cannot be written.
        """
        episodes = self._episodes
        with self._save_lock:
            agent = self.learner.copy_agent()
            if not agent.weights_finite():
                raise ValueError('the weights are not finite; refusing to save them')
            counters = ({'env_steps': episodes.env_steps, 'episodes': episodes.episodes}
                        if episodes is not None else dict(self.counters))
            recent = episodes.recent_mean if episodes is not None else None
            rotation = self.rotation
            improves = rotation.improves(recent)
            extra = {'task': self.task.name, 'noise': self.noise.state_dict(),
                     'n_step_pending': self.folder.state_dict(),
                     'rng_state': random_states(self._random_streams()),
                     'best_return': rotation.best_score,
                     'recent_return': recent if recent is not None else -math.inf}
            rotation.directory.mkdir(parents=True, exist_ok=True)
            path = rotation.path(counters['env_steps'])
            if self.settings.save_buffer:
                # The buffer first: a checkpoint that exists always has its buffer beside it,
                # whenever the process dies.
                self.buffer.save(path.with_suffix('.npz'))
            rotation.write(path, agent, self.spec, counters, extra, best=improves)
        self.run_log.plot()
        self._info(f'checkpoint written: {path}')
        return path

    def diagnostic_values(self, env_steps: int) -> dict[str, str]:
        """Return the learner's part of ``/diagnostics``."""
        learner = self.learner
        info = learner.last_info
        learned = max(env_steps - self.config.learning_starts, 0)
        return {
            'training': str(learner.training),
            'updates': str(self.agent.updates),
            'updates_per_s': f'{learner.updates_per_second:.1f}',
            'update_to_data': f'{learner.updates / learned:.3f}' if learned else '',
            'buffer_size': str(len(self.buffer)),
            'critic_loss': f'{float(info.critic_loss):.6g}' if info else '',
            'actor_loss': f'{float(info.actor_loss):.6g}' if info else '',
            'q_mean': f'{float(info.q_mean):.6g}' if info else '',
            'actor_at_bound': f'{share:.3f}' if (share := self.saturation.share) is not None
                              else '',
            'actor_saturated': str(self.saturation.saturated),
        }


__all__ = ['CheckpointRotation', 'Deployment', 'LocalTraining', 'policy_action']
