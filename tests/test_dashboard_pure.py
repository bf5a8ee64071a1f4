"""The dashboard's page data (machine/reports/dashboard.py), on values the browser tests do
not reach: a budget, a run not yet loaded, a diff's line kinds, epoch boundaries."""

from __future__ import annotations

from skillopt.machine.reports.dashboard import diff_lines, epoch_marks, progress, spend_text


def test_spend_names_the_budget_when_one_is_set() -> None:
    view = {"tokens": 12345, "cost": 0.5, "budget": {"max_usd": 2.0, "max_tokens": 100000}}
    assert spend_text(view) == "12,345 tokens of 100,000, $0.5000 of $2.00"
    assert spend_text({"tokens": 0, "cost": None, "budget": {}}) == "0 tokens"


def test_progress_of_a_run_before_its_data_and_of_a_finished_one() -> None:
    fresh = progress({"step": 0, "total_steps": 0, "done": False, "events": 1, "phase": "dataset"})
    assert fresh["fraction"] == 0.0 and fresh["fields"]["step"] == "0/0"
    assert fresh["fields"]["best"] == "–" and fresh["fields"]["state"] == "in progress"
    done = progress({"step": 3, "total_steps": 4, "done": True, "best_score": 0.5})
    assert done["fraction"] == 1.0 and done["fields"]["best"] == "0.5000"


def test_diff_lines_and_epoch_marks() -> None:
    diff = "--- a\n+++ b\n@@ -1 +1 @@\n-old\n+new\n same\n"
    kinds = [line["kind"] for line in diff_lines(diff)]
    assert kinds == ["head", "head", "hunk", "del", "add", "same"]
    marks = epoch_marks([{"epoch": 1}, {"epoch": 1}, {"epoch": 2}])
    assert [m["epoch_start"] for m in marks] == [True, False, True]
