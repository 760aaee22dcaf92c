"""
The newest valid sample of every state source, and when a control step may use them.

Two ways to pace the control step (INTERFACE.md section 7, ``control_rate``):

- **per robot step** (``control_rate`` 0, lockstep sims): a step is complete when every
  required source has delivered a sample *newer* (by stamp) than the one the previous step
  used, so no source is ever a step behind; a sim stamps all samples of one step alike.
- **on a timer** (``control_rate`` > 0, robots behind ros2_control): every tick uses the
  newest sample of each source, provided every required one arrived within
  ``state_timeout``.

Either way, after an episode ends the next step waits for samples newer than the terminal
ones, so nothing of the old episode is acted on in the new one.
"""

from __future__ import annotations

from typing import Any

from ddpg_ros.control.safety import SourceFreshness
from ddpg_ros.tasks import RobotState, Task


class LatestSamples:
    """
    A cache of each source's newest valid sample, with the rules above.

    :param task: declares the sources; its joint-state source fills ``RobotState``'s arrays.
    :param timeout: ``state_timeout``: seconds after which a required source is stale.
    """

    def __init__(self, task: Task, timeout: float) -> None:
        self.sources = task.sources
        self.required = tuple(s.name for s in task.sources if s.required)
        joint_source = task.joint_source
        self.joint_source = joint_source.name if joint_source is not None else None
        self.freshness = SourceFreshness(task.sources, timeout)
        self._samples: dict[str, Any] = {}
        self._floor: dict[str, float] = {}
        """Stamps a sample must exceed to count as new (the last step's or the terminal's)."""

    def put(self, name: str, sample: Any, now: float) -> None:
        """Keep ``sample`` (already validated) as source ``name``'s newest, at ``now``."""
        self._samples[name] = sample
        self.freshness.arrived(name, now)

    def is_new(self, name: str) -> bool:
        """Whether source ``name`` holds a sample newer than the last step used."""
        sample = self._samples.get(name)
        return sample is not None and sample.stamp > self._floor.get(name, -float('inf'))

    def complete(self) -> bool:
        """Whether every required source has a new sample (a complete robot step)."""
        return all(self.is_new(name) for name in self.required)

    def fresh(self, now: float) -> bool:
        """Whether every required source has a sample, none older than the timeout."""
        return (all(name in self._samples for name in self.required)
                and not self.freshness.stale(now))

    def stale(self, now: float) -> list[str]:
        """Return the required sources without a valid sample within the timeout."""
        return self.freshness.stale(now)

    def state(self) -> RobotState:
        """Return the robot state of the newest samples: joint arrays plus every source."""
        joints = self._samples.get(self.joint_source) if self.joint_source else None
        sources = dict(self._samples)
        if joints is None:
            stamp = max((s.stamp for s in sources.values()), default=0.0)
            return RobotState([], [], [], stamp, sources)
        return RobotState(joints.position, joints.velocity, joints.effort, joints.stamp,
                          sources)

    def use(self) -> None:
        """Mark the current samples as used: the next complete step needs newer ones."""
        self._floor = {name: sample.stamp for name, sample in self._samples.items()}

    def clear_floor(self) -> None:
        """Accept the current samples again (timer pacing within an episode)."""
        self._floor = {}

    def sample(self, name: str) -> Any:
        """Return source ``name``'s newest sample, or ``None``."""
        return self._samples.get(name)
