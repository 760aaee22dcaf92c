"""Where every benchmark leaves its numbers: JSON for machines, a markdown table for people."""

from __future__ import annotations

import json
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
