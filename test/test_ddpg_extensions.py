"""The learner's opt-in extensions (TD3, LayerNorm, dropout, CrossQ) against hand values."""

import io
import math

import numpy as np
import pytest
import torch

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.core.networks import BatchRenorm, Critic, EnsembleCritic
from ddpg_ros.core.replay_buffer import Batch

GAMMA = 0.9


def _set_member(critic: EnsembleCritic, i: int, hidden: list[float], hidden_bias: float,
                out: float, out_bias: float) -> None:
    """Critic i of a one-unit ensemble: ``Q_i(s, a) = out * relu(w . (s, a) + b) + out_bias``."""
    with torch.no_grad():
        critic.layers[0].weight[i, :, 0] = torch.tensor(hidden)
        critic.layers[0].bias[i, 0, 0] = hidden_bias
        critic.out.weight[i, 0, 0] = out
        critic.out.bias[i, 0, 0] = out_bias


def _set_actor(actor: torch.nn.Module, out: float) -> None:
    """Make ``actor`` one unit wide: ``mu(s) = 2 * tanh(out * relu(s))`` on the bounds [-2, 2]."""
    with torch.no_grad():
        actor.net[0].weight.fill_(1.0)
        actor.net[0].bias.fill_(0.0)
        actor.net[2].weight.fill_(out)
        actor.net[2].bias.fill_(0.0)


@pytest.fixture()
def twin() -> DDPG:
    """
    1-D obs, 1-D action in [-2, 2], one hidden unit everywhere, two critics.

    target actor:   mu'(s)    = 2 * tanh(0.5 * relu(s))
    target critics: Q'_1(s,a) = 3 * relu(s + a),  Q'_2(s,a) = 2 * relu(s + a) + 1
    critics:        Q_1(s,a)  = 2 * relu(s + a) + 0.5,  Q_2(s,a) = 1 * relu(s + a)
    actor:          mu(s)     = 2 * tanh(relu(s))
    """
    config = DDPGConfig(gamma=GAMMA, tau=0.5, hidden_sizes=(1,), batch_size=2, buffer_size=2,
                        actor_lr=0.1, critic_lr=0.1, device='cpu', n_critics=2)
    agent = DDPG(1, np.array([-2.0]), np.array([2.0]), config)
    assert isinstance(agent.critic, EnsembleCritic) and agent.critic.n == 2
    _set_actor(agent.actor, 1.0)
    _set_actor(agent.actor_target, 0.5)
    _set_member(agent.critic_target, 0, [1.0, 1.0], 0.0, 3.0, 0.0)
    _set_member(agent.critic_target, 1, [1.0, 1.0], 0.0, 2.0, 1.0)
    _set_member(agent.critic, 0, [1.0, 1.0], 0.0, 2.0, 0.5)
    _set_member(agent.critic, 1, [1.0, 1.0], 0.0, 1.0, 0.0)
    return agent


def _batch() -> Batch:
    return Batch(obs=torch.tensor([[1.0], [0.2]]), actions=torch.tensor([[0.5], [-0.1]]),
                 rewards=torch.tensor([1.0, 2.0]), next_obs=torch.tensor([[0.5], [1.5]]),
                 terminated=torch.tensor([0.0, 0.0]))


def _twin_target_by_hand(reward: float, next_obs: float) -> float:
    next_action = 2 * math.tanh(0.5 * max(next_obs, 0.0))
    x = max(next_obs + next_action, 0.0)
    return reward + GAMMA * min(3 * x, 2 * x + 1)


def test_the_target_takes_the_smaller_of_the_two_target_critics(twin: DDPG) -> None:
    y = twin.critic_target_values(_batch())
    # s'=0.5: 3x = 2.969 < 2x+1 = 2.980 (first critic); s'=1.5: 2x+1 = 6.541 < 3x (second).
    assert y.tolist() == pytest.approx([_twin_target_by_hand(1.0, 0.5),
                                        _twin_target_by_hand(2.0, 1.5)], rel=1e-6)
    assert y[0] == pytest.approx(1.0 + GAMMA * 3 * (0.5 + 2 * math.tanh(0.25)), rel=1e-6)


def test_the_critic_loss_sums_each_critics_mean_squared_error(twin: DDPG) -> None:
    loss, q = twin.critic_loss(_batch())
    y = [_twin_target_by_hand(1.0, 0.5), _twin_target_by_hand(2.0, 1.5)]
    q1 = [2 * 1.5 + 0.5, 2 * 0.1 + 0.5]
    q2 = [1.5, 0.1]
    assert q.tolist() == [pytest.approx(q1), pytest.approx(q2)]
    by_hand = (np.mean((np.subtract(q1, y)) ** 2) + np.mean((np.subtract(q2, y)) ** 2))
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)


def test_the_actor_ascends_the_mean_of_the_critics(twin: DDPG) -> None:
    obs = torch.tensor([[1.0], [0.2]])
    mu = [2 * math.tanh(1.0), 2 * math.tanh(0.2)]
    q_mean = [(2 * (s + a) + 0.5 + (s + a)) / 2 for s, a in zip([1.0, 0.2], mu)]
    assert twin.actor_loss(obs).item() == pytest.approx(-np.mean(q_mean), rel=1e-6)


def test_with_actor_q_min_the_actor_ascends_the_smaller_critic_of_each_sample(
        twin: DDPG) -> None:
    twin.config.actor_q = 'min'
    obs = torch.tensor([[1.0], [0.2]])
    mu = [2 * math.tanh(1.0), 2 * math.tanh(0.2)]
    # Q_1 = 2x + 0.5 against Q_2 = x (x = s + mu(s) = 2.523, 0.595): Q_2 is the smaller at both.
    q_min = [min(2 * (s + a) + 0.5, s + a) for s, a in zip([1.0, 0.2], mu)]
    assert q_min == pytest.approx([1.0 + mu[0], 0.2 + mu[1]])
    assert twin.actor_loss(obs).item() == pytest.approx(-np.mean(q_min), rel=1e-6)
    # The gradient reaches the actor through Q_2 alone: d(-mean x)/dw of mu = 2 tanh(w relu(s)).
    twin.actor.zero_grad()
    twin.actor_loss(obs).backward()
    by_hand = -np.mean([2 * s / math.cosh(s) ** 2 for s in (1.0, 0.2)])
    assert twin.actor.net[2].weight.grad.item() == pytest.approx(by_hand, rel=1e-5)


def test_with_actor_q_min_the_smaller_critic_is_chosen_per_sample() -> None:
    config = DDPGConfig(hidden_sizes=(1,), batch_size=2, buffer_size=2, device='cpu',
                        n_critics=2, actor_q='min')
    agent = DDPG(1, np.array([-2.0]), np.array([2.0]), config)
    _set_actor(agent.actor, 1.0)
    # Q_1 = 2 relu(s + a) - 1 and Q_2 = relu(s + a): Q_1 is smaller where s + a < 1, not after.
    _set_member(agent.critic, 0, [1.0, 1.0], 0.0, 2.0, -1.0)
    _set_member(agent.critic, 1, [1.0, 1.0], 0.0, 1.0, 0.0)
    obs = torch.tensor([[0.1], [1.0]])
    xs = [s + 2 * math.tanh(s) for s in (0.1, 1.0)]
    assert xs[0] < 1.0 < xs[1]
    q_min = [2 * xs[0] - 1, xs[1]]
    assert agent.actor_loss(obs).item() == pytest.approx(-np.mean(q_min), rel=1e-6)


def test_the_pre_activation_penalty_adds_its_weight_times_the_mean_square_before_tanh(
        twin: DDPG) -> None:
    obs = torch.tensor([[1.0], [0.2]])
    without = twin.actor_loss(obs).item()
    twin.config.pre_activation_penalty = 0.5
    # mu(s) = 2 * tanh(x) with x = relu(s): x = 1.0 and 0.2, mean(x^2) = 0.52.
    assert twin.actor_loss(obs).item() == pytest.approx(without + 0.5 * 0.52, rel=1e-6)


def test_the_pre_activation_penalty_pulls_a_saturated_actor_back_where_q_cannot() -> None:
    """At x = 30 the tanh passes no gradient in float32; only the penalty's reaches the actor."""
    def saturated(weight: float) -> DDPG:
        config = DDPGConfig(hidden_sizes=(1,), batch_size=2, buffer_size=2, actor_lr=0.1,
                            device='cpu', pre_activation_penalty=weight)
        agent = DDPG(1, np.array([-2.0]), np.array([2.0]), config)
        _set_actor(agent.actor, 30.0)
        return agent

    obs = torch.tensor([[1.0], [1.0]])
    for weight, moves in ((0.0, False), (1e-3, True)):
        agent = saturated(weight)
        agent._actor_step(obs, check_finite=True)
        assert (agent.actor.net[2].weight.item() < 30.0) == moves, weight
        assert (agent.actor.net[2].bias.item() < 0.0) == moves, weight


def test_target_smoothing_noise_is_clipped_scaled_and_kept_in_bounds() -> None:
    config = DDPGConfig(hidden_sizes=(8,), device='cpu', target_noise=0.2, target_noise_clip=0.5)
    agent = DDPG(3, np.array([-2.0, 0.0]), np.array([2.0, 1.0]), config)
    next_obs = torch.randn(20_000, 3)
    clean = agent.actor_target(next_obs)
    noise = (agent.target_action(next_obs) - clean).detach()
    half_range = torch.tensor([2.0, 0.5])
    # Clipped at 0.5 half ranges, then clamped to the bounds: never beyond either.
    assert (noise.abs() <= 0.5 * half_range + 1e-6).all()
    smoothed = clean + noise
    assert (smoothed >= torch.tensor([-2.0, 0.0]) - 1e-6).all()
    assert (smoothed <= torch.tensor([2.0, 1.0]) + 1e-6).all()
    # Away from the bounds it is N(0, 0.2 half ranges) (the clip at 2.5 sigma barely bites).
    inside = ((clean - torch.tensor([-2.0, 0.0])).abs() > 0.5 * half_range).all(1) & \
        ((clean - torch.tensor([2.0, 1.0])).abs() > 0.5 * half_range).all(1)
    assert inside.sum() > 5000
    std = (noise[inside] / half_range).std(0)
    assert std.tolist() == pytest.approx([0.2, 0.2], abs=0.01)
    assert DDPG(3, np.array([-2.0, 0.0]), np.array([2.0, 1.0]), config).target_action(
        next_obs).sub(clean + noise).abs().max() < 1e-6, 'same seed, same smoothing noise'


def test_without_smoothing_the_target_action_is_the_target_actor() -> None:
    agent = DDPG(3, np.array([-1.0]), np.array([1.0]), DDPGConfig(device='cpu'))
    obs = torch.randn(64, 3)
    assert torch.equal(agent.target_action(obs), agent.actor_target(obs))


def test_a_policy_delay_moves_actor_and_targets_on_every_second_update_only() -> None:
    config = DDPGConfig(hidden_sizes=(16,), device='cpu', batch_size=32, buffer_size=32,
                        policy_delay=2, n_critics=2, target_noise=0.2)
    agent = DDPG(3, np.array([-1.0]), np.array([1.0]), config)
    generator = torch.Generator().manual_seed(1)
    batch = Batch(obs=torch.randn(32, 3, generator=generator),
                  actions=torch.rand(32, 1, generator=generator) * 2 - 1,
                  rewards=torch.randn(32, generator=generator),
                  next_obs=torch.randn(32, 3, generator=generator),
                  terminated=torch.zeros(32))

    names = ('actor', 'actor_target', 'critic', 'critic_target')

    def snapshot() -> dict[str, torch.Tensor]:
        return {f'{name}.{key}': value.clone() for name in names
                for key, value in getattr(agent, name).state_dict().items()}

    moved = []
    for _ in range(4):
        before = snapshot()
        agent.update(batch)
        after = snapshot()
        moved.append({name for name in names
                      if any(not torch.equal(before[k], after[k]) for k in before
                             if k.startswith(name + '.'))})
    everything = {'actor', 'actor_target', 'critic', 'critic_target'}
    assert moved == [everything, {'critic'}, everything, {'critic'}]
    assert agent.updates == 4


def test_the_ensemble_is_the_same_function_as_separate_critics() -> None:
    torch.manual_seed(3)
    ensemble = EnsembleCritic(3, obs_dim=5, action_dim=2, hidden_sizes=(7, 4))
    obs, action = torch.randn(11, 5), torch.randn(11, 2)
    q = ensemble(obs, action)
    assert q.shape == (3, 11)
    for i in range(3):
        alone = Critic(5, 2, (7, 4))
        with torch.no_grad():
            for linear, layer in zip(alone.net[0::2], [*ensemble.layers, ensemble.out]):
                linear.weight.copy_(layer.weight[i].T)
                linear.bias.copy_(layer.bias[i, 0])
        torch.testing.assert_close(q[i], alone(obs, action))


def test_layer_norm_normalizes_each_critics_hidden_units_with_its_own_affine() -> None:
    critic = EnsembleCritic(2, obs_dim=1, action_dim=1, hidden_sizes=(2,), layer_norm=True)
    with torch.no_grad():
        critic.layers[0].weight.copy_(torch.tensor([[[1.0, 3.0], [0.0, 1.0]],
                                                    [[2.0, -1.0], [1.0, 1.0]]]))
        critic.layers[0].bias.zero_()
        critic.norm_weight[0].copy_(torch.tensor([[[2.0, 2.0]], [[1.0, 0.5]]]))
        critic.norm_bias[0].copy_(torch.tensor([[[0.0, 1.0]], [[0.0, 0.0]]]))
        critic.out.weight.fill_(1.0)
        critic.out.bias.zero_()
    s, a = 1.0, 2.0
    q = critic(torch.tensor([[s]]), torch.tensor([[a]]))[:, 0]

    def by_hand(h: list[float], gain: list[float], shift: list[float]) -> float:
        mean = sum(h) / 2
        var = sum((x - mean) ** 2 for x in h) / 2
        normed = [(x - mean) / math.sqrt(var + 1e-5) for x in h]
        return sum(max(g * x + b, 0.0) for x, g, b in zip(normed, gain, shift))

    # Critic 0: h = (1*s + 0*a, 3*s + 1*a) = (1, 5); critic 1: h = (2*s + 1*a, -s + a) = (4, 1).
    assert q.tolist() == pytest.approx([by_hand([1.0, 5.0], [2.0, 2.0], [0.0, 1.0]),
                                        by_hand([4.0, 1.0], [1.0, 0.5], [0.0, 0.0])], rel=1e-5)


def test_dropout_zeroes_a_share_p_of_hidden_units_and_rescales_the_rest() -> None:
    width, p = 20_000, 0.25
    critic = EnsembleCritic(1, obs_dim=1, action_dim=1, hidden_sizes=(width,), dropout=p)
    critic.generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        critic.layers[0].weight.fill_(1.0)
        critic.layers[0].bias.zero_()
        critic.out.weight.fill_(1.0)
        critic.out.bias.zero_()
    # Q = sum over kept units of relu(s + a) / (1 - p) = (s + a) * kept / (1 - p).
    q = critic(torch.tensor([[0.5]]), torch.tensor([[0.5]])).item()
    kept = q * (1 - p)
    assert kept == pytest.approx(round(kept), abs=0.05), 'each unit is kept or not, whole'
    assert kept / width == pytest.approx(1 - p, abs=0.015)
    first = critic.generator.get_state()
    again = critic(torch.tensor([[0.5]]), torch.tensor([[0.5]])).item()
    assert again != q, 'a new mask per pass'
    critic.generator.set_state(first)
    assert critic(torch.tensor([[0.5]]), torch.tensor([[0.5]])).item() == again


def test_the_plain_config_keeps_the_papers_single_critic_and_its_checkpoint_keys() -> None:
    agent = DDPG(3, np.array([-1.0]), np.array([1.0]), DDPGConfig(device='cpu'))
    assert type(agent.critic) is Critic
    assert set(agent.critic.state_dict()) == {'net.0.weight', 'net.0.bias', 'net.2.weight',
                                              'net.2.bias', 'net.4.weight', 'net.4.bias'}


def _assert_a_restore_continues_as_one_run(config: DDPGConfig, updates: int,
                                           networks: tuple[str, ...]) -> tuple[DDPG, DDPG]:
    """
    Update a learner, restore a copy from its state, update both as many times again.

    The copy goes through bytes, as a checkpoint file: an optimizer loaded from a live state
    dict would share its moment tensors with the original. Asserts that ``networks`` end
    equal; returns the learner and its copy.
    """
    agent = DDPG(3, np.array([-1.0]), np.array([1.0]), config)
    batch = Batch(obs=torch.randn(32, 3), actions=torch.rand(32, 1) * 2 - 1,
                  rewards=torch.randn(32), next_obs=torch.randn(32, 3),
                  terminated=torch.zeros(32))
    for _ in range(updates):
        agent.update(batch)
    saved = io.BytesIO()
    torch.save(agent.state_dict(), saved)
    saved.seek(0)
    restored = DDPG(3, np.array([-1.0]), np.array([1.0]), config)
    restored.load_state_dict(torch.load(saved, weights_only=True))
    for _ in range(updates):
        agent.update(batch)
        restored.update(batch)
    for name in networks:
        for key, value in getattr(agent, name).state_dict().items():
            assert torch.equal(value, getattr(restored, name).state_dict()[key]), (name, key)
    return agent, restored


def test_a_restored_learner_draws_the_same_smoothing_noise_and_dropout_masks() -> None:
    config = DDPGConfig(hidden_sizes=(16,), device='cpu', batch_size=32, buffer_size=32,
                        n_critics=2, target_noise=0.2, critic_dropout=0.1, policy_delay=2)
    # The delay's phase, the noise and the masks all continue as one run.
    _assert_a_restore_continues_as_one_run(config, 3, ('actor', 'critic', 'actor_target',
                                                       'critic_target'))


def test_a_restored_crossq_learner_continues_with_its_running_statistics() -> None:
    config = DDPGConfig(hidden_sizes=(16,), device='cpu', batch_size=32, buffer_size=32,
                        n_critics=2, critic_norm='batch_renorm', policy_delay=3,
                        adam_beta1=0.5, target_noise=0.2)
    agent, restored = _assert_a_restore_continues_as_one_run(config, 4, ('actor', 'critic'))
    assert int(restored.critic.renorms[0].steps) == 8
    assert agent.actor_optimizer.param_groups[0]['betas'] == (0.5, 0.999)


def test_a_loaded_batch_renorm_knows_that_its_warmup_is_over() -> None:
    torch.manual_seed(0)
    norm = BatchRenorm(1, 3, warmup=2).train()
    for _ in range(2):
        norm(torch.randn(1, 8, 3))
    loaded = BatchRenorm(1, 3, warmup=2).train()
    loaded.load_state_dict(norm.state_dict())
    x = torch.randn(1, 8, 3) * 4.0 + 2.0  # far from the running statistics: r, d are not 1, 0
    by_batch = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True)
                                                          + norm.eps)
    out = loaded(x)
    assert torch.equal(out, norm(x))
    assert not torch.allclose(out, by_batch, atol=1e-3)


def test_batch_renorm_normalizes_by_the_batch_in_training_and_by_the_running_stats_after() -> None:
    norm = BatchRenorm(2, 1, momentum=0.25, eps=0.0, warmup=10)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([[[2.0]], [[1.0]]]))
        norm.bias.copy_(torch.tensor([[[0.0]], [[1.0]]]))
    # Member 0 sees 1, 3 (mean 2, biased variance 1); member 1 sees 0, 4 (mean 2, variance 4).
    x = torch.tensor([[[1.0], [3.0]], [[0.0], [4.0]]])
    norm.train()
    y = norm(x)
    assert y[:, :, 0].tolist() == [[-2.0, 2.0], [0.0, 2.0]]  # 2 * (-1, 1); (-1, 1) + 1
    # running = running + 0.25 * (batch - running), from mean 0 and variance 1.
    assert norm.running_mean[:, 0, 0].tolist() == [0.5, 0.5]
    assert norm.running_var[:, 0, 0].tolist() == [1.0, 1.75]
    assert int(norm.steps) == 1
    norm.eval()
    y = norm(torch.tensor([[[1.5]], [[2.25]]]))
    assert y[:, 0, 0].tolist() == pytest.approx([2.0, 1.0 + 1.75 / math.sqrt(1.75)])
    assert int(norm.steps) == 1, 'evaluation passes leave the statistics alone'


def test_batch_renorm_after_its_warmup_corrects_the_batch_towards_the_running_stats() -> None:
    norm = BatchRenorm(1, 1, momentum=0.5, eps=0.0, r_max=1.5, d_max=0.25, warmup=0)
    with torch.no_grad():
        norm.running_mean.fill_(1.0)
        norm.running_var.fill_(1.0)
    x = torch.tensor([[[1.0], [5.0]]], requires_grad=True)  # batch mean 3, std 2
    norm.train()
    y = norm(x)
    # r = clip(2 / 1, 1/1.5, 1.5) = 1.5; d = clip((3 - 1) / 1, -0.25, 0.25) = 0.25;
    # y = (x - 3) / 2 * r + d.
    assert y[0, :, 0].tolist() == pytest.approx([-1.5 + 0.25, 1.5 + 0.25])
    # r and d are constants of the gradient, so y_0 moves as BatchNorm's -1 of two values
    # does: not at all. (Were r differentiated, y_0 = (x_0 - mean) / running_std + d and
    # d y_0 / d x_0 would be 0.5.)
    y[0, 0, 0].backward()
    assert x.grad[0, :, 0].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert norm.running_mean.item() == 2.0 and norm.running_var.item() == 2.5


def test_crossq_has_no_targets_and_takes_its_target_from_the_same_pass() -> None:
    config = DDPGConfig(gamma=GAMMA, hidden_sizes=(1,), batch_size=2, buffer_size=2,
                        device='cpu', critic_norm='batch_renorm')
    agent = DDPG(1, np.array([-2.0]), np.array([2.0]), config)
    assert agent.actor_target is None and agent.critic_target is None
    assert not {'actor_target', 'critic_target'} & set(agent.state_dict())
    critic = agent.critic
    _set_actor(agent.actor, 1.0)
    with torch.no_grad():
        critic.layers[0].weight.copy_(torch.tensor([[[1.0], [1.0]]]))
        critic.layers[0].bias.zero_()
        critic.out.weight.fill_(1.0)
        critic.out.bias.zero_()
    batch = _batch()
    loss, q = agent.critic_loss(batch)

    def standardize(values: list[float]) -> list[float]:
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values) + 1e-3)
        return [(v - mean) / std for v in values]

    # One batch of 4 rows: (s, a) of the batch, then (s', mu(s')) with mu(s) = 2 tanh(relu(s)).
    s = [1.0, 0.2, 0.5, 1.5]
    a = [0.5, -0.1, 2 * math.tanh(0.5), 2 * math.tanh(1.5)]
    s_n, a_n = standardize(s), standardize(a)
    hidden = standardize([max(x + u, 0.0) for x, u in zip(s_n, a_n)])
    values = hidden  # the last renorm feeds the output layer (weight 1, bias 0) directly
    assert q.tolist() == pytest.approx(values[:2], abs=1e-5)
    y = [r + GAMMA * v for r, v in zip([1.0, 2.0], values[2:])]
    assert loss.item() == pytest.approx(sum((v - t) ** 2 for v, t in zip(values[:2], y)) / 2,
                                        abs=1e-5)
    assert all(int(n.steps) == 1 for n in critic.renorms), 'one training pass, once'
    assert not critic.training, 'other passes use the running statistics'


def test_a_checkpoint_from_before_the_extensions_loads_as_plain_ddpg() -> None:
    agent = DDPG(3, np.array([-1.0]), np.array([1.0]), DDPGConfig(device='cpu'))
    old = agent.state_dict()
    del old['generator']
    again = DDPG(3, np.array([-1.0]), np.array([1.0]), DDPGConfig.from_dict(
        {k: v for k, v in DDPGConfig(device='cpu').to_dict().items()
         if k not in ('n_critics', 'target_noise', 'target_noise_clip', 'policy_delay',
                      'critic_norm', 'critic_dropout')}))
    again.load_state_dict(old)
    obs = np.array([0.1, -0.2, 0.3])
    assert np.array_equal(again.act(obs), agent.act(obs))


@pytest.mark.parametrize('extensions', [{}, {'n_critics': 2, 'critic_norm': 'layer'},
                                        {'n_critics': 2, 'critic_norm': 'batch_renorm'}])
def test_critics_can_be_wider_than_the_actor_and_a_checkpoint_keeps_their_widths(
        extensions: dict) -> None:
    config = DDPGConfig(hidden_sizes=(8,), critic_hidden_sizes=(32, 16), device='cpu',
                        **extensions)
    agent = DDPG(3, np.array([-1.0]), np.array([1.0]), config)
    actor_widths = [p.shape[0] for n, p in agent.actor.named_parameters() if n.endswith('bias')]
    assert actor_widths == [8, 1]
    for critic in filter(None, (agent.critic, agent.critic_target)):
        # Every bias vector's length is a layer's width; ensembles hold one row per critic.
        widths = [p.shape[-1] if isinstance(critic, EnsembleCritic) else p.shape[0]
                  for n, p in critic.named_parameters() if 'bias' in n and 'norm' not in n]
        assert widths == [32, 16, 1]
    restored = DDPGConfig.from_dict(config.to_dict())
    assert restored.critic_widths == (32, 16) and restored.hidden_sizes == (8,)
    again = DDPG(3, np.array([-1.0]), np.array([1.0]), restored)
    again.load_state_dict(agent.state_dict())
    obs = np.array([0.1, -0.2, 0.3])
    assert np.array_equal(again.act(obs), agent.act(obs))


def test_without_critic_widths_the_critics_take_the_actors() -> None:
    old = {k: v for k, v in DDPGConfig(hidden_sizes=(8, 4)).to_dict().items()
           if k != 'critic_hidden_sizes'}
    config = DDPGConfig.from_dict(old)
    assert config.critic_hidden_sizes == () and config.critic_widths == (8, 4)


@pytest.mark.parametrize('field, value, message', [
    ('n_critics', 0, 'n_critics=0 must be >= 1'),
    ('target_noise', -0.1, 'target_noise=-0.1 must be >= 0'),
    ('target_noise_clip', float('nan'), 'target_noise_clip=nan must be >= 0'),
    ('policy_delay', 0, 'policy_delay=0 must be >= 1'),
    ('critic_norm', 'batch', "critic_norm='batch' must be one of none, layer, batch_renorm"),
    ('actor_q', 'max', "actor_q='max' must be one of mean, min"),
    ('adam_beta1', 1.0, 'adam_beta1=1.0 must be in [0, 1)'),
    ('critic_dropout', 1.0, 'critic_dropout=1.0 must be in [0, 1)'),
    ('pre_activation_penalty', -1e-5, 'pre_activation_penalty=-1e-05 must be >= 0'),
    ('critic_hidden_sizes', (64, 0), 'critic_hidden_sizes=(64, 0) must be positive widths'),
])
def test_bad_extension_settings_are_refused_by_name(field: str, value: object,
                                                    message: str) -> None:
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace('(', r'\(')
                       .replace(')', r'\)')):
        DDPGConfig(**{field: value})
