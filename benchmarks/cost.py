"""What a realistic run costs: the reference trainer's call pattern, today's, and the defaults.

A run of the `sim` environment with a long skill (the demo's skill and its formatting rules,
then house-style sections that name no rule: 3,000 tokens, or 4,500 for a Claude Haiku 4.5
target, which caches nothing under 4,096), 120 train / 100 selection / 100 test items, batches of 40, 4 epochs, 8 workers, trained with the real CLI and the real
SDKs against the loopback servers of the tests (tests/fakes.py with `caching=True`): they
answer like the offline model (the target follows the rule the skill states; the optimizer
adds the rules that failed trajectories lack) and report usage under the providers'
prompt-caching rules (tests/fake_cache.py: Anthropic's breakpoints and minimum prefix per
model, OpenAI's automatic prefix caching routed by prompt_cache_key). Model names are real,
so the prices, minimum prefixes and cache prices are the tables' (machine/config/).

For each model pair (Anthropic: a Haiku 4.5 target and a Sonnet 4.5 optimizer, the issue's
mix; OpenAI: gpt-5-mini and gpt-5; `--anthropic T,O` / `--openai T,O` pick others), four
runs of the same config, each against a fresh server (no run reads another's cache):
  (a) the reference trainer's call pattern: a full selection pass per gate decision and fresh
      review and test rollouts (`evaluation.early_reject=false`, and reuse of recorded
      rollouts off where the code has it), every input token at the uncached list price;
  (b) today's behaviour: `config_version=3` with early reject off (and reuse off), and the
      requests as skillopt sent them before issue 14: on OpenAI no prompt_cache_key (the
      option `prompt_cache_key: false`), on Anthropic one breakpoint, on the system block (the
      server ignores the one the optimizer's current skill now ends: LegacyRules), priced
      with the cache reads and writes the server reported;
  (b') the same settings with this code's requests (what `--set config_version=3` alone
      gives now: the cache-aware layout is not a config version's), for comparison;
  (c) the defaults, whatever they are when this runs: no setting at all, priced the same way.
(a) and (c) must reach the same verdicts (every gate.decided and update.gated action, in
order); the script says so when they do not.

Figures per stage (from the call journal, `skillopt calls --json`): calls, input tokens, the
cached share of input (cache reads / input), dollars. Exits 1 if (c) costs more than 35% of
(a) for either pair, or more than 50% of (b) for the Anthropic pair (or a run fails).

The servers are kind to caching in two ways: requests are answered one at a time under a lock,
so concurrent first calls of a prefix do not all miss (on the real APIs they may), and
OpenAI requests without a prompt_cache_key share one cache per model (no overflow to other
machines), which flatters (b) on OpenAI.

Run: python benchmarks/cost.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from synthetic import ROOT, machine_line

from skillopt.adapters.environments.sim import TASK_TYPES
from skillopt.adapters.models.offline import OfflineModel
from skillopt.machine.config.prices import table_prices
from tests.fake_cache import CacheRules
from tests.fakes import RULES_HEADING, FakeProvider

KEY_ENV = "SKILLOPT_BENCH_KEY"
# name -> (backend, target model, optimizer model, skill tokens). The Anthropic pair is the
# issue's (a Haiku-class target, a Sonnet-class optimizer); Claude Haiku 4.5 caches nothing
# under 4,096 tokens, so its skill is 4,500 tokens, the OpenAI pair's the realistic 3,000.
PAIRS: dict[str, tuple[str, str, str, int]] = {
    "anthropic": ("anthropic", "claude-haiku-4-5", "claude-sonnet-4-5", 4500),
    "openai": ("openai", "gpt-5-mini", "gpt-5", 3000),
}
FLOOR_REFERENCE = 0.35  # (c) <= 35% of (a), both pairs
FLOOR_TODAY = 0.50  # (c) <= 50% of (b), the Anthropic pair
REALISTIC = {"train": 120, "selection": 100, "test": 100, "batch": 40, "epochs": 4, "workers": 8}
QUICK = {"train": 36, "selection": 24, "test": 24, "batch": 12, "epochs": 2, "workers": 4}

# House-style prose that pads the skill to a realistic length. It must state no rule of the
# sim tasks (nor a decoy): the target follows the last rule pattern it finds in the skill.
TOPICS = [
    "Voice and tone",
    "Audience",
    "Structure of a report",
    "Tables",
    "Headings",
    "Sources and citations",
    "Abbreviations",
    "Footnotes",
    "Charts",
    "Reviews",
    "Corrections",
    "Accessibility",
    "Glossary",
    "Versioning",
    "Handover",
    "Escalation",
]
SENTENCES = [
    "Keep each paragraph to one idea and lead with the conclusion the reader needs.",
    "Prefer short sentences in the active voice; a reader skims before reading closely.",
    "When a value is uncertain, say how it was estimated and by whom.",
    "Name the team that owns a figure the first time it appears in a document.",
    "Do not repeat a caption in the paragraph that follows it.",
    "Spell out a term on first use and keep the short form from then on.",
    "A table has a title, labelled columns and a note on where its numbers come from.",
    "Charts start their axes at zero unless the note says why they do not.",
    "Quote sources exactly and link to the version that was read.",
    "Mark every open question with the person who will answer it.",
    "A correction names what changed, when, and why the earlier text was wrong.",
    "Keep headings short and informative; a heading is not a sentence.",
    "Alt text describes what a figure shows, not what it looks like.",
    "Summaries go first, details after, and appendices last.",
    "Never mix two styles of emphasis in one section.",
    "Each document carries its owner, its reviewers and its last review.",
]


def house_skill(tokens: int) -> str:
    """The demo's skill followed by house-style sections, about `tokens` tokens (chars / 4)."""
    skill = (ROOT / "skills" / "sim" / "initial.md").read_text().rstrip("\n") + "\n"
    k = 0
    while len(skill) < 4 * tokens:
        topic = TOPICS[k % len(TOPICS)]
        lines = [SENTENCES[(k * 5 + j * 3) % len(SENTENCES)] for j in range(6)]
        body = "\n".join(f"- {line}" for line in lines)
        skill += f"\n## {topic} ({k // len(TOPICS) + 1})\n\n{body}\n"
        k += 1
    for task in TASK_TYPES.values():
        for variant in (task.rule, task.decoy):
            pad = skill.split("## Formatting rules", 1)[1].split("\n## ", 1)[1]
            assert not re.search(variant.pattern, pad), variant.pattern
    return skill


class HouseProvider(FakeProvider):
    """The tests' loopback server, with an optimizer that keeps proposing: where a failed
    trajectory's rule is already stated (the target slipped), it adds a reminder for that task
    type, so every step has a candidate to gate and some lose. It also answers the epoch's
    slow update and meta skill in their own fields (the tests' server answers every other
    optimizer prompt as a reflection)."""

    def answer(self, system: str, user: str) -> str:
        if "## Guidance so far" in user and "slow_update_content" in system:
            content = "- Apply every formatting rule above literally; check the format last."
            return json.dumps({"reasoning": "epoch comparison", "slow_update_content": content})
        if "## Previous memory" in user and "meta_skill_content" in system:
            content = "- Edits stating a house rule explicitly helped; examples lengthen the skill."
            return json.dumps({"reasoning": "what the epoch taught", "meta_skill_content": content})
        text = super().answer(system, user)
        if user in self.items or "### Trajectory" not in user:
            return text
        reply = json.loads(text)
        if reply.get("patch", {}).get("edits") != []:
            return text
        skill = user.split("## Budget")[0]
        failed = re.findall(r"### Trajectory \d+: \S+ \[(\w+)\] FAILED", user)
        edits = []
        for task_type in dict.fromkeys(failed):
            n = skill.count(f"Re-read the {task_type} rule") + 1
            content = f"- Re-read the {task_type} rule before answering (reminder {n})."
            edits.append({"op": "insert_after", "target": RULES_HEADING, "content": content})
        reply["patch"] = {"reasoning": "the target slipped on a stated rule", "edits": edits[:1]}
        return json.dumps(reply)


class LegacyRules(CacheRules):
    """Anthropic's rules applied to the requests as skillopt sent them before issue 14: one
    breakpoint, on the system block (the target's skill; the optimizer's template, after the
    tool schema). A breakpoint inside a message (the optimizer's current skill) is ignored."""

    def anthropic(self, body: dict[str, Any], reply: str) -> dict[str, int]:
        def plain(content: Any) -> Any:
            if isinstance(content, str):
                return content
            return [{k: v for k, v in b.items() if k != "cache_control"} for b in content]

        messages = [{**m, "content": plain(m["content"])} for m in body["messages"]]
        return super().anthropic({**body, "messages": messages}, reply)


def reuse_off() -> dict[str, Any]:
    """The settings that turn reuse of recorded rollouts off, where the code has such a key
    (a boolean config key named *reuse* whose default is on); none where it has not."""
    from pydantic import BaseModel

    from skillopt.machine.config.schema import SkilloptConfig

    out: dict[str, Any] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            kind = f.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                walk(kind, f"{prefix}{name}.")
            elif "reuse" in name and kind is bool and f.default is True:
                out[f"{prefix}{name}"] = False

    walk(SkilloptConfig, "")
    return out


@dataclass(frozen=True)
class Mode:
    label: str
    settings: dict[str, Any]
    legacy: bool = False  # the requests as before issue 14 (see LegacyRules, OPENAI_LEGACY)
    list_prices: bool = False  # every input token at the uncached input price


OPENAI_LEGACY = {"options.prompt_cache_key": False}  # per role: no prompt_cache_key sent


def modes(reference_extra: dict[str, Any]) -> dict[str, Mode]:
    no_reuse = reuse_off()
    return {
        "a": Mode(
            "(a) reference pattern, list prices",
            {"evaluation.early_reject": False, **no_reuse, **reference_extra},
            list_prices=True,
        ),
        "b": Mode(
            "(b) today: v3, requests as before issue 14",
            {"config_version": 3, "evaluation.early_reject": False, **no_reuse},
            legacy=True,
        ),
        "b4": Mode(
            "(b') v3 with this code's requests",
            {"config_version": 3, "evaluation.early_reject": False, **no_reuse},
        ),
        "c": Mode("(c) the defaults", {}),
    }


def sets(pairs: dict[str, Any]) -> list[str]:
    return [x for key, value in pairs.items() for x in ("--set", f"{key}={value}")]


def skillopt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skillopt", *args],
        cwd=ROOT,
        env={**os.environ, KEY_ENV: "sk-bench"},
        text=True,
        capture_output=True,
        check=False,
    )


@dataclass
class Stage:
    calls: int = 0
    input: int = 0  # every input token: fresh, cache reads and cache writes
    cached: int = 0  # cache reads
    written: int = 0  # cache writes
    output: int = 0
    usd: float = 0.0

    def add(self, other: Stage) -> None:
        for k in ("calls", "input", "cached", "written", "output", "usd"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    @property
    def share(self) -> float:
        return self.cached / self.input if self.input else 0.0


@dataclass
class Outcome:
    stages: dict[str, Stage]
    verdicts: list[tuple[str, int, str]]
    stops: int  # gated evaluations stopped early
    seconds: float
    requests: int  # requests the server answered

    @property
    def total(self) -> Stage:
        out = Stage()
        for s in self.stages.values():
            out.add(s)
        return out


def train(
    pair: tuple[str, str, str], mode: Mode, size: dict[str, int], skill: Path, db: Path
) -> Outcome:
    backend, target, optimizer = pair
    items = {"train": size["train"], "selection": size["selection"], "test": size["test"]}
    provider = HouseProvider(items, caching=True)
    if mode.legacy:
        provider.cache = LegacyRules()
    # the offline target slips now and then, whatever the skill's length (it is long here)
    provider.target = OfflineModel("target", "fake", {"free_words": 10**6, "base_slip": 0.05})
    url = provider.url if backend == "anthropic" else f"{provider.url}/v1"
    config: dict[str, Any] = {
        "env.skill_init": skill,
        "env.options.train": size["train"],
        "env.options.selection": size["selection"],
        "env.options.test": size["test"],
        "train.batch_size": size["batch"],
        "train.num_epochs": size["epochs"],
        "train.workers": size["workers"],
        "gradient.workers": size["workers"],
    }
    for role, model in (("target", target), ("optimizer", optimizer)):
        config |= {
            f"models.{role}.backend": backend,
            f"models.{role}.model": model,
            f"models.{role}.base_url": url,
            f"models.{role}.api_key_env": KEY_ENV,
        }
        if mode.legacy and backend == "openai":
            config |= {f"models.{role}.{k}": v for k, v in OPENAI_LEGACY.items()}
    config |= mode.settings
    start = time.perf_counter()
    try:
        for args in (
            ["init", "examples/sim.yaml", "--db", str(db), "--name", db.stem, *sets(config)],
            ["run", "--db", str(db)],
        ):
            res = skillopt(*args)
            if res.returncode != 0:
                raise RuntimeError(
                    f"{db.stem}: skillopt {args[0]} failed: {res.stderr.strip()[-600:]}"
                )
    finally:
        provider.close()
    seconds = time.perf_counter() - start
    res = skillopt("calls", "--db", str(db), "--json")
    if res.returncode != 0:
        raise RuntimeError(f"{db.stem}: skillopt calls failed: {res.stderr.strip()[-600:]}")
    models = {"target": target, "optimizer": optimizer}
    stages: dict[str, Stage] = defaultdict(Stage)
    for r in json.loads(res.stdout):
        if r["status"] != "ok":
            continue
        tin, tout = r["tokens_in"], r["tokens_out"]
        if mode.list_prices:
            price_in, price_out, _ = table_prices(models[r["role"]]) or (0.0, 0.0, 0.0)
            usd = (tin * price_in + tout * price_out) / 1e6
            read = written = 0
        else:
            usd, read, written = r["cost"] or 0.0, r["cache_read"], r["cache_write"]
        stages[r["stage"]].add(Stage(1, tin, read, written, tout, usd))
    verdicts, stops = read_verdicts(db)
    return Outcome(dict(stages), verdicts, stops, seconds, len(provider.log))


def read_verdicts(db: Path) -> tuple[list[tuple[str, int, str]], int]:
    with sqlite3.connect(db) as conn:
        rows = [
            (t, json.loads(p))
            for t, p in conn.execute(
                "SELECT type, payload FROM events WHERE type IN "
                "('gate.decided', 'update.gated', 'candidate.evaluated') ORDER BY seq"
            )
        ]
    verdicts = [
        ("step", p["step"], p["action"])
        if t == "gate.decided"
        else (p["kind"], p["step"], p["action"])
        for t, p in rows
        if t != "candidate.evaluated"
    ]
    stops = sum(
        1 for t, p in rows if t in ("candidate.evaluated", "update.gated") and p.get("early_stop")
    )
    return verdicts, stops


ORDER = [
    "rollout:train",
    "reflect",
    "merge",
    "rank",
    "budget",
    "rollout:selection",
    "rollout:review",
    "slow_update",
    "meta_skill",
    "rollout:test",
]


LABELS = {"a": "(a)", "b": "(b)", "b4": "(b')", "c": "(c)"}


def table(outcomes: dict[str, Outcome], labels: dict[str, str]) -> list[str]:
    names = sorted(
        {s for o in outcomes.values() for s in o.stages},
        key=lambda s: (s not in ORDER, ORDER.index(s) if s in ORDER else 0, s),
    )
    keys = list(outcomes)
    head = f"{'stage':<18}" + "".join(
        f" | {labels[k]:<4} {'calls':>6} {'input':>10} {'cached':>6} {'$':>8}" for k in keys
    )
    lines = [head, "-" * len(head)]
    rows = [(n, {k: outcomes[k].stages.get(n, Stage()) for k in keys}) for n in names]
    rows.append(("total", {k: outcomes[k].total for k in keys}))
    for name, per in rows:
        cells = "".join(
            f" | {'':<4} {s.calls:>6} {s.input:>10,} {s.share:>6.1%} {s.usd:>8.3f}"
            for s in per.values()
        )
        lines.append(f"{name:<18}{cells}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="36/24/24 items, batches of 12, 2 epochs, 4 workers"
    )
    parser.add_argument("--pairs", nargs="*", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument(
        "--skill-tokens", type=int, help="every pair's skill length (default: the pair's own)"
    )
    for pair, (_, target, optimizer, _tokens) in PAIRS.items():
        parser.add_argument(
            f"--{pair}",
            metavar="TARGET,OPTIMIZER",
            default=f"{target},{optimizer}",
            help=f"the {pair} pair's models (default {target},{optimizer})",
        )
    for key in REALISTIC:
        parser.add_argument(
            f"--{key}", type=int, help=f"default {REALISTIC[key]} ({QUICK[key]} with --quick)"
        )
    parser.add_argument(
        "--reference-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further setting of the reference run (a), e.g. a reuse switch under another name",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    size = dict(QUICK if args.quick else REALISTIC)
    for key in size:
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    extra = dict(x.split("=", 1) for x in args.reference_set)
    runs = modes(extra)
    print(machine_line())
    print(
        f"sim: {size['train']} train / {size['selection']} selection / "
        f"{size['test']} test items, batches of {size['batch']}, {size['epochs']} epochs, {size['workers']} workers"
    )
    for mode in runs.values():
        print(
            f"  {mode.label}: {', '.join(f'{k}={v}' for k, v in mode.settings.items()) or 'no setting'}"
            f"{'; the requests as before issue 14' if mode.legacy else ''}"
        )
    failures: list[str] = []
    report: dict[str, Any] = {"size": size, "pairs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.pairs:
            target, optimizer = getattr(args, pair).split(",")
            models = (PAIRS[pair][0], target, optimizer)
            tokens = args.skill_tokens or PAIRS[pair][3]
            skill = Path(tmp) / f"{pair}-skill.md"
            skill.write_text(house_skill(tokens))
            outcomes = {
                k: train(models, m, size, skill, Path(tmp) / f"{pair}-{k}.db")
                for k, m in runs.items()
            }
            print(
                f"\n{pair}: target {target}, optimizer {optimizer}, skill of {tokens:,} tokens; "
                f"runs {', '.join(f'{k} {o.seconds:.0f} s' for k, o in outcomes.items())}"
            )
            print("\n".join(table(outcomes, LABELS)))
            a, b, c = (outcomes[k].total.usd for k in ("a", "b", "c"))
            b4 = outcomes["b4"].total.usd
            same = outcomes["a"].verdicts == outcomes["c"].verdicts
            vs_a, vs_b, vs_b4 = c / a, c / b, c / b4
            print(
                f"gate verdicts: {len(outcomes['c'].verdicts)}, (a) and (c) {'identical' if same else 'DIFFER'}; "
                f"early stops in (c): {outcomes['c'].stops}"
            )
            print(
                f"(c) = {vs_a:.1%} of (a) (floor {FLOOR_REFERENCE:.0%}): {'met' if vs_a <= FLOOR_REFERENCE else 'MISSED'}"
            )
            line = f"(c) = {vs_b:.1%} of (b); {vs_b4:.1%} of (b')"
            if pair == "anthropic":
                line += f" (floor {FLOOR_TODAY:.0%} of (b)): {'met' if vs_b <= FLOOR_TODAY else 'MISSED'}"
            print(line)
            if not same:
                failures.append(f"{pair}: the reference run's verdicts differ from the defaults'")
            if vs_a > FLOOR_REFERENCE:
                failures.append(f"{pair}: (c) is {vs_a:.1%} of (a), over {FLOOR_REFERENCE:.0%}")
            if pair == "anthropic" and vs_b > FLOOR_TODAY:
                failures.append(f"{pair}: (c) is {vs_b:.1%} of (b), over {FLOOR_TODAY:.0%}")
            report["pairs"][pair] = {
                "target": target,
                "skill_tokens": tokens,
                "optimizer": optimizer,
                "runs": {
                    k: {
                        "label": runs[k].label,
                        "settings": {kk: str(vv) for kk, vv in runs[k].settings.items()},
                        "seconds": round(o.seconds, 1),
                        "requests": o.requests,
                        "early_stops": o.stops,
                        "stages": {n: asdict(s) for n, s in o.stages.items()},
                        "total": asdict(o.total),
                    }
                    for k, o in outcomes.items()
                },
                "c_over_a": vs_a,
                "c_over_b": vs_b,
                "c_over_b_prime": vs_b4,
                "verdicts_identical": same,
            }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print()
    for line in failures:
        print(f"FAIL: {line}")
    if not failures:
        print("OK: every floor met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
