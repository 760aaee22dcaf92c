"""
Tasks: robot state in; observation, reward, termination and action bounds out.

Nothing here imports ROS or a physics engine; see :mod:`ddpg_ros.tasks.examples` for how to
write your own task.
"""

from ddpg_ros.tasks.ant import Ant, AntOnRobot
from ddpg_ros.tasks.balancer import Balancer
from ddpg_ros.tasks.base import RobotState, Task, validate_task
from ddpg_ros.tasks.half_cheetah import HalfCheetah
from ddpg_ros.tasks.hopper import Hopper
from ddpg_ros.tasks.inverted_pendulum import InvertedPendulum
from ddpg_ros.tasks.registry import BUILTIN_TASKS, available_tasks, make_task, task_for_env_id
from ddpg_ros.tasks.sources import (ArraySample, COMMAND_INTERFACES, ImuSample, OdometrySample,
                                    PoseSample, SOURCE_KINDS, Source, TwistSample)
from ddpg_ros.tasks.walker2d import Walker2d

__all__ = [
    'Ant',
    'AntOnRobot',
    'ArraySample',
    'Balancer',
    'BUILTIN_TASKS',
    'COMMAND_INTERFACES',
    'ImuSample',
    'OdometrySample',
    'PoseSample',
    'SOURCE_KINDS',
    'Source',
    'TwistSample',
    'HalfCheetah',
    'Hopper',
    'InvertedPendulum',
    'RobotState',
    'Task',
    'available_tasks',
    'make_task',
    'task_for_env_id',
    'validate_task',
    'Walker2d',
]
