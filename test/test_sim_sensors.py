"""Simulated sensors: what a MuJoCo model publishes, checked on tiny models by hand."""

import math

import mujoco
import numpy as np
import pytest

from ddpg_ros.sim.sensors import (SimSensors, contact_forces, find_imu_site, free_root_joint,
                                  imu, joint_states, root_odometry, root_pose)
from ddpg_ros.tasks import RobotState, Source, Task

C45 = math.cos(math.pi / 4)
S45 = math.sin(math.pi / 4)

FREE_BOX = '''
<mujoco>
  <option gravity="0 0 0" integrator="Euler" timestep="0.01"/>
  <worldbody>
    <body name="box" pos="0 0 1">
      <freejoint/>
      <geom type="box" size="0.1 0.2 0.3" mass="1"/>
    </body>
  </worldbody>
</mujoco>
'''

# A body turning about world z on a hinge, with an IMU site turned +90 degrees about x: the
# site's y axis points along world z (up) and its z axis along world -y.
IMU_MODEL = '''
<mujoco>
  <compiler angle="radian"/>
  <worldbody>
    <body name="turntable">
      <joint name="spin" type="hinge" axis="0 0 1"/>
      <geom type="cylinder" size="0.2 0.02" mass="1"/>
      <site name="marker" pos="0.1 0 0"/>
      <site name="imu" euler="1.5707963267948966 0 0"/>
    </body>
  </worldbody>
  <sensor>
    <gyro site="marker"/>
    <framequat objtype="site" objname="imu"/>
    <gyro site="imu"/>
    <accelerometer site="imu"/>
  </sensor>
</mujoco>
'''

BOX_ON_FLOOR = '''
<mujoco>
  <option timestep="0.002"/>
  <worldbody>
    <geom type="plane" size="1 1 0.1"/>
    <body name="box" pos="0 0 0.1">
      <freejoint/>
      <geom type="box" size="0.1 0.1 0.1" mass="2"/>
    </body>
  </worldbody>
</mujoco>
'''

ARM = '''
<mujoco>
  <worldbody>
    <body>
      <joint name="shoulder" type="hinge" axis="0 0 1"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.02"/>
      <body pos="0.3 0 0">
        <joint type="slide" axis="1 0 0"/>
        <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.02"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder" gear="2"/>
  </actuator>
</mujoco>
'''


def load(xml: str) -> tuple[mujoco.MjModel, mujoco.MjData]:
    model = mujoco.MjModel.from_xml_string(xml)
    return model, mujoco.MjData(model)


def turned_box() -> tuple[mujoco.MjModel, mujoco.MjData]:
    """Return the free box at (1, 2, 3), turned +90 degrees about z, moving along world x."""
    model, data = load(FREE_BOX)
    data.qpos[:] = [1.0, 2.0, 3.0, C45, 0.0, 0.0, S45]
    data.qvel[:] = [1.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    mujoco.mj_forward(model, data)
    return model, data


def test_root_odometry_of_a_turned_box_moving_along_world_x() -> None:
    model, data = turned_box()
    odom = root_odometry(model, data, stamp=4.5)
    np.testing.assert_array_equal(odom.position, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(odom.orientation, [0.0, 0.0, S45, C45], atol=1e-15)
    # The box faces world +y, so moving along world +x is moving to its right: body -y.
    np.testing.assert_allclose(odom.linear_velocity, [0.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(odom.angular_velocity, [0.0, 0.0, 0.5])
    assert (odom.frame_id, odom.child_frame_id, odom.stamp) == ('odom', 'box', 4.5)


def test_root_odometry_twist_is_mujocos_body_frame_velocity() -> None:
    model, data = load(FREE_BOX)
    rng = np.random.default_rng(3)
    for _ in range(5):
        quaternion = rng.normal(size=4)
        data.qpos[:] = [*rng.normal(size=3), *(quaternion / np.linalg.norm(quaternion))]
        data.qvel[:] = rng.normal(size=6)
        mujoco.mj_forward(model, data)
        odom = root_odometry(model, data, 0.0)
        velocity = np.zeros(6)  # [angular, linear], in the body frame at its origin
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_XBODY, 1, velocity, 1)
        np.testing.assert_allclose(odom.angular_velocity, velocity[:3], atol=1e-12)
        np.testing.assert_allclose(odom.linear_velocity, velocity[3:], atol=1e-12)


def test_free_joint_linear_velocity_is_in_the_world_frame() -> None:
    # What root_odometry relies on: one step moves the position by dt * qvel[0:3], unrotated.
    model, data = turned_box()
    mujoco.mj_step(model, data)
    np.testing.assert_allclose(data.qpos[:3], [1.01, 2.0, 3.0], atol=1e-15)


def test_root_odometry_normalises_a_quaternion_written_from_outside() -> None:
    model, data = turned_box()
    data.qpos[3:7] *= 1.1  # as Gymnasium's Ant reset noise leaves it
    odom = root_odometry(model, data, 0.0)
    np.testing.assert_allclose(odom.orientation, [0.0, 0.0, S45, C45], atol=1e-15)
    np.testing.assert_allclose(odom.linear_velocity, [0.0, -1.0, 0.0], atol=1e-12)


def test_root_pose_is_the_kinematics_of_the_last_forward_pass() -> None:
    model, data = turned_box()
    before = data.qpos[:3].copy()
    pose = root_pose(model, data, 1.0)
    np.testing.assert_array_equal(pose.position, before)
    assert pose.frame_id == 'odom'
    mujoco.mj_step(model, data)
    # mj_step computes kinematics before it integrates: the pose trails qpos by one step.
    np.testing.assert_array_equal(root_pose(model, data, 1.0).position, before)
    assert data.qpos[0] != before[0]


def test_models_without_a_free_root_have_no_odometry() -> None:
    model, data = load(ARM)
    assert free_root_joint(model) is None
    assert root_odometry(model, data, 0.0) is None
    assert root_pose(model, data, 0.0) is None
    assert SimSensors(model).topics == {'joint_states': 'joint_state'}


def test_joint_states_reports_every_one_dof_joint_with_its_actuator_force() -> None:
    model, data = load(ARM)
    data.qpos[:] = [0.3, 0.05]
    data.qvel[:] = [1.5, -0.2]
    data.ctrl[:] = [0.25]
    mujoco.mj_forward(model, data)
    names, position, velocity, effort = joint_states(model, data)
    assert names == ('shoulder', 'joint_1')
    np.testing.assert_array_equal(position, [0.3, 0.05])
    np.testing.assert_array_equal(velocity, [1.5, -0.2])
    np.testing.assert_allclose(effort, [0.5, 0.0])  # gear 2 times ctrl 0.25


def test_imu_reads_the_site_sensors_in_ros_order() -> None:
    model, data = load(IMU_MODEL)
    data.qvel[:] = [2.0]
    mujoco.mj_forward(model, data)
    site = find_imu_site(model)
    assert site == mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, 'imu')
    sample = imu(model, data, 'imu', stamp=0.25)
    np.testing.assert_allclose(sample.orientation, [S45, 0.0, 0.0, C45], atol=1e-8)
    # Spinning about world z at 2 rad/s: about the site's y axis.
    np.testing.assert_allclose(sample.angular_velocity, [0.0, 2.0, 0.0], atol=1e-8)
    # At the axis, no centripetal term: gravity's reaction, up, which is the site's +y.
    np.testing.assert_allclose(sample.linear_acceleration, [0.0, 9.81, 0.0], atol=1e-8)
    assert sample.stamp == 0.25
    assert SimSensors(model).topics == {'joint_states': 'joint_state', 'imu': 'imu'}


def test_imu_refuses_a_site_without_the_three_sensors() -> None:
    model, data = load(IMU_MODEL)
    mujoco.mj_forward(model, data)
    with pytest.raises(ValueError, match="site 'marker' has no mjSENS_FRAMEQUAT sensor"):
        imu(model, data, 'marker', 0.0)
    with pytest.raises(ValueError, match="no site 'nowhere'"):
        imu(model, data, 'nowhere', 0.0)
    with pytest.raises(ValueError, match='site id 7'):
        SimSensors(model, imu_site=7)
    with pytest.raises(ValueError, match="'marker' has no"):
        SimSensors(model, imu_site='marker')
    assert find_imu_site(load(ARM)[0]) is None


def test_contact_forces_of_a_resting_box_carry_its_weight() -> None:
    model, data = load(BOX_ON_FLOOR)
    for _ in range(500):
        mujoco.mj_step(model, data)
    mujoco.mj_rnePostConstraint(model, data)  # as Gymnasium and Simulation do after a step
    sample = contact_forces(model, data, stamp=1.0)
    assert sample.values.shape == (6 * (model.nbody - 1),) == (6,)
    torque, force = sample.values[:3], sample.values[3:]
    np.testing.assert_allclose(force, [0.0, 0.0, 2.0 * 9.81], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(torque, 0.0, atol=1e-6)


def test_contact_forces_are_zero_after_a_reset() -> None:
    model, data = load(BOX_ON_FLOOR)
    mujoco.mj_resetData(model, data)
    mujoco.mj_forward(model, data)
    np.testing.assert_array_equal(contact_forces(model, data, 0.0).values, np.zeros(6))


class _ReadsOdometry(Task):
    name = 'reads_odometry'
    joint_names = ()
    observation_names = ('x',)
    action_names = ('a',)
    action_low = np.array([-1.0])
    action_high = np.array([1.0])
    control_dt = 0.01
    max_episode_steps = 10
    sources = (Source('joint_states', 'joint_state'), Source('odom', 'odometry'),
               Source('contact_forces', 'array', length=6))

    def observation(self, state: RobotState) -> np.ndarray:
        return state.sources['odom'].position[:1]

    def reward(self, previous: RobotState, action: np.ndarray, state: RobotState) -> float:
        return 0.0


def test_robot_state_hands_the_task_its_sources_by_name() -> None:
    model, data = turned_box()
    sensors = SimSensors(model)
    assert sensors.topics == {'joint_states': 'joint_state', 'odom': 'odometry',
                              'root_pose': 'pose', 'contact_forces': 'array'}
    state = sensors.robot_state(_ReadsOdometry(), data, stamp=2.0)
    assert set(state.sources) == {'odom', 'contact_forces'}
    assert all(sample.stamp == 2.0 for sample in state.sources.values())
    assert _ReadsOdometry().observation(state) == [1.0]


def test_robot_state_refuses_what_the_model_does_not_publish() -> None:
    with pytest.raises(ValueError, match="reads odometry source 'odom', which this model"):
        SimSensors(load(ARM)[0]).robot_state(_ReadsOdometry(), load(ARM)[1])

    class WrongLength(_ReadsOdometry):
        sources = (Source('odom', 'odometry'), Source('contact_forces', 'array', length=5))

    model, data = turned_box()
    with pytest.raises(ValueError, match="expects 5 values on 'contact_forces'; this model "
                                         'publishes 6'):
        SimSensors(model).robot_state(WrongLength(), data)
