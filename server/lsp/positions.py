"""Python string columns ↔ LSP positions in the negotiated encoding (UTF-16 unless the client
offered and pygls chose UTF-8 or UTF-32).

Inside the program a column counts Python characters (code points); the protocol counts code
units of the encoding. The two differ on lines with non-ASCII text: `—` is one character but
three UTF-8 units, `🙂` one character but two UTF-16 units.
"""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types as lsp

from llmarch_lsp.findings import Span

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


class PositionEncoder:
    def __init__(self, encoding: str = UTF16):
        self.encoding = str(encoding)

    def units(self, text: str) -> int:
        """How many code units `text` takes in this encoding."""
        if self.encoding == UTF32 or text.isascii():
            return len(text)
        if self.encoding == UTF8:
            return len(text.encode("utf-8"))
        return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)

    def to_units(self, line: str, column: int) -> int:
        """Python column on `line` → code-unit column (clamped to the line)."""
        return self.units(line[: max(0, column)])

    def to_column(self, line: str, units: int) -> int:
        """Code-unit column on `line` → Python column; a unit inside a character rounds down."""
        if self.encoding == UTF32 or line.isascii():
            return min(max(0, units), len(line))
        counted = 0
        for column, char in enumerate(line):
            counted += self.units(char)
            if counted > units:
                return column
        return len(line)

    def position(self, lines: Sequence[str], line: int, column: int) -> lsp.Position:
        """A 1-based line and Python column → an LSP position (0-based line, code units)."""
        index = line - 1
        text = lines[index] if 0 <= index < len(lines) else ""
        return lsp.Position(line=max(0, index), character=self.to_units(text, column))

    def range(self, lines: Sequence[str], span: Span) -> lsp.Range:
        return lsp.Range(
            start=self.position(lines, span.line, span.column),
            end=self.position(lines, span.end_line, span.end_column),
        )

    def span(self, lines: Sequence[str], range_: lsp.Range) -> Span:
        """An LSP range → a Span (1-based lines, Python columns)."""
        start, end = range_.start, range_.end
        return Span(
            start.line + 1,
            self.to_column(_line(lines, start.line), start.character),
            end.line + 1,
            self.to_column(_line(lines, end.line), end.character),
        )


def _line(lines: Sequence[str], index: int) -> str:
    return lines[index] if 0 <= index < len(lines) else ""




