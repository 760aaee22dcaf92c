"""The timing ddpg_agent measures, written as a profile that training can randomize over."""

import numpy as np
import pytest

from ddpg_ros.control.timing import TimingRecord
from ddpg_ros.sim.randomization import Randomizer
from ddpg_ros.sim.randomization_profile import load_profile
from ddpg_ros.sim.simulation import Simulation

PERIOD = 0.04


def test_timing_yaml_is_a_profile_holding_the_measured_latencies_and_late_ticks(tmp_path):
    record = TimingRecord(PERIOD)
    ages = [0.0] * 60 + [0.02] * 30 + [0.04] * 10  # 0, 0.5 and 1 period old
    for age in ages:
        record.command(age)
    now = 0.0
    for tick in range(101):
        record.tick(now)
        # Every tenth period comes half a period late; the next one is on schedule again.
        now += PERIOD * (1.5 if tick % 10 == 9 else 1.0)
    path = record.write(tmp_path / 'timing.yaml')
    profile = load_profile(str(path))
    assert profile.command_latency.values == (0.0, 0.5, 1.0)
    np.testing.assert_allclose(profile.command_latency.weights, [0.6, 0.3, 0.1])
    assert profile.late_probability == pytest.approx(0.1)
    assert profile.late_delay.values == (0.5,)
    measured = profile.measured
    assert measured['commands'] == 100 and measured['ticks'] == 100
    assert measured['state_age_ms'] == {'p50': 0.0, 'p90': 20.0, 'p99': 40.0}
    # The randomizer draws the measured latencies, in physics steps (two per period here).
    sim = Simulation('InvertedPendulum-v5')
    latencies = {Randomizer(profile, sim.model, sim.data, 2, seed).latency_steps
                 for seed in range(50)}
    assert latencies == {0, 1, 2}


def test_a_stall_far_beyond_any_period_is_counted_but_not_learned_from():
    record = TimingRecord(PERIOD)
    record.command(0.01)
    record.command(3600.0)  # a clock that jumped, a debugger pause
    record.tick(0.0)
    record.tick(100.0)
    profile = record.profile()
    assert profile['measured']['beyond_histograms'] == 2
    assert profile['command_latency'] == {'values': [0.25], 'weights': [1]}
    assert profile['late_periods'] == {'probability': 0.0, 'delay': [0.0, 0.0]}
    assert record.late == 0


def test_without_a_timer_only_the_latency_is_written():
    record = TimingRecord(PERIOD)
    record.command(0.0)
    assert 'late_periods' not in record.profile()
    with pytest.raises(ValueError, match='control period must be > 0'):
        TimingRecord(0.0)
