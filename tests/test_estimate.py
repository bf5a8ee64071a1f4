"""`skillopt estimate`: calls, tokens and dollars per role before a run (none created), close
to what the run then does; a built-in price table for common models, recorded at init."""

from __future__ import annotations

import collections
from pathlib import Path

from tests.conftest import Cli

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "examples" / "support" / "support.yaml"
PRICED = [
    *("--set", "models.target.model=gpt-4.1-mini", "--set", "models.optimizer.model=gpt-4.1"),
    *("--set", "models.judge.model=claude-haiku-4-5"),
]


# Every rollout paid: the estimate's upper bound is a full-pass run's calls, which early reject
# and reused rollouts (on by default from config_version 4) only lower.
FULL_PASS = [
    *("--set", "evaluation.early_reject=false", "--set", "evaluation.reuse_rollouts=false"),
]


def test_the_estimate_matches_the_offline_run(cli: Cli, tmp_path: Path) -> None:
    res = cli("estimate", str(SUPPORT), "--json", *PRICED, *FULL_PASS)
    assert res.code == 0, res.err
    est = res.json()
    assert not list(tmp_path.iterdir())  # nothing created
    assert est["sizes"] == {"train": 30, "selection": 24, "test": 18} and est["steps"] == 6
    for role in ("target", "optimizer", "judge"):
        r = est["roles"][role]
        assert r["calls"][0] <= r["calls"][1] and r["usd"][0] <= r["usd"][1]
        assert r["input_tokens"][1] > 0 and r["output_tokens"][1] > 0
    assert est["usd"][0] < est["usd"][1]

    db = str(tmp_path / "s.db")
    init = cli("init", str(SUPPORT), "--db", db, *PRICED, *FULL_PASS)
    assert init.code == 0 and "built-in list prices of gpt-4.1-mini" in init.err
    assert cli("run", "--db", db).code == 0
    actual = collections.Counter(c["role"] for c in cli("calls", "--db", db, "--json").json())
    for role in ("target", "optimizer", "judge"):
        upper = est["roles"][role]["calls"][1]
        assert abs(upper - actual[role]) <= 0.1 * actual[role], (role, upper, actual[role])
    status = cli("status", "--db", db, "--json").json()
    assert status["cost"] is not None and status["by_role"]["judge"]["cost"] > 0
    low, high = est["usd"]
    assert low * 0.5 <= status["cost"] <= high * 1.5


def test_a_cost_budget_needs_no_prices_for_a_model_in_the_table(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "b.db")
    args = [*PRICED, "--set", "budget.max_usd=0.001"]
    assert cli("init", str(SUPPORT), "--db", db, *args).code == 0
    res = cli("run", "--db", db)
    assert res.code == 1 and "budget exhausted" in res.err
    unknown = ["--set", "budget.max_usd=1", "--set", "models.judge.model=my-own-judge"]
    res = cli("init", str(SUPPORT), "--db", str(tmp_path / "u.db"), *PRICED, *unknown)
    assert res.code == 2 and "budget.max_usd needs models.judge.prices" in res.err


def test_estimate_prints_a_readable_range(cli: Cli) -> None:
    res = cli("estimate", str(SUPPORT), *PRICED)
    assert res.code == 0
    assert "30 train, 24 selection, 18 test items; 6 steps" in res.out
    assert "judge     offline claude-haiku-4-5:" in res.out and "$" in res.out
    assert "assumptions: tokens = characters / 4" in res.out
