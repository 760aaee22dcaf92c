"""
MuJoCo's warnings in the program's own log, not in ``MUJOCO_LOG.TXT``; no ROS.

Left alone, MuJoCo prints each warning and appends it to ``MUJOCO_LOG.TXT`` in the current
directory, wherever a user happens to start a program (MuJoCo 4.0 warns, for example, about
the ``settotalmass`` that Gymnasium's HalfCheetah-v5 model uses). :func:`route_mujoco_warnings`
installs MuJoCo's user warning handler instead: each distinct warning goes once to a sink (a
``logging`` logger by default, a ROS node's logger in ``mujoco_sim``), with a hint of what to
do about it, and no file is written.

MuJoCo is imported inside the function, not at the top: it picks its OpenGL backend when first
imported, which :func:`ddpg_ros.sim.rendering.select_gl_backend` may still have to do.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable

LOGGER = logging.getLogger('ddpg_ros.mujoco')
"""Where warnings go by default; with no logging configured, Python prints them on stderr."""

_HINTS = (
    ('deprecated', 'the model uses a MuJoCo feature that a later MuJoCo release removes; it '
                   'still works with this one. Update the model file (for a Gymnasium env: a '
                   'newer gymnasium), or pin mujoco, before upgrading MuJoCo'),
    ('unstable', 'the simulation diverged: check the commands sent (size, units) and the '
                 "model's timestep"),
)
_DEFAULT_HINT = "MuJoCo's documentation explains this warning; the program goes on"
_NUMBER = re.compile(r'[-+]?\d+(\.\d*)?([eE][-+]?\d+)?')

_lock = threading.Lock()
_sink: Callable[[str], None] | None = None
_seen: set[str] = set()


def warning_hint(message: str) -> str:
    """Return what a user can do about a MuJoCo warning."""
    lowered = message.lower()
    return next((hint for key, hint in _HINTS if key in lowered), _DEFAULT_HINT)


def _on_mujoco_warning(message: str) -> None:
    # MuJoCo calls this from C, from whichever thread warned, holding the GIL. It must not
    # raise: an exception here would become a MuJoCo error in the middle of a step.
    try:
        # Warnings that differ only in numbers (a time, a DOF index) are one warning.
        key = _NUMBER.sub('#', message.strip())
        with _lock:
            if key in _seen:
                return
            _seen.add(key)
            sink = _sink
        line = (f'MuJoCo warning: {message.strip()} ({warning_hint(message)}; each distinct '
                'MuJoCo warning is shown once)')
        (sink or LOGGER.warning)(line)
    except Exception as exc:  # noqa: BLE001 - see above: nothing may escape into MuJoCo
        print(f'MuJoCo warning: {message.strip()} (not logged: {exc!r})', file=sys.stderr)


def route_mujoco_warnings(sink: Callable[[str], None] | None = None) -> None:
    """
    Send each distinct MuJoCo warning once to ``sink`` instead of ``MUJOCO_LOG.TXT``.

    Call it before a model is loaded: compiling one is what warns. Calling it again is cheap;
    without a ``sink`` it keeps the sink already given (a node's logger stays in place when
    the simulation it builds calls this too). A warning handler that someone else installed
    is left alone.

    :param sink: takes one log line; default :data:`LOGGER`'s ``warning``.
    """
    global _sink
    import mujoco

    current = mujoco.get_mju_user_warning()
    if current is not None and current is not _on_mujoco_warning:
        return
    with _lock:
        if sink is not None:
            _sink = sink
    if current is None:
        mujoco.set_mju_user_warning(_on_mujoco_warning)
