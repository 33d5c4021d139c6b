"""Gradient accumulation that sums micro-batch gradients without dividing the loss.

## Problem
A loop accumulates gradients over N micro-batches before each optimizer step (the step sits under
`if (i + 1) % accum == 0`, or the backward runs in an inner `for micro_step in range(accum)`
loop), but each micro-batch's loss goes into backward as is. The accumulated gradient is then the
*sum* of N mean-reduced gradients, N times the gradient of the large batch the accumulation is
meant to emulate. Changing `accum` silently changes the effective learning rate (for SGD) and the
clipping threshold (for everything).

## Diagnosis
The check reads the shared loop facts (`document.loops`): an iteration is the innermost loop
around an optimizer step that also runs a backward, and accumulation is recognised when the step
is guarded by an `if` whose test (or a flag it reads, such as timm's `need_update`) uses `%` while
the backward is not under that guard, or when the backward sits in an inner loop over
`range(accum)` whose counter or bound speaks of accumulation or micro-steps. For each plain
backward in the accumulation region it follows the loss back through the function's assignments:
`loss / accum`, `loss * (1 / accum)`, `loss /= accum`, `loss.div_(accum)`, an earlier
`loss = loss / accum` (also inside an `if accum > 1:`), or a loss computed by a call whose
arguments mention accumulation (`num_items_in_batch=...`) all count as normalised. It stays
silent when the loss is a function parameter, a local helper's result or otherwise out of sight,
when accelerate's `accelerator.backward` runs the backward (it divides by its own accumulation
steps) or `with accelerator.accumulate(model):` is used, and for DeepSpeed, Fabric and Lightning.

## Hypothesis
`.grad` accumulates by summation. With mean-reduced losses, N backward passes produce
sum_i grad(L_i) = N x grad(mean_i L_i), so the update is N times larger than the large-batch
update it is supposed to reproduce. Plain SGD (and SGD with momentum) then trains at N times the
learning rate; weight decay, which is not multiplied, becomes relatively N times weaker. Adam is
nearly invariant to a constant gradient scale, but its epsilon is not, and the global-norm
clipping threshold is hit N times more often, so the clipped update is far smaller than intended.
Every change of the accumulation count (for instance when moving to more GPUs) then changes the
optimisation in a way that no config field records.

## Literature
- Goyal et al. (2017), in their list of pitfalls of distributed SGD, point out that each worker's
  loss must be normalised by the total minibatch size rather than by the per-worker size, and
  that scaling the loss is not equivalent to scaling the learning rate once momentum and weight
  decay are involved; micro-batch accumulation is the same computation serialised.
- Huang et al. (2019, GPipe) split each minibatch into micro-batches and accumulate their
  gradients so that one synchronous update equals the update of the whole minibatch.
- Li et al. (2020) describe gradient accumulation with PyTorch DDP (`no_sync`), where gradients
  are summed locally across backward passes before the averaged all-reduce.

## Recommendation
Divide each micro-batch's loss by the number of accumulation steps before its backward:
`(loss / accum).backward()`, or `loss = loss / accum` right before it (nanoGPT's shape). When
micro-batches hold different numbers of tokens, divide the summed loss by the total number of
tokens in the accumulation window instead (Hugging Face's `num_items_in_batch`), which makes the
accumulated gradient exactly equal to the large-batch one.

## Expected outcome
The accumulated gradient equals the large-batch gradient (up to float rounding), so the learning
rate, weight decay and clipping threshold mean the same thing at every accumulation count, and
runs with accum=1 and accum=N on a proportionally smaller batch follow the same loss curve.

## Implementation
Before:

    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y)
        loss.backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()

After:

    for i, (x, y) in enumerate(loader):
        loss = criterion(model(x), y)
        (loss / accum_steps).backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()

The division is written inside the backward call (and inside `scaler.scale(...)` when a
GradScaler is used), so a `loss` logged afterwards keeps its per-micro-batch meaning. The fix is
offered when the accumulation count is spelled where the backward is (`accum_steps`, a literal, a
`range(...)` bound).

## Caveats
The fix is unsafe: it changes the gradient scale by 1/N, which is the point, but learning rates
tuned on the unnormalised sum (mostly with SGD) must be re-tuned, and with Adam the change shows
mainly through clipping and epsilon. A last, partial accumulation window (`or i == len(loader) -
1`) is still divided by the full N, a small, common imprecision. A loss that is already a sum over
tokens divided by a global token count is fine and not flagged when the division is visible;
normalisation inside the model or an imported loss function is invisible, in which case suppress
the finding.

## Next steps
Check the equivalence directly: for one window, compare the accumulated gradient with the
gradient of the concatenated batch (`torch.allclose` on a few parameters). Then compare the loss
curves of accum=1 and accum=N at equal tokens per step; they should overlap.
"""

from __future__ import annotations

import ast

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.loops import ACCELERATE, MICRO_LOOP, UNDIVIDED, Accumulation, LoopEvent, TrainingIteration
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace

FIX_TITLE = "Divide the loss by the number of accumulation steps"

RULE_DOCS = __doc__

# Nodes that need no parentheses as an operand of `/`.
_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)


def check(document: Document, context: RuleContext, rule: Rule):
    iterations = document.loops.iterations
    if not iterations:
        return
    for iteration in iterations:
        accumulation = iteration.accumulation
        if accumulation is None or accumulation.kind == ACCELERATE or iteration.framework is not None:
            continue
        for backward in _accumulating_backwards(document, iteration, accumulation):
            if document.loops.loss_division(backward) != UNDIVIDED:
                continue
            yield rule.finding(
                document,
                backward.node,
                _message(document, accumulation),
                related=[Related(document.span_of(accumulation.node), _where(accumulation))],
                fix=_fix(document, backward, accumulation),
            )


def _accumulating_backwards(document: Document, iteration: TrainingIteration, accumulation: Accumulation):
    for backward in iteration.backwards:
        if backward.framework is not None:
            continue
        if accumulation.kind == MICRO_LOOP and accumulation.node not in document.loops.loops_around(backward.site):
            continue
        yield backward


def _count(document: Document, accumulation: Accumulation) -> str:
    return f"`{document.segment(accumulation.steps)}`" if accumulation.steps is not None else "the number of micro-batches"


def _where(accumulation: Accumulation) -> str:
    if accumulation.kind == MICRO_LOOP:
        return "micro-batches accumulate here before one optimizer step"
    return "the optimizer steps only every N micro-batches here"


def _message(document: Document, accumulation: Accumulation) -> str:
    count = _count(document, accumulation)
    return (
        f"Gradients are accumulated over {count} micro-batches, but each loss goes into backward undivided: "
        f"`.grad` sums them, so every step applies {count} times the large-batch gradient (SGD trains at that "
        "multiple of the learning rate, and clipping and weight decay change meaning whenever the count changes). "
        f"Divide the loss by {count} before backward (Goyal et al., 2017)"
    )


def _fix(document: Document, backward: LoopEvent, accumulation: Accumulation) -> Fix | None:
    """`(loss / accum).backward()`, or `scaler.scale(loss / accum).backward()`."""
    steps = accumulation.steps
    loss = backward.loss
    if steps is None or loss is None or backward.framework is not None:
        return None
    if document.index.enclosing_function(steps) is not document.index.enclosing_function(backward.node):
        return None  # the count is spelled in another function: not in scope here
    divisor = _operand(document, steps)
    divided = f"{_operand(document, loss)} / {divisor}"
    call = backward.node
    if backward.scaler is None and isinstance(call.func, ast.Attribute) and call.func.value is loss:
        # Already parenthesised in the source (`(a + b).backward()`): the parentheses stay around the new text.
        parenthesised = (call.func.lineno, call.func.col_offset) != (loss.lineno, loss.col_offset)
        if not parenthesised:
            divided = f"({divided})"
    return Fix(FIX_TITLE, UNSAFE, replacements=(Replace(document.span_of(loss), divided),))


def _operand(document: Document, node: ast.AST) -> str:
    text = document.segment(node)
    return text if isinstance(node, _ATOMS) else f"({text})"


RULE = Rule(
    code="LLM307",
    name="unnormalized-grad-accumulation",
    summary="Gradient accumulation sums micro-batch gradients without dividing the loss by the step count",
    severity=Severity.WARNING,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("goyal2017accurate", "huang2019gpipe", "li2020ddp"),
    check=check,
    docs=RULE_DOCS,
    tags=("optimization", "training-loop", "batch-size"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT: divided right after the forward
        """
        import torch
        while True:
            for micro_step in range(gradient_accumulation_steps):
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps
                scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        """,
        # divided inside the backward call
        """
        import torch
        for i, (x, y) in enumerate(loader):
            (criterion(model(x), y) / accum).backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        # accelerate divides by its own accumulation steps
        """
        from accelerate import Accelerator
        accelerator = Accelerator(gradient_accumulation_steps=4)
        for batch in loader:
            with accelerator.accumulate(model):
                accelerator.backward(model(**batch).loss)
                optimizer.step()
                optimizer.zero_grad()
        """,
        # in-place division under a guard (timm's shape)
        """
        import torch
        for idx, (x, y) in enumerate(loader):
            loss = loss_fn(model(x), y)
            if accum_steps > 1:
                loss /= accum_steps
            loss.backward()
            if (idx + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        # the loss normalises by the tokens of the whole window
        """
        import torch
        for i, batch in enumerate(loader):
            loss = model(**batch, num_items_in_batch=window_tokens).loss
            loss.backward()
            if (i + 1) % accum == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
        # no accumulation: every micro-batch is a step
        """
        import torch
        for x, y in loader:
            criterion(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        # summing task losses in an inner loop is not micro-batching
        """
        import torch
        for batch in loader:
            for task in tasks:
                task.loss(model, batch).backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                loss.backward()
                if (i + 1) % accum_steps == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
            at=("4:5-4:20",),
            fixed="""
            import torch
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                (loss / accum_steps).backward()
                if (i + 1) % accum_steps == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            import torch
            from model import GPT

            def train(model, optimizer, scaler, get_batch, max_iters, grad_accum=8):
                for it in range(max_iters):
                    for micro_step in range(grad_accum):
                        x, y = get_batch()
                        with torch.autocast("cuda", dtype=torch.bfloat16):
                            logits, loss = model(x, y)
                        scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
            """,
            at=("10:13-10:42",),
            fixed="""
            import torch
            from model import GPT

            def train(model, optimizer, scaler, get_batch, max_iters, grad_accum=8):
                for it in range(max_iters):
                    for micro_step in range(grad_accum):
                        x, y = get_batch()
                        with torch.autocast("cuda", dtype=torch.bfloat16):
                            logits, loss = model(x, y)
                        scaler.scale(loss / grad_accum).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
            """,
        ),
        Invalid(
            """
            import torch
            for step, batch in enumerate(loader):
                (model(batch).loss + aux_weight * router_loss).backward()
                if step % 4 == 0:
                    opt.step()
                    opt.zero_grad()
            """,
            at=("3:5-3:62",),
            fixed="""
            import torch
            for step, batch in enumerate(loader):
                ((model(batch).loss + aux_weight * router_loss) / 4).backward()
                if step % 4 == 0:
                    opt.step()
                    opt.zero_grad()
            """,
        ),
    ),
)
