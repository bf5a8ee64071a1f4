"""A run on a Ray cluster of its own (`ray start --head`, joined through `ray.address`) whose
cluster is lost mid-run: the run stops with our one line (exit 1) within seconds, not Ray's
minute of retries and its own log lines; nothing is half-written (verify passes, no
stage.failed); with the cluster back, `skillopt run` resumes to the ledger a local run makes.

A module of its own: it starts and kills clusters as process groups, apart from the local
instance tests/test_ray.py keeps in the test process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, ROOT, SMALL, Cli, count_events, sets
from tests.test_ray import ledger

pytest.importorskip("ray")

RAY = Path(sys.executable).parent / "ray"
# Token authentication (Ray 2.59+) is the cluster operator's business: off on this test's
# private loopback cluster, on both sides.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Head:
    """`ray start --head --block` as a process group: killing the group loses the cluster."""

    def __init__(self, port: int, tmp: Path) -> None:
        self.port, self.tmp = port, tmp

    def start(self) -> None:
        args = [str(RAY), "start", "--head", "--block", f"--port={self.port}"]
        args += ["--num-cpus=2", "--node-ip-address=127.0.0.1", "--include-dashboard=false"]
        args += ["--disable-usage-stats", f"--temp-dir={self.tmp}"]
        self.proc = subprocess.Popen(
            args, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while not _answers(self.port):
            assert self.proc.poll() is None, "ray start --head ended"
            assert time.monotonic() < deadline, "the head never answered"
            time.sleep(0.5)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group may be gone already
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        while _answers(self.port):
            time.sleep(0.2)


@pytest.fixture
def head(tmp_path: Path) -> Iterator[Head]:
    folder = Path(f"/tmp/skr{os.getpid()}")  # short: Ray's socket paths have a length limit
    h = Head(_free_port(), folder)
    try:
        yield h
    finally:
        h.kill()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_a_lost_cluster_stops_the_run_in_one_line_and_it_resumes(
    cli: Cli, tmp_path: Path, head: Head
) -> None:
    slow = sets("models.target.options.latency_ms=150", "train.workers=2")
    reference = tmp_path / "local.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *SMALL, *slow).code == 0
    assert cli("run", "--db", str(reference)).code == 0

    head.start()
    db = tmp_path / "cluster.db"
    on_ray = sets("train.executor=ray", f"ray.address=127.0.0.1:{head.port}")
    assert (
        cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SMALL, *slow, *on_ray).code == 0
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "skillopt", "run", "--db", str(db), "--quiet"],
        cwd=ROOT, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while count_events(db, "rollout.scored") < 8:
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run never got going on the cluster"
        time.sleep(0.05)
    lost_at = time.monotonic()
    head.kill()
    _, err = proc.communicate(timeout=90)
    took = time.monotonic() - lost_at
    lines = err.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert lines[-1].startswith(f"failed: ray: lost the cluster at 127.0.0.1:{head.port}"), err
    assert "run again to resume" in lines[-1]
    assert took < 30, took  # ours, not Ray's own end a minute later
    assert cli("verify", "--db", str(db)).code == 0  # nothing half-written
    assert count_events(db, "stage.failed") == 0

    head.start()  # the cluster is back: the same command resumes
    res = subprocess.run(
        [sys.executable, "-m", "skillopt", "run", "--db", str(db), "--quiet"],
        cwd=ROOT, env=ENV, text=True, capture_output=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert ledger(db) == ledger(reference)
    assert cli("replay", "--db", str(db), "--verify").code == 0
