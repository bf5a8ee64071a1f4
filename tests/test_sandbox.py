"""The sandbox against hostile programs: each ends as a result with a reason, never as a crash
or a hang of ours. Every test runs where the machine gives namespaces and where it does not
(the `plain` variant forces the fallback), and says which guarantees hold in each."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from skillopt.adapters.environments import sandbox
from skillopt.adapters.environments.sandbox import Isolation, Limits, Sandbox, SandboxResult

PY = [sys.executable, "{file}"]
ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-ant-api03-THIS-IS-A-FAKE-KEY-0123456789"


@pytest.fixture(params=["probed", "plain"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Isolation]:
    """The isolation this machine gives, and the fallback without namespaces."""
    iso = sandbox.isolation()
    if request.param == "plain":
        iso = replace(iso, namespaces=False, read_only_fs=False)
        monkeypatch.setattr(sandbox, "_probed", iso)
    yield iso


def run(program: str, **limits: object) -> SandboxResult:
    result = Sandbox(Limits(**limits)).run(PY, program)  # type: ignore[arg-type]
    assert isinstance(result, SandboxResult)
    return result


def test_a_plain_program_runs(mode: Isolation) -> None:
    result = run("print('hello')\nprint('wörld')\n")
    assert result.ran_ok, result
    assert result.stdout == "hello\nwörld\n"
    assert result.problem() == ("", "")


def test_infinite_loop_is_stopped_by_the_cpu_limit(mode: Isolation) -> None:
    result = run("while True:\n    pass\n", cpu_s=1, timeout_s=60)
    assert result.cpu_exceeded or result.timed_out
    assert not result.ran_ok
    assert result.problem()[0] == "timeout"


def test_sleeping_forever_is_stopped_by_the_wall_clock(mode: Isolation) -> None:
    result = run("import time\ntime.sleep(600)\n", timeout_s=1.0)
    assert result.timed_out and result.exit_code is None
    assert result.problem() == (
        "timeout",
        "wall-clock limit reached; the process group was killed",
    )


def test_memory_bomb_fails(mode: Isolation) -> None:
    bomb = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 2**20))\n"
    result = run(bomb, memory_mb=256, timeout_s=60)
    assert not result.ran_ok
    assert result.problem()[0] == "runtime_error"
    assert "MemoryError" in result.stderr or result.killed_by_signal


def _alive(marker: str) -> list[int]:
    """Processes running the program file named `marker` (`python <dir>/<marker>`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 1 and argv[1].endswith(marker.encode()):
                pids.append(int(entry.name))
    return pids


def test_fork_bomb_is_contained_and_leaves_nothing_behind(mode: Isolation) -> None:
    # At most 2**8 processes even where no process limit holds (root without a pids cgroup),
    # so the test cannot hurt the machine; the limit (8 here) is far below that.
    bomb = (
        "import os, sys, time\n"
        "refused = 0\n"
        "for _ in range(8):\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        refused += 1\n"
        "if refused:\n"
        "    print('fork refused', file=sys.stderr, flush=True)\n"
        "time.sleep(600)\n"
    )
    marker = f"bomb_{uuid.uuid4().hex}.py"
    result = Sandbox(Limits(timeout_s=1.5, max_procs=8)).run(PY, bomb, filename=marker)
    assert result.timed_out
    assert result.problem()[0] == "timeout"
    if mode.process_limit != "none":
        assert "fork refused" in result.stderr
    survivors = _alive(marker)
    for _ in range(100):  # killed processes may take a moment to be gone from /proc
        if not survivors:
            break
        time.sleep(0.05)
        survivors = _alive(marker)
    assert survivors == []


def test_huge_output_is_capped_and_killed(mode: Isolation) -> None:
    result = run("while True:\n    print('x' * 1000)\n", max_output_bytes=10_000)
    assert result.output_exceeded and result.stdout_truncated
    assert len(result.stdout.encode()) <= 10_000
    assert result.problem() == (
        "runtime_error",
        "output limit exceeded; the process group was killed",
    )


def test_huge_stderr_is_capped_too(mode: Isolation) -> None:
    result = run(
        "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)\n", max_output_bytes=5_000
    )
    assert result.output_exceeded and result.stderr_truncated and not result.stdout_truncated
    assert len(result.stderr) <= 5_000


def test_binary_output_fails_as_text(mode: Isolation) -> None:
    result = run("import sys\nsys.stdout.buffer.write(bytes(range(256)) * 4)\n")
    assert result.exit_code == 0 and result.binary_output
    assert "\ufffd" in result.stdout and "\x00" not in result.stdout
    assert result.problem() == ("runtime_error", "printed binary data, not UTF-8 text")


def test_writing_outside_its_directory(mode: Isolation, tmp_path: Path) -> None:
    """The parent of its working directory, and an absolute path elsewhere (standing for the
    user's home or the project): refused with a read-only filesystem, where namespaces work;
    without them the write succeeds, as the README says, and the run is still just a result."""
    outside = tmp_path / "outside.txt"
    program = (
        "import os\n"
        "open(os.path.expanduser('~/mine.txt'), 'w').write('home is the work dir')\n"
        "for target in ('../escape.txt', %r):\n"
        "    try:\n"
        "        open(target, 'w').write('escaped')\n"
        "        print(target, 'written')\n"
        "    except OSError as exc:\n"
        "        print(target, 'refused', exc.strerror)\n"
        "print(open('mine.txt').read())\n".replace("%r", repr(str(outside)))
    )
    result = run(program)
    assert result.ran_ok, result
    assert result.stdout.splitlines()[-1] == "home is the work dir"
    if mode.read_only_fs:
        assert "../escape.txt refused Read-only file system" in result.stdout
        assert not outside.exists()
    else:
        assert outside.read_text() == "escaped"  # not isolated without namespaces (README)


def test_writing_outside_then_crashing_is_a_failed_result(mode: Isolation, tmp_path: Path) -> None:
    outside = tmp_path / "clobber.txt"
    result = run(f"open({str(outside)!r}, 'w').write('x')\nraise SystemExit(3)\n")
    assert result.exit_code == 3 if not mode.read_only_fs else result.exit_code == 1
    assert result.problem()[0] == "runtime_error"


def test_environment_holds_no_secrets(mode: Isolation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    program = (
        "import os\n"
        "for key in sorted(os.environ):\n"
        "    print(key, os.environ[key])\n"
        "paths = ['/proc/self/environ']\n"
        "if %r:\n"
        "    paths = [f'/proc/{p}/environ' for p in os.listdir('/proc') if p.isdigit()]\n"
        "for path in paths:\n"
        "    try:\n"
        "        print(path, open(path, 'rb').read().replace(b'\\0', b' ').decode())\n"
        "    except OSError as exc:\n"
        "        print(path, exc.strerror)\n".replace("%r", repr(mode.namespaces))
    )
    result = run(program)
    assert result.ran_ok, result
    assert SECRET not in result.stdout + result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines() if not line.startswith("/")]
    assert names == [
        "HOME",
        "LANG",
        "LC_ALL",
        "PATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "TMPDIR",
    ]
    if mode.namespaces:
        # Its own PID namespace: it sees only its own processes, never ours.
        pids = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("/")]
        assert f"/proc/{os.getpid()}/environ" not in pids
        assert len(pids) <= 3


def test_no_network_with_namespaces(mode: Isolation) -> None:
    if not mode.namespaces:
        pytest.skip("without namespaces the network is not isolated (README)")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        program = (
            "import socket\n"
            "try:\n"
            "    socket.create_connection(('127.0.0.1', %d), timeout=5)\n"
            "    print('connected')\n"
            "except OSError as exc:\n"
            "    print('blocked', exc.strerror)\n".replace("%d", str(port))
        )
        result = run(program)
    assert result.ran_ok, result
    assert result.stdout.startswith("blocked")


def test_stdin_is_closed(mode: Isolation) -> None:
    result = run("print(input())\n")
    assert result.exit_code == 1 and "EOFError" in result.stderr
    assert result.problem() == ("runtime_error", "exit code 1")


def test_processes_left_behind_do_not_hold_us(mode: Isolation) -> None:
    program = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    if %r:\n"
        "        os.setsid()  # escapes the process group; the PID namespace still ends it\n"
        "    time.sleep(600)\n"
        "    sys.exit(0)\n"
        "print('done')\n".replace("%r", repr(mode.namespaces))
    )
    result = run(program, timeout_s=60)
    assert result.ran_ok, result
    assert result.stdout == "done\n"


def test_missing_interpreter_is_a_failed_result(mode: Isolation) -> None:
    result = Sandbox(Limits()).run(["/nonexistent/interpreter", "{file}"], "print(1)")
    assert result.exit_code == 127
    assert "cannot run /nonexistent/interpreter" in result.stderr
    assert result.problem() == ("runtime_error", "exit code 127")


def test_output_names_no_temporary_path_so_reruns_are_identical(mode: Isolation) -> None:
    program = "import os\nprint(os.getcwd())\nraise ValueError('boom')\n"
    first, second = run(program), run(program)
    assert (first.stdout, first.stderr) == (second.stdout, second.stderr)
    assert first.stdout == ".\n"
    assert 'File "main.py", line 3' in first.stderr
    assert "skillopt-sandbox-" not in first.stdout + first.stderr


def test_isolation_is_described() -> None:
    iso = sandbox.isolation()
    described = iso.describe()
    assert set(described) == {
        "network",
        "processes",
        "filesystem_writes",
        "filesystem_reads",
        "process_limit",
        "notes",
    }
    assert described["filesystem_reads"].startswith("NOT isolated")
    if os.geteuid() != 0:
        assert iso.process_limit == "rlimit"


def test_killing_skillopt_mid_run_leaves_no_program_behind(mode: Isolation) -> None:
    marker = f"orphan_{uuid.uuid4().hex}.py"
    code = (
        "import sys\n"
        "from skillopt.adapters.environments.sandbox import Limits, Sandbox\n"
        f"Sandbox(Limits(timeout_s=600)).run([sys.executable, '{{file}}'], "
        f"'import time\\ntime.sleep(600)\\n', filename={marker!r})\n"
    )
    if not mode.namespaces:
        code = (
            "import skillopt.adapters.environments.sandbox as s, dataclasses\n"
            + (
                "s._probed = dataclasses.replace(s.isolation(), namespaces=False, read_only_fs=False)\n"
            )
            + code
        )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        for _ in range(400):  # until the program runs (bounded: a failure, not a hang)
            if _alive(marker) or parent.poll() is not None:
                break
            time.sleep(0.05)
        assert _alive(marker), "the sandboxed program never started"
    finally:
        parent.kill()
        parent.wait()
    for _ in range(200):
        if not _alive(marker):
            break
        time.sleep(0.05)
    assert _alive(marker) == []
