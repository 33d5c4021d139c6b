"""A learning-rate scheduler stepped before the optimizer in the same loop pass.

## Problem
Inside a training loop, `scheduler.step()` comes before `optimizer.step()`: at the top of the
per-batch loop, or at the top of the epoch loop around it. Since PyTorch 1.1 a scheduler's
`step()` moves to the learning rate of the *next* optimizer step, so stepping it first skips the
schedule's first value: the very first update already uses the second learning rate, and every
later one is shifted by a step (or an epoch). PyTorch warns about it once
("Detected call of `lr_scheduler.step()` before `optimizer.step()`"), and the warning scrolls away.

## Diagnosis
The check reads the shared loop facts (`document.loops`). For each argument-less
`<scheduler>.step()` (a name the file builds as a scheduler, or one named like one) it takes the
innermost loop around it and the events of one pass of that loop, helpers included. It fires
when that pass steps the scheduler's optimizer (any optimizer when the pairing is unknown) only
after the scheduler: in the same iteration (`scheduler.step(); ...; optimizer.step()`) or in a
nested loop or helper further down (`for epoch ...: scheduler.step(); for batch ...:
optimizer.step()`). It stays silent for schedulers stepped with an argument
(`ReduceLROnPlateau.step(val_loss)`, timm's `step(epoch)` / `step_update(num_updates)`), which
compute their rate from what they are given, for a hand-written scheduler class of the file that
does not derive from PyTorch's `LRScheduler` (its `step()` may set the rate for the coming step),
when the scheduler step is guarded so it skips the first pass (`if epoch > 0:`), and when the
optimizer also steps earlier in the same pass.

## Hypothesis
PyTorch schedulers are stateful counters: construction sets the learning rate for step 0, and
each `step()` advances to the rate for the next optimizer step. Calling `step()` before the first
`optimizer.step()` advances the counter before any update has used the initial value. For a
warmup the first update is taken at the second warmup value (twice the intended rate for a
linear ramp from a tiny start, and the ramp ends a step early); for `StepLR`/`MultiStepLR` every
decay lands one epoch early; for a cosine schedule the whole curve shifts. The effect is small
for long schedules, but it is a silent deviation from the recipe, and it matters most exactly
where schedules are most delicate: the first steps of warmup.

## Literature
- Goyal et al. (2017) introduce gradual warmup for large-minibatch SGD and show that the first
  iterations are where the learning rate matters most for stability; skipping the first value of
  a warmup starts it one step late.
- Loshchilov and Hutter (2017, SGDR) introduce the cosine annealing schedule behind
  `CosineAnnealingLR`, defined as a function of the number of epochs (or steps) already
  performed, which is what the scheduler's counter must track.
- Liu et al. (2020, RAdam) attribute the need for warmup to the large variance of Adam's adaptive
  learning rate in the first steps, the steps a misplaced scheduler step affects.

## Recommendation
Step the scheduler after the optimizer, at the same frequency as before: per-batch schedulers
right after `optimizer.step()` (under the same accumulation guard), per-epoch schedulers at the
end of the epoch loop. With a `GradScaler`, after `scaler.step(optimizer)` (a skipped step then
still advances the schedule, which is the usual, harmless choice).

## Expected outcome
The first update uses the schedule's initial learning rate, the schedule lines up with the
recipe (warmup ends when intended, decays land on the intended epoch), and PyTorch's warning
disappears. Final metrics usually change little; early-training stability with short warmups
can improve.

## Implementation
Before:

    for batch in loader:
        scheduler.step()
        loss = model(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

After:

    for batch in loader:
        loss = model(batch)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()

The fix moves the scheduler's statement to just after the statement of its own block (the loop
body, or the `with accelerator.accumulate(...)` body inside it) that contains the optimizer step:
the step itself, its accumulation `if`, or the inner batch loop. It therefore still runs exactly as
often as before.

## Caveats
The fix is unsafe: it shifts the learning-rate sequence by one step (or epoch), which is the
point, but it changes what was trained before and the logged learning rate. It is offered only
when the scheduler step is a plain statement and the optimizer step comes later in the same block;
a scheduler step inside an `if` of its own is reported without a fix. Code that steps a scheduler first on purpose (a custom scheduler that
computes the rate for the current step) should pass the step explicitly or suppress the finding.
Schedulers built elsewhere and given an unusual name are invisible here.

## Next steps
Log `scheduler.get_last_lr()` (or `optimizer.param_groups[0]["lr"]`) at the first few steps and
at each decay boundary and compare with the intended schedule; run with
`-W error::UserWarning` once to confirm PyTorch's ordering warning is gone.
"""

from __future__ import annotations

import ast

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.loops import SCHEDULER_STEP, STEP, LoopEvent
from llmarch_lsp.facts.modules import dotted_name
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity, Span
from llmarch_lsp.fixes.builders import line_end
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace

FIX_TITLE = "Step the scheduler after the optimizer"

RULE_DOCS = __doc__

# Schedulers whose `step` takes the metric or the position explicitly: ordering does not shift them.
_EXPLICIT_SCHEDULERS = {"ReduceLROnPlateau"}
_FIRST_PASS_SKIPS = (ast.Gt, ast.GtE, ast.NotEq)


def check(document: Document, context: RuleContext, rule: Rule):
    loops = document.loops
    if not loops.iterations:
        return
    reported: set[int] = set()
    for scope in loops.scopes:
        for scheduler in loops.events_of_scope(scope):
            if scheduler.kind != SCHEDULER_STEP or id(scheduler.node) in reported:
                continue
            call = scheduler.node
            if call.func.attr != "step" or call.args or call.keywords or _takes_explicit_position(document, scheduler):
                continue
            if any(loops.loops_around(hop) for hop in scheduler.hops[1:]):
                continue  # a loop inside the helper repeats it: judged from there
            surrounding = loops.loops_around(scheduler.site)
            if not surrounding:
                continue
            loop = surrounding[0]
            steps = [event for event in loops.events_in(loop, scope) if event.kind == STEP and _same_optimizer(document, scheduler, event)]
            if not steps or any(step.order < scheduler.order for step in steps):
                continue
            if _skips_first_pass(document, scheduler.site, loop):
                continue
            reported.add(id(scheduler.node))
            first = steps[0]
            yield rule.finding(
                document,
                call,
                _message(scheduler, first),
                related=[Related(document.span_of(first.node), "the optimizer first steps here, after the scheduler")],
                fix=_fix(document, scheduler, first, loop),
            )


def _message(scheduler: LoopEvent, step: LoopEvent) -> str:
    return (
        f"`{scheduler.target}.step()` runs before `{step.target}` steps in this loop: a PyTorch scheduler's step "
        "moves to the learning rate of the next update, so the schedule's first value is skipped (the first "
        "update already uses the second rate, a warmup starts one step in, decays land one period early) and "
        "PyTorch warns. Step the scheduler after the optimizer (Goyal et al., 2017)"
    )


def _scheduler_site(document: Document, scheduler: LoopEvent):
    return next((site for site in document.training.schedulers if scheduler.target in site.names), None)


def _takes_explicit_position(document: Document, scheduler: LoopEvent) -> bool:
    """ReduceLROnPlateau, timm's schedulers, or a hand-written class of this file that is not a
    PyTorch `LRScheduler`: its `step()` may well set the rate for the step about to run."""
    site = _scheduler_site(document, scheduler)
    if site is not None and (site.class_name in _EXPLICIT_SCHEDULERS or site.kind.startswith("timm.")):
        return True
    local_classes = {node.name: node for node in document.index.classes}
    for assignment in document.training.assignments_to(scheduler.target or ""):
        value = assignment.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in local_classes:
            bases = [dotted_name(base) or "" for base in local_classes[value.func.id].bases]
            if not any(base.endswith("LRScheduler") for base in bases):
                return True
    return False


def _same_optimizer(document: Document, scheduler: LoopEvent, step: LoopEvent) -> bool:
    site = _scheduler_site(document, scheduler)
    if site is None or site.optimizer is None:
        return True
    if step.target == site.optimizer:
        return True
    optimizer = document.training.optimizer_named(site.optimizer)
    return optimizer is None or step.target in optimizer.names


def _skips_first_pass(document: Document, site: ast.AST, loop: ast.AST) -> bool:
    """`if epoch > 0: scheduler.step()` or `if step: ...`: the first pass does not step the scheduler."""
    for ancestor in document.index.ancestors(site):
        if ancestor is loop:
            return False
        if isinstance(ancestor, ast.If):
            test = ancestor.test
            if isinstance(test, (ast.Name, ast.Attribute)):
                return True
            for node in walk(test):
                if isinstance(node, ast.Compare) and any(isinstance(op, _FIRST_PASS_SKIPS) for op in node.ops):
                    if any(isinstance(side, ast.Constant) and side.value in (0, 1) for side in (node.left, *node.comparators)):
                        return True
    return False


def _fix(document: Document, scheduler: LoopEvent, step: LoopEvent, loop: ast.AST) -> Fix | None:
    """Move the scheduler's statement to just after the statement of its own block that holds the step."""
    if not scheduler.direct:
        return None
    statement = document.loops.own_line_statement(scheduler.node)
    if statement is None:
        return None
    block = document.loops.block_of(statement)
    if block is None:
        return None
    holder = next((item for item in block if _contains(document, item, step.site)), None)
    if holder is None or holder.lineno <= statement.end_lineno:
        return None  # the step is not later in the same block: moving would change how often it runs
    moved = "\n".join(document.line_text(line) for line in range(statement.lineno, statement.end_lineno + 1))
    remove = Replace(Span(statement.lineno, 0, statement.end_lineno + 1, 0), "")
    insert = Replace(line_end(document, holder.end_lineno), f"\n{moved}")
    return Fix(FIX_TITLE, UNSAFE, replacements=(remove, insert))


def _contains(document: Document, statement: ast.stmt, node: ast.AST) -> bool:
    return node is statement or any(ancestor is statement for ancestor in document.index.ancestors(node))


RULE = Rule(
    code="LLM308",
    name="scheduler-before-optimizer-step",
    summary="Learning-rate scheduler stepped before the optimizer in the same loop pass",
    severity=Severity.WARNING,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("goyal2017accurate", "loshchilov2017sgdr", "liu2020radam"),
    check=check,
    docs=RULE_DOCS,
    tags=("schedule", "training-loop"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # Hugging Face no-trainer order
        """
        import torch
        for batch in loader:
            model(**batch).loss.backward()
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        """,
        # a per-epoch scheduler at the end of the epoch
        """
        import torch
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
        for epoch in range(90):
            for images, labels in loader:
                optimizer.zero_grad()
                criterion(model(images), labels).backward()
                optimizer.step()
            scheduler.step()
        """,
        # ReduceLROnPlateau reads a metric: its position is its own business
        """
        import torch
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
        for epoch in range(50):
            scheduler.step(validate(model))
            for batch in loader:
                model(batch).backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        # guarded so the first pass does not step it
        """
        import torch
        for epoch in range(100):
            if epoch > 0:
                scheduler.step()
            for batch in loader:
                model(batch).backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        # timm schedulers are told the position explicitly
        """
        import torch
        from timm.scheduler import CosineLRScheduler
        lr_scheduler = CosineLRScheduler(optimizer, t_initial=300)
        for epoch in range(300):
            lr_scheduler.step(epoch)
            for batch in loader:
                model(batch).backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        # a hand-written schedule that sets the rate for the step about to run
        """
        import math
        import torch

        class CosineSchedule:
            def __init__(self, optimizer, total):
                self.optimizer, self.total, self.t = optimizer, total, 0
            def step(self):
                for group in self.optimizer.param_groups:
                    group["lr"] = 0.5 * (1 + math.cos(math.pi * self.t / self.total)) * 3e-4
                self.t += 1

        scheduler = CosineSchedule(optimizer, 10_000)
        for batch in loader:
            scheduler.step()
            model(batch).backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            from torch.optim.lr_scheduler import LambdaLR
            scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 500))
            for step, batch in enumerate(loader):
                scheduler.step()  # advance the warmup
                loss = model(batch)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            """,
            at=("5:5-5:21",),
            fixed="""
            import torch
            from torch.optim.lr_scheduler import LambdaLR
            scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 500))
            for step, batch in enumerate(loader):
                loss = model(batch)
                loss.backward()
                optimizer.step()
                scheduler.step()  # advance the warmup
                optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            import torch

            def fit(model, optimizer, loader, epochs):
                scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[30, 60])
                for epoch in range(epochs):
                    scheduler.step()
                    for x, y in loader:
                        optimizer.zero_grad()
                        torch.nn.functional.cross_entropy(model(x), y).backward()
                        optimizer.step()
                    print(f"epoch {epoch} done")
            """,
            at=("6:9-6:25",),
            fixed="""
            import torch

            def fit(model, optimizer, loader, epochs):
                scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[30, 60])
                for epoch in range(epochs):
                    for x, y in loader:
                        optimizer.zero_grad()
                        torch.nn.functional.cross_entropy(model(x), y).backward()
                        optimizer.step()
                    scheduler.step()
                    print(f"epoch {epoch} done")
            """,
        ),
        Invalid(
            """
            import torch
            for i, batch in enumerate(loader):
                if i % 100 == 0:
                    sched.step()
                model(batch).backward()
                opt.step()
                opt.zero_grad()
            """,
            at=("4:9-4:21",),
        ),
    ),
)
