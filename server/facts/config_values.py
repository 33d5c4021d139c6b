"""Hyperparameters whose values the file pins down: model sizes, head counts, token budgets.

A *scope* is one place that gives names values:

- the module's globals (`n_layer = 12`, `tokens = batch_size * block_size`), each bound exactly once
  at module level and never declared `global` in a function;
- a class body's fields (`n_head: int = 12`, `field(default=12)`), unless a method reassigns
  `self.<field>` (a `__post_init__` that derives it);
- a function's parameter defaults (`def __init__(self, hidden_size=768, num_attention_heads=12)`),
  unless the body rebinds the parameter (`if num_key_value_heads is None: num_key_value_heads = ...`);
- one call's arguments (`GPTConfig(n_embd=768, n_head=12)`), keyword or positional, completed with
  the callee's defaults when the callee is a class defined in the file (or a known torch module).

Values are numbers, strings or None, from literals and simple arithmetic (`+ - * / // % **`, `int`,
`min`, `max`) over other known names. `config.n_head` and `self.config.n_head` resolve to the
default of the one config class in the file that declares `n_head`. Anything else is unknown, and
rules that need it stay silent.

A module that rewrites its own globals at run time (nanoGPT's `exec(open("configurator.py").read())`,
`globals().update(...)`) records where it does so in `ValueScope.overridden_by`: its values are
defaults, not the run's settings.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from functools import cached_property

from llmarch_lsp.facts.index import walk

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_REDUCERS = {"min": min, "max": max}
_CONVERTERS = {"int": int, "float": float}
_MAX_DEPTH = 16

# Class names that hold settings; `config.<field>` may resolve to their defaults.
_CONFIG_CLASS_SUFFIXES = ("Config", "Configuration", "Args", "Arguments", "Hparams", "HParams", "Settings", "Params")
# What a config object is usually called where it is read.
_CONFIG_OBJECT_NAMES = {"config", "cfg", "conf", "model_config", "model_args", "args", "params", "hparams"}



@dataclass(frozen=True)
class Signature:
    positional: tuple[str, ...]  # parameters that take positional arguments, without `self`
    names: frozenset[str]  # every parameter (or dataclass field)
    defaults: dict  # name -> KnownValue, or a plain value for torch's own signatures


# The leading parameters of torch modules that take a width and a head count.
TORCH_SIGNATURES: dict[str, Signature] = {
    "torch.nn.MultiheadAttention": Signature(("embed_dim", "num_heads"), frozenset({"embed_dim", "num_heads", "kdim", "vdim"}), {}),
    "torch.nn.TransformerEncoderLayer": Signature(("d_model", "nhead"), frozenset({"d_model", "nhead"}), {}),
    "torch.nn.TransformerDecoderLayer": Signature(("d_model", "nhead"), frozenset({"d_model", "nhead"}), {}),
    "torch.nn.Transformer": Signature(("d_model", "nhead"), frozenset({"d_model", "nhead"}), {"d_model": 512, "nhead": 8}),
}


class _Unknown:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class KnownValue:
    """`name` is `value`, set at `node` (a statement, a parameter default, a call argument)."""

    name: str
    value: int | float | str | None
    node: ast.AST
    # "constant" (module global), "field" (class body), "parameter" (a default), "argument" (passed
    # at a call), "config" (passed at a call as `config.<field>`, that field's default), "default"
    # (the callee's default, filled in at a call).
    origin: str

    @property
    def is_positive_int(self) -> bool:
        return isinstance(self.value, int) and not isinstance(self.value, bool) and self.value > 0


@dataclass
class ValueScope:
    kind: str  # "module" | "class" | "parameters" | "call"
    owner: ast.AST
    label: str
    values: dict[str, KnownValue] = field(default_factory=dict)
    # Every name the scope declares, known or not: a rule can tell "absent" from "unknown".
    names: set[str] = field(default_factory=set)
    overridden_by: ast.AST | None = None

    def get(self, name: str) -> KnownValue | None:
        return self.values.get(name)


class ConfigValues:
    """Read as `document.config_values`."""

    def __init__(self, document):
        self._document = document
        self._index = document.index
        self._parameter_scopes: dict[int, ValueScope] = {}
        self._local_constants: dict[int, dict[str, ast.stmt | None]] = {}
        self._resolving: set[tuple[int, str]] = set()
        self._signatures: dict[ast.ClassDef, Signature | None] = {}

    # ---- module globals -------------------------------------------------------------
    @cached_property
    def module(self) -> ValueScope:
        tree = self._document.tree
        scope = ValueScope("module", tree, "module")
        bindings: dict[str, list[tuple[ast.stmt, ast.expr | None]]] = {}
        for statement in _module_level_statements(tree.body):
            for name, value in _bindings(statement):
                bindings.setdefault(name, []).append((statement, value))
            if scope.overridden_by is None and _rewrites_globals(statement):
                scope.overridden_by = statement
        for declaration in self._index.by_type.get(ast.Global, ()):
            for name in declaration.names:
                bindings.setdefault(name, []).append((declaration, None))
        scope.names = set(bindings)
        single = {name: found[0] for name, found in bindings.items() if len(found) == 1 and found[0][1] is not None}
        environment = _LazyEnvironment(single, self._evaluate_with)
        for name, (statement, _) in single.items():
            value = environment.lookup(name)
            if value is not UNKNOWN:
                scope.values[name] = KnownValue(name, value, statement, "constant")
        return scope

    # ---- class bodies ---------------------------------------------------------------
    @cached_property
    def classes(self) -> dict[ast.ClassDef, ValueScope]:
        found: dict[ast.ClassDef, ValueScope] = {}
        for class_node in self._index.classes:
            scope = ValueScope("class", class_node, class_node.name)
            local: dict[str, object] = {}
            for statement in class_node.body:
                for name, value in _bindings(statement, fields=True):
                    scope.names.add(name)
                    if value is None:
                        local[name] = UNKNOWN
                        continue
                    evaluated = self.evaluate(_field_default(value), lambda key: local.get(key, self._module_value(key)))
                    only_when_none = self._self_attributes_assigned_in_methods.get(class_node, {}).get(name)
                    if only_when_none is False or (only_when_none and evaluated is None):
                        evaluated = UNKNOWN  # a method overwrites it (`__post_init__`)
                    local[name] = evaluated
                    if evaluated is not UNKNOWN:
                        scope.values[name] = KnownValue(name, evaluated, statement, "field")
                    else:
                        scope.values.pop(name, None)
            if scope.names:
                found[class_node] = scope
        return found

    @cached_property
    def classes_by_name(self) -> dict[str, ast.ClassDef]:
        """Classes whose name is defined once in the file."""
        counts: dict[str, list[ast.ClassDef]] = {}
        for class_node in self._index.classes:
            counts.setdefault(class_node.name, []).append(class_node)
        return {name: nodes[0] for name, nodes in counts.items() if len(nodes) == 1}

    def attributes_set_in_methods(self, class_node: ast.ClassDef) -> set[str]:
        """`self.<name>` assigned anywhere in the class's methods."""
        return set(self._self_attributes_assigned_in_methods.get(class_node, {}))

    @cached_property
    def _self_attributes_assigned_in_methods(self) -> dict[ast.ClassDef, dict[str, bool]]:
        """Per class, `self.<name>` stores in methods: True when every store only fills in a None
        (`if self.n_query_groups is None: self.n_query_groups = self.n_head`)."""
        found: dict[ast.ClassDef, dict[str, bool]] = {}
        for node in self._index.by_type.get(ast.Attribute, ()):
            if not isinstance(node.ctx, ast.Store) or not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                continue
            owner = self._index.enclosing(node, ast.ClassDef)
            if owner is not None:
                per_class = found.setdefault(owner, {})
                guarded = _fills_in_none(self._index, node, lambda test: _is_self_attribute_named(test, node.attr))
                per_class[node.attr] = per_class.get(node.attr, True) and guarded
        return found

    # ---- parameter defaults ---------------------------------------------------------
    def parameters(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> ValueScope:
        """Defaults of `function`'s parameters that its body never rebinds."""
        cached = self._parameter_scopes.get(id(function))
        if cached is not None:
            return cached
        owner = self._index.parent(function)
        label = f"{owner.name}.{function.name}" if isinstance(owner, ast.ClassDef) else function.name
        scope = ValueScope("parameters", function, label)
        arguments = function.args
        positional = [*arguments.posonlyargs, *arguments.args]
        pairs = list(zip(positional[len(positional) - len(arguments.defaults) :], arguments.defaults))
        pairs += [(argument, default) for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults) if default is not None]
        scope.names = {argument.arg for argument in (*positional, *arguments.kwonlyargs)}
        rebound = _rebound_names(self._index, function) if pairs else {}
        for argument, default in pairs:
            value = self.evaluate(default, self._module_value)
            only_when_none = rebound.get(argument.arg)
            if only_when_none is False or (only_when_none and value is None):
                continue  # the body rebinds it
            if value is not UNKNOWN:
                scope.values[argument.arg] = KnownValue(argument.arg, value, _ParameterDefault(argument, default), "parameter")
        self._parameter_scopes[id(function)] = scope
        return scope

    # ---- call sites -----------------------------------------------------------------
    def call(self, call: ast.Call, wanted=None) -> ValueScope | None:
        """What a call passes, by the callee's parameter names, plus the callee's defaults.

        Positional arguments need a callee whose signature is known (a class in this file or a torch
        module); keywords are always named. None when the call unpacks `*args` or `**kwargs`.
        `wanted(name)`, when given, limits which arguments are evaluated (the others stay unknown).
        """
        if any(isinstance(argument, ast.Starred) for argument in call.args) or any(k.arg is None for k in call.keywords):
            return None
        signature = self.signature(call)
        scope = ValueScope("call", call, _dotted(call.func) or "call")
        if signature is not None:
            if len(call.args) > len(signature.positional):
                return None
            scope.names.update(signature.names)
            for name, default in signature.defaults.items():
                if isinstance(default, KnownValue):
                    scope.values[name] = KnownValue(name, default.value, default.node, "default")
                elif default is not UNKNOWN:
                    scope.values[name] = KnownValue(name, default, call, "default")
            pairs = list(zip(signature.positional, call.args))
        else:
            pairs = []  # positional arguments of an unknown signature name nothing
        pairs += [(keyword.arg, keyword) for keyword in call.keywords]
        for name, node in pairs:
            scope.names.add(name)
            if wanted is not None and not wanted(name):
                scope.values.pop(name, None)
                continue
            expression = node.value if isinstance(node, ast.keyword) else node
            value = self.value_at(expression)
            if value is UNKNOWN:
                scope.values.pop(name, None)
            else:
                # `config.n_head` passes the config class's default on: "config", not written here.
                through_config = any(isinstance(part, ast.Attribute) for part in walk(expression))
                scope.values[name] = KnownValue(name, value, node, "config" if through_config else "argument")
        return scope

    def signature(self, call: ast.Call) -> Signature | None:
        """The parameters and known defaults of what `call` constructs, when the file shows them."""
        qualified = self._document.qualified_name(call.func)
        if qualified in TORCH_SIGNATURES:
            return TORCH_SIGNATURES[qualified]
        if not isinstance(call.func, ast.Name):
            return None
        class_node = self.classes_by_name.get(call.func.id)
        if class_node is None or self._document.imports.aliases.get(call.func.id):
            return None
        if class_node not in self._signatures:
            self._signatures[class_node] = self._class_signature(class_node)
        return self._signatures[class_node]

    def _class_signature(self, class_node: ast.ClassDef) -> Signature | None:
        initializer = next(
            (item for item in class_node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "__init__"),
            None,
        )
        if initializer is not None:
            arguments = initializer.args
            if arguments.vararg is not None:
                return None
            positional = tuple(argument.arg for argument in (*arguments.posonlyargs, *arguments.args))[1:]
            scope = self.parameters(initializer)
            return Signature(positional, frozenset(scope.names) - {"self"}, dict(scope.values))
        if not _is_dataclass(class_node):
            return None
        fields = self.classes.get(class_node)
        if fields is None:
            return None
        ordered = tuple(
            statement.target.id
            for statement in class_node.body
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and not _is_class_var(statement)
        )
        # Inherited fields come first in a subclass's __init__: only keywords can be placed then.
        positional = () if class_node.bases else ordered
        return Signature(positional, frozenset(ordered), dict(fields.values))

    # ---- values at a use ------------------------------------------------------------
    def value_at(self, expression: ast.AST):
        """The value of `expression` where it stands: literals, local and module constants, and
        `config.<field>` defaults. UNKNOWN when the file does not pin it down."""
        function = self._index.enclosing(expression, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
        return self.evaluate(expression, lambda name: self._name_value(name, function), self._attribute_value)

    def resolve(self, expression: ast.AST) -> KnownValue | None:
        """Like `value_at`, as a KnownValue set at `expression`; None when unknown."""
        value = self.value_at(expression)
        if value is UNKNOWN:
            return None
        return KnownValue(self._document.segment(expression), value, expression, "argument")

    def config_default(self, attribute: str, annotation: str | None = None) -> KnownValue | None:
        """The default of `<config>.<attribute>`: from the class named `annotation` when given, else
        from the one config-like class in the file that declares it."""
        if annotation is not None:
            class_node = self.classes_by_name.get(annotation)
            candidates = [class_node] if class_node is not None else []
        else:
            candidates = [
                class_node
                for class_node, scope in self.classes.items()
                if attribute in scope.names and (class_node.name.endswith(_CONFIG_CLASS_SUFFIXES) or _is_dataclass(class_node))
            ]
        if len(candidates) != 1:
            return None
        scope = self.classes.get(candidates[0])
        return scope.get(attribute) if scope is not None else None

    def evaluate(self, node: ast.AST | None, lookup, attribute_lookup=None, depth: int = 0):
        """The value of a constant expression; `lookup(name)` gives names' values (or UNKNOWN)."""
        if node is None or depth > _MAX_DEPTH:
            return UNKNOWN
        depth += 1
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                return UNKNOWN
            if node.value is None or isinstance(node.value, (int, float, str)):
                return node.value
            return UNKNOWN
        if isinstance(node, ast.Name):
            value = lookup(node.id)
            return UNKNOWN if value is UNKNOWN_BUILTIN else value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.evaluate(node.operand, lookup, attribute_lookup, depth)
            if not _is_number(operand):
                return UNKNOWN
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left = self.evaluate(node.left, lookup, attribute_lookup, depth)
            right = self.evaluate(node.right, lookup, attribute_lookup, depth)
            if not (_is_number(left) and _is_number(right)):
                return UNKNOWN
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
                return UNKNOWN
            try:
                return _BINARY[type(node.op)](left, right)
            except (ZeroDivisionError, OverflowError, ValueError):
                return UNKNOWN
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            arguments = [self.evaluate(argument, lookup, attribute_lookup, depth) for argument in node.args]
            if not arguments or not all(_is_number(argument) for argument in arguments):
                return UNKNOWN
            if node.func.id in _REDUCERS and lookup(node.func.id) is UNKNOWN_BUILTIN:
                return _REDUCERS[node.func.id](arguments)
            if node.func.id in _CONVERTERS and len(arguments) == 1 and lookup(node.func.id) is UNKNOWN_BUILTIN:
                try:
                    return _CONVERTERS[node.func.id](arguments[0])
                except (OverflowError, ValueError):
                    return UNKNOWN
            return UNKNOWN
        if isinstance(node, ast.Attribute) and attribute_lookup is not None:
            return attribute_lookup(node)
        return UNKNOWN

    # ---- lookups --------------------------------------------------------------------
    def _evaluate_with(self, expression, lookup):
        return self.evaluate(expression, lookup)

    def _module_value(self, name: str):
        scope = self.module
        known = scope.values.get(name)
        if known is not None:
            return known.value
        if name in scope.names:
            return UNKNOWN
        return UNKNOWN_BUILTIN if name in _REDUCERS or name in _CONVERTERS else UNKNOWN

    def _name_value(self, name: str, function):
        if isinstance(function, ast.Lambda):
            return UNKNOWN
        if function is not None:
            arguments = function.args
            if any(argument.arg == name for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)):
                return UNKNOWN  # the caller decides
            constants = self._function_constants(function)
            if name in constants:
                statement = constants[name]
                key = (id(function), name)
                if statement is None or key in self._resolving:
                    return UNKNOWN
                self._resolving.add(key)
                try:
                    value = _single_value(statement, name)
                    return self.evaluate(value, lambda inner: self._name_value(inner, function), self._attribute_value)
                finally:
                    self._resolving.discard(key)
            for enclosing in self._index.ancestors(function):
                if isinstance(enclosing, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    return UNKNOWN  # a closure: the outer function's names are not tracked
        return self._module_value(name)

    def _function_constants(self, function) -> dict[str, ast.stmt | None]:
        """Local names bound once (by a plain assignment) in `function`; None for other locals."""
        cached = self._local_constants.get(id(function))
        if cached is not None:
            return cached
        found: dict[str, list] = {}
        arguments = function.args
        for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg):
            if argument is not None:
                found.setdefault(argument.arg, []).append(None)
        for node in walk(function):
            if node is function:
                continue
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                for name, value in _bindings(node):
                    found.setdefault(name, []).append(node if value is not None else None)
            elif isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.NamedExpr, ast.comprehension)):
                for target in _store_targets(node):
                    found.setdefault(target, []).append(None)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                for name in node.names:
                    found.setdefault(name, []).append(None)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    found.setdefault((alias.asname or alias.name).split(".")[0], []).append(None)
        constants = {name: bound[0] if len(bound) == 1 else None for name, bound in found.items()}
        self._local_constants[id(function)] = constants
        return constants

    def _attribute_value(self, node: ast.Attribute):
        """`config.n_head`, `self.config.n_head`, `cfg.n_head`: the config class's default."""
        base = node.value
        annotation = None
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "self":
            name = base.attr
        elif isinstance(base, ast.Name):
            name = base.id
            annotation = self._annotation_of(base)
        else:
            return UNKNOWN
        if name not in _CONFIG_OBJECT_NAMES and annotation is None:
            return UNKNOWN
        known = self.config_default(node.attr, annotation)
        return UNKNOWN if known is None else known.value

    def _annotation_of(self, name: ast.Name) -> str | None:
        """The class a function parameter is annotated with (`config: GPTConfig`)."""
        function = self._index.enclosing_function(name)
        if function is None or isinstance(function, ast.Lambda):
            return None
        for argument in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs):
            if argument.arg == name.id and isinstance(argument.annotation, ast.Name):
                return argument.annotation.id if argument.annotation.id in self.classes_by_name else None
        return None


class _Builtin:
    pass


UNKNOWN_BUILTIN = _Builtin()


@dataclass(frozen=True)
class _ParameterDefault:
    """Where a parameter and its default are written: `n_head: int = 12` in a signature."""

    argument: ast.arg
    default: ast.expr

    @property
    def lineno(self) -> int:
        return self.argument.lineno

    @property
    def col_offset(self) -> int:
        return self.argument.col_offset

    @property
    def end_lineno(self) -> int:
        return self.default.end_lineno

    @property
    def end_col_offset(self) -> int:
        return self.default.end_col_offset


class _LazyEnvironment:
    """Module constants evaluated on demand, so order and forward references do not matter."""

    def __init__(self, bindings, evaluate):
        self._bindings = bindings
        self._evaluate = evaluate
        self._values: dict[str, object] = {}
        self._in_progress: set[str] = set()

    def lookup(self, name: str):
        if name in self._values:
            return self._values[name]
        binding = self._bindings.get(name)
        if binding is None:
            if name in _REDUCERS or name in _CONVERTERS:
                return UNKNOWN_BUILTIN
            return UNKNOWN
        if name in self._in_progress:
            return UNKNOWN
        self._in_progress.add(name)
        value = self._evaluate(binding[1], self.lookup)
        self._in_progress.discard(name)
        self._values[name] = value
        return value


# ---- helpers --------------------------------------------------------------------------

def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _module_level_statements(body: list[ast.stmt]):
    """Statements that run at module level: the body and the blocks of `if`, `for`, `try`, `with`."""
    for statement in body:
        yield statement
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for name in ("body", "orelse", "finalbody"):
            block = getattr(statement, name, None)
            if isinstance(block, list):
                yield from _module_level_statements(block)
        for handler in getattr(statement, "handlers", ()):
            yield from _module_level_statements(handler.body)
        for case in getattr(statement, "cases", ()):
            yield from _module_level_statements(case.body)


def _bindings(statement: ast.stmt, *, fields: bool = False):
    """(name, value or None when not a plain value) for each name `statement` binds."""
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            yield from _paired(target, statement.value)
    elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        if fields and _is_class_var(statement):
            yield statement.target.id, None
        else:
            yield statement.target.id, statement.value
    elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield statement.name, None
    elif isinstance(statement, (ast.Import, ast.ImportFrom)):
        for alias in statement.names:
            yield (alias.asname or alias.name).split(".")[0], None
    else:
        for name in _store_targets(statement):
            yield name, None


def _paired(target: ast.AST, value: ast.AST | None):
    if isinstance(target, ast.Name):
        yield target.id, value
    elif isinstance(target, (ast.Tuple, ast.List)):
        values = value.elts if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) else None
        for position, element in enumerate(target.elts):
            if isinstance(element, ast.Starred):
                yield from _paired(element.value, None)
            else:
                yield from _paired(element, values[position] if values is not None else None)


def _store_targets(node: ast.AST) -> list[str]:
    targets = []
    if isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor, ast.comprehension)):
        targets = [node.target]
    elif isinstance(node, ast.NamedExpr):
        targets = [node.target]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        targets = [item.optional_vars for item in node.items if item.optional_vars is not None]
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    names = []
    for target in targets:
        for part in walk(target):
            if isinstance(part, ast.Name):
                names.append(part.id)
    return names


def _single_value(statement: ast.stmt, name: str) -> ast.AST | None:
    for bound, value in _bindings(statement):
        if bound == name:
            return value
    return None


def _rewrites_globals(statement: ast.stmt) -> bool:
    """`exec(...)`, `globals().update(...)`, `globals()[k] = v` run at module level."""
    if isinstance(statement, ast.Expr):
        for part in walk(statement.value):
            if isinstance(part, ast.Call) and _is_call_to(part, "exec"):
                return True
            if (
                isinstance(part, ast.Call)
                and isinstance(part.func, ast.Attribute)
                and part.func.attr in ("update", "__setitem__", "setdefault")
                and _is_namespace_call(part.func.value)
            ):
                return True
    if isinstance(statement, ast.Assign):
        if any(_is_call_to(part, "exec") for part in walk(statement.value) if isinstance(part, ast.Call)):
            return True
        return any(isinstance(target, ast.Subscript) and _is_namespace_call(target.value) for target in statement.targets)
    return False


def _is_call_to(call: ast.Call, name: str) -> bool:
    return isinstance(call.func, ast.Name) and call.func.id == name


def _is_namespace_call(node: ast.AST) -> bool:
    """`globals()` or a bare `vars()`: the module namespace itself."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
        node.func.id == "globals" or (node.func.id == "vars" and not node.args)
    )


def _rebound_names(index, function: ast.AST) -> dict[str, bool]:
    """Names the function body rebinds: True when every rebinding only fills in a None
    (`if num_key_value_heads is None: num_key_value_heads = num_attention_heads`)."""
    names: dict[str, bool] = {}
    for node in walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            guarded = isinstance(node.ctx, ast.Store) and _fills_in_none(index, node, lambda test, name=node.id: _is_name(test, name))
            names[node.id] = names.get(node.id, True) and guarded
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(dict.fromkeys(node.names, False))
    return names


def _fills_in_none(index, target: ast.AST, is_subject) -> bool:
    """Whether the assignment to `target` sits directly in the body of `if <subject> is None:`."""
    statement = index.parent(target)
    if not isinstance(statement, ast.Assign) or len(statement.targets) != 1 or statement.targets[0] is not target:
        return False
    branch = index.parent(statement)
    if not isinstance(branch, ast.If) or not any(item is statement for item in branch.body):
        return False
    test = branch.test
    return (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Is)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
        and is_subject(test.left)
    )


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_self_attribute_named(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == name and _is_name(node.value, "self")


def _field_default(value: ast.AST) -> ast.AST | None:
    """`field(default=12)` -> `12`; other values unchanged."""
    if isinstance(value, ast.Call):
        name = value.func.attr if isinstance(value.func, ast.Attribute) else getattr(value.func, "id", None)
        if name == "field":
            return next((keyword.value for keyword in value.keywords if keyword.arg == "default"), None)
    return value


def _is_class_var(statement: ast.AnnAssign) -> bool:
    annotation = statement.annotation
    if isinstance(annotation, ast.Subscript):
        annotation = annotation.value
    name = annotation.attr if isinstance(annotation, ast.Attribute) else getattr(annotation, "id", None)
    return name == "ClassVar"


def _is_dataclass(class_node: ast.ClassDef) -> bool:
    for decorator in class_node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if name in ("dataclass", "define", "frozen", "attrs", "struct"):
            return True
    return False
