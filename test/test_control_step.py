"""
The control step without ROS: which transitions reach the replay buffer on a timer.

A robot behind ros2_control is sampled by the agent's timer; a tick that comes late by whole
periods, or finds no state newer than the last tick's, spans another interval than the
transitions around it. Those steps are acted on and counted but never stored.
"""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_ros.control import loop as loop_module
from ddpg_ros.control.episodes import Episodes, Transition
from ddpg_ros.control.loop import ControlLoop, LoopActions
from ddpg_ros.control.safety import CommandFilter, SafeCommand
from ddpg_ros.control.sampling import LatestSamples
from ddpg_ros.control.step import ControlStep
from ddpg_ros.tasks import RobotState, make_task

TASK = make_task('inverted_pendulum')
PERIOD = TASK.control_dt


class RecordingPolicy:
    """The learning side of :class:`ControlStep`, reduced to what these tests look at."""

    training = True
    last_wait = 0.0

    def __init__(self) -> None:
        self.stored: list[tuple[Transition, int]] = []
        self.returns: list[float] = []

    def act(self, obs: np.ndarray, explore: bool, env_steps: int) -> np.ndarray:
        return np.array([0.1 * env_steps])

    def store(self, transition: Transition, env_steps: int) -> None:
        self.stored.append((transition, env_steps))

    def episode_ended(self, episode_return: float, env_steps: int) -> None:
        self.returns.append(episode_return)


def control_step(policy: RecordingPolicy, period: float) -> ControlStep:
    return ControlStep(TASK, policy, Episodes(TASK, 1e6),
                       CommandFilter(TASK.action_low, TASK.action_high),
                       SafeCommand(TASK, 'effort'), period=period)


def state(stamp: float, hinge: float = 0.01) -> RobotState:
    return RobotState([0.0, hinge], [0.0, 0.0], [0.0, 0.0], stamp)


@pytest.mark.parametrize('stamps, stored', [
    # On time, and jittered by less than half a period (a 4x faster state stream).
    ([0.0, 1.0, 2.0, 3.0], [1, 2, 3]),
    ([0.0, 1.25, 2.0, 3.4], [1, 2, 3]),
    # A tick rcl skipped: the step after it spans two periods.
    ([0.0, 1.0, 3.0, 4.0], [1, 3]),
    # No new state since the last tick: a step of no time, then one of two periods.
    ([0.0, 1.0, 1.0, 3.0, 4.0], [1, 4]),
    # More than half a period off either way.
    ([0.0, 1.6, 2.6, 3.0, 4.0], [2, 4]),
])
def test_only_transitions_one_control_period_long_are_stored(
        stamps: list[float], stored: list[int]) -> None:
    policy = RecordingPolicy()
    step = control_step(policy, PERIOD)
    commands = [step.step(state(t * PERIOD)).command for t in stamps]
    # Every tick is acted on, and every step is counted, stored or not.
    assert all(command is not None for command in commands)
    assert step.episodes.env_steps == len(stamps) - 1
    assert step.episodes.episode_return == len(stamps) - 1  # the pendulum's 1 per step
    assert [steps for _, steps in policy.stored] == stored
    assert step.stats['off_period_steps'] == len(stamps) - 1 - len(stored)
    for transition, steps in policy.stored:
        # The stored action is the command sent at the step before: chosen at steps - 1.
        np.testing.assert_allclose(transition.action, [0.1 * (steps - 1)])


def test_a_step_per_robot_step_stores_every_transition_whatever_its_stamps() -> None:
    # Lockstep sims set the pace themselves; their stamps are the robot's business.
    policy = RecordingPolicy()
    step = control_step(policy, 0.0)
    for t in [0.0, 1.0, 3.0, 3.5, 10.0]:
        step.step(state(t * PERIOD))
    assert [steps for _, steps in policy.stored] == [1, 2, 3, 4]
    assert step.stats['off_period_steps'] == 0


def test_an_off_period_step_still_ends_its_episode() -> None:
    policy = RecordingPolicy()
    step = control_step(policy, PERIOD)
    step.step(state(0.0))
    step.step(state(PERIOD))
    decision = step.step(state(3 * PERIOD, hinge=0.5))  # late, and the pendulum has fallen
    # Gymnasium's pendulum: 1 for the step that kept it up, 0 for the one that fell.
    assert decision.reset and decision.episode_return == 1.0
    assert policy.returns == [1.0] and [steps for _, steps in policy.stored] == [1]
    assert step.stats['off_period_steps'] == 1


def test_observe_last_action_carries_the_command_published_and_zero_after_a_reset() -> None:
    policy = RecordingPolicy()
    seen: list[np.ndarray] = []
    act = policy.act
    policy.act = lambda obs, explore, env_steps: (seen.append(obs), act(obs, explore,
                                                                        env_steps))[1]
    step = ControlStep(TASK, policy, Episodes(TASK, 1e6),
                       CommandFilter(TASK.action_low, TASK.action_high),
                       SafeCommand(TASK, 'effort'), observe_last_action=True)
    commands = [step.step(state(t * PERIOD)).command for t in range(3)]
    np.testing.assert_allclose([obs[-1] for obs in seen], [0.0, commands[0][0],
                                                           commands[1][0]])
    assert all(obs.shape == (TASK.obs_dim + 1,) for obs in seen)
    # The transition stored holds the command in both observations, as ddpg-train stores.
    transition = policy.stored[-1][0]
    np.testing.assert_allclose(transition.obs[-1], commands[0])
    np.testing.assert_allclose(transition.next_obs[-1], commands[1])
    # The pendulum falls: the episode ends and the next one starts from a zero command.
    assert step.step(state(3 * PERIOD, hinge=0.5)).reset
    step.step(state(4 * PERIOD))
    assert seen[-1][-1] == 0.0


class FakeClock:
    """``time.monotonic`` for the watchdog, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize('control_rate', [0.0, 25.0])
def test_the_watchdog_trips_once_at_the_first_check_past_the_timeout_and_times_it(
        monkeypatch: pytest.MonkeyPatch, control_rate: float) -> None:
    """
    The trip reports the silence and the gap since the previous check on the agent's clock.

    A check that comes late (a starved node) trips late by as much, and says so.
    """
    clock = FakeClock()
    monkeypatch.setattr(loop_module.time, 'monotonic', clock)
    published: list[np.ndarray] = []
    problems: list[str] = []
    timeout = 1.0
    loop = ControlLoop(control_step(RecordingPolicy(), PERIOD), LatestSamples(TASK, timeout),
                       LoopActions(publish=published.append, episode_return=lambda r: None,
                                   request_reset=None, problem=problems.append,
                                   info=lambda line: None, finished=lambda: None),
                       control_rate, timeout)
    source = TASK.joint_source.name
    assert not loop.check_watchdog(), 'disarmed before the first state'
    loop.on_sample(source, state(0.0), 0.0)
    if control_rate:
        loop.on_tick()
    assert len(published) == 1
    for _ in range(20):  # 0.05-s checks up to the timeout
        clock.now += 0.05
        assert not loop.check_watchdog()
    clock.now += 0.05
    assert loop.check_watchdog()
    np.testing.assert_array_equal(published[-1], [0.0])  # the pendulum's safe effort
    assert loop.silent_sources == [source]
    assert loop.trip_silence == pytest.approx(1.05)
    assert loop.trip_check_gap == pytest.approx(0.05)
    assert problems[-1].startswith(f'no valid sample from {source} for 1.05 s '
                                   '(state_timeout 1 s): sent the safe command')
    assert 'starved' not in problems[-1]
    clock.now += 0.05
    assert not loop.check_watchdog() and len(published) == 2, 'the safe command is sent once'

    # States again: acting resumes. Then the node is starved for 2 s past its last check.
    loop.on_sample(source, state(2 * PERIOD), 0.0)
    if control_rate:
        loop.on_tick()
    assert not loop.tripped and len(published) == 3
    clock.now += 0.5
    assert not loop.check_watchdog()
    clock.now += 2.0
    assert loop.check_watchdog()
    assert loop.trip_silence == pytest.approx(2.5)
    assert loop.trip_check_gap == pytest.approx(2.0)
    assert problems[-1].endswith('the watchdog ran 2.00 s after its previous check, so this '
                                 'node was starved (CPU, or a blocked callback)')
    assert loop.counts['watchdog_trips'] == 2
