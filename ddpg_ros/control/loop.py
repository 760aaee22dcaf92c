"""
When the control step runs, and what happens when a source falls silent.

:class:`ControlLoop` sits between the node's callbacks and :class:`ControlStep`: samples go
into :class:`LatestSamples`; a step runs when every required source has a new sample
(``control_rate`` 0) or when the control timer ticks with every required source fresh
(``control_rate`` > 0); the watchdog sends the safe command once and stops acting when a
required source stays silent past ``state_timeout``; episodes wait for the robot's reset.
It calls back into the node only to publish and to ask for a reset, so all of it runs
without DDS.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ddpg_ros.control.sampling import LatestSamples
from ddpg_ros.control.step import ControlStep


@dataclass
class LoopActions:
    """What the loop asks of the node that runs it."""

    publish: Callable[[np.ndarray], None]
    """Send a command on the command interface."""
    episode_return: Callable[[float], None]
    """Report a finished episode's return."""
    request_reset: Callable[[], None] | None
    """Ask the robot for a new episode; ``None``: the robot has no reset."""
    problem: Callable[[str], None]
    """Log a problem (throttled by the node)."""
    info: Callable[[str], None]
    """Log a line."""
    finished: Callable[[], None]
    """``total_steps`` is reached: the node stops."""


class ControlLoop:
    """
    Paces the control step and guards it with the watchdog.

    :param control: the control step.
    :param samples: the newest sample of every source.
    :param actions: the node's side.
    :param control_rate: Hz; 0 = a step per complete set of new samples.
    :param state_timeout: seconds of silence before the safe command; 0 = no watchdog.
    """

    def __init__(self, control: ControlStep, samples: LatestSamples, actions: LoopActions,
                 control_rate: float, state_timeout: float) -> None:
        self.control = control
        self.samples = samples
        self.actions = actions
        self.timed = control_rate > 0.0
        self.state_timeout = float(state_timeout)
        self.reset_pending = False
        self.tripped = False
        self.stopping = False
        self.silent_sources: list[str] = []
        self.counts = {'repeated_states': 0, 'watchdog_trips': 0}
        self.trip_silence: float | None = None
        """Seconds the silent sources had been silent when the watchdog last tripped."""
        self.trip_check_gap: float | None = None
        """Seconds between that check and the one before it. The watchdog trips at the first
        check past ``state_timeout``, so ``trip_silence`` is at most the timeout plus this gap;
        a gap far over the timer's period means the node itself was starved (CPU, a blocked
        callback) and the safe command came late by as much."""
        self._last_check: float | None = None
        self.on_latency: Callable[[float], None] = lambda latency: None
        self._last_activity: float | None = None
        """Monotonic time of the last step, command or sample; ``None`` keeps the watchdog
        disarmed until the first valid state, since before it there is no acting to stop."""

    def on_sample(self, name: str, sample: Any, received: float) -> None:
        """Take a valid sample of source ``name`` (``received``: ``perf_counter`` time)."""
        if self.stopping or self.control.finished:
            return
        now = time.monotonic()
        if not self.timed and name == self.samples.joint_source and \
                not self.samples.is_new(name) and self.control.repeats_last(sample):
            # Lockstep re-sends a state it is still waiting on: our command went missing.
            self.counts['repeated_states'] += 1
            self._publish(self.control.last_command)
            return
        self.samples.put(name, sample, now)
        # A sample during a pending reset is a sign of life, not yet a step to act on.
        self._last_activity = now
        if not self.timed and not self.reset_pending and self.samples.complete():
            self._step(received)

    def on_invalid(self, problem: str) -> None:
        """Refuse a sample that failed validation: never acted on, never stored."""
        self.control.refuse(problem)
        self.actions.problem(problem)

    def on_tick(self) -> None:
        """Run a timed step on the newest samples, if every required source is fresh."""
        if self.stopping or self.control.finished or self.reset_pending:
            return
        if self.samples.fresh(time.monotonic()) and self.samples.complete():
            self._step(time.perf_counter())

    def on_reset_done(self) -> None:
        """Act again: at once in lockstep if the new episode's samples are all there."""
        self.reset_pending = False
        if not self.stopping and not self.timed and self.samples.complete():
            self._step(time.perf_counter())

    def _step(self, received: float) -> None:
        state = self.samples.state()
        self.samples.use()
        if self.tripped:
            self.tripped = False
            self.control.interrupt()
            self.actions.info('states are back: acting again (new chain)')
        decision = self.control.step(state)
        self._last_activity = time.monotonic()
        if decision.problem:
            self.actions.problem(decision.problem)
        if decision.episode_return is not None:
            self.actions.episode_return(decision.episode_return)
        if decision.finished:
            self.actions.finished()
        if decision.reset:
            self.reset_pending = True
            self.actions.request_reset()
        elif self.timed:
            self.samples.clear_floor()  # a timer acts on the newest samples, new or not
        if decision.command is not None:
            self._publish(decision.command)
            if not decision.problem:
                self.on_latency(time.perf_counter() - received)

    def _publish(self, command: np.ndarray | None) -> None:
        if command is not None:
            self.actions.publish(command)
            self._last_activity = time.monotonic()

    def check_watchdog(self) -> bool:
        """
        Trip when a required source has been silent too long: safe command, stop acting.

        :return: whether it tripped now (the caller abandons a pending reset).
        """
        now = time.monotonic()
        gap = now - self._last_check if self._last_check is not None else 0.0
        self._last_check = now
        if self.stopping or self.tripped or self._last_activity is None:
            return False
        if self.timed:
            silent = self.samples.stale(now)
        elif now - self._last_activity > self.state_timeout:
            # Lockstep waits for the robot: silence is no step for state_timeout; the
            # sources without a new sample are the ones holding the step back.
            silent = [n for n in self.samples.required if not self.samples.is_new(n)] \
                or list(self.samples.required)
        else:
            silent = []
        if not silent:
            return False
        self.tripped, self.silent_sources = True, silent
        self.trip_silence = (self.samples.freshness.silence(silent, now) if self.timed
                             else now - self._last_activity)
        self.trip_check_gap = gap
        self.reset_pending = False
        self.control.interrupt()
        # Nothing kept from before the silence acts later: only newer samples count.
        self.samples.use()
        self.counts['watchdog_trips'] += 1
        self._publish(self.control.safe())
        starved = (f'; the watchdog ran {gap:.2f} s after its previous check, so this node '
                   'was starved (CPU, or a blocked callback)'
                   if gap > self.state_timeout / 2 else '')
        silence = (f'for {self.trip_silence:.2f} s' if math.isfinite(self.trip_silence)
                   else 'yet')
        self.actions.problem(f'no valid sample from {", ".join(silent)} {silence} '
                             f'(state_timeout {self.state_timeout:g} s): sent the safe command; '
                             f'acting stops until every source is back{starved}')
        return True
