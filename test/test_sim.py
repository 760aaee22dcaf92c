"""Simulation: Gymnasium's physics and resets for env ids, plain MuJoCo for MJCF files."""

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from ddpg_ros.sim.simulation import Simulation, command_interface

# A free body (skipped: not 1-DoF) comes first, so joint arrays must be gathered by address,
# not by position in qpos. One joint and one motor are unnamed; one motor has no ctrlrange.
TINY_MJCF = '''
<mujoco>
  <option timestep="0.005" gravity="0 0 0"/>
  <worldbody>
    <body name="ball" pos="0 0 1">
      <freejoint/>
      <geom type="sphere" size="0.1"/>
    </body>
    <body name="cart">
      <joint name="rail" type="slide" axis="1 0 0"/>
      <geom type="box" size="0.1 0.1 0.1" mass="1"/>
      <body name="arm">
        <joint name="swing" type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.5" size="0.02" mass="0.1"/>
        <body name="tip" pos="0 0 0.5">
          <joint type="hinge" axis="0 1 0"/>
          <geom type="sphere" size="0.05" mass="0.1"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="push" joint="rail" gear="2" ctrlrange="-1 1"/>
    <motor joint="swing"/>
  </actuator>
  KEYFRAME
</mujoco>
'''


def write_model(tmp_path, keyframe: str = '') -> str:
    path = tmp_path / 'tiny.xml'
    path.write_text(TINY_MJCF.replace('KEYFRAME', keyframe))
    return str(path)


@pytest.fixture
def tiny(tmp_path) -> str:
    return write_model(tmp_path)


def test_env_id_exposes_gymnasium_spec() -> None:
    sim = Simulation('InvertedPendulum-v5', seed=1)
    assert sim.joint_names == ('slider', 'hinge')
    assert sim.actuator_names == ('slide',)
    np.testing.assert_array_equal(sim.control_low, [-3.0])
    np.testing.assert_array_equal(sim.control_high, [3.0])
    assert sim.control_dt == 0.04 and sim.frame_skip == 2 and sim.env_id == 'InvertedPendulum-v5'
    assert sim.time == 0.0
    sim.step(np.zeros(1))
    sim.step(np.zeros(1))
    assert sim.time == pytest.approx(0.08)
    sim.reset()
    assert sim.time == 0.0


def test_unnamed_motors_take_their_joint_names() -> None:
    assert Simulation('Hopper-v5', seed=0).actuator_names == (
        'thigh_joint', 'leg_joint', 'foot_joint')


@pytest.mark.parametrize('env_id', ['InvertedPendulum-v5', 'HalfCheetah-v5', 'Hopper-v5',
                                    'Walker2d-v5'])
def test_seeded_resets_match_gymnasium(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    sim = Simulation(env_id, seed=42)
    env.reset(seed=42)
    for _ in range(3):
        np.testing.assert_array_equal(sim.joint_positions(), env.data.qpos)
        np.testing.assert_array_equal(sim.joint_velocities(), env.data.qvel)
        env.reset()
        sim.reset()
    sim.reset(seed=5)
    env.reset(seed=5)
    np.testing.assert_array_equal(sim.joint_positions(), env.data.qpos)
    env.close()


def test_resets_are_deterministic_per_seed() -> None:
    def reset_states(seed: int) -> list[np.ndarray]:
        sim = Simulation('HalfCheetah-v5', seed=seed)
        states = []
        for _ in range(3):
            states.append(np.concatenate([sim.joint_positions(), sim.joint_velocities()]))
            sim.reset()
        return states

    first, again, other = reset_states(11), reset_states(11), reset_states(12)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    assert not np.array_equal(first[0], first[1]), 'each reset draws a new state'


def test_out_of_range_commands_are_clipped_as_gymnasium_physics_does() -> None:
    env = gym.make('HalfCheetah-v5').unwrapped
    env.reset(seed=0)
    sim = Simulation('HalfCheetah-v5', seed=0)
    command = np.array([3.0, -7.0, 0.5, 1.5, -1.0, 100.0])
    for _ in range(20):
        env.step(command)
        sim.step(command)
    np.testing.assert_array_equal(sim.joint_positions(), env.data.qpos)
    np.testing.assert_array_equal(sim.joint_velocities(), env.data.qvel)
    np.testing.assert_array_equal(sim.data.ctrl, np.clip(command, -1.0, 1.0))
    env.close()


@pytest.mark.parametrize(('command', 'message'), [
    (np.zeros(2), r'shape \(2,\), expected \(1,\)'),
    (np.zeros((1, 1)), r'shape \(1, 1\), expected \(1,\)'),
    ([], r'shape \(0,\)'),
    (np.array([np.nan]), 'finite'),
    (np.array([np.inf]), 'finite'),
])
def test_bad_commands_are_refused_without_stepping(command, message: str) -> None:
    sim = Simulation('InvertedPendulum-v5', seed=0)
    before = sim.joint_positions()
    with pytest.raises(ValueError, match=message):
        sim.step(command)
    np.testing.assert_array_equal(sim.joint_positions(), before)
    assert sim.time == 0.0


@pytest.mark.parametrize(('model', 'message'), [
    ('NoSuchRobot-v5', "unknown model 'NoSuchRobot-v5'"),
    ('CartPole-v1', 'not a MuJoCo one'),
    ('/no/such/dir/arm.xml', 'MJCF file not found: /no/such/dir/arm.xml'),
    ('', 'model must be'),
])
def test_bad_models_are_refused_in_one_line(model: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        Simulation(model)
    assert '\n' not in str(info.value)


def test_invalid_mjcf_is_refused_in_one_line(tmp_path) -> None:
    path = tmp_path / 'broken.xml'
    path.write_text('<mujoco><worldbody><wheel/></worldbody></mujoco>')
    with pytest.raises(ValueError, match='cannot load MJCF file .*broken.xml: XML Error') as info:
        Simulation(str(path))
    assert '\n' not in str(info.value)


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'seed': -1}, 'seed must be >= 0'),
    ({'seed': 1.5}, 'seed must be an int'),
    ({'frame_skip': 0}, 'frame_skip must be a positive int'),
    ({'frame_skip': 2.0}, 'frame_skip must be a positive int'),
])
def test_bad_seed_or_frame_skip_is_refused(tiny: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Simulation(tiny, **kwargs)


def test_mjcf_lists_one_dof_joints_and_reads_them_by_address(tiny: str) -> None:
    sim = Simulation(tiny, frame_skip=3)
    assert sim.joint_names == ('rail', 'swing', 'joint_3')
    assert sim.actuator_names == ('push', 'swing')
    assert sim.control_dt == pytest.approx(0.015) and sim.env_id is None
    np.testing.assert_array_equal(sim.control_low, [-1.0, -np.inf])
    np.testing.assert_array_equal(sim.control_high, [1.0, np.inf])
    np.testing.assert_array_equal(sim.joint_positions(), [0.0, 0.0, 0.0])
    sim.step(np.array([5.0, 0.0]))
    assert sim.time == pytest.approx(0.015)
    # Clipped to 1, times gear 2: the effort at the rail; the swing's motor is unlimited.
    np.testing.assert_array_equal(sim.joint_efforts(), [2.0, 0.0, 0.0])
    assert sim.joint_positions()[0] > 0 and sim.joint_velocities()[0] > 0
    np.testing.assert_array_equal(sim.data.qpos[:7], sim.model.qpos0[:7])
    sim.step(np.array([0.0, 50.0]))
    np.testing.assert_array_equal(sim.joint_efforts(), [0.0, 50.0, 0.0])


def test_commands_are_not_clipped_where_the_model_disables_clamping(tmp_path) -> None:
    path = tmp_path / 'unclamped.xml'
    path.write_text(TINY_MJCF.replace('KEYFRAME', '').replace(
        '<option timestep="0.005" gravity="0 0 0"/>',
        '<option timestep="0.005" gravity="0 0 0"><flag clampctrl="disable"/></option>'))
    sim = Simulation(str(path))
    sim.step(np.array([5.0, 0.0]))
    np.testing.assert_array_equal(sim.joint_efforts(), [10.0, 0.0, 0.0])


def test_mjcf_resets_to_keyframe_zero(tmp_path) -> None:
    keyframe = '<keyframe><key qpos="0 0 1 1 0 0 0 0.25 -0.5 0.125"/></keyframe>'
    path = write_model(tmp_path, keyframe)
    sim = Simulation(path)
    np.testing.assert_array_equal(sim.joint_positions(), [0.25, -0.5, 0.125])
    sim.step(np.array([1.0, 0.0]))
    sim.reset()
    np.testing.assert_array_equal(sim.joint_positions(), [0.25, -0.5, 0.125])
    np.testing.assert_array_equal(sim.joint_velocities(), [0.0, 0.0, 0.0])
    assert sim.time == 0.0


def test_mjcf_without_keyframe_resets_to_qpos0(tiny: str) -> None:
    sim = Simulation(tiny, seed=3)
    for _ in range(5):
        sim.step(np.array([1.0, 1.0]))
    sim.reset()
    np.testing.assert_array_equal(sim.joint_positions(), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(sim.joint_velocities(), [0.0, 0.0, 0.0])


def test_render_returns_an_image(tiny: str) -> None:
    # A fresh process: the OpenGL backend is chosen when mujoco is first imported.
    code = ('import sys; from ddpg_ros.sim.simulation import Simulation; '
            'image = Simulation(sys.argv[1]).render(64, 48); print(image.shape, image.dtype)')
    result = subprocess.run([sys.executable, '-c', code, tiny], capture_output=True,
                            text=True, timeout=60, env={**os.environ, 'MUJOCO_GL': 'egl'},
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if result.returncode != 0:
        pytest.skip(f'no EGL rendering here: {result.stderr.strip().splitlines()[-1:]}')
    assert result.stdout.strip() == '(48, 64, 3) uint8'


def test_core_modules_import_without_ros() -> None:
    # None in sys.modules makes any import of these fail, as on a machine without ROS 2.
    code = ('import sys\n'
            "for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'rosgraph_msgs'):\n"
            '    sys.modules[name] = None\n'
            'import ddpg_ros.sim.simulation, ddpg_ros.sim.settings\n'
            'import ddpg_ros.tasks, ddpg_ros.tasks.examples\n'
            "ddpg_ros.tasks.make_task('ddpg_ros.tasks.examples:ReachTarget')\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr


def _actuated(actuators: str) -> str:
    return f'''
<mujoco>
  <worldbody>
    <body>
      <joint name="a" type="hinge" axis="0 1 0"/>
      <geom type="capsule" fromto="0 0 0 0 0 0.5" size="0.05" mass="1"/>
      <body pos="0 0 0.5">
        <joint name="b" type="slide" axis="1 0 0"/>
        <geom type="sphere" size="0.05" mass="0.5"/>
      </body>
    </body>
  </worldbody>
  <actuator>{actuators}</actuator>
</mujoco>
'''


@pytest.mark.parametrize(('actuators', 'interface'), [
    ('<motor joint="a" gear="3"/><motor joint="b"/>', 'effort'),
    ('<general joint="a" gainprm="2"/>', 'effort'),
    ('<position joint="a" kp="7"/><position joint="b" kp="4" kv="0.5"/>', 'position'),
    ('<position joint="a" kp="7" timeconst="0.05"/>', 'position'),
    ('<general joint="a" gainprm="3" biastype="affine" biasprm="0 -3 -0.1"/>', 'position'),
    ('<velocity joint="a" kv="2"/><velocity joint="b" kv="5"/>', 'velocity'),
    ('<general joint="b" gainprm="4" biastype="affine" biasprm="0 0 -4"/>', 'velocity'),
    ('', 'effort'),
])
def test_actuators_name_their_command_interface(tmp_path, actuators: str,
                                                interface: str) -> None:
    path = tmp_path / 'actuated.xml'
    path.write_text(_actuated(actuators))
    sim = Simulation(str(path))
    assert command_interface(sim.model, sim.actuator_names) == interface


@pytest.mark.parametrize(('actuators', 'message'), [
    ('<motor name="m" joint="a"/><position name="p" joint="b" kp="3"/>',
     r"the model mixes command interfaces \(effort: \['m'\]; position: \['p'\]\)"),
    ('<velocity name="v" joint="a" kv="1"/><position name="p" joint="b" kp="3"/>',
     r"\(velocity: \['v'\]; position: \['p'\]\); mujoco_sim takes one per model"),
    ('<intvelocity name="i" joint="a" kp="5" actrange="-1 1"/>',
     r"actuators \['i'\] are neither motors nor position or velocity servos"),
    ('<damper name="d" joint="a" kv="3" ctrlrange="0 1"/><motor joint="b"/>',
     r"actuators \['d'\] are neither"),
    ('<general name="g" joint="a" gainprm="2" biastype="affine" biasprm="0 -1 0"/>',
     r"actuators \['g'\] are neither"),
])
def test_actuators_without_one_interface_are_refused_in_one_line(
        tmp_path, actuators: str, message: str) -> None:
    path = tmp_path / 'actuated.xml'
    path.write_text(_actuated(actuators))
    sim = Simulation(str(path))
    with pytest.raises(ValueError, match=message) as info:
        command_interface(sim.model, sim.actuator_names)
    assert '\n' not in str(info.value)


def test_physics_steps_override_the_frame_skip_for_one_step() -> None:
    env = gym.make('HalfCheetah-v5').unwrapped
    env.reset(seed=4)
    sim = Simulation('HalfCheetah-v5', seed=4)
    command = np.linspace(-1.0, 1.0, 6)
    # Five single timesteps are one control period of Gymnasium's: the same physics.
    for _ in range(5):
        sim.step(command, physics_steps=1)
    assert sim.time == pytest.approx(0.05)
    env.step(command)
    np.testing.assert_array_equal(sim.data.qpos, env.data.qpos)
    np.testing.assert_array_equal(sim.data.qvel, env.data.qvel)
    sim.step(command, physics_steps=3)
    assert sim.time == pytest.approx(0.08)
    env.close()


IMU_MJCF = '''
<mujoco>
  <worldbody>
    <body name="base" pos="0 0 1">
      <freejoint/>
      <geom type="box" size="0.1 0.1 0.1" mass="1"/>
      <site name="marker"/>
      <site name="board" pos="0 0 0.05"/>
    </body>
  </worldbody>
  <sensor>
    <gyro site="marker"/>
    <framequat objtype="site" objname="board"/>
    <gyro site="board"/>
    <accelerometer site="board"/>
  </sensor>
</mujoco>
'''


def test_the_imu_is_the_first_complete_site_or_the_one_named(tmp_path) -> None:
    path = tmp_path / 'imu.xml'
    path.write_text(IMU_MJCF)
    sim = Simulation(str(path))
    assert sim.imu_frame == 'board'
    assert sim.sensors.topics == {'joint_states': 'joint_state', 'odom': 'odometry',
                                  'root_pose': 'pose', 'contact_forces': 'array',
                                  'imu': 'imu'}
    assert Simulation(str(path), imu_site='board').imu_frame == 'board'
    assert Simulation(str(path), imu_site='').imu_frame == 'board'
    assert Simulation('HalfCheetah-v5').imu_frame == ''


@pytest.mark.parametrize(('site', 'message'), [
    ('nowhere', "imu_site 'nowhere': the model has no site 'nowhere'"),
    ('marker', "imu_site 'marker': site 'marker' has no mjSENS_FRAMEQUAT sensor"),
])
def test_an_imu_site_that_cannot_be_read_is_refused_in_one_line(
        tmp_path, site: str, message: str) -> None:
    path = tmp_path / 'imu.xml'
    path.write_text(IMU_MJCF)
    with pytest.raises(ValueError, match=message) as info:
        Simulation(str(path), imu_site=site)
    assert '\n' not in str(info.value)


def test_a_bundled_model_is_found_by_its_package_path_from_any_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Parameter files name bundled models as ddpg_ros/models/<file>.xml; an installed
    # package has no such path below the user's working directory.
    monkeypatch.chdir(tmp_path)
    sim = Simulation('ddpg_ros/models/balancer.xml')
    try:
        assert sim.joint_names == ('left_wheel', 'right_wheel')
    finally:
        sim.close()
    with pytest.raises(ValueError, match='MJCF file not found: ddpg_ros/models/nope.xml'):
        Simulation('ddpg_ros/models/nope.xml')


def test_reset_noise_varies_an_mjcf_models_episodes_by_seed_within_its_scale() -> None:
    from ddpg_ros.tasks.balancer import MODEL_PATH

    def starts(seed, resets=3, noise=0.01):
        sim = Simulation(MODEL_PATH, seed=seed, reset_noise=noise)
        out = [sim.data.qpos.copy()]
        for _ in range(resets - 1):
            sim.reset()
            out.append(sim.data.qpos.copy())
        return sim, np.array(out)

    sim, first = starts(0)
    assert not np.allclose(first[0], first[1])  # episodes start apart
    np.testing.assert_array_equal(first, starts(0)[1])  # the same seed, the same starts
    assert not np.allclose(first, starts(1)[1])
    _, alike = starts(0, noise=0.0)
    np.testing.assert_array_equal(alike[0], alike[1])
    # Within the scale of the keyframe: joints by 0.01 rad, the root's attitude a unit
    # quaternion tilted by at most 0.01 rad.
    keyframe = alike[0]
    quat = slice(3, 7)
    for start in first:
        np.testing.assert_allclose(np.linalg.norm(start[quat]), 1.0)
        angle = 2 * np.arccos(min(1.0, abs(float(np.dot(start[quat], keyframe[quat])))))
        assert angle <= 0.01 + 1e-9
        assert np.all(np.abs(start[7:] - keyframe[7:]) <= 0.01 + 1e-12)
    with pytest.raises(ValueError, match='reset_noise must be >= 0'):
        Simulation(MODEL_PATH, reset_noise=-0.1)
