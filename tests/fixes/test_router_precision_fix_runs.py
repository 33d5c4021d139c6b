"""LLM602's fix, run with torch: the fixed router computes float32 probabilities from bf16 activations,
closer to a float64 reference than the bf16 softmax it replaces, and a fixed MoE layer still runs in
bf16 end to end.

The snippets are the rule's own INVALID examples, so the code checked here is the code users get.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.fixes.apply import apply_fixes

torch = pytest.importorskip("torch")

RULE = find_rule("LLM602")
ROUTER, MOE_LAYER = (textwrap.dedent(example.code).lstrip("\n") for example in RULE.invalid)


def _fixed(source: str) -> str:
    findings = RULE.run(Document(source))
    assert findings and all(finding.fix is not None for finding in findings)
    fixed = apply_fixes(source, [finding.fix for finding in findings]).text
    assert RULE.run(Document(fixed)) == []
    return fixed


def _load(source: str, name: str):
    namespace: dict = {"__name__": "router_fix_probe"}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - our own example code
    return namespace


def _router_outputs(source: str, x):
    torch.manual_seed(0)
    router = _load(source, "router")["TopKRouter"](dim=x.size(-1), num_experts=16, k=4).to(torch.bfloat16)
    with torch.no_grad():
        return router(x)


def test_fixed_router_probabilities_are_float32_and_closer_to_float64():
    torch.manual_seed(1)
    x = (torch.randn(512, 64) * 4).to(torch.bfloat16)  # large activations: logits of a few units
    before_logits, before_weights, before_experts = _router_outputs(ROUTER, x)
    after_logits, after_weights, after_experts = _router_outputs(_fixed(ROUTER), x)

    assert before_weights.dtype == torch.bfloat16
    assert after_weights.dtype == torch.float32
    assert torch.equal(before_logits, after_logits)  # same bf16 logits; only the softmax changed

    reference = torch.softmax(after_logits.double(), dim=-1)
    before_error = (before_weights.double() - reference.gather(-1, before_experts)).abs().max().item()
    after_error = (after_weights.double() - reference.gather(-1, after_experts)).abs().max().item()
    assert after_error < 1e-6
    assert after_error * 100 < before_error  # bf16 keeps ~3 decimal digits; float32 ~7


def test_fixed_moe_layer_runs_in_bf16_and_keeps_its_output_dtype():
    torch.manual_seed(0)
    before_layer = _load(MOE_LAYER, "moe")["MoeLayer"](dim=32, n_experts=8, k=2).to(torch.bfloat16)
    torch.manual_seed(0)
    after_layer = _load(_fixed(MOE_LAYER), "moe-fixed")["MoeLayer"](dim=32, n_experts=8, k=2).to(torch.bfloat16)
    x = torch.randn(64, 32).to(torch.bfloat16)

    before, _ = before_layer(x)
    after, gate_logits = after_layer(x)
    assert after.dtype == torch.bfloat16 and gate_logits.dtype == torch.bfloat16
    assert torch.isfinite(after.float()).all()
    # Same experts, weights differing only by bf16 rounding: the layer's output barely moves.
    assert torch.allclose(after.float(), before.float(), atol=5e-2, rtol=5e-2)

    after.float().sum().backward()
    assert after_layer.gate.weight.grad is not None and torch.isfinite(after_layer.gate.weight.grad.float()).all()
