"""
The ``ddpg_learner`` core: stores the fleet's transitions, trains, versions and saves.

:class:`FleetLearner` is what the node delegates to. It reuses the one-robot machinery: the
:class:`DDPG` networks, the :class:`ReplayBuffer`, the :class:`BackgroundLearner` thread,
:class:`CheckpointRotation`, the :class:`CheckpointWriter` thread and the run log. What it
adds:

- **ingest**: a transition batch is decoded and checked (:mod:`~ddpg_ros.fleet.wire`), refused
  if already stored or acted with a policy version this learner never published
  (:class:`ActorLedger`), and stored whole or not at all;
- **update-to-data**: every stored transition past ``learning_starts`` grants
  ``updates_per_step`` updates; when the learner falls more than ``max_backlog`` updates
  behind, the policy header asks lockstep actors to hold;
- **versions**: each new acting snapshot is published with the next version number. Numbers
  are reserved on disk in blocks (:class:`VersionReservation`), so a learner restarted after
  a crash starts above every number it ever published;
- **checkpoints**: the buffer and the ledger are captured together under the ingest lock, so
  a resumed learner refuses exactly the batches its buffer already holds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ddpg_ros.core.checkpoint import (Checkpoint, CheckpointError, PolicySpec,
                                      load_checkpoint, random_states,
                                      remove_stale_temporaries, restore_random_states)
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.control.episodes import RETURN_WINDOW
from ddpg_ros.control.training import CheckpointedRun, CheckpointRotation, CheckpointWriter
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.fleet.ledger import ActorLedger
from ddpg_ros.fleet.settings import LATEST, LearnerSettings
from ddpg_ros.fleet.wire import (TransitionBatch, WireError, WireMessage, decode_transitions,
                                 encode_policy)
from ddpg_ros.core.learner import BackgroundLearner
from ddpg_ros.core.networks import Actor
from ddpg_ros.core.nstep import NStepFolder
from ddpg_ros.core.replay_buffer import ReplayBuffer, write_snapshot
from ddpg_ros.core.run_log import BackgroundRunLog, prepare_output_dir
from ddpg_ros.tasks import Task

Log = Callable[[str], None]
VERSION_BLOCK = 1000
"""Policy versions reserved on disk at a time."""
VERSIONS_FILE = 'policy_versions.json'


class VersionReservation:
    """
    Policy version numbers that never repeat, even across a crash and a resume.

    The file ``policy_versions.json`` holds the highest number reserved so far for a run;
    reserving happens in blocks of ``VERSION_BLOCK`` (one small synced write per block), and a
    restarted learner continues above the block, so actors always see a higher version.

    :param directory: the learner's checkpoint directory.
    :param run_id: the run the numbers belong to; another run's file is replaced.
    :param floor: a number known to be used already (a checkpoint's version).
    """

    def __init__(self, directory: str | os.PathLike, run_id: str, floor: int = 0) -> None:
        self.path = Path(directory) / VERSIONS_FILE
        self.run_id = run_id
        reserved = 0
        try:
            data = json.loads(self.path.read_text())
            if data.get('run_id') == run_id:
                reserved = int(data['reserved'])
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            pass
        self.reserved = max(reserved, int(floor))
        self.last = self.reserved
        """The newest number handed out; the first is ``last + 1``."""

    def next(self) -> int:
        """Return a new version number, reserving a block on disk when needed."""
        version = self.last + 1
        if version > self.reserved:
            self._write(version + VERSION_BLOCK - 1)
        self.last = version
        return version

    def _write(self, reserved: int) -> None:
        tmp = self.path.with_name(f'.{self.path.name}.tmp-{os.getpid()}')
        with open(tmp, 'w') as f:
            json.dump({'run_id': self.run_id, 'reserved': reserved}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.reserved = reserved


def newest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Return the periodic checkpoint with the most transitions in ``directory``, if any."""
    found = sorted(Path(directory).glob('checkpoint_*.pt'))
    return found[-1] if found else None


def newest_checkpoint_of_run(directory: str | os.PathLike, run_id: str, warn: Log
                             ) -> tuple[str, Checkpoint | None]:
    """
    Return the newest readable checkpoint of run ``run_id`` in ``directory``, loaded.

    Other runs' checkpoints are passed over, and so are unreadable ones (with a warning);
    ``('', None)`` when there is none: a learner started again after a crash resumes its run,
    its first start begins it.
    """
    for path in sorted(Path(directory).glob('checkpoint_*.pt'), reverse=True):
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as exc:
            warn(f'passing over {path}: {exc}')
            continue
        if checkpoint.extra.get('run_id') == run_id:
            return str(path), checkpoint
    return '', None


class FleetLearner(CheckpointedRun):
    """
    The learner of a fleet: ingest, background updates, versioned policies, checkpoints.

    :param task: the task every actor runs (bounds, dimensions, name).
    :param spec: the spec every actor must send.
    :param settings: the node's settings.
    :param config: the DDPG hyper-parameters; a resumed checkpoint's win.
    :param info: logs a line; ``warn`` a warning; ``error`` an error.
    :param clock: monotonic seconds (for rates; tests may replace it).
    :raises ValueError: an unwritable ``checkpoint_dir``; a checkpoint that does not exist or
        does not match the task; a ``run_id`` other than the resumed checkpoint's.
    """

    def __init__(self, task: Task, spec: PolicySpec, settings: LearnerSettings,
                 config: DDPGConfig, info: Log, warn: Log, error: Log,
                 clock: Callable[[], float] = time.monotonic) -> None:
        prepare_output_dir(settings.checkpoint_dir, 'checkpoint_dir')
        self.task, self.spec, self.settings = task, spec, settings
        self._info, self._clock = info, clock
        for stale in remove_stale_temporaries(settings.checkpoint_dir):
            info(f'removed {stale}, left by a process killed mid-save')
        self.ledger = ActorLedger()
        self.transitions = 0
        """Transitions stored since the run began (a resumed run's included)."""
        self.episodes = 0
        self.recent_returns: deque[float] = deque(maxlen=RETURN_WINDOW)
        path, checkpoint = settings.load_checkpoint, None
        if path == LATEST and settings.run_id:
            path, checkpoint = newest_checkpoint_of_run(settings.checkpoint_dir,
                                                        settings.run_id, warn)
            info(f'load_checkpoint=latest: resuming {path}' if path else
                 f'load_checkpoint=latest: no checkpoint of run {settings.run_id} in '
                 f'{settings.checkpoint_dir}, starting it')
        elif path == LATEST:
            found = newest_checkpoint(settings.checkpoint_dir)
            path = str(found) if found is not None else ''
            info(f'load_checkpoint=latest: resuming {path}' if path else
                 f'load_checkpoint=latest: no checkpoint in {settings.checkpoint_dir}, '
                 'starting fresh')
        self.resumed_from = path
        best, version = -math.inf, 0
        if path and checkpoint is None:
            checkpoint = load_checkpoint(path)
        if checkpoint is not None:
            checkpoint.spec.check_matches(spec, path)
            if spec.control_period is not None:
                checkpoint.spec.check_control_period(spec.control_period, path)
            self.agent = checkpoint.build_agent(device=config.device)
            differing = [f'{f.name}: checkpoint {getattr(self.agent.config, f.name)!r}, '
                         f'parameter {getattr(config, f.name)!r}'
                         for f in dataclasses.fields(DDPGConfig) if f.name != 'device'
                         and getattr(self.agent.config, f.name) != getattr(config, f.name)]
            if differing:
                warn("resuming with the checkpoint's hyper-parameters, not the parameters: "
                     + '; '.join(differing))
            extra = checkpoint.extra
            self.run_id = str(extra.get('run_id', ''))
            if settings.run_id and settings.run_id != self.run_id:
                raise ValueError(f'run_id={settings.run_id!r} differs from the run '
                                 f'{self.run_id!r} of checkpoint {path}')
            self.transitions = int(checkpoint.counters.get('env_steps', 0))
            self.episodes = int(checkpoint.counters.get('episodes', 0))
            self.ledger.restore(extra.get('actors', {}))
            version = int(extra.get('policy_version', 0))
            best = float(extra.get('best_return', -math.inf))
            self.recent_returns.extend(float(r) for r in extra.get('recent_returns', []))
        else:
            low, high = np.asarray(task.action_low), np.asarray(task.action_high)
            self.agent = DDPG(spec.obs_dim, low, high, config)
            stamp = datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')
            self.run_id = settings.run_id or f'{task.name}-{stamp}'
        self.config = self.agent.config
        self.buffer = ReplayBuffer(self.config.buffer_size, spec.obs_dim, task.action_dim,
                                   seed=self.config.seed, device=self.agent.device)
        self._folders: dict[str, NStepFolder] = {}
        """n-step returns: one chain per actor, so that no fold mixes two robots' steps."""
        if checkpoint is not None:
            restore_random_states(checkpoint, path, {'replay': self.buffer.rng})
            buffer_file = Path(path).with_suffix('.npz')
            if buffer_file.is_file():
                self.buffer.load(buffer_file)
            else:
                warn(f'no replay buffer {buffer_file} next to the checkpoint: learning resumes '
                     'from an empty buffer')
        self.versions = VersionReservation(settings.checkpoint_dir, self.run_id, version)
        self._snapshot_lock = threading.Lock()
        self._new_snapshot: Actor | None = None
        self.notify: Callable[[], None] = lambda: None
        """Called (from the learner thread) when a new snapshot waits to be published."""
        self.learner = BackgroundLearner(
            self.agent, self.buffer, self.config.batch_size,
            snapshot_every=settings.policy_every,
            limit_updates=self.config.updates_per_step > 0.0, on_snapshot=self._on_snapshot)
        self._published: Actor = self.learner.snapshot
        self.version = self.versions.next()
        """The newest policy version published (the first is due at once)."""
        self._publish_due = True
        self._last_published = -math.inf
        self._last_hold = False
        self.rotation = CheckpointRotation(settings.checkpoint_dir, settings.keep_checkpoints,
                                           best)
        self.resumed_at = self.transitions
        self._ingest_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._stopping = False
        self._started = clock()
        self._logged_at = -1
        self._writer = CheckpointWriter(self.save_checkpoint, error, 'ddpg_learner_checkpoints')
        self.run_log = BackgroundRunLog(
            settings.checkpoint_dir, tensorboard=settings.tensorboard,
            append=checkpoint is not None, title=f'{task.name} (ddpg_learner)', on_error=error)

    # Ingest

    @property
    def warmup(self) -> bool:
        """Return whether fewer than ``learning_starts`` transitions are stored: act randomly."""
        return self.transitions < self.config.learning_starts

    def ingest(self, data: Any, data_offset: int, dims: Any = ()) -> TransitionBatch:
        """
        Decode, check and store one transition batch, whole or not at all.

        :raises WireError: the batch is refused (malformed, another run or spec, a duplicate,
            an unknown policy version); it is counted, and nothing of it is stored.
        """
        try:
            batch = decode_transitions(data, data_offset, dims, spec=self.spec,
                                       run_id=self.run_id,
                                       max_bytes=self.settings.max_message_bytes)
        except WireError as exc:
            self.ledger.refuse(exc.kind, exc.actor_id)
            raise
        with self._ingest_lock:
            try:
                self.ledger.check(batch)
                if not 1 <= batch.policy_version <= self.version:
                    raise WireError(
                        f'batch {batch.sequence} of actor {batch.actor_id!r} was acted with '
                        f'policy version {batch.policy_version}, which this learner never '
                        f'published (newest: {self.version})', 'policy_version',
                        batch.actor_id)
                self._store(batch)
            except (WireError, ValueError) as exc:
                kind = exc.kind if isinstance(exc, WireError) else 'non_finite'
                self.ledger.refuse(kind, batch.actor_id)
                if isinstance(exc, WireError):
                    raise
                raise WireError(str(exc), kind, batch.actor_id) from None
            self.ledger.record(batch, self._clock(), self.version)
            before = self.transitions
            self.transitions += batch.count
            self.episodes += len(batch.episode_returns)
            self.recent_returns.extend(batch.episode_returns)
        for value in batch.episode_returns:
            self.run_log.episode(value, self.transitions)
        self._grant(before, self.transitions)
        every = self.settings.checkpoint_every
        if every and self.transitions // every > before // every:
            self._writer.request()
        every = self.settings.log_every
        if every and self.transitions // every > before // every:
            self.record_progress()
        return batch

    def _store(self, batch: TransitionBatch) -> None:
        """Store a batch's transitions; with n-step returns, folded along its actor's chain."""
        if self.config.n_step == 1:
            self.buffer.add_batch(batch.obs, batch.actions, batch.rewards, batch.next_obs,
                                  batch.terminated)
            return
        columns = (batch.obs, batch.actions, batch.rewards, batch.next_obs)
        if not all(np.isfinite(column).all() for column in columns):
            raise ValueError('refusing a batch of transitions with a non-finite value')
        folder = self._folders.setdefault(
            batch.actor_id, NStepFolder(self.config.n_step, self.config.gamma))
        folded = [f for i in range(batch.count)
                  for f in folder.add(batch.obs[i], batch.actions[i], float(batch.rewards[i]),
                                      batch.next_obs[i], bool(batch.terminated[i]))]
        if folded:
            self.buffer.add_batch(*(np.array(column) for column in zip(*folded)))

    def _grant(self, before: int, after: int) -> None:
        starts = self.config.learning_starts
        learned = after - max(before, starts)
        if learned <= 0 or len(self.buffer) < self.config.batch_size:
            return
        if not self.learner.running and not self._stopping:
            # Started here, not at construction: a free-running learner (updates_per_step 0)
            # must not train on the warm-up's first batch before learning_starts.
            self.learner.start()
        self.learner.allow(self.config.updates_per_step * learned)

    # Policies

    def _on_snapshot(self, snapshot: Actor) -> None:
        with self._snapshot_lock:
            self._new_snapshot = snapshot
        self.notify()

    @property
    def backlog(self) -> int:
        """Return the updates granted and not yet run."""
        return self.learner.pending_updates

    @property
    def hold(self) -> bool:
        """Return whether lockstep actors should wait for the learner before acting."""
        limit = self.settings.max_backlog
        return bool(limit) and self.backlog > limit

    def policy_message(self, now: float | None = None, force: bool = False
                       ) -> WireMessage | None:
        """
        Return the policy to publish now, or ``None`` if nothing is due.

        Due: a new snapshot (the next version number), the first one, a change of ``hold``,
        ``policy_period`` seconds since the last publication (the same version again, so
        that actors know the learner is there), or ``force``.
        """
        now = self._clock() if now is None else now
        with self._snapshot_lock:
            snapshot, self._new_snapshot = self._new_snapshot, None
        hold = self.hold
        if snapshot is not None:
            self._published = snapshot
            self.version = self.versions.next()
        elif not (force or self._publish_due or hold != self._last_hold
                  or now - self._last_published >= self.settings.policy_period):
            return None
        self._publish_due, self._last_hold, self._last_published = False, hold, now
        return encode_policy(
            self._published, run_id=self.run_id, version=self.version, spec=self.spec,
            hidden_sizes=self.config.hidden_sizes, warmup=self.warmup, hold=hold,
            updates=self.learner.updates, transitions=self.transitions, backlog=self.backlog,
            stamp=time.time())

    # Checkpoints and logs

    def save_checkpoint(self) -> Path:
        """
        Write ``checkpoint_<transitions>.pt`` with its buffer and ledger, taken together.

        Also update ``best.pt`` when the recent mean return is the best so far, prune old
        checkpoints and redraw the learning curve.

        :raises ValueError: the weights are not finite.
        :raises OSError: the directory cannot be written.
        """
        with self._save_lock:
            agent = self.learner.copy_agent()
            if not agent.weights_finite():
                raise ValueError('the weights are not finite; refusing to save them')
            rotation = self.rotation
            # One moment for the buffer, the counters and the ledger: whatever a resume
            # refuses as already stored is exactly what this buffer holds. Only the copy is
            # taken under the lock; the disk write does not hold up ingest.
            with self._ingest_lock:
                counters = {'env_steps': self.transitions, 'episodes': self.episodes}
                actors = self.ledger.state()
                recent = list(self.recent_returns)
                path = rotation.path(self.transitions)
                buffer = self.buffer.snapshot() if self.settings.save_buffer else None
                random = random_states({'replay': self.buffer.rng})
            rotation.directory.mkdir(parents=True, exist_ok=True)
            if buffer is not None:
                # The buffer first: a checkpoint that exists always has its buffer beside it.
                write_snapshot(path.with_suffix('.npz'), buffer)
            mean = float(np.mean(recent)) if recent else None
            improves = rotation.improves(mean)
            extra = {'task': self.task.name, 'run_id': self.run_id,
                     'policy_version': self.versions.reserved, 'actors': actors,
                     'rng_state': random, 'best_return': rotation.best_score,
                     'recent_return': mean if mean is not None else -math.inf,
                     'recent_returns': recent}
            rotation.write(path, agent, self.spec, counters, extra, best=improves)
        self.run_log.plot()
        self._info(f'checkpoint written: {path}')
        return path

    def record_progress(self) -> None:
        """Queue one row of ``progress.csv``, with ``env_steps`` = transitions stored."""
        if self.transitions == self._logged_at:
            return
        self._logged_at = self.transitions
        elapsed = self._clock() - self._started
        info = self.learner.last_info
        recent = list(self.recent_returns)
        self.run_log.record({
            'env_steps': self.transitions, 'updates': self.learner.updates,
            'episodes': self.episodes, 'time_s': round(elapsed, 3),
            'steps_per_s': round((self.transitions - self.resumed_at) / max(elapsed, 1e-9), 2),
            'train_return_mean': float(np.mean(recent)) if recent else '',
            'critic_loss': info.critic_loss if info else '',
            'actor_loss': info.actor_loss if info else '',
            'q_mean': info.q_mean if info else '',
        })

    def close(self, log: Log) -> None:
        """Stop the writer and the learner, write the exit checkpoint and the run log (once)."""
        if self._stopping:
            return
        self._stopping = True
        super().close(log)

    # Diagnostics

    def diagnostic_values(self) -> dict[str, str]:
        """Return the learner's own ``/diagnostics`` values."""
        learner, info = self.learner, self.learner.last_info
        learned = max(self.transitions - max(self.resumed_at, self.config.learning_starts), 0)
        recent = list(self.recent_returns)
        values = {
            'run_id': self.run_id, 'task': self.task.name, 'policy_version': str(self.version),
            'training': str(learner.training), 'warmup': str(self.warmup),
            'updates': str(learner.updates), 'updates_per_s': f'{learner.updates_per_second:.1f}',
            'update_to_data': f'{learner.updates / learned:.3f}' if learned else '',
            'backlog': str(self.backlog), 'hold': str(self.hold),
            'transitions': str(self.transitions), 'buffer_size': str(len(self.buffer)),
            'episodes': str(self.episodes), 'actors': str(len(self.ledger.actors)),
            'train_return_mean': f'{np.mean(recent):.3f}' if recent else '',
            'critic_loss': f'{float(info.critic_loss):.6g}' if info else '',
            'actor_loss': f'{float(info.actor_loss):.6g}' if info else '',
            'device': str(self.agent.device), 'learner_fault': learner.fault or '',
            'checkpoint_failures': str(self.checkpoint_failures),
        }
        refused = sorted(self.ledger.refused.items())
        values.update({f'refused_{kind}': str(count) for kind, count in refused})
        return values

    def actor_values(self, now: float | None = None) -> dict[str, dict[str, str]]:
        """Return each actor's ``/diagnostics`` values, by actor id."""
        now = self._clock() if now is None else now
        found = {}
        for actor_id, record in sorted(self.ledger.actors.items()):
            found[actor_id] = {
                'transitions_per_s': f'{self.ledger.rate(actor_id, now):.1f}',
                'policy_version': str(record.policy_version),
                'policy_lag': str(record.lag),
                'batches': str(record.batches), 'transitions': str(record.transitions),
                'lost_batches': str(record.lost_batches), 'refused': str(record.refused),
                'drops': str(record.lost_batches + record.refused),
                'epoch': str(record.epoch), 'sequence': str(record.sequence),
                'silent_s': (f'{now - record.last_seen:.1f}' if record.last_seen is not None
                             else ''),
            }
        return found


__all__ = ['FleetLearner', 'VERSION_BLOCK', 'VersionReservation', 'newest_checkpoint',
           'newest_checkpoint_of_run']
