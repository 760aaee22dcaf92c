"""The saturated-actor watch, and ddpg-train reporting a run whose actor is stuck at a bound."""

import csv
from pathlib import Path

import numpy as np
import pytest

from ddpg_ros.core.saturation import SaturationWatch
from conftest import ddpg_train

LOW, HIGH = np.array([-3.0, 0.0]), np.array([3.0, 1.0])


def test_a_full_window_of_actions_at_a_bound_in_every_dimension_is_saturated() -> None:
    watch = SaturationWatch(LOW, HIGH, window=10)
    for _ in range(9):
        watch.record(np.array([3.0, 0.0]))
    assert watch.share is None and not watch.saturated, 'not judged before the window fills'
    # Within 1 % of the half range (0.03 and 0.005) counts as at the bound.
    watch.record(np.array([-2.975, 0.996]))
    assert watch.share == 1.0 and watch.saturated
    assert 'actor saturated: 100% of its last 10 noise-free actions' in watch.message()


def test_one_dimension_off_its_bounds_or_a_few_actions_inside_are_no_alarm() -> None:
    watch = SaturationWatch(LOW, HIGH, window=100, threshold=0.98)
    for i in range(100):
        watch.record(np.array([3.0, 0.5]))  # the second dimension is free
    assert watch.share == 0.0
    for i in range(100):
        watch.record(np.array([0.0, 1.0]) if i < 4 else np.array([3.0, 1.0]))
    assert watch.share == 0.96 and not watch.saturated
    for _ in range(4):  # the window slides: the four inside actions leave it
        watch.record(np.array([-3.0, 0.0]))
    assert watch.share == 1.0 and watch.saturated


@pytest.mark.learning
def test_ddpg_train_warns_and_logs_when_the_actor_is_stuck_at_a_bound(tmp_path: Path) -> None:
    # A learning rate of 1 drives the actor's tanh deep into saturation within a few hundred
    # updates; the run goes on, but says so.
    result = ddpg_train(tmp_path, '--env', 'InvertedPendulum-v5', '--preset', 'ddpg',
                        '--actor-lr', '1.0', '--learning-starts', '500',
                        '--total-steps', '2500', '--eval-every', '1250', '--eval-episodes', '1',
                        '--hidden-sizes', '32', '32', '--torch-threads', '1', '--seed', '0')
    assert result.returncode == 0, result.stderr
    assert 'ddpg-train: warning at step 2500: actor saturated: ' in result.stderr
    with open(tmp_path / 'progress.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    # Both evaluations (750 and 2000 actor steps: past the window of 500) find it at a bound.
    assert [row['env_steps'] for row in rows] == ['1250', '2500']
    assert all(float(row['actor_at_bound']) >= 0.98 for row in rows)
