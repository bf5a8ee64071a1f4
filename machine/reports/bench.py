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
  between two identical benches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from skillopt.machine.core.events import BenchCompleted, BenchStarted, BenchTask, BenchTotals

Key = tuple[int, str]  # (arm, task id)


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
    results = []
    for key in plan_keys(started):
        task = by_key.get(key)
        if task is None:
            continue
        arm = started.arms[key[0]]
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
                "backend": arm.backend,
                "model": arm.model,
                **economics(task),
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
        configs.append(
            {
                "index": index,
                "label": arm.label,
                "backend": arm.backend,
                "model": arm.model,
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
    """The seed's per-task economics: a table per configuration, a comparison when several."""
    configs: list[dict[str, Any]] = data["configs"]
    results: list[dict[str, Any]] = data["results"]
    lines = [
        f"# Closed-loop bench: {data['run']}",
        "",
        f"**{data['summary']}**",
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
    lines += ["", "## Configurations", ""]
    lines += _table(
        ["#", "config", "backend", "model", "skill", "retry cap", "result"],
        [
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
        ],
    )
    if len(configs) > 1:
        lines += ["", "## Comparison", ""]
        lines += _table(
            [
                "config",
                "model",
                "succeeded",
                "first attempt",
                "attempts",
                "gen tokens",
                "input tokens",
                "repair tokens",
                "wall time",
            ],
            [
                [
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
                for c in configs
            ],
        )
        lines += [""]
        by_key = {(r["arm"], r["task"]): r for r in results}
        rows = []
        for task in data["task_ids"]:
            cells = []
            for c in configs:
                r = by_key.get((c["index"], task))
                cells.append(
                    "-"
                    if r is None
                    else f"{r['final_outcome']} ({r['attempts_total']}, "
                    f"{r['generation_tokens']} gen)"
                )
            if any(cell != "-" for cell in cells):
                rows.append([_cell(task), *cells])
        lines += _table(["task", *(_cell(c["label"]) for c in configs)], rows)
    for c in configs:
        mine = [r for r in results if r["arm"] == c["index"]]
        lines += [
            "",
            f"## {c['label']}: {c['backend']} {c['model']}",
            "",
            f"**{c['summary']}**",
            "",
        ]
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
        )
        lines += _table(
            [
                "task",
                "type",
                "outcome",
                "attempts to success",
                "attempts",
                "gen tokens",
                "input tokens",
                "repair tokens by turn",
                "wall time",
            ],
            rows,
        )
        failures = [r for r in mine if r["final_outcome"] != "working"]
        if failures:
            lines += ["", "Failures:", ""]
            lines += [f"- `{r['task']}`: {_cell(r['fail_reason'])}" for r in failures]
    lines += [
        "",
        "## Notes",
        "",
        "- gen tokens: output tokens of every attempt; input tokens: input tokens of every "
        "attempt; repair tokens by turn: output tokens of attempts 2, 3, ...",
        "- Wall time is measured (model calls and sandbox runs of the task) and kept outside "
        "the hashed events; it is the only figure that changes when the same bench runs again.",
        "- Every attempt (program, output excerpts, tokens) is in the ledger: "
        f"`skillopt events --run {data['run']} --type bench.task --json`, texts by hash with "
        "`skillopt blob HASH`.",
    ]
    return "\n".join(lines) + "\n"


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
