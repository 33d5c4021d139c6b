"""Mixture-of-experts routers: where expert logits are computed, normalised and top-k selected.

A router site is a `torch.topk(...)` / `x.topk(...)` / `argmax` whose input, followed back through
the enclosing function's assignments, comes from a gate: a call of a submodule named like a router
(`self.gate(x)`, `self.router(x)`, `self.w_gate`), `F.linear(x, self.weight)` or `x @ self.w_gate`
inside a class named like one (`MoEGate`, `TopKRouter`), or variables named like router logits
(`router_logits`, `gate_logits`). On the way back the trail records the softmaxes it crosses, any
upcast to float32 (`.float()`, `.to(torch.float32)`, a `dtype=` on the softmax, a float32 gate), and
whether it ran into something it cannot see through (a parameter, an unknown call).

Softmaxes *after* the selection (`weights, idx = topk(logits, k)` then `softmax(weights)`) are found
by tracing every softmax in a function that holds a router site back to that site.

Only files that import torch and mention experts are looked at beyond the shared node index; only
functions holding a top-k call are walked.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import dotted_name

_SOFTMAX_FUNCTIONS = {"torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax"}
_SELECTION_FUNCTIONS = {"torch.topk", "torch.argmax"}
_SELECTION_METHODS = {"topk", "argmax"}
# Methods that keep what the logits are: layout, masking, clamping, noise-free rescaling.
_TRANSPARENT_METHODS = {
    "view", "reshape", "contiguous", "squeeze", "unsqueeze", "flatten", "clone", "detach", "masked_fill",
    "masked_fill_", "clamp", "clamp_", "clip", "add", "add_", "sub", "mul", "mul_", "div", "div_",
    "sigmoid", "sigmoid_", "relu", "exp", "permute", "expand", "nan_to_num", "gather", "scatter",
}  # fmt: skip
_TRANSPARENT_FUNCTIONS = {
    "torch.sigmoid", "torch.nn.functional.sigmoid", "torch.exp", "torch.clamp", "torch.nn.functional.relu",
    "torch.nn.functional.softplus", "torch.where", "torch.nan_to_num", "torch.masked_fill",
}  # fmt: skip
# Tensors made from nothing, or shaped like the logits: noise and masks keep the logits' dtype.
_NEUTRAL_FUNCTIONS = {
    "torch.randn_like", "torch.rand_like", "torch.zeros_like", "torch.ones_like", "torch.empty_like",
    "torch.full_like", "torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.tensor",
}  # fmt: skip
_UPCAST_METHODS = {"float", "double"}
_DOWNCAST_METHODS = {"half", "bfloat16", "type_as"}
_HALF_DTYPES = {"torch.float16", "torch.half", "torch.bfloat16"}
_FULL_DTYPES = {"torch.float32", "torch.float", "torch.float64", "torch.double"}
_LINEAR_FUNCTIONS = {"torch.nn.functional.linear"}
_MATMUL_FUNCTIONS = {"torch.matmul", "torch.mm", "torch.einsum"}
_LINEAR_MODULES = {"torch.nn.Linear"}

# `self.gate`, `self.router`, `self.w_gate`, `self.gate_linear`: not `gate_proj`, the SwiGLU gate.
_ROUTER_ATTRIBUTE = re.compile(
    r"(?i)^(?:w_?)?(?:gate|gates|gating|router|routing|switch)(?:_?(?:linear|layer|net|weight|weights|classifier))?$|^wg$"
)
# `router_logits`, `gate_logits`, `routing_weights`, `gates`, `expert_logits`.
_ROUTER_VARIABLE = re.compile(r"(?i)(?:^|_)(?:router|routing|gate|gating|expert)s?_?(?:logits|scores|probs|weights)|^gates$")
_ROUTER_CLASS = re.compile(r"(?i)router|routing|(?:gate|gating)$")
_EXPERT_CHOICE_K = re.compile(r"(?i)capacity")
_MAX_DEPTH = 24


@dataclass
class RouterTrail:
    """What one expression is made of, followed back to the gate."""

    names: list[str] = field(default_factory=list)
    visited: set[int] = field(default_factory=set)  # bindings already followed
    gate: ast.AST | None = None  # the gate call or product
    gate_is_linear: bool = False  # a plain linear map whose dtype is the activation dtype
    router_named: bool = False  # a router-like variable or attribute on the way
    softmaxes: list[ast.Call] = field(default_factory=list)
    selections: list[ast.Call] = field(default_factory=list)
    upcast: ast.AST | None = None
    opaque: ast.AST | None = None  # the first thing the trail could not see through
    transposed: bool = False

    def upcast_at(self, node: ast.AST):
        if self.upcast is None:
            self.upcast = node

    def opaque_at(self, node: ast.AST):
        if self.opaque is None:
            self.opaque = node


@dataclass
class RouterSite:
    selection: ast.Call  # the top-k (or argmax) call that picks experts
    function: ast.FunctionDef | ast.AsyncFunctionDef
    trail: RouterTrail
    expert_choice: bool  # top-k over tokens, not experts: balanced by construction
    # Where the router logits leave the function for a loss computed elsewhere: a `return`, a
    # `self.<attr> = logits`, a `list.append(logits)`; None when they do not.
    exposed_by: ast.AST | None = None


@dataclass
class RouterSoftmax:
    call: ast.Call
    site: RouterSite
    trail: RouterTrail  # from the softmax input back to the gate (through the site when after it)
    explicit_dtype: ast.AST | None


@dataclass
class RouterFacts:
    sites: list[RouterSite] = field(default_factory=list)
    softmaxes: list[RouterSoftmax] = field(default_factory=list)


def find_routers(document) -> RouterFacts:
    """Router sites and router softmaxes, in source order. Rules read `document.routers`."""
    facts = RouterFacts()
    if "expert" not in document.source.lower() or not document.imports.imports_module("torch"):
        return facts
    finder = _RouterFinder(document)
    for call in document.index.calls:
        if not finder.is_selection(call):
            continue
        function = document.index.enclosing(call, ast.FunctionDef, ast.AsyncFunctionDef)
        if function is None:
            continue
        trail = RouterTrail()
        selection_input = _first_argument(call) if _is_function_call(document, call) else call.func.value
        flow = finder.flow(function)
        finder.trace(selection_input, call, flow, trail, 0)
        if not finder.is_router(trail, function):
            continue
        site = RouterSite(call, function, trail, _is_expert_choice(call, trail))
        site.exposed_by = finder.exposure(site, flow)
        facts.sites.append(site)
    if not facts.sites:
        return facts
    by_function: dict[int, list[RouterSite]] = {}
    for site in facts.sites:
        by_function.setdefault(id(site.function), []).append(site)
    seen: set[int] = set()
    for call in document.index.calls:
        softmax_input = finder.softmax_input(call)
        if softmax_input is None:
            continue
        function = document.index.enclosing(call, ast.FunctionDef, ast.AsyncFunctionDef)
        sites = by_function.get(id(function)) if function is not None else None
        if not sites or id(call) in seen:
            continue
        trail = RouterTrail()
        finder.trace(softmax_input, call, finder.flow(function), trail, 0)
        site = next((site for site in sites if any(selection is site.selection for selection in trail.selections)), None)
        if site is None:  # before the selection: the softmax lies on a site's trail
            site = next((site for site in sites if any(softmax is call for softmax in site.trail.softmaxes)), None)
        if site is None:
            continue
        seen.add(id(call))
        facts.softmaxes.append(RouterSoftmax(call, site, trail, _explicit_dtype(document, call)))
    return facts


class _Flow:
    """Assignments of one function by local name, in source order."""

    def __init__(self, function: ast.AST):
        arguments = function.args
        every = (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg)
        self.parameters = {argument.arg for argument in every if argument is not None}
        self.definitions: dict[str, list[tuple[ast.stmt, ast.AST | None, bool]]] = {}
        for statement in walk(function):
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    self._bind(target, statement.value, statement, unpacked=False)
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                self._bind(statement.target, statement.value, statement, unpacked=False)
            elif isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
                self.definitions.setdefault(statement.target.id, []).append((statement, statement, False))
            elif isinstance(statement, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
                targets = [statement.target] if isinstance(statement, (ast.For, ast.AsyncFor)) else [
                    item.optional_vars for item in statement.items if item.optional_vars is not None
                ]
                for target in targets:
                    self._bind(target, None, statement, unpacked=False)
        for bound in self.definitions.values():
            bound.sort(key=lambda entry: (entry[0].lineno, entry[0].col_offset))

    def _bind(self, target, value, statement, unpacked: bool):
        if isinstance(target, ast.Name):
            self.definitions.setdefault(target.id, []).append((statement, value, unpacked))
        elif isinstance(target, ast.Starred):
            self._bind(target.value, None, statement, unpacked)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for element, element_value in zip(target.elts, value.elts):
                    self._bind(element, element_value, statement, unpacked)
            else:  # `values, indices = torch.topk(...)`: each name comes from the call
                for element in target.elts:
                    self._bind(element, value, statement, True)
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            # `logits[mask] = -inf` keeps the tensor; trace the earlier binding too.
            pass

    def reaching(self, name: str, use: ast.AST):
        """The latest binding of `name` that starts before `use`."""
        position = (use.lineno, use.col_offset)
        for statement, value, unpacked in reversed(self.definitions.get(name, ())):
            if (statement.lineno, statement.col_offset) < position and not _contains(statement, use):
                return statement, value, unpacked
        return None


class _RouterFinder:
    def __init__(self, document):
        self.document = document
        self.index = document.index
        self._flows: dict[int, _Flow] = {}

    def flow(self, function) -> _Flow:
        flow = self._flows.get(id(function))
        if flow is None:
            flow = self._flows[id(function)] = _Flow(function)
        return flow

    def exposure(self, site: RouterSite, flow: _Flow) -> ast.AST | None:
        """The first statement that hands a tensor of the router trail out of the function."""
        for node in walk(site.function):
            if isinstance(node, (ast.Return, ast.Yield)) and node.value is not None:
                carried = node.value
            elif isinstance(node, ast.Assign) and any(_is_self_attribute(target) for target in node.targets):
                carried = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("append", "extend"):
                carried = node
            else:
                continue
            for name in _handed_out(carried):
                if name.id not in site.trail.names:
                    continue
                binding = flow.reaching(name.id, node)
                while binding is not None and isinstance(binding[0], ast.AugAssign):
                    binding = flow.reaching(name.id, binding[0])
                if binding is not None and binding[1] is not None and id(binding[1]) in site.trail.visited:
                    return node
        return None

    # ---- what calls are ------------------------------------------------------------
    def is_selection(self, call: ast.Call) -> bool:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in _SELECTION_METHODS:
            qualified = self.document.qualified_name(func)
            return qualified in _SELECTION_FUNCTIONS or (qualified is None and bool(call.args or call.keywords or func.attr == "argmax"))
        if isinstance(func, ast.Name) and func.id in _SELECTION_METHODS:
            return self.document.qualified_name(func) in _SELECTION_FUNCTIONS
        return False

    def softmax_input(self, call: ast.Call) -> ast.AST | None:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name != "softmax":
            return None
        qualified = self.document.qualified_name(func)
        if qualified in _SOFTMAX_FUNCTIONS:
            return _first_argument(call)
        if qualified is None and isinstance(func, ast.Attribute):
            return func.value
        return None

    def is_router(self, trail: RouterTrail, function) -> bool:
        if trail.gate is not None or trail.router_named:
            return True
        owner = self.index.parent(function)
        return isinstance(owner, ast.ClassDef) and bool(_ROUTER_CLASS.search(owner.name)) and not trail.opaque

    # ---- following the logits back -------------------------------------------------
    def trace(self, node: ast.AST | None, use: ast.AST, flow: _Flow, trail: RouterTrail, depth: int):
        if node is None or depth > _MAX_DEPTH:
            return
        depth += 1
        if isinstance(node, ast.Name):
            self._trace_name(node, use, flow, trail, depth)
        elif isinstance(node, ast.Call):
            self._trace_call(node, use, flow, trail, depth)
        elif isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.MatMult) and self._is_gate_weight(node.right):
                self._found_gate(node, [node.left, node.right], flow, trail, depth, linear=True)
                return
            for side in (node.left, node.right):
                if not isinstance(side, ast.Constant):
                    self.trace(side, use, flow, trail, depth)
        elif isinstance(node, ast.UnaryOp):
            self.trace(node.operand, use, flow, trail, depth)
        elif isinstance(node, ast.Subscript):
            self.trace(node.value, use, flow, trail, depth)
        elif isinstance(node, ast.Attribute) and node.attr in ("T", "mT"):
            trail.transposed = True
            self.trace(node.value, use, flow, trail, depth)
        elif isinstance(node, ast.Attribute):
            if _ROUTER_VARIABLE.search(node.attr):
                trail.router_named = True
            trail.opaque_at(node)
        elif not isinstance(node, ast.Constant):
            trail.opaque_at(node)

    def _trace_name(self, node: ast.Name, use, flow: _Flow, trail: RouterTrail, depth: int):
        if node.id not in trail.names:
            trail.names.append(node.id)
        if _ROUTER_VARIABLE.search(node.id):
            trail.router_named = True
        binding = flow.reaching(node.id, use)
        while binding is not None and isinstance(binding[0], ast.AugAssign):
            statement = binding[0]  # `probs /= probs.sum(...)`: a rescale; the tensor comes from earlier
            if not isinstance(statement.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
                trail.opaque_at(statement)
            binding = flow.reaching(node.id, statement)
        if binding is None:
            trail.opaque_at(node)  # a parameter, a global or a closure: made elsewhere
            return
        self._trace_binding(binding, flow, trail, depth)

    def _trace_binding(self, binding, flow, trail, depth):
        statement, value, unpacked = binding
        key = id(value) if value is not None else id(statement)
        if key in trail.visited:
            return
        trail.visited.add(key)
        if value is None:
            trail.opaque_at(statement)
            return
        if unpacked and not (isinstance(value, ast.Call) and self.is_selection(value)):
            trail.opaque_at(statement)  # `a, b = helper(x)`: which output is which is unknown
            return
        self.trace(value, statement, flow, trail, depth)

    def _trace_call(self, call: ast.Call, use, flow: _Flow, trail: RouterTrail, depth: int):
        func = call.func
        qualified = self.document.qualified_name(func)
        if self.is_selection(call):
            trail.selections.append(call)
            self.trace(_first_argument(call) if _is_function_call(self.document, call) else func.value, use, flow, trail, depth)
            return
        softmax_input = self.softmax_input(call)
        if softmax_input is not None:
            trail.softmaxes.append(call)
            if _explicit_dtype(self.document, call) is not None:
                trail.upcast_at(call)
            self.trace(softmax_input, use, flow, trail, depth)
            return
        if qualified in _LINEAR_FUNCTIONS:
            weight = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "weight"), None)
            if self._is_gate_weight(weight) or self._inside_router_class(call):
                self._found_gate(call, [*call.args, *(k.value for k in call.keywords)], flow, trail, depth, linear=True)
                return
            trail.opaque_at(call)
            return
        if qualified in _MATMUL_FUNCTIONS:
            operands = [argument for argument in call.args if not isinstance(argument, ast.Constant)]
            if any(self._is_gate_weight(operand) for operand in operands):
                self._found_gate(call, operands, flow, trail, depth, linear=True)
                return
            trail.opaque_at(call)
            return
        if qualified in _TRANSPARENT_FUNCTIONS:
            self.trace(_first_argument(call), use, flow, trail, depth)
            return
        if qualified in _NEUTRAL_FUNCTIONS:
            return
        if qualified is None and isinstance(func, ast.Attribute):
            attribute = func.attr
            if isinstance(func.value, ast.Name) and func.value.id == "self":
                self._trace_submodule(call, attribute, flow, trail, depth)
                return
            if attribute in _UPCAST_METHODS:
                trail.upcast_at(call)
                self.trace(func.value, use, flow, trail, depth)
                return
            if attribute in ("to", "type"):
                target = self._cast_target(call)
                if target in _FULL_DTYPES or target == "unknown":
                    trail.upcast_at(call)
                self.trace(func.value, use, flow, trail, depth)
                return
            if attribute in ("t", "transpose", "swapaxes", "transpose_"):
                trail.transposed = True
                self.trace(func.value, use, flow, trail, depth)
                return
            if attribute in _DOWNCAST_METHODS or attribute in _TRANSPARENT_METHODS:
                self.trace(func.value, use, flow, trail, depth)
                return
        trail.opaque_at(call)

    def _trace_submodule(self, call: ast.Call, attribute: str, flow, trail: RouterTrail, depth: int):
        """`self.gate(x)`: a router when the attribute or the class is named like one."""
        if not (_ROUTER_ATTRIBUTE.search(attribute) or self._inside_router_class(call)):
            trail.opaque_at(call)
            return
        trail.router_named = trail.router_named or bool(_ROUTER_ATTRIBUTE.search(attribute))
        module = self.document.modules.class_owning(call)
        constructor = self.document.modules.constructor_name(module, attribute) if module is not None else None
        built = module.submodules.get(attribute) if module is not None else None
        linear = constructor in _LINEAR_MODULES
        if linear and built is not None:
            dtype = next((keyword.value for keyword in built.keywords if keyword.arg == "dtype"), None)
            if dtype is not None and self.document.qualified_name(dtype) not in _HALF_DTYPES:
                trail.upcast_at(built)  # a float32 router layer, the Switch Transformer way
        self._found_gate(call, [*call.args, *(k.value for k in call.keywords)], flow, trail, depth, linear=linear)
        if not linear:
            trail.opaque_at(call)  # what a router module returns, and in which dtype, is its own business

    def _found_gate(self, gate: ast.AST, inputs, flow, trail: RouterTrail, depth: int, *, linear: bool):
        if trail.gate is None:
            trail.gate = gate
            trail.gate_is_linear = linear
        for value in inputs:  # `F.linear(x.float(), self.weight.float())`: the router runs in float32
            upstream = RouterTrail()
            self.trace(value, gate, flow, upstream, depth)
            if upstream.upcast is not None:
                trail.upcast_at(upstream.upcast)

    def _is_gate_weight(self, node: ast.AST | None) -> bool:
        """`self.w_gate`, `self.gate.weight`, `self.router_weight`, `self.weight` in a router class."""
        name = dotted_name(node) if node is not None else None
        if name is None or not name.startswith("self."):
            return False
        parts = name.split(".")[1:]
        if any(_ROUTER_ATTRIBUTE.search(part) for part in parts):
            return True
        return parts == ["weight"] and self._inside_router_class(node)

    def _inside_router_class(self, node: ast.AST) -> bool:
        owner = self.index.enclosing(node, ast.ClassDef)
        return owner is not None and bool(_ROUTER_CLASS.search(owner.name))

    def _cast_target(self, call: ast.Call) -> str | None:
        """`torch.float32` for `.to(torch.float32)`, "unknown" for `.to(x.dtype)`, None for a device."""
        target = next((keyword.value for keyword in call.keywords if keyword.arg == "dtype"), None)
        if target is None and call.args:
            target = call.args[0]
        if target is None:
            return None
        qualified = self.document.qualified_name(target)
        if qualified in _FULL_DTYPES or qualified in _HALF_DTYPES:
            return qualified
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            return None  # "cuda", "cpu"
        name = dotted_name(target) or ""
        if "device" in name.lower():
            return None
        return "unknown"


# ---- helpers ----------------------------------------------------------------------------

def _first_argument(call: ast.Call) -> ast.AST | None:
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    return next((keyword.value for keyword in call.keywords if keyword.arg == "input"), None)


def _is_function_call(document, call: ast.Call) -> bool:
    """`torch.topk(x, k)` rather than `x.topk(k)`."""
    return isinstance(call.func, ast.Name) or document.qualified_name(call.func) is not None


def _explicit_dtype(document, call: ast.Call) -> ast.AST | None:
    """The `dtype` a softmax call states (keyword, or the positional slot after `dim`)."""
    for keyword in call.keywords:
        if keyword.arg == "dtype":
            return keyword.value
    positional_dim = 2 if _is_function_call(document, call) else 1
    if len(call.args) > positional_dim:
        return call.args[positional_dim]
    return None


def _is_expert_choice(call: ast.Call, trail: RouterTrail) -> bool:
    """Experts pick their top tokens (`topk(scores.T, capacity)`, `dim=0`): balanced by design."""
    if trail.transposed:
        return True
    for keyword in call.keywords:
        if keyword.arg == "dim" and isinstance(keyword.value, ast.Constant) and keyword.value.value in (0, -2):
            return True
        if keyword.arg == "k" and _EXPERT_CHOICE_K.search(dotted_name(keyword.value) or ""):
            return True
    return any(_EXPERT_CHOICE_K.search(dotted_name(argument) or "") for argument in call.args)


def _handed_out(node: ast.AST) -> list[ast.Name]:
    """Names passed on as they are: `return out, logits`, `self.x = logits`, `cache.append(logits)`;
    not names merely used in a computation (`return out * probs`)."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("append", "extend"):
            return [name for argument in node.args for name in _handed_out(argument)]
        # `return MoeOutput(hidden_states=out, router_logits=logits)`
        return [name for keyword in node.keywords for name in _handed_out(keyword.value)]
    if isinstance(node, ast.Name):
        return [node]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [name for element in node.elts for name in _handed_out(element)]
    if isinstance(node, ast.Dict):
        return [name for value in node.values for name in _handed_out(value)]
    if isinstance(node, ast.Starred):
        return _handed_out(node.value)
    return []


def _is_self_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _contains(outer: ast.AST, inner: ast.AST) -> bool:
    return (outer.lineno, outer.col_offset) <= (inner.lineno, inner.col_offset) and (
        (inner.end_lineno, inner.end_col_offset) <= (outer.end_lineno, outer.end_col_offset)
    )
