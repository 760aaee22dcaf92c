"""
What a simulated robot publishes, read from a MuJoCo ``(model, data)`` pair.

Each function returns the sample type of :mod:`ddpg_ros.tasks.sources` that a real robot's
driver would publish, so a simulation node converts these to messages and a task cannot tell
the simulation from the robot:

- :func:`joint_states`: every 1-DoF joint (hinge, slide), as a ``joint_state_broadcaster``;
- :func:`root_odometry`: the free-floating root body, as a state estimator publishes ``odom``
  (REP 105: pose in ``odom``, twist in the body frame);
- :func:`imu`: an IMU site's ``framequat``, ``gyro`` and ``accelerometer`` sensors;
- :func:`root_pose` and :func:`contact_forces`: quantities only a simulation has, which
  Gymnasium's rewards are computed from (see :mod:`ddpg_ros.tasks.ant`).

Nothing here steps or changes ``data``: every value is read from what the last
``mj_step`` (or ``mj_forward``) left there. MuJoCo's derived quantities (``xpos``,
``sensordata``, ``cfrc_ext``) come from the forward pass at the *start* of the last physics
step, so they trail ``qpos`` and ``qvel`` by one timestep, as a real sensor's latency would.

:class:`SimSensors` finds what a model offers once and reads all of it by topic name.
No ROS import here.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from ddpg_ros.tasks.base import RobotState, Task
from ddpg_ros.tasks.sources import ArraySample, ImuSample, OdometrySample, PoseSample

ODOM_FRAME = 'odom'
"""The parent frame of odometry and poses: MuJoCo's world frame."""
ODOM_TOPIC = 'odom'
"""Topic of :func:`root_odometry`, for models whose root body has a free joint."""
ROOT_POSE_TOPIC = 'root_pose'
"""Topic of :func:`root_pose`, for models whose root body has a free joint."""
CONTACT_FORCES_TOPIC = 'contact_forces'
"""Topic of :func:`contact_forces`, for models whose root body has a free joint."""
IMU_TOPIC = 'imu'
"""Topic of :func:`imu`, for models with an IMU site."""
JOINT_STATES_TOPIC = 'joint_states'
"""Topic of :func:`joint_states`."""

_ONE_DOF = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
_IMU_SENSORS = (int(mujoco.mjtSensor.mjSENS_FRAMEQUAT), int(mujoco.mjtSensor.mjSENS_GYRO),
                int(mujoco.mjtSensor.mjSENS_ACCELEROMETER))


def _name(model: mujoco.MjModel, kind: mujoco.mjtObj, index: int, fallback: str) -> str:
    return mujoco.mj_id2name(model, kind, index) or f'{fallback}_{index}'


def free_root_joint(model: mujoco.MjModel) -> int | None:
    """
    Return the free joint of the model's root body, or ``None`` when it has none.

    The root body is the first child of the world carrying a free joint: the floating base
    of a legged or wheeled robot.
    """
    for joint in range(model.njnt):
        body = int(model.jnt_bodyid[joint])
        if int(model.jnt_type[joint]) == int(mujoco.mjtJoint.mjJNT_FREE) and \
                int(model.body_parentid[body]) == 0:
            return joint
    return None


def _root_joint(model: mujoco.MjModel) -> int:
    joint = free_root_joint(model)
    if joint is None:
        raise ValueError('the model has no root body with a free joint, so no odometry')
    return joint


def root_body_name(model: mujoco.MjModel) -> str | None:
    """Return the name of the free-floating root body (its odometry child frame), or None."""
    joint = free_root_joint(model)
    if joint is None:
        return None
    return _name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.jnt_bodyid[joint]), 'body')


def joint_states(model: mujoco.MjModel, data: mujoco.MjData
                 ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """
    Return the names, positions, velocities and efforts of every 1-DoF joint.

    Effort is the actuator force at the joint (``qfrc_actuator``), as a motor driver reports
    it. Unnamed joints are called ``joint_<id>``.

    :return: ``(names, position, velocity, effort)``, arrays as new float64 copies.
    """
    joints = [j for j in range(model.njnt) if int(model.jnt_type[j]) in _ONE_DOF]
    names = tuple(_name(model, mujoco.mjtObj.mjOBJ_JOINT, j, 'joint') for j in joints)
    qpos = np.array([model.jnt_qposadr[j] for j in joints], dtype=np.intp)
    dof = np.array([model.jnt_dofadr[j] for j in joints], dtype=np.intp)
    return (names, data.qpos[qpos].copy(), data.qvel[dof].copy(),
            data.qfrc_actuator[dof].copy())


def _xyzw(wxyz: np.ndarray) -> np.ndarray:
    # MuJoCo orders quaternions (w, x, y, z); ROS messages (x, y, z, w).
    return np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]], dtype=np.float64)


def root_odometry(model: mujoco.MjModel, data: mujoco.MjData, stamp: float
                  ) -> OdometrySample | None:
    """
    Return the root body's odometry (REP 105), or ``None`` for a model without a free root.

    MuJoCo's free joint keeps the body's position and orientation in ``qpos`` and, in
    ``qvel``, the linear velocity in the *world* frame and the angular velocity in the
    *body* frame (``mj_integratePos`` adds ``dt * qvel[0:3]`` to the position and turns the
    quaternion by ``qvel[3:6]`` on its right). Odometry wants both in the body frame, so the
    linear velocity is rotated into it.

    :param stamp: the sample time, seconds (sim time).
    """
    joint = free_root_joint(model)
    if joint is None:
        return None
    qpos = data.qpos[model.jnt_qposadr[joint]:model.jnt_qposadr[joint] + 7]
    qvel = data.qvel[model.jnt_dofadr[joint]:model.jnt_dofadr[joint] + 6]
    # The physics reads the quaternion normalised (mj_kinematics), and each step leaves it
    # so; a qpos written from outside may not be (Gymnasium's Ant adds reset noise to all
    # of qpos, quaternion included).
    orientation = qpos[3:7].copy()
    mujoco.mju_normalize4(orientation)
    inverse = np.empty(4)
    mujoco.mju_negQuat(inverse, orientation)
    linear = np.empty(3)
    mujoco.mju_rotVecQuat(linear, qvel[0:3], inverse)
    return OdometrySample(position=qpos[0:3].copy(), orientation=_xyzw(orientation),
                          linear_velocity=linear, angular_velocity=qvel[3:6].copy(),
                          frame_id=ODOM_FRAME, child_frame_id=root_body_name(model) or '',
                          stamp=stamp)


def root_pose(model: mujoco.MjModel, data: mujoco.MjData, stamp: float) -> PoseSample | None:
    """
    Return the root body's pose from MuJoCo's kinematics, or ``None`` without a free root.

    This is ``data.xpos`` and ``data.xquat``: the pose as of the last forward pass, as a
    motion-capture system would report the body with some latency. Gymnasium's Ant measures
    forward progress by it (``data.body(1).xpos``) rather than by ``qpos``; with a
    Runge-Kutta integrator it is the pose of the last intermediate stage, which no
    odometry can reconstruct, so a task that must match Gymnasium reads this.

    :param stamp: the sample time, seconds (sim time).
    """
    joint = free_root_joint(model)
    if joint is None:
        return None
    body = int(model.jnt_bodyid[joint])
    return PoseSample(position=data.xpos[body].copy(), orientation=_xyzw(data.xquat[body]),
                      frame_id=ODOM_FRAME, stamp=stamp)


def contact_forces(model: mujoco.MjModel, data: mujoco.MjData, stamp: float) -> ArraySample:
    """
    Return the external (contact) wrench on every body but the world: ``cfrc_ext[1:]``.

    Six values per body, in body order: torque then force, about the body's subtree centre
    of mass, world-oriented; ``6 * (nbody - 1)`` values in all. MuJoCo fills ``cfrc_ext`` in
    ``mj_rnePostConstraint``, which ``mj_step`` runs only when a sensor needs it; Gymnasium,
    and :class:`ddpg_ros.sim.simulation.Simulation`, call it after every step, and the values
    read here are only current if the caller did the same. After a reset (``mj_resetData`` +
    ``mj_forward``) they are zeros, as in Gymnasium's first observation. The world's own row
    is left out because MuJoCo never writes it.

    :param stamp: the sample time, seconds (sim time).
    """
    return ArraySample(values=data.cfrc_ext[1:].ravel().copy(), stamp=stamp)


def _sensor_on_site(model: mujoco.MjModel, site: int, kind: int) -> int | None:
    for sensor in range(model.nsensor):
        if int(model.sensor_type[sensor]) != kind:
            continue
        if int(model.sensor_objtype[sensor]) != int(mujoco.mjtObj.mjOBJ_SITE) or \
                int(model.sensor_objid[sensor]) != site:
            continue
        # An orientation relative to another object is not what an IMU reports.
        if kind == int(mujoco.mjtSensor.mjSENS_FRAMEQUAT) and int(model.sensor_refid[sensor]) >= 0:
            continue
        return sensor
    return None


def find_imu_site(model: mujoco.MjModel) -> int | None:
    """Return the first site carrying ``framequat``, ``gyro`` and ``accelerometer``, or None."""
    for site in range(model.nsite):
        if all(_sensor_on_site(model, site, kind) is not None for kind in _IMU_SENSORS):
            return site
    return None


def _site_id(model: mujoco.MjModel, site: int | str) -> int:
    if isinstance(site, str):
        index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        if index < 0:
            raise ValueError(f'the model has no site {site!r}')
        return index
    if not 0 <= site < model.nsite:
        raise ValueError(f'site id {site!r} is not in [0, {model.nsite})')
    return int(site)


def _imu_sensors(model: mujoco.MjModel, site: int) -> list[int]:
    sensors = []
    for kind in _IMU_SENSORS:
        sensor = _sensor_on_site(model, site, kind)
        if sensor is None:
            name = _name(model, mujoco.mjtObj.mjOBJ_SITE, site, 'site')
            raise ValueError(f'site {name!r} has no {mujoco.mjtSensor(kind).name} sensor; an '
                             'IMU needs framequat, gyro and accelerometer on one site')
        sensors.append(sensor)
    return sensors


def imu(model: mujoco.MjModel, data: mujoco.MjData, site: int | str, stamp: float
        ) -> ImuSample:
    """
    Return what an IMU at ``site`` measures, from the site's MJCF sensors.

    Orientation from ``framequat`` (the site frame in the world, reordered to x, y, z, w),
    angular velocity from ``gyro`` and specific force from ``accelerometer``, both in the
    site frame; at rest the accelerometer reads +9.81 m/s^2 along the world's up axis, as a
    real one does.

    :param site: site id or name.
    :param stamp: the sample time, seconds (sim time).
    :raises ValueError: an unknown site, or one lacking one of the three sensors.
    """
    values = []
    for sensor in _imu_sensors(model, _site_id(model, site)):
        address = int(model.sensor_adr[sensor])
        values.append(data.sensordata[address:address + int(model.sensor_dim[sensor])].copy())
    quaternion, gyro, accelerometer = values
    return ImuSample(orientation=_xyzw(quaternion), angular_velocity=gyro,
                     linear_acceleration=accelerometer, stamp=stamp)


class SimSensors:
    """
    Everything a model publishes besides its joint states, found once, read by topic name.

    A model whose root body has a free joint publishes ``odom``, ``root_pose`` and
    ``contact_forces``; one with an IMU site publishes ``imu``.

    :param model: the MuJoCo model.
    :param imu_site: the IMU's site id or name; ``None`` for the first site that carries all
        three IMU sensors (none: no ``imu``).
    """

    def __init__(self, model: mujoco.MjModel, imu_site: int | str | None = None) -> None:
        self.model = model
        site = find_imu_site(model) if imu_site is None else _site_id(model, imu_site)
        if site is not None:
            # Fails now, with the reason, if a named site lacks a sensor.
            _imu_sensors(model, site)
        self.imu_site_id: int | None = site
        """The IMU's site id, or ``None``: the model publishes no ``imu``."""
        self.free_root = free_root_joint(model) is not None
        """Whether the root body has a free joint: ``odom``, ``root_pose``, ``contact_forces``."""

    @property
    def topics(self) -> dict[str, str]:
        """Return the source kind published on each topic, e.g. ``{'imu': 'imu'}``."""
        topics = {JOINT_STATES_TOPIC: 'joint_state'}
        if self.free_root:
            topics.update({ODOM_TOPIC: 'odometry', ROOT_POSE_TOPIC: 'pose',
                           CONTACT_FORCES_TOPIC: 'array'})
        if self.imu_site_id is not None:
            topics[IMU_TOPIC] = 'imu'
        return topics

    @property
    def contact_forces_length(self) -> int:
        """Return the number of values on ``contact_forces``."""
        return 6 * (self.model.nbody - 1)

    def samples(self, data: mujoco.MjData, stamp: float | None = None) -> dict[str, Any]:
        """
        Return every sample but the joint states, by topic name, all with one stamp.

        :param data: the simulation's current data.
        :param stamp: the sample time; ``None`` for ``data.time``.
        """
        stamp = float(data.time) if stamp is None else stamp
        samples: dict[str, Any] = {}
        if self.free_root:
            samples[ODOM_TOPIC] = root_odometry(self.model, data, stamp)
            samples[ROOT_POSE_TOPIC] = root_pose(self.model, data, stamp)
            samples[CONTACT_FORCES_TOPIC] = contact_forces(self.model, data, stamp)
        if self.imu_site_id is not None:
            samples[IMU_TOPIC] = imu(self.model, data, self.imu_site_id, stamp)
        return samples

    def robot_state(self, task: Task, data: mujoco.MjData, stamp: float | None = None
                    ) -> RobotState:
        """
        Return the state a task receives from this simulation, as over the topics.

        Joints come from :func:`joint_states` by the task's ``joint_names``; each declared
        source takes the sample published on its name.

        :raises ValueError: the task reads a joint or a source the model does not publish.
        """
        stamp = float(data.time) if stamp is None else stamp
        names, position, velocity, effort = joint_states(self.model, data)
        state = RobotState.from_joints(task.joint_names, names, position, velocity, effort,
                                       stamp)
        published = self.samples(data, stamp)
        sources: dict[str, Any] = {}
        for source in task.sources:
            if source.kind == 'joint_state':
                continue
            if source.name not in published:
                if source.required:
                    raise ValueError(f'task {task.name!r} reads {source.kind} source '
                                     f'{source.name!r}, which this model does not publish '
                                     f'(it publishes {sorted(self.topics)})')
                continue
            sample = published[source.name]
            if source.kind == 'array' and len(sample.values) != source.length:
                raise ValueError(f'task {task.name!r} expects {source.length} values on '
                                 f'{source.name!r}; this model publishes {len(sample.values)}')
            sources[source.name] = sample
        return RobotState(state.position, state.velocity, state.effort, stamp, sources)


__all__ = ['CONTACT_FORCES_TOPIC', 'IMU_TOPIC', 'JOINT_STATES_TOPIC', 'ODOM_FRAME',
           'ODOM_TOPIC', 'ROOT_POSE_TOPIC', 'SimSensors', 'contact_forces', 'free_root_joint',
           'find_imu_site', 'imu', 'joint_states', 'root_body_name', 'root_odometry', 'root_pose']
