"""Code actions: a rule's quick fix and its alternatives, "Ignore CODE on this line", and fix-all on
a document (primary fixes only: an alternative is a choice a person makes).

Edits are computed from the document's current text (the analysis of its current version),
never from positions a client remembered, and a result that would not parse is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types as lsp

from llmarch_lsp.findings import Finding, Span
from llmarch_lsp.fixes.apply import FixError, FixPlanner, TextEdit, apply_fixes, text_edits
from llmarch_lsp.lsp.diagnostics import Analysis, is_ours, to_diagnostic
from llmarch_lsp.lsp.positions import PositionEncoder
from llmarch_lsp.suppressions import with_ignore

FIX_ALL_KIND = f"{lsp.CodeActionKind.SourceFixAll.value}.llmarch"
KINDS = [lsp.CodeActionKind.QuickFix, FIX_ALL_KIND]


def code_actions(
    document: lsp.VersionedTextDocumentIdentifier,
    source: str,
    analysis: Analysis,
    encoder: PositionEncoder,
    params: lsp.CodeActionParams,
    versioned_edits: bool,
) -> list[lsp.CodeAction]:
    editor = _EditBuilder(document, analysis.lines, encoder, versioned_edits)
    actions: list[lsp.CodeAction] = []
    if _wanted(lsp.CodeActionKind.QuickFix, params.context.only):
        planner = analysis.fix_planners.get(source)  # one per version: validated fixes stay validated
        if planner is None:
            planner = analysis.fix_planners[source] = FixPlanner(source)
        for finding, diagnostic in _targets(document.uri, analysis, encoder, params):
            actions.extend(_quick_fixes(planner, finding, diagnostic, analysis.lines, editor))
    if _wanted(FIX_ALL_KIND, params.context.only):
        fix_all = _fix_all(source, analysis, editor)
        if fix_all is not None:
            actions.append(fix_all)
    return actions


def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    """Kinds are hierarchical: asking for `source.fixAll` or `source` includes ours."""
    if only is None:
        return True
    return any(kind == wanted or kind.startswith(f"{wanted}.") for wanted in only)


def _targets(uri: str, analysis: Analysis, encoder: PositionEncoder, params: lsp.CodeActionParams):
    """Findings the client asked about, each with the diagnostic to attach to its actions.

    Prefer the diagnostics the client sent (matched by code and range); clients that send none
    get actions for the findings under the requested range.
    """
    ours = [diagnostic for diagnostic in params.context.diagnostics if is_ours(diagnostic)]
    for finding in analysis.findings:
        range_ = encoder.range(analysis.lines, finding.span)
        if ours:
            match = next((d for d in ours if d.code == finding.code and d.range == range_), None)
            if match is not None:
                yield finding, match
        elif _intersects(range_, params.range):
            yield finding, to_diagnostic(finding, uri, analysis.lines, encoder)


def _intersects(a: lsp.Range, b: lsp.Range) -> bool:
    def key(position: lsp.Position) -> tuple[int, int]:
        return (position.line, position.character)

    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def _quick_fixes(planner: FixPlanner, finding: Finding, diagnostic: lsp.Diagnostic, lines: Sequence[str], editor):
    """The finding's fix, then each alternative (another way to fix it, only ever picked by a person),
    then "Ignore CODE on this line". A fix whose result would not parse is left out."""
    fixes = ([finding.fix] if finding.fix is not None else []) + list(finding.alternatives)
    for position, fix in enumerate(fixes):
        try:
            edits = planner.edits_for(fix)
        except FixError:
            continue
        if edits:
            yield lsp.CodeAction(
                title=f"llmarch ({finding.code}): {fix.title}",
                kind=lsp.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                # Only the primary fix, and only when it keeps the program's meaning, is preferred.
                is_preferred=fix.is_safe and position == 0 and finding.fix is not None,
                edit=editor.workspace_edit(edits),
            )
    ignore = _ignore_edit(finding, lines)
    if ignore is not None:
        yield lsp.CodeAction(
            title=f"Ignore {finding.code} on this line",
            kind=lsp.CodeActionKind.QuickFix,
            diagnostics=[diagnostic],
            edit=editor.workspace_edit([ignore]),
        )


def _ignore_edit(finding: Finding, lines: Sequence[str]) -> TextEdit | None:
    """Add the code to the `# llmarch: ignore[...]` comment on the finding's first line."""
    number = finding.span.line
    if not 1 <= number <= len(lines):
        return None
    line = lines[number - 1]
    if line.rstrip().endswith("\\"):  # a comment after a line continuation would not parse
        return None
    new_line = with_ignore(line, finding.code)
    if new_line == line:
        return None
    (edit,) = text_edits(line, new_line)
    shift = number - 1
    return TextEdit(Span(edit.span.line + shift, edit.span.column, edit.span.end_line + shift, edit.span.end_column), edit.new_text)


def _fix_all(source: str, analysis: Analysis, editor) -> lsp.CodeAction | None:
    """Every safe fix (and unsafe ones when configured) in one edit; None when nothing applies."""
    allow_unsafe = analysis.settings.unsafe_fixes
    fixes = [f.fix for f in analysis.findings if f.fix is not None and (f.fix.is_safe or allow_unsafe)]
    if not fixes:
        return None
    try:
        fixed = apply_fixes(source, fixes)
    except FixError:
        return None
    edits = text_edits(source, fixed.text)
    if not edits:
        return None
    return lsp.CodeAction(
        title="llmarch: Fix all auto-fixable problems",
        kind=FIX_ALL_KIND,
        edit=editor.workspace_edit(edits),
    )


class _EditBuilder:
    """TextEdits in Python columns → a WorkspaceEdit in the client's encoding."""

    def __init__(self, document: lsp.VersionedTextDocumentIdentifier, lines: Sequence[str], encoder: PositionEncoder, versioned: bool):
        self._document = document
        self._lines = lines
        self._encoder = encoder
        self._versioned = versioned

    def workspace_edit(self, edits: Sequence[TextEdit]) -> lsp.WorkspaceEdit:
        lsp_edits = [lsp.TextEdit(range=self._encoder.range(self._lines, edit.span), new_text=edit.new_text) for edit in edits]
        if self._versioned:
            # A client refuses a versioned edit if the document changed since: never a stale fix.
            identifier = lsp.OptionalVersionedTextDocumentIdentifier(uri=self._document.uri, version=self._document.version)
            return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(text_document=identifier, edits=lsp_edits)])
        return lsp.WorkspaceEdit(changes={self._document.uri: lsp_edits})
