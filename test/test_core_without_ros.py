"""The core never imports ROS: it must work where rclpy does not exist."""

import subprocess
import sys
import textwrap

CORE_MODULES = ['ddpg_ros.config', 'ddpg_ros.networks', 'ddpg_ros.replay_buffer',
                'ddpg_ros.noise', 'ddpg_ros.ddpg', 'ddpg_ros.checkpoint', 'ddpg_ros.envs',
                'ddpg_ros.evaluation', 'ddpg_ros.train', 'ddpg_ros.evaluate', 'ddpg_ros.tasks',
                'ddpg_ros.sim', 'ddpg_ros.learner', 'ddpg_ros.plotting']


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
