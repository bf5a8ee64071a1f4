"""The skill-aware appendix flush: the step's execution-lapse notes go into the APPENDIX region
of the skill that is current after the verdict (accept, reject or skip alike), de-duplicated;
past the threshold one consolidation call compacts them."""

from __future__ import annotations

from commands.context import StageContext
from commands.stages import HandlerGen
from commands.stages.calls import send
from commands.stages.update import with_completion
from machine import asks
from machine import events as ev
from machine import transitions as tr
from machine.skilldoc import add_notes, appendix_notes, with_appendix
from machine.state import TrainerState
from machine.steps import post_verdict


def flush_appendix(cmd: tr.FlushAppendix, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None
    opt = state.cfg.optimizer
    notes = tr.appendix_notes_due(state, p)
    parent_hash, _, _ = post_verdict(state)
    text, added, duplicates = add_notes(ctx.text(parent_hash), notes)
    consolidation = None
    total = appendix_notes(text)
    threshold = opt.skill_aware_consolidate_threshold
    if added and threshold and len(total) > threshold:
        answer = send(ctx, asks.consolidation(total), step=cmd.step, unit="consolidate")
        compacted = answer.value
        kept = bool(compacted) and len(compacted) < len(total)
        consolidation = ev.ConsolidationRecord(
            ok=compacted is not None,
            error=answer.error,
            kept=kept,
            before=len(total),
            notes=compacted or [],
            call=answer.call,
            reask=answer.reask,
        )
        if kept:
            text = with_appendix(text, compacted)
            total = appendix_notes(text)
    (skill_hash,) = ctx.store(text)
    flushed = ev.AppendixFlushed(
        step=cmd.step,
        epoch=p.epoch,
        parent_hash=parent_hash,
        skill_hash=skill_hash,
        notes=notes,
        added=added,
        duplicates=duplicates,
        total=len(total),
        consolidation=consolidation,
        gated=opt.appendix_gated,
    )
    yield with_completion(state, flushed)
