"""`skillopt bench closed-loop` on the seed bench's own inputs, through the real CLI and real
ledgers: its `{"tasks": [...]}` file without task types, an `ilo` executable (a fake one written
here: `ilo skill get NAME` prints a module, `ilo FILE main` runs a program), its five
documentation modules, its rules for ilo programs, `--model haiku|sonnet|both` against a
loopback server speaking Anthropic's wire format (the real SDK, no network), dollars per task
from the price table, the language x model matrix, `calls` on a bench, and a bench that cannot
start recording nothing."""

from __future__ import annotations

import json
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skillopt.machine.config.prices import (
    MODEL_SHORTHANDS,
    PRICES,
    SHORTHAND_GROUPS,
    resolve_shorthands,
    table_prices,
)
from tests.conftest import ROOT, Cli, event_rows
from tests.fakes import FakeProvider, Fault

SEED = ROOT / "examples" / "seed_bench"
ILO, PYTHON = SEED / "ilo.yaml", SEED / "python.yaml"
MODULES = ["ilo-language", "ilo-builtins-core", "ilo-builtins-text", "ilo-builtins-math"]
FIFTH = "ilo-builtins-io"  # not known to the fake ilo: from skill_dir, or missing
KEY = "sk-test-secret-0123456789"
TASKS = [
    {"id": "hello", "description": "Print the greeting hello.", "expected_output": "hello"},
    {"id": "sum", "description": "Print the sum of 2 and 3.", "expected_output": "5"},
]

FAKE_ILO = """#!{python}
# A stand-in for the ilo CLI: `ilo skill get NAME` prints a module it knows, `ilo FILE main`
# runs a program whose first line is `-- run: main`, whose `--` lines are comments and whose
# `print TEXT` lines print TEXT; anything else is a syntax error.
import sys

KNOWN = {known!r}
args = sys.argv[1:]
if args[:2] == ["skill", "get"] and len(args) == 3:
    if args[2] in KNOWN:
        print(f"# {{args[2]}}\\nThe {{args[2]}} module of ilo: use print.")
        sys.exit(0)
    print(f"error: no skill module named {{args[2]}}", file=sys.stderr)
    sys.exit(1)
if len(args) == 2 and args[1] == "main":
    lines = open(args[0], encoding="utf-8").read().splitlines()
    if not lines or lines[0].strip() != "-- run: main":
        print("error: the first line must be -- run: main", file=sys.stderr)
        sys.exit(1)
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("--"):
            continue
        if line.startswith("print "):
            print(line[len("print "):])
            continue
        print(f"syntax error at line {{n}}: {{line}}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
print("usage: ilo FILE main | ilo skill get NAME", file=sys.stderr)
sys.exit(2)
"""


class SeedProvider(FakeProvider):
    """Answers a task with a working program in the language the system prompt asks for."""

    def answer(self, system: str, user: str) -> str:
        found = re.search(r"Expected output:\n(.*?)(?:\n\n|$)", user, re.S)
        expected = found.group(1) if found else "?"
        if "-- run: main" in system:  # the ilo preset
            return f"-- run: main\n-- out: {expected}\nprint {expected}"
        return f"print({expected!r})"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[SeedProvider]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    provider = SeedProvider()
    yield provider
    provider.close()


def fake_ilo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, known: list[str]) -> Path:
    """The fake `ilo`, first on PATH (the configs name it `ilo`, as the seed's did)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    path = folder / "ilo"
    path.write_text(FAKE_ILO.format(python=sys.executable, known=known))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")
    return path


def seed_tasks(tmp_path: Path, tasks: list[dict[str, Any]] | None = None) -> Path:
    """tasks.json in the seed's shape: an object with a `tasks` array, and other keys."""
    path = tmp_path / "tasks.json"
    body = {"title": "the tasks of ILO-364", "tasks": tasks or TASKS}
    path.write_text(json.dumps(body, indent=2))
    return path


def skill_dir(tmp_path: Path) -> Path:
    """skills/ilo with the module the fake ilo does not know."""
    folder = tmp_path / "skills" / "ilo"
    folder.mkdir(parents=True)
    (folder / f"{FIFTH}.md").write_text(f"# {FIFTH}\nRead and write files with io.\n")
    return folder


def bench(cli: Cli, *args: str, code: int = 0) -> Any:
    res = cli("bench", "closed-loop", *args)
    assert res.code == code, res.out + res.err
    return res


def one_line_error(res: Any, *needles: str) -> None:
    assert res.code == 2, res.out + res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def usd(model: str, attempts: list[dict[str, Any]]) -> float:
    """What the attempts cost at the table's list prices, computed here on its own."""
    price_in, price_out, price_cached = PRICES[model]
    total = sum(
        (a["input_tokens"] - a["cached_tokens"]) * price_in
        + a["cached_tokens"] * price_cached
        + a["output_tokens"] * price_out
        for a in attempts
    )
    return round(total / 1e6, 9)


def test_the_seed_bench_on_its_own_files(
    cli: Cli, fake: SeedProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two languages (ilo with the seed's modules and rules, Python with its plain rules) x
    two models (--model both), on a seed-shaped tasks.json: every task's tokens and dollars,
    the matrix, the calls, and a finished bench that reports again without any key."""
    fake_ilo(tmp_path, monkeypatch, MODULES)
    docs = skill_dir(tmp_path)
    tasks, db, out = seed_tasks(tmp_path), tmp_path / "bench.db", tmp_path / "out"
    # haiku's first answer (hello, ilo) is not ilo: a runtime error, then a repair.
    fake.faults.append(Fault(text="-- run: main\nshow hello", model="claude-haiku-4-5"))
    args = [
        "--db", str(db), "--tasks", str(tasks), "--config", str(ILO), "--config", str(PYTHON),
        "--model", "both", "--name", "seed",
        "--set", f"models.target.base_url={fake.url}", "--set", f"env.options.skill_dir={docs}",
    ]  # fmt: skip
    data = bench(cli, *args, "-o", str(out), "--json").json()

    assert [(c["label"], c["language"], c["model"]) for c in data["configs"]] == [
        ("ilo-haiku", "ilo", "claude-haiku-4-5"),
        ("ilo-sonnet", "ilo", "claude-sonnet-4-5"),
        ("python-haiku", "python", "claude-haiku-4-5"),
        ("python-sonnet", "python", "claude-sonnet-4-5"),
    ]
    assert data["summary"] == "8/8 runs succeeded" and data["complete"]
    assert [(r["task"], r["config"]) for r in data["results"]][:4] == [
        ("hello", "ilo-haiku"),
        ("hello", "ilo-sonnet"),
        ("hello", "python-haiku"),
        ("hello", "python-sonnet"),
    ]
    # task_type defaults to the language: the seed's rows have none
    assert {(r["config"], r["task_type"]) for r in data["results"]} == {
        (c["label"], c["language"]) for c in data["configs"]
    }
    repaired = data["results"][0]
    assert (repaired["attempts_total"], repaired["attempts_to_success"]) == (2, 2)
    assert repaired["attempts"][0]["category"] == "runtime_error"
    assert repaired["repair_tokens_by_turn"] == [7]
    for r in data["results"]:
        n = r["attempts_total"]
        # the loopback server's usage: 11 fresh + 5 cache-read input tokens, 7 output tokens
        assert (r["generation_tokens"], r["input_tokens"], r["cached_tokens"]) == (
            7 * n,
            16 * n,
            5 * n,
        )
        assert r["usd"] == usd(r["model"], r["attempts"]) > 0
        assert [a["usd"] for a in r["attempts"]] == [usd(r["model"], [a]) for a in r["attempts"]]
    # One attempt: haiku $1/$5/$0.10 per million: 11 + 0.5 + 35 = 46.5 millionths of a dollar.
    assert data["results"][2]["usd"] == 0.0000465
    assert data["results"][3]["usd"] == 0.0001395  # sonnet $3/$15/$0.30: 33 + 1.5 + 105
    for c in data["configs"]:
        mine = [r for r in data["results"] if r["config"] == c["label"]]
        assert c["usd"] == round(sum(r["usd"] for r in mine), 9)
        assert c["usd_per_task"] == round(c["usd"] / 2, 9)
        assert c["prices"]["input"] == table_prices(c["model"])[0]  # type: ignore[index]
    assert data["usd"] == round(sum(c["usd"] for c in data["configs"]), 9)

    # The matrix: language x model, like the seed's summary.
    cells = {(m["language"], m["model"]): m for m in data["matrix"]}
    assert list(cells) == [
        ("ilo", "claude-haiku-4-5"),
        ("ilo", "claude-sonnet-4-5"),
        ("python", "claude-haiku-4-5"),
        ("python", "claude-sonnet-4-5"),
    ]
    haiku_ilo = cells[("ilo", "claude-haiku-4-5")]
    assert (haiku_ilo["runs"], haiku_ilo["succeeded"], haiku_ilo["attempts_total"]) == (2, 2, 3)
    assert haiku_ilo["usd"] == round(3 * 0.0000465, 9) and haiku_ilo["configs"] == ["ilo-haiku"]
    md = (out / "seed.md").read_text()
    assert "**8/8 runs succeeded** ($" in md
    assert "## Matrix: language x model" in md
    assert "| language | claude-haiku-4-5 | claude-sonnet-4-5 |" in md
    assert (
        "| ilo | 2/2 working, 3 attempts, 21 gen, $0.000140 ($0.000070/task) | "
        "2/2 working, 2 attempts, 14 gen, $0.000279 ($0.000140/task) |" in md
    )
    assert "| task | ilo-haiku | ilo-sonnet | python-haiku | python-sonnet |" in md
    assert "| hello | working (2, 14 gen, $0.000093) |" in md
    assert "| task | type | outcome | attempts to success | attempts | gen tokens | input " in md
    assert "| sum | ilo | **working** | 1 | 1 | 7 | 16 | - |" in md
    assert "ilo-haiku reads documentation modules: ilo-language (command)," in md
    assert f"{FIFTH} (dir)." in md

    # What the models were sent: the ilo system prompt holds the five modules and the seed's
    # rules; the Python one the plain rules and no modules.
    systems = {b["system"][0]["text"] for b in (e.body for e in fake.log)}
    ilo_system = next(s for s in systems if "-- run: main" in s)
    for module in [*MODULES, FIFTH]:
        assert f"# {module}\n" in ilo_system
    assert "---LANGUAGE DOCUMENTATION---" in ilo_system and "fenced code block" not in ilo_system
    python_system = next(s for s in systems if "-- run: main" not in s)
    assert "no markdown fences" in python_system and "ilo-language" not in python_system
    started = cli("events", "--db", str(db), "--run", "seed", "--json").json()[0]["payload"]
    context = started["arms"][0]["context"]
    assert [(m["module"], m["source"]) for m in context["modules"]] == [
        *((m, "command") for m in MODULES),
        (FIFTH, "dir"),
    ]
    assert "context" not in started["arms"][2]  # Python reads no modules: nothing recorded
    assert "warnings" not in started

    # `calls` on the bench: every target call with its dollars at its configuration's prices.
    calls = cli("calls", "--db", str(db), "--run", "seed", "--json")
    assert calls.code == 0, calls.err
    rows = calls.json()
    assert len(rows) == 9 == sum(r["attempts_total"] for r in data["results"])
    first = next(r for r in rows if r["unit"] == "2:hello")
    assert (first["model"], first["cost"]) == ("claude-haiku-4-5", 0.0000465)
    assert round(sum(r["cost"] for r in rows), 9) == data["usd"]
    shown = cli("calls", "show", first["id"], "--db", str(db))
    assert shown.code == 0 and "no markdown fences" in shown.out
    assert cli("calls", "--db", str(db)).code == 0  # the most recent run: this bench
    assert cli("verify", "--db", str(db)).code == 0

    # Finished: the same command prints the same report, and needs no key for it.
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    before = event_rows(db)
    again = bench(cli, *args, "--json").json()
    assert again == data
    assert event_rows(db) == before


def test_a_missing_module_stops_the_bench_before_it_starts(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_ilo(tmp_path, monkeypatch, MODULES)
    tasks, db = seed_tasks(tmp_path), tmp_path / "bench.db"
    offline = ["--set", "models.target.backend=offline", "--set", "models.target.model=o"]
    args = ["--db", str(db), "--tasks", str(tasks), "--config", str(ILO), *offline]
    res = bench(cli, *args, "--retry-cap", "1", code=2)
    one_line_error(res, "ilo.yaml", f"module {FIFTH!r} not found", f"ilo skill get {FIFTH}")
    assert "exited 1: error: no skill module named" in res.err
    assert f"no {SEED / 'skills' / 'ilo' / FIFTH}.md" in res.err  # the directory was tried
    assert "missing_modules: warn" in res.err  # what the user can do
    assert not db.exists()

    # Allowed by the user: the bench runs without it, and says so in the ledger and report.
    allow = ["--set", "env.options.missing_modules=warn", "--retry-cap", "1", "--name", "w"]
    res = bench(cli, *args, *allow)
    assert f"warning: {ILO}: env.options.skill_modules: module {FIFTH!r} not found" in res.err
    started = cli("events", "--db", str(db), "--run", "w", "--json").json()[0]["payload"]
    (warning,) = started["warnings"]
    assert warning.startswith(f"ilo.yaml: env.options.skill_modules: module {FIFTH!r} not found")
    assert warning.endswith("the target runs without it")
    assert started["arms"][0]["context"]["modules"][-1] == {
        "module": FIFTH,
        "source": "missing",
        "sha256": None,
    }
    assert "Warnings:" in res.out and FIFTH in res.out
    system = cli("calls", "show", cli("calls", "--db", str(db), "--json").json()[0]["id"],
                 "--db", str(db)).out  # fmt: skip
    assert "# ilo-language\n" in system and FIFTH not in system  # never a placeholder


def test_the_ilo_preset_and_configurable_instructions(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's ilo rules are what an ilo config's target reads; other configs keep the
    one-fenced-block instruction; `instructions_text` replaces a preset."""
    fake_ilo(tmp_path, monkeypatch, [*MODULES, FIFTH])
    tasks, db = seed_tasks(tmp_path, TASKS[:1]), tmp_path / "bench.db"
    offline = ["--set", "models.target.backend=offline", "--set", "models.target.model=o"]
    common = ["--db", str(db), "--tasks", str(tasks), "--retry-cap", "1", *offline]

    def system_of(name: str) -> str:
        (row,) = [r for r in cli("calls", "--db", str(db), "--run", name, "--json").json()]
        return str(cli("calls", "show", row["id"], "--db", str(db)).out)

    bench(cli, *common, "--config", str(ILO), "--name", "ilo")
    ilo = system_of("ilo")
    for rule in (
        "The very first line is the comment: -- run: main",
        "add the comment: -- out: <expected>",
        "Keep the program under 50 lines.",
        "no explanation, no markdown fences",
    ):
        assert rule in ilo
    assert "fenced code block" not in ilo
    assert "Expected output:\nhello" in ilo  # show_expected, as the seed's prompt
    bench(cli, *common, "--name", "default")  # the shipped config: unchanged
    assert "in a single fenced code block and nothing else" in system_of("default")
    own = [
        "--set",
        "env.options.instructions=",
        "--set",
        "env.options.instructions_text=Be {language}.",
    ]
    bench(cli, *common, "--config", str(ILO), "--name", "own", *own)
    assert system_of("own").count("Be ilo.") == 1 and "-- run: main" not in system_of("own")
    res = bench(cli, *common, "--config", str(ILO), "--set", "env.options.instructions=zig", code=2)
    one_line_error(res, "ilo.yaml", "env.options.instructions: unknown preset 'zig'", "ilo, plain")


def test_model_shorthands_come_from_the_price_table(cli: Cli, tmp_path: Path) -> None:
    assert resolve_shorthands(["both"]) == ["haiku", "sonnet"]
    assert resolve_shorthands(["sonnet", "both", "Haiku"]) == ["sonnet", "haiku"]
    assert SHORTHAND_GROUPS["both"] == ("haiku", "sonnet")  # the seed's --model both
    for backend, model, key in MODEL_SHORTHANDS.values():
        assert (backend, key) == ("anthropic", "ANTHROPIC_API_KEY")
        assert table_prices(model) is not None  # a shorthand bench always has its dollars
    with pytest.raises(ValueError, match="--model gpt: unknown model shorthand"):
        resolve_shorthands(["gpt"])
    db = tmp_path / "b.db"
    one_line_error(
        cli("bench", "closed-loop", "--db", str(db), "--model", "gpt"),
        "--model gpt: unknown model shorthand (known: haiku, sonnet, opus, both)",
    )
    listed = bench(cli, "--db", str(db), "--model", "both", "--dry-run", "--limit", "1")
    assert listed.out.startswith("1 task(s):")  # a dry run needs no key
    assert not db.exists()


def test_a_bench_that_cannot_start_records_nothing(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing API key is found before the ledger is opened: no file, or no new run."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    db = tmp_path / "b.db"
    one = ["--task", "arithmetic-circle-area"]
    res = bench(cli, "--db", str(db), "--model", "haiku", *one, code=2)
    one_line_error(res, "models.target.api_key_env", "ANTHROPIC_API_KEY is not set")
    assert not db.exists()
    bench(cli, "--db", str(db), "--name", "offline", *one)  # a ledger with a bench in it
    before = event_rows(db)
    res = bench(cli, "--db", str(db), "--model", "sonnet", "--name", "s", *one, code=2)
    one_line_error(res, "ANTHROPIC_API_KEY is not set")
    assert event_rows(db) == before
    runs = cli("runs", "--db", str(db), "--json").json()
    assert [r["run"] for r in runs] == ["offline"]


def test_the_seed_task_shape(cli: Cli, tmp_path: Path) -> None:
    """{"tasks": [...]} beside other keys (one of them may hold the word), no task_type; a bad
    row of it is named by its number and line."""
    tasks = seed_tasks(tmp_path)
    listed = bench(
        cli, "--db", str(tmp_path / "b.db"), "--tasks", str(tasks), "--dry-run", "--json"
    )
    assert [(r["id"], r["task_type"]) for r in listed.json()] == [
        ("hello", "python"),
        ("sum", "python"),
    ]
    bad = seed_tasks(tmp_path, [TASKS[0], {"id": "x", "expected_output": "1"}])
    res = cli("bench", "closed-loop", "--tasks", str(bad), "--dry-run")
    one_line_error(res, "tasks.json row 2 (line 9)", "'description'")
    typed = seed_tasks(tmp_path, [{**TASKS[0], "task_type": ""}])
    one_line_error(cli("bench", "closed-loop", "--tasks", str(typed), "--dry-run"), "'task_type'")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"items": TASKS}))
    one_line_error(
        cli("bench", "closed-loop", "--tasks", str(other), "--dry-run"),
        'an object needs a "data" or "tasks" array',
    )


def test_a_training_run_reads_the_modules_from_its_config_folder(cli: Cli, tmp_path: Path) -> None:
    """The same options train: skill_dir is relative to the config file and recorded absolute;
    a missing module refuses `init` naming it."""
    folder = tmp_path / "cfg"
    folder.mkdir()
    docs = skill_dir(folder)
    config = folder / "code.yaml"
    shipped = ROOT / "skills" / "closed_loop" / "initial.md"
    config.write_text(
        "train: {num_epochs: 1, batch_size: 6}\n"
        f"env:\n  name: closed_loop\n  skill_init: {shipped}\n"
        f"  options: {{skill_modules: [{FIFTH}], skill_dir: skills/ilo, retry_cap: 1}}\n"
    )
    db = tmp_path / "t.db"
    res = cli("init", str(config), "--db", str(db), "--name", "t")
    assert res.code == 0, res.err
    created = cli("events", "--db", str(db), "--run", "t", "--json").json()[0]["payload"]
    assert created["config"]["env"]["options"]["skill_dir"] == str(docs)
    (docs / f"{FIFTH}.md").unlink()
    one_line_error(
        cli("init", str(config), "--db", str(db), "--name", "u"), f"module {FIFTH!r} not found"
    )
