"""
MuJoCo's warnings go to the program's log, once each, and never into MUJOCO_LOG.TXT.

Each check runs in a fresh process started in an empty directory, the way a user starts
``ddpg-train`` or a script: that directory must stay empty of MuJoCo's log file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SETTOTALMASS = "compiler attribute 'settotalmass' is deprecated"
HINT = 'Update the model file (for a Gymnasium env: a newer gymnasium), or pin mujoco'


def run_python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_making_a_half_cheetah_env_logs_the_warning_once_and_writes_no_file(
        tmp_path: Path) -> None:
    # ddpg-train and ddpg-eval make their envs with make_env.
    code = ('from ddpg_ros.sim.envs import make_env\n'
            'for _ in range(2):\n'
            "    make_env('HalfCheetah-v5').close()\n"
            "print('made')\n")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / 'MUJOCO_LOG.TXT').exists()
    assert list(tmp_path.iterdir()) == []
    lines = [line for line in result.stderr.splitlines() if SETTOTALMASS in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('MuJoCo warning: ') and HINT in lines[0]


def test_a_simulation_of_half_cheetah_writes_no_file(tmp_path: Path) -> None:
    code = ('from ddpg_ros.sim.simulation import Simulation\n'
            "Simulation('HalfCheetah-v5').close()\n")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []
    assert result.stderr.count(SETTOTALMASS) == 1, result.stderr


def test_ddpg_train_on_half_cheetah_writes_no_file_in_its_working_directory(
        tmp_path: Path) -> None:
    out = tmp_path / 'run'
    work = tmp_path / 'work'
    work.mkdir()
    result = subprocess.run(
        [sys.executable, '-m', 'ddpg_ros.cli.train', '--env', 'HalfCheetah-v5',
         '--total-steps', '40', '--learning-starts', '20', '--batch-size', '8',
         '--hidden-sizes', '8', '8', '--eval-every', '40', '--eval-episodes', '1',
         '--no-tensorboard', '--no-progress', '--torch-threads', '1', '--out', str(out)],
        cwd=work, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []
    assert 'MuJoCo warning: ' in result.stderr and SETTOTALMASS in result.stderr


def test_each_distinct_warning_reaches_the_sink_once(tmp_path: Path) -> None:
    # Real MuJoCo warnings: a deprecated compiler attribute in two models, and a diverging
    # simulation at two different times (the text differs only in its numbers).
    code = '''
import json, mujoco
from ddpg_ros.sim.mujoco_warnings import route_mujoco_warnings
lines = []
route_mujoco_warnings(lines.append)
route_mujoco_warnings()  # a later call without a sink keeps this one
xml = """<mujoco><compiler settotalmass="MASS"/><worldbody><body><joint type="slide"/>
<geom size=".1"/></body></worldbody></mujoco>"""
for mass in ('2', '3'):
    model = mujoco.MjModel.from_xml_string(xml.replace('MASS', mass))
for start in (0.0, 5.0):
    data = mujoco.MjData(model)
    data.time = start
    data.qvel[0] = float('nan')
    mujoco.mj_step(model, data)
print(json.dumps(lines))
'''
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(lines) == 2, lines
    assert SETTOTALMASS in lines[0] and HINT in lines[0]
    assert 'unstable' in lines[1] and 'check the commands sent' in lines[1]
    assert all(line.endswith('each distinct MuJoCo warning is shown once)') for line in lines)
    assert list(tmp_path.iterdir()) == []
    assert SETTOTALMASS not in result.stderr  # the sink had it; nothing else printed it
