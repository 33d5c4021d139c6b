"""What a module's `forward` does with the residual stream: norms, residual adds, stack depth.

A forward is read once, top to bottom. Every local name is bound to the value it holds at that
point (`residual = x` makes `residual` the same value as `x`), so a later question such as "is
this operand computed from that one through a sublayer?" is answered by following values, not
names. Branches and loops are merged conservatively: a name assigned inside one holds an unknown
value afterwards, and unknown values are never related to anything.

Only `forward` bodies of module classes are read, never the whole tree.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import ModuleClass, dotted_name

_FUNCTIONAL_NORMS = {
    "torch.nn.functional.layer_norm",
    "torch.nn.functional.rms_norm",
    "torch.layer_norm",
    "torch.rms_norm",
}
_FUNCTIONAL_NORM_NAMES = {qualified.rsplit(".", 1)[1] for qualified in _FUNCTIONAL_NORMS}
# Classes named like a norm that are not a feature-wise LayerNorm/RMSNorm, or that wrap a sublayer
# (`PreNorm(dim, fn)` returns `fn(norm(x))`).
_NOT_A_LAYER_NORM = re.compile(r"(Batch|Group|Instance|Weight|Spectral|LocalResponse)Norm|^(Pre|Post|Sandwich)Norm$")
_NORM_CLASS = re.compile(r"Norm$|LayerNorm|RMSNorm|RmsNorm")
# One `_`-separated part of an attribute or factory name that marks a norm: `ln_1`, `norm2`,
# `input_layernorm`, `LayerNorm`, `ffn_norm`, `norm_layer`.
_NORM_NAME_PART = re.compile(r"(ln|norm|layernorm|rmsnorm)\d*")

# Reads that depend on a tensor's shape or placement only, never on its values.
_SHAPE_ATTRIBUTES = {"shape", "device", "dtype", "ndim", "is_cuda", "requires_grad"}
_SHAPE_METHODS = {
    "size", "dim", "numel", "ndimension", "get_device", "stride", "element_size", "data_ptr",
    "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor",
}
_SHAPE_FUNCTIONS = {
    "len", "isinstance", "torch.arange", "torch.zeros", "torch.ones", "torch.empty", "torch.full",
    "torch.zeros_like", "torch.ones_like", "torch.empty_like", "torch.full_like", "torch.rand_like",
    "torch.randn_like",
}
# Submodules that hold no weights of their own, so calling one is not a sublayer.
_PARAMETER_FREE_CLASS = re.compile(r"(Dropout\w*|DropPath|Identity|GELU|ReLU|SiLU|Tanh|Sigmoid|Softmax|Flatten|Unflatten)$")
_PARAMETER_FREE_NAME = re.compile(r"(drop|dropout|drop_path|dropout_path|act|activation|identity)_?\d*")
# Position or token embeddings added to the stream are an embedding sum, not a residual branch.
_EMBEDDING_NAME = re.compile(r"emb|(^|_)pos(_|\d|$|ition)")

# Keyword names under which a norm may receive its input: `F.layer_norm(input=...)`.
_INPUT_KEYWORDS = ("input", "x", "hidden_states")

_OWN_SCOPES = frozenset((ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp))
_BUILTIN_NAMES = frozenset(dir(builtins))


class Value:
    """What a name holds at one point of a forward. `expression` is None for a parameter, a loop
    variable, a global or a merge of branches: a value that nothing else is known to derive from."""

    __slots__ = ("expression", "name")

    def __init__(self, expression: ast.AST | None, name: str):
        self.expression = expression
        self.name = name

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Value({self.name}, {type(self.expression).__name__})"


@dataclass(frozen=True)
class NormalizedResidualSum:
    """A norm applied to `stream + sublayer(stream)`: the placement Post-LN uses."""

    norm_call: ast.Call
    norm_label: str  # how the source names the norm: `self.ln_1`, `F.layer_norm`
    add: ast.BinOp | ast.AugAssign  # the residual add whose sum is normalized
    stream: ast.Name  # the operand that carries the residual stream
    branch: ast.expr  # the operand computed from the stream by a sublayer
    via_temporary: bool  # the sum was bound to a name first (`y = x + f(x); x = norm(y)`)


class ForwardFlow:
    """One forward read top to bottom: the value each name read sees, and how often each value is read."""

    def __init__(self, facts: ResidualFacts, module: ModuleClass, function: ast.FunctionDef | ast.AsyncFunctionDef):
        self._facts = facts
        self.module = module
        self.resolved: dict[ast.Name, Value] = {}
        self.reads: dict[Value, int] = {}
        arguments = function.args
        parameters = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        parameters += [argument for argument in (arguments.vararg, arguments.kwarg) if argument is not None]
        environment = {parameter.arg: Value(None, parameter.arg) for parameter in parameters}
        self._block(function.body, environment)

    # ---- reading statements ----------------------------------------------------------
    def _block(self, statements: list[ast.stmt], environment: dict[str, Value]) -> set[str]:
        assigned: set[str] = set()
        for statement in statements:
            assigned |= self._statement(statement, environment)
        return assigned

    def _statement(self, statement: ast.stmt, environment: dict[str, Value]) -> set[str]:
        if isinstance(statement, ast.Assign):
            self._read(statement.value, environment)
            for target in statement.targets:
                self._read(target, environment)
            return self._bind(statement.targets, statement.value, environment)
        if isinstance(statement, ast.AnnAssign):
            if statement.value is None:
                return set()
            self._read(statement.value, environment)
            self._read(statement.target, environment)
            return self._bind([statement.target], statement.value, environment)
        if isinstance(statement, ast.AugAssign):
            self._read(statement.value, environment)
            if not isinstance(statement.target, ast.Name):
                self._read(statement.target, environment)
                return set()
            name = statement.target.id
            self._record(statement.target, self._lookup(name, environment))
            environment[name] = Value(statement, name)
            return {name}
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            environment[statement.name] = Value(None, statement.name)
            return {statement.name}
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            return self._loop(statement, environment)
        if isinstance(statement, ast.If):
            self._read(statement.test, environment)
            return self._branches([statement.body, statement.orelse], environment)
        if isinstance(statement, (ast.With, ast.AsyncWith)):
            assigned = set()
            for item in statement.items:
                self._read(item.context_expr, environment)
                if item.optional_vars is not None:
                    assigned |= self._forget(_stored_names(item.optional_vars), environment)
            return assigned | self._block(statement.body, environment)
        if isinstance(statement, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            parts = [statement.body + statement.orelse, statement.finalbody]
            parts += [handler.body for handler in statement.handlers]
            return self._branches(parts, environment, keep_agreeing=False)
        if isinstance(statement, ast.Match):
            self._read(statement.subject, environment)
            return self._branches([case.body for case in statement.cases], environment, keep_agreeing=False)
        for child in ast.iter_child_nodes(statement):
            if isinstance(child, ast.expr):
                self._read(child, environment)
        return set()

    def _loop(self, statement: ast.For | ast.AsyncFor | ast.While, environment: dict[str, Value]) -> set[str]:
        # A name assigned in the body holds, at the top of the body, a merge of its value before the
        # loop and after any iteration: unknown.
        if not isinstance(statement, ast.While):
            self._read(statement.iter, environment)
        assigned = self._facts.names_stored_in(statement)
        inside = dict(environment)
        self._forget(assigned, inside)
        if isinstance(statement, ast.While):
            self._read(statement.test, inside)
        self._block(statement.body, inside)
        self._block(statement.orelse, dict(inside))
        return self._forget(assigned, environment)

    def _branches(self, bodies: list[list[ast.stmt]], environment: dict[str, Value], keep_agreeing: bool = True) -> set[str]:
        outcomes = []
        assigned: set[str] = set()
        for body in bodies:
            branch = dict(environment)
            assigned |= self._block(body, branch)
            outcomes.append(branch)
        for name in assigned:
            values = {id(branch.get(name)) for branch in outcomes}
            if keep_agreeing and len(values) == 1 and name in outcomes[0]:
                environment[name] = outcomes[0][name]
            else:
                environment[name] = Value(None, name)
        return assigned

    @staticmethod
    def _forget(names: set[str], environment: dict[str, Value]) -> set[str]:
        for name in names:
            environment[name] = Value(None, name)
        return names

    def _bind(self, targets: list[ast.expr], value: ast.expr, environment: dict[str, Value]) -> set[str]:
        # `residual = x` names the same value as `x`; anything else is a new value.
        bound = self.resolved.get(value) if isinstance(value, ast.Name) else None
        shared = bound or Value(value, "")
        assigned: set[str] = set()
        for target in targets:
            if isinstance(target, ast.Name):
                if shared.name == "" and shared.expression is value:
                    shared.name = target.id
                environment[target.id] = shared
                assigned.add(target.id)
            elif isinstance(target, (ast.Tuple, ast.List)):
                pairs = (
                    zip(target.elts, value.elts)
                    if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts)
                    and not any(isinstance(element, ast.Starred) for element in (*target.elts, *value.elts))
                    else ((element, value) for element in target.elts)
                )
                for element, element_value in pairs:
                    if isinstance(element, ast.Starred):
                        element = element.value
                    assigned |= self._bind([element], element_value, environment)
        return assigned

    def _read(self, expression: ast.expr, environment: dict[str, Value]) -> None:
        # The hot loop of this module: the common node types are unpacked by hand, which is several
        # times faster than `ast.iter_child_nodes`. Reading order within one expression is irrelevant.
        stack: list[ast.AST] = [expression]
        push, extend = stack.append, stack.extend
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is ast.Name:
                if type(node.ctx) is ast.Load:
                    self._record(node, self._lookup(node.id, environment))
            elif kind is ast.Attribute:
                push(node.value)
            elif kind is ast.Call:
                push(node.func)
                extend(node.args)
                extend(keyword.value for keyword in node.keywords)
            elif kind is ast.BinOp:
                push(node.left)
                push(node.right)
            elif kind is ast.Subscript:
                push(node.value)
                push(node.slice)
            elif kind is ast.Constant or kind in _OWN_SCOPES:
                continue  # names inside a comprehension or lambda are its own
            else:
                extend(ast.iter_child_nodes(node))

    @staticmethod
    def _lookup(name: str, environment: dict[str, Value]) -> Value:
        value = environment.get(name)
        if value is None:  # a global or builtin: unknown, but the same value at every read
            value = environment[name] = Value(None, name)
        return value

    def _record(self, name: ast.Name, value: Value) -> None:
        self.resolved[name] = value
        self.reads[value] = self.reads.get(value, 0) + 1

    # ---- questions -----------------------------------------------------------------
    def derives_through_sublayer(self, expression: ast.AST, source: Value) -> bool:
        """Whether `expression` is computed from `source` through at least one sublayer call and no norm.

        Shape reads (`x.size(1)`, `x.shape`), embeddings and parameter-free modules (dropout)
        do not count as sublayers; a norm on the way means the sublayer saw a normalized input.
        """
        seen: set[tuple[int, bool]] = set()
        stack: list[tuple[ast.AST, bool]] = [(expression, False)]
        while stack:
            node, through_sublayer = stack.pop()
            key = (id(node), through_sublayer)
            if key in seen:
                continue
            seen.add(key)
            if isinstance(node, ast.Name):
                value = self.resolved.get(node)
                if value is source:
                    if through_sublayer:
                        return True
                elif value is not None and value.expression is not None:
                    stack.append((value.expression, through_sublayer))
            elif isinstance(node, ast.AugAssign):
                stack.append((node.target, through_sublayer))
                stack.append((node.value, through_sublayer))
            elif isinstance(node, ast.Call):
                kind = self._facts.call_kind(self.module, node)
                if kind in (_NORM, _CUT):
                    continue
                inner = through_sublayer or kind == _SUBLAYER
                stack.extend((argument, inner) for argument in node.args)
                stack.extend((keyword.value, inner) for keyword in node.keywords)
                if kind == _TRANSPARENT and isinstance(node.func, ast.Attribute):
                    stack.append((node.func.value, through_sublayer))  # `h.view(...)` reads `h`
            elif isinstance(node, ast.Attribute):
                if node.attr not in _SHAPE_ATTRIBUTES:
                    stack.append((node.value, through_sublayer))
            elif isinstance(node, ast.Subscript):
                stack.append((node.value, through_sublayer))
            elif isinstance(node, (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.IfExp, ast.Tuple, ast.List, ast.Starred, ast.NamedExpr)):
                stack.extend((child, through_sublayer) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
        return False

    def residual_sum(self, norm_call: ast.Call) -> NormalizedResidualSum | None:
        """The residual add this norm normalizes, if its input is `stream + sublayer(stream)`."""
        normalized = norm_call.args[0] if norm_call.args else next(
            (keyword.value for keyword in norm_call.keywords if keyword.arg in _INPUT_KEYWORDS), None
        )
        via_temporary = False
        if isinstance(normalized, ast.Name):
            value = self.resolved.get(normalized)
            # A sum that is read anywhere else (`residual = hidden_states` in HF Llama) is the
            # un-normalized stream of a pre-norm block, not a post-norm output.
            if value is None or self.reads.get(value, 0) != 1:
                return None
            normalized, via_temporary = value.expression, True
        if isinstance(normalized, ast.AugAssign) and isinstance(normalized.op, ast.Add):
            operands = [normalized.target, *added_terms(normalized.value)]
        elif isinstance(normalized, ast.BinOp) and isinstance(normalized.op, ast.Add):
            operands = added_terms(normalized)
        else:
            return None
        for stream in operands:
            if not isinstance(stream, ast.Name) or stream.id == "self":
                continue
            source = self.resolved.get(stream)
            # A stream that is itself an un-normalized residual sum is a pre-norm chain ending in a
            # block-final norm (Conformer), not a Post-LN sublayer.
            if source is None or _is_sum(source.expression):
                continue
            for branch in operands:
                if branch is not stream and self.derives_through_sublayer(branch, source):
                    label = dotted_name(norm_call.func) or "norm"
                    return NormalizedResidualSum(norm_call, label, normalized, stream, branch, via_temporary)
        return None


def added_terms(expression: ast.expr) -> list[ast.expr]:
    """`a + b + c` -> [a, b, c] (any nesting of `+`)."""
    terms: list[ast.expr] = []
    stack = [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            stack.append(node.right)
            stack.append(node.left)
        else:
            terms.append(node)
    return terms


def _is_sum(expression: ast.AST | None) -> bool:
    if isinstance(expression, ast.AugAssign):
        return isinstance(expression.op, ast.Add)
    return isinstance(expression, ast.BinOp) and isinstance(expression.op, ast.Add)


def _stored_names(node: ast.AST) -> set[str]:
    names = set()
    for child in walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            names.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
    return names


def _name_parts(name: str) -> list[str]:
    return [part for part in name.lower().split("_") if part]


@lru_cache(maxsize=4096)
def _decide_by_names(constructor: str | None, attribute: str) -> bool:
    """A norm by the class that built it, else by the names: the same pairs recur in every block."""
    if constructor is None:
        return is_norm_name(attribute)
    if constructor[:1].isupper():
        return is_norm_class(constructor)
    return is_norm_name(constructor) or is_norm_name(attribute)


def is_norm_name(name: str) -> bool:
    """`ln_1`, `norm2`, `input_layernorm`, `LayerNorm`, `ffn_norm`, `norm_layer`."""
    return any(_NORM_NAME_PART.fullmatch(part) for part in _name_parts(name))


def is_norm_class(name: str) -> bool:
    """LayerNorm/RMSNorm classes: `LayerNorm`, `RMSNorm`, `LlamaRMSNorm`, `FusedLayerNorm`, `LayerNorm2d`."""
    return bool(_NORM_CLASS.search(name)) and not _NOT_A_LAYER_NORM.search(name)


_NORM, _CUT, _SUBLAYER, _TRANSPARENT = "norm", "cut", "sublayer", "transparent"


def _self_attribute_root(func: ast.AST) -> str | None:
    """`self.attn` -> `attn`; `self.layers[i]` -> `layers`; `self.attn.forward` -> `attn`."""
    attribute = None
    node = func
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if isinstance(node, ast.Attribute):
            attribute = node.attr
            node = node.value
        else:
            node = node.func if isinstance(node, ast.Call) else node.value
    if isinstance(node, ast.Name) and node.id == "self":
        return attribute
    return None


class ResidualFacts:
    def __init__(self, document):
        self._document = document
        self._flows: dict[int, ForwardFlow | None] = {}
        self._norm_attributes: dict[tuple[int, str], bool] = {}

    # ---- norms -------------------------------------------------------------------------
    def norm_label(self, module: ModuleClass, call: ast.Call) -> str | None:
        """How the source names the LayerNorm/RMSNorm this call applies, or None if it is not one.

        `self.<attr>(...)` is a norm when the class that built it is one (`nn.LayerNorm`,
        `LlamaRMSNorm`); only when that class is unknown (a factory such as `norm_layer(dim)`, a
        conditional, an inherited attribute) do the attribute's and factory's names decide.
        """
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
            return f"self.{func.attr}" if self.is_norm_attribute(module, func.attr) else None
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        # Resolve the import only for a norm's own name, or a bare name imported under an alias.
        if name in _FUNCTIONAL_NORM_NAMES or (isinstance(func, ast.Name) and name in self._document.imports.aliases):
            qualified = self._document.qualified_name(func)
            if qualified in _FUNCTIONAL_NORMS:
                return dotted_name(func)
        return None

    def is_norm_attribute(self, module: ModuleClass, attribute: str) -> bool:
        key = (id(module.node), attribute)
        known = self._norm_attributes.get(key)
        if known is None:
            known = self._norm_attributes[key] = self._decide_norm_attribute(module, attribute)
        return known

    def _decide_norm_attribute(self, module: ModuleClass, attribute: str) -> bool:
        constructor = self._document.modules.constructor_name(module, attribute)
        return _decide_by_names(None if constructor is None else constructor.rsplit(".", 1)[-1], attribute)

    def call_kind(self, module: ModuleClass, call: ast.Call) -> str:
        if self.norm_label(module, call) is not None:
            return _NORM
        func = call.func
        attribute = _self_attribute_root(func)
        if attribute is not None:
            if _EMBEDDING_NAME.search(attribute.lower()):
                return _CUT
            constructor = self._document.modules.constructor_name(module, attribute)
            last = constructor.rsplit(".", 1)[-1] if constructor else ""
            if "Embedding" in last:
                return _CUT
            if _PARAMETER_FREE_CLASS.search(last) or (not last[:1].isupper() and _PARAMETER_FREE_NAME.fullmatch(attribute.lower())):
                return _TRANSPARENT
            return _SUBLAYER
        if isinstance(func, ast.Attribute) and func.attr in _SHAPE_METHODS:
            return _CUT
        qualified = self._document.qualified_name(func)
        if qualified is not None:
            return _CUT if qualified in _SHAPE_FUNCTIONS else _TRANSPARENT
        if isinstance(func, ast.Name):
            if func.id in _SHAPE_FUNCTIONS:
                return _CUT
            if _EMBEDDING_NAME.search(func.id.lower()):
                return _CUT
            if func.id in _BUILTIN_NAMES:
                return _TRANSPARENT
            return _SUBLAYER  # a loop variable or local callable: `for layer in self.layers: layer(x)`
        return _TRANSPARENT

    def names_stored_in(self, statement: ast.stmt) -> set[str]:
        """Names a statement assigns, read off the shared index (sorted by position), not re-walked."""
        index = self._document.index
        first, last = statement.lineno, statement.end_lineno or statement.lineno
        stored = {name.id for name in index.starting_on_lines(ast.Name, first, last) if type(name.ctx) is ast.Store}
        for kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            # Definitions nested in the statement: those starting after its first line.
            stored.update(definition.name for definition in index.starting_on_lines(kind, first + 1, last))
        return stored

    # ---- forwards ----------------------------------------------------------------------
    def forward_flow(self, module: ModuleClass) -> ForwardFlow | None:
        key = id(module.node)
        if key not in self._flows:
            self._flows[key] = ForwardFlow(self, module, module.forward) if module.forward is not None else None
        return self._flows[key]

    def normalized_residual_sums(self, module: ModuleClass) -> list[NormalizedResidualSum]:
        """Norms in `module.forward` applied to `stream + sublayer(stream)`, in source order."""
        candidates = self._norms_of_sums_or_names(module)
        if not candidates:
            return []  # most forwards: no need to follow values at all
        flow = self.forward_flow(module)
        found = (flow.residual_sum(call) for call in candidates)
        return [item for item in found if item is not None]

    def _norms_of_sums_or_names(self, module: ModuleClass) -> list[ast.Call]:
        """Norm calls in the forward whose input is written as a sum or a name, in source order."""
        forward = module.forward
        if forward is None:
            return []
        candidates = []
        for call in self._document.index.starting_on_lines(ast.Call, forward.lineno, forward.end_lineno or forward.lineno):
            normalized = call.args[0] if call.args else None
            if normalized is None and call.keywords:
                normalized = next((k.value for k in call.keywords if k.arg in _INPUT_KEYWORDS), None)
            if type(normalized) is ast.Name or (type(normalized) is ast.BinOp and type(normalized.op) is ast.Add):
                if self.norm_label(module, call) is not None:
                    candidates.append(call)
        return candidates

    # ---- depth ---------------------------------------------------------------------------
    @cached_property
    def _instantiations(self) -> dict[str, list[ast.Call]]:
        calls_by_name = self._document.index.calls_by_name
        found: dict[str, list[ast.Call]] = {}
        for name in self._document.modules.by_name:
            built = [call for call in calls_by_name.get(name, ()) if call.func.__class__ is ast.Name]
            if built:
                found[name] = built
        return found

    @cached_property
    def _module_constants(self) -> dict[str, int]:
        constants: dict[str, int] = {}
        for statement in self._document.tree.body:
            if (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
                and _is_int(statement.value)
            ):
                constants[statement.targets[0].id] = statement.value.value
        return constants

    def stack_depth(self, class_name: str) -> int | None:
        """How many copies of this module a file stacks, when every place that builds it says so
        statically: `nn.ModuleList([Block(...) for _ in range(6)])`, or `range(n_layer)` with a
        literal default `n_layer: int = 6` or a module constant. None when unknown."""
        sites = self._instantiations.get(class_name)
        if not sites:
            return None
        depths = [self._repeat_count(call) for call in sites]
        if any(depth is None for depth in depths):
            return None
        return max(depths)

    def _repeat_count(self, call: ast.Call) -> int | None:
        comprehension = self._document.index.parent(call)
        if isinstance(comprehension, ast.Assign):
            return self._torch_stack_count(call, comprehension)
        if not isinstance(comprehension, (ast.ListComp, ast.GeneratorExp)) or comprehension.elt is not call:
            return None
        if len(comprehension.generators) != 1:
            return None
        iterable = comprehension.generators[0].iter
        if not (
            isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Name)
            and iterable.func.id == "range"
            and not iterable.keywords
            and 1 <= len(iterable.args) <= 2
        ):
            return None
        start = 0
        if len(iterable.args) == 2:
            if not _is_int(iterable.args[0]):
                return None
            start = iterable.args[0].value
        stop = self._integer(iterable.args[-1], comprehension)
        return None if stop is None else max(stop - start, 0)

    def _torch_stack_count(self, call: ast.Call, assignment: ast.Assign) -> int | None:
        """`layer = Block(...)` then `nn.TransformerDecoder(layer, num_layers=n)` in the same function."""
        if len(assignment.targets) != 1 or not isinstance(assignment.targets[0], ast.Name):
            return None
        name = assignment.targets[0].id
        index = self._document.index
        scope = index.enclosing_function(call)
        for stack in index.calls_named("TransformerEncoder", "TransformerDecoder"):
            if index.enclosing_function(stack) is not scope:
                continue
            layer = stack.args[0] if stack.args else next(
                (k.value for k in stack.keywords if k.arg in ("encoder_layer", "decoder_layer")), None
            )
            if not (isinstance(layer, ast.Name) and layer.id == name):
                continue
            depth = stack.args[1] if len(stack.args) > 1 else next((k.value for k in stack.keywords if k.arg == "num_layers"), None)
            return None if depth is None else self._integer(depth, stack)
        return None

    def _integer(self, node: ast.expr, where: ast.AST) -> int | None:
        if _is_int(node):
            return node.value
        if not isinstance(node, ast.Name):
            return None
        function = self._document.index.enclosing(where, ast.FunctionDef, ast.AsyncFunctionDef)
        if function is not None:
            arguments = function.args
            positional = [*arguments.posonlyargs, *arguments.args]
            defaults = dict(zip([argument.arg for argument in positional[len(positional) - len(arguments.defaults) :]], arguments.defaults))
            defaults.update(
                (argument.arg, default)
                for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults)
                if default is not None
            )
            if node.id in defaults:
                return defaults[node.id].value if _is_int(defaults[node.id]) else None
            if any(argument.arg == node.id for argument in [*positional, *arguments.kwonlyargs]):
                return None
            local = self._local_constant(function, node.id)
            if local is not None:
                return local
        return self._module_constants.get(node.id)

    def _local_constant(self, function: ast.AST, name: str) -> int | None:
        """`n = 1` when that is the function's only binding of `n` (no augmented or loop rebinding)."""
        index = self._document.index
        bindings = [
            node
            for node in index.nodes(ast.Name)
            if node.id == name and type(node.ctx) is ast.Store and index.enclosing_function(node) is function
        ]
        if len(bindings) != 1:
            return None
        statement = index.parent(bindings[0])
        if isinstance(statement, ast.Assign) and statement.targets == [bindings[0]] and _is_int(statement.value):
            return statement.value.value
        return None



def _is_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int
