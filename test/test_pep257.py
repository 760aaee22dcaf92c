"""ROS 2's docstring check (ament_pep257), as ``ros2 pkg create`` sets it up for ament_python."""

from pathlib import Path

from ament_pep257.main import main
import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# Outputs, not the package's code. ament_pep257 skips every folder whose name starts with '.'
# or '_' by itself (.venv, .venv-kilted, __pycache__), and takes only paths here, no patterns.
EXCLUDE = ['build', 'install', 'log', 'benchmarks/out']


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The generated test checks ['.', 'test']; '.' already holds test/, and naming it again
    # makes ament_pep257 report every finding there twice, under ./test and under test.
    monkeypatch.chdir(PACKAGE_ROOT)
    rc = main(argv=['.', '--exclude', *EXCLUDE])
    findings = [line for line in capsys.readouterr().err.splitlines() if '.py:' in line]
    assert rc == 0, f'Found {len(findings)} docstring style errors:\n' + '\n'.join(findings)
