"""Actor and critic multilayer perceptrons."""

from __future__ import annotations

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
