"""Items from files: the reference split layout, or one data file split by a ratio.

Two ways to give an environment its data (see `DataSource`):

- `split_dir`: the reference layout, `train/`, `val/`, `test/` each holding `items.json` (a JSON
  array of objects), plus an optional `split_manifest.json`. The reference's directory aliases
  are honoured (`valid_seen`, `selection` -> val; `valid_unseen` -> test); any other directory
  is an error, never a silent fallback to val as in the reference.
- `data_path`: one JSON array or JSON Lines file (or a directory holding exactly one), shuffled
  by `random.Random(split_seed)` (a generator of its own, seeded by the seed alone) and cut by
  largest-remainder counts of `split_ratio` (train:selection:test).

Rows are plain JSON objects; this module checks what every environment needs (an object with a
unique `id`), the environment checks its own fields through `check_row`. Every problem is an
AdapterError of one line naming the file and the row.

`python -m skillopt.adapters.environments.splits DATA --ratio 2:1:7 --seed 42 --out DIR` writes a ratio split in the
reference layout, so it can be reviewed, edited and passed as `env.split_dir`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from importlib.resources.abc import Traversable
from math import floor
from pathlib import Path
from typing import Any

from skillopt.adapters.protocol import AdapterError, DataSource

SPLITS = ("train", "selection", "test")
# Our split names -> the reference's directory names.
SPLIT_DIRS = {"train": "train", "selection": "val", "test": "test"}
# Directory names the reference accepts -> our split names.
ALIASES = {
    "train": "train",
    "val": "selection",
    "valid_seen": "selection",
    "selection": "selection",
    "test": "test",
    "valid_unseen": "test",
}
MANIFEST = "split_manifest.json"
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")
WRAPPER_KEYS = ("data", "tasks")  # an object holding the rows under one of these keys

Rows = dict[str, list[dict[str, Any]]]
RowCheck = Callable[[dict[str, Any]], None]
Prepare = Callable[[dict[str, Any]], dict[str, Any]]  # e.g. give a row its id


@dataclass(frozen=True)
class Row:
    where: str  # "<file> row N (line L)": what an error message names
    data: dict[str, Any]


@dataclass(frozen=True)
class SplitData:
    """Rows per split, where each row came from, and the provenance recorded in the ledger."""

    rows: Rows
    where: dict[str, list[str]]
    manifest: dict[str, Any] = field(default_factory=dict)


# -- reading one file ---------------------------------------------------------------------------


def read_rows(path: Path | Traversable) -> list[dict[str, Any]]:
    """A JSON array of objects (or `{"data": [...]}`, `{"tasks": [...]}`), JSON Lines, or CSV
    with a header."""
    return [r.data for r in read_located(path)]


def read_located(path: Path | Traversable) -> list[Row]:
    """The rows of a file with where each one is, for messages that name file and row."""
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise AdapterError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise AdapterError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.name.endswith(".csv"):
        return _csv(text, path)
    if path.name.endswith((".jsonl", ".ndjson")):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append(Row(f"{path} line {n}", _parse(line, f"{path} line {n}")))
    else:
        rows = _array(text, path)
    for row in rows:
        if not isinstance(row.data, dict):
            raise AdapterError(f"{row.where}: expected a JSON object, got {_kind(row.data)}")
    return rows


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a dataset may hold")


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:  # NaN, Infinity
        raise AdapterError(f"{where}: invalid JSON: {exc}") from None


def _array(text: str, path: Path | Traversable) -> list[Row]:
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):
            raise AdapterError(f"{path}: invalid JSON: {exc}") from None
        hint = " (JSON Lines? name the file .jsonl)" if exc.msg == "Extra data" else ""
        raise AdapterError(
            f"{path} line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}{hint}"
        ) from None
    wrapper = _wrapper_key(data)
    if wrapper is not None:
        data = data[wrapper]  # {"data": [...]} as many exports write it, {"tasks": [...]}
        i = _array_start(text, wrapper)
    elif isinstance(data, list):
        i = text.index("[")
    else:
        raise AdapterError(
            f"{path}: expected a JSON array of objects, got {_kind(data)} "
            '(an object needs a "data" or "tasks" array of them)'
        )
    # A second pass over the (valid) text finds where each element starts, for messages.
    decoder, starts, i = json.JSONDecoder(), [], i + 1
    for _ in data:
        while text[i] in " \t\r\n,":
            i += 1
        starts.append(i)
        _, i = decoder.raw_decode(text, i)
    return [
        Row(f"{path} row {n} (line {text.count(chr(10), 0, start) + 1})", value)
        for n, (start, value) in enumerate(zip(starts, data, strict=True), 1)
    ]


def _wrapper_key(data: Any) -> str | None:
    """The key of an object that wraps the rows: `data` (exports), `tasks` (the seed bench's
    tasks.json); other keys beside it (a title, a version) are ignored."""
    if not isinstance(data, dict):
        return None
    return next((k for k in WRAPPER_KEYS if isinstance(data.get(k), list)), None)


def _array_start(text: str, key: str) -> int:
    """Where the wrapped array opens: the `[` after the top-level key (a row may hold the same
    word, so the object is walked key by key rather than searched)."""
    decoder, i = json.JSONDecoder(), text.index("{") + 1
    while True:
        while text[i] in " \t\r\n,":
            i += 1
        name, i = decoder.raw_decode(text, i)
        while text[i] in " \t\r\n:":
            i += 1
        if name == key:
            return i
        _, i = decoder.raw_decode(text, i)


def _csv(text: str, path: Path | Traversable) -> list[Row]:
    """CSV with a header row; every value is a string, an empty cell an empty string."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise AdapterError(f"{path}: no header row")
    rows = []
    try:
        for record in reader:
            where = f"{path} line {reader.line_num}"
            if None in record:
                raise AdapterError(f"{where}: more cells than the header has columns")
            rows.append(Row(where, {k: ("" if v is None else v) for k, v in record.items()}))
    except csv.Error as exc:
        raise AdapterError(f"{path} line {reader.line_num}: invalid CSV: {exc}") from None
    return rows


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def _sha256(path: Path | Traversable) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- checks every environment needs ------------------------------------------------------------


def _check(
    split_rows: dict[str, list[Row]], check_row: RowCheck | None, prepare: Prepare | None = None
) -> SplitData:
    seen: dict[str, str] = {}
    rows: Rows = {}
    where: dict[str, list[str]] = {}
    for split in SPLITS:
        rows[split], where[split] = [], []
        for row in split_rows.get(split, []):
            if prepare is not None:
                row = Row(row.where, prepare(row.data))
            item_id = row.data.get("id")
            if item_id is None:
                raise AdapterError(f"{row.where}: missing required field 'id'")
            if isinstance(item_id, bool) or not isinstance(item_id, str | int):
                raise AdapterError(f"{row.where}: 'id' must be a string, got {_kind(item_id)}")
            item_id = str(item_id)
            if not item_id.strip():
                raise AdapterError(f"{row.where}: 'id' is empty")
            if item_id in seen:
                raise AdapterError(
                    f"{row.where}: duplicate id {item_id!r} (first at {seen[item_id]})"
                )
            seen[item_id] = row.where
            if check_row is not None:
                try:
                    check_row(row.data)
                except AdapterError as exc:
                    raise AdapterError(f"{row.where}: {exc}") from None
            rows[split].append({**row.data, "id": item_id})
            where[split].append(row.where)
    return SplitData(rows, where)


# -- the reference split layout ----------------------------------------------------------------


def load_split_dir(root: Path | Traversable, check_row: RowCheck | None = None) -> Rows:
    """Rows per split (train, selection, test) from the reference layout."""
    return read_split_dir(root, check_row).rows


def read_split_dir(
    root: Path | Traversable,
    check_row: RowCheck | None = None,
    label: str | None = None,
    prepare: Prepare | None = None,
) -> SplitData:
    """The reference layout: `train/`, `val/` (required) and `test/` (may be absent when the run
    does not evaluate on test), each with `items.json` (or its one `*.json` / `*.jsonl`).
    `label` names the directory in the ledger instead of its path (the shipped sets)."""
    if not root.is_dir():
        raise AdapterError(f"env.split_dir: {root} is not a directory")
    folders: dict[str, Traversable] = {}
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        split = ALIASES.get(entry.name)
        if split is None:
            raise AdapterError(
                f"{entry}: unknown split directory {entry.name!r} "
                f"(known: {', '.join(sorted(ALIASES))})"
            )
        if split in folders:
            raise AdapterError(
                f"{root}: both {folders[split].name}/ and {entry.name}/ are the {split} split"
            )
        folders[split] = entry
    for split in ("train", "selection"):
        if split not in folders:
            raise AdapterError(
                f"{root}: no {SPLIT_DIRS[split]}/ directory (expected train/, val/, test/)"
            )
    located: dict[str, list[Row]] = {}
    files: dict[str, dict[str, str]] = {}
    for split in (s for s in SPLITS if s in folders):
        folder = folders[split]
        path = _split_file(folder)
        located[split] = read_located(path)
        if not located[split]:
            raise AdapterError(f"{path}: no rows (the {split} split is empty)")
        files[split] = {"path": f"{folder.name}/{path.name}", "sha256": _sha256(path)}
    data = _check(located, check_row, prepare)
    counts = {split: len(data.rows[split]) for split in SPLITS}
    manifest: dict[str, Any] = {
        "split_mode": "split_dir",
        "split_dir": label or str(root),
        "files": files,
        "counts": counts,
    }
    declared = root / MANIFEST
    if declared.is_file():
        manifest["manifest_sha256"] = _sha256(declared)
        _check_declared_counts(declared, counts, folders)
    return SplitData(data.rows, data.where, manifest)


def _split_file(folder: Traversable) -> Traversable:
    preferred = folder / "items.json"
    if preferred.is_file():
        return preferred
    files = sorted(
        (p for p in folder.iterdir() if p.name.endswith(DATA_SUFFIXES) and p.is_file()),
        key=lambda p: p.name,
    )
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise AdapterError(
            f"{folder}: expected items.json or exactly one .json/.jsonl file (found: {found})"
        )
    return files[0]


def _check_declared_counts(
    path: Traversable, counts: dict[str, int], folders: dict[str, Traversable]
) -> None:
    """A manifest that declares counts must agree with the files (a stale manifest is named)."""
    try:
        declared = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(declared, dict) or not isinstance(declared.get("counts"), dict):
        return
    for key, value in declared["counts"].items():
        split = ALIASES.get(key)
        if split is None or isinstance(value, bool) or not isinstance(value, int):
            continue
        if value != counts[split]:
            folder = folders[split].name if split in folders else SPLIT_DIRS[split]
            raise AdapterError(
                f"{path}: counts.{key} is {value} but {folder}/ has {counts[split]} rows "
                "(a stale manifest? fix the count or the rows)"
            )


# -- one file split by a ratio -----------------------------------------------------------------


def split_counts(
    n: int, ratio: Iterable[float], ties_to_larger: bool = False
) -> tuple[int, int, int]:
    """Largest-remainder counts of n rows for train:selection:test. Equal remainders go to the
    larger ratio part with `ties_to_larger` (the reference: 5 rows at 1:2:7 are 0:1:4), else
    to the earlier split (1:1:3, runs recorded before config_version 3). Exact arithmetic
    (ratios are taken as the decimals they print as)."""
    parts = [Fraction(repr(float(r))) for r in ratio]
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        shown = ":".join(str(p) for p in parts)
        raise AdapterError(f"env.split_ratio: expected three parts >= 0, not all 0 (got {shown})")
    total = sum(parts)
    quotas = [n * p / total for p in parts]
    counts = [floor(q) for q in quotas]

    def rank(k: int) -> tuple[Fraction, Fraction, int]:
        return (-(quotas[k] - counts[k]), -parts[k] if ties_to_larger else Fraction(0), k)

    for i in sorted(range(3), key=rank)[: n - sum(counts)]:
        counts[i] += 1
    return counts[0], counts[1], counts[2]


def data_file(path: Path) -> Path:
    """`env.data_path` itself, or the one .json/.jsonl file of the directory it names."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise AdapterError(f"env.data_path: {path} not found")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in DATA_SUFFIXES)
    if len(files) == 1:
        return files[0]
    if not files and any((path / d).is_dir() for d in ALIASES):
        raise AdapterError(
            f"env.data_path: {path} holds split directories; name it in env.split_dir instead"
        )
    found = ", ".join(p.name for p in files) or "none"
    raise AdapterError(
        f"env.data_path: {path} must hold exactly one .json or .jsonl file (found: {found})"
    )


def read_ratio_split(
    path: Path,
    ratio: Iterable[float],
    seed: int,
    check_row: RowCheck | None = None,
    prepare: Prepare | None = None,
    sizes: tuple[int, int, int] | None = None,
    ties_to_larger: bool = False,
) -> SplitData:
    """One file shuffled by the seed and cut by the ratio, or by absolute `sizes` (rows past
    their sum are left out, and the manifest says how many)."""
    file = data_file(path)
    located = read_located(file)
    if not located:
        raise AdapterError(f"{file}: no rows")
    _check({"train": located}, check_row, prepare)  # every row, in file order, before a split
    ratio = tuple(float(r) for r in ratio)
    counts = split_counts(len(located), ratio, ties_to_larger) if sizes is None else sizes
    if sizes is not None and sum(sizes) > len(located):
        shown = ":".join(str(n) for n in sizes)
        raise AdapterError(
            f"env.split_sizes {shown} needs {sum(sizes)} rows but {file} has {len(located)}"
        )
    for split, count, part in zip(SPLITS, counts, ratio if sizes is None else sizes, strict=True):
        if part > 0 and count == 0:
            raise AdapterError(
                f"{file}: {len(located)} rows at split_ratio {_ratio_text(ratio)} leave the "
                f"{split} split empty; add rows or change env.split_ratio"
            )
    order = list(range(len(located)))
    random.Random(seed).shuffle(
        order
    )  # a generator of its own: the outcome depends on the seed only
    cuts = [0, counts[0], counts[0] + counts[1], counts[0] + counts[1] + counts[2]]
    parts = {
        split: [located[i] for i in order[cuts[k] : cuts[k + 1]]] for k, split in enumerate(SPLITS)
    }
    data = _check(parts, None, prepare)
    manifest = {
        "split_mode": "ratio",
        "source_data_path": str(file),
        "source_sha256": _sha256(file),
        **({"split_ratio": list(ratio)} if sizes is None else {"split_sizes": list(sizes)}),
        "split_seed": seed,
        "counts": dict(zip(SPLITS, counts, strict=True)),
        **({"unused": len(located) - sum(sizes)} if sizes is not None else {}),
    }
    return SplitData(data.rows, data.where, manifest)


def _ratio_text(ratio: Iterable[float]) -> str:
    return ":".join(f"{r:g}" for r in ratio)


# -- what environments call --------------------------------------------------------------------


def read_source(
    source: DataSource, check_row: RowCheck | None = None, prepare: Prepare | None = None
) -> SplitData:
    """Rows per split, where each came from, and the split manifest for the ledger. `prepare`
    may change a row before it is checked (the `task` environment maps its id column)."""
    if source.split_dir is not None and source.data_path is not None:
        raise AdapterError("set env.split_dir or env.data_path, not both")
    if source.split_dir is not None:
        return read_split_dir(Path(source.split_dir), check_row, prepare=prepare)
    if source.data_path is not None:
        return read_ratio_split(
            Path(source.data_path),
            source.split_ratio,
            source.split_seed,
            check_row,
            prepare,
            source.split_sizes,
            source.ties_to_larger,
        )
    raise AdapterError("env.split_dir/env.data_path: no data source given")


def load_source(source: DataSource, check_row: RowCheck | None = None) -> Rows:
    """Rows per split (train, selection, test) from `env.split_dir` or `env.data_path`."""
    return read_source(source, check_row).rows


# -- writing the reference layout --------------------------------------------------------------


def write_split_dir(data: SplitData, out: Path) -> None:
    """The reference layout: `train|val|test/items.json` and `split_manifest.json`."""
    if out.exists() and any(out.iterdir()):
        raise AdapterError(f"{out}: exists and is not empty; choose a new directory")
    for split in SPLITS:
        folder = out / SPLIT_DIRS[split]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "items.json").write_text(_dump(data.rows[split]), "utf-8")
    manifest = dict(data.manifest)
    counts = manifest.get("counts", {})
    manifest["counts"] = {SPLIT_DIRS[s]: counts.get(s, len(data.rows[s])) for s in SPLITS}
    (out / MANIFEST).write_text(_dump(manifest), "utf-8")


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m skillopt.adapters.environments.splits",
        description="Split one JSON/JSONL data file by a ratio into the reference layout.",
    )
    parser.add_argument("data", type=Path, help="a .json/.jsonl file, or a directory with one")
    parser.add_argument("--ratio", default="2:1:7", help="train:selection:test (default 2:1:7)")
    parser.add_argument("--seed", type=int, default=42, help="the shuffle seed (default 42)")
    parser.add_argument("--out", type=Path, required=True, help="a new directory")
    args = parser.parse_args(argv)
    try:
        try:
            ratio = tuple(float(p) for p in args.ratio.split(":"))
        except ValueError:
            raise AdapterError(
                f"--ratio: expected train:selection:test, got {args.ratio!r}"
            ) from None
        data = read_ratio_split(args.data.resolve(), ratio, args.seed, ties_to_larger=True)
        write_split_dir(data, args.out)
    except AdapterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = data.manifest["counts"]
    print(f"wrote {args.out}: " + ", ".join(f"{SPLIT_DIRS[s]} {counts[s]}" for s in SPLITS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
