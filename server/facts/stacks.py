"""What a model is assembled from: named submodules, stacks of repeated blocks, pre-norm blocks.

The rules about a whole model (final norm, tied head, residual init, position tables) ask the same
questions: which submodule does `self.transformer.wte` name, which `nn.ModuleList` repeats which
block class and how many times, does that block normalize its sublayer inputs and leave the
residual stream un-normalized, and is an integer (a table size, a layer count) known statically.
They are answered here from the shared index and the module and residual facts, lazily and
only for the classes a rule asks about.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cached_property

from llmarch_lsp.facts.config_values import UNKNOWN as _UNKNOWN
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import ModuleClass, dotted_name
from llmarch_lsp.facts.residuals import ForwardFlow, Value, added_terms

_MODULE_DICT = "torch.nn.ModuleDict"
_CONTAINERS = ("torch.nn.ModuleList", "torch.nn.Sequential")
_SHAPE_ATTRIBUTES = {"shape", "device", "dtype", "ndim"}
# Hugging Face classes get tying, init and config handling from their base classes.
_HUGGING_FACE_BASE = re.compile(r"PreTrainedModel$|PretrainedModel$|GenerationMixin$")
_MAX_RESOLUTION_DEPTH = 6


@dataclass(frozen=True)
class Submodule:
    """`self.<path> = <call>`, where a path may pass through `nn.ModuleDict(dict(...))`."""

    path: str  # `lm_head`, `transformer.wte`
    call: ast.Call  # the constructor call
    statement: ast.stmt  # the `self.x = ...` statement that builds it
    unconditional: bool  # the statement sits directly in a method body, not under an `if`/loop

    @property
    def reference(self) -> str:
        return f"self.{self.path}"

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class BlockStack:
    """`nn.ModuleList([Block(...) for _ in range(n)])` or `nn.Sequential(*[...])` in a model."""

    submodule: Submodule
    block_call: ast.Call  # `Block(config)` inside the container
    block: ModuleClass | None  # the block's class when this file defines it
    depth: ast.expr | None  # `config.n_layer` in `range(config.n_layer)`
    comprehension_names: frozenset[str]  # names bound by the comprehension, unusable outside it


class StackFacts:
    def __init__(self, document):
        self._document = document
        self._submodules: dict[int, dict[str, Submodule]] = {}
        self._stacks: dict[int, list[BlockStack]] = {}
        self._pre_norm: dict[int, ast.Call | None] = {}
        self._constructors: dict[ast.Call, str] = {}

    # ---- submodules ------------------------------------------------------------------------
    def constructor(self, call: ast.Call) -> str:
        """`torch.nn.Linear` for `nn.Linear(...)`; the bare name for a local class or factory."""
        known = self._constructors.get(call)
        if known is None:
            known = self._constructors[call] = self._document.qualified_name(call.func) or dotted_name(call.func) or ""
        return known

    def submodules(self, module: ModuleClass) -> dict[str, Submodule]:
        key = id(module.node)
        found = self._submodules.get(key)
        if found is None:
            found = self._submodules[key] = self._collect_submodules(module)
        return found

    def _collect_submodules(self, module: ModuleClass) -> dict[str, Submodule]:
        index = self._document.index
        found: dict[str, Submodule] = {}
        for attribute, call in module.submodules.items():
            statement = index.parent(call)
            if not isinstance(statement, (ast.Assign, ast.AnnAssign)):
                continue
            unconditional = isinstance(index.parent(statement), (ast.FunctionDef, ast.AsyncFunctionDef))
            self._add_submodule(found, attribute, call, statement, unconditional)
        return found

    def _add_submodule(self, found, path: str, call: ast.Call, statement: ast.stmt, unconditional: bool) -> None:
        found[path] = Submodule(path, call, statement, unconditional)
        if self.constructor(call) != _MODULE_DICT or len(call.args) != 1:
            return
        entries = call.args[0]
        pairs: list[tuple[str, ast.expr]] = []
        if isinstance(entries, ast.Call) and isinstance(entries.func, ast.Name) and entries.func.id == "dict":
            pairs = [(keyword.arg, keyword.value) for keyword in entries.keywords if keyword.arg]
        elif isinstance(entries, ast.Dict):
            pairs = [
                (key.value, value)
                for key, value in zip(entries.keys, entries.values)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            ]
        for key, value in pairs:
            if isinstance(value, ast.Call):
                self._add_submodule(found, f"{path}.{key}", value, statement, unconditional)

    # ---- stacks ------------------------------------------------------------------------------
    def stacks(self, module: ModuleClass) -> list[BlockStack]:
        key = id(module.node)
        found = self._stacks.get(key)
        if found is None:
            found = self._stacks[key] = [
                stack
                for submodule in self.submodules(module).values()
                if (stack := self._stack(submodule)) is not None
            ]
        return found

    def _stack(self, submodule: Submodule) -> BlockStack | None:
        call = submodule.call
        if self.constructor(call) not in _CONTAINERS or len(call.args) != 1 or call.keywords:
            return None
        repeated = call.args[0]
        if isinstance(repeated, ast.Starred):
            repeated = repeated.value
        if not isinstance(repeated, (ast.ListComp, ast.GeneratorExp)) or len(repeated.generators) != 1:
            return None
        generator = repeated.generators[0]
        block_call = repeated.elt
        if not isinstance(block_call, ast.Call) or generator.ifs:
            return None
        iterable = generator.iter
        depth = None
        if (
            isinstance(iterable, ast.Call)
            and isinstance(iterable.func, ast.Name)
            and iterable.func.id == "range"
            and len(iterable.args) == 1
            and not iterable.keywords
        ):
            depth = iterable.args[0]
        names = frozenset(
            node.id for node in walk(generator.target) if isinstance(node, ast.Name)
        )
        block = None
        if isinstance(block_call.func, ast.Name):
            block = self._document.modules.by_name.get(block_call.func.id)
        return BlockStack(submodule, block_call, block, depth, names)

    # ---- pre-norm blocks -----------------------------------------------------------------------
    def pre_norm_input(self, block: ModuleClass) -> ast.Call | None:
        """The norm call a pre-norm block applies to a sublayer's input (`self.ln_1(x)` in
        `x = x + self.attn(self.ln_1(x))`), when the block also leaves its output un-normalized:
        no post-norm sum, and no norm applied to what it returns. None otherwise."""
        key = id(block.node)
        if key not in self._pre_norm:
            self._pre_norm[key] = self._find_pre_norm_input(block)
        return self._pre_norm[key]

    def _find_pre_norm_input(self, block: ModuleClass) -> ast.Call | None:
        forward = block.forward
        if forward is None:
            return None
        residuals = self._document.residuals
        adds = [
            node
            for node in self.nodes_in(forward, ast.BinOp, ast.AugAssign)
            if isinstance(node.op, ast.Add)
        ]
        if not adds or residuals.normalized_residual_sums(block):
            return None
        flow = residuals.forward_flow(block)
        found = None
        for add in adds:
            operands = [add.target, *added_terms(add.value)] if isinstance(add, ast.AugAssign) else added_terms(add)
            for stream in operands:
                source = flow.resolved.get(stream) if isinstance(stream, ast.Name) else None
                if source is None:
                    continue
                for branch in operands:
                    if branch is not stream:
                        found = found or self._norm_before_sublayer(flow, branch, source)
            if found is not None:
                break
        if found is None or self._returns_a_norm(flow, forward):
            return None
        return found

    def _norm_before_sublayer(self, flow: ForwardFlow, branch: ast.AST, source: Value) -> ast.Call | None:
        """A norm of `source` whose output reaches `branch` through at least one sublayer."""
        residuals = self._document.residuals
        module = flow.module
        seen: set[tuple[int, bool]] = set()
        stack: list[tuple[ast.AST, bool]] = [(branch, False)]
        while stack:
            node, through_sublayer = stack.pop()
            if (id(node), through_sublayer) in seen:
                continue
            seen.add((id(node), through_sublayer))
            if isinstance(node, ast.Name):
                value = flow.resolved.get(node)
                if value is not None and value is not source and value.expression is not None:
                    stack.append((value.expression, through_sublayer))
            elif isinstance(node, ast.Call):
                kind = residuals.call_kind(module, node)
                if kind == "norm":
                    normalized = node.args[0] if node.args else None
                    if through_sublayer and normalized is not None and self._reaches(flow, normalized, source):
                        return node
                    if through_sublayer:
                        continue
                    # A norm on the branch's output (sandwich norm): look further inside.
                if kind == "cut":
                    continue
                inner = through_sublayer or kind == "sublayer"
                stack.extend((argument, inner) for argument in node.args)
                stack.extend((keyword.value, inner) for keyword in node.keywords)
                if kind != "sublayer" and isinstance(node.func, ast.Attribute):
                    stack.append((node.func.value, through_sublayer))
            elif isinstance(node, ast.AugAssign):
                stack.append((node.target, through_sublayer))
                stack.append((node.value, through_sublayer))
            elif isinstance(node, ast.Attribute):
                if node.attr not in _SHAPE_ATTRIBUTES:
                    stack.append((node.value, through_sublayer))
            elif isinstance(node, ast.Subscript):
                stack.append((node.value, through_sublayer))
            elif isinstance(node, (ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Tuple, ast.List, ast.Starred)):
                stack.extend((child, through_sublayer) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
        return None

    def _reaches(self, flow: ForwardFlow, expression: ast.AST, source: Value) -> bool:
        """Whether `expression` is `source` itself, up to renaming, casts and reshapes."""
        residuals = self._document.residuals
        stack = [expression]
        seen: set[int] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, ast.Name):
                value = flow.resolved.get(node)
                if value is source:
                    return True
                if value is not None and value.expression is not None:
                    stack.append(value.expression)
            elif isinstance(node, ast.Call):
                if residuals.call_kind(flow.module, node) == "transparent":
                    if isinstance(node.func, ast.Attribute):
                        stack.append(node.func.value)
                    stack.extend(node.args)
            elif isinstance(node, (ast.Attribute, ast.Subscript)):
                stack.append(node.value)
        return False

    def _returns_a_norm(self, flow: ForwardFlow, forward: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        residuals = self._document.residuals
        for returned in self.nodes_in(forward, ast.Return):
            value = returned.value
            if isinstance(value, ast.Name):
                bound = flow.resolved.get(value)
                value = bound.expression if bound is not None else None
            if isinstance(value, ast.Call) and residuals.call_kind(flow.module, value) == "norm":
                return True
        return False

    # ---- positions in the shared index ----------------------------------------------------------
    def nodes_in(self, scope: ast.AST, *types: type) -> list[ast.AST]:
        """Nodes of these types inside `scope`, read off the shared index (no walk of the tree)."""
        first, last = scope.lineno, scope.end_lineno or scope.lineno
        start_key = (first, scope.col_offset)
        end_key = (last, scope.end_col_offset if scope.end_col_offset is not None else 1 << 30)
        found = []
        for kind in types:
            # The lines by bisection, then each node's own position (a line can hold more).
            found.extend(
                node
                for node in self._document.index.starting_on_lines(kind, first, last)
                if start_key <= (node.lineno, node.col_offset) and _end(node) <= end_key
            )
        if len(types) > 1:
            found.sort(key=lambda node: (node.lineno, node.col_offset))
        return found

    # ---- text -------------------------------------------------------------------------------------
    @cached_property
    def outside_classes(self) -> str:
        """The file's code outside every class (imports, build scripts, module-level functions):
        where a model's tying or init may be written besides its own class."""
        return "\n".join(
            self._document.segment(statement)
            for statement in self._document.tree.body
            if not isinstance(statement, ast.ClassDef)
        )

    # ---- Hugging Face ------------------------------------------------------------------------------
    def is_hugging_face_model(self, module: ModuleClass) -> bool:
        """Subclasses `PreTrainedModel` (or another class of this file that does)."""
        seen: set[str] = set()
        pending = [module.node]
        while pending:
            node = pending.pop()
            for base in node.bases:
                name = (self._document.qualified_name(base) or dotted_name(base) or "").rsplit(".", 1)[-1]
                if _HUGGING_FACE_BASE.search(name):
                    return True
                local = self._document.modules.by_name.get(name)
                if local is not None and name not in seen:
                    seen.add(name)
                    pending.append(local.node)
        return False

    # ---- statically known integers -------------------------------------------------------------
    def static_int(self, expression: ast.AST, where: ast.AST, depth: int = 0) -> int | None:
        """The value of an integer expression when this file fixes it, evaluated by the shared
        config values: literals and arithmetic, module constants (unless the module rewrites its
        globals), a default argument of the enclosing `__init__` that no call in this file
        overrides, `self.x` set once in the same class from one of those, and `config.x` where one
        config class of this file without base classes (a `@dataclass` or plain namespace) gives
        `x` a default that no call or assignment in this file changes. A config that inherits (a
        Hugging Face config, or one config extending another) may get its values from elsewhere."""
        if depth > _MAX_RESOLUTION_DEPTH:
            return None
        values = self._document.config_values
        function = self._document.index.enclosing(where, ast.FunctionDef, ast.AsyncFunctionDef)
        value = values.evaluate(
            expression,
            lambda name: self._name_value(name, function),
            lambda attribute: self._attribute_value(attribute, where, depth),
        )
        return value if type(value) is int else None

    def _name_value(self, name: str, function: ast.FunctionDef | ast.AsyncFunctionDef | None):
        values = self._document.config_values
        if function is not None:
            arguments = function.args
            if any(argument.arg == name for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)):
                known = values.parameters(function).get(name)
                if known is None or self._overridden(function, name):
                    return _UNKNOWN
                return known.value
            if any(node.id == name for node in self._stored_names(function)):
                return _UNKNOWN  # a local variable: its value depends on the code before the use
        if values.module.overridden_by is not None:
            return _UNKNOWN  # `exec(open("configurator.py").read())`: globals are only defaults
        known = values.module.get(name)
        return known.value if known is not None else _UNKNOWN

    def _attribute_value(self, node: ast.Attribute, where: ast.AST, depth: int):
        owner = dotted_name(node.value)
        if owner == "self":
            value = self._self_attribute_value(node.attr, where, depth)
        # `config.x` or `self.config.x`; a longer chain names some other object's config.
        elif owner is not None and owner.count(".") <= (1 if owner.startswith("self.") else 0):
            value = self._config_default(node.attr)
        else:
            value = None
        return _UNKNOWN if value is None else value

    def _self_attribute_value(self, attribute: str, where: ast.AST, depth: int) -> int | None:
        owner = self._document.index.enclosing(where, ast.ClassDef)
        if owner is None:
            return None
        values = [
            statement.value
            for statement in self.nodes_in(owner, ast.Assign)
            if any(
                isinstance(target, ast.Attribute) and target.attr == attribute and dotted_name(target.value) == "self"
                for target in statement.targets
            )
        ]
        if len(values) != 1:
            return None
        return self.static_int(values[0], values[0], depth + 1)

    def _stored_names(self, function: ast.AST) -> list[ast.Name]:
        return [node for node in self.nodes_in(function, ast.Name) if isinstance(node.ctx, ast.Store)]

    def _overridden(self, function: ast.AST, parameter: str) -> bool:
        """Whether a call in this file passes `parameter` to the class whose `__init__` this is."""
        owner = self._document.index.parent(function)
        if not isinstance(owner, ast.ClassDef) or function.name != "__init__":
            return True  # a plain function: its callers decide, and we cannot tell which
        positional = [argument.arg for argument in [*function.args.posonlyargs, *function.args.args]][1:]
        position = positional.index(parameter) if parameter in positional else None
        for call in self._calls_by_callee_name.get(owner.name, ()):
            if any(keyword.arg == parameter or keyword.arg is None for keyword in call.keywords):
                return True
            if any(isinstance(argument, ast.Starred) for argument in call.args):
                return True
            if position is not None and len(call.args) > position:
                return True
        return False

    @cached_property
    def _calls_by_callee_name(self) -> dict[str, list[ast.Call]]:
        found: dict[str, list[ast.Call]] = {}
        for call in self._document.index.calls:
            func = call.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name is not None:
                found.setdefault(name, []).append(call)
        return found

    def _config_default(self, attribute: str) -> int | None:
        scopes = [scope for scope in self._plain_config_scopes if attribute in scope.names]
        if len(scopes) != 1 or self._config_changed(attribute):
            return None
        known = scopes[0].get(attribute)
        return known.value if known is not None and type(known.value) is int else None

    @cached_property
    def _plain_config_scopes(self) -> list:
        """Field defaults of classes with no base class that are not modules: the config classes
        whose defaults are the file's own."""
        modules = {id(module.node) for module in self._document.modules.classes}
        return [
            scope
            for class_node, scope in self._document.config_values.classes.items()
            if id(class_node) not in modules
            and not class_node.keywords
            and all(dotted_name(base) == "object" for base in class_node.bases)
        ]

    def _config_changed(self, attribute: str) -> bool:
        """A keyword `attribute=` in a call, or an assignment `<x>.attribute = ...`, anywhere."""
        if re.search(rf"\b{re.escape(attribute)}\s*=(?!=)", self._document.source) is None:
            return False
        if any(keyword.arg == attribute for call in self._document.index.calls for keyword in call.keywords):
            return True
        return any(
            isinstance(target, ast.Attribute) and target.attr == attribute
            for statement in self._document.index.nodes(ast.Assign)
            for target in statement.targets
        )



def _end(node: ast.AST) -> tuple[int, int]:
    return (node.end_lineno or node.lineno, node.end_col_offset or 0)
