"""A ledger written by the previous release (tests/fixtures/release-ab9f3be) opens, verifies
and replays under this code, and its reports come out byte for byte as that release wrote
them."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, Cli

FIXTURE = Path(__file__).parent / "fixtures" / "release-ab9f3be"
RUNS = ("mechanisms", "gated", "plain")


@pytest.fixture
def old_ledger(tmp_path: Path) -> Path:
    db = tmp_path / "previous-release.db"
    with gzip.open(FIXTURE / "previous-release.db.gz") as src, db.open("wb") as out:
        shutil.copyfileobj(src, out)
    return db


def test_it_opens_and_verifies(cli: Cli, old_ledger: Path) -> None:
    res = cli("verify", "--db", str(old_ledger))
    assert res.code == 0, res.out + res.err
    runs = cli("runs", "--db", str(old_ledger), "--json").json()
    assert [(r["run"], r["phase"]) for r in runs] == [(name, "done") for name in RUNS]


@pytest.mark.parametrize("run", RUNS)
def test_it_replays_every_decision_and_the_same_report(
    cli: Cli, old_ledger: Path, run: str
) -> None:
    res = cli("replay", "--db", str(old_ledger), "--run", run, "--verify", "--json")
    assert res.code == 0 and res.json()["verified"] is True, res.out
    # That release left the autonomous budget's and the rewrite's calls out of the token and
    # cost tables (an under-report, fixed since): their rows are the one difference.
    md = cli("report", "--db", str(old_ledger), "--run", run, "--md").out.splitlines()
    old_md = (FIXTURE / f"{run}.md").read_text("utf-8").splitlines()
    added = [line for line in md if line.startswith(("| budget |", "| rewrite |"))]
    assert [line for line in md if line not in added] == old_md
    assert bool(added) == (run != "plain")
    report = cli("report", "--db", str(old_ledger), "--run", run, "--json").json()
    old = json.loads((FIXTURE / f"{run}.json").read_text("utf-8"))
    tokens = {k: v for k, v in report.pop("tokens").items() if k not in ("budget", "rewrite")}
    assert (report, tokens) == ({k: v for k, v in old.items() if k != "tokens"}, old["tokens"])


def test_this_code_trains_on_beside_the_old_runs(cli: Cli, old_ledger: Path) -> None:
    forked = cli("fork", "--db", str(old_ledger), "--run", "plain", "--at", "60", "--name", "f")
    assert forked.code == 0, forked.err
    assert cli("run", "--db", str(old_ledger), "--run", "f").code == 0
    assert cli("replay", "--db", str(old_ledger), "--run", "f", "--verify").code == 0
    args = ["--set", "env.options.train=12", "--set", "train.batch_size=6"]
    assert cli("init", str(EXAMPLE), "--db", str(old_ledger), "--name", "new", *args).code == 0
    assert cli("run", "--db", str(old_ledger), "--run", "new", "--max-stages", "5").code == 0
    assert cli("verify", "--db", str(old_ledger)).code == 0
