"""Actor and critic multilayer perceptrons."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def mlp(sizes: Sequence[int], output_activation: type[nn.Module] | None = None) -> nn.Sequential:
    """
    Linear layers of the given widths with ReLU between them.

    :param sizes: input width, hidden widths, output width.
    :param output_activation: module applied to the output, or none.
    """
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if output_activation is not None:
        layers.append(output_activation())
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """
    Deterministic policy ``mu(s)``: tanh squashed, then scaled to the action bounds.

    Scaling lives inside the network so that every caller (trainer, evaluator, ROS agent)
    gets actions in robot units and none of them can forget the conversion.
    """

    def __init__(self, obs_dim: int, action_low: np.ndarray, action_high: np.ndarray,
                 hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        low = torch.as_tensor(np.asarray(action_low, dtype=np.float32))
        high = torch.as_tensor(np.asarray(action_high, dtype=np.float32))
        self.net = mlp([obs_dim, *hidden_sizes, low.numel()], nn.Tanh)
        self.register_buffer('action_scale', (high - low) / 2.0)
        self.register_buffer('action_bias', (high + low) / 2.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs) * self.action_scale + self.action_bias

    def forward_with_pre_activation(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the action and the output layer's values before the tanh."""
        pre = self.net[:-1](obs)
        return torch.tanh(pre) * self.action_scale + self.action_bias, pre


class Critic(nn.Module):
    """Action-value function ``Q(s, a)``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp([obs_dim + action_dim, *hidden_sizes, 1])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        # Squeeze the last axis: a (B, 1) Q against a (B,) target would broadcast to (B, B)
        # and silently train on the wrong loss.
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)


class EnsembleLinear(nn.Module):
    """
    ``n`` independent linear layers computed as one batched matrix product.

    Maps ``(B, in)`` (shared input) or ``(n, B, in)`` to ``(n, B, out)``. Each member is
    initialised as :class:`torch.nn.Linear` is: weights and biases uniform in
    ``+-1/sqrt(in)``.
    """

    def __init__(self, n: int, in_features: int, out_features: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        weight = torch.empty(n, in_features, out_features).uniform_(-bound, bound)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in) @ (n, in, out) broadcasts to (n, B, out): one kernel for every member.
        return torch.matmul(x, self.weight) + self.bias


class BatchRenorm(nn.Module):
    """
    Batch renormalization (Ioffe 2017) of ``(n, B, f)`` activations, per member of an ensemble.

    In training mode a batch is normalized with its own mean and (biased) variance while
    the running statistics follow it (``running += momentum * (batch - running)``); after
    ``warmup`` training passes the batch statistics are corrected towards the running ones
    by ``r = clip(sigma_B / sigma, 1/r_max, r_max)`` and ``d = clip((mu_B - mu) / sigma,
    -d_max, d_max)``, held constant in the gradient. In evaluation mode the running
    statistics normalize. The defaults are CrossQ's (Bhatt et al. 2024; its JAX and
    Stable-Baselines3-contrib code): momentum 0.01, epsilon 1e-3, r_max 3, d_max 5 and a
    warm-up of 100,000 passes. Statistics are kept and computed in float32.

    :param n: ensemble members, each with its own statistics and affine.
    :param features: width ``f``.
    """

    def __init__(self, n: int, features: int, momentum: float = 0.01, eps: float = 1e-3,
                 r_max: float = 3.0, d_max: float = 5.0, warmup: int = 100_000) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, features))
        self.bias = nn.Parameter(torch.zeros(n, 1, features))
        self.register_buffer('running_mean', torch.zeros(n, 1, features))
        self.register_buffer('running_var', torch.ones(n, 1, features))
        self.register_buffer('steps', torch.zeros((), dtype=torch.long))
        # The count mirrored in Python: reading the buffer in every pass would wait for the
        # device each time on a GPU.
        self._steps = 0
        self.momentum, self.eps = momentum, eps
        self.r_max, self.d_max, self.warmup = r_max, d_max, warmup

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._steps = int(self.steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if not self.training:
            return ((x - self.running_mean) * (torch.rsqrt(self.running_var + self.eps)
                                               * self.weight) + self.bias)
        # Sums over the batch axis: mean() and var() along a middle axis are several times
        # slower on a CPU.
        size = x.shape[1]
        batch_mean = x.sum(1, keepdim=True) / size
        centered = x - batch_mean
        batch_var = (centered * centered).sum(1, keepdim=True) / size
        inv_std = torch.rsqrt(batch_var + self.eps)
        with torch.no_grad():
            if self._steps < self.warmup:
                r, d = None, None
            else:
                running_inv_std = torch.rsqrt(self.running_var + self.eps)
                r = (running_inv_std / inv_std).clamp(1.0 / self.r_max, self.r_max)
                d = ((batch_mean - self.running_mean) * running_inv_std).clamp(
                    -self.d_max, self.d_max)
            self.running_mean.lerp_(batch_mean, self.momentum)
            self.running_var.lerp_(batch_var, self.momentum)
            self.steps += 1
            self._steps += 1
        if r is None:
            return centered * (inv_std * self.weight) + self.bias
        # (x - mu_B) / sigma_B * r + d, with r and d constants of the gradient.
        return centered * (inv_std * r * self.weight) + (d * self.weight + self.bias)


class EnsembleCritic(nn.Module):
    """
    ``n`` action-value functions ``Q_i(s, a)`` evaluated together; ``forward`` gives ``(n, B)``.

    Each hidden layer is Linear, then optionally dropout (DroQ, Hiraoka et al. 2022) and
    LayerNorm (Ba et al. 2016; as DroQ and MR.Q put it in their critics), then ReLU. Dropout
    draws its masks from ``generator`` so that a checkpoint can carry its random state; the
    masks are drawn in training and target passes alike, as DroQ does.

    With ``batch_renorm`` a :class:`BatchRenorm` comes before every linear layer, the input's
    included, as in CrossQ's critic (Bhatt et al. 2024); it normalizes with batch statistics
    in training mode only, so the owner chooses the mode of each pass.

    :param n: number of critics.
    :param layer_norm: LayerNorm after each hidden layer, a separate affine per critic.
    :param dropout: probability of zeroing a hidden unit, 0 for none.
    :param batch_renorm: batch renormalization before each linear layer.
    """

    def __init__(self, n: int, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int],
                 layer_norm: bool = False, dropout: float = 0.0,
                 batch_renorm: bool = False) -> None:
        super().__init__()
        sizes = [obs_dim + action_dim, *hidden_sizes]
        self.renorms = nn.ModuleList(BatchRenorm(n, size) for size in sizes) \
            if batch_renorm else None
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(sizes, sizes[1:]))
        self.out = EnsembleLinear(n, sizes[-1], 1)
        self.norm_weight = nn.ParameterList(
            nn.Parameter(torch.ones(n, 1, h)) for h in hidden_sizes) if layer_norm else None
        self.norm_bias = nn.ParameterList(
            nn.Parameter(torch.zeros(n, 1, h)) for h in hidden_sizes) if layer_norm else None
        self.dropout = float(dropout)
        self.generator: torch.Generator | None = None
        """Source of the dropout masks; set by the owner, on the critic's device."""

    @property
    def n(self) -> int:
        return self.out.weight.shape[0]

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        h = torch.cat([obs, action], dim=-1)
        for i, layer in enumerate(self.layers):
            if self.renorms is not None:
                h = self.renorms[i](h.expand(self.n, *h.shape[-2:]))
            h = layer(h)
            if self.dropout > 0.0:
                keep = torch.rand(h.shape, generator=self.generator, device=h.device,
                                  dtype=h.dtype) >= self.dropout
                h = h * keep / (1.0 - self.dropout)
            if self.norm_weight is not None:
                h = nn.functional.layer_norm(h, h.shape[-1:])
                h = h * self.norm_weight[i] + self.norm_bias[i]
            h = torch.relu(h)
        if self.renorms is not None:
            h = self.renorms[-1](h)
        return self.out(h).squeeze(-1)
