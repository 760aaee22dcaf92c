"""mujoco_sim's settings and pace, without ROS: what each parameter allows and what it means."""

import math

import pytest

from ddpg_ros.sim.settings import SimReport, SimSettings, SimStats, TickLedger, pacing


def test_defaults_keep_one_state_per_control_period_at_wall_speed() -> None:
    settings = SimSettings()
    assert (settings.state_rate, settings.real_time_factor, settings.imu_site) == (0.0, 1.0, '')
    pace = pacing(settings, timestep=0.02, frame_skip=2)  # InvertedPendulum-v5
    assert (pace.physics_steps, pace.tick_ns) == (2, 40_000_000)
    assert pace.wall_period == pytest.approx(0.04)
    assert pace.state_rate == pytest.approx(25.0)


@pytest.mark.parametrize(('state_rate', 'steps', 'tick_ns'), [
    (100.0, 1, 10_000_000),    # the physics rate itself
    (20.0, 5, 50_000_000),     # the control rate
    (60.0, 2, 20_000_000),     # between two whole numbers of timesteps: the closer one
    (1.0, 100, 1_000_000_000),
])
def test_state_rate_ticks_a_whole_number_of_timesteps(state_rate: float, steps: int,
                                                      tick_ns: int) -> None:
    settings = SimSettings(mode='realtime', state_rate=state_rate)
    pace = pacing(settings, timestep=0.01, frame_skip=5)  # HalfCheetah-v5
    assert (pace.physics_steps, pace.tick_ns) == (steps, tick_ns)
    assert pace.state_rate == pytest.approx(1e9 / tick_ns)


def test_real_time_factor_divides_the_wall_period() -> None:
    fast = pacing(SimSettings(mode='realtime', state_rate=100.0, real_time_factor=2.0),
                  timestep=0.01, frame_skip=5)
    slow = pacing(SimSettings(mode='realtime', real_time_factor=0.25), timestep=0.01,
                  frame_skip=5)
    assert fast.wall_period == pytest.approx(0.005)
    assert fast.tick_ns == 10_000_000  # sim time per state does not change
    assert slow.wall_period == pytest.approx(0.2)


def test_a_state_rate_above_the_physics_rate_is_refused() -> None:
    settings = SimSettings(mode='realtime', state_rate=125.0)
    with pytest.raises(ValueError, match=r'state_rate 125 Hz is above the physics rate 50 Hz '
                                         r'\(1 / timestep 0.02 s\)'):
        pacing(settings, timestep=0.02, frame_skip=2)


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'state_rate': -1.0, 'mode': 'realtime'}, 'state_rate must be >= 0 Hz'),
    ({'state_rate': math.nan, 'mode': 'realtime'}, 'state_rate must be >= 0 Hz .* got nan'),
    ({'state_rate': math.inf, 'mode': 'realtime'}, 'state_rate must be >= 0 Hz .* got inf'),
    ({'real_time_factor': 0.0, 'mode': 'realtime'}, 'real_time_factor must be > 0, got 0.0'),
    ({'real_time_factor': -2.0, 'mode': 'realtime'}, 'real_time_factor must be > 0, got -2.0'),
    ({'real_time_factor': math.inf, 'mode': 'realtime'}, 'real_time_factor must be > 0'),
    ({'real_time_factor': math.nan, 'mode': 'realtime'}, 'real_time_factor must be > 0'),
    ({'state_rate': 100.0}, 'state_rate applies to mode realtime only'),
    ({'real_time_factor': 2.0}, 'real_time_factor applies to mode realtime only'),
    ({'mode': 'fast'}, 'mode must be one of lockstep, realtime'),
    ({'command_timeout': 0.0}, 'command_timeout must be > 0 s'),
    ({'frame_skip': -1}, 'frame_skip must be >= 0'),
])
def test_bad_settings_are_refused_in_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        SimSettings(**kwargs)
    assert '\n' not in str(info.value)


def test_report_counts_rates_and_the_measured_real_time_factor() -> None:
    settings = SimSettings(mode='realtime', state_rate=100.0, real_time_factor=2.0)
    report = SimReport(settings, 0.05, 'effort', pacing(settings, 0.01, 5), now=10.0)
    stats = SimStats(steps=150, commands_received=3)
    warn, message, values = report(stats, sim_time_ns=1_500_000_000, holding_command=True,
                                   now=11.0)
    assert (warn, message) == (False, 'running')
    assert values['steps_per_second'] == '150.0'
    assert values['real_time_factor'] == '1.500'  # measured, below the 2 asked for
    assert values['target_real_time_factor'] == '2'
    assert values['state_rate'] == '100'
    assert values['command_interface'] == 'effort'
    stats = SimStats(steps=250, commands_received=5, commands_rejected=2)
    warn, message, values = report(stats, sim_time_ns=2_500_000_000, holding_command=False,
                                   now=11.5)
    assert (warn, message) == (True, 'rejected 2 bad command(s)')
    assert values['steps_per_second'] == '200.0'
    assert values['real_time_factor'] == '2.000'
    _, message, _ = report(stats, 2_600_000_000, holding_command=False, now=12.0)
    assert message == 'no recent command: applying zero'


def test_report_says_when_lockstep_waits() -> None:
    settings = SimSettings()
    report = SimReport(settings, 0.04, 'effort', pacing(settings, 0.02, 2), now=0.0)
    assert report(SimStats(steps=3), 120_000_000, False, now=1.0)[1] == 'running'
    assert report(SimStats(steps=3), 120_000_000, False, now=2.0)[1] == 'waiting for commands'


def test_tick_ledger_counts_the_periods_a_late_timer_skipped() -> None:
    # A 40-ms timer started at 100.0 s whose callbacks run a little after their time, as
    # rcl's do; the node came up late, so the first tick is period 5: nothing skipped yet.
    ledger = TickLedger(0.04, origin=100.0)
    assert ledger.tick(100.0 + 5 * 0.04 + 0.003) == 0
    assert ledger.tick(100.0 + 6 * 0.04 + 0.001) == 0
    assert ledger.tick(100.0 + 7 * 0.04 + 0.039) == 0  # late within its period
    # Starved for 0.3 s: rcl fires once, at period 15, and skips 8 through 14.
    assert ledger.tick(100.0 + 15 * 0.04 + 0.002) == 7
    assert ledger.tick(100.0 + 16 * 0.04 + 0.001) == 0
    assert ledger.skipped == 7
    # Made plus skipped is every period from the first tick on: 5 made, 7 skipped, 5..16.
    assert 5 + ledger.skipped == 16 - 5 + 1


def test_report_warns_when_the_realtime_sim_fell_behind() -> None:
    settings = SimSettings(mode='realtime')
    report = SimReport(settings, 0.04, 'effort', pacing(settings, 0.02, 2), now=0.0)
    warn, message, values = report(SimStats(steps=20, ticks_skipped=5), 800_000_000, True,
                                   now=1.0)
    assert warn and message == 'behind the wall clock: skipped 5 tick(s), the node ran late'
    assert values['ticks_skipped'] == '5'
    # Only the ticks skipped since the last report make it warn.
    assert report(SimStats(steps=45, ticks_skipped=5), 1_800_000_000, True, now=2.0)[:2] == (
        False, 'running')
