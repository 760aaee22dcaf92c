"""
What ``mujoco_sim`` is told and how it keeps time; no ROS.

:class:`SimSettings` holds the node's parameters (one read-only ROS parameter per field) and
checks them; :func:`pacing` turns them and a model's timestep into how far the physics
advances per published state, and how often that happens on the wall clock.

Time in ``realtime`` mode works as on a robot: the physics runs on, a
``joint_state_broadcaster`` samples it at its own rate, and commands take effect whenever
they arrive. The simulation advances in *ticks* of a whole number of MuJoCo timesteps: one
control period by default (``state_rate`` 0), else the number of timesteps closest to
``1 / state_rate``. Every tick it applies the command it holds, advances, and publishes
every state topic with one stamp; a command that arrives between ticks acts from the next
one, so an agent on a control-rate timer drives the robot at the control rate while it
reads states at the state rate. Ticks come every ``tick / real_time_factor`` wall seconds;
a machine that cannot keep up runs slower than asked (``/diagnostics`` reports the
measured factor), never in bursts: a tick the node is too late for is skipped, not made up
(:class:`TickLedger` counts them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

MODES = ('lockstep', 'realtime')


@dataclass(frozen=True)
class SimSettings:
    """
    The node's parameters: one read-only ROS parameter per field, these the defaults.

    :raises ValueError: a value out of range, naming it (the simulation checks the model,
        the seed and the IMU site).
    """

    model: str = field(default='InvertedPendulum-v5', metadata={
        'description': 'Gymnasium MuJoCo env id (e.g. HalfCheetah-v5) or MJCF file path'})
    mode: str = field(default='lockstep', metadata={
        'description': "'lockstep': one control period per command; "
                       "'realtime': advance on the wall clock"})
    seed: int = field(default=0, metadata={'description': 'seeds the reset distribution'})
    command_timeout: float = field(default=0.5, metadata={
        'description': 'realtime: sim seconds without a command before applying zero'})
    publish_clock: bool = field(default=True, metadata={
        'description': 'publish sim time on /clock'})
    frame_skip: int = field(default=0, metadata={
        'description': "physics steps per control period; 0 = the model's own"})
    timestep: float = field(default=0.0, metadata={
        'description': "physics timestep, s; 0.0 = the model's own. The control period is "
                       'timestep x frame_skip: a finer timestep with a larger frame_skip keeps '
                       'it, for a robot whose physics runs faster than its policy'})
    state_rate: float = field(default=0.0, metadata={
        'description': 'realtime: Hz (sim time) of published states; 0.0 = one per control '
                       'period'})
    real_time_factor: float = field(default=1.0, metadata={
        'description': 'realtime: sim seconds per wall second'})
    imu_site: str = field(default='', metadata={
        'description': "site whose framequat, gyro and accelerometer sensors feed imu; '' = "
                       'the first such site'})
    reset_noise: float = field(default=0.0, metadata={
        'description': 'MJCF models: scale of the uniform noise on each reset\'s joint positions '
                       '(rad or m), velocities and root tilt (rad), as Gymnasium\'s '
                       'reset_noise_scale; Gymnasium ids keep their own; 0.0 = every episode '
                       'starts alike'})
    randomize: str = field(default='', metadata={
        'description': "randomization profile: none, easy, medium, hard or a YAML file; '' = "
                       'none (command latency, late periods, sensor noise, dynamics, pushes)'})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not (math.isfinite(self.command_timeout) and self.command_timeout > 0.0):
            raise ValueError(f'command_timeout must be > 0 s, got {self.command_timeout}')
        if self.frame_skip < 0:
            raise ValueError("frame_skip must be >= 0 (0 = the model's own), "
                             f'got {self.frame_skip}')
        if not (math.isfinite(self.timestep) and self.timestep >= 0.0):
            raise ValueError("timestep must be >= 0 s (0 = the model's own), "
                             f'got {self.timestep}')
        if not (math.isfinite(self.state_rate) and self.state_rate >= 0.0):
            raise ValueError('state_rate must be >= 0 Hz (0 = one state per control period), '
                             f'got {self.state_rate}')
        if not (math.isfinite(self.reset_noise) and self.reset_noise >= 0.0):
            raise ValueError(f'reset_noise must be >= 0, got {self.reset_noise}')
        if not (math.isfinite(self.real_time_factor) and self.real_time_factor > 0.0):
            raise ValueError(f'real_time_factor must be > 0, got {self.real_time_factor}')
        # Refused rather than ignored: in lockstep the agent sets the pace, so a rate asked
        # for here could only be a misunderstanding.
        if self.mode == 'lockstep' and self.state_rate != 0.0:
            raise ValueError('state_rate applies to mode realtime only (lockstep publishes one '
                             f'state per command), got state_rate {self.state_rate}')
        if self.mode == 'lockstep' and self.real_time_factor != 1.0:
            raise ValueError('real_time_factor applies to mode realtime only (lockstep runs as '
                             'fast as commands come), got real_time_factor '
                             f'{self.real_time_factor}')


@dataclass
class SimStats:
    """Counters since the node started, as ``/diagnostics`` reports them."""

    steps: int = 0
    """Ticks: states published after the physics advanced (resets and repeats not counted)."""
    resets: int = 0
    commands_received: int = 0
    commands_rejected: int = 0
    command_timeouts: int = 0
    ticks_skipped: int = 0
    """Realtime: ticks the wall clock asked for that the node came too late to make."""


@dataclass(frozen=True)
class Pacing:
    """How the simulation advances between two published states."""

    physics_steps: int
    """MuJoCo timesteps per tick."""
    tick_ns: int
    """Sim nanoseconds per tick: the stamps of consecutive states differ by exactly this."""
    wall_period: float
    """Wall seconds between ticks in ``realtime`` mode."""

    @property
    def state_rate(self) -> float:
        """Return the states per sim second."""
        return 1e9 / self.tick_ns


def pacing(settings: SimSettings, timestep: float, frame_skip: int) -> Pacing:
    """
    Return the pace of a simulation with ``timestep`` and ``frame_skip`` under ``settings``.

    ``state_rate`` 0 (and every lockstep simulation) ticks once per control period
    (``frame_skip`` timesteps); otherwise a tick is the whole number of timesteps closest to
    ``1 / state_rate``, so the rate published is the closest the physics allows.

    :param timestep: the model's physics timestep, seconds.
    :param frame_skip: timesteps per control period.
    :raises ValueError: ``state_rate`` above the physics rate (one state per timestep).
    """
    if settings.state_rate == 0.0:
        steps = frame_skip
    else:
        physics_rate = 1.0 / timestep
        # A little slack, so that a rate typed as 1 / timestep is not refused for rounding.
        if settings.state_rate > physics_rate * (1.0 + 1e-9):
            raise ValueError(f'state_rate {settings.state_rate:g} Hz is above the physics rate '
                             f'{physics_rate:g} Hz (1 / timestep {timestep:g} s): at most one '
                             'state per physics step')
        steps = max(1, round(physics_rate / settings.state_rate))
    # Integer nanoseconds, so that stamps advance by exactly one tick per tick.
    tick_ns = round(timestep * steps * 1e9)
    return Pacing(physics_steps=steps, tick_ns=tick_ns,
                  wall_period=tick_ns * 1e-9 / settings.real_time_factor)


class TickLedger:
    """
    Counts the ticks a wall-clock timer came too late to make.

    rcl's timers keep their phase: a callback that runs ``n`` periods late fires once, and the
    ``n`` periods it missed are skipped. A node starved that long (a busy CPU, a blocked
    callback, a tick slower than its period) publishes ``n`` fewer states, and its sim time
    falls ``n`` ticks behind the wall clock for good. From the first tick on, ticks made plus
    ticks skipped is the number of periods gone by; the periods before it (the node starting)
    are not counted.

    :param period: the timer's period, wall seconds.
    :param origin: wall seconds (monotonic) when the timer started.
    """

    def __init__(self, period: float, origin: float) -> None:
        self._period = period
        self._origin = origin
        self._counted: int | None = None  # periods made or skipped, from the first tick on
        self.skipped = 0
        """Ticks skipped so far."""

    def tick(self, now: float) -> int:
        """Count one tick made at ``now`` (monotonic seconds); return the ticks it skipped."""
        # The tick running now is due at the last whole period since the origin: a callback
        # never runs before its time.
        due = math.floor((now - self._origin) / self._period)
        if self._counted is None:
            self._counted = due
            return 0
        skipped = max(0, due - self._counted - 1)
        self._counted += 1 + skipped
        self.skipped += skipped
        return skipped


class SimReport:
    """
    The summary ``/diagnostics`` carries: counts, rates since the last report, a verdict.

    :param settings: the node's settings.
    :param control_dt: the simulation's control period, seconds.
    :param interface: the command interface the simulation takes.
    :param pace: the simulation's :class:`Pacing`.
    :param now: wall seconds (monotonic) at the start.
    """

    def __init__(self, settings: SimSettings, control_dt: float, interface: str, pace: Pacing,
                 now: float) -> None:
        self._settings = settings
        self._fixed = {'model': settings.model, 'mode': settings.mode,
                       'control_dt': f'{control_dt:g}', 'command_interface': interface,
                       'state_rate': f'{pace.state_rate:g}',
                       'target_real_time_factor': f'{settings.real_time_factor:g}'}
        self._last = (now, SimStats(), 0)

    def __call__(self, stats: SimStats, sim_time_ns: int, holding_command: bool, now: float
                 ) -> tuple[bool, str, dict[str, str]]:
        """
        Return ``(warn, message, values)`` for now, and remember it for the next report.

        :param stats: the counters now.
        :param sim_time_ns: sim time now.
        :param holding_command: realtime: a command came within ``command_timeout``.
        :param now: wall seconds (monotonic).
        """
        last_time, last, last_sim_ns = self._last
        self._last = (now, replace(stats), sim_time_ns)
        elapsed = max(now - last_time, 1e-9)
        rejected = stats.commands_rejected - last.commands_rejected
        warn, message = False, 'running'
        skipped = stats.ticks_skipped - last.ticks_skipped
        if rejected:
            warn, message = True, f'rejected {rejected} bad command(s)'
        elif skipped:
            warn, message = True, (f'behind the wall clock: skipped {skipped} tick(s), the node '
                                   'ran late')
        elif self._settings.mode == 'realtime' and not holding_command:
            message = 'no recent command: applying zero'
        elif self._settings.mode == 'lockstep' and stats.steps == last.steps:
            message = 'waiting for commands'
        return warn, message, {
            **self._fixed,
            'sim_time': f'{sim_time_ns * 1e-9:.3f}',
            **{name: str(count) for name, count in asdict(stats).items()},
            'steps_per_second': f'{(stats.steps - last.steps) / elapsed:.1f}',
            # Measured: below the target when the machine cannot keep up.
            'real_time_factor': f'{(sim_time_ns - last_sim_ns) * 1e-9 / elapsed:.3f}',
        }


__all__ = ['MODES', 'Pacing', 'SimReport', 'SimSettings', 'SimStats', 'TickLedger', 'pacing']
