"""`skillopt why`: the evidence chain behind a skill version, from the ledger alone.

verdict -> parent and edits (applied, skipped, dropped by the budget) -> for each edit the
merge calls it came through and the reflection minibatches that proposed it, with their
items and fail reasons and the prompt/reply blobs -> the selection items that flipped.
Edits are traced by content id (op, target, content); a merge that rewrote an edit breaks
that trail, and the chain says so at the node where it breaks instead of guessing.
"""

from __future__ import annotations

from typing import Any

from skillopt.machine.core.edits import Edit
from skillopt.machine.core.events import CallRecord, MergeNode
from skillopt.machine.core.state import StepProgress, TrainerState, eval_key
from skillopt.machine.decisions.scoring import is_failure
from skillopt.machine.reports.history import current_after, versions

ACCEPTING = ("accept_new_best", "accept", "force_accept")


def _call(call: CallRecord | None) -> dict[str, Any] | None:
    if call is None:
        return None
    return {
        "prompt": call.prompt_hash,
        "reply": call.response_hash,
        "model": call.model,
        "call_id": call.call_id,  # its row in the call journal ("" in runs older than it)
    }


def _step_of(state: TrainerState, skill: str) -> StepProgress | None:
    """The step that made `skill` current (else the first that built it)."""
    built = [
        p
        for _, p in sorted(state.details.items())
        if p.candidate and p.candidate.candidate_hash == skill
    ]
    accepted = [p for p in built if p.decided and p.decided.action in ACCEPTING]
    return (accepted or built or [None])[0]


def _proposers(state: TrainerState, p: StepProgress, mb_id: str, edit_id: str) -> dict[str, Any]:
    prop = p.proposals[mb_id]
    items = state.step_items(p.step)
    return {
        "minibatch": mb_id,
        "source_type": prop.source_type,
        "call": _call(prop.call),
        "items": [
            {
                "item_id": i,
                "task_type": items[i].task_type,
                "passed": not is_failure(items[i].hard),
                "fail_reason": items[i].fail_reason,
            }
            for i in prop.item_ids
            if i in items
        ],
    }


def trace(state: TrainerState, p: StepProgress, edit: Edit) -> dict[str, Any]:
    """Merge path and proposing minibatches of one selected edit."""
    assert p.merged is not None
    nodes: dict[str, MergeNode] = {n.id: n for n in p.merged.nodes}
    has = {k: {e.id for e in v.edits} for k, v in p.proposals.items()}
    has |= {k: {e.id for e in n.edits} for k, n in nodes.items()}
    path: list[dict[str, Any]] = []
    proposers: list[dict[str, Any]] = []
    broken: list[dict[str, Any]] = []

    def walk(source: str) -> None:
        if source not in nodes:
            proposers.append(_proposers(state, p, source, edit.id))
            return
        node = nodes[source]
        path.append(
            {
                "node": node.id,
                "level": node.level,
                "group": node.group,
                "ok": node.ok,
                "fallback": node.fallback,
                "inputs": node.inputs,
                "call": _call(node.call),
            }
        )
        carriers = [i for i in node.inputs if edit.id in has.get(i, set())]
        if not carriers:
            broken.append({"node": node.id, "inputs": node.inputs})
        for source_id in carriers:
            walk(source_id)

    if edit.id in has.get(p.merged.root, set()):
        walk(p.merged.root)
    return {
        "merge_path": path,
        "proposed_by": proposers,
        "rewritten_at": broken,
        "traced": bool(proposers) and not broken,
    }


def measured_ancestor(state: TrainerState, skill: str) -> str:
    """The nearest ancestor with selection scores: a slow-update or appendix skill written
    into the current one carries its parent's score without being measured."""
    parents = {v.hash: v.parent for v in versions(state)}
    seen = set()
    while skill not in seen and not state.scored(eval_key("selection", skill)):
        seen.add(skill)
        parent = parents.get(skill)
        if parent is None:
            break
        skill = parent
    return skill


def _flips(state: TrainerState, parent: str, skill: str) -> dict[str, list[str]]:
    assert state.dataset is not None
    parent = measured_ancestor(state, parent)
    before = state.scored(eval_key("selection", parent))
    after = state.scored(eval_key("selection", skill))
    ids = [i for i in state.dataset.selection if i in before and i in after]
    return {
        "fail_to_pass": [
            i for i in ids if is_failure(before[i].hard) and not is_failure(after[i].hard)
        ],
        "pass_to_fail": [
            i for i in ids if not is_failure(before[i].hard) and is_failure(after[i].hard)
        ],
    }


def _score(state: TrainerState, skill: str) -> dict[str, Any] | None:
    s = state.selection_cache.get(skill)
    return (
        None
        if s is None
        else {"hard": s.hard, "soft": s.soft, "n": s.n, "gate_score": s.gate_score}
    )


def why(state: TrainerState, skill: str) -> dict[str, Any]:
    marks = [
        name
        for name, h in (
            ("initial", state.initial_hash),
            ("current", state.current_hash),
            ("best", state.best_hash),
        )
        if h == skill
    ]
    out: dict[str, Any] = {"skill": skill, "is": marks, "selection": _score(state, skill)}
    fin = state.final_selection
    if fin is not None and fin.promoted and fin.skill_hash == skill:
        out["promoted"] = {"score": fin.gate_score, "best_before": fin.best_score_before}
    if skill == state.initial_hash:
        return out | {"origin": "initial", "verdict": {"kind": "initial"}}
    memory = _memory(state, skill)
    if memory is not None:
        return out | memory
    p = _step_of(state, skill)
    if p is None or p.candidate is None or p.merged is None:
        return out | {"origin": "unknown", "verdict": {"kind": "unknown"}}
    d = p.decided
    verdict: dict[str, Any] = {"kind": "pending"}
    if d is not None:
        verdict = {
            "kind": "force-accepted" if d.action == "force_accept" else "gate",
            "action": d.action,
            "metric": d.metric,
            "candidate_score": d.candidate_score,
            "current_score": d.current_score,
            "best_score": d.best_score,
            "rule": d.rule,
        }
    sel = p.selected
    rows = {r.index: r.status for r in p.candidate.report}
    edits = [
        {
            "index": i,
            **e.model_dump(mode="json"),
            "status": rows.get(i, "not_applied"),
            **trace(state, p, e),
        }
        for i, e in enumerate(sel.edits if sel else [], start=1)
    ]
    merged = list(p.merged.edits)
    ranking = sel.ranking if sel else None
    rw = p.candidate.rewrite
    return out | {
        "origin": f"step {p.step}",
        "step": p.step,
        "epoch": p.epoch,
        "verdict": verdict,
        "parent": {
            "skill": p.parent_hash,
            "is": f"current after step {p.step - 1}"
            if current_after(state, p.step - 1) == p.parent_hash
            else "parent",
        },
        "update_mode": p.candidate.mode,
        "budget": sel.budget if sel else None,
        "n_merged": len(merged),
        "edits": edits,
        "suggestions": [x.model_dump(mode="json") for x in sel.suggestions] if sel else [],
        "skill_candidates": [x.model_dump(mode="json") for x in p.merged.skill_candidates],
        "rewrite": None
        if rw is None
        else {"ok": rw.ok, "change_summary": rw.change_summary, "call": _call(rw.call)},
        "dropped_by_budget": [
            {"index": i, **merged[i].model_dump(mode="json")}
            for i in (sel.dropped_indices if sel else [])
            if i < len(merged)
        ],
        "ranking": None
        if ranking is None
        else {
            "ok": ranking.ok,
            "reasoning": ranking.reasoning,
            "error": ranking.error,
            "fallback": ranking.fallback,
            "call": _call(ranking.call),
        },
        "flips": _flips(state, p.parent_hash, skill),
    }


def _gate(g: Any) -> dict[str, Any]:
    return {
        "kind": "gate",
        "action": g.action,
        "metric": "gate",
        "candidate_score": g.gate_score,
        "current_score": g.current_score,
        "best_score": g.best_score,
        "rule": g.rule,
    }


def _memory(state: TrainerState, skill: str) -> dict[str, Any] | None:
    """A skill an appendix flush or a slow update wrote: what wrote it and from what."""
    for step, p in sorted(state.details.items()):
        a = p.appendix
        if a is not None and a.skill_hash == skill and a.parent_hash != skill:
            g = p.appendix_gate
            return {
                "origin": f"appendix flush at step {step}",
                "step": step,
                "epoch": p.epoch,
                "verdict": _gate(g) if g else {"kind": "written", "action": "written into current"},
                "parent": {"skill": a.parent_hash, "is": "current after the step's verdict"},
                "appendix": {
                    "notes": a.notes,
                    "added": a.added,
                    "duplicates": a.duplicates,
                    "total": a.total,
                    "consolidated": a.consolidation is not None and a.consolidation.kept,
                },
            }
    for epoch, su in sorted(state.slow_updates.items()):
        if su.skill_hash == skill and su.parent_hash != skill:
            g = state.slow_gates.get(epoch)
            written = {"kind": "written", "action": su.action}
            return {
                "origin": f"slow update at the end of epoch {epoch}",
                "epoch": epoch,
                "step": epoch * (state.dataset.steps_per_epoch if state.dataset else 0),
                "verdict": _gate(g) if g else written,
                "parent": {"skill": su.parent_hash, "is": f"current at the end of epoch {epoch}"},
                "slow_update": {
                    "action": su.action,
                    "content": su.content_hash,
                    "pairs": [x.model_dump() for x in su.pairs],
                    "call": _call(su.call),
                },
            }
    return None


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render_why(tree: dict[str, Any], width: int = 100) -> str:
    """Plain text, top-down, lines at most `width` columns."""
    h = tree["skill"][:12]
    marks = f" ({', '.join(tree['is'])})" if tree["is"] else ""
    sel = tree.get("selection")
    lines = [f"Skill {h}{marks}: {tree['origin']}"]
    if sel:
        lines.append(
            f"  selection: hard {sel['hard']:.4f}, soft {sel['soft']:.4f}, "
            f"gate {sel['gate_score']:.4f} on {sel['n']} items"
        )
    v = tree["verdict"]
    if v["kind"] == "initial":
        lines.append("  the initial skill of the run (scored by the baseline)")
    elif v["kind"] in ("gate", "force-accepted"):
        lines.append(f"  verdict: {v['action']} at step {tree['step']} (metric {v['metric']})")
        lines.append(f"  rule: {_short(v['rule'], width - 8)}")
    if "promoted" in tree:
        lines.append(
            f"  promoted to best at the end: {tree['promoted']['score']:.4f} > "
            f"{tree['promoted']['best_before']:.4f}"
        )
    elif v["kind"] == "written":
        lines.append(f"  written into the current skill ({v['action']}), not gated")
    if "parent" in tree and "edits" not in tree:
        lines.append(f"  parent {tree['parent']['skill'][:12]} ({tree['parent']['is']})")
    if "appendix" in tree:
        ap = tree["appendix"]
        lines.append(
            f"  appendix: +{len(ap['added'])} note(s), {ap['duplicates']} duplicate(s), {ap['total']} in all"
        )
        lines += [f"    - {_short(n, width - 6)}" for n in ap["added"]]
    if "slow_update" in tree:
        su = tree["slow_update"]
        cats = ", ".join(f"{x['id']}:{x['category']}" for x in su["pairs"]) or "no pairs"
        lines.append(_short(f"  guidance {su['content'][:12]} from {cats}", width))
    if "edits" not in tree:
        return "\n".join(lines) + "\n"
    parent = tree["parent"]
    lines += [
        "",
        f"Parent {parent['skill'][:12]} ({parent['is']})",
        f"Edits selected: {len(tree['edits'])} of {tree['n_merged']} merged, budget {tree['budget']}",
    ]
    for e in tree["edits"]:
        target = f" `{_short(e['target'], 24)}`" if e["target"] else ""
        lines.append(f"  {e['index']}. [{e['op']}]{target} {_short(e['content'], width - 40)}")
        lines.append(f"     -> {e['status']} ({e['source_type']}, support {e['support_count']})")
        for node in e["merge_path"]:
            flag = "" if node["ok"] else f" [reply unusable: {node['fallback']}]"
            lines.append(f"     merged in {node['node']} from {', '.join(node['inputs'])}{flag}")
        for broken in e["rewritten_at"]:
            lines.append(
                f"     not traceable below {broken['node']}: the merge rewrote it "
                f"(its inputs: {', '.join(broken['inputs'])})"
            )
        for prop in e["proposed_by"]:
            call = prop["call"] or {}
            lines.append(
                f"     proposed by minibatch {prop['minibatch']} ({prop['source_type']}; "
                f"prompt {str(call.get('prompt', ''))[:12]}, reply {str(call.get('reply', ''))[:12]})"
            )
            for item in prop["items"]:
                why_ = "passed" if item["passed"] else _short(item["fail_reason"], width - 40)
                lines.append(f"       {item['item_id']} [{item['task_type']}] {why_}")
    if tree["dropped_by_budget"]:
        lines.append(f"Dropped by the budget ({len(tree['dropped_by_budget'])}):")
        for e in tree["dropped_by_budget"]:
            lines.append(f"  [{e['op']}] {_short(e['content'], width - 12)}")
    rk = tree["ranking"]
    if rk is not None:
        how = (
            _short(rk["reasoning"], width - 20)
            if rk["ok"]
            else f"unusable ({rk['error']}), {rk['fallback']}"
        )
        lines.append(f"Ranking: {how}")
    f = tree["flips"]
    lines += [
        "",
        f"Selection items vs parent: {len(f['fail_to_pass'])} fail->pass, "
        f"{len(f['pass_to_fail'])} pass->fail",
    ]
    for label, key in (("fail->pass", "fail_to_pass"), ("pass->fail", "pass_to_fail")):
        if f[key]:
            lines.append(_short(f"  {label}: {', '.join(f[key])}", width))
    return (
        "\n".join(line if len(line) <= width else line[: width - 1] + "…" for line in lines) + "\n"
    )
