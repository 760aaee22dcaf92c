"""
The MuJoCo physics that ``mujoco_sim`` wraps: commands in, joint arrays out, no ROS.

Given a Gymnasium MuJoCo env id, the simulation builds that env and steps *its* model and
data with its ``frame_skip`` and resets through *its* ``reset_model``, so dynamics, control
period and reset distribution are Gymnasium's exactly. Given an MJCF file, it loads the
model and resets to keyframe 0 (or ``qpos0`` without keyframes).

What a robot driver would publish besides joint states (odometry of a free-floating root
body, an IMU) is read by :class:`ddpg_ros.sim.sensors.SimSensors`, which every simulation
carries as ``sensors``. How it is commanded follows from its actuators
(:func:`command_interface`): motors take efforts, position servos positions, velocity
servos velocities, as ros2_control's forward command controllers do.

The simulation knows physics only; rewards and observations belong to a task.
"""

from __future__ import annotations

import operator
import os
from typing import Any

import mujoco
import numpy as np

from ddpg_ros.sim.mujoco_warnings import route_mujoco_warnings
from ddpg_ros.sim.randomization import Randomizer
from ddpg_ros.sim.randomization_profile import Profile, load_profile
from ddpg_ros.sim.sensors import SimSensors

ACTUATOR_INTERFACES = ('effort', 'position', 'velocity')
"""The command interfaces a simulation's actuators can take (INTERFACE.md section 7)."""
_FILTERS = (int(mujoco.mjtDyn.mjDYN_NONE), int(mujoco.mjtDyn.mjDYN_FILTER),
            int(mujoco.mjtDyn.mjDYN_FILTEREXACT))


def _one_line(exc: BaseException) -> str:
    return '; '.join(line.strip() for line in str(exc).splitlines() if line.strip())


def _is_mjcf_path(model: str) -> bool:
    # Gymnasium ids never end in .xml and are never existing files, so this cannot misroute one.
    return model.lower().endswith('.xml') or os.path.isfile(model)


_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def resolve_model_path(path: str) -> str:
    """
    Return ``path``, or the package's own model it names (``ddpg_ros/models/<file>.xml``).

    Parameter files name the bundled models relative to the package, so that they work from
    a source checkout, a pip install and a colcon install alike.
    """
    if os.path.isfile(path) or os.path.isabs(path):
        return path
    bundled = os.path.join(_PACKAGE_PARENT, path)
    return bundled if os.path.isfile(bundled) else path


def _load_mjcf(path: str) -> mujoco.MjModel:
    path = resolve_model_path(path)
    if not os.path.isfile(path):
        raise ValueError(f'MJCF file not found: {path}')
    route_mujoco_warnings()
    try:
        return mujoco.MjModel.from_xml_path(path)
    except ValueError as exc:
        raise ValueError(f'cannot load MJCF file {path}: {_one_line(exc)}') from exc


def _make_gymnasium_env(env_id: str, frame_skip: int | None) -> Any:
    import gymnasium
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    kwargs = {} if frame_skip is None else {'frame_skip': frame_skip}
    # Compiling the env's model may warn (HalfCheetah-v5 does); into the log, not a file.
    route_mujoco_warnings()
    try:
        env = gymnasium.make(env_id, **kwargs).unwrapped
    except (gymnasium.error.Error, ImportError, TypeError) as exc:
        raise ValueError(f'unknown model {env_id!r}: not an MJCF file, and not a Gymnasium '
                         f'env id that can be made ({_one_line(exc)})') from exc
    if not isinstance(env, MujocoEnv):
        env.close()
        raise ValueError(f'model {env_id!r} is a Gymnasium env but not a MuJoCo one')
    return env


def actuator_interface(model: mujoco.MjModel, actuator: int) -> str | None:
    """
    Return the command interface an actuator takes, or ``None`` when it fits none.

    MuJoCo's shortcuts set an actuator's force to ``gain * ctrl + bias``, gain and bias
    affine in its length and velocity: a ``motor`` has a fixed gain and no bias (``ctrl`` is
    an effort, ``effort``); a ``position`` servo has gain ``kp`` and bias
    ``-kp * length - kv * velocity`` (``ctrl`` is a target position, ``position``); a
    ``velocity`` servo has gain ``kv`` and bias ``-kv * velocity`` (``position`` and
    ``velocity`` alike for ``general`` actuators set up the same way). A first-order filter
    on ``ctrl`` (``timeconst``, ``cylinder``) keeps the meaning; integrated controls
    (``intvelocity``), muscles, dampers and anything else fit no interface.
    """
    gain, bias = model.actuator_gainprm[actuator], model.actuator_biasprm[actuator]
    if int(model.actuator_dyntype[actuator]) not in _FILTERS or \
            int(model.actuator_gaintype[actuator]) != int(mujoco.mjtGain.mjGAIN_FIXED) or \
            gain[0] == 0.0:
        return None
    bias_type = int(model.actuator_biastype[actuator])
    if bias_type == int(mujoco.mjtBias.mjBIAS_NONE):
        return 'effort'
    if bias_type != int(mujoco.mjtBias.mjBIAS_AFFINE) or bias[0] != 0.0:
        return None
    if bias[1] == -gain[0] and bias[2] <= 0.0:
        return 'position'
    if bias[1] == 0.0 and bias[2] == -gain[0]:
        return 'velocity'
    return None


def command_interface(model: mujoco.MjModel, actuator_names: tuple[str, ...]) -> str:
    """
    Return the one command interface all of a model's actuators take.

    A model without actuators takes (empty) efforts, as before there were interfaces.

    :param actuator_names: the actuators' names, in order, for the error message.
    :raises ValueError: an actuator fits no interface, or the actuators' interfaces differ
        (one command topic carries one value per actuator, all of one kind).
    """
    kinds: dict[str | None, list[str]] = {}
    for actuator, name in enumerate(actuator_names):
        kinds.setdefault(actuator_interface(model, actuator), []).append(name)
    if None in kinds:
        raise ValueError(f'actuators {kinds[None]} are neither motors nor position or '
                         'velocity servos, so no command interface fits them (only motor, '
                         'position and velocity actuators can be commanded)')
    if len(kinds) > 1:
        described = '; '.join(f'{kind}: {names}' for kind, names in kinds.items())
        raise ValueError(f'the model mixes command interfaces ({described}); mujoco_sim '
                         'takes one per model, on one topic')
    return next(iter(kinds), 'effort')


def _check_seed(seed: int | None) -> int | None:
    if seed is None:
        return None
    try:
        seed = operator.index(seed)
    except TypeError:
        raise ValueError(f'seed must be an int, got {seed!r}') from None
    # Gymnasium rejects negative seeds; say so here rather than with its error type.
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    return seed


class Simulation:
    """
    A MuJoCo model stepped one control period per command.

    Not thread-safe: a node that steps and resets from different callbacks must serialise
    the calls.

    :param model: a Gymnasium MuJoCo env id (``'Hopper-v5'``) or a path to an MJCF file.
    :param seed: seeds the reset distribution; ``Simulation(env_id, seed=s)`` starts in the
        same state as ``gymnasium.make(env_id).reset(seed=s)``, and each :meth:`reset`
        after it matches the env's next ``reset()``.
    :param frame_skip: physics steps per control period; default the env's own, or 1 for an
        MJCF file. Changing it for an env id changes the control period.
    :param timestep: the physics timestep in seconds; default the model's own. The control
        period is ``timestep * frame_skip``.
    :param imu_site: the site whose sensors make the IMU (see ``sensors``); ``None`` or
        ``''`` for the first site carrying ``framequat``, ``gyro`` and ``accelerometer``.
    :param reset_noise: MJCF models: every reset adds uniform noise of this scale to the
        joint positions (rad or m) and velocities and tilts a free root by up to this angle
        (rad), seeded as Gymnasium's ``reset_noise_scale``; 0 starts every episode alike.
        Gymnasium models keep their own reset distribution.
    :param randomize: a randomization profile, its name or its file
        (:mod:`ddpg_ros.sim.randomization`); seeded with ``seed`` and reseeded by
        ``reset(seed)``, as :class:`ddpg_ros.sim.envs.RandomizedEnv` is.
    :raises ValueError: unknown env id, missing or invalid MJCF file, bad seed or frame_skip,
        an ``imu_site`` that is not in the model or lacks one of the three sensors, a bad
        randomization profile.
    """

    def __init__(
        self, model: str, seed: int | None = None, frame_skip: int | None = None,
        imu_site: str | None = None, timestep: float | None = None,
        randomize: str | Profile | None = None, reset_noise: float = 0.0,
    ) -> None:
        if frame_skip is not None and (isinstance(frame_skip, bool)
                                       or not isinstance(frame_skip, int) or frame_skip < 1):
            raise ValueError(f'frame_skip must be a positive int, got {frame_skip!r}')
        seed = _check_seed(seed)
        profile = randomize if isinstance(randomize, Profile) else load_profile(randomize)
        if not (np.isfinite(reset_noise) and reset_noise >= 0.0):
            raise ValueError(f'reset_noise must be >= 0, got {reset_noise!r}')
        self.reset_noise = float(reset_noise)
        self._reset_rng = np.random.default_rng(seed)
        if not isinstance(model, str) or not model:
            raise ValueError(f'model must be a Gymnasium env id or an MJCF path, got {model!r}')
        self._env: Any = None
        self._renderer: Any = None
        if _is_mjcf_path(model):
            self.model = _load_mjcf(model)
            self.data = mujoco.MjData(self.model)
            self.frame_skip = 1 if frame_skip is None else frame_skip
            self.env_id: str | None = None
        else:
            self._env = _make_gymnasium_env(model, frame_skip)
            self.model = self._env.model
            self.data = self._env.data
            self.frame_skip = int(self._env.frame_skip)
            self.env_id = model

        m = self.model
        if timestep:
            if not timestep > 0.0:
                self.close()
                raise ValueError(f'timestep must be > 0 s, got {timestep!r}')
            m.opt.timestep = float(timestep)
        one_dof = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        joints = [j for j in range(m.njnt) if int(m.jnt_type[j]) in one_dof]
        self.joint_names: tuple[str, ...] = tuple(
            mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) or f'joint_{j}' for j in joints)
        self._qpos_index = np.array([m.jnt_qposadr[j] for j in joints], dtype=np.intp)
        self._dof_index = np.array([m.jnt_dofadr[j] for j in joints], dtype=np.intp)
        self.actuator_names: tuple[str, ...] = self._name_actuators()

        limited = m.actuator_ctrllimited.astype(bool)
        self.control_low = np.where(limited, m.actuator_ctrlrange[:, 0], -np.inf)
        self.control_high = np.where(limited, m.actuator_ctrlrange[:, 1], np.inf)
        # MuJoCo clamps ctrl to ctrlrange inside mj_step unless the model disables it, and
        # Gymnasium relies on that (it passes actions through unclipped). Clipping here,
        # with the same rule, gives Gymnasium's physics and leaves data.ctrl showing what
        # was applied.
        self._clamp = not (m.opt.disableflags & int(mujoco.mjtDisableBit.mjDSBL_CLAMPCTRL))
        self.control_dt: float = m.opt.timestep * self.frame_skip
        try:
            # What the model publishes besides joint states: odom, imu, ...
            self.sensors = SimSensors(m, imu_site or None)
        except ValueError as exc:
            self.close()
            raise ValueError(f'imu_site {imu_site!r}: {exc}') from None
        site = self.sensors.imu_site_id
        self.imu_frame: str = '' if site is None else (
            mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_SITE, site) or f'site_{site}')
        """The IMU's frame (its site's name); '' without an IMU."""
        self._command = np.zeros(m.nu)
        self.randomizer: Randomizer | None = (
            Randomizer(profile, m, self.data, self.frame_skip, seed) if profile.active else None)
        """What perturbs commands, dynamics and measurements; ``None`` when nothing does."""
        self.reset(seed)

    def _name_actuators(self) -> tuple[str, ...]:
        m = self.model
        names: list[str] = []
        for a in range(m.nu):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
            # Unnamed motors (Hopper's) take their joint's name, the name a ros2_control
            # effort controller would use for them.
            if not name and int(m.actuator_trntype[a]) == int(mujoco.mjtTrn.mjTRN_JOINT):
                name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, m.actuator_trnid[a, 0])
            if not name or name in names:
                name = f'actuator_{a}'
            names.append(name)
        return tuple(names)

    @property
    def camera_defaults(self) -> dict[str, Any]:
        """Return the Gymnasium env's ``default_camera_config``; {} for an MJCF model."""
        renderer = getattr(self._env, 'mujoco_renderer', None)
        return dict(getattr(renderer, 'default_cam_config', None) or {})

    @property
    def time(self) -> float:
        """Return the simulated time in seconds since the last reset."""
        return float(self.data.time)

    def reset(self, seed: int | None = None) -> None:
        """
        Start a new episode from the reset distribution.

        :param seed: reseeds the distribution first, as Gymnasium's ``reset(seed=...)``
            does; ``None`` continues the current random stream. MJCF models reset to their
            keyframe, with ``reset_noise`` drawn from this stream.
        """
        seed = _check_seed(seed)
        if self._env is not None:
            # The env's own reset: it seeds np_random exactly as reset(seed=...) does, then
            # runs mj_resetData and its reset_model on the very MjData we step.
            self._env.reset(seed=seed)
        else:
            if self.model.nkey > 0:
                mujoco.mj_resetDataKeyframe(self.model, self.data, 0)
            else:
                mujoco.mj_resetData(self.model, self.data)
            if seed is not None:
                self._reset_rng = np.random.default_rng(seed)
            if self.reset_noise:
                self._add_reset_noise()
            mujoco.mj_forward(self.model, self.data)
        self._command = np.zeros(self.model.nu)
        if self.randomizer is not None:
            if seed is not None:
                self.randomizer.seed(seed)
            self.randomizer.reset()

    def _add_reset_noise(self) -> None:
        m, d, rng, scale = self.model, self.data, self._reset_rng, self.reset_noise
        d.qpos[self._qpos_index] += rng.uniform(-scale, scale, size=self._qpos_index.size)
        d.qvel[:] += rng.uniform(-scale, scale, size=m.nv)
        for joint in range(m.njnt):
            if int(m.jnt_type[joint]) != int(mujoco.mjtJoint.mjJNT_FREE):
                continue
            # A tilt about a random horizontal axis, composed with the keyframe's attitude.
            quat = d.qpos[m.jnt_qposadr[joint] + 3:m.jnt_qposadr[joint] + 7]
            axis = np.append(rng.normal(size=2), 0.0)
            tilt = np.zeros(4)
            mujoco.mju_axisAngle2Quat(tilt, axis / np.linalg.norm(axis),
                                      rng.uniform(-scale, scale))
            mujoco.mju_mulQuat(quat, tilt, quat.copy())

    def step(self, command: np.ndarray, physics_steps: int | None = None) -> None:
        """
        Apply one command per actuator and advance one control period.

        :param command: shape ``(len(actuator_names),)``, in actuator order; values outside
            ``[control_low, control_high]`` are clipped, as MuJoCo does for Gymnasium.
        :param physics_steps: advance this many MuJoCo timesteps instead of ``frame_skip``
            (a real-time simulation that publishes states faster than it is commanded).
        :raises ValueError: wrong length or a non-finite value; the state is left unchanged.
        """
        self.send(command)
        self.advance(physics_steps)

    def send(self, command: np.ndarray) -> None:
        """
        Take a command now; it applies from the next physics step (later when randomized).

        :raises ValueError: as :meth:`step`.
        """
        command = np.asarray(command, dtype=np.float64)
        if command.shape != (self.model.nu,):
            raise ValueError(f'command has shape {command.shape}, expected ({self.model.nu},): '
                             f'one value per actuator {list(self.actuator_names)}')
        if not np.isfinite(command).all():
            raise ValueError(f'command must be finite, got {command.tolist()}')
        if self._clamp:
            command = np.clip(command, self.control_low, self.control_high)
        if self.randomizer is not None:
            self.randomizer.send(command)
        self._command = command

    def advance(self, physics_steps: int | None = None) -> None:
        """Advance ``physics_steps`` timesteps (default ``frame_skip``) under the commands sent."""
        steps = physics_steps or self.frame_skip
        if self.randomizer is not None:
            self.randomizer.advance(steps)
            return
        self.data.ctrl[:] = self._command
        mujoco.mj_step(self.model, self.data, nstep=steps)
        # Gymnasium calls this after every step so that cacc, cfrc_int and cfrc_ext are
        # current; do the same so that any data read afterwards matches.
        mujoco.mj_rnePostConstraint(self.model, self.data)

    def measured_joints(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the joints' positions and velocities as a sensor reads them (with noise)."""
        positions, velocities = self.joint_positions(), self.joint_velocities()
        if self.randomizer is not None:
            position_noise, velocity_noise = self.randomizer.joint_noise()
            positions, velocities = positions + position_noise, velocities + velocity_noise
        return positions, velocities

    def measured_samples(self, stamp: float | None = None) -> dict[str, Any]:
        """Return ``sensors.samples`` as the sensors read them (with noise)."""
        samples = self.sensors.samples(self.data, stamp)
        return samples if self.randomizer is None else self.randomizer.noisy_samples(samples)

    def joint_positions(self) -> np.ndarray:
        """Return the positions of ``joint_names`` (rad or m), a new float64 array."""
        return self.data.qpos[self._qpos_index]

    def joint_velocities(self) -> np.ndarray:
        """Return the velocities of ``joint_names`` (rad/s or m/s), a new float64 array."""
        return self.data.qvel[self._dof_index]

    def joint_efforts(self) -> np.ndarray:
        """Return the actuator forces at ``joint_names`` (``qfrc_actuator``), new float64."""
        return self.data.qfrc_actuator[self._dof_index]

    def render(self, width: int = 480, height: int = 480, camera: int | str = -1) -> np.ndarray:
        """
        Return an RGB image of the current state; needs OpenGL (e.g. ``MUJOCO_GL=egl``).

        :param width: image width in pixels (at most the model's offscreen width).
        :param height: image height in pixels (at most the model's offscreen height).
        :param camera: camera id or name; -1 is the free camera.
        :return: uint8 array of shape ``(height, width, 3)``.
        """
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (
                width, height):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(self.model, height=height, width=width)
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render()

    def close(self) -> None:
        """Release the renderer and the Gymnasium env, if any."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._env is not None:
            self._env.close()
