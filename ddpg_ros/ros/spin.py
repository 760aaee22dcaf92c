"""
Run a node that must finish its work after Ctrl-C or SIGTERM: checkpoint, safe command.

rclpy's own signal handling is off: it would shut the context down before the node could
checkpoint and send the safe command. SIGINT and SIGTERM only set a flag, which the spin
loop reads between callbacks (within ``SPIN_TIMEOUT``). An exception raised from the
handler instead could land inside rclpy's C++ code taking a message, where pybind11 turns
it into a ``RuntimeError`` and the node would exit with a traceback.

Why one executor thread: rclpy's ``MultiThreadedExecutor`` re-yields a callback that has not
started yet on every spin, so while the agent's control step waits for the learner its spin
loop busy-waits on the GIL; measured here, it starved the learner to a few updates per second
on a loaded machine. A single thread spins only when there is work.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

SPIN_TIMEOUT = 0.25
"""Seconds the main loop may wait for work before it checks for a stop request."""


def spin_until_stopped(make_node: Callable[[], Any], name: str, args: list[str] | None = None,
                       start_errors: tuple[type[BaseException], ...] = ()) -> int:
    """
    Build the node, spin it until a signal or ``node.finished``, then ``node.shut_down()``.

    :param make_node: builds the node (after ``rclpy.init``); it has a ``finished`` event and
        a ``shut_down()`` method that runs once spinning has stopped.
    :param name: logger name for a node that cannot start.
    :param start_errors: exceptions that mean bad input at start: logged in one line, exit 1.
    :return: the exit status: 0, or 1 if the node could not start.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop_requested.set())
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = make_node()
        executor.add_node(node)
        # A callback that finishes the node's work sets `finished` in this very thread.
        while rclpy.ok() and not node.finished.is_set() and not stop_requested.is_set():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT)
    except ExternalShutdownException:
        pass
    except (ValueError, ParameterException, *start_errors) as exc:
        rclpy.logging.get_logger(name).fatal(f'cannot start: {exc}')
        return 1
    finally:
        # The exit work must not be cut short by a second signal (launch tools follow SIGINT
        # with SIGTERM); SIGKILL still ends a hung exit.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.shut_down()
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
