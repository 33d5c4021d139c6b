"""One parsed document, shared by every rule, with lazily computed facts."""

from __future__ import annotations

import ast
from functools import cached_property

from llmarch_lsp.findings import Span
from llmarch_lsp.text import split_lines


_OWN_FIELDS = ("source", "path")


class Document:
    """Source text plus its single `ast` parse. Facts are computed on first use and cached."""

    def __init__(self, source: str, path: str = "<string>", tree: ast.Module | None = None):
        self.source = source
        self.path = path
        self.tree = tree if tree is not None else ast.parse(source, filename=path, type_comments=False)

    @cached_property
    def lines(self) -> list[str]:
        return split_lines(self.source)

    def line_text(self, line: int) -> str:
        """1-based line; empty string past the end."""
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1]
        return ""

    # ast reports columns as UTF-8 byte offsets; everything else here uses characters.
    def char_column(self, line: int, byte_column: int) -> int:
        if line not in self._non_ascii_lines:
            return byte_column
        text = self.line_text(line)
        return len(text.encode("utf-8")[:byte_column].decode("utf-8", errors="ignore"))

    @cached_property
    def _non_ascii_lines(self) -> frozenset[int]:
        """Lines where bytes and characters differ; on every other line a byte column is the column."""
        if self.source.isascii():
            return frozenset()
        return frozenset(number for number, text in enumerate(self.lines, start=1) if not text.isascii())

    def span_of(self, node: ast.AST) -> Span:
        line, end_line = node.lineno, node.end_lineno or node.lineno
        column = node.col_offset
        end_column = node.end_col_offset if node.end_col_offset is not None else column
        if self._non_ascii_lines:
            column, end_column = self.char_column(line, column), self.char_column(end_line, end_column)
        return Span(line, column, end_line, end_column)

    def segment(self, node: ast.AST) -> str:
        """Exact source text of a node."""
        return self.text_in(self.span_of(node))

    def text_in(self, span: Span) -> str:
        if span.line == span.end_line:
            return self.line_text(span.line)[span.column : span.end_column]
        parts = [self.line_text(span.line)[span.column :]]
        parts += [self.line_text(n) for n in range(span.line + 1, span.end_line)]
        parts.append(self.line_text(span.end_line)[: span.end_column])
        return "\n".join(parts)

    def indentation_of(self, line: int) -> str:
        text = self.line_text(line)
        return text[: len(text) - len(text.lstrip())]

    # ---- shared facts -------------------------------------------------------------
    @cached_property
    def index(self):
        from llmarch_lsp.facts.index import NodeIndex

        return NodeIndex(self.tree)

    @cached_property
    def imports(self):
        from llmarch_lsp.facts.imports import ImportTable

        return ImportTable.from_index(self.index)

    @cached_property
    def modules(self):
        from llmarch_lsp.facts.modules import ModuleFacts

        return ModuleFacts(self)

    @cached_property
    def residuals(self):
        from llmarch_lsp.facts.residuals import ResidualFacts

        return ResidualFacts(self)

    @cached_property
    def stacks(self):
        from llmarch_lsp.facts.stacks import StackFacts

        return StackFacts(self)

    @cached_property
    def attention(self):
        from llmarch_lsp.facts.attention import find_attention_sites

        return find_attention_sites(self)

    @cached_property
    def score_flow(self):
        from llmarch_lsp.facts.score_flow import ScoreFlowFacts

        return ScoreFlowFacts(self)

    @cached_property
    def training(self):
        from llmarch_lsp.facts.training import TrainingFacts

        return TrainingFacts(self)

    @cached_property
    def loops(self):
        from llmarch_lsp.facts.loops import LoopFacts

        return LoopFacts(self)

    @cached_property
    def evaluation(self):
        from llmarch_lsp.facts.evaluation import EvaluationFacts

        return EvaluationFacts(self)

    @cached_property
    def config_values(self):
        from llmarch_lsp.facts.config_values import ConfigValues

        return ConfigValues(self)

    @cached_property
    def routers(self):
        from llmarch_lsp.facts.routers import find_routers

        return find_routers(self)

    @cached_property
    def checkpoint_port(self):
        from llmarch_lsp.facts.provenance import find_checkpoint_port

        return find_checkpoint_port(self)

    def release(self) -> None:
        """Drop the tree and every cached fact once analysis is done. Facts point back at their
        document (and some at each other), so otherwise the whole tree would wait for the cyclic
        GC to walk it before it is freed."""
        for name in [name for name in self.__dict__ if name not in _OWN_FIELDS]:
            del self.__dict__[name]

    def qualified_name(self, node: ast.AST) -> str | None:
        return self.imports.qualified_name(node)
