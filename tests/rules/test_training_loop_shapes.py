"""The loop-step rules (LLM302, LLM305-LLM308) on training code shaped like well-known codebases.

Each script is written in our own words in the shape of nanoGPT's train.py, minGPT's trainer,
Hugging Face's run_clm_no_trainer.py (both its accelerate versions), timm's train.py, a Lightning
module, the HF Trainer, and the PyTorch examples. The faithful versions must be silent; each
mutation that reintroduces a classic mistake must be flagged by exactly the rule that names it.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.facts.loops import ACCELERATE, MICRO_LOOP, MODULO
from llmarch_lsp.fixes.apply import apply_fixes

LOOP_RULES = ("LLM302", "LLM305", "LLM306", "LLM307", "LLM308")


def _source(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def _findings(code: str, *codes: str):
    document = Document(_source(code))
    found = []
    for rule_code in codes or LOOP_RULES:
        found += find_rule(rule_code).run(document)
    return found


def _codes(code: str) -> list[str]:
    return sorted(finding.code for finding in _findings(code))


def _lines(code: str, rule_code: str) -> list[int]:
    return [finding.span.line for finding in _findings(code, rule_code)]


def _has_lines(text: str, *lines: str) -> bool:
    """`lines` appear consecutively in `text`, compared without their indentation."""
    stripped = [line.strip() for line in text.splitlines()]
    wanted = [line.strip() for line in lines]
    return any(stripped[start : start + len(wanted)] == wanted for start in range(len(stripped)))


def _fixed(code: str, rule_code: str) -> str:
    source = _source(code)
    fixes = [finding.fix for finding in find_rule(rule_code).run(Document(source)) if finding.fix]
    assert fixes, f"{rule_code} offers no fix"
    return apply_fixes(source, fixes).text


# ---- nanoGPT train.py --------------------------------------------------------------------------

NANOGPT = """
    import math
    import os
    from contextlib import nullcontext

    import torch
    from model import GPTConfig, GPT

    out_dir = "out"
    eval_interval = 2000
    eval_iters = 200
    gradient_accumulation_steps = 5 * 8
    batch_size = 12
    block_size = 1024
    learning_rate = 6e-4
    max_iters = 600000
    weight_decay = 1e-1
    grad_clip = 1.0
    warmup_iters = 2000
    lr_decay_iters = 600000
    min_lr = 6e-5
    device = "cuda"
    dtype = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"

    device_type = "cuda" if "cuda" in device else "cpu"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)

    model = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768, block_size=block_size))
    model.to(device)
    scaler = torch.cuda.amp.GradScaler(enabled=(dtype == "float16"))
    optimizer = model.configure_optimizers(weight_decay, learning_rate, (0.9, 0.95), device_type)


    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ["train", "val"]:
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                X, Y = get_batch(split)
                with ctx:
                    logits, loss = model(X, Y)
                losses[k] = loss.item()
            out[split] = losses.mean()
        model.train()
        return out


    def get_lr(it):
        if it < warmup_iters:
            return learning_rate * (it + 1) / (warmup_iters + 1)
        if it > lr_decay_iters:
            return min_lr
        ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


    X, Y = get_batch("train")
    iter_num = 0
    while True:
        lr = get_lr(iter_num)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        if iter_num % eval_interval == 0:
            losses = estimate_loss()
            print(f"step {iter_num}: val loss {losses['val']:.4f}")
        for micro_step in range(gradient_accumulation_steps):
            with ctx:
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps  # scale to account for accumulation
            X, Y = get_batch("train")
            scaler.scale(loss).backward()
        if grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        iter_num += 1
        if iter_num > max_iters:
            break
"""


def test_nanogpt_train_is_silent():
    assert _codes(NANOGPT) == []


def test_nanogpt_loop_facts():
    document = Document(_source(NANOGPT))
    (iteration,) = document.loops.iterations
    assert isinstance(iteration.loop, __import__("ast").While)
    assert [event.kind for event in iteration.events] == [
        "backward", "unscale", "clip", "step", "scaler_update", "zero_grad",
    ]  # fmt: skip
    assert iteration.accumulation.kind == MICRO_LOOP
    assert document.segment(iteration.accumulation.steps) == "gradient_accumulation_steps"
    assert document.loops.loss_division(iteration.backwards[0]) == "divided"


def test_nanogpt_without_the_loss_division_is_unnormalized_accumulation():
    broken = NANOGPT.replace("            loss = loss / gradient_accumulation_steps  # scale to account for accumulation\n", "")
    assert _codes(broken) == ["LLM307"]
    assert "scaler.scale(loss / gradient_accumulation_steps).backward()" in _fixed(broken, "LLM307")


def test_nanogpt_without_clipping_gets_unscale_and_clip():
    broken = NANOGPT.replace(
        "        if grad_clip != 0.0:\n"
        "            scaler.unscale_(optimizer)\n"
        "            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)\n",
        "",
    )
    assert _codes(broken) == ["LLM302"]
    fixed = _fixed(broken, "LLM302")
    assert (
        "    scaler.unscale_(optimizer)\n"
        "    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
        "    scaler.step(optimizer)\n"
    ) in fixed


def test_nanogpt_without_zero_grad():
    broken = NANOGPT.replace("        optimizer.zero_grad(set_to_none=True)\n", "")
    assert _codes(broken) == ["LLM306"]
    assert "    scaler.update()\n    optimizer.zero_grad(set_to_none=True)\n" in _fixed(broken, "LLM306")


def test_nanogpt_forced_to_float16_without_its_scaler():
    broken = NANOGPT.replace(
        'ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)',
        'ctx = torch.amp.autocast(device_type="cuda", dtype=torch.float16)',
    )
    broken = broken.replace('    scaler = torch.cuda.amp.GradScaler(enabled=(dtype == "float16"))\n', "")
    broken = broken.replace("scaler.scale(loss).backward()", "loss.backward()")
    broken = broken.replace("            scaler.unscale_(optimizer)\n", "")
    broken = broken.replace("scaler.step(optimizer)\n        scaler.update()", "optimizer.step()")
    assert _codes(broken) == ["LLM305"]


# ---- minGPT's trainer --------------------------------------------------------------------------

MINGPT = """
    import time
    from collections import defaultdict

    import torch
    from torch.utils.data.dataloader import DataLoader
    from mingpt.utils import CfgNode as CN


    class Trainer:

        def __init__(self, config, model, train_dataset):
            self.config = config
            self.model = model
            self.optimizer = None
            self.train_dataset = train_dataset
            self.callbacks = defaultdict(list)
            self.iter_num = 0

        def trigger_callbacks(self, onevent: str):
            for callback in self.callbacks.get(onevent, []):
                callback(self)

        def run(self):
            model, config = self.model, self.config
            self.optimizer = model.configure_optimizers(config)
            train_loader = DataLoader(self.train_dataset, shuffle=False, batch_size=config.batch_size)
            model.train()
            self.iter_time = time.time()
            data_iter = iter(train_loader)
            while True:
                try:
                    batch = next(data_iter)
                except StopIteration:
                    data_iter = iter(train_loader)
                    batch = next(data_iter)
                x, y = [t.to(self.device) for t in batch]
                logits, self.loss = model(x, y)
                model.zero_grad(set_to_none=True)
                self.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_norm_clip)
                self.optimizer.step()
                self.trigger_callbacks("on_batch_end")
                self.iter_num += 1
                if config.max_iters is not None and self.iter_num >= config.max_iters:
                    break
"""


def test_mingpt_trainer_is_silent():
    assert _codes(MINGPT) == []


def test_mingpt_trainer_without_clipping():
    broken = MINGPT.replace("                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_norm_clip)\n", "")
    assert _codes(broken) == ["LLM302"]
    fixed = _fixed(broken, "LLM302")
    # `model` is the name in scope where the optimizer steps
    assert _has_lines(fixed, "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)", "self.optimizer.step()")


def test_mingpt_trainer_without_zero_grad():
    broken = MINGPT.replace("                model.zero_grad(set_to_none=True)\n", "")
    assert _codes(broken) == ["LLM306"]
    assert _lines(broken, "LLM306") == [40]  # at `self.optimizer.step()`
    assert _has_lines(_fixed(broken, "LLM306"), "self.optimizer.step()", "self.optimizer.zero_grad(set_to_none=True)")


# ---- Hugging Face run_clm_no_trainer.py ------------------------------------------------------------

HF_CLM_ACCUMULATE = """
    import math

    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, get_scheduler


    def main():
        args = parse_args()
        accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps)
        model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
        no_decay = ["bias", "layer_norm.weight"]
        grouped_parameters = [
            {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": args.weight_decay},
            {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(grouped_parameters, lr=args.learning_rate)
        steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
        lr_scheduler = get_scheduler(
            name=args.lr_scheduler_type,
            optimizer=optimizer,
            num_warmup_steps=args.num_warmup_steps * accelerator.num_processes,
            num_training_steps=args.max_train_steps * accelerator.num_processes,
        )
        model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
            model, optimizer, train_dataloader, lr_scheduler
        )
        completed_steps = 0
        for epoch in range(args.num_train_epochs):
            model.train()
            total_loss = 0
            for step, batch in enumerate(train_dataloader):
                with accelerator.accumulate(model):
                    outputs = model(**batch)
                    loss = outputs.loss
                    total_loss += loss.detach().float()
                    accelerator.backward(loss)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()
                if accelerator.sync_gradients:
                    completed_steps += 1
                if completed_steps >= args.max_train_steps:
                    break
            model.eval()
            losses = []
            for step, batch in enumerate(eval_dataloader):
                with torch.no_grad():
                    outputs = model(**batch)
                losses.append(accelerator.gather_for_metrics(outputs.loss.repeat(args.per_device_eval_batch_size)))


    if __name__ == "__main__":
        main()
"""

# The older version: manual accumulation, the loss divided by hand, accelerate's backward.
HF_CLM_MANUAL = """
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, get_scheduler


    def main():
        args = parse_args()
        accelerator = Accelerator()
        model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
        lr_scheduler = get_scheduler(args.lr_scheduler_type, optimizer, args.num_warmup_steps, args.max_train_steps)
        model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
        for epoch in range(args.num_train_epochs):
            model.train()
            for step, batch in enumerate(train_dataloader):
                outputs = model(**batch)
                loss = outputs.loss / args.gradient_accumulation_steps
                accelerator.backward(loss)
                if step % args.gradient_accumulation_steps == 0 or step == len(train_dataloader) - 1:
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()
"""


def test_hf_clm_no_trainer_only_lacks_clipping():
    # The script really does not clip: LLM302 is the one finding, with accelerate's own clip,
    # once per real step.
    assert _codes(HF_CLM_ACCUMULATE) == ["LLM302"]
    fixed = _fixed(HF_CLM_ACCUMULATE, "LLM302")
    assert _has_lines(
        fixed,
        "if accelerator.sync_gradients:",
        "accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)",
        "optimizer.step()",
    )
    (iteration,) = Document(_source(HF_CLM_ACCUMULATE)).loops.iterations
    assert iteration.accumulation.kind == ACCELERATE and iteration.framework == "accelerate"


def test_hf_clm_manual_accumulation():
    assert _codes(HF_CLM_MANUAL) == ["LLM302"]
    (iteration,) = Document(_source(HF_CLM_MANUAL)).loops.iterations
    assert iteration.accumulation.kind == MODULO
    fixed = _fixed(HF_CLM_MANUAL, "LLM302")
    assert _has_lines(fixed, "accelerator.clip_grad_norm_(model.parameters(), max_norm=1.0)", "optimizer.step()")


def test_hf_clm_scheduler_moved_before_the_step():
    broken = HF_CLM_ACCUMULATE.replace(
        "                    optimizer.step()\n                    lr_scheduler.step()\n",
        "                    lr_scheduler.step()\n                    optimizer.step()\n",
    )
    assert _codes(broken) == ["LLM302", "LLM308"]
    assert _has_lines(_fixed(broken, "LLM308"), "optimizer.step()", "lr_scheduler.step()", "optimizer.zero_grad()")


# ---- timm train.py -----------------------------------------------------------------------------

TIMM = """
    import time
    from contextlib import suppress
    from functools import partial

    import torch
    from timm import utils
    from timm.models import create_model, model_parameters
    from timm.scheduler import create_scheduler_v2
    from timm.utils import NativeScaler


    def train_one_epoch(epoch, model, loader, optimizer, loss_fn, args, device, lr_scheduler=None,
                        amp_autocast=suppress, loss_scaler=None, model_ema=None):
        model.train()
        accum_steps = args.grad_accum_steps
        last_accum_steps = len(loader) % accum_steps
        updates_per_epoch = (len(loader) + accum_steps - 1) // accum_steps
        num_updates = epoch * updates_per_epoch
        last_batch_idx = len(loader) - 1
        optimizer.zero_grad()
        for batch_idx, (input, target) in enumerate(loader):
            last_batch = batch_idx == last_batch_idx
            need_update = last_batch or (batch_idx + 1) % accum_steps == 0
            update_idx = batch_idx // accum_steps
            if batch_idx >= last_batch_idx - last_accum_steps:
                accum_steps = last_accum_steps

            def _forward():
                with amp_autocast():
                    output = model(input)
                    loss = loss_fn(output, target)
                if accum_steps > 1:
                    loss /= accum_steps
                return loss

            def _backward(_loss):
                if loss_scaler is not None:
                    loss_scaler(
                        _loss,
                        optimizer,
                        clip_grad=args.clip_grad,
                        clip_mode=args.clip_mode,
                        parameters=model_parameters(model, exclude_head="agc" in args.clip_mode),
                        need_update=need_update,
                    )
                else:
                    _loss.backward()
                    if need_update:
                        if args.clip_grad is not None:
                            utils.dispatch_clip_grad(model_parameters(model), value=args.clip_grad, mode=args.clip_mode)
                        optimizer.step()

            loss = _forward()
            _backward(loss)
            if not need_update:
                continue
            num_updates += 1
            optimizer.zero_grad()
            if model_ema is not None:
                model_ema.update(model, step=num_updates)
            if lr_scheduler is not None:
                lr_scheduler.step_update(num_updates=num_updates)


    def main(args):
        device = torch.device(args.device)
        model = create_model(args.model, pretrained=args.pretrained, num_classes=args.num_classes)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        amp_autocast = suppress
        loss_scaler = None
        if args.amp:
            amp_dtype = torch.bfloat16 if args.amp_dtype == "bfloat16" else torch.float16
            amp_autocast = partial(torch.autocast, device_type=device.type, dtype=amp_dtype)
            if amp_dtype == torch.float16:
                loss_scaler = NativeScaler(device=device.type)
        lr_scheduler, num_epochs = create_scheduler_v2(optimizer, **scheduler_kwargs(args))
        for epoch in range(num_epochs):
            train_one_epoch(epoch, model, loader_train, optimizer, train_loss_fn, args, device,
                            lr_scheduler=lr_scheduler, amp_autocast=amp_autocast, loss_scaler=loss_scaler)
            lr_scheduler.step(epoch + 1)
"""


def test_timm_train_is_silent():
    assert _codes(TIMM) == []


def test_timm_loop_facts_see_through_the_local_closures():
    document = Document(_source(TIMM))
    (iteration,) = document.loops.iterations
    kinds = [event.kind for event in iteration.events]
    assert kinds == ["backward", "clip", "step", "zero_grad", "scheduler_step"]
    assert iteration.accumulation.kind == MODULO  # through the `need_update` flag
    backward = iteration.backwards[0]
    assert not backward.direct and document.loops.loss_division(backward) == "unknown"


# ---- a Lightning module: the framework owns the loop --------------------------------------------

LIGHTNING = """
    import torch
    import lightning as L
    from torch import nn


    class LitLM(L.LightningModule):
        def __init__(self, vocab_size=32000, d_model=512):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, d_model)
            layer = nn.TransformerEncoderLayer(d_model, 8, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, 6)
            self.head = nn.Linear(d_model, vocab_size)

        def training_step(self, batch, batch_idx):
            x, y = batch
            logits = self.head(self.encoder(self.embed(x)))
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            optimizer = torch.optim.AdamW(self.parameters(), lr=3e-4)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10_000)
            return [optimizer], [scheduler]


    class ManualGAN(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            sched = self.lr_schedulers()
            sched.step()
            loss = self.compute_loss(batch)
            self.manual_backward(loss)
            opt.step()


    trainer = L.Trainer(max_epochs=10, precision="16-mixed", gradient_clip_val=1.0)
    trainer.fit(LitLM(), train_loader)
"""


def test_lightning_module_is_silent():
    assert _codes(LIGHTNING) == []
    assert Document(_source(LIGHTNING)).loops.iterations == []


# ---- the Hugging Face Trainer: no loop in user code -------------------------------------------------

HF_TRAINER = """
    import torch
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
    args = TrainingArguments(output_dir="out", num_train_epochs=3, fp16=True, gradient_accumulation_steps=4)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds)
    trainer.train()
"""


def test_hf_trainer_usage_is_silent():
    assert _codes(HF_TRAINER) == []


# ---- a file that only defines a model --------------------------------------------------------------

MODEL_ONLY = """
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd, n_head):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)
            self.n_head = n_head

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


    class GPT(nn.Module):
        def configure_optimizers(self, weight_decay, learning_rate, betas):
            decay = [p for p in self.parameters() if p.dim() >= 2]
            no_decay = [p for p in self.parameters() if p.dim() < 2]
            groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
            return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)

        @torch.autocast("cuda", dtype=torch.float16)
        def generate(self, idx, max_new_tokens):
            for _ in range(max_new_tokens):
                logits = self(idx)
                idx = torch.cat((idx, logits[:, -1:].argmax(-1)), dim=1)
            return idx
"""


def test_a_file_that_only_defines_a_model_is_silent():
    assert _codes(MODEL_ONLY) == []
    assert Document(_source(MODEL_ONLY)).loops.iterations == []


# ---- the PyTorch examples (ImageNet, MNIST) -----------------------------------------------------

PYTORCH_IMAGENET_OLD_STYLE = """
    import torch
    import torch.nn as nn
    import torchvision.models as models


    def train(train_loader, model, criterion, optimizer, epoch):
        model.train()
        for i, (images, target) in enumerate(train_loader):
            output = model(images)
            loss = criterion(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


    def main_worker(args):
        model = models.resnet50()
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=0.9, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
        for epoch in range(args.start_epoch, args.epochs):
            scheduler.step()
            train(train_loader, model, criterion, optimizer, epoch)
            validate(val_loader, model, criterion)
"""


def test_pytorch_imagenet_pre_1_1_scheduler_order():
    assert _codes(PYTORCH_IMAGENET_OLD_STYLE) == ["LLM308"]
    fixed = _fixed(PYTORCH_IMAGENET_OLD_STYLE, "LLM308")
    assert _has_lines(
        fixed, "train(train_loader, model, criterion, optimizer, epoch)", "scheduler.step()", "validate(val_loader, model, criterion)"
    )
    # a ResNet: no clipping finding
    assert _findings(PYTORCH_IMAGENET_OLD_STYLE, "LLM302") == []


# ---- shapes the facts must recognise -----------------------------------------------------------------

HELPER_STEP = """
    import torch
    from transformers import AutoModelForCausalLM


    def training_step(model, batch, optimizer, scheduler):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        return loss.item()


    def main():
        model = AutoModelForCausalLM.from_pretrained("gpt2")
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 100))
        for batch in loader:
            optimizer.zero_grad()
            training_step(model, batch, optimizer, scheduler)
"""


def test_events_in_a_helper_count_at_the_call():
    document = Document(_source(HELPER_STEP))
    (iteration,) = document.loops.iterations
    assert [event.kind for event in iteration.events] == ["zero_grad", "backward", "step", "scheduler_step"]
    assert [event.direct for event in iteration.events] == [True, False, False, False]
    # zero_grad before the helper counts; the missing clip is reported inside the helper
    assert _codes(HELPER_STEP) == ["LLM302"]
    assert _lines(HELPER_STEP, "LLM302") == [8]


ACCUMULATION_SPELLINGS = {
    "(i + 1) % accum == 0": (
        "for i, batch in enumerate(loader):\n"
        "    model(batch).loss.backward()\n"
        "    if (i + 1) % accum == 0:\n"
        "        optimizer.step()\n"
        "        optimizer.zero_grad()\n"
    ),
    "step % grad_accum_steps == 0": (
        "for step, batch in enumerate(loader):\n"
        "    loss = model(batch).loss\n"
        "    loss.backward()\n"
        "    if step % grad_accum_steps == 0:\n"
        "        optimizer.step()\n"
        "        optimizer.zero_grad()\n"
    ),
    "not (i + 1) % accum": (
        "for i, batch in enumerate(loader):\n"
        "    model(batch).loss.backward()\n"
        "    if not (i + 1) % accum:\n"
        "        optimizer.step()\n"
        "        optimizer.zero_grad()\n"
    ),
    "flag computed with %": (
        "for i, batch in enumerate(loader):\n"
        "    sync = (i + 1) % accum == 0 or i == last\n"
        "    model(batch).loss.backward()\n"
        "    if sync:\n"
        "        optimizer.step()\n"
        "        optimizer.zero_grad()\n"
    ),
    "micro-step loop": (
        "for it in range(max_iters):\n"
        "    for micro_step in range(accum):\n"
        "        model(next(batches)).loss.backward()\n"
        "    optimizer.step()\n"
        "    optimizer.zero_grad()\n"
    ),
}


@pytest.mark.parametrize("body", ACCUMULATION_SPELLINGS.values(), ids=ACCUMULATION_SPELLINGS.keys())
def test_each_accumulation_spelling_is_recognised_and_its_loss_checked(body):
    source = "import torch\n" + body
    (iteration,) = Document(source).loops.iterations
    assert iteration.accumulation is not None
    assert [finding.code for finding in _findings(source)] == ["LLM307"]
    fixed = _fixed(source, "LLM307")
    assert _findings(fixed, "LLM307") == []


def test_alternating_updates_are_not_accumulation():
    source = _source(
        """
        import torch
        for i, batch in enumerate(loader):
            loss = critic_loss(batch) if i % 2 == 0 else generator_loss(batch)
            loss.backward()
            if i % 2 == 0:
                opt_d.step()
            else:
                opt_g.step()
            opt_d.zero_grad()
            opt_g.zero_grad()
        """
    )
    (iteration,) = Document(source).loops.iterations
    assert iteration.accumulation is None
    assert _codes(source) == []


def test_an_evaluation_autocast_inside_the_training_loop_is_not_training():
    source = """
        import torch
        for step, (x, y) in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(x, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step % 500 == 0:
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
                    val = model(vx, vy)
    """
    assert _codes(source) == []


def test_float16_in_a_forward_helper_the_loop_calls_is_training():
    source = """
        import torch

        def forward_loss(model, batch):
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                return model(**batch).loss

        def train(model, loader, optimizer):
            for batch in loader:
                loss = forward_loss(model, batch)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
    """
    assert _codes(source) == ["LLM305"]
    assert _lines(source, "LLM305") == [4]


def test_float16_offers_bfloat16_as_an_alternative_only():
    source = _source(
        """
        import torch
        from torch.cuda.amp import autocast
        for batch in loader:
            with autocast():
                loss = model(batch)
            loss.backward()
            aux_loss(model).backward()  # two backward passes: the scaler fix is not offered
            opt.step()
            opt.zero_grad()
        """
    )
    (finding,) = find_rule("LLM305").run(Document(source))
    assert finding.fix is None
    (alternative,) = finding.alternatives
    assert "with autocast(dtype=torch.bfloat16):" in apply_fixes(source, [alternative]).text
    assert find_rule("LLM305").run(Document(apply_fixes(source, [alternative]).text)) == []


def test_a_loop_that_allocates_zeros_still_needs_zero_grad():
    source = """
        import torch
        for step in range(1000):
            noise = torch.zeros(4, 8)
            model(noise).sum().backward()
            optimizer.step()
    """
    assert _codes(source) == ["LLM306"]


def test_a_half_model_fine_tuned_with_lora_adapters_is_left_alone():
    source = """
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM
        model = get_peft_model(AutoModelForCausalLM.from_pretrained("gpt2").half(), LoraConfig(r=8))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for batch in loader:
            model(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
    """
    assert _codes(source) == []


def test_optimizer_rebuilt_for_a_persistent_model_still_accumulates():
    source = """
        import torch
        for step in range(100):
            model(x).sum().backward()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            optimizer.step()
    """
    assert _codes(source) == ["LLM306"]


def test_every_loop_rule_reports_through_the_engine():
    source = _source(NANOGPT.replace("        optimizer.zero_grad(set_to_none=True)\n", ""))
    report = analyze_source(source, "train.py")
    assert report.error is None and not report.rule_failures
    assert [finding.code for finding in report.findings if finding.code in LOOP_RULES] == ["LLM306"]
