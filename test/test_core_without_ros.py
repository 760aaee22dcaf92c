"""Only ``ddpg_ros.ros`` imports ROS: the rest must work where rclpy does not exist."""

import pkgutil
import subprocess
import sys
import textwrap

import ddpg_ros

ROS_PACKAGE = 'ddpg_ros.ros'
CORE_MODULES = sorted(
    info.name for info in pkgutil.walk_packages(ddpg_ros.__path__, 'ddpg_ros.')
    if info.name != ROS_PACKAGE and not info.name.startswith(ROS_PACKAGE + '.'))
"""Every module of every package but ``ddpg_ros.ros``: core, sim, control, fleet, tasks, cli."""


def test_every_package_but_ros_is_listed() -> None:
    expected = {'ddpg_ros.core.ddpg', 'ddpg_ros.sim.simulation', 'ddpg_ros.control.step',
                'ddpg_ros.fleet.learner', 'ddpg_ros.tasks.ant', 'ddpg_ros.cli.train'}
    assert expected <= set(CORE_MODULES)


def test_core_imports_with_ros_blocked() -> None:
    script = textwrap.dedent(f'''
        import importlib, sys

        class BlockRos:
            def find_spec(self, name, path=None, target=None):
                root = name.split('.')[0]
                if root in ('rclpy', 'rosidl_runtime_py', 'sensor_msgs', 'std_msgs',
                            'std_srvs', 'rosgraph_msgs', 'diagnostic_msgs', 'launch',
                            'launch_ros', 'builtin_interfaces'):
                    raise ImportError('ROS is blocked in this test: ' + name)
                return None

        sys.meta_path.insert(0, BlockRos())
        for module in {CORE_MODULES!r}:
            importlib.import_module(module)
        leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'std_msgs'))
        assert not leaked, leaked
        print('ok')
    ''')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'ok'
