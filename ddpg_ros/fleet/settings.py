"""The ``ddpg_learner`` parameters that are not DDPG hyper-parameters, with their rules."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ddpg_ros.control.settings import check
from ddpg_ros.fleet.wire import MAX_TRANSITION_BYTES

LATEST = 'latest'
"""``load_checkpoint`` value: the newest checkpoint in ``checkpoint_dir`` (of ``run_id`` when
set), if there is one."""


@dataclass
class LearnerSettings:
    """Parameters of the ``ddpg_learner`` node that are not DDPG hyper-parameters."""

    task: str = 'inverted_pendulum'
    """Built-in task name or package.module:ClassName: the spec every actor must share."""
    preset: str = ''
    """Defaults of the DDPG hyper-parameters: an env id of ddpg_ros/core/presets.yaml; '' = the
    task's env id, 'none' = DDPGConfig's defaults. Parameters set for the node override."""
    run_id: str = ''
    """Run every actor must belong to; '' = the resumed checkpoint's, or a new one (task and
    start time)."""
    load_checkpoint: str = ''
    """Checkpoint to resume; 'latest' = the newest in checkpoint_dir, of run run_id when that is
    set (a fresh start if there is none); '' = start fresh."""
    checkpoint_dir: str = 'checkpoints'
    """Directory of the checkpoints, progress.csv, TensorBoard files and learning_curve.png."""
    checkpoint_every: int = 10_000
    """Transitions stored between periodic checkpoints; 0 = only on request and exit."""
    keep_checkpoints: int = 3
    """Periodic checkpoints kept besides best.pt; 0 = keep all."""
    save_buffer: bool = True
    """Save the replay buffer as an .npz next to each checkpoint (a resume continues it)."""
    log_every: int = 1000
    """Transitions stored between rows of checkpoint_dir/progress.csv; 0 = none."""
    tensorboard: bool = True
    """Also write TensorBoard event files into checkpoint_dir."""
    control_rate: float = 0.0
    """Hz the actors act at (their control_rate); 0 = the task's control period."""
    policy_every: int = 20
    """Gradient updates between published policy versions."""
    policy_period: float = 1.0
    """Seconds after which the newest policy is published again even if unchanged: actors
    take a longer silence than their learner_timeout for a lost learner."""
    max_backlog: int = 200
    """Granted updates not yet run beyond which lockstep actors are asked to hold their next
    action (hold in the policy header); 0 = never ask."""
    max_message_bytes: int = MAX_TRANSITION_BYTES
    """Largest transition message accepted, in bytes."""
    torch_threads: int = 1
    """CPU threads for torch; 0 = torch's default (one per core)."""

    def __post_init__(self) -> None:
        for name in ('checkpoint_every', 'keep_checkpoints', 'log_every', 'max_backlog',
                     'torch_threads'):
            check(getattr(self, name) >= 0, name, getattr(self, name), 'must be >= 0')
        check(self.policy_every >= 1, 'policy_every', self.policy_every, 'must be >= 1')
        check(self.max_message_bytes >= 1024, 'max_message_bytes', self.max_message_bytes,
              'must be >= 1024')
        check(math.isfinite(self.policy_period) and self.policy_period > 0.0, 'policy_period',
              self.policy_period, 'must be > 0')
        check(math.isfinite(self.control_rate) and self.control_rate >= 0.0, 'control_rate',
              self.control_rate, 'must be >= 0')
        check(len(self.run_id) <= 256, 'run_id', self.run_id, 'must be at most 256 characters')


__all__ = ['LATEST', 'LearnerSettings']
