"""Per-environment presets: the shipped file, its validation, and ddpg-train's use of it."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from ddpg_ros.core.checkpoint import load_checkpoint
from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.presets import (PRESET_FIELDS, PRESETS_FILE, config_kwargs_for_task, describe,
                                   env_id_for_task, load_presets, preset_for, preset_names)
from ddpg_ros.cli.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ('InvertedPendulum-v5', 'HalfCheetah-v5', 'Hopper-v5', 'Walker2d-v5', 'Ant-v5')
TASK_ENVS = {'inverted_pendulum': 'InvertedPendulum-v5', 'half_cheetah': 'HalfCheetah-v5',
             'hopper': 'Hopper-v5', 'walker2d': 'Walker2d-v5'}
DEFAULTS = DDPGConfig().to_dict()


# The file and its validation


def test_the_package_file_has_a_preset_for_each_mujoco_benchmark() -> None:
    presets = load_presets()
    assert PRESETS_FILE.parent == Path(__file__).resolve().parents[1] / 'ddpg_ros' / 'core'
    assert set(REQUIRED) <= set(presets)
    assert preset_names() == tuple(presets)


@pytest.mark.parametrize('name', preset_names())
def test_every_preset_builds_a_valid_config(name: str) -> None:
    preset = preset_for(name)
    assert preset and set(preset) <= set(PRESET_FIELDS)
    assert not {'seed', 'device'} & set(preset)  # per run, never a preset's
    config = DDPGConfig(**preset)
    assert {key: getattr(config, key) for key in preset} == \
        {key: tuple(v) if isinstance(v, list) else v for key, v in preset.items()}


def test_the_inverted_pendulum_task_gets_the_tuned_hyper_parameters() -> None:
    # The preset benchmarks/sample_efficiency.py chose: CrossQ's critics on 64-64 networks at
    # one update per step, after 1,000 random steps, solve the pendulum at a median of 3,000
    # steps; DDPGConfig's lr 3e-4 and 10,000 random steps leave it at ~50 after 20k steps.
    config = DDPGConfig(**config_kwargs_for_task('inverted_pendulum'))
    assert {name: getattr(config, name) for name in (
        'learning_starts', 'actor_lr', 'critic_lr', 'batch_size', 'noise_sigma',
        'updates_per_step', 'hidden_sizes', 'n_critics', 'critic_norm', 'policy_delay',
        'adam_beta1', 'target_noise')} == {
        'learning_starts': 1000, 'actor_lr': 0.001, 'critic_lr': 0.001, 'batch_size': 256,
        'noise_sigma': 0.1, 'updates_per_step': 1.0, 'hidden_sizes': (64, 64), 'n_critics': 2,
        'critic_norm': 'batch_renorm', 'policy_delay': 3, 'adam_beta1': 0.5,
        'target_noise': 0.2}
    assert not config.target_networks


@pytest.mark.parametrize('env_id, actor_lr', [
    ('HalfCheetah-v5', 1e-3), ('Hopper-v5', 3e-4), ('Walker2d-v5', 3e-4)])
def test_the_locomotion_presets_are_crossq_critics_with_the_pre_activation_penalty(
        env_id: str, actor_lr: float) -> None:
    # benchmarks/RESULTS.md sections 8d, 8e and 8h: without the penalty one HalfCheetah seed of
    # two died at its bounds, with it the actor learns at CrossQ's lr 1e-3 there; Hopper and
    # Walker2d learned with the same settings at lr 3e-4.
    config = DDPGConfig(**preset_for(env_id))
    assert {name: getattr(config, name) for name in (
        'learning_starts', 'actor_lr', 'critic_lr', 'hidden_sizes', 'n_critics', 'critic_norm',
        'policy_delay', 'adam_beta1', 'target_noise', 'pre_activation_penalty')} == {
        'learning_starts': 10_000, 'actor_lr': actor_lr, 'critic_lr': 1e-3,
        'hidden_sizes': (256, 256), 'n_critics': 2, 'critic_norm': 'batch_renorm',
        'policy_delay': 3, 'adam_beta1': 0.5, 'target_noise': 0.2,
        'pre_activation_penalty': 0.01}


@pytest.mark.parametrize('env_id, n_step, critic_widths', [
    ('HalfCheetah-v5', 1, (256, 256)), ('Hopper-v5', 1, (256, 256)),
    ('Walker2d-v5', 3, (512, 512))])
def test_walker2d_alone_adds_3_step_returns_and_wider_critics_to_the_same_actor(
        env_id: str, n_step: int, critic_widths: tuple[int, ...]) -> None:
    # RESULTS.md sections 8g and 8n: Walker2d-v5 kept its walk with 3-step returns and reached
    # 3,743 at 100k steps with 512-wide critics, where 256-wide ones gave 3,184. The policy a
    # robot runs is the same 256-256 actor in every preset.
    config = DDPGConfig(**preset_for(env_id))
    assert (config.n_step, config.critic_widths, config.hidden_sizes) == (
        n_step, critic_widths, (256, 256))


def test_preset_ddpg_is_the_envs_plain_ddpg_with_every_extension_off() -> None:
    from ddpg_ros.core.presets import PLAIN_DDPG, preset_name

    assert preset_name(PLAIN_DDPG, 'InvertedPendulum-v5') == 'InvertedPendulum-v5/ddpg'
    assert preset_name('HalfCheetah-v5', 'InvertedPendulum-v5') == 'HalfCheetah-v5'
    with pytest.raises(ValueError, match="preset 'ddpg' needs an env id"):
        preset_name(PLAIN_DDPG, None)
    extensions = {'n_critics': 1, 'target_noise': 0.0, 'policy_delay': 1,
                  'critic_norm': 'none', 'critic_dropout': 0.0, 'n_step': 1, 'adam_beta1': 0.9,
                  'pre_activation_penalty': 0.0}
    for env_id in REQUIRED:
        config = DDPGConfig(**preset_for(f'{env_id}/{PLAIN_DDPG}', required=True))
        assert config.plain_critic
        assert {key: getattr(config, key) for key in extensions} == extensions
        assert config.updates_per_step == 1.0


def test_the_package_build_ships_the_presets(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib',
                             str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    shipped = tmp_path / 'ddpg_ros' / 'core' / 'presets.yaml'
    assert shipped.read_text() == PRESETS_FILE.read_text()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / 'presets.yaml'
    path.write_text(text)
    return path


@pytest.mark.parametrize('entry, message', [
    ('batch_size: x', "preset Foo-v5: batch_size='x' must be an integer"),
    ('hidden_sizes: 3', 'preset Foo-v5: hidden_sizes=3 must be a list of integers'),
    ('hidden_sizes: [64, 6.5]', 'preset Foo-v5: hidden_sizes=[64, 6.5] must be a list'),
    ('tau: 1', 'preset Foo-v5: tau=1 must be a float with a decimal point'),
    ('actor_lr: 1e-3', "preset Foo-v5: actor_lr='1e-3' must be a float"),  # YAML 1.1: a str
    ('learning_starts: true', 'preset Foo-v5: learning_starts=True must be an integer'),
    ('bogus: 1', 'preset Foo-v5: bogus=1 is not a DDPG setting (known: gamma, tau,'),
    ('seed: 3', 'preset Foo-v5: seed=3 is per run, not part of a preset'),
    ('batch_size: 0', 'preset Foo-v5: batch_size=0 must be >= 1'),
    ('noise_type: pink', "preset Foo-v5: noise_type='pink' must be one of gaussian,"),
])
def test_a_bad_preset_is_one_line_naming_env_key_and_value(tmp_path: Path, entry: str,
                                                           message: str) -> None:
    path = _write(tmp_path, f'Bar-v5:\n  batch_size: 64\nFoo-v5:\n  gamma: 0.9\n  {entry}\n')
    with pytest.raises(ValueError) as caught:
        load_presets(path)
    text = str(caught.value)
    assert '\n' not in text
    assert text.startswith(f'{path}: {message}'), text


@pytest.mark.parametrize('text, message', [
    ('- a\n- b\n', 'must map env ids to presets, not list'),
    ('Foo-v5: 3\n', 'preset Foo-v5: 3 must be a mapping of DDPG settings'),
    ('Foo-v5: [\n', 'not valid YAML'),
])
def test_a_malformed_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match='^[^\n]*$') as caught:
        load_presets(path)
    assert message in str(caught.value)


def test_a_custom_file_is_read_and_a_missing_one_named(tmp_path: Path) -> None:
    path = _write(tmp_path, 'Foo-v5:\n  batch_size: 64\n  hidden_sizes: [32]\n')
    assert preset_for('Foo-v5', path) == {'batch_size': 64, 'hidden_sizes': [32]}
    with pytest.raises(FileNotFoundError, match='nope.yaml does not exist'):
        load_presets(tmp_path / 'nope.yaml')


SHARED = """
.twin: &twin
  n_critics: 2
  policy_delay: 3
Foo-v5/ddpg: &foo
  batch_size: 64
  policy_delay: 1
Foo-v5:
  <<: [*twin, *foo]
  policy_delay: 2
"""


def test_a_shared_block_is_merged_into_presets_and_is_no_preset(tmp_path: Path) -> None:
    path = _write(tmp_path, SHARED)
    assert preset_names(path) == ('Foo-v5/ddpg', 'Foo-v5')
    # The preset's own key wins over both merged blocks.
    assert preset_for('Foo-v5', path) == {'n_critics': 2, 'policy_delay': 2, 'batch_size': 64}
    with pytest.raises(ValueError, match='unknown preset'):
        preset_for('.twin', path, required=True)
    bad = _write(tmp_path, SHARED.replace('n_critics: 2', 'n_critic: 2'))
    with pytest.raises(ValueError, match=r'preset \.twin: n_critic=2 is not a DDPG setting'):
        load_presets(bad)


def test_an_unknown_name_is_none_unless_asked_for() -> None:
    assert preset_for('Pendulum-v1') is None
    with pytest.raises(ValueError) as caught:
        preset_for('Pendulum-v1', required=True)
    assert str(caught.value) == (f"unknown preset 'Pendulum-v1' (known: "
                                 f"{', '.join(preset_names())}, or none for the DDPGConfig "
                                 'defaults)')


# The agent's tasks


@pytest.mark.parametrize('task, env_id', TASK_ENVS.items())
def test_a_builtin_task_uses_the_preset_of_its_env(task: str, env_id: str) -> None:
    assert env_id_for_task(task) == env_id
    kwargs = config_kwargs_for_task(task)
    assert kwargs == preset_for(env_id)
    kwargs['batch_size'] = 1  # a copy: the caller may change it
    assert preset_for(env_id)['batch_size'] != 1
    DDPGConfig(**config_kwargs_for_task(task), seed=3)


def test_a_task_without_env_id_has_no_preset_and_an_unknown_task_is_refused() -> None:
    assert env_id_for_task('ddpg_ros.tasks.examples:ReachTarget') is None
    assert config_kwargs_for_task('ddpg_ros.tasks.examples:ReachTarget') == {}
    with pytest.raises(ValueError, match="unknown task 'walker'"):
        config_kwargs_for_task('walker')


# ddpg-train


def _train(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str,
           env: str = 'InvertedPendulum-v5') -> tuple[int, list[str], Path]:
    """Run ddpg-train in this process: 300 steps, no update (every preset starts later)."""
    out = tmp_path / 'run'
    rc = train_main(['--env', env, '--total-steps', '300', '--eval-every', '300',
                     '--eval-episodes', '1', '--no-progress', '--no-tensorboard',
                     '--torch-threads', '1', '--out', str(out), *args])
    return rc, capsys.readouterr().err.strip().splitlines(), out


def _stored_config(out: Path) -> dict:
    return load_checkpoint(out / 'checkpoint.pt').config.to_dict()


def test_no_flags_use_the_env_preset_and_say_so(tmp_path: Path, capsys) -> None:
    rc, err, out = _train(tmp_path, capsys)
    assert rc == 0, err
    preset = preset_for('InvertedPendulum-v5')
    assert err == [f'ddpg-train: preset InvertedPendulum-v5: {describe(preset)}']
    assert err[0].startswith('ddpg-train: preset InvertedPendulum-v5: actor_lr=0.001 '
                             'adam_beta1=0.5 batch_size=256 ')
    assert _stored_config(out) == {**DEFAULTS, **preset}


def test_a_flag_overrides_one_value_and_keeps_the_rest(tmp_path: Path, capsys) -> None:
    rc, err, out = _train(tmp_path, capsys, '--batch-size', '64', '--seed', '5')
    assert rc == 0, err
    preset = preset_for('InvertedPendulum-v5')
    assert preset['batch_size'] != 64
    assert err == [f'ddpg-train: preset InvertedPendulum-v5: {describe(preset)}; '
                   'flags override batch_size=64']
    assert _stored_config(out) == {**DEFAULTS, **preset, 'batch_size': 64, 'seed': 5}


def test_preset_none_gives_the_plain_defaults(tmp_path: Path, capsys) -> None:
    rc, err, out = _train(tmp_path, capsys, '--preset', 'none', '--learning-starts', '400')
    assert rc == 0, err
    assert err == ['ddpg-train: --preset none: DDPGConfig defaults; flags override '
                   'learning_starts=400']
    assert _stored_config(out) == {**DEFAULTS, 'learning_starts': 400}


def test_preset_names_another_envs_preset(tmp_path: Path, capsys) -> None:
    rc, err, out = _train(tmp_path, capsys, '--preset', 'HalfCheetah-v5')
    assert rc == 0, err
    cheetah = preset_for('HalfCheetah-v5')
    assert cheetah != preset_for('InvertedPendulum-v5')
    assert err == [f'ddpg-train: preset HalfCheetah-v5: {describe(cheetah)}']
    assert _stored_config(out) == {**DEFAULTS, **cheetah}


def test_preset_ddpg_trains_the_envs_plain_ddpg(tmp_path: Path, capsys) -> None:
    rc, err, out = _train(tmp_path, capsys, '--preset', 'ddpg')
    assert rc == 0, err
    assert err[0].startswith('ddpg-train: preset InvertedPendulum-v5/ddpg: ')
    stored = _stored_config(out)
    assert stored['hidden_sizes'] == [256, 256] and stored['updates_per_step'] == 1.0
    assert stored['n_critics'] == 1 and stored['n_step'] == 1


def test_an_env_without_preset_takes_the_defaults_and_says_so(tmp_path: Path, capsys) -> None:
    rc, err, out = _train(tmp_path, capsys, env='Pendulum-v1')
    assert rc == 0, err
    assert len(err) == 1
    assert err[0].startswith('ddpg-train: no preset for Pendulum-v1: DDPGConfig defaults '
                             '(presets: InvertedPendulum-v5/ddpg, InvertedPendulum-v5, ')
    assert _stored_config(out) == DEFAULTS


def test_an_unknown_preset_is_one_error_line(tmp_path: Path, capsys) -> None:
    rc, err, out = _train(tmp_path, capsys, '--preset', 'Nope-v0')
    assert rc == 2
    assert err == [f"ddpg-train: error: unknown preset 'Nope-v0' (known: "
                   f"{', '.join(preset_names())}, or none for the DDPGConfig defaults)"]
    assert not out.exists()


def test_resume_keeps_the_checkpoint_config_not_the_preset(tmp_path: Path, capsys) -> None:
    rc, err, out = _train(tmp_path, capsys, '--batch-size', '64', '--save-buffer')
    assert rc == 0, err
    rc = train_main(['--env', 'InvertedPendulum-v5', '--resume', str(out / 'checkpoint.pt'),
                     '--total-steps', '400', '--eval-every', '400', '--eval-episodes', '1',
                     '--no-progress', '--no-tensorboard', '--torch-threads', '1'])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 0, err
    assert not any('preset' in line for line in err), err
    config = load_checkpoint(out / 'checkpoint.pt')
    assert config.counters['env_steps'] == 400
    assert config.config.to_dict() == {**DEFAULTS, **preset_for('InvertedPendulum-v5'),
                                       'batch_size': 64}


def test_help_shows_the_defaults_and_the_preset_flag(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        train_main(['--help'])
    assert exited.value.code == 0
    text = ' '.join(capsys.readouterr().out.split())
    assert '--preset NAME' in text and "'none' for the plain DDPGConfig defaults" in text
    assert '(DDPGConfig default: 0.0003)' in text  # actor_lr, shown though the flag is unset
    assert '(DDPGConfig default: 256 256)' in text
    assert 'SUPPRESS' not in text
    for field in dataclasses.fields(DDPGConfig):
        assert '--' + field.name.replace('_', '-') in text
