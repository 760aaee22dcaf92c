"""
The control step: the newest robot state in, one command out, a transition stored.

This is ``update(time, period)`` of a ros2_control controller, for a learning policy:

1. the task's observation of the state, checked (a state that fails is refused: never acted
   on, never stored, and the chain of transitions breaks there);
2. the transition from the previous step's state, with the task's reward and termination,
   handed to the policy's side to store (training) if it spans one control period (on a
   timer, see :data:`PERIOD_TOLERANCE`);
3. episode end, ``total_steps``;
4. the action (warm-up, policy, noise), then the command filter (clip, rate limit); a
   non-finite action becomes the safe command and breaks the chain.

The caller (the ``ddpg_agent`` node) decides *when* a step happens (each new sample of every
required source, or a timer), publishes the command, and runs the reset protocol the
decision asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ddpg_ros.control.episodes import Episodes, Transition
from ddpg_ros.control.safety import CommandFilter, SafeCommand
from ddpg_ros.tasks import RobotState, Task

PERIOD_TOLERANCE = 0.5
"""On a timer, a transition is stored only if its two states lie within this fraction of a
control period of one period apart. A tick that came late by whole periods (rcl skips the
missed ones), or found no state newer than the last tick's, would otherwise store a
transition over another interval than every other one, under an action held for it: the
critic would learn dynamics the robot does not have. The step is still acted on and counted
(its reward is in the episode's return); only the replay buffer does not see it."""


class Policy(Protocol):
    """What the control step needs of the learning side (local, deployed or remote)."""

    training: bool
    last_wait: float

    def act(self, obs: np.ndarray, explore: bool, env_steps: int) -> np.ndarray | None:
        """Return the action for ``obs``; ``None``: nothing to act with, send the safe command."""

    def store(self, transition: Transition, env_steps: int) -> None:
        """Keep a completed transition."""

    def episode_ended(self, episode_return: float, env_steps: int) -> None:
        """Note the end of an episode."""


@dataclass
class Decision:
    """What one control step decided; the node carries it out."""

    command: np.ndarray | None = None
    """The command to publish, if any."""
    problem: str = ''
    """Why the state was refused or the command replaced, for the log."""
    episode_return: float | None = None
    """The return of the episode that ended at this step."""
    reset: bool = False
    """The episode ended: ask the robot for a new one before acting again."""
    finished: bool = False
    """``total_steps`` is reached: act no more."""


class ControlStep:
    """
    One robot's control loop without ROS: states in, commands out.

    :param task: the task.
    :param policy: the learning side (:class:`~ddpg_ros.control.training.LocalTraining`,
        :class:`~ddpg_ros.control.training.Deployment`, or a remote learner's actor).
    :param episodes: counters and returns (restored ones for a resumed run).
    :param command_filter: clip and rate limit.
    :param safe_command: what to send instead of a bad action.
    :param total_steps: steps after which to stop; 0 = never.
    :param resets: whether the robot starts new episodes on request (a reset service).
    :param period: the control period in seconds when a timer paces the steps; 0 (per robot
        step) stores every transition.
    :param observe_last_action: append the last command published to the observation (zero
        at the start of an episode), as ``ddpg-train`` does with ``observe_last_action``.
    """

    def __init__(self, task: Task, policy: Policy, episodes: Episodes,
                 command_filter: CommandFilter, safe_command: SafeCommand,
                 total_steps: int = 0, resets: bool = True, period: float = 0.0,
                 observe_last_action: bool = False) -> None:
        self.task = task
        self.policy = policy
        self.episodes = episodes
        self.command_filter = command_filter
        self.safe_command = safe_command
        self.total_steps = int(total_steps)
        self.resets = resets
        self.period = float(period)
        self.explore = policy.training
        self.chain: tuple[RobotState, np.ndarray, np.ndarray] | None = None
        """The previous step's state, observation and command: half a transition."""
        self.last_state: RobotState | None = None
        """The newest state that passed validation (for position safe commands)."""
        self.last_command: np.ndarray | None = None
        self.observe_last_action = observe_last_action
        self.observed_command = np.zeros(len(task.action_names))
        """The command the observation carries: the last one published this episode."""
        self.finished = False
        self.stats = {'invalid_states': 0, 'non_finite_actions': 0, 'off_period_steps': 0}

    def step(self, state: RobotState) -> Decision:
        """Run one control step on ``state``, the newest sample of every source."""
        if self.finished:
            return Decision()
        try:
            obs = self.episodes.observe(state)
        except ValueError as exc:
            return self.refuse(f'invalid state: {exc}')
        if self.observe_last_action:
            obs = np.concatenate([obs, self.observed_command])
        self.last_state = state
        decision = Decision()
        if self.chain is not None:
            previous, previous_obs, action = self.chain
            try:
                outcome = self.episodes.complete(previous, previous_obs, action, state, obs)
            except ValueError as exc:
                return self.refuse(str(exc))
            steps = self.episodes.env_steps
            if not self.spans_one_period(previous, state):
                self.stats['off_period_steps'] += 1
            elif self.policy.training:
                self.policy.store(outcome.transition, steps)
            if outcome.episode_over:
                decision.episode_return = outcome.episode_return
                self.policy.episode_ended(outcome.episode_return, steps)
            if self.total_steps and steps >= self.total_steps:
                self.chain = None
                self.finished = True
                decision.finished = True
                return decision
            if outcome.episode_over and self.resets:
                # Never act on the terminal state: the next command belongs to a new episode,
                # which starts from a zero command.
                self.chain = None
                self.observed_command = np.zeros_like(self.observed_command)
                decision.reset = True
                return decision
        action = self.policy.act(obs, self.explore, self.episodes.env_steps)
        if action is None:
            # No policy to act with (a remote learner not there yet, or lost with
            # on_learner_lost: safe): hold the robot safe, store nothing, until there is.
            self.chain = None
            decision.command = self.safe(state)
            return decision
        command = self.command_filter(action, self.last_command)
        if command is None:
            # Weights are checked before a snapshot is swapped in, so this is an extreme
            # observation overflowing the actor: command the safe value, store nothing.
            self.stats['non_finite_actions'] += 1
            self.chain = None
            decision.command = self.safe(state)
            decision.problem = (f'non-finite action {np.asarray(action).tolist()}: sending '
                                'the safe command')
            return decision
        self.chain = (state, obs, command)
        self.last_command = self.observed_command = command
        decision.command = command
        return decision

    def spans_one_period(self, previous: RobotState, state: RobotState) -> bool:
        """Whether ``previous`` -> ``state`` is one control period (always, per robot step)."""
        if not self.period:
            return True
        return abs(state.stamp - previous.stamp - self.period) < PERIOD_TOLERANCE * self.period

    def refuse(self, problem: str) -> Decision:
        """Refuse a state: count it and break the chain; nothing is acted on or stored."""
        self.stats['invalid_states'] += 1
        self.chain = None
        return Decision(problem=problem)

    def interrupt(self) -> None:
        """Break the chain: the next state starts a new one (a gap, a trip, a reset)."""
        self.chain = None

    def safe(self, state: RobotState | None = None) -> np.ndarray | None:
        """Return the safe command (holding ``state``'s or the last positions if need be)."""
        command = self.safe_command(state if state is not None else self.last_state)
        if command is not None:
            self.last_command = self.observed_command = command
        return command

    def repeats_last(self, state: RobotState) -> bool:
        """Whether ``state`` is the previous step's sample again (a lockstep re-send)."""
        if self.chain is None:
            return False
        previous = self.chain[0]
        # A repeat carries the original stamp and values; a new sample differs in one of them.
        return (previous.stamp == state.stamp
                and np.array_equal(previous.position, state.position)
                and np.array_equal(previous.velocity, state.velocity))
