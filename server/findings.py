"""Plain data that flows from the analyzers to the front ends (CLI, language server).

Positions are Python string offsets: lines are 1-based, columns are 0-based character
offsets into the line. Front ends convert (the CLI prints 1-based columns, the language
server converts to UTF-16 code units).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmarch_lsp.fixes.model import Fix


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    HINT = "hint"


class Confidence(str, Enum):
    """How sure the check is that this code has the problem it names."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Evidence(str, Enum):
    """How settled the literature behind the rule's advice is."""

    ESTABLISHED = "established"  # replicated widely; standard practice in current recipes
    CONTESTED = "contested"  # real results on both sides; the right call depends on the setup
    PRELIMINARY = "preliminary"  # promising but from few papers or small scales


@dataclass(frozen=True, order=True)
class Span:
    line: int
    column: int
    end_line: int
    end_column: int

    def contains_line(self, line: int) -> bool:
        return self.line <= line <= self.end_line


@dataclass(frozen=True)
class Related:
    """Another location that explains a finding (where the optimizer is built, the loop...)."""

    span: Span
    message: str


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    span: Span
    message: str
    severity: Severity
    confidence: Confidence
    citations: tuple[str, ...] = ()
    related: tuple[Related, ...] = ()
    fix: Fix | None = None
    # Other ways to fix the same finding, offered as further code actions; never applied by --fix.
    alternatives: tuple[Fix, ...] = ()

    def with_severity(self, severity: Severity) -> Finding:
        from dataclasses import replace

        return replace(self, severity=severity)


@dataclass
class FileReport:
    """What the engine learned about one file: findings, or why it could not analyze it."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    # Rules that raised: (code, one-line reason). The other rules still reported.
    rule_failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: bool = False  # true when the file never mentions torch
