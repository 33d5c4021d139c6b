"""Fix data becomes text edits at the edge: minimal, non-overlapping, and never unparsable."""

from __future__ import annotations

import pytest

from llmarch_lsp.findings import Span
from llmarch_lsp.fixes.apply import FixError, apply_fixes, fix_edits, text_edits
from llmarch_lsp.text import line_starts
from llmarch_lsp.fixes.model import SAFE, UNSAFE, AddImport, CommentAbove, Fix, Replace

SOURCE = "import torch\n\n\ndef f(q, k):\n    att = q @ k  # (B, T, T)\n    return att\n"


def _apply(text: str, edits) -> str:
    starts = line_starts(text)
    for edit in sorted(edits, key=lambda e: (e.span.line, e.span.column), reverse=True):
        start = starts[edit.span.line - 1] + edit.span.column
        end = starts[edit.span.end_line - 1] + edit.span.end_column
        text = text[:start] + edit.new_text + text[end:]
    return text


def test_replacement_comment_and_import_compose():
    fix = Fix(
        "Scale",
        UNSAFE,
        replacements=(Replace(Span(5, 10, 5, 15), "q @ k * (1.0 / math.sqrt(k.size(-1)))"),),
        comments=(CommentAbove(5, "why (Vaswani et al., 2017, arXiv:1706.03762)"),),
        imports=(AddImport("math"),),
    )
    fixed = apply_fixes(SOURCE, [fix]).text
    # libcst's AddImportsVisitor places a new import after the file's existing ones.
    assert fixed.splitlines() == [
        "import torch",
        "import math",
        "",
        "",
        "def f(q, k):",
        "    # why (Vaswani et al., 2017, arXiv:1706.03762)",
        "    att = q @ k * (1.0 / math.sqrt(k.size(-1)))  # (B, T, T)",
        "    return att",
    ]


def test_existing_import_is_not_duplicated():
    source = "import math\n" + SOURCE
    fix = Fix("x", SAFE, imports=(AddImport("math"),))
    assert apply_fixes(source, [fix]).text == source


def test_overlapping_fix_is_skipped_not_merged():
    first = Fix("a", SAFE, replacements=(Replace(Span(5, 10, 5, 15), "k @ q"),))
    second = Fix("b", SAFE, replacements=(Replace(Span(5, 14, 5, 15), "v"),))
    result = apply_fixes(SOURCE, [first, second])
    assert result.applied == (first,) and result.skipped == (second,)
    assert "att = k @ q" in result.text


def test_result_that_does_not_parse_is_refused():
    with pytest.raises(FixError, match="would not parse"):
        apply_fixes(SOURCE, [Fix("bad", SAFE, replacements=(Replace(Span(5, 10, 5, 15), "q @"),))])


def test_stale_positions_are_refused():
    with pytest.raises(FixError):
        apply_fixes(SOURCE, [Fix("stale", SAFE, replacements=(Replace(Span(40, 0, 40, 1), "x"),))])


@pytest.mark.parametrize(
    "new",
    [
        SOURCE.replace("q @ k", "q @ k * 2"),
        "import math\n" + SOURCE,
        SOURCE.replace("    return att\n", ""),
        SOURCE + "print(1)",
        SOURCE.rstrip("\n"),
        "",
    ],
)
def test_text_edits_reproduce_the_new_text(new):
    assert _apply(SOURCE, text_edits(SOURCE, new)) == new


def test_text_edits_are_minimal_within_a_line():
    (edit,) = text_edits(SOURCE, SOURCE.replace("q @ k", "q @ k * 2"))
    assert edit.span.line == edit.span.end_line == 5
    assert edit.span.column == edit.span.end_column  # a pure insertion of the four new characters
    assert len(edit.new_text) == 4


def test_fix_edits_touch_only_what_changed():
    fix = Fix("c", SAFE, comments=(CommentAbove(5, "note"),))
    (edit,) = fix_edits(SOURCE, fix)
    assert edit.span == Span(5, 0, 5, 0) and edit.new_text == "    # note\n"


def test_one_comment_serves_consecutive_statements_fixed_for_the_same_reason():
    source = "def f(x):\n    x = a(x)\n    x = b(x)\n    return x\n"
    first = Fix("a", SAFE, replacements=(Replace(Span(2, 8, 2, 12), "c(x)"),), comments=(CommentAbove(2, "why"),))
    second = Fix("b", SAFE, replacements=(Replace(Span(3, 8, 3, 12), "d(x)"),), comments=(CommentAbove(3, "why"),))
    fixed = apply_fixes(source, [first, second]).text
    assert fixed == "def f(x):\n    # why\n    x = c(x)\n    x = d(x)\n    return x\n"


def test_existing_identical_comment_is_not_repeated():
    source = "def f(x):\n    # why\n    x = a(x)\n"
    fix = Fix("a", SAFE, replacements=(Replace(Span(3, 8, 3, 12), "c(x)"),), comments=(CommentAbove(3, "why"),))
    assert apply_fixes(source, [fix]).text == "def f(x):\n    # why\n    x = c(x)\n"


def test_form_feeds_and_unicode_separators_do_not_shift_lines():
    # Python counts only \n, \r\n and \r as line ends; str.splitlines would also split here.
    source = "import torch\n\x0c\ndef f(q, k):  # note\u2028still line 3\n    att = q @ k\n    return att\n"
    fix = Fix("s", SAFE, replacements=(Replace(Span(4, 10, 4, 15), "q @ k * 2"),), comments=(CommentAbove(4, "why"),))
    fixed = apply_fixes(source, [fix]).text
    assert fixed.endswith("\u2028still line 3\n    # why\n    att = q @ k * 2\n    return att\n")
    assert _apply(source, fix_edits(source, fix)) == fixed


def test_planner_validates_many_fixes_with_one_parse_and_refuses_a_bad_one():
    from llmarch_lsp.fixes.apply import FixPlanner

    good = Fix("good", SAFE, replacements=(Replace(Span(5, 10, 5, 15), "q @ k * 2"),))
    bad = Fix("bad", SAFE, replacements=(Replace(Span(6, 11, 6, 14), "att +"),))
    planner = FixPlanner(SOURCE)
    planner.validate_together([good, bad])  # fails together: each is then checked alone
    assert _apply(SOURCE, planner.edits_for(good)) == SOURCE.replace("q @ k", "q @ k * 2")
    with pytest.raises(FixError):
        planner.edits_for(bad)


def test_import_and_comment_at_the_same_point_keep_imports_first():
    source = "import torch\natt = torch.ones(2) @ torch.ones(2)\n"
    fix = Fix("m", SAFE, comments=(CommentAbove(2, "why"),), imports=(AddImport("math"),))
    fixed = apply_fixes(source, [fix]).text
    assert fixed.index("import math\n") < fixed.index("# why\natt = ")
    assert _apply(source, fix_edits(source, fix)) == apply_fixes(source, [fix]).text


def test_inserted_lines_follow_the_files_line_endings():
    source = SOURCE.replace("\n", "\r\n")
    fix = Fix("c", SAFE, replacements=(Replace(Span(5, 10, 5, 15), "q @ k\r\n    att = att"),), comments=(CommentAbove(5, "why"),))
    fixed = apply_fixes(source, [fix]).text
    assert "\n" not in fixed.replace("\r\n", "")
    assert "    # why\r\n    att = q @ k\r\n    att = att  # (B, T, T)\r\n" in fixed


def test_a_fix_shared_by_several_findings_is_applied_once_and_counts_for_each():
    block = Fix("block", SAFE, replacements=(Replace(Span(5, 10, 5, 15), "q @ k * 2"),), comments=(CommentAbove(5, "why"),))
    result = apply_fixes(SOURCE, [block, block])
    assert result.applied == (block, block) and result.skipped == ()
    assert result.text.count("q @ k * 2") == 1 and result.text.count("# why") == 1


def test_one_fix_writes_one_comment_over_consecutive_statements():
    source = "def f(x):\n    x = a(x)\n    x = b(x)\n    return x\n"
    both = Fix(
        "ab",
        SAFE,
        replacements=(Replace(Span(2, 8, 2, 12), "c(x)"), Replace(Span(3, 8, 3, 12), "d(x)")),
        comments=(CommentAbove(2, "why"), CommentAbove(3, "why")),
    )
    assert apply_fixes(source, [both]).text == "def f(x):\n    # why\n    x = c(x)\n    x = d(x)\n    return x\n"
    assert _apply(source, fix_edits(source, both)) == apply_fixes(source, [both]).text
