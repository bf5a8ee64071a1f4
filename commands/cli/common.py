"""What every command of the CLI shares: the typer apps, the option types, the error mapping
to exit codes, opening a ledger and a run, and printing (JSON, tables, a status view).

Heavy modules (SQLAlchemy, the core, rich) are imported inside the functions that need them:
`skillopt --help`, and `skillopt status` answered from a stored view, load none of them."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from skillopt.commands.errors import CheckFailed, InputError, RunFailed
from skillopt.ledger.errors import CorruptEvent, LedgerError, LedgerWriteError

F = TypeVar("F", bound=Callable[..., Any])

# The apps; commands/cli/__init__.py registers the commands on them.
app = typer.Typer(
    help=(
        "Train skill documents for frozen LLMs. Every stage of a run is an event in a ledger "
        "(SQLite by default): runs resume exactly after a crash, and reports replay from the "
        "ledger alone.\n\nStart with: skillopt init examples/sim.yaml --name demo; "
        "then skillopt run; then skillopt report --md.\n\n"
        "Exit codes: 0 ok; 1 a check failed or the run failed; 2 bad input (config, file, "
        "name, dataset, ledger)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Ledger maintenance.", no_args_is_help=True)
skill_app = typer.Typer(
    help="Skill versions of a run. REF: initial, best, current, final, step:N (current after "
    "step N), candidate:N (built at step N), or a hash prefix.",
    no_args_is_help=True,
)
bench_app = typer.Typer(
    help="Benchmarks: run tasks with the target model of one or more configs, no optimization; "
    "every attempt is recorded in the ledger as a run of kind bench.",
    no_args_is_help=True,
)
calls_app = typer.Typer(
    help="The LLM call journal: every model call, its tokens and cost.", invoke_without_command=True
)

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="SKILLOPT_DB",
        help="Ledger: a SQLite file path or an SQLAlchemy URL (env SKILLOPT_DB).",
    ),
]
RunOpt = Annotated[
    str | None, typer.Option("--run", help="Run name or id (default: the most recent run).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DEFAULT_DB = "skillopt.db"
_opened: list[Any] = []  # ledgers opened by the running command, closed when it ends


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]}


def one_line(message: str) -> str:
    """A message as one line: control characters (a newline in a tampered value, a name, a
    reply quoted in it) are shown escaped, so that nothing can add a line or move the cursor."""
    return message.translate(_CONTROL)


def cli_errors(fn: F) -> F:
    """Map our exceptions to one-line messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (InputError, LedgerError) as exc:
            sys.stderr.write(f"error: {one_line(str(exc))}\n")
            raise typer.Exit(2) from None
        except (CheckFailed, RunFailed, CorruptEvent, LedgerWriteError) as exc:
            sys.stderr.write(f"failed: {one_line(str(exc))}\n")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            sys.stderr.write(
                "interrupted: every event recorded so far is kept; `skillopt run` continues\n"
            )
            raise typer.Exit(130) from None
        except Exception as exc:
            if not type(exc).__module__.startswith("sqlalchemy."):
                raise
            # A database that cannot be read as the schema says (bytes that are not text, a
            # damaged page): one line, never a traceback; verify says where.
            detail = " ".join(str(getattr(exc, "orig", exc)).split())[:200]
            sys.stderr.write(
                f"failed: the ledger could not be read ({detail}); `skillopt verify` checks it\n"
            )
            raise typer.Exit(1) from None
        finally:
            while _opened:
                _opened.pop().close()

    return wrapper  # type: ignore[return-value]


def open_ledger(db: str, create: bool = False) -> Any:
    """The ledger at `db`, closed when the command ends (cli_errors closes it)."""
    from skillopt.ledger.ledger import Ledger

    ledger = Ledger.open(db, create=create)
    _opened.append(ledger)
    if ledger.read_only_note is not None:  # a read-only open that cannot see everything
        sys.stderr.write(f"note: {ledger.read_only_note}\n")
    return ledger


def open_run(db: str, run: str | None, bench_ok: bool = False) -> tuple[Any, Any]:
    """The ledger and a run (default: the most recent training run). A bench run (`skillopt
    bench`) has no trainer state: only commands that read any run pass bench_ok."""
    ledger = open_ledger(db)
    row = ledger.find_run(run, None if bench_ok else "train")
    if row.kind == "bench" and not bench_ok:
        raise InputError(
            f"run {row.name} is a bench run, not a training run; its report: skillopt bench "
            f"closed-loop --name {row.name} (same options); its events: skillopt events"
        )
    return ledger, row


def json_text(value: Any) -> str:
    """The JSON every command prints and writes: indented, keys sorted, not ASCII-escaped."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def emit_json(value: Any) -> None:
    sys.stdout.write(json_text(value))


def table(header: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal, aligned plain text otherwise (pipes, files)."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        grid = Table(*header, box=None, pad_edge=False)
        for row in rows:
            grid.add_row(*row)
        Console(highlight=False).print(grid)
        return
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# The payload keys an event line shows, when the event has them.
EVENT_FACTS = (
    "step",
    "phase",
    "item_id",
    "minibatch_id",
    "action",
    "reason",
    "hard",
    "gate_score",
    "role",
)


def event_line(e: Any) -> str:
    """One line of a stored event: seq, type and the payload's key facts."""
    bits = [f"{k}={e.payload[k]}" for k in EVENT_FACTS if k in e.payload]
    return f"{e.seq:>6}  {e.type:<20} {' '.join(bits)}"


def print_status(view: dict[str, Any]) -> None:
    """A status view as `status`, `run` and `replay` print it."""

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.4f}"

    print(
        f"run {view['run']}: phase {view['phase']}, epoch {view['epoch']}, "
        f"step {view['step']}/{view['total_steps']}, {view['events']} events"
    )
    print(
        f"  current {f(view['current_score'])} ({view['current_skill_hash'][:12]})  "
        f"best {f(view['best_score'])} at step {view['best_step']} ({view['best_skill_hash'][:12]})"
    )
    for role, row in (view.get("by_role") or {}).items():
        cost = "" if row["cost"] is None else f", cost {row['cost']:.4f}"
        print(f"  {role}: {row['calls']} calls, {row['tokens']} tokens{cost}")
    if view.get("unusable"):
        counts = ", ".join(f"{stage} {n}" for stage, n in view["unusable"].items())
        print(f"  unusable optimizer replies (after a re-ask): {counts}")
    if view.get("last_failure"):
        lf = view["last_failure"]
        print(f"  last failure: stage {lf['stage']}: {lf['error_type']}: {lf['message']}")


def blob_refs(value: Any) -> list[str]:
    """Every hash an event payload refers to (keys ending in _hash)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.endswith("_hash") and isinstance(inner, str) and len(inner) == 64:
                found.append(inner)
            else:
                found += blob_refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found += blob_refs(inner)
    return found
