"""One walk over the tree: parents and nodes grouped by type, for every rule to reuse."""

from __future__ import annotations

import ast
from collections import defaultdict


class NodeIndex:
    def __init__(self, tree: ast.Module):
        self.parents: dict[ast.AST, ast.AST] = {}
        self.by_type: dict[type, list[ast.AST]] = defaultdict(list)
        parents = self.parents
        by_type = self.by_type
        stack: list[ast.AST] = [tree]
        iter_children = ast.iter_child_nodes
        while stack:
            node = stack.pop()
            by_type[type(node)].append(node)
            for child in iter_children(node):
                parents[child] = node
                stack.append(child)
        # The stack visits nodes out of source order; rules report in source order.
        for nodes in by_type.values():
            if len(nodes) > 1 and hasattr(nodes[0], "lineno"):
                nodes.sort(key=lambda n: (n.lineno, n.col_offset))

    def nodes(self, *types: type) -> list[ast.AST]:
        if len(types) == 1:
            return self.by_type.get(types[0], [])
        found = [node for t in types for node in self.by_type.get(t, [])]
        found.sort(key=lambda n: (n.lineno, n.col_offset))
        return found

    @property
    def calls(self) -> list[ast.Call]:
        return self.by_type.get(ast.Call, [])

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
