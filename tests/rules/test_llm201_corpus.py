"""LLM201 post-norm-residual on real-world-shaped code.

Each snippet is written in the shape the named library uses (nanoGPT, HF Llama / GPT-2 / T5 /
BART / BERT / Gemma 2, timm, lit-gpt, DeepNet, PyTorch's own encoder layer), in our own words.
Pre-norm in all its spellings must stay silent; Post-LN must be reported at the norm call.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.findings import Severity
from llmarch_lsp.fixes.apply import apply_fixes

RULE = find_rule("LLM201")


def _findings(code: str, **options):
    return RULE.run(Document(textwrap.dedent(code).lstrip("\n")), options)


def _ranges(findings) -> list[str]:
    return [f"{f.span.line}:{f.span.column + 1}-{f.span.end_line}:{f.span.end_column + 1}" for f in findings]


# ---------------------------------------------------------------------------------------------
# Must not flag
# ---------------------------------------------------------------------------------------------

NANOGPT = """
import torch
import torch.nn as nn
from torch.nn import functional as F

class LayerNorm(nn.Module):
    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)

class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
    def forward(self, idx, targets=None):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        tok_emb = self.transformer.wte(idx)  # (b, t, n_embd)
        pos_emb = self.transformer.wpe(pos)  # (t, n_embd)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        return self.lm_head(x)
"""

HF_LLAMA = """
import torch
from torch import nn

class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps
    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)

class LlamaDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = LlamaAttention(config=config, layer_idx=layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                use_cache=False, position_embeddings=None, **kwargs):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, self_attn_weights = self.self_attn(
            hidden_states=hidden_states,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_value=past_key_value,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = residual + hidden_states
        return hidden_states

class LlamaModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            [LlamaDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    def forward(self, input_ids, attention_mask=None):
        hidden_states = self.embed_tokens(input_ids)
        for decoder_layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = decoder_layer(hidden_states, attention_mask=attention_mask)
        hidden_states = self.norm(hidden_states)
        return hidden_states
"""

HF_GPT2 = """
import torch.nn as nn

class GPT2Block(nn.Module):
    def __init__(self, config, layer_idx=None):
        super().__init__()
        hidden_size = config.hidden_size
        inner_dim = config.n_inner if config.n_inner is not None else 4 * hidden_size
        self.ln_1 = nn.LayerNorm(hidden_size, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config=config, layer_idx=layer_idx)
        self.ln_2 = nn.LayerNorm(hidden_size, eps=config.layer_norm_epsilon)
        if config.add_cross_attention:
            self.crossattention = GPT2Attention(config=config, is_cross_attention=True, layer_idx=layer_idx)
            self.ln_cross_attn = nn.LayerNorm(hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(inner_dim, config)

    def forward(self, hidden_states, layer_past=None, attention_mask=None,
                encoder_hidden_states=None, use_cache=False, output_attentions=False):
        residual = hidden_states
        hidden_states = self.ln_1(hidden_states)
        attn_outputs = self.attn(hidden_states, layer_past=layer_past, attention_mask=attention_mask)
        attn_output = attn_outputs[0]  # output_attn: a, present, (attentions)
        outputs = attn_outputs[1:]
        hidden_states = attn_output + residual
        if encoder_hidden_states is not None:
            residual = hidden_states
            hidden_states = self.ln_cross_attn(hidden_states)
            cross_attn_outputs = self.crossattention(hidden_states, encoder_hidden_states=encoder_hidden_states)
            attn_output = cross_attn_outputs[0]
            hidden_states = residual + attn_output
            outputs = outputs + cross_attn_outputs[2:]
        residual = hidden_states
        hidden_states = self.ln_2(hidden_states)
        feed_forward_hidden_states = self.mlp(hidden_states)
        hidden_states = residual + feed_forward_hidden_states
        if use_cache:
            outputs = (hidden_states,) + outputs
        else:
            outputs = (hidden_states,) + outputs[1:]
        return outputs
"""

TIMM_VIT = """
import torch.nn as nn

class LayerScale(nn.Module):
    def __init__(self, dim, init_values=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))
    def forward(self, x):
        return x * self.gamma

class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, init_values=None, drop_path=0.0,
                 act_layer=nn.GELU, norm_layer=nn.LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads=num_heads)
        self.ls1 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer)
        self.ls2 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
    def forward(self, x, attn_mask=None):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), attn_mask=attn_mask)))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x

class ResPostBlock(nn.Module):
    # Swin-v2 style: the norm sits on the branch output, the stream itself is never normalized.
    def __init__(self, dim, num_heads, norm_layer=nn.LayerNorm):
        super().__init__()
        self.attn = Attention(dim, num_heads=num_heads)
        self.norm1 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=4 * dim)
        self.norm2 = norm_layer(dim)
        self.drop_path1 = nn.Identity()
        self.drop_path2 = nn.Identity()
    def forward(self, x):
        x = x + self.drop_path1(self.norm1(self.attn(x)))
        x = x + self.drop_path2(self.norm2(self.mlp(x)))
        return x

class VisionTransformer(nn.Module):
    def __init__(self, embed_dim=768, depth=12, norm_layer=nn.LayerNorm):
        super().__init__()
        self.blocks = nn.Sequential(*[Block(embed_dim, 12) for _ in range(depth)])
        self.norm = norm_layer(embed_dim)
    def forward(self, x):
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.norm_pre(x)
        x = self.blocks(x)
        x = self.norm(x)
        return x
"""

LIT_GPT = """
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, config, block_idx):
        super().__init__()
        self.norm_1 = config.norm_class(config.n_embd, eps=config.norm_eps)
        self.attn = CausalSelfAttention(config, block_idx)
        self.post_attention_norm = (
            config.norm_class(config.n_embd, eps=config.norm_eps) if config.post_attention_norm else nn.Identity()
        )
        self.norm_2 = None if config.shared_attention_norm else config.norm_class(config.n_embd, eps=config.norm_eps)
        self.mlp = config.mlp_class(config)
        self.post_mlp_norm = (
            config.norm_class(config.n_embd, eps=config.norm_eps) if config.post_mlp_norm else nn.Identity()
        )
        self.config = config

    def forward(self, x, cos, sin, mask=None, input_pos=None):
        x_normed = self.norm_1(x)
        attention_output = self.attn(x_normed, cos, sin, mask, input_pos)
        attention_output = self.post_attention_norm(attention_output)
        if self.config.parallel_residual:
            if not self.config.shared_attention_norm:
                x_normed = self.norm_2(x)
            x = attention_output + x
        else:
            x = attention_output + x
            x_normed = self.norm_2(x)
        return self.post_mlp_norm(self.mlp(x_normed)) + x

class ParallelBlock(nn.Module):
    # GPT-J / NeoX parallel residual, written on one line.
    def __init__(self, config):
        super().__init__()
        self.n1 = nn.LayerNorm(config.n_embd)
        self.n2 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.mlp = MLP(config)
    def forward(self, x):
        x = x + self.attn(self.n1(x)) + self.mlp(self.n2(x))
        return x
"""

HF_T5 = """
import torch
from torch import nn

class T5LayerNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps
    def forward(self, hidden_states):
        variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states

class T5LayerFF(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.DenseReluDense = T5DenseActDense(config)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)
    def forward(self, hidden_states):
        forwarded_states = self.layer_norm(hidden_states)
        forwarded_states = self.DenseReluDense(forwarded_states)
        hidden_states = hidden_states + self.dropout(forwarded_states)
        return hidden_states

class T5LayerSelfAttention(nn.Module):
    def __init__(self, config, has_relative_attention_bias=False):
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias=has_relative_attention_bias)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)
    def forward(self, hidden_states, attention_mask=None, position_bias=None):
        normed_hidden_states = self.layer_norm(hidden_states)
        attention_output = self.SelfAttention(normed_hidden_states, mask=attention_mask, position_bias=position_bias)
        hidden_states = hidden_states + self.dropout(attention_output[0])
        outputs = (hidden_states,) + attention_output[1:]
        return outputs

class T5Stack(nn.Module):
    def __init__(self, config, embed_tokens=None):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.block = nn.ModuleList([T5Block(config, has_relative_attention_bias=bool(i == 0)) for i in range(config.num_layers)])
        self.final_layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)
    def forward(self, input_ids):
        hidden_states = self.dropout(self.embed_tokens(input_ids))
        for layer_module in self.block:
            hidden_states = layer_module(hidden_states)[0]
        hidden_states = self.final_layer_norm(hidden_states)
        return self.dropout(hidden_states)
"""

GEMMA2_SANDWICH = """
import torch
from torch import nn

class Gemma2RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))
    def forward(self, x):
        output = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (output * (1.0 + self.weight.float())).type_as(x)

class Gemma2DecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = Gemma2Attention(config=config, layer_idx=layer_idx)
        self.mlp = Gemma2MLP(config)
        self.input_layernorm = Gemma2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = Gemma2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.pre_feedforward_layernorm = Gemma2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_feedforward_layernorm = Gemma2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    def forward(self, hidden_states, position_embeddings, attention_mask=None):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, self_attn_weights = self.self_attn(
            hidden_states=hidden_states, position_embeddings=position_embeddings, attention_mask=attention_mask
        )
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.pre_feedforward_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = self.post_feedforward_layernorm(hidden_states)
        hidden_states = residual + hidden_states
        return hidden_states

class CogViewBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.pre_norm = nn.LayerNorm(dim)
        self.post_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim)
    def forward(self, x):
        return x + self.post_norm(self.attn(self.pre_norm(x)))
"""

DEEPNET = """
import math
import torch.nn as nn

class DeepNormLayer(nn.Module):
    def __init__(self, d_model, n_layers):
        super().__init__()
        self.alpha = (2 * n_layers) ** 0.25
        self.self_attn = MultiheadAttention(d_model)
        self.ffn = FeedForward(d_model)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(0.1)
    def forward(self, x):
        residual = x
        x = self.self_attn(x)
        x = self.dropout(x)
        x = self.self_attn_layer_norm(residual * self.alpha + x)
        x = self.final_layer_norm(x * self.alpha + self.dropout(self.ffn(x)))
        return x

class Encoder(nn.Module):
    def __init__(self, d_model=512, n_layers=200):
        super().__init__()
        self.layers = nn.ModuleList([DeepNormLayer(d_model, n_layers) for _ in range(n_layers)])
    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
"""

BERT = """
import torch
from torch import nn

class BertEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
    def forward(self, input_ids=None, token_type_ids=None, inputs_embeds=None):
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        input_shape = inputs_embeds.size()[:-1]
        seq_length = input_shape[1]
        position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            token_type_ids = torch.zeros(input_shape, dtype=torch.long, device=inputs_embeds.device)
        token_type_embeddings = self.token_type_embeddings(token_type_ids)
        embeddings = inputs_embeds + token_type_embeddings
        position_embeddings = self.position_embeddings(position_ids)
        embeddings += position_embeddings
        embeddings = self.LayerNorm(embeddings)
        embeddings = self.dropout(embeddings)
        return embeddings

class BertSelfOutput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states
"""

ANNOTATED_TRANSFORMER = """
import torch.nn as nn

class SublayerConnection(nn.Module):
    def __init__(self, size, dropout):
        super().__init__()
        self.norm = LayerNorm(size)
        self.dropout = nn.Dropout(dropout)
    def forward(self, x, sublayer):
        return x + self.dropout(sublayer(self.norm(x)))

class EncoderLayer(nn.Module):
    def __init__(self, size, self_attn, feed_forward, dropout):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size, dropout), 2)
    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
        return self.sublayer[1](x, self.feed_forward)
"""

CONFORMER_AND_INLINE_FINAL_NORM = """
import torch
import torch.nn as nn

class ConformerLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ffn1 = FeedForwardModule(d)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, 4)
        self.conv_module = ConvolutionModule(d)
        self.ffn2 = FeedForwardModule(d)
        self.final_layer_norm = nn.LayerNorm(d)
    def forward(self, input, key_padding_mask=None):
        residual = input
        x = self.ffn1(input)
        x = x * 0.5 + residual
        residual = x
        x = self.self_attn_layer_norm(x)
        x, _ = self.self_attn(query=x, key=x, value=x, key_padding_mask=key_padding_mask, need_weights=False)
        x = x + residual
        residual = x
        x = self.conv_module(x)
        x = residual + x
        residual = x
        x = self.ffn2(x)
        x = x * 0.5 + residual
        x = self.final_layer_norm(x)
        return x

class TinyLM(nn.Module):
    # One pre-norm block written inline in the model, followed by the final norm.
    def __init__(self, d):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = MLP(d)
        self.ln_f = nn.LayerNorm(d)
    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return self.ln_f(x + self.mlp(self.ln2(x)))

class Normalizer(nn.Module):
    # Norms that are not on a residual.
    def __init__(self, d):
        super().__init__()
        self.q_norm = nn.LayerNorm(d)
        self.k_norm = nn.LayerNorm(d)
        self.proj = nn.Linear(d, d)
    def forward(self, q, k, bias):
        q = self.q_norm(q + bias)
        k = self.k_norm(self.proj(k))
        return q @ k.transpose(-2, -1)

class NotATransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.gn = nn.GroupNorm(8, c)
    def forward(self, x):
        return self.gn(x + self.conv(x))
"""


@pytest.mark.parametrize(
    "code",
    [
        NANOGPT,
        HF_LLAMA,
        HF_GPT2,
        TIMM_VIT,
        LIT_GPT,
        HF_T5,
        GEMMA2_SANDWICH,
        DEEPNET,
        BERT,
        ANNOTATED_TRANSFORMER,
        CONFORMER_AND_INLINE_FINAL_NORM,
    ],
    ids=[
        "nanogpt",
        "hf-llama",
        "hf-gpt2",
        "timm-vit",
        "lit-gpt",
        "hf-t5",
        "gemma2-sandwich",
        "deepnet",
        "bert",
        "annotated-transformer",
        "conformer-and-final-norms",
    ],
)
def test_pre_norm_and_intentional_designs_are_not_flagged(code):
    findings = _findings(code)
    assert findings == [], _ranges(findings)


# ---------------------------------------------------------------------------------------------
# Must flag
# ---------------------------------------------------------------------------------------------

TORCH_STYLE_ENCODER_LAYER = """
import torch.nn as nn
import torch.nn.functional as F

class EncoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, norm_first=False):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src, src_mask=None):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, need_weights=False)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.dropout2(x)
"""


def test_pytorch_style_encoder_layer_gives_only_a_hint_on_the_flag_selected_post_norm_branch():
    findings = _findings(TORCH_STYLE_ENCODER_LAYER)
    assert _ranges(findings) == ["23:17-23:60", "24:17-24:50"]
    # `if self.norm_first: ... else: post-norm` is the user's choice, unknowable statically.
    assert all(f.severity is Severity.HINT for f in findings)
    assert all("a flag selects this branch" in f.message for f in findings)
    assert "`self.norm1` normalizes after the add `x + self._sa_block(x, src_mask)`" in findings[0].message


HF_BART_ENCODER_LAYER = """
import torch
from torch import nn

class BartEncoderLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed_dim = config.d_model
        self.self_attn = BartAttention(embed_dim=self.embed_dim, num_heads=config.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(self.embed_dim)
        self.dropout = config.dropout
        self.activation_fn = ACT2FN[config.activation_function]
        self.fc1 = nn.Linear(self.embed_dim, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, self.embed_dim)
        self.final_layer_norm = nn.LayerNorm(self.embed_dim)

    def forward(self, hidden_states, attention_mask, output_attentions=False):
        residual = hidden_states
        hidden_states, attn_weights, _ = self.self_attn(
            hidden_states=hidden_states, attention_mask=attention_mask, output_attentions=output_attentions
        )
        hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
        hidden_states = residual + hidden_states
        hidden_states = self.self_attn_layer_norm(hidden_states)

        residual = hidden_states
        hidden_states = self.activation_fn(self.fc1(hidden_states))
        hidden_states = self.fc2(hidden_states)
        hidden_states = nn.functional.dropout(hidden_states, p=self.dropout, training=self.training)
        hidden_states = residual + hidden_states
        hidden_states = self.final_layer_norm(hidden_states)
        return hidden_states, attn_weights
"""


def test_hf_bart_post_ln_written_with_a_residual_variable():
    findings = _findings(HF_BART_ENCODER_LAYER)
    assert _ranges(findings) == ["23:25-23:65", "30:25-30:61"]
    # The sum sits on its own line; the finding points there too.
    assert [f.related[0].span.line for f in findings] == [22, 29]
    # One rewrite of the whole forward: each norm moves up to right after `residual = hidden_states`.
    assert findings[0].fix is findings[1].fix is not None
    fixed = apply_fixes(textwrap.dedent(HF_BART_ENCODER_LAYER).lstrip("\n"), [findings[0].fix]).text
    lines = fixed.splitlines()
    assert lines[lines.index("        residual = hidden_states") + 2] == "        hidden_states = self.self_attn_layer_norm(hidden_states)"
    assert "        hidden_states = self.final_layer_norm(hidden_states)\n        hidden_states = self.activation_fn(" in fixed
    assert _findings(fixed) == []


# A decorated forward (HF's `@deprecate_kwarg(...)`): the decorator's call sits above the `def`,
# though a walk of the tree reaches it after the body, so the file's calls in walk order are not in
# line order (here the decorator's call is the middle one, where a bisection of them looks first).
DECORATED_POST_LN_DECODER_LAYER = """
import torch.nn as nn

def renamed_kwarg(old, new):
    return lambda function: function

class DecoderLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.self_attn = Attention(d)
        self.self_attn_norm = nn.LayerNorm(d)
        self.feed_forward = FeedForward(d)
        self.feed_forward_norm = nn.LayerNorm(d)

    @renamed_kwarg("past", "cache")
    def forward(self, hidden, cache=None):
        attended = self.self_attn(hidden, cache=cache)
        hidden = self.self_attn_norm(hidden + attended)
        fed = self.feed_forward(hidden)
        hidden = self.feed_forward_norm(fed + hidden)
        return hidden

def build(d):
    layers = [DecoderLayer(d), DecoderLayer(d), DecoderLayer(d), DecoderLayer(d), DecoderLayer(d)]
    return nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d), nn.Dropout(0.1), *layers)
"""


def test_a_decorated_forward_is_read_like_any_other():
    findings = _findings(DECORATED_POST_LN_DECODER_LAYER)
    assert [f.span.line for f in findings] == [17, 19]


VIA_TEMPORARIES = """
import torch.nn as nn

class PostLNBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = Attention(d)
        self.ff = FeedForward(d)
        self.norm_attn = nn.LayerNorm(d)
        self.norm_ff = nn.LayerNorm(d)
    def forward(self, x):
        h = self.attn(x)
        x = self.norm_attn(x + h)
        y = x + self.ff(x)
        x = self.norm_ff(y)
        return x

class AugmentedAssignBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mlp = FeedForward(d)
        self.norm = nn.LayerNorm(d)
    def forward(self, x):
        x += self.mlp(x)
        x = self.norm(x)
        return x
"""


def test_post_norm_through_temporaries():
    findings = _findings(VIA_TEMPORARIES)
    assert _ranges(findings) == ["12:13-12:34", "14:13-14:28", "24:13-24:25"]
    # `h = self.attn(x)` feeding the sum is rewritten, and `y = x + f(x); x = norm(y)` folds into one
    # line; `x += f(x)` then `x = norm(x)` has no rewrite.
    assert [f.fix is None for f in findings] == [False, False, True]
    fixed = apply_fixes(textwrap.dedent(VIA_TEMPORARIES).lstrip("\n"), [findings[0].fix]).text
    assert "        h = self.attn(self.norm_attn(x))\n        x = x + h\n" in fixed
    assert "        x = x + self.ff(self.norm_ff(x))\n" in fixed


FUNCTIONAL_AND_RMSNORM = """
import torch
import torch.nn as nn
import torch.nn.functional as F
from apex.normalization import FusedLayerNorm

class RMSBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attention = Attention(d)
        self.attention_norm = nn.RMSNorm(d)
        self.feed_forward = FeedForward(d)
        self.weight = nn.Parameter(torch.ones(d))
    def forward(self, x):
        x = self.attention_norm(x + self.attention(x))
        return F.rms_norm(x + self.feed_forward(x), (x.size(-1),), self.weight)

class ApexBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = Attention(d)
        self.ln = FusedLayerNorm(d)
    def forward(self, x):
        return self.ln(self.attn(x) + x)
"""


def test_functional_rmsnorm_and_imported_norm_classes():
    findings = _findings(FUNCTIONAL_AND_RMSNORM)
    assert _ranges(findings) == ["14:13-14:55", "15:16-15:80", "23:16-23:41"]


LOOP_OVER_LAYERS = """
import torch.nn as nn

class Encoder(nn.Module):
    def __init__(self, d, depth):
        super().__init__()
        self.layers = nn.ModuleList([nn.ModuleList([Attention(d), FeedForward(d)]) for _ in range(depth)])
        self.norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
    def forward(self, x):
        for attn, ff in self.layers:
            x = self.norm(x + attn(x))
            x = self.norm(x + ff(x))
        return x
"""


def test_post_norm_inside_a_loop_over_sublayers():
    assert _ranges(_findings(LOOP_OVER_LAYERS)) == ["11:17-11:39", "12:17-12:37"]


DECODER_WITH_CROSS_ATTENTION = """
import torch.nn as nn

class DecoderLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads)
        self.cross_attn = nn.MultiheadAttention(d, heads)
        self.ff = FeedForward(d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.drop = nn.Dropout(0.1)
    def forward(self, tgt, memory, tgt_mask=None):
        attended = self.self_attn(tgt, tgt, tgt, attn_mask=tgt_mask)[0]
        tgt = self.norm1(tgt + self.drop(attended))
        crossed, _ = self.cross_attn(tgt, memory, memory)
        tgt = self.norm2(tgt + self.drop(crossed))
        tgt = self.norm3(tgt + self.drop(self.ff(tgt)))
        return tgt
"""


def test_original_transformer_decoder_layer():
    findings = _findings(DECODER_WITH_CROSS_ATTENTION)
    assert _ranges(findings) == ["15:15-15:52", "17:15-17:51", "18:15-18:56"]


# ---------------------------------------------------------------------------------------------
# Depth and severity
# ---------------------------------------------------------------------------------------------

def _stacked(depth_code: str, header: str = "") -> str:
    return f"""
import torch.nn as nn
{header}
class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = Attention(d)
        self.ln = nn.LayerNorm(d)
    def forward(self, x):
        return self.ln(x + self.attn(x))

class Model(nn.Module):
{depth_code}
"""


@pytest.mark.parametrize(
    ("depth_code", "header", "severity", "depth"),
    [
        ("    def __init__(self, d):\n        self.h = nn.ModuleList([Block(d) for _ in range(6)])", "", Severity.HINT, 6),
        ("    def __init__(self, d, n_layer=4):\n        self.h = nn.ModuleList([Block(d) for _ in range(n_layer)])", "", Severity.HINT, 4),
        ("    def __init__(self, d, *, n_layer: int = 24):\n        self.h = nn.Sequential(*[Block(d) for _ in range(n_layer)])", "", Severity.WARNING, 24),
        ("    def __init__(self, d):\n        self.h = nn.ModuleList(Block(d) for _ in range(N_LAYERS))", "N_LAYERS = 3", Severity.HINT, 3),
        ("    def __init__(self, config):\n        self.h = nn.ModuleList([Block(config.d) for _ in range(config.n_layer)])", "", Severity.WARNING, None),
        ("    def __init__(self, d, n_layer):\n        self.h = nn.ModuleList([Block(d) for _ in range(n_layer)])", "", Severity.WARNING, None),
        ("    def __init__(self, d):\n        self.a = Block(d)\n        self.h = nn.ModuleList([Block(d) for _ in range(2)])", "", Severity.WARNING, None),
    ],
    ids=["literal-6", "default-4", "kwonly-default-24", "module-constant", "config", "no-default", "also-built-alone"],
)
def test_depth_sets_severity(depth_code, header, severity, depth):
    findings = _findings(_stacked(depth_code, header))
    assert len(findings) == 1
    assert findings[0].severity is severity
    if depth is None:
        assert "-layer stack" not in findings[0].message
    else:
        assert f"in a {depth}-layer stack" in findings[0].message


def test_shallow_depth_option_moves_the_threshold():
    code = _stacked("    def __init__(self, d):\n        self.h = nn.ModuleList([Block(d) for _ in range(6)])")
    assert _findings(code, **{"shallow-depth": 4})[0].severity is Severity.WARNING


# ---------------------------------------------------------------------------------------------
# Norm detection and the fix
# ---------------------------------------------------------------------------------------------

NAME_FALLBACK = """
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, d, norm_layer, use_ln=True):
        super().__init__()
        self.attn = Attention(d)
        self.ln_1 = nn.LayerNorm(d) if use_ln else nn.Identity()
        self.norm2 = norm_layer(d)
        self.mlp = MLP(d)
        self.ln_proj = nn.Linear(d, d)
    def forward(self, x):
        x = self.ln_1(x + self.attn(x))
        x = self.norm2(x + self.mlp(x))
        x = self.ln_proj(x + self.mlp(x))
        return x
"""


def test_names_decide_only_when_the_constructor_is_unknown():
    # `ln_1` (conditional) and `norm2` (a factory) are norms by name; `ln_proj` is built as a
    # Linear, so its name does not make it one.
    assert _ranges(_findings(NAME_FALLBACK)) == ["12:13-12:40", "13:13-13:40"]


EMBEDDING_LIKE_AND_POST_NAMED_SUBLAYERS = """
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.pos_embed = PositionalEncoding(d)
        self.position_bias = RelativePosition(d)
        self.post_attn = Attention(d)
        self.norm = nn.LayerNorm(d)
    def forward(self, x):
        a = self.norm(x + self.pos_embed(x))
        b = self.norm(x + self.position_bias(x))
        return self.norm(x + self.post_attn(x))
"""


def test_position_encodings_are_not_sublayers_but_post_named_ones_are():
    assert _ranges(_findings(EMBEDDING_LIKE_AND_POST_NAMED_SUBLAYERS)) == ["13:16-13:48"]


def test_fix_rewrites_the_direct_form_to_pre_norm():
    source = textwrap.dedent(
        """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.attn = Attention(d)
                self.norm = nn.RMSNorm(d)
            def forward(self, x, mask=None):
                x = self.norm(x + self.attn(x, mask=mask))  # (B, T, C)
                return x
        """
    ).lstrip("\n")
    findings = RULE.run(Document(source))
    assert [f.fix.title for f in findings] == ["Move the norm before the sublayer (pre-norm)"]
    assert findings[0].fix.applicability == "unsafe"
    fixed = apply_fixes(source, [findings[0].fix]).text
    assert fixed.splitlines()[7:9] == [
        "        # Pre-norm: normalize the sublayer's input and keep the residual path an identity; a pre-norm stack "
        "needs a final norm before the output head (Xiong et al., 2020, arXiv:2002.04745)",
        "        x = x + self.attn(self.norm(x), mask=mask)  # (B, T, C)",
    ]
    assert RULE.run(Document(fixed)) == []


def test_sublayer_fed_by_the_previous_statement_reads_the_normalized_stream():
    findings = _findings(DECODER_WITH_CROSS_ATTENTION)
    assert len({id(f.fix) for f in findings}) == 1 and findings[0].fix is not None
    fixed = apply_fixes(textwrap.dedent(DECODER_WITH_CROSS_ATTENTION).lstrip("\n"), [findings[0].fix]).text
    # Self-attention reads the stream three times: normalized once and bound; cross-attention
    # normalizes only its query (the memory is not the residual stream).
    assert "        tgt_norm = self.norm1(tgt)\n        attended = self.self_attn(tgt_norm, tgt_norm, tgt_norm, attn_mask=tgt_mask)[0]\n" in fixed
    assert "        crossed, _ = self.cross_attn(self.norm2(tgt), memory, memory)\n        tgt = tgt + self.drop(crossed)\n" in fixed
    assert _findings(fixed) == []


def test_no_fix_when_part_of_the_forward_has_no_rewrite():
    code = """
    import torch.nn as nn
    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.attn = Attention(d)
            self.mlp = MLP(d)
            self.ln_1 = nn.LayerNorm(d)
            self.ln_2 = nn.LayerNorm(d)
        def forward(self, x):
            x = self.ln_1(x + self.attn(x))
            h = self.mlp(x)
            x += h
            x = self.ln_2(x)
            return x
    """
    findings = _findings(code)
    assert len(findings) == 2
    # Half a pre-norm block is neither design: the rewrite is all or nothing.
    assert all(f.fix is None and f.alternatives == () for f in findings)


def test_flag_selected_branches_get_no_rewrite():
    assert all(f.fix is None and not f.alternatives for f in _findings(TORCH_STYLE_ENCODER_LAYER))


def test_a_constant_flag_that_selects_pre_norm_silences_the_post_norm_branch():
    code = """
    import torch.nn as nn
    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.pre_norm = True
            self.attn = Attention(d)
            self.ln = nn.LayerNorm(d)
        def forward(self, x):
            if self.pre_norm:
                x = x + self.attn(self.ln(x))
            else:
                x = self.ln(x + self.attn(x))
            return x
    """
    assert _findings(code) == []
    # Switched to post-norm by default, or set from a config: the branch runs, so it is reported.
    assert len(_findings(code.replace("self.pre_norm = True", "self.pre_norm = False"))) == 1
    assert len(_findings(code.replace("self.pre_norm = True", "self.pre_norm = config.pre_norm"))) == 1


def test_rule_is_silent_without_torch():
    assert _findings("class Block:\n    def forward(self, x):\n        return self.ln(x + self.attn(x))\n") == []


ONE_LAYER_DECODER_HEAD = """
import torch.nn as nn

class DecoderLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, 8)
        self.norm = nn.LayerNorm(d)

    def forward(self, tgt, memory):
        tgt = tgt + self.attn(tgt, memory, memory)[0]
        tgt = self.norm(tgt)
        return tgt

class ClassifierHead(nn.Module):
    def __init__(self, d):
        super().__init__()
        depth = 1
        layer = DecoderLayer(d)
        self.decoder = nn.TransformerDecoder(layer, num_layers=depth)
"""


def test_depth_of_a_torch_stack_built_from_a_local_constant_makes_a_shallow_block_a_hint():
    (finding,) = _findings(ONE_LAYER_DECODER_HEAD)
    assert finding.severity is Severity.HINT and "1-layer stack" in finding.message


def test_a_rebound_depth_stays_unknown():
    source = ONE_LAYER_DECODER_HEAD.replace("        depth = 1\n", "        depth = 1\n        depth += 23\n")
    (finding,) = _findings(source)
    assert finding.severity is Severity.WARNING and "-layer stack" not in finding.message
