"""
The background learner: gradient updates in a thread of their own, apart from acting.

The control loop appends transitions to the replay buffer and acts with a *snapshot* of the
actor (a small CPU copy). This thread samples mini-batches, runs :meth:`DDPG.update` (on the
GPU when there is one) and every ``snapshot_every`` updates hands the control loop a fresh
snapshot, swapped in by a single attribute assignment. A snapshot is only swapped in when
every weight is finite, so a diverging update never reaches the robot.

No ROS here: the same learner can serve one robot's node, a Gymnasium loop, or later a
learner fed by several robots.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import deque
from collections.abc import Callable

import torch

from ddpg_ros.core.ddpg import DDPG, NonFiniteLossError, UpdateInfo
from ddpg_ros.core.networks import Actor
from ddpg_ros.core.replay_buffer import Batch, ReplayBuffer

UpdateFn = Callable[[Batch], UpdateInfo]


def snapshot_finite(actor: Actor) -> bool:
    """
    Return True when every parameter and buffer of ``actor`` is finite.

    :param actor: a policy snapshot.
    """
    tensors = [*actor.parameters(), *actor.buffers()]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


class BackgroundLearner:
    """
    Samples the replay buffer and updates a :class:`DDPG` agent in a background thread.

    Update-to-data ratio: with ``limit_updates`` the thread only runs updates the control
    loop has granted with :meth:`allow` (``updates_per_step`` per environment step) and
    the loop may wait for them with :meth:`wait_caught_up`; without it the thread updates as
    fast as it can (free-running).

    Faults: an exception in an update, a NaN/infinite loss (:class:`NonFiniteLossError`) or a
    snapshot with a non-finite weight is recorded in :attr:`fault`, pauses learning, and
    leaves :attr:`snapshot` at the last good policy. Acting never stops because of it.

    :param agent: the learner's networks and optimizers; only this thread updates them.
    :param buffer: the replay buffer the control loop fills.
    :param batch_size: transitions per update; updates wait until the buffer holds as many.
    :param snapshot_every: updates between fresh acting snapshots.
    :param limit_updates: hold the update-to-data ratio (see above) instead of free-running.
    :param update_fn: the update to run on each batch, ``agent.update`` by default; tests
        replace it to inject faults into a real learner.
    :param on_snapshot: called in the learner thread with every new good snapshot.
    :raises ValueError: the agent's weights are not finite to begin with.
    """

    def __init__(self, agent: DDPG, buffer: ReplayBuffer, batch_size: int,
                 snapshot_every: int = 10, limit_updates: bool = False,
                 update_fn: UpdateFn | None = None,
                 on_snapshot: Callable[[Actor], None] | None = None) -> None:
        if snapshot_every < 1:
            raise ValueError(f'snapshot_every={snapshot_every} must be >= 1')
        if batch_size < 1:
            raise ValueError(f'batch_size={batch_size} must be >= 1')
        self.agent = agent
        self.buffer = buffer
        self.batch_size = int(batch_size)
        self.snapshot_every = int(snapshot_every)
        self.limit_updates = limit_updates
        self.update_fn: UpdateFn = update_fn or agent.update
        """The fault-injection hook: what each sampled batch is passed to."""
        self.on_snapshot = on_snapshot
        snapshot = agent.policy_snapshot()
        if not snapshot_finite(snapshot):
            raise ValueError('the actor has non-finite weights; refusing to act with it')
        self._snapshot = snapshot
        self._snapshot_version = 0
        self.last_info: UpdateInfo | None = None
        """Losses of the latest successful update (tensors; read them off the hot path)."""
        # The condition guards the counters and flags below; it is never held during an
        # update, so waiting on it cannot stall learning.
        self._cond = threading.Condition()
        self._agent_lock = threading.Lock()
        self._training = True
        self._fault: str | None = None
        self._stop = False
        self._updates = 0
        self._allowed = 0.0
        self._nan_batches = 0
        self._update_times: deque[float] = deque(maxlen=200)
        self._thread = threading.Thread(target=self._run, name='ddpg_learner', daemon=True)

    @property
    def snapshot(self) -> Actor:
        """Return the latest good acting policy: a CPU actor no update will touch."""
        return self._snapshot

    @property
    def snapshot_version(self) -> int:
        """How many snapshots have been swapped in since the start."""
        return self._snapshot_version

    @property
    def updates(self) -> int:
        """Gradient updates this learner has run."""
        return self._updates

    @property
    def pending_updates(self) -> int:
        """Granted updates not run yet; 0 when free-running, paused, faulted or stopped."""
        with self._cond:
            if not self.limit_updates or not self.training:
                return 0
            return max(math.floor(self._allowed) - self._updates, 0)

    @property
    def fault(self) -> str | None:
        """Return what stopped learning, or ``None``."""
        return self._fault

    @property
    def training(self) -> bool:
        """Return True when updates are enabled and no fault has paused them."""
        return self._training and self._fault is None and not self._stop

    @property
    def running(self) -> bool:
        """Return True when the thread has started and not yet ended."""
        return self._thread.is_alive()

    @property
    def updates_per_second(self) -> float:
        """Update rate over the last (up to 200) updates; 0 when idle for two seconds."""
        times = list(self._update_times)
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """
        Stop after the update in progress, if any.

        :param timeout: seconds to wait for the thread to end.
        :return: whether the thread has ended.
        """
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def set_training(self, enabled: bool) -> tuple[bool, str]:
        """
        Pause or resume gradient updates; acting with the snapshot goes on either way.

        Resuming clears a recorded fault, unless the weights themselves are not finite:
        then there is nothing to resume from and the fault stays.

        :param enabled: resume (``True``) or pause (``False``).
        :return: whether the request was carried out, and a sentence saying what happened.
        """
        if not enabled:
            with self._cond:
                self._training = False
                self._cond.notify_all()
            return True, 'gradient updates paused'
        fault = self._fault
        if fault is not None:
            with self._agent_lock:
                finite = self.agent.weights_finite()
            if not finite:
                return False, f'cannot resume: weights are not finite ({fault})'
        with self._cond:
            self._fault = None
            self._training = True
            # Grants made while paused were not recorded; start the ratio afresh from here.
            self._allowed = float(self._updates)
            self._cond.notify_all()
            return True, 'gradient updates resumed'

    def allow(self, updates: float) -> None:
        """
        Grant ``updates`` more updates (``updates_per_step`` per environment step).

        Ignored while paused or faulted, so that resuming does not start with a backlog the
        control loop would have to wait for.

        :param updates: how many; fractions accumulate.
        """
        with self._cond:
            if self.training:
                self._allowed += updates
                self._cond.notify_all()

    def wait_caught_up(self, timeout: float) -> bool:
        """
        Wait until every granted update has run (or learning is paused or stopped).

        :param timeout: the longest wait in seconds.
        :return: whether the learner is caught up; ``False`` on timeout.
        """
        if not self.limit_updates:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self.training and self.running
                   and self._updates < math.floor(self._allowed)):
                remaining = deadline - time.monotonic()
                if remaining <= 0.0:
                    return False
                self._cond.wait(remaining)
        return True

    def inject_nan_batch(self) -> None:
        """Make the next update see NaN rewards, as a corrupted batch would (for tests)."""
        with self._cond:
            self._nan_batches += 1

    def copy_agent(self) -> DDPG:
        """
        Return a consistent deep copy of the agent (networks, optimizers, counter), for saving.

        Taken between updates, so it never mixes the weights of two steps.
        """
        with self._agent_lock:
            return copy.deepcopy(self.agent)

    def _ready(self) -> bool:
        if not self.training or len(self.buffer) < self.batch_size:
            return False
        return not self.limit_updates or self._updates < math.floor(self._allowed)

    def _run(self) -> None:
        since_snapshot = 0
        while True:
            with self._cond:
                waited = False
                while not self._stop and not self._ready():
                    if waited and since_snapshot and self._fault is None:
                        # Idle for a while (paused, or no data or grants coming): hand the
                        # newest weights to the control loop now, not K updates from now. Not
                        # at once: in lockstep the learner idles briefly after every update.
                        break
                    timed_out = not self._cond.wait(0.1)
                    waited = waited or timed_out or not self._training
                if self._stop:
                    return
                ready = self._ready()
                poison = ready and self._nan_batches > 0
                if poison:
                    self._nan_batches -= 1
            if not ready:
                self._publish_snapshot()
                since_snapshot = 0
                continue
            try:
                batch = self.buffer.sample(self.batch_size)
                if poison:
                    batch = batch._replace(rewards=torch.full_like(batch.rewards, math.nan))
                with self._agent_lock:
                    info = self.update_fn(batch)
            except NonFiniteLossError as exc:
                self._record_fault(f'non-finite loss: {exc}')
                continue
            except Exception as exc:  # any failure must pause learning, never end acting
                self._record_fault(f'update failed: {type(exc).__name__}: {exc}')
                continue
            self.last_info = info
            self._update_times.append(time.monotonic())
            since_snapshot += 1
            with self._cond:
                self._updates += 1
                self._cond.notify_all()
            if since_snapshot >= self.snapshot_every:
                self._publish_snapshot()
                since_snapshot = 0

    def _publish_snapshot(self) -> None:
        try:
            with self._agent_lock:
                snapshot = self.agent.policy_snapshot()
        except Exception as exc:  # e.g. a device error while copying
            self._record_fault(f'snapshot failed: {type(exc).__name__}: {exc}')
            return
        if not snapshot_finite(snapshot):
            self._record_fault('the actor has non-finite weights; keeping the last good '
                               'snapshot')
            return
        self._snapshot = snapshot
        self._snapshot_version += 1
        if self.on_snapshot is not None:
            self.on_snapshot(snapshot)

    def _record_fault(self, message: str) -> None:
        with self._cond:
            self._fault = message
            self._cond.notify_all()


__all__ = ['BackgroundLearner', 'UpdateFn', 'snapshot_finite']
