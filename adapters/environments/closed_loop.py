"""`closed_loop`: code tasks. The target writes a program, it runs in a sandbox, its output is
compared with the expected output, and a program that does not work is repaired with the
error (or the wrong output) in view, up to `retry_cap` attempts.

Items: `{id, description, expected_output, task_type?, language?, solution?}` (`task_type`
defaults to the language: the seed bench's tasks have none). The target gets as its system
prompt the skill, then the documentation modules of `skill_modules` (closed_loop_context.py),
then the language's instructions (closed_loop_prompts.py), and the task as its message, and
must answer with one complete program (a fenced code block is extracted when present). `solution` is optional reference code used
only by the offline model (Python that assigns `result`; see HOUSE_RULES).

Outcome of an attempt:

- `failed`: no program, a non-zero exit, a timeout (wall clock or CPU), a kill (memory, output
  flood), or output that is not UTF-8 text;
- `partial`: it ran and exited 0 but its output differs;
- `working`: its stripped output equals the stripped expected output, where a literal `\\n`
  in `expected_output` stands for a newline (as in the seed benchmark).

Scores of a rollout with retry cap C:

- hard = 1 if some attempt within the cap is working, else 0;
- soft = 0.5 + 0.5 * (C - k + 1) / C when attempt k is the first working one (1.0 on the
  first attempt, decreasing by 0.5 / C per repair, always above 0.5);
  otherwise 0.1 + 0.3 * r when some attempt ran (partial), r being the best
  difflib similarity ratio between an attempt's stripped output and the expected output
  (so in [0.1, 0.4]); otherwise 0.

`fail_reason` is the last attempt's: `timeout: ...`, `runtime_error: ...`, `wrong_output: ...`
or `no_program: ...`, so failure patterns group by their prefix.

The shipped task set (skills/closed_loop/tasks) has six task types, each with a house rule
for how results are printed that the initial skill does not state. `hints` give the offline
target (purpose "rollout") the program it writes under each stated rule and without one;
`feedback` gives the offline optimizer the same keys as `sim` (expected, got, rule,
rule_pattern, decoy, decoy_pattern) plus a per-attempt record (`attempts`) with tokens and
outcomes for a benchmark. Wall-clock times stay out of the result: they live only in
`solve()`'s Episode.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shutil
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from skillopt.adapters.environments import closed_loop_context, closed_loop_prompts
from skillopt.adapters.environments.sandbox import Limits, Sandbox, SandboxResult
from skillopt.adapters.environments.splits import SPLITS, SplitData, read_source, read_split_dir
from skillopt.adapters.protocol import (
    AdapterError,
    ChatModel,
    ChatRequest,
    DataSource,
    Item,
    Message,
    RolloutResult,
    Split,
    check_options,
)

DEFAULTS: dict[str, Any] = {
    "retry_cap": 5,  # attempts per task, the first included (the seed's default)
    "timeout_s": 10.0,
    "cpu_s": 5,
    "memory_mb": 512,
    "file_mb": 16,
    "disk_mb": 64,
    "max_procs": 32,
    "max_output_bytes": 65536,
    "excerpt_chars": 1000,  # error / output shown in a repair prompt
    "language": "python",
    "command": [],  # empty: the Python running skillopt; else e.g. ["node", "{file}"]
    "extension": ".py",
    "show_expected": False,  # the seed showed the expected output in the task prompt
    "rerun_identical": False,  # run a program again even if the same text already ran
    "task_types": "",  # comma-separated filter; empty = all
    "max_tokens": 2048,
    # What the target is told to write: a preset (closed_loop_prompts.PRESETS; "" = the one
    # named like the language, else "fenced") or your own text instead.
    "instructions": "",
    "instructions_text": "",
    # Documentation modules read after the skill (closed_loop_context.py).
    "skill_modules": [],
    "skill_command": [],  # e.g. ["ilo", "skill", "get", "{module}"]
    "skill_dir": "",  # NAME.md files; the bench reads it relative to the config file
    "missing_modules": "error",  # or "warn": left out, with a recorded warning
}
REQUIRED = ("id", "description", "expected_output")
SHIPPED = "shipped:skills/closed_loop/tasks"
NEVER = r"(?!)"  # a pattern that matches nothing
EXCERPT = 400  # stdout / stderr shown per attempt in the trajectory
CACHE_SIZE = 4096


@dataclass(frozen=True)
class Variant:
    text: str  # the rule as a skill would state it
    pattern: str  # how the offline target recognises it in a skill
    printer: str  # Python that prints `result`


@dataclass(frozen=True)
class HouseRule:
    rule: Variant
    decoy: Variant
    naive: str  # what a program prints when the skill says nothing


HOUSE_RULES: dict[str, HouseRule] = {
    "arithmetic": HouseRule(
        Variant(
            "Print the result of a calculation with exactly two decimals (e.g. 3.50), even "
            "when it is a whole number.",
            r"exactly two decimals",
            'print(f"{result:.2f}")',
        ),
        Variant(
            "Print the result of a calculation rounded to a whole number (e.g. 4).",
            r"rounded to a whole number",
            "print(round(result))",
        ),
        "print(result)",
    ),
    "string": HouseRule(
        Variant(
            'Print a text result wrapped in double quotes (e.g. "abc").',
            r"wrapped in double quotes",
            "print(f'\"{result}\"')",
        ),
        Variant(
            "Print a text result in upper case (e.g. ABC).",
            r"text result in upper case",
            "print(result.upper())",
        ),
        "print(result)",
    ),
    "data_structures": HouseRule(
        Variant(
            "Print a list as its items separated by a comma and a space, without brackets "
            "or quotes (e.g. apple, fig, pear).",
            r"without brackets",
            'print(", ".join(str(x) for x in result))',
        ),
        Variant(
            "Print a list with one item per line.",
            r"one item per line",
            'print("\\n".join(str(x) for x in result))',
        ),
        "print(result)",
    ),
    "parsing": HouseRule(
        Variant(
            "Print a mapping as key=value pairs joined by semicolons, keys in alphabetical "
            "order (e.g. a=1;b=2).",
            r"key=value pairs",
            'print(";".join(f"{k}={v}" for k, v in sorted(result.items())))',
        ),
        Variant(
            "Print a mapping as a JSON object with sorted keys.",
            r"as a JSON object",
            "import json\nprint(json.dumps(result, sort_keys=True))",
        ),
        "print(result)",
    ),
    "algorithms": HouseRule(
        Variant(
            "Print a yes/no answer as a lowercase boolean: true or false.",
            r"lowercase boolean",
            "print(str(result).lower())",
        ),
        Variant(
            "Print a yes/no answer as 1 (yes) or 0 (no).",
            r"1 \(yes\)",
            "print(int(result))",
        ),
        "print(result)",
    ),
    "formatting": HouseRule(
        Variant(
            "Print a percentage with one decimal and a % sign (e.g. 42.5%).",
            r"one decimal and a % sign",
            'print(f"{result:.1f}%")',
        ),
        Variant(
            "Print a percentage as a fraction of 1 with three decimals (e.g. 0.425).",
            r"fraction of 1",
            'print(f"{result / 100:.3f}")',
        ),
        "print(result)",
    ),
}
NO_SOLUTION = "import sys\nsys.exit('offline target: this task has no reference solution')\n"


def program_for(solution: str, printer: str) -> str:
    """A complete Python program: the reference code that computes `result`, then a printer."""
    return solution.rstrip() + "\n" + printer + "\n"


def fenced(program: str, language: str) -> str:
    return f"```{language}\n{program.rstrip()}\n```"


_FENCE = re.compile(r"```[ \t]*([^\n`]*)\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_program(reply: str, language: str = "python") -> str:
    """The program in a reply: the first fenced block tagged with the language (or, failing
    that, the first fenced block); without fences, the whole reply. '' when there is none."""
    blocks = [(m.group(1).strip().lower(), m.group(2)) for m in _FENCE.finditer(reply)]
    if not blocks:
        return reply.strip()
    aliases = {language.lower(), {"python": "py", "javascript": "js"}.get(language.lower(), "")}
    for tag, body in blocks:
        if tag and tag in aliases:
            return body.strip()
    return blocks[0][1].strip()


def expected_text(expected_output: str) -> str:
    """The expected output as compared: `\\n` escapes honoured, surrounding space stripped."""
    return expected_output.replace("\\n", "\n").strip()


def soft_score(outcomes: Sequence[str], similarities: Sequence[float], retry_cap: int) -> float:
    """See the module docstring. `similarities[i]` is attempt i's output similarity (0 when it
    did not run)."""
    for k, outcome in enumerate(outcomes, start=1):
        if outcome == "working":
            return round(0.5 + 0.5 * (retry_cap - k + 1) / retry_cap, 6)
    ran = [s for o, s in zip(outcomes, similarities, strict=True) if o == "partial"]
    if ran:
        return round(0.1 + 0.3 * max(ran), 6)
    return 0.0


@dataclass(frozen=True)
class Attempt:
    index: int  # 1-based
    kind: str  # "generate" or "repair"
    prompt: str  # the user message
    reply: str
    program: str
    outcome: str  # working | partial | failed
    category: str  # "" (working), timeout, runtime_error, wrong_output, no_program
    detail: str
    exit_code: int | None
    stdout: str
    stderr: str
    similarity: float
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    same_as: int | None = None  # an earlier attempt with the identical program
    wall_time_s: float = 0.0  # the sandbox's time; not deterministic, never in a score

    def record(self) -> dict[str, Any]:
        """The deterministic per-attempt economics (what a benchmark tabulates)."""
        return {
            "attempt": self.index,
            "kind": self.kind,
            "outcome": self.outcome,
            "category": self.category,
            "exit_code": self.exit_code,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "same_as": self.same_as,
        }


@dataclass(frozen=True)
class Episode:
    """One task worked to the end: every attempt, the scores and the reason."""

    item_id: str
    task_type: str
    expected: str
    retry_cap: int
    attempts: tuple[Attempt, ...]
    hard: float
    soft: float
    fail_reason: str

    @property
    def outcome(self) -> str:
        return self.attempts[-1].outcome if self.attempts else "failed"

    @property
    def attempts_to_success(self) -> int | None:
        for a in self.attempts:
            if a.outcome == "working":
                return a.index
        return None

    def economics(self) -> dict[str, Any]:
        """The seed's per-task figures (tokens by turn, attempts, outcome), deterministic."""
        return {
            "outcome": self.outcome,
            "attempts_total": len(self.attempts),
            "attempts_to_success": self.attempts_to_success,
            "generation_tokens": sum(a.output_tokens for a in self.attempts),
            "input_tokens": sum(a.input_tokens for a in self.attempts),
            "repair_tokens_by_turn": [a.output_tokens for a in self.attempts[1:]],
            "attempts": [a.record() for a in self.attempts],
        }


@dataclass
class _ResultCache:
    """Results of programs already run (same argv and text): deterministic programs give the
    same result, so running them again only costs time. Invisible in scores and trajectories."""

    size: int = CACHE_SIZE
    data: OrderedDict[str, SandboxResult] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> SandboxResult | None:
        with self.lock:
            hit = self.data.get(key)
            if hit is not None:
                self.data.move_to_end(key)
            return hit

    def put(self, key: str, value: SandboxResult) -> None:
        with self.lock:
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)

    # An environment sent to another process (a Ray worker) takes the cache's size, not its
    # results or its lock: a cache is per process.
    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size, self.data, self.lock = state["size"], OrderedDict(), threading.Lock()


class ClosedLoopEnvironment:
    name = "closed_loop"

    def __init__(self, options: Mapping[str, Any], source: DataSource | None = None) -> None:
        opts = check_options("env.options", options, DEFAULTS)
        for key in ("retry_cap", "cpu_s", "file_mb", "disk_mb", "max_procs", "max_tokens"):
            if opts[key] < 1:
                raise AdapterError(f"env.options.{key}: must be >= 1, got {opts[key]}")
        for key in ("timeout_s", "max_output_bytes", "excerpt_chars"):
            if opts[key] <= 0:
                raise AdapterError(f"env.options.{key}: must be > 0, got {opts[key]}")
        if opts["memory_mb"] < 0:
            raise AdapterError(f"env.options.memory_mb: must be >= 0, got {opts['memory_mb']}")
        self.opts = opts
        self.language = str(opts["language"]).strip().lower()
        self.retry_cap = int(opts["retry_cap"])
        self.argv = self._command(opts)
        extension = str(opts["extension"])
        if not re.fullmatch(r"\.[A-Za-z0-9_.+-]{1,16}", extension):
            raise AdapterError(f"env.options.extension: expected e.g. '.js', got {extension!r}")
        self.filename = "main" + extension
        self.instructions = closed_loop_prompts.instructions(opts, self.language)
        for key in ("skill_modules", "skill_command"):
            if not all(isinstance(part, str) and part for part in opts[key]):
                raise AdapterError(f"env.options.{key}: expected a list of strings")
        self.context = closed_loop_context.assemble(
            opts["skill_modules"],
            opts["skill_command"],
            str(opts["skill_dir"]),
            str(opts["missing_modules"]),
        )
        self.sandbox = Sandbox(
            Limits(
                timeout_s=float(opts["timeout_s"]),
                cpu_s=int(opts["cpu_s"]),
                memory_mb=int(opts["memory_mb"]),
                file_mb=int(opts["file_mb"]),
                disk_mb=int(opts["disk_mb"]),
                max_procs=int(opts["max_procs"]),
                max_output_bytes=int(opts["max_output_bytes"]),
            )
        )
        self._cache = _ResultCache()
        data = (
            shipped_tasks(self.check_row) if source is None else read_source(source, self.check_row)
        )
        self._manifest = dict(data.manifest)
        wanted = [t.strip() for t in str(opts["task_types"]).split(",") if t.strip()]
        self._items = {split: self._to_items(data.rows[split], wanted) for split in SPLITS}
        known = {i.task_type for items in self._items.values() for i in items}
        unknown = [t for t in wanted if t not in known]
        if unknown:
            raise AdapterError(
                f"env.options.task_types: unknown task type(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )

    # -- configuration -------------------------------------------------------------------------

    def _command(self, opts: Mapping[str, Any]) -> list[str]:
        command = opts["command"]
        if not all(isinstance(part, str) and part for part in command):
            raise AdapterError(f"env.options.command: expected a list of strings, got {command!r}")
        if not command:
            if self.language != "python":
                raise AdapterError(
                    f"env.options.command: required for language {self.language!r} "
                    '(e.g. ["node", "{file}"])'
                )
            return [sys.executable, "{file}"]
        found = shutil.which(command[0])
        if found is None:
            raise AdapterError(
                f"env.options.command: interpreter {command[0]!r} not found on PATH "
                f"(language {self.language!r})"
            )
        return [found, *command[1:]]

    def check_row(self, row: dict[str, Any]) -> None:
        """One row's fields (adapters/environments/splits.py names the file and the row on an error)."""
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            raise AdapterError(f"missing required field(s) {', '.join(map(repr, missing))}")
        for key in ("description", "task_type"):
            if key in row and (not isinstance(row[key], str) or not row[key].strip()):
                raise AdapterError(f"{key!r} must be a non-empty string")
        if not isinstance(row["expected_output"], str):
            raise AdapterError("'expected_output' must be a string")
        language = row.get("language")
        if language is not None and str(language).strip().lower() != self.language:
            raise AdapterError(
                f"language {language!r}, but env.options.language is {self.language!r}"
            )
        if row.get("solution") is not None and not isinstance(row["solution"], str):
            raise AdapterError("'solution' must be a string")

    def _to_items(self, rows: list[dict[str, Any]], wanted: list[str]) -> list[Item]:
        items: list[Item] = []
        for row in rows:
            task_type = row.get("task_type") or self.language  # the seed's rows have none
            if wanted and task_type not in wanted:
                continue
            data: dict[str, Any] = {
                "description": row["description"],
                "expected_output": row["expected_output"],
            }
            if row.get("solution") is not None:
                data["solution"] = row["solution"]
            items.append(Item(str(row["id"]), task_type, self.task_prompt(data), data))
        return items

    # -- Environment protocol ------------------------------------------------------------------

    def items(self, split: Split) -> list[Item]:
        return list(self._items[split])

    def task_types(self) -> list[str]:
        return list(dict.fromkeys(i.task_type for s in SPLITS for i in self._items[s]))

    def split_manifest(self) -> dict[str, Any]:
        """Where the items came from, recorded in the ledger with `dataset.loaded`."""
        return dict(self._manifest)

    def rollout(self, item: Item, skill: str, model: ChatModel) -> RolloutResult:
        episode = self.solve(item, skill, model)
        rule = HOUSE_RULES.get(item.task_type)
        last = episode.attempts[-1]
        feedback: dict[str, Any] = {
            "expected": episode.expected,
            "got": _excerpt(
                last.stdout.strip()
                if last.category in ("", "wrong_output")
                else f"{last.category}: {last.detail}",
                200,
            ),
            "rule": rule.rule.text if rule else "Print exactly the expected output.",
            "rule_pattern": rule.rule.pattern if rule else NEVER,
            "decoy": rule.decoy.text if rule else "",
            "decoy_pattern": rule.decoy.pattern if rule else NEVER,
            **episode.economics(),
        }
        return RolloutResult(
            hard=episode.hard,
            soft=episode.soft,
            fail_reason=episode.fail_reason,
            task_type=item.task_type,
            trajectory=self.trajectory(item, episode),
            feedback=feedback,
            input_tokens=sum(a.input_tokens for a in episode.attempts),
            output_tokens=sum(a.output_tokens for a in episode.attempts),
            cached_tokens=sum(a.cached_tokens for a in episode.attempts),
        )

    # -- the closed loop -----------------------------------------------------------------------

    def system_prompt(self, skill: str) -> str:
        """The skill, its documentation modules, then how to write the program."""
        return skill + self.context.text + self.instructions

    @property
    def warnings(self) -> list[str]:
        """What the user allowed to go wrong (a missing module): a bench records these."""
        return self.context.warnings

    def task_prompt(self, data: Mapping[str, Any]) -> str:
        text = f"Task: {data['description']}"
        if self.opts["show_expected"]:
            text += f"\n\nExpected output:\n{expected_text(str(data['expected_output']))}"
        return text

    def repair_prompt(self, item: Item, attempt: Attempt) -> str:
        cap = int(self.opts["excerpt_chars"])
        if attempt.category == "no_program":
            what = "Your reply contained no program."
        elif attempt.category == "wrong_output":
            shown = _excerpt(attempt.stdout.strip(), cap) or "(nothing)"
            what = f"It ran, but its output is not the expected one. It printed:\n{shown}"
        else:
            error = _tail(attempt.stderr.strip(), cap) or _excerpt(attempt.stdout.strip(), cap)
            what = f"It failed ({attempt.category}: {attempt.detail}).\n"
            what += f"Error output:\n{error or '(no output)'}"
        previous = fenced(attempt.program, self.language) if attempt.program else "(none)"
        return (
            f"Your previous {self.language} program for this task did not work.\n"
            f"{item.prompt}\n\nPrevious program:\n{previous}\n\n{what}\n\n"
            f"Write the corrected complete program."
        )

    def target_hints(self, item: Item) -> dict[str, Any]:
        """What the offline target writes under each stated rule, and without one."""
        solution = item.data.get("solution")
        rule = HOUSE_RULES.get(item.task_type)
        if solution is None or rule is None:
            return {"default": fenced(NO_SOLUTION, self.language), "variants": []}
        variants = [
            {"pattern": v.pattern, "answer": fenced(program_for(solution, v.printer), "python")}
            for v in (rule.rule, rule.decoy)
        ]
        return {
            "default": fenced(program_for(solution, rule.naive), "python"),
            "variants": variants,
        }

    def solve(self, item: Item, skill: str, model: ChatModel) -> Episode:
        """Generate, run, classify, repair: up to retry_cap attempts. Model errors propagate
        (the stage fails and resumes); everything the program does ends as an Attempt."""
        expected = expected_text(str(item.data["expected_output"]))
        system = self.system_prompt(skill)
        hints = self.target_hints(item)
        attempts: list[Attempt] = []
        prompt = item.prompt
        for index in range(1, self.retry_cap + 1):
            request = ChatRequest(
                role="target",
                system=system,
                messages=(Message("user", prompt),),
                purpose="rollout",
                hints=hints,
                max_tokens=int(self.opts["max_tokens"]),
            )
            reply = model.complete(request)
            attempt = self._judge(index, prompt, reply.text, expected, attempts)
            attempt = _with_tokens(
                attempt, reply.input_tokens, reply.output_tokens, reply.cache_read_tokens
            )
            attempts.append(attempt)
            if attempt.outcome == "working":
                break
            prompt = self.repair_prompt(item, attempt)
        outcomes = [a.outcome for a in attempts]
        hard = 1.0 if "working" in outcomes else 0.0
        soft = soft_score(outcomes, [a.similarity for a in attempts], self.retry_cap)
        last = attempts[-1]
        reason = ""
        if not hard:
            reason = f"{last.category}: {item.task_type}: {last.detail}"
            reason += f" (after {len(attempts)} attempt{'s' if len(attempts) > 1 else ''})"
        return Episode(
            item.id, item.task_type, expected, self.retry_cap, tuple(attempts), hard, soft, reason
        )

    def _judge(
        self, index: int, prompt: str, reply: str, expected: str, earlier: Sequence[Attempt]
    ) -> Attempt:
        kind = "generate" if index == 1 else "repair"
        program = extract_program(reply, self.language)
        if not program:
            return Attempt(
                index,
                kind,
                prompt,
                reply,
                "",
                "failed",
                "no_program",
                "the reply holds no program",
                None,
                "",
                "",
                0.0,
                0,
                0,
                0,
            )
        same_as = next((a.index for a in earlier if a.program == program), None)
        result, wall = self._run(program)
        category, detail = result.problem()
        got = result.stdout.strip()
        similarity = 0.0
        if not category:
            if got == expected:
                outcome = "working"
            else:
                outcome, category = "partial", "wrong_output"
                detail = f"printed {_excerpt(got, 80)!r}, expected {_excerpt(expected, 80)!r}"
                similarity = difflib.SequenceMatcher(None, got, expected).ratio()
        else:
            outcome = "failed"
            last_line = _last_line(result.stderr)
            if category == "runtime_error" and result.exit_code not in (None, 0) and last_line:
                detail = f"{last_line} (exit code {result.exit_code})"
        return Attempt(
            index,
            kind,
            prompt,
            reply,
            program,
            outcome,
            category,
            detail,
            result.exit_code,
            result.stdout,
            result.stderr,
            similarity,
            0,
            0,
            0,
            same_as,
            wall,
        )

    def _run(self, program: str) -> tuple[SandboxResult, float]:
        key = hashlib.sha256("\0".join([*self.argv, self.filename, program]).encode()).hexdigest()
        if not self.opts["rerun_identical"]:
            hit = self._cache.get(key)
            if hit is not None:
                return hit, 0.0
        result = self.sandbox.run(self.argv, program, self.filename)
        if not result.setup_error:
            self._cache.put(key, result)
        return result, result.wall_time_s

    # -- trajectory ----------------------------------------------------------------------------

    def trajectory(self, item: Item, episode: Episode) -> str:
        lines = [
            f"TASK [{item.task_type}] {item.id}: {item.data['description']}",
            f"LANGUAGE: {self.language}; attempts allowed: {episode.retry_cap}",
        ]
        for a in episode.attempts:
            status = a.outcome + (f" ({a.category}: {a.detail})" if a.category else "")
            lines += [
                "",
                f"=== attempt {a.index} ({a.kind}): {status} ===",
                f"tokens: input {a.input_tokens}, output {a.output_tokens}",
            ]
            if a.index > 1:
                # The repair prompt is the task, attempt k-1's program and what it did: all
                # shown above, so it is named rather than repeated.
                lines.append(f"prompt: repair request quoting attempt {a.index - 1}")
            if not a.program:
                lines += ["reply:", _excerpt(a.reply.strip(), EXCERPT) or "(empty)"]
                continue
            if a.same_as is not None:
                lines.append(f"program: identical to attempt {a.same_as}")
            else:
                lines += ["program:", fenced(a.program, self.language)]
            lines.append(f"exit code: {a.exit_code if a.exit_code is not None else '-'}")
            lines += ["stdout:", _excerpt(a.stdout.rstrip(), EXCERPT) or "(empty)"]
            lines += ["stderr:", _tail(a.stderr.rstrip(), EXCERPT) or "(empty)"]
        verdict = "working" if episode.hard else episode.outcome
        lines += [
            "",
            f"FINAL: {verdict} after {len(episode.attempts)} attempt(s)",
            "EXPECTED OUTPUT:",
            episode.expected,
        ]
        return "\n".join(lines)


def _with_tokens(attempt: Attempt, input_tokens: int, output_tokens: int, cached: int) -> Attempt:
    return replace(
        attempt, input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached
    )


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"[{len(text) - limit} chars before] ..." + text[-limit:]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return _excerpt(lines[-1], 160) if lines else ""


# -- the shipped task set ------------------------------------------------------------------------


def shipped_tasks(check_row: Callable[[dict[str, Any]], None] | None = None) -> SplitData:
    """The task set of this project, in the reference split layout (skills/closed_loop/tasks)."""
    root = resources.files("skillopt.skills").joinpath("closed_loop", "tasks")
    return read_split_dir(root, check_row, label=SHIPPED)
