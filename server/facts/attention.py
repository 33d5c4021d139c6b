"""Attention sites: query-key score products that reach a softmax, and whether anything scales them.

A site starts from a softmax call (`F.softmax`, `torch.softmax`, `x.softmax(...)`, an `nn.Softmax`
submodule) and follows the softmax input backwards through the enclosing function's assignments,
through the operations that leave the logits' magnitude alone (masking, bias addition, dropout,
dtype and view changes), to the `q @ kᵀ`-shaped products that produced it. A multiplication or
division of the scores on the way (`* scale`, `/= sqrt(d)`, `.div_()`, a call named for scaling), or
of the query or key beforehand (in this function or by its caller), counts as scaling, and so does a
sibling `F.scaled_dot_product_attention(..., scale=1.0)` that states the unit scale on purpose.
Anything the local data flow cannot see through (a helper call, a function parameter, an attribute)
ends the trail without producing a score, so callers stay silent when the evidence is ambiguous.

Only functions that contain a softmax are looked at beyond the shared node index.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from llmarch_lsp.facts.index import source_position

_SOFTMAX_FUNCTIONS = {
    "torch.softmax",
    "torch.log_softmax",
    "torch.nn.functional.softmax",
    "torch.nn.functional.log_softmax",
    "torch.special.softmax",
    "torch.special.log_softmax",
}
_SOFTMAX_MODULES = {"torch.nn.Softmax", "torch.nn.LogSoftmax"}
_SOFTMAX_NAMES = {"softmax", "log_softmax", "Softmax", "LogSoftmax"}

# Methods that keep the logits' scale: masking, bias, dtype, layout.
_TRANSPARENT_METHODS = {
    "masked_fill", "masked_fill_", "float", "half", "bfloat16", "double", "to", "type", "type_as",
    "view", "view_as", "reshape", "reshape_as", "contiguous", "clone", "squeeze", "unsqueeze",
    "clamp", "clamp_", "clamp_min", "clamp_max", "clip", "nan_to_num", "flatten", "detach",
    "expand", "expand_as",
}  # fmt: skip
_BIAS_METHODS = {"add", "add_", "sub", "sub_"}
_SCALING_METHODS = {"mul", "mul_", "div", "div_", "true_divide", "true_divide_", "divide", "multiply"}
_INPLACE_SCALING_METHODS = {method for method in _SCALING_METHODS if method.endswith("_")}
_TRANSPARENT_FUNCTIONS = {
    "torch.nn.functional.dropout", "torch.dropout", "torch.masked_fill", "torch.clamp", "torch.clip",
    "torch.nan_to_num", "einops.rearrange",
}  # fmt: skip
_CONCATENATIONS = {"torch.cat", "torch.concat", "torch.concatenate"}
_SCALING_FUNCTIONS = {"torch.mul", "torch.div", "torch.true_divide", "torch.multiply", "torch.divide"}
# q, k turned into unit vectors: cosine attention (Henry et al., 2020) carries its own logit scale.
_NORMALIZING_FUNCTIONS = {"torch.nn.functional.normalize"}
_SCALING_OPERATORS = (ast.Mult, ast.Div, ast.FloorDiv)
_MATMUL_FUNCTIONS = {"torch.matmul", "torch.bmm"}
_MATMUL_METHODS = {"matmul", "bmm"}
# Swapping the last two axes of k; the head dimension is then k's last axis.
_LAST_AXES_SWAPS = {(-2, -1), (-1, -2), (2, 3), (3, 2), (1, 2), (2, 1)}

_QUERY_WORDS = {"q", "xq", "qs", "query", "queries", "qh", "qt"}
_KEY_WORDS = {"k", "xk", "ks", "key", "keys", "kh", "kt"}
# `self.q_scaling.mul_scalar(q, s)`, `self.scale_query(q)`, `logits.div(t)`: named for what they do.
_SCALING_CALL_NAME = re.compile(r"^(?:mul|div)|scal", re.IGNORECASE)
_SDPA = "torch.nn.functional.scaled_dot_product_attention"
_ATTENTION_NAME = re.compile(r"attn|attention|(?:^|_)att(?:$|_|s)", re.IGNORECASE)

_MAX_DEPTH = 24
# Statements that hold statement blocks (definitions aside: a nested scope binds its own names).
_COMPOUND_STATEMENTS = frozenset(
    getattr(ast, name)
    for name in ("If", "For", "AsyncFor", "While", "With", "AsyncWith", "Try", "TryStar", "Match")
    if hasattr(ast, name)
)


@dataclass(frozen=True)
class ScoreProduct:
    """`q @ k.transpose(-2, -1)`, `torch.matmul(q, kᵀ)`, `torch.einsum('...id,...jd->...ij', q, k)`..."""

    node: ast.expr
    query: ast.expr
    key: ast.expr
    # The key without its transpose (`k` for `k.transpose(-2, -1)`), and the axis of that
    # expression that holds the head dimension; None when the axis is not evident.
    key_base: ast.expr
    key_head_axis: int | None
    # Axis of `query` holding the head dimension, None when not evident.
    query_head_axis: int | None


@dataclass
class AttentionSite:
    softmax: ast.Call
    scores: list[ScoreProduct] = field(default_factory=list)
    # The first node found that scales the logits (a `* scale`, `/ sqrt(d)`, a scaled q, an SDPA
    # call with an explicit `scale=1.0` beside the manual path), or None when nothing does.
    scaling: ast.AST | None = None


def find_attention_sites(document) -> list[AttentionSite]:
    """Every softmax fed (through local data flow) by a query-key product, in source order.
    Rules read the cached result as `document.attention`."""
    return _AttentionFinder(document).sites()


class _Trail:
    """What flows into one expression: the score products, and any scaling on the way."""

    __slots__ = ("scores", "scaling")

    def __init__(self):
        self.scores: list[ScoreProduct] = []
        self.scaling: ast.AST | None = None

    def scaled_by(self, node: ast.AST):
        if self.scaling is None:
            self.scaling = node


class _FunctionFlow:
    """Assignments, in-place updates and parameters of one function, by local name."""

    def __init__(self, function: ast.AST, index):
        self.function = function
        self.index = index
        self.definitions: dict[str, list[ast.stmt]] = {}
        self.inplace_scaling: dict[str, list[ast.Call]] = {}
        self._blocks: dict[int, tuple[int, str] | None] = {}
        arguments = getattr(function, "args", None)
        self.parameters = (
            [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)] if arguments else []
        )
        # Bindings live in statements: walk statement lists only, never into expressions.
        stack = list(reversed(function.body)) if isinstance(function.body, list) else []
        while stack:
            statement = stack.pop()
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    self._bind(target, statement)
            elif isinstance(statement, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
                self._bind(statement.target, statement)
            elif isinstance(statement, (ast.With, ast.AsyncWith)):
                for item in statement.items:
                    if item.optional_vars is not None:
                        self._bind(item.optional_vars, statement)
            elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                call = statement.value
                if (
                    isinstance(call.func, ast.Attribute)
                    and call.func.attr in _INPLACE_SCALING_METHODS
                    and isinstance(call.func.value, ast.Name)
                ):
                    self.inplace_scaling.setdefault(call.func.value.id, []).append(call)
            if statement.__class__ not in _COMPOUND_STATEMENTS:
                continue
            for block in (
                getattr(statement, "body", None),
                getattr(statement, "orelse", None),
                getattr(statement, "finalbody", None),
            ):
                if isinstance(block, list):
                    stack.extend(reversed(block))
            for handler in getattr(statement, "handlers", ()):
                stack.extend(reversed(handler.body))
            for case in getattr(statement, "cases", ()):
                stack.extend(reversed(case.body))
        for bound in self.definitions.values():
            bound.sort(key=lambda statement: (statement.lineno, statement.col_offset))

    def _bind(self, target: ast.AST, statement: ast.AST):
        if isinstance(target, ast.Name):
            self.definitions.setdefault(target.id, []).append(statement)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._bind(element.value if isinstance(element, ast.Starred) else element, statement)

    def reaching(self, name: str, use: ast.AST) -> list[ast.AST]:
        """Definitions of `name` that may reach `use`, latest first; stops at one that always runs."""
        position = (use.lineno, use.col_offset)
        blocks = self._blocks_around(use)
        found = []
        for statement in reversed(self.definitions.get(name, ())):
            if (statement.lineno, statement.col_offset) >= position:
                continue
            found.append(statement)
            if self._block_of(statement) in blocks:
                break
        return found

    def inplace_scaling_before(self, name: str, use: ast.AST) -> ast.Call | None:
        for call in self.inplace_scaling.get(name, ()):
            if (call.lineno, call.col_offset) < (use.lineno, use.col_offset):
                return call
        return None

    def _block_of(self, statement: ast.AST) -> tuple[int, str] | None:
        block = self._blocks.get(id(statement))
        if block is None:
            block = self._blocks[id(statement)] = self._find_block(statement)
        return block

    def _find_block(self, statement: ast.AST) -> tuple[int, str] | None:
        parent = self.index.parent(statement)
        if parent is None:
            return None
        for name in ("body", "orelse", "finalbody"):
            block = getattr(parent, name, None)
            if isinstance(block, list) and any(item is statement for item in block):
                return (id(parent), name)
        return (id(parent), "")

    def _blocks_around(self, node: ast.AST) -> set:
        blocks = set()
        current = node
        while current is not None and current is not self.function:
            if isinstance(current, ast.stmt):
                blocks.add(self._block_of(current))
            current = self.index.parent(current)
        return blocks


class _AttentionFinder:
    def __init__(self, document):
        self.document = document
        self.index = document.index
        self.flows: dict[int, _FunctionFlow] = {}
        self._softmax_attributes: set[str] | None = None
        self._caller_scaling: dict[tuple[int, str], ast.AST | None] = {}

    # ---- softmax calls -------------------------------------------------------------
    def sites(self) -> list[AttentionSite]:
        if not self.document.imports.imports_module("torch"):
            return []
        found = []
        for call in self._softmax_candidates():
            softmax_input = self._softmax_input(call)
            if softmax_input is None:
                continue
            function = self.index.enclosing_function(call)
            if isinstance(function, ast.Lambda):
                continue
            if function is None:  # a script or notebook export: the module is the scope
                function = self.document.tree
            trail = _Trail()
            self._trace(softmax_input, self._statement(call), self._flow(function), trail, 0, set())
            if trail.scores:
                if trail.scaling is None:
                    trail.scaled_by(self._unit_scale_chosen_in(function))
                found.append(AttentionSite(call, _unique(trail.scores), trail.scaling))
        return found

    def _softmax_candidates(self) -> list[ast.Call]:
        """Calls that could be a softmax, by callee shape alone, in source order: only these are
        resolved through the imports (a file has thousands of calls and a handful of softmaxes)."""
        found = [
            *self.index.calls_named(*(_SOFTMAX_NAMES | self.softmax_attributes)),
            *self.index.calls_of_calls,  # nn.Softmax(dim=-1)(scores)
        ]
        found.sort(key=source_position)
        return found

    def _unit_scale_chosen_in(self, function) -> ast.Call | None:
        """`F.scaled_dot_product_attention(..., scale=1.0)` beside the manual path: the author chose no
        scaling on purpose (QK-normed or pre-scaled queries), and the manual path mirrors it."""
        for call in self.calls_by_name.get("scaled_dot_product_attention", ()):
            if self.document.qualified_name(call.func) != _SDPA:
                continue
            scale = next((keyword.value for keyword in call.keywords if keyword.arg == "scale"), None)
            if isinstance(scale, ast.Constant) and scale.value == 1 and self._scope_of(call) is function:
                return call
        return None

    def _scope_of(self, node):
        return self.index.enclosing_function(node) or self.document.tree

    def _softmax_input(self, call: ast.Call) -> ast.expr | None:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if isinstance(func, ast.Call):  # nn.Softmax(dim=-1)(scores)
            if self.document.qualified_name(func.func) in _SOFTMAX_MODULES:
                return _first_argument(call, "input")
            return None
        if name is None:
            return None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
            if name in self.softmax_attributes:  # self.softmax = nn.Softmax(dim=-1)
                return _first_argument(call, "input")
            return None
        if name in _SOFTMAX_NAMES:
            qualified = self.document.qualified_name(func)
            if qualified in _SOFTMAX_FUNCTIONS:
                return _first_argument(call, "input")
            if qualified is None and isinstance(func, ast.Attribute) and name in ("softmax", "log_softmax"):
                return func.value  # scores.softmax(dim=-1)
        return None

    @property
    def softmax_attributes(self) -> set[str]:
        """`self.<name>` attributes assigned an `nn.Softmax(...)` anywhere in the file."""
        if self._softmax_attributes is None:
            self._softmax_attributes = set()
            for attribute, assignments in self.index.self_attribute_assignments.items():
                for statement in assignments:
                    value = statement.value
                    if not isinstance(value, ast.Call):
                        continue
                    func = value.func
                    if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) not in _SOFTMAX_NAMES:
                        continue
                    if self.document.qualified_name(func) in _SOFTMAX_MODULES:
                        self._softmax_attributes.add(attribute)
        return self._softmax_attributes

    # ---- following the logits back -------------------------------------------------
    def _trace(self, node: ast.AST, use: ast.AST, flow: _FunctionFlow, trail: _Trail, depth: int, seen: set):
        if depth > _MAX_DEPTH or node is None:
            return
        depth += 1
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, _SCALING_OPERATORS):
                self._trace_product(node, (node.left, node.right), use, flow, trail, depth, seen)
                return
            if isinstance(node.op, (ast.Add, ast.Sub)):
                self._trace(node.left, use, flow, trail, depth, seen)
                self._trace(node.right, use, flow, trail, depth, seen)
                return
            if isinstance(node.op, ast.MatMult):
                self._score(node, node.left, node.right, use, flow, trail)
            return
        if isinstance(node, ast.IfExp):
            self._trace(node.body, use, flow, trail, depth, seen)
            self._trace(node.orelse, use, flow, trail, depth, seen)
            return
        if isinstance(node, ast.Name):
            self._trace_name(node.id, use, flow, trail, depth, seen)
            return
        if isinstance(node, ast.Subscript):
            self._trace(node.value, use, flow, trail, depth, seen)
            return
        if isinstance(node, ast.Call):
            self._trace_call(node, use, flow, trail, depth, seen)

    def _trace_product(self, node, operands, use, flow: _FunctionFlow, trail: _Trail, depth: int, seen: set):
        """`att * scale` scales the logits; `(1.0 - mask) * -1e4` is a bias that carries none."""
        inner = _Trail()
        for operand in operands:
            self._trace(operand, use, flow, inner, depth, seen)
        if inner.scaling is not None:
            trail.scaled_by(inner.scaling)
        if inner.scores:
            trail.scaled_by(node)
            trail.scores.extend(inner.scores)

    def _trace_name(self, name: str, use: ast.AST, flow: _FunctionFlow, trail: _Trail, depth: int, seen: set):
        key = (name, id(use))
        if key in seen:
            return
        seen.add(key)
        inplace = flow.inplace_scaling_before(name, use)
        if inplace is not None:
            trail.scaled_by(inplace)
        for statement in flow.reaching(name, use):
            if isinstance(statement, ast.AugAssign):
                if isinstance(statement.op, _SCALING_OPERATORS):
                    trail.scaled_by(statement)
                elif isinstance(statement.op, (ast.Add, ast.Sub)):
                    self._trace(statement.value, statement, flow, trail, depth, seen)
                else:
                    continue
                self._trace_name(name, statement, flow, trail, depth, seen)  # `att /= s` reads att too
                continue
            value = _bound_value(statement, name)
            if value is not None:
                self._trace(value, statement, flow, trail, depth, seen)

    def _trace_call(self, call: ast.Call, use: ast.AST, flow: _FunctionFlow, trail: _Trail, depth: int, seen: set):
        func = call.func
        if isinstance(func, ast.Attribute):
            qualified = self.document.qualified_name(func)
            if qualified is None:  # a tensor method
                method = func.attr
                if method in _SCALING_METHODS or _SCALING_CALL_NAME.search(method):  # also `.mul_scalar(att, s)`
                    self._trace_product(call, (func.value, *call.args), use, flow, trail, depth, seen)
                elif method in _TRANSPARENT_METHODS:
                    self._trace(func.value, use, flow, trail, depth, seen)
                elif method in _BIAS_METHODS:
                    self._trace(func.value, use, flow, trail, depth, seen)
                    for argument in call.args:
                        self._trace(argument, use, flow, trail, depth, seen)
                elif method in _MATMUL_METHODS and len(call.args) == 1:
                    self._score(call, func.value, call.args[0], use, flow, trail)
                elif _is_self_attribute(func) and "drop" in method.lower() and call.args:
                    self._trace(call.args[0], use, flow, trail, depth, seen)  # self.attn_dropout(att)
                return
        else:
            qualified = self.document.qualified_name(func)
        if qualified is None:
            return
        if qualified in _SCALING_FUNCTIONS:
            self._trace_product(call, call.args, use, flow, trail, depth, seen)
        elif qualified in _TRANSPARENT_FUNCTIONS and call.args:
            self._trace(call.args[0], use, flow, trail, depth, seen)
        elif qualified in _CONCATENATIONS and call.args and isinstance(call.args[0], (ast.List, ast.Tuple)):
            for element in call.args[0].elts:  # attention sinks: torch.cat([scores, sinks], dim=-1)
                self._trace(element, use, flow, trail, depth, seen)
        elif qualified == "torch.where" and len(call.args) == 3:
            self._trace(call.args[1], use, flow, trail, depth, seen)
            self._trace(call.args[2], use, flow, trail, depth, seen)
        elif qualified in _MATMUL_FUNCTIONS and len(call.args) == 2:
            self._score(call, call.args[0], call.args[1], use, flow, trail)
        elif qualified == "torch.baddbmm" and len(call.args) == 3:
            if any(keyword.arg in ("alpha", None) for keyword in call.keywords):
                trail.scaled_by(call)
            else:
                self._score(call, call.args[1], call.args[2], use, flow, trail)
        elif qualified == "torch.einsum":
            self._einsum_score(call, use, flow, trail)

    # ---- recognising q @ kᵀ -----------------------------------------------------------
    def _score(self, node, query, key, use, flow, trail):
        key_base, key_head_axis = _untransposed(key)
        if key_base is None or self._is_weight(key_base, use, flow) or self._is_weight(query, use, flow):
            return  # `x @ self.weight.T` is a linear layer, not attention
        if not self._looks_like_attention(node, query, key_base, use, flow):
            return
        product = ScoreProduct(node, query, key, key_base, key_head_axis, -1)
        self._record(product, use, flow, trail)

    def _einsum_score(self, call, use, flow, trail):
        if len(call.args) == 2 and isinstance(call.args[1], (ast.List, ast.Tuple)):
            operands = call.args[1].elts
        else:
            operands = call.args[1:]
        if not call.args or len(operands) != 2 or any(isinstance(o, ast.Starred) for o in operands):
            return
        equation = call.args[0]
        if not (isinstance(equation, ast.Constant) and isinstance(equation.value, str)):
            return
        axes = _einsum_head_axes(equation.value)
        if axes is None:
            return
        query, key = operands
        if self._is_weight(query, use, flow) or self._is_weight(key, use, flow):
            return
        if not self._looks_like_attention(call, query, key, use, flow):
            return
        self._record(ScoreProduct(call, query, key, key, axes[1], axes[0]), use, flow, trail)

    def _is_weight(self, operand, use, flow: _FunctionFlow) -> bool:
        """`self.weight`, or a local bound to one (`W = self.lm_head.weight`)."""
        if _is_parameter_like(operand):
            return True
        if isinstance(operand, ast.Name):
            return any(
                _is_parameter_like(_bound_value(statement, operand.id)) for statement in flow.reaching(operand.id, use)
            )
        return False

    def _record(self, product: ScoreProduct, use, flow, trail):
        scaling = self._prescaled(product.query, use, flow, 0, set()) or self._prescaled(product.key, use, flow, 0, set())
        if scaling is not None:
            trail.scaled_by(scaling)
        trail.scores.append(product)

    def _looks_like_attention(self, node, query, key, use, flow) -> bool:
        query_name, key_name = _root_name(query), _root_name(key)
        if query_name and key_name and _has_word(query_name, _QUERY_WORDS) and _has_word(key_name, _KEY_WORDS):
            return True
        function = flow.function
        if _ATTENTION_NAME.search(getattr(function, "name", "")):
            return True
        owner = self.index.enclosing(function, ast.ClassDef)
        if owner is not None and _ATTENTION_NAME.search(owner.name):
            return True
        statement = self._statement(node)
        if isinstance(statement, ast.Assign):
            return any(isinstance(t, ast.Name) and _ATTENTION_NAME.search(t.id) for t in statement.targets)
        return False

    # ---- was q or k scaled before the product? ------------------------------------------
    def _prescaled(self, node, use, flow: _FunctionFlow, depth: int, seen: set, callers: bool = True) -> ast.AST | None:
        if depth > _MAX_DEPTH or node is None:
            return None
        depth += 1
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, _SCALING_OPERATORS):
                return node
            return self._prescaled(node.left, use, flow, depth, seen, callers) or self._prescaled(
                node.right, use, flow, depth, seen, callers
            )
        if isinstance(node, ast.Attribute):
            if node.attr in ("T", "mT", "mH", "H"):
                return self._prescaled(node.value, use, flow, depth, seen, callers)
            return None
        if isinstance(node, ast.Subscript):
            return self._prescaled(node.value, use, flow, depth, seen, callers)
        if isinstance(node, ast.Starred):
            return self._prescaled(node.value, use, flow, depth, seen, callers)
        if isinstance(node, ast.Call):
            qualified = self.document.qualified_name(node.func)
            if qualified in _SCALING_FUNCTIONS or qualified in _NORMALIZING_FUNCTIONS:
                return node
            name = _callee_name(node.func)
            if qualified is None and name is not None and _SCALING_CALL_NAME.search(name):
                return node
            if isinstance(node.func, ast.Attribute) and qualified is None:
                found = self._prescaled(node.func.value, use, flow, depth, seen, callers)
                if found is not None:
                    return found
            # `rearrange(q, ...)`, `self.q_proj(x)`, `apply_rotary(q, k, cos, sin)`: the data comes in first.
            if node.args:
                return self._prescaled(node.args[0], use, flow, depth, seen, callers)
            return None
        if isinstance(node, (ast.List, ast.Tuple)):
            for element in node.elts:
                found = self._prescaled(element, use, flow, depth, seen, callers)
                if found is not None:
                    return found
            return None
        if isinstance(node, ast.Name):
            key = (node.id, id(use))
            if key in seen:
                return None
            seen.add(key)
            inplace = flow.inplace_scaling_before(node.id, use)
            if inplace is not None:
                return inplace
            definitions = flow.reaching(node.id, use)
            for statement in definitions:
                if isinstance(statement, ast.AugAssign):
                    if isinstance(statement.op, _SCALING_OPERATORS):
                        return statement
                    found = self._prescaled(ast.Name(node.id), statement, flow, depth, seen, callers)
                else:
                    found = self._prescaled(_bound_value(statement, node.id), statement, flow, depth, seen, callers)
                if found is not None:
                    return found
            if not definitions and callers and node.id in flow.parameters:
                return self._scaled_by_callers(flow, node.id)
        return None

    def _scaled_by_callers(self, flow: _FunctionFlow, parameter: str) -> ast.AST | None:
        """A query passed in as an argument may have been scaled by the caller (`self._attn(q * s, k)`)."""
        key = (id(flow.function), parameter)
        if key not in self._caller_scaling:
            self._caller_scaling[key] = self._find_caller_scaling(flow, parameter)
        return self._caller_scaling[key]

    def _find_caller_scaling(self, flow: _FunctionFlow, parameter: str) -> ast.AST | None:
        function = flow.function
        position = flow.parameters.index(parameter)
        is_method = bool(flow.parameters) and flow.parameters[0] in ("self", "cls")
        owner = self.index.enclosing(function, ast.ClassDef) if is_method else None
        for call in self.calls_by_name.get(function.name, ()):
            func = call.func
            if owner is not None and self.index.enclosing(call, ast.ClassDef) is not owner:
                continue  # another class's method of the same name
            argument = next((k.value for k in call.keywords if k.arg == parameter), None)
            if argument is None:
                offset = 1 if is_method and isinstance(func, ast.Attribute) else 0
                if 0 <= position - offset < len(call.args):
                    argument = call.args[position - offset]
            if argument is None:
                continue
            caller = self.index.enclosing_function(call) or self.document.tree
            if isinstance(caller, ast.Lambda):
                continue
            found = self._prescaled(argument, self._statement(call), self._flow(caller), 0, set(), callers=False)
            if found is not None:
                return found
        return None

    @property
    def calls_by_name(self) -> dict[str, list[ast.Call]]:
        """Calls grouped by the callee's last name: `self._attn(...)` under `_attn`."""
        return self.index.calls_by_name

    # ---- helpers -------------------------------------------------------------------------
    def _flow(self, function) -> _FunctionFlow:
        flow = self.flows.get(id(function))
        if flow is None:
            flow = self.flows[id(function)] = _FunctionFlow(function, self.index)
        return flow

    def _statement(self, node: ast.AST) -> ast.stmt:
        return self.index.enclosing_statement(node)


def _callee_name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _first_argument(call: ast.Call, keyword: str) -> ast.expr | None:
    if call.args:
        return None if isinstance(call.args[0], ast.Starred) else call.args[0]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _bound_value(statement: ast.AST, name: str) -> ast.expr | None:
    """The expression assigned to `name` by `statement`, when the statement makes it evident."""
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            value = _match_target(target, statement.value, name)
            if value is not None:
                return value
        return None
    if isinstance(statement, ast.AnnAssign):
        return statement.value
    if isinstance(statement, ast.NamedExpr):
        return statement.value
    return None


def _match_target(target: ast.AST, value: ast.expr, name: str) -> ast.expr | None:
    if isinstance(target, ast.Name):
        return value if target.id == name else None
    if isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            for element, element_value in zip(target.elts, value.elts):
                found = _match_target(element, element_value, name)
                if found is not None:
                    return found
            return None
        if any(isinstance(element, ast.Name) and element.id == name for element in target.elts):
            return value  # q, k, v = qkv.unbind(0): q comes from the whole value
    return None


def _untransposed(key: ast.expr) -> tuple[ast.expr | None, int | None]:
    """`k.transpose(-2, -1)` -> (k, -1); `kT` -> (kT, -2); None when `key` is not a transposed operand."""
    if isinstance(key, ast.Attribute) and key.attr in ("T", "mT", "mH", "H"):
        return key.value, -1
    if isinstance(key, ast.Call) and isinstance(key.func, ast.Attribute):
        method = key.func.attr
        if method == "t" and not key.args:
            return key.func.value, -1
        if method in ("transpose", "swapaxes", "swapdims") and len(key.args) == 2:
            axes = tuple(_integer(argument) for argument in key.args)
            return key.func.value, (-1 if axes in _LAST_AXES_SWAPS else None)
        if method == "permute":
            return key.func.value, None
    name = _root_name(key)
    if name is not None and _has_word(name, _KEY_WORDS):
        return key, -2  # transposed earlier, by name: `kT`, `key_t`, `k` from `k.permute(0, 1, 3, 2)`
    return None, None


def _integer(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        return -value if isinstance(value, int) else None
    return None


def _einsum_head_axes(equation: str) -> tuple[int | None, int | None] | None:
    """For a `q, k -> scores` contraction ('bhid,bhjd->bhij'), the contracted axis in q and in k."""
    equation = equation.replace(" ", "")
    if "->" not in equation:
        return None
    inputs, output = equation.split("->")
    operands = inputs.split(",")
    if len(operands) != 2:
        return None
    query, key = (operand.replace("...", "") for operand in operands)
    output = output.replace("...", "")
    contracted = [axis for axis in query if axis in key and axis not in output]
    query_only = [axis for axis in query if axis not in key]
    key_only = [axis for axis in key if axis not in query]
    if len(contracted) != 1 or len(query_only) != 1 or len(key_only) != 1:
        return None
    if query_only[0] not in output or key_only[0] not in output:
        return None
    # Negative axes stay right under a leading `...`.
    return (query.index(contracted[0]) - len(query), key.index(contracted[0]) - len(key))


def _is_parameter_like(node: ast.AST) -> bool:
    """`self.weight`, `self.embedding.weight.T`: an attribute chain on `self` with no call or index."""
    while isinstance(node, ast.Attribute):
        node = node.value
        if isinstance(node, ast.Name):
            return node.id == "self"
    return False


def _root_name(node: ast.AST) -> str | None:
    """What an operand is derived from: `q` for `q.float()`, `key_states` for `key_states[:, :T]`,
    `q_proj` for `self.q_proj(x)`."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if _is_self_attribute(node):
            return node.attr
        if isinstance(node, ast.Call) and _is_self_attribute(node.func):
            return node.func.attr
        if isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        else:
            return None


def _has_word(name: str, words: set[str]) -> bool:
    return any(part in words for part in name.lower().split("_"))


def _is_self_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _unique(products: list[ScoreProduct]) -> list[ScoreProduct]:
    seen, unique = set(), []
    for product in products:
        if id(product.node) not in seen:
            seen.add(id(product.node))
            unique.append(product)
    return unique
