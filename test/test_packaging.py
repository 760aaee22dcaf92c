"""The package builds with colcon into a ROS 2 install space, as on a machine with a distro."""

import glob
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXECUTABLES = ('mujoco_sim', 'ddpg_agent', 'ddpg_learner', 'ddpg-train', 'ddpg-eval',
               'ddpg-launch', 'ddpg-discovery-server')


def test_package_xml_is_format_3_ament_python() -> None:
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    assert root.findtext('name') == 'ddpg_ros'
    assert root.find('export/build_type').text == 'ament_python'
    depends = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'std_srvs', 'rosgraph_msgs',
            'diagnostic_msgs'} <= depends


@pytest.mark.skipif(shutil.which('colcon', path=os.path.dirname(sys.executable)) is None,
                    reason='colcon is installed by requirements-dev.txt')
def test_colcon_build_installs_executables_launch_and_config(tmp_path: Path) -> None:
    source = tmp_path / 'ws' / 'src' / 'ddpg_ros'
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        '.git', '.venv*', 'build', 'install', 'log', 'runs', '*.egg-info', '__pycache__',
        'benchmarks', '.pytest_cache'))
    colcon = os.path.join(os.path.dirname(sys.executable), 'colcon')
    result = subprocess.run([colcon, 'build', '--event-handlers', 'console_direct-'],
                            cwd=tmp_path / 'ws', capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

    install = tmp_path / 'ws' / 'install' / 'ddpg_ros'
    for name in EXECUTABLES:
        assert (install / 'lib' / 'ddpg_ros' / name).is_file(), name  # for `ros2 run`
    share = install / 'share' / 'ddpg_ros'
    assert (share / 'package.xml').is_file()
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' /
            'ddpg_ros').is_file()
    launch_files = {p.name for p in (share / 'launch').iterdir()}
    assert launch_files >= {'train_sim.launch.py', 'deploy.launch.py'}
    assert (share / 'config' / 'inverted_pendulum.yaml').is_file()
    assert glob.glob(str(install / 'lib' / 'python*' / 'site-packages' / 'ddpg_ros' /
                         'models' / '*.xml'))

    site = glob.glob(str(install / 'lib' / 'python*' / 'site-packages'))[0]
    help_run = subprocess.run([sys.executable, str(install / 'lib' / 'ddpg_ros' / 'ddpg-eval'),
                               '--help'], capture_output=True, text=True, timeout=120,
                              env={**os.environ, 'PYTHONPATH': site})
    assert help_run.returncode == 0 and '--checkpoint' in help_run.stdout
