"""
The learner's record of its actors: what was stored, so nothing is stored twice.

Each actor numbers its batches ``0, 1, 2, ...`` within an *epoch* (the actor's start time,
so a restarted actor counts afresh). A batch is stored only if it comes after the last one
stored from that actor: a later epoch, or the same epoch and a higher sequence number. Older
ones are duplicates or replays and are refused; a jump in the sequence counts the batches in
between as lost. The last stored ``(epoch, sequence)`` of every actor goes into each
checkpoint together with the replay buffer it describes, so a learner restarted from that
checkpoint refuses exactly what that buffer already holds.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from ddpg_ros.fleet.wire import TransitionBatch, WireError

RATE_WINDOW = 5.0
"""Seconds over which an actor's transitions/s are taken."""


@dataclass
class ActorRecord:
    """One actor as the learner knows it."""

    epoch: int
    sequence: int
    """The last batch stored (-1: none yet in this epoch)."""
    batches: int = 0
    transitions: int = 0
    lost_batches: int = 0
    """Batches skipped in the sequence: sent but never received (or dropped by the actor)."""
    refused: int = 0
    policy_version: int = 0
    """The policy version the actor's newest batch was acted with."""
    lag: int = 0
    """Versions between that one and the newest the learner had published when it came."""
    first_seen: float | None = None
    last_seen: float | None = None
    arrivals: deque[tuple[float, int]] = field(default_factory=deque)


class ActorLedger:
    """
    De-duplication by ``(actor, epoch, sequence)`` and per-actor counts.

    Not thread-safe: the learner calls it from one thread, under its ingest lock.
    """

    def __init__(self) -> None:
        self.actors: dict[str, ActorRecord] = {}
        self.refused: Counter[str] = Counter()
        """Refused batches by kind (``malformed``, ``spec``, ``duplicate``, ...)."""

    def check(self, batch: TransitionBatch) -> None:
        """
        Refuse a batch already stored, or from an actor's earlier epoch.

        :raises WireError: of kind ``duplicate``, naming the actor and both positions.
        """
        record = self.actors.get(batch.actor_id)
        if record is None or batch.epoch > record.epoch:
            return
        if batch.epoch < record.epoch:
            raise WireError(f'batch {batch.sequence} of actor {batch.actor_id!r} is from its '
                            f'epoch {batch.epoch}, before its current epoch {record.epoch}: '
                            'refused as a replay', 'duplicate', batch.actor_id)
        if batch.sequence <= record.sequence:
            raise WireError(f'batch {batch.sequence} of actor {batch.actor_id!r} (epoch '
                            f'{batch.epoch}) was already stored: the last stored is '
                            f'{record.sequence}', 'duplicate', batch.actor_id)

    def record(self, batch: TransitionBatch, now: float, newest_version: int) -> None:
        """
        Note a stored batch: its position, the batches skipped before it, rate and lag.

        :param now: monotonic seconds.
        :param newest_version: the newest policy version published when it came.
        """
        record = self.actors.get(batch.actor_id)
        if record is None:
            record = self.actors[batch.actor_id] = ActorRecord(batch.epoch, -1)
        if batch.epoch > record.epoch:
            record.epoch, record.sequence = batch.epoch, -1
        record.lost_batches += batch.sequence - record.sequence - 1
        record.sequence = batch.sequence
        record.batches += 1
        record.transitions += batch.count
        record.policy_version = batch.policy_version
        record.lag = max(newest_version - batch.policy_version, 0)
        if record.first_seen is None:
            record.first_seen = now
        record.last_seen = now
        record.arrivals.append((now, batch.count))
        while record.arrivals and record.arrivals[0][0] < now - RATE_WINDOW:
            record.arrivals.popleft()

    def refuse(self, kind: str, actor_id: str = '') -> None:
        """Count a refused batch, against its actor when the header named one."""
        self.refused[kind] += 1
        record = self.actors.get(actor_id) if actor_id else None
        if record is not None:
            record.refused += 1

    def rate(self, actor_id: str, now: float) -> float:
        """Return an actor's stored transitions per second over the last ``RATE_WINDOW`` s."""
        record = self.actors[actor_id]
        if record.first_seen is None:
            return 0.0
        count = sum(n for t, n in record.arrivals if t >= now - RATE_WINDOW)
        return count / min(RATE_WINDOW, max(now - record.first_seen, 1.0))

    def state(self) -> dict[str, dict[str, int]]:
        """Return what a checkpoint keeps: the last stored ``epoch`` and ``sequence`` per actor."""
        return {actor_id: {'epoch': r.epoch, 'sequence': r.sequence}
                for actor_id, r in self.actors.items()}

    def restore(self, state: dict[str, Any]) -> None:
        """
        Continue from a checkpoint's :meth:`state`.

        :raises ValueError: an entry is not ``{'epoch': int, 'sequence': int}``.
        """
        actors = {}
        for actor_id, entry in state.items():
            try:
                actors[str(actor_id)] = ActorRecord(int(entry['epoch']), int(entry['sequence']))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f'actor record {actor_id!r}={entry!r} is not '
                                 f'{{epoch, sequence}}: {exc}') from None
        self.actors = actors


__all__ = ['ActorLedger', 'ActorRecord', 'RATE_WINDOW']
