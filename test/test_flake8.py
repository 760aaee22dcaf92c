"""ROS 2's flake8 check (ament_flake8), as ``ros2 pkg create`` sets it up for ament_python."""

from pathlib import Path
import subprocess
import sys

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Environments and outputs, not the package's code. ament_flake8 skips every folder whose
# name starts with '.' or '_' by itself; '.venv*' says so here too, for the reader.
EXCLUDE = ['.venv*', 'build', 'install', 'log', 'benchmarks/out']
# The template calls main_with_errors in the test process. flake8 then forks worker
# processes from it, and after the ROS tests that process holds DDS and torch threads: a
# forked child that garbage-collects their objects crashes. A fresh interpreter has none.
CHECK = '''
import sys
from ament_flake8.main import main_with_errors
rc, errors = main_with_errors(argv=['--exclude', *sys.argv[1:]])
print('\\n'.join(errors))
sys.exit(rc)
'''


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    # ament_flake8 checks the working directory with its own configuration (max line length
    # 99), as colcon test runs it from the package root; pytest may be started elsewhere.
    result = subprocess.run([sys.executable, '-c', CHECK, *EXCLUDE], cwd=PACKAGE_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, \
        f'code style errors / warnings:\n{result.stdout}\n{result.stderr[-2000:]}'
