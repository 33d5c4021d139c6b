"""LLM301 missing-lr-warmup on real-world-shaped training scripts.

Each snippet is written in the shape of a well-known codebase (nanoGPT, Hugging Face examples,
timm, minGPT, PyTorch examples, Lightning) in our own words. The silent ones are the false
positives that would make users turn the rule off; the flagged ones pin exact ranges.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.fixes.apply import apply_fixes

RULE = find_rule("LLM301")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _source(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def _findings(code: str):
    return RULE.run(Document(_source(code)))


def _ranges(code: str) -> list[str]:
    return [f"{f.span.line}:{f.span.column + 1}-{f.span.end_line}:{f.span.end_column + 1}" for f in _findings(code)]


# ---- real training scripts that must stay silent ------------------------------------------------

NANOGPT_TRAIN = """
    import math
    import os
    import time
    from contextlib import nullcontext

    import torch
    from model import GPTConfig, GPT

    learning_rate = 6e-4
    max_iters = 600000
    weight_decay = 1e-1
    beta1, beta2 = 0.9, 0.95
    decay_lr = True
    warmup_iters = 2000
    lr_decay_iters = 600000
    min_lr = 6e-5
    dtype = "bfloat16"

    model = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768))
    scaler = torch.cuda.amp.GradScaler(enabled=(dtype == "float16"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(beta1, beta2), weight_decay=weight_decay)

    def get_lr(it):
        # linear ramp for warmup_iters steps, then cosine down to min_lr
        if it < warmup_iters:
            return learning_rate * (it + 1) / (warmup_iters + 1)
        if it > lr_decay_iters:
            return min_lr
        decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
        return min_lr + coeff * (learning_rate - min_lr)

    iter_num = 0
    X, Y = get_batch("train")
    while True:
        lr = get_lr(iter_num) if decay_lr else learning_rate
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        for micro_step in range(8):
            logits, loss = model(X, Y)
            scaler.scale(loss / 8).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        iter_num += 1
        if iter_num > max_iters:
            break
"""

# nanoGPT proper builds the optimizer in model.py: here it only arrives through a method call.
NANOGPT_CONFIGURE_OPTIMIZERS = """
    import torch
    from model import GPTConfig, GPT

    model = GPT(GPTConfig())
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cuda")
    for it in range(5000):
        logits, loss = model(X, Y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
"""

HF_CLM_NO_TRAINER = """
    import argparse
    import math

    import torch
    from accelerate import Accelerator
    from transformers import AutoConfig, AutoModelForCausalLM, SchedulerType, get_scheduler


    def parse_args():
        parser = argparse.ArgumentParser(description="Finetune a causal language model")
        parser.add_argument("--learning_rate", type=float, default=5e-5)
        parser.add_argument("--weight_decay", type=float, default=0.0)
        parser.add_argument("--lr_scheduler_type", type=SchedulerType, default="linear")
        parser.add_argument("--num_warmup_steps", type=int, default=0)
        parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
        return parser.parse_args()


    def main():
        args = parse_args()
        accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps)
        model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
        no_decay = ["bias", "layer_norm.weight"]
        grouped = [
            {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": args.weight_decay},
            {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(grouped, lr=args.learning_rate)
        max_train_steps = args.num_train_epochs * math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
        lr_scheduler = get_scheduler(
            name=args.lr_scheduler_type,
            optimizer=optimizer,
            num_warmup_steps=args.num_warmup_steps * accelerator.num_processes,
            num_training_steps=max_train_steps * accelerator.num_processes,
        )
        model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(model, optimizer, train_dataloader, lr_scheduler)
        for epoch in range(args.num_train_epochs):
            model.train()
            for step, batch in enumerate(train_dataloader):
                with accelerator.accumulate(model):
                    outputs = model(**batch)
                    accelerator.backward(outputs.loss)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()


    if __name__ == "__main__":
        main()
"""

HF_TRAINER = """
    import torch
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    args = TrainingArguments(output_dir="out", num_train_epochs=3, per_device_train_batch_size=32)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, optimizers=(optimizer, None))
    trainer.train()
"""

LIGHTNING_MODULE = """
    import torch
    import lightning.pytorch as pl
    from torch import nn


    class LitTransformer(pl.LightningModule):
        def __init__(self, vocab_size=32000, d_model=512):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, d_model)
            self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model, 8, batch_first=True), 6)
            self.head = nn.Linear(d_model, vocab_size)

        def training_step(self, batch, batch_idx):
            x, y = batch
            logits = self.head(self.encoder(self.embed(x)))
            return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())

        def configure_optimizers(self):
            optimizer = torch.optim.AdamW(self.parameters(), lr=3e-4)
            return optimizer


    trainer = pl.Trainer(max_epochs=10)
    trainer.fit(LitTransformer(), train_loader)
"""

TIMM_TRAIN = """
    import torch
    from timm.models import create_model
    from timm.models.vision_transformer import VisionTransformer
    from timm.scheduler import create_scheduler


    def train_one_epoch(epoch, model, loader, optimizer, loss_fn, lr_scheduler=None, num_updates=0):
        model.train()
        for batch_idx, (input, target) in enumerate(loader):
            loss = loss_fn(model(input), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            num_updates += 1
            if lr_scheduler is not None:
                lr_scheduler.step_update(num_updates=num_updates)
        return num_updates


    def main(args):
        model = create_model("vit_base_patch16_224", pretrained=False, num_classes=1000)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
        lr_scheduler, num_epochs = create_scheduler(args, optimizer)
        for epoch in range(num_epochs):
            train_one_epoch(epoch, model, loader, optimizer, loss_fn, lr_scheduler=lr_scheduler)
            lr_scheduler.step(epoch + 1)
"""

MINGPT_TRAINER = """
    import time
    from collections import defaultdict

    import torch
    from torch.utils.data.dataloader import DataLoader


    class Trainer:
        def __init__(self, config, model, train_dataset):
            self.config = config
            self.model = model
            self.optimizer = None
            self.train_dataset = train_dataset
            self.callbacks = defaultdict(list)

        def run(self):
            model, config = self.model, self.config
            self.optimizer = model.configure_optimizers(config)
            loader = DataLoader(self.train_dataset, shuffle=True, batch_size=config.batch_size)
            model.train()
            self.iter_num = 0
            data_iter = iter(loader)
            while True:
                x, y = next(data_iter)
                logits, self.loss = model(x, y)
                model.zero_grad(set_to_none=True)
                self.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_norm_clip)
                self.optimizer.step()
                self.iter_num += 1
                if config.max_iters is not None and self.iter_num >= config.max_iters:
                    break
"""

# The original minGPT trainer: optimizer and warmup-by-tokens in the same file.
MINGPT_TOKEN_WARMUP = """
    import math
    import torch
    from mingpt.model import GPT


    class Trainer:
        def train(self):
            model, config = self.model, self.config
            optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=config.betas)
            self.tokens = 0
            for epoch in range(config.max_epochs):
                for x, y in self.loader:
                    logits, loss = model(x, y)
                    model.zero_grad()
                    loss.backward()
                    optimizer.step()
                    if config.lr_decay:
                        self.tokens += (y >= 0).sum()
                        if self.tokens < config.warmup_tokens:
                            lr_mult = float(self.tokens) / float(max(1, config.warmup_tokens))
                        else:
                            progress = float(self.tokens - config.warmup_tokens) / float(max(1, config.final_tokens - config.warmup_tokens))
                            lr_mult = max(0.1, 0.5 * (1.0 + math.cos(math.pi * progress)))
                        lr = config.learning_rate * lr_mult
                        for param_group in optimizer.param_groups:
                            param_group["lr"] = lr
"""

PYTORCH_MNIST = """
    import argparse
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.optim.lr_scheduler import StepLR


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            return F.log_softmax(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))), dim=1)


    def train(args, model, device, train_loader, optimizer, epoch):
        model.train()
        for batch_idx, (data, target) in enumerate(train_loader):
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()


    def main():
        args = argparse.ArgumentParser().parse_args()
        model = Net()
        optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
        scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
        for epoch in range(1, args.epochs + 1):
            train(args, model, "cuda", train_loader, optimizer, epoch)
            scheduler.step()
"""

# Same shape, but with Adam and no scheduler at all: still a CNN, still silent.
PYTORCH_MNIST_ADAM = PYTORCH_MNIST.replace("optim.Adadelta", "optim.Adam").replace(
    "        scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)\n", ""
).replace("            scheduler.step()\n", "")

DCGAN = """
    import argparse
    import torch
    import torch.nn as nn
    import torch.optim as optim

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.0002)
    parser.add_argument("--beta1", type=float, default=0.5)
    opt = parser.parse_args()


    class Generator(nn.Module):
        def __init__(self, nz=100, ngf=64):
            super().__init__()
            self.main = nn.Sequential(nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True))

        def forward(self, input):
            return self.main(input)


    class Discriminator(nn.Module):
        def __init__(self, ndf=64):
            super().__init__()
            self.main = nn.Sequential(nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True))

        def forward(self, input):
            return self.main(input)


    netG, netD = Generator(), Discriminator()
    criterion = nn.BCELoss()
    optimizerD = optim.Adam(netD.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
    for epoch in range(25):
        for i, data in enumerate(dataloader, 0):
            netD.zero_grad()
            errD = criterion(netD(data[0]).view(-1), torch.ones(data[0].size(0)))
            errD.backward()
            optimizerD.step()
            netG.zero_grad()
            fake = netG(torch.randn(64, 100, 1, 1))
            errG = criterion(netD(fake).view(-1), torch.ones(64))
            errG.backward()
            optimizerG.step()
"""

# A linear probe on frozen ViT features: only an nn.Linear is trained.
LINEAR_PROBE = """
    import torch
    import torch.nn as nn
    from transformers import ViTModel

    backbone = ViTModel.from_pretrained("google/vit-base-patch16-224-in21k").eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    probe = nn.Linear(768, 1000)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3)
    for epoch in range(90):
        for images, labels in loader:
            with torch.no_grad():
                features = backbone(pixel_values=images).pooler_output
            loss = nn.functional.cross_entropy(probe(features), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
"""

# Adversarial perturbation of an input against a BERT classifier: Adam on a tensor, not a network.
INPUT_OPTIMIZATION = """
    import torch
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained("bert-base-uncased")
    delta = torch.zeros_like(embeddings, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=1e-2)
    for step in range(100):
        loss = -model(inputs_embeds=embeddings + delta, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""

# A train() that receives its scheduler: built by the caller, possibly with warmup.
SCHEDULER_PASSED_IN = """
    import torch
    from model import GPT


    def train(model, optimizer, scheduler, loader):
        for batch in loader:
            model(batch).loss.backward()
            optimizer.step()
            scheduler.step()


    model = GPT()
    train(model, torch.optim.AdamW(model.parameters(), lr=3e-4), make_schedule(), loader)
"""

DEEPSPEED = """
    import deepspeed
    import torch
    from model import GPT

    model = GPT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    engine, optimizer, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer, config="ds_config.json")
    for batch in loader:
        loss = engine(batch)
        engine.backward(loss)
        engine.step()
"""

WARMUP_FROM_CONFIG = """
    import torch
    from torch.optim.lr_scheduler import LambdaLR
    from model import GPT

    model = GPT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    ramp = cfg["warmup"]
    scheduler = LambdaLR(optimizer, lambda s: 1.0 if s > ramp else s / ramp)
    for batch in loader:
        model(batch).backward()
        optimizer.step()
        scheduler.step()
"""

ONE_CYCLE = """
    import torch
    from torch.optim.lr_scheduler import OneCycleLR
    from model import TransformerLM

    model = TransformerLM()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
    for batch in loader:
        model(batch).backward()
        optimizer.step()
        scheduler.step()
"""

HELPER_WITH_WARMUP_ARGUMENT = """
    import torch
    from model import GPT
    from utils import cosine_schedule

    model = GPT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    scheduler = cosine_schedule(optimizer, 500, 100_000)
    for batch in loader:
        model(batch).backward()
        optimizer.step()
        scheduler.step()
"""

# A unit test that checks a dozen Adam steps lower the loss: no training run to protect.
SMOKE_TEST = """
    import torch
    from mypkg.model import TinyTransformer


    def test_loss_decreases_over_a_few_steps():
        model = TinyTransformer(n_layer=2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(12):
            optimizer.zero_grad()
            loss = model(torch.randint(0, 100, (2, 16))).mean()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0]
"""

SILENT = {
    "nanogpt-train": NANOGPT_TRAIN,
    "nanogpt-configure-optimizers": NANOGPT_CONFIGURE_OPTIMIZERS,
    "hf-clm-no-trainer": HF_CLM_NO_TRAINER,
    "hf-trainer": HF_TRAINER,
    "lightning-module": LIGHTNING_MODULE,
    "timm-train": TIMM_TRAIN,
    "mingpt-trainer": MINGPT_TRAINER,
    "mingpt-token-warmup": MINGPT_TOKEN_WARMUP,
    "pytorch-mnist": PYTORCH_MNIST,
    "pytorch-mnist-adam": PYTORCH_MNIST_ADAM,
    "dcgan": DCGAN,
    "linear-probe": LINEAR_PROBE,
    "input-optimization": INPUT_OPTIMIZATION,
    "scheduler-passed-in": SCHEDULER_PASSED_IN,
    "deepspeed": DEEPSPEED,
    "warmup-from-config": WARMUP_FROM_CONFIG,
    "one-cycle": ONE_CYCLE,
    "helper-with-warmup-argument": HELPER_WITH_WARMUP_ARGUMENT,
    "smoke-test": SMOKE_TEST,
}


@pytest.mark.parametrize("code", SILENT.values(), ids=SILENT.keys())
def test_real_training_scripts_with_warmup_or_without_transformers_are_silent(code):
    assert _ranges(code) == []


# ---- scripts that must be flagged ----------------------------------------------------------------

SIMPLE_GPT_LOOP = """
    import torch
    from model import GPT, GPTConfig

    model = GPT(GPTConfig(n_layer=12))
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95))
    for it in range(100_000):
        x, y = get_batch()
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
"""

COSINE_WITHOUT_WARMUP = """
    import torch
    import torch.nn as nn

    class TinyTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 4, batch_first=True), 8)

    model = TinyTransformer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=50_000, eta_min=1e-5)
    for step, batch in enumerate(loader):
        model(batch).mean().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
"""

STEP_LR_ONLY = """
    import torch
    from torch import optim
    from torch.optim.lr_scheduler import StepLR
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained("t5-small")
    optimizer = optim.Adam(model.parameters(), lr=1e-4)
    scheduler = StepLR(optimizer, step_size=10, gamma=0.5)
    for epoch in range(30):
        for batch in loader:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        scheduler.step()
"""

ZERO_WARMUP_STEPS = """
    import torch
    from transformers import AutoModelForCausalLM, get_linear_schedule_with_warmup

    model = AutoModelForCausalLM.from_pretrained("gpt2")
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=20_000)
    for batch in loader:
        model(**batch).loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
"""

LINEAR_LR_FROM_ONE = """
    import torch
    from torch.optim.lr_scheduler import LinearLR
    from model import Transformer

    model = Transformer(dim=512, depth=12)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    scheduler = LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=10_000)
    for batch in loader:
        model(batch).backward()
        optimizer.step()
        scheduler.step()
"""

BITSANDBYTES_IN_A_TRAINER_CLASS = """
    import bitsandbytes as bnb
    import torch
    from transformers import LlamaForCausalLM


    class Trainer:
        def __init__(self, model: LlamaForCausalLM):
            self.model = model
            self.optimizer = bnb.optim.AdamW8bit(model.parameters(), lr=2e-4)

        def training_step(self, batch):
            self.model(**batch).loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()

        def fit(self, loader):
            for batch in loader:
                self.training_step(batch)
"""

FLAGGED = {
    "simple-gpt-loop": (SIMPLE_GPT_LOOP, ["5:13-5:78"]),
    "cosine-without-warmup": (COSINE_WITHOUT_WARMUP, ["10:13-10:77"]),
    "steplr-only": (STEP_LR_ONLY, ["7:13-7:52"]),
    "zero-warmup-steps": (ZERO_WARMUP_STEPS, ["5:7-5:53"]),
    "linearlr-from-one": (LINEAR_LR_FROM_ONE, ["6:13-6:58"]),
    "bitsandbytes-trainer-class": (BITSANDBYTES_IN_A_TRAINER_CLASS, ["9:26-9:74"]),
}


@pytest.mark.parametrize(("code", "ranges"), FLAGGED.values(), ids=FLAGGED.keys())
def test_transformer_loops_without_warmup_are_flagged_at_the_optimizer(code, ranges):
    assert _ranges(code) == ranges


def test_finding_points_at_the_loop_step_and_the_warmup_free_schedule():
    (finding,) = _findings(COSINE_WITHOUT_WARMUP)
    assert "`AdamW`" in finding.message and "`CosineAnnealingLR`" in finding.message
    assert [(r.span.line, r.message) for r in finding.related] == [
        (14, "stepped here, in a loop, from step 0 at the full learning rate"),
        (11, "`CosineAnnealingLR` starts at the full learning rate: it never warms up"),
    ]
    # The decay schedule is kept, behind a LinearLR warmup stage, under the same name.
    fixed = apply_fixes(_source(COSINE_WITHOUT_WARMUP), [finding.fix]).text
    assert "scheduler = torch.optim.lr_scheduler.SequentialLR(" in fixed
    assert "[torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps), scheduler]" in fixed
    assert fixed.count("scheduler.step()") == 1  # already stepped per optimizer step: nothing added
    assert _findings(fixed) == []


def test_step_inside_a_function_the_loop_calls_counts():
    (finding,) = _findings(BITSANDBYTES_IN_A_TRAINER_CLASS)
    assert "`AdamW8bit`" in finding.message
    assert finding.related[0].span.line == 13
    assert finding.fix is None  # `self.optimizer` in __init__: a local scheduler would not reach the loop


def test_fix_on_a_simple_loop_is_clean_and_no_longer_flagged():
    source = _source(SIMPLE_GPT_LOOP)
    (finding,) = RULE.run(Document(source))
    fixed = apply_fixes(source, [finding.fix]).text
    assert fixed == _source("""
        import torch
        from model import GPT, GPTConfig

        model = GPT(GPTConfig(n_layer=12))
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95))
        # Linear warmup: Adam's second-moment estimate is noisy for the first steps; ramp the LR up (Liu et al., 2020, arXiv:1908.03265)
        warmup_steps = 1000  # tune: ~1-5% of training steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
        for it in range(100_000):
            x, y = get_batch()
            _, loss = model(x, y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    """)
    assert RULE.run(Document(fixed)) == []


def test_fix_adds_the_lambdalr_import_when_torch_is_not_imported_as_a_module():
    source = _source("""
        from torch.optim import AdamW
        from model import GPT

        model = GPT()
        optimizer = AdamW(model.parameters(), lr=3e-4)
        for batch in loader:
            model(batch).backward()
            optimizer.step()
    """)
    (finding,) = RULE.run(Document(source))
    fixed = apply_fixes(source, [finding.fix]).text
    assert "from torch.optim.lr_scheduler import LambdaLR" in fixed
    assert "scheduler = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))" in fixed
    assert RULE.run(Document(fixed)) == []


def test_no_fix_when_the_names_are_taken():
    source = _source("""
        import torch
        from model import GPT

        model = GPT()
        warmup_steps = 0
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        for batch in loader:
            model(batch).backward()
            optimizer.step()
    """)
    # a variable named like warmup feeds the schedule: silent, as it may be a warmup
    assert RULE.run(Document(source)) == []
    taken = source.replace("warmup_steps = 0", "scheduler = None")
    (finding,) = RULE.run(Document(taken))
    assert finding.fix is None


def test_examples_train_py_is_flagged_at_its_optimizer():
    source = (EXAMPLES / "train.py").read_text(encoding="utf-8")
    report = analyze_source(source, "examples/train.py")
    found = [finding for finding in report.findings if finding.code == "LLM301"]
    assert len(found) == 1
    line = source.splitlines().index(next(text for text in source.splitlines() if "torch.optim.AdamW(" in text)) + 1
    assert found[0].span.line == line  # 1-based; 0-based (LSP) line 12
    assert found[0].fix is not None
