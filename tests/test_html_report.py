"""`report --html` as a person reads it: the chart's lines and marks tell apart what they show
and a legend names them, the page states the markdown report's config header and epoch
boundaries, a run that accepted nothing says why in the chart, hashes are cut with the full
value in a title, and every text from the ledger is escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import ALL_MECHANISMS, EXAMPLE, PLAIN, SMALL, Cli, sets

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parent.parent


class Page(HTMLParser):
    """Every tag of a page as a browser's parser sees it, with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _chart(html: str) -> ET.Element:
    svg = re.search(r"<svg .*?</svg>", html, re.S)
    assert svg is not None
    return ET.fromstring(svg.group(0))


def _text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities decoded."""
    return unescape(" ".join(re.sub(r"<[^>]+>", "", fragment).split()))


def _html(cli: Cli, db: Path, run: str | None = None) -> str:
    res = cli("report", "--db", str(db), *(["--run", run] if run else []), "--html")
    assert res.code == 0, res.err
    return res.out


def test_the_lines_and_marks_are_told_apart_and_named(cli: Cli, tmp_path: Path) -> None:
    small_run = tmp_path / "runs.db"  # a seed whose run has both accepts and rejects
    args = ["--name", "small", *SMALL, *PLAIN, "--set", "train.seed=3"]
    assert cli("init", str(EXAMPLE), "--db", str(small_run), *args).code == 0
    assert cli("run", "--db", str(small_run)).code == 0
    svg = _chart(_html(cli, small_run))
    lines = {el.get("class"): el for el in svg.iter(f"{SVG}polyline")}
    assert set(lines) == {"line current", "line best"}
    current, best = lines["line current"], lines["line best"]
    # Drawn so that both stay visible where they coincide (the strict gate: after an accept the
    # current skill is the best): another colour and a band several times the line's width.
    assert current.get("stroke") != best.get("stroke")
    assert float(best.get("stroke-width", "1")) >= 3 * float(current.get("stroke-width", "1"))
    legend = svg.find(f"{SVG}g[@class='legend']")
    assert legend is not None
    names = [t.text for t in legend.iter(f"{SVG}text")]
    assert names == ["current", "best so far", "accepted", "rejected", "skipped"]
    steps = cli("report", "--db", str(small_run), "--json").json()["steps"]
    marks = [el for el in svg.iter() if "mark" in (el.get("class") or "").split()]
    kinds = {el.get("class"): (el.tag, el.get("fill"), el.get("stroke")) for el in marks}
    actions = {s["action"] for s in steps}
    assert "reject" in actions and actions & {"accept", "accept_new_best"}  # both drawn here
    # accepts and rejects differ in shape and colour
    accepted, rejected = kinds["mark accepted"], kinds["mark rejected"]
    assert accepted[0] != rejected[0] and accepted[1:] != rejected[1:]


def test_the_page_states_the_markdown_header_and_epoch_boundaries(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    assert (
        cli("init", str(EXAMPLE), "--db", str(db), "--name", "m", *SMALL, *ALL_MECHANISMS).code == 0
    )
    assert cli("run", "--db", str(db)).code == 0
    md = cli("report", "--db", str(db), "--md").out
    html = _html(cli, db)
    md_header = [
        line[2:].replace("**", "").replace("`", "")
        for line in md.split("## Outcome")[0].splitlines()
        if line.startswith("- ")
    ]
    assert len(md_header) >= 5 and any("Warning" in line for line in md_header)
    config = html.split('<ul class="config">')[1].split("</ul>")[0]
    html_header = [_text(li) for li in re.findall(r"<li[^>]*>(.*?)</li>", config, re.S)]
    assert html_header == md_header
    # The epoch-boundary table: the markdown's rows, cell for cell.
    md_rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in md.split("## Epoch boundaries")[1].split("\n\n")[1].splitlines()[2:]
    ]
    assert md_rows and len(md_rows) == 2
    section = html.split("<h2>Epoch boundaries</h2>")[1].split("</table>")[0]
    html_rows = [
        [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", section)
    ]
    assert [r for r in html_rows if r] == md_rows


def test_a_run_that_accepted_nothing_says_why_in_the_chart(
    cli: Cli, small_run: Path, tmp_path: Path
) -> None:
    db = tmp_path / "n.db"
    strict = sets("evaluation.gate_rule=paired", "evaluation.gate_margin=100")
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "n", *SMALL, *strict).code == 0
    assert cli("run", "--db", str(db)).code == 0
    report = cli("report", "--db", str(db), "--json").json()
    assert report["totals"]["accepts"] == 0 and report["totals"]["rejects"] > 0
    svg = _chart(_html(cli, db))
    note = " ".join(t.text or "" for t in svg.iter(f"{SVG}text") if t.get("class") == "note")
    assert f"No step was accepted: {report['totals']['rejects']} rejected" in note
    assert "best skill is still the initial one" in note
    # ... and a run that accepted something has no such note.
    ok = _chart(_html(cli, small_run))
    assert not [t for t in ok.iter(f"{SVG}text") if t.get("class") == "note"]


def test_hashes_are_cut_with_the_full_value_in_a_title(cli: Cli, small_run: Path) -> None:
    html = _html(cli, small_run)
    report = cli("report", "--db", str(small_run), "--json").json()
    for s in report["steps"]:
        if s["candidate_hash"]:
            full = s["candidate_hash"]
            assert f'<code title="{full}">{full[:8]}</code>' in html
    best = report["final"]["best_skill_hash"]
    assert f'<code title="{best}">{best[:12]}</code>' in html
    # the steps table may wrap, never widen the page: no cell holds a full 64-digit hash
    steps_table = html.split("<h2>Steps</h2>")[1].split("</table>")[0]
    assert not re.search(r">[0-9a-f]{64}<", steps_table)


def test_every_text_from_the_ledger_is_escaped(cli: Cli, tmp_path: Path) -> None:
    hostile = '<script>alert("skill")</script> & <img src=x onerror=alert(1)>'
    skill = tmp_path / "skill.md"
    text = (ROOT / "skills" / "sim" / "initial.md").read_text("utf-8")
    skill.write_text(text.replace("# Formatting assistant", f"# Formatting {hostile}"), "utf-8")
    db = tmp_path / "h.db"
    args = ["--set", f"env.skill_init={skill}", *SMALL]
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "h", *args).code == 0
    assert cli("run", "--db", str(db)).code == 0
    html = _html(cli, db)
    page = Page(html)
    assert not [tag for tag, _ in page.tags if tag in ("script", "img")]
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
    assert "&lt;script&gt;alert(&quot;skill&quot;)&lt;/script&gt; &amp; &lt;img" in html
    # the text is still all there for a reader, in the best skill's section
    assert hostile in unescape(html.split("<h2>Best skill (")[1])
