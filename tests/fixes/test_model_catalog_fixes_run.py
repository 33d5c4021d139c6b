"""The LLM202, LLM501 and LLM502 fixes, applied by `--fix --unsafe-fixes`, run with torch and do what they say.

Two small models (a nanoGPT-style GPT and a Llama-style decoder) are written to a folder, fixed by
the CLI one rule at a time and all together, and then built and run with torch in a subprocess:
the checker itself never imports user code.

- final norm (LLM202): forward and backward run, and the head's input is normalized per token;
- tying (LLM501): the head and the embedding hold the same Parameter, and the parameter count drops by V·d;
- scaled init (LLM502): residual output projections have std 0.02/sqrt(2·n_layer), other Linears 0.02.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

GPT_MODEL = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class MLP(nn.Module):
        def __init__(self, n_embd):
            super().__init__()
            self.c_fc = nn.Linear(n_embd, 4 * n_embd)
            self.c_proj = nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x)))


    class SelfAttention(nn.Module):
        def __init__(self, n_embd, n_head):
            super().__init__()
            self.n_head = n_head
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


    class Block(nn.Module):
        def __init__(self, n_embd, n_head):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = SelfAttention(n_embd, n_head)
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = MLP(n_embd)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            x = x + self.mlp(self.ln_2(x))
            return x


    class GPT(nn.Module):
        def __init__(self, vocab_size=96, n_embd=256, n_head=4, n_layer=4):
            super().__init__()
            self.wte = nn.Embedding(vocab_size, n_embd)
            self.blocks = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
            self.apply(self._init_weights)

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx):
            x = self.wte(idx)  # (B, T, C)
            for block in self.blocks:
                x = block(x)
            return self.lm_head(x)  # (B, T, vocab_size)
    """
).lstrip()

LLAMA_MODEL = textwrap.dedent(
    """
    from dataclasses import dataclass

    import torch
    from torch import nn
    import torch.nn.functional as F


    @dataclass
    class Config:
        vocab_size: int = 80
        hidden_size: int = 256
        num_hidden_layers: int = 6
        rms_norm_eps: float = 1e-6


    def init_weights(module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=0.02)
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=1.0)


    class Attention(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
            self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

        def forward(self, hidden_states):
            q, k, v = self.qkv_proj(hidden_states).unsqueeze(1).chunk(3, dim=-1)
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True).squeeze(1)
            return self.o_proj(attended)


    class MLP(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.gate_proj = nn.Linear(config.hidden_size, 4 * config.hidden_size, bias=False)
            self.up_proj = nn.Linear(config.hidden_size, 4 * config.hidden_size, bias=False)
            self.down_proj = nn.Linear(4 * config.hidden_size, config.hidden_size, bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


    class DecoderLayer(nn.Module):
        def __init__(self, config, layer_idx):
            super().__init__()
            self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
            self.self_attn = Attention(config)
            self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
            self.mlp = MLP(config)

        def forward(self, hidden_states):
            residual = hidden_states
            hidden_states = self.input_layernorm(hidden_states)
            hidden_states = self.self_attn(hidden_states)
            hidden_states = residual + hidden_states
            residual = hidden_states
            hidden_states = self.post_attention_layernorm(hidden_states)
            hidden_states = self.mlp(hidden_states)
            return residual + hidden_states


    class TinyLlama(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
            self.layers = nn.ModuleList([DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
            self.apply(init_weights)

        def forward(self, input_ids):
            hidden_states = self.embed_tokens(input_ids)
            for layer in self.layers:
                hidden_states = layer(hidden_states)
            return self.lm_head(hidden_states)
    """
).lstrip()

PROBE = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, ".")
    import gpt_model, llama_model

    def head_input_stats(model, tokens):
        seen = {}
        def keep_input(module, args, output):
            seen["x"] = args[0].detach()  # returns None: the output is left alone
        model.lm_head.register_forward_hook(keep_input)
        logits = model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tokens.reshape(-1))
        loss.backward()
        x = seen["x"]
        return {
            "loss_is_finite": bool(torch.isfinite(loss)),
            "grads_are_finite": all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None),
            "max_abs_token_mean": x.mean(dim=-1).abs().max().item(),
            "max_token_variance_error": (x.var(dim=-1, unbiased=False) - 1).abs().max().item(),
            "max_token_rms_error": (x.pow(2).mean(dim=-1).sqrt() - 1).abs().max().item(),
        }

    def stds(model, suffixes):
        found = {}
        for name, parameter in model.named_parameters():
            if name.endswith(".weight") and parameter.dim() == 2 and "." in name:
                kind = name.rsplit(".", 2)[-2]
                found.setdefault(kind, []).append(parameter.detach().flatten())
        return {kind: torch.cat(values).std().item() for kind, values in found.items() if kind in suffixes}

    torch.manual_seed(0)
    gpt = gpt_model.GPT()
    llama = llama_model.TinyLlama(llama_model.Config())
    gpt_tokens = torch.randint(0, 96, (2, 16))
    llama_tokens = torch.randint(0, 80, (2, 16))
    print(json.dumps({
        "gpt": {
            "run": head_input_stats(gpt, gpt_tokens),
            "parameters": sum(p.numel() for p in gpt.parameters()),
            "tied": gpt.lm_head.weight is gpt.wte.weight,
            "same_storage": gpt.lm_head.weight.data_ptr() == gpt.wte.weight.data_ptr(),
            "stds": stds(gpt, {"c_proj", "c_fc", "c_attn"}),
        },
        "llama": {
            "run": head_input_stats(llama, llama_tokens),
            "parameters": sum(p.numel() for p in llama.parameters()),
            "tied": llama.lm_head.weight is llama.embed_tokens.weight,
            "stds": stds(llama, {"o_proj", "down_proj", "qkv_proj", "gate_proj", "up_proj"}),
        },
    }))
    """
)


def _write_models(folder: Path) -> None:
    folder.mkdir()
    (folder / "gpt_model.py").write_text(GPT_MODEL, encoding="utf-8")
    (folder / "llama_model.py").write_text(LLAMA_MODEL, encoding="utf-8")


def _fix(folder: Path, select: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "llmarch_lsp", "--check", ".", "--fix", "--unsafe-fixes", "--select", select, "--no-cache"],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _probe(folder: Path) -> dict:
    completed = subprocess.run([sys.executable, "-c", PROBE], cwd=folder, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("catalog")
    results = {}
    for name, select in (
        ("original", None),
        ("final_norm", "LLM202"),
        ("tied", "LLM501"),
        ("scaled_init", "LLM502"),
        ("all", "LLM202,LLM501,LLM502"),
    ):
        folder = root / name
        _write_models(folder)
        if select is not None:
            output = _fix(folder, select)
            fixed = re.search(r"Fixed (\d+) problems", output)
            assert fixed is not None and int(fixed.group(1)) == 2 * len(select.split(",")), output
        results[name] = _probe(folder)
        results[name]["sources"] = {path.name: path.read_text() for path in folder.glob("*_model.py")}
    return results


def test_original_models_run_without_a_normalized_head_input(runs):
    for model in ("gpt", "llama"):
        run = runs["original"][model]["run"]
        assert run["loss_is_finite"] and run["grads_are_finite"]
        assert run["max_token_rms_error"] > 0.1  # the residual stream reaches the head as it is


def test_final_norm_fix_normalizes_the_head_input_and_trains(runs):
    gpt, llama = runs["final_norm"]["gpt"], runs["final_norm"]["llama"]
    assert "self.ln_f = nn.LayerNorm(n_embd)" in runs["final_norm"]["sources"]["gpt_model.py"]
    assert "self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)" in runs["final_norm"]["sources"]["llama_model.py"]
    for run in (gpt["run"], llama["run"]):
        assert run["loss_is_finite"] and run["grads_are_finite"]
    # LayerNorm at init (gain 1, bias 0): every token has mean 0 and variance 1 before the head.
    assert gpt["run"]["max_abs_token_mean"] < 1e-5
    assert gpt["run"]["max_token_variance_error"] < 1e-3
    # RMSNorm: unit root-mean-square per token.
    assert llama["run"]["max_token_rms_error"] < 1e-3
    # One norm of width d added: LayerNorm has a gain and a bias, RMSNorm a gain.
    assert gpt["parameters"] - runs["original"]["gpt"]["parameters"] == 2 * 256
    assert llama["parameters"] - runs["original"]["llama"]["parameters"] == 256


def test_tie_fix_shares_the_parameter_and_drops_vocab_times_width(runs):
    gpt, llama = runs["tied"]["gpt"], runs["tied"]["llama"]
    assert gpt["tied"] and gpt["same_storage"] and llama["tied"]
    assert runs["original"]["gpt"]["parameters"] - gpt["parameters"] == 96 * 256
    assert runs["original"]["llama"]["parameters"] - llama["parameters"] == 80 * 256
    assert gpt["run"]["loss_is_finite"] and gpt["run"]["grads_are_finite"]


def test_scaled_init_fix_sets_residual_projection_std_by_depth(runs):
    gpt, llama = runs["scaled_init"]["gpt"]["stds"], runs["scaled_init"]["llama"]["stds"]
    # nanoGPT-style: both c_proj (attention and MLP) at 0.02/sqrt(2·4), the rest at 0.02.
    assert gpt["c_proj"] == pytest.approx(0.02 / (2 * 4) ** 0.5, rel=0.03)
    assert gpt["c_fc"] == pytest.approx(0.02, rel=0.03)
    assert gpt["c_attn"] == pytest.approx(0.02, rel=0.03)
    # Llama-style names, six layers.
    assert llama["o_proj"] == pytest.approx(0.02 / (2 * 6) ** 0.5, rel=0.03)
    assert llama["down_proj"] == pytest.approx(0.02 / (2 * 6) ** 0.5, rel=0.03)
    for other in ("qkv_proj", "gate_proj", "up_proj"):
        assert llama[other] == pytest.approx(0.02, rel=0.03)
    before = runs["original"]["gpt"]["stds"]
    assert before["c_proj"] == pytest.approx(0.02, rel=0.03)
    assert "import math\n" in runs["scaled_init"]["sources"]["llama_model.py"]


def test_all_three_fixes_together(runs):
    gpt, llama = runs["all"]["gpt"], runs["all"]["llama"]
    assert gpt["tied"] and llama["tied"]
    # Tied, the Llama embedding takes the head's 0.02 init and both streams start small, so the
    # norms' eps shows a little: variance = v / (v + eps) is 1 - O(1e-3) rather than 1 - O(1e-5).
    assert gpt["run"]["max_token_variance_error"] < 1e-2
    assert llama["run"]["max_token_rms_error"] < 1e-2
    assert gpt["stds"]["c_proj"] == pytest.approx(0.02 / (2 * 4) ** 0.5, rel=0.03)
    assert gpt["run"]["loss_is_finite"] and gpt["run"]["grads_are_finite"]
