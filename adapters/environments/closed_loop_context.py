"""The documentation a closed-loop target reads after its skill: a list of modules
(`env.options.skill_modules`), as the seed bench gave its ilo programs five `ilo skill get`
modules.

Each module is looked for, in order:

1. with the command `env.options.skill_command` (e.g. `["ilo", "skill", "get", "{module}"]`):
   its standard output, when it exits 0 within FETCH_TIMEOUT_S and prints something;
2. in the directory `env.options.skill_dir`: the file `NAME.md`.

A module found by neither is missing. By default that is an error naming the module and what
was tried; with `env.options.missing_modules: warn` the module is left out and a warning says
so (the bench records it in `bench.started`). The seed put a placeholder text in its place,
which the model then read as documentation and nobody saw: never that.

The command is the user's own tool, run on the host (not in the sandbox) with the user's
environment, like the interpreter named by `env.options.command`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skillopt.adapters.protocol import AdapterError

FETCH_TIMEOUT_S = 10.0  # the seed's timeout for `ilo skill get`
MISSING_POLICIES = ("error", "warn")
OPENING = "---LANGUAGE DOCUMENTATION---"  # the seed's delimiters, so a module's own headings
CLOSING = "---END---"  # cannot be read as part of the skill


@dataclass(frozen=True)
class Module:
    name: str
    source: str  # "command", "dir" or "missing"
    text: str  # "" when missing
    tried: str  # what was tried, for a missing module's message

    def record(self) -> dict[str, Any]:
        """What the ledger keeps of it (the text itself is in every journaled request)."""
        digest = hashlib.sha256(self.text.encode()).hexdigest() if self.text else None
        return {"module": self.name, "source": self.source, "sha256": digest}


@dataclass(frozen=True)
class Context:
    modules: tuple[Module, ...] = ()

    @property
    def text(self) -> str:
        """The block appended to the system prompt; '' without modules."""
        found = [m.text.strip() for m in self.modules if m.source != "missing"]
        if not found:
            return ""
        return f"\n\n{OPENING}\n" + "\n\n".join(found) + f"\n{CLOSING}"

    @property
    def warnings(self) -> list[str]:
        return [
            f"env.options.skill_modules: module {m.name!r} not found ({m.tried}); "
            "the target runs without it"
            for m in self.modules
            if m.source == "missing"
        ]

    def record(self) -> dict[str, Any] | None:
        """The modules and the hash of the assembled block, or None without modules."""
        if not self.modules:
            return None
        return {
            "modules": [m.record() for m in self.modules],
            "sha256": hashlib.sha256(self.text.encode()).hexdigest(),
        }


def assemble(
    modules: Sequence[str], command: Sequence[str], directory: str, missing: str
) -> Context:
    """The context of `modules` (see the module docstring); AdapterError names the culprit."""
    if not modules:
        return Context()
    if missing not in MISSING_POLICIES:
        raise AdapterError(f"env.options.missing_modules: expected error or warn, got {missing!r}")
    if not command and not directory:
        raise AdapterError(
            "env.options.skill_modules: say where modules come from: skill_command (e.g. "
            '["ilo", "skill", "get", "{module}"]) and/or skill_dir'
        )
    if command and not any("{module}" in part for part in command):
        raise AdapterError(
            f"env.options.skill_command: no {{module}} placeholder in {list(command)!r}"
        )
    out = []
    for name in modules:
        if not isinstance(name, str) or not name.strip() or "/" in name or name.startswith("."):
            raise AdapterError(f"env.options.skill_modules: not a module name: {name!r}")
        module = _fetch(name, command, directory)
        if module.source == "missing" and missing == "error":
            raise AdapterError(
                f"env.options.skill_modules: module {name!r} not found ({module.tried}); "
                "set env.options.missing_modules: warn to run without it"
            )
        out.append(module)
    return Context(tuple(out))


def _fetch(name: str, command: Sequence[str], directory: str) -> Module:
    tried = []
    if command:
        argv = [part.replace("{module}", name) for part in command]
        text, why = _run(argv)
        if text:
            return Module(name, "command", text, "")
        tried.append(f"`{' '.join(argv)}` {why}")
    if directory:
        path = Path(directory) / f"{name}.md"
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            tried.append(f"no {path}")
        except (OSError, UnicodeDecodeError) as exc:
            tried.append(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})")
        else:
            if text.strip():
                return Module(name, "dir", text, "")
            tried.append(f"{path} is empty")
    return Module(name, "missing", "", "; ".join(tried))


def _run(argv: list[str]) -> tuple[str, str]:
    """(standard output, '') when the command printed a module, else ('', why not)."""
    found = shutil.which(argv[0])
    if found is None:
        return "", "not run: not found on PATH"
    try:
        done = subprocess.run(
            [found, *argv[1:]],
            capture_output=True,
            timeout=FETCH_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "", f"timed out after {FETCH_TIMEOUT_S:g}s"
    except OSError as exc:
        return "", f"could not run ({exc.strerror or exc})"
    stdout = done.stdout.decode("utf-8", errors="replace")
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        return "", f"exited {done.returncode}" + (f": {lines[-1][:160]}" if lines else "")
    if not stdout.strip():
        return "", "printed nothing"
    return stdout, ""
