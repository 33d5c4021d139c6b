"""Hover: the expert explanation behind a finding, or behind a code in an ignore comment.

Diagnosis (the finding's message), mechanism (Hypothesis), literature (full citations with
arXiv links), expected outcome, what to monitor (Next steps) and cost (Caveats).
"""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types as lsp

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.analyzers.rule import Rule
from llmarch_lsp.findings import Finding, Span
from llmarch_lsp.lsp.positions import PositionEncoder
from llmarch_lsp.suppressions import codes_in_comment

# (doc section, heading shown in the hover)
_SECTIONS = (
    ("Hypothesis", "Mechanism"),
    ("Expected outcome", "Expected outcome"),
    ("Next steps", "What to monitor"),
    ("Caveats", "Cost and caveats"),
)


def hover(findings: Sequence[Finding], lines: Sequence[str], encoder: PositionEncoder, position: lsp.Position) -> lsp.Hover | None:
    if not 0 <= position.line < len(lines):
        return None
    line_text = lines[position.line]
    line, column = position.line + 1, encoder.to_column(line_text, position.character)

    under = [finding for finding in findings if _contains(finding.span, line, column)]
    if under:
        # The innermost finding first; several rules may flag overlapping code.
        under.sort(key=lambda finding: (finding.span.end_line - finding.span.line, finding.span.end_column - finding.span.column))
        parts = [explain(find_rule(finding.code), finding) for finding in under]
        return _hover("\n\n---\n\n".join(part for part in parts if part), encoder.range(lines, under[0].span))

    for code, start, end in codes_in_comment(line_text):
        rule = find_rule(code)
        if rule is not None and start <= column <= end:
            return _hover(explain(rule), encoder.range(lines, Span(line, start, line, end)))
    return None


def explain(rule: Rule | None, finding: Finding | None = None) -> str:
    """Markdown for a rule, led by the finding's own diagnosis when there is one."""
    if rule is None:
        return finding.message if finding else ""
    sections = rule.sections
    severity = f" · {finding.severity.value}" if finding else ""
    parts = [
        f"**{rule.code} `{rule.name}`**{severity} · confidence {rule.confidence.value} · evidence {rule.evidence.value}"
    ]
    parts.append(finding.message if finding else rule.summary)
    mechanism, *rest = _SECTIONS
    if sections.get(mechanism[0]):
        parts.append(f"**{mechanism[1]}**\n\n{sections[mechanism[0]]}")
    citations = rule.citations
    if citations:
        parts.append("**Literature**\n\n" + "\n".join(f"- {citation.markdown()}" for citation in citations))
    for section, heading in rest:
        if sections.get(section):
            parts.append(f"**{heading}**\n\n{sections[section]}")
    parts.append(f"[{rule.code} documentation]({rule.docs_url})")
    return "\n\n".join(parts)


def _contains(span: Span, line: int, column: int) -> bool:
    if not span.line <= line <= span.end_line:
        return False
    if line == span.line and column < span.column:
        return False
    return not (line == span.end_line and column > span.end_column)


def _hover(markdown: str, range_: lsp.Range) -> lsp.Hover:
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=markdown), range=range_)
