"""
Launch profiles as data: which nodes a profile starts, and with what, given its arguments.

Both ways of launching read these and nothing else: the project's own launcher
(``ddpg-launch train_sim task:=hopper seed:=3``), which needs no ROS 2 launch tools, and the
thin ``launch/<profile>.launch.py`` files that ``ros2 launch`` runs. Arguments are
``name:=value`` pairs, as on those command lines.

Values stay the text that was typed; ROS parses them as YAML (``3`` an int, ``0.5`` a double,
``true`` a bool, ``[64, 64]`` an array), as it does for ``-p name:=value``.

Arguments a profile does not declare become parameter overrides: ``node.param:=value`` for
one node, ``param:=value`` for the nodes that take it (see :func:`train_sim_nodes`).

No ROS import here, so the profiles can be checked anywhere.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = 'ddpg_ros'
LAUNCH_SUFFIX = '.launch.py'
MUJOCO_SIM_PARAMETERS = ('model', 'mode', 'seed', 'command_timeout', 'publish_clock',
                         'frame_skip', 'timestep', 'state_rate', 'real_time_factor', 'imu_site',
                         'reset_noise', 'randomize',
                         'image_rate', 'image_width', 'image_height', 'camera', 'viewer')
"""Every parameter the ``mujoco_sim`` node declares."""
_ARGUMENT_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_.]*\Z')


class ProfileError(ValueError):
    """An unknown profile, a malformed or missing argument, or a missing file."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a profile: what to run and with which ROS arguments."""

    executable: str
    """Console script, also installed in ``lib/ddpg_ros`` for ``ros2 run``/``ros2 launch``."""
    module: str
    """Module whose ``main()`` runs the node, for ``python -m``."""
    name: str
    """Node name."""
    namespace: str = ''
    """Namespace ('' = root); topics are relative, so everything moves with it."""
    parameter_files: tuple[str, ...] = ()
    """YAML files keyed by node name under ``ros__parameters``, applied in order."""
    parameters: Mapping[str, str] = field(default_factory=dict)
    """Overrides as typed on a command line; they win over the files."""
    remappings: tuple[tuple[str, str], ...] = ()
    """``(from, to)`` topic or service remappings."""
    required: bool = True
    """When it ends, every other node is stopped (launch_ros: ``on_exit=Shutdown()``)."""
    respawn: bool = False
    """When it ends, it is started again after ``respawn_delay`` s (launch_ros: ``respawn``);
    only SIGINT/SIGTERM to the launch stop it for good. Excludes ``required``."""
    respawn_delay: float = 0.0
    """Seconds between the end of a respawning node and its new start."""
    respawn_max_retries: int = -1
    """How often a respawning node that keeps failing at start is started again: after this
    many new starts in a row, each ended within ``RESPAWN_STEADY`` s, the launch gives up on
    it and stops the rest (-1: no limit). A longer run starts the count afresh.
    launch_ros's ``respawn_max_retries`` counts every new start."""

    def __post_init__(self) -> None:
        if self.respawn and self.required:
            raise ProfileError(f'node {self.name}: respawn and required exclude each other '
                               '(a required node that ends stops the launch)')
        if self.respawn_max_retries < -1:
            raise ProfileError(f'node {self.name}: respawn_max_retries='
                               f'{self.respawn_max_retries} must be >= 0, or -1 for no limit')
        if not self.respawn_delay >= 0.0:
            raise ProfileError(f'node {self.name}: respawn_delay={self.respawn_delay} must '
                               'be >= 0')

    def ros_arguments(self) -> list[str]:
        """``--ros-args ...`` as ``ros2 run`` would take them."""
        args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:={self.namespace}']
        for path in self.parameter_files:
            args += ['--params-file', path]
        for name, value in self.parameters.items():
            args += ['-p', f'{name}:={value}']
        for source, target in self.remappings:
            args += ['-r', f'{source}:={target}']
        return args

    def command(self, python: str = sys.executable) -> list[str]:
        """``python -m <module> --ros-args ...``."""
        return [python, '-m', self.module, *self.ros_arguments()]


@dataclass(frozen=True)
class Argument:
    """A declared profile argument, as ``DeclareLaunchArgument`` takes it."""

    name: str
    description: str
    default: str | None = None
    """``None``: the argument is required."""


@dataclass(frozen=True)
class Profile:
    """A named set of nodes built from ``name:=value`` arguments."""

    name: str
    description: str
    arguments: tuple[Argument, ...]
    build: Callable[[dict[str, str]], list[NodeSpec]]
    """Takes every argument (declared ones with defaults filled in), returns the nodes."""

    def nodes(self, arguments: Mapping[str, str]) -> list[NodeSpec]:
        """
        Return the nodes for these arguments.

        :raises ProfileError: a required argument is missing, or the build rejects a value.
        """
        values = {arg.name: arg.default for arg in self.arguments if arg.default is not None}
        values.update(arguments)
        missing = [arg.name for arg in self.arguments if arg.name not in values]
        if missing:
            raise ProfileError(f'profile {self.name} needs ' + ', '.join(
                f'{name}:=...' for name in missing))
        return self.build(values)


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """
    ``['task:=hopper', 'seed:=3']`` -> ``{'task': 'hopper', 'seed': '3'}``; last one wins.

    :raises ProfileError: an item is not ``name:=value`` with a valid name.
    """
    arguments: dict[str, str] = {}
    for item in argv:
        name, separator, value = item.partition(':=')
        if not separator or not _ARGUMENT_NAME.match(name):
            raise ProfileError(f'argument {item!r} is not name:=value')
        arguments[name] = value
    return arguments


def config_directory() -> Path:
    """
    Return the package's ``config/``: beside the code in a source tree, else the installed share.

    The source tree wins when the code runs from it (pip editable, colcon
    ``--symlink-install``), so the code and its parameter files always come from one place.
    """
    source = Path(__file__).resolve().parents[2]
    if (source / 'package.xml').is_file() and (source / 'config').is_dir():
        return source / 'config'
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE)) / 'config'
    except (ImportError, LookupError, OSError) as exc:
        raise ProfileError(f'cannot find the config/ of {PACKAGE}: not in a source tree and '
                           f'not installed in the ament index ({exc})') from None


def available_task_configs() -> tuple[str, ...]:
    """Task names that have a ``config/<task>.yaml``."""
    return tuple(sorted(path.name[:-len('.yaml')] for path in config_directory().glob('*.yaml')
                        if path.name != 'deploy_example.yaml'))


def _existing_file(path: str, what: str) -> str:
    if not Path(path).is_file():
        raise ProfileError(f'{what} {path} does not exist')
    return str(Path(path).resolve())


def _yaml_string(text: str) -> str:
    # Quoted, so that ROS keeps a path such as '1.5' or 'true' a string.
    return "'" + text.replace("'", "''") + "'"


def _route_overrides(values: Mapping[str, str], node_names: Sequence[str],
                     rule: Callable[[str], Sequence[str]]) -> dict[str, dict[str, str]]:
    """Split ``param`` / ``node.param`` overrides between nodes; ``rule`` routes plain names."""
    routed: dict[str, dict[str, str]] = {name: {} for name in node_names}
    for key, value in values.items():
        node, _, parameter = key.partition('.')
        if parameter and node in routed:
            routed[node][parameter] = value
            continue
        for node in rule(key):
            routed[node][key] = value
    return routed


def _train_sim_route(parameter: str) -> Sequence[str]:
    if parameter == 'mode':
        raise ProfileError('mode:= is ambiguous here: say mujoco_sim.mode:=lockstep|realtime '
                           '(ddpg_agent runs in train mode in this profile)')
    if parameter == 'seed':
        return ('mujoco_sim', 'ddpg_agent')
    if parameter in MUJOCO_SIM_PARAMETERS:
        return ('mujoco_sim',)
    return ('ddpg_agent',)


def train_sim_nodes(values: dict[str, str]) -> list[NodeSpec]:
    """
    mujoco_sim + ddpg_agent in train mode, parameters from ``config/<task>.yaml``.

    Routing of the other arguments: ``seed`` goes to both nodes, the sim's own parameters
    (``model``, ``command_timeout``, ...) to ``mujoco_sim``, everything else to ``ddpg_agent``;
    ``mujoco_sim.mode:=realtime`` names the node outright.
    """
    values = dict(values)
    task = values.pop('task')
    extra_file = values.pop('params_file')
    namespace = values.pop('namespace')
    use_sim_time = values.pop('use_sim_time')
    files: list[str] = []
    task_overrides: dict[str, str] = {}
    task_file = config_directory() / f'{task}.yaml'
    if task_file.is_file():
        files.append(str(task_file))
    elif extra_file:
        # A user's task ('pkg.module:Class') has no file of ours; theirs says the rest.
        task_overrides['task'] = task
    else:
        raise ProfileError(f"no config/{task}.yaml for task {task!r}: choose one of "
                           f"{', '.join(available_task_configs())}, or give your own "
                           'parameters with params_file:=FILE')
    if extra_file:
        files.append(_existing_file(extra_file, 'params_file'))
    routed = _route_overrides(values, ('mujoco_sim', 'ddpg_agent'), _train_sim_route)
    return [
        NodeSpec('mujoco_sim', 'ddpg_ros.ros.mujoco_sim_node', 'mujoco_sim', namespace,
                 tuple(files), routed['mujoco_sim']),
        # The sim is the clock's source and stays on wall time; the agent follows /clock.
        NodeSpec('ddpg_agent', 'ddpg_ros.ros.ddpg_agent_node', 'ddpg_agent', namespace,
                 tuple(files), {'mode': 'train', 'use_sim_time': use_sim_time,
                                **task_overrides, **routed['ddpg_agent']}),
    ]


def deploy_nodes(values: dict[str, str]) -> list[NodeSpec]:
    """
    ddpg_agent in deploy mode with a checkpoint, for a real robot.

    Every other argument is a ddpg_agent parameter override.
    """
    values = dict(values)
    checkpoint = _existing_file(values.pop('checkpoint'), 'checkpoint')
    params_file = values.pop('params_file') or str(config_directory() / 'deploy_example.yaml')
    namespace = values.pop('namespace')
    use_sim_time = values.pop('use_sim_time')
    routed = _route_overrides(values, ('ddpg_agent',), lambda _: ('ddpg_agent',))
    return [
        NodeSpec('ddpg_agent', 'ddpg_ros.ros.ddpg_agent_node', 'ddpg_agent', namespace,
                 (_existing_file(params_file, 'params_file'),),
                 {'mode': 'deploy', 'load_checkpoint': _yaml_string(checkpoint),
                  'use_sim_time': use_sim_time, **routed['ddpg_agent']}),
    ]


def _parameter_text(value: object) -> str:
    """Return a parameter file's value as ``-p name:=TEXT`` takes it (YAML, strings quoted)."""
    import yaml

    if isinstance(value, str):
        return _yaml_string(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip()
    return text.removesuffix('...').strip()


def _file_sections(path: str | Path) -> dict[str, dict[str, str]]:
    """Return each node section of a parameter file, values as ``-p`` text, by node name."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return {str(node).strip('/'): {name: _parameter_text(value) for name, value
                                       in section['ros__parameters'].items()}
                for node, section in data.items()}
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError) as exc:
        raise ProfileError(f'parameter file {path} is not keyed by node name under '
                           f'ros__parameters: {exc}') from None


def _seed_plus(text: str, offset: int) -> str:
    try:
        return str(int(text) + offset)
    except ValueError:
        raise ProfileError(f'seed:={text} must be an integer') from None


FLEET_ROBOT = 'robot_{}'
"""Namespace of robot i in ``train_fleet``."""
LEARNER_RESPAWN_DELAY = 2.0
"""Seconds before a ``ddpg_learner`` that ended in ``train_fleet`` is started again."""
LEARNER_RESPAWN_MAX_RETRIES = 3
"""New starts of a ``train_fleet`` learner that keeps failing at start (a bad parameter, an
unreadable checkpoint) before the launch stops."""
RESPAWN_STEADY = 30.0
"""Seconds a respawned node must run for its end not to count as a failure at start."""


def _parameter_value(text: str | None) -> object:
    """Return what ROS reads from ``-p name:=TEXT`` (YAML); ``''`` for no or empty text."""
    import yaml

    try:
        value = yaml.safe_load(text) if text else ''
    except yaml.YAMLError:
        return text
    return '' if value is None else value


def _fleet_run(task: str, learner: dict[str, str], actor: dict[str, str]) -> None:
    """
    Let a respawned learner resume its run: ``load_checkpoint`` latest of a named run.

    Unless the user chose a checkpoint (or ``latest``), the learner gets
    ``load_checkpoint: latest`` and a run id made here (``<task>-<UTC time>``, unless one is
    given), which the actors get too: its first start finds no checkpoint of that run and
    starts fresh, a start after a crash resumes the run's newest checkpoint.
    """
    from datetime import datetime, timezone

    from ddpg_ros.fleet.settings import LATEST

    if _parameter_value(learner.get('load_checkpoint')) != '':
        return
    learner['load_checkpoint'] = LATEST
    if _parameter_value(learner.get('run_id')) == '':
        stamp = datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')
        learner['run_id'] = _yaml_string(f"{task.rpartition(':')[2]}-{stamp}")
    if _parameter_value(actor.get('run_id')) == '':
        actor['run_id'] = learner['run_id']


def train_fleet_nodes(values: dict[str, str]) -> list[NodeSpec]:
    """
    One ddpg_learner and ``robots`` mujoco_sim + ddpg_agent pairs in ``robot_0`` ... .

    The task's ``config/<task>.yaml`` (and ``params_file``) set every robot: their
    ``mujoco_sim`` and ``ddpg_agent`` sections go to each robot's nodes as parameters (a file
    keyed by node name would not reach a node in a namespace), and the learner takes the
    ``ddpg_agent`` values it declares (task, hyper-parameters, checkpoint_dir) and the
    ``ddpg_learner`` section. Each robot's ``/clock`` is its own (``robot_i/clock``).

    Routing of the other arguments: the sim's parameters to every sim; the learner's own
    (checkpoint_dir, load_checkpoint, policy_every, ...) to the learner; DDPG
    hyper-parameters, ``task``, ``control_rate``, ``run_id`` and ``seed`` to the learner and
    every actor; the rest to every actor; ``ddpg_learner.x``, ``ddpg_agent.x`` and
    ``mujoco_sim.x`` name the node outright. Robot i's sim and actor get ``seed + i``.

    Only SIGINT/SIGTERM stop the fleet: the learner respawns after
    ``LEARNER_RESPAWN_DELAY`` s, resuming its run (see :func:`_fleet_run`), and a robot's
    node that ends leaves the others running. A learner that cannot start (it ends within
    ``RESPAWN_STEADY`` s, ``LEARNER_RESPAWN_MAX_RETRIES`` new starts in a row) stops the
    fleet.
    """
    import dataclasses

    from ddpg_ros.core.config import DDPGConfig
    from ddpg_ros.fleet.settings import LearnerSettings

    values = dict(values)
    task = values.pop('task')
    extra_file = values.pop('params_file')
    use_sim_time = values.pop('use_sim_time')
    robots_text = values.pop('robots')
    try:
        robots = int(robots_text)
    except ValueError:
        robots = 0
    if not 1 <= robots <= 100:
        raise ProfileError(f'robots:={robots_text} must be an integer in 1..100')
    sections: dict[str, dict[str, str]] = {'mujoco_sim': {}, 'ddpg_agent': {},
                                           'ddpg_learner': {}}
    task_file = config_directory() / f'{task}.yaml'
    files = [str(task_file)] if task_file.is_file() else []
    if extra_file:
        files.append(_existing_file(extra_file, 'params_file'))
    elif not files:
        raise ProfileError(f"no config/{task}.yaml for task {task!r}: choose one of "
                           f"{', '.join(available_task_configs())}, or give your own "
                           'parameters with params_file:=FILE')
    for path in files:
        for node, section in _file_sections(path).items():
            sections.setdefault(node, {}).update(section)
    shared = {'task', 'control_rate', 'run_id', 'torch_threads', 'preset', 'seed',
              *(f.name for f in dataclasses.fields(DDPGConfig))}
    learner_only = {f.name for f in dataclasses.fields(LearnerSettings)} - shared

    def route(parameter: str) -> Sequence[str]:
        if parameter == 'mode':
            raise ProfileError('mode:= is ambiguous here: say mujoco_sim.mode:=lockstep|'
                               'realtime (every ddpg_agent trains with learner:=remote)')
        if parameter == 'seed':
            return ('mujoco_sim', 'ddpg_agent', 'ddpg_learner')
        if parameter in MUJOCO_SIM_PARAMETERS:
            return ('mujoco_sim',)
        if parameter in learner_only:
            return ('ddpg_learner',)
        if parameter in shared:
            return ('ddpg_agent', 'ddpg_learner')
        return ('ddpg_agent',)

    routed = _route_overrides(values, ('mujoco_sim', 'ddpg_agent', 'ddpg_learner'), route)
    agent_file = sections['ddpg_agent']
    learner = {name: value for name, value in agent_file.items()
               if name in learner_only | shared}
    learner = {**learner, **sections['ddpg_learner'], 'task': _yaml_string(task),
               **routed['ddpg_learner']}
    actor = {name: value for name, value in agent_file.items() if name not in learner_only}
    actor = {**actor, 'mode': 'train', 'task': _yaml_string(task), **routed['ddpg_agent'],
             'learner': 'remote', 'use_sim_time': use_sim_time}
    _fleet_run(task, learner, actor)
    sim = {**sections['mujoco_sim'], **routed['mujoco_sim']}
    # Only SIGINT/SIGTERM stop a fleet: a learner that ends starts again from its run's
    # newest checkpoint (unless it keeps failing at start), a robot that ends is reported and
    # the others go on.
    nodes = [NodeSpec('ddpg_learner', 'ddpg_ros.ros.ddpg_learner_node', 'ddpg_learner', '',
                      (), learner, required=False, respawn=True,
                      respawn_delay=LEARNER_RESPAWN_DELAY,
                      respawn_max_retries=LEARNER_RESPAWN_MAX_RETRIES)]
    clock = (('/clock', 'clock'),)
    for i in range(robots):
        namespace = '/' + FLEET_ROBOT.format(i)
        seeded = {key: _seed_plus(params['seed'], i) for key, params in
                  (('mujoco_sim', sim), ('ddpg_agent', actor)) if 'seed' in params}
        nodes.append(NodeSpec('mujoco_sim', 'ddpg_ros.ros.mujoco_sim_node', 'mujoco_sim',
                              namespace, (), {**sim, **({'seed': seeded['mujoco_sim']}
                                                        if 'mujoco_sim' in seeded else {})},
                              clock, required=False))
        nodes.append(NodeSpec('ddpg_agent', 'ddpg_ros.ros.ddpg_agent_node', 'ddpg_agent',
                              namespace, (), {**actor, **({'seed': seeded['ddpg_agent']}
                                                          if 'ddpg_agent' in seeded else {})},
                              clock, required=False))
    return nodes


_NAMESPACE = Argument('namespace', 'namespace of every node; topics and services are relative '
                      "to it ('' = root)", '')

PROFILES: dict[str, Profile] = {
    profile.name: profile for profile in (
        Profile(
            'train_sim',
            'Train in simulation: mujoco_sim + ddpg_agent in train mode.',
            (
                Argument('task', 'built-in task whose config/<task>.yaml to load '
                         '(inverted_pendulum, half_cheetah, hopper, walker2d, ant, balancer), '
                         'or package.module:Class with params_file:=', 'inverted_pendulum'),
                Argument('params_file', 'extra parameter file applied after the task\'s '
                         "('' = none)", ''),
                _NAMESPACE,
                Argument('use_sim_time', 'ddpg_agent follows the sim\'s /clock', 'true'),
            ),
            train_sim_nodes,
        ),
        Profile(
            'deploy',
            'Run a trained policy on a robot: ddpg_agent in deploy mode.',
            (
                Argument('checkpoint', 'checkpoint file to load (from ddpg-train or ddpg_agent)'),
                Argument('params_file', 'parameter file for ddpg_agent (task, reset_service, '
                         "...); '' = config/deploy_example.yaml", ''),
                _NAMESPACE,
                Argument('use_sim_time', 'ddpg_agent follows /clock (false on a real robot)',
                         'false'),
            ),
            deploy_nodes,
        ),
        Profile(
            'train_fleet',
            'Train one ddpg_learner on robots:=N simulated robots: mujoco_sim + ddpg_agent '
            '(learner:=remote) in namespaces robot_0 ... robot_<N-1>.',
            (
                Argument('task', 'built-in task whose config/<task>.yaml sets every robot, or '
                         'package.module:Class with params_file:=', 'inverted_pendulum'),
                Argument('robots', 'number of simulator + actor pairs', '2'),
                Argument('params_file', "extra parameter file applied after the task's, "
                         "sections by node name ('' = none)", ''),
                Argument('use_sim_time', "each ddpg_agent follows its own sim's clock "
                         '(robot_i/clock)', 'true'),
            ),
            train_fleet_nodes,
        ),
    )
}


def resolve_profile(name: str) -> Profile:
    """
    Return a profile by name, or by the path of its launch file (``.../train_sim.launch.py``).

    :raises ProfileError: no such profile.
    """
    key = Path(name).name
    if key.endswith(LAUNCH_SUFFIX):
        key = key[:-len(LAUNCH_SUFFIX)]
    if key not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[key]
