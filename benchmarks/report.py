"""Where every benchmark leaves its numbers: JSON for machines, a markdown table for people."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path


def save_report(json_path: Path, result: dict, table: str) -> None:
    """
    Write ``result`` to ``json_path`` and ``table`` beside it as ``.md``; print the table.

    :param json_path: the JSON file; its folder is made when missing.
    :param result: plain types only.
    :param table: markdown, without a final newline.
    """
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + '\n')
    json_path.with_suffix('.md').write_text(table.rstrip('\n') + '\n')
    print(table)


def replace_run(path: Path, run: dict, key: Callable[[dict], tuple],
                load: Callable[[Path], dict],
                replaces: Callable[[dict, dict], bool] = lambda new, old: True) -> None:
    """
    Add ``run`` to the results file at ``path``, replacing the run with the same ``key``.

    Several drivers may share one results file (one per env, a peer beside them): each
    reads, changes and writes the file whole under an exclusive lock, so that no driver's
    run is lost to another's write, and through a rename, so that a reader never sees half.

    :param key: a run's identity, also the order of the runs in the file.
    :param load: reads the file (an empty results dict when there is none).
    :param replaces: whether ``run`` should replace the recorded run with its key (new, old);
        when not, the file is left as it is.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load(path)
        if any(key(r) == key(run) and not replaces(run, r) for r in results['runs']):
            return
        results['runs'] = sorted([r for r in results['runs'] if key(r) != key(run)] + [run],
                                 key=key)
        tmp = path.with_name(f'{path.name}.{os.getpid()}.tmp')
        tmp.write_text(json.dumps(results, indent=1) + '\n')
        tmp.replace(path)
