"""One signal policy for every command: SIGTERM (what `docker stop`, systemd and Kubernetes
send) mid-stage ends a run like Ctrl-C, with one line and exit 143, and the run resumes to the
uninterrupted ledger; SIGINT or SIGTERM at any moment of a command's first half second,
imports included, gives one line (exit 130 / 143) or a finished command, never a traceback."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, SMALL, Cli, event_rows, skillopt_process
from tests.test_faults_kill import FULL_FEATURED, SLOW, answered_calls, last_seq

KEPT = "every event recorded so far is kept; `skillopt run` continues"


def test_sigterm_mid_stage_ends_cleanly_and_resumes(cli: Cli, tmp_path: Path) -> None:
    config = [*FULL_FEATURED, *SLOW]
    reference = tmp_path / "reference.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *config).code == 0
    assert cli("run", "--db", str(reference)).code == 0
    expected = event_rows(reference)

    db = tmp_path / "terminated.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *config).code == 0
    proc = skillopt_process("run", "--db", str(db), "--run", "r")
    deadline = time.monotonic() + 90
    while last_seq(db) < len(expected) // 3:
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run never got that far"
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.strip().splitlines()) == (143, [f"terminated: {KEPT}"]), err
    assert cli("verify", "--db", str(db)).code == 0
    assert cli("replay", "--db", str(db), "--verify").code == 0
    assert cli("run", "--db", str(db)).code == 0
    assert event_rows(db) == expected
    assert answered_calls(db) == answered_calls(reference)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_an_early_signal_never_ends_in_a_traceback(
    cli: Cli, tmp_path: Path, sig: signal.Signals
) -> None:
    db = tmp_path / "early.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "e", *SMALL).code == 0
    code, line = (130, "interrupted") if sig == signal.SIGINT else (143, "terminated")
    rng = random.Random(7)
    outcomes = set()
    # from 30 ms: a signal while the interpreter itself starts (before any of our code, or
    # Python's own handler, runs) is Python's to report
    for delay in sorted(rng.uniform(0.03, 0.5) for _ in range(8)):
        proc = skillopt_process("run", "--db", str(db), "--run", "e", "--max-stages", "3")
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        lines = err.strip().splitlines()
        if proc.returncode == -sig:  # before the interpreter handles signals: no output at all
            assert (out, err) == ("", ""), err
        elif proc.returncode == 0:
            assert "Traceback" not in err
        else:
            assert (proc.returncode, lines) == (code, [f"{line}: {KEPT}"]), (delay, err)
        outcomes.add(proc.returncode)
        assert cli("verify", "--db", str(db)).code == 0
    assert code in outcomes  # the handled case was reached
    assert cli("run", "--db", str(db)).code == 0


def test_a_ledger_removed_mid_run_stops_the_run(cli: Cli, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "ledgers"
    folder.mkdir()
    db = folder / "gone.db"
    config = [*FULL_FEATURED, *SLOW]
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "g", *config).code == 0
    proc = skillopt_process("run", "--db", str(db), "--run", "g")
    deadline = time.monotonic() + 90
    while last_seq(db) < 20:
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the run never got that far"
        time.sleep(0.002)
    shutil.rmtree(folder)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(db) in lines[0] and "Traceback" not in err, err


def test_the_cli_module_takes_the_same_signal_policy(cli: Cli, tmp_path: Path) -> None:
    """`python -m skillopt.commands.cli` goes through the same entry point."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    db = tmp_path / "m.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SMALL, *SLOW).code == 0
    args = [sys.executable, "-m", "skillopt.commands.cli", "run", "--db", str(db)]
    proc = subprocess.Popen(
        args, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while last_seq(db) < 5:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.strip().splitlines()) == (143, [f"terminated: {KEPT}"]), err
