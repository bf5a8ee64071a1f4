"""`skillopt estimate`: what a run of a config will cost, before any run exists."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from skillopt.commands.cli.common import JsonOpt, cli_errors, emit_json


def _span(pair: list[Any], unit: str = "") -> str:
    lo, hi = pair
    if lo is None:
        return "– (no prices)"
    return f"{unit}{lo:,}" if lo == hi else f"{unit}{lo:,} - {unit}{hi:,}"


@cli_errors
def estimate(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="YAML config file.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: --set train.num_epochs=3 (repeatable)."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Predict a run's model calls, tokens and dollars per role and stage, from this config,
    this skill and this dataset (no run is created, no model is called). Prices come from
    `models.<role>.prices`, else from a built-in table of common Anthropic and OpenAI models.
    A range: the lower bound with early reject (when on) and prompt caching, the upper bound
    without either."""
    from skillopt.commands.api import measure_workload, prepare_run
    from skillopt.machine.config.schema import recorded_config
    from skillopt.machine.decisions.estimate import estimate as predict

    prepared = prepare_run(config_path, None, set_ or [])
    config = recorded_config(prepared.data)
    result = predict(config, measure_workload(config, prepared))
    result["warnings"] = prepared.warnings
    if json_:
        emit_json(result)
        return
    for line in prepared.warnings:
        sys.stderr.write(f"warning: {line}\n")
    sizes = result["sizes"]
    print(
        f"{config_path}: {sizes['train']} train, {sizes['selection']} selection, "
        f"{sizes['test']} test items; {result['steps']} steps"
    )
    for role, r in result["roles"].items():
        model = getattr(config.models, role)
        print(
            f"{role:<9} {model.backend} {model.model}: {_span(r['calls'])} calls, "
            f"{_span(r['input_tokens'])} input / {_span(r['output_tokens'])} output tokens, "
            f"{_span(r['usd'], '$')}"
        )
        for stage, calls in r["by_stage"].items():
            print(f"            {stage:<18} {_span(calls)}")
    print(f"total     {_span(result['usd'], '$') if result['usd'] else '– (no prices)'}")
    print("assumptions: " + "; ".join(result["assumptions"]))
