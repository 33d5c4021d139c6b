"""Float16 training with no loss scaling.

## Problem
A training loop runs its forward pass in float16 (`torch.autocast(..., dtype=torch.float16)`, or
`torch.autocast("cuda")` / `torch.cuda.amp.autocast()`, whose CUDA default is float16) or trains a
model cast with `.half()`, and nothing scales the loss: no `GradScaler`, no apex or framework loss
scaler. Small gradients underflow to zero in float16, and the first overflow turns the weights
into NaN because nothing skips the bad step.

## Diagnosis
The check looks at `autocast` calls that resolve to float16: an explicit `dtype=torch.float16` /
`torch.half` (directly or through a variable every assignment of which is one), or no dtype with
device `"cuda"` (a literal, a variable assigned `"cuda"`, or `"cuda" if ... else "cpu"`) or the
CUDA-only `torch.cuda.amp.autocast`. `enabled=False`, bfloat16, CPU autocast and a dtype it cannot
resolve (nanoGPT's `ptdtype`) are left alone. The autocast must belong to a training iteration
(`document.loops`): written inside a loop that runs backward and an optimizer step, in a function
that loop calls, or bound to a name (`ctx = torch.autocast(...)`) that such a loop enters with
`with ctx:`. `.half()` / `.to(torch.float16)` counts when applied to the module whose
`.parameters()` an optimizer stepped in such a loop receives. The rule stays silent when the
file uses any loss scaler (`GradScaler`, `ShardedGradScaler`, timm's `NativeScaler`, apex
`amp.scale_loss`, a `loss_scale` setting) or when accelerate, Lightning, Fabric, DeepSpeed or
ColossalAI manage precision.

## Hypothesis
float16 has 5 exponent bits: values below about 6e-8 flush to zero and values above 65504
overflow. Activation gradients in deep networks are often far smaller than 1e-5, so without
scaling a sizable fraction of them underflow and the corresponding weights stop learning; the
loss curve looks merely worse, not broken. Loss scaling multiplies the loss (and thus every
gradient) by a large factor before backward and divides it out before the step, shifting
gradients into float16's range; dynamic scaling lowers the factor and skips the step whenever an
overflow produces inf/NaN, which also protects against the occasional overflow that would
otherwise write NaN into the weights. bfloat16 has float32's exponent range and needs none of
this.

## Literature
- Micikevicius et al. (2018) show that float16 training matches float32 accuracy only with three
  ingredients: an fp32 master copy of the weights, loss scaling so small gradients do not
  underflow, and fp32 accumulation; without loss scaling several of their models diverged or
  lost accuracy.
- The BigScience Workshop (2022, BLOOM) trained the 176B model in bfloat16 after float16 proved
  unstable at scale, a widely followed choice.
- Fedus et al. (2021, Switch Transformers) train in bfloat16 and keep numerically sensitive parts
  (the router) in float32: selective precision rather than float16 everywhere.

## Recommendation
Keep the weights in float32, run the forward under `autocast(dtype=torch.float16)`, and route
backward and step through a `torch.amp.GradScaler("cuda")`: `scaler.scale(loss).backward()`, then
`scaler.unscale_(optimizer)` before any gradient clipping, `scaler.step(optimizer)` and
`scaler.update()`. On Ampere or newer GPUs, prefer `autocast(dtype=torch.bfloat16)`, which needs no
scaler. A model cast with `.half()` cannot be fixed by a scaler (GradScaler refuses float16
gradients): keep it in float32 and use autocast.

## Expected outcome
The float16 run tracks a float32 run's loss curve instead of plateauing higher; no NaN losses
from a single overflow (the scaler skips those steps and lowers the scale). With bfloat16 the
same holds without a scaler, at the same speed on recent GPUs.

## Implementation
Before:

    for step in range(max_iters):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

After:

    # Scale the fp16 loss so small gradients do not underflow; unscale before clipping (Micikevicius et al., 2018, arXiv:1710.03740)
    scaler = torch.amp.GradScaler("cuda")
    for step in range(max_iters):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x, y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

A `clip_grad_norm_` in the loop gets `scaler.unscale_(optimizer)` inserted before it. The scaler
fix is offered when the iteration has one plain backward and one plain `optimizer.step()` in its
own function and the name `scaler` is free; a second code action switches the autocast to
bfloat16 instead (never applied by `--fix`).

## Caveats
Both fixes are unsafe: scaling changes which steps are taken (overflowing steps are skipped), and
bfloat16 changes numerics (less mantissa precision) and needs hardware support. A scaler adds a
negligible cost per step. The float16 default of `torch.autocast("cuda")` is PyTorch's documented
behaviour; a loss scaler or precision plugin configured outside this file is invisible, and so is
a training loop in another file that uses an autocast defined here.

## Next steps
Log `scaler.get_scale()` for the first few thousand steps: it should settle (typically 2^10-2^16)
rather than collapse towards 1, which would signal persistent overflows (look for large
activations or attention logits). Compare the loss curve with a short float32 or bfloat16 run.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.imports import call_name
from llmarch_lsp.facts.loops import TrainingIteration, name_is_free
from llmarch_lsp.fixes.builders import line_end, line_start
from llmarch_lsp.facts.modules import dotted_name
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity, Span
from llmarch_lsp.fixes.builders import cited_comment, set_keyword_argument
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace

FIX_TITLE = "Scale the loss with torch.amp.GradScaler"
BF16_TITLE = "Autocast to bfloat16 instead (Ampere or newer GPU)"

RULE_DOCS = __doc__

_FIX_REASON = "Scale the fp16 loss so small gradients do not underflow; unscale before clipping"
_AUTOCASTS = {"torch.autocast", "torch.amp.autocast", "torch.amp.autocast_mode.autocast", "torch.cuda.amp.autocast"}
_CUDA_ONLY = "torch.cuda.amp.autocast"
_FLOAT16 = {"torch.float16", "torch.half"}
_SCALER_CALL = re.compile(r"GradScaler|NativeScaler|ApexScaler|loss_scaler|scale_loss|^initialize$|FP16_Optimizer|MixedPrecision")
_SCALER_NAME = re.compile(r"scaler", re.IGNORECASE)
_PRECISION_FRAMEWORKS = ("accelerate", "deepspeed", "lightning", "pytorch_lightning", "lightning_fabric", "colossalai")
_GRAD_SCALER = "torch.amp.GradScaler"
_NO_GRAD = ("no_grad", "inference_mode")
_EVALUATION_NAME = re.compile(r"eval|valid|test|infer|predict|generat|sampl", re.IGNORECASE)
_SCALER = "scaler"


def check(document: Document, context: RuleContext, rule: Rule):
    iterations = document.loops.iterations
    if not iterations or _precision_managed(document):
        return
    calls = document.index.calls_by_name
    for call in calls.get("autocast", ()):
        default = _autocast_float16(document, call)
        if default is None:
            continue
        iteration = _iteration_using(document, call)
        if iteration is None or iteration.framework is not None:
            continue
        related = [Related(document.span_of(backward.node), "backward on the unscaled float16 loss") for backward in iteration.backwards]
        yield rule.finding(
            document,
            call,
            _autocast_message(document, call, default),
            related=related,
            fix=_scaler_fix(document, iteration),
            alternatives=tuple(fix for fix in (_bfloat16_fix(document, call),) if fix is not None) if context.alternatives else (),
        )
    yield from _half_models(document, rule, calls)


def _precision_managed(document: Document) -> bool:
    """A loss scaler anywhere in the file, or a framework that owns mixed precision."""
    if "loss_scale" in document.source:
        return True
    imports = document.imports
    if any(imports.imports_module(framework) for framework in _PRECISION_FRAMEWORKS):
        return True
    for name, group in document.index.calls_by_name.items():
        if _SCALER_CALL.search(name):
            return True
        if name in ("scale", "step", "update", "unscale_") and any(
            isinstance(call.func, ast.Attribute) and _SCALER_NAME.search(dotted_name(call.func.value) or "") for call in group
        ):
            return True
    return False


def _argument(call: ast.Call, position: int | None, keyword: str) -> ast.AST | None:
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _autocast_float16(document: Document, call: ast.Call) -> bool | None:
    """None when not a float16 autocast; else whether float16 is only the CUDA default (no dtype given)."""
    qualified = document.qualified_name(call.func)
    if qualified not in _AUTOCASTS:
        return None
    cuda_only = qualified == _CUDA_ONLY
    enabled = _argument(call, 0 if cuda_only else 2, "enabled")
    if isinstance(enabled, ast.Constant) and enabled.value is False:
        return None
    dtype = _argument(call, 1, "dtype")
    if dtype is not None:
        return False if _resolves(document, dtype, _is_float16) else None
    if cuda_only or _resolves(document, _argument(call, 0, "device_type"), _is_cuda):
        return True
    return None


def _resolves(document: Document, node: ast.AST | None, test) -> bool:
    """`test(node)`, or, for a plain name, `test` of every value assigned to it in the file."""
    if node is None:
        return False
    if test(document, node):
        return True
    if not isinstance(node, ast.Name):
        return False
    assignments = document.training.assignments_to(node.id)
    return bool(assignments) and all(test(document, assignment.value) for assignment in assignments)


def _is_float16(document: Document, node: ast.AST) -> bool:
    return document.qualified_name(node) in _FLOAT16


def _is_cuda(document: Document, node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split(":", 1)[0] == "cuda"
    if isinstance(node, ast.IfExp):  # `"cuda" if torch.cuda.is_available() else "cpu"`: trains on the GPU when there is one
        return _is_cuda(document, node.body) or _is_cuda(document, node.orelse)
    return False


def _iteration_using(document: Document, call: ast.Call) -> TrainingIteration | None:
    """The training iteration that runs under this autocast, directly or through `with ctx:`."""
    iteration = _training_iteration_at(document, call)
    if iteration is not None:
        return iteration
    statement = document.index.enclosing_statement(call)
    if not isinstance(statement, ast.Assign):
        return None
    names = {target.id for target in statement.targets if isinstance(target, ast.Name)}
    for with_node in (*document.index.by_type.get(ast.With, ()), *document.index.by_type.get(ast.AsyncWith, ())):
        for item in with_node.items:
            context = item.context_expr
            used = context.func if isinstance(context, ast.Call) else context
            if isinstance(used, ast.Name) and used.id in names:
                iteration = _training_iteration_at(document, with_node)
                if iteration is not None:
                    return iteration
    return None


def _training_iteration_at(document: Document, node: ast.AST) -> TrainingIteration | None:
    """The iteration that runs `node`, unless `node` is evaluation code inside it (a `no_grad` block,
    an `evaluate()` the loop calls every N steps)."""
    index = document.index
    for ancestor in index.ancestors(node):
        if isinstance(ancestor, (ast.With, ast.AsyncWith)) and any(
            call_name(item.context_expr) in _NO_GRAD for item in ancestor.items if isinstance(item.context_expr, ast.Call)
        ):
            return None
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if _EVALUATION_NAME.search(ancestor.name) or any(
                call_name(decorator) in _NO_GRAD or (dotted_name(decorator) or "").endswith(_NO_GRAD)
                for decorator in ancestor.decorator_list
            ):
                return None
            break
    return document.loops.iteration_around(node)


def _autocast_message(document: Document, call: ast.Call, default: bool) -> str:
    what = (
        f"`{document.segment(call.func)}(...)` without a dtype runs in float16 on CUDA"
        if default
        else "This autocast trains in float16"
    )
    return (
        f"{what}, and nothing scales the loss: gradients below ~6e-8 flush to zero in float16, so parts of the "
        "model silently stop learning, and one overflow writes inf/NaN into the weights because no scaler skips "
        "the step. Use `torch.amp.GradScaler` (scale, unscale before clipping, step, update) or autocast to "
        "bfloat16 (Micikevicius et al., 2018)"
    )


def _quote(document: Document) -> str:
    return "'" if document.source.count("'") > document.source.count('"') else '"'


def _scaler_fix(document: Document, iteration: TrainingIteration) -> Fix | None:
    """Create a GradScaler before the loop and route backward, clipping and step through it."""
    loops = document.loops
    backwards, steps = iteration.backwards, iteration.steps
    if len(backwards) != 1 or len(steps) != 1 or iteration.unscales:
        return None
    backward, step = backwards[0], steps[0]
    call = backward.node
    if not (backward.direct and step.direct and backward.scaler is None and step.scaler is None):
        return None
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "backward" and call.func.value is backward.loss):
        return None
    if step.node.args or step.node.keywords or step.target is None or not name_is_free(document, _SCALER):
        return None
    step_statement = loops.own_line_statement(step.node)
    outer = loops.own_line_statement(iteration.outermost_loop)
    clip_statements = [loops.own_line_statement(clip.node) if clip.direct else None for clip in iteration.clips]
    if step_statement is None or outer is None or None in clip_statements:
        return None
    imports: tuple[AddImport, ...] = ()
    grad_scaler = document.imports.local_name_for(_GRAD_SCALER)
    if grad_scaler is None:
        if not name_is_free(document, "GradScaler"):
            return None
        grad_scaler, imports = "GradScaler", (AddImport("torch.amp", "GradScaler"),)
    quote = _quote(document)
    indentation = document.indentation_of(outer.lineno)
    comment = cited_comment(outer.lineno, _FIX_REASON, "micikevicius2018mixed").text
    replacements = [
        Replace(line_start(outer.lineno), f"{indentation}# {comment}\n{indentation}{_SCALER} = {grad_scaler}({quote}cuda{quote})\n"),
        Replace(
            Span(*_start(document, call), *_end(document, call.func)),
            f"{_SCALER}.scale({document.segment(backward.loss)}).backward",
        ),
        Replace(document.span_of(step.node), f"{_SCALER}.step({step.target})"),
        Replace(line_end(document, step_statement.end_lineno), f"\n{document.indentation_of(step_statement.lineno)}{_SCALER}.update()"),
    ]
    for clip in clip_statements:
        replacements.append(Replace(line_start(clip.lineno), f"{document.indentation_of(clip.lineno)}{_SCALER}.unscale_({step.target})\n"))
    return Fix(FIX_TITLE, UNSAFE, replacements=tuple(replacements), imports=imports)


def _start(document: Document, node: ast.AST) -> tuple[int, int]:
    span = document.span_of(node)
    return span.line, span.column


def _end(document: Document, node: ast.AST) -> tuple[int, int]:
    span = document.span_of(node)
    return span.end_line, span.end_column


def _bfloat16_fix(document: Document, call: ast.Call) -> Fix | None:
    bfloat16 = document.imports.local_name_for("torch.bfloat16")
    if bfloat16 is None:
        return None
    dtype = _argument(call, 1, "dtype")
    if dtype is not None and isinstance(dtype, (ast.Attribute, ast.Name)) and document.qualified_name(dtype) in _FLOAT16:
        replacement = Replace(document.span_of(dtype), bfloat16)
    elif dtype is None:
        replacement = set_keyword_argument(document, call, "dtype", bfloat16)
    else:
        return None  # a variable: change what it is assigned instead
    return Fix(BF16_TITLE, UNSAFE, replacements=(replacement,))


def _half_models(document: Document, rule: Rule, calls):
    """`model.half()` / `model.to(torch.float16)` on a module whose parameters a looped optimizer updates."""
    if document.imports.imports_module("peft") or document.imports.imports_module("bitsandbytes"):
        return  # adapters on a frozen float16 base are kept in float32 by peft
    trained = _trained_modules(document)
    if not trained:
        return
    index = document.index
    for name in ("half", "to"):
        for call in calls.get(name, ()):
            if not isinstance(call.func, ast.Attribute):
                continue
            if name == "half" and (call.args or call.keywords):
                continue
            if name == "to" and not any(_is_float16(document, argument) for argument in (*call.args, *(k.value for k in call.keywords if k.arg == "dtype"))):
                continue
            statement = index.enclosing_statement(call)
            owners = {dotted_name(call.func.value)}
            if isinstance(statement, ast.Assign):
                owners.update(dotted_name(target) for target in statement.targets)
            scope = index.enclosing_function(call)
            for owner in owners & trained.keys():
                iteration, optimizer_scope = trained[owner]
                if optimizer_scope is not scope and scope is not None:
                    continue
                yield rule.finding(
                    document,
                    call,
                    f"`{owner}` is cast to float16 and trained directly: no float32 master weights and no loss scaling, so "
                    "small gradients underflow, small updates vanish against fp16 weights, and one overflow writes NaN "
                    "into the model (a GradScaler cannot help: it refuses float16 gradients). Keep the weights in float32 "
                    "and train under `torch.autocast(dtype=torch.float16)` with a GradScaler, or use bfloat16 autocast "
                    "(Micikevicius et al., 2018)",
                    related=[Related(document.span_of(step.node), "steps the float16 weights") for step in iteration.steps],
                )
                break


def _trained_modules(document: Document) -> dict[str, tuple[TrainingIteration, object]]:
    """Module name -> (the iteration stepping its optimizer, the function building that optimizer)."""
    found = {}
    iterations = document.loops.iterations
    for optimizer in document.training.optimizers:
        argument = optimizer.call.args[0] if optimizer.call.args else None
        if not (isinstance(argument, ast.Call) and isinstance(argument.func, ast.Attribute) and argument.func.attr == "parameters"):
            continue
        owner = dotted_name(argument.func.value)
        iteration = next(
            (
                iteration
                for iteration in iterations
                if iteration.framework is None and any(step.target in optimizer.names for step in iteration.steps)
            ),
            None,
        )
        if owner and iteration is not None:
            found[owner] = (iteration, document.index.enclosing_function(optimizer.call))
    return found


RULE = Rule(
    code="LLM305",
    name="fp16-without-grad-scaler",
    summary="Float16 training (autocast or a .half() model) with no loss scaling",
    severity=Severity.WARNING,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("micikevicius2018mixed", "fedus2021switch", "bigscience2022bloom"),
    check=check,
    docs=RULE_DOCS,
    tags=("precision", "stability", "training-loop"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # bfloat16 needs no scaler
        """
        import torch
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(x, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
        # float16 with a GradScaler
        """
        import torch
        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
        """,
        # nanoGPT: the dtype is chosen at run time, and the scaler is there for fp16
        """
        import torch
        from contextlib import nullcontext
        ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)
        while True:
            with ctx:
                logits, loss = model(X, Y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        """,
        # accelerate owns the precision (mixed_precision="fp16" scales for you)
        """
        import torch
        from accelerate import Accelerator
        accelerator = Accelerator(mixed_precision="fp16")
        for batch in loader:
            with torch.autocast("cuda"):
                loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        """,
        # float16 for evaluation only: no backward under it
        """
        import torch
        for x, y in loader:
            loss = model(x, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            predictions = model(test_x)
        """,
        # CPU autocast defaults to bfloat16
        """
        import torch
        for x, y in loader:
            with torch.autocast("cpu"):
                loss = model(x, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            from model import GPT
            model = GPT().cuda()
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            for step in range(10_000):
                x, y = get_batch()
                with torch.autocast("cuda", dtype=torch.float16):
                    logits, loss = model(x, y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            """,
            at=("7:10-7:53",),
            fixed="""
            import torch
            from model import GPT
            model = GPT().cuda()
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            # Scale the fp16 loss so small gradients do not underflow; unscale before clipping (Micikevicius et al., 2018, arXiv:1710.03740)
            scaler = torch.amp.GradScaler("cuda")
            for step in range(10_000):
                x, y = get_batch()
                with torch.autocast("cuda", dtype=torch.float16):
                    logits, loss = model(x, y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
            """,
        ),
        Invalid(
            """
            import torch
            from torch.cuda.amp import autocast

            def train(model, loader, optimizer, epochs):
                for epoch in range(epochs):
                    for batch in loader:
                        with autocast():
                            loss = model(**batch).loss
                        (loss / 2).backward()
                        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                        optimizer.step()  # update
                        optimizer.zero_grad()
            """,
            at=("7:18-7:28",),
            fixed="""
            import torch
            from torch.cuda.amp import autocast

            def train(model, loader, optimizer, epochs):
                # Scale the fp16 loss so small gradients do not underflow; unscale before clipping (Micikevicius et al., 2018, arXiv:1710.03740)
                scaler = torch.amp.GradScaler("cuda")
                for epoch in range(epochs):
                    for batch in loader:
                        with autocast():
                            loss = model(**batch).loss
                        scaler.scale(loss / 2).backward()
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                        scaler.step(optimizer)  # update
                        scaler.update()
                        optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            import torch
            from model import GPT
            model = GPT().cuda().half()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            for x, y in loader:
                logits, loss = model(x, y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            """,
            at=("3:9-3:28",),
        ),
    ),
)
