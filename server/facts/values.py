"""What a hyperparameter expression is known to be: a literal, or a name whose every binding is one.

`weight_decay=0.1` is known; so is `weight_decay=wd` when every `wd = ...` that can reach the call
(in the same function, else at module level) is a numeric literal. A function
parameter, an attribute (`args.weight_decay`), a config lookup or any non-literal binding makes the
value unknown, and rules that need a value then stay silent.
"""

from __future__ import annotations

import ast

from llmarch_lsp.facts.training import literal_number


def known_number(document, node: ast.AST | None) -> float | None:
    """The numeric value of `node` when the file pins it down, else None.

    When several literal bindings reach the use, the smallest is returned only if they agree on
    the sign, so `value > 0` is true exactly when every binding is positive.
    """
    if node is None:
        return None
    value = literal_number(node)
    if value is not None or not isinstance(node, ast.Name):
        return value
    index = document.index
    scope = index.enclosing_function(node)
    for function in _enclosing_functions(index, node):
        arguments = function.args
        every = (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg)
        if any(argument is not None and argument.arg == node.id for argument in every):
            return None  # the caller decides
    # Every binding of the name: plain `name = <value>` assignments, or something we cannot read
    # (a loop variable, a tuple unpacking, a with-target), recorded as None.
    bindings: list[tuple[ast.AST | None, ast.AST]] = []
    for other in index.names_by_id.get(node.id, ()):
        if not isinstance(other.ctx, ast.Store):
            continue
        parent = index.parent(other)
        simple = (isinstance(parent, ast.Assign) and any(target is other for target in parent.targets)) or (
            isinstance(parent, ast.AnnAssign) and parent.target is other and parent.value is not None
        )
        bindings.append((parent.value if simple else None, other))
    local = [value for value, where in bindings if index.enclosing_function(where) is scope]
    if not local and scope is not None:
        local = [value for value, where in bindings if index.enclosing_function(where) is None]
    if not local or any(value is None for value in local):
        return None
    values = [literal_number(value) for value in local]
    if None in values:
        return None
    if all(value > 0 for value in values) or all(value <= 0 for value in values):
        return min(values)
    return None


def _enclosing_functions(index, node: ast.AST):
    for ancestor in index.ancestors(node):
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield ancestor
