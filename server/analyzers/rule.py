"""What every rule declares: metadata, documentation, examples and its check.

A rule module holds, in this order: a docstring with the documentation sections, then
`RULE = Rule(...)` with metadata and inline VALID / INVALID examples, then the check.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmarch_lsp.citations import Citation, cite
from llmarch_lsp.document import Document
from llmarch_lsp.findings import Confidence, Evidence, Finding, Related, Severity, Span

DOC_SECTIONS = (
    "Problem",
    "Diagnosis",
    "Hypothesis",
    "Literature",
    "Recommendation",
    "Expected outcome",
    "Implementation",
    "Caveats",
    "Next steps",
)

_SECTION_HEADING = re.compile(r"^## (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Invalid:
    """Code the rule must flag, at exactly these 1-based `line:col-end_line:end_col` ranges.

    `fixed`, when given, is the whole text after applying every fix the rule offers.
    """

    code: str
    at: tuple[str, ...]
    fixed: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Valid:
    code: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    default: Any
    description: str


@dataclass(frozen=True)
class RuleContext:
    """What a check receives besides the document: the rule's resolved options, and whether to
    build alternative fixes (only editors offer them; `--check` never uses them)."""

    options: Mapping[str, Any]
    alternatives: bool = True


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    summary: str
    severity: Severity
    confidence: Confidence
    citation_keys: tuple[str, ...]
    check: Callable[[Document, RuleContext, Rule], Iterable[Finding]]
    docs: str
    valid: tuple[Valid | str, ...] = ()
    invalid: tuple[Invalid, ...] = ()
    tags: tuple[str, ...] = ()
    fix_title: str | None = None
    fix_safety: str | None = None  # "safe" | "unsafe" | None when the rule has no fix
    options: Mapping[str, Option] = field(default_factory=dict)
    evidence: Evidence = Evidence.ESTABLISHED

    @property
    def citations(self) -> tuple[Citation, ...]:
        return tuple(cite(key) for key in self.citation_keys)

    @property
    def sections(self) -> dict[str, str]:
        return parse_sections(self.docs)

    @property
    def docs_url(self) -> str:
        return f"https://github.com/llmarch/llmarch-lsp/blob/main/docs/rules.md#{self.code.lower()}-{self.name}"

    def resolved_options(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        resolved = {key: option.default for key, option in self.options.items()}
        resolved.update(overrides or {})
        return resolved

    def run(self, document: Document, options: Mapping[str, Any] | None = None, *, alternatives: bool = True) -> list[Finding]:
        return list(self.check(document, RuleContext(self.resolved_options(options), alternatives), self))

    def finding(
        self,
        document: Document,
        where: ast.AST | Span,
        message: str,
        *,
        severity: Severity | None = None,
        related: Iterable[Related] = (),
        fix=None,
        alternatives=(),
    ) -> Finding:
        span = where if isinstance(where, Span) else document.span_of(where)
        return Finding(
            code=self.code,
            name=self.name,
            span=span,
            message=message,
            severity=severity or self.severity,
            confidence=self.confidence,
            citations=self.citation_keys,
            related=tuple(related),
            fix=fix,
            alternatives=tuple(alternatives),
        )


def parse_sections(docs: str) -> dict[str, str]:
    headings = list(_SECTION_HEADING.finditer(docs))
    sections = {}
    for position, heading in enumerate(headings):
        end = headings[position + 1].start() if position + 1 < len(headings) else len(docs)
        sections[heading.group(1).strip()] = docs[heading.end() : end].strip()
    return sections
