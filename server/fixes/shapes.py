"""Tensor shapes the code states about itself, for the shape comments fixes write.

A fix may only write a shape it can read off the surrounding code: a trailing comment on the line
that defines an operand (`q = ...  # (B, nh, T, hs)`), or a `view`/`reshape` with explicit sizes,
optionally followed by `.transpose(1, 2)` (`k.view(B, T, self.n_head, hs).transpose(1, 2)`).
Anything else gives no shape, and the fix writes no comment.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.fixes.scopes import assignments, per_document

_SHAPE_COMMENT = re.compile(r"^#\s*\(([^()]*)\)")
_SIMPLE_DIMENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^\d+$")
_RESHAPES = ("view", "reshape")


def trailing_comment(document, statement: ast.stmt) -> str | None:
    """The comment after a one-line statement (`# (B, nh, T, T)`), or None."""
    if statement.end_lineno != statement.lineno:
        return None
    span = document.span_of(statement)
    rest = document.line_text(span.line)[span.end_column :].strip()
    return rest if rest.startswith("#") else None


def ends_its_line(document, statement: ast.stmt) -> bool:
    """Nothing but whitespace or a comment follows the statement on its last line."""
    span = document.span_of(statement)
    rest = document.line_text(span.end_line)[span.end_column :].strip()
    return not rest or rest.startswith("#")


def starts_its_line(document, statement: ast.stmt) -> bool:
    span = document.span_of(statement)
    return not document.line_text(span.line)[: span.column].strip()


def owns_its_lines(document, statement: ast.stmt) -> bool:
    """The statement starts its first line and nothing but a comment follows it on its last."""
    return starts_its_line(document, statement) and ends_its_line(document, statement)


def block_of(document, statement: ast.stmt) -> list[ast.stmt] | None:
    """The statement list (a body, an `else`, a `finally`) that holds `statement`."""
    parent = document.index.parent(statement)
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if isinstance(block, list) and any(item is statement for item in block):
            return block
    return None


def dimensions(document, operand: ast.expr, use: ast.AST) -> list[str | None] | None:
    """The sizes of `operand` as the code writes them (None for a size written as an expression),
    when its defining statement states them; None when it does not."""
    if not isinstance(operand, ast.Name):
        return None
    definition = _latest_definition(document, operand.id, use)
    if definition is None:
        return None
    comment = trailing_comment(document, definition)
    if comment is not None:
        match = _SHAPE_COMMENT.match(comment)
        if match:
            parts = [part.strip() for part in match.group(1).split(",")]
            if all(parts):
                return parts
    return _reshaped_dimensions(document, definition.value)


def scores_shape(document, query: ast.expr, key: ast.expr, use: ast.AST) -> str | None:
    """`(B, nh, T, T)` for `q @ k.transpose(-2, -1)`, from the shapes of `q` and (untransposed) `k`."""
    return per_document(document, ("scores-shape", id(query), id(key)), lambda: _scores_shape(document, query, key, use))


def _scores_shape(document, query: ast.expr, key: ast.expr, use: ast.AST) -> str | None:
    query_dimensions = dimensions(document, query, use)
    key_dimensions = dimensions(document, key, use)
    if not query_dimensions or not key_dimensions or len(query_dimensions) != len(key_dimensions):
        return None
    shape = [*query_dimensions[:-1], key_dimensions[-2]]
    if len(shape) < 2 or any(dimension is None for dimension in shape):
        return None
    return "(" + ", ".join(shape) + ")"


def rank(document, operand: ast.expr, use: ast.AST) -> int | None:
    found = dimensions(document, operand, use)
    return len(found) if found else None


def _latest_definition(document, name: str, use: ast.AST) -> ast.Assign | None:
    """The last one-target assignment `name = ...` before `use` in the same function."""
    function = document.index.enclosing(use, ast.FunctionDef, ast.AsyncFunctionDef)
    if function is None:
        return None
    position = (use.lineno, use.col_offset)
    earlier = [
        assignment
        for assignment in assignments(document, function, name, single=True)
        if (assignment.lineno, assignment.col_offset) < position
    ]
    return max(earlier, key=lambda assignment: (assignment.lineno, assignment.col_offset), default=None)


def _reshaped_dimensions(document, value: ast.expr) -> list[str | None] | None:
    swap = None
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in ("transpose", "swapaxes")
        and len(value.args) == 2
        and all(isinstance(argument, ast.Constant) and type(argument.value) is int for argument in value.args)
    ):
        swap = (value.args[0].value, value.args[1].value)
        value = value.func.value
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in _RESHAPES):
        return None
    if not value.args or value.keywords or any(isinstance(argument, ast.Starred) for argument in value.args):
        return None
    sizes = [_dimension_text(document, argument) for argument in value.args]
    if swap is not None:
        first, second = swap
        if not (0 <= first < len(sizes) and 0 <= second < len(sizes)):
            return None
        sizes[first], sizes[second] = sizes[second], sizes[first]
    return sizes


def _dimension_text(document, node: ast.expr) -> str | None:
    text = document.segment(node).removeprefix("self.")
    return text if _SIMPLE_DIMENSION.match(text) else None


def head_size(document, operand: ast.expr, use: ast.AST) -> ast.expr | None:
    """`self.head_dim` in `k = self.k_proj(x).view(B, T, nh, self.head_dim).transpose(1, 2)`: the size
    the code itself gives the last axis, when it is a plain name or attribute."""
    if not isinstance(operand, ast.Name):
        return None
    definition = _latest_definition(document, operand.id, use)
    if definition is None:
        return None
    value = definition.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in ("transpose", "swapaxes"):
        axes = [argument.value for argument in value.args if isinstance(argument, ast.Constant) and type(argument.value) is int]
        if len(axes) != 2 or len(value.args) != 2:
            return None
        value = value.func.value
        reshape_arguments = value.args if isinstance(value, ast.Call) else []
        if any(axis in (-1, len(reshape_arguments) - 1) for axis in axes):
            return None  # the last axis moved
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in _RESHAPES):
        return None
    if not value.args or value.keywords or isinstance(value.args[-1], ast.Starred):
        return None
    last = value.args[-1]
    plain = isinstance(last, ast.Name) or (
        isinstance(last, ast.Attribute) and isinstance(last.value, ast.Name) and last.value.id == "self"
    )
    return last if plain else None
