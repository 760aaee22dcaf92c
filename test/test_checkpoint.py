"""Checkpoints: round trip, safe loading, atomic writes, spec matching, rotation, writer."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from ddpg_ros.core.checkpoint import (CheckpointError, PolicySpec, load_checkpoint,
                                      remove_stale_temporaries, save_checkpoint)
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.control.training import CheckpointRotation, CheckpointWriter
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.core.replay_buffer import ReplayBuffer

SPEC = PolicySpec(task='inverted_pendulum', observation_names=['a', 'b', 'c'],
                  action_names=['slide', 'push'], action_low=[-3.0, -1.0],
                  action_high=[3.0, 1.0], joint_names=['slider', 'hinge'],
                  env_id='InvertedPendulum-v5')


def _trained_agent(seed: int = 0) -> tuple[DDPG, ReplayBuffer]:
    config = DDPGConfig(hidden_sizes=(16, 16), batch_size=8, buffer_size=64, seed=seed,
                        device='cpu', actor_lr=1e-2, critic_lr=1e-2)
    agent = DDPG(3, np.array(SPEC.action_low), np.array(SPEC.action_high), config)
    buffer = ReplayBuffer(64, 3, 2, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(64):
        buffer.add(rng.normal(size=3), rng.uniform(-1, 1, 2), rng.normal(), rng.normal(size=3),
                   bool(rng.random() < 0.1))
    for _ in range(5):
        agent.update(buffer.sample(8))
    return agent, buffer


def test_round_trip_gives_the_same_next_update(tmp_path) -> None:
    agent, buffer = _trained_agent()
    path = save_checkpoint(tmp_path / 'ckpt.pt', agent, SPEC, counters={'env_steps': 99})
    restored = load_checkpoint(path).build_agent()
    assert restored.updates == agent.updates == 5
    batch = buffer.sample(8)
    a = agent.update(batch)
    b = restored.update(batch)
    # Same Adam moments and step counts, so the next update is bit-for-bit the same.
    assert a.critic_loss.item() == b.critic_loss.item()
    for m1, m2 in ((agent.actor, restored.actor), (agent.critic_target, restored.critic_target)):
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            assert torch.equal(p1, p2)


def test_contents(tmp_path) -> None:
    agent, _ = _trained_agent()
    path = save_checkpoint(tmp_path / 'ckpt.pt', agent, SPEC, counters={'env_steps': 99},
                           extra={'note': 'x'})
    checkpoint = load_checkpoint(path)
    assert checkpoint.counters == {'env_steps': 99, 'updates': 5}
    assert checkpoint.spec == SPEC
    assert checkpoint.config == agent.config
    assert checkpoint.extra == {'note': 'x'}
    assert not [p for p in os.listdir(tmp_path) if p != 'ckpt.pt']  # no temporary left


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path) -> None:
    marker = tmp_path / 'pwned'

    class Exploit:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))

    path = tmp_path / 'evil.pt'
    torch.save({'format': 'ddpg_ros.checkpoint', 'payload': Exploit()}, path)
    with pytest.raises(CheckpointError, match='cannot be loaded safely'):
        load_checkpoint(path)
    assert not marker.exists()


def test_bad_files_give_clear_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match='does not exist'):
        load_checkpoint(tmp_path / 'missing.pt')
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='cannot be loaded'):
        load_checkpoint(tmp_path / 'junk.pt')
    torch.save({'weights': torch.zeros(2)}, tmp_path / 'other.pt')
    with pytest.raises(CheckpointError, match='not a ddpg_ros checkpoint'):
        load_checkpoint(tmp_path / 'other.pt')


def test_spec_mismatch_names_every_difference() -> None:
    robot = PolicySpec(task='half_cheetah', observation_names=['a', 'b', 'c'],
                       action_names=['slide', 'push'], action_low=[-3.0, -2.0],
                       action_high=[3.0, 1.0], joint_names=['hinge', 'slider'])
    with pytest.raises(CheckpointError) as info:
        SPEC.check_matches(robot, 'ckpt.pt')
    message = str(info.value)
    assert "task: checkpoint 'inverted_pendulum', robot 'half_cheetah'" in message
    assert 'joint_names' in message and 'action_low' in message
    assert 'observation_names' not in message and 'action_high' not in message
    SPEC.check_matches(SPEC)


def test_a_gymnasium_checkpoint_drives_the_task_that_reproduces_its_env() -> None:
    # ddpg-train --env Walker2d-v5 wrote gym:Walker2d-v5 specs before the walker2d task existed.
    import gymnasium as gym

    from ddpg_ros.sim.envs import spec_for_task
    from ddpg_ros.tasks import make_task

    space = gym.make('Walker2d-v5').action_space
    trained = PolicySpec(task='gym:Walker2d-v5',
                         observation_names=[f'obs[{i}]' for i in range(17)],
                         action_names=[f'action[{i}]' for i in range(6)],
                         action_low=space.low.tolist(), action_high=space.high.tolist(),
                         env_id='Walker2d-v5', control_period=0.008)
    walker = spec_for_task(make_task('walker2d'))
    assert trained.trained_on_twin_of(walker)
    trained.check_matches(walker)
    # Another env's checkpoint, or bounds that differ, are still refused.
    hopper = spec_for_task(make_task('hopper'))
    with pytest.raises(CheckpointError,
                       match="task: checkpoint 'gym:Walker2d-v5', robot 'hopper'"):
        trained.check_matches(hopper)
    with pytest.raises(CheckpointError, match='action_high'):
        dataclasses.replace(trained, action_high=[0.5] * 6).check_matches(walker)
    with pytest.raises(CheckpointError, match='observe_last_action'):
        dataclasses.replace(trained, observation_names=trained.observation_names[:11] + [
            f'last_command.action[{i}]' for i in range(6)]).check_matches(walker)


KILL_CAMPAIGN = textwrap.dedent('''
    import json, os, random, signal, sys, time
    import numpy as np
    import torch
    torch.set_num_threads(1)  # no thread pool: this process forks a writer per trial
    from ddpg_ros.core.checkpoint import (CheckpointError, PolicySpec, load_checkpoint,
                                          save_checkpoint)
    from ddpg_ros.core.config import DDPGConfig
    from ddpg_ros.core.ddpg import DDPG
    path, trials = sys.argv[1], int(sys.argv[2])
    spec = PolicySpec(task='t', observation_names=['o'] * 17, action_names=['a'] * 6,
                      action_low=[-1.0] * 6, action_high=[1.0] * 6)
    agent = DDPG(17, -np.ones(6), np.ones(6), DDPGConfig(device='cpu'))
    rng = random.Random(0)
    steps_seen, failures = [], []
    for trial in range(trials):
        ready, tell = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer: saves in a loop until killed
            os.close(ready)
            step = 0
            while True:
                step += 1
                save_checkpoint(path, agent, spec, counters={'env_steps': 1000 * trial + step})
                if step == 1:
                    os.write(tell, b'saved')
        os.close(tell)
        assert os.read(ready, 5) == b'saved'
        os.close(ready)
        # Each save of these 256x256 networks takes a few milliseconds: kill mid-stream.
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        try:
            steps_seen.append(load_checkpoint(path).counters['env_steps'])
        except CheckpointError as exc:
            failures.append(f'trial {trial}: {exc}')
    print(json.dumps({'steps_seen': steps_seen, 'failures': failures}))
''')


def test_kill_9_during_saves_never_leaves_an_unreadable_checkpoint(tmp_path) -> None:
    """
    SIGKILL a process that saves in a loop, at random moments; the file always loads.

    One process imports torch once and forks a writer per trial, kills it and loads what it
    left, so that a trial costs a fraction of a second, not an interpreter's start.
    """
    trials = 12
    result = subprocess.run([sys.executable, '-c', KILL_CAMPAIGN, str(tmp_path / 'ckpt.pt'),
                             str(trials)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['failures'] == []
    assert len(report['steps_seen']) == trials
    # Each trial's writer counts from its own thousand and had saved once before its kill:
    # the file holds its newest whole save, and the kills landed at different points.
    assert [step // 1000 for step in report['steps_seen']] == list(range(trials)), report
    assert len({step % 1000 for step in report['steps_seen']}) > 1, report


def test_remove_stale_temporaries_deletes_only_dead_processes_files(tmp_path) -> None:
    finished = subprocess.Popen([sys.executable, '-c', 'pass'])
    finished.wait()
    dead = [tmp_path / f'.checkpoint_000000100.pt.tmp-{finished.pid}',
            tmp_path / f'.checkpoint_000000100.npz.tmp-{finished.pid}']
    alive = tmp_path / f'.best.pt.tmp-{os.getpid()}'  # a save in progress right now
    others = [tmp_path / 'checkpoint_000000100.pt', tmp_path / '.tmp-12',
              tmp_path / 'notes.tmp-1']
    for path in dead + others + [alive]:
        path.write_bytes(b'x')
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(dead)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in others + [alive])
    assert remove_stale_temporaries(tmp_path / 'missing') == []


def test_rotation_writes_best_only_when_the_score_improves_and_keeps_the_newest(
        tmp_path) -> None:
    agent, _ = _trained_agent()
    rotation = CheckpointRotation(tmp_path, keep=2, best_score=5.0)
    scores = {1000: 4.0, 2000: 7.0, 3000: 6.0, 4000: None}
    for steps, score in scores.items():
        path = rotation.path(steps)
        path.with_suffix('.npz').write_bytes(b'buffer')
        rotation.write(path, agent, SPEC, {'env_steps': steps, 'episodes': 0},
                       {'score': score}, best=rotation.improves(score))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'best.pt', 'checkpoint_000003000.npz', 'checkpoint_000003000.pt',
        'checkpoint_000004000.npz', 'checkpoint_000004000.pt']
    best = load_checkpoint(tmp_path / 'best.pt')
    assert best.counters['env_steps'] == 2000 and best.extra['score'] == 7.0
    assert rotation.best_score == 7.0


def test_the_checkpoint_writer_counts_failures_goes_on_and_stops_cleanly() -> None:
    written, errors = [], []
    outcomes = iter([OSError('disk full'), None, ValueError('weights not finite'), None])

    def save():
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        written.append(len(errors))
        return None

    writer = CheckpointWriter(save, errors.append, 'test_checkpoints')
    try:
        for expected_calls in range(1, 5):
            writer.request()
            deadline = time.monotonic() + 5.0
            while len(written) + len(errors) < expected_calls and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(written) + len(errors) == expected_calls
    finally:
        writer.stop()
    assert writer.failures == 2
    assert errors == ['periodic checkpoint not written: disk full',
                      'periodic checkpoint not written: weights not finite']
    assert written == [1, 2]
    writer.request()  # after stop: nothing runs any more
    time.sleep(0.1)
    assert len(written) + len(errors) == 4
