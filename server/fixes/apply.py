"""Turn fix data into new text, then into the minimal edits a client applies.

Edits from different fixes that overlap are never merged: the later fix is skipped and can
be applied on the next run. A result that does not parse is refused.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, replace

from llmarch_lsp.findings import Span
from llmarch_lsp.fixes.model import AddImport, Fix


class FixError(ValueError):
    """The fix cannot be applied to this text (stale positions, or the result would not parse)."""


@dataclass(frozen=True)
class TextEdit:
    """Replace `span` of the old text (lines 1-based, columns 0-based characters)."""

    span: Span
    new_text: str


@dataclass(frozen=True)
class FixResult:
    text: str
    applied: tuple[Fix, ...]
    skipped: tuple[Fix, ...]


def apply_fixes(source: str, fixes: Iterable[Fix]) -> FixResult:
    line_starts = _line_starts(source)
    accepted: list[tuple[int, int, str]] = []
    applied: list[Fix] = []
    skipped: list[Fix] = []
    imports: list[AddImport] = []
    comments_placed: set[tuple[int, str]] = set()
    for fix in fixes:
        fix = _without_repeated_comments(source, fix, comments_placed)
        edits = _offset_edits(source, line_starts, fix)
        if any(_overlaps(edit, other) for edit in edits for other in accepted):
            skipped.append(fix)
            continue
        accepted.extend(edits)
        comments_placed.update((comment.line, comment.text) for comment in fix.comments)
        imports.extend(fix.imports)
        applied.append(fix)
    text = source
    for start, end, new_text in sorted(accepted, key=lambda edit: (edit[0], edit[1]), reverse=True):
        text = text[:start] + new_text + text[end:]
    if imports:
        text = _add_imports(text, imports)
    try:
        ast.parse(text)
    except SyntaxError as error:
        raise FixError(f"the fixed text would not parse: {error.msg} (line {error.lineno})") from None
    return FixResult(text, tuple(applied), tuple(skipped))


def _without_repeated_comments(source: str, fix: Fix, placed: set[tuple[int, str]]) -> Fix:
    """One explanatory comment serves a run of consecutive statements fixed for the same reason,
    and a comment already above the statement is not written again."""
    lines = source.splitlines()
    kept = tuple(
        comment
        for comment in fix.comments
        if (comment.line - 1, comment.text) not in placed
        and not (comment.line >= 2 and lines[comment.line - 2].strip() == f"# {comment.text}")
    )
    return fix if kept == fix.comments else replace(fix, comments=kept)


def fix_edits(source: str, fix: Fix) -> list[TextEdit]:
    """The minimal edits that apply one fix to `source`."""
    return text_edits(source, apply_fixes(source, [fix]).text)


def text_edits(old: str, new: str) -> list[TextEdit]:
    """Minimal line-level edits from `old` to `new`, narrowed to characters within one line."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    edits = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == 1 and j2 - j1 == 1:
            edits.append(_within_line(i1 + 1, old_lines[i1], new_lines[j1]))
            continue
        start = (i1 + 1, 0)
        end = _position_after_lines(old_lines, i2)
        edits.append(TextEdit(Span(*start, *end), "".join(new_lines[j1:j2])))
    return edits


def _within_line(line: int, old_line: str, new_line: str) -> TextEdit:
    prefix = 0
    limit = min(len(old_line), len(new_line))
    while prefix < limit and old_line[prefix] == new_line[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < limit - prefix
        and old_line[len(old_line) - 1 - suffix] == new_line[len(new_line) - 1 - suffix]
    ):
        suffix += 1
    old_end = len(old_line) - suffix
    new_end = len(new_line) - suffix
    if old_end > len(old_line.rstrip("\r\n")):  # the change touches the line break itself
        return TextEdit(Span(line, prefix, line + 1, 0), new_line[prefix:])
    return TextEdit(Span(line, prefix, line, old_end), new_line[prefix:new_end])


def _position_after_lines(lines: list[str], count: int) -> tuple[int, int]:
    """Position just after the first `count` lines (the start of line count+1)."""
    if count < len(lines) or (lines and lines[-1].endswith(("\n", "\r"))) or not lines:
        return (count + 1, 0)
    return (count, len(lines[-1]))


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _offset(source: str, line_starts: list[int], line: int, column: int) -> int:
    if not 1 <= line <= len(line_starts):
        raise FixError(f"line {line} is outside the document")
    offset = line_starts[line - 1] + column
    line_end = line_starts[line] if line < len(line_starts) else len(source)
    if column < 0 or offset > line_end or offset > len(source):
        raise FixError(f"column {column} is outside line {line}")
    return offset


def _offset_edits(source: str, line_starts: list[int], fix: Fix) -> list[tuple[int, int, str]]:
    edits = []
    for replacement in fix.replacements:
        span = replacement.span
        start = _offset(source, line_starts, span.line, span.column)
        end = _offset(source, line_starts, span.end_line, span.end_column)
        edits.append((start, end, replacement.new_text))
    for comment in fix.comments:
        start = _offset(source, line_starts, comment.line, 0)
        line_text = source[start : line_starts[comment.line] if comment.line < len(line_starts) else len(source)]
        indentation = line_text[: len(line_text) - len(line_text.lstrip())]
        edits.append((start, start, f"{indentation}# {comment.text}\n"))
    return edits


def _overlaps(edit: tuple[int, int, str], other: tuple[int, int, str]) -> bool:
    start, end, _ = edit
    other_start, other_end, _ = other
    if start == end or other_start == other_end:  # insertions collide only at the same point
        return start == other_start and end == other_end or other_start < start < other_end or start < other_start < end
    return start < other_end and other_start < end


def _add_imports(text: str, imports: list[AddImport]) -> str:
    """Add imports the way libcst's codemods do: after existing imports, skipping duplicates."""
    missing = [wanted for wanted in dict.fromkeys(imports) if not _already_imported(text, wanted)]
    if not missing:
        return text
    import libcst
    from libcst.codemod import CodemodContext
    from libcst.codemod.visitors import AddImportsVisitor

    try:
        module = libcst.parse_module(text)
    except libcst.ParserSyntaxError as error:
        raise FixError(f"the fixed text would not parse: {error.message}") from None
    context = CodemodContext()
    for wanted in missing:
        AddImportsVisitor.add_needed_import(context, wanted.module, wanted.name)
    return AddImportsVisitor(context).transform_module(module).code


def _already_imported(text: str, wanted: AddImport) -> bool:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    for node in tree.body:
        if wanted.name is None and isinstance(node, ast.Import):
            if any(alias.name == wanted.module and alias.asname is None for alias in node.names):
                return True
        if wanted.name is not None and isinstance(node, ast.ImportFrom) and node.module == wanted.module:
            if any(alias.name == wanted.name and alias.asname is None for alias in node.names):
                return True
    return False
