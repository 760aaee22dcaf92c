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


class EnsembleCritic(nn.Module):
    """
    ``n`` action-value functions ``Q_i(s, a)`` evaluated together; ``forward`` gives ``(n, B)``.

    Each hidden layer is Linear, then optionally dropout (DroQ, Hiraoka et al. 2022) and
    LayerNorm (Ba et al. 2016; as DroQ and MR.Q put it in their critics), then ReLU. Dropout
    draws its masks from ``generator`` so that a checkpoint can carry its random state; the
    masks are drawn in training and target passes alike, as DroQ does.

    :param n: number of critics.
    :param layer_norm: LayerNorm after each hidden layer, a separate affine per critic.
    :param dropout: probability of zeroing a hidden unit, 0 for none.
    """

    def __init__(self, n: int, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int],
                 layer_norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        sizes = [obs_dim + action_dim, *hidden_sizes]
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
            h = layer(h)
            if self.dropout > 0.0:
                keep = torch.rand(h.shape, generator=self.generator, device=h.device,
                                  dtype=h.dtype) >= self.dropout
                h = h * keep / (1.0 - self.dropout)
            if self.norm_weight is not None:
                h = nn.functional.layer_norm(h, h.shape[-1:])
                h = h * self.norm_weight[i] + self.norm_bias[i]
            h = torch.relu(h)
        return self.out(h).squeeze(-1)
