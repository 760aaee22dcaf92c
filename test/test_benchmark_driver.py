"""
The benchmark driver's hold on a run directory, and what it records.

The kernel releases the hold, however the driver ends, and a second driver skips a held run
and goes on with the rest; a run that was stopped is run again when asked for, and its
record never replaces one that got further.
"""

import importlib.util
import json
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
def driver():
    spec = importlib.util.spec_from_file_location('sample_efficiency', DRIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def own_run_directory(driver):
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


def test_the_driver_skips_runs_another_holds_and_goes_on(tmp_path, own_run_directory) -> None:
    # A second driver started on runs a first is training: each is skipped with a line saying
    # so (the first records it), none is removed, and the driver ends normally.
    out, results = tmp_path / 'out', tmp_path / 'results.json'
    directories = [out / f'Pendulum-v1-ddpg-300-seed{seed}' for seed in (0, 1)]
    with own_run_directory(directories[0]), own_run_directory(directories[1]):
        for directory in directories:
            directory.mkdir(parents=True)
            (directory / 'progress.csv').write_text('env_steps,eval_return_mean\n')
        driver = subprocess.run(
            [sys.executable, str(DRIVER), '--env', 'Pendulum-v1', '--steps', '300',
             '--variants', 'ddpg', '--seeds', '0', '1', '--out', str(out),
             '--results', str(results)], capture_output=True, text=True, timeout=120)
    assert driver.returncode == 0, driver.stderr
    skipped = [line for line in driver.stdout.splitlines() if ': skipped, ' in line]
    assert [line.split('] ')[1].split(':')[0] for line in skipped] == \
        ['ddpg seed 0', 'ddpg seed 1'], driver.stdout
    assert all(f'{directory} is held by process ' in line
               for directory, line in zip(directories, skipped))
    assert all((directory / 'progress.csv').exists() for directory in directories)
    assert not results.exists()  # nothing ran, so nothing recorded


def test_a_stopped_run_is_run_again_and_a_finished_one_is_not(tmp_path) -> None:
    # A run stopped part way (SIGTERM, exit -15) is recorded with its status, so that its
    # curve can be read, but asking for it again must run it: only a finished run is done.
    out, results = tmp_path / 'out', tmp_path / 'results.json'
    record = {'env': 'InvertedPendulum-v5', 'variant': 'ddpg', 'steps': 300,
              'curve': [[100, -1.0]], 'saturated': False, 'wall_time_s': 1.0}
    results.write_text(json.dumps({'machine': 'test', 'runs': [
        {**record, 'seed': 0, 'returncode': 0},
        {**record, 'seed': 1, 'returncode': -15}]}))
    driver = subprocess.run(
        [sys.executable, str(DRIVER), '--env', 'InvertedPendulum-v5', '--steps', '300',
         '--eval-every', '300', '--eval-episodes', '1', '--variants', 'ddpg',
         '--seeds', '0', '1', '--out', str(out), '--results', str(results)],
        capture_output=True, text=True, timeout=300)
    assert driver.returncode == 0, driver.stderr
    assert '1 runs, 1 at a time; 1 already finished' in driver.stdout, driver.stdout
    runs = {run['seed']: run for run in json.loads(results.read_text())['runs']}
    assert runs[0]['curve'] == [[100, -1.0]]  # untouched
    assert runs[1]['returncode'] == 0 and runs[1]['curve'][-1][0] == 300, runs[1]
    assert not (out / 'InvertedPendulum-v5-ddpg-300-seed0').exists()


def test_a_stopped_run_never_replaces_a_record_that_got_further(tmp_path, driver) -> None:
    results = tmp_path / 'results.json'

    def save(returncode: int, evaluations: int, commit: str = 'a') -> None:
        driver.save_result(results, {
            'env': 'Walker2d-v5', 'variant': 'crossq', 'steps': 100_000, 'seed': 1,
            'returncode': returncode, 'commit': commit,
            'curve': [[10_000 * (i + 1), float(i)] for i in range(evaluations)]})

    def recorded() -> tuple[int, int, str]:
        [run] = json.loads(results.read_text())['runs']
        return run['returncode'], len(run['curve']), run['commit']

    save(-15, 4)
    assert recorded() == (-15, 4, 'a')
    save(-15, 1)  # a rerun stopped sooner
    assert recorded() == (-15, 4, 'a')
    save(-15, 6)  # one stopped later
    assert recorded() == (-15, 6, 'a')
    save(0, 10)
    assert recorded() == (0, 10, 'a')
    save(-9, 10, 'b')  # a forced rerun, stopped: the finished run stays
    assert recorded() == (0, 10, 'a')
    save(0, 10, 'b')  # a finished rerun replaces a finished run
    assert recorded() == (0, 10, 'b')


def test_the_side_by_side_table_reads_each_envs_preset_and_the_peers(driver) -> None:
    def run(env: str, variant: str, seed: int, final: float, steps: int = 100_000) -> dict:
        return {'env': env, 'variant': variant, 'steps': steps, 'seed': seed, 'returncode': 0,
                'wall_time_s': 600.0 * (seed + 1), 'curve': [[50_000, 1.0], [steps, final]]}

    results = {'runs': [
        run('Hopper-v5', 'crossq_pa1e-2', 0, 3000.0), run('Hopper-v5', 'crossq_pa1e-2', 1, 2000.0),
        run('Hopper-v5', 'sb3_td3', 0, 400.0),
        run('Hopper-v5', 'crossq_pa1e-2_n3', 0, 9999.0),        # not a column
        run('Hopper-v5', 'sb3_ddpg', 0, 9999.0, steps=200_000),  # another budget
        {**run('Hopper-v5', 'ddpg', 0, 9999.0), 'returncode': -15},  # stopped
    ]}
    table = driver.side_by_side(results, 100_000).splitlines()
    assert len(table) == 2 + len(driver.PRESET_RUNS)
    [hopper] = [line for line in table if line.startswith('| Hopper-v5 |')]
    cells = [cell.strip() for cell in hopper.strip('|').split('|')][1:]
    # Two seeds: their IQM (the mean of the middle half of two) and its bootstrap interval;
    # minutes: the median wall time.
    assert cells == ['2,500 [2,000, 3,000] (2; 15)', '-', '-', '400 (1; 10)', '-']
