"""Small builders that rules use to describe common fixes as data."""

from __future__ import annotations

import ast

from llmarch_lsp.citations import cite
from llmarch_lsp.document import Document
from llmarch_lsp.findings import Span
from llmarch_lsp.fixes.model import CommentAbove, Replace


def line_start(line: int) -> Span:
    """An empty span at the start of `line`: insert whole lines above it."""
    return Span(line, 0, line, 0)


def line_end(document: Document, line: int) -> Span:
    """An empty span at the end of `line`: insert `\\n<indent>statement` below it."""
    column = len(document.line_text(line))
    return Span(line, column, line, column)


def cited_comment(statement_line: int, reason: str, *citation_keys: str) -> CommentAbove:
    """`# <reason> (Xiong et al., 2020, arXiv:2002.04745)` above the statement on that line."""
    return CommentAbove(statement_line, cited_text(reason, *citation_keys))


def cited_text(reason: str, *citation_keys: str) -> str:
    """`<reason> (Xiong et al., 2020, arXiv:2002.04745)`: the text of a cited comment, for a comment
    that goes above a line the fix itself inserts."""
    references = "; ".join(cite(key).inline() for key in citation_keys)
    return f"{reason} ({references})" if references else reason


def set_keyword_argument(document: Document, call: ast.Call, name: str, value: str) -> Replace:
    """Set `name=value` in `call`: replace an existing keyword's value, or append one in the call's style."""
    for keyword in call.keywords:
        if keyword.arg == name:
            return Replace(document.span_of(keyword.value), value)
    arguments = [*call.args, *call.keywords]
    closing = document.span_of(call)
    closing_paren = Span(closing.end_line, closing.end_column - 1, closing.end_line, closing.end_column)
    if not arguments:
        return Replace(Span(closing_paren.line, closing_paren.column, closing_paren.line, closing_paren.column), f"{name}={value}")
    last = max(arguments, key=lambda node: (node.end_lineno, node.end_col_offset))
    last_span = document.span_of(last)
    between = document.text_in(Span(last_span.end_line, last_span.end_column, closing_paren.line, closing_paren.column))
    if "," in between:  # a trailing comma: the call lists one argument per line
        comma_column = last_span.end_column + between.index(",") + 1 if "\n" not in between.split(",")[0] else None
        if comma_column is not None and last_span.end_line != closing_paren.line:
            indentation = document.indentation_of(last_span.end_line)
            at = Span(last_span.end_line, comma_column, last_span.end_line, comma_column)
            return Replace(at, f"\n{indentation}{name}={value},")
        at = Span(closing_paren.line, closing_paren.column, closing_paren.line, closing_paren.column)
        return Replace(at, f" {name}={value}")
    at = Span(last_span.end_line, last_span.end_column, last_span.end_line, last_span.end_column)
    return Replace(at, f", {name}={value}")
