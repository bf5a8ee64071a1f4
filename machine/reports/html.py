"""`report --html`: one self-contained page (inline SVG and CSS, no network, no script),
with collapsible per-step details. A pure function of the report data and skill texts.

It states what the markdown report states, from the same view functions (views.py: the
config header, the epoch boundaries, the test split), so the two cannot drift. Every text
that comes from the ledger (skills, edits, rules, names) is escaped: skills and model replies
are untrusted input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from skillopt.machine.core.canonical import short
from skillopt.machine.reports.charts import score_chart_svg
from skillopt.machine.reports.history import unified_diff
from skillopt.machine.reports.views import (
    EPOCH_HEADER,
    Span,
    epoch_rows,
    header_lines,
    scores_by_task_type,
)

# The page fits a 1000-px window: the body is at most 1000 px wide, tables take no more than
# its width and wrap their cells (headers between words, identifiers after an underscore;
# hashes are cut short with the full value in a title); a table that still cannot fit (a
# phone) scrolls inside its own box, never the page.
CSS = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:1.5em auto;padding:0 16px;color:#1f2328;box-sizing:border-box}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.4em}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.5em 0;font-size:13px;max-width:100%}
td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f6f8fa;font-weight:600;overflow-wrap:normal}table.wide{width:100%}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,monospace;font-size:12px}
pre{background:#f6f8fa;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere}
details{margin:.3em 0}summary{cursor:pointer}ul.config{padding-left:1.2em;line-height:1.5}
.chart svg{max-width:100%;height:auto}
.accept_new_best,.accept{color:#1a7f37}.reject{color:#cf222e}.force_accept{color:#0969da}
.add{color:#1a7f37}.del{color:#cf222e}.warning{color:#9a6700}
"""


@dataclass(frozen=True)
class Num:
    """A number cell: right-aligned, never wrapped."""

    text: str


Cell = str | Num  # a str cell is HTML already: escape ledger text before


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _num(x: float | int | None) -> Num:
    return Num(str(x) if isinstance(x, int) else _f(x))


def _hash(value: str | None, n: int = 12) -> str:
    """A hash cut to n digits, the full value in the title (hover; copy from the source)."""
    if not value:
        return "–"
    return f'<code title="{escape(value)}">{escape(short(value, n))}</code>'


def _ident(text: str) -> str:
    """An identifier (accept_new_best) that may wrap after its underscores."""
    return escape(text).replace("_", "_<wbr>")


def _action(action: str) -> str:
    return f'<span class="{escape(action)}">{_ident(action)}</span>'


def _cut(text: str, n: int) -> str:
    """Text cut to n characters, the whole of it in the title."""
    if len(text) <= n:
        return escape(text)
    return f'<span title="{escape(text)}">{escape(text[: n - 1])}…</span>'


def _table(header: Sequence[str], rows: Sequence[Sequence[Cell]], wide: bool = False) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c.text}</td>' if isinstance(c, Num) else f"<td>{c}</td>" for c in row
        )
        + "</tr>"
        for row in rows
    )
    cls = ' class="wide"' if wide else ""
    return f'<div class="scroll"><table{cls}><tr>{head}</tr>{body}</table></div>'


def _spans(spans: list[Span]) -> str:
    tags = {"strong": "strong", "code": "code"}
    return "".join(
        f"<{tags[style]}>{escape(text)}</{tags[style]}>" if style else escape(text)
        for text, style in spans
    )


def _diff_html(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        cls = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        lines.append(f'<span class="{cls}">{escape(line)}</span>' if cls else escape(line))
    return "<pre>" + "\n".join(lines) + "</pre>"


def _step_details(s: Mapping[str, Any]) -> str:
    rows: list[list[Cell]] = [
        [
            Num(str(i)),
            f"<code>{escape(e['op'])}</code>",
            _cut(e["target"], 60),
            _cut(e["content"], 160),
            _ident(e["source_type"]),
            f"<b>{_ident(e['status'])}</b>",
        ]
        for i, e in enumerate(s["edits"], start=1)
    ]
    edits = (
        _table(["#", "op", "target", "content", "source", "status"], rows)
        if rows
        else "<p>no edits</p>"
    )
    return (
        f"<details><summary>Step {s['step']} (epoch {s['epoch']}): {_action(s['action'])}"
        f"</summary><p>Decision: {escape(s['rule'])}</p>{edits}</details>"
    )


STEP_HEADER = [
    "step",
    "epoch",
    "action",
    "rollout hard",
    "merged",
    "budget",
    "selected",
    "applied",
    "candidate",
    "sel. hard",
    "sel. soft",
    "gate",
    "current",
    "best",
]


def _step_row(s: Mapping[str, Any]) -> list[Cell]:
    gate = _f(s["candidate_gate_score"])
    if s["cache_hit"]:
        gate += " (cached)"
    if s["stopped_after"] is not None:
        gate += f" ({s['stopped_after']} items: early reject)"
    return [
        _num(s["step"]),
        _num(s["epoch"]),
        _action(s["action"]),
        _num(s["rollout_hard"]),
        _num(s["n_edits_merged"]),
        _num(s["edit_budget"]),
        _num(s["n_edits_selected"]),
        _num(s["edits_applied"]),
        _hash(s["candidate_hash"], 8),
        _num(s["selection_hard"]),
        _num(s["selection_soft"]),
        Num(gate) if s["stopped_after"] is None else gate,
        _num(s["current_score"]),
        _num(s["best_score"]),
    ]


def render_html(report: Mapping[str, Any], texts: Mapping[str, str]) -> str:
    fin, base, t = report["final"], report["baseline"], report["totals"]
    run = escape(str(report["run"]))
    header = "".join(
        f'<li class="warning">{_spans(line)}</li>'
        if line[0] == ("Warning", "strong")
        else f"<li>{_spans(line)}</li>"
        for line in header_lines(report)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>skillopt report: {run}</title><style>{CSS}</style></head><body>",
        f"<h1>skillopt report: run <code>{run}</code></h1>",
        f'<ul class="config">{header}</ul>',
        f"<p>{t['steps']} step(s): {t['accepts']} accepted, {t['rejects']} rejected, "
        f"{t['skips']} skipped.</p>",
        f'<figure class="chart">{score_chart_svg(report)}</figure>',
        "<h2>Outcome</h2>",
        _table(
            ["skill", "hash", "selection score", "origin"],
            [
                [
                    "initial",
                    _hash(fin["initial_skill_hash"]),
                    _num(base and base["gate_score"]),
                    "initial",
                ],
                [
                    "best",
                    _hash(fin["best_skill_hash"]),
                    _num(fin["best_score"]),
                    escape(fin["best_origin"]),
                ],
                [
                    "final",
                    _hash(fin["final_skill_hash"]),
                    _num(fin["final_score"]),
                    "last current skill",
                ],
            ],
        ),
        "<h2>Steps</h2>",
        _table(STEP_HEADER, [_step_row(s) for s in report["steps"]], wide=True),
        "<h2>Step details</h2>",
        *(_step_details(s) for s in report["steps"]),
    ]
    if report.get("epochs"):
        rows: list[list[Cell]] = [
            [Num(epoch), *(escape(c) for c in rest)]
            for epoch, *rest in epoch_rows(report["epochs"])
        ]
        parts += ["<h2>Epoch boundaries</h2>", _table(EPOCH_HEADER, rows)]
    if fin["test"]:
        head, cells = scores_by_task_type(fin["test"])
        rows = [[_ident(kind), *(Num(c) for c in rest)] for kind, *rest in cells]
        parts += ["<h2>Test split (hard score by task type)</h2>", _table(head, rows)]
    if report["tokens"]:
        # the cache columns where the markdown report has them (a run that touched the cache)
        caching = any("cached_share" in v for v in report["tokens"].values())
        head = ["stage", "calls", "input tokens", "output tokens", "cost"]
        if caching:
            head[3:3] = ["cached share", "cache writes"]
            head.append("saved by the cache")
        rows = []
        for k, v in report["tokens"].items():
            row: list[Cell] = [_ident(k), _num(v["calls"]), _num(v["input"])]
            if caching:
                row += [Num(f"{v['cached_share']:.1%}"), _num(v["written"])]
            row += [_num(v["output"]), _num(v["cost"])]
            if caching:
                row.append(_num(v["saved"]))
            rows.append(row)
        parts += ["<h2>Model calls</h2>", _table(head, rows)]
    if report.get("reused"):
        counts = ", ".join(f"{escape(phase)} {n}" for phase, n in report["reused"].items())
        parts.append(
            f"<p><b>Reused rollouts</b> (a recorded rollout of the same skill on the same item, "
            f"no model call; <code>evaluation.reuse_rollouts</code>): {counts}.</p>"
        )
    if report.get("unusable"):
        counts = ", ".join(f"{escape(stage)} {n}" for stage, n in report["unusable"].items())
        parts.append(
            f"<p><b>Unusable optimizer replies</b> (after their re-ask, per stage): {counts}. "
            "A step whose reflections were all unusable is skipped as "
            "<code>reflection_unusable</code>.</p>"
        )
    best, initial = texts.get(fin["best_skill_hash"]), texts.get(fin["initial_skill_hash"])
    if best is not None and initial is not None and best != initial:
        parts += [
            "<h2>Best skill against the initial one</h2>",
            _diff_html(unified_diff(initial, best, "initial", "best")),
        ]
    if best is not None:
        parts += [
            f"<h2>Best skill ({_hash(fin['best_skill_hash'])})</h2>",
            f"<pre>{escape(best)}</pre>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
