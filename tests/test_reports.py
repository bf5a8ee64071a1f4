"""Reports people read: the score chart, the HTML page, the best-vs-initial diff. Still pure."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import Cli

SVG = "{http://www.w3.org/2000/svg}"


def test_markdown_links_a_chart_written_next_to_it(
    cli: Cli, small_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.md"
    res = cli("report", "--db", str(small_run), "--md", "-o", str(out))
    assert res.code == 0 and "report.scores.svg" in res.err
    md = out.read_text()
    assert "![Selection score per step](report.scores.svg)" in md
    assert "## Best skill against the initial one" in md and "```diff" in md
    svg = ET.parse(tmp_path / "report.scores.svg").getroot()
    steps = cli("report", "--db", str(small_run), "--json").json()["steps"]
    marks = [el for el in svg.iter() if "mark" in el.get("class", "").split()]
    evaluated = [s for s in steps if s["candidate_gate_score"] is not None]
    assert len(marks) == len(evaluated)  # one mark per evaluated candidate
    titles = [el.findtext(f"{SVG}title") for el in marks]
    assert all(
        f"step {s['step']}: {s['action']}" in t for s, t in zip(evaluated, titles, strict=True)
    )
    lines = svg.findall(f"{SVG}polyline")
    assert sorted(el.get("class") for el in lines) == ["line best", "line current"]


def test_html_is_one_self_contained_page(cli: Cli, small_run: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    assert cli("report", "--db", str(small_run), "--html", "-o", str(page)).code == 0
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<svg" in html and html.count("<details>") == 4
    assert not re.search(r"(src|href)=\"https?://", html)  # nothing fetched from the network
    copy = tmp_path / "copy.db"
    shutil.copy(small_run, copy)
    assert cli("report", "--db", str(copy), "--html").out == html


def test_one_format_at_a_time(cli: Cli, small_run: Path) -> None:
    res = cli("report", "--db", str(small_run), "--md", "--html")
    assert res.code == 2 and "choose one" in res.err


def test_cost_per_stage_uses_each_role_prices(cli: Cli, tmp_path: Path) -> None:
    from tests.conftest import EXAMPLE, SMALL

    db = str(tmp_path / "priced.db")
    prices = [
        "--set",
        "models.target.prices.input=1.0",
        "--set",
        "models.target.prices.output=2.0",
        "--set",
        "models.optimizer.prices.input=10",
        "--set",
        "models.optimizer.prices.output=30",
    ]
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "p", *SMALL, *prices).code == 0
    assert cli("run", "--db", db).code == 0
    tokens = cli("report", "--db", db, "--json").json()["tokens"]
    train = tokens["rollout:train"]
    assert train["cost"] == round((train["input"] * 1.0 + train["output"] * 2.0) / 1e6, 6)
    reflect = tokens["reflect"]
    assert reflect["cost"] == round((reflect["input"] * 10 + reflect["output"] * 30) / 1e6, 6)
    assert "| cost |" in cli("report", "--db", db, "--md").out


def test_cost_is_unknown_without_prices(cli: Cli, small_run: Path) -> None:
    tokens = cli("report", "--db", str(small_run), "--json").json()["tokens"]
    assert tokens and all(t["cost"] is None for t in tokens.values())
