"""The bundled examples, fixed by `--fix --unsafe-fixes`, still run, and the fixes do what they say.

This runs the (fixed) example model and training script with torch, in a subprocess: the checker
itself never imports user code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PROBE = textwrap.dedent(
    """
    import json, runpy, sys
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, ".")
    import model

    torch.manual_seed(0)
    attention = model.CausalSelfAttention(n_embd=64, n_head=4, block_size=16).eval()
    x = torch.randn(2, 16, 64)
    with torch.no_grad():
        q, k, v = attention.c_attn(x).split(64, dim=2)
        q, k, v = (t.view(2, 16, 4, 16).transpose(1, 2) for t in (q, k, v))
        reference = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scales by 1/sqrt(16)
        reference = attention.c_proj(reference.transpose(1, 2).reshape(2, 16, 64))
        matches_sdpa = torch.allclose(attention(x), reference, atol=1e-5)

    gpt = model.GPT(vocab_size=32, block_size=16, n_layer=2, n_embd=32, n_head=4)
    logits, loss = gpt(torch.randint(0, 32, (2, 16)), torch.randint(0, 32, (2, 16)))
    loss.backward()
    classifier = model.EncoderClassifier(vocab_size=32, d_model=32, n_layer=2)
    classifier(torch.randint(0, 32, (2, 8))).sum().backward()

    source = open("train.py").read().replace("max_iters = 2000", "max_iters = 3")
    source = source.replace("model = GPT(block_size=block_size)", "model = GPT(block_size=block_size, n_layer=1, n_embd=32)")
    open("train_short.py", "w").write(source)
    trained = runpy.run_path("train_short.py")
    print(json.dumps({
        "matches_sdpa": matches_sdpa,
        "loss_is_finite": bool(torch.isfinite(loss)),
        "lr_after_3_steps": trained["optimizer"].param_groups[0]["lr"],
        "learning_rate": trained["learning_rate"],
    }))
    """
)


def _probe(folder: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_fixed_examples_run_and_the_fixes_take_effect(tmp_path):
    original = tmp_path / "original"
    fixed = tmp_path / "fixed"
    shutil.copytree(EXAMPLES, original)
    shutil.copytree(EXAMPLES, fixed)

    result = subprocess.run(
        [sys.executable, "-m", "llmarch_lsp", "--check", ".", "--fix", "--unsafe-fixes"],
        cwd=fixed, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every finding in the examples has a fix (how many depends on the rules registered).
    assert re.search(r"Fixed \d+ problems", result.stdout), result.stdout
    fixed_model = (fixed / "model.py").read_text()
    # LLM103's SDPA rewrite wins over LLM101's scale where both apply: one change clears both.
    assert "F.scaled_dot_product_attention(q, k, v, is_causal=True)" in fixed_model
    assert "x = x + self.attn(self.ln_1(x))" in fixed_model

    before, after = _probe(original), _probe(fixed)
    # LLM101's fix makes the hand-written attention equal to PyTorch's scaled attention.
    assert not before["matches_sdpa"] and after["matches_sdpa"]
    assert after["loss_is_finite"]
    # LLM301's fix adds a warmup: three steps in, the learning rate is still ramping.
    assert before["lr_after_3_steps"] == before["learning_rate"]
    assert 0 < after["lr_after_3_steps"] < after["learning_rate"] / 100
