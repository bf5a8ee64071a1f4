"""Skill-document operations: protected regions and the sequential application of edits.

Statuses follow the reference trainer, with one deliberate difference: an `insert_after`
whose target is missing or not found is reported as skipped, never silently appended.
"""

from __future__ import annotations

from machine.edits import Edit

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


def apply_edit(text: str, edit: Edit) -> tuple[str, str]:
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
        return f"{text[:line_end]}\n{content}{text[line_end:]}", "applied_insert_after"
    replacement = content if edit.op == "replace" else ""
    return text[:index] + replacement + text[end:], f"applied_{edit.op}"


def apply_edits(text: str, edits: list[Edit]) -> tuple[str, list[dict[str, object]]]:
    """Apply edits in order, each on the previous result; one report row per edit."""
    report: list[dict[str, object]] = []
    for index, edit in enumerate(edits, start=1):
        text, status = apply_edit(text, edit)
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
