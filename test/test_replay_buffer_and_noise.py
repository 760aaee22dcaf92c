"""Replay buffer storage and sampling; exploration noise statistics."""

import threading

import numpy as np
import pytest
import torch

from ddpg_ros.core.noise import GaussianNoise, NoNoise, OrnsteinUhlenbeckNoise, make_noise
from ddpg_ros.core.replay_buffer import ReplayBuffer


def _fill(buffer: ReplayBuffer, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        buffer.add(np.full(buffer.obs_dim, i), np.full(buffer.action_dim, -i), float(i),
                   np.full(buffer.obs_dim, i + 0.5), i % 2 == 1)


def test_shapes_and_dtypes() -> None:
    buffer = ReplayBuffer(10, obs_dim=3, action_dim=2)
    _fill(buffer, 4)
    batch = buffer.sample(5)
    assert batch.obs.shape == (5, 3) and batch.next_obs.shape == (5, 3)
    assert batch.actions.shape == (5, 2)
    assert batch.rewards.shape == (5,) and batch.terminated.shape == (5,)
    assert all(t.dtype == torch.float32 for t in batch)
    # Each sampled row is one consistent transition.
    i = batch.rewards
    assert torch.equal(batch.obs[:, 0], i) and torch.equal(batch.actions[:, 1], -i)
    assert torch.equal(batch.next_obs[:, 2], i + 0.5)
    assert torch.equal(batch.terminated, (i % 2 == 1).float())


def test_wraps_around_overwriting_the_oldest() -> None:
    buffer = ReplayBuffer(5, obs_dim=1, action_dim=1)
    _fill(buffer, 8)
    assert len(buffer) == 5 and buffer.position == 3 and buffer.total_added == 8
    assert sorted(buffer.rewards.tolist()) == [3, 4, 5, 6, 7]


def test_sampling_is_uniform_over_stored_transitions() -> None:
    buffer = ReplayBuffer(100, obs_dim=1, action_dim=1, seed=1)
    _fill(buffer, 10)
    counts = np.bincount(buffer.sample(100_000).rewards.numpy().astype(int), minlength=10)
    assert counts.sum() == 100_000 and (counts > 0).all()
    # Chi-square with 9 degrees of freedom: 27.9 is the 0.999 quantile.
    chi2 = ((counts - 10_000) ** 2 / 10_000).sum()
    assert chi2 < 27.9


def test_sampling_only_sees_filled_rows() -> None:
    buffer = ReplayBuffer(1000, obs_dim=1, action_dim=1)
    _fill(buffer, 3)
    assert set(buffer.sample(500).rewards.tolist()) == {0.0, 1.0, 2.0}


def test_refuses_non_finite_and_empty_sampling() -> None:
    buffer = ReplayBuffer(4, obs_dim=1, action_dim=1)
    with pytest.raises(ValueError, match='empty'):
        buffer.sample(1)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match='non-finite'):
            buffer.add(np.array([bad]), np.zeros(1), 0.0, np.zeros(1), False)
    with pytest.raises(ValueError, match='non-finite'):
        buffer.add(np.zeros(1), np.zeros(1), float('nan'), np.zeros(1), False)
    assert len(buffer) == 0


def test_memory_is_preallocated_float32() -> None:
    buffer = ReplayBuffer(1000, obs_dim=17, action_dim=6)
    assert buffer.nbytes == 1000 * 4 * (2 * 17 + 6 + 3)  # obs, next obs, action, r, done, horizon


def test_concurrent_add_and_sample_stay_consistent() -> None:
    buffer = ReplayBuffer(64, obs_dim=4, action_dim=2)
    _fill(buffer, 1)
    errors: list[str] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            b = buffer.sample(32)
            if not torch.equal(b.obs[:, 3], b.rewards) or not torch.equal(b.actions[:, 0],
                                                                          -b.rewards):
                errors.append('torn row')

    thread = threading.Thread(target=sampler)
    thread.start()
    _fill(buffer, 20_000, start=1)
    stop.set()
    thread.join()
    assert errors == []


def test_save_and_load_round_trip(tmp_path) -> None:
    buffer = ReplayBuffer(5, obs_dim=2, action_dim=1)
    _fill(buffer, 7)
    path = buffer.save(tmp_path / 'buffer.npz')
    restored = ReplayBuffer(10, obs_dim=2, action_dim=1)
    restored.load(path)
    assert len(restored) == 5 and restored.total_added == 7
    assert restored.rewards[:5].tolist() == [2, 3, 4, 5, 6]  # oldest first
    with pytest.raises(ValueError, match='obs_dim=2'):
        ReplayBuffer(5, obs_dim=3, action_dim=1).load(path)


def test_gaussian_noise_statistics() -> None:
    noise = GaussianNoise(np.array([0.1, 2.0]), np.random.default_rng(0))
    samples = np.array([noise() for _ in range(20_000)])
    assert np.abs(samples.mean(axis=0)).max() < 0.05
    assert samples.std(axis=0) == pytest.approx([0.1, 2.0], rel=0.03)
    # Independent steps: no autocorrelation.
    assert abs(np.corrcoef(samples[:-1, 1], samples[1:, 1])[0, 1]) < 0.03


def test_ornstein_uhlenbeck_statistics_and_reset() -> None:
    theta = 0.15
    noise = OrnsteinUhlenbeckNoise(np.array([1.0]), np.random.default_rng(0), theta=theta)
    samples = np.array([noise()[0] for _ in range(100_000)])[1000:]
    # Discrete AR(1) x' = (1 - theta) x + e: variance 1 / (1 - (1 - theta)^2), lag-1 corr 1-theta.
    assert samples.var() == pytest.approx(1 / (1 - (1 - theta) ** 2), rel=0.1)
    assert np.corrcoef(samples[:-1], samples[1:])[0, 1] == pytest.approx(1 - theta, abs=0.02)
    noise.reset()
    assert noise.x.tolist() == [0.0]
    state = noise.state_dict()
    noise()
    noise.load_state_dict(state)
    assert noise.x.tolist() == [0.0]


def test_make_noise_scales_sigma_to_the_action_range() -> None:
    rng = np.random.default_rng(0)
    noise = make_noise('gaussian', 0.1, np.array([-1.0, 0.0]), np.array([1.0, 10.0]), rng)
    assert noise.scale.tolist() == pytest.approx([0.1, 0.5])
    assert isinstance(make_noise('none', 0.1, np.zeros(1), np.ones(1), rng), NoNoise)
    with pytest.raises(ValueError, match='noise_type'):
        make_noise('pink', 0.1, np.zeros(1), np.ones(1), rng)
