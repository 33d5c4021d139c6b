"""LLM101 on attention code shaped like the libraries people copy from (rewritten, not pasted).

Every well-known implementation scales its scores by some route and must stay silent; the true
positives pin exact ranges and the fix.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.fixes.apply import apply_fixes

RULE = find_rule("LLM101")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def findings(code: str):
    return RULE.run(Document(textwrap.dedent(code).lstrip("\n")))


def ranges(code: str) -> list[str]:
    return [
        f"{f.span.line}:{f.span.column + 1}-{f.span.end_line}:{f.span.end_column + 1}" for f in findings(code)
    ]


# ---- real-world shapes that scale correctly ------------------------------------------------------

NANOGPT = """
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
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.flash = hasattr(torch.nn.functional, "scaled_dot_product_attention")

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if self.flash:
            y = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True
            )
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v  # (B, nh, T, T) x (B, nh, T, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))
"""

MINGPT = """
import math
import torch.nn as nn
from torch.nn import functional as F

class CausalSelfAttention(nn.Module):
    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))
"""

HF_GPT2 = """
import torch
from torch import nn

class GPT2Attention(nn.Module):
    def _attn(self, query, key, value, attention_mask=None, head_mask=None):
        attn_weights = torch.matmul(query, key.transpose(-1, -2))

        if self.scale_attn_weights:
            attn_weights = attn_weights / torch.full(
                [], value.size(-1) ** 0.5, dtype=attn_weights.dtype, device=attn_weights.device
            )

        # Layer-wise attention scaling
        if self.scale_attn_by_inverse_layer_idx:
            attn_weights = attn_weights / float(self.layer_idx + 1)

        if not self.is_cross_attention:
            query_length, key_length = query.size(-2), key.size(-2)
            causal_mask = self.bias[:, :, key_length - query_length : key_length, :key_length]
            mask_value = torch.finfo(attn_weights.dtype).min
            mask_value = torch.full([], mask_value, dtype=attn_weights.dtype, device=attn_weights.device)
            attn_weights = torch.where(causal_mask, attn_weights.to(attn_weights.dtype), mask_value)

        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask

        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        attn_weights = attn_weights.type(value.dtype)
        attn_weights = self.attn_dropout(attn_weights)
        if head_mask is not None:
            attn_weights = attn_weights * head_mask
        attn_output = torch.matmul(attn_weights, value)
        return attn_output, attn_weights

    def _upcast_and_reordered_attn(self, query, key, value, attention_mask=None, head_mask=None):
        bsz, num_heads, q_seq_len, dk = query.size()
        _, _, k_seq_len, _ = key.size()
        attn_weights = torch.empty(bsz * num_heads, q_seq_len, k_seq_len, dtype=torch.float32, device=query.device)
        scale_factor = 1.0
        if self.scale_attn_weights:
            scale_factor /= float(value.size(-1)) ** 0.5
        q, k = query.reshape(-1, q_seq_len, dk), key.transpose(-1, -2).reshape(-1, dk, k_seq_len)
        attn_weights = torch.baddbmm(attn_weights, q.float(), k.float(), beta=0, alpha=scale_factor)
        attn_weights = attn_weights.reshape(bsz, num_heads, q_seq_len, k_seq_len)
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        return torch.matmul(attn_weights, value), attn_weights
"""

HF_BERT = """
import math
import torch
from torch import nn

class BertSelfAttention(nn.Module):
    def forward(self, hidden_states, attention_mask=None, head_mask=None):
        mixed_query_layer = self.query(hidden_states)
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        query_layer = self.transpose_for_scores(mixed_query_layer)

        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        if self.position_embedding_type in ("relative_key", "relative_key_query"):
            positional_embedding = self.distance_embedding(self.distance_ids)
            relative_position_scores = torch.einsum("bhld,lrd->bhlr", query_layer, positional_embedding)
            attention_scores = attention_scores + relative_position_scores

        attention_scores = attention_scores / math.sqrt(self.attention_head_size)
        if attention_mask is not None:
            attention_scores = attention_scores + attention_mask

        attention_probs = nn.functional.softmax(attention_scores, dim=-1)
        attention_probs = self.dropout(attention_probs)
        context_layer = torch.matmul(attention_probs, value_layer)
        return context_layer.permute(0, 2, 1, 3).contiguous()
"""

HF_LLAMA = """
import torch
from torch import nn

def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)

def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    key_states = repeat_kv(key, module.num_key_value_groups)
    value_states = repeat_kv(value, module.num_key_value_groups)

    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        causal_mask = attention_mask[:, :, :, : key_states.shape[-2]]
        attn_weights = attn_weights + causal_mask

    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value_states)
    return attn_output.transpose(1, 2).contiguous(), attn_weights
"""

HF_BART = """
import torch
from torch import nn

class BartAttention(nn.Module):
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.head_dim = embed_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, hidden_states, attention_mask=None):
        bsz, tgt_len, _ = hidden_states.size()
        query_states = self.q_proj(hidden_states) * self.scaling
        key_states = self._shape(self.k_proj(hidden_states), -1, bsz)
        value_states = self._shape(self.v_proj(hidden_states), -1, bsz)
        proj_shape = (bsz * self.num_heads, -1, self.head_dim)
        query_states = self._shape(query_states, tgt_len, bsz).view(*proj_shape)
        key_states = key_states.reshape(*proj_shape)
        value_states = value_states.reshape(*proj_shape)

        attn_weights = torch.bmm(query_states, key_states.transpose(1, 2))
        if attention_mask is not None:
            attn_weights = attn_weights.view(bsz, self.num_heads, tgt_len, -1) + attention_mask
            attn_weights = attn_weights.view(bsz * self.num_heads, tgt_len, -1)
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        attn_probs = nn.functional.dropout(attn_weights, p=self.dropout, training=self.training)
        return torch.bmm(attn_probs, value_states)
"""

TIMM_VIT = """
import torch
import torch.nn as nn
import torch.nn.functional as F

class Attention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False, qk_norm=False):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = True
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)

        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            q = q * self.scale
            attn = q @ k.transpose(-2, -1)
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))
"""

CLIP = """
import numpy as np
import torch
from torch import nn

class CLIP(nn.Module):
    def __init__(self):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))

    def forward(self, image, text):
        image_features = self.encode_image(image)
        text_features = self.encode_text(text)
        image_features = image_features / image_features.norm(dim=1, keepdim=True)
        text_features = text_features / text_features.norm(dim=1, keepdim=True)
        logit_scale = self.logit_scale.exp()
        logits_per_image = logit_scale * image_features @ text_features.t()
        logits_per_text = logits_per_image.t()
        return logits_per_image, logits_per_text

def zero_shot_probabilities(model, image, text):
    image_features = model.encode_image(image)
    text_features = model.encode_text(text)
    similarity = (100.0 * image_features @ text_features.T).softmax(dim=-1)
    unnormalised = (image_features @ text_features.T).softmax(dim=-1)  # a similarity, not attention
    return similarity, unnormalised
"""

LIT_GPT = """
import math
import torch
import torch.nn.functional as F

def do_softcapping(x, thresh):
    return torch.tanh(x / thresh) * thresh

class CausalSelfAttention(torch.nn.Module):
    def scaled_dot_product_attention(self, q, k, v, mask=None):
        scale = 1.0 / math.sqrt(self.config.attention_scores_scalar or self.config.head_size)
        if self.config.attention_logit_softcapping is not None:
            scores = q @ k.mT * scale
            scores = do_softcapping(scores, self.config.attention_logit_softcapping)
            if mask is None:
                mask = torch.ones(q.size(2), q.size(2), dtype=q.dtype, device=q.device).triu(diagonal=1)
                mask.masked_fill_(mask.bool(), torch.finfo(q.dtype).min)
            scores = scores + mask
            scores = F.softmax(scores, dim=-1, dtype=torch.float).to(dtype=q.dtype)
            y = scores @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=scale, is_causal=mask is None)
        return y.transpose(1, 2)
"""

X_TRANSFORMERS = """
import torch
from torch import nn, einsum

class Attention(nn.Module):
    def __init__(self, dim, dim_head=64, heads=8):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.heads = heads

    def forward(self, x, mask=None):
        q, k, v = self.to_q(x), *self.to_kv(x).chunk(2, dim=-1)
        q, k, v = map(lambda t: rearrange(t, 'b n (h d) -> b h n d', h=self.heads), (q, k, v))
        dots = einsum('b h i d, b h j d -> b h i j', q, k) * self.scale
        if mask is not None:
            dots = dots.masked_fill(~mask, -torch.finfo(dots.dtype).max)
        attn = dots.softmax(dim=-1)
        attn = self.dropout(attn)
        out = einsum('b h i j, b h j d -> b h i d', attn, v)
        return self.to_out(rearrange(out, 'b h n d -> b n (h d)'))
"""

VIT_PYTORCH = """
import torch
from torch import nn

class Attention(nn.Module):
    def __init__(self, dim, heads=8, dim_head=64):
        super().__init__()
        self.scale = dim_head ** -0.5
        self.attend = nn.Softmax(dim=-1)

    def forward(self, x):
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        attn = self.attend(dots)
        return torch.matmul(self.dropout(attn), v)
"""

FAIRSEQ = """
import torch
import torch.nn.functional as F

class MultiheadAttention(torch.nn.Module):
    def forward(self, query, key, value, attn_mask=None):
        q = self.q_proj(query)
        k = self.k_proj(key)
        v = self.v_proj(value)
        q *= self.scaling
        q = q.contiguous().view(tgt_len, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        k = k.contiguous().view(-1, bsz * self.num_heads, self.head_dim).transpose(0, 1)
        attn_weights = torch.bmm(q, k.transpose(1, 2))
        if attn_mask is not None:
            attn_weights += attn_mask.unsqueeze(0)
        attn_weights_float = F.softmax(attn_weights, dim=-1, dtype=torch.float32)
        attn_probs = self.dropout_module(attn_weights_float.type_as(attn_weights))
        return torch.bmm(attn_probs, v)
"""

META_LLAMA = """
import math
import torch
import torch.nn.functional as F

class Attention(torch.nn.Module):
    def forward(self, x, start_pos, freqs_cis, mask):
        bsz, seqlen, _ = x.shape
        xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)
        xq = xq.view(bsz, seqlen, self.n_local_heads, self.head_dim)
        xk = xk.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis=freqs_cis)
        self.cache_k[:bsz, start_pos : start_pos + seqlen] = xk
        keys = self.cache_k[:bsz, : start_pos + seqlen]
        values = self.cache_v[:bsz, : start_pos + seqlen]
        xq = xq.transpose(1, 2)
        keys = keys.transpose(1, 2)
        values = values.transpose(1, 2)
        scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        scores = F.softmax(scores.float(), dim=-1).type_as(xq)
        output = torch.matmul(scores, values)
        return self.wo(output.transpose(1, 2).contiguous().view(bsz, seqlen, -1))
"""

BLOOM = """
import torch
import torch.nn.functional as F

class BloomAttention(torch.nn.Module):
    def forward(self, hidden_states, alibi, attention_mask):
        query_layer, key_layer, value_layer = self._split_heads(self.query_key_value(hidden_states))
        matmul_result = alibi.baddbmm(batch1=query_layer, batch2=key_layer, beta=self.beta, alpha=self.inv_norm_factor)
        attention_scores = matmul_result.view(batch_size, self.num_heads, q_length, -1)
        attn_weights = torch.masked_fill(attention_scores, attention_mask, torch.finfo(attention_scores.dtype).min)
        attention_probs = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_layer.dtype)
        return torch.bmm(attention_probs.view(-1, q_length, kv_length), value_layer)
"""

NEOX = """
import torch

class GPTNeoXAttention(torch.nn.Module):
    def _attn(self, query, key, value, attention_mask=None):
        batch_size, num_attention_heads, query_length, attn_head_size = query.size()
        key_length = key.size(-2)
        query = query.view(batch_size * num_attention_heads, query_length, attn_head_size)
        key = key.view(batch_size * num_attention_heads, key_length, attn_head_size)
        attn_scores = torch.zeros(batch_size * num_attention_heads, query_length, key_length, dtype=query.dtype)
        attn_scores = torch.baddbmm(attn_scores, query, key.transpose(1, 2), beta=1.0, alpha=self.norm_factor)
        attn_scores = attn_scores.view(batch_size, num_attention_heads, query_length, key_length)
        attn_weights = torch.nn.functional.softmax(attn_scores, dim=-1)
        return torch.matmul(attn_weights, value), attn_weights
"""

MEGATRON_NORM_FACTOR = """
import torch

class CoreAttention(torch.nn.Module):
    def forward(self, query_layer, key_layer, value_layer, attention_mask):
        scores = torch.matmul(query_layer, key_layer.transpose(-1, -2)) / self.norm_factor
        probs = self.scale_mask_softmax(scores, attention_mask)
        return torch.matmul(probs, value_layer)
"""

SWIN_COSINE = """
import torch
import torch.nn.functional as F

class WindowAttention(torch.nn.Module):
    def forward(self, x, mask=None):
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1))
        logit_scale = torch.clamp(self.logit_scale, max=4.6052).exp()
        attn = attn * logit_scale
        attn = attn + self.relative_position_bias.unsqueeze(0)
        attn = self.softmax(attn)
        return (attn @ v).transpose(1, 2).reshape(B_, N, -1)
"""

WHISPER = """
import torch
import torch.nn.functional as F

class MultiHeadAttention(torch.nn.Module):
    def qkv_attention(self, q, k, v, mask=None):
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3) * scale
        k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 3, 1) * scale
        v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        qk = q @ k
        if mask is not None:
            qk = qk + mask[:n_ctx, :n_ctx]
        w = F.softmax(qk.float(), dim=-1).to(q.dtype)
        return (w @ v).permute(0, 2, 1, 3).flatten(start_dim=2), qk.detach()
"""

LATENT_DIFFUSION = """
import torch
from torch import nn, einsum
from einops import rearrange

class CrossAttention(nn.Module):
    def forward(self, x, context=None, mask=None):
        h = self.heads
        q = self.to_q(x)
        context = default(context, x)
        k = self.to_k(context)
        v = self.to_v(context)
        q, k, v = map(lambda t: rearrange(t, 'b n (h d) -> (b h) n d', h=h), (q, k, v))
        sim = einsum('b i d, b j d -> b i j', q, k) * self.scale
        if mask is not None:
            mask = rearrange(mask, 'b ... -> b (...)')
            max_neg_value = -torch.finfo(sim.dtype).max
            sim.masked_fill_(~mask, max_neg_value)
        attn = sim.softmax(dim=-1)
        out = einsum('b i j, b j d -> b i d', attn, v)
        return self.to_out(rearrange(out, '(b h) n d -> b n (h d)', h=h))
"""

DIFFUSERS = """
import torch

class Attention(torch.nn.Module):
    def get_attention_scores(self, query, key, attention_mask=None):
        dtype = query.dtype
        if attention_mask is None:
            baddbmm_input = torch.empty(query.shape[0], query.shape[1], key.shape[1], dtype=query.dtype, device=query.device)
            beta = 0
        else:
            baddbmm_input = attention_mask
            beta = 1
        attention_scores = torch.baddbmm(baddbmm_input, query, key.transpose(-1, -2), beta=beta, alpha=self.scale)
        del baddbmm_input
        if self.upcast_softmax:
            attention_scores = attention_scores.float()
        attention_probs = attention_scores.softmax(dim=-1)
        return attention_probs.to(dtype)
"""

SCRIPT = """
import math
import torch

d_model = 512
Q, K, V = wq(tokens), wk(tokens), wv(tokens)
scores = Q @ K.transpose(-2, -1) / math.sqrt(d_model)
weights = torch.softmax(scores, dim=-1)
context = weights @ V
"""

SCALING_ROUTES = {
    "scale variable computed earlier": """
        import torch
        def attend(q, k, v, head_dim):
            scale = head_dim ** -0.5
            att = q @ k.transpose(-2, -1)
            att = att.masked_fill(att == 0, 0.0)
            att = att * scale
            return torch.softmax(att, dim=-1) @ v
    """,
    "in-place mul_": """
        import torch
        def attend(q, k, v, scale):
            att = torch.matmul(q, k.transpose(-2, -1))
            att.mul_(scale)
            return att.softmax(-1) @ v
    """,
    "augmented division": """
        import math
        import torch
        def attend(q, k, v):
            att = torch.matmul(q, k.transpose(-2, -1))
            att /= math.sqrt(q.size(-1))
            return att.softmax(-1) @ v
    """,
    "div method inside softmax": """
        import math
        import torch
        def attend(query, key, value):
            scores = torch.matmul(query, key.transpose(-2, -1))
            return torch.softmax(scores.div(math.sqrt(query.size(-1))), dim=-1) @ value
    """,
    "query divided first": """
        import math
        import torch.nn.functional as F
        def attend(q, k, v, d):
            q = q / math.sqrt(d)
            q = q.transpose(1, 2)
            return F.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
    """,
    "tuple scaling of q and k": """
        import torch.nn.functional as F
        def attend(q, k, v, s):
            q, k = q * s, k * s
            return F.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
    """,
    "key scaled": """
        import torch
        def attend(q, k, v, scale):
            k = k * scale
            return torch.softmax(torch.matmul(q, k.transpose(-1, -2)), dim=-1) @ v
    """,
    "muP 1/d": """
        import torch.nn.functional as F
        def attend(q, k, v):
            att = (q @ k.transpose(-2, -1)) * (8.0 / q.size(-1))
            return F.softmax(att, dim=-1) @ v
    """,
    "temperature inside softmax": """
        import torch.nn.functional as F
        def attend(q, k, v, temperature):
            att = q @ k.transpose(-2, -1)
            return F.softmax(att / temperature, dim=-1) @ v
    """,
    "scaled in a conditional expression": """
        import torch.nn.functional as F
        def attend(q, k, v, scale=None):
            att = q @ k.transpose(-2, -1)
            att = att * scale if scale is not None else att
            return F.softmax(att, dim=-1) @ v
    """,
    "caller scales the query": """
        import torch
        class Attention(torch.nn.Module):
            def forward(self, x):
                q, k, v = self.qkv(x).chunk(3, dim=-1)
                return self._attn(q * self.scale, k, v)
            def _attn(self, query, key, value):
                weights = torch.matmul(query, key.transpose(-1, -2))
                return torch.softmax(weights, dim=-1) @ value
    """,
    "quantized FloatFunctional scaling": """
        import torch
        class QuantizableMultiheadAttention(torch.nn.Module):
            def forward(self, query, key):
                scaling = float(self.head_dim) ** -0.5
                q = self.linear_Q(query)
                k = self.linear_K(key)
                q = self.q_scaling_product.mul_scalar(q, scaling)
                weights = torch.bmm(q, k.transpose(1, 2))
                return torch.softmax(weights, dim=-1)
    """,
    "unit scale chosen explicitly for the fused path": """
        import torch.nn.functional as F
        class Attention(torch.nn.Module):
            def forward(self, q, k, v):
                if self.fused_attn:
                    return F.scaled_dot_product_attention(q, k, v, scale=1.0)
                attn = q @ k.transpose(-2, -1)  # QK-normed queries: scale 1.0, as in the fused path
                return attn.softmax(dim=-1) @ v
    """,
    "soft-capped logits": """
        import torch
        def attend(q, k, v, cap):
            att = q @ k.transpose(-2, -1)
            att = torch.tanh(att / cap) * cap
            return torch.softmax(att, dim=-1) @ v
    """,
}

NOT_ATTENTION = {
    "classifier head": """
        import torch.nn.functional as F
        class Head(torch.nn.Module):
            def forward(self, hidden):
                logits = hidden @ self.lm_head.weight.T
                return F.log_softmax(logits, dim=-1)
    """,
    "tied output embedding in an attention-named class": """
        import torch
        class AttentionLM(torch.nn.Module):
            def forward(self, hidden):
                W = self.token_embedding.weight
                return torch.softmax(hidden @ W.T, dim=-1)
    """,
    "sampling with temperature": """
        import torch
        def sample(logits, temperature):
            probs = torch.softmax(logits[:, -1, :] / temperature, dim=-1)
            return torch.multinomial(probs, num_samples=1)
    """,
    "moe router": """
        import torch.nn.functional as F
        class Router(torch.nn.Module):
            def forward(self, x):
                router_logits = self.gate(x)
                return F.softmax(router_logits, dim=-1, dtype=torch.float)
    """,
    "pointer network": """
        import torch
        class PointerNet(torch.nn.Module):
            def forward(self, decoder_state, encoder_states):
                u = torch.bmm(decoder_state.unsqueeze(1), encoder_states.transpose(1, 2)).squeeze(1)
                return torch.log_softmax(u, dim=-1)
    """,
    "attention pooling with a learned query": """
        import torch
        class AttentionPool(torch.nn.Module):
            def forward(self, x):
                scores = self.query @ x.transpose(-2, -1)
                return torch.softmax(scores, dim=-1) @ x
    """,
    "scores passed in": """
        import torch.nn.functional as F
        def masked_softmax(attn_scores, mask):
            attn_scores = attn_scores.masked_fill(~mask, float("-inf"))
            return F.softmax(attn_scores, dim=-1)
    """,
    "helper hides the scaling": """
        import torch
        class Attention(torch.nn.Module):
            def forward(self, q, k, v):
                att = q @ k.transpose(-2, -1)
                att = self.apply_scale(att)
                return torch.softmax(att, dim=-1) @ v
    """,
    "scores never softmaxed": """
        import torch
        def linear_attention(q, k, v):
            kv = k.transpose(-2, -1) @ v
            return torch.sigmoid(q @ k.transpose(-2, -1)) @ v
    """,
    "no torch import": """
        import numpy as np
        from scipy.special import softmax
        def attend(q, k, v):
            return softmax(q @ k.T, axis=-1) @ v
    """,
}


@pytest.mark.parametrize(
    "code",
    [NANOGPT, MINGPT, HF_GPT2, HF_BERT, HF_LLAMA, HF_BART, TIMM_VIT, CLIP, LIT_GPT, X_TRANSFORMERS, VIT_PYTORCH,
     FAIRSEQ, META_LLAMA, BLOOM, NEOX, MEGATRON_NORM_FACTOR, SWIN_COSINE, WHISPER, LATENT_DIFFUSION, DIFFUSERS,
     SCRIPT],
    ids=["nanogpt", "mingpt", "hf-gpt2", "hf-bert", "hf-llama", "hf-bart", "timm-vit", "clip", "lit-gpt",
         "x-transformers", "vit-pytorch", "fairseq", "meta-llama", "bloom", "gpt-neox", "megatron", "swin-v2",
         "whisper", "latent-diffusion", "diffusers", "module-level-script"],
)  # fmt: skip
def test_reference_implementations_are_silent(code):
    assert ranges(code) == []


@pytest.mark.parametrize("code", list(SCALING_ROUTES.values()), ids=list(SCALING_ROUTES))
def test_every_scaling_route_is_recognised(code):
    assert ranges(code) == []


@pytest.mark.parametrize("code", list(NOT_ATTENTION.values()), ids=list(NOT_ATTENTION))
def test_softmaxes_that_are_not_attention_are_silent(code):
    assert ranges(code) == []


# ---- true positives ----------------------------------------------------------------------------


def test_examples_model_is_flagged_on_the_score_line():
    source = (EXAMPLES / "model.py").read_text()
    found = RULE.run(Document(source, "model.py"))
    assert len(found) == 1
    finding = found[0]
    line = source.splitlines()[finding.span.line - 1]
    assert line[finding.span.column : finding.span.end_column] == "q @ k.transpose(-2, -1)"
    assert finding.message.startswith("attention scores `q @ k.transpose(-2, -1)` reach softmax unscaled")
    assert "(Vaswani et al., 2017)" in finding.message
    fixed = apply_fixes(source, [finding.fix]).text
    assert "att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)" in fixed
    assert fixed.count("import math") == 1  # the file already imports it
    assert RULE.run(Document(fixed)) == []


GPT_NEO_STYLE = """
import torch
from torch import nn

class GPTNeoSelfAttention(nn.Module):
    def _attn(self, query, key, value, attention_mask=None):
        query = query.to(torch.float32)
        key = key.to(torch.float32)
        attn_weights = torch.matmul(query, key.transpose(-1, -2))
        mask_value = torch.finfo(attn_weights.dtype).min
        attn_weights = torch.where(self.causal_mask, attn_weights, mask_value)
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = nn.functional.softmax(attn_weights, dim=-1)
        attn_weights = self.attn_dropout(attn_weights.to(value.dtype))
        return torch.matmul(attn_weights, value), attn_weights

    def forward(self, hidden_states, attention_mask=None):
        query = self._split_heads(self.q_proj(hidden_states))
        key = self._split_heads(self.k_proj(hidden_states))
        value = self._split_heads(self.v_proj(hidden_states))
        return self._attn(query, key, value, attention_mask)
"""


def test_unscaled_matmul_through_mask_and_bias_is_flagged():
    # GPT-Neo really trains without the factor; the finding is right, and the docs say to suppress it there.
    assert ranges(GPT_NEO_STYLE) == ["8:24-8:66"]


def test_t5_style_in_place_bias_and_float_softmax_is_flagged():
    code = """
    import torch
    from torch import nn
    class T5Attention(nn.Module):
        def forward(self, hidden_states, position_bias):
            query_states = self.shape(self.q(hidden_states))
            key_states = self.shape(self.k(hidden_states))
            scores = torch.matmul(query_states, key_states.transpose(3, 2))
            scores += position_bias
            attn_weights = nn.functional.softmax(scores.float(), dim=-1).type_as(scores)
            return torch.matmul(attn_weights, self.shape(self.v(hidden_states)))
    """
    assert ranges(code) == ["7:18-7:72"]
    (finding,) = findings(code)
    fixed = apply_fixes(textwrap.dedent(code).lstrip("\n"), [finding.fix]).text
    assert "scores = torch.matmul(query_states, key_states.transpose(3, 2)) * (key_states.size(-1) ** -0.5)" in fixed
    assert "import math" not in fixed  # `** -0.5` needs no import


def test_alibi_bias_without_scale_is_flagged_and_two_heads_of_a_branch():
    code = """
    import torch.nn.functional as F
    def attend(q, k, v, alibi, causal):
        if causal:
            att = q @ k.transpose(-2, -1) + alibi
        else:
            att = q @ k.transpose(-2, -1)
        att = F.dropout(att, 0.1)
        return F.softmax(att, dim=-1) @ v
    """
    assert ranges(code) == ["4:15-4:38", "6:15-6:38"]


def test_a_multiplication_inside_the_mask_bias_is_not_scaling():
    code = """
    import torch
    def attention(query, key, value, mask):
        scores = torch.matmul(query, key.transpose(-1, -2))
        scores = scores + (1.0 - mask) * -10000.0
        return torch.softmax(scores, dim=-1) @ value
    """
    assert ranges(code) == ["3:14-3:56"]


def test_scaling_an_unrelated_tensor_does_not_hide_the_scores():
    code = """
    import torch.nn.functional as F
    def attention(q, k, v, bias, slopes):
        bias = bias * slopes
        att = (q @ k.transpose(-2, -1)) + bias
        return F.softmax(att, dim=-1) @ v
    """
    assert ranges(code) == ["4:12-4:35"]


def test_summed_score_terms_are_flagged_without_a_partial_fix():
    code = """
    import torch
    def relative_attention(q, k, r, v):
        att = torch.einsum("bhid,bhjd->bhij", q, k) + torch.einsum("bhid,bhjd->bhij", q, r)
        return att.softmax(-1) @ v
    """
    found = findings(code)
    assert [f"{f.span.line}:{f.span.column + 1}" for f in found] == ["3:11", "3:51"]
    assert all(finding.fix is None for finding in found)


def test_scores_concatenated_with_attention_sinks_are_followed():
    code = """
    import torch
    import torch.nn.functional as F
    def sink_attention(query, key_states, sinks, scaling=None):
        attn_weights = torch.matmul(query, key_states.transpose(2, 3))
        if scaling is not None:
            attn_weights = attn_weights * scaling
        combined_logits = torch.cat([attn_weights, sinks], dim=-1)
        return F.softmax(combined_logits, dim=-1)[..., :-1]
    """
    assert ranges(code) == []
    assert ranges(code.replace("attn_weights * scaling", "attn_weights + scaling")) == ["4:20-4:67"]


def test_manual_path_that_drops_the_fused_paths_scale_is_flagged():
    code = """
    import torch.nn.functional as F
    class Attention(torch.nn.Module):
        def forward(self, q, k, v):
            if self.fused_attn:
                return F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            attn = q @ k.transpose(-2, -1)
            return attn.softmax(dim=-1) @ v
    """
    assert ranges(code) == ["6:16-6:39"]


def test_module_level_script_is_analysed():
    code = """
    import torch
    Q, K, V = wq(tokens), wk(tokens), wv(tokens)
    weights = torch.softmax(Q @ K.T, dim=-1)
    context = weights @ V
    """
    assert ranges(code) == ["3:25-3:32"]
    (finding,) = findings(code)
    fixed = apply_fixes(textwrap.dedent(code).lstrip("\n"), [finding.fix]).text
    assert "weights = torch.softmax((Q @ K.T) * (K.size(-1) ** -0.5), dim=-1)" in fixed


def test_multiline_score_expression_range_and_fix():
    code = """
    import math as m
    import torch
    class CrossAttention(torch.nn.Module):
        def forward(self, x, context):
            q = self.to_q(x)
            k = self.to_k(context)
            sim = torch.einsum(
                "b i d, b j d -> b i j", q, k
            )
            return sim.softmax(dim=-1) @ self.to_v(context)
    """
    assert ranges(code) == ["7:15-9:10"]
    (finding,) = findings(code)
    fixed = apply_fixes(textwrap.dedent(code).lstrip("\n"), [finding.fix]).text
    assert '            "b i d, b j d -> b i j", q, k\n        ) * (1.0 / m.sqrt(k.size(-1)))\n' in fixed
    assert "import math\n" not in fixed


def test_score_used_as_method_receiver_gets_parentheses():
    code = """
    import torch
    def attend(q, k, v, mask):
        return torch.matmul(q, k.transpose(-2, -1)).masked_fill(mask, -1e9).softmax(-1) @ v
    """
    (finding,) = findings(code)
    fixed = apply_fixes(textwrap.dedent(code).lstrip("\n"), [finding.fix]).text
    assert "(torch.matmul(q, k.transpose(-2, -1)) * (k.size(-1) ** -0.5)).masked_fill(" in fixed
    assert RULE.run(Document(fixed)) == []


def test_no_fix_when_the_head_dimension_would_recompute_a_projection():
    code = """
    import torch
    def attention(x, wq, wk):
        scores = torch.matmul(wq(x), wk(x).transpose(-2, -1))
        return torch.softmax(scores, dim=-1)
    """
    (finding,) = findings(code)
    assert finding.fix is None


def test_related_location_points_at_the_softmax():
    code = """
    import torch
    def attend(q, k, v):
        att = q @ k.transpose(-2, -1)
        return torch.softmax(att, dim=-1) @ v
    """
    (finding,) = findings(code)
    assert [(r.span.line, r.message) for r in finding.related] == [(4, "softmax taken here")]


# ---- cost ---------------------------------------------------------------------------------------
