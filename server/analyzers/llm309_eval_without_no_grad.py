"""An evaluation pass that keeps autograd on, or a training loop that never leaves eval mode.

## Problem
Two mistakes around evaluation, both silent. (1) A model is run for evaluation (after
`model.eval()`, or inside an `evaluate` / `validate` / `estimate_loss` function) without
`torch.no_grad()` or `torch.inference_mode()`: every forward pass records an autograd graph and keeps
its activations alive. (2) A training loop calls `model.eval()` for a periodic evaluation and never
calls `model.train()` again, so every later training step runs with dropout off and BatchNorm
frozen on its running statistics.

## Diagnosis
Part 1 looks at functions (and module-level scripts) that call `X.eval()` and then, in the
statements that follow it in the same block, call `X(...)` or `X.forward(...)`; and at functions
named like an evaluation pass (`evaluate*`, `eval*`, `validate`, `validate_epoch`, `validation`,
`estimate_loss`, `test`; not `validate_config`-style checks) that call something named like a
model (`model`, `self.model`, `net`, `raw_model`) with inputs. A forward call is fine inside `with torch.no_grad()`,
`torch.inference_mode()`, `torch.set_grad_enabled(False)`, in a function decorated with one of them,
or in a function whose every caller we cannot rule out doing so (a call site under `no_grad`). It
stays silent when the function needs gradients (`backward`, `torch.autograd.grad`,
`requires_grad_`, `.grad`, `torch.enable_grad()`: saliency maps, adversarial evaluation), when it
exports or traces the model (`torch.onnx`, `torch.jit`, `torch.export`), under a context manager it
cannot read (`with ctx:`), for pytest/unittest functions (`test_*`), and for framework hooks
(Lightning `validation_step` and other `*_step` methods: the framework disables autograd there).
Part 2 follows each `X.eval()` into the loops around it (directly, or through a local helper such
as `evaluate(model)` called in the loop) and fires when that loop also runs a backward pass but
nothing in it (directly or through a local helper) calls `.train()`. `X` must be a model the file
trains: one it calls `.train()` on, or whose parameters it gives to an optimizer. EMA copies,
frozen teachers and anything else in eval mode for good are therefore left alone.

## Hypothesis
(1) With autograd on, the forward pass saves every intermediate activation for a backward pass
that never comes. For a transformer that is several times the memory of the weights per batch,
which caps the evaluation batch size, slows evaluation, and, when the loss tensor is accumulated
without `.item()` (`total += loss`), keeps every batch's graph alive until the process runs out
of memory. (2) Dropout and BatchNorm behave differently in the two modes; after an unrestored
`model.eval()` the rest of training silently loses dropout's regularisation and BatchNorm stops
updating its statistics, which shows up as faster overfitting or a train/validation gap that
appears right after the first evaluation.

## Literature
- Srivastava et al. (2014) define dropout as a training-time procedure whose units are all kept
  and rescaled at test time: exactly the switch `train()` / `eval()` flips.
- Ioffe and Szegedy (2015) define BatchNorm's use of batch statistics in training and running
  statistics at inference, the other behaviour the mode controls.
- Chen et al. (2016) quantify how much memory the activations saved for the backward pass cost
  (and trade compute for it); an evaluation pass does not need to pay it at all.

## Recommendation
Run evaluation under `torch.no_grad()` (or `torch.inference_mode()`, slightly faster, when the
outputs never feed autograd later), most simply by decorating the evaluation function with
`@torch.no_grad()`; nanoGPT's `estimate_loss` and timm's `validate` do exactly this. In a training
loop, pair every `model.eval()` with a `model.train()` once the evaluation is done (inside the
helper before it returns, or right after the call).

## Expected outcome
(1) Evaluation memory drops to roughly the weights plus one layer's activations, so larger
evaluation batches fit and evaluation runs faster; results are bit-identical. (2) Training after
the first evaluation behaves like training before it: the loss curve loses the kink at the first
eval step, and validation loss improves if dropout was doing useful work.

## Implementation
Before:

    def evaluate(model, loader):
        model.eval()
        losses = [model(x, y)[1].item() for x, y in loader]
        return sum(losses) / len(losses)

    for it in range(max_iters):
        if it % eval_interval == 0:
            val_loss = evaluate(model, val_loader)
        loss = model(*get_batch())[1]
        loss.backward()
        optimizer.step()

After:

    @torch.no_grad()
    def evaluate(model, loader):
        ...

    for it in range(max_iters):
        if it % eval_interval == 0:
            val_loss = evaluate(model, val_loader)
            model.train()
        ...

Part 1's fix decorates an evaluation function with `@torch.no_grad()` (reusing the file's spelling
of `torch`); elsewhere (a script, or `main()` that evaluates after training) it wraps the
statements from the first to the last ungated forward call in `with torch.no_grad():`. Part 2's fix
inserts `model.train()` after the evaluation: after the last statement of the block that runs it,
or just before the next statement of that block that trains.

## Caveats
Both fixes are unsafe by the project's definition. `no_grad` keeps every value identical but the
outputs no longer carry a graph, so a caller that differentiates through the evaluation outputs
(not visible in this file) would now fail loudly; `model.train()` turns dropout back on, which
changes training numerics (that is the point). Part 2 cannot see a `model.train()` done in another
file or by a framework (Lightning, the Hugging Face `Trainer`), so it only fires when the loop and
the helper are both in this file. The memory cost of part 1 is workload-dependent: for a small model
on a large GPU it may not matter beyond speed.

## Next steps
Measure peak memory of one evaluation pass before and after (`torch.cuda.max_memory_allocated()`),
then raise the evaluation batch size. For part 2, log `model.training` at each training step, and
compare the training loss just before and just after the first evaluation.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.evaluation import EvaluationFacts, enclosing_block
from llmarch_lsp.facts.imports import call_name
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import dotted_name
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity, Span
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace

FIX_TITLE = "Evaluate under torch.no_grad() / restore model.train() after evaluating"
NO_GRAD_TITLE = "Run the evaluation under torch.no_grad()"
TRAIN_TITLE = "Call model.train() after the evaluation"

# `validate_*` is left out on purpose: `validate_config(...)`-style input checks are far more common.
_EVAL_NAME = re.compile(
    r"^_*(?:eval|evaluate|evaluation)(?:_\w+)?$"
    r"|^_*(?:validate|validation|valid|val)(?:_one)?(?:_epoch|_model|_loop)?$"
    r"|^_*(?:estimate_loss|run_eval\w*|run_validation|test)$"
)
# Framework hooks whose autograd state the framework sets (Lightning `validation_step`, ...).
_FRAMEWORK_HOOK = re.compile(r"_step$|_epoch_(?:start|end)$|_batch_(?:start|end)$|^on_|_dataloader$")
_MODEL_NAME = re.compile(r"(?:^|_)(?:model|net|network)(?:_|$)|^module$", re.IGNORECASE)
# `get_model(...)`, `is_peft_model(...)`: functions named after models, not models.
_VERB_PREFIX = re.compile(r"^_*(?:get|is|has|load|build|create|make|init|setup|prepare|wrap|unwrap|save|to|from)_")
# Calls that show the function needs autograd, or that it exports/traces the model.
_NEEDS_GRAD_CALLS = {
    "backward", "grad", "requires_grad_", "retain_grad", "register_hook", "enable_grad", "autograd",
    "trace", "script", "export", "onnx_export", "dynamo_export", "gradcheck", "vjp", "jvp", "jacobian",
}  # fmt: skip
_NEEDS_GRAD_ATTRIBUTES = {"grad", "requires_grad", "onnx", "jit"}
_STOPPERS = (ast.Break, ast.Return, ast.Raise, ast.Continue)
_CLIPPING = ("clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_gradients")


def check(document: Document, context: RuleContext, rule: Rule):
    source = document.source
    if not any(word in source for word in ("eval", "valid", "estimate_loss", "def test(")):
        return
    if not document.imports.imports_module("torch"):
        return
    facts = document.evaluation
    yield from _ungated_evaluations(document, facts, rule)
    yield from _evaluations_never_undone(document, facts, rule)


# ---- part 1: evaluation with autograd on -------------------------------------------------------

def _ungated_evaluations(document: Document, facts: EvaluationFacts, rule: Rule):
    index = document.index
    receivers: dict[ast.AST | None, dict[str, ast.Call]] = {}
    for call in facts.eval_calls:
        scope = index.enclosing_function(call)
        if isinstance(scope, ast.Lambda):
            continue
        receivers.setdefault(scope, {}).setdefault(dotted_name(call.func.value), call)
    named = {function for function in index.functions if _EVAL_NAME.match(function.name)}
    scopes = {scope for scope in (*receivers, *named) if _may_be_evaluation(document, scope)}
    if not scopes:
        return
    all_receivers = {receiver for by_receiver in receivers.values() for receiver in by_receiver}
    receiver_ends = {receiver.rsplit(".", 1)[-1] for receiver in all_receivers}
    regions: dict[tuple, tuple[tuple[int, int], tuple[int, int]]] = {}
    forwards: dict[ast.AST | None, list[ast.Call]] = {}
    # Calls are grouped by their callee's last name: look only at names that can be a model.
    candidates = [
        call
        for name, calls in facts.calls_by_name.items()
        if name == "forward" or name in receiver_ends or (_MODEL_NAME.search(name) and not _VERB_PREFIX.search(name))
        for call in calls
    ]
    candidates.sort(key=lambda call: (call.lineno, call.col_offset))
    for call in candidates:
        model = _called_model(call)
        if model is None or not (model in all_receivers or _looks_like_a_model(document, facts, call, model)):
            continue
        scope = index.enclosing_function(call)
        if scope not in scopes:
            continue
        first_eval = receivers.get(scope, {}).get(model)
        if first_eval is None and scope not in named:
            continue
        region = regions.get((scope, model))
        if region is None:
            region = regions[(scope, model)] = _evaluation_region(document, scope, named, first_eval)
        if not region[0] <= (call.lineno, call.col_offset) <= region[1]:
            continue  # e.g. the training step after a periodic evaluation branch
        if facts.grad_state(call) is not None:
            continue
        forwards.setdefault(scope, []).append(call)
    if not forwards:
        return
    for scope, calls in forwards.items():
        if scope in facts.grad_switched_scopes:
            continue
        if scope is not None and any(facts.grad_state(caller) is not None for caller in facts.calls_to(scope)):
            continue  # a caller may already run it under no_grad
        model = _called_model(calls[0])
        first_eval = receivers.get(scope, {}).get(model)
        if _needs_grad(document, _evaluation_statements(document, scope, named, first_eval)):
            continue  # gradients are wanted here (saliency, adversarial inputs), or the model is exported
        related = [Related(document.span_of(first_eval), "evaluation mode set here")] if first_eval is not None else []
        yield rule.finding(
            document,
            calls[0],
            _ungated_message(document, scope, calls[0], model, first_eval),
            related=related,
            fix=_no_grad_fix(document, scope, calls, named),
        )


def _may_be_evaluation(document: Document, scope: ast.AST | None) -> bool:
    if scope is None:
        return True
    name = scope.name
    if name.startswith("test_") or name.startswith("Test") or _FRAMEWORK_HOOK.search(name) or name == "forward":
        return False
    owner = document.index.parent(scope)
    if isinstance(owner, ast.ClassDef):
        if owner.name.startswith("Test"):
            return False
        bases = " ".join(dotted_name(base) or "" for base in owner.bases)
        if "Lightning" in bases or "TestCase" in bases:
            return False
    return True


def _called_model(call: ast.Call) -> str | None:
    """`model` for `model(x)` and `model.forward(x)`; None for anything else."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "forward":
        func = func.value
    if not isinstance(func, (ast.Name, ast.Attribute)):
        return None
    return dotted_name(func)


def _looks_like_a_model(document: Document, facts: EvaluationFacts, call: ast.Call, model: str) -> bool:
    """`model(x)`, `self.net(x)`: a variable named like a model, called with inputs."""
    parts = model.split(".")
    if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == "self")):
        return False  # `solver.model()` is a method that happens to be called `model`
    last = parts[-1]
    if not _MODEL_NAME.search(last) or _VERB_PREFIX.search(last) or not (call.args or call.keywords):
        return False
    return document.qualified_name(call.func) is None and last not in facts.functions_by_name


def _evaluation_statements(document: Document, scope, named: set, first_eval) -> list[ast.stmt]:
    """Where the evaluation pass runs: a whole evaluation function, or from `model.eval()` to the end
    of the block that holds it (so a training loop elsewhere in `main()` does not count)."""
    if first_eval is None or scope in named:
        return list(scope.body) if scope is not None else list(document.tree.body)
    statement = document.index.enclosing_statement(first_eval)
    block = enclosing_block(document.index, statement) or [statement]
    position = next(i for i, item in enumerate(block) if item is statement)
    return block[position:]


def _evaluation_region(document: Document, scope, named: set, first_eval) -> tuple[tuple[int, int], tuple[int, int]]:
    statements = _evaluation_statements(document, scope, named, first_eval)
    first, last = statements[0], statements[-1]
    return (first.lineno, first.col_offset), (last.end_lineno, last.end_col_offset)


def _needs_grad(document: Document, statements: list[ast.stmt]) -> bool:
    """The code uses autograd on purpose (`backward`, `.grad`, `requires_grad_`, `torch.autograd`)
    or exports/traces a model."""
    for statement in statements:
        for node in walk(statement):
            if isinstance(node, ast.Attribute) and node.attr in _NEEDS_GRAD_ATTRIBUTES:
                return True
            if isinstance(node, ast.Call) and call_name(node) in _NEEDS_GRAD_CALLS:
                return True
    return False


def _ungated_message(document: Document, scope, call: ast.Call, model: str, first_eval) -> str:
    where = f"`{scope.name}`" if scope is not None else "this script"
    after = f"after `{model}.eval()` " if first_eval is not None else ""
    return (
        f"`{document.segment(call.func)}(...)` runs {after}in {where} with autograd on: every forward pass "
        "records a graph and keeps its activations for a backward pass that never comes, so evaluation "
        "holds far more memory than it needs (and `total += loss` keeps every batch's graph alive). "
        "Run it under `torch.no_grad()` (eval mode does not disable autograd)"
    )


def _no_grad_fix(document: Document, scope, calls: list[ast.Call], named: set) -> Fix | None:
    no_grad = document.imports.local_name_for("torch.no_grad")
    imports: tuple[AddImport, ...] = ()
    if no_grad is None:
        if "torch" in document.imports.aliases:
            return None  # `torch` names something else here
        no_grad, imports = "torch.no_grad", (AddImport("torch"),)
    if scope in named and isinstance(scope, ast.FunctionDef):
        line = document.line_text(scope.lineno)
        if not line.lstrip().startswith("def ") or len(line) - len(line.lstrip()) != scope.col_offset:
            return None
        indentation = document.indentation_of(scope.lineno)
        at = Span(scope.lineno, 0, scope.lineno, 0)
        return Fix(NO_GRAD_TITLE, UNSAFE, replacements=(Replace(at, f"{indentation}@{no_grad}()\n"),), imports=imports)
    return _with_fix(document, calls, no_grad, imports)


def _with_fix(document: Document, calls: list[ast.Call], no_grad: str, imports) -> Fix | None:
    """Wrap the statements from the first to the last ungated forward call in `with no_grad():`."""
    index = document.index
    chains = [_statement_chain(index, call) for call in calls]
    block = statements = None
    for block_candidate, _ in chains[0]:
        positions = []
        for chain in chains:
            found = next((statement for candidate, statement in chain if candidate is block_candidate), None)
            if found is None:
                break
            positions.append(next(i for i, item in enumerate(block_candidate) if item is found))
        else:
            block, statements = block_candidate, block_candidate[min(positions) : max(positions) + 1]
            break
    if block is None or not statements:
        return None
    first, last = statements[0], statements[-1]
    start_line = document.line_text(first.lineno)
    indentation = start_line[: len(start_line) - len(start_line.lstrip())]
    if len(indentation) != first.col_offset:
        return None
    end_line = document.line_text(last.end_lineno)
    rest = end_line.encode("utf-8")[last.end_col_offset :].decode("utf-8", errors="ignore").strip()
    if rest and not rest.startswith("#"):
        return None
    if any(
        isinstance(node, (ast.Constant, ast.JoinedStr)) and node.lineno != node.end_lineno
        for statement in statements
        for node in walk(statement)
    ):
        return None  # re-indenting would change a multi-line string
    unit = "\t" if "\t" in indentation else "    "
    lines = [document.line_text(number) for number in range(first.lineno, last.end_lineno + 1)]
    body = "\n".join(unit + text if text.strip() else text for text in lines)
    end = Span(last.end_lineno, len(end_line), last.end_lineno, len(end_line))
    replacement = Replace(Span(first.lineno, 0, end.end_line, end.end_column), f"{indentation}with {no_grad}():\n{body}")
    return Fix(NO_GRAD_TITLE, UNSAFE, replacements=(replacement,), imports=imports)


def _statement_chain(index, node: ast.AST) -> list[tuple[list, ast.stmt]]:
    """(block, statement) pairs from the innermost statement around `node` outwards, within its scope."""
    chain = []
    current = node
    for ancestor in index.ancestors(node):
        if isinstance(current, ast.stmt):
            block = enclosing_block(index, current)
            if block is not None:
                chain.append((block, current))
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            break
        current = ancestor
    else:
        if isinstance(current, ast.stmt):
            block = enclosing_block(index, current)
            if block is not None:
                chain.append((block, current))
    return chain


# ---- part 2: eval mode left on in a training loop ----------------------------------------------

def _evaluations_never_undone(document: Document, facts: EvaluationFacts, rule: Rule):
    if not facts.eval_calls or not facts.training_loops:
        return
    trained = _trained_models(document, facts)
    if not trained:
        return
    index = document.index
    for eval_call in facts.eval_calls:
        receiver = dotted_name(eval_call.func.value)
        helper = index.enclosing_function(eval_call)
        sites: list[tuple[ast.AST, str, bool]] = [(eval_call, receiver, False)]
        if isinstance(helper, (ast.FunctionDef, ast.AsyncFunctionDef)) and helper not in facts.restoring_functions:
            for call_site in facts.calls_to(helper)[:8]:
                mapped = _as_seen_by_caller(helper, call_site, receiver)
                if mapped is not None:
                    sites.append((call_site, mapped, True))
        for site, model, through_helper in sites:
            if model not in trained:
                continue
            loop = _training_loop_without_restore(facts, site)
            if loop is None or _stops_after(index, site):
                continue
            yield _never_undone_finding(document, facts, rule, eval_call, site, model, through_helper, loop)
            break


def _trained_models(document: Document, facts: EvaluationFacts) -> set[str]:
    """Models this file trains: `.train()` receivers, and modules whose parameters an optimizer gets
    or whose gradients are clipped."""
    trained = {dotted_name(call.func.value) for call in facts.train_calls}
    consumers = [optimizer.call for optimizer in document.training.optimizers]
    consumers += [call for name in _CLIPPING for call in facts.calls_by_name.get(name, ())]
    for consumer in consumers:
        for argument in (*consumer.args, *(keyword.value for keyword in consumer.keywords)):
            for node in walk(argument):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("parameters", "named_parameters")
                ):
                    trained.add(dotted_name(node.func.value))
    for call in facts.calls_by_name.get("configure_optimizers", ()):
        if isinstance(call.func, ast.Attribute):
            trained.add(dotted_name(call.func.value))
    trained.discard(None)
    return trained


def _as_seen_by_caller(helper, call_site: ast.Call, receiver: str) -> str | None:
    """The caller's name for the helper's `receiver`: a parameter maps to the argument passed."""
    root, _, rest = receiver.partition(".")
    parameters = [argument.arg for argument in (*helper.args.posonlyargs, *helper.args.args)]
    if isinstance(call_site.func, ast.Attribute) and parameters and parameters[0] in ("self", "cls"):
        if root == parameters[0]:
            return receiver if dotted_name(call_site.func.value) == root else None
        parameters = parameters[1:]
    keyword_names = [argument.arg for argument in helper.args.kwonlyargs]
    if root not in parameters and root not in keyword_names:
        return receiver  # a global or a closure: the same name at the call site
    argument = next((keyword.value for keyword in call_site.keywords if keyword.arg == root), None)
    if argument is None and root in parameters:
        position = parameters.index(root)
        if position < len(call_site.args) and not any(isinstance(a, ast.Starred) for a in call_site.args[: position + 1]):
            argument = call_site.args[position]
    mapped = dotted_name(argument) if argument is not None else None
    if mapped is None:
        return None
    return f"{mapped}.{rest}" if rest else mapped


def _training_loop_without_restore(facts: EvaluationFacts, site: ast.AST) -> ast.AST | None:
    for loop in facts.loops_around(site):
        if loop in facts.restoring_loops:
            return None
        if loop in facts.training_loops:
            return loop
    return None


def _stops_after(index, site: ast.AST) -> bool:
    """The evaluation is followed by `break`/`return` in its block: no training step comes after it."""
    statement = index.enclosing_statement(site)
    block = enclosing_block(index, statement)
    if block is None:
        return False
    position = next(i for i, item in enumerate(block) if item is statement)
    return any(isinstance(item, (ast.Break, ast.Return, ast.Raise)) for item in block[position + 1 :])


def _never_undone_finding(document, facts, rule, eval_call, site, model, through_helper, loop):
    index = document.index
    inside = (loop.lineno, loop.col_offset), (loop.end_lineno, loop.end_col_offset)
    step = next((call for call in facts.backward_calls if inside[0] <= (call.lineno, call.col_offset) <= inside[1]), None)
    related = [Related(document.span_of(eval_call), "evaluation mode set here, never undone")] if through_helper else []
    if step is not None:
        related.append(Related(document.span_of(step), "the next training step runs in eval mode"))
    if through_helper:
        helper = index.enclosing_function(eval_call)
        message = (
            f"`{helper.name}(...)` switches `{model}` to eval mode and this training loop never calls "
            f"`{model}.train()` again: every training step after the first evaluation runs with dropout "
            "off and BatchNorm frozen on its running statistics"
        )
    else:
        message = (
            f"`{model}.eval()` inside the training loop is never undone: nothing in the loop calls "
            f"`{model}.train()`, so every training step after the first evaluation runs with dropout off "
            "and BatchNorm frozen on its running statistics"
        )
    return rule.finding(document, site, message, related=related, fix=_train_fix(document, facts, site, model))


def _train_fix(document: Document, facts: EvaluationFacts, site: ast.AST, model: str) -> Fix | None:
    """`model.train()` after the evaluation: before the block's next training statement, or at its end."""
    index = document.index
    statement = index.enclosing_statement(site)
    if not isinstance(statement, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return None
    block = enclosing_block(index, statement)
    if block is None:
        return None
    indentation = document.indentation_of(statement.lineno)
    if len(indentation) != statement.col_offset:
        return None
    position = next(i for i, item in enumerate(block) if item is statement)
    text = f"{model}.train()"
    for item in block[position + 1 :]:
        if facts.runs_training(item) or isinstance(item, _STOPPERS):
            if len(document.indentation_of(item.lineno)) != item.col_offset:
                return None
            at = Span(item.lineno, 0, item.lineno, 0)
            return Fix(TRAIN_TITLE, UNSAFE, replacements=(Replace(at, f"{indentation}{text}\n"),))
    last = block[-1]
    end = len(document.line_text(last.end_lineno))
    at = Span(last.end_lineno, end, last.end_lineno, end)
    return Fix(TRAIN_TITLE, UNSAFE, replacements=(Replace(at, f"\n{indentation}{text}"),))


RULE = Rule(
    code="LLM309",
    name="eval-without-no-grad",
    summary="Evaluation runs with autograd on, or a training loop leaves the model in eval mode",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("srivastava2014dropout", "ioffe2015batchnorm", "chen2016sublinear"),
    check=check,
    docs=__doc__,
    tags=("evaluation", "memory", "training-loop"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT: the evaluation helper is decorated and restores training mode itself
        """
        import torch
        @torch.no_grad()
        def estimate_loss():
            model.eval()
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                X, Y = get_batch("val")
                logits, loss = model(X, Y)
                losses[k] = loss.item()
            model.train()
            return losses.mean()
        for it in range(max_iters):
            if it % eval_interval == 0:
                print(estimate_loss())
            logits, loss = model(*get_batch("train"))
            loss.backward()
            optimizer.step()
        """,
        # timm / PyTorch examples: the loop body under no_grad; training restores mode each epoch
        """
        import torch
        def validate(model, loader, loss_fn):
            model.eval()
            with torch.no_grad():
                for input, target in loader:
                    output = model(input)
                    loss = loss_fn(output, target)
        def train_one_epoch(model, loader, optimizer):
            model.train()
            for input, target in loader:
                model(input).sum().backward()
                optimizer.step()
        for epoch in range(10):
            train_one_epoch(model, train_loader, optimizer)
            validate(model, val_loader, loss_fn)
        """,
        # saliency: gradients are wanted in eval mode
        """
        import torch
        def evaluate_saliency(model, images):
            model.eval()
            images.requires_grad_(True)
            model(images).max(dim=1).values.sum().backward()
            return images.grad.abs()
        """,
        # Lightning: the framework disables autograd around validation_step
        """
        import torch
        import lightning as L
        class LitModel(L.LightningModule):
            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.log("val_loss", torch.nn.functional.cross_entropy(self.model(x), y))
        """,
        # inference mode around the whole pass
        """
        import torch
        model.eval()
        with torch.inference_mode():
            predictions = model(batch)
        """,
        # a frozen teacher stays in eval mode on purpose, and runs under no_grad
        """
        import torch
        teacher.eval()
        for x, y in loader:
            with torch.no_grad():
                soft = teacher(x)
            student.train()
            loss = distill(student(x), soft)
            loss.backward()
            optimizer.step()
        """,
        # the caller already disables autograd
        """
        import torch
        def evaluate(model, batch):
            model.eval()
            return model(batch)
        with torch.no_grad():
            score = evaluate(model, batch)
        """,
        # a pytest test comparing outputs
        """
        import torch
        def test_eval_is_deterministic():
            model = make_model()
            model.eval()
            assert torch.equal(model(x), model(x))
        """,
        # exporting: the forward call traces the model
        """
        import torch
        def export(model, example):
            model.eval()
            model(example)
            torch.onnx.export(model, example, "model.onnx")
        """,
    ),
    invalid=(
        # an evaluation function without no_grad: decorate it
        Invalid(
            """
            import torch

            def evaluate(model, loader):
                model.eval()
                total = 0.0
                for x, y in loader:
                    logits, loss = model(x, y)
                    total += loss.item()
                return total / len(loader)
            """,
            at=("7:24-7:35",),
            fixed="""
            import torch

            @torch.no_grad()
            def evaluate(model, loader):
                model.eval()
                total = 0.0
                for x, y in loader:
                    logits, loss = model(x, y)
                    total += loss.item()
                return total / len(loader)
            """,
        ),
        # an inference script: wrap the forward pass
        Invalid(
            """
            import torch
            from model import GPT
            model = GPT.from_pretrained("gpt2")
            model.eval()
            logits, _ = model(idx)  # (B, T, vocab)
            probs = logits.softmax(-1)
            """,
            at=("5:13-5:23",),
            fixed="""
            import torch
            from model import GPT
            model = GPT.from_pretrained("gpt2")
            model.eval()
            with torch.no_grad():
                logits, _ = model(idx)  # (B, T, vocab)
            probs = logits.softmax(-1)
            """,
        ),
        # periodic evaluation in the loop, never switched back
        Invalid(
            """
            import torch
            model.train()
            for step in range(max_steps):
                if step % 500 == 0:
                    model.eval()
                    with torch.no_grad():
                        val_loss = model(*val_batch)[1]
                    print(val_loss.item())
                loss = model(*get_batch())[1]
                loss.backward()
                optimizer.step()
            """,
            at=("5:9-5:21",),
            fixed="""
            import torch
            model.train()
            for step in range(max_steps):
                if step % 500 == 0:
                    model.eval()
                    with torch.no_grad():
                        val_loss = model(*val_batch)[1]
                    print(val_loss.item())
                    model.train()
                loss = model(*get_batch())[1]
                loss.backward()
                optimizer.step()
            """,
        ),
        # an evaluation helper that leaves the model in eval mode, called at the end of each epoch
        Invalid(
            """
            import torch

            @torch.no_grad()
            def evaluate(net, loader):
                net.eval()
                return sum(net(x).argmax(-1).eq(y).sum().item() for x, y in loader)

            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            for epoch in range(epochs):
                for x, y in train_loader:
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
                    optimizer.zero_grad()
                accuracy = evaluate(model, val_loader)
                print(epoch, accuracy)
            """,
            at=("14:16-14:43",),
            fixed="""
            import torch

            @torch.no_grad()
            def evaluate(net, loader):
                net.eval()
                return sum(net(x).argmax(-1).eq(y).sum().item() for x, y in loader)

            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            for epoch in range(epochs):
                for x, y in train_loader:
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    optimizer.step()
                    optimizer.zero_grad()
                accuracy = evaluate(model, val_loader)
                print(epoch, accuracy)
                model.train()
            """,
        ),
    ),
)
