"""Training iterations: what one pass of a training loop does, and in which order.

An iteration is the innermost `for` / `while` loop (in `main()`, `train()`, a method, or at module
level) around an optimizer step that also computes gradients. Its events, in source order, are:

- backward calls: `loss.backward()`, `scaler.scale(loss).backward()`, `torch.autograd.backward(loss)`,
  and the framework forms `accelerator.backward(loss)`, `engine.backward(loss)`,
  `fabric.backward(loss)`, `self.manual_backward(loss)`;
- optimizer steps: `optimizer.step()`, `self.optimizer.step()`, `scaler.step(optimizer)`;
- gradient clearing: `optimizer.zero_grad(...)`, `model.zero_grad()`, `p.grad = None`,
  `p.grad.zero_()`;
- clipping (`clip_grad_norm_`, `clip_grad_value_`, `accelerator.clip_grad_norm_`,
  `dispatch_clip_grad`...), `scaler.unscale_(optimizer)`, scheduler steps and `scaler.update()`.

An event inside a local helper the loop calls (`train_step(batch)`, `self._backward(loss)`) counts
at the place of the call, up to three calls deep; `LoopEvent.path` lists those calls. Gradient
accumulation is recognised in its three common spellings: a step guarded by
`if (i + 1) % accum == 0` (or by a flag computed with `%`), an inner
`for micro_step in range(gradient_accumulation_steps)` loop around the backward (nanoGPT), and
`with accelerator.accumulate(model):`.

Everything starts from the shared node index and the training facts' call index; only the
ancestors of the few calls involved are visited. A file without a backward call costs one
substring test. Rules read the cached result as `document.loops`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from functools import cached_property

from llmarch_lsp.facts.imports import call_name
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import dotted_name
from llmarch_lsp.facts.training import literal_number

BACKWARD = "backward"
STEP = "step"
ZERO_GRAD = "zero_grad"
CLIP = "clip"
UNSCALE = "unscale"
SCHEDULER_STEP = "scheduler_step"
SCALER_UPDATE = "scaler_update"

# Accumulation spellings.
MODULO = "modulo"  # `if (i + 1) % accum == 0: optimizer.step()`
MICRO_LOOP = "micro_loop"  # `for micro_step in range(accum): ... loss.backward()`
ACCELERATE = "accelerate"  # `with accelerator.accumulate(model):` (accelerate divides the loss itself)

# What the loss handed to backward is known to be.
DIVIDED = "divided"
UNDIVIDED = "undivided"
UNKNOWN = "unknown"

_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_HELPER_DEPTH = 3

_OPTIMIZER_NAME = re.compile(r"(^|_)opt(im)?s?(_|$)|optimi[sz]er", re.IGNORECASE)
_SCHEDULER_NAME = re.compile(r"sched", re.IGNORECASE)
# Diffusion noise schedulers step the sampler, not a learning rate.
_NOT_AN_LR_SCHEDULER = re.compile(r"noise|diffusion|sampler", re.IGNORECASE)
_SCALER_NAME = re.compile(r"scaler", re.IGNORECASE)
# `<receiver>.backward(loss)`: who runs the backward when it is not the tensor itself. A module
# has no `backward` method, so `model.backward(loss)` is a DeepSpeed engine.
_FRAMEWORK_RECEIVERS = (
    ("accelerate", re.compile(r"accelerat", re.IGNORECASE)),
    ("fabric", re.compile(r"fabric", re.IGNORECASE)),
    ("deepspeed", re.compile(r"engine|deepspeed|^ds_?|model$|net$", re.IGNORECASE)),
    ("framework", re.compile(r"trainer|booster|runner|strategy", re.IGNORECASE)),
)
_CLIP_CALL = re.compile(r"clip_?grad|grad_?clip|clip_?norm|clip_?gradients", re.IGNORECASE)
_ZERO_GRAD_CALL = re.compile(r"^_?zero_?grads?$|zero_gradients|^(reset|clear)_?grads?$", re.IGNORECASE)
_GRAD_CLEARING_METHODS = ("zero_", "fill_")
_UNSCALE_CALLS = ("unscale_", "unscale_gradients")
# A loop counter or bound that says "micro-batches of one optimizer step".
_ACCUMULATION_WORD = re.compile(r"accum|micro|grad_acc", re.IGNORECASE)
# Words that, in the expression producing a loss, say it is already normalised for accumulation.
_NORMALIZING_WORD = re.compile(r"accum|num_items|n_micro|micro_batches|micro_steps|normali[sz]", re.IGNORECASE)
_DIVIDING_METHODS = {"div", "div_", "divide", "true_divide", "mul", "mul_", "multiply"}
# Methods that leave a loss's scale alone: `loss.mean().backward()` is judged by `loss`.
_SCALE_KEEPING_METHODS = {"mean", "sum", "float", "double", "to", "squeeze", "view", "reshape", "clone", "contiguous"}


@dataclass(frozen=True, eq=False)
class LoopEvent:
    """One thing an iteration does to gradients, the optimizer or the schedule.

    `node` is the call (or the `p.grad = None` assignment). `path` holds the local helper calls
    that lead from the loop's function to it, outermost first; it is empty when the event is
    written in the loop's own function.
    """

    kind: str
    node: ast.AST
    # STEP, ZERO_GRAD, UNSCALE: the optimizer (or model) by its dotted name; SCHEDULER_STEP: the
    # scheduler; framework BACKWARD: the framework object (`accelerator`).
    target: str | None = None
    # BACKWARD: the expression whose gradient is taken, unwrapped from `scaler.scale(...)`.
    loss: ast.expr | None = None
    # BACKWARD through `scaler.scale(...)`, STEP through `scaler.step(...)`: the scaler's name.
    scaler: str | None = None
    # BACKWARD run by a framework: "accelerate", "deepspeed", "fabric", "lightning", "framework".
    framework: str | None = None
    path: tuple[ast.Call, ...] = ()

    @property
    def site(self) -> ast.AST:
        """Where the event happens in the loop's own function: the node, or the first helper call."""
        return self.path[0] if self.path else self.node

    @property
    def direct(self) -> bool:
        return not self.path

    @property
    def hops(self) -> tuple[ast.AST, ...]:
        return (*self.path, self.node)

    @property
    def order(self) -> tuple[tuple[int, int], ...]:
        return tuple((hop.lineno, hop.col_offset) for hop in self.hops)


@dataclass(frozen=True, eq=False)
class Accumulation:
    """How an iteration accumulates gradients over micro-batches before it steps."""

    kind: str  # MODULO, MICRO_LOOP or ACCELERATE
    node: ast.AST  # the guarding `if`, the inner loop, or the `accumulate(...)` call
    steps: ast.expr | None  # the number of micro-batches when the code spells it (`accum`, `8`)


@dataclass(eq=False)
class TrainingIteration:
    loop: ast.For | ast.AsyncFor | ast.While
    scope: ast.AST | None  # the function holding the loop; None at module level
    events: tuple[LoopEvent, ...]
    accumulation: Accumulation | None
    # Loops around `loop` in the same function, innermost first (`for epoch ...` around `for batch ...`).
    outer_loops: tuple[ast.AST, ...]
    literal_count: float  # iterations, when every loop around is `range(<literal>)`; else inf

    def of_kind(self, kind: str) -> list[LoopEvent]:
        return [event for event in self.events if event.kind == kind]

    @property
    def backwards(self) -> list[LoopEvent]:
        return self.of_kind(BACKWARD)

    @property
    def steps(self) -> list[LoopEvent]:
        return self.of_kind(STEP)

    @property
    def zero_grads(self) -> list[LoopEvent]:
        return self.of_kind(ZERO_GRAD)

    @property
    def clips(self) -> list[LoopEvent]:
        return self.of_kind(CLIP)

    @property
    def unscales(self) -> list[LoopEvent]:
        return self.of_kind(UNSCALE)

    @property
    def scheduler_steps(self) -> list[LoopEvent]:
        return self.of_kind(SCHEDULER_STEP)

    @property
    def framework(self) -> str | None:
        """The framework that runs this iteration's backward, when one does."""
        return next((event.framework for event in self.backwards if event.framework), None)

    @property
    def outermost_loop(self) -> ast.AST:
        return self.outer_loops[-1] if self.outer_loops else self.loop


class LoopFacts:
    def __init__(self, document):
        self._document = document
        self._index = document.index
        self._loops_around: dict[int, tuple[ast.AST, ...]] = {}
        self._scope_events: dict[object, list[LoopEvent]] = {}

    # ---- events written directly in each function ------------------------------------------
    @cached_property
    def _direct_events(self) -> dict[ast.AST | None, list[LoopEvent]]:
        if "backward" not in self._document.source:
            return {}
        calls = self._document.index.calls_by_name
        events: list[LoopEvent] = []
        for call in (*calls.get("backward", ()), *calls.get("manual_backward", ())):
            event = self._backward_event(call)
            if event is not None:
                events.append(event)
        if not events:
            return {}
        for call in (*calls.get("step", ()), *calls.get("step_update", ())):
            event = self._step_event(call)
            if event is not None:
                events.append(event)
        for name, group in calls.items():
            if _ZERO_GRAD_CALL.search(name):
                events.extend(LoopEvent(ZERO_GRAD, call, target=_receiver(call)) for call in group)
            elif _CLIP_CALL.search(name):
                events.extend(LoopEvent(CLIP, call) for call in group)
            elif name in _UNSCALE_CALLS:
                events.extend(
                    LoopEvent(UNSCALE, call, target=dotted_name(call.args[0]) if call.args else None) for call in group
                )
            elif name in _GRAD_CLEARING_METHODS:
                events.extend(LoopEvent(ZERO_GRAD, call) for call in group if "grad" in (_receiver(call) or "").split("."))
            elif name == "update":
                events.extend(
                    LoopEvent(SCALER_UPDATE, call, target=_receiver(call))
                    for call in group
                    if _SCALER_NAME.search(_receiver(call) or "")
                )
        for assignment in self._index.by_type.get(ast.Assign, ()):
            if any(isinstance(target, ast.Attribute) and target.attr == "grad" for target in assignment.targets):
                events.append(LoopEvent(ZERO_GRAD, assignment))
        grouped: dict[ast.AST | None, list[LoopEvent]] = {}
        for event in events:
            grouped.setdefault(self._index.enclosing_function(event.node), []).append(event)
        return grouped

    def _backward_event(self, call: ast.Call) -> LoopEvent | None:
        func = call.func
        qualified = self._document.qualified_name(func)
        if qualified == "torch.autograd.backward":
            tensors = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "tensors"), None)
            return LoopEvent(BACKWARD, call, loss=tensors)
        if not isinstance(func, ast.Attribute):
            return None
        receiver = dotted_name(func.value)
        if func.attr == "manual_backward":
            return LoopEvent(BACKWARD, call, target=receiver, loss=call.args[0] if call.args else None, framework="lightning")
        if func.attr != "backward":
            return None
        if call.args and receiver is not None:
            last = receiver.rsplit(".", 1)[-1]
            for framework, pattern in _FRAMEWORK_RECEIVERS:
                if pattern.search(last):
                    return LoopEvent(BACKWARD, call, target=receiver, loss=call.args[0], framework=framework)
        value = func.value
        scaler = None
        if isinstance(value, ast.Call) and call_name(value) == "scale" and value.args and isinstance(value.func, ast.Attribute):
            scaler = dotted_name(value.func.value)
            value = value.args[0]
        return LoopEvent(BACKWARD, call, loss=value, scaler=scaler)

    @cached_property
    def _optimizer_names(self) -> set[str]:
        return {name for optimizer in self._document.training.optimizers for name in optimizer.names}

    @cached_property
    def _scheduler_names(self) -> set[str]:
        return {name for site in self._document.training.schedulers for name in site.names}

    def _step_event(self, call: ast.Call) -> LoopEvent | None:
        func = call.func
        if not isinstance(func, ast.Attribute):
            return None
        receiver = dotted_name(func.value)
        if receiver is None:
            return None
        last = receiver.rsplit(".", 1)[-1]
        if receiver in self._scheduler_names or (_SCHEDULER_NAME.search(last) and not _NOT_AN_LR_SCHEDULER.search(last)):
            return LoopEvent(SCHEDULER_STEP, call, target=receiver)
        if func.attr != "step":
            return None
        if receiver in self._optimizer_names or _OPTIMIZER_NAME.search(last):
            return LoopEvent(STEP, call, target=receiver)
        stepped = dotted_name(call.args[0]) if call.args else None
        if stepped is None:
            return None
        is_scaler = bool(_SCALER_NAME.search(last))
        if is_scaler or stepped in self._optimizer_names or _OPTIMIZER_NAME.search(stepped.rsplit(".", 1)[-1]):
            return LoopEvent(STEP, call, target=stepped, scaler=receiver if is_scaler else None)
        return None

    # ---- helpers the loops call ---------------------------------------------------------------
    @cached_property
    def _helper_calls(self) -> dict[ast.AST | None, list[ast.Call]]:
        """Calls of local functions that (transitively) hold events, grouped by the calling function."""
        direct = self._direct_events
        calls = self._document.index.calls_by_name
        eventful = {scope.name for scope in direct if isinstance(scope, _FUNCTIONS)}
        pending, seen = set(eventful), set()
        found: dict[ast.AST | None, list[ast.Call]] = {}
        for _ in range(_HELPER_DEPTH):
            fresh = set()
            for name in pending:
                for call in calls.get(name, ()):
                    if id(call) in seen or not _calls_local_function(call):
                        continue
                    seen.add(id(call))
                    scope = self._index.enclosing_function(call)
                    found.setdefault(scope, []).append(call)
                    if isinstance(scope, _FUNCTIONS) and scope.name not in eventful:
                        fresh.add(scope.name)
            if not fresh:
                break
            eventful |= fresh
            pending = fresh
        return found

    def events_of_scope(self, scope: ast.AST | None) -> list[LoopEvent]:
        """Every event in a function (or the module, for None), helpers' events at their call, in order."""
        return self._events_of(scope, frozenset())

    def _events_of(self, scope, stack: frozenset) -> list[LoopEvent]:
        cached = self._scope_events.get(scope)
        if cached is not None:
            return cached
        # Only a walk that starts at `scope` sees its whole helper chain; deeper walks are cut short.
        memoize = not stack
        events = list(self._direct_events.get(scope, ()))
        if len(stack) < _HELPER_DEPTH:
            functions = self._document.training._functions
            for call in self._helper_calls.get(scope, ()):
                for function in functions.get(call_name(call), ()):
                    if function is scope or function in stack:
                        continue
                    events.extend(replace(event, path=(call, *event.path)) for event in self._events_of(function, stack | {scope}))
        events.sort(key=lambda event: event.order)
        if memoize:
            self._scope_events[scope] = events
        return events

    @property
    def scopes(self) -> list[ast.AST | None]:
        """Functions (None: the module) that hold events, directly or through helpers."""
        return list(dict.fromkeys([*self._direct_events, *self._helper_calls]))

    def loops_around(self, node: ast.AST) -> tuple[ast.AST, ...]:
        """Loops whose body repeats `node`, innermost first, within `node`'s own function."""
        key = id(node)
        cached = self._loops_around.get(key)
        if cached is None:
            loops = []
            child = node
            for ancestor in self._index.ancestors(node):
                if isinstance(ancestor, _SCOPES):
                    break
                if isinstance(ancestor, _LOOPS) and any(statement is child for statement in ancestor.body):
                    loops.append(ancestor)
                child = ancestor
            cached = self._loops_around[key] = tuple(loops)
        return cached

    def events_in(self, loop: ast.AST, scope: ast.AST | None) -> list[LoopEvent]:
        """The events one pass of `loop` (in function `scope`) runs, nested loops and helpers included."""
        return [event for event in self.events_of_scope(scope) if loop in self.loops_around(event.site)]

    # ---- iterations ---------------------------------------------------------------------------
    @cached_property
    def iterations(self) -> list[TrainingIteration]:
        found: dict[ast.AST, TrainingIteration] = {}
        for scope in self.scopes:
            for event in self.events_of_scope(scope):
                if event.kind != STEP:
                    continue
                if any(self.loops_around(hop) for hop in event.hops[1:]):
                    continue  # a loop inside the helper repeats the step: that loop is the iteration
                for loop in self.loops_around(event.site):
                    if loop in found:
                        break
                    inside = self.events_in(loop, scope)
                    if any(other.kind == BACKWARD for other in inside):
                        found[loop] = self._iteration(loop, scope, inside)
                        break
        return sorted(found.values(), key=lambda iteration: (iteration.loop.lineno, iteration.loop.col_offset))

    def _iteration(self, loop, scope, events: list[LoopEvent]) -> TrainingIteration:
        outer = self.loops_around(loop)
        count = 1.0
        for repeated in (loop, *outer):
            length = _range_length(repeated)
            count = float("inf") if length is None else count * length
        iteration = TrainingIteration(loop, scope, tuple(events), None, outer, count)
        iteration.accumulation = self._accumulation(iteration)
        return iteration

    def iteration_around(self, node: ast.AST) -> TrainingIteration | None:
        """The iteration whose loop runs `node`: around it, or around a call of its function."""
        iterations = self.iterations
        if not iterations:
            return None
        loops = {id(iteration.loop): iteration for iteration in iterations}
        for ancestor in self._index.ancestors(node):
            if id(ancestor) in loops:
                return loops[id(ancestor)]
        function = self._index.enclosing_function(node)
        if not isinstance(function, _FUNCTIONS):
            return None
        for call in self._document.index.calls_by_name.get(function.name, ()):
            if _calls_local_function(call):
                for ancestor in self._index.ancestors(call):
                    if id(ancestor) in loops:
                        return loops[id(ancestor)]
        return None

    # ---- accumulation -------------------------------------------------------------------------
    def _accumulation(self, iteration: TrainingIteration) -> Accumulation | None:
        backwards = iteration.backwards
        for backward in backwards:
            for hop in backward.hops:
                for ancestor in self._ancestors_in_scope(hop):
                    if ancestor is iteration.loop:
                        break
                    if isinstance(ancestor, (ast.With, ast.AsyncWith)):
                        for item in ancestor.items:
                            context = item.context_expr
                            if isinstance(context, ast.Call) and call_name(context) == "accumulate":
                                return Accumulation(ACCELERATE, context, None)
        for backward in backwards:
            for loop in self.loops_around(backward.site):
                if loop is iteration.loop:
                    break
                bound = _range_bound(loop)
                counter = getattr(loop, "target", None)
                counter_name = counter.id if isinstance(counter, ast.Name) else ""
                if _ACCUMULATION_WORD.search(counter_name) or (
                    bound is not None and _ACCUMULATION_WORD.search(self._document.segment(bound))
                ):
                    return Accumulation(MICRO_LOOP, loop, bound)
        around_backwards = {id(ancestor) for backward in backwards for hop in backward.hops for ancestor in self._ancestors_in_scope(hop)}
        for step in iteration.steps:
            for hop in step.hops:
                for ancestor in self._ancestors_in_scope(hop):
                    if ancestor is iteration.loop:
                        break
                    if isinstance(ancestor, ast.If) and id(ancestor) not in around_backwards:
                        if self._steps_in_else(ancestor, iteration):
                            continue  # `if i % 2 == 0: opt_g.step() else: opt_d.step()` alternates, it does not accumulate
                        modulo = self._modulo_in(ancestor.test)
                        if modulo is not None and literal_number(modulo.right) != 1:
                            return Accumulation(MODULO, ancestor, modulo.right)
        return None

    def _steps_in_else(self, branch: ast.If, iteration: TrainingIteration) -> bool:
        alternatives = {id(statement) for statement in branch.orelse}
        return any(
            id(ancestor) in alternatives
            for step in iteration.steps
            for hop in step.hops
            for ancestor in self._ancestors_in_scope(hop)
        )

    def _ancestors_in_scope(self, node: ast.AST):
        for ancestor in self._index.ancestors(node):
            if isinstance(ancestor, _SCOPES):
                return
            yield ancestor

    def _modulo_in(self, test: ast.expr) -> ast.BinOp | None:
        """A `%` in an `if` test, or in what a flag it reads was assigned (`need_update = ... % accum == 0`)."""
        names = []
        for node in walk(test):
            if _is_modulo(node):
                return node
            if isinstance(node, ast.Name):
                names.append(node.id)
        for name in names:
            for assignment in self._document.training.assignments_to(name):
                for node in walk(assignment.value):
                    if _is_modulo(node):
                        return node
        return None

    # ---- the loss handed to backward ----------------------------------------------------------
    def loss_division(self, backward: LoopEvent) -> str:
        """Whether the loss of a backward is divided (DIVIDED), plainly not (UNDIVIDED) or unknowable.

        Division shows as `loss / n`, `loss * (1 / n)`, `loss /= n`, `loss.div_(n)` or an earlier
        `loss = loss / n` in the same function; a loss computed by a call whose arguments speak of
        accumulation (`compute_loss(batch, accum_steps)`, `num_items_in_batch=...`) counts too.
        A function parameter, a local helper's result or a loop variable is unknowable.
        """
        return self._judge(backward.loss, backward.node, 0)

    def _judge(self, expression: ast.AST | None, use: ast.AST, depth: int) -> str:
        if expression is None or depth > 4:
            return UNKNOWN
        if isinstance(expression, ast.BinOp):
            if isinstance(expression.op, (ast.Div, ast.FloorDiv)):
                return DIVIDED
            sides = (expression.left, expression.right)
            if isinstance(expression.op, ast.Mult):
                # `loss * (1 / accum)`, `loss * inv_accum`: a product normalises when a factor says so;
                # `aux_weight * aux_loss` is a weighting whose scale is unknown.
                if any(isinstance(side, ast.BinOp) and isinstance(side.op, ast.Div) for side in sides) or any(
                    _NORMALIZING_WORD.search(self._document.segment(side)) for side in sides
                ):
                    return DIVIDED
                return UNKNOWN
            if isinstance(expression.op, (ast.Add, ast.Sub)):
                # A sum is normalised when every term is; one undivided term (the main loss) is enough
                # to call it undivided unless another term is visibly divided.
                verdicts = {self._judge(side, use, depth + 1) for side in sides}
                if verdicts == {DIVIDED}:
                    return DIVIDED
                return UNDIVIDED if UNDIVIDED in verdicts and DIVIDED not in verdicts else UNKNOWN
            return UNKNOWN
        if isinstance(expression, ast.Call):
            if _NORMALIZING_WORD.search(self._document.segment(expression)):
                return DIVIDED
            name = call_name(expression)
            if name in _DIVIDING_METHODS:
                return DIVIDED
            if isinstance(expression.func, ast.Attribute) and name in _SCALE_KEEPING_METHODS:
                return self._judge(expression.func.value, use, depth + 1)
            if name in self._document.training._functions:
                return UNKNOWN  # a local helper may normalise inside
            return UNDIVIDED
        if isinstance(expression, (ast.Name, ast.Attribute)):
            text = dotted_name(expression)
            if text is None:  # `model(batch).loss`: judge what it is read from
                return self._judge(expression.value, use, depth + 1) if isinstance(expression, ast.Attribute) else UNKNOWN
            verdicts = self._definition_verdicts(text, use, depth)
            if verdicts:
                if DIVIDED in verdicts:
                    return DIVIDED
                return UNKNOWN if UNKNOWN in verdicts else UNDIVIDED
            if isinstance(expression, ast.Attribute):
                return self._judge(expression.value, use, depth + 1)  # `outputs.loss`: judge `outputs`
            return UNKNOWN  # a parameter, a global, a closure variable
        return UNKNOWN

    def _definition_verdicts(self, text: str, use: ast.AST, depth: int) -> set[str]:
        scope = self._index.enclosing_function(use)
        position = (use.lineno, use.col_offset)
        verdicts: set[str] = set()
        for node, _ in self._document.training._uses_of({text}):
            if (node.lineno, node.col_offset) >= position or self._index.enclosing_function(node) is not scope:
                continue
            parent = self._index.parent(node)
            if isinstance(getattr(node, "ctx", None), ast.Load):
                # `loss.div_(n)` before the backward
                if isinstance(parent, ast.Attribute) and parent.attr in ("div_", "mul_"):
                    verdicts.add(DIVIDED)
                continue
            statement = self._index.enclosing_statement(node)
            if isinstance(statement, ast.AugAssign):
                if isinstance(statement.op, (ast.Div, ast.Mult)):
                    verdicts.add(DIVIDED)
                else:
                    verdicts.add(self._judge(statement.value, use, depth + 1))
            elif isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
                if parent is statement:
                    verdicts.add(self._judge(statement.value, statement, depth + 1))
                else:  # `logits, loss = model(x, y)`: only the call's own words can say it normalises
                    value = statement.value
                    normalised = isinstance(value, ast.Call) and _NORMALIZING_WORD.search(self._document.segment(value))
                    local = isinstance(value, ast.Call) and call_name(value) in self._document.training._functions
                    verdicts.add(DIVIDED if normalised else UNKNOWN if local else UNDIVIDED)
            else:
                verdicts.add(UNKNOWN)  # a loop variable, a `with ... as loss`
        return verdicts

    # ---- where a fix may edit -----------------------------------------------------------------
    def own_line_statement(self, node: ast.AST) -> ast.stmt | None:
        """The statement `node` is (or is the whole expression of), when it starts its line and
        nothing but a comment follows it: a statement a fix can move or insert around."""
        statement = node if isinstance(node, ast.stmt) else self._index.parent(node)
        if not isinstance(statement, ast.stmt):
            return None
        if isinstance(statement, ast.Expr) and statement.value is not node and statement is not node:
            return None
        document = self._document
        start = document.line_text(statement.lineno)
        if len(start) - len(start.lstrip()) != statement.col_offset:
            return None
        end = document.line_text(statement.end_lineno)
        rest = end.encode("utf-8")[statement.end_col_offset :].decode("utf-8", errors="ignore").strip()
        return statement if rest == "" or rest.startswith("#") else None

    def block_of(self, statement: ast.stmt) -> list[ast.stmt] | None:
        """The statement list (a body, an `else`, a `finally`) that holds `statement`."""
        parent = self._index.parent(statement)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(parent, name, None)
            if isinstance(block, list) and any(item is statement for item in block):
                return block
        return None

    def next_sibling(self, statement: ast.stmt) -> ast.stmt | None:
        block = self.block_of(statement) or []
        position = next((position for position, item in enumerate(block) if item is statement), len(block))
        return block[position + 1] if position + 1 < len(block) else None


# ---- helpers ----------------------------------------------------------------------------------

def name_is_free(document, name: str) -> bool:
    """`name` appears nowhere in the file as a whole word: a fix may bind it."""
    return name not in document.source or re.search(rf"\b{re.escape(name)}\b", document.source) is None


def _receiver(call: ast.Call) -> str | None:
    return dotted_name(call.func.value) if isinstance(call.func, ast.Attribute) else None


def _calls_local_function(call: ast.Call) -> bool:
    """`helper(...)` or `self.helper(...)`: a call that may reach a function of this file."""
    func = call.func
    if isinstance(func, ast.Name):
        return True
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("self", "cls")


def _is_modulo(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mod)
        and not (isinstance(node.left, ast.Constant) and isinstance(node.left.value, str))
    )


def _range_bound(loop: ast.AST) -> ast.expr | None:
    """`n` of `for _ in range(n)` / `range(0, n)`."""
    iterable = getattr(loop, "iter", None)
    if not (isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.func.id == "range"):
        return None
    if len(iterable.args) == 1:
        return iterable.args[0]
    if len(iterable.args) == 2 and literal_number(iterable.args[0]) == 0:
        return iterable.args[1]
    return None


def _range_length(loop: ast.AST) -> float | None:
    iterable = getattr(loop, "iter", None)
    if not (isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.func.id == "range"):
        return None
    bounds = [literal_number(argument) for argument in iterable.args[:2]]
    if not bounds or None in bounds or iterable.keywords or len(iterable.args) > 2:
        return None
    return bounds[0] if len(bounds) == 1 else bounds[1] - bounds[0]
