"""skillopt: train skill documents for frozen LLMs, with an event-sourced ledger as the source
of truth.

The Python API (commands/api.py holds it; the CLI is a layer over the same functions):

    import skillopt

    run = skillopt.train("examples/sim.yaml", db="runs.db", overrides=["train.num_epochs=2"])
    run.status()["best_score"], run.skill("best"), run.report("md"), run.events("gate.decided")
    with skillopt.open("runs.db") as ledger:
        ledger.runs(), ledger.run("sim")

The repository root is this package: its folders (`machine`, `ledger`, `commands`, `adapters`,
`skills`, `migrations`) install as `skillopt.machine`, `skillopt.ledger`, ... Names load on
first use, so `import skillopt` (and the `skillopt` command) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skillopt.commands.api import Ledger, Run, RunInfo, open, train, version
    from skillopt.commands.errors import InputError, RunFailed
    from skillopt.ledger.errors import LedgerError

__all__ = [
    "InputError",
    "Ledger",
    "LedgerError",
    "Run",
    "RunFailed",
    "RunInfo",
    "open",
    "train",
    "version",
]
_WHERE = {
    "InputError": "skillopt.commands.errors",
    "RunFailed": "skillopt.commands.errors",
    "LedgerError": "skillopt.ledger.errors",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'skillopt' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(_WHERE.get(name, "skillopt.commands.api")), name)
