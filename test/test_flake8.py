"""ROS 2's flake8 check (ament_flake8), as ``ros2 pkg create`` sets it up for ament_python."""

from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Environments and outputs, not the package's code. ament_flake8 skips every folder whose
# name starts with '.' or '_' by itself; '.venv*' says so here too, for the reader.
EXCLUDE = ['.venv*', 'build', 'install', 'log', 'benchmarks/out']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch: pytest.MonkeyPatch) -> None:
    # ament_flake8 checks the working directory with its own configuration (max line length
    # 99), as colcon test runs it from the package root; pytest may be started elsewhere.
    monkeypatch.chdir(PACKAGE_ROOT)
    rc, errors = main_with_errors(argv=['--exclude', *EXCLUDE])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
