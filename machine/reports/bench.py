"""Bench runs, the pure part: per-task economics, totals, the plan check of a resumed bench, and
the JSON and markdown reports (`skillopt bench`). No I/O: the shell hands in the events of the
run and the measured wall times (which live outside the hashed events, in the timings table).

The economics are the seed benchmark's, per task and configuration:

- generation tokens: output tokens of every attempt; input tokens: input tokens of every
  attempt (cache reads included);
- repair tokens by turn: output tokens of attempts 2, 3, ...;
- attempts to success: the first working attempt (None when none worked); attempts total;
- final outcome: the last attempt's (working | partial | failed);
- wall time: model calls plus sandbox runs of the task, measured; the only figure that differs
  between two identical benches;
- USD: each attempt's tokens at the prices its config recorded (`models.target.prices`, which
  `load_config` fills in from the price table for a known model; cached input at the cached
  price); None when the config has no prices (the offline model).

The matrix (language x model) sums the configurations of each pair, as the seed's summary
compared ilo and a second language across haiku and sonnet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from skillopt.machine.config.schema import Prices
from skillopt.machine.core.events import (
    BenchArm,
    BenchCompleted,
    BenchStarted,
    BenchTask,
    BenchTotals,
)
from skillopt.machine.decisions.spending import token_cost

Key = tuple[int, str]  # (arm, task id)
USD_DIGITS = 9  # dollars to the nano-dollar


def economics(task: BenchTask) -> dict[str, Any]:
    attempts = task.attempts
    first_working = next((a.attempt for a in attempts if a.outcome == "working"), None)
    return {
        "generation_tokens": sum(a.tokens.output for a in attempts),
        "input_tokens": sum(a.tokens.input for a in attempts),
        "cached_tokens": sum(a.tokens.cached for a in attempts),
        "repair_tokens_by_turn": [a.tokens.output for a in attempts[1:]],
        "attempts_to_success": first_working,
        "attempts_total": len(attempts),
        "final_outcome": task.outcome,
    }


def arm_prices(arm: BenchArm) -> Prices | None:
    """The target's prices as the arm's config recorded them (None: none, or unreadable)."""
    target = (arm.config.get("models") or {}).get("target") or {}
    raw = target.get("prices") if isinstance(target, dict) else None
    if not isinstance(raw, dict):
        return None
    try:
        return Prices.model_validate(raw)
    except ValidationError:
        return None


def arm_language(arm: BenchArm) -> str:
    """The language its programs are written in (env.options.language; python by default)."""
    options = (arm.config.get("env") or {}).get("options") or {}
    language = options.get("language") if isinstance(options, dict) else None
    return str(language or "python").strip().lower()


def call_usd(prices: Prices | None, tokens_in: int, tokens_out: int, cached: int) -> float | None:
    """One call's dollars, to the nano-dollar: a bench call costs a few millionths, and the
    trainer's rounding to millionths (token_cost) would make the per-task sums drift."""
    return token_cost(prices, tokens_in, tokens_out, cached, USD_DIGITS)


def task_usd(task: BenchTask, prices: Prices | None) -> float | None:
    """What the task's attempts cost at `prices` (None without prices)."""
    if prices is None:
        return None
    a = task.attempts
    return _sum_usd([call_usd(prices, x.tokens.input, x.tokens.output, x.tokens.cached) for x in a])


def _sum_usd(values: Sequence[float | None]) -> float | None:
    """A total in dollars; None when any part has no price (a partial sum would mislead)."""
    if not values or any(v is None for v in values):
        return None
    return round(sum(v for v in values if v is not None), USD_DIGITS)


def totals(started: BenchStarted, tasks: Sequence[BenchTask]) -> list[BenchTotals]:
    """One line per configuration, from its bench.task events."""
    out = []
    for arm in range(len(started.arms)):
        mine = [economics(t) for t in tasks if t.arm == arm]
        out.append(
            BenchTotals(
                arm=arm,
                runs=len(mine),
                succeeded=sum(e["attempts_to_success"] is not None for e in mine),
                first_attempt=sum(e["attempts_to_success"] == 1 for e in mine),
                attempts=sum(e["attempts_total"] for e in mine),
                generation_tokens=sum(e["generation_tokens"] for e in mine),
                input_tokens=sum(e["input_tokens"] for e in mine),
            )
        )
    return out


def plan_keys(started: BenchStarted) -> list[Key]:
    """Every (configuration, task) of the plan, in the order a bench works them: task by task,
    each with every configuration (as the seed did)."""
    return [(arm, task) for task in started.task_ids for arm in range(len(started.arms))]


def plan_difference(recorded: BenchStarted, planned: BenchStarted) -> str | None:
    """Why `planned` is not the plan `recorded` was started with (None: it is)."""
    if recorded.env != planned.env:
        return f"environment {recorded.env} then, {planned.env} now"
    if len(recorded.arms) != len(planned.arms):
        return f"{len(recorded.arms)} configuration(s) then, {len(planned.arms)} now"
    for i, (then, now) in enumerate(zip(recorded.arms, planned.arms, strict=True), start=1):
        for field, what in (("config", "its settings differ"), ("skill_hash", "its skill differs")):
            if getattr(then, field) != getattr(now, field):
                return f"configuration {i} ({now.label}): {what}"
        if (then.backend, then.model) != (now.backend, now.model):
            return f"configuration {i}: model {then.backend} {then.model} then, {now.model} now"
        if then.context != now.context:
            return f"configuration {i} ({now.label}): its documentation modules differ"
    if recorded.task_ids != planned.task_ids:
        gone = [t for t in recorded.task_ids if t not in planned.task_ids]
        new = [t for t in planned.task_ids if t not in recorded.task_ids]
        bits = [f"{len(recorded.task_ids)} task(s) then, {len(planned.task_ids)} now"]
        if gone:
            bits.append(f"not planned now: {', '.join(gone[:3])}")
        if new:
            bits.append(f"new: {', '.join(new[:3])}")
        return "; ".join(bits) if gone or new else "the tasks are in another order"
    for i, (then, now) in enumerate(zip(recorded.arms, planned.arms, strict=True), start=1):
        if then.fingerprint != now.fingerprint:
            return f"configuration {i} ({now.label}): the tasks' text or expected output changed"
    if recorded.source != planned.source:
        return "the task source differs"
    return None


def status(
    started: BenchStarted, tasks: Sequence[BenchTask], completed: BenchCompleted | None
) -> str:
    """One phrase for `skillopt runs`."""
    runs = len(plan_keys(started))
    ok = sum(t.outcome == "working" for t in tasks)
    if completed is not None:
        return f"bench done: {ok}/{len(tasks)} runs succeeded"
    return f"bench: {len(tasks)}/{runs} task runs recorded"


# -- the report --------------------------------------------------------------------------------


def report_data(
    run: Mapping[str, str],
    started: BenchStarted,
    tasks: Sequence[BenchTask],
    completed: BenchCompleted | None,
    wall: Mapping[Key, float],
    sandbox: Mapping[Key, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Everything the JSON report holds; the markdown renders this. `run`: name, id, created_at;
    `wall`: measured seconds per (arm, task) (missing: not measured)."""
    sandbox = sandbox or {}
    by_key = {(t.arm, t.task_id): t for t in tasks}
    prices = [arm_prices(arm) for arm in started.arms]
    results = []
    for key in plan_keys(started):
        task = by_key.get(key)
        if task is None:
            continue
        arm = started.arms[key[0]]
        price = prices[key[0]]
        spent = list(sandbox.get(key, []))
        attempts = [
            {
                "attempt": a.attempt,
                "kind": a.kind,
                "outcome": a.outcome,
                "category": a.category,
                "detail": a.detail,
                "exit_code": a.exit_code,
                "input_tokens": a.tokens.input,
                "output_tokens": a.tokens.output,
                "cached_tokens": a.tokens.cached,
                "usd": call_usd(price, a.tokens.input, a.tokens.output, a.tokens.cached),
                "same_as": a.same_as,
                "program_hash": a.program_hash,
                "stdout_hash": a.stdout_hash,
                "stderr_hash": a.stderr_hash,
                "reply_hash": a.reply_hash,
                "call_id": a.call_id,
                "sandbox_time_s": spent[i] if i < len(spent) else None,
            }
            for i, a in enumerate(task.attempts)
        ]
        seconds = wall.get(key)
        results.append(
            {
                "task": task.task_id,
                "task_type": task.task_type,
                "config": arm.label,
                "arm": key[0],
                "language": arm_language(arm),
                "backend": arm.backend,
                "model": arm.model,
                **economics(task),
                "usd": task_usd(task, price),
                "success_rate": 1.0 if task.outcome == "working" else 0.0,
                "wall_time_s": None if seconds is None else round(seconds, 3),
                "hard": task.hard,
                "soft": task.soft,
                "fail_reason": task.fail_reason,
                "expected_output": task.expected,
                "trajectory_hash": task.trajectory_hash,
                "attempts": attempts,
            }
        )
    configs = []
    for index, (arm, line) in enumerate(zip(started.arms, totals(started, tasks), strict=True)):
        mine = [r for r in results if r["arm"] == index]
        timed = [r["wall_time_s"] for r in mine if r["wall_time_s"] is not None]
        usd = _sum_usd([r["usd"] for r in mine]) if prices[index] is not None else None
        configs.append(
            {
                "index": index,
                "label": arm.label,
                "language": arm_language(arm),
                "backend": arm.backend,
                "model": arm.model,
                "prices": None if prices[index] is None else prices[index].model_dump(),
                "usd": usd,
                "usd_per_task": None
                if usd is None or not mine
                else round(usd / len(mine), USD_DIGITS),
                "skill_hash": arm.skill_hash,
                "retry_cap": arm.retry_cap,
                "config_sha256": arm.config_sha256,
                "runs": line.runs,
                "planned": len(started.task_ids),
                "succeeded": line.succeeded,
                "first_attempt": line.first_attempt,
                "attempts_total": line.attempts,
                "generation_tokens": line.generation_tokens,
                "input_tokens": line.input_tokens,
                "repair_tokens": sum(sum(r["repair_tokens_by_turn"]) for r in mine),
                "wall_time_s": round(sum(timed), 3) if timed else None,
                "summary": f"{line.succeeded}/{line.runs} runs succeeded",
            }
        )
    succeeded = sum(c["succeeded"] for c in configs)
    return {
        "usd": _sum_usd([c["usd"] for c in configs]),
        "matrix": matrix(configs),
        "warnings": list(started.warnings),
        "contexts": [arm.context for arm in started.arms],
        "run": run["name"],
        "id": run["id"],
        "kind": "bench",
        "created_at": run["created_at"],
        "env": started.env,
        "source": started.source,
        "task_ids": list(started.task_ids),
        "complete": completed is not None,
        "planned_runs": len(plan_keys(started)),
        "runs": len(results),
        "succeeded": succeeded,
        "summary": f"{succeeded}/{len(results)} runs succeeded",
        "configs": configs,
        "results": results,
    }


def matrix(configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Language x model: each pair's configurations summed, pairs in the order they appear."""
    pairs: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for c in configs:
        pairs.setdefault((c["language"], c["model"]), []).append(c)
    out = []
    for (language, model), mine in pairs.items():
        cell: dict[str, Any] = {"language": language, "model": model}
        cell["configs"] = [c["label"] for c in mine]
        for key in ("runs", "succeeded", "first_attempt", "attempts_total"):
            cell[key] = sum(c[key] for c in mine)
        for key in ("generation_tokens", "input_tokens", "repair_tokens"):
            cell[key] = sum(c[key] for c in mine)
        cell["usd"] = _sum_usd([c["usd"] for c in mine])
        cell["usd_per_task"] = (
            None
            if cell["usd"] is None or not cell["runs"]
            else round(cell["usd"] / cell["runs"], USD_DIGITS)
        )
        out.append(cell)
    return out


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _source_text(source: Mapping[str, Any]) -> str:
    if source.get("tasks_file"):
        return f"`{source['tasks_file']}` (sha256 {str(source.get('sha256', ''))[:12]})"
    label = source.get("split_dir") or source.get("source_data_path") or "the shipped task set"
    splits = source.get("splits")
    return f"{label}" + (f", split(s) {', '.join(splits)}" if splits else "")


def render_markdown(data: Mapping[str, Any]) -> str:
    """The seed's per-task economics: a table per configuration; with several, a comparison,
    the language x model matrix and each task's outcome per configuration. Dollar columns
    appear when some configuration has prices."""
    configs: list[dict[str, Any]] = data["configs"]
    lines = [
        f"# Closed-loop bench: {data['run']}",
        "",
        f"**{data['summary']}**" + (f" (${data['usd']:.6f})" if data.get("usd") else ""),
        "",
        f"Run `{data['run']}` (id {data['id']}, started {data['created_at']}): "
        f"{len(data['task_ids'])} task(s) from {_source_text(data['source'])}, "
        f"{len(configs)} configuration(s), no optimization.",
    ]
    if not data["complete"]:
        lines += [
            "",
            f"Incomplete: {data['runs']} of {data['planned_runs']} task runs recorded; run the "
            f"same command again (`--name {data['run']}`) to continue.",
        ]
    if data.get("warnings"):
        lines += ["", "Warnings:", ""] + [f"- {_cell(w)}" for w in data["warnings"]]
    lines += _configurations(data)
    if len(configs) > 1:
        lines += _comparison(data)
    for c in configs:
        lines += _config_section(data, c)
    lines += [
        "",
        "## Notes",
        "",
        "- gen tokens: output tokens of every attempt; input tokens: input tokens of every "
        "attempt; repair tokens by turn: output tokens of attempts 2, 3, ...",
    ]
    if _priced(data):
        lines.append(
            "- USD: each attempt's tokens at its configuration's recorded prices per million "
            "(cached input at the cached price); `-` where a configuration has none."
        )
    lines += [
        "- Wall time is measured (model calls and sandbox runs of the task) and kept outside "
        "the hashed events; it is the only figure that changes when the same bench runs again.",
        "- Every attempt (program, output excerpts, tokens) is in the ledger: "
        f"`skillopt events --run {data['run']} --type bench.task --json`, texts by hash with "
        f"`skillopt blob HASH`, the model calls with `skillopt calls --run {data['run']}`.",
    ]
    return "\n".join(lines) + "\n"


def _priced(data: Mapping[str, Any]) -> bool:
    return any(c.get("prices") for c in data["configs"])


def _configurations(data: Mapping[str, Any]) -> list[str]:
    configs: list[dict[str, Any]] = data["configs"]
    lines = ["", "## Configurations", ""]
    header = ["#", "config", "backend", "model", "skill", "retry cap", "result"]
    rows = [
        [
            str(c["index"] + 1),
            _cell(c["label"]),
            _cell(c["backend"]),
            _cell(c["model"]),
            c["skill_hash"][:12],
            str(c["retry_cap"]),
            c["summary"],
        ]
        for c in configs
    ]
    if _priced(data):
        header += ["USD", "USD per task"]
        for row, c in zip(rows, configs, strict=True):
            row += [_usd(c["usd"]), _usd(c["usd_per_task"])]
    lines += _table(header, rows)
    contexts = data.get("contexts") or []
    for c, context in zip(configs, contexts, strict=False):
        if context:
            modules = ", ".join(f"{m['module']} ({m['source']})" for m in context["modules"])
            lines += ["", f"{_cell(c['label'])} reads documentation modules: {modules}."]
    return lines


def _comparison(data: Mapping[str, Any]) -> list[str]:
    configs: list[dict[str, Any]] = data["configs"]
    priced = _priced(data)
    lines = ["", "## Comparison", ""]
    header = ["config", "model", "succeeded", "first attempt", "attempts", "gen tokens"]
    header += ["input tokens", "repair tokens", "wall time"] + (["USD"] if priced else [])
    rows = []
    for c in configs:
        row = [
            _cell(c["label"]),
            _cell(c["model"]),
            f"{c['succeeded']}/{c['runs']}",
            str(c["first_attempt"]),
            str(c["attempts_total"]),
            str(c["generation_tokens"]),
            str(c["input_tokens"]),
            str(c["repair_tokens"]),
            _seconds(c["wall_time_s"]),
        ]
        rows.append(row + ([_usd(c["usd"])] if priced else []))
    lines += _table(header, rows)
    lines += _matrix_section(data)
    lines += [
        "",
        "Each task per configuration: outcome (attempts, gen tokens"
        + (", USD" if priced else "")
        + ").",
        "",
    ]
    by_key = {(r["arm"], r["task"]): r for r in data["results"]}
    rows = []
    for task in data["task_ids"]:
        cells = []
        for c in configs:
            r = by_key.get((c["index"], task))
            if r is None:
                cells.append("-")
                continue
            usd = f", {_usd(r['usd'])}" if priced else ""
            cells.append(
                f"{r['final_outcome']} ({r['attempts_total']}, {r['generation_tokens']} gen{usd})"
            )
        if any(cell != "-" for cell in cells):
            rows.append([_cell(task), *cells])
    lines += _table(["task", *(_cell(c["label"]) for c in configs)], rows)
    return lines


def _matrix_section(data: Mapping[str, Any]) -> list[str]:
    """Rows: languages; columns: models; a cell: K/N working, attempts, gen tokens, USD."""
    cells = {(m["language"], m["model"]): m for m in data["matrix"]}
    languages = list(dict.fromkeys(m["language"] for m in data["matrix"]))
    models = list(dict.fromkeys(m["model"] for m in data["matrix"]))
    rows = []
    for language in languages:
        row = [_cell(language)]
        for model in models:
            m = cells.get((language, model))
            if m is None:
                row.append("-")
                continue
            text = f"{m['succeeded']}/{m['runs']} working, {m['attempts_total']} attempts, "
            text += f"{m['generation_tokens']} gen"
            if m["usd"] is not None:
                text += f", {_usd(m['usd'])} ({_usd(m['usd_per_task'])}/task)"
            row.append(text)
        rows.append(row)
    lines = ["", "## Matrix: language x model", ""]
    return lines + _table(["language", *(_cell(m) for m in models)], rows)


def _config_section(data: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    priced = _priced(data)
    mine = [r for r in data["results"] if r["arm"] == c["index"]]
    lines = ["", f"## {c['label']}: {c['backend']} {c['model']}", "", f"**{c['summary']}**", ""]
    rows = [
        [
            _cell(r["task"]),
            _cell(r["task_type"]),
            f"**{r['final_outcome']}**",
            _cell(r["attempts_to_success"]),
            str(r["attempts_total"]),
            str(r["generation_tokens"]),
            str(r["input_tokens"]),
            _cell(r["repair_tokens_by_turn"]) if r["repair_tokens_by_turn"] else "-",
            _seconds(r["wall_time_s"]),
        ]
        + ([_usd(r["usd"])] if priced else [])
        for r in mine
    ]
    rows.append(
        [
            "**total**",
            "",
            f"{c['succeeded']}/{c['runs']} working",
            "",
            str(c["attempts_total"]),
            str(c["generation_tokens"]),
            str(c["input_tokens"]),
            str(c["repair_tokens"]),
            _seconds(c["wall_time_s"]),
        ]
        + ([_usd(c["usd"])] if priced else [])
    )
    header = ["task", "type", "outcome", "attempts to success", "attempts", "gen tokens"]
    header += ["input tokens", "repair tokens by turn", "wall time"] + (["USD"] if priced else [])
    lines += _table(header, rows)
    failures = [r for r in mine if r["final_outcome"] != "working"]
    if failures:
        lines += ["", "Failures:", ""]
        lines += [f"- `{r['task']}`: {_cell(r['fail_reason'])}" for r in failures]
    return lines


def render_task_list(rows: Sequence[Mapping[str, Any]]) -> str:
    """`--dry-run`: the tasks that would run and what each must print."""
    lines = [f"{len(rows)} task(s):"]
    for r in rows:
        description = str(r["description"])
        if len(description) > 80:
            description = description[:77] + "..."
        lines.append(f"  [{r['id']}] ({r['task_type']}) {description}")
        lines.append(f"      expected: {r['expected_output']!r}")
    return "\n".join(lines) + "\n"
