"""``ddpg-train`` and ``ddpg-eval`` as users run them: learning, outputs, errors."""

import argparse
import csv
import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpg_ros.cli.common import add_config_arguments, config_from_args
from ddpg_ros.cli.evaluate import build_parser as eval_parser
from ddpg_ros.cli.train import build_parser as train_parser
from ddpg_ros.cli.train import main as train_main
from ddpg_ros.core.checkpoint import load_checkpoint
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.presets import preset_for

from conftest import (PENDULUM_EVAL_EVERY, PENDULUM_RETURN, PENDULUM_SEEDS, PENDULUM_STEPS,
                      PendulumRun, ddpg_train, ddpg_train_command)


def _preset_updates(steps: int) -> int:
    """Return the updates the pendulum preset runs in ``steps`` environment steps."""
    preset = DDPGConfig(**preset_for('InvertedPendulum-v5'))
    return round((steps - preset.learning_starts) * preset.updates_per_step)


def _cli(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', module, *args], capture_output=True,
                          text=True, timeout=timeout)


def test_learns_inverted_pendulum_across_a_resume(pendulum_run: PendulumRun) -> None:
    with open(pendulum_run.out / 'progress.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    # One log across the resume: one header, evaluations 1000 ... 6000.
    assert [int(r['env_steps']) for r in rows] == list(
        range(PENDULUM_EVAL_EVERY, PENDULUM_STEPS + 1, PENDULUM_EVAL_EVERY))
    returns = [float(r['eval_return_mean']) for r in rows]
    assert max(returns) >= PENDULUM_RETURN, returns
    assert returns[0] < 200, 'an untrained policy should not already balance'
    # A healthy actor: most of its noise-free actions are inside the bounds.
    assert float(rows[-1]['actor_at_bound']) < 0.5


@pytest.mark.parametrize('seed', PENDULUM_SEEDS)
def test_the_preset_solves_the_pendulum_on_every_seed(pendulum_run: PendulumRun,
                                                      seed: int) -> None:
    # ddpg-train --env InvertedPendulum-v5 with no hyper-parameter flags (conftest.py).
    with open(pendulum_run.seeds[seed] / 'progress.csv', newline='') as f:
        returns = [float(row['eval_return_mean']) for row in csv.DictReader(f)]
    assert len(returns) == PENDULUM_STEPS // PENDULUM_EVAL_EVERY
    assert max(returns) >= PENDULUM_RETURN, returns


def test_trains_with_bfloat16_products_and_keeps_float32_weights(tmp_path: Path) -> None:
    # Not a learning threshold: with bfloat16 products the critic's Q (about 100 on the
    # pendulum) is rounded to 0.5, and whether seed 0 balances within 15k steps depends on
    # the CPU's bf16 kernels (1000 with AVX-512 BF16 units, 155 without). bfloat16's
    # learning is measured on HalfCheetah over 3 seeds (benchmarks/RESULTS.md section 3);
    # its update math in test_ddpg_math.py.
    result = ddpg_train(tmp_path, '--env', 'InvertedPendulum-v5', '--seed', '0',
                        '--total-steps', '2000', '--learning-starts', '500', '--hidden-sizes',
                        '64', '64', '--batch-size', '64', '--eval-every', '1000',
                        '--eval-episodes', '2', '--torch-threads', '1', '--precision', 'bfloat16',
                        '--updates-per-step', '1.0', '--no-tensorboard')
    assert result.returncode == 0, result.stderr
    assert 'precision=bfloat16' in result.stderr  # the preset line names the override
    checkpoint = load_checkpoint(tmp_path / 'checkpoint.pt')
    assert checkpoint.config.precision == 'bfloat16'
    assert checkpoint.counters['updates'] == 1500
    agent = checkpoint.build_agent(device='cpu')
    networks = (agent.actor, agent.critic, agent.actor_target, agent.critic_target)
    for network in (n for n in networks if n is not None):  # no targets under CrossQ
        for parameter in network.parameters():
            assert parameter.dtype == torch.float32 and bool(torch.isfinite(parameter).all())


def test_writes_every_output(pendulum_run: PendulumRun) -> None:
    out = pendulum_run.out
    names = {p.name for p in out.iterdir()}
    assert {'checkpoint.pt', 'best.pt', 'progress.csv', 'episodes.csv',
            'learning_curve.png'} <= names
    assert any(n.startswith('events.out.tfevents') for n in names)
    assert (out / 'learning_curve.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    checkpoint = load_checkpoint(out / 'checkpoint.pt')
    assert checkpoint.counters['env_steps'] == PENDULUM_STEPS
    assert checkpoint.counters['updates'] == _preset_updates(PENDULUM_STEPS)
    assert checkpoint.spec.task == 'inverted_pendulum'
    assert checkpoint.spec.env_id == 'InvertedPendulum-v5'
    # One row per episode, the resumed part appended to the first.
    with open(out / 'episodes.csv', newline='') as f:
        ends = [int(row['env_steps']) for row in csv.DictReader(f)]
    assert len(ends) == checkpoint.counters['episodes']
    assert ends == sorted(ends) and 0 < ends[0] and ends[-1] <= PENDULUM_STEPS


def test_eval_reports_the_return_on_its_last_line(pendulum_run: PendulumRun) -> None:
    result = _cli('ddpg_ros.cli.evaluate', '--checkpoint', str(pendulum_run.out / 'best.pt'),
                  '--env', 'InvertedPendulum-v5', '--episodes', '3', '--seed', '7')
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith('mean_return: ')
    assert float(last.split(': ')[1]) == pytest.approx(PENDULUM_RETURN)


@pytest.mark.skipif(ctypes.util.find_library('OSMesa') is None,
                    reason='needs libosmesa6 (the setup script installs it)')
def test_eval_renders_a_gif_offscreen(pendulum_run: PendulumRun, tmp_path: Path) -> None:
    video = tmp_path / 'rollout.gif'
    env = {k: v for k, v in os.environ.items() if k not in ('MUJOCO_GL', 'DISPLAY')}
    result = subprocess.run(
        [sys.executable, '-m', 'ddpg_ros.cli.evaluate', '--checkpoint',
         str(pendulum_run.out / 'checkpoint.pt'), '--episodes', '1', '--video', str(video),
         '--width', '64', '--height', '48'],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    import imageio.v3 as iio
    frames = iio.imread(video, index=None)
    assert frames.shape[0] > 100 and frames.shape[1:3] == (48, 64)
    assert frames.std() > 0, 'frames are blank'


def test_a_resumed_run_continues_its_counters_buffer_and_settings(
        pendulum_run: PendulumRun) -> None:
    """
    The session's pendulum run stopped at half way with --save-buffer and was resumed.

    Every update counted once, Adam's moments carried on, the buffer kept whole, and the run's
    own settings used (the resume's --actor-lr 0.5 ignored); it learned across the resume:
    ``test_learns_inverted_pendulum_across_a_resume``.
    """
    first = load_checkpoint(pendulum_run.halfway / 'checkpoint.pt')
    assert first.counters['env_steps'] == PENDULUM_STEPS // 2
    assert 'warning' not in pendulum_run.resume_stderr
    last = load_checkpoint(pendulum_run.out / 'checkpoint.pt')
    assert last.counters['env_steps'] == PENDULUM_STEPS
    updates = _preset_updates(PENDULUM_STEPS)
    assert last.counters['updates'] == updates  # none lost, none repeated
    assert last.config.actor_lr == first.config.actor_lr == 1e-3  # the run's, not the flag's
    adam_steps = last.agent_state['actor_optimizer']['state'][0]['step']
    actor_steps = -(-updates // last.config.policy_delay)
    assert int(adam_steps) == actor_steps, 'Adam restarted instead of resuming'
    with np.load(pendulum_run.out / 'checkpoint.npz') as buffer, \
            np.load(pendulum_run.halfway / 'checkpoint.npz') as before:
        assert len(buffer['rewards']) == PENDULUM_STEPS
        kept = len(before['rewards'])
        assert kept == PENDULUM_STEPS // 2
        for key in before.files:
            if key != 'meta':
                assert np.array_equal(buffer[key][:kept], before[key]), f'buffer {key} lost'


@pytest.fixture(scope='module')
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the 300-step run (random actions only) that the resume tests start from."""
    out = tmp_path_factory.mktemp('short_run')
    result = ddpg_train(out, '--env', 'InvertedPendulum-v5', '--total-steps', '300',
                        '--learning-starts', '300', '--eval-every', '300',
                        '--eval-episodes', '1', '--no-tensorboard')
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize('args, message', [
    (('--total-steps', '200'), 'is not beyond the 300 steps that'),
    (('--env', 'InvertedDoublePendulum-v5'), 'does not match this robot'),
])
def test_resume_refuses_what_cannot_continue(short_run: Path, tmp_path: Path, args,
                                             message) -> None:
    result = ddpg_train(tmp_path, '--env', 'InvertedPendulum-v5', '--total-steps', '400',
                        '--resume', str(short_run / 'checkpoint.pt'), *args, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('ddpg-train: error: '), lines
    assert message in lines[0]


def test_same_seed_same_run(tmp_path: Path) -> None:
    args = ('--env', 'Pendulum-v1', '--total-steps', '600', '--learning-starts', '300',
            '--batch-size', '32', '--hidden-sizes', '32', '32', '--eval-every', '600',
            '--eval-episodes', '1', '--no-tensorboard', '--seed', '3', '--torch-threads', '1')
    # The three runs at once, one thread each: a run's result must not depend on what else
    # the machine does (and the test takes the time of one run and a half, not three).
    commands = {'a': args, 'b': args, 'c': (*args[:-4], '--seed', '4', '--torch-threads', '1')}
    runs = {name: subprocess.Popen(ddpg_train_command(tmp_path / name, *command),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for name, command in commands.items()}
    try:
        for name, run in runs.items():
            _, stderr = run.communicate(timeout=600)
            assert run.returncode == 0, f'{name}: {stderr}'
    finally:
        for run in runs.values():  # after a failure, the others are ended too
            if run.poll() is None:
                run.kill()
                run.wait()
    a, b, c = (load_checkpoint(tmp_path / name / 'checkpoint.pt').agent_state['actor']
               for name in 'abc')
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize('args, message', [
    (('--env', 'NoSuchEnv-v0'), "unknown Gymnasium environment 'NoSuchEnv-v0'"),
    (('--env', 'CartPole-v1'), 'Discrete action space'),
    (('--env', 'Pendulum-v1', '--actor-lr', '-0.1'), 'actor_lr=-0.1 must be > 0'),
    (('--env', 'Pendulum-v1', '--tau', '1.5'), 'tau=1.5 must be in (0, 1]'),
    (('--env', 'Pendulum-v1', '--tau', '0'), 'tau=0.0 must be in (0, 1]'),
    (('--env', 'Pendulum-v1', '--batch-size', '512', '--buffer-size', '100'),
     'batch_size=512 must not exceed buffer_size (100)'),
    (('--env', 'Pendulum-v1', '--total-steps', '0'), 'total_steps=0 must be >= 1'),
])
def test_train_bad_input_is_one_clear_line(tmp_path: Path, capsys, args, message) -> None:
    # In this process: what ddpg-train's main() prints and returns (about 3 s less a case
    # than a new interpreter importing torch); the process itself, once, below.
    status = train_main(['--out', str(tmp_path / 'out'), '--no-progress', *args])
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('ddpg-train: error: ')
    assert message in lines[0]
    assert not (tmp_path / 'out').exists(), 'bad input must not leave a run directory'


def test_train_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    result = ddpg_train(tmp_path / 'out', '--env', 'Pendulum-v1', '--tau', '1.5', timeout=120)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines() == [
        'ddpg-train: error: tau=1.5 must be in (0, 1]']


@pytest.mark.parametrize('parser', [train_parser, eval_parser], ids=['train', 'eval'])
def test_help_says_each_default_once_and_never_none(parser) -> None:
    # Unwrapped, so that a default split over two lines is still one match.
    text = ' '.join(parser().format_help().split())
    assert '(default: None)' not in text and '(default: )' not in text
    assert '(default: False)' not in text, 'a switch is off unless given'
    options = text.split(' --')[1:]
    assert options, text
    twice = [option[:40] for option in options if option.count('default:') > 1]
    assert not twice, twice
    assert '(default: 10)' in text  # --episodes / --eval-episodes keep theirs


@pytest.mark.parametrize('args, expected', [
    (['--observe-last-action', 'false'], {'observe_last_action': False}),
    (['--observe-last-action', 'True'], {'observe_last_action': True}),
    (['--critic-hidden-sizes', '1024', '1024'], {'critic_hidden_sizes': (1024, 1024)}),
    (['--critic-hidden-sizes'], {'critic_hidden_sizes': ()}),
    (['--hidden-sizes', '64', '64'], {'hidden_sizes': (64, 64)}),
])
def test_config_flags_parse_as_their_fields(args: list[str], expected: dict) -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    config = config_from_args(parser.parse_args(args), {'critic_hidden_sizes': [8]})
    assert {name: getattr(config, name) for name in expected} == expected


def test_a_flag_that_is_not_true_or_false_is_refused(capsys) -> None:
    parser = argparse.ArgumentParser(prog='ddpg-train')
    add_config_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(['--observe-last-action', 'maybe'])
    assert "argument --observe-last-action: 'maybe' is not true or false" in \
        capsys.readouterr().err


def test_eval_refuses_missing_and_mismatched_checkpoints(pendulum_run: PendulumRun,
                                                         tmp_path: Path) -> None:
    missing = _cli('ddpg_ros.cli.evaluate', '--checkpoint', str(tmp_path / 'nope.pt'))
    assert missing.returncode == 2 and 'Traceback' not in missing.stderr
    assert f'checkpoint {tmp_path / "nope.pt"} does not exist' in missing.stderr

    mismatch = _cli('ddpg_ros.cli.evaluate', '--checkpoint',
                    str(pendulum_run.out / 'checkpoint.pt'), '--env', 'HalfCheetah-v5')
    assert mismatch.returncode == 2 and 'Traceback' not in mismatch.stderr
    line = mismatch.stderr.strip().splitlines()[-1]
    assert line.startswith('ddpg-eval: error: checkpoint')
    assert "task: checkpoint 'inverted_pendulum', robot 'half_cheetah'" in line
