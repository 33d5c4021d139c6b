"""A training loop that steps the optimizer on every pass but never clears the gradients.

## Problem
A loop runs a backward and an optimizer step on every pass, and nothing in the pass clears
`.grad` (no `optimizer.zero_grad()`, `model.zero_grad()`, `p.grad = None`). PyTorch adds each
backward's gradients into `.grad`, so the k-th step applies the sum of all k gradients so far.
Training often still "works" for a few hundred steps, which is why this survives code review.

## Diagnosis
The check reads the shared loop facts (`document.loops`): an iteration is the innermost loop
around an optimizer step that also runs a backward, directly or through local helpers. It fires
when no event of that iteration clears gradients: `*.zero_grad(...)` on an optimizer or a model
(before the backward, after the step, inside a helper the loop calls, or under an accumulation
guard that zeroes every N micro-batches all count), `p.grad = None`, `p.grad.zero_()`. A
`zero_grad()` that runs only outside the loop (once per epoch around a per-batch loop) does not
count, and is pointed out. It stays silent when DeepSpeed or another trainer runs the backward (its
engine zeroes), for closure-driven optimizers (`optimizer.step(closure)`: LBFGS clears in the
closure), when the model and its optimizer are both rebuilt inside the loop (a sweep over fresh
models; rebuilding only the optimizer does not clear `.grad`), when the loop calls something
named like a gradient reset (`reset_*`, `clear_*`), when a step hook may zero, and for loops of a
single literal iteration.

## Hypothesis
Without clearing, the update at step k is proportional to g_1 + ... + g_k. For SGD that is an
effective learning rate growing linearly with k on the persistent gradient component, plus a
random walk from the noise; for Adam the first moment is dominated by stale directions and the
second moment by their growing sum, so the update stops tracking the current loss surface. The
usual symptoms are a loss that improves briefly and then diverges or oscillates, exploding
weight norms, or, with clipping, training that crawls because the clip always fires.

## Literature
- Li et al. (2020) describe how PyTorch DistributedDataParallel accumulates gradients into
  `.grad` across backward passes (with `no_sync` to skip communication), which is exactly the
  behaviour that makes clearing between optimizer steps mandatory.
- Goyal et al. (2017) define the minibatch SGD update as the average gradient over the current
  minibatch only, and show that the effective batch size and learning rate must be kept
  consistent; an uncleared `.grad` silently changes both on every step.

## Recommendation
Clear the gradients once per optimizer step: `optimizer.zero_grad(set_to_none=True)` right after
`optimizer.step()` (or at the top of the iteration, before the backward). With gradient
accumulation, clear after each real step, inside the same `if` that guards the step.
`set_to_none=True` (the default since PyTorch 2.0) frees the gradient memory between steps and is
slightly faster than writing zeros.

## Expected outcome
The loss follows a normal curve instead of improving briefly and then blowing up; gradient norms
stay roughly constant instead of growing with the step count; and the same learning rate that
diverged before now trains.

## Implementation
Before:

    for step in range(max_iters):
        loss = model(x, y)
        loss.backward()
        optimizer.step()

After:

    for step in range(max_iters):
        loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

With a GradScaler the call goes after `scaler.update()`. The fix uses the optimizer's name as the
step spells it, so it is valid wherever the step is, including inside a helper.

## Caveats
The fix is unsafe in the sense that it changes behaviour, but the behaviour it removes is almost
never intended. Code that means to sum gradients over many backward passes and step once (a
full-batch update) steps outside the loop and is not flagged; code that accumulates across
passes of this very loop must step under a guard (`if (i + 1) % accum == 0`) and zero there. A
reset hidden in an imported helper, a step hook or a custom optimizer that clears its own
gradients is invisible here: the rule tries to stay silent when it sees a hint of one, but if
your optimizer clears `.grad` itself, suppress the finding on that line.

## Next steps
Log the global gradient norm per step before and after the fix: before, it grows with the step
count; after, it should be flat or slowly decreasing. If you relied on the implicit growth as a
larger learning rate, retune the learning rate (and warmup) after the fix.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.loops import SCALER_UPDATE, ZERO_GRAD, LoopEvent, TrainingIteration
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.builders import line_end
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace

FIX_TITLE = "Clear the gradients after each optimizer step"

RULE_DOCS = __doc__

# Engines that zero gradients inside their own step.
_FRAMEWORK_OWNED = {"deepspeed", "lightning", "framework"}
# A call in the loop that may clear gradients where we cannot see (`reset_model(model)`).
_MAY_CLEAR = re.compile(r"zero_?grad|reset|clear", re.IGNORECASE)
_STEP_HOOKS = ("register_step_post_hook", "register_step_pre_hook")


def check(document: Document, context: RuleContext, rule: Rule):
    iterations = document.loops.iterations
    if not iterations:
        return
    for iteration in iterations:
        if iteration.zero_grads or iteration.framework in _FRAMEWORK_OWNED:
            continue
        if iteration.literal_count <= 1:
            continue
        steps = iteration.steps
        if any(step.node.args and step.scaler is None for step in steps):
            continue  # `optimizer.step(closure)`: the closure clears and recomputes
        if _rebuilt_each_pass(document, iteration) or _may_clear_elsewhere(document, iteration):
            continue
        outside = _clearing_outside(document, iteration)
        related = [Related(document.span_of(backward.node), "adds into `.grad` on every pass") for backward in iteration.backwards]
        related += [
            Related(document.span_of(event.node), "clears gradients only here, outside the loop: once, not every step")
            for event in outside
        ]
        yield rule.finding(
            document,
            steps[0].node,
            _message(steps[0], outside),
            related=related,
            fix=_fix(document, steps),
        )


def _message(step: LoopEvent, outside: list[LoopEvent]) -> str:
    where = " (the `zero_grad` outside the loop runs once, not every step)" if outside else ""
    return (
        f"This loop runs backward and `{step.target}` steps on every pass, but nothing in the pass clears the "
        f"gradients{where}: PyTorch adds each backward into `.grad`, so step k applies the sum of all k gradients "
        "so far (an effective learning rate that grows every step, momentum built on stale directions). Call "
        f"`{step.target}.zero_grad(set_to_none=True)` once per step (Li et al., 2020)"
    )


def _rebuilt_each_pass(document: Document, iteration: TrainingIteration) -> bool:
    """The optimizer and the module it trains are both built inside the loop (a sweep over fresh
    models): gradients never carry over. Rebuilding only the optimizer does not clear `.grad`."""
    index = document.index
    training = document.training
    names = {step.target for step in iteration.steps if step.target}
    for node, _ in training._uses_of(names):
        statement = index.enclosing_statement(node)
        if not (isinstance(node.ctx, ast.Store) and isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)):
            continue
        if not any(ancestor is iteration.loop for ancestor in index.ancestors(node)):
            continue
        arguments = [*statement.value.args, *(keyword.value for keyword in statement.value.keywords)]
        sources = {child.id for argument in arguments for child in walk(argument) if isinstance(child, ast.Name)}
        for source, _ in training._uses_of(sources):
            if not isinstance(source.ctx, ast.Store) or _comprehension_target(index, source):
                continue
            bound = index.enclosing_statement(source)
            if (
                bound is not statement
                and isinstance(bound, (ast.Assign, ast.AnnAssign))
                and isinstance(bound.value, ast.Call)
                and any(ancestor is iteration.loop for ancestor in index.ancestors(bound))
            ):
                return True  # `model = Net()` in the loop too
    return False


def _comprehension_target(index, node: ast.AST) -> bool:
    parent = index.parent(node)
    while isinstance(parent, (ast.Tuple, ast.List, ast.Starred)):
        parent = index.parent(parent)
    return isinstance(parent, ast.comprehension)


def _may_clear_elsewhere(document: Document, iteration: TrainingIteration) -> bool:
    """A reset-like call inside the loop, a step hook, or a `zero_grad` in a lambda (a callback)."""
    if any(hook in document.source for hook in _STEP_HOOKS):
        return True
    index = document.index
    calls = document.index.calls_by_name
    for name, group in calls.items():
        if not _MAY_CLEAR.search(name):
            continue
        for call in group:
            if isinstance(index.enclosing_function(call), ast.Lambda) and "grad" in name:
                return True
            if any(ancestor is iteration.loop for ancestor in index.ancestors(call)):
                return True
    return False


def _clearing_outside(document: Document, iteration: TrainingIteration) -> list[LoopEvent]:
    """`zero_grad` calls of the same function that run around, not inside, the loop."""
    loops = document.loops
    return [
        event
        for event in loops.events_of_scope(iteration.scope)
        if event.kind == ZERO_GRAD and iteration.loop not in loops.loops_around(event.site)
        and (event.site.lineno, event.site.col_offset) < (iteration.loop.lineno, iteration.loop.col_offset)
    ]


def _fix(document: Document, steps: list[LoopEvent]) -> Fix | None:
    """`<optimizer>.zero_grad(set_to_none=True)` after each step (after `scaler.update()` when it follows)."""
    loops = document.loops
    replacements = []
    seen: set[str] = set()
    for step in steps:
        if step.target is None or step.target in seen:
            continue
        seen.add(step.target)
        statement = loops.own_line_statement(step.node)
        if statement is None:
            return None
        anchor = statement
        following = loops.next_sibling(anchor)
        while following is not None and _is_scaler_update(document, following):
            anchor, following = following, loops.next_sibling(following)
        indentation = document.indentation_of(statement.lineno)
        replacements.append(Replace(line_end(document, anchor.end_lineno), f"\n{indentation}{step.target}.zero_grad(set_to_none=True)"))
    if not replacements:
        return None
    return Fix(FIX_TITLE, UNSAFE, replacements=tuple(replacements))


def _is_scaler_update(document: Document, statement: ast.stmt) -> bool:
    if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
        return False
    return any(
        event.kind == SCALER_UPDATE and event.node is statement.value
        for event in document.loops.events_of_scope(document.index.enclosing_function(statement))
    )


RULE = Rule(
    code="LLM306",
    name="missing-zero-grad",
    summary="Training loop calls backward and step on every pass but never clears the gradients",
    severity=Severity.ERROR,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("li2020ddp", "goyal2017accurate"),
    check=check,
    docs=RULE_DOCS,
    tags=("optimization", "training-loop", "bug"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # the PyTorch examples' shape: zero before the backward
        """
        import torch
        def train(model, loader, optimizer):
            for data, target in loader:
                optimizer.zero_grad()
                torch.nn.functional.nll_loss(model(data), target).backward()
                optimizer.step()
        """,
        # accumulation: zero every N micro-batches, under the same guard as the step
        """
        import torch
        for i, batch in enumerate(loader):
            (model(batch) / accum).backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        """,
        # the helper the loop calls clears them
        """
        import torch
        def reset_gradients(model):
            for p in model.parameters():
                p.grad = None
        for batch in loader:
            model(batch).backward()
            optimizer.step()
            reset_gradients(model)
        """,
        # LBFGS: the closure zeroes and recomputes
        """
        import torch
        optimizer = torch.optim.LBFGS(model.parameters())
        for _ in range(20):
            def closure():
                optimizer.zero_grad()
                loss = model(x).sum()
                loss.backward()
                return loss
            model(x).sum().backward()
            optimizer.step(closure)
        """,
        # a fresh optimizer on every pass (a hyperparameter sweep)
        """
        import torch
        for lr in (1e-3, 1e-4):
            model = Net()
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)
            model(x).sum().backward()
            optimizer.step()
        """,
        # DeepSpeed's engine zeroes inside `engine.step()`
        """
        import deepspeed
        engine, optimizer, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters())
        for batch in loader:
            engine.backward(engine(batch))
            engine.step()
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            from model import GPT
            model = GPT()
            optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
            for step in range(5000):
                logits, loss = model(x, y)
                loss.backward()
                optimizer.step()  # update
                print(step, loss.item())
            """,
            at=("8:5-8:21",),
            fixed="""
            import torch
            from model import GPT
            model = GPT()
            optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
            for step in range(5000):
                logits, loss = model(x, y)
                loss.backward()
                optimizer.step()  # update
                optimizer.zero_grad(set_to_none=True)
                print(step, loss.item())
            """,
        ),
        Invalid(
            """
            import torch

            def train(model, loader, opt, scaler):
                for x, y in loader:
                    with torch.autocast("cuda", dtype=torch.float16):
                        loss = torch.nn.functional.cross_entropy(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
            """,
            at=("8:9-8:25",),
            fixed="""
            import torch

            def train(model, loader, opt, scaler):
                for x, y in loader:
                    with torch.autocast("cuda", dtype=torch.float16):
                        loss = torch.nn.functional.cross_entropy(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad(set_to_none=True)
            """,
        ),
        # zeroed once per epoch, around a per-batch loop
        Invalid(
            """
            import torch
            for epoch in range(10):
                optimizer.zero_grad()
                for batch in loader:
                    model(batch).mean().backward()
                    optimizer.step()
            """,
            at=("6:9-6:25",),
        ),
    ),
)
