"""What happens to attention scores between `q @ kᵀ` and the softmax, and what shape they have.

`document.attention` says which products reach which softmax. This module answers the questions
several rules ask about the road between them:

- the steps the scores pass through (a mask fill, a bias addition, a transpose, a dtype cast), as
  `ScorePath`s from the softmax back to each product;
- how many dimensions a tensor expression has, where the local data flow makes it evident
  (`q.view(B, T, nh, hs).transpose(1, 2)` is 4-D, `torch.bmm` is 3-D), as a `Rank`;
- the value of a numeric constant however it is spelled (`-1e9`, `float("-1e9")`, `-2 ** 32 + 1`,
  a module constant);
- whether the file runs anything in float16 (`.half()`, `torch.float16`, autocast, `GradScaler`).

Only functions that hold an attention site are looked at; nothing here walks the whole tree.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cached_property

from llmarch_lsp.facts.attention import (
    _BIAS_METHODS,
    _CONCATENATIONS,
    _SCALING_FUNCTIONS,
    _SCALING_METHODS,
    _TRANSPARENT_FUNCTIONS,
    _TRANSPARENT_METHODS,
    AttentionSite,
    ScoreProduct,
    _bound_value,
    _first_argument,
    _FunctionFlow,
    _is_self_attribute,
)

_MAX_DEPTH = 24
_MAX_PATHS = 64
_MAX_RANK_DEPTH = 16

_MASK_FILL_METHODS = {"masked_fill", "masked_fill_"}
_SIZE_FACTORIES = {"torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty", "torch.full"}
_LIKE_FACTORIES = {"torch.randn_like", "torch.rand_like", "torch.zeros_like", "torch.ones_like", "torch.empty_like"}
_SAME_RANK_METHODS = {
    "transpose", "swapaxes", "swapdims", "contiguous", "float", "half", "bfloat16", "double", "to", "type",
    "type_as", "clone", "detach", "masked_fill", "mul", "div", "add", "sub", "softmax", "log_softmax", "clamp",
    "split", "chunk", "tensor_split", "roll", "flip", "neg", "exp", "sigmoid", "tanh", "relu", "cumsum",
}  # fmt: skip
_SAME_RANK_FUNCTIONS = {
    "torch.nn.functional.normalize", "torch.nn.functional.dropout", "torch.dropout", "torch.tanh",
    "torch.sigmoid", "torch.exp", "torch.nn.functional.relu", "torch.nn.functional.gelu",
}  # fmt: skip
_FLOAT32_NAMES = {"torch.float32", "torch.float", "torch.float64", "torch.double"}
_FLOAT32_METHODS = {"float", "double"}
_HALF_NAMES = {"torch.float16", "torch.half"}
_HALF_STRINGS = {"float16", "fp16", "half"}
_AUTOCASTS = {"torch.autocast", "torch.amp.autocast", "torch.cuda.amp.autocast"}
_GRAD_SCALERS = {"torch.cuda.amp.GradScaler", "torch.amp.GradScaler"}
# Non-finite values are not "overflow": `float("-inf")` is a deliberate choice.
_CONSTANT_FUNCTIONS = {"float", "int"}


@dataclass(frozen=True)
class Step:
    """The scores flow through `node` by way of its child `operand` (a receiver, an argument, a side)."""

    node: ast.AST
    operand: ast.AST


@dataclass(frozen=True)
class ScorePath:
    """One road from a softmax back to one score product; `steps` run from the softmax side."""

    site: AttentionSite
    product: ScoreProduct
    steps: tuple[Step, ...]
    # Local names the scores were held in on the way (`att`, `scores`).
    names: frozenset[str]


@dataclass(frozen=True)
class Rank:
    """How many dimensions a tensor has: exactly `value`, or (exact False) at least `value`."""

    value: int
    exact: bool = True

    def at_least(self) -> Rank:
        return Rank(self.value, False)


@dataclass(frozen=True)
class SitePaths:
    paths: tuple[ScorePath, ...]
    # True when the search stopped early (too many branches): rules that need every path stay silent.
    truncated: bool = False


class ScoreFlowFacts:
    def __init__(self, document):
        self.document = document
        self.index = document.index
        self._flows: dict[int, _FunctionFlow] = {}
        self._paths: dict[int, SitePaths] = {}
        self._inplace: dict[int, dict[str, list[ast.Call]]] = {}
        self._method_calls: dict[str, list[ast.Call]] = {}

    # ---- the road from the softmax back to the products ------------------------------------
    def paths(self, site: AttentionSite) -> SitePaths:
        found = self._paths.get(id(site.softmax))
        if found is None:
            found = self._paths[id(site.softmax)] = self._search(site)
        return found

    def scope_of(self, node: ast.AST) -> ast.AST:
        function = self.index.enclosing_function(node)
        return self.document.tree if function is None else function

    def flow(self, function: ast.AST) -> _FunctionFlow:
        flow = self._flows.get(id(function))
        if flow is None:
            flow = self._flows[id(function)] = _FunctionFlow(function, self.index)
        return flow

    def _search(self, site: AttentionSite) -> SitePaths:
        function = self.scope_of(site.softmax)
        flow = self.flow(function)
        targets = {id(product.node): product for product in site.scores}
        func = site.softmax.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("softmax", "log_softmax")
            and not _is_self_attribute(func)
            and self.document.qualified_name(func) is None
        ):
            start = func.value  # scores.softmax(-1)
        else:
            start = _first_argument(site.softmax, "input")
        search = _PathSearch(self.document, site, targets, flow)
        search.walk(start, self.index.enclosing_statement(site.softmax), (), frozenset(), 0)
        return SitePaths(tuple(search.found), search.truncated)

    def method_calls(self, method: str) -> list[ast.Call]:
        """Every `<x>.<method>(...)` call in the file, found once per method name."""
        found = self._method_calls.get(method)
        if found is None:
            found = self._method_calls[method] = [
                call for call in self.index.calls if isinstance(call.func, ast.Attribute) and call.func.attr == method
            ]
        return found

    def inplace_calls(self, function: ast.AST) -> dict[str, list[ast.Call]]:
        """Calls made as statements that may change a local tensor in place: `att.masked_fill_(m, v)`,
        `apply_mask(att, m)`; by the local name they touch."""
        found = self._inplace.get(id(function))
        if found is not None:
            return found
        found = self._inplace[id(function)] = {}
        stack = list(function.body) if isinstance(getattr(function, "body", None), list) else []
        while stack:
            statement = stack.pop()
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                call = statement.value
                touched = [*call.args, *(keyword.value for keyword in call.keywords)]
                if isinstance(call.func, ast.Attribute):
                    touched.append(call.func.value)
                for argument in touched:
                    if isinstance(argument, ast.Name):
                        found.setdefault(argument.id, []).append(call)
            for block in ("body", "orelse", "finalbody"):
                value = getattr(statement, block, None)
                if isinstance(value, list):
                    stack.extend(value)
            for handler in getattr(statement, "handlers", ()):
                stack.extend(handler.body)
            for case in getattr(statement, "cases", ()):
                stack.extend(case.body)
        return found

    # ---- ranks --------------------------------------------------------------------------------
    def rank_of(self, node: ast.AST, use: ast.AST, flow: _FunctionFlow, depth: int = 0) -> Rank | None:
        """The number of dimensions of `node` at `use`, when the local data flow makes it evident."""
        if node is None or depth > _MAX_RANK_DEPTH:
            return None
        depth += 1
        if isinstance(node, ast.Name):
            ranks = [self._binding_rank(statement, node.id, flow, depth) for statement in flow.reaching(node.id, use)]
            if not ranks or any(rank is None for rank in ranks) or len({rank.value for rank in ranks}) != 1:
                return None
            return Rank(ranks[0].value, all(rank.exact for rank in ranks))
        if isinstance(node, ast.Attribute):
            if node.attr in ("T", "mT", "mH", "H"):
                return self.rank_of(node.value, use, flow, depth)
            return None
        if isinstance(node, ast.Subscript):
            return _indexed_rank(self.rank_of(node.value, use, flow, depth), node.slice)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.MatMult):
                return _matmul_rank(self.rank_of(node.left, use, flow, depth), self.rank_of(node.right, use, flow, depth))
            if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Pow)):
                return self._broadcast(node.left, node.right, use, flow, depth)
            return None
        if isinstance(node, ast.Call):
            return self._call_rank(node, use, flow, depth)
        return None

    def _broadcast(self, left, right, use, flow, depth) -> Rank | None:
        if is_scalar(self.document, right):
            return self.rank_of(left, use, flow, depth)
        if is_scalar(self.document, left):
            return self.rank_of(right, use, flow, depth)
        return broadcast_rank(self.rank_of(left, use, flow, depth), self.rank_of(right, use, flow, depth))

    def _call_rank(self, call: ast.Call, use, flow, depth) -> Rank | None:
        func = call.func
        qualified = self.document.qualified_name(func)
        if qualified is None and isinstance(func, ast.Attribute):
            method, receiver = func.attr, func.value
            if _is_self_attribute(func):
                return self._submodule_rank(call, use, flow, depth)
            if method in ("view", "reshape", "permute", "expand"):
                return _size_arguments_rank(call)
            if method in ("view_as", "reshape_as", "expand_as") and len(call.args) == 1:
                return self.rank_of(call.args[0], use, flow, depth)
            if method == "unsqueeze":
                inner = self.rank_of(receiver, use, flow, depth)
                return None if inner is None else Rank(inner.value + 1, inner.exact)
            if method in ("matmul", "bmm") and len(call.args) == 1:
                if method == "bmm":
                    return Rank(3)
                return _matmul_rank(self.rank_of(receiver, use, flow, depth), self.rank_of(call.args[0], use, flow, depth))
            if method in _SAME_RANK_METHODS:
                inner = self.rank_of(receiver, use, flow, depth)
                if inner is not None and method in ("mul", "div", "add", "sub", "masked_fill"):
                    return inner.at_least()  # the other operand may broadcast the result up
                return inner
            return None
        if qualified is None:
            return None
        if qualified in ("torch.bmm", "torch.baddbmm"):
            return Rank(3)
        if qualified == "torch.matmul" and len(call.args) == 2:
            return _matmul_rank(self.rank_of(call.args[0], use, flow, depth), self.rank_of(call.args[1], use, flow, depth))
        if qualified in _SIZE_FACTORIES:
            return _size_arguments_rank(call, skip_last=qualified == "torch.full")
        if qualified in _LIKE_FACTORIES or qualified in _SAME_RANK_FUNCTIONS:
            return self.rank_of(call.args[0], use, flow, depth) if call.args else None
        if qualified == "torch.einsum":
            equation = call.args[0] if call.args else None
            if isinstance(equation, ast.Constant) and isinstance(equation.value, str) and "->" in equation.value:
                output = equation.value.split("->")[1].replace(" ", "")
                letters = len(output.replace("...", ""))
                return Rank(letters, "..." not in output)
            return None
        if qualified == "einops.rearrange" and len(call.args) >= 2:
            return _rearranged_rank(call.args[1])
        return None

    def _submodule_rank(self, call: ast.Call, use, flow, depth) -> Rank | None:
        """`self.q_proj(x)` keeps the rank of `x` when `q_proj` is an `nn.Linear`."""
        module = self.document.modules.class_owning(call)
        if module is None or not call.args:
            return None
        if self.document.modules.constructor_name(module, call.func.attr) != "torch.nn.Linear":
            return None
        return self.rank_of(call.args[0], use, flow, depth)

    def _binding_rank(self, statement: ast.AST, name: str, flow, depth) -> Rank | None:
        if isinstance(statement, ast.AugAssign):
            before = self.rank_of(ast.Name(name), statement, flow, depth)
            return None if before is None else before.at_least()
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    return self.rank_of(statement.value, statement, flow, depth)
                if isinstance(target, (ast.Tuple, ast.List)):
                    return self._unpacked_rank(target, statement, name, flow, depth)
            return None
        if isinstance(statement, ast.AnnAssign):
            return self.rank_of(statement.value, statement, flow, depth)
        return None

    def _unpacked_rank(self, target, statement, name, flow, depth) -> Rank | None:
        """`q, k, v = qkv.split(C, dim=2)` keeps qkv's rank; `.unbind(0)` drops one dimension."""
        value = statement.value
        if not any(isinstance(element, ast.Name) and element.id == name for element in target.elts):
            return None
        if isinstance(value, (ast.Tuple, ast.List)):
            matched = _bound_value(statement, name)
            return None if matched is None else self.rank_of(matched, statement, flow, depth)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            method = value.func.attr
            inner = self.rank_of(value.func.value, statement, flow, depth)
            if inner is None:
                return None
            if method in ("split", "chunk", "tensor_split"):
                return inner
            if method == "unbind":
                return Rank(inner.value - 1, inner.exact) if inner.value > 1 else None
        return None

    # ---- constants ------------------------------------------------------------------------------
    def constant_value(self, node: ast.AST, use: ast.AST | None = None, flow: _FunctionFlow | None = None) -> float | None:
        """The number `node` always evaluates to: literals, `float("-1e9")`, small arithmetic, and names
        bound only to such constants in this function or at module level."""
        value = _evaluate(node)
        if value is not None or not isinstance(node, ast.Name):
            return value
        if flow is not None and use is not None:
            definitions = flow.reaching(node.id, use)
            if definitions:
                values = {_evaluate(_bound_value(statement, node.id)) for statement in definitions}
                return values.pop() if len(values) == 1 else None
        return self.module_constants.get(node.id)

    @cached_property
    def module_constants(self) -> dict[str, float]:
        """`NEG_INF = -1e9` at module level, bound once."""
        bound: dict[str, list[float | None]] = {}
        for statement in self.document.tree.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
                bound.setdefault(statement.targets[0].id, []).append(_evaluate(statement.value))
        return {name: values[0] for name, values in bound.items() if len(values) == 1 and values[0] is not None}

    # ---- precision ------------------------------------------------------------------------------
    @cached_property
    def half_precision_evidence(self) -> ast.AST | None:
        """The first place this file asks for float16: `torch.float16`, `.half()`, a `"float16"` /
        `"fp16"` setting, CUDA autocast without a bfloat16 dtype, or a `GradScaler` (fp16's loss scaler)."""
        document = self.document
        if not document.imports.imports_module("torch"):
            return None
        found: list[ast.AST] = []
        for attribute in self.index.nodes(ast.Attribute):
            if attribute.attr in ("float16", "half") and isinstance(attribute.value, ast.Name):
                if document.qualified_name(attribute) in _HALF_NAMES:
                    found.append(attribute)
                    break
        for call in self.index.calls:
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "half" and not call.args and document.qualified_name(func) is None:
                found.append(call)
                break
            qualified = document.qualified_name(func) if isinstance(func, (ast.Attribute, ast.Name)) else None
            if qualified in _GRAD_SCALERS or (qualified in _AUTOCASTS and _autocast_may_be_half(document, call)):
                found.append(call)
                break
        for constant in self.index.nodes(ast.Constant):
            if isinstance(constant.value, str) and constant.value.lower() in _HALF_STRINGS:
                found.append(constant)
                break
        return min(found, key=lambda node: (node.lineno, node.col_offset)) if found else None

    def casts_to_float32(self, node: ast.AST) -> bool:
        """`x.float()`, `x.double()`, `x.to(torch.float32)`, `x.type(torch.float)`, `x.to(dtype=torch.float32)`."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            return False
        method = node.func.attr
        if method in _FLOAT32_METHODS and not node.args:
            return self.document.qualified_name(node.func) is None
        if method in ("to", "type"):
            arguments = [*node.args, *(keyword.value for keyword in node.keywords if keyword.arg == "dtype")]
            return any(self.document.qualified_name(argument) in _FLOAT32_NAMES for argument in arguments)
        return False


class _PathSearch:
    """Depth-first search from the softmax input back to the site's products, recording each step.

    It follows the routes the attention facts follow (masking, bias, scaling, dtype, layout), so every
    product they found is reached, and records every road separately."""

    def __init__(self, document, site, targets, flow):
        self.document = document
        self.site = site
        self.targets = targets
        self.flow = flow
        self.found: list[ScorePath] = []
        self.truncated = False

    def walk(self, node, use, steps: tuple[Step, ...], names: frozenset[str], depth: int):
        if node is None or depth > _MAX_DEPTH:
            return
        if len(self.found) >= _MAX_PATHS:
            self.truncated = True
            return
        depth += 1
        product = self.targets.get(id(node))
        if product is not None:
            self.found.append(ScorePath(self.site, product, steps, names))
            return
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, (ast.Mult, ast.Div, ast.FloorDiv, ast.Add, ast.Sub)):
                for side in (node.left, node.right):
                    self.walk(side, use, (*steps, Step(node, side)), names, depth)
            return
        if isinstance(node, ast.IfExp):
            self.walk(node.body, use, steps, names, depth)
            self.walk(node.orelse, use, steps, names, depth)
            return
        if isinstance(node, ast.Subscript):
            self.walk(node.value, use, (*steps, Step(node, node.value)), names, depth)
            return
        if isinstance(node, ast.Name):
            self._walk_name(node.id, use, steps, names, depth)
            return
        if isinstance(node, ast.Call):
            self._walk_call(node, use, steps, names, depth)

    def _walk_name(self, name, use, steps, names, depth):
        names = names | {name}
        for statement in self.flow.reaching(name, use):
            if isinstance(statement, ast.AugAssign):
                if isinstance(statement.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv)):
                    self.walk(statement.value, statement, (*steps, Step(statement, statement.value)), names, depth)
                    self._walk_name(name, statement, (*steps, Step(statement, statement.target)), names, depth)
                continue
            value = _bound_value(statement, name)
            if value is not None:
                self.walk(value, statement, steps, names, depth)

    def _walk_call(self, call, use, steps, names, depth):
        func = call.func
        qualified = self.document.qualified_name(func)
        if isinstance(func, ast.Attribute) and qualified is None:
            method = func.attr
            if method in _TRANSPARENT_METHODS or method in _BIAS_METHODS or method in _SCALING_METHODS:
                self.walk(func.value, use, (*steps, Step(call, func.value)), names, depth)
                if method not in _TRANSPARENT_METHODS:
                    for argument in call.args:
                        self.walk(argument, use, (*steps, Step(call, argument)), names, depth)
            elif _is_self_attribute(func) and "drop" in method.lower() and call.args:
                self.walk(call.args[0], use, (*steps, Step(call, call.args[0])), names, depth)
            return
        if qualified is None:
            return
        if qualified in _SCALING_FUNCTIONS:
            for argument in call.args:
                self.walk(argument, use, (*steps, Step(call, argument)), names, depth)
        elif qualified in _TRANSPARENT_FUNCTIONS and call.args:
            self.walk(call.args[0], use, (*steps, Step(call, call.args[0])), names, depth)
        elif qualified in _CONCATENATIONS and call.args and isinstance(call.args[0], (ast.List, ast.Tuple)):
            for element in call.args[0].elts:
                self.walk(element, use, (*steps, Step(call, element)), names, depth)
        elif qualified == "torch.where" and len(call.args) == 3:
            for argument in call.args[1:]:
                self.walk(argument, use, (*steps, Step(call, argument)), names, depth)


# ---- helpers ------------------------------------------------------------------------------------


def broadcast_rank(left: Rank | None, right: Rank | None) -> Rank | None:
    """Elementwise broadcasting: the larger rank; a lower bound when only one side is known."""
    if left is None and right is None:
        return None
    if left is None or right is None:
        return (left or right).at_least()
    return Rank(max(left.value, right.value), left.exact and right.exact)


def _matmul_rank(left: Rank | None, right: Rank | None) -> Rank | None:
    if any(rank is not None and rank.value < 2 for rank in (left, right)):
        return None  # vector operands drop a dimension; not a score matrix
    return broadcast_rank(left, right)


def _size_arguments_rank(call: ast.Call, skip_last: bool = False) -> Rank | None:
    """`x.view(B, T, nh, hs)` or `x.view((B, T, nh, hs))` -> 4; None for `x.view(shape)` or `*shape`."""
    arguments = list(call.args[:-1] if skip_last else call.args)
    if len(arguments) == 1 and isinstance(arguments[0], (ast.Tuple, ast.List)):
        arguments = arguments[0].elts
    elif len(arguments) == 1 and not _is_integer_expression(arguments[0]):
        return None
    if not arguments or any(isinstance(argument, ast.Starred) for argument in arguments):
        return None
    if isinstance(call.func, ast.Attribute) and call.func.attr == "expand":
        return Rank(len(arguments), False)  # expand may also keep leading dims
    return Rank(len(arguments))


def _is_integer_expression(node: ast.AST) -> bool:
    """`-1`, `B * T`, `n`: one size, not a shape tuple (a plain name could be either; say no)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int)
    if isinstance(node, ast.UnaryOp):
        return _is_integer_expression(node.operand)
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, (ast.Mult, ast.FloorDiv, ast.Add, ast.Sub))
    return False


def _indexed_rank(rank: Rank | None, index: ast.AST) -> Rank | None:
    """`x[:, :, :T, :T]` keeps the rank; each integer drops one, each None adds one."""
    if rank is None:
        return None
    elements = index.elts if isinstance(index, ast.Tuple) else [index]
    change = 0
    for element in elements:
        if isinstance(element, ast.Slice) or (isinstance(element, ast.Constant) and element.value is Ellipsis):
            continue
        if isinstance(element, ast.Constant) and element.value is None:
            change += 1
        elif _evaluate(element) is not None and isinstance(_evaluate(element), int):
            change -= 1
        else:
            return None  # a tensor or a variable index: anything could happen
    value = rank.value + change
    return Rank(value, rank.exact) if value >= 0 else None


def _rearranged_rank(pattern: ast.AST) -> Rank | None:
    """`"b n (h d) -> b h n d"` -> 4: the output side counts one axis per name or group."""
    if not (isinstance(pattern, ast.Constant) and isinstance(pattern.value, str) and "->" in pattern.value):
        return None
    output = pattern.value.split("->")[1]
    depth, count, ellipsis = 0, 0, False
    for token in output.replace("(", " ( ").replace(")", " ) ").split():
        if token == "(":
            if depth == 0:
                count += 1
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0:
            if token == "...":
                ellipsis = True
            else:
                count += 1
    return Rank(count, not ellipsis)


def is_scalar(document, node: ast.AST) -> bool:
    """A Python number rather than a tensor, so it broadcasts no dimension in: `0.125`,
    `1.0 / math.sqrt(d)`, `k.size(-1) ** -0.5`, `x.shape[-1]`, `int(d)`, or a name or `self.` attribute
    named for a scale or temperature (`scale`, `self.scaling`); only used to keep a rank exact."""
    if _evaluate(node) is not None:
        return True
    if isinstance(node, ast.BinOp):
        return is_scalar(document, node.left) and is_scalar(document, node.right)
    if isinstance(node, ast.UnaryOp):
        return is_scalar(document, node.operand)
    if isinstance(node, ast.Call):
        qualified = document.qualified_name(node.func) or ""
        if qualified.startswith("math.") or (isinstance(node.func, ast.Name) and node.func.id in ("int", "float")):
            return True
        return isinstance(node.func, ast.Attribute) and node.func.attr == "size" and len(node.args) == 1
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
        return node.value.attr == "shape"
    name = node.attr if _is_self_attribute(node) else node.id if isinstance(node, ast.Name) else None
    return name is not None and any(word in name.lower() for word in _SCALAR_NAME_WORDS)


_SCALAR_NAME_WORDS = ("scale", "scaling", "temperature", "norm_factor")


def _is_number(node: ast.AST) -> bool:
    return _evaluate(node) is not None


def _evaluate(node: ast.AST | None, depth: int = 0) -> float | None:
    """A finite or infinite number from literals and a few spellings of them; None otherwise."""
    if node is None or depth > 8:
        return None
    depth += 1
    if isinstance(node, ast.Constant):
        value = node.value
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, depth)
        if value is None:
            return None
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
        left, right = _evaluate(node.left, depth), _evaluate(node.right, depth)
        if left is None or right is None:
            return None
        try:
            if isinstance(node.op, ast.Pow):
                return left**right if abs(right) <= 128 else None
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            return left / right
        except (ArithmeticError, TypeError, ValueError):
            return None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _CONSTANT_FUNCTIONS
        and len(node.args) == 1
        and not node.keywords
    ):
        argument = node.args[0]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            try:
                return float(argument.value)
            except ValueError:
                return None
        return _evaluate(argument, depth)
    return None


def evaluate_constant(node: ast.AST | None) -> float | None:
    return _evaluate(node)


def _autocast_may_be_half(document, call: ast.Call) -> bool:
    """CUDA autocast defaults to float16; an explicit `dtype=torch.bfloat16` (or CPU autocast) does not."""
    dtype = next((keyword.value for keyword in call.keywords if keyword.arg == "dtype"), None)
    if dtype is not None:
        qualified = document.qualified_name(dtype)
        return qualified not in ("torch.bfloat16", "torch.float32", "torch.float")
    device = next((keyword.value for keyword in call.keywords if keyword.arg == "device_type"), None)
    if device is None and call.args:
        device = call.args[0]
    return not (isinstance(device, ast.Constant) and device.value == "cpu")
