"""BackgroundLearner: real DDPG updates in a real thread, with faults injected into them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.core.learner import BackgroundLearner, snapshot_finite
from ddpg_ros.core.replay_buffer import Batch, ReplayBuffer

OBS_DIM = 2
LOW, HIGH = np.array([-1.0]), np.array([1.0])


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def make_agent(**overrides) -> DDPG:
    settings = dict(hidden_sizes=(16, 16), batch_size=16, buffer_size=1000, actor_lr=3e-3,
                    critic_lr=3e-3, gamma=0.0, tau=0.05, device='cpu', seed=0)
    settings.update(overrides)
    return DDPG(OBS_DIM, LOW, HIGH, DDPGConfig(**settings))


def bandit_buffer(n: int = 256) -> ReplayBuffer:
    """Return a one-step problem's buffer: reward ``-(a - obs[0])^2``, best action ``obs[0]``."""
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(1000, OBS_DIM, 1, seed=0)
    for _ in range(n):
        obs = rng.uniform(-0.8, 0.8, size=OBS_DIM)
        action = rng.uniform(-1.0, 1.0, size=1)
        buffer.add(obs, action, -float((action[0] - obs[0]) ** 2), obs, True)
    return buffer


def actor_params(actor: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in actor.parameters()]


def same_params(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture
def learners() -> Iterator[list[BackgroundLearner]]:
    """Every learner a test starts is stopped, and must stop, at the end."""
    started: list[BackgroundLearner] = []
    yield started
    for learner in started:
        assert learner.stop(timeout=10.0), 'learner thread did not stop'


def start(learners: list[BackgroundLearner], learner: BackgroundLearner) -> BackgroundLearner:
    learners.append(learner)
    learner.start()
    return learner


def test_learns_a_bandit_and_publishes_snapshots(learners) -> None:
    agent = make_agent()
    seen: list[torch.nn.Module] = []
    learner = start(learners, BackgroundLearner(agent, bandit_buffer(), batch_size=16,
                                                snapshot_every=25, on_snapshot=seen.append))
    probe = torch.tensor([[0.5, 0.0], [-0.5, 0.0]], dtype=torch.float32)
    with torch.no_grad():
        before = learner.snapshot(probe).squeeze(-1)
    assert wait_for(lambda: learner.updates >= 1500, timeout=60.0), learner.fault
    assert learner.fault is None
    assert learner.updates_per_second > 0.0
    assert learner.last_info is not None and math.isfinite(float(learner.last_info.critic_loss))
    assert learner.snapshot_version >= 1500 // 25 - 1
    assert len(seen) >= 1500 // 25 - 1 and all(snapshot_finite(s) for s in seen)
    with torch.no_grad():
        after = learner.snapshot(probe).squeeze(-1)
    # The best action is obs[0]; the learned policy must move toward it from its start.
    target = torch.tensor([0.5, -0.5])
    assert float((after - target).abs().max()) < 0.2, (before, after)
    assert float((after - target).abs().max()) < float((before - target).abs().max())
    # The snapshot is a CPU copy: further updates must not change it behind the actor's back.
    snapshot = learner.snapshot
    frozen = actor_params(snapshot)
    updates = learner.updates
    assert wait_for(lambda: learner.updates >= updates + 50)
    assert same_params(frozen, actor_params(snapshot))
    assert next(snapshot.parameters()).device.type == 'cpu'


def test_waits_for_a_full_batch(learners) -> None:
    buffer = ReplayBuffer(100, OBS_DIM, 1)
    learner = start(learners, BackgroundLearner(make_agent(), buffer, batch_size=16))
    for _ in range(15):
        buffer.add(np.zeros(OBS_DIM), np.zeros(1), 0.0, np.zeros(OBS_DIM), False)
    time.sleep(0.3)
    assert learner.updates == 0
    buffer.add(np.zeros(OBS_DIM), np.zeros(1), 0.0, np.zeros(OBS_DIM), False)
    assert wait_for(lambda: learner.updates > 0)


def test_pause_and_resume(learners) -> None:
    learner = start(learners, BackgroundLearner(make_agent(), bandit_buffer(), batch_size=16,
                                                snapshot_every=1000))
    assert wait_for(lambda: learner.updates >= 20)
    assert learner.snapshot_version == 0
    assert learner.set_training(False) == (True, 'gradient updates paused')
    assert not learner.training
    # Going idle hands the newest weights to the control loop without waiting for K updates;
    # it follows the update in flight, so from then on the count stands still.
    assert wait_for(lambda: learner.snapshot_version == 1)
    paused_at = learner.updates
    time.sleep(0.4)
    assert learner.updates == paused_at
    assert learner.snapshot_version == 1
    ok, _ = learner.set_training(True)
    assert ok and learner.training
    assert wait_for(lambda: learner.updates >= paused_at + 20)


def test_update_budget_holds_the_ratio(learners) -> None:
    learner = start(learners, BackgroundLearner(make_agent(), bandit_buffer(), batch_size=16,
                                                limit_updates=True))
    time.sleep(0.2)
    assert learner.updates == 0, 'no update may run before it is granted'
    for _ in range(10):
        learner.allow(1.5)
        assert learner.wait_caught_up(timeout=10.0)
    assert learner.updates == 15
    time.sleep(0.2)
    assert learner.updates == 15
    # Paused, grants are dropped and waiting returns at once: the control loop never blocks.
    learner.set_training(False)
    learner.allow(100.0)
    assert learner.wait_caught_up(timeout=0.0)
    learner.set_training(True)
    time.sleep(0.2)
    assert learner.updates == 15


def test_nan_loss_is_a_fault_that_keeps_the_snapshot(learners) -> None:
    agent = make_agent()
    learner = start(learners, BackgroundLearner(agent, bandit_buffer(), batch_size=16,
                                                snapshot_every=5))
    assert wait_for(lambda: learner.updates >= 30)
    learner.inject_nan_batch()
    assert wait_for(lambda: learner.fault is not None)
    assert 'non-finite loss' in learner.fault
    assert not learner.training
    snapshot, version = learner.snapshot, learner.snapshot_version
    updates = learner.updates
    time.sleep(0.3)
    assert learner.updates == updates, 'a fault must pause learning'
    assert learner.snapshot is snapshot and learner.snapshot_version == version
    assert snapshot_finite(snapshot) and agent.weights_finite()
    # DDPG.update refused the NaN loss, so the weights are fine and learning may resume.
    ok, message = learner.set_training(True)
    assert ok, message
    assert learner.fault is None
    assert wait_for(lambda: learner.updates >= updates + 10)


def test_exception_in_update_is_a_fault(learners) -> None:
    agent = make_agent()
    learner = start(learners, BackgroundLearner(agent, bandit_buffer(), batch_size=16,
                                                snapshot_every=5))
    assert wait_for(lambda: learner.updates >= 10)

    def broken_update(batch: Batch):
        raise RuntimeError('CUDA error: an illegal memory access was encountered')

    learner.update_fn = broken_update
    assert wait_for(lambda: learner.fault is not None)
    assert learner.fault == ('update failed: RuntimeError: CUDA error: an illegal memory '
                             'access was encountered')
    assert not learner.training and learner.running


def test_non_finite_weights_never_reach_the_snapshot(learners) -> None:
    agent = make_agent()
    # A snapshot after every update, so the guard (not the next loss) is what catches it.
    learner = start(learners, BackgroundLearner(agent, bandit_buffer(), batch_size=16,
                                                snapshot_every=1))
    assert wait_for(lambda: learner.snapshot_version >= 2)

    def diverging_update(batch: Batch):
        # A finite loss whose step blows the weights up, as a too-large learning rate can.
        info = agent.update(batch)
        with torch.no_grad():
            agent.actor.net[0].weight.fill_(math.inf)
        return info

    good = learner.snapshot
    good_params = actor_params(good)
    learner.update_fn = diverging_update
    assert wait_for(lambda: learner.fault is not None)
    assert 'non-finite weights' in learner.fault
    assert not agent.weights_finite()
    # The snapshot in use is the last one swapped in before the weights went bad.
    assert snapshot_finite(learner.snapshot)
    assert same_params(good_params, actor_params(good))
    ok, message = learner.set_training(True)
    assert not ok and 'not finite' in message
    assert learner.fault is not None


def test_refuses_an_agent_with_non_finite_weights() -> None:
    agent = make_agent()
    with torch.no_grad():
        agent.actor.net[0].bias.fill_(math.nan)
    with pytest.raises(ValueError, match='non-finite'):
        BackgroundLearner(agent, bandit_buffer(), batch_size=16)


def test_copy_agent_is_consistent_and_independent(learners) -> None:
    agent = make_agent()
    learner = start(learners, BackgroundLearner(agent, bandit_buffer(), batch_size=16))
    assert wait_for(lambda: learner.updates >= 10)
    copy = learner.copy_agent()
    frozen = actor_params(copy.actor)
    assert copy.updates >= 10
    assert wait_for(lambda: learner.updates >= copy.updates + 20)
    assert same_params(frozen, actor_params(copy.actor))


def test_stops_cleanly_while_waiting_and_while_updating() -> None:
    idle = BackgroundLearner(make_agent(), ReplayBuffer(10, OBS_DIM, 1), batch_size=16)
    idle.start()
    started = time.monotonic()
    assert idle.stop(timeout=5.0)
    assert time.monotonic() - started < 2.5  # woken, not joined at the timeout
    busy = BackgroundLearner(make_agent(), bandit_buffer(), batch_size=16)
    busy.start()
    assert wait_for(lambda: busy.updates > 5)
    assert busy.stop(timeout=5.0)
    assert not busy.running
    assert not busy.training
    # A stopped learner never makes the control loop wait.
    assert busy.wait_caught_up(timeout=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_learns_on_cuda_and_acts_with_a_cpu_snapshot(learners) -> None:
    agent = make_agent(device='auto')
    assert agent.device.type == 'cuda'
    buffer = bandit_buffer()
    buffer.device = agent.device  # batches go to the GPU, as the node sets it up
    learner = start(learners, BackgroundLearner(agent, buffer, batch_size=16, snapshot_every=10))
    assert wait_for(lambda: learner.snapshot_version >= 5, timeout=60.0), learner.fault
    assert learner.fault is None
    assert next(learner.snapshot.parameters()).device.type == 'cpu'
    assert next(agent.actor.parameters()).device.type == 'cuda'
    assert learner.copy_agent().device.type == 'cuda'
