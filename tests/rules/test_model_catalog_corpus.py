"""LLM202, LLM401, LLM501 and LLM502 on model code shaped like real libraries.

Each snippet follows the structure the named codebase uses (nanoGPT, minGPT, lit-gpt, Hugging Face,
timm, x-transformers, PyTorch's word-level language model), written in our own words. The correct
spellings must stay silent; the first-draft mistakes must be reported where the rule says.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.findings import Severity
from llmarch_lsp.fixes.apply import apply_fixes

CODES = ("LLM202", "LLM401", "LLM501", "LLM502")


def _source(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def _findings(code: str, rule_code: str, **options):
    return find_rule(rule_code).run(Document(_source(code)), options)


def _ranges(findings) -> list[str]:
    return [f"{f.span.line}:{f.span.column + 1}-{f.span.end_line}:{f.span.end_column + 1}" for f in findings]


def _all_catalog_findings(code: str):
    return {code_: _ranges(_findings(code, code_)) for code_ in CODES}


# ---------------------------------------------------------------------------------------------
# Correct real-world spellings: silent for all four rules
# ---------------------------------------------------------------------------------------------

NANOGPT = """
import math
from dataclasses import dataclass
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

class SelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
    def forward(self, x):
        return self.c_proj(self.c_attn(x)[..., : x.size(-1)])

class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))

class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = SelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x

@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_embd: int = 768
    bias: bool = True

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        else:
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss
"""

LIT_GPT = """
import torch
import torch.nn as nn
from litgpt.config import Config
from litgpt.scripts.convert_hf_checkpoint import qkv_reassemble

class GPT(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=config.lm_head_bias)
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                h=nn.ModuleList(Block(config, block_idx) for block_idx in range(config.n_layer)),
                ln_f=config.norm_class(config.n_embd, eps=config.norm_eps),
            )
        )

    def _init_weights(self, module: nn.Module) -> None:
        # Called from the training scripts as `model.apply(model._init_weights)`.
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, input_pos=None):
        x = self.transformer.wte(idx)
        for block_idx, block in enumerate(self.transformer.h):
            x = block(x, self.cos, self.sin, None, input_pos)
        x = self.transformer.ln_f(x)
        return self.lm_head(x)

class Block(nn.Module):
    def __init__(self, config: Config, block_idx: int) -> None:
        super().__init__()
        self.norm_1 = config.norm_class(config.n_embd, eps=config.norm_eps)
        self.attn = CausalSelfAttention(config, block_idx)
        self.norm_2 = config.norm_class(config.n_embd, eps=config.norm_eps)
        self.mlp = config.mlp_class(config)

    def forward(self, x, cos, sin, mask=None, input_pos=None):
        x_normed = self.norm_1(x)
        attention_output = self.attn(x_normed, cos, sin, mask, input_pos)
        x = attention_output + x
        x_normed = self.norm_2(x)
        return self.mlp(x_normed) + x

class CausalSelfAttention(nn.Module):
    def __init__(self, config: Config, block_idx: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
"""

HF_LLAMA = """
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.generation import GenerationMixin

class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps
    def forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * hidden_states * torch.rsqrt(variance + self.variance_epsilon)

class LlamaDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.self_attn = LlamaAttention(config, layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
    def forward(self, hidden_states, attention_mask=None, position_ids=None):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, _ = self.self_attn(hidden_states, attention_mask, position_ids)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        return residual + hidden_states

class LlamaPreTrainedModel(PreTrainedModel):
    _no_split_modules = ["LlamaDecoderLayer"]
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)

class LlamaModel(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(
            [LlamaDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_init()
    def forward(self, input_ids, attention_mask=None, position_ids=None):
        hidden_states = self.embed_tokens(input_ids)
        for decoder_layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = decoder_layer(hidden_states, attention_mask, position_ids)
        return self.norm(hidden_states)

class LlamaForCausalLM(LlamaPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()
    def forward(self, input_ids, attention_mask=None):
        hidden_states = self.model(input_ids, attention_mask)
        return self.lm_head(hidden_states)
"""

HF_BERT_EMBEDDINGS = """
import torch
from torch import nn

class BertEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)))
    def forward(self, input_ids, position_ids=None):
        seq_length = input_ids.size(1)
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_length]
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        return self.LayerNorm(embeddings)
"""

TIMM_VIT = """
import torch
from torch import nn
from timm.layers import trunc_normal_, DropPath, Mlp, PatchEmbed

class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, drop_path=0.0, norm_layer=nn.LayerNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads=num_heads)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))
    def forward(self, x):
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        x = x + self.drop_path1(self.mlp(self.norm2(x)))
        return x

class VisionTransformer(nn.Module):
    def __init__(self, embed_dim=768, depth=12, num_heads=12, num_classes=1000, global_pool="token"):
        super().__init__()
        self.patch_embed = PatchEmbed(embed_dim=embed_dim)
        self.pos_embed = nn.Parameter(torch.randn(1, 197, embed_dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.global_pool = global_pool
        self.apply(self._init_weights)
    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
    def forward_features(self, x):
        x = self.patch_embed(x) + self.pos_embed
        x = self.blocks(x)
        return self.norm(x)
    def forward_head(self, x):
        x = x[:, 0] if self.global_pool == "token" else x.mean(dim=1)
        return self.head(x)
    def forward(self, x):
        return self.forward_head(self.forward_features(x))
"""

X_TRANSFORMERS = """
import torch
from torch import nn
import torch.nn.functional as F

class TokenEmbedding(nn.Module):
    def __init__(self, dim, num_tokens):
        super().__init__()
        self.emb = nn.Embedding(num_tokens, dim)
    def forward(self, x):
        return self.emb(x.long())

class AbsolutePositionalEmbedding(nn.Module):
    def __init__(self, dim, max_seq_len):
        super().__init__()
        self.scale = dim ** -0.5
        self.emb = nn.Embedding(max_seq_len, dim)
    def forward(self, x):
        pos = torch.arange(x.shape[1], device=x.device)
        return self.emb(pos) * self.scale

class AttentionLayers(nn.Module):
    def __init__(self, dim, depth, heads=8):
        super().__init__()
        self.layers = nn.ModuleList([])
        for _ in range(depth):
            self.layers.append(nn.ModuleList([nn.LayerNorm(dim), Attention(dim, heads=heads)]))
        self.final_norm = nn.LayerNorm(dim)
    def forward(self, x):
        for norm, block in self.layers:
            x = block(norm(x)) + x
        return self.final_norm(x)

class TransformerWrapper(nn.Module):
    def __init__(self, *, num_tokens, max_seq_len, attn_layers, tie_embedding=False):
        super().__init__()
        dim = attn_layers.dim
        self.token_emb = TokenEmbedding(dim, num_tokens)
        self.pos_emb = AbsolutePositionalEmbedding(dim, max_seq_len)
        self.attn_layers = attn_layers
        self.to_logits = nn.Linear(dim, num_tokens, bias=False) if not tie_embedding else None
    def forward(self, x):
        x = self.token_emb(x) + self.pos_emb(x)
        x = self.attn_layers(x)
        if self.to_logits is None:
            return x @ self.token_emb.emb.weight.t()
        return self.to_logits(x)
"""

WORD_LANGUAGE_MODEL = """
import math
import torch
import torch.nn as nn

class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)
    def forward(self, x):
        return self.dropout(x + self.pe[: x.size(0)])

class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, tie_weights=False):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            if nhid != ninp:
                raise ValueError("When using the tied flag, nhid must be equal to emsize")
            self.decoder.weight = self.encoder.weight
    def forward(self, input, hidden):
        output, hidden = self.rnn(self.encoder(input), hidden)
        return self.decoder(output), hidden
"""

T5_RELATIVE_BIAS = """
import torch
from torch import nn

class T5Attention(nn.Module):
    def __init__(self, d_model, n_heads, relative_attention_num_buckets=32, has_relative_attention_bias=False):
        super().__init__()
        self.o = nn.Linear(d_model, d_model, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(relative_attention_num_buckets, n_heads)
    def forward(self, hidden_states):
        return self.o(hidden_states)
"""


@pytest.mark.parametrize(
    "code",
    [NANOGPT, LIT_GPT, HF_LLAMA, HF_BERT_EMBEDDINGS, TIMM_VIT, X_TRANSFORMERS, WORD_LANGUAGE_MODEL, T5_RELATIVE_BIAS],
    ids=["nanogpt", "lit-gpt", "hf-llama", "hf-bert-embeddings", "timm-vit", "x-transformers", "word-language-model", "t5-relative-bias"],
)
def test_real_world_spellings_are_silent(code):
    assert _all_catalog_findings(code) == {code_: [] for code_ in CODES}


# ---------------------------------------------------------------------------------------------
# A first-draft GPT: every one of the four rules has something to say
# ---------------------------------------------------------------------------------------------

FIRST_DRAFT = """
import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_CONTEXT = 8192

class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)
    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))

class Block(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)
    def forward(self, x):
        return x + self.mlp(self.ln_1(x))

class GPT(nn.Module):
    def __init__(self, vocab_size=32000, n_embd=512, n_layer=8):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(MAX_CONTEXT, n_embd)
        self.blocks = nn.ModuleList([Block(n_embd) for _ in range(n_layer)])
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)
    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
    def forward(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(x)
"""


def test_first_draft_gpt_gets_all_four_findings():
    assert _all_catalog_findings(FIRST_DRAFT) == {
        "LLM202": ["39:16-39:31"],
        "LLM401": ["27:20-27:53"],
        "LLM501": ["29:24-29:65"],
        "LLM502": ["30:9-30:39"],
    }
    severities = {code: _findings(FIRST_DRAFT, code)[0].severity for code in CODES}
    assert severities == {
        "LLM202": Severity.WARNING,
        "LLM401": Severity.INFO,
        "LLM501": Severity.HINT,
        "LLM502": Severity.HINT,
    }


def test_first_draft_messages_show_the_known_numbers():
    (positions,) = _findings(FIRST_DRAFT, "LLM401")
    assert "`self.wpe` with MAX_CONTEXT = 8,192 rows" in positions.message
    (untied,) = _findings(FIRST_DRAFT, "LLM501")
    assert "vocab_size × n_embd matrix (16.4M parameters)" in untied.message
    (init,) = _findings(FIRST_DRAFT, "LLM502")
    assert "(`c_proj`)" in init.message and "std/sqrt(2·n_layer) = 0.0050" in init.message


def test_all_fixes_together_leave_a_file_none_of_the_rules_flags():
    source = _source(FIRST_DRAFT)
    fixes = [f.fix for code in ("LLM202", "LLM501", "LLM502") for f in _findings(FIRST_DRAFT, code)]
    assert all(fix is not None and fix.applicability == "unsafe" for fix in fixes)
    fixed = apply_fixes(source, fixes)
    assert not fixed.skipped
    report = analyze_source(fixed.text, "fixed.py")
    assert [f.code for f in report.findings if f.code in ("LLM202", "LLM501", "LLM502")] == []
    # The position table is an architecture choice with no quick fix: still reported.
    assert [f.code for f in report.findings if f.code == "LLM401"] == ["LLM401"]


# ---------------------------------------------------------------------------------------------
# LLM202 missing-final-norm
# ---------------------------------------------------------------------------------------------

FINAL_NORM_CONDITIONAL = """
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.ff = FeedForward(d)
    def forward(self, x):
        return x + self.ff(self.norm(x))

class Model(nn.Module):
    def __init__(self, d, depth, vocab, final_norm=True):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(d) if final_norm else None
        self.out = nn.Linear(d, vocab)
    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        if self.norm_out is not None:
            x = self.norm_out(x)
        return self.out(x)

class Pooled(nn.Module):
    def __init__(self, d, depth, classes):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(depth)])
        self.pooler = Pooler(d)
        self.classifier = nn.Linear(d, classes)
    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.pooler(x))

class L2Normalized(nn.Module):
    def __init__(self, d, depth, classes):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(depth)])
        self.head = nn.Linear(d, classes)
    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        x = x / x.norm(dim=-1, keepdim=True)
        return self.head(x)

class BlockWithOwnNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.pre = nn.LayerNorm(d)
        self.ff = FeedForward(d)
        self.post = nn.LayerNorm(d)
    def forward(self, x):
        x = x + self.ff(self.pre(x))
        return self.post(x)

class SelfNormalizing(nn.Module):
    def __init__(self, d, depth, vocab):
        super().__init__()
        self.blocks = nn.ModuleList([BlockWithOwnNorm(d) for _ in range(depth)])
        self.lm_head = nn.Linear(d, vocab)
    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.lm_head(x)
"""


def test_llm202_silent_when_something_may_normalize_before_the_head():
    assert _findings(FINAL_NORM_CONDITIONAL, "LLM202") == []


INDEXED_LOOP_AND_FACTORY_NORM = """
import torch.nn as nn
from functools import partial

class Block(nn.Module):
    def __init__(self, dim, norm_layer=partial(nn.LayerNorm, eps=1e-6)):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim)
    def forward(self, x):
        return x + self.attn(self.norm1(x))

class Encoder(nn.Module):
    def __init__(self, dim, depth, num_classes):
        super().__init__()
        self.layers = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.head = nn.Linear(dim, num_classes)
    def forward(self, x):
        for i in range(len(self.layers)):
            x = self.layers[i](x)
        return self.head(x.mean(dim=1))
"""


def test_llm202_indexed_loop_and_a_norm_factory_default():
    findings = _findings(INDEXED_LOOP_AND_FACTORY_NORM, "LLM202")
    assert _ranges(findings) == ["20:16-20:40"]
    fixed = apply_fixes(_source(INDEXED_LOOP_AND_FACTORY_NORM), [findings[0].fix]).text
    # The block's norm factory default, written where the model can build it.
    assert "        self.norm = partial(nn.LayerNorm, eps=1e-6)(dim)\n" in fixed
    assert "            x = self.layers[i](x)\n        # Final norm" in fixed
    assert "        x = self.norm(x)\n        return self.head(x.mean(dim=1))\n" in fixed
    assert _findings(fixed, "LLM202") == []


UNMAPPABLE_NORM = """
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        width = config.d_model
        self.norm = nn.LayerNorm(width)
        self.mlp = MLP(width)
    def forward(self, x):
        return x + self.mlp(self.norm(x))

class Model(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.lm_head = nn.Linear(config.d_model, config.vocab_size)
    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.lm_head(x)
"""


def test_llm202_reports_without_a_fix_when_the_norm_width_is_a_local_of_the_block():
    (finding,) = _findings(UNMAPPABLE_NORM, "LLM202")
    assert finding.fix is None


# ---------------------------------------------------------------------------------------------
# LLM401 learned-positions-long-context
# ---------------------------------------------------------------------------------------------

POSITION_SIZES = """
from dataclasses import dataclass
import torch
import torch.nn as nn

@dataclass
class ModelArgs:
    max_seq_len: int = 16384
    dim: int = 1024

class LearnedPositionalEmbedding(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.table = nn.Embedding(args.max_seq_len, args.dim)

class FromSelf(nn.Module):
    def __init__(self, dim, context=4096):
        super().__init__()
        self.context = context
        self.position_embedding = nn.Embedding(self.context, dim)

class JustBelow(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.pos_emb = nn.Embedding(4095, dim)
"""


def test_llm401_sizes_from_dataclass_self_attribute_and_class_name():
    findings = _findings(POSITION_SIZES, "LLM401")
    assert _ranges(findings) == ["13:22-13:62", "19:35-19:66"]
    assert "with args.max_seq_len = 16,384 rows" in findings[0].message
    assert all(f.fix is None and f.severity is Severity.INFO for f in findings)
    assert _ranges(_findings(POSITION_SIZES, "LLM401", **{"min-positions": 20000})) == []


CHANGED_CONFIG = """
from dataclasses import dataclass
import torch.nn as nn

@dataclass
class GPTConfig:
    block_size: int = 8192
    n_embd: int = 768

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wpe = nn.Embedding(config.block_size, config.n_embd)

config = GPTConfig()
config.block_size = 1024
"""


def test_llm401_silent_when_the_file_changes_the_config_value():
    assert _findings(CHANGED_CONFIG, "LLM401") == []


HF_STYLE_CONFIG_IN_FILE = """
from torch import nn
from transformers import PreTrainedConfig

class LongConfig(PreTrainedConfig):
    max_position_embeddings: int = 8192
    hidden_size: int = 768

class LongEmbeddings(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
"""


def test_llm401_does_not_read_defaults_of_inheriting_config_classes():
    # A Hugging Face config's default is only what a checkpoint's config.json may override.
    assert _findings(HF_STYLE_CONFIG_IN_FILE, "LLM401") == []


# ---------------------------------------------------------------------------------------------
# LLM501 untied-lm-head
# ---------------------------------------------------------------------------------------------

MINGPT_FROM_PRETRAINED = """
import torch.nn as nn

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    @classmethod
    def from_pretrained(cls, model_type):
        # copies GPT-2's `lm_head.weight` and `wte.weight` from the released checkpoint
        return cls(model_type)
"""


def test_llm501_silent_when_the_file_loads_pretrained_checkpoints():
    assert _findings(MINGPT_FROM_PRETRAINED, "LLM501") == []


def test_llm501_fires_on_the_same_model_without_checkpoint_loading():
    code = MINGPT_FROM_PRETRAINED.split("    @classmethod")[0]
    (finding,) = _findings(code, "LLM501")
    assert "`self.lm_head` learns a second config.vocab_size × config.n_embd matrix next to" in finding.message
    fixed = apply_fixes(_source(code), [finding.fix]).text
    assert fixed.rstrip().endswith("self.lm_head.weight = self.transformer.wte.weight")


CONDITIONAL_HEAD = """
import torch.nn as nn

class LM(nn.Module):
    def __init__(self, vocab_size, dim, separate_head):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, dim)
        if separate_head:
            self.lm_head = nn.Linear(dim, vocab_size)
"""


def test_llm501_reports_a_conditional_head_without_a_fix():
    (finding,) = _findings(CONDITIONAL_HEAD, "LLM501")
    assert finding.fix is None


# ---------------------------------------------------------------------------------------------
# LLM502 unscaled-residual-init
# ---------------------------------------------------------------------------------------------

def _gpt_with_init(init_body: str, extra: str = "") -> str:
    return (
        """
import math
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.c_proj = nn.Linear(d, d)
    def forward(self, x):
        return x + self.c_proj(self.ln(x))

class GPT(nn.Module):
    def __init__(self, vocab, d, n_layer):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList([Block(d) for _ in range(n_layer)])
        self.n_layer = n_layer
        self.apply(self._init_weights)
"""
        + extra
        + """
    def _init_weights(self, module):
"""
        + textwrap.indent(textwrap.dedent(init_body).strip("\n"), " " * 8)
        + """
    def forward(self, idx):
        return self.wte(idx)
"""
    )


@pytest.mark.parametrize(
    ("init_body", "extra"),
    [
        # Zero-initialised output projections (a muP / Fixup habit).
        (
            """
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
            """,
            "        nn.init.zeros_(self.h[0].c_proj.weight)\n",
        ),
        # A depth-scaled std written with a power.
        (
            """
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02 * (2 * self.n_layer) ** -0.5)
            """,
            "",
        ),
        # Xavier for Linears: not a fixed std.
        (
            """
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            """,
            "",
        ),
        # A std from the config: not a literal, so not GPT-2's 0.02 pattern.
        (
            """
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=self.init_std)
            """,
            "",
        ),
    ],
    ids=["zero-init-proj", "power-scaled", "xavier", "config-std"],
)
def test_llm502_silent_for_other_or_scaled_inits(init_body, extra):
    assert _findings(_gpt_with_init(init_body, extra), "LLM502") == []


def test_llm502_flags_the_plain_gpt_init_and_matches_the_file_quotes():
    code = _gpt_with_init(
        """
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            label = "linear"
        """
    )
    (finding,) = _findings(code, "LLM502")
    assert "std/sqrt(2·n_layer)" in finding.message and " = 0." not in finding.message  # depth unknown
    fixed = apply_fixes(_source(code), [finding.fix]).text
    assert '            if pn.endswith(".c_proj.weight"):\n' in fixed
    assert "                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))\n" in fixed
    assert _findings(fixed, "LLM502") == []


def test_rules_are_silent_without_torch():
    code = FIRST_DRAFT.replace("import torch.nn.functional as F\n", "").replace("import torch.nn as nn\n", "")
    code = code.replace("import torch\n", "")
    assert _all_catalog_findings(code) == {code_: [] for code_ in CODES}


LOOP_OVER_A_LAYER_COUNT = """
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.mlp = MLP(d)
    def forward(self, x):
        return x + self.mlp(self.ln(x))

class Model(nn.Module):
    def __init__(self, d, n_layer, vocab):
        super().__init__()
        self.n_layer = n_layer
        self.h = nn.ModuleList([Block(d) for _ in range(n_layer)])
        self.lm_head = nn.Linear(d, vocab)
    def forward(self, x):
        for step in range(2):
            for i in range(self.n_layer):
                x = self.h[i](x)
        return self.lm_head(x)
"""


def test_llm202_loop_that_indexes_the_stack():
    (finding,) = _findings(LOOP_OVER_A_LAYER_COUNT, "LLM202")
    # The stack runs inside another loop: the finding stands, but no fix guesses where it ends.
    assert finding.fix is None
    once = LOOP_OVER_A_LAYER_COUNT.replace("        for step in range(2):\n    ", "").replace(
        "                x = self.h[i](x)", "            x = self.h[i](x)"
    )
    (finding,) = _findings(once, "LLM202")
    fixed = apply_fixes(_source(once), [finding.fix]).text
    assert "            x = self.h[i](x)\n        # Final norm" in fixed
    assert "        x = self.ln_f(x)\n        return self.lm_head(x)\n" in fixed


PATCH_GRID = """
import torch
import torch.nn as nn

class PatchPositions(nn.Module):
    def __init__(self, dim, image_size=1024, patch_size=16):
        super().__init__()
        num_patches = (image_size // patch_size) ** 2
        self.pos_embed = nn.Embedding((image_size // patch_size) ** 2, dim)
    def forward(self, x):
        return x + self.pos_embed(torch.arange(x.shape[1], device=x.device))
"""


def test_llm401_silent_for_a_table_sized_by_an_image_grid():
    assert _findings(PATCH_GRID, "LLM401") == []
    # The same table sized by a sequence length is reported.
    sequence = PATCH_GRID.replace("(image_size // patch_size) ** 2, dim", "4 * 1024, dim")
    assert len(_findings(sequence, "LLM401")) == 1


HF_STYLE_WITHOUT_PRETRAINED_BASE = """
import torch.nn as nn

class Backbone(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
    def get_output_embeddings(self):
        return self.lm_head
"""


def test_llm501_silent_when_the_class_exposes_output_embeddings_for_tying():
    assert _findings(HF_STYLE_WITHOUT_PRETRAINED_BASE, "LLM501") == []
