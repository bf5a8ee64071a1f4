"""Exact early reject and the paired gate (machine/decisions/gate.py).

The pure part: the bounds (hard, soft, mixed; ties, every remaining item at the maximum, the
exact boundary), checked against what a full pass would decide for many completions; the paired
statistic and its edge cases. Then through the real CLI and ledger: a run with early reject
stops an evaluation early, reaches the verdicts a full pass reaches, verifies, resumes from a
crash inside the stopped evaluation to the same ledger, and refuses forgeries of the stop; a
paired-gate run records its statistics and rejects a candidate the strict rule accepts.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from skillopt.commands.runner import load_state
from skillopt.ledger.ledger import Ledger
from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions import gate as gate_rules
from skillopt.machine.decisions.scoring import aggregate, decide_gate, effects, gate_score
from skillopt.machine.loop.reducer import reduce
from tests.conftest import ALL_GATED, EXAMPLE, PLAIN, SMALL, Cli, event_rows, sets
from tests.test_crash_points import _resume, _truncate
from tests.test_forgery import _forge

CURRENT = "c" * 64  # the current (initial) skill
CAND = "d" * 64  # a candidate
Pair = tuple[float, float]


def _state(
    current: list[Pair], cand: list[Pair] | dict[int, Pair], **evaluation: Any
) -> TrainerState:
    """A run whose current skill scored `current` on the selection split and whose candidate has
    scored `cand` (the first items, or {index: scores})."""
    ids = [f"s{i}" for i in range(len(current))]
    config = {
        "env": {"name": "sim", "skill_init": "x.md"},
        "train": {"num_epochs": 1, "batch_size": 2},
        "evaluation": {"early_reject": True, **evaluation},
    }
    c = config["evaluation"]
    metric, w = c.get("gate_metric", "hard"), c.get("gate_mixed_weight", 0.5)
    hard, soft, n = aggregate(current)

    def rollout(skill: str, item: str, score: Pair) -> ev.RolloutScored:
        return ev.RolloutScored(
            phase="selection",
            step=0,
            skill_hash=skill,
            item_id=item,
            hard=score[0],
            soft=score[1],
            fail_reason="",
            task_type="t",
            trajectory_hash="0" * 64,
        )

    scored = cand if isinstance(cand, dict) else dict(enumerate(cand))
    return reduce(
        [
            ev.RunCreated(
                run_name="r",
                config=config,
                config_sha256="0" * 64,
                initial_skill_hash=CURRENT,
                skillopt_version="0",
            ),
            ev.DatasetLoaded(
                env="sim",
                train=["t1", "t2"],
                selection=ids,
                test=["x1"],
                task_types=["t"],
                fingerprints={},
                steps_per_epoch=1,
                total_steps=1,
            ),
            *(rollout(CURRENT, i, s) for i, s in zip(ids, current, strict=True)),
            ev.BaselineEvaluated(
                skill_hash=CURRENT,
                n=n,
                hard=hard,
                soft=soft,
                metric=metric,
                gate_score=gate_score(hard, soft, metric, w),
            ),
            *(rollout(CAND, ids[k], s) for k, s in sorted(scored.items())),
        ]
    )


def _stop(current: list[Pair], cand: list[Pair], **evaluation: Any) -> ev.EarlyStop | None:
    return gate_rules.early_stop(_state(current, cand, **evaluation), CAND, "step")


# --- the strict bound ----------------------------------------------------------------------

HALF = [(1.0, 1.0), (1.0, 1.0), (0.0, 0.0), (0.0, 0.0)]  # current hard 0.5


def test_hard_bound_stops_at_the_tie_and_not_before() -> None:
    assert _stop(HALF, [(0.0, 0.0)]) is None  # 0.75 is still reachable
    stop = _stop(HALF, [(0.0, 0.0), (0.0, 0.0)])  # at most 0.5: a tie, and ties reject
    assert stop == ev.EarlyStop(rule="strict", evaluated=2, total=4, bound=0.5, threshold=0.5)


def test_hard_bound_with_every_remaining_item_at_the_max_is_the_full_score() -> None:
    cand = [(1.0, 1.0), (0.0, 0.0), (0.0, 0.0)]
    assert _stop(HALF, cand) is not None
    full = cand + [(1.0, 1.0)]
    hard, soft, _ = aggregate(full)
    assert _stop(HALF, cand).bound == gate_score(hard, soft, "hard", 0.5)  # type: ignore[union-attr]
    assert decide_gate(hard, 0.5, 0.5, True).action == "reject"


def test_soft_bound_at_the_exact_boundary() -> None:
    current = [(0.0, 0.2), (0.0, 1.0)]  # soft 0.6
    assert _stop(current, [(0.0, 0.2)], gate_metric="soft") is not None  # (0.2 + 1) / 2 = 0.6
    assert _stop(current, [(0.0, 0.2000001)], gate_metric="soft") is None


def test_mixed_bound_uses_both_halves() -> None:
    current = [(1.0, 1.0), (0.0, 0.25)]  # 0.75 * 0.5 + 0.25 * 0.625 = 0.53125
    mixed = {"gate_metric": "mixed", "gate_mixed_weight": 0.25}
    assert _stop(current, [(0.0, 0.5)], **mixed) is None  # could still reach 0.5625
    stop = _stop(current, [(0.0, 0.0)], **mixed)  # at most 0.5
    assert stop is not None and stop.bound == 0.5 and stop.threshold == 0.53125


def test_a_perfect_current_skill_rejects_before_any_item() -> None:
    perfect = [(1.0, 1.0)] * 3
    assert _stop(perfect, []) == ev.EarlyStop(
        rule="strict", evaluated=0, total=3, bound=1.0, threshold=1.0
    )


def test_no_early_stop_when_everything_is_scored_or_the_gate_or_the_option_is_off() -> None:
    losing = [(0.0, 0.0)] * 4
    assert _stop(HALF, losing) is None  # a full pass: the ordinary verdict
    assert _stop(HALF, losing[:3], use_gate=False) is None
    assert _stop(HALF, losing[:3], early_reject=False) is None
    assert _stop(HALF, [(0.0, 2.0), (0.0, 0.0), (0.0, 0.0)]) is None  # outside 0..1: no bound


@pytest.mark.parametrize("metric", ["hard", "soft", "mixed"])
def test_a_stop_is_exactly_when_every_completion_rejects(metric: str) -> None:
    """Sound: when it stops, every completion of the unscored items rejects under a full pass.
    Tight: when it goes on, the completion with every unscored item at the maximum accepts."""
    rng = random.Random(7)
    values = [0.0, 0.1, 0.2, 0.3, 1 / 3, 0.7, 0.9, 1.0]
    stops = 0
    for _ in range(150):
        n = rng.randint(1, 7)
        w = rng.choice([0.1, 0.3, 0.5, 0.7])

        def item() -> Pair:
            return (float(rng.random() < 0.6), rng.choice(values))

        current = [item() for _ in range(n)]
        cand = [item() for _ in range(rng.randint(0, n - 1))]
        s = _state(current, cand, gate_metric=metric, gate_mixed_weight=w)
        stop = gate_rules.early_stop(s, CAND, "step")
        completions = [cand + [item() for _ in range(n - len(cand))] for _ in range(6)]
        best_case = cand + [(1.0, 1.0)] * (n - len(cand))
        verdicts = []
        for full in [best_case, *completions]:
            hard, soft, _ = aggregate(full)
            score = gate_score(hard, soft, metric, w)
            verdicts.append(decide_gate(score, s.current_score, s.best_score, True).action)
        if stop is not None:
            stops += 1
            assert set(verdicts) == {"reject"}
        else:
            assert verdicts[0] != "reject"
    assert stops >= 5


def test_the_horizon_is_the_fewest_items_that_could_settle_a_stop() -> None:
    def horizon(cand: list[Pair]) -> int | None:
        return gate_rules.horizon(_state(HALF, cand), CAND, "step")

    assert horizon([]) == 2  # two losses make 0.5 at most
    assert horizon([(0.0, 0.0)]) == 1
    assert horizon([(1.0, 1.0), (1.0, 1.0)]) == 2  # the last two, both lost: 0.5, a tie
    assert horizon([(1.0, 1.0)] * 3) is None  # already 0.75 at least: no reject possible


# --- the order and the pending items -----------------------------------------------------------


def test_weakest_first_orders_by_the_current_skill_then_the_split() -> None:
    current = [(1.0, 1.0), (0.0, 0.5), (1.0, 1.0), (0.0, 0.0)]
    plan = _state(current, [])
    assert gate_rules.pending(plan, CAND, "step") == ("s0", "s1", "s2", "s3")
    weak = _state(current, {1: (1.0, 1.0)}, early_reject_order="weakest_first")
    assert gate_rules.order(weak, "step") == ["s1", "s3", "s0", "s2"]
    assert gate_rules.pending(weak, CAND, "step") == ("s3", "s0", "s2")  # s1 is scored
    settled = _state(HALF, [(0.0, 0.0), (0.0, 0.0)])
    assert gate_rules.pending(settled, CAND, "step") == ()


def test_a_candidate_scored_earlier_continues_from_its_items() -> None:
    """Scores from an earlier (stopped) evaluation count: only the rest is pending, and they
    settle the stop whatever order they were scored in."""
    s = _state(HALF, {3: (0.0, 0.0)})
    assert gate_rules.pending(s, CAND, "step") == ("s0", "s1", "s2")
    s = _state(HALF, {1: (0.0, 0.0), 3: (0.0, 0.0)})
    assert gate_rules.pending(s, CAND, "step") == ()


# --- the paired statistic --------------------------------------------------------------------


def _paired(diffs: list[float], margin: float) -> gate_rules.PairedStats:
    return gate_rules.paired_stats([Fraction(d) for d in diffs], margin)


def test_paired_statistic() -> None:
    stats = _paired([1, 1, 0, 0], 1.0)
    assert stats.mean == Fraction(1, 2) and stats.var == Fraction(1, 3)
    assert stats.se == pytest.approx((1 / 12) ** 0.5)
    assert stats.passes()  # 0.5 > 0.2887
    assert not _paired([1, 1, 0, 0], 2.0).passes()  # 0.5 <= 0.5774


def test_one_gain_among_n_is_exactly_one_standard_error() -> None:
    diffs = [1.0] + [0.0] * 11
    assert _paired(diffs, 1.0).mean == Fraction(1, 12)
    assert not _paired(diffs, 1.0).passes()  # mean == se: ties reject, decided exactly
    assert _paired(diffs, 0.999).passes()
    assert _paired([1.0, 1.0] + [0.0] * 10, 1.0).passes()  # two gains: t = sqrt(22/10)


def test_paired_edge_cases() -> None:
    assert _paired([0.5], 0.0).passes()  # n < 2, no margin: mean > 0
    assert not _paired([0.5], 1.0).passes()  # n < 2 with a margin: noise unknown, reject
    assert _paired([0.5], 1.0).se is None
    assert _paired([0.25] * 5, 10.0).passes()  # zero variance: every item gained
    assert _paired([0.25] * 5, 10.0).se == 0.0
    assert not _paired([0.0] * 5, 0.0).passes()  # no change is no gain
    assert _paired([-1.0, 1.0, 1.0], 0.0).passes()  # mean 1/3 > 0 and no margin
    assert not _paired([-1.0, -1.0, 1.0], 0.0).passes()


def test_paired_verdict_and_its_bound() -> None:
    current = [(0.0, 0.0)] * 6 + [(1.0, 1.0)] * 6  # 0.5
    one_gain = [(1.0, 1.0)] + [(0.0, 0.0)] * 5 + [(1.0, 1.0)] * 6  # 7/12
    s = _state(current, one_gain, gate_rule="paired", gate_margin=1.0)
    base = gate_rules.baseline(s, "step")
    assert decide_gate(7 / 12, 0.5, 0.5, True).action == "accept_new_best"
    verdict, paired = gate_rules.verdict(s, CAND, 7 / 12, None, base)
    assert verdict.action == "reject"
    assert paired is not None and (paired.applied, paired.margin, paired.n) == (True, 1.0, 12)
    assert paired.mean_diff == 1 / 12 and paired.se == pytest.approx(1 / 12)
    assert "<= 1 x se" in verdict.rule
    # the paired bound: the sum of differences with every unscored item at the maximum. Losing
    # the six items the current skill passes leaves at most the six it fails: a sum of 0.
    lost = {6 + k: (0.0, 0.0) for k in range(6)}
    part = _state(current, lost, gate_rule="paired")
    stop = gate_rules.early_stop(part, CAND, "step")
    assert stop == ev.EarlyStop(rule="paired", evaluated=6, total=12, bound=0.0, threshold=0.0)
    verdict, paired = gate_rules.verdict(part, CAND, 0.0, stop, base)
    assert (verdict.action, paired) == ("reject", None)
    assert verdict.rule.startswith("early reject after 6 of 12 items")
    one_kept = {**lost, 11: (1.0, 1.0)}
    assert (
        gate_rules.early_stop(_state(current, one_kept, gate_rule="paired"), CAND, "step") is None
    )


def test_paired_falls_back_to_strict_without_the_current_skills_scores() -> None:
    s = _state([(1.0, 1.0), (0.0, 0.0)], [(1.0, 1.0), (1.0, 1.0)], gate_rule="paired")
    base = gate_rules.Baseline("e" * 64, 0.5, 0.5)  # a skill with no recorded rollouts
    verdict, paired = gate_rules.verdict(s, CAND, 1.0, None, base)
    assert verdict.action == "accept_new_best" and "paired rule not applied" in verdict.rule
    assert paired is not None and not paired.applied and paired.reason


# --- through the CLI -------------------------------------------------------------------------

# A small run whose gates stop early (and a later candidate is accepted): the target slips, so
# candidates lose items the current skill passes. No step buffer: it shows the optimizer the
# rejected candidate's score, which an early reject does not measure.
RUN = [
    *SMALL,
    *PLAIN,
    # seed 5: under config_version 3 (the reference's insert_after layout) the offline
    # trajectories moved; this seed again has gates that stop early.
    *sets("env.options.test=4", "models.target.options.base_slip=0.35", "train.seed=5"),
]


def _events(db: Path, type_: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT payload FROM events WHERE type = ? ORDER BY seq", (type_,)
        ).fetchall()
    return [json.loads(r[0]) for r in rows]


def _target_calls(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT count(*) FROM llm_calls WHERE role = 'target' AND stage = 'rollout:selection'"
        ).fetchone()[0]


def _run(cli: Cli, db: Path, *extra: str) -> Path:
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "g", *RUN, *extra).code == 0
    res = cli("run", "--db", str(db))
    assert res.code == 0, res.err
    return db


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import invoke as cli

    d = tmp_path_factory.mktemp("gates")
    full = _run(cli, d / "full.db", *sets("evaluation.early_reject=false"))  # on by default
    early = _run(cli, d / "early.db", *sets("evaluation.early_reject=true"))
    return full, early


def test_early_reject_reaches_the_full_passes_verdicts_for_fewer_calls(
    cli: Cli, runs: tuple[Path, Path]
) -> None:
    full, early = runs
    stopped = [e for e in _events(early, "candidate.evaluated") if e.get("early_stop")]
    assert stopped, "no evaluation stopped early"
    for e in stopped:
        s = e["early_stop"]
        assert s["rule"] == "strict" and s["evaluated"] < s["total"] == 12
        assert e["n"] == s["evaluated"] and s["bound"] <= s["threshold"]
    assert all("early_stop" not in e for e in _events(full, "candidate.evaluated"))

    def verdicts(db: Path) -> list[tuple[int, str]]:
        return [(e["step"], e["action"]) for e in _events(db, "gate.decided")]

    assert verdicts(early) == verdicts(full)
    assert {a for _, a in verdicts(full)} >= {"reject", "accept_new_best"}
    assert _target_calls(early) < _target_calls(full)
    for db in runs:
        res = cli("replay", "--db", str(db), "--verify", "--json")
        assert res.code == 0 and res.json()["verified"] is True, res.out


def test_a_stopped_candidate_records_only_its_items_and_is_never_cached(
    runs: tuple[Path, Path],
) -> None:
    _, early = runs
    stopped = next(e for e in _events(early, "candidate.evaluated") if e.get("early_stop"))
    rolled = [
        e["item_id"]
        for e in _events(early, "rollout.scored")
        if e["skill_hash"] == stopped["skill_hash"] and e["phase"] == "selection"
    ]
    ledger = Ledger.open(str(early))
    try:
        state = load_state(ledger, ledger.find_run(None).id)
    finally:
        ledger.close()
    assert state.dataset is not None
    assert rolled == state.dataset.selection[: stopped["early_stop"]["evaluated"]]  # plan order
    assert stopped["skill_hash"] not in state.selection_cache
    assert stopped["skill_hash"] in {r.candidate_hash for r in state.records}


def test_a_crash_inside_a_stopped_evaluation_resumes_to_the_same_ledger(
    tmp_path: Path, runs: tuple[Path, Path]
) -> None:
    _, early = runs
    expected = event_rows(early)
    seqs = [r[0] for r in expected if r[1] == "candidate.evaluated"]
    at = next(
        seq
        for seq, e in zip(seqs, _events(early, "candidate.evaluated"), strict=True)
        if e.get("early_stop")
    )
    # right after the rollout that settled the stop, and in the middle of the evaluation
    for k in (at - 1, at - 4):
        work = tmp_path / f"work{k}.db"
        shutil.copy(early, work)
        _truncate(work, k)
        _resume(work)
        assert event_rows(work) == expected, k


def _refused(cli: Cli, db: Path, seq: int, named: str) -> None:
    res = cli("replay", "--db", str(db), "--verify", "--json")
    assert res.code == 1, res.out
    problem = res.json()["problem"]
    assert (problem["seq"], named in problem["message"]) == (seq, True), problem


def _stopped_index(db: Path) -> int:
    return next(k for k, e in enumerate(_events(db, "candidate.evaluated")) if e.get("early_stop"))


def _full_index(db: Path) -> int:
    return next(
        k
        for k, e in enumerate(_events(db, "candidate.evaluated"))
        if not e.get("early_stop") and not e["cache_hit"]
    )


def _with_stop(p: dict[str, Any], **change: Any) -> dict[str, Any]:
    return {**p, "early_stop": {**p["early_stop"], **change}}


def _claim_stop(p: dict[str, Any]) -> dict[str, Any]:
    stop = {"rule": "strict", "evaluated": p["n"], "total": 12, "bound": 0.0, "threshold": 1.0}
    return {**p, "early_stop": stop}


EARLY_FORGERIES = [
    ("bound", lambda p: _with_stop(p, bound=p["early_stop"]["bound"] - 0.25), "early stop"),
    ("point", lambda p: _with_stop(p, evaluated=p["early_stop"]["evaluated"] + 1), "early stop"),
    ("dropped", lambda p: {k: v for k, v in p.items() if k != "early_stop"}, "early stop"),
    ("claimed", _claim_stop, "early stop"),
]


@pytest.mark.parametrize(
    ("name", "change", "named"), EARLY_FORGERIES, ids=[f[0] for f in EARLY_FORGERIES]
)
def test_a_forged_early_stop_is_refused(
    cli: Cli, tmp_path: Path, runs: tuple[Path, Path], name: str, change: Any, named: str
) -> None:
    _, early = runs
    db = tmp_path / "forged.db"
    shutil.copy(early, db)
    nth = _full_index(db) if name == "claimed" else _stopped_index(db)
    seq = _forge(db, "candidate.evaluated", change, nth)
    _refused(cli, db, seq, named)


def test_a_rollout_out_of_the_evaluation_order_is_refused(
    cli: Cli, tmp_path: Path, runs: tuple[Path, Path]
) -> None:
    _, early = runs
    db = tmp_path / "reordered.db"
    shutil.copy(early, db)
    stopped = _events(db, "candidate.evaluated")[_stopped_index(db)]
    with sqlite3.connect(db) as conn:
        first = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'rollout.scored' AND seq < ("
            " SELECT seq FROM events WHERE type = 'rollout.scored'"
            " AND json_extract(payload, '$.skill_hash') = ? ORDER BY seq LIMIT 1)",
            (stopped["skill_hash"],),
        ).fetchone()[0]
    rows = _events(db, "rollout.scored")
    second = rows[first + 1]["item_id"]
    seq = _forge(db, "rollout.scored", lambda p: {**p, "item_id": second}, first)
    _refused(cli, db, seq, "out of order")


# --- the paired gate through the CLI ---------------------------------------------------------


def test_a_paired_gate_records_its_statistics_and_rejects_what_strict_accepts(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "paired.db"
    args = [*SMALL, *PLAIN, *sets("env.options.test=4", "evaluation.gate_rule=paired")]
    args += sets("evaluation.gate_margin=2", "evaluation.early_reject=true")
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "p", *args).code == 0
    assert cli("run", "--db", str(db)).code == 0
    decided = _events(db, "gate.decided")
    assert decided and all(
        d["paired"]["applied"] or d["rule"].startswith("early reject")
        for d in decided
        if d.get("paired")
    )
    overruled = [
        d for d in decided if d["action"] == "reject" and d["candidate_score"] > d["current_score"]
    ]
    assert overruled, "no candidate that the strict rule accepts was rejected"
    stats = overruled[0]["paired"]
    assert stats["applied"] and stats["n"] == 12 and stats["margin"] == 2.0
    assert 0 < stats["mean_diff"] <= 2.0 * stats["se"]
    assert "paired: mean per-item gain" in overruled[0]["rule"]
    res = cli("replay", "--db", str(db), "--verify", "--json")
    assert res.code == 0 and res.json()["verified"] is True, res.out
    nth = decided.index(overruled[0])
    for change in (
        lambda p: {**p, "paired": {**p["paired"], "mean_diff": p["paired"]["mean_diff"] + 0.01}},
        lambda p: {**p, "paired": {**p["paired"], "se": 0.0}},
        lambda p: {k: v for k, v in p.items() if k != "paired"},
    ):
        forged = tmp_path / "forged.db"
        shutil.copy(db, forged)
        _refused(cli, forged, _forge(forged, "gate.decided", change, nth), "gate verdict")


def test_slow_update_and_appendix_gates_stop_early_too(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "updates.db"
    args = [*SMALL, *ALL_GATED, *sets("env.options.test=4", "optimizer.use_step_buffer=false")]
    args += sets("evaluation.early_reject=true", "evaluation.early_reject_order=weakest_first")
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "u", *args).code == 0
    assert cli("run", "--db", str(db)).code == 0
    gated = _events(db, "update.gated")
    stopped = [k for k, e in enumerate(gated) if e.get("early_stop")]
    assert stopped, "no slow-update or appendix gate stopped early"
    assert all(gated[k]["action"] == "reject" for k in stopped)
    res = cli("replay", "--db", str(db), "--verify", "--json")
    assert res.code == 0 and res.json()["verified"] is True, res.out
    seq = _forge(db, "update.gated", lambda p: _with_stop(p, bound=1.5), stopped[0])
    _refused(cli, db, seq, "early stop")


def test_verdict_effects_follow_the_recorded_action() -> None:
    assert effects("reject", 0.9, 0.5) == (False, False)  # a paired reject is never a new best
    assert effects("accept", 0.6, 0.8) == (True, False)
    assert effects("accept_new_best", 0.9, 0.8) == (True, True)
    assert effects("force_accept", 0.8, 0.8) == (True, False)
    assert effects("force_accept", 0.9, 0.8) == (True, True)
