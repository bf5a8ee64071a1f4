"""Skill-document operations: protected regions and the sequential application of edits.

Statuses follow the reference trainer, with one deliberate difference: an `insert_after`
whose target is missing or not found is reported as skipped, never silently appended.

`parity` (config_version >= 3, the default) selects the reference's behaviour where versions
<= 2 differed by accident (issue 16): the insert_after layout, the epoch-1 SLOW_UPDATE
placeholder that keeps existing guidance, stray SLOW_UPDATE markers, and appendix notes read
from every line and keyed as the reference keys them. Runs recorded before keep the old rules
(`parity=False`), so their candidates, hashes and verdicts re-derive as they were recorded.
"""

from __future__ import annotations

import re

from skillopt.machine.core.edits import Edit

SLOW_UPDATE_START = "<!-- SLOW_UPDATE_START -->"
SLOW_UPDATE_END = "<!-- SLOW_UPDATE_END -->"
APPENDIX_START = "<!-- APPENDIX_START -->"
APPENDIX_END = "<!-- APPENDIX_END -->"
MARKERS = (SLOW_UPDATE_START, SLOW_UPDATE_END, APPENDIX_START, APPENDIX_END)
_REGIONS = ((SLOW_UPDATE_START, SLOW_UPDATE_END), (APPENDIX_START, APPENDIX_END))
PREVIEW = 200


def protected_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every protected region, markers included; an unclosed region runs to EOF."""
    spans: list[tuple[int, int]] = []
    for start_marker, end_marker in _REGIONS:
        pos = 0
        while (start := text.find(start_marker, pos)) != -1:
            end = text.find(end_marker, start)
            stop = len(text) if end == -1 else end + len(end_marker)
            spans.append((start, stop))
            pos = stop
    return sorted(spans)


def _protected(spans: list[tuple[int, int]], pos: int, end: int | None = None) -> bool:
    """Whether [pos, end) touches a protected region (end defaults to pos + 1)."""
    stop_at = pos + 1 if end is None else max(end, pos + 1)
    return any(pos < stop and start < stop_at for start, stop in spans)


def clean_content(content: str) -> str:
    for marker in MARKERS:
        content = content.replace(marker, "")
    return content.strip()


def _append(text: str, content: str) -> tuple[str, str]:
    spans = protected_spans(text)
    if spans:
        head, tail = text[: spans[0][0]], text[spans[0][0] :]
        lead = f"{head.rstrip()}\n\n" if head.strip() else ""
        return f"{lead}{content}\n\n{tail}", "applied_append_before_protected_region"
    lead = f"{text.rstrip()}\n\n" if text.strip() else ""
    return f"{lead}{content}\n", "applied_append"


def _locate(text: str, edit: Edit) -> tuple[int | None, str]:
    """Index of the target's first occurrence, or the skip status that explains why not."""
    if not edit.target:
        return None, f"skipped_{edit.op}_missing_target"
    index = text.find(edit.target)
    if index == -1:
        return None, f"skipped_{edit.op}_target_not_found"
    # The whole target must lie outside the regions: a target running into one would cut a marker.
    if _protected(protected_spans(text), index, index + len(edit.target)):
        return None, "skipped_protected_region"
    return index, ""


def apply_edit(text: str, edit: Edit, parity: bool = True) -> tuple[str, str]:
    """Apply one edit; return the new text and its status."""
    content = clean_content(edit.content)
    if edit.op not in ("append", "insert_after", "replace", "delete"):
        return text, "skipped_unknown_op"
    if edit.op in ("append", "insert_after") and not content:
        return text, f"skipped_{edit.op}_empty_content"
    if edit.op == "append":
        return _append(text, content)
    index, status = _locate(text, edit)
    if index is None:
        return text, status
    end = index + len(edit.target)
    if edit.op == "insert_after":
        line_end = text.find("\n", end)
        if _protected(protected_spans(text), end, len(text) if line_end == -1 else line_end):
            return text, "skipped_protected_region"  # a marker shares the target's line
        if line_end == -1:
            return f"{text}\n{content}\n", "applied_insert_after"
        if parity:  # the reference: "\n<content>\n" after the target's line, newline included
            cut = line_end + 1
            return f"{text[:cut]}\n{content}\n{text[cut:]}", "applied_insert_after"
        return f"{text[:line_end]}\n{content}{text[line_end:]}", "applied_insert_after"
    replacement = content if edit.op == "replace" else ""
    return text[:index] + replacement + text[end:], f"applied_{edit.op}"


def apply_edits(
    text: str, edits: list[Edit], parity: bool = True
) -> tuple[str, list[dict[str, object]]]:
    """Apply edits in order, each on the previous result; one report row per edit."""
    report: list[dict[str, object]] = []
    for index, edit in enumerate(edits, start=1):
        text, status = apply_edit(text, edit, parity)
        report.append(
            {
                "index": index,
                "op": edit.op,
                "target": edit.target[:PREVIEW],
                "content_preview": edit.content[:PREVIEW],
                "status": status,
            }
        )
    return text, report


def count_statuses(report: list[dict[str, object]]) -> tuple[int, int]:
    applied = sum(1 for row in report if str(row["status"]).startswith("applied"))
    return applied, len(report) - applied


# -- machine-owned regions ---------------------------------------------------------------------

APPENDIX_HEADING = "## Execution Notes Appendix"


def strip_region(text: str, start: str, end: str) -> str:
    """The text without any start..end region (markers included), blank runs collapsed."""
    while (i := text.find(start)) != -1:
        j = text.find(end, i)
        stop = len(text) if j == -1 else j + len(end)
        text = text[:i].rstrip() + ("\n\n" if text[stop:].strip() else "\n") + text[stop:].lstrip()
    return text


def for_export(text: str) -> str:
    """A skill to ship: its machine-owned regions (slow update, appendix) kept where they hold
    something, removed with their markers where they are empty."""
    for start, end in _REGIONS:
        body = region_body(text, start, end)
        if body is not None and not body.strip():
            text = strip_region(text, start, end)
    return text


def region_body(text: str, start: str, end: str) -> str | None:
    """The content of the first start..end region, or None when there is none."""
    i = text.find(start)
    if i == -1:
        return None
    j = text.find(end, i)
    return text[i + len(start) : len(text) if j == -1 else j].strip()


def _strip_slow_update(text: str) -> str:
    """The text without its SLOW_UPDATE regions, as the reference strips them: every closed
    region goes; an unclosed start marker loses the marker only (the text after it is the
    author's, not guidance); stray end markers go. Blank runs collapse where a region was."""
    while (i := text.find(SLOW_UPDATE_START)) != -1:
        j = text.find(SLOW_UPDATE_END, i)
        if j == -1:
            text = text[:i] + text[i + len(SLOW_UPDATE_START) :]
            break
        stop = j + len(SLOW_UPDATE_END)
        text = text[:i].rstrip() + ("\n\n" if text[stop:].strip() else "\n") + text[stop:].lstrip()
    return text.replace(SLOW_UPDATE_END, "")


def with_slow_update(text: str, content: str, parity: bool = True) -> str:
    """Replace every SLOW_UPDATE region by one at the end holding `content` (empty on epoch 1).
    Without `parity` (version <= 2) an unclosed region ran to the end and a stray end marker
    stayed in the body."""
    if parity:
        body = _strip_slow_update(text).rstrip()
    else:
        body = strip_region(text, SLOW_UPDATE_START, SLOW_UPDATE_END).rstrip()
    inner = clean_content(content)
    block = (
        f"{SLOW_UPDATE_START}\n{inner}\n{SLOW_UPDATE_END}"
        if inner
        else (f"{SLOW_UPDATE_START}\n{SLOW_UPDATE_END}")
    )
    return f"{body}\n\n{block}\n"


def slow_update_placeholder(text: str, parity: bool = True) -> str:
    """The epoch-1 placeholder: an empty SLOW_UPDATE block at the end. As the reference, a skill
    that already has the field keeps it and what it holds (version <= 2 emptied it: the
    initial skill's own guidance was lost)."""
    if parity and SLOW_UPDATE_START in text and SLOW_UPDATE_END in text:
        return text
    return with_slow_update(text, "", parity)


_TRAILING = " .;:,_-"  # the reference's trailing punctuation of a note key


def note_key(note: str, parity: bool = True) -> str:
    """Notes are the same when they differ only in case, spacing or trailing punctuation.
    `parity`: the reference's key (trailing ` .;:,_-`, Unicode case folding, so `Straße` is
    `STRASSE`); before, trailing `.!;:, ` and lower-casing."""
    if parity:
        return " ".join(note.split()).rstrip(_TRAILING).casefold()
    return " ".join(note.lower().split()).rstrip(".!;:, ")


def note_text(note: str) -> str:
    """A note as the appendix stores it: markers removed, on one line (a bullet is one line)."""
    return " ".join(ln.strip() for ln in clean_content(note).splitlines() if ln.strip())


_HEADING_WORDS = APPENDIX_HEADING.lstrip("#").strip()
_BULLET = re.compile(r"^(?:- |[-*](?!\*))")  # "- ", or a bare - or * (not bold's **)


def appendix_notes(text: str, parity: bool = True) -> list[str]:
    """The notes of the APPENDIX region. `parity` reads it as the reference does: every
    non-empty line but the heading is a note, a leading bullet removed, so notes a person
    wrote as `* note` or plain lines survive the next flush. Before (version <= 2) only `- `
    lines counted, and a flush rewrote the region without the others: they were lost."""
    body = region_body(text, APPENDIX_START, APPENDIX_END) or ""
    if not parity:
        return [
            ln[2:].strip() for ln in body.splitlines() if ln.startswith("- ") and ln[2:].strip()
        ]
    notes: list[str] = []
    for raw in body.splitlines():
        line = raw.strip()
        if not line or line.lstrip("#").strip() == _HEADING_WORDS:
            continue
        line = _BULLET.sub("", line, count=1).strip()
        if line:
            notes.append(line)
    return notes


def with_appendix(text: str, notes: list[str]) -> str:
    """The text with its APPENDIX region holding exactly `notes` (created at the end if absent)."""
    lines = "\n".join(f"- {note_text(n)}" for n in notes if note_text(n))
    block = (
        f"{APPENDIX_START}\n{APPENDIX_HEADING}\n" + (f"{lines}\n" if lines else "") + APPENDIX_END
    )
    i = text.find(APPENDIX_START)
    if i == -1:
        return f"{text.rstrip()}\n\n{block}\n"
    j = text.find(APPENDIX_END, i)
    stop = len(text) if j == -1 else j + len(APPENDIX_END)
    return text[:i] + block + text[stop:]


def add_notes(text: str, notes: list[str], parity: bool = True) -> tuple[str, list[str], int]:
    """Append notes to the appendix with normalised de-duplication: (text, added, duplicates).
    With `parity` the existing notes are de-duplicated among themselves too, as the reference
    merges existing + new; a flush that adds nothing leaves the skill as it is."""
    existing = appendix_notes(text, parity)
    if parity:
        kept: dict[str, str] = {}
        for note in existing:
            kept.setdefault(note_key(note_text(note)), note_text(note))
        kept.pop("", None)
        existing = list(kept.values())
    seen = {note_key(n, parity) for n in existing}
    added: list[str] = []
    for note in notes:
        stored = note_text(note)  # keyed as stored, or a marker or line break defeats de-dup
        key = note_key(stored, parity)
        if key and key not in seen:
            seen.add(key)
            added.append(stored)
    if not added:
        return text, [], len(notes)
    return with_appendix(text, existing + added), added, len(notes) - len(added)


def restore_protected(parent: str, rewritten: str) -> str:
    """A rewrite owns the body only: the parent's protected regions come back as they were."""
    body = rewritten
    for start, end in _REGIONS:
        body = strip_region(body, start, end)
    body = clean_content(body)
    blocks = [parent[a:b] for a, b in protected_spans(parent)]
    tail = "".join(f"\n\n{b}" for b in blocks)
    return f"{body}{tail}\n"
