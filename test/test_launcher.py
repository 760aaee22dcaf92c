"""Launch profiles, their parameter files and launch files, and ddpg-launch's lifecycle."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import re
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.ros.launcher import Launcher
from ddpg_ros.ros.profiles import MUJOCO_SIM_PARAMETERS, PROFILES, RESPAWN_STEADY, NodeSpec, \
    ProfileError, config_directory, parse_arguments, resolve_profile
from ddpg_ros.tasks import make_task

from conftest import ProcessGroup, RosTestNode, TestProcess, pid_alive

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'config'
TASKS = ('inverted_pendulum', 'half_cheetah', 'hopper', 'walker2d')
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
"""The launcher's default grace (10 s) plus slack."""


def train_sim(**arguments: str) -> dict[str, NodeSpec]:
    return {spec.name: spec for spec in PROFILES['train_sim'].nodes(arguments)}


# Arguments and profiles


def test_parse_arguments_reads_name_value_pairs_and_the_last_one_wins() -> None:
    assert parse_arguments(['task:=hopper', 'seed:=3', 'x.y:=a:=b', 'seed:=4', 'e:=']) == {
        'task': 'hopper', 'seed': '4', 'x.y': 'a:=b', 'e': ''}


@pytest.mark.parametrize('bad', ['task', 'task=hopper', ':=x', '1a:=b', 'a b:=c', '-p:=1'])
def test_parse_arguments_rejects_what_is_not_name_value(bad: str) -> None:
    with pytest.raises(ProfileError, match='not name:=value'):
        parse_arguments([bad])


@pytest.mark.parametrize('name', ['train_sim', 'launch/train_sim.launch.py',
                                  '/opt/ros/share/ddpg_ros/launch/train_sim.launch.py'])
def test_a_profile_is_found_by_name_or_by_its_launch_file(name: str) -> None:
    assert resolve_profile(name) is PROFILES['train_sim']


def test_an_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match='train_sim, deploy'):
        resolve_profile('fly.launch.py')


def test_every_profile_has_a_launch_file_and_described_arguments() -> None:
    assert {path.name for path in (ROOT / 'launch').glob('*.launch.py')} == {
        f'{name}.launch.py' for name in PROFILES}
    for profile in PROFILES.values():
        assert all(argument.description for argument in profile.arguments)


def test_train_sim_runs_sim_and_agent_from_the_task_config() -> None:
    nodes = train_sim(task='half_cheetah')
    assert list(nodes) == ['mujoco_sim', 'ddpg_agent']
    sim, agent = nodes['mujoco_sim'], nodes['ddpg_agent']
    assert (sim.executable, sim.module) == ('mujoco_sim', 'ddpg_ros.ros.mujoco_sim_node')
    assert (agent.executable, agent.module) == ('ddpg_agent', 'ddpg_ros.ros.ddpg_agent_node')
    for spec in nodes.values():
        assert spec.parameter_files == (str(CONFIG / 'half_cheetah.yaml'),)
        assert spec.namespace == ''
    assert dict(sim.parameters) == {}
    # The sim is the source of /clock; only the agent runs on sim time.
    assert dict(agent.parameters) == {'mode': 'train', 'use_sim_time': 'true'}


def test_train_sim_routes_overrides_to_the_nodes_that_take_them() -> None:
    nodes = train_sim(seed='3', model='Hopper-v5', command_timeout='1.0', total_steps='5000',
                      batch_size='64', **{'mujoco_sim.mode': 'realtime',
                                          'ddpg_agent.seed': '4', 'hidden_sizes': '[64, 64]'})
    assert dict(nodes['mujoco_sim'].parameters) == {
        'seed': '3', 'model': 'Hopper-v5', 'command_timeout': '1.0', 'mode': 'realtime'}
    assert dict(nodes['ddpg_agent'].parameters) == {
        'mode': 'train', 'use_sim_time': 'true', 'seed': '4', 'total_steps': '5000',
        'batch_size': '64', 'hidden_sizes': '[64, 64]'}


def test_train_sim_refuses_a_plain_mode_as_ambiguous() -> None:
    with pytest.raises(ProfileError, match='mujoco_sim.mode'):
        train_sim(mode='realtime')


def test_train_sim_names_the_tasks_that_have_a_config() -> None:
    with pytest.raises(ProfileError, match='half_cheetah, hopper, inverted_pendulum'):
        train_sim(task='walker')


def test_train_sim_takes_a_user_task_with_its_own_params_file(tmp_path: Path) -> None:
    params = tmp_path / 'reach.yaml'
    params.write_text('mujoco_sim:\n  ros__parameters:\n    model: arm.xml\n')
    nodes = train_sim(task='my_pkg.tasks:Reach', params_file=str(params), namespace='/arm')
    for spec in nodes.values():
        assert spec.parameter_files == (str(params),)
        assert spec.ros_arguments()[:5] == ['--ros-args', '-r', f'__node:={spec.name}',
                                            '-r', '__ns:=/arm']
    assert nodes['ddpg_agent'].parameters['task'] == 'my_pkg.tasks:Reach'


def test_train_sim_applies_an_extra_params_file_after_the_tasks(tmp_path: Path) -> None:
    params = tmp_path / 'mine.yaml'
    params.write_text('ddpg_agent:\n  ros__parameters:\n    batch_size: 64\n')
    nodes = train_sim(params_file=str(params))
    assert nodes['ddpg_agent'].parameter_files == (str(CONFIG / 'inverted_pendulum.yaml'),
                                                   str(params))
    assert 'task' not in nodes['ddpg_agent'].parameters


def test_deploy_runs_the_agent_in_deploy_mode_on_a_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / 'checkpoint.pt'
    checkpoint.write_bytes(b'')
    [agent] = PROFILES['deploy'].nodes({'checkpoint': str(checkpoint), 'device': 'cpu'})
    assert agent.name == 'ddpg_agent'
    assert agent.parameter_files == (str(CONFIG / 'deploy_example.yaml'),)
    # Quoted so that ROS reads any path as a string.
    assert dict(agent.parameters) == {'mode': 'deploy', 'load_checkpoint': f"'{checkpoint}'",
                                      'use_sim_time': 'false', 'device': 'cpu'}


def test_deploy_needs_an_existing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match='needs checkpoint:='):
        PROFILES['deploy'].nodes({})
    with pytest.raises(ProfileError, match='does not exist'):
        PROFILES['deploy'].nodes({'checkpoint': str(tmp_path / 'missing.pt')})


def test_a_node_runs_as_python_m_with_ros_arguments() -> None:
    spec = NodeSpec('mujoco_sim', 'ddpg_ros.ros.mujoco_sim_node', 'sim', '/r1', ('a.yaml',),
                    {'seed': '3'}, (('joint_states', 'states'),))
    assert spec.command('python') == [
        'python', '-m', 'ddpg_ros.ros.mujoco_sim_node', '--ros-args', '-r', '__node:=sim',
        '-r', '__ns:=/r1', '--params-file', 'a.yaml', '-p', 'seed:=3',
        '-r', 'joint_states:=states']


def test_config_directory_is_the_source_trees_when_run_from_it() -> None:
    assert config_directory() == CONFIG


@pytest.mark.skipif(shutil.which('colcon', path=os.path.dirname(sys.executable)) is None,
                    reason='colcon is installed by requirements-dev.txt')
def test_an_installed_package_reads_its_share_directory(tmp_path: Path) -> None:
    source = tmp_path / 'src' / 'ddpg_ros'
    source.mkdir(parents=True)
    for name in ('setup.py', 'setup.cfg', 'package.xml', 'resource', 'ddpg_ros', 'config',
                 'launch'):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copy2(ROOT / name, source / name)
    colcon = os.path.join(os.path.dirname(sys.executable), 'colcon')
    build = subprocess.run(
        [colcon, '--log-base', 'log', 'build', '--base-paths', 'src'], cwd=tmp_path,
        capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stdout + build.stderr
    install = tmp_path / 'install' / 'ddpg_ros'
    [site_packages] = install.glob('lib/python3*/site-packages')
    env = dict(os.environ, AMENT_PREFIX_PATH=str(install), PYTHONPATH=str(site_packages))
    probe = subprocess.run(
        [sys.executable, '-c', 'from ddpg_ros.ros import profiles; '
         'print(profiles.__file__); print(profiles.config_directory())'],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    module_file, config = probe.stdout.split()
    assert Path(module_file).is_relative_to(install)
    assert Path(config) == install / 'share' / 'ddpg_ros' / 'config'
    assert (install / 'share' / 'ddpg_ros' / 'launch' / 'train_sim.launch.py').is_file()
    assert (install / 'lib' / 'ddpg_ros' / 'mujoco_sim').is_file()


# Parameter files


def _ros_parameters(path: Path) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    assert all(set(section) == {'ros__parameters'} for section in data.values())
    return {node: section['ros__parameters'] for node, section in data.items()}


def _agent_fields() -> dict[str, dataclasses.Field]:
    """Every ddpg_agent parameter: its settings and the DDPG hyper-parameters."""
    from ddpg_ros.ros.ddpg_agent_node import AgentSettings

    return {field.name: field for settings in (AgentSettings, DDPGConfig)
            for field in dataclasses.fields(settings)}


def _check_agent_types(agent: dict[str, Any]) -> None:
    fields = _agent_fields()
    assert set(agent) <= set(fields), set(agent) - set(fields)
    for name, value in agent.items():
        field = fields[name]
        default = field.default_factory() if field.default is dataclasses.MISSING \
            else field.default
        # ROS declares the YAML's type: a float written 0 would be refused as an integer.
        expected = list if isinstance(default, tuple) else type(default)
        assert type(value) is expected, f'{name}: {value!r} is not a {expected.__name__}'


@pytest.mark.parametrize('task', TASKS)
def test_task_config_is_keyed_by_node_and_matches_the_contract(task: str) -> None:
    from ddpg_ros.ros.ddpg_agent_node import AgentSettings

    params = _ros_parameters(CONFIG / f'{task}.yaml')
    assert set(params) == {'mujoco_sim', 'ddpg_agent'}
    sim, agent = params['mujoco_sim'], params['ddpg_agent']
    assert set(sim) <= set(MUJOCO_SIM_PARAMETERS)
    assert sim['model'] == make_task(task).env_id
    assert sim['mode'] == 'lockstep'
    _check_agent_types(agent)
    assert (agent['mode'], agent['task']) == ('train', task)
    assert agent['reset_service'] == 'mujoco_sim/reset'  # relative: follows a namespace
    # Valid values, as the node will check them.
    settings = {field.name for field in dataclasses.fields(AgentSettings)}
    AgentSettings(**{name: value for name, value in agent.items() if name in settings})
    DDPGConfig(**{name: value for name, value in agent.items() if name not in settings})


@pytest.mark.parametrize('task', TASKS)
def test_task_config_leaves_the_hyper_parameters_to_the_task_preset(task: str) -> None:
    from ddpg_ros.core.presets import RUN_FIELDS, preset_for

    agent = _ros_parameters(CONFIG / f'{task}.yaml')['ddpg_agent']
    tuned = {f.name for f in dataclasses.fields(DDPGConfig)} - set(RUN_FIELDS)
    assert not tuned & set(agent), 'one source of hyper-parameters: ddpg_ros/core/presets.yaml'
    assert preset_for(make_task(task).env_id, required=True)


def test_inverted_pendulum_preset_has_the_tuned_hyper_parameters() -> None:
    from ddpg_ros.core.presets import preset_for

    preset = preset_for('InvertedPendulum-v5', required=True)
    assert {name: preset[name] for name in ('learning_starts', 'actor_lr', 'critic_lr',
                                            'batch_size', 'noise_sigma')} \
        == {'learning_starts': 1000, 'actor_lr': 0.001, 'critic_lr': 0.001, 'batch_size': 256,
            'noise_sigma': 0.1}


def test_deploy_example_config_is_for_the_agent_in_deploy_mode() -> None:
    params = _ros_parameters(CONFIG / 'deploy_example.yaml')
    assert set(params) == {'ddpg_agent'}
    agent = params['ddpg_agent']
    _check_agent_types(agent)
    assert agent['mode'] == 'deploy'
    assert agent['reset_service'] == ''
    make_task(agent['task'])


# Launch files (ROS 2's launch tools are not installable here: run them against stand-ins)


class _Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


def _stand_in_launch_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    names = {
        'launch': ('LaunchContext', 'LaunchDescription'),
        'launch.actions': ('DeclareLaunchArgument', 'OpaqueFunction', 'Shutdown'),
        'launch.substitutions': ('TextSubstitution',),
        'launch_ros': (),
        'launch_ros.actions': ('Node',),
    }
    for module_name, classes in names.items():
        module = types.ModuleType(module_name)
        for class_name in classes:
            setattr(module, class_name, type(class_name, (_Recorded,), {}))
        monkeypatch.setitem(sys.modules, module_name, module)


@pytest.mark.parametrize('profile', list(PROFILES))
def test_launch_file_compiles(profile: str) -> None:
    path = ROOT / 'launch' / f'{profile}.launch.py'
    compile(path.read_text(), str(path), 'exec')


@pytest.mark.parametrize('profile, arguments', [
    ('train_sim', {'task': 'hopper', 'seed': '3', 'mujoco_sim.mode': 'realtime'}),
    ('deploy', {'checkpoint': __file__, 'device': 'cpu', 'namespace': '/robot'}),
])
def test_launch_file_declares_the_arguments_and_builds_the_profiles_nodes(
        monkeypatch: pytest.MonkeyPatch, profile: str, arguments: dict[str, str]) -> None:
    _stand_in_launch_modules(monkeypatch)
    launch_file = runpy.run_path(str(ROOT / 'launch' / f'{profile}.launch.py'))
    [description] = [launch_file['generate_launch_description']()]
    entities = description.args[0]
    declared = [e for e in entities if type(e).__name__ == 'DeclareLaunchArgument']
    [opaque] = [e for e in entities if type(e).__name__ == 'OpaqueFunction']
    assert [(d.args[0], d.kwargs['default_value'], d.kwargs['description'])
            for d in declared] == [(a.name, a.default, a.description)
                                   for a in PROFILES[profile].arguments]

    # What ros2 launch would hold: declared defaults, overridden by the command line.
    configurations = {d.args[0]: d.kwargs['default_value'] for d in declared
                      if d.kwargs['default_value'] is not None}
    configurations.update(arguments)
    nodes = opaque.kwargs['function'](types.SimpleNamespace(
        launch_configurations=configurations))
    specs = PROFILES[profile].nodes(arguments)
    assert len(nodes) == len(specs)
    for node, spec in zip(nodes, specs):
        kwargs = node.kwargs
        assert (kwargs['package'], kwargs['executable'], kwargs['name'],
                kwargs['namespace']) == ('ddpg_ros', spec.executable, spec.name, spec.namespace)
        *files, overrides = kwargs['parameters']
        assert tuple(files) == spec.parameter_files
        assert {name: value.kwargs['text'] for name, value in overrides.items()} == \
            dict(spec.parameters)
        assert kwargs['remappings'] == list(spec.remappings)
        # A node that ends stops the launch, as it does in ddpg-launch.
        assert (kwargs['respawn'], kwargs['respawn_delay']) == (False, 0.0)
        assert type(kwargs['on_exit']).__name__ == 'Shutdown'


# The launcher's lifecycle, with real nodes


def launcher_command(*arguments: str) -> list[str]:
    return [sys.executable, '-m', 'ddpg_ros.ros.launcher', *arguments]


def started_pids(launcher: TestProcess, count: int) -> dict[str, int]:
    """Wait until the launcher has started ``count`` nodes; their pids by node name."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        pids = dict(re.findall(r'started (\S+) \(pid (\d+)\)', launcher.output()))
        if len(pids) >= count:
            return {name: int(pid) for name, pid in pids.items()}
        time.sleep(0.05)
    raise AssertionError(f'launcher did not start {count} nodes:\n{launcher.output()}')


def _parameters_of(ros: RosTestNode, node: str, names: list[str]) -> dict[str, Any]:
    from rcl_interfaces.srv import GetParameters, ListParameters
    from rclpy.parameter import parameter_value_to_python

    lister = ros.node.create_client(ListParameters, f'/{node}/list_parameters')
    getter = ros.node.create_client(GetParameters, f'/{node}/get_parameters')
    assert ros.spin_until(lambda: lister.service_is_ready() and getter.service_is_ready(),
                          START_TIMEOUT)
    listed = lister.call_async(ListParameters.Request())
    got = getter.call_async(GetParameters.Request(names=names))
    assert ros.spin_until(lambda: listed.done() and got.done(), 5.0)
    # Less what every rclpy node declares (use_sim_time, ...): the node's own parameters.
    builtin = set(ros.node.list_parameters([], 0).names)
    values = {'<declared>': sorted(set(listed.result().result.names) - builtin)}
    values.update(zip(names, map(parameter_value_to_python, got.result().values)))
    return values


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_the_launched_sim_with_status_0(
        ros_processes: ProcessGroup, ros_node: RosTestNode, sig: int) -> None:
    launcher = ros_processes.start(launcher_command(
        'train_sim', 'task:=half_cheetah', 'seed:=5', 'mujoco_sim.command_timeout:=0.25',
        '--only', 'mujoco_sim'), name='ddpg-launch')
    pids = started_pids(launcher, 1)
    assert launcher.wait_for_output('[mujoco_sim] ', START_TIMEOUT), launcher.output()

    # The parameter file and the overrides reached the node.
    parameters = _parameters_of(ros_node, 'mujoco_sim', ['model', 'seed', 'command_timeout'])
    assert parameters == {
        '<declared>': sorted(MUJOCO_SIM_PARAMETERS),
        'model': 'HalfCheetah-v5', 'seed': 5, 'command_timeout': 0.25}

    assert launcher.stop(sig, STOP_TIMEOUT) == 0, launcher.output()
    assert not pid_alive(pids['mujoco_sim'])
    assert f'{signal.Signals(sig).name}: stopping every node' in launcher.output()


@pytest.mark.skipif(importlib.util.find_spec('ddpg_ros.ros.ddpg_agent_node') is None,
                    reason='FULL PROFILE: runs once ddpg_ros/ros/ddpg_agent_node.py exists')
# On Kilted, SIGINT here and SIGTERM at the agent (test_ddpg_agent_node.py): each signal once.
@pytest.mark.parametrize('sig', [pytest.param(signal.SIGINT, marks=pytest.mark.distro),
                                 signal.SIGTERM])
def test_signal_stops_the_full_train_sim_profile_with_status_0(
        ros_processes: ProcessGroup, ros_node: RosTestNode, sig: int) -> None:
    """The whole profile: the agent drives the sim (joint_states advance), then both stop."""
    from rclpy.time import Time
    from sensor_msgs.msg import JointState

    from ddpg_ros.ros.qos import STATE_QOS

    stamps: list[int] = []
    ros_node.node.create_subscription(
        JointState, 'joint_states',
        lambda msg: stamps.append(Time.from_msg(msg.header.stamp).nanoseconds), STATE_QOS)
    launcher = ros_processes.start(launcher_command('train_sim', 'task:=inverted_pendulum'),
                                   name='ddpg-launch')
    pids = started_pids(launcher, 2)
    assert ros_node.spin_until(lambda: len(set(stamps)) >= 20, 60.0), (
        f'the agent did not drive the sim:\n{launcher.output()}')

    assert launcher.stop(sig, STOP_TIMEOUT) == 0, launcher.output()
    assert not pid_alive(pids['mujoco_sim'])
    assert not pid_alive(pids['ddpg_agent'])


def test_launcher_exits_nonzero_when_a_node_fails(ros_processes: ProcessGroup) -> None:
    launcher = ros_processes.start(launcher_command(
        'train_sim', 'model:=NoSuchRobot-v0', '--only', 'mujoco_sim'), name='ddpg-launch')
    assert launcher.wait(START_TIMEOUT) == 1, launcher.output()
    assert 'mujoco_sim ended (status 1)' in launcher.output()
    assert "[mujoco_sim] [FATAL]" in launcher.output()


def test_a_failing_node_stops_the_others(ros_env: dict[str, str]) -> None:
    def sim(namespace: str, model: str) -> NodeSpec:
        return NodeSpec('mujoco_sim', 'ddpg_ros.ros.mujoco_sim_node', 'mujoco_sim', namespace,
                        parameters={'model': model})

    out = io.StringIO()
    launcher = Launcher([sim('/healthy', 'InvertedPendulum-v5'), sim('/broken', 'Nope-v0')],
                        env=ros_env, out=out)
    assert launcher.run() == 1
    pids = [int(pid) for pid in re.findall(r'\(pid (\d+)\)', out.getvalue())]
    assert len(pids) == 2
    assert not any(pid_alive(pid) for pid in pids)
    assert 'ended (status 1): stopping the rest' in out.getvalue()


@pytest.mark.distro
def test_nodes_do_not_outlive_a_killed_launcher(ros_processes: ProcessGroup) -> None:
    launcher = ros_processes.start(launcher_command('train_sim', '--only', 'mujoco_sim'),
                                   name='ddpg-launch')
    pid = started_pids(launcher, 1)['mujoco_sim']
    assert launcher.wait_for_output('[mujoco_sim] ', START_TIMEOUT)
    launcher.stop(signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_usage_errors_exit_2(ros_processes: ProcessGroup) -> None:
    launcher = ros_processes.start(launcher_command('deploy'), name='ddpg-launch')
    assert launcher.wait(START_TIMEOUT) == 2
    assert 'needs checkpoint:=' in launcher.output()


class _StopOnLine(io.StringIO):
    """The launcher's output; SIGTERM to this process once ``line`` was written ``count`` times."""

    def __init__(self, line: str, count: int) -> None:
        super().__init__()
        self._line, self._count = line, count

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count(self._line) == self._count and self._line in text:
            os.kill(os.getpid(), signal.SIGTERM)  # the launcher's handler takes it
        return written


def test_a_respawning_node_starts_again_and_an_optional_one_ends_alone(
        ros_env: dict[str, str]) -> None:
    def failing(name: str, **lifecycle: Any) -> NodeSpec:
        # Ends at once with status 1 (no such module): no ROS needed.
        return NodeSpec(name, 'ddpg_ros.no_such_node', name, required=False, **lifecycle)

    out = _StopOnLine('started again_and_again', 3)
    launcher = Launcher([failing('again_and_again', respawn=True, respawn_delay=0.1),
                         failing('once')], env=ros_env, out=out)
    assert launcher.run() == 1, out.getvalue()
    text = out.getvalue()
    pids = [int(pid) for pid in re.findall(r'started again_and_again \(pid (\d+)\)', text)]
    assert len(set(pids)) == 3 and not any(pid_alive(pid) for pid in pids), text
    assert text.count('again_and_again ended (status 1): starting it again in 0.1 s') >= 2
    assert text.count('once ended (status 1); the others go on') == 1
    assert 'stopping the rest' not in text and 'SIGTERM: stopping every node' in text
    # Each process's own output comes before its end is reported.
    assert text.index('No module named') < text.index('ended (status 1)')


def test_a_node_that_keeps_failing_at_start_is_started_again_its_retries_and_then_stops_all(
        ros_env: dict[str, str]) -> None:
    out = io.StringIO()
    launcher = Launcher([NodeSpec('broken', 'ddpg_ros.no_such_node', 'broken', required=False,
                                  respawn=True, respawn_delay=0.1, respawn_max_retries=2)],
                        env=ros_env, out=out)
    assert launcher.run() == 1, out.getvalue()
    text = out.getvalue()
    pids = [int(pid) for pid in re.findall(r'started broken \(pid (\d+)\)', text)]
    assert len(set(pids)) == 3, text  # the first start and 2 new ones
    assert text.count('broken ended (status 1): starting it again in 0.1 s') == 2
    assert (f'broken ended (status 1) within {RESPAWN_STEADY:g} s of its start 3 times in a row: '
            'not starting it again; stopping the rest') in text
    assert 'SIGTERM' not in text


def test_respawn_and_required_exclude_each_other() -> None:
    with pytest.raises(ProfileError, match='respawn and required exclude each other'):
        NodeSpec('ddpg_learner', 'm', 'ddpg_learner', respawn=True)
    with pytest.raises(ProfileError, match='respawn_delay=-1.0 must be >= 0'):
        NodeSpec('ddpg_learner', 'm', 'ddpg_learner', required=False, respawn=True,
                 respawn_delay=-1.0)
    with pytest.raises(ProfileError, match='respawn_max_retries=-2 must be >= 0, or -1'):
        NodeSpec('ddpg_learner', 'm', 'ddpg_learner', required=False, respawn=True,
                 respawn_max_retries=-2)
