"""One walk over the tree: parents and nodes grouped by type, for every rule to reuse."""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cached_property


class NodeIndex:
    def __init__(self, tree: ast.Module):
        self.parents: dict[ast.AST, ast.AST] = {}
        self.by_type: dict[type, list[ast.AST]] = defaultdict(list)
        _index(tree, self.parents, self.by_type)

    def nodes(self, *types: type) -> list[ast.AST]:
        if len(types) == 1:
            return self.by_type.get(types[0], [])
        found = [node for t in types for node in self.by_type.get(t, [])]
        found.sort(key=lambda n: (n.lineno, n.col_offset))
        return found

    @property
    def calls(self) -> list[ast.Call]:
        return self.by_type.get(ast.Call, [])

    @cached_property
    def calls_by_name(self) -> dict[str, list[ast.Call]]:
        """Every call grouped by the last part of its callee (`step`, `AdamW`, `ln_1`), in source order."""
        grouped: dict[str, list[ast.Call]] = defaultdict(list)
        for call in self.calls:
            func = call.func
            if isinstance(func, ast.Name):
                grouped[func.id].append(call)
            elif isinstance(func, ast.Attribute):
                grouped[func.attr].append(call)
        return dict(grouped)  # a plain dict: a lookup of an unknown name never inserts one

    @cached_property
    def names_by_id(self) -> dict[str, list[ast.Name]]:
        """Every `Name` (read or written) grouped by identifier, in walk order."""
        grouped: dict[str, list[ast.Name]] = {}
        for node in self.by_type.get(ast.Name, ()):
            group = grouped.get(node.id)
            if group is None:
                grouped[node.id] = [node]
            else:
                group.append(node)
        return grouped

    def calls_named(self, *names: str) -> list[ast.Call]:
        if len(names) == 1:
            return self.calls_by_name.get(names[0], [])
        return [call for name in names for call in self.calls_by_name.get(name, ())]

    @property
    def functions(self) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        return self.nodes(ast.FunctionDef, ast.AsyncFunctionDef)

    @property
    def classes(self) -> list[ast.ClassDef]:
        return self.by_type.get(ast.ClassDef, [])

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.parents.get(node)

    def ancestors(self, node: ast.AST):
        parent = self.parents.get(node)
        while parent is not None:
            yield parent
            parent = self.parents.get(parent)

    def enclosing(self, node: ast.AST, *types: type) -> ast.AST | None:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, types):
                return ancestor
        return None

    def enclosing_function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        return self.enclosing(node, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

    def enclosing_statement(self, node: ast.AST) -> ast.stmt:
        current = node
        while not isinstance(current, ast.stmt):
            current = self.parents[current]
        return current


# Fields that never hold a node worth indexing: names and other strings, numbers, constants,
# and the context/operator singletons (`Load`, `Add`, ...) that the parser shares between nodes,
# so they have no single parent. Skipping them spares a getattr and a type check per field.
_SCALAR_FIELDS = frozenset({
    "ctx", "op", "ops", "id", "attr", "name", "asname", "module", "level", "arg", "type_comment",
    "kind", "conversion", "is_async", "simple", "tag", "lineno", "kwd_attrs", "rest",
})
_SCALAR_FIELDS_OF = {ast.Constant: {"value"}, ast.MatchSingleton: {"value"}, ast.Global: {"names"}, ast.Nonlocal: {"names"}}
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    fields = _CHILD_FIELDS.get(cls)
    if fields is None:
        skipped = _SCALAR_FIELDS | _SCALAR_FIELDS_OF.get(cls, set())
        fields = _CHILD_FIELDS[cls] = tuple(name for name in cls._fields if name not in skipped)
    return fields


def _index(tree: ast.AST, parents: dict, by_type: dict) -> None:
    """Pre-order walk (so each list is in source order) recording parents and types.

    Hand-rolled rather than `ast.walk`: this is the one traversal every rule shares, and it
    runs on every keystroke, so it must stay a fraction of `ast.parse`. Nodes with one child
    field (`Expr`, `Attribute`, `keyword`, ...) and none (`Name`, `Constant`) are most of a
    tree, so they take the short paths.
    """
    stack = [tree]
    pop, push = stack.pop, stack.append
    fields_of = _CHILD_FIELDS
    while stack:
        node = pop()
        cls = node.__class__
        by_type[cls].append(node)
        fields = fields_of.get(cls)
        if fields is None:
            fields = _child_fields(cls)
        if not fields:
            continue
        if len(fields) == 1:
            value = getattr(node, fields[0], None)
            children = value if value.__class__ is list else (value,)
        else:
            children = []
            for name in fields:
                value = getattr(node, name, None)
                if value.__class__ is list:
                    children.extend(value)
                else:
                    children.append(value)
        for child in reversed(children):
            if child is not None:  # optional fields, and the gaps in `Dict.keys` / `kw_defaults`
                parents[child] = node
                push(child)


def walk(node: ast.AST):
    """`ast.walk`, faster: the same breadth-first order, minus the context and operator singletons
    (`Load`, `Add`), which no caller looks for (they read `node.ctx` and `node.op` instead)."""
    queue = [node]
    fields_of = _CHILD_FIELDS
    for current in queue:  # a list grows safely while it is iterated
        yield current
        cls = current.__class__
        fields = fields_of.get(cls)
        if fields is None:
            fields = _child_fields(cls)
        for name in fields:
            value = getattr(current, name, None)
            if value is None:
                continue
            if value.__class__ is list:
                queue.extend(item for item in value if item is not None)
            else:
                queue.append(value)
