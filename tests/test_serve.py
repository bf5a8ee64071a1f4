"""`skillopt serve` in a real browser: the distribution's Chromium driven by Playwright (no
browser download; .ci/run installs Chromium from the package registry). One server process
per module over one ledger holding a finished run, a run that a `skillopt run` process
extends while a page watches it, and a run whose skill, prompts and model replies hold
markup and scripts. Screenshots go to $SKILLOPT_SCREENSHOTS (else a pytest temp folder).

Without Chromium or Playwright the browser tests skip locally and fail with CI=true."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from skillopt.commands.cli import app
from tests.conftest import (
    EXAMPLE,
    PLAIN,
    ROOT,
    SMALL,
    copy_into_old_schema,
    sets,
    skillopt_process,
)

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS_REPLY = "<script>window.__xss=1</script> no"
XSS_SKILL = "# Hostile skill <script>window.__xss=3</script>"
IMG_REPLY = "<img src=x onerror=window.__xss=2> yes"


def cli(*args: str) -> Any:
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    return res


def _hostile_config(folder: Path) -> Path:
    """A `task` run whose offline target answers with markup: first a <script>, then, once the
    skill states the rule the optimizer finds, an <img onerror>. The skill holds one too."""
    rows = [
        {
            "id": f"q{i:02d}",
            "question": f"Question {i} <b>bold</b>?",
            "reference": IMG_REPLY,
            "offline": {
                "default": XSS_REPLY,
                "variants": [{"pattern": "SAY_YES", "answer": IMG_REPLY}],
                "rule": "Answer SAY_YES to every question.",
                "rule_pattern": "SAY_YES",
                "decoy": "Answer SAY_NO to every question.",
                "decoy_pattern": "SAY_NO",
            },
        }
        for i in range(12)
    ]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "skill.md").write_text(f"{XSS_SKILL}\n\n## Formatting rules\n\n- Answer briefly.\n")
    config = folder / "hostile.yaml"
    config.write_text(
        "train: {num_epochs: 1, batch_size: 4, seed: 1, workers: 2}\n"
        "gradient: {minibatch_size: 2, merge_batch_size: 2, workers: 2}\n"
        "optimizer: {learning_rate: 2, min_learning_rate: 1, use_slow_update: false, "
        "use_meta_skill: false}\n"
        "evaluation: {eval_test: false, min_selection_items: 1}\n"
        "env:\n  name: task\n  skill_init: skill.md\n  data_path: rows.jsonl\n"
        '  split_sizes: "4:4:4"\n'
        "  options:\n    fields: {input: question, expected: reference, id: id}\n"
        "    scorers: [{type: exact}]\n"
        "models:\n  target: {backend: offline, model: t}\n"
        "  optimizer: {backend: offline, model: o}\n"
    )
    return config


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve")
    db = str(folder / "runs.db")
    cli("init", str(EXAMPLE), "--db", db, "--name", "finished", *SMALL)
    cli("run", "--db", db, "--run", "finished", "--quiet")
    cli("init", str(_hostile_config(folder)), "--db", db, "--name", "hostile")
    cli("run", "--db", db, "--run", "hostile", "--quiet")
    # Slow on purpose (one worker, 60 ms a call) so a page can watch it append.
    live = sets("train.workers=1", "models.target.options.latency_ms=60")
    cli("init", str(EXAMPLE), "--db", db, "--name", "live", *SMALL, *PLAIN, *live)
    return Path(db)


def start_server(db: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`skillopt serve --port 0` as a process, and the URL it prints."""
    proc = skillopt_process("serve", "--db", str(db), "--port", "0", *extra)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        pytest.fail(f"serve printed {line!r}; stderr: {proc.communicate()[1]}")
    return proc, line.split(" at ")[1].split()[0]


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.fixture(scope="module")
def server(ledger: Path) -> Iterator[str]:
    proc, url = start_server(ledger)
    yield url
    code, err = stop(proc)
    assert code == 0 and "Traceback" not in err, err


def get(url: str, host: str | None = None) -> tuple[int, str]:
    return fetch(url, host)[:2]


def fetch(url: str, host: str | None = None) -> tuple[int, str, Any]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


# -- the browser -------------------------------------------------------------------------------


def _chromium() -> str | None:
    return os.environ.get("SKILLOPT_CHROMIUM") or shutil.which("chromium") or None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The distribution's Chromium through Playwright; missing: skip, or fail in CI."""
    ci = os.environ.get("CI", "").lower() == "true"
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[test]')"
    executable = _chromium()
    if missing is None and executable is None:
        missing = "no Chromium (Debian: apt-get install chromium; or set SKILLOPT_CHROMIUM)"
    if missing is not None:
        if ci:
            pytest.fail(f"CI=true: the browser tests need a browser: {missing}")
        pytest.skip(missing)
    with sync_playwright() as p:
        found = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield found
        found.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # The pages' Content-Security-Policy forbids inline scripts, which also stops Playwright's
    # waits; bypassing it here makes the escaping tests stricter (escaping alone must hold).
    context = browser.new_context(viewport={"width": 1100, "height": 860}, bypass_csp=True)
    found = context.new_page()
    found.set_default_timeout(20_000)
    errors: list[str] = []
    found.on("pageerror", lambda exc: errors.append(str(exc)))
    yield found
    context.close()
    assert errors == [], errors  # no script error on any page


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("SKILLOPT_SCREENSHOTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_id(db: Path, name: str) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()[0]


# -- the tests ---------------------------------------------------------------------------------


def test_runs_page_and_a_run_page_follow_a_run_as_it_appends(
    ledger: Path, server: str, page: Any, shots: Path
) -> None:
    proc = skillopt_process("run", "--db", str(ledger), "--run", "live", "--quiet")
    try:
        page.goto(server)
        rows = page.locator("#runs tbody tr")
        assert rows.count() == 3
        finished = page.locator("tr", has_text="finished")
        assert finished.locator("[data-k=state]").inner_text() == "done"
        assert finished.locator("[data-k=phase]").inner_text() == "done"
        assert finished.locator("[data-k=best]").inner_text() not in ("", "–")
        assert "tokens" in finished.locator("[data-k=spend]").inner_text()
        live = page.locator("tr", has_text="live")
        assert live.locator("[data-k=state]").inner_text() == "in progress"
        page.screenshot(path=str(shots / "runs.png"))

        live.get_by_role("link", name="live").click()
        events = page.locator("#progress [data-k=events]")
        first = int(events.inner_text())
        page.evaluate("window.__probe = 42")  # gone if the page reloads
        page.wait_for_function(
            f"Number(document.querySelector('#progress [data-k=events]').textContent) > {first} + 20"
        )
        # later events came in without a reload, the progress facts and the steps with them
        assert page.evaluate("window.__probe") == 42
        page.wait_for_function("document.querySelectorAll('#live table.steps tbody tr').length > 1")
        assert page.locator("#progress [data-k=step]").inner_text().endswith("/4")
        # whole pages too, read while the run appends
        for path in ("", f"runs/{run_id(ledger, 'live')}", f"runs/{run_id(ledger, 'live')}/live"):
            status, body = get(server + path)
            assert status == 200 and "could not render" not in body, body[:300]
        page.screenshot(path=str(shots / "run-live.png"))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_run_page_shows_the_chart_the_verdicts_epochs_and_costs(
    ledger: Path, server: str, page: Any, shots: Path
) -> None:
    page.goto(f"{server}runs/{run_id(ledger, 'finished')}")
    assert page.locator("#progress [data-k=state]").inner_text() == "done"
    chart = page.locator("figure.chart svg")
    assert chart.count() == 1
    # accepts are dots, rejects crosses, best a wide band under the current line: told
    # apart where they coincide, with a legend
    assert chart.locator("circle.mark.accepted").count() >= 1
    assert chart.locator("polyline.line.best").count() == 1
    assert chart.locator("polyline.line.current").count() == 1
    widths = [
        float(chart.locator(f"polyline.line.{k}").get_attribute("stroke-width") or 0)
        for k in ("best", "current")
    ]
    assert widths[0] > 2 * widths[1], widths
    for name in ("accepted", "rejected", "current", "best so far"):
        assert chart.locator("g.legend").get_by_text(name, exact=True).count() == 1
    steps = page.locator("table.steps")
    assert steps.locator("tr.epoch").all_inner_texts() == ["epoch 1", "epoch 2"]
    verdicts = steps.locator("span.verdict").all_inner_texts()
    assert len(verdicts) == 4 and "accept_new_best" in verdicts
    assert "candidate" in steps.locator("td.rule").first.inner_text()  # the gate's rule
    costs = page.locator("h2:text('Cost per stage') + table")
    assert "rollout:selection" in costs.inner_text() and "reflect" in costs.inner_text()
    page.screenshot(path=str(shots / "run.png"), full_page=True)


def test_a_skill_version_shows_its_diff_and_why_chain_with_links(
    ledger: Path, server: str, page: Any, shots: Path
) -> None:
    page.goto(f"{server}runs/{run_id(ledger, 'finished')}")
    page.get_by_role("link", name="best skill").click()
    assert page.locator("pre.diff span.add").count() >= 1  # against its parent
    why = page.locator("div.why")
    assert "accept_new_best" in why.locator(".verdict-line").inner_text()
    assert "candidate" in why.locator("p.rule").inner_text()
    assert why.locator("li.minibatch").count() >= 1
    page.screenshot(path=str(shots / "skill.png"), full_page=True)

    # against any other version: the initial one
    page.locator("select[name=against]").select_option(index=0)
    page.get_by_role("button", name="compare").click()
    assert "against=" in page.url
    assert page.locator("pre.diff span.add").count() >= 1

    # an item of a minibatch leads to its calls, a minibatch's call to its prompt and reply
    why = page.locator("div.why")
    item = why.locator("li.minibatch li a").first
    item_id = item.inner_text()
    item.click()
    units = page.locator("table.calls tbody tr td:nth-child(5)").all_inner_texts()
    assert units and all(item_id in u for u in units)
    page.go_back()
    page.locator("div.why li.minibatch").first.get_by_role("link", name="call").click()
    assert page.locator("pre.reply").inner_text().strip() != ""
    assert page.locator("h2", has_text="System").count() == 1


def test_untrusted_text_is_shown_as_text(ledger: Path, server: str, page: Any, shots: Path) -> None:
    rid = run_id(ledger, "hostile")
    page.goto(f"{server}runs/{rid}/calls")
    page.locator("select[name=role]").select_option("target")
    page.get_by_role("button", name="filter").click()
    roles = page.locator("table.calls tbody tr td:nth-child(3)").all_inner_texts()
    assert roles and set(roles) == {"target"}
    page.locator("table.calls tbody tr a").first.click()
    assert page.locator("pre.reply").inner_text().strip() in (XSS_REPLY, IMG_REPLY)
    page.screenshot(path=str(shots / "call.png"), full_page=True)
    for path in (
        f"runs/{rid}/calls?role=target&unit=q0",
        f"runs/{rid}/skills/initial",
        f"runs/{rid}/skills/best",
        f"runs/{rid}",
    ):
        page.goto(server + path)
        page.wait_for_timeout(200)
        assert page.evaluate("window.__xss") is None, path  # no script of theirs ran
        assert page.locator("script").count() == 1, path  # ours alone
        assert page.locator("img").count() == 0, path
    page.goto(f"{server}runs/{rid}/calls?role=target&stage=rollout:train")
    first = page.locator("table.calls tbody tr a").first
    first.click()
    assert page.locator("pre.reply").inner_text().strip() == XSS_REPLY  # shown, as text
    assert "<b>bold</b>" in page.locator("pre.prompt").last.inner_text()
    page.goto(f"{server}runs/{rid}/skills/best?against=initial")
    assert XSS_SKILL in page.locator("pre.skill").inner_text()
    assert page.evaluate("window.__xss") is None


def test_the_call_journal_filters_by_stage(ledger: Path, server: str, page: Any) -> None:
    page.goto(f"{server}runs/{run_id(ledger, 'finished')}/calls")
    every = int(page.locator("p.count").inner_text().split()[0])
    page.locator("select[name=stage]").select_option("reflect")
    page.get_by_role("button", name="filter").click()
    stages = page.locator("table.calls tbody tr td:nth-child(4)").all_inner_texts()
    assert stages and set(stages) == {"reflect"} and len(stages) < every


# -- without a browser -------------------------------------------------------------------------


def _dump(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())


def test_serve_only_reads(ledger: Path, tmp_path: Path) -> None:
    """Every page of a copy of the ledger, then the same database, byte for byte of its
    content; bad refs and ids are pages saying so, never a traceback."""
    copy = tmp_path / "copy.db"
    with sqlite3.connect(ledger) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    before = _dump(copy)
    proc, url = start_server(copy)
    try:
        rid = run_id(copy, "finished")
        status, body = get(f"{url}api/runs/{rid}/status")
        assert status == 200 and json.loads(body)["done"] is True
        call_id = json.loads(
            CliRunner()
            .invoke(app, ["calls", "--db", str(copy), "--run", "finished", "--json"])
            .stdout
        )[0]["id"]
        for path in (
            "",
            "api/runs",
            f"runs/{rid}",
            f"runs/{rid}/live",
            f"runs/{rid}/skills/best?against=initial",
            f"runs/{rid}/skills/step:2",
            f"runs/{rid}/calls?role=optimizer",
            f"runs/{rid}/calls/{call_id}",
            "static/dash.js",
        ):
            status, body = get(url + path)
            assert status == 200, (path, body[:300])
            assert "could not render" not in body
        for path, says in (
            (f"runs/{rid}/skills/nope", "not a skill REF"),
            ("runs/nosuchrun", "nosuchrun"),
            (f"runs/{rid}/calls/cdeadbeef", "has no call"),
            (f"runs/{rid}/calls?step=x", "step number"),
            ("blobs/" + "0" * 64, "no stored text"),
        ):
            status, body = get(url + path)
            assert status == 404 and says in body, (path, body[:300])
            assert "Traceback" not in body
        # a second wall behind the escaping: no inline script runs, whatever a page holds
        policy = fetch(f"{url}runs/{rid}")[2]["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        # another site's page cannot read the ledger through a rebound DNS name
        assert get(url, host="attacker.example")[0] == 400
    finally:
        code, err = stop(proc)
    assert code == 0 and "Traceback" not in err, err
    assert _dump(copy) == before


def test_the_loopback_by_default_and_a_warning_for_every_interface(ledger: Path) -> None:
    proc, url = start_server(ledger)
    code, err = stop(proc)  # at once: a Ctrl-C as it starts stops it too
    assert code == 0 and err == "stopped serving\n", err
    assert url.startswith("http://127.0.0.1:")
    proc, url = start_server(ledger, "--host", "0.0.0.0")
    code, err = stop(proc)
    assert code == 0 and url.startswith("http://0.0.0.0:")
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--host 0.0.0.0" in warnings[0], err


def test_bad_input_is_one_line(ledger: Path, tmp_path: Path) -> None:
    def serve(*args: str, pre: str = "") -> subprocess.CompletedProcess[str]:
        code = f"{pre}import sys; from skillopt.commands.entry import main; sys.argv = ['skillopt', 'serve', *sys.argv[1:]]; main()"
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    missing = serve("--db", str(tmp_path / "none.db"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "none.db" in missing.stderr
    bad_host = serve("--db", str(ledger), "--host", "no such host", "--port", "0")
    assert bad_host.returncode == 2 and "--host no such host" in bad_host.stderr
    assert bad_host.stderr.count("\n") == 1, bad_host.stderr

    proc, url = start_server(ledger)
    try:
        port = url.rsplit(":", 1)[1].strip("/")
        taken = serve("--db", str(ledger), "--port", port)
        assert taken.returncode == 2 and f"--port {port}" in taken.stderr, taken.stderr
        assert taken.stderr.count("\n") == 1, taken.stderr
    finally:
        stop(proc)

    # an older schema: opening would upgrade it (a write), so serve refuses and says how
    old = tmp_path / "old.db"
    copy_into_old_schema(ledger, old, "0004_status_views")
    before = _dump(old)
    refused = serve("--db", str(old), "--port", "0")
    assert refused.returncode == 2 and "skillopt db upgrade" in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1 and _dump(old) == before

    # without the serve extra: one line naming it
    no_extra = serve("--db", str(ledger), pre="import sys; sys.modules['starlette'] = None; ")
    assert no_extra.returncode == 2, no_extra.stderr
    assert no_extra.stderr.count("\n") == 1 and "skillopt[serve]" in no_extra.stderr


def test_help_says_what_it_shows_and_how_it_binds() -> None:
    text = " ".join(CliRunner().invoke(app, ["serve", "--help"]).stdout.split())
    for words in ("read-only", "127.0.0.1", "0.0.0.0", "skillopt[serve]", "why"):
        assert words in text, words
