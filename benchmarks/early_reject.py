"""Exact early reject: target calls per gate decision, and the proof that no verdict changes.

Each case is trained twice (or more) with the real CLI and the offline model, identical but for
`evaluation.early_reject` (and its item order): once with full selection passes, once stopping
each gated evaluation as soon as it cannot pass. The gate verdicts (gate.decided and
update.gated, in ledger order) must be identical, step by step; `replay --verify` must pass on
every early-reject ledger (it re-derives each stop point and bound). Target calls are counted
from the call journal (every call made, recorded or not): the selection rollouts of gated skills
(the baseline's and the final selection's are left out; they are the same in every mode).

The optimizer's step buffer is on (the default): from config_version 4 it shows a rejected
step's verdict and edits, never the candidate's score (which an early reject measures on part
of the split only), so the modes see the same prompts. Runs of config_version 3 needed it off.

Also counted: the epoch-end review's rollouts, and how many of them reused a recorded train
rollout of the same skill and item (evaluation.reuse_rollouts, on by default) instead of a call.

Prints a table (and --json), exits 1 if any verdict differs or a verify fails.
Run: python benchmarks/early_reject.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMON: list[str] = []  # the step buffer on, as the demo ships
GATED = [
    "optimizer.lr_control_mode=autonomous",
    "optimizer.use_skill_aware_reflection=true",
    "optimizer.skill_aware_consolidate_threshold=1",
    "optimizer.slow_update_samples=4",
    "optimizer.longitudinal_pair_policy=changed",
    "models.target.options.base_slip=0.35",
    "optimizer.skill_update_mode=rewrite",
    "optimizer.slow_update_gate_with_selection=true",
    "optimizer.appendix_gated=true",
]
# name -> (config file, settings); each is run with train.seed in SEEDS
CASES: dict[str, tuple[str, list[str]]] = {
    "sim": ("examples/sim.yaml", []),
    "sim, slips": ("examples/sim.yaml", ["models.target.options.base_slip=0.35"]),
    "sim, gated updates": ("examples/sim.yaml", GATED),
    "sim, paired k=1": (
        "examples/sim.yaml",
        ["evaluation.gate_rule=paired", "models.target.options.base_slip=0.35"],
    ),
    "closed_loop": ("examples/closed_loop.yaml", []),
}
MODES: dict[str, list[str]] = {
    "full": ["evaluation.early_reject=false"],
    "early": ["evaluation.early_reject=true"],
    "early, weakest first": [
        "evaluation.early_reject=true",
        "evaluation.early_reject_order=weakest_first",
    ],
}


@dataclass
class Outcome:
    verdicts: list[tuple[str, int, str]]  # (gate kind, step, action), in ledger order
    gate_calls: int  # target calls of gated skills' selection rollouts
    target_calls: int  # every target call of the run
    stopped: list[tuple[int, int]] = field(default_factory=list)  # (evaluated, total)
    review: int = 0  # epoch-end review rollouts
    reused: int = 0  # of them, reuses of a recorded train rollout (no call)
    verified: bool = True
    seconds: float = 0.0


def _skillopt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skillopt", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        check=False,
    )


def _sets(pairs: list[str]) -> list[str]:
    return [x for pair in pairs for x in ("--set", pair)]


def train(config: str, settings: list[str], tmp: Path, name: str) -> Outcome:
    db = tmp / f"{name}.db"
    start = time.perf_counter()
    for args in (
        ["init", config, "--db", str(db), "--name", "bench", *_sets(settings)],
        ["run", "--db", str(db)],
    ):
        res = _skillopt(*args)
        if res.returncode != 0:
            raise SystemExit(f"{name}: skillopt {args[0]} failed: {res.stderr.strip()[-400:]}")
    seconds = time.perf_counter() - start
    verified = _skillopt("replay", "--db", str(db), "--verify").returncode == 0
    return _read(db, verified, seconds)


def _read(db: Path, verified: bool, seconds: float) -> Outcome:
    with sqlite3.connect(db) as conn:
        rows = [
            (t, json.loads(p))
            for t, p in conn.execute(
                "SELECT type, payload FROM events WHERE type IN "
                "('run.created', 'gate.decided', 'update.gated', 'candidate.evaluated', "
                "'final.evaluated') ORDER BY seq"
            )
        ]
        calls = conn.execute(
            "SELECT step, unit FROM llm_calls WHERE role = 'target' "
            "AND stage = 'rollout:selection' AND status = 'ok'"
        ).fetchall()
        total = conn.execute(
            "SELECT count(*) FROM llm_calls WHERE role = 'target' AND status = 'ok'"
        ).fetchone()[0]
        review, reused = conn.execute(
            "SELECT count(*), count(json_extract(payload, '$.reuse_of')) FROM events "
            "WHERE type = 'rollout.scored' AND json_extract(payload, '$.phase') = 'review'"
        ).fetchone()
    initial = next(p["initial_skill_hash"] for t, p in rows if t == "run.created")
    final = [p for t, p in rows if t == "final.evaluated" and p["split"] == "selection"]
    not_gated = {(0, initial[:12])}  # the baseline
    if final and not final[0]["reused"]:
        not_gated.add((0, final[0]["skill_hash"][:12]))
    gate_calls = sum(1 for step, unit in calls if (step, unit.rsplit("@", 1)[-1]) not in not_gated)
    verdicts = [
        ("step", p["step"], p["action"])
        if t == "gate.decided"
        else (p["kind"], p["step"], p["action"])
        for t, p in rows
        if t in ("gate.decided", "update.gated")
    ]
    stopped = [
        (p["early_stop"]["evaluated"], p["early_stop"]["total"])
        for t, p in rows
        if t in ("candidate.evaluated", "update.gated") and p.get("early_stop")
    ]
    return Outcome(verdicts, gate_calls, total, stopped, review, reused, verified, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one seed per case")
    parser.add_argument("--seeds", type=int, nargs="*", default=[42, 7, 1])
    parser.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) - 1)))
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    seeds = args.seeds[:1] if args.quick else args.seeds
    jobs = [(case, seed, mode) for case in CASES for seed in seeds for mode in MODES]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.workers) as pool:

        def one(job: tuple[str, int, str]) -> Outcome:
            case, seed, mode = job
            config, settings = CASES[case]
            extra = [*COMMON, *settings, f"train.seed={seed}", *MODES[mode]]
            name = f"{case}-{seed}-{mode}".replace(" ", "_").replace(",", "").replace("=", "")
            return train(config, extra, Path(tmp), name)

        outcomes = dict(zip(jobs, pool.map(one, jobs), strict=True))

    failures: list[str] = []
    report: dict[str, dict[str, object]] = {}
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"seeds {seeds}; target calls of gated selection rollouts, summed over the seeds\n")
    header = (
        f"{'case':<20} {'mode':<21} {'gates':>5} {'stopped':>7} {'items/stop':>10} "
        f"{'calls':>6} {'per gate':>8} {'saved':>6} {'all target':>10}  verdicts"
    )
    print(header)
    print("-" * len(header))
    for case in CASES:
        full = [outcomes[(case, s, "full")] for s in seeds]
        base_calls = sum(o.gate_calls for o in full)
        for mode in MODES:
            runs = [outcomes[(case, s, mode)] for s in seeds]
            gates = sum(len(o.verdicts) for o in runs)
            stops = [x for o in runs for x in o.stopped]
            calls = sum(o.gate_calls for o in runs)
            same = all(o.verdicts == f.verdicts for o, f in zip(runs, full, strict=True))
            verified = all(o.verified for o in runs)
            if not same:
                failures.append(f"{case} / {mode}: a verdict differs from the full pass")
            if not verified:
                failures.append(f"{case} / {mode}: replay --verify failed")
            share = f"{sum(e for e, _ in stops) / len(stops):.1f}/{stops[0][1]}" if stops else "-"
            saved = 1 - calls / base_calls if base_calls else 0.0
            mark = "identical" if same else "DIFFER"
            print(
                f"{case:<20} {mode:<21} {gates:>5} {len(stops):>7} {share:>10} {calls:>6} "
                f"{calls / max(gates, 1):>8.1f} {saved:>6.1%} "
                f"{sum(o.target_calls for o in runs):>10}  {mark}{'' if verified else ', UNVERIFIED'}"
            )
            report[f"{case} / {mode}"] = {
                "seeds": seeds,
                "gate_decisions": gates,
                "stopped_early": len(stops),
                "mean_items_when_stopped": (
                    sum(e for e, _ in stops) / len(stops) if stops else None
                ),
                "selection_items": stops[0][1] if stops else None,
                "gate_target_calls": calls,
                "calls_per_gate": calls / max(gates, 1),
                "saved_vs_full": saved,
                "all_target_calls": sum(o.target_calls for o in runs),
                "verdicts_identical": same,
                "verified": verified,
                "run_seconds": [round(o.seconds, 2) for o in runs],
                "verdicts": [asdict(o)["verdicts"] for o in runs],
            }
    print("\nepoch-end review rollouts (every mode alike), summed over the seeds")
    for case in CASES:
        runs = [outcomes[(case, s, "full")] for s in seeds]
        review, reused = sum(o.review for o in runs), sum(o.reused for o in runs)
        if review:
            print(f"{case:<20} {review:>5} rollouts, {reused:>5} reused ({reused / review:.0%})")
        report[f"{case} / review"] = {"rollouts": review, "reused": reused}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print()
    for line in failures:
        print(f"FAIL: {line}")
    print("OK: every verdict identical to the full pass" if not failures else "")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
