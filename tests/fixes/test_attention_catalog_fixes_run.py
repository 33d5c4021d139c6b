"""The LLM102 and LLM106 fixes, applied to small attention functions and run with torch.

The checker never imports user code; these tests execute the original and the fixed text in a fresh
namespace to show that each fix does what its rule says.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.fixes.apply import apply_fixes

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _fixed(code: str, rule_code: str) -> tuple[str, str]:
    source = textwrap.dedent(code).lstrip("\n")
    rule = find_rule(rule_code)
    findings = rule.run(Document(source))
    assert findings and all(finding.fix is not None for finding in findings)
    text = apply_fixes(source, [finding.fix for finding in findings]).text
    assert rule.run(Document(text)) == []
    return source, text


def _load(text: str, name: str):
    namespace: dict = {}
    exec(compile(text, f"<{name}>", "exec"), namespace)  # noqa: S102 - our own test snippet
    return namespace


# ---- LLM102: softmax over the key axis ----------------------------------------------------------------

WRONG_DIM = """
import math
import torch.nn.functional as F

def attend(x, v, B, T, nh, hs):
    q = x.view(B, T, nh, hs).transpose(1, 2)
    k = x.flip(1).view(B, T, nh, hs).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)
    att = F.softmax(att, dim=1)
    return att @ v, att
"""

WRONG_DIM_EINSUM = """
import torch

def attend(q, k, v, scale):
    dots = torch.einsum("b h i d, b h j d -> b h i j", q, k) * scale
    attn = dots.softmax(dim=-2)
    return torch.einsum("b h i j, b h j d -> b h i d", attn, v), attn
"""


@pytest.mark.parametrize("dim", ["1", "2", "-2", "-3"])
def test_softmax_dim_fix_normalises_over_keys_and_matches_sdpa(dim):
    original, fixed = _fixed(WRONG_DIM.replace("dim=1", f"dim={dim}"), "LLM102")
    assert "att = F.softmax(att, dim=-1)" in fixed
    torch.manual_seed(0)
    B, T, nh, hs = 2, 5, 3, 4
    x = torch.randn(B, T, nh * hs)
    v = torch.randn(B, nh, T, hs)
    q = x.view(B, T, nh, hs).transpose(1, 2)
    k = x.flip(1).view(B, T, nh, hs).transpose(1, 2)
    reference = F.scaled_dot_product_attention(q, k, v)

    before, before_weights = _load(original, "original")["attend"](x, v, B, T, nh, hs)
    after, after_weights = _load(fixed, "fixed")["attend"](x, v, B, T, nh, hs)

    ones = torch.ones(B, nh, T)
    assert not torch.allclose(before_weights.sum(-1), ones, atol=1e-5)  # rows did not sum to 1 over keys
    assert torch.allclose(after_weights.sum(-1), ones, atol=1e-6)
    assert not torch.allclose(before, reference, atol=1e-4)
    assert torch.allclose(after, reference, atol=1e-5)


def test_einsum_softmax_dim_fix_matches_sdpa():
    original, fixed = _fixed(WRONG_DIM_EINSUM, "LLM102")
    assert "attn = dots.softmax(dim=-1)" in fixed
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    reference = F.scaled_dot_product_attention(q, k, v)
    after, weights = _load(fixed, "fixed")["attend"](q, k, v, 8**-0.5)
    before, _ = _load(original, "original")["attend"](q, k, v, 8**-0.5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 6), atol=1e-6)
    assert torch.allclose(after, reference, atol=1e-5)
    assert not torch.allclose(before, reference, atol=1e-3)


def test_implicit_dim_fix_names_the_key_axis():
    original, fixed = _fixed(
        """
        import torch
        import torch.nn.functional as F
        def attend(x, v):
            q = x.reshape(2, 4, 16, 8)
            k = x.reshape(2, 4, 16, 8)
            att = q @ k.transpose(-2, -1) / 8 ** 0.5
            return F.softmax(att) @ v
        """,
        "LLM102",
    )
    assert "F.softmax(att, dim=-1)" in fixed
    torch.manual_seed(2)
    x, v = torch.randn(2, 16, 32), torch.randn(2, 4, 16, 8)
    q = k = x.reshape(2, 4, 16, 8)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        before = _load(original, "original")["attend"](x, v)
    after = _load(fixed, "fixed")["attend"](x, v)
    reference = F.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(after, reference, atol=1e-5)
    assert not torch.allclose(before, reference, atol=1e-3)


# ---- LLM106: a fill value that fits the scores' dtype -----------------------------------------------

MASKED_FILL = """
import math
import torch

def attention(query, key, value, mask):
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.size(-1))
    scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)
    return torch.matmul(p_attn, value)
"""

WHERE_FILL = """
import torch

def attention(q, k, v, keep):
    att = q @ k.transpose(-2, -1) * q.size(-1) ** -0.5
    att = torch.where(keep, att, -1e9)
    return att.softmax(dim=-1) @ v
"""


def _inputs(dtype):
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 2, 4, 8).to(dtype) for _ in range(3))
    keep = torch.ones(4, 4, dtype=torch.bool).tril()
    keep[2] = False  # query 2 may attend to nothing: a fully masked row (all padding)
    return q, k, v, keep


def test_minus_1e9_is_not_a_float16_number():
    assert torch.tensor(-1e9, dtype=torch.float16).item() == float("-inf")
    assert torch.finfo(torch.float16).min == -65504.0


def test_masked_fill_fix_runs_in_float16_where_the_original_raises():
    original, fixed = _fixed(MASKED_FILL, "LLM106")
    assert "scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)" in fixed
    q, k, v, keep = _inputs(torch.float16)
    mask = keep.to(torch.int64)
    with pytest.raises(RuntimeError, match="without overflow"):
        _load(original, "original")["attention"](q, k, v, mask)
    out = _load(fixed, "fixed")["attention"](q, k, v, mask)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_where_fix_keeps_fully_masked_rows_finite_in_float16():
    original, fixed = _fixed(WHERE_FILL, "LLM106")
    assert "att = torch.where(keep, att, torch.finfo(att.dtype).min)" in fixed
    q, k, v, keep = _inputs(torch.float16)
    before = _load(original, "original")["attention"](q, k, v, keep)
    after = _load(fixed, "fixed")["attention"](q, k, v, keep)
    assert torch.isnan(before[..., 2, :]).all()  # the -1e9 became -inf: NaN after softmax
    assert torch.isfinite(before[..., :2, :]).all()  # partly masked rows were fine all along
    assert torch.isfinite(after).all()
    # A fully masked row now averages the values uniformly, as it does in float32 with -1e9.
    assert torch.allclose(after[..., 2, :].float(), v.float().mean(dim=-2), atol=1e-2)


@pytest.mark.parametrize("code", [MASKED_FILL, WHERE_FILL], ids=["masked_fill", "where"])
def test_fill_fix_leaves_float32_results_unchanged(code):
    original, fixed = _fixed(code, "LLM106")
    q, k, v, keep = _inputs(torch.float32)
    mask = keep if "keep" in code else keep.to(torch.int64)
    name = "attention"
    before = _load(original, "original")[name](q, k, v, mask)
    after = _load(fixed, "fixed")[name](q, k, v, mask)
    assert torch.equal(before, after)
