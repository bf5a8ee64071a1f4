"""The `skillopt` command line. Exit codes: 0 ok, 1 a check or the run failed, 2 bad input.

The commands live by group: estimate.py, train.py (init, step, run, status, fork), inspect.py
(what reads a ledger), admin.py (verify, doctor, db), bench.py, serve.py (the dashboard); common.py holds what they share. This module
registers them, in the order `skillopt --help` lists them."""

from __future__ import annotations

from skillopt.commands.cli import admin, bench, compare, estimate, inspect, serve, train
from skillopt.commands.cli.common import app, bench_app, calls_app, db_app, skill_app

__all__ = ["app", "main"]

app.command()(estimate.estimate)
app.command()(train.init)
app.command()(train.step)
app.command(name="run")(train.run_cmd)
app.command()(train.status)
app.command()(inspect.events)
app.command()(inspect.replay)
app.command()(inspect.report)
app.command()(admin.verify)
app.command()(inspect.runs)
app.command()(inspect.why)
app.command()(compare.compare)
app.command()(inspect.blob)
app.command()(inspect.export)
app.command()(train.fork)
app.command()(admin.doctor)
app.command()(serve.serve)

app.add_typer(db_app, name="db")
db_app.command("refresh-status")(admin.db_refresh_status)
db_app.command("upgrade")(admin.db_upgrade)

app.add_typer(skill_app, name="skill")
skill_app.command("show")(inspect.skill_show)
skill_app.command("export")(inspect.skill_export)
skill_app.command("diff")(inspect.skill_diff)
skill_app.command("log")(inspect.skill_log)

app.add_typer(bench_app, name="bench")
bench_app.command("closed-loop")(bench.closed_loop)

app.add_typer(calls_app, name="calls")
calls_app.callback()(inspect.calls_list)  # `skillopt calls` itself lists the calls
calls_app.command("show")(inspect.calls_show)


def main() -> None:
    app()
