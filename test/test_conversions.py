"""conversions: JointState -> RobotState by joint name, refusing every untrustworthy message."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from ddpg_ros.ros.conversions import joint_state_to_robot_state, rgb_image, \
    to_float64_multi_array

pytestmark = [pytest.mark.ros, pytest.mark.distro]

JOINTS = ('slider', 'hinge')


def joint_state(names, position, velocity, effort=(), sec=3, nanosec=250_000_000
                ) -> JointState:
    msg = JointState(name=list(names), position=[float(v) for v in position],
                     velocity=[float(v) for v in velocity], effort=[float(v) for v in effort])
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = nanosec
    return msg


def test_joints_are_picked_by_name_in_any_order() -> None:
    # Shuffled, with a joint the task does not read in between.
    msg = joint_state(['hinge', 'wheel', 'slider'], [0.1, 9.0, -0.5], [1.5, 8.0, -2.5],
                      [0.01, 7.0, -0.02])
    state = joint_state_to_robot_state(msg, JOINTS)
    np.testing.assert_array_equal(state.position, [-0.5, 0.1])
    np.testing.assert_array_equal(state.velocity, [-2.5, 1.5])
    np.testing.assert_array_equal(state.effort, [-0.02, 0.01])
    assert state.position.dtype == np.float64
    assert state.stamp == 3.25


def test_every_permutation_gives_the_same_state() -> None:
    rng = np.random.default_rng(0)
    names = ['a', 'b', 'c', 'd']
    position, velocity, effort = rng.normal(size=(3, 4))
    wanted = ('d', 'b', 'a')
    reference = joint_state_to_robot_state(
        joint_state(names, position, velocity, effort), wanted)
    for _ in range(10):
        order = rng.permutation(4)
        msg = joint_state([names[i] for i in order], position[order], velocity[order],
                          effort[order])
        state = joint_state_to_robot_state(msg, wanted)
        np.testing.assert_array_equal(state.position, reference.position)
        np.testing.assert_array_equal(state.velocity, reference.velocity)
        np.testing.assert_array_equal(state.effort, reference.effort)


def test_state_does_not_alias_the_message() -> None:
    msg = joint_state(JOINTS, [1.0, 2.0], [3.0, 4.0], [5.0, 6.0])
    state = joint_state_to_robot_state(msg, JOINTS)
    msg.position[0] = 100.0
    assert state.position[0] == 1.0


def test_missing_effort_is_allowed_and_marked_unknown() -> None:
    state = joint_state_to_robot_state(joint_state(JOINTS, [1.0, 2.0], [3.0, 4.0]), JOINTS)
    np.testing.assert_array_equal(state.position, [1.0, 2.0])
    assert np.isnan(state.effort).all()


@pytest.mark.parametrize('msg, message', [
    (joint_state(['slider'], [0.0], [0.0], [0.0]), "lacks joints ['hinge']"),
    (joint_state([], [], [], []), "lacks joints ['slider', 'hinge']"),
    (joint_state(['slider', 'hinge', 'slider'], [0, 0, 0], [0, 0, 0], [0, 0, 0]),
     "more than once: ['slider']"),
    (joint_state(JOINTS, [0.0], [0.0, 0.0], [0.0, 0.0]), '2 names but 1 position values'),
    (joint_state(JOINTS, [0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0]),
     '2 names but 3 velocity values'),
    (joint_state(JOINTS, [0.0, 0.0], [], []), '2 names but 0 velocity values'),
    (joint_state(JOINTS, [0.0, 0.0], [0.0, 0.0], [0.0]), '2 names but 1 effort values'),
    (joint_state(JOINTS, [0.0, math.nan], [0.0, 0.0], [0.0, 0.0]),
     "non-finite position for joints ['hinge']: [nan]"),
    (joint_state(JOINTS, [0.0, 0.0], [math.inf, -math.inf], [0.0, 0.0]),
     "non-finite velocity for joints ['slider', 'hinge']: [inf, -inf]"),
    (joint_state(JOINTS, [0.0, 0.0], [0.0, 0.0], [math.nan, 0.0]),
     "non-finite effort for joints ['slider']"),
], ids=['missing', 'empty', 'duplicate', 'short position', 'long velocity', 'no velocity',
        'short effort', 'nan position', 'inf velocity', 'nan effort'])
def test_bad_messages_raise_a_value_error_naming_the_problem(msg: JointState,
                                                             message: str) -> None:
    with pytest.raises(ValueError) as info:
        joint_state_to_robot_state(msg, JOINTS)
    assert message in str(info.value)


def test_non_finite_values_of_unread_joints_do_not_matter() -> None:
    msg = joint_state(['slider', 'broken', 'hinge'], [0.0, math.nan, 0.1], [0.0, math.inf, 0.2],
                      [0.0, math.nan, 0.3])
    state = joint_state_to_robot_state(msg, JOINTS)
    np.testing.assert_array_equal(state.position, [0.0, 0.1])


def test_huge_finite_values_pass_conversion() -> None:
    # Range checks belong to the consumer (the agent refuses what float32 cannot hold).
    msg = joint_state(JOINTS, [1e308, -1e308], [0.0, 0.0], [0.0, 0.0])
    state = joint_state_to_robot_state(msg, JOINTS)
    assert state.position[0] == 1e308


def test_array_to_float64_multi_array() -> None:
    msg = to_float64_multi_array(np.array([0.5, -1.25, 3.0], dtype=np.float32))
    assert isinstance(msg, Float64MultiArray)
    assert list(msg.data) == [0.5, -1.25, 3.0]
    assert list(msg.layout.dim) == []
    assert list(to_float64_multi_array([1, 2]).data) == [1.0, 2.0]
    assert list(to_float64_multi_array(np.zeros(0)).data) == []


def test_picture_to_rgb8_image() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    frame[0, 0] = (1, 2, 3)
    msg = rgb_image(frame, 3_250_000_000, 'track')
    assert isinstance(msg, Image)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (4, 5, 15, 'rgb8')
    assert msg.is_bigendian == 0
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 250_000_000)
    assert msg.header.frame_id == 'track'
    # Row by row, top row first, each pixel r, g, b: the frame's own C order.
    assert bytes(msg.data) == frame.tobytes()
    frame[0, 0] = 0  # the message holds a copy, not a view of a buffer reused later
    assert list(msg.data[:3]) == [1, 2, 3]


def test_a_flipped_view_is_sent_in_its_visible_order() -> None:
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = rgb_image(np.flipud(frame), 0, '')
    assert bytes(msg.data) == np.flipud(frame).tobytes()
