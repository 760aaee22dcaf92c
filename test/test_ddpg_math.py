"""The DDPG update against values computed by hand on one-neuron networks."""

import math

import numpy as np
import pytest
import torch

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG, NonFiniteLossError, soft_update
from ddpg_ros.core.replay_buffer import Batch

GAMMA = 0.9


def _set_linear(layer: torch.nn.Linear, weight: list[float], bias: float) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
        layer.bias.fill_(bias)


@pytest.fixture()
def agent() -> DDPG:
    """
    Build a DDPG with 1-D obs, 1-D action in [-2, 2] and one hidden unit everywhere.

    actor:         mu(s)   = 2 * tanh(1 * relu(1 * s + 0) + 0)
    critic:        Q(s, a) = 2 * relu(s + a) + 0.5
    target actor:  mu'(s)  = 2 * tanh(0.5 * relu(s))
    target critic: Q'(s,a) = 3 * relu(s + a)
    """
    config = DDPGConfig(gamma=GAMMA, tau=0.5, hidden_sizes=(1,), batch_size=2, buffer_size=2,
                        actor_lr=0.1, critic_lr=0.1, device='cpu')
    agent = DDPG(1, np.array([-2.0]), np.array([2.0]), config)
    _set_linear(agent.actor.net[0], [1.0], 0.0)
    _set_linear(agent.actor.net[2], [1.0], 0.0)
    _set_linear(agent.critic.net[0], [1.0, 1.0], 0.0)
    _set_linear(agent.critic.net[2], [2.0], 0.5)
    _set_linear(agent.actor_target.net[0], [1.0], 0.0)
    _set_linear(agent.actor_target.net[2], [0.5], 0.0)
    _set_linear(agent.critic_target.net[0], [1.0, 1.0], 0.0)
    _set_linear(agent.critic_target.net[2], [3.0], 0.0)
    return agent


def _batch(terminated: list[float]) -> Batch:
    return Batch(obs=torch.tensor([[1.0], [0.2]]), actions=torch.tensor([[0.5], [-0.1]]),
                 rewards=torch.tensor([1.0, 2.0]), next_obs=torch.tensor([[0.5], [1.5]]),
                 terminated=torch.tensor(terminated))


def _target_by_hand(reward: float, next_obs: float, terminated: float) -> float:
    next_action = 2 * math.tanh(0.5 * max(next_obs, 0.0))
    next_q = 3 * max(next_obs + next_action, 0.0)
    return reward + GAMMA * (1 - terminated) * next_q


def test_actor_scales_tanh_to_the_bounds(agent: DDPG) -> None:
    assert agent.act(np.array([0.5]))[0] == pytest.approx(2 * math.tanh(0.5), abs=1e-6)
    assert agent.act(np.array([100.0]))[0] == pytest.approx(2.0, abs=1e-6)


def test_critic_target_uses_target_networks_and_stops_at_termination(agent: DDPG) -> None:
    y = agent.critic_target_values(_batch([0.0, 1.0]))
    assert y[0].item() == pytest.approx(_target_by_hand(1.0, 0.5, 0.0), rel=1e-6)
    # Terminated: no bootstrap at all, the target is the reward.
    assert y[1].item() == pytest.approx(2.0, rel=1e-6)


def test_a_truncated_transition_keeps_bootstrapping(agent: DDPG) -> None:
    # A time-limit truncation is stored with terminated = 0, so it bootstraps like any step.
    y = agent.critic_target_values(_batch([0.0, 0.0]))
    assert y[1].item() == pytest.approx(_target_by_hand(2.0, 1.5, 0.0), rel=1e-6)
    assert y[1].item() > 2.0


def test_critic_loss_is_mean_squared_bellman_error(agent: DDPG) -> None:
    loss, q = agent.critic_loss(_batch([0.0, 1.0]))
    q_by_hand = [2 * max(1.0 + 0.5, 0) + 0.5, 2 * max(0.2 - 0.1, 0) + 0.5]
    y_by_hand = [_target_by_hand(1.0, 0.5, 0.0), 2.0]
    assert q.tolist() == pytest.approx(q_by_hand, rel=1e-6)
    expected = ((q_by_hand[0] - y_by_hand[0]) ** 2 + (q_by_hand[1] - y_by_hand[1]) ** 2) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_actor_loss_is_minus_mean_q_of_the_actors_action(agent: DDPG) -> None:
    obs = torch.tensor([[1.0], [0.2]])
    by_hand = [2 * max(s + 2 * math.tanh(max(s, 0)), 0) + 0.5 for s in (1.0, 0.2)]
    assert agent.actor_loss(obs).item() == pytest.approx(-sum(by_hand) / 2, rel=1e-6)


def test_actor_step_ascends_q(agent: DDPG) -> None:
    obs = torch.tensor([[1.0], [0.2]])
    with torch.no_grad():
        old_actions = agent.actor(obs).clone()
    agent.update(_batch([0.0, 1.0]))
    with torch.no_grad():
        new_actions = agent.actor(obs)
        # Q rises with a here (dQ/da = 2 where s + a > 0), so ascent must raise both actions
        # and the updated critic must value the new actions more than the old ones.
        assert (new_actions > old_actions).all()
        assert (agent.critic(obs, new_actions) > agent.critic(obs, old_actions)).all()
    assert agent.updates == 1


@pytest.mark.parametrize('tau', [0.0, 1.0, 0.5])
def test_soft_update(tau: float) -> None:
    online, target = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    _set_linear(online, [1.0, 3.0], 2.0)
    _set_linear(target, [-1.0, 1.0], 0.0)
    soft_update(target, online, tau)
    expected_w = [tau * 1.0 + (1 - tau) * -1.0, tau * 3.0 + (1 - tau) * 1.0]
    assert target.weight.tolist()[0] == pytest.approx(expected_w)
    assert target.bias.item() == pytest.approx(tau * 2.0)


def test_update_moves_targets_by_tau(agent: DDPG) -> None:
    target_before = agent.critic_target.net[2].weight.item()
    agent.update(_batch([0.0, 1.0]))
    online_after = agent.critic.net[2].weight.item()
    assert agent.critic_target.net[2].weight.item() == pytest.approx(
        0.5 * online_after + 0.5 * target_before, rel=1e-6)


def test_critic_step_follows_the_analytic_gradient() -> None:
    """With Adam's first step the change is -lr * sign(grad); check the sign by hand."""
    config = DDPGConfig(gamma=GAMMA, tau=0.5, hidden_sizes=(1,), batch_size=1, buffer_size=1,
                        critic_lr=0.01, device='cpu')
    agent = DDPG(1, np.array([-2.0]), np.array([2.0]), config)
    _set_linear(agent.critic.net[0], [1.0, 1.0], 0.0)
    _set_linear(agent.critic.net[2], [2.0], 0.5)
    batch = Batch(torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([100.0]),
                  torch.tensor([[0.0]]), torch.tensor([1.0]))
    agent.update(batch)
    # Q = 3.5 is far below y = 100: d loss / d bias = 2 (Q - y) < 0, so the bias rises by lr.
    assert agent.critic.net[2].bias.item() == pytest.approx(0.5 + 0.01, rel=1e-4)


def test_non_finite_loss_is_refused_before_any_step(agent: DDPG) -> None:
    before = {k: v.clone() for k, v in agent.critic.state_dict().items()}
    batch = _batch([0.0, 1.0])._replace(rewards=torch.tensor([float('nan'), 0.0]))
    with pytest.raises(NonFiniteLossError):
        agent.update(batch)
    for key, value in agent.critic.state_dict().items():
        assert torch.equal(value, before[key])
    assert agent.updates == 0


def test_bfloat16_autocast_keeps_float32_weights_and_losses() -> None:
    rng = np.random.default_rng(0)
    batch = Batch(*(torch.as_tensor(a, dtype=torch.float32) for a in (
        rng.normal(size=(64, 5)), rng.uniform(-1, 1, (64, 2)), rng.normal(size=64),
        rng.normal(size=(64, 5)), (rng.random(64) < 0.1).astype(float))))
    losses = {}
    for precision in ('float32', 'bfloat16'):
        config = DDPGConfig(hidden_sizes=(64, 64), batch_size=64, buffer_size=64, seed=0,
                            device='cpu', precision=precision)
        agent = DDPG(5, -np.ones(2), np.ones(2), config)
        info = agent.update(batch)
        assert info.critic_loss.dtype == info.actor_loss.dtype == torch.float32
        assert all(p.dtype == torch.float32 for p in agent.actor.parameters())
        losses[precision] = info.critic_loss.item()
    # Same seed, same batch: bfloat16 products change the loss only in its third digit.
    assert losses['bfloat16'] == pytest.approx(losses['float32'], rel=0.02)
