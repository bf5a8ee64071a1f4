"""Data formats: the reference split layout and ratio splits; every bad file is named with its row."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skillopt.adapters.environments.splits import (
    load_source,
    load_split_dir,
    read_ratio_split,
    read_source,
    read_split_dir,
    split_counts,
)
from skillopt.adapters.protocol import AdapterError, DataSource
from tests.conftest import ROOT


def rows(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "value": i} for i in range(n)]


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))
    return path


def write_jsonl(path: Path, values: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(v) + "\n" for v in values))
    return path


def layout(root: Path, **splits: list[dict[str, Any]]) -> Path:
    for name, values in splits.items():
        write_json(root / name / "items.json", values)
    return root


def ids(data: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {split: [r["id"] for r in values] for split, values in data.items()}


# -- largest-remainder counts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [
        (10, (2, 1, 7), (2, 1, 7)),
        (66, (2, 1, 7), (13, 7, 46)),  # quotas 13.2, 6.6, 46.2: the one left over goes to 0.6
        (3, (1, 1, 1), (1, 1, 1)),
        (4, (1, 1, 1), (2, 1, 1)),  # equal remainders: the earlier split
        (5, (0, 1, 1), (0, 3, 2)),
        (
            10,
            (0.2, 0.1, 0.7),
            (2, 1, 7),
        ),  # decimals taken exactly (0.1 is not 0.1000000000000000055)
        (7, (1, 0, 0), (7, 0, 0)),
        (0, (2, 1, 7), (0, 0, 0)),
    ],
)
def test_largest_remainder_counts(
    n: int, ratio: tuple[float, float, float], expected: tuple[int, int, int]
) -> None:
    assert split_counts(n, ratio) == expected


def test_counts_always_add_up_and_stay_within_one_of_the_quota() -> None:
    for n in range(0, 60):
        for ratio in ((2, 1, 7), (1, 1, 1), (3, 0, 1), (0.5, 0.25, 0.25), (5, 3, 3)):
            counts = split_counts(n, ratio)
            assert sum(counts) == n
            total = sum(ratio)
            for count, part in zip(counts, ratio, strict=True):
                assert abs(count - n * part / total) < 1


def test_bad_ratios_are_refused() -> None:
    for ratio in ((0, 0, 0), (1, -1, 1), (1, 1)):
        with pytest.raises(AdapterError, match="env.split_ratio"):
            split_counts(10, ratio)


# -- ratio splits --------------------------------------------------------------------------------


def test_a_ratio_split_depends_on_the_seed_only(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(30))
    first = read_ratio_split(data, (2, 1, 7), 7)
    random.seed(12345)  # the global generator's state must not matter
    random.random()
    again = read_ratio_split(data, (2, 1, 7), 7)
    assert ids(first.rows) == ids(again.rows)
    assert [len(first.rows[s]) for s in ("train", "selection", "test")] == [6, 3, 21]
    other = read_ratio_split(data, (2, 1, 7), 8)
    assert ids(other.rows) != ids(first.rows)
    everything = sorted(i for values in ids(first.rows).values() for i in values)
    assert everything == sorted(f"r{i}" for i in range(30))  # a partition: nothing lost or twice
    assert first.manifest == {
        "split_mode": "ratio",
        "source_data_path": str(data),
        "source_sha256": first.manifest["source_sha256"],
        "split_ratio": [2.0, 1.0, 7.0],
        "split_seed": 7,
        "counts": {"train": 6, "selection": 3, "test": 21},
    }


def test_json_array_and_jsonl_and_a_directory_give_the_same_split(tmp_path: Path) -> None:
    values = rows(12)
    array = write_json(tmp_path / "a" / "data.json", values)
    lines = write_jsonl(tmp_path / "b" / "data.jsonl", values)
    splits = [
        ids(load_source(DataSource(data_path=str(p), split_ratio=(1, 1, 1), split_seed=3)))
        for p in (array, lines, lines.parent)
    ]
    assert splits[0] == splits[1] == splits[2]


def test_ids_may_be_numbers_and_come_back_as_strings(tmp_path: Path) -> None:
    data = write_json(tmp_path / "d.json", [{"id": i} for i in range(3)])
    out = load_source(DataSource(data_path=str(data), split_ratio=(1, 1, 1)))
    assert sorted(r["id"] for v in out.values() for r in v) == ["0", "1", "2"]


# -- the reference layout ------------------------------------------------------------------------


def test_the_reference_layout_and_its_aliases(tmp_path: Path) -> None:
    plain = layout(tmp_path / "plain", train=rows(3, "t"), val=rows(2, "v"), test=rows(2, "x"))
    aliased = layout(
        tmp_path / "aliased", train=rows(3, "t"), valid_seen=rows(2, "v"), valid_unseen=rows(2, "x")
    )
    expected = {"train": ["t0", "t1", "t2"], "selection": ["v0", "v1"], "test": ["x0", "x1"]}
    assert ids(load_split_dir(plain)) == ids(load_split_dir(aliased)) == expected
    write_json(plain / "split_manifest.json", {"counts": {"train": 3, "val": 2, "test": 2}})
    data = read_split_dir(plain)
    assert data.manifest["split_mode"] == "split_dir"
    assert data.manifest["counts"] == {"train": 3, "selection": 2, "test": 2}
    assert data.manifest["files"]["selection"]["path"] == "val/items.json"
    assert "manifest_sha256" in data.manifest


def test_a_split_directory_may_hold_one_other_json_file(tmp_path: Path) -> None:
    root = layout(tmp_path / "d", train=rows(2, "t"), val=rows(1, "v"))
    (root / "val" / "items.json").rename(root / "val" / "selection.jsonl")
    write_jsonl(root / "val" / "selection.jsonl", rows(1, "v"))
    out = load_split_dir(root)
    assert ids(out) == {"train": ["t0", "t1"], "selection": ["v0"], "test": []}


def test_split_output_is_the_reference_layout(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", rows(20))
    out = tmp_path / "splits"
    args = [str(data), "--ratio", "2:1:1", "--seed", "5", "--out", str(out)]
    res = subprocess.run(
        [sys.executable, "-m", "skillopt.adapters.environments.splits", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "train 10, val 5, test 5" in res.stdout
    manifest = json.loads((out / "split_manifest.json").read_text())
    assert manifest["counts"] == {"train": 10, "val": 5, "test": 5}
    assert manifest["split_mode"] == "ratio" and manifest["split_seed"] == 5
    assert ids(load_split_dir(out)) == ids(read_ratio_split(data, (2, 1, 1), 5).rows)
    again = subprocess.run(
        [sys.executable, "-m", "skillopt.adapters.environments.splits", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2 and "exists and is not empty" in again.stderr


# -- every error names the file and the row ------------------------------------------------------


def _ratio(path: Path) -> DataSource:
    return DataSource(data_path=str(path), split_ratio=(1, 1, 1))


BAD_FILES: list[tuple[str, str, str]] = [
    # (file name, content, the message expected after the file name)
    ("d.json", '[{"id": "a"},\n {"id": "b"},\n {"id": "a"}]', " row 3 (line 3): duplicate id 'a'"),
    (
        "d.json",
        '[{"id": "a"}, {"name": "b"}, {"id": "c"}]',
        " row 2 (line 1): missing required field 'id'",
    ),
    (
        "d.json",
        '[{"id": "a"}, {"id": ["b"]}, {"id": "c"}]',
        " row 2 (line 1): 'id' must be a string",
    ),
    ("d.json", '[{"id": "a"}, {"id": "  "}, {"id": "c"}]', " row 2 (line 1): 'id' is empty"),
    ("d.json", '[{"id": "a"},\n 7]', " row 2 (line 2): expected a JSON object, got a number"),
    ("d.json", '[{"id": "a"},\n {"id": "b",}]', " line 2 column 13: invalid JSON"),
    ("d.json", '{"id": "a"}', ": expected a JSON array of objects, got an object"),
    (
        "d.json",
        '{"id": "a"}\n{"id": "b"}\n',
        " line 2 column 1: invalid JSON: Extra data (JSON Lines?",
    ),
    ("d.json", "[]", ": no rows"),
    ("d.jsonl", '{"id": "a"}\n\n{"id": "b"\n', " line 3: invalid JSON"),
    ("d.jsonl", '{"id": "a"}\n{"id": "b"}\n{"id": "a"}\n', " line 3: duplicate id 'a' (first at"),
    (
        "d.jsonl",
        '{"id": "a"}\n["b"]\n{"id": "c"}\n',
        " line 2: expected a JSON object, got an array",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES)
def test_bad_data_files_are_named_with_their_row(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(AdapterError) as info:
        load_source(_ratio(path))
    text = str(info.value)
    assert text.startswith(f"{path}{message}"), text
    assert "\n" not in text


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": "\xff"}\n')
    with pytest.raises(AdapterError, match=r"d.jsonl: not UTF-8 text \(byte 8\)"):
        load_source(_ratio(path))


def test_a_ratio_that_leaves_a_split_empty(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", rows(3))
    with pytest.raises(AdapterError, match=r"3 rows at split_ratio 2:1:7 leave the selection"):
        load_source(DataSource(data_path=str(path), split_ratio=(2, 1, 7)))


def test_data_path_directories(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        AdapterError, match=r"must hold exactly one .json or .jsonl file \(found: none\)"
    ):
        load_source(_ratio(empty))
    write_jsonl(tmp_path / "two" / "a.jsonl", rows(3))
    write_jsonl(tmp_path / "two" / "b.json", rows(3))
    with pytest.raises(AdapterError, match=r"\(found: a.jsonl, b.json\)"):
        load_source(_ratio(tmp_path / "two"))
    split = layout(tmp_path / "split", train=rows(2, "t"), val=rows(1, "v"))
    with pytest.raises(AdapterError, match="holds split directories; name it in env.split_dir"):
        load_source(_ratio(split))


def test_split_dir_errors(tmp_path: Path) -> None:
    def fails(root: Path, pattern: str) -> None:
        with pytest.raises(AdapterError, match=pattern):
            read_source(DataSource(split_dir=str(root)))

    unknown = layout(tmp_path / "u", train=rows(2, "t"), val=rows(1, "v"), dev=rows(1, "d"))
    fails(unknown, rf"{unknown / 'dev'}: unknown split directory 'dev' \(known: .*valid_seen")
    twice = layout(tmp_path / "t", train=rows(2, "t"), val=rows(1, "v"), valid_seen=rows(1, "s"))
    fails(twice, r"both val/ and valid_seen/ are the selection split")
    noval = layout(tmp_path / "n", train=rows(2, "t"), test=rows(1, "x"))
    fails(noval, r"no val/ directory \(expected train/, val/, test/\)")
    empty = layout(tmp_path / "e", train=rows(2, "t"), val=[])
    fails(empty, rf"{empty / 'val' / 'items.json'}: no rows \(the selection split is empty\)")
    across = layout(tmp_path / "a", train=rows(2, "t"), val=rows(1, "t"))
    fails(
        across,
        rf"{across / 'val' / 'items.json'} row 1 \(line 2\): duplicate id 't0' \(first at .*train",
    )
    many = layout(tmp_path / "m", train=rows(2, "t"), val=rows(1, "v"))
    (many / "val" / "items.json").rename(many / "val" / "a.json")
    write_json(many / "val" / "b.json", rows(1, "w"))
    fails(many, r"expected items.json or exactly one .json/.jsonl file \(found: a.json, b.json\)")
    stale = layout(tmp_path / "s", train=rows(2, "t"), val=rows(1, "v"))
    write_json(stale / "split_manifest.json", {"counts": {"train": 2, "val": 4}})
    fails(stale, r"split_manifest.json: counts.val is 4 but val/ has 1 rows")
    fails(tmp_path / "missing", r"env.split_dir: .*missing is not a directory")


def test_row_checks_of_the_environment_are_named_too(tmp_path: Path) -> None:
    def check(row: dict[str, Any]) -> None:
        if "text" not in row:
            raise AdapterError("missing required field 'text'")

    root = layout(tmp_path / "d", train=[{"id": "a", "text": "x"}], val=[{"id": "b"}])
    with pytest.raises(AdapterError) as info:
        load_split_dir(root, check)
    assert (
        str(info.value)
        == f"{root / 'val' / 'items.json'} row 1 (line 2): missing required field 'text'"
    )
