"""`why` and skill history, from the ledger alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from skillopt.machine.decisions.skilldoc import for_export
from tests.conftest import ALL_GATED, ALL_MECHANISMS, EXAMPLE, PLAIN, SMALL, Cli

ACCEPTING = {"accept_new_best", "accept", "force_accept"}


def _demo(cli: Cli, tmp_path: Path, *extra: str) -> str:
    db = str(tmp_path / "demo.db")
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "demo", *extra).code == 0
    assert cli("run", "--db", db).code == 0
    return db


def test_every_accepted_skill_has_a_complete_chain(cli: Cli, tmp_path: Path) -> None:
    db = _demo(cli, tmp_path)
    versions = cli("skill", "log", "--db", db, "--json").json()
    accepted = [v for v in versions if v["fate"] in ACCEPTING]
    assert len(accepted) >= 3
    selection = set(
        cli("events", "--db", db, "--type", "dataset.loaded", "--json").json()[0]["payload"][
            "selection"
        ]
    )
    for version in accepted:
        tree = cli("why", version["hash"], "--db", db, "--json").json()
        assert tree["verdict"]["kind"] == "gate" and tree["verdict"]["action"] == version["fate"]
        assert tree["verdict"]["candidate_score"] > tree["verdict"]["current_score"]
        assert cli("skill", "show", tree["parent"]["skill"][:10], "--db", db).code == 0
        applied = [e for e in tree["edits"] if e["status"].startswith("applied")]
        assert applied
        for edit in applied:
            assert edit["traced"], edit
            assert edit["proposed_by"]
            for proposer in edit["proposed_by"]:
                assert proposer["items"]
                for key in ("prompt", "reply"):
                    assert cli("blob", proposer["call"][key], "--db", db).code == 0
                if proposer["source_type"] == "failure":
                    assert any(
                        not item["passed"] and item["fail_reason"] for item in proposer["items"]
                    )
            for node in edit["merge_path"]:
                assert cli("blob", node["call"]["reply"], "--db", db).code == 0
        flips = tree["flips"]
        assert set(flips["fail_to_pass"]) | set(flips["pass_to_fail"]) <= selection
        assert flips["fail_to_pass"]  # an accepted skill passes something its parent failed
        text = cli("why", version["hash"], "--db", db).out
        assert f"Skill {version['hash'][:12]}" in text
        assert max(len(line) for line in text.splitlines()) <= 100


def test_rejected_and_skipped_edits_are_explained(cli: Cli, tmp_path: Path) -> None:
    db = _demo(cli, tmp_path, *PLAIN)
    versions = cli("skill", "log", "--db", db, "--json").json()
    rejected = next(v for v in versions if v["fate"] == "reject")
    tree = cli("why", rejected["hash"], "--db", db, "--json").json()
    assert tree["verdict"]["action"] == "reject" and "ties reject" in tree["verdict"]["rule"]
    statuses = [
        e["status"]
        for v in versions
        if v["origin"] == "candidate"
        for e in cli("why", f"candidate:{v['step']}", "--db", db, "--json").json()["edits"]
    ]
    assert any(
        s.startswith("skipped_") for s in statuses
    )  # the demo aims one edit at a missing heading


def test_refs_name_the_right_skill(cli: Cli, tmp_path: Path) -> None:
    db = _demo(cli, tmp_path, *PLAIN)  # no slow update: the final skill is step 6's
    status = cli("status", "--db", db, "--json").json()
    show = {
        ref: cli("skill", "show", ref, "--db", db).out
        for ref in ("best", "current", "final", "initial")
    }
    assert show["current"] == show["final"]
    assert show["initial"] == (Path(EXAMPLE).parent.parent / "skills/sim/initial.md").read_text()
    assert cli("skill", "show", status["best_skill_hash"][:8], "--db", db).out == show["best"]
    assert cli("skill", "show", "step:0", "--db", db).out == show["initial"]
    assert cli("skill", "show", "step:6", "--db", db).out == show["current"]
    log = cli("skill", "log", "--db", db, "--json").json()
    assert (
        cli("skill", "show", "candidate:1", "--db", db).out
        == cli("skill", "show", log[1]["hash"], "--db", db).out
    )
    for bad, message in [
        ("step:99", "completed 6 step(s)"),
        ("zzz", "not a skill REF"),
        ("abcdef12", "no skill of this run"),
    ]:
        res = cli("skill", "show", bad, "--db", db)
        assert res.code == 2 and message in res.err, (bad, res.err)


def test_diff_and_export(cli: Cli, tmp_path: Path) -> None:
    db = _demo(cli, tmp_path)
    diff = cli("skill", "diff", "initial", "best", "--db", db).out
    assert diff.startswith("--- initial (") and "\n+++ best (" in diff
    assert "+- Write money with a $ sign" in diff
    assert cli("skill", "diff", "best", "best", "--db", db).out == ""
    # step 4's skill holds the epoch-1 placeholder, still empty (the demo's best skill holds the
    # epoch-2 guidance since config_version 3 changed its trajectory)
    out = tmp_path / "step4.md"
    assert cli("skill", "export", "step:4", "-o", str(out), "--db", db).code == 0
    shown = cli("skill", "show", "step:4", "--db", db).out  # as stored, regions and all
    assert "<!-- SLOW_UPDATE_START -->\n<!-- SLOW_UPDATE_END -->" in shown
    assert out.read_text() == for_export(shown) and "SLOW_UPDATE" not in out.read_text()
    best = cli("skill", "show", "best", "--db", db).out
    exported = tmp_path / "best.md"
    assert cli("skill", "export", "best", "-o", str(exported), "--db", db).code == 0
    assert exported.read_text() == for_export(best)  # guidance kept where it holds something
    text = cli("skill", "log", "--db", db).out
    assert text.splitlines()[0].split() == ["hash", "step", "fate", "score", "length"]


def test_why_the_initial_skill(cli: Cli, tmp_path: Path) -> None:
    db = _demo(cli, tmp_path)
    tree = cli("why", "initial", "--db", db, "--json").json()
    assert tree["origin"] == "initial" and tree["verdict"] == {"kind": "initial"}
    assert tree["selection"]["n"] == 24


@pytest.mark.parametrize("extra", [ALL_MECHANISMS, ALL_GATED], ids=["forced", "gated"])
def test_appendix_and_slow_update_skills_have_their_own_chain(
    cli: Cli, tmp_path: Path, extra: list[str]
) -> None:
    db = _demo(cli, tmp_path, *SMALL, *extra)
    versions = cli("skill", "log", "--db", db, "--json").json()
    memory = [v for v in versions if v["origin"] in ("appendix", "slow_update")]
    assert {v["origin"] for v in memory} == {"appendix", "slow_update"}
    known = {v["hash"] for v in versions}
    for version in memory:
        tree = cli("why", version["hash"], "--db", db, "--json").json()
        assert tree["parent"]["skill"] in known  # every version descends from a known one
        gated = extra is ALL_GATED and version["fate"] != "slow_update:placeholder"
        assert tree["verdict"]["kind"] == ("gate" if gated else "written")
        text = cli("why", version["hash"], "--db", db).out
        assert ("appendix:" in text) == (version["origin"] == "appendix")
        assert ("guidance" in text) == (version["origin"] == "slow_update")
