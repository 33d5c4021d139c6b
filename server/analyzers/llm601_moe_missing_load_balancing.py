"""A top-k expert router trained with nothing that keeps the load across experts balanced.

## Problem
A mixture-of-experts layer sends each token to the k experts with the highest router scores. The
router is trained only through the experts it picks, so an expert that wins a little early gets more
tokens, gets better, and wins more: without a counter-force, routing collapses onto a few experts,
the others starve, and with capacity limits the overflow tokens are dropped. The layer then costs
the memory of many experts and delivers the quality of a few.

## Diagnosis
A `torch.topk` (or top-1 `argmax`) whose input, followed back through the function, comes from a
router: a submodule named like one (`self.gate(x)`, `self.router(x)`, `x @ self.w_gate`), a linear
map inside a class named like one (`MoEGate`, `TopKRouter`), or variables named like router logits;
in a file that builds experts. It is reported when the file has no sign of balancing: no auxiliary
loss, z-loss, importance or load term (`aux_loss`, `load_balancing_loss_func`, `balance`, `z_loss`,
`cv_squared`), no auxiliary-loss-free bias (`e_score_correction_bias`, `expert_bias`,
`tokens_per_expert`), and the router logits are not handed out of the function (returned, stored on
`self`, appended to a list) for a loss computed elsewhere, as Hugging Face MoE models do.
Expert-choice routing (`topk` over tokens, `dim=0`, or a capacity-sized k) is balanced by
construction and not reported.

## Hypothesis
With no balancing term, the fraction of tokens routed to each expert drifts far from 1/E within the
first few thousand steps; the router entropy falls, a handful of experts take most tokens, and the
validation loss ends close to that of a dense model with the active parameter count, not the total.
Adding a balancing term keeps per-expert token fractions near uniform and recovers the quality gain
that sparse scaling promises.

## Literature
- Shazeer et al. (2017) introduce the sparsely-gated MoE layer with noisy top-k gating, and observe
  that the gating network converges to a state where it always picks the same few experts; they add
  importance and load losses to balance it.
- Fedus et al. (2021, Switch Transformer) simplify this to one auxiliary loss, E · Σᵢ fᵢ · Pᵢ (the
  fraction of tokens sent to expert i times its mean router probability), weighted by α = 0.01.
- Lepikhin et al. (2020, GShard) use the same kind of auxiliary loss together with per-expert
  capacity to train 600B-parameter MoE translation models.
- Zoph et al. (2022, ST-MoE) keep the balancing loss and add a router z-loss that penalises large
  router logits, for stability.

## Recommendation
Return the router logits from the layer and add the Switch-style balancing loss to the training loss,
`loss = lm_loss + 0.01 * aux_loss`, or compute it inside the layer and store it
(`self.aux_loss = num_experts * (tokens_per_expert * router_prob_per_expert).sum()`). An
auxiliary-loss-free alternative is a per-expert bias added to the scores before top-k only, nudged
after each step towards under-used experts (DeepSeek-V3's `e_score_correction_bias`).

## Expected outcome
Per-expert token fractions stay near 1/E throughout training (log them), fewer dropped tokens when a
capacity factor is used, and a lower validation loss than the same layer trained without the term,
approaching the quality gain reported for sparse models at equal active compute.

## Implementation
Before:

    weights, experts = torch.topk(self.gate(x), self.k, dim=-1)

After:

    router_logits = self.gate(x)  # (T, E)
    weights, experts = torch.topk(router_logits, self.k, dim=-1)
    probs = router_logits.float().softmax(-1)
    tokens_per_expert = F.one_hot(experts[:, 0], probs.size(-1)).float().mean(0)
    # Switch load-balancing loss: fraction of tokens times mean router probability per expert (Fedus et al., 2022, arXiv:2101.03961)
    self.aux_loss = probs.size(-1) * (tokens_per_expert * probs.mean(0)).sum()

## Caveats
There is no automatic fix: where the loss joins the training objective lives outside the layer. The
loss weight matters: too large and it overrides the language-modelling signal, forcing uniform but
useless routing. Inference-only ports of trained MoE models (reference implementations that only
load weights) do not need the term; silence them with `# llmarch: ignore[LLM601]`. A loss computed
in another file from logits captured by a forward hook is not visible here.

## Next steps
Log, per MoE layer, the fraction of tokens each expert receives and the router entropy; plot them
over the first few thousand steps. If a few experts still dominate, raise the auxiliary weight or
add noise to the router logits early in training; if the loss is fine but training is unstable, add
the router z-loss (Zoph et al., 2022).
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.routers import RouterSite
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity

RULE_DOCS = __doc__

# Any of these in an identifier or a string: the file balances its experts somehow.
_BALANCING = re.compile(
    r"(?i)aux|balanc|z_?loss|importance|correction_bias|expert_bias|bias_update|update_bias|router_loss|gate_loss"
    r"|moe_loss|cv_squared|tokens_per_expert|expert_load|load_loss|lb_loss|router_entropy"
)
_BALANCING_WORDS = ("aux", "balanc", "loss", "importance", "bias", "tokens_per_expert", "expert_load", "cv_squared")
_EXPERTS = re.compile(r"(?i)expert")
_EXPERTS_CONTAINER = re.compile(r"(?i)(?:^|_)experts$")


def check(document: Document, context: RuleContext, rule: Rule):
    sites = [site for site in document.routers.sites if not site.expert_choice and site.exposed_by is None]
    if not sites:
        return
    # One finding per router: group-limited routing takes a top-k over groups, then over experts.
    first_per_function: dict[int, RouterSite] = {}
    for site in sites:
        first_per_function.setdefault(id(site.function), site)
    sites = list(first_per_function.values())
    if not _mentions_experts(document) or _balancing_evidence(document) is not None:
        return
    experts = _experts_built(document)
    for site in sites:
        yield rule.finding(document, site.selection, _message(document, site), related=_related(document, site, experts))


def _message(document: Document, site: RouterSite) -> str:
    picked = "top-1 routing" if _call_name(site.selection) == "argmax" else "top-k routing"
    # the name nearest the gate: the router logits themselves
    source = f"`{site.trail.names[-1]}`" if site.trail.names else "the router scores"
    return (
        f"{picked} over {source} has no load-balancing term anywhere in this file: no auxiliary or "
        "z-loss, no expert bias, and the router logits are not returned for a loss elsewhere; the router "
        "tends to collapse onto a few experts while the rest get no tokens and no gradient "
        "(Shazeer et al., 2017; Fedus et al., 2022)"
    )


def _related(document: Document, site: RouterSite, experts: ast.AST | None) -> tuple[Related, ...]:
    related = []
    if site.trail.gate is not None:
        related.append(Related(document.span_of(site.trail.gate), "router logits computed here"))
    if experts is not None:
        related.append(Related(document.span_of(experts), "experts defined here"))
    return tuple(related)


def _mentions_experts(document: Document) -> bool:
    """An identifier about experts (`self.experts`, `num_experts`): the file dispatches to experts."""
    by_type = document.index.by_type
    return any(_EXPERTS.search(node.attr) for node in by_type.get(ast.Attribute, ())) or any(
        _EXPERTS.search(node.id) for node in by_type.get(ast.Name, ())
    ) or any(_EXPERTS.search(node.arg) for node in by_type.get(ast.arg, ()))


def _experts_built(document: Document) -> ast.AST | None:
    """`self.experts = nn.ModuleList(...)`: the container tokens are dispatched to."""
    for node in document.index.by_type.get(ast.Attribute, ()):
        if isinstance(node.ctx, ast.Store) and _EXPERTS_CONTAINER.search(node.attr):
            statement = document.index.enclosing_statement(node)
            if isinstance(getattr(statement, "value", None), ast.Call):
                return statement
    return None


def _balancing_evidence(document: Document) -> ast.AST | None:
    """The first identifier or string that speaks of balancing the experts."""
    lowered = document.source.lower()
    if not any(word in lowered for word in _BALANCING_WORDS):
        return None
    search = _BALANCING.search
    by_type = document.index.by_type
    for node in by_type.get(ast.Name, ()):
        if search(node.id):
            return node
    for node in by_type.get(ast.Attribute, ()):
        if search(node.attr):
            return node
    for node in by_type.get(ast.arg, ()):
        if search(node.arg):
            return node
    for node in by_type.get(ast.keyword, ()):
        if node.arg and search(node.arg):
            return node
    for node in (*by_type.get(ast.FunctionDef, ()), *by_type.get(ast.AsyncFunctionDef, ()), *by_type.get(ast.ClassDef, ())):
        if search(node.name):
            return node
    parents = document.index.parents
    for node in by_type.get(ast.Constant, ()):
        if isinstance(node.value, str) and search(node.value) and not isinstance(parents.get(node), ast.Expr):
            return node
    return None


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


RULE = Rule(
    code="LLM601",
    name="moe-missing-load-balancing",
    summary="A top-k expert router with no auxiliary load-balancing loss or bias anywhere in the file",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("shazeer2017moe", "fedus2021switch", "lepikhin2020gshard", "zoph2022stmoe"),
    check=check,
    docs=RULE_DOCS,
    tags=("moe", "routing", "training-dynamics"),
    valid=(
        # Hugging Face style: the router hands its logits back, the loss is computed by the caller.
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

            def forward(self, hidden_states):
                router_logits = self.gate(hidden_states)
                routing_weights = F.softmax(router_logits, dim=-1, dtype=torch.float)
                routing_weights, selected = torch.topk(routing_weights, self.top_k, dim=-1)
                out = torch.zeros_like(hidden_states)
                for index, expert in enumerate(self.experts):
                    token, slot = torch.where(selected == index)
                    out[token] += expert(hidden_states[token]) * routing_weights[token, slot, None]
                return out, router_logits
        """,
        # The Switch auxiliary loss computed in the layer and kept for the training step.
        """
        import torch
        import torch.nn.functional as F
        from torch import nn

        class SwitchFFN(nn.Module):
            def __init__(self, dim, num_experts):
                super().__init__()
                self.router = nn.Linear(dim, num_experts)
                self.experts = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_experts))

            def forward(self, x):
                probs = self.router(x).float().softmax(dim=-1)
                expert_index = torch.argmax(probs, dim=-1)
                fraction = F.one_hot(expert_index, len(self.experts)).float().mean(0)
                self.aux_loss = len(self.experts) * (fraction * probs.mean(0)).sum()
                return torch.stack([self.experts[i](t) for i, t in zip(expert_index.tolist(), x)])
        """,
        # Auxiliary-loss-free balancing: a bias on the scores, nudged towards under-used experts.
        """
        import torch
        from torch import nn

        class BiasBalancedGate(nn.Module):
            def __init__(self, dim, n_experts, k):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(n_experts, dim) * 0.02)
                self.register_buffer("e_score_correction_bias", torch.zeros(n_experts))
                self.k = k

            def forward(self, x):
                scores = torch.sigmoid(x @ self.weight.t())
                chosen = torch.topk(scores + self.e_score_correction_bias, self.k, dim=-1).indices
                return chosen, scores.gather(-1, chosen)
        """,
        # Expert choice: each expert picks its top tokens, so load is balanced by construction.
        """
        import torch
        from torch import nn

        class ExpertChoiceMoE(nn.Module):
            def __init__(self, dim, num_experts, capacity):
                super().__init__()
                self.gate = nn.Linear(dim, num_experts, bias=False)
                self.experts = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_experts))
                self.capacity = capacity

            def forward(self, x):
                scores = self.gate(x).softmax(dim=-1)
                weights, tokens = torch.topk(scores.t(), self.capacity, dim=-1)
                out = torch.zeros_like(x)
                for e, expert in enumerate(self.experts):
                    out[tokens[e]] += expert(x[tokens[e]]) * weights[e, :, None]
                return out
        """,
        # Top-k sampling from language-model logits is not routing.
        """
        import torch

        def sample(model, idx, top_k=50):
            logits = model(idx)[:, -1, :]
            values, _ = torch.topk(logits, top_k)
            logits[logits < values[:, [-1]]] = -float("inf")
            return torch.multinomial(torch.softmax(logits, dim=-1), 1)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn

            class MoE(nn.Module):
                def __init__(self, dim, num_experts=8, k=2):
                    super().__init__()
                    self.gate = nn.Linear(dim, num_experts, bias=False)
                    self.experts = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_experts))
                    self.k = k

                def forward(self, x):
                    logits = self.gate(x)
                    weights, indices = torch.topk(logits, self.k, dim=-1)
                    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(x.dtype)
                    out = torch.zeros_like(x)
                    for i, expert in enumerate(self.experts):
                        token, slot = torch.where(indices == i)
                        out[token] += expert(x[token]) * weights[token, slot, None]
                    return out
            """,
            at=("14:28-14:62",),
        ),
        Invalid(
            """
            import torch
            from torch import nn

            class Top1Switch(nn.Module):
                def __init__(self, d_model, n_experts):
                    super().__init__()
                    self.switch = nn.Linear(d_model, n_experts)
                    self.experts = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_experts))

                def forward(self, x):
                    route_prob = torch.softmax(self.switch(x).float(), dim=-1)
                    routes = route_prob.argmax(dim=-1)
                    return torch.stack([self.experts[r](t) * route_prob[i, r] for i, (r, t) in enumerate(zip(routes.tolist(), x))])
            """,
            at=("12:18-12:43",),
        ),
    ),
)
