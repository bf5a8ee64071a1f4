"""The score chart: selection score per step. A pure function of the report data; fixed number
formatting, so the same ledger gives the same bytes.

What it must make visible: with the strict gate the current skill IS the best one after every
accept, so "current" and "best so far" coincide for most runs. They are drawn so that both stay
visible when they overlap: best so far as a wide translucent band, current as a thin dark line on
top of it, both as steps (a score holds until a step changes it). Candidates are marks whose
shape and colour say the verdict (accepted: green dot, rejected: red cross, force-accepted with
the gate off: blue diamond, skipped: grey tick on the axis). A run where nothing was accepted
says so in the plot instead of leaving a flat line to be guessed at."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

W, H = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 44, 40
ACCEPTED, REJECTED, FORCED, SKIPPED = "#1a7f37", "#cf222e", "#0969da", "#8c959f"
CURRENT, BEST = "#24292f", "#8250df"
ACCEPTS = ("accept", "accept_new_best", "force_accept")


def _x(step: int, steps: int) -> float:
    return LEFT + (W - LEFT - RIGHT) * (step / max(steps, 1))


def _y(score: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1.0 - max(0.0, min(1.0, score)))


def _pt(x: float, y: float) -> str:
    return f"{x:.1f},{y:.1f}"


def _stepped(series: Sequence[tuple[int, float]], n: int) -> str:
    """Points of a step line: a score holds until the step that changes it."""
    points = [_pt(_x(series[0][0], n), _y(series[0][1]))]
    for (_, before), (step, score) in zip(series, series[1:], strict=False):
        points.append(_pt(_x(step, n), _y(before)))
        points.append(_pt(_x(step, n), _y(score)))
    return " ".join(points)


def _cross(x: float, y: float, r: float = 4.0) -> str:
    return f"M{x - r:.1f},{y - r:.1f}L{x + r:.1f},{y + r:.1f}M{x - r:.1f},{y + r:.1f}L{x + r:.1f},{y - r:.1f}"


def _diamond(x: float, y: float, r: float = 5.0) -> str:
    return f"M{x:.1f},{y - r:.1f}L{x + r:.1f},{y:.1f}L{x:.1f},{y + r:.1f}L{x - r:.1f},{y:.1f}Z"


def _mark(action: str, x: float, y: float, css: str, label: str) -> str:
    """A candidate's mark; `css` names the kind (class="mark accepted" ...), `label` its title."""
    title = f"<title>{escape(label)}</title>"
    if action == "reject":
        return f'<path class="{css}" d="{_cross(x, y)}" stroke="{REJECTED}" stroke-width="2">{title}</path>'
    if action == "force_accept":
        return f'<path class="{css}" d="{_diamond(x, y)}" fill="{FORCED}">{title}</path>'
    if action in ACCEPTS:
        return f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{ACCEPTED}">{title}</circle>'
    return (
        f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{SKIPPED}">{title}</circle>'
    )


def _legend(forced: bool) -> list[str]:
    """Samples drawn as the chart draws them (lines as <line>, marks as the marks' shapes),
    all under class="legend" so that nothing in it counts as data."""
    items = [
        (f'<line x1="0" y1="5" x2="22" y2="5" stroke="{CURRENT}" stroke-width="1.75"/>', "current"),
        (
            f'<line x1="0" y1="5" x2="22" y2="5" stroke="{BEST}" stroke-width="8" '
            'stroke-opacity="0.35"/>',
            "best so far",
        ),
        (f'<circle cx="11" cy="5" r="4.5" fill="{ACCEPTED}"/>', "accepted"),
        (f'<path d="{_cross(11, 5)}" stroke="{REJECTED}" stroke-width="2"/>', "rejected"),
        *([(f'<path d="{_diamond(11, 5)}" fill="{FORCED}"/>', "force-accepted")] if forced else []),
        (f'<line x1="11" y1="0" x2="11" y2="10" stroke="{SKIPPED}"/>', "skipped"),
    ]
    out, x = ['<g class="legend">'], LEFT
    for sample, name in items:
        out.append(f'<g transform="translate({x},9)">{sample}<text x="28" y="9">{name}</text></g>')
        x += 34 + 7 * len(name)
    return [*out, "</g>"]


def no_accept_note(report: Mapping[str, Any]) -> list[str]:
    """Why the chart is flat, when no step was accepted (empty otherwise)."""
    steps, t = report["steps"], report["totals"]
    if t["accepts"] or report["baseline"] is None:
        return []
    if not steps:
        return ["No step has finished yet: the line is the initial skill's score."]
    reasons: dict[str, int] = {}
    for s in steps:
        if s["action"].startswith("skip"):
            name = s["action"].removeprefix("skip_")
            reasons[name] = reasons.get(name, 0) + 1
    why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    parts = [f"{t['rejects']} rejected (not better than the current skill)"] * bool(t["rejects"])
    parts += [f"{t['skips']} skipped ({why})"] * bool(t["skips"])
    still = report["final"]["best_origin"] == "initial"
    return [f"No step was accepted: {'; '.join(parts)}."] + [
        "The best skill is still the initial one: the flat line is its score."
    ] * still


def score_chart_svg(report: Mapping[str, Any]) -> str:
    steps = report["steps"]
    base = report["baseline"]
    n = max((s["step"] for s in steps), default=0)
    forced = any(s["action"] == "force_accept" for s in steps)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="11" class="score-chart">',
        f"<title>Selection score per step: run {escape(str(report['run']))}</title>",
        f'<rect width="{W}" height="{H}" fill="white"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#d0d7de"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    every = max(1, -(-n // 24))  # at most ~25 step labels, whatever the run's length
    for step in range(0, n + 1, every):
        parts.append(
            f'<text x="{_x(step, n):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{step}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + W - RIGHT) / 2:.1f}" y="{H - 8}" text-anchor="middle">'
        "step (0 = the initial skill)</text>"
    )
    if base is not None:
        current = [(0, base["gate_score"])] + [(s["step"], s["current_score"]) for s in steps]
        best = [(0, base["gate_score"])] + [(s["step"], s["best_score"]) for s in steps]
        parts.append(
            f'<polyline class="line best" points="{_stepped(best, n)}" fill="none" '
            f'stroke="{BEST}" stroke-width="8" stroke-opacity="0.35" stroke-linejoin="round">'
            "<title>best so far</title></polyline>"
        )
        parts.append(
            f'<polyline class="line current" points="{_stepped(current, n)}" fill="none" '
            f'stroke="{CURRENT}" stroke-width="1.75"><title>current skill</title></polyline>'
        )
    for s in steps:
        score = s["candidate_gate_score"]
        x = _x(s["step"], n)
        if score is None:  # skipped: no candidate was scored; a grey tick on the axis
            parts.append(
                f'<line class="skipped" x1="{x:.1f}" y1="{_y(0) - 5:.1f}" x2="{x:.1f}" '
                f'y2="{_y(0) + 5:.1f}" stroke="{SKIPPED}" stroke-width="2">'
                f"<title>step {s['step']}: {escape(s['action'])}</title></line>"
            )
            continue
        kind = (
            "rejected"
            if s["action"] == "reject"
            else "forced"
            if s["action"] == "force_accept"
            else "accepted"
        )
        label = f"step {s['step']}: {s['action']} {score:.4f}"
        parts.append(_mark(s["action"], x, _y(score), f"mark {kind}", label))
    note = no_accept_note(report)
    if note:
        # Above the flat line when there is room, else at the bottom (translucent: a rejected
        # candidate's mark still shows through).
        low = base is None or base["gate_score"] < 0.75
        cx, cy = (LEFT + W - RIGHT) / 2, (TOP + 22) if low else (H - BOTTOM - 16 * len(note) - 4)
        parts.append(
            f'<rect class="note" x="{LEFT + 8}" y="{cy - 14}" width="{W - LEFT - RIGHT - 16}" '
            f'height="{16 * len(note) + 10}" fill="#fff8c5" fill-opacity="0.9" stroke="#d4a72c" rx="4"/>'
        )
        for i, line in enumerate(note):
            parts.append(
                f'<text class="note" x="{cx:.1f}" y="{cy + 16 * i:.1f}" text-anchor="middle" '
                f'font-size="12">{escape(line)}</text>'
            )
    parts += _legend(forced)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
