"""The router softmax of a mixture-of-experts layer computed in the activation dtype, not float32.

## Problem
Under bf16 or fp16 training, a router that computes `softmax(self.gate(x))` in the activation dtype
rounds its probabilities to 8 (bf16) or 11 (fp16) significant bits. Those probabilities decide which
experts win the top-k and scale the experts' outputs, and their small differences are what the
router's gradient learns from: rounding turns near-ties into exact ties and makes the selection
jitter from step to step, and the softmax's exponential amplifies the rounding error of large
logits. The Switch Transformer authors report that a bfloat16 router made training unstable.

## Diagnosis
A softmax (`F.softmax`, `torch.softmax`, `x.softmax(...)`) on a router's trail: either its output
reaches the top-k that picks experts, or its input is the top-k values of router logits. The router
logits must come from a plain linear map the check can see: a `self.gate`/`self.router`
`nn.Linear`, `F.linear(x, self.weight)` in a class named like a router, or `x @ self.w_gate`. It is
not reported when anything on the way states a precision: a `dtype=` on the softmax (float32 or a
deliberate other choice), `.float()`, `.double()`, `.to(torch.float32)` or any `.to(<dtype>)` whose
target is not visibly half precision, a float32 input or weight cast inside the linear map, or a
router `nn.Linear(..., dtype=torch.float32)`. Logits that arrive from a parameter or an unknown call
are not judged.

## Hypothesis
In bf16, two router probabilities closer than about 0.4% of their size are indistinguishable, and
the renormalised top-k weights inherit that error. Computing the softmax in float32 keeps the
router's decisions and gradients faithful to its logits, which removes a known source of loss spikes
in sparse models; in float32 training the change is a no-op.

## Literature
- Fedus et al. (2021, Switch Transformer) call this selective precision: they cast the router input
  to float32 and compute the router softmax in float32, keeping the rest of the model in bfloat16,
  and report that bfloat16 routers make training unstable.
- Zoph et al. (2022, ST-MoE) show that router logits are sensitive to round-off in the exponential,
  and add the router z-loss, which penalises large logits, to stabilise training.
- Micikevicius et al. (2018, mixed precision training) keep reductions and sensitive operations in
  float32 while the bulk of the arithmetic runs in half precision; the router softmax is such an op.

## Recommendation
Ask for a float32 result: `F.softmax(router_logits, dim=-1, dtype=torch.float32)` (or softmax
`router_logits.float()`), keep the routing weights in float32 through top-k and renormalisation, and
cast them back to the activation dtype only where they scale the experts' outputs
(`routing_weights.to(hidden_states.dtype)`), as Mixtral's implementation does. For full selective
precision, also run the router's linear map in float32.

## Expected outcome
Router probabilities accurate to float32 rounding instead of bf16: fewer routing flips between
steps, smoother per-expert load curves, and fewer loss spikes in long bf16 runs. The memory and time
cost is negligible: the router's output has only as many columns as there are experts.

## Implementation
Before:

    router_logits = self.gate(x)  # (T, E)
    probs = F.softmax(router_logits, dim=-1)

After:

    router_logits = self.gate(x)  # (T, E)
    # Router softmax in float32: bf16 rounding of router probabilities destabilises MoE training (Fedus et al., 2022, arXiv:2101.03961)
    probs = F.softmax(router_logits, dim=-1, dtype=torch.float32)

## Caveats
The fix is marked unsafe: it changes the numerics (slightly) and the dtype of the routing weights.
Code that later mixes them with bf16 activations outside autocast, in `index_add_` or `einsum`,
needs a `.to(x.dtype)` after top-k and renormalisation; a checkpoint ported from another framework
reproduces its original outputs most closely with the original precision. With float32 activations
the finding is harmless and the fix is a no-op.

## Next steps
Train a few thousand steps in bf16 with and without the upcast and compare the per-expert token
fractions, the fraction of tokens whose top-k changes between consecutive steps, and the loss curve.
If router logits keep growing, add the router z-loss (Zoph et al., 2022).
"""

from __future__ import annotations

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.routers import RouterSoftmax
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.builders import cited_comment, set_keyword_argument
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix

FIX_TITLE = "Compute the router softmax in float32"
_FIX_REASON = "Router softmax in float32: bf16 rounding of router probabilities destabilises MoE training"

RULE_DOCS = __doc__


def check(document: Document, context: RuleContext, rule: Rule):
    for softmax in document.routers.softmaxes:
        trail = softmax.trail
        if softmax.explicit_dtype is not None or trail.upcast is not None or trail.opaque is not None:
            continue
        if trail.gate is None or not trail.gate_is_linear:
            continue
        yield rule.finding(
            document,
            softmax.call,
            _message(document, softmax),
            related=_related(document, softmax),
            fix=_fix(document, softmax),
        )


def _message(document: Document, softmax: RouterSoftmax) -> str:
    after_selection = bool(softmax.trail.selections)
    what = "top-k router weights" if after_selection else "router probabilities"
    return (
        f"{what} are computed in the activation dtype: under bf16/fp16 they keep 8-11 significant bits, so "
        "near-tied experts become ties and routing jitters; compute the router softmax in float32 "
        "(Fedus et al., 2022; Zoph et al., 2022)"
    )


def _related(document: Document, softmax: RouterSoftmax) -> tuple[Related, ...]:
    related = [Related(document.span_of(softmax.trail.gate), "router logits come from this linear map, in the activation dtype")]
    if softmax.site.selection is not softmax.call:
        related.append(Related(document.span_of(softmax.site.selection), "experts selected here"))
    return tuple(related)


def _fix(document: Document, softmax: RouterSoftmax) -> Fix:
    float32 = document.imports.local_name_for("torch.float32")
    imports = () if float32 else (AddImport("torch"),)
    statement = document.index.enclosing_statement(softmax.call)
    return Fix(
        title=FIX_TITLE,
        applicability=UNSAFE,
        replacements=(set_keyword_argument(document, softmax.call, "dtype", float32 or "torch.float32"),),
        comments=(cited_comment(statement.lineno, _FIX_REASON, "fedus2021switch"),),
        imports=imports,
    )


RULE = Rule(
    code="LLM602",
    name="router-low-precision",
    summary="A mixture-of-experts router softmax computed in the activation dtype instead of float32",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("fedus2021switch", "zoph2022stmoe", "micikevicius2018mixed"),
    check=check,
    docs=RULE_DOCS,
    tags=("moe", "routing", "mixed-precision", "stability"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # Mixtral's way: a float32 softmax, weights cast back after top-k.
        """
        import torch
        import torch.nn.functional as F
        from torch import nn

        class SparseMoeBlock(nn.Module):
            def __init__(self, hidden, num_experts, top_k):
                super().__init__()
                self.gate = nn.Linear(hidden, num_experts, bias=False)
                self.experts = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(num_experts))
                self.top_k = top_k

            def forward(self, x):
                router_logits = self.gate(x)
                routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
                routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
                routing_weights = routing_weights.to(x.dtype)
                return routing_weights, selected_experts, router_logits
        """,
        # Selective precision: the router's matmul itself runs in float32.
        """
        import torch
        import torch.nn.functional as F
        from torch import nn

        class TopKRouter(nn.Module):
            def __init__(self, hidden, num_experts, k):
                super().__init__()
                self.weight = nn.Parameter(torch.empty(num_experts, hidden))
                self.k = k

            def forward(self, hidden_states):
                router_logits = F.linear(hidden_states.float(), self.weight.float())
                probs = F.softmax(router_logits, dim=-1)
                top_value, top_index = torch.topk(probs, self.k, dim=-1)
                return router_logits, top_value.to(hidden_states.dtype), top_index
        """,
        # Logits handed in by the caller: their dtype is decided elsewhere.
        """
        import torch

        def route(router_logits, k, experts):
            probs = torch.softmax(router_logits, dim=-1)
            return torch.topk(probs, k, dim=-1)
        """,
        # An attention softmax beside an MoE layer is not a router.
        """
        import torch.nn.functional as F
        from torch import nn

        class Block(nn.Module):
            def forward(self, q, k, v):
                att = F.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
                return self.experts[0](att @ v)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn

            class TopKRouter(nn.Module):
                def __init__(self, dim, num_experts, k):
                    super().__init__()
                    self.gate = nn.Linear(dim, num_experts, bias=False)
                    self.k = k

                def forward(self, x):
                    router_logits = self.gate(x)  # (T, E)
                    probs = F.softmax(router_logits, dim=-1)
                    weights, experts = torch.topk(probs, self.k, dim=-1)
                    return router_logits, weights, experts
            """,
            at=("13:17-13:49",),
            fixed="""
            import torch
            import torch.nn.functional as F
            from torch import nn

            class TopKRouter(nn.Module):
                def __init__(self, dim, num_experts, k):
                    super().__init__()
                    self.gate = nn.Linear(dim, num_experts, bias=False)
                    self.k = k

                def forward(self, x):
                    router_logits = self.gate(x)  # (T, E)
                    # Router softmax in float32: bf16 rounding of router probabilities destabilises MoE training (Fedus et al., 2022, arXiv:2101.03961)
                    probs = F.softmax(router_logits, dim=-1, dtype=torch.float32)
                    weights, experts = torch.topk(probs, self.k, dim=-1)
                    return router_logits, weights, experts
            """,
        ),
        Invalid(
            """
            from torch import nn, topk

            class MoeLayer(nn.Module):
                def __init__(self, dim, n_experts, k):
                    super().__init__()
                    self.gate = nn.Linear(dim, n_experts, bias=False)
                    self.experts = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_experts))
                    self.k = k

                def forward(self, x):
                    gate_logits = self.gate(x)
                    weights, selected = topk(gate_logits, self.k)
                    weights = weights.softmax(dim=1)
                    out = x * 0
                    for i, expert in enumerate(self.experts):
                        rows, slot = (selected == i).nonzero(as_tuple=True)
                        out[rows] += weights[rows, slot, None] * expert(x[rows])
                    return out, gate_logits
            """,
            at=("13:19-13:41",),
            fixed="""
            from torch import nn, topk
            import torch

            class MoeLayer(nn.Module):
                def __init__(self, dim, n_experts, k):
                    super().__init__()
                    self.gate = nn.Linear(dim, n_experts, bias=False)
                    self.experts = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_experts))
                    self.k = k

                def forward(self, x):
                    gate_logits = self.gate(x)
                    weights, selected = topk(gate_logits, self.k)
                    # Router softmax in float32: bf16 rounding of router probabilities destabilises MoE training (Fedus et al., 2022, arXiv:2101.03961)
                    weights = weights.softmax(dim=1, dtype=torch.float32)
                    out = x * 0
                    for i, expert in enumerate(self.experts):
                        rows, slot = (selected == i).nonzero(as_tuple=True)
                        out[rows] += weights[rows, slot, None] * expert(x[rows])
                    return out, gate_logits
            """,
        ),
    ),
)
