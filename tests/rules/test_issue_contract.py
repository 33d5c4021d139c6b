"""The cases issue 2 names, one by one: what each headline rule must flag and must leave alone.

The rule modules carry their own examples and the corpus files carry real-code shapes; this file
is the checklist a reviewer can hold against the issue text.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.engine import analyze_source
from llmarch_lsp.findings import Severity

ATTENTION_HEADER = """
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.scaling = self.scale
        self.temperature = math.sqrt(dim // heads)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        d = x.size(-1) // self.heads
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
"""


def attention(body: str) -> str:
    return ATTENTION_HEADER + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8) + "\n"


def codes(source: str, code: str, severity: Severity | None = None) -> list:
    report = analyze_source(textwrap.dedent(source), "case.py")
    assert report.error is None, report.error
    found = [finding for finding in report.findings if finding.code == code]
    if severity is not None:
        found = [finding for finding in found if finding.severity is severity]
    return found


# ---- LLM101 unscaled-attention ------------------------------------------------------------

UNSCALED = {
    "matmul operator": "att = q @ k.transpose(-2, -1)\nreturn F.softmax(att, dim=-1) @ v",
    "torch.matmul": "att = torch.matmul(q, k.transpose(-1, -2))\nreturn torch.softmax(att, dim=-1) @ v",
    "torch.bmm": "att = torch.bmm(q, k.transpose(1, 2))\nreturn att.softmax(dim=-1) @ v",
    "torch.einsum": "att = torch.einsum('bid,bjd->bij', q, k)\nreturn F.softmax(att, dim=-1) @ v",
    "baddbmm without alpha": "bias = torch.zeros(q.size(0), q.size(1), k.size(1))\natt = torch.baddbmm(bias, q, k.transpose(1, 2))\nreturn F.softmax(att, dim=-1) @ v",
}

SCALED = {
    "times 1/sqrt(k.size(-1))": "att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))\nreturn F.softmax(att, dim=-1) @ v",
    "divide by sqrt(d)": "att = q @ k.transpose(-2, -1) / math.sqrt(d)\nreturn F.softmax(att, dim=-1) @ v",
    "divide by d ** 0.5": "att = q @ k.transpose(-2, -1) / d ** 0.5\nreturn F.softmax(att, dim=-1) @ v",
    "times self.scale": "att = q @ k.transpose(-2, -1) * self.scale\nreturn F.softmax(att, dim=-1) @ v",
    "q scaled earlier": "q = q * self.scale\natt = q @ k.transpose(-2, -1)\nreturn F.softmax(att, dim=-1) @ v",
    "projection scaled": "q = self.q_proj(x) * self.scaling\natt = torch.bmm(q, k.transpose(1, 2))\nreturn F.softmax(att, dim=-1) @ v",
    "scale inside the softmax call": "att = q @ k.transpose(-2, -1)\nreturn F.softmax(att * self.scale, dim=-1) @ v",
    "baddbmm with alpha": "bias = torch.zeros(q.size(0), q.size(1), k.size(1))\natt = torch.baddbmm(bias, q, k.transpose(1, 2), beta=0.0, alpha=self.scale)\nreturn F.softmax(att, dim=-1) @ v",
    "temperature division": "att = q @ k.transpose(-2, -1) / self.temperature\nreturn F.softmax(att, dim=-1) @ v",
    "cosine attention": "q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)\natt = (q @ k.transpose(-2, -1)) * self.logit_scale.exp()\nreturn F.softmax(att, dim=-1) @ v",
    "scaled_dot_product_attention": "return F.scaled_dot_product_attention(q, k, v, is_causal=True)",
}


@pytest.mark.parametrize("body", UNSCALED.values(), ids=UNSCALED.keys())
def test_llm101_flags_each_score_form(body):
    assert len(codes(attention(body), "LLM101")) == 1


@pytest.mark.parametrize("body", SCALED.values(), ids=SCALED.keys())
def test_llm101_accepts_each_scaling_route(body):
    assert codes(attention(body), "LLM101") == []


def test_llm101_ignores_softmaxes_that_are_not_attention():
    classifier = """
    import torch, torch.nn as nn, torch.nn.functional as F
    class Head(nn.Module):
        def __init__(self, dim, classes):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(classes, dim))
        def forward(self, x):
            logits = x @ self.weight.T
            return F.softmax(logits, dim=-1)
    """
    contrastive = """
    import torch, torch.nn.functional as F
    def clip_probabilities(image_features, text_features, logit_scale):
        image_features = F.normalize(image_features, dim=-1)
        text_features = F.normalize(text_features, dim=-1)
        logits = logit_scale.exp() * image_features @ text_features.t()
        return logits.softmax(dim=-1)
    """
    assert codes(classifier, "LLM101") == [] and codes(contrastive, "LLM101") == []


# ---- LLM201 post-norm-residual ------------------------------------------------------------

BLOCK = """
import torch.nn as nn
import torch.nn.functional as F

class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, 8)
        self.mlp = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.rms = nn.RMSNorm(dim)
        self.pre_norm = nn.LayerNorm(dim)
        self.post_norm = nn.LayerNorm(dim)
        self.alpha = 2.0

    def forward(self, x):
"""


def block(body: str, depth: int | None = None) -> str:
    source = BLOCK + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8) + "\n"
    if depth is not None:
        source += "\nclass Model(nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n"
        source += f"        self.blocks = nn.ModuleList([Block(dim) for _ in range({depth})])\n"
    return source


POST_NORM = {
    "inline": "x = self.norm(x + self.mlp(x))\nreturn x",
    "via a temporary": "y = x + self.mlp(x)\nx = self.norm(y)\nreturn x",
    "RMSNorm": "return self.rms(x + self.mlp(x))",
    "F.layer_norm": "return F.layer_norm(x + self.mlp(x), x.shape[-1:])",
}

PRE_NORM = {
    "x + f(norm(x))": "x = x + self.mlp(self.norm(x))\nreturn x",
    "residual = x style": "residual = x\nx = self.norm(x)\nx = self.mlp(x)\nx = residual + x\nreturn x",
    "sandwich norm": "x = x + self.post_norm(self.mlp(self.pre_norm(x)))\nreturn x",
    "final norm, no residual": "return self.norm(x)",
    "DeepNorm scaled residual": "x = self.norm(x * self.alpha + self.mlp(x))\nreturn x",
}


@pytest.mark.parametrize("body", POST_NORM.values(), ids=POST_NORM.keys())
def test_llm201_flags_each_post_norm_spelling(body):
    assert len(codes(block(body), "LLM201")) == 1


@pytest.mark.parametrize("body", PRE_NORM.values(), ids=PRE_NORM.keys())
def test_llm201_accepts_each_pre_norm_spelling(body):
    assert codes(block(body), "LLM201") == []


def test_llm201_shallow_known_depth_is_only_a_hint():
    body = POST_NORM["inline"]
    assert codes(block(body, depth=4), "LLM201", Severity.HINT)
    assert codes(block(body, depth=24), "LLM201", Severity.WARNING)


# ---- LLM203 transformer-layer-post-norm ---------------------------------------------------

def test_llm203_flags_default_layers_and_stays_quiet_when_unknowable():
    source = """
    import torch.nn as nn
    def build(cfg):
        encoder = nn.TransformerEncoderLayer(512, 8)
        decoder = nn.TransformerDecoderLayer(512, 8, norm_first=False)
        chosen = nn.TransformerEncoderLayer(512, 8, norm_first=cfg.pre_norm)
        pre = nn.TransformerEncoderLayer(512, 8, norm_first=True)
        return encoder, decoder, chosen, pre
    """
    assert [finding.span.line for finding in codes(source, "LLM203")] == [4, 5]


# ---- LLM301 missing-lr-warmup -------------------------------------------------------------

TRAIN_HEADER = """
import math
import torch
from torch.optim.lr_scheduler import LambdaLR, LinearLR, OneCycleLR, SequentialLR, CosineAnnealingLR
from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

model = AutoModelForCausalLM.from_pretrained("gpt2")
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
"""

LOOP = """
for step, batch in enumerate(loader):
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    {after_step}
    optimizer.zero_grad()
"""


def training(schedule: str = "", after_step: str = "pass") -> str:
    return TRAIN_HEADER + textwrap.dedent(schedule) + LOOP.format(after_step=after_step)


WARMUPS = {
    "LambdaLR ramp": "scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 2000))",
    "LinearLR start_factor < 1": "scheduler = LinearLR(optimizer, start_factor=0.01, total_iters=2000)",
    "OneCycleLR": "scheduler = OneCycleLR(optimizer, max_lr=3e-4, total_steps=100000)",
    "SequentialLR warming up first": (
        "warm = LinearLR(optimizer, start_factor=0.1, total_iters=1000)\n"
        "decay = CosineAnnealingLR(optimizer, T_max=99000)\n"
        "scheduler = SequentialLR(optimizer, [warm, decay], milestones=[1000])"
    ),
    "get_*_schedule_with_warmup": "scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=500, num_training_steps=10000)",
    "helper given a warmup argument": "scheduler = make_schedule(optimizer, warmup=1000)",
    "build_scheduler elsewhere": "scheduler = build_scheduler(cfg, optimizer)",
    "create_scheduler elsewhere": "scheduler, _ = create_scheduler(args, optimizer)",
}


@pytest.mark.parametrize("schedule", WARMUPS.values(), ids=WARMUPS.keys())
def test_llm301_accepts_each_warmup_spelling(schedule):
    assert codes(training(schedule, "scheduler.step()"), "LLM301") == []


def test_llm301_accepts_a_hand_written_ramp_on_param_groups():
    ramp = """
    def get_lr(it, warmup_iters=2000, lr=3e-4):
        if it < warmup_iters:
            return lr * (it + 1) / warmup_iters
        return lr
    """
    source = training(ramp).replace(
        "for step, batch in enumerate(loader):\n",
        "for step, batch in enumerate(loader):\n    for group in optimizer.param_groups:\n        group['lr'] = get_lr(step)\n",
    )
    assert codes(source, "LLM301") == []


def test_llm301_flags_a_plain_loop_and_a_decay_only_schedule():
    assert len(codes(training(), "LLM301")) == 1
    decay = training("scheduler = CosineAnnealingLR(optimizer, T_max=10000)", "scheduler.step()")
    assert len(codes(decay, "LLM301")) == 1
    no_warmup = training(WARMUPS["get_*_schedule_with_warmup"].replace("500", "0"), "scheduler.step()")
    assert len(codes(no_warmup, "LLM301")) == 1


def test_llm301_needs_a_loop_that_steps_the_optimizer():
    assert codes(TRAIN_HEADER, "LLM301") == []


def test_llm301_trusts_a_scheduler_passed_in():
    source = """
    import torch
    from transformers import AutoModelForCausalLM
    def train(model: AutoModelForCausalLM, loader, scheduler):
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        for batch in loader:
            model(**batch).loss.backward()
            optimizer.step()
            scheduler.step()
    """
    assert codes(source, "LLM301") == []


def test_llm301_quiet_for_lightning_and_for_models_that_are_not_transformers():
    lightning = """
    import torch
    import lightning as L
    class GPTModule(L.LightningModule):
        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=3e-4)
    """
    mnist = """
    import torch, torch.nn as nn, torch.nn.functional as F
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 32, 3)
            self.fc = nn.Linear(21632, 10)
        def forward(self, x):
            return self.fc(torch.flatten(F.relu(self.conv(x)), 1))
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(10):
        for data, target in train_loader:
            optimizer.zero_grad()
            F.cross_entropy(model(data), target).backward()
            optimizer.step()
    """
    assert codes(lightning, "LLM301") == [] and codes(mnist, "LLM301") == []


def test_llm203_nn_transformer_uses_its_own_depth():
    default = "import torch.nn as nn\nmodel = nn.Transformer(d_model=512, nhead=8)\n"
    deep = "import torch.nn as nn\nmodel = nn.Transformer(512, 8, 12, 12)\n"
    configured = "import torch.nn as nn\ndef build(cfg):\n    return nn.Transformer(512, 8, cfg.layers, cfg.layers)\n"
    assert codes(default, "LLM203", Severity.HINT)  # the original 6-layer recipe: a legitimate choice
    assert codes(deep, "LLM203", Severity.WARNING)
    assert codes(configured, "LLM203", Severity.WARNING)
    assert codes("import torch.nn as nn\nmodel = nn.Transformer(norm_first=True)\n", "LLM203") == []


def test_llm301_a_transformer_tokenizer_alone_is_no_sign_of_a_transformer():
    lstm = """
    import torch
    import torch.nn as nn
    from transformers import AutoTokenizer, GPT2TokenizerFast, AutoConfig, get_scheduler

    tokenizer = AutoTokenizer.from_pretrained("gpt2")

    class LSTMLM(nn.Module):
        def __init__(self, vocab, dim=256):
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            self.lstm = nn.LSTM(dim, dim, batch_first=True)
            self.head = nn.Linear(dim, vocab)

        def forward(self, x):
            out, _ = self.lstm(self.embed(x))
            return self.head(out)

    model = LSTMLM(tokenizer.vocab_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(10000):
        x = torch.randint(0, tokenizer.vocab_size, (8, 64))
        loss = nn.functional.cross_entropy(model(x[:, :-1]).transpose(1, 2), x[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    """
    assert codes(lstm, "LLM301") == []
    with_a_transformer = lstm.replace("AutoTokenizer,", "AutoTokenizer, AutoModelForCausalLM,").replace(
        "model = LSTMLM(tokenizer.vocab_size)", 'model = AutoModelForCausalLM.from_pretrained("gpt2")'
    )
    assert len(codes(with_a_transformer, "LLM301")) == 1
