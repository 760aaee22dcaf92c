"""
What ``ddpg_agent`` tells the people watching: ``/diagnostics`` and a progress line.

``/diagnostics`` carries, at least once a second, the mode, counters, learning (updates,
update-to-data ratio, losses), the state->command latency, and what is wrong, if anything:
ERROR for a learner fault, WARN for refused states, a tripped watchdog (naming the silent
sources), failed resets, commands sent before the learner caught up, non-finite actions,
and checkpoints not written.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock

from ddpg_ros.control.loop import ControlLoop
from ddpg_ros.control.settings import AgentSettings
from ddpg_ros.control.step import ControlStep
from ddpg_ros.control.training import Deployment, LocalTraining
from ddpg_ros.fleet.actor import RemoteTraining
from ddpg_ros.ros.interfaces import CommandPublisher
from ddpg_ros.tasks import Task

LATENCY_WINDOW = 1000
"""Commands over which the action latency percentiles are taken."""
WARNINGS = (('reset_failures', 'reset failure(s)'),
            ('update_wait_timeouts', 'command(s) sent before the learner caught up '
             '(update-to-data ratio below updates_per_step)'),
            ('non_finite_actions', 'non-finite action(s) replaced by the safe command'),
            ('off_period_steps', 'step(s) not one control period after the one before (a late '
             'tick or no new state): acted on, not stored'),
            ('checkpoint_failures', 'checkpoint(s) not written'))


class LatencyWindow:
    """State->command latencies of the last commands, and the part spent waiting to learn."""

    def __init__(self, size: int = LATENCY_WINDOW) -> None:
        self._latencies = np.zeros(size)
        self._waits = np.zeros(size)
        self.count = 0

    def record(self, latency: float, wait: float) -> None:
        """Add one command's latency and its wait for the learner, in seconds."""
        slot = self.count % len(self._latencies)
        self._latencies[slot] = latency
        self._waits[slot] = wait
        self.count += 1

    def values(self) -> dict[str, str]:
        """Return p50, p99 and the mean learner wait, in milliseconds."""
        count = min(self.count, len(self._latencies))
        latencies = self._latencies[:count] * 1e3
        p50, p99 = np.percentile(latencies, [50, 99]) if count else (math.nan, math.nan)
        wait = float(np.mean(self._waits[:count]) * 1e3) if count else math.nan
        return {'action_latency_p50_ms': f'{p50:.3f}', 'action_latency_p99_ms': f'{p99:.3f}',
                # The part of the latency spent holding the update-to-data ratio (lockstep).
                'update_wait_mean_ms': f'{wait:.3f}'}


class AgentView(Protocol):
    """
    What the status reads of an agent.

    :class:`~ddpg_ros.ros.ddpg_agent_node.DDPGAgentNode` is one; naming the parts here
    instead of importing the node keeps the dependency one way: the node uses this module.
    """

    settings: AgentSettings
    task: Task
    policy: LocalTraining | Deployment | RemoteTraining
    control: ControlStep
    loop: ControlLoop
    commands: CommandPublisher
    latency: LatencyWindow
    last_problem: str
    states_received: int

    @property
    def stats(self) -> dict[str, int]: ...

    def get_name(self) -> str: ...

    def get_clock(self) -> Clock: ...


class AgentStatus:
    """Builds the agent's ``/diagnostics`` entry; warnings count what is new since the last."""

    def __init__(self) -> None:
        self._reported: dict[str, int] = {}

    def diagnostics(self, agent: AgentView) -> DiagnosticArray:
        """Return the agent's status: counters, learning, latency, and what is wrong."""
        stats = agent.stats
        fresh = {k: v - self._reported.get(k, 0) for k, v in stats.items()}
        self._reported = stats
        warnings = []
        if fresh['invalid_states']:
            warnings.append(f'{fresh["invalid_states"]} invalid state(s): '
                            f'{agent.last_problem}')
        if agent.loop.tripped:
            kinds = {source.name: source.kind.replace('_', ' ') for source in agent.task.sources}
            silent = ', '.join(f'{kinds.get(name, name)} ({name})'
                               for name in agent.loop.silent_sources)
            warnings.append(f'no valid {silent} within state_timeout '
                            f'({agent.settings.state_timeout:g} s): safe command sent, '
                            'not acting')
        warnings += [f'{fresh[key]} {text}' for key, text in WARNINGS if fresh[key]]
        saturation = getattr(agent.policy, 'saturation', None)
        if saturation is not None and saturation.saturated:
            warnings.append(saturation.message())
        learner = agent.policy.learner
        fault = learner.fault if learner is not None else None
        if fault is not None:
            level, message = DiagnosticStatus.ERROR, f'learner fault: {fault}'
        elif warnings:
            level, message = DiagnosticStatus.WARN, '; '.join(warnings)
        else:
            level, message = DiagnosticStatus.OK, ('acting' if agent.latency.count
                                                   else 'waiting for states')
        control = agent.control
        episodes = control.episodes
        values = {
            'mode': agent.settings.mode, 'task': agent.task.name,
            'env_steps': str(episodes.env_steps), 'episodes': str(episodes.episodes),
            'states_received': str(agent.states_received),
            'last_episode_return': (f'{episodes.recent_returns[-1]:.3f}'
                                    if episodes.recent_returns else ''),
            **agent.latency.values(),
            'acting': str(not agent.loop.tripped and not agent.loop.stopping),
            'stale_sources': ', '.join(agent.loop.silent_sources) if agent.loop.tripped else '',
            # The last trip as the agent timed it: how long its sources had been silent, and
            # how long since the watchdog's previous check (over its period: the node starved).
            'trip_silence_s': _seconds(agent.loop.trip_silence),
            'trip_check_gap_s': _seconds(agent.loop.trip_check_gap),
            'exploration': str(control.explore),
            'device': str(agent.policy.agent.device),
            'command_interface': agent.commands.interface,
            # Zero on a robot means no controller takes the commands (not loaded, or a topic
            # remapped elsewhere); tests wait for it before a run that ends quickly.
            'command_subscribers': str(agent.commands.publisher.get_subscription_count()),
            'control_rate_hz': f'{agent.settings.control_rate:g}',
        }
        if agent.policy.training:
            values.update(agent.policy.diagnostic_values(episodes.env_steps))
        values.update({key: str(value) for key, value in stats.items()})
        values['learner_fault'] = fault or ''
        values['warnings'] = '; '.join(warnings)
        status = DiagnosticStatus(
            level=level, name=f'{agent.get_name()}: agent', message=message,
            hardware_id=agent.task.name,
            values=[KeyValue(key=key, value=value) for key, value in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = agent.get_clock().now().to_msg()
        return array


def progress_line(agent: AgentView) -> str:
    """Return one line of progress for whoever watches the terminal of a long run."""
    episodes = agent.control.episodes
    line = f'steps {episodes.env_steps}  episodes {episodes.episodes}'
    if episodes.recent_returns:
        line += (f'  return (last {len(episodes.recent_returns)}) '
                 f'{np.mean(episodes.recent_returns):.1f}')
    learner = agent.policy.learner
    if learner is not None:
        line += (f'  updates {learner.updates} ({learner.updates_per_second:.0f}/s)'
                 f'  buffer {len(agent.policy.buffer)}')
        if learner.fault is not None:
            line += f'  LEARNER FAULT: {learner.fault}'
    return line


def ready_line(agent: AgentView) -> str:
    """Return the line that says what the agent reads, commands and runs on."""
    settings, task = agent.settings, agent.task
    resumed = agent.policy.counters['env_steps']
    pace = (f'control_rate {settings.control_rate:g} Hz' if settings.control_rate
            else 'acting on every robot step')
    return (f'ready: mode {settings.mode}, task {task.name}, joints {list(task.joint_names)}, '
            f'sources {[s.name for s in task.sources]}, {agent.commands.interface} commands '
            f'on {agent.commands.topic} for {list(task.action_names)}, {pace}, device '
            f'{agent.policy.agent.device}'
            + (f', resumed at step {resumed}' if settings.load_checkpoint
               and agent.policy.training else ''))


def _seconds(value: float | None) -> str:
    """Format a duration for ``/diagnostics``: '' when there is none yet."""
    return '' if value is None else f'{value:.3f}'
