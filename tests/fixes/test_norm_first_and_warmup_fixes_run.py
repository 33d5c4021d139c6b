"""LLM203 and LLM301 fixes, run with torch: the fixed code builds, runs and does what its comment says.

Each test takes code written the way users write it, applies the rule's fix through the same path
as `--fix`, and executes the result in this test process (the checker itself never runs user code).
"""

from __future__ import annotations

import textwrap
import warnings

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.fixes.apply import apply_fixes

torch = pytest.importorskip("torch")


def _fixed(code: str, rule_code: str) -> str:
    source = textwrap.dedent(code).lstrip("\n")
    findings = find_rule(rule_code).run(Document(source))
    fixes = [finding.fix for finding in findings if finding.fix is not None]
    assert fixes, f"{rule_code} offered no fix"
    fixed = apply_fixes(source, fixes).text
    assert find_rule(rule_code).run(Document(fixed)) == [], "the rule still fires on its own fix"
    return fixed


def _run(code: str, **names) -> dict:
    namespace = dict(names)
    exec(compile(code, "<fixed>", "exec"), namespace)  # noqa: S102 - test code we just wrote
    return namespace


# ---- LLM203: norm_first=True inside nn.TransformerEncoder ------------------------------------

ENCODER = """
import torch
import torch.nn as nn

layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)
encoder = nn.TransformerEncoder(layer, num_layers=8)
"""


def test_norm_first_encoder_builds_and_runs_without_a_warning():
    fixed = _fixed(ENCODER, "LLM203")
    assert "norm_first=True" in fixed and "enable_nested_tensor=False" in fixed
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch's nested-tensor warning would raise here
        namespace = _run(fixed)
    encoder = namespace["encoder"]
    assert all(layer.norm_first for layer in encoder.layers)
    x = torch.randn(2, 5, 32, requires_grad=True)
    out = encoder(x)
    out.sum().backward()
    assert out.shape == x.shape and x.grad is not None


def test_original_encoder_warns_once_norm_first_is_set_by_hand():
    # Why the fix sets enable_nested_tensor: without it, PyTorch warns for a norm-first layer.
    source = textwrap.dedent(ENCODER).replace("batch_first=True)", "batch_first=True, norm_first=True)")
    with pytest.warns(UserWarning, match="enable_nested_tensor"):
        _run(source)


def test_norm_first_in_eval_mode_matches_a_manual_pre_norm_forward():
    namespace = _run(_fixed(ENCODER, "LLM203"))
    encoder = namespace["encoder"].eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        expected = x
        for layer in encoder.layers:
            h = layer.norm1(expected)
            expected = expected + layer.self_attn(h, h, h, need_weights=False)[0]
            expected = expected + layer.linear2(layer.activation(layer.linear1(layer.norm2(expected))))
        assert torch.allclose(encoder(x), expected, atol=1e-5)


# ---- LLM301: the learning rate ramps, then follows the original schedule -----------------------

MODEL = """
import torch
import torch.nn as nn
{imports}
model = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, norm_first=True), 2, enable_nested_tensor=False)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
{schedule}
lrs = []
for step in range(max_iters):
    lrs.append(optimizer.param_groups[0]["lr"])
    model(torch.randn(3, 2, 16)).pow(2).mean().backward()
    optimizer.step()
{step}    optimizer.zero_grad()
"""

WARMUP = 1000  # what the fix inserts


def _lrs(source: str, max_iters: int, warmup: int = 8) -> list[float]:
    # Shorten the inserted 1,000-step warmup so the test runs a few dozen steps.
    source = source.replace(f"warmup_steps = {WARMUP}  #", f"warmup_steps = {warmup}  #")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        return _run(source, max_iters=max_iters)["lrs"]


def _script(imports: str = "", schedule: str = "", step: str = "") -> str:
    return MODEL.format(imports=imports, schedule=schedule, step=step)


def test_lambda_warmup_rises_linearly_to_the_base_rate():
    fixed = _fixed(_script(), "LLM301")
    assert "scheduler.step()" in fixed  # added after optimizer.step()
    lrs = _lrs(fixed, max_iters=12, warmup=8)
    assert lrs[:8] == pytest.approx([1e-3 * (step + 1) / 8 for step in range(8)])
    assert lrs[7:] == pytest.approx([1e-3] * 5)  # the base rate from the end of warmup on
    assert lrs[0] <= 1e-3 / 8 + 1e-12  # starts near zero


@pytest.mark.parametrize(
    "decay",
    [
        "CosineAnnealingLR(optimizer, T_max=20)",
        "StepLR(optimizer, step_size=5, gamma=0.5)",
        "ExponentialLR(optimizer, gamma=0.9)",
        "MultiStepLR(optimizer, milestones=[3, 7])",
    ],
)
def test_sequential_warmup_then_the_original_schedule_step_by_step(decay):
    imports = f"from torch.optim.lr_scheduler import {decay.split('(')[0]}"
    original = _script(imports, f"scheduler = {decay}", "    scheduler.step()\n")
    fixed = _fixed(original, "LLM301")
    assert "SequentialLR(" in fixed and "LinearLR(" in fixed
    warmup, steps = 6, 25
    before = _lrs(original, max_iters=steps)
    after = _lrs(fixed, max_iters=warmup + steps, warmup=warmup)
    # Linear from 1/warmup of the base rate up to the base rate at `warmup_steps`...
    assert after[:warmup] == pytest.approx([1e-3 * (1 / warmup + (1 - 1 / warmup) * t / warmup) for t in range(warmup)])
    # ...then exactly the original schedule, step by step.
    assert after[warmup:] == pytest.approx(before)


def test_sequential_fix_adds_the_scheduler_step_when_the_loop_never_stepped_it():
    imports = "from torch.optim.lr_scheduler import CosineAnnealingLR"
    fixed = _fixed(_script(imports, "scheduler = CosineAnnealingLR(optimizer, T_max=20)"), "LLM301")
    assert fixed.count("scheduler.step()") == 1
    lrs = _lrs(fixed, max_iters=10, warmup=4)
    assert lrs[0] == pytest.approx(1e-3 / 4) and lrs[4] == pytest.approx(1e-3)


def test_hugging_face_schedule_gets_a_named_warmup():
    transformers = pytest.importorskip("transformers")  # noqa: F841 - only where it is installed
    original = _script(
        "from transformers import get_linear_schedule_with_warmup",
        "scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0, num_training_steps=40)",
        "    scheduler.step()\n",
    )
    fixed = _fixed(original, "LLM301")
    assert "num_warmup_steps=warmup_steps" in fixed
    lrs = _lrs(fixed, max_iters=12, warmup=8)
    assert lrs[:9] == pytest.approx([1e-3 * t / 8 for t in range(9)])
