"""The ``ddpg_agent`` node: acts on robot state, explores, stores transitions, and learns.

Data flow (see DESIGN.md):

* ``joint_states`` callback, the control loop's hot path: message -> :class:`RobotState` by
  joint name -> the task's observation, reward and termination -> one transition appended to
  the replay buffer -> an action from the *current policy snapshot* (a CPU actor copy), plus
  exploration noise when training -> clipped, rate limited -> one publish on
  ``effort_controller/commands``. Nothing else: no gradient step, no file, no waiting on a
  lock an update holds.
* :class:`~ddpg_ros.learner.BackgroundLearner`, a thread: mini-batches -> DDPG updates (GPU
  when there is one) -> every ``snapshot_every`` updates a fresh snapshot, swapped in only
  if every weight is finite.
* One executor thread runs every ROS callback (the control step, the reset response,
  services, ``/diagnostics``, the state watchdog). Periodic checkpoints are written by a
  thread of their own, so the control loop does not wait for them (with ``save_buffer``,
  appends wait while the buffer is copied); one asked for through ``~/save_checkpoint`` is
  written before the service answers, so acting pauses for that write.

In lockstep the update-to-data ratio is held by delaying the next command until the learner
has run the updates granted for the steps before it (bounded by ``max_update_wait``); the
learner never waits for the control loop, so this cannot deadlock.

Why one executor thread: rclpy's ``MultiThreadedExecutor`` re-yields a callback that has not
started yet on every spin, so while the control step waits for the learner its spin loop
busy-waits on the GIL; measured here, it starved the learner to a few updates per second on
a loaded machine. A single thread spins only when there is work.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from ddpg_ros.checkpoint import (PolicySpec, load_checkpoint, random_states,
                                 remove_stale_temporaries, restore_random_states,
                                 save_checkpoint)
from ddpg_ros.config import DDPGConfig, field_docs
from ddpg_ros.ddpg import DDPG
from ddpg_ros.envs import spec_for_task
from ddpg_ros.learner import BackgroundLearner, snapshot_finite
from ddpg_ros.networks import Actor
from ddpg_ros.noise import make_noise
from ddpg_ros.presets import NO_PRESET, preset_for
from ddpg_ros.replay_buffer import ReplayBuffer
from ddpg_ros.ros.conversions import joint_state_to_robot_state, to_float64_multi_array
from ddpg_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, STATE_QOS
from ddpg_ros.run_log import BackgroundRunLog, prepare_output_dir
from ddpg_ros.tasks import RobotState, Task, make_task

NODE_NAME = 'ddpg_agent'
MODES = ('train', 'deploy')
DIAGNOSTICS_PERIOD = 1.0
RESET_POLL_PERIOD = 0.1
PROGRESS_PERIOD = 5.0
"""Seconds between progress lines in the log."""
LOG_THROTTLE = 1.0
LATENCY_WINDOW = 1000
"""Commands over which the action latency percentiles are taken."""
RETURN_WINDOW = 10
"""Episodes whose mean return decides ``best.pt``."""
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class AgentSettings:
    """Parameters of the ``ddpg_agent`` node that are not DDPG hyper-parameters."""

    mode: str = 'train'
    """'train': explore, store transitions, learn; 'deploy': act with load_checkpoint only."""
    task: str = 'inverted_pendulum'
    """Built-in task name or package.module:ClassName."""
    preset: str = ''
    """Defaults of the DDPG hyper-parameters: an env id of ddpg_ros/presets.yaml; '' = the
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
    reset_service: str = 'mujoco_sim/reset'
    """std_srvs/Trigger service called at the end of each episode; '' = the robot has none."""
    reset_timeout: float = 5.0
    """Seconds to wait for the reset service before acting on whatever state comes."""
    state_timeout: float = 0.5
    """Seconds without a valid state before the safe command is sent; 0 = no watchdog."""
    safe_command: list[float] = field(default_factory=list)
    """Command sent by the watchdog and at exit, one per actuator; empty = zeros."""
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

    def __post_init__(self) -> None:
        self.safe_command = [float(v) for v in self.safe_command]
        _check(self.mode in MODES, 'mode', self.mode, f'must be one of {", ".join(MODES)}')
        _check(self.mode == 'train' or bool(self.load_checkpoint), 'load_checkpoint',
               self.load_checkpoint, 'must name a checkpoint in deploy mode')
        for name in ('checkpoint_every', 'keep_checkpoints', 'total_steps', 'torch_threads',
                     'log_every'):
            _check(getattr(self, name) >= 0, name, getattr(self, name), 'must be >= 0')
        _check(self.snapshot_every >= 1, 'snapshot_every', self.snapshot_every, 'must be >= 1')
        for name in ('reset_timeout', 'state_timeout', 'max_command_rate', 'max_update_wait',
                     'value_limit'):
            value = getattr(self, name)
            _check(math.isfinite(value) and value >= 0.0, name, value, 'must be >= 0')
        _check(self.reset_timeout > 0.0, 'reset_timeout', self.reset_timeout, 'must be > 0')
        _check(0.0 < self.value_limit <= FLOAT32_MAX, 'value_limit', self.value_limit,
               f'must be in (0, {FLOAT32_MAX:g}]')
        _check(all(math.isfinite(v) for v in self.safe_command), 'safe_command',
               self.safe_command, 'must be finite')


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ValueError(f'{name}={value!r} {rule}')


def _steady_clock() -> Clock:
    # Watchdog, diagnostics and checkpoints run on the monotonic clock: under use_sim_time a
    # stalled simulation must still trip the watchdog and still report.
    return Clock(clock_type=ClockType.STEADY_TIME)


def _declared_type(default: Any) -> Any:
    # An empty list says nothing of its element type, and rclpy would guess wrong.
    return Parameter.Type.DOUBLE_ARRAY if isinstance(default, list) and not default else default


class DDPGAgentNode(Node):
    """Online DDPG for one robot: hot-path acting, a background learner, and services.

    :param node_options: passed to :class:`rclpy.node.Node` (``context``,
        ``parameter_overrides``, ``namespace``, ...), e.g. to run the node inside a test.
    :raises ValueError: a bad parameter, an unknown task, or a checkpoint that does not match
        the task (the message says what differs).
    :raises rclpy.exceptions.ParameterException: a parameter override of the wrong type.
    """

    def __init__(self, **node_options: Any) -> None:
        super().__init__(NODE_NAME, **node_options)
        settings = AgentSettings(**self._declare_fields(AgentSettings, AgentSettings()))
        self.settings = settings
        self._train = settings.mode == 'train'
        if self._train:
            # Before anything is built: a run that cannot keep its results does not start.
            prepare_output_dir(settings.checkpoint_dir, 'checkpoint_dir')
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.task: Task = make_task(settings.task)
        preset_name, preset = _preset(settings.preset, self.task)
        config = DDPGConfig(**self._declare_fields(DDPGConfig, DDPGConfig(**preset)))
        self._report_preset(preset_name, preset, config)
        self.spec: PolicySpec = spec_for_task(self.task)
        self._low = np.asarray(self.task.action_low, dtype=np.float64)
        self._high = np.asarray(self.task.action_high, dtype=np.float64)
        self._safe_command = _safe_command(settings.safe_command, self._low, self._high,
                                           self.task.action_names)
        self._counters = {'env_steps': 0, 'episodes': 0}
        self._best_return = -math.inf
        self._resumed_at = 0
        self.learner: BackgroundLearner | None = None
        self.buffer: ReplayBuffer | None = None
        self._build_core(settings, config)

        self._save_lock = threading.Lock()
        """Serialises checkpoint writes: service, periodic writer thread and exit."""
        self._explore = self._train
        self._chain: tuple[RobotState, np.ndarray, np.ndarray] | None = None
        self._episode_steps = 0
        self._episode_return = 0.0
        self._recent_returns: list[float] = []
        self._last_progress_log = time.monotonic()
        self._last_command = self._safe_command.copy()
        self._stopping = False
        self._tripped = False
        self._last_activity: float | None = None
        """Monotonic time of the last valid state or command; ``None`` keeps the watchdog
        disarmed until the first valid state, since before it there is no acting to stop."""
        self._reset_pending = False
        self._reset_requested_at = 0.0
        self._reset_future: Future | None = None
        self._kept_state: JointState | None = None
        self._terminal_state: JointState | None = None
        self._checkpoint_due = threading.Event()
        self._learning_started = False
        self._latencies = np.zeros(LATENCY_WINDOW)
        self._update_waits = np.zeros(LATENCY_WINDOW)
        self._latency_count = 0
        self._last_wait = 0.0
        self._stats = {'invalid_states': 0, 'repeated_states': 0, 'watchdog_trips': 0,
                       'reset_failures': 0, 'update_wait_timeouts': 0,
                       'non_finite_actions': 0, 'checkpoint_failures': 0}
        self._reported_stats = dict(self._stats)
        self._last_problem = ''
        self.states_received = 0
        """Joint-state messages taken in, valid or not (for tests and diagnostics)."""
        self.finished = threading.Event()
        """Set when ``total_steps`` is reached; ``main`` spins until then."""

        self._command_publisher = self.create_publisher(
            Float64MultiArray, 'effort_controller/commands', COMMAND_QOS)
        self._return_publisher = self.create_publisher(Float64, '~/episode_return', 10)
        self._diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        self.create_subscription(JointState, 'joint_states', self._on_joint_states, STATE_QOS)
        self._reset_client = (self.create_client(Trigger, settings.reset_service)
                              if settings.reset_service else None)
        self.create_service(Trigger, '~/save_checkpoint', self._on_save_checkpoint)
        self.create_service(SetBool, '~/set_training', self._on_set_training)
        self.create_service(SetBool, '~/set_exploration', self._on_set_exploration)
        self.create_timer(DIAGNOSTICS_PERIOD, self._on_diagnostics_timer, clock=_steady_clock())
        if settings.state_timeout > 0.0:
            self.create_timer(min(settings.state_timeout / 4, 0.05), self._on_watchdog_timer,
                              clock=_steady_clock())
        if self._reset_client is not None:
            self.create_timer(RESET_POLL_PERIOD, self._on_reset_timer, clock=_steady_clock())
        self._checkpoint_writer = threading.Thread(
            target=self._write_periodic_checkpoints, name='ddpg_checkpoints', daemon=True)
        self._run_log: BackgroundRunLog | None = None
        self._logged_steps = -1
        self._started = time.monotonic()
        if self._train:
            for stale in remove_stale_temporaries(settings.checkpoint_dir):
                self.get_logger().info(f'removed {stale}, left by a process killed mid-save')
            self._checkpoint_writer.start()
            # progress.csv, TensorBoard and learning_curve.png, as ddpg-train writes them;
            # a resumed run continues the CSV it finds.
            self._run_log = BackgroundRunLog(
                settings.checkpoint_dir, tensorboard=settings.tensorboard,
                append=bool(settings.load_checkpoint), title=f'{self.task.name} (ddpg_agent)',
                on_error=self.get_logger().error)
        self.get_logger().info(
            f'ready: mode {settings.mode}, task {self.task.name}, joints '
            f'{list(self.task.joint_names)}, actuators {list(self.task.action_names)}, '
            f'device {self.agent.device}'
            + (f', resumed at step {self._counters["env_steps"]}' if settings.load_checkpoint
               and self._train else ''))

    def _declare_fields(self, cls: type, defaults: Any) -> dict[str, Any]:
        """
        Declare one read-only ROS parameter per field of dataclass ``cls``; return the values.

        Each has the default from ``defaults`` and the field's docstring as its description;
        the dataclass validates the values.
        """
        docs = field_docs(cls)
        values = {}
        for f in dataclasses.fields(cls):
            default = getattr(defaults, f.name)
            if isinstance(default, tuple):
                default = list(default)
            # Read-only: the core is built from these once; a later change would lie.
            descriptor = ParameterDescriptor(description=docs.get(f.name, ''), read_only=True)
            value = self.declare_parameter(f.name, _declared_type(default), descriptor).value
            values[f.name] = default if value is None else value
        return values

    def _report_preset(self, name: str, preset: dict[str, Any], config: DDPGConfig) -> None:
        base = DDPGConfig(**preset)
        overridden = [f'{f.name}={getattr(config, f.name)}' for f in dataclasses.fields(config)
                      if getattr(config, f.name) != getattr(base, f.name)]
        source = f'preset {name}' if name else "DDPGConfig's defaults (no preset)"
        self.get_logger().info(
            f'hyper-parameters: {source}'
            + (f'; set for this node: {" ".join(overridden)}' if overridden else ''))

    def _build_core(self, settings: AgentSettings, config: DDPGConfig) -> None:
        """The agent (and in train mode buffer, noise, learner), fresh or from a checkpoint."""
        task = self.task
        checkpoint = None
        if settings.load_checkpoint:
            checkpoint = load_checkpoint(settings.load_checkpoint)
            checkpoint.spec.check_matches(self.spec, settings.load_checkpoint)
        if not self._train:
            # Acting needs no optimizer and no GPU: a small actor on the CPU is fastest.
            self.agent = checkpoint.build_agent(device='cpu', optimizers=False)
            self.config = self.agent.config
            self._deploy_snapshot = self.agent.policy_snapshot()
            if not snapshot_finite(self._deploy_snapshot):
                raise ValueError(f'checkpoint {settings.load_checkpoint} has non-finite '
                                 'actor weights')
            return
        if checkpoint is not None:
            self.agent = checkpoint.build_agent(device=config.device)
            # Resuming continues the run it came from, so its hyper-parameters win.
            differing = [f'{f.name}: checkpoint {getattr(self.agent.config, f.name)!r}, '
                         f'parameter {getattr(config, f.name)!r}'
                         for f in dataclasses.fields(DDPGConfig) if f.name != 'device'
                         and getattr(self.agent.config, f.name) != getattr(config, f.name)]
            if differing:
                self.get_logger().warning("resuming with the checkpoint's hyper-parameters, "
                                          'not the parameters: ' + '; '.join(differing))
            for key in self._counters:
                self._counters[key] = int(checkpoint.counters.get(key, 0))
            self._resumed_at = self._counters['env_steps']
            self._best_return = float(checkpoint.extra.get('best_return', -math.inf))
        else:
            self.agent = DDPG(task.obs_dim, self._low, self._high, config)
        self.config = self.agent.config
        self._rng = np.random.default_rng(self.config.seed)
        self._noise = make_noise(self.config.noise_type, self.config.noise_sigma, self._low,
                                 self._high, self._rng, theta=self.config.noise_theta)
        self.buffer = ReplayBuffer(self.config.buffer_size, task.obs_dim, task.action_dim,
                                   seed=self.config.seed, device=self.agent.device)
        if checkpoint is not None:
            if 'noise' in checkpoint.extra:
                self._noise.load_state_dict(checkpoint.extra['noise'])
            restore_random_states(checkpoint, settings.load_checkpoint, self._random_streams())
            buffer_file = Path(settings.load_checkpoint).with_suffix('.npz')
            if buffer_file.is_file():
                self.buffer.load(buffer_file)
            else:
                self.get_logger().warning(
                    f'no replay buffer {buffer_file} next to the checkpoint: learning resumes '
                    'from an empty buffer (save_buffer:=true keeps one with every checkpoint)')
        self.learner = BackgroundLearner(
            self.agent, self.buffer, self.config.batch_size,
            snapshot_every=settings.snapshot_every,
            limit_updates=self.config.updates_per_step > 0.0)

    def _random_streams(self) -> dict[str, np.random.Generator]:
        # Exploration (warm-up actions and noise) and replay sampling (the learner thread).
        return {'exploration': self._rng, 'replay': self.buffer.rng}

    @property
    def env_steps(self) -> int:
        """Transitions completed (stored, in train mode) since the run began."""
        return self._counters['env_steps']

    @property
    def episodes(self) -> int:
        """Episodes finished since the run began."""
        return self._counters['episodes']

    @property
    def exploring(self) -> bool:
        """Whether exploration (warm-up random actions, noise) is on."""
        return self._explore

    def _on_joint_states(self, msg: JointState) -> None:
        received = time.perf_counter()
        self.states_received += 1
        if self._stopping or self.finished.is_set():
            return
        if self._reset_pending:
            # Lockstep publishes the new initial state before the reset response arrives;
            # keep it and act on it once the reset is confirmed. A re-sent terminal state is
            # not a new episode's first state. Either shows the robot is alive.
            self._last_activity = time.monotonic()
            if not _same_message(msg, self._terminal_state):
                self._kept_state = msg
            return
        self._handle_state(msg, received)

    def _handle_state(self, msg: JointState, received: float) -> None:
        """The control step."""
        try:
            state = joint_state_to_robot_state(msg, self.task.joint_names)
            obs = self._observe(state)
        except ValueError as exc:
            self._refuse(f'invalid joint state: {exc}')
            return
        except Exception as exc:  # a user's task may fail in any way; the node must not
            self._refuse(f'task {self.task.name} failed on a state: {type(exc).__name__}: '
                         f'{exc}')
            return
        self._last_activity = time.monotonic()
        if self._tripped:
            self._tripped = False
            self._chain = None
            self.get_logger().info('joint states are back: acting again (new chain)')
        if self._chain is not None and _same_sample(self._chain[0], state):
            # Lockstep re-sends a state it is still waiting on: our command went missing.
            self._stats['repeated_states'] += 1
            self._publish(self._last_command)
            return
        if self._chain is not None and not self._step(msg, state, obs):
            return
        action = self._act(obs)
        if action is None:
            return
        self._publish(action)
        self._chain = (state, obs, action)
        slot = self._latency_count % LATENCY_WINDOW
        self._latencies[slot] = time.perf_counter() - received
        self._update_waits[slot] = self._last_wait
        self._latency_count += 1

    def _observe(self, state: RobotState) -> np.ndarray:
        obs = np.asarray(self.task.observation(state), dtype=np.float64)
        if obs.shape != (self.task.obs_dim,):
            raise ValueError(f'observation has shape {obs.shape}, expected '
                             f'({self.task.obs_dim},)')
        # The networks compute in float32: a huge but finite entry overflows there, and one
        # transition whose Q-target is inf makes every batch holding it a NaN loss.
        if not np.all(np.abs(obs) <= self.settings.value_limit):
            raise ValueError(f'observation exceeds value_limit={self.settings.value_limit:g} '
                             f'or is not finite: {obs.tolist()}')
        return obs

    def _step(self, msg: JointState, state: RobotState, obs: np.ndarray) -> bool:
        """Complete the transition from the previous state; ``False`` when not to act now."""
        previous, previous_obs, action = self._chain
        try:
            reward = float(self.task.reward(previous, action, state))
            terminated = bool(self.task.terminated(state))
        except Exception as exc:  # a user's task may fail in any way
            self._refuse(f'task {self.task.name} failed on a transition: '
                         f'{type(exc).__name__}: {exc}')
            return False
        if not abs(reward) <= self.settings.value_limit:
            self._refuse(f'reward {reward} exceeds value_limit={self.settings.value_limit:g} '
                         'or is not finite')
            return False
        self._counters['env_steps'] += 1
        self._episode_steps += 1
        self._episode_return += reward
        if self._train:
            # Only a true termination stops bootstrapping; the time limit below does not.
            self.buffer.add(previous_obs, action, reward, obs, terminated)
            self._grant_updates()
        steps = self.env_steps
        if self._train and self.settings.checkpoint_every and \
                steps % self.settings.checkpoint_every == 0:
            self._checkpoint_due.set()
        if self._run_log is not None and self.settings.log_every and \
                steps % self.settings.log_every == 0:
            self._record_progress()
        episode_over = terminated or self._episode_steps >= self.task.max_episode_steps
        if episode_over:
            self._end_episode()
        if self.settings.total_steps and steps >= self.settings.total_steps:
            self._chain = None
            if not self.finished.is_set():
                self.get_logger().info(f'reached total_steps={self.settings.total_steps}')
                self.finished.set()
            return False
        if episode_over and self._reset_client is not None:
            # Never act on the terminal state: the next command belongs to a new episode.
            self._chain = None
            self._terminal_state = msg
            self._request_reset()
            return False
        return True

    def _grant_updates(self) -> None:
        if (self.env_steps > self.config.learning_starts
                and len(self.buffer) >= self.config.batch_size):
            if not self._learning_started:
                # Started here, not at construction: a free-running learner (updates_per_step
                # 0) must not train on the warm-up's first batch before learning_starts.
                self._learning_started = True
                self.learner.start()
            self.learner.allow(self.config.updates_per_step)

    def _act(self, obs: np.ndarray) -> np.ndarray | None:
        self._last_wait = 0.0
        if self._train and self.learner.limit_updates:
            # Hold the update-to-data ratio: the command waits for the updates granted for
            # earlier steps. The learner takes no lock of ours, so this cannot deadlock.
            started = time.perf_counter()
            if not self.learner.wait_caught_up(self.settings.max_update_wait):
                self._stats['update_wait_timeouts'] += 1
            self._last_wait = time.perf_counter() - started
        warming_up = self._train and self.env_steps < self.config.learning_starts
        if self._explore and warming_up:
            action = self._rng.uniform(self._low, self._high)
        else:
            snapshot = self.learner.snapshot if self._train else self._deploy_snapshot
            action = _policy_action(snapshot, obs)
            if self._explore:
                action = action + self._noise()
        action = np.clip(action, self._low, self._high)
        if self.settings.max_command_rate > 0.0:
            rate = self.settings.max_command_rate
            action = np.clip(action, self._last_command - rate, self._last_command + rate)
        if not np.isfinite(action).all():
            # Weights are checked before a snapshot is swapped in, so this is an extreme
            # observation overflowing the actor: command the safe value, store nothing.
            self._stats['non_finite_actions'] += 1
            self._problem(f'non-finite action {action.tolist()}: sending the safe command')
            self._publish(self._safe_command)
            self._chain = None
            return None
        return action

    def _publish(self, command: np.ndarray) -> None:
        self._command_publisher.publish(to_float64_multi_array(command))
        self._last_command = np.asarray(command, dtype=np.float64)
        self._last_activity = time.monotonic()

    def _refuse(self, problem: str) -> None:
        """A state that fails validation breaks the chain and is never acted on."""
        self._stats['invalid_states'] += 1
        self._chain = None
        self._problem(problem)

    def _problem(self, problem: str) -> None:
        self._last_problem = problem
        self.get_logger().warning(problem, throttle_duration_sec=LOG_THROTTLE)

    def _end_episode(self) -> None:
        self._counters['episodes'] += 1
        self._return_publisher.publish(Float64(data=self._episode_return))
        if self._run_log is not None:
            self._run_log.scalar('train/episode_return', self._episode_return, self.env_steps)
        self._recent_returns = (self._recent_returns + [self._episode_return])[-RETURN_WINDOW:]
        self._episode_steps = 0
        self._episode_return = 0.0
        if self._train:
            self._noise.reset()

    def _request_reset(self) -> None:
        self._reset_pending = True
        self._reset_requested_at = time.monotonic()
        self._kept_state = None
        self._reset_future = None
        self._call_reset()

    def _call_reset(self) -> None:
        # A request sent before the service is matched would be lost: only call a ready one;
        # the reset timer retries until it is.
        if not self._reset_client.service_is_ready():
            self._problem(f'reset service {self._reset_client.srv_name} is not available')
            return
        self._reset_future = self._reset_client.call_async(Trigger.Request())
        self._reset_future.add_done_callback(self._on_reset_done)

    def _on_reset_done(self, future: Future) -> None:
        if future is not self._reset_future or not self._reset_pending:
            return
        response = future.result()
        if response is None or not response.success:
            self._stats['reset_failures'] += 1
            message = response.message if response is not None else 'no response'
            self._problem(f'reset service failed: {message}')
        self._finish_reset()

    def _finish_reset(self) -> None:
        self._reset_pending = False
        self._reset_future = None
        kept, self._kept_state = self._kept_state, None
        if kept is not None and not self._stopping:
            self._handle_state(kept, time.perf_counter())

    def _on_reset_timer(self) -> None:
        if not self._reset_pending or self._stopping:
            return
        if time.monotonic() - self._reset_requested_at > self.settings.reset_timeout:
            self._stats['reset_failures'] += 1
            self._problem(f'reset service {self._reset_client.srv_name} did not answer in '
                          f'{self.settings.reset_timeout:g} s: going on without it')
            self._finish_reset()
        elif self._reset_future is None:
            self._call_reset()

    def _on_watchdog_timer(self) -> None:
        if (self._stopping or self._tripped or self._last_activity is None
                or time.monotonic() - self._last_activity <= self.settings.state_timeout):
            return
        self._tripped = True
        self._chain = None
        if self._reset_pending:
            # The robot went silent while starting an episode (a sim that died during its
            # reset): give the reset up, so that nothing kept from before acts later.
            self._reset_pending = False
            self._reset_future = None
            self._kept_state = None
        self._stats['watchdog_trips'] += 1
        self._command_publisher.publish(to_float64_multi_array(self._safe_command))
        self._last_command = self._safe_command.copy()
        self.get_logger().warning(
            f'no valid joint state for {self.settings.state_timeout:g} s: sent the safe '
            'command; acting stops until states return')

    def _on_set_training(self, request: SetBool.Request, response: SetBool.Response
                         ) -> SetBool.Response:
        if self.learner is None:
            response.success = False
            response.message = 'deploy mode: there is no learning to switch'
            return response
        response.success, response.message = self.learner.set_training(request.data)
        return response

    def _on_set_exploration(self, request: SetBool.Request, response: SetBool.Response
                            ) -> SetBool.Response:
        if not self._train:
            response.success = False
            response.message = 'deploy mode: the policy never explores'
            return response
        self._explore = bool(request.data)
        response.success = True
        response.message = f'exploration {"on" if self._explore else "off"}'
        return response

    def _on_save_checkpoint(self, request: Trigger.Request, response: Trigger.Response
                            ) -> Trigger.Response:
        try:
            response.message = str(self.save_checkpoint())
            response.success = True
        except (OSError, ValueError) as exc:
            response.success = False
            response.message = f'checkpoint not written: {exc}'
        return response

    def _write_periodic_checkpoints(self) -> None:
        """The checkpoint writer thread: saves whenever the control loop asks, off its path."""
        while not self._stopping:
            if not self._checkpoint_due.wait(timeout=0.5) or self._stopping:
                continue
            self._checkpoint_due.clear()
            try:
                self.save_checkpoint()
            except (OSError, ValueError) as exc:
                self._stats['checkpoint_failures'] += 1
                self.get_logger().error(f'periodic checkpoint not written: {exc}')

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint_<env_steps>.pt`` (and its buffer when ``save_buffer``), update
        ``best.pt`` when the recent mean return is the best so far, and prune old ones.

        :return: the checkpoint's path.
        :raises ValueError: deploy mode, or the weights are not finite.
        :raises OSError: the directory cannot be written.
        """
        if not self._train:
            raise ValueError('deploy mode does not write checkpoints')
        with self._save_lock:
            agent = self.learner.copy_agent()
            if not agent.weights_finite():
                raise ValueError('the weights are not finite; refusing to save them')
            counters = dict(self._counters)
            recent = list(self._recent_returns)
            recent_mean = float(np.mean(recent)) if recent else -math.inf
            best = max(self._best_return, recent_mean)
            extra = {'task': self.task.name, 'noise': self._noise.state_dict(),
                     'rng_state': random_states(self._random_streams()),
                     'best_return': best, 'recent_return': recent_mean}
            directory = Path(self.settings.checkpoint_dir)
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f'checkpoint_{counters["env_steps"]:09d}.pt'
            if self.settings.save_buffer:
                # The buffer first: a checkpoint that exists always has its buffer beside it,
                # whenever the process dies.
                self.buffer.save(path.with_suffix('.npz'))
            save_checkpoint(path, agent, self.spec, counters=counters, extra=extra)
            if recent and recent_mean > self._best_return:
                save_checkpoint(directory / 'best.pt', agent, self.spec, counters=counters,
                                extra=extra)
            self._best_return = best
            self._prune(directory)
        self._run_log.plot()
        self.get_logger().info(f'checkpoint written: {path}')
        return path

    def _prune(self, directory: Path) -> None:
        keep = self.settings.keep_checkpoints
        if not keep:
            return
        checkpoints = sorted(directory.glob('checkpoint_*.pt'))
        for old in checkpoints[:-keep]:
            old.unlink(missing_ok=True)
            old.with_suffix('.npz').unlink(missing_ok=True)
        # A buffer whose checkpoint was never written (the process died between the two).
        oldest_kept = checkpoints[-keep:][0].stem if checkpoints else ''
        for buffer in directory.glob('checkpoint_*.npz'):
            if buffer.stem < oldest_kept and not buffer.with_suffix('.pt').exists():
                buffer.unlink(missing_ok=True)

    def _on_diagnostics_timer(self) -> None:
        self._diagnostics_publisher.publish(self.diagnostics())
        now = time.monotonic()
        if now - self._last_progress_log >= PROGRESS_PERIOD and self.env_steps:
            self._last_progress_log = now
            self._log_progress()

    def _record_progress(self) -> None:
        """Queue one row of ``progress.csv``; the losses stay tensors for the writer."""
        if self.env_steps == self._logged_steps:
            return  # the exit comes right after a row at the same step
        self._logged_steps = self.env_steps
        elapsed = time.monotonic() - self._started
        info = self.learner.last_info
        self._run_log.record({
            'env_steps': self.env_steps, 'updates': self.learner.updates,
            'episodes': self.episodes, 'time_s': round(elapsed, 3),
            'steps_per_s': round((self.env_steps - self._resumed_at) / max(elapsed, 1e-9), 2),
            'train_return_mean': (float(np.mean(self._recent_returns))
                                  if self._recent_returns else ''),
            'critic_loss': info.critic_loss if info else '',
            'actor_loss': info.actor_loss if info else '',
            'q_mean': info.q_mean if info else '',
        })

    def _log_progress(self) -> None:
        """One line of progress for whoever watches the terminal of a long run."""
        line = f'steps {self.env_steps}  episodes {self.episodes}'
        if self._recent_returns:
            line += (f'  return (last {len(self._recent_returns)}) '
                     f'{np.mean(self._recent_returns):.1f}')
        if self._train:
            learner = self.learner
            line += (f'  updates {learner.updates} ({learner.updates_per_second:.0f}/s)'
                     f'  buffer {len(self.buffer)}')
            if learner.fault is not None:
                line += f'  LEARNER FAULT: {learner.fault}'
        self.get_logger().info(line)

    def diagnostics(self) -> DiagnosticArray:
        """The agent's status: counters, learning, latency, and what is wrong if anything."""
        stats = dict(self._stats)
        fresh = {k: stats[k] - self._reported_stats.get(k, 0) for k in stats}
        self._reported_stats = stats
        warnings = []
        if fresh['invalid_states']:
            warnings.append(f'{fresh["invalid_states"]} invalid joint state(s): '
                            f'{self._last_problem}')
        if self._tripped:
            warnings.append(f'no valid joint state for {self.settings.state_timeout:g} s: '
                            'safe command sent, not acting')
        for key, text in (('reset_failures', 'reset failure(s)'),
                          ('update_wait_timeouts', 'command(s) sent before the learner '
                           'caught up (update-to-data ratio below updates_per_step)'),
                          ('non_finite_actions', 'non-finite action(s) replaced by the '
                           'safe command'),
                          ('checkpoint_failures', 'checkpoint(s) not written')):
            if fresh[key]:
                warnings.append(f'{fresh[key]} {text}')
        fault = self.learner.fault if self.learner is not None else None
        if fault is not None:
            level, message = DiagnosticStatus.ERROR, f'learner fault: {fault}'
        elif warnings:
            level, message = DiagnosticStatus.WARN, '; '.join(warnings)
        else:
            level, message = DiagnosticStatus.OK, ('acting' if self._latency_count
                                                   else 'waiting for joint_states')
        values = self._diagnostic_values()
        values.update({key: str(value) for key, value in stats.items()})
        values['learner_fault'] = fault or ''
        values['warnings'] = '; '.join(warnings)
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: agent', message=message,
            hardware_id=self.task.name,
            values=[KeyValue(key=key, value=value) for key, value in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        return array

    def _diagnostic_values(self) -> dict[str, str]:
        count = min(self._latency_count, LATENCY_WINDOW)
        latencies = self._latencies[:count] * 1e3
        p50, p99 = (np.percentile(latencies, [50, 99]) if count else (math.nan, math.nan))
        wait = float(np.mean(self._update_waits[:count]) * 1e3) if count else math.nan
        values = {
            'mode': self.settings.mode,
            'task': self.task.name,
            'env_steps': str(self.env_steps),
            'episodes': str(self.episodes),
            'states_received': str(self.states_received),
            'last_episode_return': (f'{self._recent_returns[-1]:.3f}'
                                    if self._recent_returns else ''),
            'action_latency_p50_ms': f'{p50:.3f}',
            'action_latency_p99_ms': f'{p99:.3f}',
            # The part of the latency spent holding the update-to-data ratio (lockstep).
            'update_wait_mean_ms': f'{wait:.3f}',
            'acting': str(not self._tripped and not self._stopping),
            'exploration': str(self._explore),
            'device': str(self.agent.device),
        }
        if self.learner is not None:
            learner = self.learner
            info = learner.last_info
            learned = max(self.env_steps - self.config.learning_starts, 0)
            values.update({
                'training': str(learner.training),
                'updates': str(self.agent.updates),
                'updates_per_s': f'{learner.updates_per_second:.1f}',
                'update_to_data': (f'{learner.updates / learned:.3f}' if learned else ''),
                'buffer_size': str(len(self.buffer)),
                'critic_loss': f'{float(info.critic_loss):.6g}' if info else '',
                'actor_loss': f'{float(info.actor_loss):.6g}' if info else '',
                'q_mean': f'{float(info.q_mean):.6g}' if info else '',
            })
        return values

    def shut_down(self) -> None:
        """Stop acting and learning, checkpoint (train mode), and send the safe command.

        Call once the executor has stopped spinning; the node can still publish afterwards.
        """
        self._stopping = True
        if self._checkpoint_writer.is_alive():
            self._checkpoint_due.set()
            self._checkpoint_writer.join()
        if self.learner is not None:
            if not self.learner.stop(timeout=30.0):
                self.get_logger().error('learner thread did not stop within 30 s')
            try:
                self.save_checkpoint()
            except (OSError, ValueError) as exc:
                self.get_logger().error(f'no checkpoint at exit: {exc}')
        if self._run_log is not None:
            self._record_progress()
            if not self._run_log.close():
                self.get_logger().error('progress.csv and learning_curve.png not finished '
                                        'within 30 s')
        try:
            self._command_publisher.publish(to_float64_multi_array(self._safe_command))
            # Reliable delivery of the last command before the publisher goes away.
            acked = self._command_publisher.wait_for_all_acked(Duration(seconds=2.0))
        except Exception as exc:  # the context may already be gone (external shutdown)
            self.get_logger().error(f'could not send the safe command: {exc}')
            return
        if not acked:
            self.get_logger().warning('safe command sent but not acknowledged by every '
                                      'subscriber within 2 s')
        self.get_logger().info(f'safe command {self._safe_command.tolist()} sent; exiting')


def _preset(name: str, task: Task) -> tuple[str, dict[str, Any]]:
    """Return the preset's name ('' for none) and its DDPGConfig keyword arguments."""
    if name == NO_PRESET:
        return '', {}
    if not name:
        name = task.env_id or ''
        preset = preset_for(name) if name else None
        return (name, preset) if preset is not None else ('', {})
    try:
        return name, preset_for(name, required=True)
    except ValueError as exc:
        raise ValueError(f'preset={name!r}: {exc}') from exc


def _safe_command(values: list[float], low: np.ndarray, high: np.ndarray,
                  names: tuple[str, ...]) -> np.ndarray:
    if not values:
        command = np.zeros_like(low)
    else:
        command = np.asarray(values, dtype=np.float64)
        if command.shape != low.shape:
            raise ValueError(f'safe_command has {command.size} values, expected one per '
                             f'actuator {list(names)}')
    if not (np.all(command >= low) and np.all(command <= high)):
        raise ValueError(f'safe_command {command.tolist()} is outside the action bounds '
                         f'[{low.tolist()}, {high.tolist()}]')
    return command


def _same_message(msg: JointState, other: JointState | None) -> bool:
    return (other is not None and msg.header.stamp == other.header.stamp
            and list(msg.position) == list(other.position)
            and list(msg.velocity) == list(other.velocity))


def _same_sample(previous: RobotState, state: RobotState) -> bool:
    # A repeat carries the original stamp and values; a new sample differs in one of them.
    return (previous.stamp == state.stamp
            and np.array_equal(previous.position, state.position)
            and np.array_equal(previous.velocity, state.velocity))


def _policy_action(snapshot: Actor, obs: np.ndarray) -> np.ndarray:
    # float32 as ddpg-eval feeds the actor, so the same checkpoint acts bit for bit alike.
    with torch.inference_mode():
        return snapshot(torch.as_tensor(obs, dtype=torch.float32)).numpy().astype(np.float64)


SPIN_TIMEOUT = 0.25
"""Seconds the main loop may wait for work before it checks for a stop request."""


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C, SIGTERM or ``total_steps``; 1 if it cannot start.

    rclpy's own signal handling is off: it would shut the context down before the node
    could checkpoint and send the safe command. SIGINT and SIGTERM only set a flag, which the
    spin loop reads between callbacks (within ``SPIN_TIMEOUT``). An exception raised from the
    handler instead could land inside rclpy's C++ code taking a message, where pybind11 turns
    it into a ``RuntimeError`` and the node would exit with a traceback.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop_requested.set())
    node: DDPGAgentNode | None = None
    executor = SingleThreadedExecutor()
    try:
        node = DDPGAgentNode()
        executor.add_node(node)
        # The control step that reaches total_steps sets `finished` in this very thread.
        while rclpy.ok() and not node.finished.is_set() and not stop_requested.is_set():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT)
    except ExternalShutdownException:
        pass
    except (ValueError, ParameterException) as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {exc}')
        return 1
    finally:
        # The exit checkpoint and the safe command must not be cut short by a second signal
        # (launch tools follow SIGINT with SIGTERM); SIGKILL still ends a hung exit.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.shut_down()
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
