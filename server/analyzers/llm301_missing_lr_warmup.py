"""An Adam-family optimizer that a training loop steps at the full learning rate from step 0.

## Problem
A transformer is trained with Adam, AdamW or a relative (8-bit AdamW, FusedAdam, NAdam...) and the
loop calls `optimizer.step()` from the first iteration at the full learning rate: nothing in the
file ramps the rate up (no warmup scheduler, no hand-written `param_group["lr"]` ramp). The loss
often looks fine for a while; the damage is done in the first few hundred steps.

## Diagnosis
The file builds an Adam-family optimizer, steps it inside a `for`/`while` loop (directly, through
`scaler.step(optimizer)`, or in a function that the loop calls), and shows that a transformer is
being trained (a model imported from a transformer library (a tokenizer or config alone does not
count), a class named like GPT/Bert/Llama/ViT/...Attention,
`nn.MultiheadAttention`, `scaled_dot_product_attention`). It stays silent whenever a warmup may
exist: a `LambdaLR` whose factor can rise (or whose function it cannot see), `LinearLR` or
`ConstantLR` starting below 1, `OneCycleLR`, a `SequentialLR` whose first stage warms up,
`get_*_schedule_with_warmup` / `transformers.get_scheduler` with non-zero `num_warmup_steps`, timm
schedulers with `warmup_t`, any write to `param_group["lr"]`, any identifier or config key that
mentions warmup, any scheduler built elsewhere (`create_scheduler(args, optimizer)`, a scheduler
parameter), or any unknown helper the optimizer is handed to. RAdam is not flagged (it rectifies
the variance itself); neither are Adafactor, Lion or SGD. Without a sign of a transformer (an MNIST
CNN, a GAN) the rule stays silent rather than hint: Adam trains those fine from step 0. It also
skips linear probes and head-only fine-tunes (`probe.parameters()` of an `nn.Linear`), Adam on
input tensors (`Adam([delta])`), and loops of fewer than 100 literal steps (smoke tests).

## Hypothesis
Adam divides each update by the square root of an exponential moving average of squared
gradients. In the first steps that average is built from a handful of samples, so its variance is
large and the effective per-parameter step size is erratic; at the full learning rate those
updates are big enough to push a transformer into a bad region (attention logits that saturate,
exploding residual streams), from which it recovers slowly or never. Post-LN stacks are hit hardest
because their gradients near the output are large at initialisation. A short linear ramp keeps
early updates small until the second-moment estimate has settled.

## Literature
- Liu et al. (2020, "On the Variance of the Adaptive Learning Rate and Beyond", RAdam) show that the
  adaptive learning rate has problematically large variance in early steps, that warmup works by
  reducing it, and that rectifying the variance (RAdam) removes most of the need for warmup.
- Xiong et al. (2020) show that Post-LN transformers have large gradients near the output at
  initialisation and diverge without warmup, while Pre-LN transformers tolerate little or none.
- Vaswani et al. (2017) trained the original Transformer with 4,000 linear warmup steps, a
  recipe that nearly every transformer since has kept.
- Kingma and Ba (2015) introduced Adam and its bias correction, which fixes the mean of the
  moment estimates but not their variance in early steps.
- Loshchilov and Hutter (2019) decouple weight decay (AdamW); their schedules also warm up.
- Goyal et al. (2017) established gradual warmup for large learning rates in large-batch
  training, where early instability is the bottleneck.
- Wortsman et al. (2023) find, in small-scale proxies of large runs, that longer warmup reduces the
  learning-rate sensitivity of transformer training, and that short warmup exposes instabilities.

## Recommendation
Ramp the learning rate linearly from ~0 to its target over the first 1-5% of training steps (a
few hundred to a few thousand steps), then decay as before. The smallest change is a `LambdaLR`
with `min(1.0, (step + 1) / warmup_steps)`, stepped once per optimizer step. With an existing decay
schedule, put a `LinearLR(optimizer, start_factor=1e-3, total_iters=warmup_steps)` first in a
`SequentialLR`, or use `transformers.get_cosine_schedule_with_warmup`.

## Expected outcome
No loss spikes or divergence in the first few hundred steps; the learning rate that trains
stably goes up (often by 2-10x for post-norm or deep models), and the final validation loss /
perplexity is equal or better at the same budget. On small pre-norm models the gain may be small.

## Implementation
Before:

    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)
    for step in range(max_iters):
        loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

After:

    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)
    # Linear warmup: Adam's second-moment estimate is noisy for the first steps; ramp the LR up (Liu et al., 2020, arXiv:1908.03265)
    warmup_steps = 1000  # tune: ~1-5% of training steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
    for step in range(max_iters):
        loss = model(x, y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

## Caveats
Compute and memory cost is nil: one multiply per parameter group per step. The fix is unsafe (it
changes the optimisation trajectory) and is offered only when the names are free. It takes one of
three shapes: a `LambdaLR` warmup when the optimizer has no schedule; a `SequentialLR` that runs a
`LinearLR` warmup and then the existing decay schedule (rebound to the same name, so the loop's
`scheduler.step()` drives both) when there is one torch decay schedule stepped once per optimizer
step; and a named `warmup_steps` in place of `num_warmup_steps=0` for Hugging Face schedules. With
the `SequentialLR` shape the decay starts after the warmup, so the run's schedule is `warmup_steps`
longer than before; two independent schedulers on one optimizer would overwrite each other, so a
file with several schedules, or one stepped per epoch, gets no fix. The warmup length is a hyperparameter:
the inserted 1,000 steps is a placeholder. Warmup is established practice with strong empirical
support; the variance explanation is one of several (Liu et al.; Xiong et al.), and RAdam is a
drop-in alternative that needs no schedule change. Pre-LN models need much less warmup and small
ones may train without it, hence medium confidence. Statically, a warmup applied in another file,
a config, or a framework (Lightning, the HF `Trainer`, DeepSpeed) is invisible; the rule then stays
silent rather than guess.

## Next steps
Log the learning rate every step to confirm the ramp, then watch the first 1-2k steps: loss spikes,
the global gradient norm (should not jump by orders of magnitude), and the update-to-parameter
ratio `lr * |update| / |param|` per layer (~1e-3 is healthy; early spikes to 1e-1 mean the ramp is
too short). If training is stable, try a higher peak learning rate or a shorter warmup.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.modules import dotted_name
from llmarch_lsp.facts.training import (
    OptimizerSite,
    SchedulerSite,
    StepSite,
    TrainingFacts,
    literal_number,
)
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity, Span
from llmarch_lsp.fixes.builders import cited_comment, line_end
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace
from llmarch_lsp.fixes.shapes import owns_its_lines

FIX_TITLE = "Add a linear learning-rate warmup"

RULE_DOCS = __doc__

_FIX_REASON = "Linear warmup: Adam's second-moment estimate is noisy for the first steps; ramp the LR up"
# Fewer optimizer steps than this (a smoke test, a few full-batch steps) have no early phase to protect.
_SHORT_RUN = 100
_SEQUENTIAL_REASON = (
    "Linear warmup, then the original schedule: Adam's second-moment estimate is noisy for the first steps"
)
# Decay schedules that SequentialLR can resume after a warmup stage (ReduceLROnPlateau needs a metric).
_SEQUENTIAL_STAGES = {
    "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "PolynomialLR",
}
_TORCH_SCHEDULERS = "torch.optim.lr_scheduler."
_SCHEDULER_NAME = "scheduler"
_WARMUP_NAME = "warmup_steps"
# What a linear probe or a head-only fine-tune calls the only module it trains.
_PROBE_NAME = re.compile(r"probe|classifier|^head$|^fc$|^linear", re.IGNORECASE)


def check(document: Document, context: RuleContext, rule: Rule):
    if not document.imports.imports_module("torch"):
        return
    facts = document.training
    candidates = [optimizer for optimizer in facts.optimizers if optimizer.family == "adam"]
    if not candidates:
        return
    for optimizer in candidates:
        steps = [step for step in facts.steps_of(optimizer) if step.loop is not None]
        if not steps or all(_literal_step_count(document, step) < _SHORT_RUN for step in steps):
            continue  # a smoke test or a few full-batch steps: no early phase to protect
        if _may_warm_up(facts, optimizer):
            continue
        if facts.transformer_evidence is None or not _trains_a_network(document, optimizer):
            continue  # Adam on a CNN, GAN, probe or input tensor trains fine without warmup
        schedules = [site for site in facts.schedulers_of(optimizer) if not site.stage]
        related = [
            Related(document.span_of(step.call), "stepped here, in a loop, from step 0 at the full learning rate")
            for step in steps
        ]
        related += [
            Related(document.span_of(site.call), f"`{site.class_name}` starts at the full learning rate: it never warms up")
            for site in schedules
        ]
        yield rule.finding(
            document,
            optimizer.call,
            _message(optimizer, schedules),
            related=related,
            fix=_fix_for(document, optimizer, steps, schedules),
        )


def _literal_step_count(document: Document, step: StepSite) -> float:
    """How often the loops around `step` (in its own function) run, when they are all `range(<literal>)`."""
    count = 1.0
    for ancestor in document.index.ancestors(step.call):
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            break
        if isinstance(ancestor, (ast.While, ast.AsyncFor)):
            return float("inf")
        if isinstance(ancestor, ast.For):
            iterations = _range_length(ancestor.iter)
            if iterations is None:
                return float("inf")
            count *= iterations
    return count if step.loop is not None and document.index.enclosing_function(step.loop) is document.index.enclosing_function(step.call) else float("inf")


def _range_length(iterable: ast.AST) -> float | None:
    if not (isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.func.id == "range"):
        return None
    bounds = [literal_number(argument) for argument in iterable.args[:2]]
    if not bounds or None in bounds or iterable.keywords:
        return None
    return bounds[0] if len(bounds) == 1 else bounds[1] - bounds[0]


def _may_warm_up(facts: TrainingFacts, optimizer: OptimizerSite) -> bool:
    """Anything that could be a warmup for this optimizer, or that hides its schedule from us."""
    if facts.learning_rate_writes or facts.mentions_warmup or facts.unseen_schedulers:
        return True
    if any(site.warms_up is not False for site in facts.schedulers_of(optimizer) if not site.stage):
        return True
    # A warmup-capable scheduler whose optimizer argument we could not trace may be this one's.
    return any(site.warms_up is not False for site in facts.unattached_schedulers)


def _trains_a_network(document: Document, optimizer: OptimizerSite) -> bool:
    """False for a linear probe / head-only fine-tune, or for optimizing input tensors (`[delta]`)."""
    parameters = optimizer.call.args[0] if optimizer.call.args else next(
        (keyword.value for keyword in optimizer.call.keywords if keyword.arg == "params"), None
    )
    if isinstance(parameters, (ast.List, ast.Tuple)):
        return not all(isinstance(element, (ast.Name, ast.Attribute)) for element in parameters.elts)
    if not (isinstance(parameters, ast.Call) and isinstance(parameters.func, ast.Attribute)):
        return True
    owner = dotted_name(parameters.func.value)
    if owner is None:
        return True
    if _PROBE_NAME.search(owner.rsplit(".", 1)[-1]):
        return False
    return not any(
        document.qualified_name(site.value.func) == "torch.nn.Linear"
        for site in document.training.assignments_to(owner)
        if isinstance(site.value, ast.Call)
    )


def _message(optimizer: OptimizerSite, schedules: list[SchedulerSite]) -> str:
    schedule = ""
    if schedules:
        names = ", ".join(f"`{site.class_name}`" for site in schedules)
        schedule = f" ({names} starts at the full rate)"
    return (
        f"`{optimizer.class_name}` is stepped from step 0 at the full learning rate with no warmup{schedule}; "
        "Adam's early updates have high variance and post-norm/deep transformers diverge without a ramp "
        "(Liu et al., 2020)"
    )


def _fix_for(document: Document, optimizer: OptimizerSite, steps: list[StepSite], schedules: list[SchedulerSite]) -> Fix | None:
    """The smallest warmup for what the code has: no schedule, a decay schedule, or an HF schedule at 0."""
    facts = document.training
    if not facts.schedulers:
        return _lambda_warmup_fix(document, optimizer, steps)
    if len(schedules) != 1 or len(facts.schedulers) != 1:
        return None  # several schedules: which one to extend is the author's call
    (schedule,) = schedules
    if schedule.class_name.startswith("get_") or schedule.class_name == "get_scheduler":
        return _named_warmup_fix(document, schedule)
    if schedule.kind.startswith(_TORCH_SCHEDULERS) and schedule.class_name in _SEQUENTIAL_STAGES:
        return _sequential_warmup_fix(document, optimizer, steps, schedule)
    return None


def _warmup_lines(document: Document, statement: ast.stmt, reason: str) -> str:
    """The cited comment and the named warmup length, as lines to put after `statement`."""
    indentation = document.indentation_of(statement.lineno)
    comment = cited_comment(statement.end_lineno + 1, reason, "liu2020radam").text
    return f"\n{indentation}# {comment}\n{indentation}{_WARMUP_NAME} = 1000  # tune: ~1-5% of training steps"


def _lambda_warmup_fix(document: Document, optimizer: OptimizerSite, steps: list[StepSite]) -> Fix | None:
    """Insert a LambdaLR warmup after the optimizer and `scheduler.step()` after each loop step."""
    statement = _single_name_assignment(document, optimizer.call)
    if statement is None or _word_in_source(document, _SCHEDULER_NAME) or _word_in_source(document, _WARMUP_NAME):
        return None
    optimizer_name = statement.targets[0].id
    step_statements = _step_statements(document, steps, optimizer_name, document.index.enclosing_function(statement))
    if step_statements is None:
        return None
    lambda_lr, imports = _scheduler_class(document, "LambdaLR")
    if lambda_lr is None:
        return None
    indentation = document.indentation_of(statement.lineno)
    warmup = _warmup_lines(document, statement, _FIX_REASON) + (
        f"\n{indentation}{_SCHEDULER_NAME} = {lambda_lr}({optimizer_name}, "
        f"lambda step: min(1.0, (step + 1) / {_WARMUP_NAME}))"
    )
    replacements = [Replace(line_end(document, statement.end_lineno), warmup)]
    replacements += _scheduler_steps_after(document, step_statements, _SCHEDULER_NAME)
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=tuple(replacements), imports=imports)


def _sequential_warmup_fix(
    document: Document, optimizer: OptimizerSite, steps: list[StepSite], schedule: SchedulerSite
) -> Fix | None:
    """Put a LinearLR warmup before the existing decay schedule with SequentialLR, under the same name.

    The decay then starts at `warmup_steps` and runs its full course from there. Offered only when the
    schedule is stepped once per optimizer step (or never, and we add that), so that `warmup_steps`
    counts optimizer steps, not epochs.
    """
    statement = _single_name_assignment(document, schedule.call)
    optimizer_statement = _single_name_assignment(document, optimizer.call)
    if statement is None or optimizer_statement is None or _word_in_source(document, _WARMUP_NAME):
        return None
    scheduler_name, optimizer_name = statement.targets[0].id, optimizer_statement.targets[0].id
    index = document.index
    scope = index.enclosing_function(statement)
    if index.enclosing_function(optimizer_statement) is not scope or statement.lineno < optimizer_statement.lineno:
        return None
    step_statements = _step_statements(document, steps, optimizer_name, scope)
    if step_statements is None:
        return None
    schedule_steps = [
        call for call in index.calls
        if isinstance(call.func, ast.Attribute) and call.func.attr == "step" and dotted_name(call.func.value) == scheduler_name
    ]
    loops = {id(_innermost_loop(index, step)) for step in step_statements}
    if any(id(_innermost_loop(index, call)) not in loops for call in schedule_steps):
        return None  # stepped per epoch (or elsewhere): warmup_steps would not count optimizer steps
    classes = [_scheduler_class(document, name) for name in ("SequentialLR", "LinearLR")]
    if any(local is None for local, _ in classes):
        return None
    (sequential, sequential_import), (linear, linear_import) = classes
    indentation = document.indentation_of(statement.lineno)
    warmup = _warmup_lines(document, statement, _SEQUENTIAL_REASON) + (
        f"\n{indentation}{scheduler_name} = {sequential}(\n"
        f"{indentation}    {optimizer_name},\n"
        f"{indentation}    [{linear}({optimizer_name}, start_factor=1.0 / {_WARMUP_NAME}, total_iters={_WARMUP_NAME}), {scheduler_name}],\n"
        f"{indentation}    milestones=[{_WARMUP_NAME}],\n"
        f"{indentation})"
    )
    replacements = [Replace(line_end(document, statement.end_lineno), warmup)]
    if not schedule_steps:
        replacements += _scheduler_steps_after(document, step_statements, scheduler_name)
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=tuple(replacements), imports=sequential_import + linear_import)


def _named_warmup_fix(document: Document, schedule: SchedulerSite) -> Fix | None:
    """`get_*_schedule_with_warmup(..., num_warmup_steps=0)`: name the warmup and give it a length."""
    value = _argument_node(schedule.call, 2 if schedule.class_name == "get_scheduler" else 1, "num_warmup_steps")
    statement = document.index.enclosing_statement(schedule.call)
    if value is None or literal_number(value) != 0 or _word_in_source(document, _WARMUP_NAME):
        return None
    if not owns_its_lines(document, statement):
        return None
    indentation = document.indentation_of(statement.lineno)
    comment = cited_comment(statement.lineno, _FIX_REASON, "liu2020radam").text
    before = Replace(
        Span(statement.lineno, 0, statement.lineno, 0),
        f"{indentation}# {comment}\n{indentation}{_WARMUP_NAME} = 1000  # tune: ~1-5% of training steps\n",
    )
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=(before, Replace(document.span_of(value), _WARMUP_NAME)))


def _single_name_assignment(document: Document, call: ast.Call) -> ast.Assign | None:
    """`name = <call>` on lines of its own, or None."""
    statement = document.index.enclosing_statement(call)
    if (
        isinstance(statement, ast.Assign)
        and statement.value is call
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
        and owns_its_lines(document, statement)
    ):
        return statement
    return None


def _step_statements(document: Document, steps: list[StepSite], optimizer_name: str, scope) -> list[ast.stmt] | None:
    """The `optimizer.step()` statements, when each is a plain statement in `scope` (else None)."""
    index = document.index
    statements = []
    for step in steps:
        statement = index.enclosing_statement(step.call)
        if not (isinstance(statement, ast.Expr) and statement.value is step.call):
            return None
        if step.optimizer != optimizer_name or not owns_its_lines(document, statement):
            return None
        if scope is not None and index.enclosing_function(statement) is not scope:
            return None  # a local scheduler would not be visible where the loop steps
        statements.append(statement)
    return statements


def _scheduler_steps_after(document: Document, step_statements: list[ast.stmt], scheduler_name: str) -> list[Replace]:
    return [
        Replace(line_end(document, statement.end_lineno), f"\n{document.indentation_of(statement.lineno)}{scheduler_name}.step()")
        for statement in step_statements
    ]


def _scheduler_class(document: Document, name: str) -> tuple[str | None, tuple[AddImport, ...]]:
    """How the file can name `torch.optim.lr_scheduler.<name>`, and the import that needs, if any."""
    local = document.imports.local_name_for(f"torch.optim.lr_scheduler.{name}")
    imports_from_schedulers = any(
        target.startswith("torch.optim.lr_scheduler.") and target.rsplit(".", 1)[-1] == alias
        for alias, target in document.imports.aliases.items()
    )
    if local is not None and not ("." in local and imports_from_schedulers):
        return local, ()  # the file's own spelling, unless it already imports schedulers by name
    if _word_in_source(document, name):
        return None, ()  # the bare name means something else here
    return name, (AddImport("torch.optim.lr_scheduler", name),)


def _innermost_loop(index, node: ast.AST) -> ast.AST | None:
    return index.enclosing(node, ast.For, ast.AsyncFor, ast.While)


def _argument_node(call: ast.Call, position: int, keyword: str) -> ast.AST | None:
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    return call.args[position] if len(call.args) > position else None


def _word_in_source(document: Document, word: str) -> bool:
    """Whether `word` appears anywhere as a whole word: cheap, and errs towards skipping the fix."""
    return word in document.source and re.search(rf"\b{word}\b", document.source) is not None


RULE = Rule(
    code="LLM301",
    name="missing-lr-warmup",
    summary="Adam-family optimizer stepped by a training loop with no learning-rate warmup",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=(
        "liu2020radam",
        "xiong2020layer",
        "vaswani2017attention",
        "kingma2015adam",
        "loshchilov2019adamw",
        "goyal2017accurate",
        "wortsman2023smallscale",
    ),
    check=check,
    docs=RULE_DOCS,
    tags=("optimization", "schedule", "stability"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT: a hand-written warmup written into the param groups
        """
        import math
        import torch
        from model import GPT
        warmup_iters, lr_decay_iters, learning_rate, min_lr = 2000, 600000, 6e-4, 6e-5
        def get_lr(it):
            if it < warmup_iters:
                return learning_rate * (it + 1) / (warmup_iters + 1)
            ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
            return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)
        model = GPT()
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
        for it in range(lr_decay_iters):
            lr = get_lr(it)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            model(it).backward()
            optimizer.step()
        """,
        # HF no-trainer scripts: the warmup length comes from the command line
        """
        import torch
        from transformers import AutoModelForCausalLM, get_scheduler
        model = AutoModelForCausalLM.from_pretrained("gpt2")
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
        lr_scheduler = get_scheduler("cosine", optimizer=optimizer, num_warmup_steps=500, num_training_steps=10000)
        for batch in loader:
            model(**batch).loss.backward()
            optimizer.step()
            lr_scheduler.step()
        """,
        # a warmup stage first in a SequentialLR
        """
        import torch
        from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR
        model = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(512, 8), 6)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        scheduler = SequentialLR(
            opt,
            schedulers=[LinearLR(opt, start_factor=0.01, total_iters=1000), CosineAnnealingLR(opt, T_max=9000)],
            milestones=[1000],
        )
        while True:
            opt.step()
            scheduler.step()
        """,
        # RAdam rectifies the early variance itself
        """
        import torch
        from model import GPT
        model = GPT()
        optimizer = torch.optim.RAdam(model.parameters(), lr=3e-4)
        for step in range(1000):
            model(step).backward()
            optimizer.step()
        """,
        # no sign of a transformer: a small CNN trains fine with plain Adam
        """
        import torch
        import torch.nn as nn
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(10):
            for images, labels in loader:
                nn.functional.cross_entropy(model(images), labels).backward()
                optimizer.step()
        """,
        # a schedule built elsewhere may warm up: unknowable, so silent
        """
        import torch
        from model import GPT
        from schedules import build_scheduler
        model = GPT()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        scheduler = build_scheduler(config, optimizer)
        for batch in loader:
            model(batch).backward()
            optimizer.step()
            scheduler.step()
        """,
        # an opaque lr_lambda may ramp
        """
        import torch
        from model import GPT
        from schedules import lr_factor
        model = GPT()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        for batch in loader:
            model(batch).backward()
            optimizer.step()
            scheduler.step()
        """,
        # Lightning: the Trainer steps the optimizer, and its schedule is configured there
        """
        import torch
        import lightning as L
        from model import GPT
        class LitGPT(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.model = GPT()
            def configure_optimizers(self):
                return torch.optim.AdamW(self.parameters(), lr=3e-4)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            from model import GPT
            model = GPT()
            optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)
            for step in range(5000):
                loss = model(step)
                loss.backward()
                optimizer.step()  # update
                optimizer.zero_grad(set_to_none=True)
            """,
            at=("4:13-4:77",),
            fixed="""
            import torch
            from model import GPT
            model = GPT()
            optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)
            # Linear warmup: Adam's second-moment estimate is noisy for the first steps; ramp the LR up (Liu et al., 2020, arXiv:1908.03265)
            warmup_steps = 1000  # tune: ~1-5% of training steps
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
            for step in range(5000):
                loss = model(step)
                loss.backward()
                optimizer.step()  # update
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            """,
        ),
        Invalid(
            """
            import torch
            from torch.optim import AdamW
            import torch.nn.functional as F

            def train(model, loader, epochs):
                opt = AdamW(model.parameters(), lr=1e-3)
                scaler = torch.cuda.amp.GradScaler()
                for epoch in range(epochs):
                    for x, y in loader:
                        with torch.autocast("cuda"):
                            logits = model(x)
                            att = F.scaled_dot_product_attention(x, x, x)
                        scaler.scale(F.cross_entropy(logits, y)).backward()
                        scaler.step(opt)
                        scaler.update()
            """,
            at=("6:11-6:45",),
            fixed="""
            import torch
            from torch.optim import AdamW
            import torch.nn.functional as F

            def train(model, loader, epochs):
                opt = AdamW(model.parameters(), lr=1e-3)
                # Linear warmup: Adam's second-moment estimate is noisy for the first steps; ramp the LR up (Liu et al., 2020, arXiv:1908.03265)
                warmup_steps = 1000  # tune: ~1-5% of training steps
                scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup_steps))
                scaler = torch.cuda.amp.GradScaler()
                for epoch in range(epochs):
                    for x, y in loader:
                        with torch.autocast("cuda"):
                            logits = model(x)
                            att = F.scaled_dot_product_attention(x, x, x)
                        scaler.scale(F.cross_entropy(logits, y)).backward()
                        scaler.step(opt)
                        scheduler.step()
                        scaler.update()
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            from torch import optim
            from torch.optim.lr_scheduler import CosineAnnealingLR
            model = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 4, norm_first=True), 4)
            optimizer = optim.Adam(model.parameters(), lr=1e-3)
            scheduler = CosineAnnealingLR(optimizer, T_max=10_000)
            for batch in loader:
                model(batch).sum().backward()
                optimizer.step()
                scheduler.step()
            """,
            at=("5:13-5:52",),
            fixed="""
            import torch.nn as nn
            from torch import optim
            from torch.optim.lr_scheduler import LinearLR, SequentialLR, CosineAnnealingLR
            model = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 4, norm_first=True), 4)
            optimizer = optim.Adam(model.parameters(), lr=1e-3)
            scheduler = CosineAnnealingLR(optimizer, T_max=10_000)
            # Linear warmup, then the original schedule: Adam's second-moment estimate is noisy for the first steps (Liu et al., 2020, arXiv:1908.03265)
            warmup_steps = 1000  # tune: ~1-5% of training steps
            scheduler = SequentialLR(
                optimizer,
                [LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps), scheduler],
                milestones=[warmup_steps],
            )
            for batch in loader:
                model(batch).sum().backward()
                optimizer.step()
                scheduler.step()
            """,
        ),
        Invalid(
            """
            import torch
            from transformers import AutoModelForMaskedLM, get_linear_schedule_with_warmup
            model = AutoModelForMaskedLM.from_pretrained("bert-base-uncased")
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0, num_training_steps=100_000)
            for batch in loader:
                model(**batch).loss.backward()
                optimizer.step()
                scheduler.step()
            """,
            at=("4:13-4:59",),
            fixed="""
            import torch
            from transformers import AutoModelForMaskedLM, get_linear_schedule_with_warmup
            model = AutoModelForMaskedLM.from_pretrained("bert-base-uncased")
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            # Linear warmup: Adam's second-moment estimate is noisy for the first steps; ramp the LR up (Liu et al., 2020, arXiv:1908.03265)
            warmup_steps = 1000  # tune: ~1-5% of training steps
            scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup_steps, num_training_steps=100_000)
            for batch in loader:
                model(**batch).loss.backward()
                optimizer.step()
                scheduler.step()
            """,
        ),
        Invalid(
            """
            import torch
            from model import GPT
            model = GPT()
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.1, total_iters=5000)
            def train_step(batch):
                model(batch).backward()
                optimizer.step()
                scheduler.step()
            for batch in loader:
                train_step(batch)
            """,
            at=("4:13-4:59",),
        ),
    ),
)
