"""`torch.optim.Adam` with `weight_decay > 0`: an L2 penalty folded into Adam's adaptive step.

## Problem
The optimizer is built as `torch.optim.Adam(params, ..., weight_decay=wd)` with `wd > 0`. The
author almost always means "weight decay" in the sense of modern recipes (shrink every weight by a
small fraction each step). What PyTorch's `Adam` does instead is add `wd * θ` to the gradient
before the moment estimates, an L2 penalty that then goes through Adam's per-parameter rescaling.

## Diagnosis
The rule looks at every call that builds `torch.optim.Adam` (however it was imported) and reads its
`weight_decay`: the keyword, the fifth positional argument, or a `"weight_decay"` entry in a literal
list of parameter groups. It fires when the value is a positive literal, or a name whose every
binding that can reach the call is a positive literal (`weight_decay = 1e-4` at module level). It
stays silent when the value is zero, absent (Adam's default is 0), unknown (a function parameter,
`args.weight_decay`, a config lookup), or when `decoupled_weight_decay=True` already asks Adam for
AdamW's behaviour. `AdamW`, `RAdam`, `NAdam` and third-party optimizers are not flagged.

## Hypothesis
With L2 inside Adam, the decay term is divided by the same `sqrt(v̂) + ε` as the loss gradient.
Weights whose gradients have been large (and so have a large `v̂`) are barely regularised, while
weights with tiny gradients are pulled to zero at a rate the author never chose; the penalty's
strength is tangled with the loss scale and with the learning rate. Decoupled weight decay
(`θ ← θ − lr·wd·θ`, applied outside the adaptive update) shrinks every weight at the same relative
rate, which is the regulariser the hyperparameter is meant to be.

## Literature
- Loshchilov and Hutter (2019, "Decoupled Weight Decay Regularization") show that L2
  regularisation and weight decay are equivalent for SGD but not for adaptive methods, that Adam
  with L2 generalises worse than Adam with decoupled decay (AdamW), and that decoupling makes the
  best decay factor far less dependent on the learning rate.
- Kingma and Ba (2015) define Adam's per-parameter normalisation by the second-moment estimate,
  which is what rescales an L2 term folded into the gradient.
- Brown et al. (2020, GPT-3) and Touvron et al. (2023, LLaMA) train with AdamW and a decoupled weight
  decay of 0.1, the scale of value a decoupled decay takes in transformer recipes.

## Recommendation
Use `torch.optim.AdamW` (or `Adam(..., decoupled_weight_decay=True)` on recent PyTorch). AdamW
multiplies the decay by the learning rate each step (`θ ← θ − lr·wd·θ`), so the old value is not a
like-for-like setting: the small L2 coefficients used with Adam (1e-5 to 1e-4) barely decay at
all under AdamW, where transformer recipes use 0.01-0.1 (GPT-3 and LLaMA: 0.1). Retune it, and
consider excluding norm gains and biases from decay (LLM304).

## Expected outcome
Regularisation that acts evenly across parameters and that you can tune independently of the
learning rate; in Loshchilov and Hutter's experiments, better generalisation at the same budget and
a wider basin of good (learning-rate, weight-decay) pairs. Training loss itself may be marginally
higher, as intended of a regulariser.

## Implementation
Before:

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-4)

After (the value kept by the fix; retune it):

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)

The fix keeps the file's spelling: `optim.AdamW` for `optim.Adam`, and for a from-import `Adam` it
adds `from torch.optim import AdamW` (or reuses an existing `AdamW` import). `Adam` and `AdamW`
take the same positional arguments, so nothing else moves.

## Caveats
The fix is unsafe: the update rule changes, and the kept `weight_decay` value now means
`lr·wd` shrinkage per step (often far weaker or stronger than before). Some work wants a true L2
penalty (e.g. to match a paper that used one, or a Bayesian prior); suppress the rule there. A
value that comes from a config or the command line is invisible, so the rule then stays silent.
Compute and memory cost of the change is nil.

## Next steps
After switching, sweep `weight_decay` over {0, 0.01, 0.05, 0.1} at the tuned learning rate and
compare validation loss; log the global weight norm over training (it should settle rather than
grow or collapse). `RAdam` and `NAdam` also fold decay into the gradient unless
`decoupled_weight_decay=True`; a later version may flag them too.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.values import known_number
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity, Span
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace

FIX_TITLE = "Switch to AdamW (decoupled weight decay)"

_ADAM = {"torch.optim.Adam", "torch.optim.adam.Adam"}
_ADAMW = "torch.optim.AdamW"
_WEIGHT_DECAY_POSITION = 4  # Adam(params, lr, betas, eps, weight_decay, amsgrad)


def check(document: Document, context: RuleContext, rule: Rule):
    if "Adam" not in document.source or not document.imports.imports_module("torch"):
        return
    for optimizer in document.training.optimizers:
        if optimizer.qualified not in _ADAM:
            continue
        call = optimizer.call
        if _decoupled(call):
            continue
        decay = _positive_weight_decay(document, call)
        if decay is None:
            continue
        yield rule.finding(
            document,
            call,
            _message(document, decay),
            related=[Related(document.span_of(decay), "folded into the gradient, then rescaled by Adam's second moment")],
            fix=_fix(document, call),
        )


def _decoupled(call: ast.Call) -> bool:
    """`decoupled_weight_decay=<anything but a literal False>`: AdamW's behaviour, or unknowable."""
    for keyword in call.keywords:
        if keyword.arg == "decoupled_weight_decay":
            return not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False)
    return False


def _positive_weight_decay(document: Document, call: ast.Call) -> ast.AST | None:
    """The expression that sets a positive weight decay, or None when it is zero or unknown."""
    decay = next((keyword.value for keyword in call.keywords if keyword.arg == "weight_decay"), None)
    if decay is None and len(call.args) > _WEIGHT_DECAY_POSITION and not any(
        isinstance(argument, ast.Starred) for argument in call.args[: _WEIGHT_DECAY_POSITION + 1]
    ):
        decay = call.args[_WEIGHT_DECAY_POSITION]
    if decay is not None:
        value = known_number(document, decay)
        if value is not None and value > 0:
            return decay
    # Per-group settings: `Adam([{"params": ..., "weight_decay": 1e-4}, ...])`.
    groups = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "params"), None)
    if isinstance(groups, (ast.List, ast.Tuple)):
        for group in groups.elts:
            if not isinstance(group, ast.Dict):
                continue
            for key, value in zip(group.keys, group.values):
                if isinstance(key, ast.Constant) and key.value == "weight_decay":
                    number = known_number(document, value)
                    if number is not None and number > 0:
                        return value
    return None


def _message(document: Document, decay: ast.AST) -> str:
    written = document.segment(decay)
    shown = written if len(written) <= 40 else "..."
    return (
        f"`Adam` with weight decay `{shown}` adds an L2 penalty to the gradient, which Adam's adaptive "
        "step then rescales per parameter: weights with large gradient history are barely regularised. "
        "That is not decoupled weight decay (Loshchilov and Hutter, 2019). Use `AdamW`; its decay is "
        "multiplied by the learning rate each step, so retune the value (transformer recipes use 0.01-0.1)"
    )


def _fix(document: Document, call: ast.Call) -> Fix | None:
    func = call.func
    imports: tuple[AddImport, ...] = ()
    existing = next((local for local, target in document.imports.aliases.items() if target == _ADAMW), None)
    if existing is not None:
        span, text = document.span_of(func), existing
    elif isinstance(func, ast.Attribute) and document.qualified_name(func) == "torch.optim.Adam":
        whole = document.span_of(func)
        span = Span(whole.end_line, whole.end_column - len(func.attr), whole.end_line, whole.end_column)
        if document.text_in(span) != func.attr:
            return None
        text = func.attr + "W"
    elif isinstance(func, ast.Name):
        if "AdamW" in document.source and re.search(r"\bAdamW\b", document.source):
            return None  # the name is taken by something else
        span, text = document.span_of(func), "AdamW"
        imports = (AddImport("torch.optim", "AdamW"),)
    else:
        local = document.imports.local_name_for(_ADAMW)
        if local is None:
            return None
        span, text = document.span_of(func), local
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=(Replace(span, text),), imports=imports)


RULE = Rule(
    code="LLM303",
    name="adam-l2-weight-decay",
    summary="Adam with weight_decay > 0 applies an L2 penalty inside the adaptive update, not decoupled weight decay",
    severity=Severity.WARNING,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("loshchilov2019adamw", "kingma2015adam", "brown2020gpt3", "touvron2023llama"),
    check=check,
    docs=__doc__,
    tags=("optimization", "regularization"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # AdamW: decay is already decoupled
        """
        import torch
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
        """,
        # Adam without weight decay (its default is 0)
        """
        import torch
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9)
        """,
        # zero, spelled positionally
        """
        from torch import optim
        optimizer = optim.Adam(model.parameters(), 1e-3, (0.9, 0.999), 1e-8, 0.0)
        """,
        # the value comes from the command line: unknowable, so silent
        """
        import torch
        def build(model, args):
            return torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        """,
        # a function parameter shadows the module-level value
        """
        import torch
        weight_decay = 1e-4
        def build(model, weight_decay=0.0):
            return torch.optim.Adam(model.parameters(), weight_decay=weight_decay)
        """,
        # PyTorch's own switch to decoupled decay
        """
        import torch
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.01, decoupled_weight_decay=True)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-4)
            """,
            at=("2:13-2:77",),
            fixed="""
            import torch
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
            """,
        ),
        Invalid(
            """
            from torch import optim
            weight_decay = 5e-4
            opt = optim.Adam(net.parameters(), lr=1e-3, weight_decay=weight_decay)
            """,
            at=("3:7-3:71",),
            fixed="""
            from torch import optim
            weight_decay = 5e-4
            opt = optim.AdamW(net.parameters(), lr=1e-3, weight_decay=weight_decay)
            """,
        ),
        Invalid(
            """
            from torch.optim import Adam

            def configure(model):
                return Adam(model.parameters(), 1e-3, (0.9, 0.999), 1e-8, 1e-2)
            """,
            at=("4:12-4:68",),
            fixed="""
            from torch.optim import AdamW, Adam

            def configure(model):
                return AdamW(model.parameters(), 1e-3, (0.9, 0.999), 1e-8, 1e-2)
            """,
        ),
        Invalid(
            """
            import torch
            groups = [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}]
            optimizer = torch.optim.Adam(
                [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                lr=1e-3,
            )
            """,
            at=("3:13-6:2",),
            fixed="""
            import torch
            groups = [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}]
            optimizer = torch.optim.AdamW(
                [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                lr=1e-3,
            )
            """,
        ),
    ),
)
