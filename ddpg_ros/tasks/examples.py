"""
Worked examples of user tasks on a 2-link arm: target angles, and a goal from another node.

Copy this file to start your own task. Select one with the ``ddpg_agent`` parameter
``task: ddpg_ros.tasks.examples:ReachTarget`` (or ``:ReachPoint``) and simulate its robot
with the ``mujoco_sim`` parameter ``model`` set to :data:`MODEL_PATH`. A task

- names the joints it reads from ``joint_states`` (``joint_names``); every ``RobotState``
  it receives is ordered that way, whatever order the robot publishes in;
- names its observation entries and the actuators it commands, in command order;
- gives action bounds, the control period and the episode length;
- computes observation, reward and termination from states alone: no ROS, no physics;
- declares the topics it reads besides ``joint_states`` in ``sources`` (see
  :class:`ReachPoint`), and how it commands in ``command_interface`` (default ``effort``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ddpg_ros.tasks.base import RobotState, Task
from ddpg_ros.tasks.sources import JOINT_STATES, Source

MODEL_PATH = str(Path(__file__).resolve().parent.parent / 'models' / 'two_link_arm.xml')
"""The MJCF model of the arm this example drives."""


class ReachTarget(Task):
    """
    Drive the shoulder and elbow of a planar arm to target angles and hold them there.

    Observation: joint angles, joint velocities and the angle errors (target - angle). The
    error is in the observation because the policy cannot otherwise know the target.
    Reward: ``-sum(error ** 2) - ctrl_cost_weight * sum(action ** 2)``, dense so that DDPG
    learns quickly. The episode ends early only if the state is not finite; otherwise it is
    truncated after ``max_episode_steps``, which keeps bootstrapping.

    :param target: target angles of (shoulder, elbow) in radians.
    :param ctrl_cost_weight: weight of the squared action, to discourage flailing.
    :param max_episode_steps: steps per episode.
    """

    name = 'reach_target'
    env_id = None
    joint_names = ('shoulder', 'elbow')
    observation_names = ('shoulder.position', 'elbow.position',
                         'shoulder.velocity', 'elbow.velocity',
                         'shoulder.error', 'elbow.error')
    action_names = ('shoulder', 'elbow')
    # Must equal the simulation's control period: the model's timestep times frame_skip (1).
    control_dt = 0.02

    def __init__(
        self,
        target: Sequence[float] = (0.8, -1.2),
        ctrl_cost_weight: float = 0.01,
        max_episode_steps: int = 200,
    ) -> None:
        self.target = np.array(target, dtype=np.float64)
        if self.target.shape != (len(self.joint_names),):
            raise ValueError(f'target needs one angle per joint {self.joint_names}, '
                             f'got {target!r}')
        self.ctrl_cost_weight = ctrl_cost_weight
        self.max_episode_steps = max_episode_steps
        # Bounds as the model's ctrlrange: the agent squashes its actions into them.
        self.action_low = np.array([-1.0, -1.0])
        self.action_high = np.array([1.0, 1.0])

    def observation(self, state: RobotState) -> np.ndarray:
        """
        Angles, velocities and errors.

        :param state: ordered as ``joint_names``.
        """
        return np.concatenate([state.position, state.velocity, self.target - state.position])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        Negative squared error of the state reached, minus the control cost.

        :param previous: unused; the reward depends on where the arm got to.
        :param action: the action as commanded.
        :param state: the state reached.
        """
        error = self.target - state.position
        action = np.asarray(action, dtype=np.float64)
        return float(-np.sum(np.square(error)) - self.ctrl_cost_weight * np.sum(np.square(action)))

    def terminated(self, state: RobotState) -> bool:
        """
        Only a non-finite state ends the episode: there is nowhere to bootstrap from.

        :param state: the state reached.
        """
        return not (np.isfinite(state.position).all() and np.isfinite(state.velocity).all())


UPPER_ARM = 0.3
"""Shoulder to elbow in :data:`MODEL_PATH`, m."""
FOREARM = 0.25
"""Elbow to fingertip in :data:`MODEL_PATH`, m."""


class ReachPoint(Task):
    """
    Bring the arm's fingertip to a goal point that another node publishes.

    The task reads two sources: the arm's ``joint_states`` and a ``goal``
    (``geometry_msgs/PoseStamped``, in the arm's base frame; only x and y matter) from, say,
    a planner or a clicked point. The goal is declared optional (``required=False``): a node
    that publishes a goal once, or only when it changes, never makes a control step stale;
    until the first goal arrives the task aims at ``default_goal``. A required source
    instead must be fresh at every step, or the agent sends the safe command.

    Observation: angles, velocities and the fingertip's error (goal - fingertip), which the
    policy needs because the goal moves. Reward: ``-|error|^2 - ctrl_cost_weight *
    sum(action^2)``.

    :param default_goal: (x, y) aimed at before any goal arrives, m.
    :param ctrl_cost_weight: weight of the squared action.
    :param max_episode_steps: steps per episode.
    """

    name = 'reach_point'
    env_id = None
    joint_names = ('shoulder', 'elbow')
    observation_names = ('shoulder.position', 'elbow.position',
                         'shoulder.velocity', 'elbow.velocity',
                         'fingertip.error.x', 'fingertip.error.y')
    action_names = ('shoulder', 'elbow')
    sources = (JOINT_STATES, Source('goal', 'pose', required=False))
    control_dt = 0.02

    def __init__(
        self,
        default_goal: Sequence[float] = (0.3, 0.3),
        ctrl_cost_weight: float = 0.01,
        max_episode_steps: int = 200,
    ) -> None:
        self.default_goal = np.array(default_goal, dtype=np.float64)
        if self.default_goal.shape != (2,):
            raise ValueError(f'default_goal needs (x, y), got {default_goal!r}')
        self.ctrl_cost_weight = ctrl_cost_weight
        self.max_episode_steps = max_episode_steps
        self.action_low = np.array([-1.0, -1.0])
        self.action_high = np.array([1.0, 1.0])

    def goal(self, state: RobotState) -> np.ndarray:
        """
        Return the newest goal's (x, y), or ``default_goal`` while none has arrived.

        :param state: the state, with ``sources['goal']`` once a goal was published.
        """
        sample = state.sources.get('goal')
        return self.default_goal if sample is None else sample.position[:2]

    @staticmethod
    def fingertip(position: np.ndarray) -> np.ndarray:
        """
        Return the fingertip's (x, y) for joint angles (shoulder, elbow): forward kinematics.

        :param position: joint angles, rad.
        """
        shoulder, elbow = position
        return np.array([UPPER_ARM * np.cos(shoulder) + FOREARM * np.cos(shoulder + elbow),
                         UPPER_ARM * np.sin(shoulder) + FOREARM * np.sin(shoulder + elbow)])

    def observation(self, state: RobotState) -> np.ndarray:
        """
        Angles, velocities and the fingertip's error.

        :param state: ordered as ``joint_names``, with the ``goal`` source if any.
        """
        error = self.goal(state) - self.fingertip(state.position)
        return np.concatenate([state.position, state.velocity, error])

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        """
        Negative squared distance of the fingertip to the goal, minus the control cost.

        :param previous: unused.
        :param action: the action as commanded.
        :param state: the state reached.
        """
        error = self.goal(state) - self.fingertip(state.position)
        action = np.asarray(action, dtype=np.float64)
        return float(-np.sum(np.square(error)) - self.ctrl_cost_weight * np.sum(np.square(action)))
