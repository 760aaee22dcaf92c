"""
The fleet without ROS: the learner's ingest, versions and checkpoints; the remote actor.

Real DDPG networks, replay buffer and background learner threads on tiny networks; real
message bytes. The ROS nodes around them are tested in ``test_fleet_nodes.py``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpg_ros.core.checkpoint import load_checkpoint
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.control.episodes import Episodes, Transition
from ddpg_ros.control.safety import CommandFilter, SafeCommand
from ddpg_ros.control.settings import AgentSettings
from ddpg_ros.control.step import ControlStep
from ddpg_ros.sim.envs import spec_for_task
from ddpg_ros.fleet.actor import RemoteTraining
from ddpg_ros.fleet.learner import VERSION_BLOCK, FleetLearner, VersionReservation
from ddpg_ros.fleet.settings import LearnerSettings
from ddpg_ros.fleet.wire import (WireError, WireMessage, decode_policy, decode_transitions,
                                 encode_policy, encode_transitions, row_width)
from ddpg_ros.core.networks import Actor
from ddpg_ros.core.replay_buffer import ReplayBuffer
from ddpg_ros.tasks import RobotState, make_task

TASK = make_task('inverted_pendulum')
SPEC = spec_for_task(TASK)
WIDTH = row_width(SPEC.obs_dim, SPEC.action_dim)
CONFIG = DDPGConfig(hidden_sizes=(8, 8), batch_size=8, buffer_size=1000, learning_starts=20,
                    device='cpu', seed=0)
WAIT = 10.0


def rows(count: int, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(-1, 1, size=(count, WIDTH)).astype(np.float32)
    values[:, -1] = 0.0
    return values


class Fleet:
    """A FleetLearner in ``tmp_path`` and the batches actors would send it."""

    def __init__(self, directory: Path, **settings: object) -> None:
        settings = {'checkpoint_dir': str(directory), 'tensorboard': False,
                    'checkpoint_every': 0, **settings}
        self.logs: list[str] = []
        self.learner = FleetLearner(TASK, SPEC, LearnerSettings(**settings), CONFIG,
                                    self.logs.append, self.logs.append, self.logs.append)

    def send(self, values: np.ndarray, actor: str = '/robot_0/ddpg_agent', epoch: int = 1,
             sequence: int = 0, version: int = 1, run_id: str | None = None,
             returns: tuple[float, ...] = ()):
        message = encode_transitions(
            values, run_id=self.learner.run_id if run_id is None else run_id, actor_id=actor,
            epoch=epoch, sequence=sequence, policy_version=version, spec=SPEC,
            episode_returns=returns)
        return self.learner.ingest(message.data, message.data_offset, message.dims)

    def stored(self) -> np.ndarray:
        buffer = self.learner.buffer
        return buffer.obs[:len(buffer)]

    def close(self) -> None:
        self.learner.close(self.logs.append)


@pytest.fixture
def fleet(tmp_path: Path):
    made: list[Fleet] = []

    def make(**settings: object) -> Fleet:
        made.append(Fleet(tmp_path / 'learner', **settings))
        return made[-1]

    yield make
    for each in made:
        each.close()


# The replay buffer's batch append


def test_add_batch_stores_what_add_stores_row_by_row_across_the_ring() -> None:
    one_by_one, batched = ReplayBuffer(7, 4, 1), ReplayBuffer(7, 4, 1)
    rng = np.random.default_rng(3)
    for count in (3, 5, 1, 9, 7):
        values = rows(count, int(rng.integers(100)))
        values[:, -1] = rng.integers(0, 2, count)
        obs, act, rew, nxt, done = (values[:, :4], values[:, 4:5], values[:, 5],
                                    values[:, 6:10], values[:, -1])
        batched.add_batch(obs, act, rew, nxt, done)
        for i in range(count):
            one_by_one.add(obs[i], act[i], rew[i], nxt[i], bool(done[i]))
        for name in ('obs', 'actions', 'rewards', 'next_obs', 'terminated'):
            assert np.array_equal(getattr(batched, name), getattr(one_by_one, name)), name
        assert (batched.position, batched.size, batched.total_added) == (
            one_by_one.position, one_by_one.size, one_by_one.total_added)


def test_add_batch_refuses_a_non_finite_value_and_stores_nothing() -> None:
    buffer = ReplayBuffer(10, 4, 1)
    values = rows(3)
    values[2, 5] = np.nan
    with pytest.raises(ValueError, match='non-finite'):
        buffer.add_batch(values[:, :4], values[:, 4:5], values[:, 5], values[:, 6:10],
                         values[:, -1])
    assert len(buffer) == 0 and buffer.total_added == 0


# The learner: ingest


def test_a_batch_is_stored_whole_and_counted_for_its_actor(fleet) -> None:
    f = fleet()
    values = rows(5)
    f.send(values, returns=(7.0,))
    np.testing.assert_array_equal(f.stored(), values[:, :4])
    np.testing.assert_array_equal(f.learner.buffer.next_obs[:5], values[:, 6:10])
    assert f.learner.transitions == 5 and f.learner.episodes == 1
    [(actor, record)] = f.learner.actor_values().items()
    assert actor == '/robot_0/ddpg_agent'
    assert (record['batches'], record['transitions'], record['policy_version'],
            record['policy_lag'], record['drops']) == ('1', '5', '1', '0', '0')


def test_a_duplicate_or_replayed_batch_is_refused_and_stores_nothing(fleet) -> None:
    f = fleet()
    f.send(rows(4, 1), sequence=0)
    f.send(rows(4, 2), sequence=1)
    for sequence, epoch, text in ((1, 1, 'batch 1 .* already stored: the last stored is 1'),
                                  (0, 1, 'batch 0 .* already stored'),
                                  (5, 0, 'from its epoch 0, before its current epoch 1')):
        with pytest.raises(WireError, match=text) as error:
            f.send(rows(4, 9), sequence=sequence, epoch=epoch)
        assert error.value.kind == 'duplicate'
    assert len(f.learner.buffer) == 8 and f.learner.transitions == 8
    assert not (f.stored() == rows(4, 9)[0, :4]).all(axis=1).any()
    assert f.learner.diagnostic_values()['refused_duplicate'] == '3'
    assert f.learner.actor_values()['/robot_0/ddpg_agent']['refused'] == '3'


def test_a_gap_in_the_sequence_counts_lost_batches_and_a_new_epoch_starts_afresh(fleet) -> None:
    f = fleet()
    f.send(rows(2), sequence=0)
    f.send(rows(2), sequence=4)
    assert f.learner.actor_values()['/robot_0/ddpg_agent']['lost_batches'] == '3'
    f.send(rows(2), sequence=0, epoch=2)  # the actor restarted
    record = f.learner.actor_values()['/robot_0/ddpg_agent']
    assert (record['epoch'], record['sequence'], record['transitions']) == ('2', '0', '6')


@pytest.mark.parametrize('version', [0, 2, 1000])
def test_a_batch_acted_with_an_unknown_policy_version_is_refused(fleet, version: int) -> None:
    f = fleet()
    assert f.learner.version == 1
    with pytest.raises(WireError, match=f'policy version {version}, which this learner never '
                                        r'published \(newest: 1\)') as error:
        f.send(rows(3), version=version)
    assert error.value.kind == 'policy_version'
    assert len(f.learner.buffer) == 0 and f.learner.diagnostic_values()[
        'refused_policy_version'] == '1'


def test_bad_batches_are_refused_counted_and_never_stored(fleet) -> None:
    f = fleet()
    values = rows(3)
    values[1, 0] = np.nan
    with pytest.raises(WireError, match='non-finite'):
        f.send(values)
    message = encode_transitions(rows(3), run_id=f.learner.run_id, actor_id='/a', epoch=1,
                                 sequence=0, policy_version=1, spec=SPEC)
    with pytest.raises(WireError, match='payload has'):
        f.learner.ingest(message.data[:-8], message.data_offset)
    with pytest.raises(WireError, match="run 'other' refused"):
        f.send(rows(3), run_id='other')
    other = dataclasses.replace(SPEC, joint_names=['a', 'b'])
    message = encode_transitions(rows(3), run_id=f.learner.run_id, actor_id='/b', epoch=1,
                                 sequence=0, policy_version=1, spec=other)
    with pytest.raises(WireError, match=r"joint_names: learner \['slider', 'hinge'\], actor "
                                        r"\['a', 'b'\]"):
        f.learner.ingest(message.data, message.data_offset, message.dims)
    assert len(f.learner.buffer) == 0 and f.learner.transitions == 0
    values = f.learner.diagnostic_values()
    assert {k: values[k] for k in values if k.startswith('refused_')} == {
        'refused_non_finite': '1', 'refused_length': '1', 'refused_run_id': '1',
        'refused_spec': '1'}


# The learner: training, versions, hold


def test_updates_follow_the_transitions_received_past_learning_starts(fleet) -> None:
    f = fleet(policy_every=5)
    for sequence in range(5):
        f.send(rows(10, sequence), sequence=sequence)
    learner = f.learner.learner
    deadline = time.monotonic() + WAIT
    while learner.updates < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    # 50 transitions, 20 of warm-up: 30 granted updates at 1 per transition, and no more.
    assert learner.updates == 30
    assert f.learner.diagnostic_values()['update_to_data'] == '1.000'


def test_policies_are_versioned_and_published_when_due(fleet) -> None:
    f = fleet(policy_every=5, policy_period=1.0)
    first = f.learner.policy_message(now=100.0)
    assert first is not None
    received = decode_policy(first.data, first.data_offset, first.dims, spec=SPEC,
                             run_id=f.learner.run_id)
    assert received.header.version == 1 and received.header.warmup
    assert f.learner.policy_message(now=100.5) is None
    again = f.learner.policy_message(now=101.1)  # the same version, to say it is there
    assert again is not None and decode_policy(again.data, again.data_offset).header.version == 1
    for sequence in range(4):
        f.send(rows(10, sequence), sequence=sequence)
    deadline = time.monotonic() + WAIT
    message = None
    while message is None and time.monotonic() < deadline:
        message = f.learner.policy_message(now=101.2)
        time.sleep(0.01)
    header = decode_policy(message.data, message.data_offset).header
    assert header.version == 2 and not header.warmup and header.updates >= 5
    trained = f.learner.learner.copy_agent().actor
    assert not torch.equal(received.actor.net[0].weight, trained.net[0].weight)


def test_the_learner_asks_actors_to_hold_when_it_falls_behind(fleet) -> None:
    f = fleet(max_backlog=10)
    f.learner.policy_message(now=0.0)
    f.learner.learner.set_training(False)
    f.send(rows(40), sequence=0)
    assert not f.learner.hold, 'a paused learner asks no one to wait for it'
    f.learner.learner.set_training(True)
    f.learner.learner.allow(25)
    assert f.learner.backlog > 10 and f.learner.hold
    message = f.learner.policy_message(now=0.1)  # the change is published at once
    assert message is not None and decode_policy(message.data, message.data_offset).header.hold


def test_version_numbers_never_repeat_after_a_crash(tmp_path: Path) -> None:
    versions = VersionReservation(tmp_path, 'run-a')
    handed = [versions.next() for _ in range(3)]
    assert handed == [1, 2, 3]
    assert json.loads((tmp_path / 'policy_versions.json').read_text()) == {
        'run_id': 'run-a', 'reserved': VERSION_BLOCK}
    # A new process (the old one killed): above the whole reserved block.
    assert VersionReservation(tmp_path, 'run-a').next() == VERSION_BLOCK + 1
    assert VersionReservation(tmp_path, 'run-b').next() == 1, 'another run counts afresh'
    assert VersionReservation(tmp_path, 'run-c', floor=5000).next() == 5001


# The learner: checkpoints and resume


def test_a_resumed_learner_refuses_what_its_buffer_holds_and_publishes_a_newer_version(
        fleet, tmp_path: Path) -> None:
    f = fleet()
    for sequence in range(3):
        f.send(rows(6, sequence), sequence=sequence, returns=(float(sequence),))
    path = f.learner.save_checkpoint()
    f.send(rows(6, 3), sequence=3)  # after the checkpoint: lost with the crash
    for _ in range(5):
        f.learner.versions.next()
    before_crash = f.learner.versions.last
    run_id = f.learner.run_id

    resumed = Fleet(tmp_path / 'learner', load_checkpoint='latest')
    try:
        learner = resumed.learner
        assert learner.resumed_from == str(path) and learner.run_id == run_id
        assert learner.transitions == 18 and len(learner.buffer) == 18
        np.testing.assert_array_equal(resumed.stored(), f.stored()[:18])
        assert learner.version > before_crash
        for sequence in (0, 2):
            with pytest.raises(WireError, match='already stored'):
                resumed.send(rows(6, sequence), sequence=sequence, version=1)
        resumed.send(rows(6, 3), sequence=3, version=1)  # known: an earlier version
        resumed.send(rows(6, 4), sequence=4, version=learner.version)
        assert learner.transitions == 30
        checkpoint = load_checkpoint(path)
        assert checkpoint.extra['actors'] == {'/robot_0/ddpg_agent': {'epoch': 1, 'sequence': 2}}
        assert checkpoint.extra['run_id'] == run_id and checkpoint.counters['env_steps'] == 18
    finally:
        resumed.close()


def test_a_resume_refuses_another_run_id(fleet, tmp_path: Path) -> None:
    f = fleet(run_id='run-a')
    f.send(rows(3))
    path = f.learner.save_checkpoint()
    with pytest.raises(ValueError, match="run_id='run-b' differs from the run 'run-a' of "
                                         'checkpoint'):
        Fleet(tmp_path / 'learner', load_checkpoint=str(path), run_id='run-b')


def test_latest_of_a_named_run_resumes_that_runs_newest_checkpoint(fleet, tmp_path: Path
                                                                   ) -> None:
    # As train_fleet's learner does when started again: 'latest' with its run_id.
    f = fleet(run_id='run-a')
    f.send(rows(3))
    ours = f.learner.save_checkpoint()
    f.close()
    other = fleet(run_id='run-b')
    for sequence in range(2):
        other.send(rows(4, sequence), sequence=sequence)
    theirs = other.learner.save_checkpoint()
    other.close()
    assert theirs.name > ours.name, 'the other run has the newer checkpoint'
    (tmp_path / 'learner' / 'checkpoint_999999999.pt').write_bytes(b'not a checkpoint')

    resumed = fleet(load_checkpoint='latest', run_id='run-a')
    assert resumed.learner.resumed_from == str(ours) and resumed.learner.transitions == 3
    assert any('passing over' in line and 'checkpoint_999999999.pt' in line
               for line in resumed.logs)
    fresh = fleet(load_checkpoint='latest', run_id='run-c')
    assert fresh.learner.resumed_from == '' and fresh.learner.transitions == 0
    assert any('no checkpoint of run run-c' in line for line in fresh.logs)


def test_latest_with_no_checkpoint_starts_fresh(fleet) -> None:
    f = fleet(load_checkpoint='latest', run_id='mine')
    assert f.learner.resumed_from == '' and f.learner.run_id == 'mine'
    assert any('no checkpoint' in line for line in f.logs)


def test_progress_csv_counts_transitions_as_env_steps(fleet, tmp_path: Path) -> None:
    f = fleet(log_every=10)
    for sequence in range(3):
        f.send(rows(7, sequence), sequence=sequence, returns=(float(sequence),))
    f.close()
    lines = (tmp_path / 'learner' / 'progress.csv').read_text().splitlines()
    assert lines[0].startswith('env_steps,updates,episodes')
    assert [line.split(',')[0] for line in lines[1:]] == ['14', '21']
    assert (tmp_path / 'learner' / 'learning_curve.png').is_file()


# The remote actor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Actors:
    """A RemoteTraining with a fake clock, collecting what it sends."""

    def __init__(self, **settings: object) -> None:
        self.clock = Clock()
        self.sent: list[WireMessage] = []
        self.logs: list[str] = []
        self.present = True
        base = {'learner': 'remote', 'transition_batch': 4, 'learner_timeout': 2.0}
        self.remote = RemoteTraining(
            TASK, SPEC, AgentSettings(**{**base, **settings}),
            DDPGConfig(noise_sigma=0.1, seed=1), '/robot_0/ddpg_agent', self.logs.append,
            self.logs.append, self.logs.append, clock=self.clock, epoch=77)
        self.remote.connect(self.sent.append, lambda: self.present)

    def offer(self, version: int, net: Actor | None = None, **header: object) -> None:
        torch.manual_seed(version)
        net = net or Actor(SPEC.obs_dim, np.array(SPEC.action_low), np.array(SPEC.action_high),
                           (8, 8))
        fields = {'run_id': 'run-a', 'warmup': False, 'hold': False, 'updates': 0,
                  'transitions': 0, 'backlog': 0, 'stamp': 0.0, **header}
        message = encode_policy(net, version=version, spec=SPEC, hidden_sizes=(8, 8),
                                **fields)
        self.remote.offer_policy(message.data, message.data_offset, message.dims)

    def wait(self, predicate, timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def step(self, count: int = 1, explore: bool = True) -> None:
        for i in range(count):
            obs = np.full(4, 0.01 * i)
            self.remote.act(obs, explore, i)
            self.remote.store(Transition(obs, np.array([0.5]), 1.0, obs + 0.1, False), i)

    def batches(self):
        return [decode_transitions(m.data, m.data_offset, m.dims, spec=SPEC) for m in self.sent]


@pytest.fixture
def actors():
    made: list[Actors] = []

    def make(**settings: object) -> Actors:
        made.append(Actors(**settings))
        return made[-1]

    yield make
    for each in made:
        each.remote.close(lambda line: None)


def test_an_actor_does_not_act_before_its_first_policy(actors) -> None:
    a = actors()
    assert a.remote.act(np.zeros(4), True, 0) is None
    assert a.remote.lost()


def test_the_actor_acts_with_the_newest_policy_plus_noise(actors) -> None:
    a = actors()
    torch.manual_seed(5)
    net = Actor(4, np.array([-3.0]), np.array([3.0]), (8, 8))
    a.offer(3, net)
    assert a.wait(lambda: a.remote.agent.version == 3)
    obs = np.array([0.1, -0.05, 0.2, 0.0])
    expected = net(torch.as_tensor(obs, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(a.remote.act(obs, False, 0), expected, rtol=0, atol=1e-6)
    explored = a.remote.act(obs, True, 0)
    assert not np.allclose(explored, expected) and np.abs(explored - expected).max() < 1.5
    a.offer(2)  # an older version: ignored
    a.offer(4)
    assert a.wait(lambda: a.remote.agent.version == 4)
    assert a.remote.stats['policies_received'] == 2


def test_a_warming_up_learner_gets_uniform_random_actions(actors) -> None:
    a = actors()
    a.offer(1, warmup=True)
    assert a.wait(lambda: a.remote.agent.version == 1)
    actions = np.array([a.remote.act(np.zeros(4), True, i) for i in range(200)])
    assert actions.min() < -2.5 and actions.max() > 2.5 and np.abs(actions).max() <= 3.0


def test_transitions_go_out_in_stamped_batches(actors) -> None:
    a = actors()
    a.offer(6, warmup=True)
    assert a.wait(lambda: a.remote.agent.version == 6)
    a.step(3)
    a.remote.episode_ended(42.0, 3)
    a.step(5)
    assert a.wait(lambda: len(a.sent) == 2)
    first, second = a.batches()
    assert (first.actor_id, first.epoch, first.sequence, first.policy_version, first.run_id,
            first.count, first.episode_returns) == ('/robot_0/ddpg_agent', 77, 0, 6, 'run-a',
                                                    4, (42.0,))
    assert (second.sequence, second.episode_returns) == (1, ())
    np.testing.assert_allclose(first.obs[1], np.full(4, 0.01), atol=1e-7)
    np.testing.assert_allclose(first.next_obs[1], np.full(4, 0.11), atol=1e-7)


def test_a_lost_learner_means_no_noise_and_a_bounded_queue_until_it_is_back(actors) -> None:
    a = actors(transition_queue=8)
    torch.manual_seed(0)
    net = Actor(4, np.array([-3.0]), np.array([3.0]), (8, 8))
    a.offer(1, net)
    assert a.wait(lambda: a.remote.agent.version == 1)
    a.clock.now += 2.5
    assert a.wait(lambda: any('no policy from the learner for 2 s' in line for line in a.logs))
    obs = np.full(4, 0.3)
    expected = net(torch.as_tensor(obs, dtype=torch.float32)).detach().numpy()
    for _ in range(5):
        np.testing.assert_allclose(a.remote.act(obs, True, 0), expected, atol=1e-6)
    a.step(16)  # four batches; the queue keeps two
    time.sleep(0.2)
    assert a.sent == [] and a.remote.stats['transitions_dropped'] == 8
    a.offer(2)
    assert a.wait(lambda: any('learner back' in line for line in a.logs))
    time.sleep(0.2)
    assert a.sent == [], 'a learner that is back gets time to match the publisher'
    a.clock.now += 1.0
    assert a.wait(lambda: len(a.sent) == 2)
    assert [b.sequence for b in a.batches()] == [2, 3], 'the oldest were dropped, in order'


def test_on_learner_lost_safe_stops_acting_until_a_policy_arrives(actors) -> None:
    a = actors(on_learner_lost='safe')
    a.offer(1)
    assert a.wait(lambda: a.remote.agent.version == 1)
    assert a.remote.act(np.zeros(4), True, 0) is not None
    a.clock.now += 3.0
    assert a.remote.act(np.zeros(4), True, 0) is None
    a.offer(2)
    assert a.wait(lambda: not a.remote.lost())
    assert a.remote.act(np.zeros(4), True, 0) is not None


def test_batches_wait_while_no_learner_subscribes(actors) -> None:
    a = actors()
    a.present = False
    a.offer(1)
    assert a.wait(lambda: a.remote.agent.version == 1)
    a.step(8)
    time.sleep(0.2)
    assert a.sent == []
    a.present = True
    assert a.wait(lambda: len(a.sent) == 2)


def test_a_policy_of_another_run_or_robot_is_refused_and_the_current_one_kept(actors) -> None:
    a = actors(run_id='run-a')
    a.offer(1)
    assert a.wait(lambda: a.remote.agent.version == 1)
    a.offer(2, run_id='run-b')
    assert a.wait(lambda: a.remote.stats['policies_refused'] == 1)
    other = dataclasses.replace(SPEC, action_low=[-1.0], action_high=[1.0])
    net = Actor(4, np.array([-1.0]), np.array([1.0]), (8, 8))
    message = encode_policy(net, run_id='run-a', version=3, spec=other, hidden_sizes=(8, 8),
                            warmup=False, hold=False, updates=0, transitions=0, backlog=0,
                            stamp=0.0)
    a.remote.offer_policy(message.data, message.data_offset, message.dims)
    assert a.wait(lambda: a.remote.stats['policies_refused'] == 2)
    assert a.remote.agent.version == 1
    assert any("run 'run-b' refused: this actor is in run 'run-a'" in line for line in a.logs)
    assert any('action_low: robot [-3.0], policy [-1.0]' in line for line in a.logs)


def test_offering_a_policy_never_decodes_it_in_the_callers_thread(actors) -> None:
    a = actors()
    a.remote.offer_policy(b'{"format": "junk"}  ', 20)  # must not raise here
    assert a.wait(lambda: a.remote.stats['policies_refused'] == 1)
    decoded_in: list[str] = []
    original = a.remote._heard

    def record(received) -> None:
        decoded_in.append(threading.current_thread().name)
        original(received)

    a.remote._heard = record
    a.offer(1)
    assert a.wait(lambda: decoded_in == ['remote_learner'])


def test_a_holding_learner_delays_a_lockstep_action_until_it_catches_up(actors) -> None:
    a = actors(max_update_wait=5.0)
    a.offer(1, hold=True)
    assert a.wait(lambda: a.remote.agent.version == 1)
    released = threading.Timer(0.3, lambda: a.offer(1, hold=False))
    released.start()
    started = time.monotonic()
    a.remote.act(np.zeros(4), True, 0)
    waited = time.monotonic() - started
    assert 0.25 < waited < 3.0 and a.remote.last_wait == pytest.approx(waited, abs=0.05)
    assert a.remote.wait_timeouts == 0


def test_a_hold_never_delays_a_robot_on_a_timer(actors) -> None:
    a = actors(max_update_wait=5.0, control_rate=50.0)
    a.offer(1, hold=True)
    assert a.wait(lambda: a.remote.agent.version == 1)
    started = time.monotonic()
    a.remote.act(np.zeros(4), True, 0)
    # The hold is never released: a robot that waited would wait max_update_wait (5 s).
    assert a.remote.last_wait == 0.0 and time.monotonic() - started < 2.5


def test_the_control_step_sends_the_safe_command_and_stores_nothing_without_a_policy(
        actors) -> None:
    a = actors()
    step = ControlStep(TASK, a.remote, Episodes(TASK, 1e6),
                       CommandFilter(TASK.action_low, TASK.action_high),
                       SafeCommand(TASK, 'effort'))

    def state(stamp: float) -> RobotState:
        return RobotState([0.0, 0.01], [0.0, 0.0], [0.0, 0.0], stamp)

    for i in range(3):
        decision = step.step(state(i * 0.04))
        np.testing.assert_array_equal(decision.command, [0.0])
    assert step.chain is None and a.remote._filled == 0
    a.offer(1)
    assert a.wait(lambda: a.remote.agent.version == 1)
    step.step(state(0.2))
    step.step(state(0.24))
    assert a.remote._filled == 1, 'acting again: the next step completes a transition'


def test_n_step_returns_fold_each_actors_chain_apart(tmp_path: Path) -> None:
    config = dataclasses.replace(CONFIG, n_step=3, gamma=0.5)
    logs: list[str] = []
    learner = FleetLearner(TASK, SPEC, LearnerSettings(checkpoint_dir=str(tmp_path),
                                                       tensorboard=False, checkpoint_every=0),
                           config, logs.append, logs.append, logs.append)

    def chain(start: float, count: int) -> np.ndarray:
        """``count`` pendulum steps s_start -> s_start+1 -> ..., reward 1 each."""
        values = np.zeros((count, WIDTH), dtype=np.float32)
        for i in range(count):
            values[i, :4] = start + i
            values[i, 5] = 1.0
            values[i, 6:10] = start + i + 1
        return values

    def send(values: np.ndarray, actor: str, sequence: int) -> None:
        message = encode_transitions(values, run_id=learner.run_id, actor_id=actor, epoch=1,
                                     sequence=sequence, policy_version=1, spec=SPEC)
        learner.ingest(message.data, message.data_offset, message.dims)

    try:
        # Two robots' batches interleave; each robot's chain goes on across its batches.
        send(chain(0, 2), '/robot_0/ddpg_agent', 0)
        send(chain(100, 2), '/robot_1/ddpg_agent', 0)
        send(chain(2, 1), '/robot_0/ddpg_agent', 1)
        buffer = learner.buffer
        assert len(buffer) == 1 and learner.transitions == 5
        assert (buffer.obs[0, 0], buffer.next_obs[0, 0], buffer.horizon[0]) == (0.0, 3.0, 3.0)
        assert buffer.rewards[0] == pytest.approx(1 + 0.5 + 0.25)
    finally:
        learner.close(logs.append)
