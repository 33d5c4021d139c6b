"""Findings → LSP diagnostics, and which old diagnostics may stay while the text does not parse."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import attrs
from lsprotocol import types as lsp

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.config import Settings
from llmarch_lsp.findings import Finding, Severity
from llmarch_lsp.lsp.positions import PositionEncoder

SOURCE = "llmarch"

SEVERITIES = {
    Severity.ERROR: lsp.DiagnosticSeverity.Error,
    Severity.WARNING: lsp.DiagnosticSeverity.Warning,
    Severity.INFO: lsp.DiagnosticSeverity.Information,
    Severity.HINT: lsp.DiagnosticSeverity.Hint,
}


def to_diagnostic(finding: Finding, uri: str, lines: Sequence[str], encoder: PositionEncoder) -> lsp.Diagnostic:
    rule = find_rule(finding.code)
    # `data` holds what a code action needs to describe the fix; its edits are computed from
    # the document's text when the action is requested, so no server state is involved.
    fix = {"title": finding.fix.title, "applicability": finding.fix.applicability} if finding.fix else None
    return lsp.Diagnostic(
        range=encoder.range(lines, finding.span),
        message=finding.message,
        severity=SEVERITIES[finding.severity],
        code=finding.code,
        code_description=lsp.CodeDescription(href=rule.docs_url) if rule else None,
        source=SOURCE,
        related_information=[
            lsp.DiagnosticRelatedInformation(
                location=lsp.Location(uri=uri, range=encoder.range(lines, related.span)),
                message=related.message,
            )
            for related in finding.related
        ]
        or None,
        data={"name": finding.name, "confidence": finding.confidence.value, "fix": fix},
    )


def is_ours(diagnostic: lsp.Diagnostic) -> bool:
    return diagnostic.source == SOURCE and isinstance(diagnostic.code, str)


def result_id(diagnostics: Iterable[lsp.Diagnostic]) -> str:
    """Same diagnostics, same id: a pull client is then told "unchanged"."""
    payload = json.dumps([attrs.asdict(diagnostic) for diagnostic in diagnostics], sort_keys=True, default=str)
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


def still_accurate(
    diagnostics: Iterable[lsp.Diagnostic], old_lines: Sequence[str], new_lines: Sequence[str]
) -> list[lsp.Diagnostic]:
    """The diagnostics from the last parseable text that still point at the same text now.

    While the document does not parse there are no new findings. An old diagnostic may stay
    only if the line count is unchanged and every line it (or its related information) covers
    is identical; anything else could underline the wrong text, so it is dropped.
    """
    if len(old_lines) != len(new_lines):
        return []

    def unchanged(range_: lsp.Range) -> bool:
        return all(old_lines[n] == new_lines[n] for n in range(range_.start.line, min(range_.end.line + 1, len(old_lines))))

    return [
        diagnostic
        for diagnostic in diagnostics
        if unchanged(diagnostic.range)
        and all(unchanged(info.location.range) for info in diagnostic.related_information or ())
    ]


@dataclass(frozen=True)
class Analysis:
    """What the server knows about one version of a document."""

    version: int
    lines: list[str]  # split the way the protocol counts lines
    findings: tuple[Finding, ...]  # from this exact text; empty when it did not parse
    diagnostics: list[lsp.Diagnostic]  # what the client is shown (may keep still-accurate old ones)
    settings: Settings
    parsed: bool

    @cached_property
    def result_id(self) -> str:
        return result_id(self.diagnostics)

    @cached_property
    def fix_planners(self) -> dict:
        """`FixPlanner`s for this version's text (one in practice), kept with it: a planner remembers
        the fixes it has validated (a parse of the whole fixed document each), so the code actions
        an editor asks for again on every cursor move in a diagnostic cost no parse."""
        return {}
