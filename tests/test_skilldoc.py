"""machine/decisions/skilldoc.py: applying edits to a skill document, status by status.

Reference: trainer-semantics.md section 2.5, with one deliberate difference: an `insert_after`
whose target is missing or not found is skipped, never silently appended.
"""

from __future__ import annotations

import pytest

from skillopt.machine.core.edits import Edit
from skillopt.machine.decisions.skilldoc import (
    APPENDIX_END,
    APPENDIX_START,
    SLOW_UPDATE_END,
    SLOW_UPDATE_START,
    apply_edit,
    apply_edits,
    count_statuses,
    protected_spans,
)

PLAIN = "# Skill\nRule one: be brief.\nRule two: cite sources.\n"

SLOW_BLOCK = f"{SLOW_UPDATE_START}\nslow guidance here\n{SLOW_UPDATE_END}\n"
APPENDIX_BLOCK = f"{APPENDIX_START}\n## Execution Notes Appendix\n- note one\n{APPENDIX_END}\n"
# A document with both machine-owned regions after the free text.
PROTECTED = f"# Skill\nRule one: be brief.\n\n{SLOW_BLOCK}\n{APPENDIX_BLOCK}"


def edit(op: str, target: str = "", content: str = "") -> Edit:
    return Edit(op=op, target=target, content=content)


# --- append ---------------------------------------------------------------------------------


def test_append_without_protected_region_goes_at_the_end() -> None:
    text, status = apply_edit(PLAIN, edit("append", content="Rule three: be kind."))
    assert status == "applied_append"
    assert text == "# Skill\nRule one: be brief.\nRule two: cite sources.\n\nRule three: be kind.\n"


def test_append_goes_before_the_earliest_protected_region() -> None:
    text, status = apply_edit(PROTECTED, edit("append", content="Rule two: new."))
    assert status == "applied_append_before_protected_region"
    assert text == (
        "# Skill\nRule one: be brief.\n\nRule two: new.\n\n" + SLOW_BLOCK + "\n" + APPENDIX_BLOCK
    )


def test_append_before_appendix_when_it_comes_first() -> None:
    doc = f"intro\n\n{APPENDIX_BLOCK}\n{SLOW_BLOCK}"
    text, status = apply_edit(doc, edit("append", content="added"))
    assert status == "applied_append_before_protected_region"
    assert text.index("added") < text.index(APPENDIX_START) < text.index(SLOW_UPDATE_START)


def test_append_content_is_stripped() -> None:
    text, status = apply_edit("a\n", edit("append", content="\n\n   b   \n\n"))
    assert status == "applied_append"
    assert text == "a\n\nb\n"


@pytest.mark.parametrize("op", ["append", "insert_after"])
@pytest.mark.parametrize("content", ["", "   \n\t ", f" {SLOW_UPDATE_START}\n{APPENDIX_END} "])
def test_empty_content_is_skipped(op: str, content: str) -> None:
    text, status = apply_edit(PLAIN, edit(op, target="Rule one", content=content))
    assert status == f"skipped_{op}_empty_content"
    assert text == PLAIN


def test_marker_strings_are_removed_from_content() -> None:
    content = (
        f"{SLOW_UPDATE_START}keep this{SLOW_UPDATE_END} and {APPENDIX_START}this{APPENDIX_END}"
    )
    text, status = apply_edit(PLAIN, edit("append", content=content))
    assert status == "applied_append"
    assert text.endswith("\n\nkeep this and this\n")
    assert protected_spans(text) == []


def test_marker_strings_are_removed_from_replacement_content() -> None:
    text, status = apply_edit(PLAIN, edit("replace", "be brief", f"{APPENDIX_START} be short"))
    assert status == "applied_replace"
    assert text == "# Skill\nRule one: be short.\nRule two: cite sources.\n"


# --- insert_after ---------------------------------------------------------------------------


def test_insert_after_goes_after_the_end_of_the_target_line() -> None:
    text, status = apply_edit(PLAIN, edit("insert_after", "Rule one", "Rule 1b: be clear."))
    assert status == "applied_insert_after"
    # config_version 3: the reference's layout, "\n<content>\n" after the line's newline
    assert text == "# Skill\nRule one: be brief.\n\nRule 1b: be clear.\nRule two: cite sources.\n"
    # runs recorded before (config_version <= 2) keep the layout they were built with
    text, _ = apply_edit(PLAIN, edit("insert_after", "Rule one", "Rule 1b: be clear."), False)
    assert text == "# Skill\nRule one: be brief.\nRule 1b: be clear.\nRule two: cite sources.\n"


def test_insert_after_on_the_last_line_without_newline() -> None:
    text, status = apply_edit("a\nlast line", edit("insert_after", "last", "after"))
    assert status == "applied_insert_after"
    assert text == "a\nlast line\nafter\n"


def test_insert_after_missing_target_is_skipped_not_appended() -> None:
    text, status = apply_edit(PLAIN, edit("insert_after", "", "orphan"))
    assert status == "skipped_insert_after_missing_target"
    assert text == PLAIN


def test_insert_after_target_not_found_is_skipped_not_appended() -> None:
    # The reference silently falls back to an append here; we deliberately do not.
    text, status = apply_edit(PROTECTED, edit("insert_after", "Rule nine", "orphan"))
    assert status == "skipped_insert_after_target_not_found"
    assert text == PROTECTED
    assert "orphan" not in text


def test_insert_after_uses_the_first_occurrence() -> None:
    doc = "x: first\nx: second\n"
    text, status = apply_edit(doc, edit("insert_after", "x:", "inserted"))
    assert status == "applied_insert_after"
    assert text == "x: first\n\ninserted\nx: second\n"


# --- replace --------------------------------------------------------------------------------


def test_replace_first_occurrence_only() -> None:
    doc = "cat and cat and cat"
    text, status = apply_edit(doc, edit("replace", "cat", "dog"))
    assert status == "applied_replace"
    assert text == "dog and cat and cat"


def test_replace_missing_target() -> None:
    text, status = apply_edit(PLAIN, edit("replace", "", "x"))
    assert (text, status) == (PLAIN, "skipped_replace_missing_target")


def test_replace_target_not_found() -> None:
    text, status = apply_edit(PLAIN, edit("replace", "Rule three", "x"))
    assert (text, status) == (PLAIN, "skipped_replace_target_not_found")


def test_replace_target_is_exact_no_whitespace_or_case_normalisation() -> None:
    for target in ("rule one", "Rule  one", " Rule one: be brief.\n\n"):
        text, status = apply_edit(PLAIN, edit("replace", target, "x"))
        assert (text, status) == (PLAIN, "skipped_replace_target_not_found"), target


# --- delete ---------------------------------------------------------------------------------


def test_delete_first_occurrence() -> None:
    text, status = apply_edit(
        PLAIN + "Rule two: cite sources.\n", edit("delete", "Rule two: cite sources.\n")
    )
    assert status == "applied_delete"
    assert text == PLAIN


def test_delete_ignores_content() -> None:
    text, status = apply_edit(PLAIN, edit("delete", "Rule one: be brief.\n", "ignored"))
    assert status == "applied_delete"
    assert text == "# Skill\nRule two: cite sources.\n"


def test_delete_missing_target() -> None:
    assert apply_edit(PLAIN, edit("delete")) == (PLAIN, "skipped_delete_missing_target")


def test_delete_target_not_found() -> None:
    assert apply_edit(PLAIN, edit("delete", "nope")) == (PLAIN, "skipped_delete_target_not_found")


# --- protected regions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "slow guidance here",
        SLOW_UPDATE_START,
        SLOW_UPDATE_END,
        "- note one",
        "## Execution Notes Appendix",
        APPENDIX_START,
    ],
)
@pytest.mark.parametrize("op", ["insert_after", "replace", "delete"])
def test_targets_inside_protected_regions_are_skipped(op: str, target: str) -> None:
    text, status = apply_edit(PROTECTED, edit(op, target, "intruder"))
    assert status == "skipped_protected_region"
    assert text == PROTECTED


def test_protected_check_uses_the_first_occurrence() -> None:
    # The first "shared line" is inside the region, so the edit is skipped even though a
    # second occurrence outside it exists (exact first-occurrence semantics).
    doc = f"{SLOW_UPDATE_START}\nshared line\n{SLOW_UPDATE_END}\nshared line\n"
    assert apply_edit(doc, edit("replace", "shared line", "x")) == (doc, "skipped_protected_region")


def test_first_occurrence_outside_region_is_edited_even_if_one_is_inside() -> None:
    doc = f"shared line\n{SLOW_UPDATE_START}\nshared line\n{SLOW_UPDATE_END}\n"
    text, status = apply_edit(doc, edit("replace", "shared line", "edited"))
    assert status == "applied_replace"
    assert text == f"edited\n{SLOW_UPDATE_START}\nshared line\n{SLOW_UPDATE_END}\n"


def test_unclosed_region_runs_to_end_of_file() -> None:
    doc = f"free text\n{APPENDIX_START}\n- note\nmore\n"
    assert protected_spans(doc) == [(len("free text\n"), len(doc))]
    assert apply_edit(doc, edit("delete", "more")) == (doc, "skipped_protected_region")
    assert apply_edit(doc, edit("delete", "free "))[1] == "applied_delete"


def test_protected_spans_include_markers_and_are_sorted() -> None:
    spans = protected_spans(PROTECTED)
    assert len(spans) == 2
    (s1, e1), (s2, e2) = spans
    assert PROTECTED[s1:e1] == SLOW_BLOCK.rstrip("\n")
    assert PROTECTED[s2:e2] == APPENDIX_BLOCK.rstrip("\n")


@pytest.mark.parametrize("op", ["replace", "delete"])
def test_target_overlapping_a_protected_region_does_not_corrupt_markers(op: str) -> None:
    target = f"be brief.\n\n{SLOW_UPDATE_START[:8]}"
    text, status = apply_edit(PROTECTED, edit(op, target, "x"))
    assert SLOW_UPDATE_START in text
    assert status == "skipped_protected_region"
    assert text == PROTECTED


# --- unknown ops ----------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["add", "APPEND", "rewrite", ""])
def test_unknown_op_is_skipped(op: str) -> None:
    text, status = apply_edit(PLAIN, edit(op, "Rule one", "content"))
    assert (text, status) == (PLAIN, "skipped_unknown_op")


# --- sequences and reports ------------------------------------------------------------------


def test_edits_apply_sequentially_each_on_the_previous_output() -> None:
    edits = [
        edit("append", content="Rule three: new."),
        edit("replace", "Rule three: new.", "Rule three: newer."),  # only exists after edit 1
        edit("insert_after", "Rule three", "Rule four."),
        edit("delete", "Rule one: be brief.\n"),
        edit("replace", "Rule one", "gone"),  # deleted by edit 4
    ]
    text, report = apply_edits(PLAIN, edits)
    assert text == "# Skill\nRule two: cite sources.\n\nRule three: newer.\n\nRule four.\n"
    assert [row["status"] for row in report] == [
        "applied_append",
        "applied_replace",
        "applied_insert_after",
        "applied_delete",
        "skipped_replace_target_not_found",
    ]


def test_report_rows_are_one_based_with_op_target_and_preview() -> None:
    edits = [edit("append", content="A"), edit("add", "T", "B"), edit("delete", "Rule two")]
    _, report = apply_edits(PLAIN, edits)
    assert report == [
        {
            "index": 1,
            "op": "append",
            "target": "",
            "content_preview": "A",
            "status": "applied_append",
        },
        {
            "index": 2,
            "op": "add",
            "target": "T",
            "content_preview": "B",
            "status": "skipped_unknown_op",
        },
        {
            "index": 3,
            "op": "delete",
            "target": "Rule two",
            "content_preview": "",
            "status": "applied_delete",
        },
    ]


def test_report_previews_are_capped_at_200_chars() -> None:
    long_target = "t" * 250
    long_content = "c" * 450
    text, report = apply_edits(PLAIN, [edit("replace", long_target, long_content)])
    assert text == PLAIN
    row = report[0]
    assert row["target"] == "t" * 200
    assert row["content_preview"] == "c" * 200
    assert row["status"] == "skipped_replace_target_not_found"


def test_applied_content_is_not_truncated_by_the_preview_cap() -> None:
    long_content = "c" * 450
    text, report = apply_edits("", [edit("append", content=long_content)])
    assert long_content in text
    assert report[0]["content_preview"] == "c" * 200


def test_empty_edit_list() -> None:
    assert apply_edits(PLAIN, []) == (PLAIN, [])


def test_count_statuses_applied_vs_skipped() -> None:
    edits = [
        edit("append", content="A"),
        edit("replace", "nope", "x"),
        edit("insert_after", "Rule one", "B"),
        edit("frobnicate"),
        edit("delete", "slow guidance here"),
    ]
    _, report = apply_edits(PROTECTED, edits)
    assert [row["status"] for row in report] == [
        "applied_append_before_protected_region",
        "skipped_replace_target_not_found",
        "applied_insert_after",
        "skipped_unknown_op",
        "skipped_protected_region",
    ]
    assert count_statuses(report) == (2, 3)


def test_count_statuses_of_nothing() -> None:
    assert count_statuses([]) == (0, 0)


def test_all_skipped_patch_leaves_the_document_identical() -> None:
    edits = [edit("replace", "missing", "x"), edit("insert_after", "", "y"), edit("add", "", "z")]
    text, report = apply_edits(PROTECTED, edits)
    assert text == PROTECTED
    assert count_statuses(report) == (0, 3)


def test_insert_after_a_line_that_opens_a_region_is_skipped() -> None:
    doc = f"Intro\nx {APPENDIX_START}\n- note\n{APPENDIX_END}\n"
    text, status = apply_edit(doc, edit("insert_after", "x", "new rule"))
    assert (text, status) == (doc, "skipped_protected_region")


def test_append_to_an_empty_document_has_no_leading_blank_lines() -> None:
    assert apply_edit("", edit("append", "", "first rule"))[0] == "first rule\n"
    text, _ = apply_edit(f"{SLOW_UPDATE_START}\n{SLOW_UPDATE_END}\n", edit("append", "", "rule"))
    assert text.startswith("rule\n\n" + SLOW_UPDATE_START)
