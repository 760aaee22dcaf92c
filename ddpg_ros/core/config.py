"""The DDPG hyper-parameters: one typed dataclass, the single source of defaults."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

NOISE_TYPES = ('gaussian', 'ornstein_uhlenbeck', 'none')
DEVICES = ('auto', 'cpu', 'cuda')
PRECISIONS = ('float32', 'bfloat16')
CRITIC_NORMS = ('none', 'layer', 'batch_renorm')
ACTOR_OBJECTIVES = ('mean', 'min')


@dataclass
class DDPGConfig:
    """Hyper-parameters of the learner, named as in the DDPG paper and Spinning Up."""

    gamma: float = 0.99
    """Discount factor of the Bellman target."""
    tau: float = 0.005
    """Soft (Polyak) update rate: ``target = tau * online + (1 - tau) * target``."""
    batch_size: int = 256
    """Transitions per gradient update."""
    buffer_size: int = 1_000_000
    """Capacity of the replay buffer, in transitions."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic."""
    adam_beta1: float = 0.9
    """Adam's first-moment decay, both optimizers (CrossQ: 0.5)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor, and of the critics unless critic_hidden_sizes is set."""
    critic_hidden_sizes: tuple[int, ...] = ()
    """Hidden layer widths of the critics when they differ from the actor's (CrossQ: 2048-wide
    critics beside a 256-256 actor); empty: hidden_sizes. Only the actor runs on the robot."""
    learning_starts: int = 10_000
    """Environment steps of uniform random actions before the first update."""
    updates_per_step: float = 1.0
    """Gradient updates per environment step (the update-to-data ratio)."""
    noise_type: str = 'gaussian'
    """Exploration noise: 'gaussian', 'ornstein_uhlenbeck' or 'none'."""
    noise_sigma: float = 0.1
    """Noise scale, as a fraction of each action's half range."""
    noise_theta: float = 0.15
    """Mean-reversion rate of the Ornstein-Uhlenbeck noise."""
    seed: int = 0
    """Seed of the networks, the replay sampling and the noise."""
    device: str = 'auto'
    """'auto' (CUDA when present), 'cpu' or 'cuda'."""
    precision: str = 'float32'
    """Matrix products of the updates: 'float32', or 'bfloat16' autocast (faster on CPUs
    and GPUs with bf16 units; weights, optimizer state and losses stay float32)."""
    n_critics: int = 1
    """Critics trained side by side; the Bellman target takes the smallest of their target
    values (clipped double Q, TD3: 2) and the actor ascends what actor_q says."""
    actor_q: str = 'mean'
    """What the actor ascends when there are several critics: 'mean', their average value, or
    'min', the smallest (as SAC's and CrossQ's code do): the actor then cannot climb the
    error of one critic that overestimates."""
    target_noise: float = 0.0
    """Target policy smoothing (TD3: 0.2): Gaussian noise added to the target action, as a
    fraction of each action's half range."""
    target_noise_clip: float = 0.5
    """Bound of the target policy smoothing noise, as a fraction of the half range."""
    policy_delay: int = 1
    """Critic updates per actor and target update (TD3: 2)."""
    critic_norm: str = 'none'
    """'layer': LayerNorm after each hidden layer of the critics (DroQ, MR.Q);
    'batch_renorm': batch renormalization before each critic layer and no target networks,
    the target taken from the critic in one pass with the batch (CrossQ); 'none'."""
    critic_dropout: float = 0.0
    """Dropout probability in the critics' hidden layers (DroQ: 0.01); 0 for none."""
    n_step: int = 1
    """Rewards summed per stored transition (n-step returns, MR.Q: 3), folded exactly at
    episode ends and never across a break in the chain of states."""
    pre_activation_penalty: float = 0.0
    """Weight of ``mean(x ** 2)`` over the actor's pre-tanh outputs ``x``, added to its loss
    (MR.Q: 1e-5): it keeps the actor off its action bounds, where tanh passes no gradient."""
    observe_last_action: bool = False
    """Append the last command sent to the observation: what a policy needs to act well
    when commands take effect late (command latency)."""

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self.critic_hidden_sizes = tuple(int(h) for h in self.critic_hidden_sizes)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its value."""
        _check(0.0 <= self.gamma <= 1.0, 'gamma', self.gamma, 'must be in [0, 1]')
        _check(0.0 < self.tau <= 1.0, 'tau', self.tau, 'must be in (0, 1]')
        _check(self.batch_size >= 1, 'batch_size', self.batch_size, 'must be >= 1')
        _check(self.buffer_size >= 1, 'buffer_size', self.buffer_size, 'must be >= 1')
        _check(self.batch_size <= self.buffer_size, 'batch_size', self.batch_size,
               f'must not exceed buffer_size ({self.buffer_size})')
        for name in ('actor_lr', 'critic_lr'):
            value = getattr(self, name)
            _check(math.isfinite(value) and value > 0.0, name, value, 'must be > 0')
        _check(len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
               'hidden_sizes', self.hidden_sizes, 'must be one or more positive widths')
        _check(all(h >= 1 for h in self.critic_hidden_sizes), 'critic_hidden_sizes',
               self.critic_hidden_sizes, 'must be positive widths (none: hidden_sizes)')
        _check(self.learning_starts >= 0, 'learning_starts', self.learning_starts,
               'must be >= 0')
        _check(math.isfinite(self.updates_per_step) and self.updates_per_step >= 0.0,
               'updates_per_step', self.updates_per_step, 'must be >= 0')
        _check(self.noise_type in NOISE_TYPES, 'noise_type', self.noise_type,
               f'must be one of {", ".join(NOISE_TYPES)}')
        _check(math.isfinite(self.noise_sigma) and self.noise_sigma >= 0.0, 'noise_sigma',
               self.noise_sigma, 'must be >= 0')
        _check(math.isfinite(self.noise_theta) and self.noise_theta > 0.0, 'noise_theta',
               self.noise_theta, 'must be > 0')
        _check(self.device in DEVICES, 'device', self.device,
               f'must be one of {", ".join(DEVICES)}')
        _check(self.precision in PRECISIONS, 'precision', self.precision,
               f'must be one of {", ".join(PRECISIONS)}')
        _check(self.n_critics >= 1, 'n_critics', self.n_critics, 'must be >= 1')
        _check(self.actor_q in ACTOR_OBJECTIVES, 'actor_q', self.actor_q,
               f'must be one of {", ".join(ACTOR_OBJECTIVES)}')
        _check(math.isfinite(self.target_noise) and self.target_noise >= 0.0, 'target_noise',
               self.target_noise, 'must be >= 0')
        _check(math.isfinite(self.target_noise_clip) and self.target_noise_clip >= 0.0,
               'target_noise_clip', self.target_noise_clip, 'must be >= 0')
        _check(self.policy_delay >= 1, 'policy_delay', self.policy_delay, 'must be >= 1')
        _check(self.critic_norm in CRITIC_NORMS, 'critic_norm', self.critic_norm,
               f'must be one of {", ".join(CRITIC_NORMS)}')
        _check(0.0 <= self.critic_dropout < 1.0, 'critic_dropout', self.critic_dropout,
               'must be in [0, 1)')
        _check(self.n_step >= 1, 'n_step', self.n_step, 'must be >= 1')
        _check(0.0 <= self.adam_beta1 < 1.0, 'adam_beta1', self.adam_beta1, 'must be in [0, 1)')
        _check(math.isfinite(self.pre_activation_penalty) and self.pre_activation_penalty >= 0.0,
               'pre_activation_penalty', self.pre_activation_penalty, 'must be >= 0')

    @property
    def plain_critic(self) -> bool:
        """Say whether no critic extension is on: one plain MLP critic, as in the paper."""
        return (self.n_critics == 1 and self.critic_norm == 'none'
                and self.critic_dropout == 0.0)

    @property
    def critic_widths(self) -> tuple[int, ...]:
        """Return the critics' hidden widths: critic_hidden_sizes, or the actor's when empty."""
        return self.critic_hidden_sizes or self.hidden_sizes

    @property
    def target_networks(self) -> bool:
        """Say whether the learner keeps target networks (all but CrossQ's critics do)."""
        return self.critic_norm != 'batch_renorm'

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so a checkpoint can store it without pickling objects."""
        data = dataclasses.asdict(self)
        data['hidden_sizes'] = list(self.hidden_sizes)
        data['critic_hidden_sizes'] = list(self.critic_hidden_sizes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'DDPGConfig':
        """Build from :meth:`to_dict` output; unknown keys are an error, not silence."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'unknown DDPG setting(s): {", ".join(unknown)}')
        return cls(**data)


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ValueError(f'{name}={value!r} {rule}')


def field_docs(cls: type = DDPGConfig) -> dict[str, str]:
    """
    Return the one-line description of every setting, read from the attribute docstrings.

    :param cls: a dataclass documented the way :class:`DDPGConfig` is.
    """
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)):
            docs[node.target.id] = ' '.join(str(following.value.value).split())  # type: ignore
    return docs


__all__ = ['DDPGConfig', 'NOISE_TYPES', 'DEVICES', 'PRECISIONS', 'CRITIC_NORMS', 'field_docs']
