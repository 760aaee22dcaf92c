"""
The DDPG learner: actor, critic, their target networks and the update rule.

Follows Spinning Up's DDPG (Lillicrap et al., 2016):

* critic target ``y = r + gamma * (1 - terminated) * Q'(s', mu'(s'))``, from the target networks;
* critic loss ``mean((Q(s, a) - y)^2)``;
* actor loss ``-mean(Q(s, mu(s)))`` (gradient ascent on Q);
* soft update ``theta' = tau * theta + (1 - tau) * theta'`` after every step.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.networks import Actor, Critic
from ddpg_ros.core.replay_buffer import Batch


class NonFiniteLossError(RuntimeError):
    """A loss came out NaN or infinite; the update was not applied."""


class UpdateInfo(NamedTuple):
    """Losses of one update, as detached scalars (no device sync until read)."""

    critic_loss: torch.Tensor
    actor_loss: torch.Tensor
    q_mean: torch.Tensor


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when it is present; asking for CUDA without it is an error."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but CUDA is not available here")
    if name not in ('cpu', 'cuda'):
        raise ValueError(f'device={name!r} must be one of auto, cpu, cuda')
    return torch.device(name)


def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """
    Polyak averaging ``theta' <- tau * theta + (1 - tau) * theta'``, in place.

    ``lerp(theta', theta, tau) = theta' + tau * (theta - theta')`` is the same formula in one
    fused kernel per parameter list.
    """
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


class DDPG:
    """
    Actor, critic, targets and optimizers, with the DDPG update.

    :param obs_dim: length of the observation vector.
    :param action_low: lower action bound per dimension.
    :param action_high: upper action bound per dimension.
    :param config: hyper-parameters.
    """

    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 config: DDPGConfig) -> None:
        action_low = np.asarray(action_low, dtype=np.float64)
        action_high = np.asarray(action_high, dtype=np.float64)
        if action_low.shape != action_high.shape or not np.all(action_high > action_low):
            raise ValueError(f'action bounds must satisfy low < high, got low={action_low} '
                             f'high={action_high}')
        if not (np.isfinite(action_low).all() and np.isfinite(action_high).all()):
            raise ValueError('action bounds must be finite for a tanh-squashed actor')
        self.config = config
        self.obs_dim = int(obs_dim)
        self.action_low = action_low
        self.action_high = action_high
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        hidden = config.hidden_sizes
        self.actor = Actor(obs_dim, action_low, action_high, hidden).to(self.device)
        self.critic = Critic(obs_dim, action_low.size, hidden).to(self.device)
        # Targets start as exact copies and are only ever moved by soft updates.
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # The fused Adam kernel does the same arithmetic as the default one in one pass over
        # each parameter list: about 5 % faster updates on a CPU (benchmarks/RESULTS.md).
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr,
                                                fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr,
                                                 fused=True)
        self._autocast_dtype = torch.bfloat16 if config.precision == 'bfloat16' else None
        self.updates = 0

    @property
    def action_dim(self) -> int:
        return self.action_low.size

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action ``mu(s)`` in robot units, for one observation."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.actor(obs_t).cpu().numpy().astype(np.float64)

    def critic_target_values(self, batch: Batch) -> torch.Tensor:
        """
        ``y = r + gamma * (1 - terminated) * Q'(s', mu'(s'))``.

        Only a true termination stops bootstrapping; a time-limit truncation was stored with
        ``terminated = 0`` so its next state keeps its value.
        """
        with torch.no_grad():
            next_action = self.actor_target(batch.next_obs)
            next_q = self.critic_target(batch.next_obs, next_action).float()
            return batch.rewards + self.config.gamma * (1.0 - batch.terminated) * next_q

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean squared Bellman error and the Q values it was computed from."""
        q = self.critic(batch.obs, batch.actions).float()
        return ((q - self.critic_target_values(batch)) ** 2).mean(), q

    def actor_loss(self, obs: torch.Tensor) -> torch.Tensor:
        """``-mean Q(s, mu(s))``: minimising it is gradient ascent on Q."""
        # .float(): under bfloat16 autocast the mean (and so the gradient scale) stays float32.
        return -self.critic(obs, self.actor(obs)).float().mean()

    def update(self, batch: Batch, check_finite: bool = True) -> UpdateInfo:
        """
        One critic step, one actor step, one soft update of both targets.

        :param check_finite: refuse to apply a NaN or infinite loss (one host sync per loss).
        :raises NonFiniteLossError: when ``check_finite`` and a loss is not finite; the
            networks are then left as they were before the offending step.
        """
        with self._autocast():
            critic_loss, q = self.critic_loss(batch)
        if check_finite and not torch.isfinite(critic_loss):
            raise NonFiniteLossError(f'critic loss is {critic_loss.item()}')
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        # Freeze the critic while differentiating through it: the actor step needs only
        # dQ/da, and skipping the critic's weight gradients saves a third of the backward.
        self.critic.requires_grad_(False)
        try:
            with self._autocast():
                actor_loss = self.actor_loss(batch.obs)
            if check_finite and not torch.isfinite(actor_loss):
                raise NonFiniteLossError(f'actor loss is {actor_loss.item()}')
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
        finally:
            self.critic.requires_grad_(True)

        soft_update(self.actor_target, self.actor, self.config.tau)
        soft_update(self.critic_target, self.critic, self.config.tau)
        self.updates += 1
        return UpdateInfo(critic_loss.detach(), actor_loss.detach(), q.detach().mean())

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 matrix products when configured; losses are taken back to float32."""
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def policy_snapshot(self) -> Actor:
        """Return a CPU copy of the actor for acting, independent of further updates."""
        snapshot = copy.deepcopy(self.actor).to('cpu').requires_grad_(False)
        return snapshot.eval()

    def weights_finite(self) -> bool:
        """Return True when no parameter of any network is NaN or infinite."""
        modules = (self.actor, self.critic, self.actor_target, self.critic_target)
        return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers and the update counter; tensors and plain types only."""
        return {
            'actor': self.actor.state_dict(),
            'critic': self.critic.state_dict(),
            'actor_target': self.actor_target.state_dict(),
            'critic_target': self.critic_target.state_dict(),
            'actor_optimizer': self.actor_optimizer.state_dict(),
            'critic_optimizer': self.critic_optimizer.state_dict(),
            'updates': self.updates,
        }

    def load_state_dict(self, state: dict[str, Any], optimizers: bool = True) -> None:
        """Restore what :meth:`state_dict` wrote; ``optimizers=False`` loads networks only."""
        self.actor.load_state_dict(state['actor'])
        self.critic.load_state_dict(state['critic'])
        self.actor_target.load_state_dict(state['actor_target'])
        self.critic_target.load_state_dict(state['critic_target'])
        if optimizers:
            self.actor_optimizer.load_state_dict(state['actor_optimizer'])
            self.critic_optimizer.load_state_dict(state['critic_optimizer'])
        self.updates = int(state['updates'])
