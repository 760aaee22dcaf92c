"""The ``ddpg_agent`` parameters that are not DDPG hyper-parameters, with their rules."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODES = ('train', 'deploy')
LEARNERS = ('local', 'remote')
ON_LEARNER_LOST = ('continue', 'safe')
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class AgentSettings:
    """Parameters of the ``ddpg_agent`` node that are not DDPG hyper-parameters."""

    mode: str = 'train'
    """'train': explore, store transitions, learn; 'deploy': act with load_checkpoint only."""
    task: str = 'inverted_pendulum'
    """Built-in task name or package.module:ClassName."""
    preset: str = ''
    """Defaults of the DDPG hyper-parameters: an env id of ddpg_ros/core/presets.yaml; '' = the
    task's env id, 'none' = DDPGConfig's defaults. Parameters set for the node override."""
    load_checkpoint: str = ''
    """Checkpoint to resume (train) or to run (deploy); '' = none."""
    checkpoint_dir: str = 'checkpoints'
    """Directory of the checkpoints this node writes."""
    checkpoint_every: int = 10_000
    """Environment steps between periodic checkpoints (train); 0 = only on request and exit."""
    keep_checkpoints: int = 3
    """Periodic checkpoints kept besides best.pt; 0 = keep all."""
    save_buffer: bool = False
    """Also save the replay buffer as an .npz next to each checkpoint."""
    log_every: int = 1000
    """Environment steps between rows of checkpoint_dir/progress.csv (train); 0 = none."""
    tensorboard: bool = True
    """Also write TensorBoard event files into checkpoint_dir (train)."""
    total_steps: int = 0
    """Environment steps after which the node checkpoints and exits; 0 = run forever."""
    control_rate: float = 0.0
    """Hz. 0: act once per control step of the robot, when every required source has a new
    sample (lockstep sims). > 0: act on a timer (ROS time) from the newest samples."""
    command_interface: str = ''
    """effort, velocity, position, joint_trajectory or twist; '' = the task's own."""
    reset_service: str = 'mujoco_sim/reset'
    """std_srvs/Trigger service called at the end of each episode; '' = the robot has none."""
    reset_timeout: float = 5.0
    """Seconds to wait for the reset service before acting on whatever state comes."""
    state_timeout: float = 0.5
    """Seconds a required source may go without a valid sample before the safe command is
    sent; 0 = no watchdog."""
    safe_command: list[float] = field(default_factory=list)
    """Command sent by the watchdog and at exit, one per actuator; empty = the interface's
    own (zeros; hold the measured positions for position interfaces)."""
    value_limit: float = 1e6
    """Largest magnitude accepted in an observation or reward; beyond it a state is refused."""
    max_command_rate: float = 0.0
    """Largest change of any command entry per control step; 0 = no limit."""
    max_update_wait: float = 1.0
    """Longest delay of a command waiting for the learner to keep updates_per_step (s)."""
    snapshot_every: int = 10
    """Gradient updates between refreshes of the acting policy snapshot."""
    torch_threads: int = 1
    """CPU threads for torch; 0 = torch's default (one per core, slow when cores are busy)."""
    learner: str = 'local'
    """'local': learn in this process; 'remote': act with the newest policy of a ddpg_learner,
    send it the transitions, never train (train mode)."""
    actor_id: str = ''
    """This actor's name in a remote learner's records; '' = the node's fully qualified name."""
    run_id: str = ''
    """Run of the remote learner to join; '' = the run of the first policy that arrives."""
    learner_timeout: float = 5.0
    """Seconds without a policy message after which the remote learner counts as lost."""
    on_learner_lost: str = 'continue'
    """'continue': act with the last policy without noise, queue transitions; 'safe': send the
    safe command until a policy arrives."""
    transition_batch: int = 50
    """Transitions per message to the remote learner."""
    transition_queue: int = 100_000
    """Transitions kept for a remote learner that is away; beyond it the oldest are dropped."""

    def __post_init__(self) -> None:
        self.safe_command = [float(v) for v in self.safe_command]
        check(self.mode in MODES, 'mode', self.mode, f'must be one of {", ".join(MODES)}')
        check(self.mode == 'train' or bool(self.load_checkpoint), 'load_checkpoint',
              self.load_checkpoint, 'must name a checkpoint in deploy mode')
        for name in ('checkpoint_every', 'keep_checkpoints', 'total_steps', 'torch_threads',
                     'log_every'):
            check(getattr(self, name) >= 0, name, getattr(self, name), 'must be >= 0')
        check(self.snapshot_every >= 1, 'snapshot_every', self.snapshot_every, 'must be >= 1')
        for name in ('reset_timeout', 'state_timeout', 'max_command_rate', 'max_update_wait',
                     'value_limit', 'control_rate'):
            value = getattr(self, name)
            check(math.isfinite(value) and value >= 0.0, name, value, 'must be >= 0')
        check(self.reset_timeout > 0.0, 'reset_timeout', self.reset_timeout, 'must be > 0')
        check(0.0 < self.value_limit <= FLOAT32_MAX, 'value_limit', self.value_limit,
              f'must be in (0, {FLOAT32_MAX:g}]')
        check(all(math.isfinite(v) for v in self.safe_command), 'safe_command',
              self.safe_command, 'must be finite')
        check(self.learner in LEARNERS, 'learner', self.learner,
              f'must be one of {", ".join(LEARNERS)}')
        remote = self.learner == 'remote'
        check(not remote or self.mode == 'train', 'learner', self.learner,
              'needs mode train (a deployed policy learns nothing)')
        check(not remote or not self.load_checkpoint, 'load_checkpoint', self.load_checkpoint,
              'must be empty with learner remote: the ddpg_learner resumes checkpoints')
        check(math.isfinite(self.learner_timeout) and self.learner_timeout > 0.0,
              'learner_timeout', self.learner_timeout, 'must be > 0')
        check(self.on_learner_lost in ON_LEARNER_LOST, 'on_learner_lost', self.on_learner_lost,
              f'must be one of {", ".join(ON_LEARNER_LOST)}')
        check(self.transition_batch >= 1, 'transition_batch', self.transition_batch,
              'must be >= 1')
        check(self.transition_queue >= self.transition_batch, 'transition_queue',
              self.transition_queue, f'must be >= transition_batch ({self.transition_batch})')


def check(ok: bool, name: str, value: Any, rule: str) -> None:
    """Raise ``ValueError('name=value rule')`` unless ``ok``."""
    if not ok:
        raise ValueError(f'{name}={value!r} {rule}')


def resolve_preset(name: str, task: Any) -> tuple[str, dict[str, Any]]:
    """
    Return the preset a node's ``preset`` parameter selects, and its DDPGConfig arguments.

    :param name: a key of ``ddpg_ros/core/presets.yaml``; ``''`` = the task's env id (no
        preset if it has none); ``'ddpg'`` = the plain DDPG preset of the task's env id;
        ``'none'`` = DDPGConfig's defaults.
    :return: the preset's name (``''`` for none) and its keyword arguments.
    :raises ValueError: an unknown preset name, naming it and the known ones.
    """
    from ddpg_ros.core.presets import NO_PRESET, preset_for, preset_name

    if name == NO_PRESET:
        return '', {}
    if not name:
        name = task.env_id or ''
        preset = preset_for(name) if name else None
        return (name, preset) if preset is not None else ('', {})
    try:
        name = preset_name(name, task.env_id)
        return name, preset_for(name, required=True)
    except ValueError as exc:
        raise ValueError(f'preset={name!r}: {exc}') from exc


def preset_report(name: str, preset: dict[str, Any], config: Any) -> str:
    """Return the log line that says where the hyper-parameters came from."""
    import dataclasses

    from ddpg_ros.core.config import DDPGConfig

    base = DDPGConfig(**preset)
    overridden = [f'{f.name}={getattr(config, f.name)}' for f in dataclasses.fields(config)
                  if getattr(config, f.name) != getattr(base, f.name)]
    source = f'preset {name}' if name else "DDPGConfig's defaults (no preset)"
    return (f'hyper-parameters: {source}'
            + (f'; set for this node: {" ".join(overridden)}' if overridden else ''))
