"""LLM102, LLM104 and LLM106 on attention code shaped like the libraries people copy from.

The shapes are rewritten from memory of each style (nanoGPT, minGPT, Hugging Face, timm, x-transformers,
lit-gpt, vit-pytorch, the Annotated Transformer), not pasted. Correct spellings must stay silent; the
true positives pin exact ranges, severities and fixes.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.findings import Severity
from llmarch_lsp.fixes.apply import apply_fixes

SOFTMAX_DIM = find_rule("LLM102")
UNUSED_MASK = find_rule("LLM104")
HALF_FILL = find_rule("LLM106")


def source(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def findings(rule, code: str):
    return rule.run(Document(source(code)))


def ranges(rule, code: str) -> list[str]:
    return [f"{f.span.line}:{f.span.column + 1}-{f.span.end_line}:{f.span.end_column + 1}" for f in findings(rule, code)]


def fixed(rule, code: str) -> str:
    found = [finding.fix for finding in findings(rule, code) if finding.fix is not None]
    assert found, "expected a fix"
    return apply_fixes(source(code), found).text


# ---- shared shapes ----------------------------------------------------------------------------------

NANOGPT_STYLE = """
import math
import torch
import torch.nn as nn
from torch.nn import functional as F

class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.flash = hasattr(torch.nn.functional, "scaled_dot_product_attention")
        if not self.flash:
            self.register_buffer(
                "bias",
                torch.tril(torch.ones(config.block_size, config.block_size)).view(1, 1, config.block_size, config.block_size),
            )

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)
"""

HF_BERT_STYLE = """
import math
import torch
from torch import nn

class BertSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def transpose_for_scores(self, x):
        new_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask=None):
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        if attention_mask is not None:
            attention_scores = attention_scores + attention_mask
        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        attention_probs = self.dropout(attention_probs)
        return torch.matmul(attention_probs, value_layer)
"""

HF_BART_STYLE = """
import torch
from torch import nn

class BartAttention(nn.Module):
    def forward(self, hidden_states, attention_mask=None):
        bsz, tgt_len, _ = hidden_states.size()
        query_states = self._shape(self.q_proj(hidden_states) * self.scaling, tgt_len, bsz)
        key_states = self._shape(self.k_proj(hidden_states), -1, bsz)
        value_states = self._shape(self.v_proj(hidden_states), -1, bsz)
        proj_shape = (bsz * self.num_heads, -1, self.head_dim)
        query_states = query_states.view(*proj_shape)
        key_states = key_states.reshape(*proj_shape)
        value_states = value_states.reshape(*proj_shape)
        src_len = key_states.size(1)
        attn_weights = torch.bmm(query_states, key_states.transpose(1, 2))
        if attention_mask is not None:
            attn_weights = attn_weights.view(bsz, self.num_heads, tgt_len, src_len) + attention_mask
            attn_weights = attn_weights.view(bsz * self.num_heads, tgt_len, src_len)
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        attn_probs = nn.functional.dropout(attn_weights, p=self.dropout, training=self.training)
        return torch.bmm(attn_probs, value_states)
"""

TIMM_STYLE = """
import torch
import torch.nn.functional as F
from torch import nn

class Attention(nn.Module):
    def __init__(self, dim, num_heads=8):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.fused_attn = True

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
            attn = attn.softmax(dim=SOFTMAX_DIM)
            attn = self.attn_drop(attn)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)
"""

X_TRANSFORMERS_STYLE = """
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import einsum, nn

class Attend(nn.Module):
    def forward(self, q, k, v, mask=None, causal=False):
        scale = q.shape[-1] ** -0.5
        sim = einsum("b h i d, b h j d -> b h i j", q, k) * scale
        mask_value = -torch.finfo(sim.dtype).max
        if mask is not None:
            sim = sim.masked_fill(~mask, mask_value)
        if causal:
            i, j = sim.shape[-2:]
            causal_mask = torch.ones((i, j), dtype=torch.bool, device=sim.device).triu(j - i + 1)
            sim = sim.masked_fill(causal_mask, mask_value)
        attn = sim.softmax(dim=-1)
        return einsum("b h i j, b h j d -> b h i d", attn, v)

class Attention(nn.Module):
    def forward(self, x):
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = map(lambda t: rearrange(t, "b n (h d) -> b h n d", h=self.heads), (q, k, v))
        return self.attend(q, k, v, causal=True)
"""

VIT_PYTORCH_STYLE = """
import torch
from torch import nn
from einops import rearrange

class Attention(nn.Module):
    def __init__(self, dim, heads=8, dim_head=64):
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.attend = nn.Softmax(dim=-1)
        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)

    def forward(self, x):
        qkv = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = map(lambda t: rearrange(t, "b n (h d) -> b h n d", h=self.heads), qkv)
        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        attn = self.attend(dots)
        out = torch.matmul(attn, v)
        return rearrange(out, "b h n d -> b n (h d)")
"""

LIT_GPT_STYLE = """
import torch
from torch import nn

def build_mask_cache(max_seq_length, device=None):
    ones = torch.ones((max_seq_length, max_seq_length), device=device, dtype=torch.bool)
    return torch.tril(ones).unsqueeze(0).unsqueeze(0)

class CausalSelfAttention(nn.Module):
    def scaled_dot_product_attention(self, q, k, v, mask=None):
        scale = 1.0 / (q.size(-1) ** 0.5)
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=0.0, scale=scale, is_causal=mask is None
        )
"""

META_LLAMA_STYLE = """
import math
import torch
import torch.nn.functional as F
from torch import nn

class Transformer(nn.Module):
    def forward(self, tokens, start_pos):
        _bsz, seqlen = tokens.shape
        h = self.tok_embeddings(tokens)
        mask = None
        if seqlen > 1:
            mask = torch.full((seqlen, seqlen), float("-inf"), device=tokens.device)
            mask = torch.triu(mask, diagonal=1)
            mask = torch.hstack([torch.zeros((seqlen, start_pos), device=tokens.device), mask]).type_as(h)
        for layer in self.layers:
            h = layer(h, start_pos, mask)
        return self.output(self.norm(h)).float()

class Attention(nn.Module):
    def forward(self, x, start_pos, mask):
        bsz, seqlen, _ = x.shape
        xq = self.wq(x).view(bsz, seqlen, self.n_local_heads, self.head_dim).transpose(1, 2)
        keys = self.cache_k[:bsz, : start_pos + seqlen].transpose(1, 2)
        values = self.cache_v[:bsz, : start_pos + seqlen].transpose(1, 2)
        scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        scores = F.softmax(scores.float(), dim=-1).type_as(xq)
        return torch.matmul(scores, values)
"""

ANNOTATED_TRANSFORMER_STYLE = """
import math
import torch

def attention(query, key, value, mask=None, dropout=None):
    d_k = query.size(-1)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)
    if dropout is not None:
        p_attn = dropout(p_attn)
    return torch.matmul(p_attn, value), p_attn
"""

HF_MODERN_STYLE = """
import torch
from torch import nn

def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0):
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(attn_weights, value), attn_weights

class GPT2Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        max_positions = config.max_position_embeddings
        self.register_buffer(
            "bias",
            torch.tril(torch.ones((max_positions, max_positions), dtype=torch.bool)).view(1, 1, max_positions, max_positions),
            persistent=False,
        )

    def forward(self, hidden_states, attention_mask=None):
        query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)
        attention_interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        return attention_interface(self, query, key, value, attention_mask, scaling=self.scaling)
"""

HF_GPT2_LEGACY_STYLE = """
import torch
from torch import nn

class GPT2Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        n = config.max_position_embeddings
        self.register_buffer("bias", torch.tril(torch.ones((n, n), dtype=torch.bool)).view(1, 1, n, n), persistent=False)
        self.register_buffer("masked_bias", torch.tensor(-1e4), persistent=False)

    def _attn(self, query, key, value, attention_mask=None):
        attn_weights = torch.matmul(query, key.transpose(-1, -2))
        attn_weights = attn_weights / torch.full([], value.size(-1) ** 0.5, dtype=attn_weights.dtype)
        query_length, key_length = query.size(-2), key.size(-2)
        causal_mask = self.bias[:, :, key_length - query_length : key_length, :key_length]
        mask_value = torch.finfo(attn_weights.dtype).min
        mask_value = torch.full([], mask_value, dtype=attn_weights.dtype, device=attn_weights.device)
        attn_weights = torch.where(causal_mask, attn_weights.to(attn_weights.dtype), mask_value)
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        return torch.matmul(attn_weights, value), attn_weights
"""

XLNET_STYLE = """
import torch
from torch import nn

class RelativeAttention(nn.Module):
    def rel_attn_core(self, q_head, k_head_h, v_head_h, k_head_r, attn_mask=None):
        ac = torch.einsum("ibnd,jbnd->bnij", q_head + self.r_w_bias, k_head_h)
        bd = torch.einsum("ibnd,jbnd->bnij", q_head + self.r_r_bias, k_head_r)
        attn_score = (ac + bd) * self.scale
        if attn_mask is not None:
            if attn_mask.dtype == torch.float16:
                attn_score = attn_score - 65500 * torch.einsum("ijbn->bnij", attn_mask)
            else:
                attn_score = attn_score - 1e30 * torch.einsum("ijbn->bnij", attn_mask)
        attn_prob = nn.functional.softmax(attn_score, dim=3)
        return torch.einsum("bnij,jbnd->ibnd", attn_prob, v_head_h)
"""

REFERENCE_STYLES = {
    "nanogpt": NANOGPT_STYLE,
    "hf-bert": HF_BERT_STYLE,
    "hf-bart": HF_BART_STYLE,
    "timm": TIMM_STYLE.replace("SOFTMAX_DIM", "-1"),
    "x-transformers": X_TRANSFORMERS_STYLE,
    "vit-pytorch": VIT_PYTORCH_STYLE,
    "lit-gpt": LIT_GPT_STYLE,
    "meta-llama": META_LLAMA_STYLE,
    "hf-modern": HF_MODERN_STYLE,
    "hf-gpt2-legacy": HF_GPT2_LEGACY_STYLE,
    "xlnet": XLNET_STYLE,
}


@pytest.mark.parametrize("rule", [SOFTMAX_DIM, UNUSED_MASK, HALF_FILL], ids=lambda rule: rule.code)
@pytest.mark.parametrize("code", list(REFERENCE_STYLES.values()), ids=list(REFERENCE_STYLES))
def test_reference_styles_are_silent(rule, code):
    assert ranges(rule, code) == []


def test_annotated_transformer_fill_is_the_one_reference_finding():
    # -1e9 really does not fit float16: the one place a widely copied reference trips a rule.
    assert ranges(SOFTMAX_DIM, ANNOTATED_TRANSFORMER_STYLE) == []
    assert ranges(UNUSED_MASK, ANNOTATED_TRANSFORMER_STYLE) == []
    (finding,) = findings(HALF_FILL, ANNOTATED_TRANSFORMER_STYLE)
    assert finding.severity is Severity.INFO  # nothing in the file asks for float16


# ---- LLM102 softmax-wrong-dim ---------------------------------------------------------------------

SOFTMAX_DIM_NEGATIVES = {
    "last axis of 4-D scores by a positive index": """
        import torch
        def attend(x, B, T, H, D):
            q = x.view(B, T, H, D).transpose(1, 2)
            k = x.view(B, T, H, D).transpose(1, 2)
            v = x.view(B, T, H, D).transpose(1, 2)
            att = torch.matmul(q, k.transpose(-2, -1)) * D ** -0.5
            return torch.softmax(att, dim=3) @ v
    """,
    "2-D scores over dim=1": """
        import torch
        q, k, v = torch.randn(16, 8), torch.randn(16, 8), torch.randn(16, 8)
        weights = torch.softmax(q @ k.T / 8 ** 0.5, dim=1)
        out = weights @ v
    """,
    "additive (Bahdanau) scores squeezed to 2-D": """
        import torch
        import torch.nn.functional as F
        def attend(query, keys):
            scores = torch.bmm(query.unsqueeze(1), keys.transpose(1, 2)).squeeze(1)
            weights = F.softmax(scores, dim=1)
            return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
    """,
    "keys on the left": """
        import torch
        def attend(keys, query):
            scores = torch.bmm(keys, query.unsqueeze(2))  # (B, S, 1)
            weights = torch.softmax(scores, dim=1)
            return (weights * keys).sum(1)
    """,
    "scores transposed before a softmax over the key axis": """
        import torch
        def attend(q, k, v, scale):
            att = (q @ k.transpose(-2, -1) * scale).transpose(-2, -1)  # (B, S, T)
            att = att.softmax(dim=-2)
            return att.transpose(-2, -1) @ v
    """,
    "contrastive loss, not attention": """
        import torch.nn.functional as F
        def symmetric_infonce(q, k, temperature):
            logits = q @ k.T / temperature
            return -F.log_softmax(logits, dim=0).diag().mean()
    """,
    "co-attention normalises both ways": """
        import torch
        def coattend(q, k, scale):
            affinity = torch.bmm(q, k.transpose(1, 2)) * scale
            to_keys = torch.softmax(affinity, dim=-1) @ k
            to_queries = torch.softmax(affinity, dim=-2).transpose(1, 2) @ q
            return to_keys, to_queries
    """,
    "slot attention renormalised over inputs": """
        import torch
        from torch import nn
        class Binder(nn.Module):
            def forward(self, q, k, v):
                logits = torch.einsum("bnd,bmd->bnm", q, k) * self.scale
                weights = logits.softmax(dim=1) + 1e-8
                weights = weights / weights.sum(dim=-1, keepdim=True)
                return torch.einsum("bnm,bmd->bnd", weights, v)
    """,
    "dim from a config value": """
        import torch.nn.functional as F
        def attend(q, k, v, scale, axis):
            return F.softmax(q @ k.transpose(-2, -1) * scale, dim=axis) @ v
    """,
    "rank only known as a lower bound": """
        import torch
        def attend(q, k, v, bias):
            q = q.view(2, 8, 4)
            att = torch.matmul(q, k.transpose(-2, -1)) + bias  # bias may add dims
            return torch.softmax(att, dim=2) @ v
    """,
    "fused attention only": """
        import torch.nn.functional as F
        def attend(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    """,
}


@pytest.mark.parametrize("code", list(SOFTMAX_DIM_NEGATIVES.values()), ids=list(SOFTMAX_DIM_NEGATIVES))
def test_softmax_dim_negatives_are_silent(code):
    assert ranges(SOFTMAX_DIM, code) == []


def test_timm_style_softmax_over_heads_is_flagged_from_the_qkv_permute():
    code = TIMM_STYLE.replace("SOFTMAX_DIM", "1")
    (finding,) = findings(SOFTMAX_DIM, code)
    assert "across heads" in finding.message
    assert "attn = attn.softmax(dim=-1)" in fixed(SOFTMAX_DIM, code)


def test_rearranged_heads_and_softmax_over_queries():
    code = """
    import torch
    from einops import rearrange
    def attend(x, heads, scale):
        q = rearrange(x, "b n (h d) -> b h n d", h=heads)
        k = rearrange(x, "b n (h d) -> b h n d", h=heads)
        dots = torch.matmul(q, k.transpose(-1, -2)) * scale
        return torch.matmul(dots.softmax(dim=2), k)
    """
    assert ranges(SOFTMAX_DIM, code) == ["7:42-7:43"]
    assert "across queries" in findings(SOFTMAX_DIM, code)[0].message


def test_implicit_dim_of_an_nn_softmax_on_bmm_scores():
    code = """
    import torch
    from torch import nn
    class CrossAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.softmax = nn.Softmax()
        def forward(self, q, k, v):
            return torch.bmm(self.softmax(torch.bmm(q, k.transpose(1, 2))), v)
    """
    (finding,) = findings(SOFTMAX_DIM, code)
    assert "pick dim=0 for these 3-D attention scores" in finding.message
    assert "self.softmax = nn.Softmax(dim=-1)" in fixed(SOFTMAX_DIM, code)


def test_shared_softmax_module_is_flagged_without_a_fix():
    code = """
    import torch
    from torch import nn
    class TwoWayAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.softmax = nn.Softmax(dim=1)
        def forward(self, q, k, v, gate_logits):
            attn = self.softmax(torch.bmm(q, k.transpose(1, 2)))
            gates = self.softmax(gate_logits)
            return torch.bmm(attn, v) * gates
    """
    (finding,) = findings(SOFTMAX_DIM, code)
    assert finding.fix is None  # the module also normalises gate_logits


def test_related_location_points_at_the_scores():
    code = """
    import torch
    def attend(q, k, v):
        att = q @ k.transpose(-2, -1) * 0.125
        return torch.softmax(att, dim=-2) @ v
    """
    (finding,) = findings(SOFTMAX_DIM, code)
    assert [(related.span.line, related.message) for related in finding.related] == [(3, "attention scores computed here")]
    assert finding.severity is Severity.ERROR


# ---- LLM104 unused-causal-mask --------------------------------------------------------------------

UNUSED_MASK_NEGATIVES = {
    "mask read in a subclass": """
        import torch
        import torch.nn.functional as F
        from torch import nn
        class Base(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.register_buffer("causal", torch.tril(torch.ones(n, n)))
            def forward(self, q, k, v):
                return F.softmax(q @ k.transpose(-2, -1) * 0.125, dim=-1) @ v
        class Masked(Base):
            def forward(self, q, k, v):
                T = q.size(-2)
                att = (q @ k.transpose(-2, -1) * 0.125).masked_fill(self.causal[:T, :T] == 0, float("-inf"))
                return F.softmax(att, dim=-1) @ v
    """,
    "mask read by name": """
        import torch
        import torch.nn.functional as F
        from torch import nn
        class Attention(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.register_buffer("tri", torch.ones(n, n).tril())
            def forward(self, q, k, v):
                mask = getattr(self, "tri")
                att = (q @ k.transpose(-2, -1) * 0.125).masked_fill(mask == 0, float("-inf"))
                return F.softmax(att, dim=-1) @ v
    """,
    "mask applied only under a flag": """
        import torch
        import torch.nn.functional as F
        from torch import nn
        class Attention(nn.Module):
            def __init__(self, n, causal):
                super().__init__()
                self.causal = causal
                self.register_buffer("mask", torch.tril(torch.ones(n, n, dtype=torch.bool)))
            def forward(self, q, k, v):
                att = q @ k.transpose(-2, -1) * 0.125
                if self.causal:
                    att = att.masked_fill(~self.mask, float("-inf"))
                return F.softmax(att, dim=-1) @ v
    """,
    "another mask applied to the scores": """
        import torch
        import torch.nn.functional as F
        from torch import nn
        class Attention(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.register_buffer("unused_causal", torch.tril(torch.ones(n, n)))
            def forward(self, q, k, v, attention_mask):
                att = q @ k.transpose(-2, -1) * 0.125 + attention_mask
                return F.softmax(att, dim=-1) @ v
    """,
    "mask applied in place": """
        import torch
        import torch.nn.functional as F
        def attend(q, k, v, padding):
            blocked = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool).triu(1)
            att = q @ k.transpose(-2, -1) * 0.125
            att.masked_fill_(padding, float("-inf"))
            return F.softmax(att, dim=-1) @ v
    """,
    "mask passed positionally to multi-head attention": """
        import torch
        from torch import nn
        class Block(nn.Module):
            def __init__(self, d, h, n):
                super().__init__()
                self.attn = nn.MultiheadAttention(d, h)
                self.register_buffer("mask", torch.triu(torch.full((n, n), float("-inf")), diagonal=1))
            def forward(self, x):
                return self.attn(x, x, x, None, False, self.mask)[0]
    """,
    "lower-triangular parameter, not a mask": """
        import torch
        from torch import nn
        class Flow(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.raw = nn.Parameter(torch.randn(d, d))
            def forward(self, q, k, v):
                L = torch.tril(self.raw)
                return torch.softmax(q @ k.transpose(-2, -1) * 0.125, dim=-1) @ v
    """,
    "mask returned by a helper": """
        import torch
        def causal_mask(T, device):
            mask = torch.triu(torch.ones(T, T, device=device, dtype=torch.bool), diagonal=1)
            return mask
    """,
}


@pytest.mark.parametrize("code", list(UNUSED_MASK_NEGATIVES.values()), ids=list(UNUSED_MASK_NEGATIVES))
def test_unused_mask_negatives_are_silent(code):
    assert ranges(UNUSED_MASK, code) == []


def test_nanogpt_with_the_masked_fill_line_deleted_is_flagged():
    code = NANOGPT_STYLE.replace('            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))\n', "")
    (finding,) = findings(UNUSED_MASK, code)
    assert finding.span.line == 15  # the register_buffer call
    assert 'buffer "bias" is built but never applied' in finding.message
    # The flash path masks with is_causal=True; the manual path is the one that lost its mask.
    assert [(related.span.line, related.message) for related in finding.related] == [
        (30, "scores reach this softmax without any mask")
    ]


def test_buffer_registered_from_a_local_and_never_read():
    code = """
    import torch
    import torch.nn.functional as F
    from torch import nn
    class Decoder(nn.Module):
        def __init__(self, n):
            super().__init__()
            causal = torch.tril(torch.ones(n, n))
            self.register_buffer("causal", causal)
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=False)
    """
    assert ranges(UNUSED_MASK, code) == ["7:18-7:46"]


def test_rebuilt_local_mask_never_passed_on():
    code = """
    import torch
    import torch.nn.functional as F
    def decode_step(q, k, v):
        T = q.size(-2)
        mask = torch.full((T, T), float("-inf"))
        mask = torch.triu(mask, diagonal=1)
        att = q @ k.transpose(-2, -1) * q.size(-1) ** -0.5
        return F.softmax(att, dim=-1) @ v
    """
    assert ranges(UNUSED_MASK, code) == ["6:12-6:40"]


@pytest.mark.parametrize(
    "construction",
    [
        'torch.where(torch.tril(torch.ones(n, n)) == 0, float("-inf"), 0.0)',
        'torch.zeros(n, n).masked_fill(torch.tril(torch.ones(n, n)) == 0, float("-inf"))',
        "torch.tril(torch.ones(n, n, dtype=torch.bool)).view(1, 1, n, n)",
        "~torch.ones(n, n, dtype=torch.bool).tril()",
    ],
    ids=["where-additive", "masked-fill-additive", "viewed", "inverted"],
)
def test_additive_and_boolean_mask_constructions_are_recognised(construction):
    code = f"""
    import torch
    import torch.nn.functional as F
    from torch import nn
    class Attention(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.register_buffer("attn_bias", {construction})
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)
    """
    assert len(findings(UNUSED_MASK, code)) == 1
    used = code.replace("(q, k, v)\n", "(q, k, v, attn_mask=self.attn_bias)\n")
    assert findings(UNUSED_MASK, used) == []


# ---- LLM106 mask-fill-overflows-half --------------------------------------------------------------

HALF_FILL_NEGATIVES = {
    "finfo min of the scores": """
        import torch
        def attend(q, k, v, mask):
            att = q @ k.transpose(-2, -1) * 0.125
            att = att.masked_fill(~mask, torch.finfo(att.dtype).min)
            return att.softmax(dim=-1) @ v
    """,
    "largest finite half": """
        import torch
        def attend(q, k, v, mask):
            att = q @ k.transpose(-2, -1) * 0.125
            att = att.masked_fill(~mask, -65504.0)
            return att.softmax(dim=-1) @ v
    """,
    "old BERT additive mask with -10000": """
        import torch
        def attend(q, k, v, mask):
            scores = torch.matmul(q, k.transpose(-1, -2)) * 0.125
            scores = scores + (1.0 - mask) * -10000.0
            return torch.softmax(scores, dim=-1) @ v
    """,
    "GPT-Neo style float32 queries and keys": """
        import torch
        def attend(query, key, value, causal):
            query = query.to(torch.float32)
            key = key.to(torch.float32)
            att = torch.matmul(query, key.transpose(-1, -2))
            att = torch.where(causal, att, -1e9)
            return torch.softmax(att, dim=-1).to(value.dtype) @ value
    """,
    "float32 cast on the way": """
        import torch
        def attend(q, k, v, mask):
            att = (q @ k.transpose(-2, -1) * 0.125).to(dtype=torch.float32)
            att = att.masked_fill(~mask, -1e9)
            return att.softmax(dim=-1).type_as(v) @ v
    """,
    "fill value from the caller": """
        import torch
        def attend(q, k, v, mask, fill):
            att = q @ k.transpose(-2, -1) * 0.125
            return att.masked_fill(~mask, fill).softmax(dim=-1) @ v
    """,
    "fill that is not on the way to the softmax": """
        import torch
        def attend(q, k, v, mask):
            att = q @ k.transpose(-2, -1) * 0.125
            logged = att.masked_fill(~mask, -1e9)
            return att.softmax(dim=-1) @ v, logged
    """,
}


@pytest.mark.parametrize("code", list(HALF_FILL_NEGATIVES.values()), ids=list(HALF_FILL_NEGATIVES))
def test_half_fill_negatives_are_silent(code):
    assert ranges(HALF_FILL, code) == []


def _with(header: str) -> str:
    return header + textwrap.dedent(ANNOTATED_TRANSFORMER_STYLE)


@pytest.mark.parametrize(
    "header",
    [
        "import torch\nmodel_dtype = torch.float16\n",
        "import torch\nscaler = torch.cuda.amp.GradScaler()\n",
        "import torch\nctx = torch.autocast('cuda')\n",
        "dtype = 'float16'\n",
    ],
    ids=["torch.float16", "GradScaler", "cuda-autocast", "config-string"],
)
def test_float16_anywhere_in_the_file_makes_it_a_warning(header):
    (finding,) = findings(HALF_FILL, _with(header))
    assert finding.severity is Severity.WARNING
    assert finding.related and finding.related[0].message == "float16 is used here"


@pytest.mark.parametrize(
    "header",
    ["import torch\nctx = torch.autocast('cuda', dtype=torch.bfloat16)\n", "import torch\nctx = torch.autocast('cpu')\n"],
    ids=["bf16-autocast", "cpu-autocast"],
)
def test_bfloat16_or_cpu_autocast_is_not_float16_evidence(header):
    (finding,) = findings(HALF_FILL, _with(header))
    assert finding.severity is Severity.INFO


def test_masked_fill_message_names_the_runtime_error():
    (finding,) = findings(HALF_FILL, ANNOTATED_TRANSFORMER_STYLE)
    assert "cannot be converted to type c10::Half without overflow" in finding.message
    assert ranges(HALF_FILL, ANNOTATED_TRANSFORMER_STYLE) == ["8:48-8:52"]
    assert "scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)" in fixed(HALF_FILL, ANNOTATED_TRANSFORMER_STYLE)


def test_spellings_of_a_huge_fill():
    for spelling in ("-1e10", "float('-1e9')", "-2 ** 32 + 1", "-1e5", "NEG"):
        code = f"""
        import torch
        NEG = -1e9
        def attend(q, k, v, mask):
            att = q @ k.transpose(-2, -1) * 0.125
            return att.masked_fill(~mask, {spelling}).softmax(dim=-1) @ v
        """
        assert len(findings(HALF_FILL, code)) == 1, spelling


def test_where_with_a_tensor_fill_is_fixed_to_a_plain_value():
    code = """
    import torch
    def attend(q, k, v, keep):
        att = q @ k.transpose(-2, -1) * 0.125
        att = torch.where(keep, att, torch.tensor(-1e9, device=att.device))
        return att.softmax(dim=-1) @ v
    """
    (finding,) = findings(HALF_FILL, code)
    assert "becomes NaN" in finding.message
    assert "att = torch.where(keep, att, torch.finfo(att.dtype).min)" in fixed(HALF_FILL, code)


def test_additive_mask_is_info_and_has_no_fix():
    code = """
    import torch
    model = None
    def attend(q, k, v, mask):
        scores = torch.matmul(q, k.transpose(-1, -2)) * 0.125
        scores += (1.0 - mask.half()) * -1e9
        return torch.softmax(scores, dim=-1) @ v
    """
    (finding,) = findings(HALF_FILL, code)
    assert finding.severity is Severity.INFO and finding.fix is None
    assert "masked_fill(mask, torch.finfo(scores.dtype).min)" in finding.message


def test_no_fix_when_the_scores_have_no_name():
    code = """
    import torch
    def attend(q, k, v, mask):
        return torch.matmul(q, k.transpose(-2, -1)).mul(0.125).masked_fill(mask, -1e9).softmax(-1) @ v
    """
    (finding,) = findings(HALF_FILL, code)
    assert finding.fix is None
