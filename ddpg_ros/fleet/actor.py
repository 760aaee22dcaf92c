"""
A ``ddpg_agent``'s learning side when the learner is a ``ddpg_learner`` elsewhere.

:class:`RemoteTraining` is what the control step calls (the ``Policy`` protocol of
:mod:`ddpg_ros.control.step`), as :class:`~ddpg_ros.control.training.LocalTraining` is for a
learner in the same process. It never trains. It acts with the newest policy the learner
published, adds exploration noise while the learner is there, and sends the transitions in
batches stamped with the actor's id, epoch, sequence number and the policy version that acted.

Threads: the control step (the node's executor thread) only reads the current policy, one
attribute, and copies each transition into a preallocated row. Decoding policies, encoding
and sending batches happen in a thread of this class's own, so a large policy never delays a
command. The ROS side hands raw policy messages in with :meth:`offer_policy` and gives the
means to send with :meth:`connect`.

When the newest policy message is older than ``learner_timeout`` seconds the learner counts
as lost: with ``on_learner_lost: continue`` the actor keeps acting with its last good policy
without noise and keeps the batches in a bounded queue (oldest dropped, counted); with
``safe`` it acts no more (:meth:`act` returns ``None``: the control step sends the safe
command) until a policy arrives. Before the first policy it does not act either way.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ddpg_ros.core.checkpoint import PolicySpec
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.control.episodes import Transition
from ddpg_ros.control.settings import AgentSettings
from ddpg_ros.control.training import policy_action
from ddpg_ros.fleet.wire import (ReceivedPolicy, WireError, WireMessage, decode_policy,
                                 decode_policy_header, encode_transitions, row_width)
from ddpg_ros.core.noise import make_noise
from ddpg_ros.tasks import Task

Log = Callable[[str], None]
FLUSH_PERIOD = 0.2
"""Seconds after which a batch that is not full is sent anyway."""
WORKER_PERIOD = 0.05
"""Seconds between the worker thread's checks for a lost or returning learner."""
RETURN_SETTLE = 1.0
"""Seconds a learner that is back gets before the queue goes out: its subscription may not
have matched this actor's publisher yet (a killed learner's stays matched until its lease
runs out), and what goes out before it has is lost."""


@dataclass(frozen=True)
class PendingBatch:
    """A finished batch waiting to be sent: rows and what stamps them."""

    rows: np.ndarray
    sequence: int
    policy_version: int
    episode_returns: tuple[float, ...]


@dataclass(frozen=True)
class ActingPolicy:
    """What a remote actor acts with: the newest policy received, on the CPU."""

    received: ReceivedPolicy | None
    device: torch.device = torch.device('cpu')

    @property
    def version(self) -> int:
        """Return the policy version, 0 before the first."""
        return self.received.header.version if self.received is not None else 0


class RemoteTraining:
    """
    Act with a remote learner's newest policy, explore, and send it every transition.

    :param task: the task (bounds, dimensions).
    :param spec: this robot's spec; policies for another are refused.
    :param settings: the node's settings (``learner_timeout``, ``on_learner_lost``,
        ``transition_batch``, ``transition_queue``, ``run_id``, ``max_update_wait``,
        ``control_rate``).
    :param config: the actor's DDPG settings: noise and seed.
    :param actor_id: this actor's name in the learner's records.
    :param info: logs a line; ``warn`` a warning; ``error`` an error.
    :param clock: monotonic seconds (tests may replace it).
    :param epoch: the start of this actor's sequence numbering; now (ns) by default.
    """

    training = True
    learner = None
    buffer = None

    def __init__(self, task: Task, spec: PolicySpec, settings: AgentSettings,
                 config: DDPGConfig, actor_id: str, info: Log, warn: Log, error: Log,
                 clock: Callable[[], float] = time.monotonic, epoch: int | None = None) -> None:
        self.task, self.spec, self.settings, self.config = task, spec, settings, config
        self.actor_id = actor_id
        self.epoch = time.time_ns() if epoch is None else int(epoch)
        self.run_id = settings.run_id or None
        """The learner's run; adopted from the first policy when not set."""
        self._info, self._warn, self._error, self._clock = info, warn, error, clock
        self._low = np.asarray(task.action_low, dtype=np.float64)
        self._high = np.asarray(task.action_high, dtype=np.float64)
        self.rng = np.random.default_rng(config.seed)
        self.noise = make_noise(config.noise_type, config.noise_sigma, self._low, self._high,
                                self.rng, theta=config.noise_theta)
        self.counters = {'env_steps': 0, 'episodes': 0}
        self.last_wait = 0.0
        self.wait_timeouts = 0
        self.stats = {'batches_sent': 0, 'transitions_sent': 0, 'transitions_dropped': 0,
                      'policies_received': 0, 'policies_refused': 0}
        self.sequence = 0
        self._current: ReceivedPolicy | None = None
        """Swapped whole by the worker thread; the control step reads it once per action."""
        self._last_heard: float | None = None
        self._acted_version = 0
        width = row_width(spec.obs_dim, spec.action_dim)
        self._rows = np.zeros((settings.transition_batch, width), dtype=np.float32)
        self._filled = 0
        self._batch_started = 0.0
        self._batch_version = 0
        self._returns: list[float] = []
        self._cond = threading.Condition()
        self._outbox: deque[PendingBatch] = deque()
        self._queued = 0
        self._offered: tuple[Any, int, Any] | None = None
        self._lost_reported = False
        self._settle_until = -math.inf
        self.last_refusal = ''
        """The newest refused policy's reason, for whoever watches."""
        self._stopping = False
        self._send: Callable[[WireMessage], None] | None = None
        self._present: Callable[[], bool] = lambda: True
        self._drain: Callable[[], Any] = lambda: None
        self._disconnect: Callable[[], Any] = lambda: None
        self._thread = threading.Thread(target=self._run, name='remote_learner', daemon=True)

    # Wiring

    def connect(self, send: Callable[[WireMessage], None], present: Callable[[], bool],
                drain: Callable[[], Any] = lambda: None,
                disconnect: Callable[[], Any] = lambda: None) -> None:
        """
        Start the worker thread with the means to reach the learner.

        :param send: publishes one transition batch (called from the worker thread).
        :param present: whether a learner subscribes to the batches now.
        :param drain: waits until what was sent is delivered (at exit).
        :param disconnect: releases the means, last thing at exit.
        """
        self._send, self._present, self._drain = send, present, drain
        self._disconnect = disconnect
        self._thread.start()

    def offer_policy(self, data: Any, data_offset: int, dims: Any = ()) -> None:
        """Hand over a policy message as received; the worker thread decodes it."""
        with self._cond:
            self._offered = (data, data_offset, dims)
            self._cond.notify_all()

    # The Policy protocol (the control step's thread)

    @property
    def agent(self) -> ActingPolicy:
        """Return the policy the actor acts with."""
        return ActingPolicy(self._current)

    def lost(self, now: float | None = None) -> bool:
        """Return whether no policy message came within ``learner_timeout`` seconds."""
        heard = self._last_heard
        now = self._clock() if now is None else now
        return heard is None or now - heard > self.settings.learner_timeout

    def act(self, obs: np.ndarray, explore: bool, env_steps: int) -> np.ndarray | None:
        """
        Return the action for ``obs``, or ``None``: do not act, send the safe command.

        ``None`` before the first policy, and while the learner is lost under
        ``on_learner_lost: safe``. While the learner is lost under ``continue``: the last
        policy without noise. Otherwise the newest policy plus noise (uniform random actions
        while the learner is warming up), after waiting, in lockstep and at most
        ``max_update_wait`` s, for a learner that asks actors to hold.
        """
        self.last_wait = 0.0
        current = self._current
        if current is None:
            return None
        lost = self.lost()
        if lost and self.settings.on_learner_lost == 'safe':
            return None
        if explore and not lost:
            if current.header.hold:
                current = self._wait_for_learner()
            self._acted_version = current.header.version
            if current.header.warmup:
                return self.rng.uniform(self._low, self._high)
            return policy_action(current.actor, obs) + self.noise()
        self._acted_version = current.header.version
        return policy_action(current.actor, obs)

    def _wait_for_learner(self) -> ReceivedPolicy:
        settings = self.settings
        if settings.control_rate > 0.0 or settings.max_update_wait <= 0.0:
            return self._current  # a robot on a timer never delays its command
        started = time.perf_counter()
        deadline = self._clock() + settings.max_update_wait
        with self._cond:
            while self._current.header.hold and not self.lost():
                remaining = deadline - self._clock()
                if remaining <= 0.0:
                    self.wait_timeouts += 1
                    break
                self._cond.wait(remaining)
        self.last_wait = time.perf_counter() - started
        return self._current

    def store(self, transition: Transition, env_steps: int) -> None:
        """Copy a transition into the batch being filled; hand the batch over when due."""
        t, row = transition, self._rows[self._filled]
        obs_dim, action_dim = self.spec.obs_dim, self.spec.action_dim
        row[:obs_dim] = t.obs
        row[obs_dim:obs_dim + action_dim] = t.action
        row[obs_dim + action_dim] = t.reward
        row[obs_dim + action_dim + 1:-1] = t.next_obs
        row[-1] = float(t.terminated)
        now = self._clock()
        if self._filled == 0:
            self._batch_started, self._batch_version = now, self._acted_version
        else:
            self._batch_version = min(self._batch_version, self._acted_version)
        self._filled += 1
        if self._filled == len(self._rows) or now - self._batch_started >= FLUSH_PERIOD:
            self._finish_batch()

    def episode_ended(self, episode_return: float, env_steps: int) -> None:
        """Send the return with the batch being filled; start the noise afresh."""
        self._returns.append(float(episode_return))
        self.noise.reset()

    def _finish_batch(self) -> None:
        if not self._filled:
            return
        batch = PendingBatch(self._rows[:self._filled].copy(), self.sequence,
                             self._batch_version, tuple(self._returns))
        self.sequence += 1
        self._filled = 0
        self._returns = []
        with self._cond:
            self._outbox.append(batch)
            self._queued += len(batch.rows)
            while self._queued > self.settings.transition_queue:
                dropped = self._outbox.popleft()
                self._queued -= len(dropped.rows)
                self.stats['transitions_dropped'] += len(dropped.rows)
            self._cond.notify_all()

    # The worker thread

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self._offered is not None
                                    or bool(self._outbox), WORKER_PERIOD)
                offered, self._offered = self._offered, None
                stopping = self._stopping
            if offered is not None:
                self._receive(*offered)
            self._report_learner()
            self._send_outbox()
            if stopping:
                return
            if self._outbox and not self._sendable():
                time.sleep(WORKER_PERIOD)  # nothing can go out: do not spin on the outbox

    def _sendable(self) -> bool:
        return (self._send is not None and self._current is not None and not self.lost()
                and self._clock() >= self._settle_until and self._present())

    def _send_outbox(self) -> None:
        while self._outbox and self._sendable():
            with self._cond:
                if not self._outbox:
                    return
                batch = self._outbox.popleft()
                self._queued -= len(batch.rows)
            message = encode_transitions(
                batch.rows, run_id=self.run_id or '', actor_id=self.actor_id, epoch=self.epoch,
                sequence=batch.sequence, policy_version=batch.policy_version, spec=self.spec,
                episode_returns=batch.episode_returns)
            try:
                self._send(message)
            except Exception as exc:  # the context may be gone at exit
                self._error(f'transition batch {batch.sequence} not sent: {exc}')
                return
            self.stats['batches_sent'] += 1
            self.stats['transitions_sent'] += len(batch.rows)

    def _receive(self, data: Any, data_offset: int, dims: Any) -> None:
        try:
            header, _ = decode_policy_header(data, data_offset, dims)
            if self.run_id is not None and header.run_id != self.run_id:
                raise WireError(f'policy of run {header.run_id!r} refused: this actor is in '
                                f'run {self.run_id!r}', 'run_id')
            current = self._current
            if current is not None and header.version <= current.header.version:
                if header.version == current.header.version:
                    # The same weights again: the learner is there; take its new flags.
                    self._heard(ReceivedPolicy(header, current.actor))
                return
            received = decode_policy(data, data_offset, dims, spec=self.spec,
                                     run_id=self.run_id)
        except WireError as exc:
            self.stats['policies_refused'] += 1
            if str(exc) != self.last_refusal:
                self.last_refusal = str(exc)
                self._error(f'policy refused: {exc}')
            return
        if self.run_id is None:
            self.run_id = received.header.run_id
        if self._current is None:
            self._info(f'policy version {received.header.version} of run {self.run_id} '
                       f'received from the learner: acting as {self.actor_id}')
        self.stats['policies_received'] += 1
        self._heard(received)

    def _heard(self, received: ReceivedPolicy) -> None:
        with self._cond:
            self._current = received
            self._last_heard = self._clock()
            self._cond.notify_all()

    def _report_learner(self) -> None:
        if self._current is None:
            return
        lost = self.lost()
        if lost and not self._lost_reported:
            then = 'sending the safe command' if self.settings.on_learner_lost == 'safe' else \
                f'acting with policy version {self._current.header.version} without noise'
            self._warn(f'no policy from the learner for {self.settings.learner_timeout:g} s: '
                       f'{then}; {self._queued} transitions queued')
        elif not lost and self._lost_reported:
            self._settle_until = self._clock() + RETURN_SETTLE
            self._info(f'learner back: policy version {self._current.header.version}; '
                       f'sending {self._queued} queued transitions in {RETURN_SETTLE:g} s')
        self._lost_reported = lost

    def close(self, log: Log) -> None:
        """Send what is left if the learner is there, then stop the worker thread."""
        self._finish_batch()
        if self._thread.is_alive():
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            self._thread.join(timeout=10.0)
            if self._queued:
                log(f'{self._queued} transitions not sent: no learner at exit')
            try:
                self._drain()
            except Exception as exc:  # the context may already be gone
                log(f'transition batches not acknowledged: {exc}')
        self._disconnect()

    def diagnostic_values(self, env_steps: int) -> dict[str, str]:
        """Return the remote learner's part of ``/diagnostics``, as this actor sees it."""
        current, heard = self._current, self._last_heard
        header = current.header if current is not None else None
        age = self._clock() - heard if heard is not None else math.nan
        return {
            'learner': 'remote', 'actor_id': self.actor_id, 'run_id': self.run_id or '',
            'policy_version': str(header.version) if header else '',
            'policy_age_s': f'{age:.2f}', 'learner_lost': str(self.lost()),
            'on_learner_lost': self.settings.on_learner_lost,
            'learner_warmup': str(header.warmup) if header else '',
            'learner_hold': str(header.hold) if header else '',
            'learner_updates': str(header.updates) if header else '',
            'transitions_queued': str(self._queued),
            **{key: str(value) for key, value in self.stats.items()},
        }


__all__ = ['ActingPolicy', 'PendingBatch', 'RemoteTraining']
