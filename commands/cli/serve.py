"""`skillopt serve`: the local, read-only web dashboard (commands/serve/)."""

from __future__ import annotations

import socket
import sys
from typing import Annotated, Any

import typer

from skillopt.commands.cli.common import DEFAULT_DB, DbOpt, cli_errors, open_ledger
from skillopt.commands.errors import InputError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WEB_STACK = ("starlette", "uvicorn", "jinja2")


def _web_stack() -> None:
    """The dashboard's packages are an extra: name it when one is missing."""
    import importlib

    for name in WEB_STACK:
        try:
            importlib.import_module(name)
        except ImportError:
            raise InputError(
                f"skillopt serve needs the web stack of the `serve` extra (no module {name!r}): "
                "pip install 'skillopt[serve]'"
            ) from None


def _open_read_only(db: str) -> Any:
    """The ledger, opened without writing. Opening an older ledger upgrades its schema (a
    write), so serve first reads the schema revision with a plain connection and refuses
    one that is not current, naming the command that upgrades it."""
    import sqlalchemy as sa

    from skillopt.ledger.database import Database, database_url, head_revision
    from skillopt.ledger.errors import LedgerError
    from skillopt.ledger.schema_files import head_of_files
    from skillopt.ledger.stored_status import sqlite_path
    from skillopt.ledger.urls import masked_url

    path = sqlite_path(db)
    if path is None or path.is_file():  # a missing file: open_ledger says so, creating none
        engine = sa.create_engine(database_url(db))
        try:
            revision = Database(engine, db).schema_revision()  # SELECTs only
        except (LedgerError, sa.exc.ArgumentError, ImportError):
            revision = None  # not a usable ledger or URL: open_ledger names the problem
        finally:
            engine.dispose()
        if revision is not None and revision != (head_of_files() or head_revision()):
            raise InputError(
                f"ledger {masked_url(db)} has an older schema ({revision}) and serve only "
                f"reads: upgrade it first with `skillopt db upgrade --db {masked_url(db)}`"
            )
    return open_ledger(db)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port or an unknown host is one line
    (and --port 0 picks a free port the printed URL names)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError, OverflowError) as exc:
        raise InputError(f"--host {host}: not an address to listen on ({exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise InputError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})"
        ) from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@cli_errors
def serve(
    db: DbOpt = DEFAULT_DB,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The default serves this machine only; 0.0.0.0 serves "
            "everyone who can reach it, without a login (a warning says so)."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")
    ] = 8765,
) -> None:
    """A live, read-only web dashboard over the ledger: the runs (kind, phase, progress, best
    score, spend); a run as it trains (progress refreshing as events land, the score chart,
    each step's verdict and rule, epoch boundaries, cost per stage); a skill version (text,
    diff against any other, its `why` chain down to minibatches, items and calls); the call
    journal (by role and stage, each prompt and reply).

    It only reads: open it beside a running `skillopt run`. Ctrl-C stops it. Needs the
    `serve` extra: pip install 'skillopt\\[serve]'."""  # \\[: not a rich markup tag
    import signal

    _web_stack()
    import uvicorn

    from skillopt.commands.serve.app import create_app
    from skillopt.ledger.urls import masked_url

    ledger = _open_read_only(db)
    sock = _listen(host, port)
    if host not in LOOPBACK:
        sys.stderr.write(
            f"warning: --host {host} serves this ledger (prompts, replies, skills) to every "
            "machine that can reach this one, without a login; the default 127.0.0.1 keeps it "
            "on this machine\n"
        )
    app = create_app(ledger, masked_url(db), host)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    def stop(signum: int, frame: Any) -> None:
        # Before uvicorn installs its own handlers (and again when it passes the signal on
        # as it ends): end the serving loop, which checks this flag, instead of raising.
        server.should_exit = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"serving {masked_url(db)} at {_url(sock)} (read-only; Ctrl-C stops)", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stderr.write("stopped serving\n")
