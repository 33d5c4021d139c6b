"""LLM201's pre-norm rewrite and its ablation-flag variant, run with torch.

The rewritten block must run forward and backward with unchanged shapes, load the original's
weights (same parameters, moved norms), and with the flag set back to False reproduce the
original module's outputs exactly.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.fixes.samples import fixed, run, source

torch = pytest.importorskip("torch")

B, T, C = 2, 16, 32

BLOCKS = {  # sample -> (block class, constructor arguments, whole model, its input)
    "nanogpt": ("Block", (), "GPT", lambda: torch.randint(0, 64, (B, T))),
    "hugging-face": ("BartEncoderLayer", (), "BartEncoder", lambda: torch.randint(0, 64, (B, T))),
    "timm": ("Block", (C,), "VisionTransformer", lambda: torch.randn(B, T, 48)),
}

# The original Transformer's encoder layer: the sublayer reads the stream three times, on the line
# before the sum, and the feed-forward sum is bound to a temporary first.
ENCODER_LAYER = textwrap.dedent(
    """
    import torch.nn as nn


    class EncoderLayer(nn.Module):
        def __init__(self, d=32, heads=4):
            super().__init__()
            self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d))
            self.norm1 = nn.LayerNorm(d)
            self.norm2 = nn.LayerNorm(d)
            self.dropout = nn.Dropout(0.1)

        def forward(self, x, mask=None):
            attended, _ = self.self_attn(x, x, x, attn_mask=mask)
            x = self.norm1(x + self.dropout(attended))
            y = x + self.dropout(self.ff(x))
            x = self.norm2(y)
            return x
    """
).lstrip("\n")

CASES = {name: (source(name), *BLOCKS[name][:2]) for name in BLOCKS}
CASES["encoder-layer"] = (ENCODER_LAYER, "EncoderLayer", ())


def _build(text: str, class_name: str, arguments: tuple, seed: int = 0):
    torch.manual_seed(seed)
    return run(text)[class_name](*arguments)


@pytest.mark.parametrize("name", list(CASES))
def test_pre_norm_rewrite_runs_forward_and_backward_with_unchanged_shapes(name):
    text, class_name, arguments = CASES[name]
    original = _build(text, class_name, arguments)
    rewritten = _build(fixed(text, "LLM201"), class_name, arguments)
    rewritten.load_state_dict(original.state_dict())  # the same parameters, the norms moved
    x = torch.randn(B, T, C, requires_grad=True)
    out = rewritten.train()(x)
    assert out.shape == original(x).shape == x.shape
    out.pow(2).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in rewritten.parameters() if p.requires_grad)
    with torch.no_grad():  # it is a different function: the norms now act on the sublayers' inputs
        assert not torch.allclose(rewritten.eval()(x), original.eval()(x))


@pytest.mark.parametrize("name", list(CASES))
def test_ablation_flag_switches_between_the_rewrite_and_the_original_exactly(name):
    text, class_name, arguments = CASES[name]
    original = _build(text, class_name, arguments).eval()
    pre_norm = _build(fixed(text, "LLM201"), class_name, arguments).eval()
    ablation = _build(fixed(text, "LLM201", "alternative"), class_name, arguments).eval()
    for module in (pre_norm, ablation):
        module.load_state_dict(original.state_dict())
    assert ablation.pre_norm is True  # the default is the recommended design
    x = torch.randn(B, T, C)
    with torch.no_grad():
        assert torch.equal(ablation(x), pre_norm(x))
        ablation.pre_norm = False
        assert torch.equal(ablation(x), original(x))  # the original path, verbatim
    ablation.pre_norm = True
    y = ablation.train()(x.requires_grad_())
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("name", list(BLOCKS))
def test_whole_models_train_after_the_rewrite(name):
    _, _, model_class, make_input = BLOCKS[name]
    text = fixed(source(name), "LLM201")
    torch.manual_seed(0)
    model = run(text)[model_class]().train()
    inputs = make_input()
    out = model(inputs)
    out.float().mean().backward()
    assert torch.isfinite(out).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
