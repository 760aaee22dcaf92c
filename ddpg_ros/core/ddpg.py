"""
The DDPG learner: actor, critic, their target networks and the update rule.

Follows Spinning Up's DDPG (Lillicrap et al., 2016):

* critic target ``y = r + gamma * (1 - terminated) * Q'(s', mu'(s'))``, from the target networks;
* critic loss ``mean((Q(s, a) - y)^2)``;
* actor loss ``-mean(Q(s, mu(s)))`` (gradient ascent on Q);
* soft update ``theta' = tau * theta + (1 - tau) * theta'`` after every step.

Opt-in extensions of the same deterministic actor-critic (:class:`DDPGConfig`), all off by
default, when the update above is exactly the paper's:

* ``n_critics`` critics, the target the smallest of their target values, the actor ascending
  their mean (clipped double Q: Fujimoto et al. 2018, TD3; REDQ and DroQ average for the
  actor) or, with ``actor_q='min'``, their smallest value (as SAC's and CrossQ's code). The
  critics are one :class:`EnsembleCritic`: a batched matrix product per layer;
* ``target_noise``: clipped Gaussian noise on the target action (TD3's target smoothing);
* ``policy_delay``: the actor and the targets move once per ``policy_delay`` critic steps (TD3);
* ``critic_norm``/``critic_dropout``: LayerNorm and dropout in the critics (DroQ,
  Hiraoka et al. 2022);
* ``pre_activation_penalty``: a penalty on the actor's pre-tanh outputs (MR.Q) against an
  actor stuck at its action bounds;
* ``n_step``: transitions folded over n steps (:mod:`ddpg_ros.core.nstep`), the target
  discounted by ``gamma ** horizon``;
* ``critic_norm='batch_renorm'``: CrossQ (Bhatt et al. 2024) for a deterministic actor. The
  critics renormalize their inputs and hidden units by batch statistics and there are no
  target networks: ``(s, a)`` and ``(s', mu(s'))`` go through the critics as one batch, so
  both halves share its statistics, and the second half's values, held constant, are the
  target. The actor ascends the critics with their running statistics. Unlike CrossQ's
  stochastic actor, ours has no normalization, so the policy shipped to robots is unchanged.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.networks import Actor, Critic, EnsembleCritic
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
        self.actor = Actor(obs_dim, action_low, action_high, config.hidden_sizes).to(self.device)
        # Random draws of the extensions (target smoothing, dropout masks) come from a
        # generator of their own, whose state a checkpoint keeps.
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        self.critic: Critic | EnsembleCritic
        if config.plain_critic:
            self.critic = Critic(obs_dim, action_low.size, config.critic_widths).to(self.device)
        else:
            self.critic = EnsembleCritic(config.n_critics, obs_dim, action_low.size,
                                         config.critic_widths,
                                         layer_norm=config.critic_norm == 'layer',
                                         dropout=config.critic_dropout,
                                         batch_renorm=config.critic_norm == 'batch_renorm'
                                         ).to(self.device)
            # Batch statistics only in the passes that ask for them (critic_loss).
            self.critic.eval()
        # Targets start as exact copies and are only ever moved by soft updates.
        self.actor_target: Actor | None = None
        self.critic_target: Critic | EnsembleCritic | None = None
        if config.target_networks:
            self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
            self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        for critic in (self.critic, self.critic_target):
            if isinstance(critic, EnsembleCritic):
                critic.generator = self.generator
        # The fused Adam kernel does the same arithmetic as the default one in one pass over
        # each parameter list: about 5 % faster updates on a CPU (benchmarks/RESULTS.md).
        betas = (config.adam_beta1, 0.999)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr,
                                                betas=betas, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr,
                                                 betas=betas, fused=True)
        self._autocast_dtype = torch.bfloat16 if config.precision == 'bfloat16' else None
        self.updates = 0
        self._last_actor_loss = torch.zeros((), device=self.device)

    @property
    def action_dim(self) -> int:
        return self.action_low.size

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action ``mu(s)`` in robot units, for one observation."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        return self.actor(obs_t).cpu().numpy().astype(np.float64)

    @staticmethod
    def _values(critic: Critic | EnsembleCritic, obs: torch.Tensor,
                action: torch.Tensor) -> torch.Tensor:
        """Q values of every critic, ``(n_critics, B)``, in float32."""
        q = critic(obs, action).float()
        return q.unsqueeze(0) if q.dim() == 1 else q

    @torch.no_grad()
    def target_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """
        Return the target action ``mu'(s')``, smoothed when ``target_noise`` is set.

        Smoothing adds ``clip(N(0, sigma), -c, c)`` per dimension and clips the sum to the
        bounds (TD3's target policy smoothing; sigma and c in half ranges). Without target
        networks (CrossQ) the actor itself gives the action.
        """
        actor = self.actor_target if self.actor_target is not None else self.actor
        action = actor(next_obs)
        sigma = self.config.target_noise
        if sigma == 0.0:
            return action
        scale = actor.action_scale
        noise = torch.randn(action.shape, generator=self.generator, device=action.device)
        bound = self.config.target_noise_clip
        noise = (noise * sigma).clamp(-bound, bound) * scale
        low = actor.action_bias - scale
        return torch.clamp(action + noise, low, low + 2.0 * scale)

    def bellman_target(self, batch: Batch, next_q: torch.Tensor) -> torch.Tensor:
        """
        ``y = r + gamma * (1 - terminated) * next_q``, with ``next_q`` ``(n_critics, B)``.

        ``next_q`` holds every critic's value of ``(s', a')`` and the smallest is taken: with
        one critic that critic's value, the paper's target. Only a true termination stops
        bootstrapping; a time-limit truncation was stored with ``terminated = 0`` so its next
        state keeps its value. An n-step transition of ``horizon`` m discounts by
        ``gamma ** m``.
        """
        discount: float | torch.Tensor = self.config.gamma
        if self.config.n_step > 1 and batch.horizon is not None:
            discount = torch.pow(self.config.gamma, batch.horizon)
        return batch.rewards + discount * (1.0 - batch.terminated) * next_q.detach().amin(0)

    def critic_target_values(self, batch: Batch) -> torch.Tensor:
        """
        ``y = r + gamma * (1 - terminated) * min_i Q'_i(s', mu'(s'))``, from the targets.

        Without target networks the target is part of the critic's own pass: see
        :meth:`critic_loss`.
        """
        if self.critic_target is None:
            raise RuntimeError('no target networks (critic_norm=batch_renorm): the target '
                               'comes from the joint pass of critic_loss')
        with torch.no_grad():
            next_action = self.target_action(batch.next_obs)
            return self.bellman_target(
                batch, self._values(self.critic_target, batch.next_obs, next_action))

    def critic_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Return the mean squared Bellman error, summed over the critics, and their Q values.

        The values are ``(B,)`` for one critic, ``(n_critics, B)`` for several. The errors are
        summed, not averaged, so that each critic gets the gradient a lone critic would (TD3).
        Without target networks, ``(s, a)`` and ``(s', a')`` are one batch of ``2B`` through
        the critics in training mode, and the values of its second half are the target
        (CrossQ's joint pass).
        """
        if self.critic_target is not None:
            q = self._values(self.critic, batch.obs, batch.actions)
            y = self.critic_target_values(batch)
        else:
            next_action = self.target_action(batch.next_obs)
            size = batch.obs.shape[0]
            self.critic.train()
            try:
                both = self._values(self.critic, torch.cat([batch.obs, batch.next_obs]),
                                    torch.cat([batch.actions, next_action]))
            finally:
                self.critic.eval()
            q = both[:, :size]
            y = self.bellman_target(batch, both[:, size:])
        return ((q - y) ** 2).mean(1).sum(), q.squeeze(0)

    def actor_loss(self, obs: torch.Tensor) -> torch.Tensor:
        """
        ``-mean Q(s, mu(s))``, over the batch and the critics: gradient ascent on Q.

        With ``actor_q='min'``, the mean over the batch of the smallest critic's value.

        With ``pre_activation_penalty`` w, plus ``w * mean(x ** 2)`` over the pre-tanh
        outputs x (MR.Q, Fujimoto et al. 2025): an actor pushed deep into saturation gets no
        gradient through the tanh and cannot come back; the penalty's gradient does not vanish.
        """
        action, pre = self.actor.forward_with_pre_activation(obs)
        # float32 values: under bfloat16 autocast the mean (and so the gradient scale) stays
        # float32.
        values = self._values(self.critic, obs, action)
        loss = -(values.amin(0) if self.config.actor_q == 'min' else values).mean()
        weight = self.config.pre_activation_penalty
        return loss + weight * pre.float().pow(2).mean() if weight else loss

    def update(self, batch: Batch, check_finite: bool = True) -> UpdateInfo:
        """
        One critic step, one actor step, one soft update of both targets.

        With ``policy_delay`` d, the actor step and the soft updates happen on every d-th
        call only (counting from the first); the other calls report the last actor loss.

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

        if self.updates % self.config.policy_delay == 0:
            self._last_actor_loss = self._actor_step(batch.obs, check_finite)
            if self.actor_target is not None and self.critic_target is not None:
                soft_update(self.actor_target, self.actor, self.config.tau)
                soft_update(self.critic_target, self.critic, self.config.tau)
        self.updates += 1
        return UpdateInfo(critic_loss.detach(), self._last_actor_loss, q.detach().mean())

    def _actor_step(self, obs: torch.Tensor, check_finite: bool) -> torch.Tensor:
        # Freeze the critic while differentiating through it: the actor step needs only
        # dQ/da, and skipping the critic's weight gradients saves a third of the backward.
        self.critic.requires_grad_(False)
        try:
            with self._autocast():
                actor_loss = self.actor_loss(obs)
            if check_finite and not torch.isfinite(actor_loss):
                raise NonFiniteLossError(f'actor loss is {actor_loss.item()}')
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
        finally:
            self.critic.requires_grad_(True)
        return actor_loss.detach()

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
        return all(bool(torch.isfinite(p).all())
                   for m in modules if m is not None for p in m.parameters())

    def state_dict(self) -> dict[str, Any]:
        """
        Return networks, optimizers, the update counter and the extensions' random state.

        Tensors and plain types only; without target networks there are no target entries.
        """
        state = {
            'actor': self.actor.state_dict(),
            'critic': self.critic.state_dict(),
            'actor_optimizer': self.actor_optimizer.state_dict(),
            'critic_optimizer': self.critic_optimizer.state_dict(),
            'updates': self.updates,
            'generator': self.generator.get_state(),
        }
        if self.actor_target is not None and self.critic_target is not None:
            state['actor_target'] = self.actor_target.state_dict()
            state['critic_target'] = self.critic_target.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], optimizers: bool = True) -> None:
        """Restore what :meth:`state_dict` wrote; ``optimizers=False`` loads networks only."""
        self.actor.load_state_dict(state['actor'])
        self.critic.load_state_dict(state['critic'])
        if self.actor_target is not None and self.critic_target is not None:
            self.actor_target.load_state_dict(state['actor_target'])
            self.critic_target.load_state_dict(state['critic_target'])
        if optimizers:
            self.actor_optimizer.load_state_dict(state['actor_optimizer'])
            self.critic_optimizer.load_state_dict(state['critic_optimizer'])
        self.updates = int(state['updates'])
        if 'generator' in state:  # absent in checkpoints from before the extensions
            self.generator.set_state(state['generator'].cpu())
