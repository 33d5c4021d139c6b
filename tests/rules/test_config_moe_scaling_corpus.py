"""LLM105, LLM601, LLM602 and LLM801 on code shaped like the codebases people actually write.

Every snippet is written in our own words after the shape of a well-known codebase: Hugging Face
configs (old `__init__` defaults and new dataclass-style fields), nanoGPT's `model.py` and `train.py`,
lit-gpt's `Config`, x-transformers, timm, Mixtral / Qwen-MoE / Switch / DeepSeek-V3 MoE layers,
gpt-fast's inference MoE. Silent cases are the false positives that would make people switch a rule
off; flagged cases pin exact ranges.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.engine import analyze_source


def _source(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def _findings(code: str, rule_code: str):
    return find_rule(rule_code).run(Document(_source(code)))


def _ranges(code: str, rule_code: str) -> list[str]:
    return [
        f"{f.span.line}:{f.span.column + 1}-{f.span.end_line}:{f.span.end_column + 1}" for f in _findings(code, rule_code)
    ]


# ==== LLM105 head-dim-mismatch ========================================================================

HF_CONFIG_OLD_STYLE = """
    from transformers import PretrainedConfig


    class WidgetConfig(PretrainedConfig):
        model_type = "widget"

        def __init__(
            self,
            vocab_size=32000,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=None,
            head_dim=None,
            **kwargs,
        ):
            self.hidden_size = hidden_size
            self.num_attention_heads = num_attention_heads
            if num_key_value_heads is None:
                num_key_value_heads = num_attention_heads
            self.num_key_value_heads = num_key_value_heads
            self.head_dim = head_dim if head_dim is not None else hidden_size // num_attention_heads
            super().__init__(**kwargs)
"""

HF_CONFIG_BROKEN_GQA = """
    from transformers import PretrainedConfig


    class GadgetConfig(PretrainedConfig):
        def __init__(self, hidden_size=2048, num_attention_heads=16, num_key_value_heads=6, **kwargs):
            self.hidden_size = hidden_size
            self.num_attention_heads = num_attention_heads
            self.num_key_value_heads = num_key_value_heads
            super().__init__(**kwargs)
"""

# New-style HF config: annotated fields. An explicit head_dim decouples the head size from the width.
HF_CONFIG_FIELDS_WITH_HEAD_DIM = """
    from transformers import PreTrainedConfig


    class SprocketConfig(PreTrainedConfig):
        model_type = "sprocket"
        vocab_size: int = 256000
        hidden_size: int = 2560
        num_attention_heads: int = 12
        num_key_value_heads: int = 4
        head_dim: int = 256
"""

# The modeling file reads the head size from the config: a checkpoint's config.json may set it.
HF_MODELING_READS_HEAD_DIM = """
    from torch import nn
    from transformers import PreTrainedConfig


    class CogConfig(PreTrainedConfig):
        hidden_size: int = 4096
        num_attention_heads: int = 96
        num_key_value_heads: int = 8


    class CogAttention(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.head_dim = getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
            self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim)
"""

# A subclass of a config the file does not show: the parent may set a head size.
HF_CONFIG_INHERITED = """
    from transformers.models.llama import LlamaConfig


    class VariantConfig(LlamaConfig):
        hidden_size: int = 3000
        num_attention_heads: int = 32
"""

NANOGPT_MODEL = """
    from dataclasses import dataclass

    import torch.nn as nn


    @dataclass
    class GPTConfig:
        block_size: int = 1024
        vocab_size: int = 50304
        n_layer: int = 12
        n_head: int = 12
        n_embd: int = 768
        dropout: float = 0.0
        bias: bool = True


    class CausalSelfAttention(nn.Module):
        def __init__(self, config):
            super().__init__()
            assert config.n_embd % config.n_head == 0
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.n_head = config.n_head
"""

# lit-gpt: the KV group count and the head size are filled in after construction when left None.
LIT_GPT_CONFIG = """
    from dataclasses import dataclass
    from typing import Optional


    @dataclass
    class Config:
        name: str = ""
        block_size: int = 4096
        vocab_size: int = 50254
        n_layer: int = 16
        n_head: int = 32
        n_embd: int = 4096
        n_query_groups: Optional[int] = None
        head_size: Optional[int] = None

        def __post_init__(self):
            if self.head_size is None:
                self.head_size = self.n_embd // self.n_head
            if self.n_query_groups is None:
                self.n_query_groups = self.n_head
"""

LIT_GPT_CONFIG_BAD_GROUPS = LIT_GPT_CONFIG.replace("n_query_groups: Optional[int] = None", "n_query_groups: Optional[int] = 5")

# x-transformers sizes each head by dim_head (64 by default): dim / heads need not be whole.
X_TRANSFORMERS = """
    import torch
    from x_transformers import Decoder, TransformerWrapper

    model = TransformerWrapper(num_tokens=20000, max_seq_len=1024, attn_layers=Decoder(dim=500, depth=6, heads=8))
"""

# timm-style model registrations pass a per-head width to models that multiply it by the head count.
TIMM_REGISTRATION = """
    import torch


    def convit_small(pretrained=False, **kwargs):
        model_args = dict(local_up_to_layer=10, locality_strength=1.0, embed_dim=48, num_heads=9)
        return _create_convit("convit_small", pretrained=pretrained, **dict(model_args, **kwargs))
"""

TORCH_ENCODER_LAYER = """
    import torch.nn as nn

    D_MODEL = 512
    N_HEAD = 8
    layer = nn.TransformerEncoderLayer(D_MODEL, N_HEAD, dim_feedforward=2048, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=6)
"""

LOCAL_ATTENTION_CALLED_WITH_BAD_WIDTH = """
    import torch.nn as nn


    class SelfAttention(nn.Module):
        def __init__(self, d_model, n_heads=8):
            super().__init__()
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.n_heads = n_heads


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = SelfAttention(300)
"""

SILENT_105 = {
    "hf-config-old-style": HF_CONFIG_OLD_STYLE,
    "hf-config-fields-with-head-dim": HF_CONFIG_FIELDS_WITH_HEAD_DIM,
    "hf-modeling-reads-head-dim": HF_MODELING_READS_HEAD_DIM,
    "hf-config-inherited": HF_CONFIG_INHERITED,
    "nanogpt-model": NANOGPT_MODEL,
    "lit-gpt-config": LIT_GPT_CONFIG,
    "x-transformers": X_TRANSFORMERS,
    "timm-registration": TIMM_REGISTRATION,
    "torch-encoder-layer": TORCH_ENCODER_LAYER,
}


@pytest.mark.parametrize("code", SILENT_105.values(), ids=SILENT_105.keys())
def test_llm105_consistent_or_unknowable_head_counts_are_silent(code):
    assert _ranges(code, "LLM105") == []


FLAGGED_105 = {
    "hf-config-broken-gqa": (HF_CONFIG_BROKEN_GQA, ["5:66-5:87"]),
    "nanogpt-model-ten-heads": (NANOGPT_MODEL.replace("n_head: int = 12", "n_head: int = 10"), ["11:5-11:21"]),
    "lit-gpt-config-five-groups": (LIT_GPT_CONFIG_BAD_GROUPS, ["13:5-13:38"]),
    "local-attention-bad-width": (LOCAL_ATTENTION_CALLED_WITH_BAD_WIDTH, ["14:35-14:38"]),
}


@pytest.mark.parametrize(("code", "ranges"), FLAGGED_105.values(), ids=FLAGGED_105.keys())
def test_llm105_flags_the_head_count_that_does_not_divide(code, ranges):
    assert _ranges(code, "LLM105") == ranges


def test_llm105_message_names_both_values_and_points_at_the_other():
    (finding,) = _findings(FLAGGED_105["local-attention-bad-width"][0], "LLM105")
    assert "`d_model` = 300" in finding.message and "`n_heads` = 8" in finding.message
    assert "heads that divide 300: 5, 6, 10" in finding.message  # the divisors nearest to 8
    assert [(related.span.line, related.message) for related in finding.related] == [(5, "`n_heads` = 8 set here")]
    (gqa,) = _findings(HF_CONFIG_BROKEN_GQA, "LLM105")
    assert "16 % 6 = 4" in gqa.message and "Ainslie et al., 2023" in gqa.message


def test_llm105_is_an_error_without_a_fix():
    report = analyze_source(_source(FLAGGED_105["nanogpt-model-ten-heads"][0]), "model.py")
    (finding,) = [finding for finding in report.findings if finding.code == "LLM105"]
    assert finding.severity.value == "error" and finding.fix is None


# ==== LLM601 moe-missing-load-balancing / LLM602 router-low-precision ===============================

# Mixtral in Hugging Face: a float32 softmax, top-k, renormalised weights cast back; the block returns
# the router logits and the model sums the auxiliary loss from every layer's logits.
MIXTRAL_BLOCK = """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class MixtralSparseMoeBlock(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.top_k = config.num_experts_per_tok
            self.gate = nn.Linear(config.hidden_size, config.num_local_experts, bias=False)
            self.experts = nn.ModuleList([MixtralExpert(config) for _ in range(config.num_local_experts)])

        def forward(self, hidden_states):
            batch, length, hidden = hidden_states.shape
            hidden_states = hidden_states.view(-1, hidden)
            router_logits = self.gate(hidden_states)
            routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
            routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
            routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
            routing_weights = routing_weights.to(hidden_states.dtype)
            final = torch.zeros_like(hidden_states)
            for index, expert in enumerate(self.experts):
                token, slot = torch.where(selected_experts == index)
                final.index_add_(0, token, expert(hidden_states[token]) * routing_weights[token, slot, None])
            return final.view(batch, length, hidden), router_logits
"""

# Newer Hugging Face layout: a router module that returns its logits; the block drops them and the
# model records them with a hook. The loss helper lives in the same file.
HF_ROUTER_MODULE = """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class QwenMoeTopKRouter(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.top_k = config.num_experts_per_tok
            self.weight = nn.Parameter(torch.zeros(config.num_experts, config.hidden_size))

        def forward(self, hidden_states):
            router_logits = F.linear(hidden_states, self.weight)
            router_probs = F.softmax(router_logits, dtype=torch.float, dim=-1)
            top_value, top_index = torch.topk(router_probs, self.top_k, dim=-1)
            top_value = top_value / top_value.sum(dim=-1, keepdim=True)
            return router_logits, top_value.to(router_logits.dtype), top_index


    class QwenMoeSparseBlock(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.gate = QwenMoeTopKRouter(config)
            self.experts = QwenMoeExperts(config)
            self.shared_expert = QwenMoeMLP(config)

        def forward(self, hidden_states):
            _, weights, index = self.gate(hidden_states)
            return self.experts(hidden_states, index, weights) + self.shared_expert(hidden_states)
"""

# Switch Transformer: the router runs in float32 and the layer keeps both auxiliary losses.
SWITCH_ROUTER = """
    import torch
    from torch import nn


    class SwitchRouter(nn.Module):
        def __init__(self, d_model, num_experts, jitter=0.01):
            super().__init__()
            self.classifier = nn.Linear(d_model, num_experts, bias=False, dtype=torch.float32)
            self.jitter = jitter

        def forward(self, hidden_states):
            hidden_states = hidden_states.to(torch.float32)
            if self.training and self.jitter > 0:
                hidden_states = hidden_states * torch.empty_like(hidden_states).uniform_(1 - self.jitter, 1 + self.jitter)
            router_logits = self.classifier(hidden_states)
            router_probs = nn.functional.softmax(router_logits, dim=-1, dtype=torch.float32)
            expert_index = torch.argmax(router_probs, dim=-1)
            return expert_index, router_probs.max(dim=-1).values, router_logits


    def router_z_loss(router_logits):
        return torch.logsumexp(router_logits, dim=-1).pow(2).mean()


    class SwitchSparseMLP(nn.Module):
        def __init__(self, d_model, num_experts):
            super().__init__()
            self.router = SwitchRouter(d_model, num_experts)
            self.experts = nn.ModuleDict({f"expert_{i}": nn.Linear(d_model, d_model) for i in range(num_experts)})
"""

# DeepSeek-V3: sigmoid scores, group-limited top-k, and a bias (not a loss) that balances the experts.
DEEPSEEK_V3_GATE = """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class MoEGate(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.top_k = config.num_experts_per_tok
            self.n_routed_experts = config.n_routed_experts
            self.weight = nn.Parameter(torch.empty(self.n_routed_experts, config.hidden_size))
            self.register_buffer("e_score_correction_bias", torch.zeros(self.n_routed_experts))

        def forward(self, hidden_states):
            logits = F.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32))
            scores = logits.sigmoid()
            scores_for_choice = scores + self.e_score_correction_bias.unsqueeze(0)
            topk_idx = torch.topk(scores_for_choice, k=self.top_k, dim=-1, sorted=False)[1]
            topk_weight = scores.gather(1, topk_idx)
            return topk_idx, topk_weight / topk_weight.sum(dim=-1, keepdim=True)


    class DeepseekMoE(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.experts = nn.ModuleList([DeepseekMLP(config) for _ in range(config.n_routed_experts)])
            self.gate = MoEGate(config)
"""

# Shazeer et al.'s noisy top-k gating with the importance/load losses (cv²) beside it.
NOISY_TOP_K = """
    import torch
    from torch import nn


    class NoisyTopKMoE(nn.Module):
        def __init__(self, dim, num_experts, k):
            super().__init__()
            self.w_gate = nn.Parameter(torch.zeros(dim, num_experts))
            self.w_noise = nn.Parameter(torch.zeros(dim, num_experts))
            self.experts = nn.ModuleList([nn.Linear(dim, dim) for _ in range(num_experts)])
            self.softmax = nn.Softmax(dim=1)
            self.k = k

        def cv_squared(self, x):
            return x.float().var() / (x.float().mean() ** 2 + 1e-10)

        def forward(self, x):
            clean_logits = x @ self.w_gate
            noisy_logits = clean_logits + torch.randn_like(clean_logits) * nn.functional.softplus(x @ self.w_noise)
            top_logits, top_indices = noisy_logits.topk(self.k + 1, dim=1)
            gates = self.softmax(top_logits[:, : self.k])
            importance = gates.sum(0)
            self.loss = self.cv_squared(importance)
            return gates, top_indices[:, : self.k]
"""

EXPERT_CHOICE = """
    import torch
    from torch import nn


    class ExpertChoiceLayer(nn.Module):
        def __init__(self, dim, num_experts, capacity):
            super().__init__()
            self.router = nn.Linear(dim, num_experts, bias=False)
            self.experts = nn.ModuleList([nn.Linear(dim, dim) for _ in range(num_experts)])
            self.capacity = capacity

        def forward(self, tokens):
            affinity = self.router(tokens).float().softmax(dim=-1)  # (T, E)
            gating, chosen = torch.topk(affinity.transpose(0, 1), self.capacity, dim=-1)  # (E, C)
            out = torch.zeros_like(tokens)
            for e, expert in enumerate(self.experts):
                out.index_add_(0, chosen[e], expert(tokens[chosen[e]]) * gating[e, :, None].to(tokens.dtype))
            return out
"""

TOP_K_SAMPLING = """
    import torch
    import torch.nn.functional as F


    @torch.no_grad()
    def generate(model, idx, steps, temperature=1.0, top_k=None):
        for _ in range(steps):
            logits = model(idx)[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
        return idx
"""

SILENT_MOE = {
    "mixtral-block": MIXTRAL_BLOCK,
    "hf-router-module": HF_ROUTER_MODULE,
    "switch-router": SWITCH_ROUTER,
    "deepseek-v3-gate": DEEPSEEK_V3_GATE,
    "noisy-top-k": NOISY_TOP_K,
    "expert-choice": EXPERT_CHOICE,
    "top-k-sampling": TOP_K_SAMPLING,
}


@pytest.mark.parametrize("rule_code", ["LLM601", "LLM602"])
@pytest.mark.parametrize("code", SILENT_MOE.values(), ids=SILENT_MOE.keys())
def test_moe_layers_that_balance_and_upcast_are_silent(code, rule_code):
    assert _ranges(code, rule_code) == []


# gpt-fast's inference MoE: a bf16 softmax over the gate, top-k, no balancing. Right for serving a
# trained checkpoint, wrong for training one; both rules report it.
GPT_FAST_MOE = """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class MOEFeedForward(nn.Module):
        def __init__(self, dim, num_experts, num_activated):
            super().__init__()
            self.gate = nn.Linear(dim, num_experts, bias=False)
            self.cond_ffn = ConditionalFeedForward(dim, num_experts)
            self.num_activated_experts = num_activated

        def forward(self, x):
            x = x.view(-1, x.size(-1))
            scores = self.gate(x)  # [T, E]
            expert_weights = F.softmax(scores, dim=-1)
            expert_weights, expert_indices = torch.topk(expert_weights, self.num_activated_experts, dim=-1)
            expert_weights /= expert_weights.sum(dim=-1, keepdim=True)
            expert_outs = self.cond_ffn(x, expert_indices)
            return torch.einsum("tai,ta -> ti", expert_outs, expert_weights)
"""

# A from-scratch MoE in a training repo: Mistral-reference routing, nothing that balances.
HOMEGROWN_MOE = """
    import torch
    import torch.nn.functional as F
    from torch import nn


    class MoeLayer(nn.Module):
        def __init__(self, dim, n_experts=8, k=2):
            super().__init__()
            self.experts = nn.ModuleList([nn.Linear(dim, dim) for _ in range(n_experts)])
            self.gate = nn.Linear(dim, n_experts, bias=False)
            self.k = k

        def forward(self, inputs):
            gate_logits = self.gate(inputs)
            weights, selected = torch.topk(gate_logits, self.k)
            weights = F.softmax(weights, dim=1, dtype=torch.float).to(inputs.dtype)
            results = torch.zeros_like(inputs)
            for i, expert in enumerate(self.experts):
                batch_idx, nth = torch.where(selected == i)
                results[batch_idx] += weights[batch_idx, nth, None] * expert(inputs[batch_idx])
            return results
"""


def test_gpt_fast_style_moe_is_flagged_by_both_rules():
    assert _ranges(GPT_FAST_MOE, "LLM601") == ["17:42-17:104"]
    assert _ranges(GPT_FAST_MOE, "LLM602") == ["16:26-16:51"]
    (finding,) = _findings(GPT_FAST_MOE, "LLM602")
    assert [related.span.line for related in finding.related] == [15, 17]  # the gate, the top-k
    (balancing,) = _findings(GPT_FAST_MOE, "LLM601")
    assert [related.message for related in balancing.related] == ["router logits computed here"]


def test_homegrown_moe_without_balancing_is_flagged_once_at_the_top_k():
    (finding,) = _findings(HOMEGROWN_MOE, "LLM601")
    assert (finding.span.line, finding.span.column) == (15, 28)
    assert "`gate_logits`" in finding.message
    assert [related.message for related in finding.related] == ["router logits computed here", "experts defined here"]
    assert _ranges(HOMEGROWN_MOE, "LLM602") == []  # its softmax already asks for float32


def test_adding_a_balancing_loss_silences_llm601():
    balanced = HOMEGROWN_MOE.replace(
        "            return results\n",
        "            probs = gate_logits.float().softmax(-1)\n"
        "            load = F.one_hot(selected[:, 0], len(self.experts)).float().mean(0)\n"
        "            self.aux_loss = len(self.experts) * (load * probs.mean(0)).sum()\n"
        "            return results\n",
    )
    assert _ranges(balanced, "LLM601") == []


# ==== LLM801 compute-suboptimal-token-budget ==========================================================

# nanoGPT's train.py: defaults, then the configurator rewrites them, then DDP divides the batch.
NANOGPT_TRAIN = """
    import os
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.distributed import init_process_group
    from model import GPTConfig, GPT

    out_dir = "out"
    init_from = "scratch"
    gradient_accumulation_steps = 5 * 8
    batch_size = 12
    block_size = 1024
    n_layer = 12
    n_head = 12
    n_embd = 768
    learning_rate = 6e-4
    max_iters = 600000
    config_keys = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, bool, str))]
    exec(open("configurator.py").read())
    config = {k: globals()[k] for k in config_keys}

    ddp = int(os.environ.get("RANK", -1)) != -1
    if ddp:
        init_process_group(backend="nccl")
        ddp_world_size = int(os.environ["WORLD_SIZE"])
        gradient_accumulation_steps //= ddp_world_size
    model = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
"""

# The same script without the configurator, but data-parallel: the global batch is unknown.
DDP_TRAIN = """
    import os
    import torch
    import torch.distributed as dist
    from model import GPT

    n_layer, n_embd = 24, 1024
    batch_size, block_size = 4, 1024
    max_iters = 2000
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    dist.init_process_group("nccl")
    model = GPT(n_layer=n_layer, n_embd=n_embd)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
"""

# Karpathy's lecture script: the vocabulary comes from the data; 7.7 tokens per parameter.
LECTURE_GPT = """
    import torch
    import torch.nn as nn

    batch_size = 64
    block_size = 256
    max_iters = 5000
    learning_rate = 3e-4
    n_embd = 384
    n_head = 6
    n_layer = 6
    with open("input.txt") as f:
        text = f.read()
    chars = sorted(set(text))
    vocab_size = len(chars)

    model = BigramLanguageModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    for iteration in range(max_iters):
        xb, yb = get_batch("train")
        logits, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
"""

# lit-gpt's pretraining script: global and micro batches, and iterations that count micro-batches.
LIT_GPT_PRETRAIN = """
    import torch
    from lit_gpt import GPT, Config

    n_layer, n_embd = 32, 4096
    batch_size = 125
    micro_batch_size = 5
    gradient_accumulation_iters = batch_size // micro_batch_size
    max_iters = 6000
    block_size = 2048
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4)
"""

# Fine-tuning from a Hugging Face checkpoint.
HF_FINETUNE = """
    import torch
    from transformers import AutoModelForCausalLM

    n_layer, n_embd = 12, 768
    batch_size, block_size = 8, 512
    max_steps = 500
    model = AutoModelForCausalLM.from_pretrained("gpt2")
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
"""

# A model config without a training budget, and a training config without a model: nothing to compare.
CONFIGS_APART = """
    from dataclasses import dataclass

    import torch


    @dataclass
    class ModelArgs:
        dim: int = 4096
        n_layers: int = 32
        n_heads: int = 32
        vocab_size: int = 32000


    @dataclass
    class TrainArgs:
        max_steps: int = 1000
        batch_size: int = 8
        seq_len: int = 4096
        lr: float = 3e-4


    optimizer = torch.optim.AdamW(Transformer(ModelArgs()).parameters(), lr=TrainArgs.lr)
"""

# A mixture of experts: total and active parameters differ, so tokens per parameter is ambiguous.
MOE_TRAIN_CONFIG = """
    from dataclasses import dataclass


    import torch


    @dataclass
    class MoeTrainConfig:
        n_layer: int = 16
        n_embd: int = 2048
        num_experts: int = 64
        max_iters: int = 2000
        batch_size: int = 32
        block_size: int = 2048


    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
"""

SILENT_801 = {
    "nanogpt-train": NANOGPT_TRAIN,
    "ddp-train": DDP_TRAIN,
    "lecture-gpt": LECTURE_GPT,
    "lit-gpt-pretrain": LIT_GPT_PRETRAIN,
    "hf-finetune": HF_FINETUNE,
    "configs-apart": CONFIGS_APART,
    "moe-train-config": MOE_TRAIN_CONFIG,
}


@pytest.mark.parametrize("code", SILENT_801.values(), ids=SILENT_801.keys())
def test_llm801_ambiguous_or_adequate_budgets_are_silent(code):
    assert _ranges(code, "LLM801") == []


# nanoGPT-style globals with no configurator and one process: 124M parameters, 41M tokens.
SHORT_GPT2_RUN = """
    import torch
    from model import GPT, GPTConfig

    n_layer = 12
    n_head = 12
    n_embd = 768
    vocab_size = 50304
    batch_size = 8
    block_size = 1024
    gradient_accumulation_steps = 1
    max_iters = 5000

    model = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
"""

# A single config dataclass that holds model and budget, the way small research repos do.
RESEARCH_CONFIG = """
    import torch
    from dataclasses import dataclass


    @dataclass
    class ExperimentConfig:
        d_model: int = 1024
        n_layers: int = 24
        vocab_size: int = 32000
        batch_size: int = 16
        context_length: int = 1024
        max_steps: int = 4000
        lr: float = 3e-4


    def main(config=ExperimentConfig()):
        model = Transformer(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        for step in range(config.max_steps):
            loss = model(*next_batch(config))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
"""

# The same config alone in a config.py: the batch may be per device for a launcher we cannot see.
RESEARCH_CONFIG_ALONE = RESEARCH_CONFIG[: RESEARCH_CONFIG.index("    def main")]


def test_llm801_flags_a_short_gpt2_run_with_the_numbers():
    (finding,) = _findings(SHORT_GPT2_RUN, "LLM801")
    assert (finding.span.line, finding.span.column) == (11, 0)
    message = finding.message
    assert "N ≈ 124M parameters (12·n_layer·n_embd² + vocab_size·n_embd)" in message
    assert "D ≈ 41M tokens (max_iters × batch_size × block_size × gradient_accumulation_steps)" in message
    assert "0.33 tokens per parameter" in message
    assert "C ≈ 6·N·D ≈ 3.0e16 FLOPs" in message and "~15.9M-parameter model" in message
    assert "raise `max_iters` to ~302k" in message
    assert finding.severity.value == "info" and finding.fix is None
    assert [related.span.line for related in finding.related] == [4, 6, 8, 9]


def test_llm801_flags_a_research_config_dataclass():
    assert _ranges(RESEARCH_CONFIG, "LLM801") == ["12:5-12:26"]


def test_llm801_is_silent_on_a_config_file_that_does_not_train():
    assert _ranges(RESEARCH_CONFIG_ALONE, "LLM801") == []


def test_llm801_stays_silent_once_the_run_is_long_enough():
    assert _ranges(SHORT_GPT2_RUN.replace("max_iters = 5000", "max_iters = 100000"), "LLM801") == []


# ==== the shared fact: document.config_values =========================================================

CONFIG_AND_USES = """
    import torch.nn as nn
    from dataclasses import dataclass, field

    BASE = 64
    n_embd = BASE * 12


    @dataclass
    class GPTConfig:
        n_embd: int = n_embd
        n_head: int = 10
        vocab_size: int = field(default=50304)


    class Block(nn.Module):
        def __init__(self, config: GPTConfig, n_kv_head=None):
            super().__init__()
            if n_kv_head is None:
                n_kv_head = config.n_head
            self.attn = nn.MultiheadAttention(config.n_embd, config.n_head)
"""


def test_config_values_follow_constants_fields_defaults_and_config_attributes():
    document = Document(_source(CONFIG_AND_USES))
    values = document.config_values
    assert values.module.get("n_embd").value == 768
    (config,) = [scope for scope in values.classes.values() if scope.label == "GPTConfig"]
    assert {name: known.value for name, known in config.values.items()} == {"n_embd": 768, "n_head": 10, "vocab_size": 50304}
    (initializer,) = [function for function in document.index.functions if function.name == "__init__"]
    assert values.parameters(initializer).get("n_kv_head") is None  # rebound when None: unknown
    (attention,) = [call for call in document.index.calls if getattr(call.func, "attr", None) == "MultiheadAttention"]
    passed = values.call(attention)
    assert (passed.get("embed_dim").value, passed.get("embed_dim").origin) == (768, "config")
    assert (passed.get("num_heads").value, passed.get("num_heads").origin) == (10, "config")


def test_llm105_reports_a_bad_config_once_at_the_field_not_at_every_use():
    assert _ranges(CONFIG_AND_USES, "LLM105") == ["11:5-11:21"]
