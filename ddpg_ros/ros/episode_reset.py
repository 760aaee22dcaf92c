"""
The reset protocol of ``ddpg_agent``: ask the robot for a new episode, with a deadline.

At the end of an episode the agent calls the robot's ``std_srvs/Trigger`` reset service and
acts again once it has answered (or once ``reset_timeout`` has passed, on whatever state
then comes). A request sent before the service is matched would be lost, so only a ready
service is called, and a timer retries until it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.task import Future
from std_srvs.srv import Trigger

RESET_POLL_PERIOD = 0.1
"""Seconds between retries of a reset service that is not ready yet."""


def steady_clock() -> Clock:
    """Return the monotonic clock for timers that must run when sim time stalls."""
    # Watchdog, diagnostics and resets run on it: under use_sim_time a stalled simulation
    # must still trip the watchdog and still report.
    return Clock(clock_type=ClockType.STEADY_TIME)


class EpisodeReset:
    """
    Calls a reset service once per episode end and says when acting may go on.

    :param node: the node that calls.
    :param service: the service's name.
    :param timeout: seconds after which the agent goes on without an answer.
    :param on_done: called (in the executor) when the reset is over, answered or not.
    :param on_problem: called with a sentence when the reset failed or timed out.
    """

    def __init__(self, node: Node, service: str, timeout: float, on_done: Callable[[], None],
                 on_problem: Callable[[str], None]) -> None:
        self._client = node.create_client(Trigger, service)
        self._timeout = timeout
        self._on_done = on_done
        self._on_problem = on_problem
        self.pending = False
        self.failures = 0
        self._requested_at = 0.0
        self._future: Future | None = None
        node.create_timer(RESET_POLL_PERIOD, self._on_timer, clock=steady_clock())

    def request(self) -> None:
        """Ask for a new episode; acting waits until :attr:`pending` clears."""
        self.pending = True
        self._requested_at = time.monotonic()
        self._future = None
        self._call()

    def abandon(self) -> None:
        """Give the reset up (the robot went silent): its answer will be ignored."""
        self.pending = False
        self._future = None

    def _call(self) -> None:
        if not self._client.service_is_ready():
            self._on_problem(f'reset service {self._client.srv_name} is not available')
            return
        self._future = self._client.call_async(Trigger.Request())
        self._future.add_done_callback(self._on_answer)

    def _on_answer(self, future: Future) -> None:
        if future is not self._future or not self.pending:
            return
        response = future.result()
        if response is None or not response.success:
            self.failures += 1
            message = response.message if response is not None else 'no response'
            self._on_problem(f'reset service failed: {message}')
        self._finish()

    def _finish(self) -> None:
        self.pending = False
        self._future = None
        self._on_done()

    def _on_timer(self) -> None:
        if not self.pending:
            return
        if time.monotonic() - self._requested_at > self._timeout:
            self.failures += 1
            self._on_problem(f'reset service {self._client.srv_name} did not answer in '
                             f'{self._timeout:g} s: going on without it')
            self._finish()
        elif self._future is None:
            self._call()
