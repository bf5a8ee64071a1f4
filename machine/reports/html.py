"""`report --html`: one self-contained page (inline SVG and CSS, no network, no script),
with collapsible per-step details. A pure function of the report data and skill texts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from skillopt.machine.core.canonical import short
from skillopt.machine.reports.charts import score_chart_svg
from skillopt.machine.reports.history import unified_diff

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0;display:block;overflow-x:auto;font-size:14px}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
th{background:#f6f8fa}code,pre{font-family:ui-monospace,monospace;font-size:12px}
pre{background:#f6f8fa;padding:8px;overflow-x:auto}details{margin:.3em 0}summary{cursor:pointer}
.accept_new_best,.accept{color:#1a7f37}.reject{color:#cf222e}.force_accept{color:#0969da}
.add{color:#1a7f37}.del{color:#cf222e}
"""


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _diff_html(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        cls = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        lines.append(f'<span class="{cls}">{escape(line)}</span>' if cls else escape(line))
    return "<pre>" + "\n".join(lines) + "</pre>"


def _step_details(s: Mapping[str, Any]) -> str:
    rows = [
        [
            str(i),
            f"<code>{escape(e['op'])}</code>",
            escape(e["target"][:60]),
            escape(e["content"][:160]),
            escape(e["source_type"]),
            f"<b>{escape(e['status'])}</b>",
        ]
        for i, e in enumerate(s["edits"], start=1)
    ]
    edits = (
        _table(["#", "op", "target", "content", "source", "status"], rows)
        if rows
        else "<p>no edits</p>"
    )
    return (
        f"<details><summary>Step {s['step']} (epoch {s['epoch']}): "
        f'<span class="{escape(s["action"])}">{escape(s["action"])}</span></summary>'
        f"<p>Decision: {escape(s['rule'])}</p>{edits}</details>"
    )


def render_html(report: Mapping[str, Any], texts: Mapping[str, str]) -> str:
    fin, base, t = report["final"], report["baseline"], report["totals"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>skillopt report: {escape(str(report['run']))}</title><style>{CSS}</style></head><body>",
        f"<h1>skillopt report: run <code>{escape(str(report['run']))}</code></h1>",
        f"<p>{t['steps']} step(s): {t['accepts']} accepted, {t['rejects']} rejected, {t['skips']} skipped. "
        f"Status: {'complete' if fin['done'] else 'in progress'}.</p>",
        score_chart_svg(report),
        "<h2>Outcome</h2>",
        _table(
            ["skill", "hash", "selection score", "origin"],
            [
                [
                    "initial",
                    f"<code>{short(fin['initial_skill_hash'])}</code>",
                    _f(base and base["gate_score"]),
                    "initial",
                ],
                [
                    "best",
                    f"<code>{short(fin['best_skill_hash'])}</code>",
                    _f(fin["best_score"]),
                    escape(fin["best_origin"]),
                ],
                [
                    "final",
                    f"<code>{short(fin['final_skill_hash'])}</code>",
                    _f(fin["final_score"]),
                    "last current skill",
                ],
            ],
        ),
        "<h2>Steps</h2>",
        _table(
            [
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
            ],
            [
                [
                    str(s["step"]),
                    str(s["epoch"]),
                    f'<span class="{escape(s["action"])}">{escape(s["action"])}</span>',
                    _f(s["rollout_hard"]),
                    str(s["n_edits_merged"]),
                    "–" if s["edit_budget"] is None else str(s["edit_budget"]),
                    str(s["n_edits_selected"]),
                    str(s["edits_applied"]),
                    f"<code>{short(s['candidate_hash'])}</code>" if s["candidate_hash"] else "–",
                    _f(s["selection_hard"]),
                    _f(s["selection_soft"]),
                    _f(s["candidate_gate_score"]),
                    _f(s["current_score"]),
                    _f(s["best_score"]),
                ]
                for s in report["steps"]
            ],
        ),
        "<h2>Step details</h2>",
        *(_step_details(s) for s in report["steps"]),
    ]
    tests = fin["test"]
    if tests:
        roles = list(tests)
        kinds = sorted({k for r in roles for k in tests[r]["buckets"]} - {"overall"}) + ["overall"]
        rows = [
            [escape(k)]
            + [
                "–"
                if (b := tests[r]["buckets"].get(k)) is None
                else f"{b['hard']:.3f} (n={b['total']})"
                for r in roles
            ]
            for k in kinds
        ]
        parts += [
            "<h2>Test split (hard score by task type)</h2>",
            _table(["task type", *roles], rows),
        ]
    if report["tokens"]:
        rows = [
            [
                escape(k),
                str(v["calls"]),
                str(v["input"]),
                str(v["output"]),
                "–" if v["cost"] is None else f"{v['cost']:.4f}",
            ]
            for k, v in report["tokens"].items()
        ]
        parts += [
            "<h2>Model calls</h2>",
            _table(["stage", "calls", "input tokens", "output tokens", "cost"], rows),
        ]
    best, initial = texts.get(fin["best_skill_hash"]), texts.get(fin["initial_skill_hash"])
    if best is not None and initial is not None and best != initial:
        parts += [
            "<h2>Best skill against the initial one</h2>",
            _diff_html(unified_diff(initial, best, "initial", "best")),
        ]
    if best is not None:
        parts += [
            f"<h2>Best skill (<code>{short(fin['best_skill_hash'])}</code>)</h2>",
            f"<pre>{escape(best)}</pre>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
