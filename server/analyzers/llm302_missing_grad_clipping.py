"""A transformer training loop that steps the optimizer on unclipped gradients.

## Problem
A loop trains a transformer (backward, then `optimizer.step()`) and nothing bounds the gradient
before the step: no `clip_grad_norm_`, `clip_grad_value_`, `accelerator.clip_grad_norm_` or
equivalent. Most steps are fine; the rare batch whose gradient norm is 10-1000x the typical one
is applied in full, and that single update is what a loss spike (or a run that never recovers)
looks like in the logs.

## Diagnosis
The check reads the shared loop facts (`document.loops`): an iteration is the innermost loop
around an optimizer step (`optimizer.step()`, `self.optimizer.step()`, `scaler.step(optimizer)`)
that also runs a backward (`loss.backward()`, `scaler.scale(loss).backward()`,
`accelerator.backward(loss)`), directly or in a local helper it calls (`train_step(batch)`). It
fires when that iteration contains no clipping call (any call named like `clip_grad*`,
`clip_gradients`, `dispatch_clip_grad`), no call with a clipping keyword (`clip_grad=`,
`max_grad_norm=`: a scaler or helper that clips inside), and the file shows a transformer is
being trained (the same evidence LLM301 uses: a model imported from a transformer library, a
class named like GPT/Bert/Llama/ViT/...Attention, `nn.MultiheadAttention`, SDPA). It stays silent
for loops of fewer than 100 literal iterations (unit and smoke tests), when DeepSpeed, a
Lightning `training_step` or another trainer owns the backward (they clip from their config),
and for optimizers that bound their own update (Adafactor's update clipping, Lion's sign update,
Muon's orthogonalised update).

## Hypothesis
Transformer gradients are heavy-tailed: attention logits that start to saturate, a rare token,
or a bad batch produce gradient norms far above typical, and a deep residual stack amplifies
them. Adam's second-moment estimate reacts only after the step is taken, so the outlier moves
the weights by up to lr x (a few) per coordinate in one go. Clipping the global norm rescales
such a gradient back to the threshold while leaving ordinary steps (norm below 1.0) untouched,
so it removes the tail without changing typical training dynamics.

## Literature
- Pascanu et al. (2013) analyse exploding gradients and propose rescaling the gradient when its
  norm exceeds a threshold, which is the `clip_grad_norm_` used today.
- Brown et al. (2020, GPT-3) clip the global gradient norm at 1.0 for every model size.
- Touvron et al. (2023, LLaMA) train with AdamW and gradient clipping at 1.0; Touvron et al.
  (2023, Llama 2) keep the same clipping in the second generation.

## Recommendation
Clip the global gradient norm at 1.0 between the backward and the optimizer step:
`torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)`. With a `GradScaler`, unscale
first (`scaler.unscale_(optimizer)`), otherwise the threshold applies to the scaled gradients.
With accelerate, use `accelerator.clip_grad_norm_` inside `if accelerator.sync_gradients:` so it
runs once per optimizer step. Log the returned (pre-clip) norm: it is the best single early
warning of instability.

## Expected outcome
Fewer and smaller loss spikes, and no divergence from a single bad batch; the final loss is equal
or slightly better at the same learning rate, and a higher peak learning rate often becomes
stable. On a run that was already stable, the clip rarely triggers and nothing changes.

## Implementation
Before:

    for step in range(max_iters):
        logits, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

After:

    for step in range(max_iters):
        logits, loss = model(x, y)
        loss.backward()
        # Clip the global gradient norm at 1.0 (GPT-3/LLaMA recipes): one outlier batch cannot blow up the update (Pascanu et al., 2013, arXiv:1211.5063)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

With a GradScaler the fix also inserts `scaler.unscale_(optimizer)` before the clip when the loop
has none; with accelerate it inserts `accelerator.clip_grad_norm_(...)` (inside
`if accelerator.sync_gradients:` under `accelerator.accumulate`). The parameters are those of the
model the optimizer was built from when that name is in scope, else the optimizer's own
`param_groups`.

## Caveats
The fix is unsafe: clipping changes the update whenever the norm exceeds 1.0, and 1.0 is a
convention rather than a law (0.3-0.5 is common for LoRA fine-tunes, larger values for small
batch sizes where typical norms are higher). Clipping costs one extra pass over the gradients
(~1-2% of step time). It hides rather than cures a persistent cause (too high a learning rate,
missing warmup, attention-logit growth): if the clip triggers on most steps, the threshold or
the learning rate is wrong. Fine-tuning with a small learning rate often trains fine without it,
hence medium confidence. Clipping configured elsewhere (a DeepSpeed JSON, a trainer argument, an
imported helper that runs backward and step) is invisible here; under FSDP use the wrapped
module's `clip_grad_norm_` (the fix is not offered there).

## Next steps
Log the pre-clip global norm every step (`norm = clip_grad_norm_(...)`) for the first few
thousand steps. If it exceeds the threshold on more than a few percent of steps, lower the
learning rate or lengthen warmup instead of lowering the threshold; if spikes persist with
clipping, look at attention-logit growth (QK-norm) and the output-logit scale (z-loss).
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.loops import ACCELERATE, LoopEvent, TrainingIteration
from llmarch_lsp.fixes.builders import line_start
from llmarch_lsp.facts.modules import dotted_name
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.builders import cited_comment
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace

FIX_TITLE = "Clip the gradient norm at 1.0 before the optimizer step"

RULE_DOCS = __doc__

_FIX_REASON = "Clip the global gradient norm at 1.0 (GPT-3/LLaMA recipes): one outlier batch cannot blow up the update"
# Fewer iterations than this (a unit test, a smoke test) have no long tail of batches to guard against.
_SHORT_RUN = 100
# Keywords that hand a clipping threshold to whatever runs the backward (timm's loss scaler, a helper).
_CLIP_KEYWORD = re.compile(r"clip|max_grad_norm|max_norm", re.IGNORECASE)
# Frameworks that clip from their own configuration (a DeepSpeed JSON, the Lightning Trainer).
_FRAMEWORK_OWNED = {"deepspeed", "lightning", "framework"}
# Optimizers whose update is bounded by construction.
_SELF_BOUNDED_FAMILIES = {"lion", "adafactor"}
_SELF_BOUNDED_CLASSES = {"Muon"}
_CLIP = "torch.nn.utils.clip_grad_norm_"


def check(document: Document, context: RuleContext, rule: Rule):
    iterations = document.loops.iterations
    if not iterations or document.training.transformer_evidence is None:
        return
    reported: set[int] = set()
    for iteration in iterations:
        if iteration.clips or iteration.framework in _FRAMEWORK_OWNED:
            continue
        if iteration.literal_count < _SHORT_RUN:
            continue  # a unit or smoke test
        steps = [step for step in iteration.steps if id(step.node) not in reported]
        if not steps or any(_bounds_its_own_update(document, step) for step in steps):
            continue
        if any(not isinstance(document.index.parent(step.node), ast.Expr) for step in steps):
            continue  # `grad_norm = optimizer.step()`: a Megatron-style optimizer that clips inside
        if _clips_through_keyword(document, iteration):
            continue
        reported.update(id(step.node) for step in steps)
        step = steps[0]
        related = [
            Related(document.span_of(backward.node), "gradients computed here reach the step unclipped")
            for backward in iteration.backwards
        ]
        yield rule.finding(document, step.node, _message(step), related=related, fix=_fix(document, iteration, step))


def _bounds_its_own_update(document: Document, step: LoopEvent) -> bool:
    optimizer = document.training.optimizer_named(step.target)
    return optimizer is not None and (
        optimizer.family in _SELF_BOUNDED_FAMILIES or optimizer.class_name in _SELF_BOUNDED_CLASSES
    )


def _clips_through_keyword(document: Document, iteration: TrainingIteration) -> bool:
    """A call in the loop, or in a helper it calls, is handed a clipping threshold (`clip_grad=...`)."""
    index = document.index
    helpers = {id(hop) for event in iteration.events for hop in event.path}
    helper_functions = {id(index.enclosing_function(event.node)) for event in iteration.events if event.path}
    for keyword in index.by_type.get(ast.keyword, ()):
        if not (keyword.arg and _CLIP_KEYWORD.search(keyword.arg)):
            continue
        call = index.parent(keyword)
        if id(call) in helpers or id(index.enclosing_function(keyword)) in helper_functions:
            return True
        if any(ancestor is iteration.loop for ancestor in index.ancestors(keyword)):
            return True
    return False


def _message(step: LoopEvent) -> str:
    return (
        f"`{step.target}` is stepped on unclipped gradients: in transformer training one outlier batch can "
        "produce a gradient norm orders of magnitude above typical, and the optimizer applies it in full (a loss "
        "spike, or divergence). Clip the global norm at 1.0 before the step, as GPT-3 and LLaMA do "
        "(Pascanu et al., 2013)"
    )


def _fix(document: Document, iteration: TrainingIteration, step: LoopEvent) -> Fix | None:
    """Insert the clip (and `scaler.unscale_` when a GradScaler steps) right above the optimizer step."""
    statement = document.loops.own_line_statement(step.node)
    if statement is None or step.target is None:
        return None
    if document.imports.imports_module("torch.distributed.fsdp") or "fully_shard" in document.source:
        return None  # FSDP: the wrapped module's own clip_grad_norm_ is the right call
    scope = document.index.enclosing_function(step.node)
    parameters = _parameters(document, step, scope)
    imports: tuple[AddImport, ...] = ()
    framework = iteration.framework
    if framework == "accelerate":
        accelerator = next(backward.target for backward in iteration.backwards if backward.framework == "accelerate")
        if not _used_in(document, accelerator, scope):
            return None
        clip = f"{accelerator}.clip_grad_norm_({parameters}, max_norm=1.0)"
        accumulating = iteration.accumulation is not None and iteration.accumulation.kind == ACCELERATE
        lines = [f"if {accelerator}.sync_gradients:", f"    {clip}"] if accumulating else [clip]
    elif framework is None:
        clip_function = document.imports.local_name_for(_CLIP)
        if clip_function is None:
            clip_function, imports = _CLIP, (AddImport("torch"),)
        lines = []
        if step.scaler is not None:
            if any(backward.scaler != step.scaler for backward in iteration.backwards):
                return None
            if not any(unscale.target == step.target for unscale in iteration.unscales):
                lines.append(f"{step.scaler}.unscale_({step.target})")
        lines.append(f"{clip_function}({parameters}, max_norm=1.0)")
    else:
        return None  # Fabric and friends clip through their own API
    indentation = document.indentation_of(statement.lineno)
    comment = cited_comment(statement.lineno, _FIX_REASON, "pascanu2013difficulty").text
    text = "".join(f"{indentation}{line}\n" for line in (f"# {comment}", *lines))
    return Fix(FIX_TITLE, UNSAFE, replacements=(Replace(line_start(statement.lineno), text),), imports=imports)


def _parameters(document: Document, step: LoopEvent, scope: ast.AST | None) -> str:
    """`model.parameters()` for the model the optimizer was built from, when that name is in scope;
    else the optimizer's own parameter groups, which are always at hand where it steps."""
    candidates = []
    optimizer = document.training.optimizer_named(step.target)
    if optimizer is not None:
        argument = optimizer.call.args[0] if optimizer.call.args else next(
            (keyword.value for keyword in optimizer.call.keywords if keyword.arg == "params"), None
        )
        if (
            isinstance(argument, ast.Call)
            and isinstance(argument.func, ast.Attribute)
            and argument.func.attr == "parameters"
            and not argument.args
        ):
            owner = dotted_name(argument.func.value)
            if owner:
                candidates.append(owner)
    candidates += ["model", "self.model"]
    for owner in candidates:
        if _used_in(document, owner, scope):
            return f"{owner}.parameters()"
    quote = "'" if document.source.count("'") > document.source.count('"') else '"'
    return f"(p for group in {step.target}.param_groups for p in group[{quote}params{quote}])"


def _used_in(document: Document, dotted: str, scope: ast.AST | None) -> bool:
    index = document.index
    return any(index.enclosing_function(node) is scope for node, _ in document.training._uses_of({dotted}))


RULE = Rule(
    code="LLM302",
    name="missing-grad-clipping",
    summary="Transformer training loop steps the optimizer without clipping the gradient norm",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("pascanu2013difficulty", "brown2020gpt3", "touvron2023llama", "touvron2023llama2"),
    check=check,
    docs=RULE_DOCS,
    tags=("optimization", "stability", "training-loop"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT's shape: unscale, then clip, then step through the scaler
        """
        import torch
        from model import GPT
        model = GPT()
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
        scaler = torch.amp.GradScaler("cuda")
        while True:
            for micro_step in range(8):
                logits, loss = model(X, Y)
                scaler.scale(loss / 8).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        """,
        # accelerate clips once per real step
        """
        from accelerate import Accelerator
        from transformers import AutoModelForCausalLM
        accelerator = Accelerator(gradient_accumulation_steps=4)
        model = AutoModelForCausalLM.from_pretrained("gpt2")
        for batch in loader:
            with accelerator.accumulate(model):
                accelerator.backward(model(**batch).loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
        """,
        # a small CNN: no sign of a transformer
        """
        import torch
        import torch.nn as nn
        model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.LazyLinear(10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for images, labels in loader:
            nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        # Adafactor clips its own update
        """
        import torch
        from transformers import T5ForConditionalGeneration
        from transformers.optimization import Adafactor
        model = T5ForConditionalGeneration.from_pretrained("t5-small")
        optimizer = Adafactor(model.parameters(), lr=1e-3, relative_step=False)
        for batch in loader:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        # a smoke test: a dozen steps
        """
        import torch
        from model import GPT
        model = GPT()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for _ in range(12):
            model(batch).backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        # the clipping threshold is handed to the helper that runs backward and step
        """
        import torch
        from model import GPT
        model = GPT()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for batch in loader:
            loss = model(batch)
            loss.backward()
            apply_update(optimizer, model, max_grad_norm=1.0)
            optimizer.step()
        """,
        # Lightning: the Trainer owns the loop (and `gradient_clip_val`)
        """
        import torch
        import lightning as L
        from model import GPT
        class LitGPT(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.model = GPT()
            def training_step(self, batch, batch_idx):
                return self.model(batch)
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
                logits, loss = model(x, y)
                loss.backward()
                optimizer.step()  # update
                optimizer.zero_grad(set_to_none=True)
            """,
            at=("8:5-8:21",),
            fixed="""
            import torch
            from model import GPT
            model = GPT()
            optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)
            for step in range(5000):
                logits, loss = model(x, y)
                loss.backward()
                # Clip the global gradient norm at 1.0 (GPT-3/LLaMA recipes): one outlier batch cannot blow up the update (Pascanu et al., 2013, arXiv:1211.5063)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                optimizer.step()  # update
                optimizer.zero_grad(set_to_none=True)
            """,
        ),
        Invalid(
            """
            import torch
            from torch import nn

            def train(net, loader, epochs):
                encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 4, batch_first=True), 6)
                opt = torch.optim.AdamW(encoder.parameters(), lr=1e-3)
                scaler = torch.amp.GradScaler("cuda")
                for epoch in range(epochs):
                    for x, y in loader:
                        with torch.autocast("cuda", dtype=torch.float16):
                            loss = nn.functional.mse_loss(encoder(x), y)
                        scaler.scale(loss).backward()
                        scaler.step(opt)
                        scaler.update()
                        opt.zero_grad()
            """,
            at=("13:13-13:29",),
            fixed="""
            import torch
            from torch import nn

            def train(net, loader, epochs):
                encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 4, batch_first=True), 6)
                opt = torch.optim.AdamW(encoder.parameters(), lr=1e-3)
                scaler = torch.amp.GradScaler("cuda")
                for epoch in range(epochs):
                    for x, y in loader:
                        with torch.autocast("cuda", dtype=torch.float16):
                            loss = nn.functional.mse_loss(encoder(x), y)
                        scaler.scale(loss).backward()
                        # Clip the global gradient norm at 1.0 (GPT-3/LLaMA recipes): one outlier batch cannot blow up the update (Pascanu et al., 2013, arXiv:1211.5063)
                        scaler.unscale_(opt)
                        nn.utils.clip_grad_norm_(encoder.parameters(), max_norm=1.0)
                        scaler.step(opt)
                        scaler.update()
                        opt.zero_grad()
            """,
        ),
        Invalid(
            """
            from accelerate import Accelerator
            from torch.optim import AdamW
            from transformers import AutoModelForCausalLM

            def main():
                accelerator = Accelerator(gradient_accumulation_steps=8)
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1}]
                optimizer = AdamW(groups, lr=3e-4)
                model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
                for batch in loader:
                    with accelerator.accumulate(model):
                        accelerator.backward(model(**batch).loss)
                        optimizer.step()
                        optimizer.zero_grad()
            """,
            at=("14:13-14:29",),
            fixed="""
            from accelerate import Accelerator
            from torch.optim import AdamW
            from transformers import AutoModelForCausalLM

            def main():
                accelerator = Accelerator(gradient_accumulation_steps=8)
                model = AutoModelForCausalLM.from_pretrained("gpt2")
                groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1}]
                optimizer = AdamW(groups, lr=3e-4)
                model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
                for batch in loader:
                    with accelerator.accumulate(model):
                        accelerator.backward(model(**batch).loss)
                        # Clip the global gradient norm at 1.0 (GPT-3/LLaMA recipes): one outlier batch cannot blow up the update (Pascanu et al., 2013, arXiv:1211.5063)
                        if accelerator.sync_gradients:
                            accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)
                        optimizer.step()
                        optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            import torch
            from transformers import BertForMaskedLM

            class Trainer:
                def __init__(self, model, optimizer):
                    self.model = model
                    self.optimizer = optimizer

                def train_step(self, batch):
                    loss = self.model(**batch).loss
                    loss.backward()
                    self.optimizer.step()
                    self.optimizer.zero_grad()

                def fit(self, loader):
                    for batch in loader:
                        self.train_step(batch)
            """,
            at=("12:9-12:30",),
            fixed="""
            import torch
            from transformers import BertForMaskedLM

            class Trainer:
                def __init__(self, model, optimizer):
                    self.model = model
                    self.optimizer = optimizer

                def train_step(self, batch):
                    loss = self.model(**batch).loss
                    loss.backward()
                    # Clip the global gradient norm at 1.0 (GPT-3/LLaMA recipes): one outlier batch cannot blow up the update (Pascanu et al., 2013, arXiv:1211.5063)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=1.0)
                    self.optimizer.step()
                    self.optimizer.zero_grad()

                def fit(self, loader):
                    for batch in loader:
                        self.train_step(batch)
            """,
        ),
    ),
)
