"""The loop-step fixes (LLM302, LLM305-LLM308), applied to small training scripts that really run.

Each script is analysed, fixed with the rule's own fix, and executed with torch for a few steps
on a tiny model. A global optimizer pre-step hook looks at what the optimizer is about to apply,
so each test checks the effect the fix promises, not just its text.
"""

from __future__ import annotations

import textwrap
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch.optim.optimizer import register_optimizer_step_pre_hook  # noqa: E402

from llmarch_lsp.analyzers import find_rule  # noqa: E402
from llmarch_lsp.document import Document  # noqa: E402
from llmarch_lsp.fixes.apply import apply_fixes  # noqa: E402

TINY_MODEL = """
import torch
from torch import nn


class TinyGPT(nn.Module):
    def __init__(self, width=8, vocab=5, loss_multiplier=1.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, 2, batch_first=True)
        self.head = nn.Linear(width, vocab)
        self.loss_multiplier = loss_multiplier

    def forward(self, x, y):
        h, _ = self.attn(x, x, x)
        logits = self.head(h)
        return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()) * self.loss_multiplier


def get_batch(generator, size=4):
    x = torch.randn(size, 3, 8, generator=generator)
    y = torch.randint(0, 5, (size, 3), generator=generator)
    return x, y
"""


def _script(body: str) -> str:
    return TINY_MODEL + textwrap.dedent(body)


def _fix(source: str, code: str) -> str:
    findings = find_rule(code).run(Document(source))
    fixes = [finding.fix for finding in findings if finding.fix is not None]
    assert fixes, f"{code} offers no fix for this script"
    fixed = apply_fixes(source, fixes).text
    assert find_rule(code).run(Document(fixed)) == [], f"{code} still fires after its own fix"
    return fixed


def _run(source: str) -> tuple[dict, list]:
    """Execute a training script; return its globals and, per optimizer step, what the step saw."""
    seen = []

    def before_step(optimizer, args, kwargs):
        parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append(
            {
                "norm": float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters]))),
                "grads": [p.grad.detach().clone() for p in parameters],
                "lr": optimizer.param_groups[0]["lr"],
            }
        )

    handle = register_optimizer_step_pre_hook(before_step)
    try:
        namespace: dict = {"__name__": "__train__"}
        torch.manual_seed(0)
        exec(compile(source, "train.py", "exec"), namespace)
    finally:
        handle.remove()
    return namespace, seen


# ---- LLM302: clipping bounds the gradient the optimizer applies -----------------------------------

CLIP_SCRIPT = """
generator = torch.Generator().manual_seed(0)
model = TinyGPT(loss_multiplier=1000.0)  # a loss this large makes every raw gradient norm far above 1
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
max_iters = 4
for step in range(max_iters):
    x, y = get_batch(generator)
    loss = model(x, y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
"""


def test_llm302_clip_bounds_the_applied_gradient_norm():
    source = _script(CLIP_SCRIPT)
    _, before = _run(source)
    assert min(step["norm"] for step in before) > 10
    _, after = _run(_fix(source, "LLM302"))
    assert len(after) == 4
    assert all(step["norm"] <= 1.0 + 1e-5 for step in after)


CLIP_WITH_SCALER_SCRIPT = """
generator = torch.Generator().manual_seed(0)
model = TinyGPT(loss_multiplier=1000.0)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
max_iters = 4
for step in range(max_iters):
    x, y = get_batch(generator)
    loss = model(x, y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
"""


def test_llm302_clip_after_unscale_clips_the_true_gradient():
    fixed = _fix(_script(CLIP_WITH_SCALER_SCRIPT), "LLM302")
    assert fixed.index("scaler.unscale_(optimizer)") < fixed.index("clip_grad_norm_") < fixed.index("scaler.step(optimizer)")
    _, after = _run(fixed)
    # Clipped after unscaling: the applied norm is exactly the threshold, not 1/scale of it.
    assert len(after) == 4
    assert all(abs(step["norm"] - 1.0) < 1e-4 for step in after)


# ---- LLM305: the GradScaler path runs, in the right order -------------------------------------------

FP16_SCRIPT = """
generator = torch.Generator().manual_seed(0)
model = TinyGPT()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
max_iters = 3
for step in range(max_iters):
    x, y = get_batch(generator)
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
"""


def test_llm305_grad_scaler_fix_runs_and_keeps_the_update(monkeypatch):
    calls: list[str] = []
    real_scaler = torch.amp.GradScaler

    class SpyScaler(real_scaler):
        """A real scaler on the CPU (this machine has no CUDA) that records the call order."""

        def __init__(self, device="cuda", *args, **kwargs):
            assert device == "cuda"
            super().__init__("cpu", *args, **kwargs)

        def scale(self, outputs):
            calls.append("scale")
            return super().scale(outputs)

        def unscale_(self, optimizer):
            calls.append("unscale_")
            return super().unscale_(optimizer)

        def step(self, optimizer, *args, **kwargs):
            calls.append("step")
            return super().step(optimizer, *args, **kwargs)

        def update(self, new_scale=None):
            calls.append("update")
            return super().update(new_scale)

    source = _script(FP16_SCRIPT)
    fixed = _fix(source, "LLM305")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autocast("cuda") disables itself on a CPU-only machine
        reference, _ = _run(source)
        monkeypatch.setattr(torch.amp, "GradScaler", SpyScaler)
        scaled, seen = _run(fixed)
    assert calls == ["scale", "unscale_", "step", "update"] * 3
    assert len(seen) == 3 and all(step["norm"] <= 1.0 + 1e-5 for step in seen)
    # Scaling by a power of two and unscaling before the clip is exact: the same weights come out.
    for expected, actual in zip(reference["model"].parameters(), scaled["model"].parameters()):
        assert torch.allclose(expected, actual, atol=1e-6)


# ---- LLM306: clearing the gradients stops them accumulating ------------------------------------------

NO_ZERO_GRAD_SCRIPT = """
generator = torch.Generator().manual_seed(0)
model = TinyGPT()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
max_iters = 3
for step in range(max_iters):
    x, y = get_batch(generator)
    loss = model(x, y)
    loss.backward()
    optimizer.step()
"""


def _plain_sgd_reference(steps=3, lr=0.1):
    """The intended run, written without `.grad` at all: each step uses only its own gradient."""
    namespace: dict = {}
    exec(compile(TINY_MODEL, "model.py", "exec"), namespace)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = namespace["TinyGPT"]()
    parameters = list(model.parameters())
    for _ in range(steps):
        x, y = namespace["get_batch"](generator)
        grads = torch.autograd.grad(model(x, y), parameters)
        with torch.no_grad():
            for parameter, grad in zip(parameters, grads):
                parameter -= lr * grad
    return parameters


def test_llm306_zero_grad_makes_each_step_use_its_own_gradient():
    source = _script(NO_ZERO_GRAD_SCRIPT)
    reference = _plain_sgd_reference()
    broken, _ = _run(source)
    fixed, _ = _run(_fix(source, "LLM306"))
    assert not all(torch.allclose(r, b, atol=1e-6) for r, b in zip(reference, broken["model"].parameters()))
    for expected, actual in zip(reference, fixed["model"].parameters()):
        assert torch.allclose(expected, actual, atol=1e-6)


# ---- LLM307: N micro-batches of loss / N give the full batch's gradient ---------------------------------

ACCUMULATION_SCRIPT = """
generator = torch.Generator().manual_seed(0)
model = TinyGPT()
initial = copy.deepcopy(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
accum = 4
micro_batches = [get_batch(generator) for _ in range(accum)]
for i, (x, y) in enumerate(micro_batches):
    loss = model(x, y)
    loss.backward()
    if (i + 1) % accum == 0:
        optimizer.step()
        optimizer.zero_grad()
"""


def test_llm307_divided_micro_batches_equal_the_full_batch_gradient():
    source = _script("import copy\n" + ACCUMULATION_SCRIPT)
    fixed = _fix(source, "LLM307")
    assert "(loss / accum).backward()" in fixed
    for text, factor in ((source, 4.0), (fixed, 1.0)):
        namespace, seen = _run(text)
        (step,) = seen
        model = namespace["initial"]
        x = torch.cat([batch[0] for batch in namespace["micro_batches"]])
        y = torch.cat([batch[1] for batch in namespace["micro_batches"]])
        full_batch = torch.autograd.grad(model(x, y), list(model.parameters()))
        for accumulated, expected in zip(step["grads"], full_batch):
            assert torch.allclose(accumulated, factor * expected, atol=1e-5)


# ---- LLM308: the optimizer gets the schedule's first value, and PyTorch stays quiet ------------------

SCHEDULER_SCRIPT = """
generator = torch.Generator().manual_seed(0)
model = TinyGPT()
optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / 10)
max_iters = 3
for step in range(max_iters):
    scheduler.step()
    x, y = get_batch(generator)
    model(x, y).backward()
    optimizer.step()
    optimizer.zero_grad()
"""


def _run_recording_warnings(source: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, seen = _run(source)
    ordering = [w for w in caught if "lr_scheduler.step()" in str(w.message) and "optimizer.step()" in str(w.message)]
    return seen, ordering


def test_llm308_reordered_scheduler_starts_at_the_first_value_without_a_warning():
    source = _script(SCHEDULER_SCRIPT)
    before, warned = _run_recording_warnings(source)
    assert [round(step["lr"], 6) for step in before] == [0.2, 0.3, 0.4] and warned
    after, warned = _run_recording_warnings(_fix(source, "LLM308"))
    assert [round(step["lr"], 6) for step in after] == [0.1, 0.2, 0.3] and not warned
