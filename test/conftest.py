"""
Shared fixtures: DDS kept on loopback, one ROS domain per test, node processes ended by pid.

Fixtures (function scope):

- ``ros_domain_id``: a ROS domain id in 1..101 that no other test, in this run or another one
  on this machine, holds at the same time (a lock file per id).
- ``ros_env``: ``os.environ`` plus ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, that
  ``ROS_DOMAIN_ID`` and ``PYTHONUNBUFFERED=1``: the environment for every process a test starts.
- ``ros_processes``: a :class:`ProcessGroup` that starts commands with ``ros_env`` (output in
  a file under ``tmp_path``) and ends whatever is still running at teardown, by pid; where
  the test has a ``ros_node``, that node is spun while a process is waited for.
- ``ros_node``: a :class:`RosTestNode`, an rclpy node in the test's own context and domain,
  with an executor and ``spin_until``.

Fixtures (session scope), trained in the background from the first test on
(:mod:`background_runs`), their tests run last:

- ``pendulum_run``: ``ddpg-train`` runs of InvertedPendulum-v5 with its preset, seed 0 resumed
  at half way (:class:`PendulumRun`), trained once for every test that needs a solved policy.
- ``balancer_run``: the balancer learning to stand (:mod:`balancer_learning`).

Helpers: :func:`node_command` builds ``python -m ddpg_ros.ros.<module> --ros-args ...``;
:func:`pid_alive` tells whether a pid still runs (a zombie counts as gone).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from background_runs import BackgroundChain

# This process too must keep DDS on loopback, whatever the caller's shell says.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

DOMAIN_IDS = range(1, 102)
"""0 is left out: it is the default of every stray ROS process on the machine."""
_DOMAIN_LOCK_DIR = Path(tempfile.gettempdir()) / 'ddpg_ros_test_domains'
STOP_TIMEOUT = 10.0
"""Seconds a process gets to end after SIGINT at teardown before it is killed."""
EVENT_TIMEOUT = 120.0
"""Seconds for one awaited event of several processes on two loaded cores; never reached when
it works."""


@contextlib.contextmanager
def claim_domain_id() -> Iterator[int]:
    """
    Hold a ROS domain id that no other holder on this machine has until the block ends.

    :raises RuntimeError: every id is held.
    """
    _DOMAIN_LOCK_DIR.mkdir(exist_ok=True)
    ids = list(DOMAIN_IDS)
    # A random start, so that concurrent runs rarely even contend for the same lock file.
    start = random.SystemRandom().randrange(len(ids))
    for domain_id in ids[start:] + ids[:start]:
        fd = os.open(_DOMAIN_LOCK_DIR / f'{domain_id}.lock', os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield domain_id
        finally:
            os.close(fd)  # releases the lock
        return
    raise RuntimeError(f'all ROS domain ids {ids[0]}-{ids[-1]} are held by other tests')


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (zombies, which no longer run, count as gone)."""
    try:
        with open(f'/proc/{pid}/stat') as stat:
            # The state follows the command name, which is in parentheses and may hold spaces.
            return stat.read().rpartition(')')[2].split()[0] != 'Z'
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def node_command(module: str, *ros_args: str) -> list[str]:
    """``python -m ddpg_ros.ros.<module> --ros-args <ros_args>`` with this interpreter."""
    return [sys.executable, '-m', f'ddpg_ros.ros.{module}', '--ros-args', *ros_args]


SpinUntil = Callable[[Callable[[], bool], float], bool]
"""``RosTestNode.spin_until``: run a node's callbacks until a predicate holds or time is up."""


class TestProcess:
    """
    One process started for a test: output to a file, signals by pid only.

    :param spin_until: the test's listening node, run while waiting for this process to exit.
        A node that exits waits (a bounded time) for its reliable subscribers to acknowledge
        its last messages, and a subscriber whose node is not spun may never acknowledge
        them; a robot's controller spins, so a test that listens does too.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(self, command: Sequence[str], env: dict[str, str], log_path: Path,
                 cwd: Path | None = None, spin_until: SpinUntil | None = None) -> None:
        self.command = list(command)
        self.log_path = log_path
        self._spin_until = spin_until
        with open(log_path, 'wb') as log:
            # Own session: a Ctrl-C on pytest's terminal must not reach it behind our back.
            self.popen = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, cwd=cwd)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors='replace')

    def wait_for_line(self, pattern: str, after: int = 0,
                      timeout: float = EVENT_TIMEOUT) -> re.Match[str]:
        """
        Wait for a line of the output, past offset ``after``, that matches ``pattern``.

        :raises AssertionError: the process exited or ``timeout`` s passed first; the message
            holds the pattern, the command and the end of the output.
        """
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output(), after)
            if match:
                return match
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f'no line {pattern!r} in the output of {self.command}:\n'
                                     f'{self.output()[after:][-8000:]}')
            time.sleep(0.05)

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """Wait until ``text`` appears in the output; False on timeout or if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.popen.poll() is not None:
                return text in self.output()
            time.sleep(0.05)
        return False

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int | None:
        """Wait for the exit status; None if it is still running after ``timeout`` seconds."""
        if self._spin_until is not None:
            self._spin_until(lambda: self.popen.poll() is not None, timeout)
            return self.popen.poll()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGINT, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send ``sig`` and wait; None if it had to be killed (it ignored the signal)."""
        self.send_signal(sig)
        status = self.wait(timeout)
        if status is None:
            self.popen.kill()
            self.popen.wait()
        return status


class ProcessGroup:
    """Starts processes with the test's environment and ends them all at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path,
                 spin_until: SpinUntil | None = None) -> None:
        self.env = env
        self._log_dir = log_dir
        self._spin_until = spin_until
        self.processes: list[TestProcess] = []

    def start(self, command: Sequence[str], name: str = 'process', cwd: Path | None = None,
              env: dict[str, str] | None = None) -> TestProcess:
        """
        Start ``command``; its output goes to ``<tmp_path>/<name>-<n>.log``.

        ``cwd`` and ``env``, if given, replace the test's working directory and environment.
        """
        log_path = self._log_dir / f'{name}-{len(self.processes)}.log'
        process = TestProcess(command, self.env if env is None else env, log_path, cwd,
                              self._spin_until)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        """SIGINT every process still running, SIGKILL the ones that do not end, show logs."""
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            if process.wait(STOP_TIMEOUT) is None:
                process.popen.kill()
                process.popen.wait()
                print(f'killed pid {process.pid} after {STOP_TIMEOUT} s: {process.command}')
            # Shown by pytest for failing tests only.
            print(f'--- output of pid {process.pid}: {" ".join(process.command)}')
            print(process.output()[-4000:])


class RosTestNode:
    """An rclpy node in its own context on one domain, with its own executor."""

    __test__ = False

    def __init__(self, domain_id: int, name: str = 'test_node') -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        # A non-default context gets no signal handlers, so pytest keeps its own.
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Run callbacks until ``predicate()`` holds; False if ``timeout`` s pass first."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0.0:
                return False
            self.executor.spin_once(timeout_sec=min(remaining, 0.05))
        return True

    def spin_for(self, seconds: float) -> None:
        """Run callbacks for ``seconds``."""
        self.spin_until(lambda: False, seconds)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def ros_domain_id() -> Iterator[int]:
    with claim_domain_id() as domain_id:
        yield domain_id


def loopback_env(domain_id: int) -> dict[str, str]:
    """Return this process's environment, confined to ``domain_id`` on loopback DDS."""
    env = dict(os.environ)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', ROS_DOMAIN_ID=str(domain_id),
               PYTHONUNBUFFERED='1')
    # The deprecated variable would override the new one on some distros; one rule only.
    env.pop('ROS_LOCALHOST_ONLY', None)
    return env


@pytest.fixture
def ros_env(ros_domain_id: int) -> dict[str, str]:
    return loopback_env(ros_domain_id)


@pytest.fixture
def ros_processes(request: pytest.FixtureRequest, ros_env: dict[str, str],
                  tmp_path: Path) -> Iterator[ProcessGroup]:
    # A test's listening node is set up first, so it is still there, and spun, while the
    # processes end at teardown (see TestProcess).
    ros = request.getfixturevalue('ros_node') if 'ros_node' in request.fixturenames else None
    group = ProcessGroup(ros_env, tmp_path, ros.spin_until if ros is not None else None)
    yield group
    group.stop_all()


@pytest.fixture
def ros_node(ros_domain_id: int) -> Iterator[RosTestNode]:
    node = RosTestNode(ros_domain_id)
    yield node
    node.close()


PENDULUM_STEPS = 6_000
"""The learning promise: ``ddpg-train --env InvertedPendulum-v5`` with no hyper-parameter
flags, one torch thread, reaches the noise-free return of 1000 within 6,000 steps on each of
seeds 0, 1 and 2 (seed 0 across a ``--resume`` at half way). The preset (CrossQ's critics at
one update per step) solved seeds 0-4 at 2,000-3,000 steps (benchmarks/sample_efficiency.py);
Stable-Baselines3 DDPG needs about 20,000 here."""
PENDULUM_SEEDS = (0, 1, 2)
PENDULUM_RETURN = 1000.0
PENDULUM_EVAL_EVERY = 1000
TIMING_PROFILE = {'command_latency': [0.0, 0.5],
                  'late_periods': {'probability': 0.05, 'delay': [0.0, 0.5]}}
"""A control loop's timing as a randomization profile: every command takes effect up to half
a period after it is sent, and 5 % of them later still by up to half a period."""
RANDOMIZED_STEPS = 8_000
RANDOMIZED_FLAGS = ('--observe-last-action', 'true', '--eval-episodes', '10')
"""How the session's randomized pendulum trains: the pendulum's preset (CrossQ's critics on
64-64 networks, one update per step) with the last command observed, 10 randomized episodes
per evaluation. On a 2-core AMD EPYC it reached 1000 at 5,000 steps on seed 0 and held it
to 8,000 (seeds 1 and 2: 3,000 and 5,000), in 84 s. TD3's critics at 4 updates per step,
used here before, held 1000 from 7,000 steps on an Intel Xeon but were at 925 at 8,000 on
the EPYC: a seed's course depends on the CPU's floating-point kernels, so the budget keeps
a margin over the slowest solve measured. Plain DDPG's return under this profile rose to
650 and fell back to 87 by 10,000 steps."""


@dataclasses.dataclass
class PendulumRun:
    """A finished ``pendulum_run``: its directories, and what the resume started from."""

    out: Path
    """Seed 0: ``checkpoint.pt`` (6,000 steps), ``best.pt``, ``progress.csv``, TensorBoard,
    curve."""
    halfway: Path
    """A copy of seed 0's ``checkpoint.pt`` and ``checkpoint.npz`` as the first half left
    them."""
    resume_stderr: str
    """What the resumed ``ddpg-train`` wrote to stderr."""
    seeds: dict[int, Path]
    """The output directory of every seed's run, seed 0's included."""
    randomized: Path
    """Seed 0 trained against :data:`TIMING_PROFILE` with :data:`RANDOMIZED_FLAGS`, 8,000
    steps: a policy for a robot whose commands come late."""


def ddpg_train(out: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``ddpg-train --out OUT --no-progress ARGS`` with this interpreter."""
    return subprocess.run(ddpg_train_command(out, *args), capture_output=True, text=True,
                          timeout=timeout)


def ddpg_train_command(out: Path, *args: str) -> list[str]:
    """Return the command line of ``ddpg-train --out OUT --no-progress ARGS``."""
    return [sys.executable, '-m', 'ddpg_ros.cli.train', '--out', str(out), '--no-progress',
            *args]


BACKGROUND_FIXTURES = ('balancer_run', 'pendulum_run')
"""Session fixtures trained by :class:`~background_runs.BackgroundChain` runs; their tests go
last, in this order."""
BACKGROUND_TIMEOUT = 800.0
"""Seconds a test waits for its run: what is left of it at full speed, with a wide margin
(the runs take 1-3 minutes of both cores) under pytest's 900 s per test."""


class _BackgroundRuns:
    """The session's background chains, started at the first test for the fixtures ahead."""

    def __init__(self, wanted: set[str], tmp_path_factory: pytest.TempPathFactory) -> None:
        self.chains: dict[str, BackgroundChain] = {}
        self._factory = tmp_path_factory
        self._results: dict[str, object] = {}
        self._finish: dict[str, Callable[[], object]] = {}
        for name in BACKGROUND_FIXTURES:
            if name in wanted:
                self._start(name)

    def _start(self, name: str) -> None:
        starter = {'pendulum_run': self._start_pendulum,
                   'balancer_run': self._start_balancer}[name]
        self._finish[name] = starter(self._factory)

    def result(self, name: str) -> object:
        """Return the fixture's value once its chains finish (starting them if none did)."""
        if name not in self._finish:
            self._start(name)
        if name not in self._results:
            self._results[name] = self._finish[name]()
        return self._results[name]

    def stop(self) -> None:
        for chain in self.chains.values():
            chain.stop()

    def _chain(self, name: str, steps: Sequence, log_dir: Path) -> BackgroundChain:
        self.chains[name] = BackgroundChain(name, steps, log_dir)
        return self.chains[name]

    def _start_pendulum(self, tmp_path_factory: pytest.TempPathFactory
                        ) -> Callable[[], PendulumRun]:
        """
        Train the pendulum for the session with its preset, on three seeds at once.

        Seed 0 runs 3,000 steps, then ``--resume`` to 6,000, so the learning promise is kept
        across a resume; seeds 1 and 2, and seed 0 against :data:`TIMING_PROFILE`, run beside
        it, one torch thread each (each run's result depends on its seed only, never on the
        load). Every test that needs a solved policy (the CLI's outputs, ``ddpg-eval``,
        deployment through ROS) shares seed 0's run. ``--actor-lr 0.5`` on the resume must be
        ignored: a run continues with its own settings.
        """
        common = ('--env', 'InvertedPendulum-v5', '--eval-every', str(PENDULUM_EVAL_EVERY),
                  '--eval-episodes', '5', '--torch-threads', '1')
        logs = tmp_path_factory.mktemp('pendulum_logs')
        seeds = {seed: tmp_path_factory.mktemp(f'pendulum_seed{seed}') for seed in PENDULUM_SEEDS}
        out, halfway = seeds[0], tmp_path_factory.mktemp('pendulum_halfway')
        randomized = tmp_path_factory.mktemp('pendulum_randomized')
        profile = randomized / 'timing.yaml'
        profile.write_text(yaml.safe_dump(TIMING_PROFILE))

        def keep_halfway() -> None:
            for name in ('checkpoint.pt', 'checkpoint.npz'):
                shutil.copy2(out / name, halfway / name)

        seed0 = self._chain('pendulum_seed0', [
            ddpg_train_command(out, *common, '--save-buffer', '--seed', '0',
                               '--total-steps', str(PENDULUM_STEPS // 2)),
            keep_halfway,
            ddpg_train_command(out, *common, '--save-buffer', '--resume',
                               str(out / 'checkpoint.pt'), '--total-steps',
                               str(PENDULUM_STEPS), '--actor-lr', '0.5')], logs)
        beside = [self._chain(f'pendulum_seed{seed}', [ddpg_train_command(
            seeds[seed], *common, '--seed', str(seed), '--total-steps', str(PENDULUM_STEPS))],
            logs) for seed in PENDULUM_SEEDS[1:]]
        beside.append(self._chain('pendulum_randomized', [ddpg_train_command(
            randomized, *common, '--seed', '0', '--total-steps', str(RANDOMIZED_STEPS),
            '--randomize', str(profile), *RANDOMIZED_FLAGS)], logs))

        def finish() -> PendulumRun:
            resume_stderr = seed0.wait(BACKGROUND_TIMEOUT)[-1]
            for chain in beside:
                chain.wait(BACKGROUND_TIMEOUT)
            return PendulumRun(out=out, halfway=halfway, resume_stderr=resume_stderr,
                               seeds=seeds, randomized=randomized)

        return finish

    def _start_balancer(self, tmp_path_factory: pytest.TempPathFactory
                        ) -> Callable[[], list[tuple[int, float, int]]]:
        """Start the balancer's training run of :mod:`balancer_learning`, seed 0."""
        out = tmp_path_factory.mktemp('balancer') / 'evaluations.json'
        chain = self._chain('balancer', [[sys.executable, str(Path(__file__).parent /
                                                              'balancer_learning.py'),
                                          '--seed', '0', '--out', str(out)]], out.parent)

        def finish() -> list[tuple[int, float, int]]:
            chain.wait(BACKGROUND_TIMEOUT)
            return [tuple(row) for row in json.loads(out.read_text())]

        return finish


@pytest.fixture(scope='session', autouse=True)
def background_runs(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[_BackgroundRuns]:
    """Start, at the session's first test, the background runs that its tests will read."""
    wanted = {name for item in request.session.items
              for name in BACKGROUND_FIXTURES if name in getattr(item, 'fixturenames', ())}
    runs = _BackgroundRuns(wanted, tmp_path_factory)
    yield runs
    runs.stop()


@pytest.fixture(scope='session')
def pendulum_run(background_runs: _BackgroundRuns) -> PendulumRun:
    """Return the pendulum trained on seeds 0-2, and on seed 0 with late commands."""
    return background_runs.result('pendulum_run')


@pytest.fixture(scope='session')
def balancer_run(background_runs: _BackgroundRuns) -> list[tuple[int, float, int]]:
    """Return the balancer's evaluations as it learns: ``(env step, return, length)``."""
    return background_runs.result('balancer_run')


def pytest_configure(config: pytest.Config) -> None:
    """
    Prepare MuJoCo before any test module imports it.

    This process gets an OpenGL backend that renders without a display, and MuJoCo's
    warnings go to the log, not to a MUJOCO_LOG.TXT in the working directory. MuJoCo fixes
    its backend when first imported, so it is imported here under the chosen ``MUJOCO_GL``;
    the variables are then given back, so that the processes tests start choose for
    themselves, as they would for a user.
    """
    from ddpg_ros.sim.rendering import select_gl_backend

    saved = {name: os.environ.get(name) for name in ('MUJOCO_GL', 'PYOPENGL_PLATFORM')}
    select_gl_backend()
    from ddpg_ros.sim.mujoco_warnings import route_mujoco_warnings

    route_mujoco_warnings()  # imports MuJoCo
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Mark every test that uses a ROS domain as ``ros``, and every user of a trained run; order.

    ``-m ros`` then selects exactly the tests that talk over DDS, and ``-m 'not learning'``
    leaves out every test that waits for a policy to be trained. The users of the runs
    trained in the background (:data:`BACKGROUND_FIXTURES`) go last, so that the rest of the
    session gives those runs its idle time before anyone waits for them.
    """
    def rank(item: pytest.Item) -> int:
        fixtures = getattr(item, 'fixturenames', ())
        background = [i for i, name in enumerate(BACKGROUND_FIXTURES) if name in fixtures]
        return 1 + background[0] if background else 0

    for item in items:
        fixtures = getattr(item, 'fixturenames', ())
        if 'ros_domain_id' in fixtures:
            item.add_marker(pytest.mark.ros)
        if any(name in fixtures for name in BACKGROUND_FIXTURES):
            item.add_marker(pytest.mark.learning)
    items.sort(key=rank)  # stable: files and tests keep their order within a rank
