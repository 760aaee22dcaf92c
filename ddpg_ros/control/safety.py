"""
What keeps a robot safe while a policy drives it: the command filter and the safe command.

- :class:`CommandFilter` clips every action into the task's bounds, limits how far a command
  may move in one control step, and refuses a non-finite action.
- :class:`SafeCommand` is what the agent sends when it must stop acting (a silent or invalid
  source, a non-finite action, the exit): zeros for effort, velocity and twist; the last
  measured positions for position interfaces, since a position controller commanded to 0
  would swing the robot to its zero pose; or a fixed command the user configured.
- :class:`SourceFreshness` says which required source has gone without a valid sample for
  longer than the timeout, on the monotonic clock.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ddpg_ros.tasks import RobotState, Task
from ddpg_ros.tasks.sources import POSITION_INTERFACES, Source


class CommandFilter:
    """
    Clip to the action bounds, limit the rate of change, refuse non-finite actions.

    :param low: lower bound per actuator.
    :param high: upper bound per actuator.
    :param max_rate: largest change of any entry per control step; 0 = no limit.
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, max_rate: float = 0.0) -> None:
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.max_rate = float(max_rate)

    def __call__(self, action: np.ndarray, last: np.ndarray | None) -> np.ndarray | None:
        """
        Return the command to send for ``action``, or ``None`` if it is not finite.

        :param last: the command sent at the previous step (``None``: no rate limit yet).
        """
        command = np.clip(np.asarray(action, dtype=np.float64), self.low, self.high)
        if self.max_rate > 0.0 and last is not None:
            command = np.clip(command, last - self.max_rate, last + self.max_rate)
        return command if np.isfinite(command).all() else None


class SafeCommand:
    """
    The command that stops a robot safely, for the task's command interface.

    :param task: the task (its interface, bounds and commanded joints).
    :param interface: the command interface in use (the task's, or an override).
    :param configured: a fixed safe command, one value per actuator; empty = the
        interface's own.
    :raises ValueError: ``configured`` has the wrong length or lies outside the bounds.
    """

    def __init__(self, task: Task, interface: str, configured: Sequence[float] = ()) -> None:
        low = np.asarray(task.action_low, dtype=np.float64)
        high = np.asarray(task.action_high, dtype=np.float64)
        self.hold_position = interface in POSITION_INTERFACES and not len(configured)
        self._fixed: np.ndarray | None = None
        if len(configured):
            fixed = np.asarray(configured, dtype=np.float64)
            if fixed.shape != low.shape:
                raise ValueError(f'safe_command has {fixed.size} values, expected one per '
                                 f'actuator {list(task.action_names)}')
            if not (np.all(fixed >= low) and np.all(fixed <= high)):
                raise ValueError(f'safe_command {fixed.tolist()} is outside the action bounds '
                                 f'[{low.tolist()}, {high.tolist()}]')
            self._fixed = fixed
        elif not self.hold_position:
            self._fixed = np.zeros_like(low)
        index = {name: i for i, name in enumerate(task.joint_names)}
        self._joints = ([index[name] for name in task.commanded_joints]
                        if self.hold_position else [])

    def __call__(self, state: RobotState | None) -> np.ndarray | None:
        """
        Return the safe command; ``None`` when it holds positions and none was measured.

        :param state: the newest valid state, for the positions to hold.
        """
        if self._fixed is not None:
            return self._fixed.copy()
        if state is None:
            return None
        return np.asarray(state.position, dtype=np.float64)[self._joints].copy()


class SourceFreshness:
    """
    When each source last delivered a valid sample, and which required ones are stale.

    Times are monotonic seconds: a stalled simulation (sim time frozen) must still count
    as silent.

    :param sources: the task's sources.
    :param timeout: seconds after which a required source counts as stale; 0 = never.
    """

    def __init__(self, sources: Sequence[Source], timeout: float) -> None:
        self.required = tuple(source.name for source in sources if source.required)
        self.timeout = float(timeout)
        self._arrived: dict[str, float] = {}

    def arrived(self, name: str, now: float) -> None:
        """Record a valid sample of source ``name`` at monotonic time ``now``."""
        self._arrived[name] = now

    def stale(self, now: float) -> list[str]:
        """Return the required sources with no valid sample within ``timeout`` of ``now``."""
        if self.timeout <= 0.0:
            return [name for name in self.required if name not in self._arrived]
        return [name for name in self.required
                if now - self._arrived.get(name, -float('inf')) > self.timeout]

    def silence(self, names: Sequence[str], now: float) -> float:
        """Return the seconds since the newest valid sample of any of ``names`` (inf: none)."""
        return now - max((self._arrived.get(name, -float('inf')) for name in names),
                         default=-float('inf'))

    def last_arrival(self) -> float | None:
        """Return the monotonic time of the newest valid sample of any source, if any."""
        return max(self._arrived.values()) if self._arrived else None
