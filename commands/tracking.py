"""Mirror a run into MLflow: `skillopt export --format mlflow`, and `run` as it goes when the
config sets tracking.mlflow_uri. The numbers come from machine/reports/tracking.py (the
report's views); this module only finds the MLflow run and sends what it lacks.

Idempotent: the MLflow run is found by its tag `skillopt.run_id`; the tag `skillopt.head_hash`
(the ledger's last event) says it is up to date, and otherwise only the params and the
(metric, step) pairs it does not hold yet are sent, so a repeat, or an export after a crash
half-way through one, never duplicates a metric. Timestamps are the recorded times of the
events that ended each step: the same ledger gives the same MLflow run."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skillopt.commands.clock import stamp_seconds
from skillopt.commands.errors import InputError

if TYPE_CHECKING:
    from skillopt.ledger.events import StoredEvent
    from skillopt.ledger.ledger import Ledger
    from skillopt.ledger.tables import RunRow
    from skillopt.machine.core.state import TrainerState
    from skillopt.machine.reports.tracking import Spend

DEFAULT_EXPERIMENT = "skillopt"
MISSING = "MLflow is not installed: pip install 'skillopt[mlflow]'"
log = logging.getLogger("skillopt")


def require_mlflow() -> None:
    """A missing extra is bad input naming it (exit 2). Imports only: touches no store."""
    try:
        import mlflow.tracking  # noqa: F401
    except ImportError:
        raise InputError(MISSING) from None


def client(uri: str) -> Any:
    """An MlflowClient for `uri`."""
    require_mlflow()
    from mlflow.tracking import MlflowClient

    # The SQL store announces its table creation at INFO on the root handler: not ours to print.
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def _ms(stamp: str) -> int:
    return int(stamp_seconds(stamp) * 1000)


def _artifact_root(uri: str) -> str | None:
    """For a SQLite store, artifacts beside the database file (MLflow's default is ./mlruns in
    whatever folder the command runs from); other stores keep their own default."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


@dataclass
class Mirror:
    """One skillopt run mirrored into one MLflow run. Keeps the folded state between syncs so
    that `run` logging after every step folds each event once."""

    ledger: Ledger
    row: RunRow
    uri: str
    experiment: str
    state: TrainerState | None = None
    spend: dict[int, Spend] = field(default_factory=dict)
    stamps: dict[int, str] = field(default_factory=dict)

    def _fold_new(self) -> StoredEvent:
        from skillopt.ledger.errors import CorruptEvent
        from skillopt.machine.reports.tracking import spend_per_step

        stored = self.ledger.read(self.row.id)
        if not stored:
            raise InputError(f"run {self.row.name} has no events; nothing to export")
        seq = self.state.seq if self.state is not None else 0
        new = [e for e in stored if e.seq > seq]
        for e in new:
            if e.seq != seq + 1:
                raise CorruptEvent(e.run_id, e.seq, f"follows seq {seq}: events have a gap")
            seq = e.seq
        self.state, spend = spend_per_step((e.event() for e in new), self.state)
        self.spend |= spend
        self.stamps |= {e.seq: e.recorded_at for e in new}
        return stored[-1]

    def sync(self) -> dict[str, Any]:
        """Send what the MLflow run lacks; the facts of what was done."""
        from mlflow.entities import Metric, Param, RunTag

        from skillopt.machine.decisions.skilldoc import for_export
        from skillopt.machine.decisions.spending import spent
        from skillopt.machine.reports.tracking import (
            final_metrics,
            flat_params,
            step_metrics,
        )
        from skillopt.machine.reports.views import render_markdown, report_data

        head = self._fold_new()
        state = self.state
        assert state is not None
        mlflow = client(self.uri)
        exp = mlflow.get_experiment_by_name(self.experiment)
        exp_id = (
            exp.experiment_id
            if exp is not None
            else mlflow.create_experiment(self.experiment, _artifact_root(self.uri))
        )
        found = mlflow.search_runs(
            [exp_id], f"tags.`skillopt.run_id` = '{self.row.id}'", max_results=1
        )
        facts: dict[str, Any] = {
            "experiment": self.experiment,
            "experiment_id": exp_id,
            "run": self.row.name,
            "head_seq": head.seq,
            "created": not found,
            "params_logged": 0,
            "metrics_logged": 0,
            "up_to_date": False,
        }
        if found and found[0].data.tags.get("skillopt.head_hash") == head.hash:
            return facts | {"mlflow_run_id": found[0].info.run_id, "up_to_date": True}
        if found:
            mlrun = found[0]
        else:
            mlrun = mlflow.create_run(
                exp_id,
                start_time=_ms(self.stamps[1]),
                tags={"skillopt.run_id": self.row.id, "skillopt.run_name": self.row.name},
                run_name=self.row.name,
            )
        run_id = mlrun.info.run_id
        had = mlrun.data.params
        params = [Param(k, v) for k, v in flat_params(state.config_data).items() if k not in had]
        for i in range(0, len(params), 100):  # MLflow's batch limit
            mlflow.log_batch(run_id, params=params[i : i + 100])
        report = report_data(state)
        end = max((s["step"] for s in report["steps"]), default=0)
        stamp = {step: _ms(self.stamps[sp.seq]) for step, sp in self.spend.items()}
        metrics = [(m.key, m.value, m.step) for m in step_metrics(report, self.spend)]
        if state.completed is not None:  # the outcome, once, at the last step
            usd, tokens = spent(state)
            metrics += [(k, v, end) for k, v in final_metrics(report, usd, tokens).items()]
        logged: dict[str, set[int]] = {}
        for key in {k for k, _, _ in metrics}:
            logged[key] = {m.step for m in mlflow.get_metric_history(run_id, key)}
        todo = [
            Metric(k, v, stamp.get(step, _ms(head.recorded_at)), step)
            for k, v, step in metrics
            if step not in logged[k]
        ]
        for i in range(0, len(todo), 1000):
            mlflow.log_batch(run_id, metrics=todo[i : i + 1000])
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder)
            best = self.ledger.get_blob(state.best_hash) if state.best_hash else None
            if best is not None:
                (out / "best_skill.md").write_text(for_export(best), "utf-8")
            # `skillopt report --md`'s bytes (commands.api.render_report; not imported: api
            # imports this module for `run`)
            texts = self.ledger.get_blobs([state.best_hash, state.initial_hash])
            (out / "report.md").write_text(render_markdown(report, texts), "utf-8")
            mlflow.log_artifacts(run_id, folder)
        tags = {"skillopt.head_seq": str(head.seq), "skillopt.head_hash": head.hash}
        # Last: while it is not written, a repeat compares metric by metric (crash-safe).
        mlflow.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        if state.completed is not None:
            mlflow.set_terminated(run_id, "FINISHED", _ms(head.recorded_at))
        return facts | {
            "mlflow_run_id": run_id,
            "params_logged": len(params),
            "metrics_logged": len(todo),
        }


class LiveMirror:
    """`run` with tracking.mlflow_uri: a sync after the baseline, after each step and at the
    end. A tracker that fails never stops training: one warning, then no more tries in this
    invocation (`skillopt export --format mlflow` catches up later)."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.steps = -1  # records logged; -1: not even the baseline
        self.failed = False

    @classmethod
    def of(cls, ledger: Ledger, row: RunRow, state: TrainerState) -> LiveMirror | None:
        t = state.cfg.tracking if state.config is not None else None
        if t is None or t.mlflow_uri is None:
            return None
        require_mlflow()  # the extra is missing: say so before any stage runs
        experiment = t.mlflow_experiment or DEFAULT_EXPERIMENT
        return cls(Mirror(ledger, row, t.mlflow_uri, experiment))

    def after(self, state: TrainerState, final: bool = False) -> None:
        progressed = len(state.records) > self.steps and state.baseline is not None
        if self.failed or not (progressed or final):
            return
        try:
            self.mirror.sync()
            self.steps = len(state.records)
        except Exception as exc:  # a tracker's failure is not the run's
            self.failed = True
            detail = " ".join(str(exc).split())[:200]
            log.warning(
                "warning: MLflow tracking at %s failed (%s: %s); training goes on, and "
                "`skillopt export --format mlflow` logs what is missing",
                self.mirror.uri,
                type(exc).__name__,
                detail,
            )
