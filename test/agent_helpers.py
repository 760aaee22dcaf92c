"""
Helpers for the ddpg_agent tests: the agent inside the test process, and what it publishes.

An in-process agent is a real :class:`DDPGAgentNode` on real DDS in the test's own context,
spun by the test's executor, so a test can read its replay buffer and inject learner faults.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from ddpg_ros.ros.ddpg_agent_node import DDPGAgentNode
from ddpg_ros.ros.qos import COMMAND_QOS, DIAGNOSTICS_QOS, STATE_QOS

from conftest import RosTestNode, node_command

START_TIMEOUT = 30.0
"""Seconds for nodes to start and discover each other on a loaded 2-core machine."""
REPLY_TIMEOUT = 10.0

SMALL_LEARNER = {'hidden_sizes': [32, 32], 'batch_size': 32, 'buffer_size': 10_000,
                 'learning_starts': 50, 'device': 'cpu'}
"""Hyper-parameters that make a learner start and run fast; no claim to learn anything."""


RESEND_AFTER = 5.0
"""Seconds without an answer after which :func:`call_service` sends the request again."""


def call_service(ros: RosTestNode, client: Any, request: Any,
                 timeout: float = REPLY_TIMEOUT) -> Any:
    """
    Call a service and return its answer, sending the request again while none comes.

    A service is "ready" once this client has matched the server, but the server may not yet
    have matched this client's response reader: Fast DDS waits 100 ms for it, then drops the
    answer ("failed to send response (timeout)"). Only for requests that may run twice.
    """
    assert ros.spin_until(client.service_is_ready, START_TIMEOUT), client.srv_name
    deadline = time.monotonic() + timeout
    while True:
        future = client.call_async(request)
        wait = min(RESEND_AFTER, deadline - time.monotonic())
        if ros.spin_until(future.done, max(wait, 0.0)):
            return future.result()
        assert time.monotonic() < deadline, f'{client.srv_name} silent'


def assert_tripped_on_time(agent: DDPGAgentNode, timeout: float) -> None:
    """
    Assert that the watchdog tripped at its first check past ``timeout``, on the agent's clock.

    The gap since the check before is the most it can be late by: a machine that stalls this
    process stalls the watchdog with it, and the agent says so rather than the test guessing.
    """
    silence, gap = agent.loop.trip_silence, agent.loop.trip_check_gap
    assert silence is not None and timeout < silence <= timeout + gap + 1e-3, (silence, gap)


def start_agent(ros: RosTestNode, tmp_path: Path, **params: Any) -> DDPGAgentNode:
    """Create a ``ddpg_agent`` node in the test's context and add it to its executor."""
    params.setdefault('checkpoint_dir', str(tmp_path / 'checkpoints'))
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    node = DDPGAgentNode(context=ros.context, parameter_overrides=overrides)
    ros.executor.add_node(node)
    return node


def stop_agent(ros: RosTestNode, node: DDPGAgentNode) -> None:
    ros.executor.remove_node(node)
    node.shut_down()
    node.destroy_node()


class AgentListener:
    """Everything the agent publishes, and clients for its services, on the test node."""

    def __init__(self, ros: RosTestNode, agent: str = 'ddpg_agent') -> None:
        self.ros = ros
        node = ros.node
        self.commands: list[np.ndarray] = []
        self.command_times: list[float] = []
        self.returns: list[float] = []
        self.diagnostics: list[DiagnosticArray] = []
        node.create_subscription(Float64MultiArray, 'effort_controller/commands',
                                 self._on_command, COMMAND_QOS)
        node.create_subscription(Float64, f'{agent}/episode_return',
                                 lambda msg: self.returns.append(msg.data), 10)
        node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append,
                                 DIAGNOSTICS_QOS)
        self.states = node.create_publisher(JointState, 'joint_states', STATE_QOS)
        self.save_checkpoint = node.create_client(Trigger, f'{agent}/save_checkpoint')
        self.set_training = node.create_client(SetBool, f'{agent}/set_training')
        self.set_exploration = node.create_client(SetBool, f'{agent}/set_exploration')

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.commands.append(np.array(msg.data, dtype=np.float64))
        self.command_times.append(time.monotonic())

    def call(self, client: Any, request: Any) -> Any:
        return call_service(self.ros, client, request)

    def switch(self, client: Any, on: bool) -> SetBool.Response:
        return self.call(client, SetBool.Request(data=on))

    def agent_status(self, since: int = 0) -> list[dict[str, Any]]:
        """Return the agent's diagnostics statuses received from index ``since`` on, as dicts."""
        found = []
        for array in self.diagnostics[since:]:
            for status in array.status:
                if status.name.endswith(': agent'):
                    found.append({'level': int.from_bytes(status.level, 'little'),
                                  'message': status.message,
                                  **{kv.key: kv.value for kv in status.values}})
        return found

    def wait_for_status(self, predicate: Callable[[dict[str, Any]], bool],
                        timeout: float = REPLY_TIMEOUT, since: int | None = None
                        ) -> dict[str, Any] | None:
        """Wait for the first status (after ``since``, default now) satisfying ``predicate``."""
        start = len(self.diagnostics) if since is None else since
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [s for s in self.agent_status(start) if predicate(s)]
            return bool(found)

        self.ros.spin_until(seen, timeout)
        return found[0] if found else None


def joint_state(names: list[str], position: Any, velocity: Any, effort: Any,
                stamp_ns: int) -> JointState:
    msg = JointState(name=list(names), position=[float(v) for v in position],
                     velocity=[float(v) for v in velocity],
                     effort=[float(v) for v in effort])
    msg.header.stamp.sec = stamp_ns // 1_000_000_000
    msg.header.stamp.nanosec = stamp_ns % 1_000_000_000
    return msg


def ddpg_cli(*args: str, timeout: float = 180.0) -> str:
    """Run ``ddpg-train``/``ddpg-eval`` (by module, with this interpreter); its stdout."""
    module = {'ddpg-train': 'ddpg_ros.cli.train', 'ddpg-eval': 'ddpg_ros.cli.evaluate'}[args[0]]
    result = subprocess.run([sys.executable, '-m', module, *args[1:]], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def eval_mean_return(stdout: str) -> float:
    last = stdout.strip().splitlines()[-1]
    match = re.fullmatch(r'mean_return: (\S+)', last)
    assert match, last
    return float(match.group(1))


def agent_command(**params: Any) -> list[str]:
    """``python -m ddpg_ros.ros.ddpg_agent_node --ros-args -p name:=value ...``."""
    args = []
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ['-p', f'{name}:={text}']
    return node_command('ddpg_agent_node', *args)
