"""Turn fix data into text edits, and apply them.

A fix's replacements and comments map straight onto edits of the original text; only imports
go through libcst (`AddImportsVisitor`), whose result is diffed into edits. Edits from different
fixes that overlap are never merged: the later fix is skipped and can be applied on the next run.
A result that does not parse is refused.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cached_property

from llmarch_lsp.findings import Span
from llmarch_lsp.fixes.model import AddImport, Fix, TextEdit
from llmarch_lsp.text import line_starts, lines_with_ends, newline_of, split_lines


class FixError(ValueError):
    """The fix cannot be applied to this text (stale positions, or the result would not parse)."""


@dataclass(frozen=True)
class FixResult:
    text: str
    applied: tuple[Fix, ...]
    skipped: tuple[Fix, ...]


# At one insertion point, imports go first (an edit with a lower rank ends up earlier in the text).
_IMPORT_RANK, _FIX_RANK = 0, 1


class FixPlanner:
    """The fixes for one source text: their edits, and validation that costs one parse for all."""

    def __init__(self, source: str):
        self.source = source
        self._lines = split_lines(source)
        self._line_starts = line_starts(source)
        self._valid: set[Fix] = set()
        # Inserted lines follow the file's own line endings (CRLF files stay CRLF).
        self._newline = newline_of(source)

    def edits_for(self, fix: Fix) -> list[TextEdit]:
        """The edits that apply `fix` alone; FixError when the result would not parse."""
        fix = _without_repeated_comments(self._lines, fix, set())
        if fix not in self._valid:
            self.apply([fix])  # raises FixError when the result does not parse
        edits = self._direct_edits(fix) + self._import_edits(fix.imports)
        return sorted(edits, key=lambda edit: (edit.span.line, edit.span.column))

    def validate_together(self, fixes: Iterable[Fix]) -> None:
        """Check many fixes with one parse, so `edits_for` need not parse for each of them."""
        try:
            result = self.apply(fixes)
        except FixError:
            return  # each fix is then checked on its own
        self._valid.update(result.applied)

    def apply(self, fixes: Iterable[Fix]) -> FixResult:
        accepted: list[tuple[int, int, int, str]] = []
        applied: list[Fix] = []
        skipped: list[Fix] = []
        imports: list[AddImport] = []
        comments_placed: set[tuple[int, str]] = set()
        placed: list[Fix] = []  # as placed: without comments an earlier fix already wrote
        for fix in fixes:
            if fix in applied:  # one rewrite shared by several findings (a whole block) fixes each of them
                applied.append(fix)
                continue
            unrepeated = _without_repeated_comments(self._lines, fix, comments_placed)
            edits = [self._offsets(edit, _FIX_RANK) for edit in self._direct_edits(unrepeated)]
            if any(_overlaps(edit, other) for edit in edits for other in accepted):
                skipped.append(fix)
                continue
            accepted.extend(edits)
            comments_placed.update((comment.line, comment.text) for comment in fix.comments)
            imports.extend(fix.imports)
            applied.append(fix)
            placed.append(unrepeated)
        accepted.extend(self._offsets(edit, _IMPORT_RANK) for edit in self._import_edits(tuple(imports)))
        text = self.source
        for start, end, _, new_text in sorted(accepted, reverse=True):
            text = text[:start] + new_text + text[end:]
        try:
            ast.parse(text)
        except SyntaxError as error:
            raise FixError(f"the fixed text would not parse: {error.msg} (line {error.lineno})") from None
        self._valid.update(placed)
        return FixResult(text, tuple(applied), tuple(skipped))

    # ---- edits ------------------------------------------------------------------------
    def _direct_edits(self, fix: Fix) -> list[TextEdit]:
        edits = [TextEdit(replacement.span, self._with_newlines(replacement.new_text)) for replacement in fix.replacements]
        for comment in fix.comments:
            line = self._lines[comment.line - 1] if 1 <= comment.line <= len(self._lines) else ""
            indentation = line[: len(line) - len(line.lstrip())]
            edits.append(TextEdit(Span(comment.line, 0, comment.line, 0), f"{indentation}# {comment.text}{self._newline}"))
        return edits

    def _with_newlines(self, text: str) -> str:
        return text if self._newline == "\n" else text.replace("\r\n", "\n").replace("\n", self._newline)

    def _import_edits(self, imports: tuple[AddImport, ...]) -> list[TextEdit]:
        missing = tuple(wanted for wanted in dict.fromkeys(imports) if (wanted.module, wanted.name) not in self._imported)
        if not missing:
            return []
        return self._edits_adding(missing)

    def _edits_adding(self, imports: tuple[AddImport, ...]) -> list[TextEdit]:
        import libcst
        from libcst.codemod import CodemodContext
        from libcst.codemod.visitors import AddImportsVisitor

        try:
            module = libcst.parse_module(self.source)
        except libcst.ParserSyntaxError as error:
            raise FixError(f"cannot add imports to a file that does not parse: {error.message}") from None
        context = CodemodContext()
        for wanted in imports:
            AddImportsVisitor.add_needed_import(context, wanted.module, wanted.name)
        return text_edits(self.source, AddImportsVisitor(context).transform_module(module).code)

    @cached_property
    def _imported(self) -> set[tuple[str, str | None]]:
        """Top-level imports without aliases, as (module, name): what an AddImport may reuse."""
        try:
            tree = ast.parse(self.source)
        except SyntaxError:
            return set()
        found: set[tuple[str, str | None]] = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                found.update((alias.name, None) for alias in node.names if alias.asname is None)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.update((node.module, alias.name) for alias in node.names if alias.asname is None)
        return found

    def _offsets(self, edit: TextEdit, rank: int) -> tuple[int, int, int, str]:
        span = edit.span
        start = self._offset(span.line, span.column)
        end = self._offset(span.end_line, span.end_column)
        return (start, end, rank, edit.new_text)

    def _offset(self, line: int, column: int) -> int:
        starts = self._line_starts
        if not 1 <= line <= len(starts):
            raise FixError(f"line {line} is outside the document")
        offset = starts[line - 1] + column
        line_end = starts[line] if line < len(starts) else len(self.source)
        if column < 0 or offset > line_end or offset > len(self.source):
            raise FixError(f"column {column} is outside line {line}")
        return offset


def apply_fixes(source: str, fixes: Iterable[Fix]) -> FixResult:
    return FixPlanner(source).apply(fixes)


def fix_edits(source: str, fix: Fix) -> list[TextEdit]:
    """The edits that apply one fix to `source`."""
    return FixPlanner(source).edits_for(fix)


def _without_repeated_comments(lines: list[str], fix: Fix, placed: set[tuple[int, str]]) -> Fix:
    """One explanatory comment serves a run of consecutive statements fixed for the same reason
    (by this fix or an earlier one), and a comment already above the statement is not written again."""
    seen = set(placed)
    kept = []
    for comment in sorted(fix.comments, key=lambda comment: comment.line):
        repeated = (comment.line - 1, comment.text) in seen or (
            2 <= comment.line <= len(lines) + 1 and lines[comment.line - 2].strip() == f"# {comment.text}"
        )
        seen.add((comment.line, comment.text))
        if not repeated:
            kept.append(comment)
    kept = tuple(kept)
    return fix if kept == fix.comments else replace(fix, comments=kept)


def text_edits(old: str, new: str) -> list[TextEdit]:
    """Minimal line-level edits from `old` to `new`, narrowed to characters within one line."""
    old_lines = lines_with_ends(old)
    new_lines = lines_with_ends(new)
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


def _overlaps(edit: tuple[int, int, int, str], other: tuple[int, int, int, str]) -> bool:
    start, end = edit[0], edit[1]
    other_start, other_end = other[0], other[1]
    if start == end or other_start == other_end:  # insertions collide only at the same point
        return (start, end) == (other_start, other_end) or other_start < start < other_end or start < other_start < end
    return start < other_end and other_start < end
