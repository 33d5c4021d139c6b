"""One walk over the tree, shared by every rule: each node's parent, nodes grouped by type, names
and attributes grouped by name, calls by callee; and, on first use, assignments by target and
nodes sorted by line for bisection."""

from __future__ import annotations

import ast
from bisect import bisect_left, bisect_right
from collections import defaultdict
from functools import cached_property
from operator import attrgetter


class NodeIndex:
    def __init__(self, tree: ast.Module):
        self.parents: dict[ast.AST, ast.AST] = {}
        self.by_type: dict[type, list[ast.AST]] = defaultdict(list)
        # Every `Name` (read or written) grouped by identifier, and every `Attribute` by its
        # attribute name (`x.weight` under `weight`), in walk order: the index's one pass fills them.
        self.names_by_id: dict[str, list[ast.Name]] = {}
        self.attributes_by_name: dict[str, list[ast.Attribute]] = {}
        # Every call by the last part of its callee (`self.ln_1(x)` under `ln_1`), and the calls
        # whose callee is itself a call (`nn.Softmax(dim=-1)(x)`), in walk order.
        self.calls_by_name: dict[str, list[ast.Call]] = {}
        self.calls_of_calls: list[ast.Call] = []
        _index(tree, self)
        self._by_line: dict[type, tuple[list[ast.AST], list[int]]] = {}

    def nodes(self, *types: type) -> list[ast.AST]:
        if len(types) == 1:
            return self.by_type.get(types[0], [])
        found = [node for t in types for node in self.by_type.get(t, [])]
        found.sort(key=source_position)
        return found

    def starting_on_lines(self, kind: type, first: int, last: int) -> list[ast.AST]:
        """Nodes of `kind` that start on lines `first`..`last`, in source order, by bisection."""
        nodes, lines = self._sorted_by_line(kind)
        return nodes[bisect_left(lines, first) : bisect_right(lines, last)]

    def _sorted_by_line(self, kind: type) -> tuple[list[ast.AST], list[int]]:
        cached = self._by_line.get(kind)
        if cached is None:
            # Pre-order is source order but for decorators (visited after their function's body)
            # and conditional expressions (`a if test else b` visits `test` first): sort to bisect.
            nodes = sorted(self.by_type.get(kind, ()), key=source_position)
            cached = self._by_line[kind] = (nodes, [node.lineno for node in nodes])
        return cached

    @property
    def calls(self) -> list[ast.Call]:
        return self.by_type.get(ast.Call, [])

    @cached_property
    def assignments_by_name(self) -> dict[str, list[tuple[ast.Assign, bool]]]:
        """`name = ...` (also inside tuple targets) by name, in source order, each with whether
        `name` is the statement's only target."""
        self._group_assignments()
        return self.assignments_by_name

    @cached_property
    def self_attribute_assignments(self) -> dict[str, list[ast.Assign]]:
        """`self.<attribute> = ...` statements by attribute, in source order."""
        self._group_assignments()
        return self.self_attribute_assignments

    def _group_assignments(self) -> None:
        """One pass over the `Assign` statements for both groupings above."""
        by_name: dict[str, list] = {}
        by_attribute: dict[str, list] = {}
        name, attribute, sequences, starred = ast.Name, ast.Attribute, (ast.Tuple, ast.List), ast.Starred
        for node in self.by_type.get(ast.Assign, ()):
            targets = node.targets
            if len(targets) == 1:  # the common shapes first: `x = ...`, `self.x = ...`
                target = targets[0]
                kind = target.__class__
                if kind is name:
                    _group(by_name, target.id, (node, True))
                    continue
                if kind is attribute:
                    owner = target.value
                    if owner.__class__ is name and owner.id == "self":
                        _group(by_attribute, target.attr, node)
                    continue
            attributes = {
                target.attr
                for target in targets
                if target.__class__ is attribute and target.value.__class__ is name and target.value.id == "self"
            }
            for written in attributes:  # `self.a = self.b = value` writes both, once each
                _group(by_attribute, written, node)
            stack = list(targets)
            while stack:
                target = stack.pop()
                kind = target.__class__
                if kind is name:  # in a tuple or a chain: never the statement's only target
                    _group(by_name, target.id, (node, False))
                elif kind in sequences:
                    stack.extend(target.elts)
                elif kind is starred:
                    stack.append(target.value)
        self.__dict__["assignments_by_name"] = by_name
        self.__dict__["self_attribute_assignments"] = by_attribute

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
        parents = self.parents  # a plain loop: rules ask this thousands of times per file
        ancestor = parents.get(node)
        while ancestor is not None:
            if isinstance(ancestor, types):
                return ancestor
            ancestor = parents.get(ancestor)
        return None

    def enclosing_function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        return self.enclosing(node, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

    def enclosing_statement(self, node: ast.AST) -> ast.stmt:
        current = node
        while not isinstance(current, ast.stmt):
            current = self.parents[current]
        return current


# Sort key for nodes in source order: (line, column).
source_position = attrgetter("lineno", "col_offset")

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


def _index(tree: ast.AST, index: NodeIndex) -> None:
    """Pre-order walk (so each list is in source order) recording parents, types and groups.

    Hand-rolled rather than `ast.walk`: this is the one traversal every rule shares, and it runs
    on every keystroke, so it must stay a fraction of `ast.parse`. Recursion is the fastest walk
    in CPython 3.11 (Python-to-Python calls are cheap, and no list of children is built); a tree
    deeper than the recursion limit (a sum of thousands of terms) takes the iterative walk, and
    the groups are then read off the type lists, in the same order.
    """
    try:
        _index_recursively(tree, index)
    except RecursionError:
        for partial in (index.parents, index.by_type, index.names_by_id, index.attributes_by_name, index.calls_by_name):
            partial.clear()
        index.calls_of_calls.clear()
        _index_iteratively(tree, index.parents, index.by_type)
        _group_by_type(index)


def _index_recursively(tree: ast.AST, index: NodeIndex) -> None:
    parents, by_type = index.parents, index.by_type
    names, attributes, calls, of_calls = index.names_by_id, index.attributes_by_name, index.calls_by_name, index.calls_of_calls
    plans: dict[type, tuple[list, tuple[str, ...]]] = {}  # per node class: its by_type list and child fields
    name_type, attribute_type, call_type = ast.Name, ast.Attribute, ast.Call

    def visit(node):
        cls = node.__class__
        plan = plans.get(cls)  # one lookup per node for both
        if plan is None:
            plan = plans[cls] = (by_type[cls], _child_fields(cls))
        plan[0].append(node)
        # The groups, inlined: a function call per node would cost more than the grouping itself.
        if cls is name_type:  # a third of a tree, and it has no children
            group = names.get(node.id)
            if group is None:
                names[node.id] = [node]
            else:
                group.append(node)
            return
        if cls is attribute_type:
            group = attributes.get(node.attr)
            if group is None:
                attributes[node.attr] = [node]
            else:
                group.append(node)
        elif cls is call_type:
            func = node.func
            kind = func.__class__
            callee = func.attr if kind is attribute_type else func.id if kind is name_type else None
            if callee is not None:
                group = calls.get(callee)
                if group is None:
                    calls[callee] = [node]
                else:
                    group.append(node)
            elif kind is call_type:
                of_calls.append(node)
        for name in plan[1]:
            value = getattr(node, name, None)
            if value is None:
                continue
            if value.__class__ is list:
                for item in value:
                    if item is not None:  # the gaps in `Dict.keys` / `kw_defaults`
                        parents[item] = node
                        visit(item)
            else:
                parents[value] = node
                visit(value)

    try:
        visit(tree)
    finally:
        # `visit` refers to itself through its closure cell: break that cycle, or it would keep
        # `parents` and `by_type` (and so the whole tree) alive until the cyclic collector runs.
        visit = None  # noqa: F841


def _index_iteratively(tree: ast.AST, parents: dict, by_type: dict) -> None:
    stack = [tree]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        by_type[node.__class__].append(node)
        children = []
        for name in _child_fields(node.__class__):
            value = getattr(node, name, None)
            if value.__class__ is list:
                children.extend(value)
            else:
                children.append(value)
        for child in reversed(children):
            if child is not None:
                parents[child] = node
                push(child)


def _group_by_type(index: NodeIndex) -> None:
    """The groups the recursive walk fills, read off the type lists (which are in walk order)."""
    for node in index.by_type.get(ast.Name, ()):
        _group(index.names_by_id, node.id, node)
    for node in index.by_type.get(ast.Attribute, ()):
        _group(index.attributes_by_name, node.attr, node)
    for node in index.by_type.get(ast.Call, ()):
        func = node.func
        if isinstance(func, (ast.Name, ast.Attribute)):
            _group(index.calls_by_name, func.id if isinstance(func, ast.Name) else func.attr, node)
        elif isinstance(func, ast.Call):
            index.calls_of_calls.append(node)


def _group(groups: dict, key: str, node: ast.AST) -> None:
    group = groups.get(key)
    if group is None:
        groups[key] = [node]
    else:
        group.append(node)


def walk(node: ast.AST):
    """`ast.walk`, faster: the same breadth-first order, minus the context and operator singletons
    (`Load`, `Add`), which no caller looks for (they read `node.ctx` and `node.op` instead)."""
    queue = [node]
    for current in queue:  # a list grows safely while it is iterated
        yield current
        for name in _child_fields(current.__class__):
            value = getattr(current, name, None)
            if value is None:
                continue
            if value.__class__ is list:
                queue.extend(item for item in value if item is not None)
            else:
                queue.append(value)
