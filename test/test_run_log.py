"""
What a run leaves to look at: progress.csv, TensorBoard and learning_curve.png.

``ddpg-train`` and ``ddpg_agent`` write the same files (INTERFACE.md section 9); the agent
writes them from a thread of its own, never from the control step.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import pytest

from ddpg_ros.core.run_log import (CSV_FIELDS, EPISODE_FIELDS, BackgroundRunLog, RunLog,
                                   prepare_output_dir)

from agent_helpers import agent_command
from conftest import ProcessGroup

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def scalar_tags(directory: Path) -> dict[str, list[float]]:
    """Every TensorBoard scalar in ``directory``'s event files: values by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)]
            for tag in events.Tags()['scalars']}


def test_run_log_writes_the_csv_tensorboard_and_a_png_of_training_returns(
        tmp_path: Path) -> None:
    log = RunLog(tmp_path, title='a robot')
    log.record({'env_steps': 1000, 'updates': 0, 'train_return_mean': 12.5,
                'critic_loss': ''})
    log.record({'env_steps': 2000, 'updates': 1000, 'train_return_mean': 40.0,
                'critic_loss': 0.25})
    assert log.plot() == tmp_path / 'learning_curve.png'
    log.close()
    fields, rows = read_rows(tmp_path / 'progress.csv')
    assert tuple(fields) == CSV_FIELDS
    assert [(r['env_steps'], r['train_return_mean'], r['critic_loss']) for r in rows] == [
        ('1000', '12.5', ''), ('2000', '40.0', '0.25')]
    assert (tmp_path / 'learning_curve.png').read_bytes().startswith(PNG_MAGIC)
    assert scalar_tags(tmp_path)['train/train_return_mean'] == [12.5, 40.0]


def test_run_log_plots_nothing_before_the_first_return(tmp_path: Path) -> None:
    log = RunLog(tmp_path, tensorboard=False)
    log.record({'env_steps': 10, 'updates': 0})
    assert log.plot() is None
    log.close()
    assert not (tmp_path / 'learning_curve.png').exists()


def test_a_resumed_run_log_continues_the_csv(tmp_path: Path) -> None:
    first = RunLog(tmp_path, tensorboard=False)
    first.record({'env_steps': 1, 'updates': 0, 'train_return_mean': 1.0})
    first.close()
    resumed = RunLog(tmp_path, tensorboard=False, append=True)
    resumed.record({'env_steps': 2, 'updates': 1, 'train_return_mean': 2.0})
    resumed.episode(5.0, 2)
    resumed.close()
    fields, rows = read_rows(tmp_path / 'progress.csv')
    assert tuple(fields) == CSV_FIELDS and [r['env_steps'] for r in rows] == ['1', '2']
    fields, rows = read_rows(tmp_path / 'episodes.csv')
    assert tuple(fields) == EPISODE_FIELDS and [r['episode_return'] for r in rows] == ['5.0']


def test_a_resumed_run_log_continues_episodes_csv(tmp_path: Path) -> None:
    first = RunLog(tmp_path, tensorboard=False)
    first.episode(1.0, 10)
    first.close()
    resumed = RunLog(tmp_path, tensorboard=False, append=True)
    resumed.episode(2.0, 20)
    resumed.close()
    fields, rows = read_rows(tmp_path / 'episodes.csv')
    assert tuple(fields) == EPISODE_FIELDS and [r['env_steps'] for r in rows] == ['10', '20']


def test_background_run_log_writes_everything_queued_before_close(tmp_path: Path) -> None:
    errors: list[str] = []
    log = BackgroundRunLog(tmp_path, on_error=errors.append)
    for step in range(1, 201):
        log.episode(float(step) / 2, step)
    log.record({'env_steps': 200, 'updates': 100, 'train_return_mean': 7.0})
    assert log.close(timeout=60.0)
    assert errors == []
    assert [r['env_steps'] for r in read_rows(tmp_path / 'progress.csv')[1]] == ['200']
    fields, episodes = read_rows(tmp_path / 'episodes.csv')
    assert tuple(fields) == EPISODE_FIELDS
    assert [(int(r['env_steps']), float(r['episode_return'])) for r in episodes] == [
        (step, step / 2) for step in range(1, 201)]
    assert (tmp_path / 'learning_curve.png').read_bytes().startswith(PNG_MAGIC)
    assert scalar_tags(tmp_path)['train/episode_return'] == [s / 2 for s in range(1, 201)]


def test_a_robot_run_has_a_curve_from_its_first_episode_on(tmp_path: Path) -> None:
    log = RunLog(tmp_path, tensorboard=False)
    log.episode(-3.5, 40)
    assert log.plot() == tmp_path / 'learning_curve.png'
    log.close()
    assert (tmp_path / 'learning_curve.png').read_bytes().startswith(PNG_MAGIC)


def test_background_run_log_reports_a_failing_write_once_and_goes_on(tmp_path: Path) -> None:
    errors: list[str] = []
    log = BackgroundRunLog(tmp_path, tensorboard=False, on_error=errors.append)
    # A directory where the PNG should go: every redraw fails the same way.
    (tmp_path / 'learning_curve.png').mkdir()
    log.record({'env_steps': 1, 'updates': 0, 'train_return_mean': 1.0})
    log.plot()
    log.plot()
    log.record({'env_steps': 2, 'updates': 0, 'train_return_mean': 2.0})
    assert log.close(timeout=60.0)
    assert len(errors) == 1 and errors[0].startswith('run log (plot) failed'), errors
    assert [r['env_steps'] for r in read_rows(tmp_path / 'progress.csv')[1]] == ['1', '2']


def test_an_output_directory_that_cannot_be_made_is_named_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    with pytest.raises(ValueError, match=r"^checkpoint_dir='.*a_file/runs' cannot be "):
        prepare_output_dir(blocker / 'runs', 'checkpoint_dir')
    assert prepare_output_dir(tmp_path / 'new' / 'dir').is_dir()


# Through ROS: the training profile, and a refusal at start


def launcher_command(*arguments: str) -> list[str]:
    return [sys.executable, '-m', 'ddpg_ros.ros.launcher', *arguments]


def test_the_train_profile_writes_progress_tensorboard_and_a_curve_into_checkpoint_dir(
        ros_processes: ProcessGroup, tmp_path: Path) -> None:
    runs = tmp_path / 'runs'
    launcher = ros_processes.start(launcher_command(
        'train_sim', 'task:=inverted_pendulum', f'checkpoint_dir:={runs}',
        'total_steps:=1500', 'log_every:=300', 'checkpoint_every:=600',
        'learning_starts:=300', 'batch_size:=32', 'hidden_sizes:=[32,32]',
        'updates_per_step:=1.0', 'device:=cpu'),
        name='ddpg-launch')
    deadline = time.monotonic() + 240.0
    while launcher.popen.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert launcher.popen.poll() is not None, launcher.output()[-3000:]
    output = launcher.output()
    assert 'reached total_steps=1500' in output, output[-3000:]

    fields, rows = read_rows(runs / 'progress.csv')
    assert tuple(fields) == CSV_FIELDS
    assert [int(r['env_steps']) for r in rows] == [300, 600, 900, 1200, 1500]
    assert all(int(r['episodes']) > 0 and float(r['train_return_mean']) > 0 for r in rows)
    # Learning started at 300 steps: later rows carry updates and losses.
    assert int(rows[-1]['updates']) > 0 and rows[-1]['critic_loss'] != ''
    tags = scalar_tags(runs)
    assert len(tags['train/episode_return']) == int(rows[-1]['episodes'])
    episodes = read_rows(runs / 'episodes.csv')[1]
    assert [float(r['episode_return']) for r in episodes] == pytest.approx(
        tags['train/episode_return'])
    assert int(episodes[-1]['env_steps']) <= 1500
    assert tags['train/train_return_mean'] == pytest.approx(
        [float(r['train_return_mean']) for r in rows])
    assert (runs / 'learning_curve.png').read_bytes().startswith(PNG_MAGIC)
    # Periodic checkpoints may be named a step past their multiple (written off the loop).
    checkpoints = sorted(p.name for p in runs.glob('checkpoint_*.pt'))
    assert len(checkpoints) == 3 and checkpoints[-1] == 'checkpoint_000001500.pt', checkpoints


def test_an_agent_whose_checkpoint_dir_cannot_be_made_does_not_start(
        ros_processes: ProcessGroup, tmp_path: Path) -> None:
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    agent = ros_processes.start(agent_command(checkpoint_dir=blocker / 'runs'),
                                name='ddpg_agent')
    assert agent.wait(60.0) == 1, agent.output()
    lines = [line for line in agent.output().splitlines() if 'cannot start' in line]
    assert len(lines) == 1 and f"checkpoint_dir='{blocker / 'runs'}' cannot be" in lines[0]
