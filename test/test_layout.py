"""The package layout is the architecture: each package imports only the ones below it."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import ddpg_ros

PACKAGE_DIR = Path(ddpg_ros.__file__).parent
LAYERS = {'tasks': 0, 'core': 1, 'sim': 2, 'control': 3, 'fleet': 4, 'ros': 5, 'cli': 5}
"""A package may import its own modules and those of a lower layer; ros and cli are peers."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports() -> dict[str, set[str]]:
    """Map every module of the package to the ``ddpg_ros`` modules it imports (anywhere)."""
    graph = {}
    for path in sorted(PACKAGE_DIR.rglob('*.py')):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[_module_name(path)] = {name for name in found if name.startswith('ddpg_ros.')}
    return graph


def _package(module: str) -> str | None:
    parts = module.split('.')
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def test_every_module_is_in_a_package_of_a_layer() -> None:
    loose = [m for m in _imports() if m != 'ddpg_ros' and _package(m) not in LAYERS]
    assert not loose, f'modules outside the packages of LAYERS: {loose}'


def test_imports_point_down() -> None:
    upward = []
    for module, imported in _imports().items():
        here = _package(module)
        for name in imported:
            there = _package(name)
            if here is not None and there != here and LAYERS[there] >= LAYERS[here]:
                upward.append(f'{module} imports {name}')
    assert not upward, upward


def test_no_two_modules_import_each_other() -> None:
    graph = _imports()
    pairs = [(a, b) for a, b in itertools.combinations(sorted(graph), 2)
             if b in graph[a] and a in graph[b]]
    assert not pairs, pairs


def test_the_graph_is_read_from_the_source() -> None:
    # control.training imports core.ddpg: a graph that missed it would check nothing.
    assert 'ddpg_ros.core.ddpg' in _imports()['ddpg_ros.control.training']
