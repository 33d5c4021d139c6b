"""Evaluation facts: where a model is switched to eval or train mode, where autograd is off, and
which loops run a training step.

Rules read them as `document.evaluation`. Everything starts from the shared node index; the one
extra pass groups the file's calls by callee name (`eval`, `train`, `backward`, local functions), and
the rest is walks up the parent chain from the few calls that matter.

Autograd state is judged where a call sits: inside `with torch.no_grad():` /
`torch.inference_mode()` / `torch.set_grad_enabled(False)`, or in a function decorated with one of
them, it is off; under `torch.enable_grad()` it is explicitly on; under a context manager or
decorator we cannot read (`with ctx:`, `@maybe_no_grad`) it is unknown, and rules treat unknown as
"maybe off".
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_left
from functools import cached_property

from llmarch_lsp.facts.modules import dotted_name

OFF, ON, UNKNOWN = "off", "on", "unknown"

_GRAD_OFF = {
    "torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.inference_mode",
    "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode",
}  # fmt: skip
_GRAD_ON = {"torch.enable_grad", "torch.autograd.enable_grad", "torch.autograd.grad_mode.enable_grad"}
_GRAD_SWITCH = {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled", "torch.autograd.grad_mode.set_grad_enabled"}
# Context managers that are known to leave autograd alone.
_GRAD_NEUTRAL = re.compile(r"autocast|amp|nullcontext|profile|record_function|tqdm|open|timer|sdpa_kernel|device", re.IGNORECASE)
_MENTIONS_GRAD = re.compile(r"grad|inference", re.IGNORECASE)

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)


class EvaluationFacts:
    def __init__(self, document):
        self._document = document
        self._index = document.index

    # ---- calls -------------------------------------------------------------------------------
    @property
    def calls_by_name(self) -> dict[str, list[ast.Call]]:
        """Every call grouped by the last part of its callee (`eval`, `backward`, `evaluate`)."""
        return self._index.calls_by_name

    @cached_property
    def functions_by_name(self) -> dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
        functions: dict[str, list] = {}
        for function in self._index.functions:
            functions.setdefault(function.name, []).append(function)
        return functions

    @cached_property
    def eval_calls(self) -> list[ast.Call]:
        """`<receiver>.eval()` with a plain dotted receiver (`model`, `self.model`)."""
        return [
            call
            for call in self.calls_by_name.get("eval", ())
            if isinstance(call.func, ast.Attribute)
            and not call.args
            and not call.keywords
            and dotted_name(call.func.value) is not None
        ]

    @cached_property
    def train_calls(self) -> list[ast.Call]:
        """`<receiver>.train()` that may turn training mode on (not `.train(False)`)."""
        found = []
        for call in self.calls_by_name.get("train", ()):
            if not isinstance(call.func, ast.Attribute):
                continue
            mode = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and mode.value is False:
                continue
            found.append(call)
        return found

    @cached_property
    def backward_calls(self) -> list[ast.Call]:
        """`loss.backward()`, `scaler.scale(loss).backward()`, `accelerator.backward(loss)`."""
        return [call for call in self.calls_by_name.get("backward", ()) if isinstance(call.func, ast.Attribute)]

    # ---- autograd state ----------------------------------------------------------------------
    def grad_state(self, node: ast.AST) -> str | None:
        """OFF, ON or UNKNOWN from the nearest `with` or decorator around `node` in its function
        that sets autograd; None when nothing around it does."""
        index = self._index
        child = node
        for ancestor in index.ancestors(node):
            if isinstance(ancestor, (ast.With, ast.AsyncWith)) and child not in ancestor.items:
                states = [self.context_state(item.context_expr) for item in ancestor.items]
                for state in (ON, OFF, UNKNOWN):
                    if state in states:
                        return state
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
                states = [self.context_state(decorator, decorator=True) for decorator in ancestor.decorator_list]
                for state in (ON, OFF, UNKNOWN):
                    if state in states:
                        return state
                return None
            if isinstance(ancestor, ast.Lambda):
                return None
            child = ancestor
        return None

    def context_state(self, expression: ast.AST, *, decorator: bool = False) -> str | None:
        """What a `with` item or decorator does to autograd."""
        target = expression.func if isinstance(expression, ast.Call) else expression
        qualified = self._document.qualified_name(target)
        if qualified in _GRAD_OFF:
            return OFF
        if qualified in _GRAD_ON:
            return ON
        if qualified in _GRAD_SWITCH:
            mode = expression.args[0] if isinstance(expression, ast.Call) and expression.args else None
            if isinstance(mode, ast.Constant) and mode.value in (True, False):
                return ON if mode.value else OFF
            return UNKNOWN
        text = dotted_name(target) or ""
        if _MENTIONS_GRAD.search(text):
            return UNKNOWN
        if _GRAD_NEUTRAL.search(text):
            return None
        if decorator:
            return None  # `@staticmethod`, `@property`, `@torch.jit.export`: named for what they do
        # `with ctx:` may be a no_grad context built elsewhere.
        return UNKNOWN if not isinstance(expression, ast.Call) or not text else None

    @cached_property
    def grad_switched_scopes(self) -> set[ast.AST | None]:
        """Functions (None: the module) that call `torch.set_grad_enabled(...)` as a statement."""
        scopes: set[ast.AST | None] = set()
        for call in self.calls_by_name.get("set_grad_enabled", ()):
            if isinstance(self._index.parent(call), ast.Expr):
                scopes.add(self._index.enclosing_function(call))
        return scopes

    # ---- loops -------------------------------------------------------------------------------
    @cached_property
    def training_functions(self) -> set[ast.AST]:
        """Local functions that run a backward pass, directly or through another local function."""
        return self._closure([call.func for call in self.backward_calls])

    @cached_property
    def restoring_functions(self) -> set[ast.AST]:
        """Local functions that switch a model back to training mode, directly or through a call."""
        return self._closure(self.train_calls)

    @cached_property
    def training_loops(self) -> set[ast.AST]:
        """Loops whose body runs a backward pass, directly or through a local function."""
        return self._loops_reaching([call.func for call in self.backward_calls], self.training_functions)

    @cached_property
    def restoring_loops(self) -> set[ast.AST]:
        """Loops whose body calls `.train()`, directly or through a local function."""
        return self._loops_reaching(self.train_calls, self.restoring_functions)

    def loops_around(self, node: ast.AST) -> list[ast.AST]:
        """Loops around `node` in its own function, innermost first."""
        cached = self._loops_around.get(node)
        if cached is not None:
            return cached
        loops = []
        for ancestor in self._index.ancestors(node):
            if isinstance(ancestor, _FUNCTIONS) or isinstance(ancestor, ast.ClassDef):
                break
            if isinstance(ancestor, _LOOPS):
                loops.append(ancestor)
        self._loops_around[node] = loops
        return loops

    @cached_property
    def _loops_around(self) -> dict[ast.AST, list[ast.AST]]:
        return {}

    @cached_property
    def training_positions(self) -> list[tuple[int, int]]:
        """Sorted positions of backward calls and of calls to local functions that train."""
        nodes = [call.func for call in self.backward_calls]
        nodes += [
            call
            for function in self.training_functions
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
            for call in self.calls_to(function)
        ]
        return sorted((node.lineno, node.col_offset) for node in nodes)

    def runs_training(self, statement: ast.stmt) -> bool:
        """The statement runs a backward pass (directly, in a loop, or through a local function)."""
        if statement in self.training_loops:
            return True
        positions = self.training_positions
        first = bisect_left(positions, (statement.lineno, statement.col_offset))
        return first < len(positions) and positions[first] <= (statement.end_lineno, statement.end_col_offset)

    def calls_to(self, function: ast.AST) -> list[ast.Call]:
        """Calls in the file that may invoke the local function (matched by name)."""
        return self.calls_by_name.get(getattr(function, "name", ""), [])

    def _closure(self, seeds: list[ast.AST]) -> set[ast.AST]:
        found: set[ast.AST] = set()
        frontier = [self._index.enclosing_function(seed) for seed in seeds]
        for _ in range(3):  # a short chain: loop -> train_epoch -> train_step -> backward
            added = []
            for function in frontier:
                while function is not None and function not in found:
                    found.add(function)
                    added.append(function)
                    function = self._index.enclosing_function(function)
            frontier = [
                self._index.enclosing_function(call)
                for function in added
                if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                for call in self.calls_to(function)
            ]
            if not frontier:
                break
        return found

    def _loops_reaching(self, seeds: list[ast.AST], functions: set[ast.AST]) -> set[ast.AST]:
        loops: set[ast.AST] = set()
        nodes = list(seeds)
        nodes += [
            call
            for function in functions
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
            for call in self.calls_to(function)
        ]
        for node in nodes:
            loops.update(self.loops_around(node))
        return loops


def enclosing_block(index, statement: ast.stmt) -> list[ast.stmt] | None:
    """The statement list that holds `statement` (a body, an else, a finally, a handler's body)."""
    parent = index.parent(statement)
    if parent is None:
        return None
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if isinstance(block, list) and any(item is statement for item in block):
            return block
    return None
