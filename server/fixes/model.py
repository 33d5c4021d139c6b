"""Fixes, and the text edits they are planned into, as plain data. Rules build fixes; nothing here touches text."""

from __future__ import annotations

from dataclasses import dataclass

from llmarch_lsp.findings import Span

SAFE = "safe"  # keeps the program's meaning; applied by fix-all
UNSAFE = "unsafe"  # changes numerics or behaviour; applied only when asked for


@dataclass(frozen=True)
class Replace:
    """Replace the exact text at `span` (the node the rule reported, or part of it)."""

    span: Span
    new_text: str


@dataclass(frozen=True)
class CommentAbove:
    """Insert `# text` on its own line above the statement that starts on `line`,
    with that statement's indentation. Trailing shape comments are never touched."""

    line: int
    text: str


@dataclass(frozen=True)
class AddImport:
    """`import module` (name None) or `from module import name`, unless already imported."""

    module: str
    name: str | None = None


@dataclass(frozen=True)
class Fix:
    title: str
    applicability: str
    replacements: tuple[Replace, ...] = ()
    comments: tuple[CommentAbove, ...] = ()
    imports: tuple[AddImport, ...] = ()

    @property
    def is_safe(self) -> bool:
        return self.applicability == SAFE


@dataclass(frozen=True)
class TextEdit:
    """Replace `span` of the old text (lines 1-based, columns 0-based characters): what a fix
    becomes once planned against a file's text (fixes/apply.py), and what the cache keeps."""

    span: Span
    new_text: str
