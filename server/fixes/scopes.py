"""Names inside one function, looked up from the shared node index, and kept with the document.

Fix builders ask "where is `q` assigned before this use?" and "is `att` read anywhere after the
chain?" for every attention site. The document's node index already lists every `Name` and
`Assign`; grouping them by name once per document answers each question by looking at a handful
of nodes instead of walking the function. The groupings live in the document's own `__dict__`,
so they go away with the document (no global cache that could outlive it).
"""

from __future__ import annotations

import ast
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_CACHE = "_fix_facts"
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef)


def per_document(document, key, compute: Callable[[], T]) -> T:
    """`compute()` once per document and key."""
    cache = document.__dict__.setdefault(_CACHE, {})
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def loads(document, function: ast.AST, name: str) -> list[ast.Name]:
    """Every read of `name` inside `function` (nested scopes included). Only a few names are ever
    asked about (`att`, `scores`, ...); the node index groups every name once for all of them."""
    group = per_document(document, ("loads", name), lambda: _loads_by_line(document, name))
    return [node for node, _ in _in_function(document, group, function)]


def assignments(document, function: ast.AST, name: str, *, single: bool = False) -> list[ast.Assign]:
    """Assignments to `name` inside `function`: any target naming it, or (`single`) exactly `name = ...`."""
    group = per_document(
        document, ("assignments", name), lambda: _by_line(document.index.assignments_by_name, name)
    )
    return [node for node, alone in _in_function(document, group, function) if alone or not single]


class _ByLine:
    """Nodes (with a flag) sorted by line, so a function's share is found by bisection."""

    __slots__ = ("lines", "items")

    def __init__(self, items: list[tuple[ast.AST, bool]]):
        items.sort(key=lambda item: item[0].lineno)
        self.items = items
        self.lines = [item[0].lineno for item in items]


def _in_function(document, group: _ByLine | None, function: ast.AST) -> list[tuple[ast.AST, bool]]:
    if group is None:
        return []
    start = bisect_left(group.lines, function.lineno)
    end = bisect_right(group.lines, function.end_lineno or function.lineno)
    if function.__class__ in _SCOPES:
        # A def's lines hold only its own nodes: its decorators sit above it, and no statement can
        # follow a compound one on its last line. Anything else (a lambda) is checked by ancestry.
        return group.items[start:end]
    return [item for item in group.items[start:end] if _encloses(document, function, item[0])]


def _by_line(grouped: dict[str, list], name: str) -> _ByLine | None:
    """Sorted lazily: of the thousands of names in a file, fixes ask about a few."""
    items = grouped.get(name)
    return None if items is None else _ByLine(list(items))


def _loads_by_line(document, name: str) -> _ByLine | None:
    load = ast.Load
    reads = [(node, True) for node in document.index.names_by_id.get(name, ()) if node.ctx.__class__ is load]
    return _ByLine(reads) if reads else None


def _encloses(document, function: ast.AST, node: ast.AST) -> bool:
    return any(ancestor is function for ancestor in document.index.ancestors(node))
