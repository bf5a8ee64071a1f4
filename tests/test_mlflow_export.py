"""`skillopt export --format mlflow` and tracking.mlflow_uri, read back with MLflow's own client
from a local SQLite tracking store: the params are the resolved config, each step's metrics
are the JSON report's numbers, a repeat logs nothing, and a run logging as it trains ends up
with exactly what an export writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, PLAIN, ROOT, SMALL, Cli, sets

mlflow_tracking = pytest.importorskip("mlflow.tracking")


def _uri(path: Path) -> str:
    return f"sqlite:///{path}"


def _export(cli: Cli, db: Path, uri: str, *more: str) -> dict[str, Any]:
    res = cli(
        "export", "--db", str(db), "--format", "mlflow", "--tracking-uri", uri, "--json", *more
    )
    assert res.code == 0, res.err
    return res.json()


def _mlrun(uri: str, skillopt_run_id: str, experiment: str = "skillopt") -> Any:
    client = mlflow_tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    assert runs[0].data.tags["skillopt.run_id"] == skillopt_run_id
    return client, runs[0]


def _history(client: Any, run_id: str) -> dict[str, list[tuple[int, float, int]]]:
    """Every metric's history: (step, value, timestamp), in step order."""
    keys = client.get_run(run_id).data.metrics
    return {
        k: sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, k))
        for k in keys
    }


def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    """The config as the export promises its params: strings as they are, the rest as JSON."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for k, v in value.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: value if isinstance(value, str) else json.dumps(value, sort_keys=True)}


def _run_id(cli: Cli, db: Path) -> str:
    (run,) = cli("runs", "--db", str(db), "--json").json()
    return str(run["id"])


def test_the_export_reads_back_as_the_report_says(
    cli: Cli, small_run: Path, tmp_path: Path
) -> None:
    uri = _uri(tmp_path / "mlflow.db")
    facts = _export(cli, small_run, uri)
    assert facts["created"] and facts["metrics_logged"] > 0 and not facts["up_to_date"]
    client, mlrun = _mlrun(uri, _run_id(cli, small_run))
    assert mlrun.info.run_id == facts["mlflow_run_id"] and mlrun.info.status == "FINISHED"
    report = cli("report", "--db", str(small_run), "--json").json()
    assert mlrun.data.params == _flat(report["config"])
    history = _history(client, mlrun.info.run_id)

    def per_step(key: str) -> list[tuple[int, float]]:
        return [(step, value) for step, value, _ in history[key]]

    base = report["baseline"]["gate_score"]
    steps = report["steps"]
    assert per_step("selection/current") == [(0, base)] + [
        (s["step"], s["current_score"]) for s in steps
    ]
    assert per_step("selection/best") == [(0, base)] + [(s["step"], s["best_score"]) for s in steps]
    assert per_step("selection/candidate") == [
        (s["step"], s["candidate_gate_score"])
        for s in steps
        if s["candidate_gate_score"] is not None
    ]
    assert per_step("edits/applied") == [(s["step"], s["edits_applied"]) for s in steps]
    assert per_step("gate/accepted") == [
        (s["step"], 1.0 if s["action"].startswith("accept") else 0.0)
        for s in steps
        if not s["action"].startswith("skip")
    ]
    tokens = [v for _, v in per_step("spend/tokens")]
    assert [s for s, _ in per_step("spend/tokens")] == [0] + [s["step"] for s in steps]
    assert tokens == sorted(tokens) and tokens[0] > 0  # spent so far, never less
    spent = sum(t["input"] + t["output"] for t in report["tokens"].values())
    last = steps[-1]["step"]
    assert per_step("final/tokens") == [(last, spent)] and spent >= tokens[-1]
    for role, test in report["final"]["test"].items():
        assert per_step(f"test/{role}/hard") == [(last, test["hard"])]
    # the artifacts: the best skill and the markdown report, as skillopt writes them
    names = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert names == {"best_skill.md", "report.md"}
    folder = Path(client.download_artifacts(mlrun.info.run_id, "", str(tmp_path / "dl")))
    assert (folder / "report.md").read_text("utf-8") == cli("report", "--db", str(small_run)).out
    best = tmp_path / "best.md"
    assert cli("skill", "export", "best", "--db", str(small_run), "-o", str(best)).code == 0
    assert (folder / "best_skill.md").read_text("utf-8") == best.read_text("utf-8")
    # A repeat finds the run by its tag and changes nothing.
    again = _export(cli, small_run, uri)
    assert again["up_to_date"] and again["mlflow_run_id"] == mlrun.info.run_id
    assert again["metrics_logged"] == 0 and _history(client, mlrun.info.run_id) == history
    # ... even when the tag that says "up to date" is gone (a crash before it was written):
    # the metrics already there are compared one by one and none is sent twice.
    client.delete_tag(mlrun.info.run_id, "skillopt.head_hash")
    third = _export(cli, small_run, uri)
    assert not third["up_to_date"] and third["metrics_logged"] == 0
    assert third["params_logged"] == 0 and _history(client, mlrun.info.run_id) == history


def test_a_run_exported_as_it_goes_gets_each_step_once(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "g", *SMALL, *PLAIN).code == 0
    uri = _uri(tmp_path / "mlflow.db")
    assert cli("run", "--db", str(db), "--max-stages", "12").code == 0
    first = _export(cli, db, uri, "g", "--experiment", "mine")
    client, mlrun = _mlrun(uri, _run_id(cli, db), "mine")
    assert mlrun.info.status == "RUNNING" and first["metrics_logged"] > 0
    assert cli("run", "--db", str(db)).code == 0
    second = _export(cli, db, uri, "--run", "g", "--experiment", "mine")
    assert second["mlflow_run_id"] == first["mlflow_run_id"] and second["metrics_logged"] > 0
    history = _history(client, mlrun.info.run_id)
    report = cli("report", "--db", str(db), "--json").json()
    current = [(step, value) for step, value, _ in history["selection/current"]]
    assert current == [(0, report["baseline"]["gate_score"])] + [
        (s["step"], s["current_score"]) for s in report["steps"]
    ]
    assert client.get_run(mlrun.info.run_id).info.status == "FINISHED"


def test_tracking_mlflow_uri_logs_while_running_what_an_export_logs(
    cli: Cli, tmp_path: Path
) -> None:
    live = _uri(tmp_path / "live.db")
    db = tmp_path / "runs.db"
    config = sets(f"tracking.mlflow_uri={live}", "tracking.mlflow_experiment=live")
    assert (
        cli("init", str(EXAMPLE), "--db", str(db), "--name", "t", *SMALL, *PLAIN, *config).code == 0
    )
    # stopped part-way: what it did so far is already there, the MLflow run still RUNNING
    assert cli("run", "--db", str(db), "--max-stages", "12").code == 0
    client, mlrun = _mlrun(live, _run_id(cli, db), "live")
    done = cli("report", "--db", str(db), "--json").json()["steps"]
    assert done and mlrun.info.status == "RUNNING"
    steps = [m.step for m in client.get_metric_history(mlrun.info.run_id, "selection/current")]
    assert steps == [0] + [s["step"] for s in done]
    assert cli("run", "--db", str(db)).code == 0
    client, mlrun = _mlrun(live, _run_id(cli, db), "live")
    assert mlrun.info.status == "FINISHED"
    logged = _history(client, mlrun.info.run_id)
    # the same ledger exported afterwards into a fresh store: the same metrics, values and times
    fresh = _uri(tmp_path / "fresh.db")
    _export(cli, db, fresh, "--experiment", "live")
    other, exported = _mlrun(fresh, _run_id(cli, db), "live")
    assert _history(other, exported.info.run_id) == logged
    assert exported.data.params == mlrun.data.params
    # and an export into the live store (its URI and experiment from the config) adds nothing
    res = cli("export", "--db", str(db), "--format", "mlflow", "--json")
    assert res.code == 0, res.err
    assert res.json()["up_to_date"] and res.json()["mlflow_run_id"] == mlrun.info.run_id


def test_a_run_without_the_key_logs_nothing_and_export_needs_a_uri(
    cli: Cli, small_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    res = cli("export", "--db", str(small_run), "--format", "mlflow")
    assert res.code == 2 and "--tracking-uri" in res.err and len(res.err.splitlines()) == 1
    report = cli("report", "--db", str(small_run), "--json").json()
    assert report["config"]["tracking"] == {"mlflow_uri": None, "mlflow_experiment": None}


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["--format", "mlflow", "--tracking-uri", "nosuchscheme://x"], "nosuchscheme://x"),
        (["--format", "mlflow", "--tracking-uri", "sqlite:///m.db", "a", "--run", "b"], "--run"),
        (["--format", "parquet", "--tracking-uri", "sqlite:///m.db"], "--format parquet"),
        (["--experiment", "e"], "--format mlflow"),
    ],
)
def test_bad_export_input_is_one_line(
    cli: Cli, small_run: Path, tmp_path: Path, args: list[str], culprit: str
) -> None:
    res = cli("export", "--db", str(small_run), *args)
    assert res.code == 2 and culprit in res.err and len(res.err.splitlines()) == 1, res.err


def test_a_password_in_the_tracking_uri_is_refused_before_it_is_recorded(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    bad = sets("tracking.mlflow_uri=https://me:hunter2@mlflow.example/")
    res = cli("init", str(EXAMPLE), "--db", str(db), *SMALL, *bad)
    assert res.code == 2 and "tracking.mlflow_uri" in res.err and "hunter2" not in res.err


def test_without_the_extra_the_error_names_it(small_run: Path, tmp_path: Path) -> None:
    # The real CLI in a process where `import mlflow` fails as it does when it is not
    # installed (a None entry in sys.modules is Python's own way to block an import).
    code = (
        "import sys; sys.modules['mlflow'] = None; "
        "from skillopt.commands.entry import main; sys.argv = ['skillopt', *sys.argv[1:]]; main()"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=120,
        )

    uri = _uri(tmp_path / "m.db")
    res = run("export", "--db", str(small_run), "--format", "mlflow", "--tracking-uri", uri)
    assert res.returncode == 2 and res.stderr.strip() == (
        "error: MLflow is not installed: pip install 'skillopt[mlflow]'"
    )
    config = sets(f"tracking.mlflow_uri={uri}")
    res = run("init", str(EXAMPLE), "--db", str(tmp_path / "x.db"), *SMALL, *config)
    assert res.returncode == 2 and "skillopt[mlflow]" in res.stderr
    assert not (tmp_path / "m.db").exists()
