"""`skillopt compare`: runs of one ledger side by side."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from skillopt.commands.cli.common import DEFAULT_DB, DbOpt, JsonOpt, cli_errors, emit_json
from skillopt.commands.errors import InputError


@cli_errors
def compare(
    runs: Annotated[list[str], typer.Argument(metavar="RUN...", help="Two or more run names.")],
    db: DbOpt = DEFAULT_DB,
    json_: JsonOpt = False,
) -> None:
    """Compare training runs of one ledger (a fork and its origin, two seeds, two models):
    config differences, baseline/best/final and test scores, each step's verdict side by side,
    the edits one run accepted and another did not, calls, tokens and dollars per role."""
    from skillopt.commands.cli.common import open_ledger
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.compare import compare as compared
    from skillopt.machine.reports.compare import render_compare

    if len(runs) < 2:
        raise InputError("compare needs two or more runs (skillopt runs lists them)")
    ledger = open_ledger(db)
    states = []
    for ref in runs:
        row = ledger.find_run(ref, "train")
        if row.kind != "train":
            raise InputError(f"run {row.name} is a bench run; compare reads training runs")
        states.append((row.name, load_state(ledger, row.id)))
    result = compared(states)
    if json_:
        emit_json(result)
    else:
        sys.stdout.write(render_compare(result))
