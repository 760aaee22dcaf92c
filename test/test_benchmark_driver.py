"""The benchmark driver's hold on a run directory: the kernel releases it, however it ends."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / 'benchmarks' / 'sample_efficiency.py'

# A driver that holds a run directory, says so, and waits (for its stdin to close, or a kill).
HOLDER = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(DRIVER.parent)!r})
from sample_efficiency import own_run_directory
with own_run_directory(Path(sys.argv[1])):
    print('held', flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope='module')
def own_run_directory():
    spec = importlib.util.spec_from_file_location('sample_efficiency', DRIVER)
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    return driver.own_run_directory


def test_a_held_directory_is_refused_and_the_holder_named(tmp_path, own_run_directory) -> None:
    directory = tmp_path / 'run-seed0'
    with own_run_directory(directory):
        with pytest.raises(RuntimeError, match=rf'{directory} is held by process \d+'):
            with own_run_directory(directory):
                pass
    # Let go at the end of the block: the next driver holds it.
    with own_run_directory(directory) as held:
        assert held >= 0


def test_a_killed_driver_leaves_no_stale_hold(tmp_path, own_run_directory) -> None:
    directory = tmp_path / 'run-seed0'
    holder = subprocess.Popen([sys.executable, '-c', HOLDER, str(directory)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(RuntimeError, match=f'process {holder.pid} '):
            with own_run_directory(directory):
                pass
    finally:
        holder.kill()  # no cleanup of its own runs: the kernel's release is what is tested
        holder.wait()
    assert directory.with_name(f'.{directory.name}.lock').exists()  # the file stays behind
    with own_run_directory(directory):
        pass


def test_a_run_outlives_its_driver_with_the_hold(tmp_path, own_run_directory) -> None:
    directory = tmp_path / 'run-seed0'
    with own_run_directory(directory) as held:
        # As ddpg_train passes it: the run shares the hold.
        run = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                               stdin=subprocess.PIPE, pass_fds=(held,))
    try:
        # The driver has let go, its run has not ended: a second driver must not remove it.
        with pytest.raises(RuntimeError, match='or a run it started'):
            with own_run_directory(directory):
                pass
    finally:
        run.stdin.close()
        run.wait()
    with own_run_directory(directory):
        pass
