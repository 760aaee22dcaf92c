"""The suite's background training runs: idle while tests run, at normal priority once awaited."""

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from background_runs import BackgroundChain

STEP_STARTED = '''
import os, pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text(str(os.sched_getscheduler(0)))
deadline = time.monotonic() + 120.0
while os.sched_getscheduler(0) != os.SCHED_OTHER:  # until a test waits for this run
    if time.monotonic() > deadline:
        sys.exit('still at idle priority after 120 s')
    time.sleep(0.02)
'''
RECORD_POLICY = ('import os, pathlib, sys; '
                 'pathlib.Path(sys.argv[1]).write_text(str(os.sched_getscheduler(0)))')


@pytest.mark.skipif(os.geteuid() != 0, reason='leaving SCHED_IDLE needs root or CAP_SYS_NICE')
def test_a_run_idles_until_a_test_waits_for_it_then_runs_at_normal_priority(
        tmp_path: Path) -> None:
    started, second = tmp_path / 'started', tmp_path / 'second'
    chain = BackgroundChain('priority', [[sys.executable, '-c', STEP_STARTED, str(started)],
                                         [sys.executable, '-c', RECORD_POLICY, str(second)]],
                            tmp_path)
    deadline = time.monotonic() + 120.0
    while not (started.exists() and started.read_text()):
        assert time.monotonic() < deadline, 'the first step never started'
        time.sleep(0.02)
    assert int(started.read_text()) == os.SCHED_IDLE
    chain.wait(180.0)  # raises if the first step was never lifted out of SCHED_IDLE
    assert int(second.read_text()) == os.SCHED_OTHER


GOES_IDLE_LATE = '''
import os, pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text('started')
while not pathlib.Path(sys.argv[2]).exists():  # until the test is waiting (and has lifted it)
    time.sleep(0.02)
time.sleep(0.2)
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # as a wrapper that ran late would
deadline = time.monotonic() + 60.0
while os.sched_getscheduler(0) != os.SCHED_OTHER:
    if time.monotonic() > deadline:
        sys.exit('still at idle priority 60 s after going idle')
    time.sleep(0.02)
'''


@pytest.mark.skipif(os.geteuid() != 0, reason='leaving SCHED_IDLE needs root or CAP_SYS_NICE')
def test_a_command_that_goes_idle_after_the_lift_is_lifted_again(tmp_path: Path) -> None:
    started, waiting = tmp_path / 'started', tmp_path / 'waiting'
    chain = BackgroundChain('late', [[sys.executable, '-c', GOES_IDLE_LATE, str(started),
                                      str(waiting)]], tmp_path)
    deadline = time.monotonic() + 120.0
    while not started.exists():
        assert time.monotonic() < deadline, 'the step never started'
        time.sleep(0.02)
    # The step goes idle 0.2 s after this file appears, after wait()'s first lift.
    threading.Timer(0.05, waiting.touch).start()
    chain.wait(180.0)  # raises if the step stayed idle: it exits with an error after 60 s
