"""LLM101's scale fix, and the SDPA rewrite (LLM101's alternative, LLM103's fix), run with torch.

The checker never imports user code; these tests do, on model files written for them: the scaled
attention must equal `F.scaled_dot_product_attention` on random inputs (same mask, no dropout),
and the SDPA rewrite must equal the original computation with the scale added.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.fixes.samples import fixed, fixes, run, source

torch = pytest.importorskip("torch")
F = torch.nn.functional

B, T, C, HEADS = 2, 16, 32, 4


def _same_weights(*modules):
    state = modules[0].state_dict()
    for module in modules[1:]:
        module.load_state_dict(state)
    return modules


def _heads(tensor):
    return tensor.view(B, T, HEADS, C // HEADS).transpose(1, 2)


# ---- nanoGPT: causal buffer, nn.Dropout ------------------------------------------------------

def test_nanogpt_scale_fix_equals_sdpa():
    attention = run(fixed(source("nanogpt"), "LLM101"))["CausalSelfAttention"]().eval()
    x = torch.randn(B, T, C)
    with torch.no_grad():
        q, k, v = (_heads(part) for part in attention.c_attn(x).split(C, dim=2))
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        expected = attention.c_proj(expected.transpose(1, 2).reshape(B, T, C))
        torch.testing.assert_close(attention(x), expected)


@pytest.mark.parametrize(("code", "kind"), [("LLM101", "alternative"), ("LLM103", "fix")])
@pytest.mark.parametrize("name", ["nanogpt", "hugging-face", "timm"])
def test_sdpa_rewrite_equals_the_original_with_the_scale_added(name, code, kind):
    text = source(name)
    scaled_text, rewritten_text = fixed(text, "LLM101"), fixed(text, code, kind)
    assert "scaled_dot_product_attention(" in rewritten_text
    assert rewritten_text.count("softmax(") == text.count("softmax(") - 1  # the manual chain is gone
    attention_class = {"nanogpt": "CausalSelfAttention", "hugging-face": "BartAttention", "timm": "Attention"}[name]
    arguments = () if name != "timm" else (C,)
    scaled, rewritten = (run(t)[attention_class](*arguments) for t in (scaled_text, rewritten_text))
    _same_weights(scaled, rewritten)
    x = torch.randn(B, T, C)
    masks = [None]
    if name == "hugging-face":  # an additive mask, as Hugging Face passes it: 0 to keep, large negative to drop
        padding = torch.zeros(B, 1, 1, T)
        padding[0, ..., -3:] = torch.finfo(torch.float32).min
        masks.append(padding)
    for mask in masks:
        extra = {"attention_mask": mask} if name == "hugging-face" else {}
        with torch.no_grad():
            torch.testing.assert_close(rewritten.eval()(x, **extra), scaled.eval()(x, **extra))


def test_sdpa_rewrite_passes_dropout_only_while_training():
    text = fixed(source("nanogpt"), "LLM103")
    assert "dropout_p=self.attn_dropout.p if self.training else 0.0" in text
    namespace, original = run(text), run(fixed(source("nanogpt"), "LLM101"))
    rewritten, scaled = namespace["CausalSelfAttention"](dropout=0.0), original["CausalSelfAttention"](dropout=0.0)
    _same_weights(scaled, rewritten)
    x = torch.randn(B, T, C, requires_grad=True)
    out = rewritten.train()(x)  # training mode, p = 0: still the same function
    torch.testing.assert_close(out, scaled.train()(x))
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    dropping = namespace["CausalSelfAttention"](dropout=0.5)
    _same_weights(scaled, dropping)
    with torch.no_grad():
        assert not torch.allclose(dropping.train()(x), scaled.eval()(x))  # dropout really runs in training
        torch.testing.assert_close(dropping.eval()(x), scaled.eval()(x))


def test_hugging_face_scale_fix_uses_the_head_dim_and_equals_sdpa():
    text = fixed(source("hugging-face"), "LLM101")
    assert "torch.matmul(query_states, key_states.transpose(2, 3)) * (self.head_dim ** -0.5)" in text
    attention = run(text)["BartAttention"]().eval()
    x = torch.randn(B, T, C)
    mask = torch.zeros(B, 1, T, T)
    mask[:, :, :, -2:] = torch.finfo(torch.float32).min
    with torch.no_grad():
        q, k, v = (_heads(projection(x)) for projection in (attention.q_proj, attention.k_proj, attention.v_proj))
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        expected = attention.out_proj(expected.transpose(1, 2).reshape(B, T, C))
        torch.testing.assert_close(attention(x, attention_mask=mask), expected)


def test_timm_scale_fix_uses_the_unused_scale_and_equals_sdpa():
    text = fixed(source("timm"), "LLM101")
    assert "attn = (q @ k.transpose(-2, -1)) * self.scale" in text
    attention = run(text)["Attention"](C).eval()
    x = torch.randn(B, T, C)
    with torch.no_grad():
        q, k, v = attention.qkv(x).reshape(B, T, 3, HEADS, C // HEADS).permute(2, 0, 3, 1, 4).unbind(0)
        expected = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        torch.testing.assert_close(attention(x), attention.proj(expected))


# ---- LLM103 on attention that is already scaled: the rewrite changes nothing but the kernel ---------

SCALED = textwrap.dedent(
    """
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class PrescaledQuery(nn.Module):
        def __init__(self, dim=32, heads=4):
            super().__init__()
            self.scale = (dim // heads) ** -0.5
            self.attn_drop = nn.Dropout(0.0)

        def forward(self, q, k, v):
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            return attn @ v


    def padded_attention(q, k, v, mask):
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        scores = scores.masked_fill(mask == 0, float("-inf"))
        return torch.matmul(F.softmax(scores, dim=-1), v)


    def causal_attention(q, k, v):
        T = q.size(-2)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), diagonal=1)
        att = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
        att.masked_fill_(causal, float("-inf"))
        return att.softmax(-1) @ v


    def batched_attention(q, k, v, temperature: float = 0.5):
        att = torch.bmm(q, k.transpose(1, 2)) * temperature
        return torch.bmm(att.softmax(dim=-1), v)
    """
).lstrip("\n")


def test_llm103_rewrites_every_scaled_spelling():
    text = fixed(SCALED, "LLM103")
    assert len(fixes(SCALED, "LLM103")) == 4
    for expected in (
        "q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0, scale=1.0\n",  # q arrives scaled
        "return F.scaled_dot_product_attention(q, k, v, attn_mask=mask != 0)",
        "return F.scaled_dot_product_attention(q, k, v, is_causal=True)",
        "return F.scaled_dot_product_attention(q, k, v, scale=temperature)",
    ):
        assert expected in text


def test_llm103_rewrites_compute_what_the_originals_compute():
    original, rewritten = run(SCALED), run(fixed(SCALED, "LLM103"))
    q, k, v = (torch.randn(B, HEADS, T, C // HEADS) for _ in range(3))
    module, fused = original["PrescaledQuery"]().eval(), rewritten["PrescaledQuery"]().eval()
    torch.testing.assert_close(fused(q, k, v), module(q, k, v))
    mask = torch.rand(B, 1, T, T) > 0.3
    mask[..., 0] = True  # every query keeps a key: a fully masked row is NaN in both
    torch.testing.assert_close(rewritten["padded_attention"](q, k, v, mask), original["padded_attention"](q, k, v, mask))
    torch.testing.assert_close(rewritten["causal_attention"](q, k, v), original["causal_attention"](q, k, v))
    q3, k3, v3 = (torch.randn(B * HEADS, T, C // HEADS) for _ in range(3))
    torch.testing.assert_close(
        rewritten["batched_attention"](q3, k3, v3), original["batched_attention"](q3, k3, v3)
    )
