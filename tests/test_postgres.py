"""PostgreSQL as a team ledger: the same runs as on SQLite (events, hashes, reports), runs and
runners sharing one database, a killed runner resumed, migrations with data, and a URL's
password never printed nor stored.

They need a server: SKILLOPT_TEST_PG_URL, an SQLAlchemy URL of a user that may create
databases (`eval "$(bash scripts/postgres.sh)"` starts one and sets it). Each test creates
databases of its own and drops them after. Without it they skip, except in CI (CI=true),
where they fail: CI is never green without them (.ci/run starts the server)."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.conftest import EXAMPLE, SMALL, Cli, Result, skillopt_process
from tests.test_faults_kill import FULL_FEATURED, SLOW

URL_VAR = "SKILLOPT_TEST_PG_URL"
EVENTS = "SELECT run_id, seq, type, version, payload, prev_hash, hash FROM events"
ANSWERED = "SELECT run_id, call_key FROM llm_calls WHERE status = 'ok'"
FIXTURE = Path(__file__).parent / "fixtures" / "release-ab9f3be"


def _server_url() -> str:
    """The server's URL; skip without one, but fail in CI."""
    url = os.environ.get(URL_VAR, "")
    why = ""
    if not url:
        why = f'{URL_VAR} is not set (start a server: eval "$(bash scripts/postgres.sh)")'
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            why = "psycopg is not installed (pip install -e '.[test]')"
    if why:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the PostgreSQL tests: {why}", pytrace=False)
        pytest.skip(why)
    return url


@pytest.fixture
def pg() -> Iterator[Callable[[], str]]:
    """A maker of new, empty databases on the test server (their URLs), dropped after the test."""
    server = make_url(_server_url())
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    made: list[str] = []

    def new() -> str:
        name = f"skillopt_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return server.set(database=name).render_as_string(hide_password=False)

    try:
        yield new
    finally:
        with admin.connect() as conn:
            for name in made:  # FORCE: a runner a failed test left behind holds a connection
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def rows(db: str | Path, query: str) -> list[tuple[Any, ...]]:
    """A query's rows on either backend, sorted (text sorts alike whatever the collation)."""
    url = str(db) if "://" in str(db) else f"sqlite:///{db}"
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return sorted(tuple(r) for r in conn.execute(sa.text(query)))
    finally:
        engine.dispose()


def ok(cli: Cli, *args: str) -> Result:
    res = cli(*args)
    assert res.code == 0, res.out + res.err
    return res


def test_a_demo_run_on_postgresql_is_the_run_on_sqlite(cli: Cli, tmp_path: Path, pg: Any) -> None:
    url = pg()
    password = make_url(url).password
    reference = str(tmp_path / "reference.db")
    said: list[Result] = []
    for db in (reference, url):
        said.append(ok(cli, "init", str(EXAMPLE), "--db", db, "--name", "demo", *SMALL))
        said.append(ok(cli, "run", "--db", db))
    # Ids and hashes are content-derived: the same run, seq for seq, on either backend.
    events = rows(url, EVENTS)
    assert len(events) > 100 and events == rows(reference, EVENTS)
    assert rows(url, ANSWERED) == rows(reference, ANSWERED)
    said.append(replay := ok(cli, "replay", "--db", url, "--verify", "--json"))
    assert replay.json()["verified"] is True
    said.append(checked := ok(cli, "verify", "--db", url, "--json"))
    assert checked.json()["ok"] and checked.json()["runs"][0]["status_view"] == "ok"
    for args in (["report", "--md"], ["report", "--json"], ["status"]):
        said.append(on_pg := ok(cli, *args, "--db", url))
        assert on_pg.out == ok(cli, *args, "--db", reference).out, args
    said.append(listed := ok(cli, "runs", "--db", url, "--json"))
    facts = [{k: v for k, v in r.items() if k != "created_at"} for r in listed.json()]
    assert facts == [
        {k: v for k, v in r.items() if k != "created_at"}
        for r in ok(cli, "runs", "--db", reference, "--json").json()
    ]
    said.append(ok(cli, "status", "--db", url, "--fold"))
    said.append(ok(cli, "db", "upgrade", "--db", url))
    assert password, "the test server's URL has a password"
    assert not [r for r in said if password in r.out + r.err], "the URL's password was printed"
    assert said[2].out.count(":***@") == 2, said[2].out  # `init` names the ledger, masked
    # ... nor stored anywhere in the ledger
    tables = ("runs", "events", "blobs", "llm_calls", "timings", "status_views")
    assert not [t for t in tables if password in repr(rows(url, f"SELECT * FROM {t}"))]


def test_two_runs_and_two_runners_each_share_one_database(
    cli: Cli, tmp_path: Path, pg: Any
) -> None:
    """Runs share texts (blobs) but never a seq: a writer of one run is never stopped or
    failed by another run's writes; two writers of one run end as test_faults_concurrent's."""
    config = [*FULL_FEATURED, *SLOW]
    names = ("alpha", "beta")  # one config: the two runs write the same texts at the same time
    reference = str(tmp_path / "reference.db")
    for name in names:
        ok(cli, "init", str(EXAMPLE), "--db", reference, "--name", name, *config)
        ok(cli, "run", "--db", reference, "--run", name)
    expected = rows(reference, EVENTS)
    assert "stage.failed" not in {e[2] for e in expected}
    for runners in (1, 2):  # a runner per run (any conflict is false), then two per run
        url = pg()
        for name in names:
            ok(cli, "init", str(EXAMPLE), "--db", url, "--name", name, *config)
        procs = [
            (name, skillopt_process("run", "--db", url, "--run", name))
            for _ in range(runners)
            for name in names
        ]
        ended = [(name, p.wait(timeout=180), p.stderr.read()) for name, p in procs]  # type: ignore[union-attr]
        for name, code, err in ended:
            lines = err.strip().splitlines()
            assert not [x for x in lines if x.startswith(("Traceback", "error:"))], err
            if code == 0:
                assert not [x for x in lines if x.startswith("failed:")], (name, err)
                continue
            # The other runner of this run appended first: its last line says so; nothing lost.
            assert runners == 2 and code == 1, (name, runners, err)
            assert lines[-1].startswith("failed: run r"), err
            assert "another process" in lines[-1] and "run again to continue" in lines[-1], err
        for name in names:  # one runner of each run saw it through
            assert 0 in [code for n, code, _ in ended if n == name], ended
        assert rows(url, EVENTS) == expected  # so: no stage.failed either
        assert rows(url, ANSWERED) == rows(reference, ANSWERED)
        checked = ok(cli, "verify", "--db", url, "--json").json()
        assert [r["status_view"] for r in checked["runs"]] == ["ok", "ok"]


KILLS = 3
SEED = 20250115


def test_a_killed_runner_resumes_to_the_uninterrupted_ledger(
    cli: Cli, tmp_path: Path, pg: Any
) -> None:
    config = [*FULL_FEATURED, *SLOW]
    reference = str(tmp_path / "reference.db")
    ok(cli, "init", str(EXAMPLE), "--db", reference, "--name", "r", *config)
    ok(cli, "run", "--db", reference)
    expected = rows(reference, EVENTS)
    url = pg()
    ok(cli, "init", str(EXAMPLE), "--db", url, "--name", "r", *config)
    engine = sa.create_engine(url, poolclass=NullPool)

    def events() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())

    def kill_at(at_least: int, extra_s: float) -> int:
        proc = skillopt_process("run", "--db", url, "--run", "r")
        deadline = time.monotonic() + 90
        try:
            while events() < at_least:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"run ended before {at_least} events: {proc.stderr.read()}"
                    )  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "kill point never reached"
                time.sleep(0.005)
            time.sleep(extra_s)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        return events()

    try:
        # First the server ends the runner's connections (a restart, an administrator): the
        # run stops with one line naming the ledger (masked) and the cause, and goes on later.
        proc = skillopt_process("run", "--db", url, "--run", "r")
        while events() < 10:
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.005)
        with engine.connect() as conn:
            ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            ended += "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            assert conn.execute(sa.text(ended)).all()
        assert proc.wait(timeout=60) == 1
        last = proc.stderr.read().strip().splitlines()[-1]  # type: ignore[union-attr]
        assert last.startswith("failed: ledger postgresql+psycopg://") and ":***@" in last, last
        assert "lost its connection" in last and "`skillopt run` continues" in last, last
        assert str(make_url(url).password) not in last
        rng = random.Random(SEED)
        targets = sorted(rng.sample(range(events() + 10, len(expected) - 30), KILLS))
        landed = [kill_at(target, rng.uniform(0, 0.08)) for target in targets]
    finally:
        engine.dispose()
    assert landed[-1] < len(expected), "the last kill came after the run had finished"
    finish = skillopt_process("run", "--db", url, "--run", "r")
    assert finish.wait(timeout=120) == 0, finish.stderr.read()  # type: ignore[union-attr]
    assert rows(url, EVENTS) == expected
    assert rows(url, ANSWERED) == rows(reference, ANSWERED)  # none answered twice, none lost
    checked = ok(cli, "verify", "--db", url, "--json")
    assert checked.json()["runs"][0]["status_view"] == "ok"
    assert ok(cli, "status", "--db", url).out == ok(cli, "status", "--db", url, "--fold").out
    ok(cli, "replay", "--db", url, "--verify")


def test_a_ledger_of_the_previous_release_upgrades_on_postgresql(
    cli: Cli, tmp_path: Path, pg: Any
) -> None:
    """Migrations run on PostgreSQL, with data: the previous release's ledger (schema 0004),
    copied into a database of that schema, upgrades on open and replays to the same report."""
    from skillopt.ledger.ledger import Ledger

    old = tmp_path / "previous-release.db"
    with gzip.open(FIXTURE / "previous-release.db.gz") as src, old.open("wb") as out:
        shutil.copyfileobj(src, out)
    with sqlite3.connect(old) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    url = pg()
    engine = sa.create_engine(url)
    Ledger(engine, url).upgrade(revision)  # the old schema, step by step from 0001
    tables = sa.MetaData()
    tables.reflect(engine)
    with sqlite3.connect(old) as source, engine.begin() as conn:
        source.row_factory = sqlite3.Row
        for table in ("runs", "events", "blobs", "llm_calls", "timings", "status_views"):
            data = [dict(r) for r in source.execute(f"SELECT * FROM {table}")]
            if data:
                conn.execute(tables.tables[table].insert(), data)
    engine.dispose()

    checked = ok(cli, "verify", "--db", url, "--json").json()  # opening it upgrades it
    assert checked["ok"] and checked["schema"] != revision
    assert rows(url, "SELECT version_num FROM alembic_version") == [(checked["schema"],)]
    ok(cli, "replay", "--db", url, "--run", "plain", "--verify")
    report = ok(cli, "report", "--db", url, "--run", "plain", "--md").out
    assert report.splitlines() == (FIXTURE / "plain.md").read_text("utf-8").splitlines()
    ok(cli, "init", str(EXAMPLE), "--db", url, "--name", "new", *SMALL)  # and trains on
    ok(cli, "run", "--db", url, "--run", "new", "--max-stages", "5")


def test_a_url_password_is_never_printed(cli: Cli, pg: Any) -> None:
    server = make_url(pg())
    secret = f"S3cretPW{uuid.uuid4().hex[:8]}"
    bad = [
        server.set(password=secret),  # a wrong password
        server.set(database=f"nosuchdb_{uuid.uuid4().hex[:8]}"),  # the right one, no database
        server.set(password=secret, port=1),  # no server there
    ]
    urls = [u.render_as_string(hide_password=False) for u in bad]
    urls += [
        f"postgresql+psycopg://skillopt:{secret}@127.0.0.1:notaport/x",  # not a URL
        f"postgresql+nosuchdriver://skillopt:{secret}@127.0.0.1/x",  # no such driver
        f"postgresql+psycopg://skillopt@127.0.0.1:1/x?password={secret}",  # in the query
    ]
    commands = [["status"], ["runs"], ["verify"], ["run"], ["db", "upgrade"]]
    commands += [["init", str(EXAMPLE)]]
    for url in urls:
        password = secret if secret in url else str(server.password)
        for args in commands:
            res = cli(*args, "--db", url)
            lines = res.err.strip().splitlines()
            assert res.code in (1, 2) and len(lines) == 1, (args, url, res.err)
            assert lines[0].startswith(("error: ", "failed: ")), lines
            assert password not in res.out + res.err and "***" in res.err, (args, res.err)
    # a real process too: nothing but the line, no traceback
    proc = skillopt_process("status", "--db", urls[0])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and secret not in out + err and len(err.splitlines()) == 1, err
    assert err.startswith("error: cannot open ledger postgresql+psycopg://skillopt:***@"), err


def test_writers_storing_the_same_texts_and_calls_at_once_never_fail(pg: Any) -> None:
    """Two writers (an engine each, as two processes have) store the same texts and journal
    the same calls at the same moment, round after round: the shared, content-addressed rows
    are skipped when already there, failed attempts take the next free number."""
    import threading

    from skillopt.ledger.journal import Journal
    from skillopt.ledger.ledger import Ledger
    from skillopt.ledger.tables import CallRow
    from skillopt.machine.core.canonical import sha256_text

    url = pg()
    writers = [Ledger.open(url, create=True), Ledger.open(url, create=True)]
    with writers[0].writing() as conn:
        conn.execute(
            sa.text("INSERT INTO runs (id, name, created_at, config) VALUES ('r1', 'r', '', '{}')")
        )
    rounds, errors = 12, []
    start = threading.Barrier(len(writers))

    def write(ledger: Ledger) -> None:
        journal = Journal(ledger)
        try:
            for n in range(rounds):
                texts = [f"text {n}.{i}" for i in range(40)]
                call = CallRow(
                    id=f"c{n}", call_key=f"k{n}", run_id="r1", step=0, stage="s", unit="u",
                    call_index=0, request_hash=sha256_text(texts[0]), role="target", model="m",
                    status="failed", request_blob=sha256_text(texts[0]), recorded_at="",
                )  # fmt: skip
                start.wait(timeout=30)
                ledger.put_blobs(texts)
                journal.record(call.model_copy(), texts[:2])  # a failed attempt each
                answer = call.model_copy(
                    update={"status": "ok", "response_blob": call.request_blob}
                )
                journal.record(answer, texts[1:3])  # the same answer twice: one row
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{type(exc).__name__}: {exc}")
            start.abort()

    threads = [threading.Thread(target=write, args=(ledger,)) for ledger in writers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for ledger in writers:
            ledger.close()
    assert errors == []
    assert rows(url, "SELECT count(*) FROM blobs") == [(rounds * 40,)]
    calls = rows(url, "SELECT call_key, status, id FROM llm_calls")
    for n in range(rounds):  # an answer, and both failed attempts under ids of their own
        mine = [(status, id_) for key, status, id_ in calls if key == f"k{n}"]
        assert [s for s, _ in mine] == ["failed", "failed", "ok"], mine
        assert mine[2][1] == f"c{n}" and len({i for _, i in mine}) == 3, mine


@pytest.mark.parametrize(
    ("db", "shown", "secret"),
    [
        ("runs.db", "runs.db", None),
        ("sqlite:////data/a@b/runs.db", "sqlite:////data/a@b/runs.db", None),
        ("postgresql+psycopg://me:pw@h:5432/db", "postgresql+psycopg://me:***@h:5432/db", "pw"),
        ("postgresql://me:p@ss/w:rd@h/db", "postgresql://me:***@h/db", "p@ss/w:rd"),  # unescaped
        ("postgresql://me:p%40ss@h/db", "postgresql://me:***@h/db", "p@ss"),  # as the driver has it
        ("postgresql://me@h:5432/db", "postgresql://me@h:5432/db", None),
        ("postgresql://h:5432/db", "postgresql://h:5432/db", None),
        (
            "postgresql://h/db?user=me&password=pw&x=1",
            "postgresql://h/db?user=me&password=***&x=1",
            "pw",
        ),
    ],
)
def test_a_url_is_shown_without_its_password(db: str, shown: str, secret: str | None) -> None:
    """No server needed: how every message names a ledger, and a driver's text scrubbed."""
    from skillopt.ledger.urls import masked_url, scrub

    assert masked_url(db) == shown
    if secret is not None:
        scrubbed = scrub(f"failed: {db} said {secret!r}", db)
        assert secret not in scrubbed and "***" in scrubbed, scrubbed
    else:
        assert scrub(f"failed: {db}", db) == f"failed: {db}"
