"""
The messages between actors and the learner, as bytes: encoding and strict decoding.

Both messages travel as ``std_msgs/msg/UInt8MultiArray``, a standard type that every ROS 2
distro and client library has, so neither side needs a custom interface package. The
``data`` field holds a header and a payload::

    data = header (UTF-8 JSON object, padded with spaces to a multiple of 4 bytes)
         + payload (float32 values, little-endian)
    layout.data_offset = the header's padded length in bytes (where the payload begins)

``layout.dim`` describes the payload as a ``uint8`` array, outermost first:

- transitions: ``[('transitions', N, N*W*4), ('values', W, W*4), ('float32le', 4, 4)]``,
  one row of ``W = 2*obs_dim + action_dim + 2`` values per transition:
  ``obs, action, reward, next_obs, terminated`` (0.0 or 1.0);
- policy: ``[('parameters', P, P*4), ('float32le', 4, 4)]``, the actor's state dict
  flattened in the order the header lists it.

The header says who sent the message and what it holds (:func:`encode_transitions`,
:func:`encode_policy` list the fields; README.md documents them for other languages).
Decoding checks everything before anything is used: size limits, the header, lengths,
finiteness, and, when given, the run id and the spec (task, observation and action layout)
the receiver expects. Every failure is a :class:`WireError` (a ``ValueError``) with one
line that names the offending value, and a ``kind`` for counting refusals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ddpg_ros.core.checkpoint import PolicySpec
from ddpg_ros.core.networks import Actor

TRANSITIONS_FORMAT = 'ddpg_ros/transitions'
POLICY_FORMAT = 'ddpg_ros/policy'
WIRE_VERSION = 1
"""The header layout version this code writes and reads."""
MAX_HEADER_BYTES = 1 << 20
MAX_TRANSITION_BYTES = 64 << 20
"""Largest transition message accepted: a batch of 64 MiB is ~ 100k transitions of Ant."""
MAX_POLICY_BYTES = 1 << 30
MAX_TRANSITIONS = 1_000_000
"""Most transitions in one batch."""
MAX_ID_CHARS = 256
FLOAT32 = np.dtype('<f4')
_ALIGN = 4


class WireError(ValueError):
    """
    A message that must not be used, with what is wrong.

    :param message: one line naming the offending value.
    :param kind: ``oversized``, ``malformed``, ``version``, ``run_id``, ``spec``, ``length``
        or ``non_finite`` (the receiver adds ``duplicate`` and ``policy_version``).
    :param actor_id: the sender, when the header named one.
    """

    def __init__(self, message: str, kind: str, actor_id: str = '') -> None:
        super().__init__(message)
        self.kind = kind
        self.actor_id = actor_id


@dataclass(frozen=True)
class WireMessage:
    """What goes into a ``UInt8MultiArray``: ``data``, ``layout.data_offset``, ``layout.dim``."""

    data: bytes
    data_offset: int
    dims: tuple[tuple[str, int, int], ...]
    """``(label, size, stride)`` of each ``MultiArrayDimension``."""


@dataclass(frozen=True)
class TransitionBatch:
    """A decoded, validated batch of one actor's transitions."""

    run_id: str
    actor_id: str
    epoch: int
    """The actor's start (ns since the Unix epoch): sequence numbers count within it."""
    sequence: int
    policy_version: int
    """The oldest policy version that chose an action in this batch."""
    episode_returns: tuple[float, ...]
    """Returns of the episodes that ended in this batch."""
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray

    @property
    def count(self) -> int:
        """Return the number of transitions."""
        return len(self.rewards)


@dataclass(frozen=True)
class PolicyHeader:
    """The header of a policy message, validated."""

    run_id: str
    version: int
    spec: dict[str, Any]
    hidden_sizes: tuple[int, ...]
    parameters: tuple[tuple[str, tuple[int, ...]], ...]
    """State-dict entries in payload order: name and shape."""
    warmup: bool
    """The learner has not yet reached ``learning_starts``: explore with random actions."""
    hold: bool
    """The learner is behind on updates: a lockstep actor waits before its next action."""
    updates: int
    transitions: int
    """Transitions the learner has stored."""
    backlog: int
    """Updates granted but not run yet."""
    stamp: float
    """The learner's wall clock when it published (s since the Unix epoch), for logs."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedPolicy:
    """A decoded policy: its header and a CPU actor ready to act."""

    header: PolicyHeader
    actor: Actor


def row_width(obs_dim: int, action_dim: int) -> int:
    """Return the float32 values per transition: obs, action, reward, next_obs, terminated."""
    return 2 * obs_dim + action_dim + 2


# Encoding


def _pack(header: Mapping[str, Any], payload: bytes,
          dims: tuple[tuple[str, int, int], ...]) -> WireMessage:
    text = json.dumps(header, separators=(',', ':'), allow_nan=False).encode()
    # Spaces are JSON whitespace: the payload starts 4-byte aligned for readers that map it.
    text += b' ' * (-len(text) % _ALIGN)
    return WireMessage(text + payload, len(text), dims)


def encode_transitions(rows: np.ndarray, *, run_id: str, actor_id: str, epoch: int,
                       sequence: int, policy_version: int, spec: PolicySpec,
                       episode_returns: Sequence[float] = ()) -> WireMessage:
    """
    Encode a batch of transitions.

    Header fields: ``format`` (``ddpg_ros/transitions``), ``version`` (1), ``run_id``,
    ``actor_id``, ``epoch``, ``sequence``, ``policy_version``, ``count``, ``spec`` (the
    actor's :class:`PolicySpec` as a JSON object) and ``episode_returns``.

    :param rows: ``(count, row_width)`` values: obs, action, reward, next_obs, terminated.
    :raises ValueError: ``rows`` has the wrong shape for ``spec``.
    """
    width = row_width(spec.obs_dim, spec.action_dim)
    rows = np.ascontiguousarray(rows, dtype=FLOAT32)
    if rows.ndim != 2 or rows.shape[1] != width or not len(rows):
        raise ValueError(f'transition rows have shape {rows.shape}, expected (N >= 1, {width})')
    header = {'format': TRANSITIONS_FORMAT, 'version': WIRE_VERSION, 'run_id': run_id,
              'actor_id': actor_id, 'epoch': int(epoch), 'sequence': int(sequence),
              'policy_version': int(policy_version), 'count': len(rows),
              'spec': spec.to_dict(), 'episode_returns': [float(r) for r in episode_returns]}
    count = len(rows)
    dims = (('transitions', count, count * width * 4), ('values', width, width * 4),
            ('float32le', 4, 4))
    return _pack(header, rows.tobytes(), dims)


def encode_policy(actor: Actor, *, run_id: str, version: int, spec: PolicySpec,
                  hidden_sizes: Sequence[int], warmup: bool, hold: bool, updates: int,
                  transitions: int, backlog: int, stamp: float) -> WireMessage:
    """
    Encode an actor's weights and what the learner wants actors to know.

    Header fields: ``format`` (``ddpg_ros/policy``), ``version`` (1), ``run_id``,
    ``policy_version``, ``spec``, ``hidden_sizes``, ``parameters`` (``[name, shape]`` in
    payload order), ``warmup``, ``hold``, ``updates``, ``transitions``, ``backlog``,
    ``stamp``.
    """
    state = {name: tensor.detach().to('cpu', torch.float32).contiguous()
             for name, tensor in actor.state_dict().items()}
    flat = torch.cat([tensor.reshape(-1) for tensor in state.values()])
    header = {'format': POLICY_FORMAT, 'version': WIRE_VERSION, 'run_id': run_id,
              'policy_version': int(version), 'spec': spec.to_dict(),
              'hidden_sizes': [int(h) for h in hidden_sizes],
              'parameters': [[name, list(tensor.shape)] for name, tensor in state.items()],
              'warmup': bool(warmup), 'hold': bool(hold), 'updates': int(updates),
              'transitions': int(transitions), 'backlog': int(backlog),
              'stamp': float(stamp)}
    count = flat.numel()
    payload = flat.numpy().astype(FLOAT32, copy=False).tobytes()
    return _pack(header, payload, (('parameters', count, count * 4), ('float32le', 4, 4)))


# Decoding


def _split(data: Any, data_offset: int, dims: Sequence[tuple[str, int, int]],
           max_bytes: int, what: str, expected_format: str
           ) -> tuple[dict[str, Any], np.ndarray]:
    """Check size, offset and header; return the header and the payload bytes (no copy)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    size = raw.size
    if size > max_bytes:
        raise WireError(f'{what} message of {size} bytes exceeds the limit of {max_bytes} '
                        'bytes', 'oversized')
    if not 0 < data_offset <= min(size, MAX_HEADER_BYTES):
        raise WireError(f'{what} message has data_offset={data_offset}: the header must be '
                        f'1..{min(size, MAX_HEADER_BYTES)} bytes of its {size}', 'malformed')
    try:
        header = json.loads(raw[:data_offset].tobytes().decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f'{what} header is not UTF-8 JSON: {exc}', 'malformed') from None
    if not isinstance(header, dict):
        raise WireError(f'{what} header is a JSON {type(header).__name__}, not an object',
                        'malformed')
    actor_id = header.get('actor_id') if isinstance(header.get('actor_id'), str) else ''
    if header.get('format') != expected_format:
        raise WireError(f'not a {expected_format} message: format={header.get("format")!r}',
                        'malformed', actor_id)
    if header.get('version') != WIRE_VERSION:
        raise WireError(f'{what} message version {header.get("version")!r} is unknown; this '
                        f'ddpg_ros reads version {WIRE_VERSION}', 'version', actor_id)
    payload = raw[data_offset:]
    stated = [(str(label), int(dim_size), int(stride)) for label, dim_size, stride in dims]
    if stated and stated[0][2] != payload.size:
        raise WireError(f'{what} layout says {stated[0][2]} payload bytes, the message has '
                        f'{payload.size}', 'length', actor_id)
    return header, payload


def _integer(header: Mapping[str, Any], name: str, what: str, low: int = 0,
             actor_id: str = '') -> int:
    value = header.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise WireError(f'{what} header field {name}={value!r} must be an integer >= {low}',
                        'malformed', actor_id)
    return value


def _text(header: Mapping[str, Any], name: str, what: str, actor_id: str = '',
          empty: bool = False) -> str:
    value = header.get(name)
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS or (not value and not empty):
        raise WireError(f'{what} header field {name}={value!r} must be a '
                        f'{"" if empty else "non-empty "}string of at most {MAX_ID_CHARS} '
                        'characters', 'malformed', actor_id)
    return value


def _flag(header: Mapping[str, Any], name: str, what: str) -> bool:
    value = header.get(name)
    if not isinstance(value, bool):
        raise WireError(f'{what} header field {name}={value!r} must be true or false',
                        'malformed')
    return value


def _spec(header: Mapping[str, Any], what: str, actor_id: str = '') -> PolicySpec:
    value = header.get('spec')
    try:
        if not isinstance(value, dict):
            raise TypeError('not a JSON object')
        spec = PolicySpec.from_dict(value)
        names = (spec.observation_names, spec.action_names, spec.joint_names)
        if not isinstance(spec.task, str) or not all(
                isinstance(n, list) and all(isinstance(x, str) for x in n) for n in names):
            raise TypeError('task and names must be strings')
        bounds = (spec.action_low, spec.action_high)
        if not all(isinstance(b, list) and len(b) == spec.action_dim and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                for x in b) for b in bounds) or not spec.obs_dim or not spec.action_dim:
            raise TypeError('it needs observation and action names and one finite bound '
                            'per action')
        period = spec.control_period
        if period is not None and (isinstance(period, bool) or not isinstance(
                period, (int, float)) or not period > 0.0):
            raise TypeError(f'control_period={period!r} must be a positive number or null')
    except (TypeError, ValueError) as exc:
        raise WireError(f'{what} header field spec is not a policy spec: {exc}', 'malformed',
                        actor_id) from None
    return spec


def spec_differences(ours: PolicySpec, theirs: PolicySpec, names: tuple[str, str]) -> list[str]:
    """
    Return what differs between two specs, each item naming both values.

    Compared: task, observation, action and joint names, action bounds, and the control
    period (1 % tolerance, as a checkpoint's).

    :param names: what to call each side in the text, e.g. ``('learner', 'actor')``.
    """
    mine, other = names
    diffs = []
    for name in ('task', 'observation_names', 'action_names', 'joint_names'):
        a, b = getattr(ours, name), getattr(theirs, name)
        a, b = (a, b) if name == 'task' else (list(a), list(b))
        if a != b:
            diffs.append(f'{name}: {mine} {a!r}, {other} {b!r}')
    for name in ('action_low', 'action_high'):
        a, b = getattr(ours, name), getattr(theirs, name)
        if len(a) != len(b) or not np.allclose(a, b, rtol=0.0, atol=1e-6):
            diffs.append(f'{name}: {mine} {list(a)}, {other} {list(b)}')
    a, b = ours.control_period, theirs.control_period
    if a is not None and b is not None and not abs(a - b) <= 0.01 * a:
        diffs.append(f'control_period: {mine} {a:g} s, {other} {b:g} s')
    return diffs


def _check_run_and_spec(header: Mapping[str, Any], what: str, spec: PolicySpec | None,
                        run_id: str | None, names: tuple[str, str], actor_id: str = ''
                        ) -> tuple[str, PolicySpec]:
    received_run = _text(header, 'run_id', what, actor_id)
    received_spec = _spec(header, what, actor_id)
    mine, other = names
    if run_id is not None and received_run != run_id:
        raise WireError(f'{what} of run {received_run!r} refused: the {mine} is in run '
                        f'{run_id!r}', 'run_id', actor_id)
    if spec is not None:
        diffs = spec_differences(spec, received_spec, names)
        if diffs:
            raise WireError(f'{what} refused: the {other}\'s spec differs from the {mine}\'s: '
                            + '; '.join(diffs), 'spec', actor_id)
    return received_run, received_spec


def decode_transitions(data: Any, data_offset: int, dims: Sequence[tuple[str, int, int]] = (),
                       *, spec: PolicySpec | None = None, run_id: str | None = None,
                       max_bytes: int = MAX_TRANSITION_BYTES) -> TransitionBatch:
    """
    Decode and validate a transition batch.

    :param data: the message's ``data`` (any bytes-like object; not copied until the rows
        are split).
    :param dims: the message's ``layout.dim`` as ``(label, size, stride)``; checked when given.
    :param spec: the learner's spec; a batch of another spec is refused naming every
        difference. ``None``: the batch's own spec decides the layout.
    :param run_id: the learner's run id; a batch of another run is refused.
    :raises WireError: anything wrong, in one line.
    """
    what = 'transition'
    header, payload = _split(data, data_offset, dims, max_bytes, what, TRANSITIONS_FORMAT)
    actor_id = _text(header, 'actor_id', what)
    received_run, received_spec = _check_run_and_spec(
        header, 'transition batch', spec, run_id, ('learner', 'actor'), actor_id)
    epoch = _integer(header, 'epoch', what, 0, actor_id)
    sequence = _integer(header, 'sequence', what, 0, actor_id)
    policy_version = _integer(header, 'policy_version', what, 0, actor_id)
    count = _integer(header, 'count', what, 1, actor_id)
    if count > MAX_TRANSITIONS:
        raise WireError(f'transition batch of {count} transitions exceeds the limit of '
                        f'{MAX_TRANSITIONS}', 'oversized', actor_id)
    returns = header.get('episode_returns', [])
    if not isinstance(returns, list) or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r)
            for r in returns):
        raise WireError(f'transition header field episode_returns={returns!r} must be a list '
                        'of finite numbers', 'malformed', actor_id)
    obs_dim, action_dim = received_spec.obs_dim, received_spec.action_dim
    width = row_width(obs_dim, action_dim)
    expected = count * width * 4
    if payload.size != expected:
        raise WireError(f'transition payload has {payload.size} bytes; {count} transitions of '
                        f'{width} float32 values need {expected}', 'length', actor_id)
    if dims and [tuple(d) for d in dims] != [('transitions', count, expected),
                                             ('values', width, width * 4),
                                             ('float32le', 4, 4)]:
        raise WireError(f'transition layout {list(dims)} does not describe {count} x {width} '
                        'float32 values', 'malformed', actor_id)
    rows = payload.view(FLOAT32).reshape(count, width)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise WireError(f'transition {int(np.argmin(finite))} of the batch holds a non-finite '
                        'value', 'non_finite', actor_id)
    terminated = rows[:, -1]
    if not np.isin(terminated, (0.0, 1.0)).all():
        raise WireError(f'transition terminated flags must be 0 or 1, got '
                        f'{sorted(set(terminated.tolist()) - {0.0, 1.0})[:3]}', 'malformed',
                        actor_id)
    a, b, c = obs_dim, obs_dim + action_dim, obs_dim + action_dim + 1
    return TransitionBatch(
        run_id=received_run, actor_id=actor_id, epoch=epoch, sequence=sequence,
        policy_version=policy_version, episode_returns=tuple(float(r) for r in returns),
        obs=rows[:, :a], actions=rows[:, a:b], rewards=rows[:, b], next_obs=rows[:, c:-1],
        terminated=terminated)


def decode_policy_header(data: Any, data_offset: int,
                         dims: Sequence[tuple[str, int, int]] = (), *,
                         max_bytes: int = MAX_POLICY_BYTES) -> tuple[PolicyHeader, np.ndarray]:
    """
    Decode a policy message's header only (cheap): is it new, is it still the same run.

    :return: the header and the payload bytes (not copied).
    :raises WireError: anything wrong with the header, in one line.
    """
    what = 'policy'
    header, payload = _split(data, data_offset, dims, max_bytes, what, POLICY_FORMAT)
    hidden = header.get('hidden_sizes')
    if not isinstance(hidden, list) or not hidden or not all(
            isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= 1 << 16
            for h in hidden):
        raise WireError(f'policy header field hidden_sizes={hidden!r} must be a list of '
                        'widths in 1..65536', 'malformed')
    parameters = header.get('parameters')
    try:
        entries = tuple((str(name), tuple(int(n) for n in shape))
                        for name, shape in parameters)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise WireError(f'policy header field parameters={str(parameters)[:200]} must be a '
                        'list of [name, shape]', 'malformed') from None
    stamp = header.get('stamp')
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or \
            not math.isfinite(stamp):
        raise WireError(f'policy header field stamp={stamp!r} must be a finite number',
                        'malformed')
    return PolicyHeader(
        run_id=_text(header, 'run_id', what), version=_integer(header, 'policy_version', what, 1),
        spec=_spec(header, what).to_dict(), hidden_sizes=tuple(hidden), parameters=entries,
        warmup=_flag(header, 'warmup', what), hold=_flag(header, 'hold', what),
        updates=_integer(header, 'updates', what),
        transitions=_integer(header, 'transitions', what),
        backlog=_integer(header, 'backlog', what), stamp=float(stamp)), payload


def decode_policy(data: Any, data_offset: int, dims: Sequence[tuple[str, int, int]] = (), *,
                  spec: PolicySpec | None = None, run_id: str | None = None,
                  max_bytes: int = MAX_POLICY_BYTES) -> ReceivedPolicy:
    """
    Decode and validate a policy into a CPU actor.

    :param spec: the robot's spec; a policy for another is refused naming every difference.
    :param run_id: the run the actor belongs to; ``None`` accepts any.
    :raises WireError: anything wrong, in one line; nothing is half-loaded.
    """
    header, payload = decode_policy_header(data, data_offset, dims, max_bytes=max_bytes)
    _check_run_and_spec({'run_id': header.run_id, 'spec': header.spec}, 'policy', spec, run_id,
                        ('robot', 'policy'))
    own = spec if spec is not None else PolicySpec.from_dict(header.spec)
    # Sizes first, from the header alone: a hostile header must not make us allocate.
    widths = [own.obs_dim, *header.hidden_sizes, own.action_dim]
    count = sum(i * o + o for i, o in zip(widths, widths[1:])) + 2 * own.action_dim
    if payload.size != 4 * count:
        raise WireError(f'policy payload has {payload.size} bytes; an actor of hidden sizes '
                        f'{list(header.hidden_sizes)} needs {4 * count}', 'length')
    if dims and [tuple(d) for d in dims] != [('parameters', count, 4 * count),
                                             ('float32le', 4, 4)]:
        raise WireError(f'policy layout {list(dims)} does not describe {count} float32 values',
                        'malformed')
    actor = Actor(own.obs_dim, np.asarray(own.action_low), np.asarray(own.action_high),
                  header.hidden_sizes)
    expected = tuple((name, tuple(t.shape)) for name, t in actor.state_dict().items())
    if header.parameters != expected:
        raise WireError(f'policy parameters {list(header.parameters)} are not those of this '
                        f'actor: {list(expected)}', 'malformed')
    values = torch.from_numpy(payload.view(FLOAT32).astype(np.float32))
    if not bool(torch.isfinite(values).all()):
        raise WireError(f'policy version {header.version} holds non-finite weights',
                        'non_finite')
    state, start = {}, 0
    for name, shape in expected:
        size = math.prod(shape)
        state[name] = values[start:start + size].reshape(shape)
        start += size
    actor.load_state_dict(state)
    actor.requires_grad_(False).eval()
    return ReceivedPolicy(header, actor)


__all__ = ['MAX_POLICY_BYTES', 'MAX_TRANSITION_BYTES', 'POLICY_FORMAT', 'PolicyHeader',
           'ReceivedPolicy', 'TRANSITIONS_FORMAT', 'TransitionBatch', 'WIRE_VERSION',
           'WireError', 'WireMessage', 'decode_policy', 'decode_policy_header',
           'decode_transitions', 'encode_policy', 'encode_transitions', 'row_width',
           'spec_differences']
