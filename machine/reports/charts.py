"""The score chart: selection score per step, accepts and rejects marked, best-so-far line.
A pure function of the report data; fixed number formatting, so the same ledger gives the
same bytes."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

W, H = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 28, 40
COLORS = {
    "accept_new_best": "#1a7f37",
    "accept": "#1a7f37",
    "force_accept": "#0969da",
    "reject": "#cf222e",
}


def _x(step: int, steps: int) -> float:
    return LEFT + (W - LEFT - RIGHT) * (step / max(steps, 1))


def _y(score: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1.0 - max(0.0, min(1.0, score)))


def _pt(x: float, y: float) -> str:
    return f"{x:.1f},{y:.1f}"


def score_chart_svg(report: Mapping[str, Any]) -> str:
    steps = report["steps"]
    base = report["baseline"]
    n = max((s["step"] for s in steps), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="11">',
        f"<title>Selection score per step: run {escape(str(report['run']))}</title>",
        f'<rect width="{W}" height="{H}" fill="white"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#d0d7de"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    for step in range(n + 1):
        parts.append(
            f'<text x="{_x(step, n):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{step}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + W - RIGHT) / 2:.1f}" y="{H - 8}" text-anchor="middle">step</text>'
    )
    if base is not None:
        current = [(0, base["gate_score"])] + [(s["step"], s["current_score"]) for s in steps]
        best = [(0, base["gate_score"])] + [(s["step"], s["best_score"]) for s in steps]
        for series, style in (
            (current, 'stroke="#57606a"'),
            (best, 'stroke="#8250df" stroke-dasharray="5 4"'),
        ):
            points = " ".join(_pt(_x(st, n), _y(sc)) for st, sc in series)
            parts.append(f'<polyline points="{points}" fill="none" stroke-width="1.5" {style}/>')
    for s in steps:
        score = s["candidate_gate_score"]
        x = _x(s["step"], n)
        if score is None:  # skipped: a grey tick on the axis
            parts.append(
                f'<line x1="{x:.1f}" y1="{_y(0) - 5:.1f}" x2="{x:.1f}" y2="{_y(0) + 5:.1f}" stroke="#8c959f"/>'
            )
            continue
        y, color = _y(score), COLORS.get(s["action"], "#57606a")
        label = f"step {s['step']}: {s['action']} {score:.4f}"
        if s["action"] == "reject":
            parts.append(
                f'<path d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}M{x - 4:.1f},{y + 4:.1f}'
                f'L{x + 4:.1f},{y - 4:.1f}" stroke="{color}" stroke-width="2"><title>{label}</title></path>'
            )
        else:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"><title>{label}</title></circle>'
            )
    legend = [
        ("#1a7f37", "accepted"),
        ("#cf222e", "rejected"),
        ("#57606a", "current"),
        ("#8250df", "best so far"),
    ]
    for i, (color, name) in enumerate(legend):
        x = LEFT + 4 + i * 110
        parts.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="17">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
