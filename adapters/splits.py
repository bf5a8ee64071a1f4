"""Items from files: the reference split layout (`split_dir/{train,val,test}/items.json`).

Rows are plain JSON objects; each environment turns them into Items and checks its own
required fields. Problems are AdapterErrors naming the file and the row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.protocol import AdapterError

# Our split names -> the reference's directory names.
SPLIT_DIRS = {"train": "train", "selection": "val", "test": "test"}

Rows = dict[str, list[dict[str, Any]]]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A JSON array of objects, or JSON Lines (one object per line)."""
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise AdapterError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append(_parse(line, f"{path} line {n}"))
    else:
        rows = _parse(text, str(path))
        if not isinstance(rows, list):
            raise AdapterError(f"{path}: expected a JSON array of objects")
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise AdapterError(f"{path} row {n}: expected a JSON object, got {type(row).__name__}")
    return rows


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{where}: invalid JSON at line {exc.lineno}: {exc.msg}") from None


def load_split_dir(root: Path) -> Rows:
    """Rows per split (train, selection, test) from the reference layout. A split directory
    holds `items.json` (or, as in the reference, its first `*.json`/`*.jsonl` by name)."""
    if not root.is_dir():
        raise AdapterError(f"env.split_dir: {root} is not a directory")
    out: Rows = {}
    for split, dirname in SPLIT_DIRS.items():
        folder = root / dirname
        if not folder.is_dir():
            out[split] = []
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".jsonl"))
        preferred = [p for p in files if p.name == "items.json"]
        if not files:
            raise AdapterError(f"{folder}: no items.json")
        out[split] = read_rows((preferred or files)[0])
    return out
