"""A hand-written softmax(q·kᵀ)·v that `F.scaled_dot_product_attention` computes with fused kernels.

## Problem
Attention written out by hand (`att = q @ k.transpose(-2, -1) * scale`, a mask, `F.softmax`,
dropout, `att @ v`) materializes the full (B, H, T, T) score matrix, and autograd keeps it, the
softmax output and the dropout mask for the backward pass. Memory grows with the square of the
sequence length and the kernels are memory-bound: the same computation through
`F.scaled_dot_product_attention` dispatches to FlashAttention or memory-efficient kernels that
never store the T×T matrix.

## Diagnosis
A softmax fed by exactly one query-key product (`document.attention`), written as straight-line
code SDPA computes exactly: the product swaps the last two axes of k (`k.transpose(-2, -1)`,
`k.mT`, `torch.bmm(q, k.transpose(1, 2))`, `transpose(2, 3)` on a 4-D k); an optional scale that
is a Python number (`* self.scale`, `/ math.sqrt(d)`); at most one mask, either
`masked_fill(<cond>, float("-inf"))` or an added tensor named as a mask (`+ attention_mask`, also
under `if attention_mask is not None:`); `softmax(dim=-1)` without a dtype; optional training-aware
dropout (an `nn.Dropout` submodule or `F.dropout(..., training=...)`); then the product with v.
Each intermediate is read once, by the next step, and nowhere else in the function. The rule stays
silent when the class or function already calls SDPA, FlashAttention, xFormers or flex attention
(a manual path kept as a fallback, as nanoGPT and timm do). When the causal mask is a
`torch.tril(torch.ones(n, n))` buffer and `n` is known in the file (a literal, a constructor
default, a config dataclass default such as `block_size: int = 1024`), the message estimates the
memory of the score matrix at that length.

## Hypothesis
The manual path is O(T²) in activation memory per head and sequence: at T = 1024 each (T, T)
tensor holds about a million values (4 MiB in float32 per head and sequence, times batch × heads,
times the two or three copies autograd keeps). Fused kernels tile the computation through on-chip
memory with an online softmax and recompute what backward needs, so memory is O(T) and wall-clock
time drops because the T×T matrix never travels through HBM.

## Literature
- Dao et al. (2022, FlashAttention) compute exact attention tile by tile with an online softmax,
  never writing the N×N matrix to HBM: memory linear in sequence length and 2-4× faster attention.
- Dao (2023, FlashAttention-2) improves the parallelism and work partitioning for about 2× more
  speed; PyTorch's `scaled_dot_product_attention` dispatches to these kernels when it can.

## Recommendation
Replace the chain with `F.scaled_dot_product_attention(q, k, v, attn_mask=..., dropout_p=..., is_causal=...)`,
passing `is_causal=True` instead of a materialized causal mask, and the dropout probability only in
training (`self.attn_dropout.p if self.training else 0.0`). Keep the manual path only where you need
the attention weights themselves.

## Expected outcome
The same outputs up to float rounding; lower peak memory (the score, softmax and dropout tensors are
gone from the saved activations), so longer sequences or larger batches fit; faster attention on
GPUs with FlashAttention or memory-efficient kernels, most visibly at T ≥ 1024.

## Implementation
Before:

    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
    att = F.softmax(att, dim=-1)
    att = self.attn_dropout(att)
    y = att @ v  # (B, nh, T, hs)

After:

    # Fused attention: scaled_dot_product_attention scales by 1/sqrt(d_head) itself and never materializes the (B, nh, T, T) scores, O(T) memory instead of O(T^2) (Dao et al., 2022, arXiv:2205.14135)
    y = F.scaled_dot_product_attention(
        q, k, v, dropout_p=self.attn_dropout.p if self.training else 0.0, is_causal=True
    )  # (B, nh, T, hs)

The fix is unsafe: the numerics change slightly (a fused kernel sums in another order), and the
causal buffer, now unused in forward, stays in the state dict so checkpoints still load.

## Caveats
Informational: the manual code is correct, only slower and hungrier, and on CPU or old GPUs SDPA
falls back to the same math. The rule is conservative: it stays silent on attention that returns or
logs its weights (`output_attentions`), adds a relative-position or ALiBi bias computed by a module,
mixes heads before the softmax (talking heads), fills masks with a finite value (`-1e9` gives fully
masked rows a uniform distribution where SDPA gives NaN), casts the softmax to float32, uses einsum
or `baddbmm`, or whose scale is a tensor (a learned temperature); all of these need a closer look
than a rewrite. A mask that is not recognised as causal is passed as a boolean `attn_mask`, which
some fused kernels do not take (PyTorch then picks the memory-efficient or math kernel).

## Next steps
Measure peak memory (`torch.cuda.max_memory_allocated()`) and step time before and after at your
training sequence length; check `torch.backends.cuda` reports a fused kernel for your dtype and
head dimension, and that validation loss is unchanged.
"""

from __future__ import annotations

import ast

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.findings import Confidence, Evidence, Severity
from llmarch_lsp.fixes.model import UNSAFE
from llmarch_lsp.fixes.sdpa import SDPA_TITLE, AttentionChain, attention_chain, sdpa_fix, uses_fused_attention
from llmarch_lsp.fixes.shapes import scores_shape

RULE_DOCS = __doc__
_MEBIBYTE = 1024 * 1024


def check(document: Document, context: RuleContext, rule: Rule):
    for site in document.attention:
        if uses_fused_attention(document, site.softmax):
            continue  # a manual path kept beside SDPA or flash attention is a fallback, not an oversight
        chain = attention_chain(document, site)
        if chain is None:
            continue
        yield rule.finding(document, chain.first, _message(document, chain), fix=sdpa_fix(document, chain))


def _message(document: Document, chain: AttentionChain) -> str:
    shape = scores_shape(document, chain.query, chain.key, chain.product.node) or "(B, H, T, T)"
    message = (
        f"hand-written attention materializes the {shape} score matrix; F.scaled_dot_product_attention "
        "computes the same with fused kernels in O(T) memory instead of O(T²) (Dao et al., 2022)"
    )
    length = _sequence_length(document, chain.causal_size)
    if length is None:
        return message + "; the saving grows with the square of the sequence length"
    per_matrix = length * length * 4 / _MEBIBYTE
    return message + (
        f"; at T = {length:,} each (T, T) tensor holds {length * length:,} values, {per_matrix:,.1f} MiB in float32 "
        "per sequence and head, and training keeps several of them for the backward pass"
    )


def _sequence_length(document: Document, size: ast.expr | None) -> int | None:
    """`block_size` in the causal buffer, when the file pins it down (literal, default, config field)."""
    if size is None:
        return None
    facts = getattr(document, "config_values", None)
    if facts is None:
        return None
    known = facts.resolve(size)
    function = document.index.enclosing(size, ast.FunctionDef, ast.AsyncFunctionDef)
    if known is None and isinstance(size, ast.Name) and function is not None:
        known = facts.parameters(function).get(size.id)  # `block_size=1024`: the design's default length
    if known is None or not known.is_positive_int:
        return None
    return known.value


RULE = Rule(
    code="LLM103",
    name="manual-attention",
    summary="A hand-written softmax(q @ k^T) @ v that F.scaled_dot_product_attention computes in O(T) memory",
    severity=Severity.INFO,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("dao2022flashattention", "dao2023flashattention2"),
    check=check,
    docs=RULE_DOCS,
    tags=("attention", "performance", "memory"),
    fix_title=SDPA_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT: a fused path with the manual one kept as a fallback.
        """
        import math
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        class CausalSelfAttention(nn.Module):
            def forward(self, q, k, v, T):
                if self.flash:
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
                att = F.softmax(att, dim=-1)
                return att @ v
        """,
        # The weights are returned (output_attentions): SDPA does not give them back.
        """
        import torch
        from torch import nn
        class Attention(nn.Module):
            def forward(self, q, k, v, output_attentions=False):
                weights = torch.matmul(q, k.transpose(-1, -2)) * self.scaling
                weights = nn.functional.softmax(weights, dim=-1)
                output = torch.matmul(weights, v)
                return output, weights if output_attentions else None
        """,
        # A relative-position bias from a module, and a finite fill: a closer look than a rewrite.
        """
        import torch.nn.functional as F
        from torch import nn
        class RelativeAttention(nn.Module):
            def forward(self, q, k, v):
                scores = q @ k.transpose(-2, -1) * self.scale
                scores = scores + self.relative_position_bias(q.size(-2), k.size(-2))
                return F.softmax(scores, dim=-1) @ v
        def padded_attention(q, k, v, mask):
            scores = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
            scores = scores.masked_fill(mask == 0, -1e9)
            return F.softmax(scores, dim=-1) @ v
        """,
        # Talking heads: the scores are mixed across heads before the softmax.
        """
        import torch.nn.functional as F
        from torch import nn
        class TalkingHeadsAttention(nn.Module):
            def forward(self, q, k, v):
                attn = q @ k.transpose(-2, -1) * self.scale
                attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                attn = attn.softmax(dim=-1)
                return attn @ v
        """,
        # A learned temperature is a tensor; SDPA's scale is a float.
        """
        import torch
        from torch import nn
        class CosineAttention(nn.Module):
            def __init__(self):
                super().__init__()
                self.logit_scale = nn.Parameter(torch.tensor(10.0))
            def forward(self, q, k, v):
                attn = (q @ k.transpose(-2, -1)) * self.logit_scale
                return attn.softmax(dim=-1) @ v
        """,
    ),
    invalid=(
        Invalid(
            """
            import math
            from dataclasses import dataclass
            import torch
            import torch.nn as nn
            from torch.nn import functional as F

            @dataclass
            class GPTConfig:
                block_size: int = 1024
                n_embd: int = 768
                n_head: int = 12
                dropout: float = 0.1

            class CausalSelfAttention(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
                    self.attn_dropout = nn.Dropout(config.dropout)
                    self.n_head = config.n_head
                    self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size))
                                                .view(1, 1, config.block_size, config.block_size))

                def forward(self, x):
                    B, T, C = x.size()
                    q, k, v = self.c_attn(x).split(C, dim=2)
                    k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
                    q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
                    v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
                    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                    att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
                    att = F.softmax(att, dim=-1)
                    att = self.attn_dropout(att)
                    y = att @ v  # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
                    return y.transpose(1, 2).contiguous().view(B, T, C)
            """,
            at=("29:9-29:72",),
            fixed="""
            import math
            from dataclasses import dataclass
            import torch
            import torch.nn as nn
            from torch.nn import functional as F

            @dataclass
            class GPTConfig:
                block_size: int = 1024
                n_embd: int = 768
                n_head: int = 12
                dropout: float = 0.1

            class CausalSelfAttention(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
                    self.attn_dropout = nn.Dropout(config.dropout)
                    self.n_head = config.n_head
                    self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size))
                                                .view(1, 1, config.block_size, config.block_size))

                def forward(self, x):
                    B, T, C = x.size()
                    q, k, v = self.c_attn(x).split(C, dim=2)
                    k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
                    q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
                    v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
                    # Fused attention: scaled_dot_product_attention scales by 1/sqrt(d_head) itself and never materializes the (B, nh, T, T) scores, O(T) memory instead of O(T^2) (Dao et al., 2022, arXiv:2205.14135)
                    y = F.scaled_dot_product_attention(
                        q, k, v, dropout_p=self.attn_dropout.p if self.training else 0.0, is_causal=True
                    )  # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
                    return y.transpose(1, 2).contiguous().view(B, T, C)
            """,
        ),
        # Hugging Face style: scaled queries' product, an optional additive mask, functional dropout.
        Invalid(
            """
            import torch
            from torch import nn

            class LlamaStyleAttention(nn.Module):
                def __init__(self, hidden_size, num_heads, attention_dropout=0.0):
                    super().__init__()
                    self.num_heads = num_heads
                    self.head_dim = hidden_size // num_heads
                    self.scaling = self.head_dim ** -0.5
                    self.attention_dropout = attention_dropout
                    self.q_proj = nn.Linear(hidden_size, hidden_size)
                    self.k_proj = nn.Linear(hidden_size, hidden_size)
                    self.v_proj = nn.Linear(hidden_size, hidden_size)

                def forward(self, hidden_states, attention_mask=None):
                    bsz, q_len, _ = hidden_states.size()
                    query_states = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    key_states = self.k_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    value_states = self.v_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) * self.scaling
                    if attention_mask is not None:
                        attn_weights = attn_weights + attention_mask
                    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
                    attn_weights = nn.functional.dropout(attn_weights, p=self.attention_dropout, training=self.training)
                    attn_output = torch.matmul(attn_weights, value_states)
                    return attn_output.transpose(1, 2).reshape(bsz, q_len, -1)
            """,
            at=("20:9-20:93",),
            fixed="""
            import torch
            from torch import nn

            class LlamaStyleAttention(nn.Module):
                def __init__(self, hidden_size, num_heads, attention_dropout=0.0):
                    super().__init__()
                    self.num_heads = num_heads
                    self.head_dim = hidden_size // num_heads
                    self.scaling = self.head_dim ** -0.5
                    self.attention_dropout = attention_dropout
                    self.q_proj = nn.Linear(hidden_size, hidden_size)
                    self.k_proj = nn.Linear(hidden_size, hidden_size)
                    self.v_proj = nn.Linear(hidden_size, hidden_size)

                def forward(self, hidden_states, attention_mask=None):
                    bsz, q_len, _ = hidden_states.size()
                    query_states = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    key_states = self.k_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    value_states = self.v_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    # Fused attention: scaled_dot_product_attention computes the same softmax without materializing the (bsz, num_heads, q_len, q_len) scores, O(T) memory instead of O(T^2) (Dao et al., 2022, arXiv:2205.14135)
                    attn_output = nn.functional.scaled_dot_product_attention(
                        query_states,
                        key_states,
                        value_states,
                        attn_mask=attention_mask,
                        dropout_p=self.attention_dropout if self.training else 0.0,
                        scale=self.scaling,
                    )
                    return attn_output.transpose(1, 2).reshape(bsz, q_len, -1)
            """,
        ),
        # Unscaled, in one expression (LLM101 flags the missing scale; this rule the memory).
        Invalid(
            """
            import torch
            def attend(q, k, v):
                return torch.softmax(q @ k.mT, dim=-1) @ v
            """,
            at=("3:5-3:47",),
            fixed="""
            import torch
            def attend(q, k, v):
                # Fused attention: scaled_dot_product_attention scales by 1/sqrt(d_head) itself and never materializes the (B, H, T, T) scores, O(T) memory instead of O(T^2) (Dao et al., 2022, arXiv:2205.14135)
                return torch.nn.functional.scaled_dot_product_attention(q, k, v)
            """,
        ),
    ),
)
