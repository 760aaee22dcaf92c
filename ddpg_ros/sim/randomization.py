"""
A robot's timing and physics applied to a MuJoCo simulation, as one seeded model: no ROS.

A :class:`~ddpg_ros.sim.randomization_profile.Profile` says what to perturb (command
latency, late periods, observation noise, dynamics, pushes); a :class:`Randomizer` applies
it to a MuJoCo ``(model, data)`` pair. ``mujoco_sim`` (parameter ``randomize``) and
``ddpg-train`` / ``ddpg-eval`` (``--randomize``, through :class:`RandomizedEnv`) both step
their physics through a randomizer, so a policy trains against the very perturbations the sim
robot applies. Commands take effect in physics steps, i.e. in sim time, so the same in
lockstep and in realtime; commands never overtake one another; dynamics are scaled from the
model's nominal values at every reset, so nothing accumulates.

Every factor draws from its own stream of one seed, so the same seed gives the same
perturbations whichever other factors are on, and a simulation and a Gymnasium env seeded
alike, sent the same commands, follow the same trajectory.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from typing import Any

import mujoco
import numpy as np

from ddpg_ros.sim.randomization_profile import Profile

_ONE_DOF = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
_STREAMS = ('episode', 'late', 'joints', 'sensors', 'pushes')


def one_dof_joints(model: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray]:
    """Return the qpos and dof addresses of every hinge and slide joint, in model order."""
    joints = [j for j in range(model.njnt) if int(model.jnt_type[j]) in _ONE_DOF]
    return (np.array([model.jnt_qposadr[j] for j in joints], dtype=np.intp),
            np.array([model.jnt_dofadr[j] for j in joints], dtype=np.intp))


def _root_translation_dofs(model: mujoco.MjModel) -> np.ndarray:
    # The first body under the world that moves: its free joint's linear dofs, or its
    # slide joints (the cart of a cart-pole, a planar walker's rootx and rootz).
    for body in range(1, model.nbody):
        if model.body_parentid[body] != 0 or model.body_jntnum[body] == 0:
            continue
        dofs = []
        first = model.body_jntadr[body]
        for joint in range(first, first + model.body_jntnum[body]):
            kind = int(model.jnt_type[joint])
            address = int(model.jnt_dofadr[joint])
            if kind == int(mujoco.mjtJoint.mjJNT_FREE):
                dofs.extend(range(address, address + 3))
            elif kind == int(mujoco.mjtJoint.mjJNT_SLIDE):
                dofs.append(address)
        return np.array(dofs, dtype=np.intp)
    return np.zeros(0, dtype=np.intp)


class Randomizer:
    """
    Applies a :class:`Profile` to one MuJoCo model and its data.

    Commands go in with :meth:`send` and take effect as :meth:`advance` steps the physics;
    :meth:`reset` starts an episode (new draws, dynamics scaled from the nominal model).

    :param frame_skip: physics steps per control period, the unit of latencies.
    :param seed: seeds every stream; :meth:`seed` reseeds.
    """

    def __init__(self, profile: Profile, model: mujoco.MjModel, data: mujoco.MjData,
                 frame_skip: int, seed: int | None = None) -> None:
        self.profile = profile
        self.model = model
        self.data = data
        self.frame_skip = frame_skip
        self._nominal = {name: getattr(model, name).copy() for name in (
            'body_mass', 'body_inertia', 'geom_friction', 'dof_damping', 'actuator_gainprm',
            'actuator_biasprm')}
        self.qpos_index, self.dof_index = one_dof_joints(model)
        self._push_dofs = _root_translation_dofs(model)
        self._queue: deque[tuple[int, np.ndarray]] = deque()
        self.latency_steps = 0
        """This episode's command latency in physics steps."""
        self.scales: dict[str, np.ndarray] = {}
        """This episode's dynamics scales, by quantity."""
        self.pushes = 0
        """Pushes so far this episode."""
        self.late_commands = 0
        """Commands made late so far (all episodes)."""
        self.step_count = 0
        """Physics steps since the last reset."""
        self.seed(seed)
        self.reset()

    def seed(self, seed: int | None) -> None:
        """Restart every stream from ``seed`` (``None``: fresh entropy)."""
        children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
        self._rng = {name: np.random.default_rng(child)
                     for name, child in zip(_STREAMS, children)}

    def reset(self) -> None:
        """Start an episode: draw its latency and dynamics, forget queued commands."""
        profile, rng = self.profile, self._rng['episode']
        self.latency_steps = self._steps(profile.command_latency.sample(rng))
        m, nominal = self.model, self._nominal
        scales = {name: rng.uniform(low, high, size=self._scale_size(name))
                  for name, (low, high) in profile.dynamics.items()}
        self.scales = scales
        one = np.ones(1)
        mass = scales.get('mass', one)
        m.body_mass[:] = nominal['body_mass'] * mass
        m.body_inertia[:] = nominal['body_inertia'] * mass.reshape(-1, 1)
        m.geom_friction[:] = nominal['geom_friction']
        m.geom_friction[:, 0] *= scales.get('friction', one)
        m.dof_damping[:] = nominal['dof_damping'] * scales.get('damping', one)
        gain = scales.get('actuator_gain', one)
        m.actuator_gainprm[:] = nominal['actuator_gainprm']
        m.actuator_biasprm[:] = nominal['actuator_biasprm']
        m.actuator_gainprm[:, 0] *= gain
        m.actuator_biasprm[:, 1:3] *= gain.reshape(-1, 1)
        self._queue.clear()
        self._applied = np.zeros(m.nu)
        self._last_due = 0
        self.step_count = 0
        self.pushes = 0
        self._next_push = self._draw_push_time(0)

    def _scale_size(self, name: str) -> int:
        return {'mass': self.model.nbody, 'actuator_gain': self.model.nu}.get(name, 1)

    def _steps(self, periods: float) -> int:
        return int(math.floor(periods * self.frame_skip + 0.5))

    def _draw_push_time(self, now: int) -> int | None:
        if not self.profile.push_velocity or self._push_dofs.size == 0:
            return None
        low, high = self.profile.push_interval
        seconds = self._rng['pushes'].uniform(low, high)
        return now + max(1, round(seconds / self.model.opt.timestep))

    def restore(self) -> None:
        """Put the model's nominal dynamics back."""
        for name, value in self._nominal.items():
            getattr(self.model, name)[:] = value

    def send(self, command: np.ndarray) -> int:
        """
        Queue a command sent now; return the physics steps until it takes effect.

        A late command draws its delay; no command takes effect before one sent earlier.
        """
        delay = self.latency_steps
        profile = self.profile
        if profile.late_probability and \
                self._rng['late'].random() < profile.late_probability:
            delay += self._steps(profile.late_delay.sample(self._rng['late']))
            self.late_commands += 1
        due = max(self.step_count + delay, self._last_due)
        self._last_due = due
        self._queue.append((due, np.array(command, dtype=np.float64)))
        return due - self.step_count

    def advance(self, physics_steps: int) -> None:
        """Step the physics, applying each command and push when it is due."""
        end = self.step_count + physics_steps
        data, queue = self.data, self._queue
        while self.step_count < end:
            while queue and queue[0][0] <= self.step_count:
                self._applied = queue.popleft()[1]
            data.ctrl[:] = self._applied
            if self._next_push is not None and self._next_push <= self.step_count:
                self._push()
            until = end
            if queue:
                until = min(until, queue[0][0])
            if self._next_push is not None:
                until = min(until, self._next_push)
            mujoco.mj_step(self.model, data, nstep=until - self.step_count)
            self.step_count = until
        mujoco.mj_rnePostConstraint(self.model, data)

    def _push(self) -> None:
        rng = self._rng['pushes']
        velocity = self.profile.push_velocity
        self.data.qvel[self._push_dofs] += rng.uniform(-velocity, velocity,
                                                       size=self._push_dofs.size)
        self.pushes += 1
        self._next_push = self._draw_push_time(self.step_count)

    @property
    def applied(self) -> np.ndarray:
        """Return the command in effect now."""
        return self._applied

    def joint_noise(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw one state's noise on the 1-DoF joints' positions and velocities."""
        noise, rng = self.profile.observation_noise, self._rng['joints']
        n = self.qpos_index.size
        return (_gaussian(rng, noise.get('joint_position', 0.0), n),
                _gaussian(rng, noise.get('joint_velocity', 0.0), n))

    def noisy_samples(self, samples: dict[str, Any]) -> dict[str, Any]:
        """Return sensor samples (:meth:`SimSensors.samples`) with IMU and odometry noise."""
        from ddpg_ros.tasks.sources import ImuSample, OdometrySample

        noise, rng = self.profile.observation_noise, self._rng['sensors']
        imu, odometry = noise.get('imu', 0.0), noise.get('odometry', 0.0)
        out = dict(samples)
        for topic, sample in samples.items():
            if isinstance(sample, ImuSample) and imu:
                out[topic] = replace(
                    sample, angular_velocity=sample.angular_velocity + _gaussian(rng, imu, 3),
                    linear_acceleration=sample.linear_acceleration + _gaussian(rng, imu, 3))
            elif isinstance(sample, OdometrySample) and odometry:
                out[topic] = replace(
                    sample, position=sample.position + _gaussian(rng, odometry, 3),
                    linear_velocity=sample.linear_velocity + _gaussian(rng, odometry, 3),
                    angular_velocity=sample.angular_velocity + _gaussian(rng, odometry, 3))
        return out


def _gaussian(rng: np.random.Generator, std: float, size: int) -> np.ndarray:
    return rng.normal(0.0, std, size=size) if std else np.zeros(size)
