"""train.executor: ray, on one local Ray instance for the module (2 CPUs, no dashboard).

Rollouts run as Ray tasks and the driver stays the ledger's only writer: the ledger equals the
local executor's (event types, versions and payloads; the run's config differs in its
execution keys and the journal's call ids are run-scoped), a worker killed mid-rollout is run
again with the ledger still equal, and a driver SIGKILLed and restarted pays no completed call
twice (counted on a loopback model server whose key reaches the workers through the runtime
environment only)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.conftest import (
    EXAMPLE,
    ROOT,
    SMALL,
    Cli,
    count_events,
    sets,
    skillopt_process,
    without_call_ids,
)
from tests.fakes import FakeProvider

EXECUTION_KEYS = ("executor", "workers")  # train.* keys that only say how the units run


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray instance for the module; its address, for drivers in other processes."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def ledger(db: Path) -> list[tuple[str, int, Any]]:
    """(type, version, payload) of every event, without what may differ by design."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, version, payload FROM events ORDER BY seq").fetchall()
    out = []
    for type_, version, payload in rows:
        data = without_call_ids(json.loads(payload))
        if type_ == "run.created":
            train = data["config"].get("train", {})
            data["config"]["train"] = {k: v for k, v in train.items() if k not in EXECUTION_KEYS}
            data["config"].pop("ray", None)
        out.append((type_, version, data))
    return out


def journal(db: Path) -> list[tuple[Any, ...]]:
    """The answered calls, as the journal keys them within a run."""
    with sqlite3.connect(db) as conn:
        return sorted(
            conn.execute(
                "SELECT step, stage, unit, call_index, request_hash, role, model, tokens_in, "
                "tokens_out FROM llm_calls WHERE status = 'ok'"
            ).fetchall()
        )


def local_reference(cli: Cli, tmp_path: Path, *args: str) -> Path:
    db = tmp_path / "local.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *args).code == 0
    res = cli("run", "--db", str(db))
    assert res.code == 0, res.err
    return db


def test_the_demo_on_ray_records_the_local_ledger(cluster: str, cli: Cli, tmp_path: Path) -> None:
    reference = local_reference(cli, tmp_path)
    db = tmp_path / "ray.db"
    on_ray = sets("train.executor=ray", "ray.num_cpus_per_rollout=0.5")
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *on_ray).code == 0
    res = cli("run", "--db", str(db))
    assert res.code == 0, res.err
    assert ledger(db) == ledger(reference)
    assert journal(db) == journal(reference)  # every call of the workers journaled, once
    assert len(ledger(db)) > 300


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def busy_workers() -> list[int]:
    """Workers of this module's Ray instance (descendants of this process) running a unit: Ray
    titles a worker by the task it runs."""
    out, todo = [], _children(os.getpid())
    while todo:
        pid = todo.pop()
        todo += _children(pid)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::run_unit"):
            out.append(pid)
    return out


SLOW_TARGET = sets("models.target.options.latency_ms=40", "train.workers=2")


def test_a_worker_killed_mid_rollout_runs_again_and_the_ledger_is_equal(
    cluster: str, cli: Cli, tmp_path: Path
) -> None:
    reference = local_reference(cli, tmp_path, *SMALL, *SLOW_TARGET)
    db = tmp_path / "ray.db"
    on_ray = sets("train.executor=ray", f"ray.address={cluster}", "ray.max_retries=2")
    args = ("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SMALL, *SLOW_TARGET, *on_ray)
    assert cli(*args).code == 0
    driver = skillopt_process("run", "--db", str(db), "--run", "r")
    killed = None
    deadline = time.monotonic() + 120
    try:
        while killed is None:  # a worker inside step 1's train rollout (after the baseline's 12)
            assert driver.poll() is None, driver.stderr.read()
            assert time.monotonic() < deadline, "no busy worker seen"
            if count_events(db, "rollout.scored") >= 14 and (busy := busy_workers()):
                killed = busy[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.005)
        _, err = driver.communicate(timeout=180)
    finally:
        driver.kill()
    assert driver.returncode == 0, err
    assert "times (its worker died; ray.max_retries 2)" in err  # the rerun is said
    assert ledger(db) == ledger(reference)
    assert journal(db) == journal(reference)


KEY_ENV = "SKILLOPT_RAY_TEST_KEY"


def answered(db: Path) -> Counter[str]:
    """The requests the journal holds committed answers for (model, system, messages)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT b.text FROM llm_calls c JOIN blobs b ON b.hash = c.request_blob "
            "WHERE c.status = 'ok'"
        ).fetchall()
    out: Counter[str] = Counter()
    for (text,) in rows:
        r = json.loads(text)
        out[json.dumps([r["model"], r["system"], r["messages"]])] += 1
    return out


def calls_ahead_of_events(db: Path) -> bool:
    """Whether a rollout stage is under way with a call answered and journaled whose unit is
    not recorded yet: the moment where a resume could pay a completed call twice."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            conn.execute("BEGIN")  # one snapshot for both counts
            calls = conn.execute(
                "SELECT count(*) FROM llm_calls WHERE status = 'ok' AND stage LIKE 'rollout:%'"
            ).fetchone()[0]
            scored = conn.execute(
                "SELECT count(*) FROM events WHERE type = 'rollout.scored'"
            ).fetchone()[0]
    except sqlite3.OperationalError:
        return False
    return scored >= 13 and calls > scored  # past the baseline, a unit's call ahead


def asked(body: dict[str, Any]) -> str:
    messages = body["messages"]
    rest = [[m["role"], m["content"]] for m in messages[1:]]
    return json.dumps([body["model"], messages[0]["content"], rest])


def test_a_driver_killed_and_restarted_pays_no_completed_call_twice(
    cluster: str, tmp_path: Path
) -> None:
    fake = FakeProvider({"train": 12, "selection": 12, "test": 12}, latency_s=0.03)
    roles = []
    for role in ("target", "optimizer"):
        roles += sets(
            f"models.{role}.backend=openai",
            f"models.{role}.model=m-{role}",
            f"models.{role}.base_url={fake.url}/v1",
            f"models.{role}.api_key_env={KEY_ENV}",
        )
    env = {**os.environ, KEY_ENV: "sk-ray-test", "PYTHONUNBUFFERED": "1"}

    def skillopt(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "skillopt", *args],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    try:
        config = [*SMALL, *roles, *sets("train.workers=3", "gradient.workers=2")]
        reference = tmp_path / "local.db"
        assert skillopt("init", str(EXAMPLE), "--db", str(reference), *config).wait() == 0
        assert skillopt("run", "--db", str(reference)).wait(timeout=300) == 0
        needed = Counter(asked(r.body) for r in fake.log)

        db = tmp_path / "ray.db"
        on_ray = sets("train.executor=ray", f"ray.address={cluster}")
        assert skillopt("init", str(EXAMPLE), "--db", str(db), *config, *on_ray).wait() == 0
        seen = started = len(fake.log)
        driver = skillopt("run", "--db", str(db))
        deadline = time.monotonic() + 120
        while not calls_ahead_of_events(db):
            assert driver.poll() is None, driver.stderr.read()
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.002)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        done = answered(db)
        assert sum(done.values()) > 0

        seen = len(fake.log)
        finish = skillopt("run", "--db", str(db))
        _, err = finish.communicate(timeout=300)
        assert finish.returncode == 0, err
        again = Counter(asked(r.body) for r in fake.log[seen:])
        # A request asked after the restart more often than the run still needed it (the
        # uninterrupted run's count minus the answers committed before the kill) was paid twice.
        repeated = sum(max(0, n - (needed[k] - done[k])) for k, n in again.items())
        assert repeated == 0
        assert ledger(db) == ledger(reference)
        # Target calls are made in the workers, whose processes this one started without the
        # key: it reached them through the task's runtime environment.
        assert KEY_ENV not in os.environ
        keys = {
            r.headers.get("authorization")
            for r in fake.log[started:]
            if r.body["model"] == "m-target"
        }
        assert keys == {"Bearer sk-ray-test"}
    finally:
        fake.close()


def test_without_ray_installed_the_executor_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    """`sys.modules["ray"] = None` makes the package unimportable, as when it is absent."""
    code = (
        "import sys; sys.modules['ray'] = None; sys.argv[0] = 'skillopt'; "
        "from skillopt.commands.entry import main; main()"
    )
    db = tmp_path / "runs.db"
    init = ["init", str(EXAMPLE), "--db", str(db), "--set", "train.executor=ray"]
    res = subprocess.run([sys.executable, "-c", code, *init], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert "skillopt[ray]" in res.stderr and "train.executor" in res.stderr
    assert not db.exists()


def test_a_cluster_that_does_not_answer_stops_the_run_in_one_line(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    init = ("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SMALL)
    assert cli(*init, *sets("train.executor=ray", "ray.address=127.0.0.1:9")).code == 0
    driver = skillopt_process("run", "--db", str(db))  # a process where Ray is not started yet
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 1
    assert err.strip().count("\n") == 0
    assert "ray.address 127.0.0.1:9: no Ray cluster answers there" in err
    assert count_events(db, "stage.failed") == 0  # not the stage's failure: a rerun resumes
    assert count_events(db, "dataset.loaded") == 1


def test_a_bench_on_ray_records_the_local_bench(cluster: str, cli: Cli, tmp_path: Path) -> None:
    """`bench closed-loop --executor ray`: each task run is a Ray task (the environments as
    the driver made them, the calls journaled through the driver); the same events and calls
    as the bench run here, in the plan's order."""
    from tests.test_bench import CLOSED_LOOP, FOUR, _sloppy_config, calls, tasks

    args = ["--config", str(CLOSED_LOOP), "--config", str(_sloppy_config(tmp_path)), *tasks(*FOUR)]
    here, there = tmp_path / "here.db", tmp_path / "ray.db"
    assert cli("bench", "closed-loop", "--db", str(here), *args).code == 0
    res = cli(
        "bench", "closed-loop", "--db", str(there), *args, "--executor", "ray", "--workers", "2"
    )
    assert res.code == 0, res.err
    assert ledger(here) == ledger(there)
    assert calls(here) == calls(there)
