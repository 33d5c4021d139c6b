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
changes the optimisation trajectory) and is offered only when the names are free and the optimizer
has no schedule yet; a decay schedule must be combined with the warmup by hand (`SequentialLR`),
since two `LambdaLR`-style schedulers overwrite each other. The warmup length is a hyperparameter:
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
from llmarch_lsp.findings import Confidence, Related, Severity, Span
from llmarch_lsp.fixes.builders import cited_comment
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace

FIX_TITLE = "Add a linear learning-rate warmup"

RULE_DOCS = __doc__

_FIX_REASON = "Linear warmup: Adam's second-moment estimate is noisy for the first steps; ramp the LR up"
# Fewer optimizer steps than this (a smoke test, a few full-batch steps) have no early phase to protect.
_SHORT_RUN = 100
_LAMBDA_LR = "torch.optim.lr_scheduler.LambdaLR"
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
            # An existing schedule must be combined with the warmup by hand (SequentialLR).
            fix=None if facts.schedulers else _fix(document, optimizer, steps),
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


def _fix(document: Document, optimizer: OptimizerSite, steps: list[StepSite]) -> Fix | None:
    """Insert a LambdaLR warmup after the optimizer and `scheduler.step()` after each loop step."""
    index = document.index
    statement = index.enclosing_statement(optimizer.call)
    if not (
        isinstance(statement, ast.Assign)
        and statement.value is optimizer.call
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
        and _owns_its_lines(document, statement)
    ):
        return None
    optimizer_name = statement.targets[0].id
    scope = index.enclosing_function(statement)
    if _word_in_source(document, _SCHEDULER_NAME) or _word_in_source(document, _WARMUP_NAME):
        return None
    step_statements = []
    for step in steps:
        step_statement = index.enclosing_statement(step.call)
        if not (isinstance(step_statement, ast.Expr) and step_statement.value is step.call):
            return None
        if step.optimizer != optimizer_name or not _owns_its_lines(document, step_statement):
            return None
        if scope is not None and index.enclosing_function(step_statement) is not scope:
            return None  # a local `scheduler` would not be visible where the loop steps
        step_statements.append(step_statement)

    imports: tuple[AddImport, ...] = ()
    lambda_lr = document.imports.local_name_for(_LAMBDA_LR)
    if lambda_lr is None:
        if _word_in_source(document, "LambdaLR"):
            return None
        lambda_lr, imports = "LambdaLR", (AddImport("torch.optim.lr_scheduler", "LambdaLR"),)
    indentation = document.indentation_of(statement.lineno)
    comment = cited_comment(statement.end_lineno + 1, _FIX_REASON, "liu2020radam").text
    warmup = (
        f"\n{indentation}# {comment}"
        f"\n{indentation}{_WARMUP_NAME} = 1000  # tune: ~1-5% of training steps"
        f"\n{indentation}{_SCHEDULER_NAME} = {lambda_lr}({optimizer_name}, "
        f"lambda step: min(1.0, (step + 1) / {_WARMUP_NAME}))"
    )
    replacements = [_after_line(document, statement.end_lineno, warmup)]
    for step_statement in step_statements:
        step_indentation = document.indentation_of(step_statement.lineno)
        replacements.append(_after_line(document, step_statement.end_lineno, f"\n{step_indentation}{_SCHEDULER_NAME}.step()"))
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=tuple(replacements), imports=imports)


def _owns_its_lines(document: Document, statement: ast.stmt) -> bool:
    """The statement starts its line and nothing but a comment follows it."""
    start = document.line_text(statement.lineno)
    if len(start) - len(start.lstrip()) != statement.col_offset:
        return False
    end = document.line_text(statement.end_lineno)
    rest = end.encode("utf-8")[statement.end_col_offset :].decode("utf-8", errors="ignore").strip()
    return rest == "" or rest.startswith("#")


def _after_line(document: Document, line: int, text: str) -> Replace:
    column = len(document.line_text(line))
    return Replace(Span(line, column, line, column), text)


def _word_in_source(document: Document, word: str) -> bool:
    """Whether `word` appears anywhere as a whole word: cheap, and errs towards skipping the fix."""
    return word in document.source and re.search(rf"\b{word}\b", document.source) is not None


RULE = Rule(
    code="LLM301",
    name="missing-lr-warmup",
    summary="Adam-family optimizer stepped by a training loop with no learning-rate warmup",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
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
