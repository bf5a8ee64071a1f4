"""Run an untrusted program and capture what it printed, without letting it hurt us.

Every run gets:

- its own temporary working directory (also its `HOME` and `TMPDIR`), removed afterwards;
- resource limits set with `resource.setrlimit` before the exec: CPU seconds, address space,
  file size, open files, no core files, and a process count (RLIMIT_NPROC, counted relative to
  the processes the user already has; the kernel does not apply it to root, so as root a
  `pids` cgroup is used when one can be created);
- a wall-clock timeout, after which the whole process group is killed;
- stdin closed, stdout and stderr read incrementally and capped (a program that prints past
  the cap is killed), decoded as UTF-8 with replacement characters;
- an environment holding only PATH, a UTF-8 locale, HOME/TMPDIR (the working directory) and
  PYTHONHASHSEED=0: nothing of ours, no API keys, no tokens.

Where the kernel allows unprivileged user namespaces (probed once per process), the program
also runs in new user, mount, network and PID namespaces set up by a small helper: no
network (only a loopback device that is down), a fresh /proc that shows only the program's
own processes (so it cannot read our environment through /proc), the whole filesystem
re-mounted read-only except the working directory, which is a size-capped tmpfs. The helper
is PID 1 of the namespace: when the program ends or is killed, every process it left behind
dies with it. `isolation()` says which of these the machine supports; what is not isolated
is listed there and in the README: files readable by the user running skillopt are readable
by the program, and without namespaces it can write wherever that user can.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
SETUP_FAILED = 125  # the helper's exit code when it could not set the sandbox up

# The helper runs as `python -S -I -c HELPER work file ns ro disk_mb cgroup status_fd parent
# argv...`. It joins the cgroup, creates the
# namespaces, makes the filesystem read-only, forks the program and reports how it ended on
# the status pipe ("exit N" or "signal N"). It is kept to the standard library and ctypes.
HELPER = r"""
import ctypes, os, sys
work, file, ns, ro, disk_mb, cgroup, status_fd, parent = sys.argv[1:9]
argv, ns, ro, status_fd = sys.argv[9:], ns == "1", ro == "1", int(status_fd)
libc = ctypes.CDLL(None, use_errno=True)
def die_with(pid):
    # PR_SET_PDEATHSIG: if skillopt is killed, nothing of the program outlives it (Linux).
    if hasattr(libc, "prctl"):
        libc.prctl(1, 9, 0, 0, 0)
        if os.getppid() != pid:
            os._exit(125)
die_with(int(parent))
def die(what, err=0):
    os.write(2, ("skillopt-sandbox: %s failed (%s)\n" % (what, os.strerror(err) if err else "")).encode())
    os._exit(125)
def write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
if cgroup:
    try:
        write(os.path.join(cgroup, "cgroup.procs"), str(os.getpid()))
    except OSError as exc:
        die("joining the pids cgroup", exc.errno)
if ns:
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    libc.syscall.restype = ctypes.c_long
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(0x10000000 | 0x00020000 | 0x40000000 | 0x20000000) != 0:
        die("unshare", ctypes.get_errno())
    try:
        write("/proc/self/setgroups", "deny")
        write("/proc/self/uid_map", "0 %d 1" % uid)
        write("/proc/self/gid_map", "0 %d 1" % gid)
    except OSError as exc:
        die("mapping the user", exc.errno)
    init = os.fork()
    if init:
        _, status = os.waitpid(init, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    # PID 1 of the new namespace.
    die_with(0)  # its parent is outside the namespace: pid 0 from here
    def mount(src, target, fstype, flags, data, what):
        if libc.mount(src, target.encode(), fstype, flags, data) != 0:
            die(what, ctypes.get_errno())
    mount(None, "/", None, 16384 | 262144, None, "making mounts private")
    path = os.path.join(work, file)
    with open(path, "rb") as f:
        program = f.read()
    size = ("size=%sm,mode=0700" % disk_mb).encode()
    mount(b"tmpfs", work, b"tmpfs", 2 | 4, size, "mounting the work directory")
    with open(path, "wb") as f:
        f.write(program)
    mount(b"proc", "/proc", b"proc", 2 | 4 | 8, None, "mounting /proc")
    if ro:
        class Attr(ctypes.Structure):
            _fields_ = [(n, ctypes.c_uint64) for n in ("set", "clr", "prop", "userns")]
        for target, flags, attr in (("/", 0x8000, Attr(1, 0, 0, 0)), (work, 0, Attr(0, 1, 0, 0))):
            ok = libc.syscall(ctypes.c_long(442), ctypes.c_long(-100), target.encode(),
                              ctypes.c_long(flags), ctypes.byref(attr), ctypes.c_long(32))
            if ok != 0:
                die("making the filesystem read-only", ctypes.get_errno())
os.set_inheritable(status_fd, False)
me = os.getpid()
child = os.fork()
if child == 0:
    die_with(me)
    try:
        os.chdir(work)
        os.execv(argv[0], argv)
    except OSError as exc:
        os.write(2, ("cannot run %s: %s\n" % (argv[0], exc.strerror)).encode())
    os._exit(127)
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        os._exit(125)
    if pid == child:
        break
if os.WIFSIGNALED(status):
    report = "signal %d" % os.WTERMSIG(status)
else:
    report = "exit %d" % os.WEXITSTATUS(status)
os.write(status_fd, report.encode())
os._exit(0)
"""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock
    cpu_s: int = 5
    memory_mb: int = 512  # address space; 0 = no limit (V8, the JVM and Go need more)
    file_mb: int = 16  # largest file the program may write
    disk_mb: int = 64  # size of the working directory's tmpfs (with namespaces)
    max_procs: int = 32  # processes and threads the program may add
    max_output_bytes: int = 65536  # per stream; past it the program is killed
    open_files: int = 256


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int | None  # None when the program was killed by a signal or never started
    killed_by_signal: str  # "SIGKILL", "SIGXCPU", ... or ""
    timed_out: bool  # the wall-clock timeout fired
    cpu_exceeded: bool  # the CPU-seconds limit fired
    output_exceeded: bool  # stdout or stderr passed max_output_bytes (the program was killed)
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    binary_output: bool  # stdout was not UTF-8 text (or held NUL bytes)
    wall_time_s: float  # not deterministic: never score it
    setup_error: str = ""  # the sandbox itself could not start the program

    @property
    def ran_ok(self) -> bool:
        """Exited 0 on its own, within every limit, printing text."""
        return (
            self.exit_code == 0
            and not (self.timed_out or self.cpu_exceeded or self.output_exceeded)
            and not self.binary_output
            and not self.setup_error
        )

    def problem(self) -> tuple[str, str]:
        """(category, detail) of a run that did not end well; ("", "") otherwise. Categories:
        `timeout` (wall clock or CPU limit) and `runtime_error` (everything else)."""
        if self.setup_error:
            return "runtime_error", f"sandbox: {self.setup_error}"
        if self.timed_out:
            return "timeout", "wall-clock limit reached; the process group was killed"
        if self.cpu_exceeded:
            return "timeout", "CPU-time limit reached"
        if self.output_exceeded:
            return "runtime_error", "output limit exceeded; the process group was killed"
        if self.killed_by_signal:
            return "runtime_error", f"killed by {self.killed_by_signal}"
        if self.exit_code != 0:
            return "runtime_error", f"exit code {self.exit_code}"
        if self.binary_output:
            return "runtime_error", "printed binary data, not UTF-8 text"
        return "", ""


@dataclass(frozen=True)
class Isolation:
    """What this machine lets the sandbox do (probed once per process)."""

    namespaces: bool = False  # user + mount + network + PID namespaces
    read_only_fs: bool = False  # everything but the working directory is read-only
    process_limit: str = "rlimit"  # "rlimit", "cgroup" (as root) or "none"
    notes: tuple[str, ...] = field(default_factory=tuple)
    cgroup_base: str | None = None  # where per-run pids cgroups are made (as root)

    def describe(self) -> dict[str, Any]:
        return {
            "network": "none (own network namespace)" if self.namespaces else "NOT isolated",
            "processes": (
                "own PID namespace and /proc" if self.namespaces else "visible (shared /proc)"
            ),
            "filesystem_writes": (
                "only the working directory (tmpfs)"
                if self.read_only_fs
                else "NOT isolated: wherever this user may write"
            ),
            "filesystem_reads": "NOT isolated: whatever this user may read",
            "process_limit": self.process_limit,
            "notes": list(self.notes),
        }


_probe_lock = threading.Lock()
_probed: Isolation | None = None
_cgroup_counter = itertools.count(1)


def isolation() -> Isolation:
    """Probe once which isolation layers work here, most complete first."""
    global _probed
    with _probe_lock:
        if _probed is None:
            _probed = _probe()
        return _probed


def _probe() -> Isolation:
    _remove_stale_workdirs()
    notes: list[str] = []
    cgroup_base = _pids_cgroup_base() if os.geteuid() == 0 else None
    if os.geteuid() == 0:
        if cgroup_base:
            limit = "cgroup"
        else:
            limit = "none"
            notes.append("running as root without a writable pids cgroup: no process limit")
    else:
        limit = "rlimit"
    probe = "import os\nprint('ok')\n"
    for ns, ro in ((True, True), (True, False)):
        trial = Isolation(ns, ro, limit, (), cgroup_base)
        result = _run(trial, Limits(timeout_s=20.0), [sys.executable], probe)
        if result.ran_ok and result.stdout.strip() == "ok":
            if not ro:
                notes.append("the kernel cannot make mounts read-only (mount_setattr)")
            return Isolation(ns, ro, limit, tuple(notes), cgroup_base)
        why = (result.setup_error or result.stderr).strip()[:200]
        notes.append(f"namespaces (read-only={ro}) unavailable: {why}")
    return Isolation(False, False, limit, tuple(notes), cgroup_base)


def _pids_cgroup_base() -> str | None:
    """A directory under which this process may create pids cgroups (cgroup v1 or v2)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        groups = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates: list[str] = []
    for line in mounts:
        parts = line.split()
        if len(parts) < 4:
            continue
        mountpoint, fstype, opts = parts[1], parts[2], parts[3].split(",")
        for entry in groups:
            hid, controllers, path = (entry.split(":", 2) + ["", ""])[:3]
            v1 = fstype == "cgroup" and "pids" in opts and "pids" in controllers.split(",")
            v2 = fstype == "cgroup2" and hid == "0" and controllers == ""
            if v1 or v2:
                candidates.append(mountpoint + path.rstrip("/"))
    for base in candidates:
        trial = Path(base) / f"skillopt-probe-{os.getpid()}"
        try:
            trial.mkdir()
        except OSError:
            continue
        usable = (trial / "pids.max").exists()
        _remove_cgroup(str(trial))
        if usable:
            _remove_stale_cgroups(base)
            return base
    return None


def _remove_stale_workdirs() -> None:
    """Working directories left by a skillopt that was killed mid-run (its pid is gone)."""
    if not os.path.isdir("/proc"):
        return
    for entry in Path(tempfile.gettempdir()).glob("skillopt-sandbox-*-*"):
        owner = entry.name.split("-")[2]
        with contextlib.suppress(OSError):
            mine = entry.stat().st_uid == os.getuid()
            if mine and owner.isdigit() and not Path(f"/proc/{owner}").exists():
                shutil.rmtree(entry, ignore_errors=True)


def _remove_stale_cgroups(base: str) -> None:
    """Cgroups left by a skillopt that was killed mid-run (its pid is gone)."""
    for entry in Path(base).glob("skillopt-*-*"):
        parts = entry.name.split("-")
        owner = parts[2] if len(parts) > 2 else ""
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _remove_cgroup(str(entry))


def _remove_cgroup(path: str) -> None:
    procs = Path(path) / "cgroup.procs"
    for _ in range(200):
        try:
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def _user_process_count() -> int:
    """Processes (threads count against RLIMIT_NPROC too, so count those) of this user."""
    uid = str(os.getuid())
    count = 0
    if not os.path.isdir("/proc"):  # not Linux: no way to count; the limit is then loose
        return 512
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                status = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = dict(
            line.split(":", 1) for line in status.splitlines() if ":" in line
        )  # Uid: real effective saved fs
        if fields.get("Uid", "").split()[:1] == [uid]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


class Sandbox:
    """`run(argv, program, filename)` writes the program into a fresh working directory and
    runs `argv` there (`{file}` in argv is replaced by the program's path)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    def run(self, argv: Sequence[str], program: str, filename: str = "main.py") -> SandboxResult:
        return _run(isolation(), self.limits, list(argv), program, filename)


def _run(
    iso: Isolation,
    limits: Limits,
    argv: list[str],
    program: str,
    filename: str = "main.py",
) -> SandboxResult:
    root = Path(tempfile.mkdtemp(prefix=f"skillopt-sandbox-{os.getpid()}-"))
    work = root / "work"
    work.mkdir(mode=0o700)
    (work / filename).write_text(program, "utf-8")
    path = str(work / filename)
    argv = [a.replace("{file}", path) for a in argv]
    if not any(path in a for a in argv):
        argv.append(path)
    cgroup = None
    if iso.cgroup_base:
        n = next(_cgroup_counter)  # atomic under the GIL
        cgroup = os.path.join(iso.cgroup_base, f"skillopt-sandbox-{os.getpid()}-{n}")
        try:
            os.mkdir(cgroup)
            Path(cgroup, "pids.max").write_text(str(limits.max_procs + 2))
        except OSError as exc:
            shutil.rmtree(root, ignore_errors=True)
            return _setup_failure(f"cannot create the pids cgroup: {exc}")
    status_r, status_w = os.pipe()
    spec = [str(work), filename, str(int(iso.namespaces)), str(int(iso.read_only_fs))]
    spec += [str(limits.disk_mb), cgroup or "", str(status_w), str(os.getpid()), *argv]
    env = {
        "PATH": SAFE_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(work),
        "TMPDIR": str(work),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    rlimits = _rlimits(limits)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-I", "-c", HELPER, *spec],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(status_w,),
            start_new_session=True,
            preexec_fn=_limiter(rlimits),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        os.close(status_r)
        os.close(status_w)
        if cgroup:
            _remove_cgroup(cgroup)
        shutil.rmtree(root, ignore_errors=True)
        return _setup_failure(f"cannot start: {exc}")
    os.close(status_w)
    try:
        captured = _collect(proc, status_r, limits, started)
    finally:
        os.close(status_r)
        _kill_group(proc.pid)
        cpu_used = 0.0
        if proc.returncode is None:  # not reaped yet (it is only by poll(), off Linux)
            _, wait_status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            cpu_used = usage.ru_utime + usage.ru_stime
        if cgroup:
            _remove_cgroup(cgroup)
        shutil.rmtree(root, ignore_errors=True)
    wall = time.monotonic() - started
    out, err, status, timed_out, flooded = captured
    exit_code: int | None = None
    sig = ""
    if status.startswith("exit "):
        exit_code = int(status.split()[1])
    elif status.startswith("signal "):
        sig = _signal_name(int(status.split()[1]))
    elif not (timed_out or flooded):
        # No report: the helper failed, or something killed it (a limit, the OOM killer).
        helper_code = proc.returncode
        if helper_code == SETUP_FAILED:
            message = _decode(err[0], str(work))[0].strip() or "setup failed"
            return _setup_failure(message, time.monotonic() - started)
        sig = _signal_name(-helper_code) if helper_code < 0 else ""
        exit_code = None if helper_code < 0 else helper_code
    cpu_exceeded = sig == "SIGXCPU" or (sig == "SIGKILL" and cpu_used >= limits.cpu_s * 0.95)
    stdout, binary = _decode(out[0], str(work), out[1])
    stderr, _ = _decode(err[0], str(work), err[1])
    return SandboxResult(
        exit_code=exit_code,
        killed_by_signal=sig,
        timed_out=timed_out,
        cpu_exceeded=cpu_exceeded and not timed_out,
        output_exceeded=flooded,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=out[1],
        stderr_truncated=err[1],
        binary_output=binary,
        wall_time_s=round(wall, 3),
    )


def _setup_failure(message: str, wall: float = 0.0) -> SandboxResult:
    return SandboxResult(
        exit_code=None,
        killed_by_signal="",
        timed_out=False,
        cpu_exceeded=False,
        output_exceeded=False,
        stdout="",
        stderr="",
        stdout_truncated=False,
        stderr_truncated=False,
        binary_output=False,
        wall_time_s=round(wall, 3),
        setup_error=message,
    )


def _rlimits(limits: Limits) -> list[tuple[int, tuple[int, int]]]:
    """Computed in the parent: the function run between fork and exec only calls setrlimit."""
    out = [
        (resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1)),
        (resource.RLIMIT_FSIZE, (limits.file_mb * MIB, limits.file_mb * MIB)),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
    ]
    if limits.memory_mb:
        out.append((resource.RLIMIT_AS, (limits.memory_mb * MIB, limits.memory_mb * MIB)))
    if os.geteuid() != 0:
        # Counted per user (threads too): what the user has now, plus the program's share.
        nproc = _user_process_count() + limits.max_procs + 4
        out.append((resource.RLIMIT_NPROC, (nproc, nproc)))
    clamped = []
    for res, (soft, hard) in out:
        ceiling = resource.getrlimit(res)[1]  # an unprivileged process cannot raise it
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        clamped.append((res, (soft, hard)))
    return clamped


def _limiter(rlimits: list[tuple[int, tuple[int, int]]]) -> Any:
    def apply() -> None:
        for res, value in rlimits:
            resource.setrlimit(res, value)

    return apply


Captured = tuple[tuple[bytes, bool], tuple[bytes, bool], str, bool, bool]


def _collect(
    proc: subprocess.Popen[bytes], status_fd: int, limits: Limits, started: float
) -> Captured:
    """Read stdout, stderr and the status pipe until all close, the deadline passes or the
    output cap is hit. Returns ((stdout, truncated), (stderr, truncated), status, timed_out,
    flooded)."""
    assert proc.stdout is not None and proc.stderr is not None
    cap = limits.max_output_bytes
    streams = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    truncated = dict.fromkeys(streams, False)
    status = bytearray()
    sel = selectors.DefaultSelector()
    for fd in (*streams, status_fd):
        sel.register(fd, selectors.EVENT_READ)
    deadline = started + limits.timeout_s
    timed_out = flooded = exited = False
    try:
        while sel.get_map():
            now = time.monotonic()
            if exited and now > deadline:
                break  # something it started escaped the group and holds a pipe: stop reading
            remaining = deadline - now
            if remaining <= 0:
                timed_out = True
                break
            for key, _ in sel.select(min(remaining, 0.05)):
                fd = key.fd
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    continue
                if fd == status_fd:
                    status += chunk[:64]
                    continue
                buf = streams[fd]
                room = cap - len(buf)
                if len(chunk) > room:
                    buf += chunk[: max(room, 0)]
                    truncated[fd] = flooded = True
                else:
                    buf += chunk
            if flooded:
                break
            if not exited and _exited(proc):
                # Whatever it left behind may hold the pipes open: end it, and read what is
                # left for at most a second more.
                exited = True
                _kill_group(proc.pid)
                deadline = min(deadline, time.monotonic() + 1.0)
    finally:
        sel.close()
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    proc.stdout.close()
    proc.stderr.close()
    return (
        (bytes(streams[out_fd]), truncated[out_fd]),
        (bytes(streams[err_fd]), truncated[err_fd]),
        status.decode("ascii", "replace"),
        timed_out,
        flooded,
    )


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the helper ended, without reaping it (its pid stays ours until we wait)."""
    if not hasattr(os, "waitid"):  # not Linux
        return proc.poll() is not None
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _decode(data: bytes, work: str, truncated: bool = False) -> tuple[str, bool]:
    """Text with the working directory's path made relative (it differs on every run, and
    tracebacks name it), and whether the bytes were not UTF-8 text."""
    binary = b"\x00" in data
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=not truncated)
    except UnicodeDecodeError:
        binary = True
    for prefix in {work, os.path.realpath(work)}:
        data = data.replace(prefix.encode() + b"/", b"").replace(prefix.encode(), b".")
    text = data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return text, binary
