"""The suite's background training runs: idle while tests run, at normal priority once awaited."""

import os
import sys
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
