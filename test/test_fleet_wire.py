"""
The fleet's messages as bytes: what the encoders write and what the decoders refuse.

Every refusal is a ``WireError`` (a ``ValueError``) of one line naming the bad value, and
nothing of a refused message is returned.
"""

from __future__ import annotations

import array
import json
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch

from ddpg_ros.sim.envs import spec_for_task
from ddpg_ros.fleet.wire import (FLOAT32, POLICY_FORMAT, TRANSITIONS_FORMAT, WireError,
                                 WireMessage, decode_policy, decode_policy_header,
                                 decode_transitions, encode_policy, encode_transitions,
                                 row_width)
from ddpg_ros.core.networks import Actor
from ddpg_ros.tasks import make_task

SPEC = spec_for_task(make_task('inverted_pendulum'))
WIDTH = row_width(SPEC.obs_dim, SPEC.action_dim)
HIDDEN = (8, 8)


def rows(count: int = 5, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).normal(size=(count, WIDTH)).astype(np.float32)
    values[:, -1] = 0.0
    values[-1, -1] = 1.0
    return values


def batch(values: np.ndarray | None = None, **header: object) -> WireMessage:
    fields = {'run_id': 'run-a', 'actor_id': '/robot_0/ddpg_agent', 'epoch': 7,
              'sequence': 3, 'policy_version': 2, 'spec': SPEC, 'episode_returns': [12.0]}
    fields.update(header)
    return encode_transitions(rows() if values is None else values, **fields)


def rewrite_header(message: WireMessage, **changes: object) -> WireMessage:
    """Return the same payload under a header with ``changes`` (``None`` removes a field)."""
    header = json.loads(message.data[:message.data_offset])
    for key, value in changes.items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 4)
    return WireMessage(text + message.data[message.data_offset:], len(text), message.dims)


def decode(message: WireMessage, **kwargs: object):
    kwargs.setdefault('spec', SPEC)
    kwargs.setdefault('run_id', 'run-a')
    return decode_transitions(message.data, message.data_offset, message.dims, **kwargs)


def actor(seed: int = 0) -> Actor:
    torch.manual_seed(seed)
    return Actor(SPEC.obs_dim, np.array(SPEC.action_low), np.array(SPEC.action_high), HIDDEN)


def policy(net: Actor | None = None, **header: object) -> WireMessage:
    fields = {'run_id': 'run-a', 'version': 4, 'spec': SPEC, 'hidden_sizes': HIDDEN,
              'warmup': False, 'hold': False, 'updates': 100, 'transitions': 1500,
              'backlog': 0, 'stamp': 1.5e9}
    fields.update(header)
    return encode_policy(net or actor(), **fields)


# Transitions


def test_a_batch_round_trips_bit_for_bit_with_its_header() -> None:
    values = rows(6)
    message = batch(values)
    assert message.data_offset % 4 == 0, 'the float32 payload starts aligned'
    assert message.dims == (('transitions', 6, 6 * WIDTH * 4), ('values', WIDTH, WIDTH * 4),
                            ('float32le', 4, 4))
    header = json.loads(message.data[:message.data_offset])
    assert header['format'] == TRANSITIONS_FORMAT and header['version'] == 1
    decoded = decode(message)
    assert (decoded.actor_id, decoded.epoch, decoded.sequence, decoded.policy_version,
            decoded.run_id, decoded.episode_returns, decoded.count) == (
        '/robot_0/ddpg_agent', 7, 3, 2, 'run-a', (12.0,), 6)
    obs, act = SPEC.obs_dim, SPEC.action_dim
    np.testing.assert_array_equal(decoded.obs, values[:, :obs])
    np.testing.assert_array_equal(decoded.actions, values[:, obs:obs + act])
    np.testing.assert_array_equal(decoded.rewards, values[:, obs + act])
    np.testing.assert_array_equal(decoded.next_obs, values[:, obs + act + 1:-1])
    np.testing.assert_array_equal(decoded.terminated, values[:, -1])


def test_a_batch_decodes_from_the_array_a_ros_message_holds() -> None:
    message = batch()
    # rclpy hands uint8[] fields over as array.array('B'); no list of ints on either side.
    data = array.array('B')
    data.frombytes(message.data)
    decoded = decode_transitions(data, message.data_offset, message.dims, spec=SPEC)
    np.testing.assert_array_equal(decoded.obs, rows()[:, :SPEC.obs_dim])


def test_the_layout_may_be_left_empty_by_a_sender() -> None:
    message = batch()
    assert decode_transitions(message.data, message.data_offset, ()).count == 5


@pytest.mark.parametrize('cut', [1, 4, WIDTH * 4])
def test_a_truncated_batch_is_refused(cut: int) -> None:
    message = batch()
    short = WireMessage(message.data[:-cut], message.data_offset, ())
    with pytest.raises(WireError, match=r'payload has \d+ bytes; 5 transitions of 11 float32 '
                                        r'values need 220') as error:
        decode(short)
    assert error.value.kind == 'length' and error.value.actor_id == '/robot_0/ddpg_agent'


def test_a_batch_whose_count_disagrees_with_its_payload_is_refused() -> None:
    with pytest.raises(WireError, match='6 transitions of 11 float32 values need 264'):
        decode(rewrite_header(batch(), count=6), spec=None)


def test_a_layout_that_disagrees_with_the_payload_is_refused() -> None:
    message = batch()
    wrong = WireMessage(message.data, message.data_offset,
                        (('transitions', 5, 999),) + message.dims[1:])
    with pytest.raises(WireError, match='layout says 999 payload bytes'):
        decode(wrong)


@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_refuses_the_whole_batch(value: float) -> None:
    values = rows()
    values[3, 2] = value
    with pytest.raises(WireError, match='transition 3 of the batch holds a non-finite value') \
            as error:
        decode(batch(values))
    assert error.value.kind == 'non_finite'


def test_a_terminated_flag_other_than_0_or_1_is_refused() -> None:
    values = rows()
    values[1, -1] = 0.5
    with pytest.raises(WireError, match=r'terminated flags must be 0 or 1, got \[0.5\]'):
        decode(batch(values))


def test_an_unknown_message_version_is_refused_naming_it() -> None:
    with pytest.raises(WireError, match='transition message version 2 is unknown; this '
                                        'ddpg_ros reads version 1') as error:
        decode(rewrite_header(batch(), version=2))
    assert error.value.kind == 'version'


def test_an_oversized_message_is_refused_before_it_is_parsed() -> None:
    message = batch(rows(100))
    with pytest.raises(WireError, match=r'message of \d+ bytes exceeds the limit of 1000 '
                                        'bytes') as error:
        decode(message, max_bytes=1000)
    assert error.value.kind == 'oversized'


def test_another_run_is_refused_naming_both_runs() -> None:
    with pytest.raises(WireError, match="batch of run 'run-b' refused: the learner is in run "
                                        "'run-a'") as error:
        decode(batch(run_id='run-b'))
    assert error.value.kind == 'run_id'


def test_another_spec_is_refused_naming_every_difference() -> None:
    other = replace(SPEC, task='half_cheetah', action_high=[2.0], control_period=0.05)
    with pytest.raises(WireError) as error:
        decode(batch(spec=other))
    message = str(error.value)
    assert error.value.kind == 'spec'
    assert "task: learner 'inverted_pendulum', actor 'half_cheetah'" in message
    assert 'action_high: learner [3.0], actor [2.0]' in message
    assert 'control_period: learner 0.04 s, actor 0.05 s' in message
    assert 'action_low' not in message


def test_a_spec_of_another_size_is_refused_before_its_rows_are_read() -> None:
    other = replace(SPEC, observation_names=SPEC.observation_names[:2])
    values = np.zeros((2, row_width(2, 1)), dtype=np.float32)
    with pytest.raises(WireError, match=r"observation_names: learner \['slider.position', "):
        decode(batch(values, spec=other))


@pytest.mark.parametrize('changes, text', [
    ({'sequence': -1}, 'sequence=-1 must be an integer >= 0'),
    ({'epoch': 'x'}, "epoch='x' must be an integer >= 0"),
    ({'policy_version': True}, 'policy_version=True must be an integer'),
    ({'actor_id': ''}, "actor_id='' must be a non-empty string"),
    ({'count': None}, 'count=None must be an integer >= 1'),
    ({'episode_returns': [1.0, 'x']}, 'episode_returns'),
    ({'spec': {'task': 'x'}}, 'spec is not a policy spec'),
    ({'format': POLICY_FORMAT}, "not a ddpg_ros/transitions message: format='ddpg_ros/policy'"),
])
def test_a_malformed_header_field_is_refused_naming_it(changes: dict, text: str) -> None:
    with pytest.raises(WireError, match=text.replace('[', r'\[')):
        decode(rewrite_header(batch(), **changes), spec=None, run_id=None)


def test_a_header_that_is_not_json_or_misplaced_is_refused() -> None:
    message = batch()
    with pytest.raises(WireError, match='header is not UTF-8 JSON'):
        decode_transitions(b'\xff\xfe' + message.data, message.data_offset + 2)
    with pytest.raises(WireError, match='data_offset=0'):
        decode_transitions(message.data, 0)
    with pytest.raises(WireError, match=f'data_offset={len(message.data) + 1}'):
        decode_transitions(message.data, len(message.data) + 1)
    with pytest.raises(WireError, match='header is a JSON list'):
        decode_transitions(b'[1] ', 4)


def test_encoding_refuses_rows_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match=r'shape \(2, 3\), expected \(N >= 1, 11\)'):
        batch(np.zeros((2, 3), dtype=np.float32))


# Policies


def test_a_policy_round_trips_into_an_actor_that_acts_alike() -> None:
    net = actor(1)
    message = policy(net)
    assert message.data_offset % 4 == 0
    received = decode_policy(message.data, message.data_offset, message.dims, spec=SPEC,
                             run_id='run-a')
    header = received.header
    assert (header.version, header.run_id, header.hidden_sizes, header.updates,
            header.transitions, header.warmup, header.hold) == (
        4, 'run-a', HIDDEN, 100, 1500, False, False)
    for name, tensor in net.state_dict().items():
        assert torch.equal(received.actor.state_dict()[name], tensor), name
    obs = torch.randn(3, SPEC.obs_dim)
    assert torch.equal(received.actor(obs), net(obs))
    assert not any(p.requires_grad for p in received.actor.parameters())


def test_a_policy_header_is_read_without_the_weights() -> None:
    header, payload = decode_policy_header(*(lambda m: (m.data, m.data_offset))(policy()))
    assert header.version == 4 and header.spec == SPEC.to_dict()
    assert payload.size == 4 * sum(t.numel() for t in actor().state_dict().values())


def test_a_truncated_policy_is_refused() -> None:
    message = policy()
    with pytest.raises(WireError, match=r'policy payload has \d+ bytes; an actor of hidden '
                                        r'sizes \[8, 8\] needs \d+') as error:
        decode_policy(message.data[:-4], message.data_offset, spec=SPEC)
    assert error.value.kind == 'length'


def test_a_policy_with_a_nan_weight_is_refused() -> None:
    net = actor()
    with torch.no_grad():
        net.net[0].weight[0, 0] = float('nan')
    message = policy(net)
    with pytest.raises(WireError, match='policy version 4 holds non-finite weights'):
        decode_policy(message.data, message.data_offset, spec=SPEC)


def test_a_policy_for_another_robot_or_run_is_refused_naming_the_difference() -> None:
    message = policy()
    other = replace(SPEC, action_names=['push'])
    with pytest.raises(WireError, match=r"the policy's spec differs from the robot's: "
                                        r"action_names: robot \['push'\], policy \['slide'\]"):
        decode_policy(message.data, message.data_offset, spec=other)
    with pytest.raises(WireError, match="policy of run 'run-a' refused: the robot is in run "
                                        "'run-b'"):
        decode_policy(message.data, message.data_offset, spec=SPEC, run_id='run-b')


def test_a_policy_whose_parameters_do_not_fit_the_actor_is_refused() -> None:
    message = policy()
    header = json.loads(message.data[:message.data_offset])
    header['parameters'][0][0] = 'net.9.weight'
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 4)
    with pytest.raises(WireError, match='are not those of this actor'):
        decode_policy(text + message.data[message.data_offset:], len(text), spec=SPEC)


def test_a_policy_header_cannot_make_the_receiver_allocate_a_huge_network() -> None:
    message = policy()
    header = json.loads(message.data[:message.data_offset])
    header['hidden_sizes'] = [65536, 65536, 65536]
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 4)
    # Refused by its size alone: building that actor would need 32 GiB.
    with pytest.raises(WireError, match=r'hidden sizes \[65536, 65536, 65536\] needs'):
        decode_policy(text + message.data[message.data_offset:], len(text), spec=SPEC)


@pytest.mark.parametrize('changes, text', [
    ({'policy_version': 0}, 'policy_version=0 must be an integer >= 1'),
    ({'hidden_sizes': []}, 'hidden_sizes=[] must be a list'),
    ({'warmup': 1}, 'warmup=1 must be true or false'),
    ({'stamp': 'now'}, "stamp='now' must be a finite number"),
    ({'version': 9}, 'policy message version 9 is unknown'),
])
def test_a_malformed_policy_header_is_refused_naming_the_field(changes: dict,
                                                               text: str) -> None:
    message = policy()
    header = json.loads(message.data[:message.data_offset])
    header.update(changes)
    encoded = json.dumps(header).encode()
    with pytest.raises(WireError, match=text.replace('[', r'\[')):
        decode_policy(encoded + message.data[message.data_offset:], len(encoded), spec=SPEC)


def test_the_payload_is_little_endian_float32() -> None:
    net = actor(2)
    message = policy(net)
    values = np.frombuffer(message.data, dtype=FLOAT32, offset=message.data_offset)
    first = next(iter(net.state_dict().values())).reshape(-1).numpy()
    np.testing.assert_array_equal(values[:first.size], first)


def test_the_fleet_core_imports_with_ros_blocked() -> None:
    script = textwrap.dedent('''
        import importlib, sys

        class BlockRos:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('rclpy', 'std_msgs', 'std_srvs', 'diagnostic_msgs'):
                    raise ImportError('ROS is blocked in this test: ' + name)
                return None

        sys.meta_path.insert(0, BlockRos())
        for module in ('ddpg_ros.fleet.wire', 'ddpg_ros.fleet.ledger', 'ddpg_ros.fleet.learner',
                       'ddpg_ros.fleet.actor', 'ddpg_ros.fleet.settings'):
            importlib.import_module(module)
        print('ok')
    ''')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'
