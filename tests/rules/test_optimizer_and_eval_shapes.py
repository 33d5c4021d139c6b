"""LLM303, LLM304, LLM309 and LLM310 on code shaped like well-known training and model code.

Each snippet follows the shape of a real codebase (nanoGPT, minGPT, Hugging Face's no-trainer
examples and `Trainer`, timm, Lightning, the PyTorch examples), written in our own words. The silent
ones are the false positives that would make users turn a rule off; the flagged ones pin exact
ranges and the fix.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.fixes.apply import apply_fixes

CODES = ("LLM303", "LLM304", "LLM309", "LLM310")
RULES = {code: find_rule(code) for code in CODES}


def _source(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def _ranges(code: str, rule_code: str) -> list[str]:
    findings = RULES[rule_code].run(Document(_source(code)))
    return [f"{f.span.line}:{f.span.column + 1}-{f.span.end_line}:{f.span.end_column + 1}" for f in findings]


def _all_findings(code: str) -> dict[str, list[str]]:
    return {rule_code: _ranges(code, rule_code) for rule_code in CODES}


# ---- shapes that must stay silent for all four rules ---------------------------------------

# nanoGPT's model.py: a model file with the two-group optimizer split built by the model itself.
NANOGPT_MODEL = """
    import inspect
    import math

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


    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
            self.attn = nn.MultiheadAttention(config.n_embd, config.n_head, batch_first=True)
            self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
            self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(), nn.Linear(4 * config.n_embd, config.n_embd))

        def forward(self, x):
            h = self.ln_1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.ln_2(x))


    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
            self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
            self.ln_f = LayerNorm(config.n_embd, bias=config.bias)
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

        def forward(self, idx, targets=None):
            x = self.wte(idx)
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
            return logits, loss

        def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
            params = {name: p for name, p in self.named_parameters() if p.requires_grad}
            matrices = [p for name, p in params.items() if p.dim() >= 2]
            vectors = [p for name, p in params.items() if p.dim() < 2]
            groups = [
                {"params": matrices, "weight_decay": weight_decay},
                {"params": vectors, "weight_decay": 0.0},
            ]
            fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type == "cuda"
            return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused)

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0):
            for _ in range(max_new_tokens):
                logits, _ = self(idx)
                probs = F.softmax(logits[:, -1, :] / temperature, dim=-1)
                idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
            return idx
"""

# nanoGPT's train.py: a module-level script, an evaluation helper that is decorated and that
# switches the model back to training mode itself.
NANOGPT_TRAIN = """
    import math
    import time

    import torch
    from model import GPT, GPTConfig

    eval_interval = 2000
    eval_iters = 200
    weight_decay = 1e-1
    learning_rate = 6e-4
    max_iters = 600000

    model = GPT(GPTConfig())
    scaler = torch.cuda.amp.GradScaler(enabled=False)
    optimizer = model.configure_optimizers(weight_decay, learning_rate, (0.9, 0.95), "cuda")


    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ["train", "val"]:
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                X, Y = get_batch(split)
                logits, loss = model(X, Y)
                losses[k] = loss.item()
            out[split] = losses.mean()
        model.train()
        return out


    iter_num = 0
    X, Y = get_batch("train")
    while True:
        if iter_num % eval_interval == 0:
            losses = estimate_loss()
            print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        for micro_step in range(4):
            logits, loss = model(X, Y)
            X, Y = get_batch("train")
            scaler.scale(loss / 4).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        iter_num += 1
        if iter_num > max_iters:
            break
"""

# minGPT: the model picks decayed parameters by module type; the trainer loop has no evaluation.
MINGPT = """
    import torch
    import torch.nn as nn
    from torch.utils.data.dataloader import DataLoader


    class GPT(nn.Module):
        def configure_optimizers(self, train_config):
            decay, no_decay = set(), set()
            decayed_modules = (torch.nn.Linear,)
            exempt_modules = (torch.nn.LayerNorm, torch.nn.Embedding)
            for module_name, module in self.named_modules():
                for param_name, _ in module.named_parameters():
                    full_name = f"{module_name}.{param_name}" if module_name else param_name
                    if param_name.endswith("bias"):
                        no_decay.add(full_name)
                    elif param_name.endswith("weight") and isinstance(module, decayed_modules):
                        decay.add(full_name)
                    elif param_name.endswith("weight") and isinstance(module, exempt_modules):
                        no_decay.add(full_name)
            params = dict(self.named_parameters())
            groups = [
                {"params": [params[name] for name in sorted(decay)], "weight_decay": train_config.weight_decay},
                {"params": [params[name] for name in sorted(no_decay)], "weight_decay": 0.0},
            ]
            return torch.optim.AdamW(groups, lr=train_config.learning_rate, betas=train_config.betas)


    class Trainer:
        def __init__(self, config, model, train_dataset):
            self.config = config
            self.model = model
            self.train_dataset = train_dataset

        def run(self):
            model, config = self.model, self.config
            self.optimizer = model.configure_optimizers(config)
            loader = DataLoader(self.train_dataset, shuffle=True, batch_size=config.batch_size)
            model.train()
            data_iter = iter(loader)
            while True:
                x, y = next(data_iter)
                logits, self.loss = model(x, y)
                model.zero_grad(set_to_none=True)
                self.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_norm_clip)
                self.optimizer.step()
"""

# Hugging Face run_clm_no_trainer.py: name-based no_decay groups, model.train() at the top of
# each epoch, evaluation under no_grad at its end.
HF_CLM_NO_TRAINER = """
    import math

    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, get_scheduler


    def main(args):
        accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps)
        model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
        no_decay = ["bias", "layer_norm.weight"]
        grouped = [
            {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": args.weight_decay},
            {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(grouped, lr=args.learning_rate)
        lr_scheduler = get_scheduler(args.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=args.num_warmup_steps, num_training_steps=args.max_train_steps)
        model, optimizer, train_dataloader, eval_dataloader, lr_scheduler = accelerator.prepare(
            model, optimizer, train_dataloader, eval_dataloader, lr_scheduler
        )
        for epoch in range(args.num_train_epochs):
            model.train()
            for step, batch in enumerate(train_dataloader):
                with accelerator.accumulate(model):
                    outputs = model(**batch)
                    accelerator.backward(outputs.loss)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()
            model.eval()
            losses = []
            for step, batch in enumerate(eval_dataloader):
                with torch.no_grad():
                    outputs = model(**batch)
                losses.append(accelerator.gather_for_metrics(outputs.loss.repeat(args.per_device_eval_batch_size)))
            perplexity = math.exp(torch.mean(torch.cat(losses)))
            accelerator.print(f"epoch {epoch}: perplexity: {perplexity}")
"""

# The Hugging Face Trainer: no loop, no optimizer and no evaluation code of the user's own.
HF_TRAINER = """
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
    args = TrainingArguments(output_dir="out", eval_strategy="epoch", weight_decay=0.01, learning_rate=2e-5)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds)
    trainer.train()
    metrics = trainer.evaluate()
    print(metrics)
"""

# timm: the optimizer factory builds the groups; train_one_epoch sets train mode; validate runs
# under no_grad.
TIMM_TRAIN = """
    import torch
    import torch.nn as nn
    from timm.models import create_model
    from timm.optim import create_optimizer_v2, param_groups_weight_decay


    def train_one_epoch(epoch, model, loader, optimizer, loss_fn):
        model.train()
        for batch_idx, (input, target) in enumerate(loader):
            loss = loss_fn(model(input), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


    def validate(model, loader, loss_fn):
        model.eval()
        total = 0.0
        with torch.no_grad():
            for batch_idx, (input, target) in enumerate(loader):
                output = model(input)
                total += loss_fn(output, target).item()
        return total / len(loader)


    def main(args):
        model = create_model(args.model, pretrained=False, num_classes=1000)
        if args.simple_groups:
            optimizer = torch.optim.AdamW(param_groups_weight_decay(model, args.weight_decay), lr=args.lr)
        else:
            optimizer = create_optimizer_v2(model, opt="adamw", lr=args.lr, weight_decay=0.05)
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(args.epochs):
            train_one_epoch(epoch, model, train_loader, optimizer, loss_fn)
            eval_loss = validate(model, eval_loader, loss_fn)
"""

# A Lightning module: the framework owns the loop, the mode switches and autograd around
# validation_step; the optimizer is built from explicit groups.
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

        def forward(self, x):
            return self.head(self.encoder(self.embed(x)))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x).flatten(0, 1), y.flatten())

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self.model(x).flatten(0, 1), y.flatten()))

        def configure_optimizers(self):
            decay = [p for p in self.parameters() if p.dim() >= 2]
            rest = [p for p in self.parameters() if p.dim() < 2]
            return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=3e-4)
"""

# The PyTorch MNIST example: plain Adadelta, a `test` function under no_grad, and `train`
# setting train mode at the start of every epoch.
PYTORCH_MNIST = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 32, 3, 1)
            self.fc = nn.Linear(5408, 10)

        def forward(self, x):
            return F.log_softmax(self.fc(torch.flatten(F.relu(self.conv(x)), 1)), dim=1)


    def train(model, device, train_loader, optimizer, epoch):
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            F.nll_loss(model(data), target).backward()
            optimizer.step()


    def test(model, device, test_loader):
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                correct += model(data).argmax(dim=1).eq(target).sum().item()
        return correct


    def main():
        model = Net()
        optimizer = optim.Adadelta(model.parameters(), lr=1.0)
        for epoch in range(1, 15):
            train(model, "cpu", train_loader, optimizer, epoch)
            test(model, "cpu", test_loader)
"""

# A frozen teacher in eval mode for good, distilled into a student that is switched back.
DISTILLATION = """
    import torch
    import torch.nn.functional as F

    teacher.eval()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.0)
    for step, (x, y) in enumerate(loader):
        student.train()
        with torch.no_grad():
            soft = F.softmax(teacher(x) / 2.0, dim=-1)
        loss = F.kl_div(F.log_softmax(student(x) / 2.0, dim=-1), soft, reduction="batchmean")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 1000 == 0:
            student.eval()
            with torch.no_grad():
                print(evaluate_student(student))
"""

# Adversarial evaluation: gradients with respect to the input are the point.
ADVERSARIAL_EVAL = """
    import torch
    import torch.nn.functional as F


    def evaluate_robustness(model, loader, epsilon):
        model.eval()
        correct = 0
        for x, y in loader:
            x = x.clone().requires_grad_(True)
            loss = F.cross_entropy(model(x), y)
            grad, = torch.autograd.grad(loss, x)
            x_adv = (x + epsilon * grad.sign()).detach()
            with torch.no_grad():
                correct += model(x_adv).argmax(-1).eq(y).sum().item()
        return correct
"""

SILENT = {
    "nanogpt-model": NANOGPT_MODEL,
    "nanogpt-train": NANOGPT_TRAIN,
    "mingpt": MINGPT,
    "hf-clm-no-trainer": HF_CLM_NO_TRAINER,
    "hf-trainer": HF_TRAINER,
    "timm-train": TIMM_TRAIN,
    "lightning-module": LIGHTNING_MODULE,
    "pytorch-mnist": PYTORCH_MNIST,
    "distillation": DISTILLATION,
    "adversarial-eval": ADVERSARIAL_EVAL,
}


@pytest.mark.parametrize("code", SILENT.values(), ids=SILENT.keys())
def test_real_shapes_are_silent(code):
    assert _all_findings(code) == {rule_code: [] for rule_code in CODES}


# ---- shapes that must be flagged --------------------------------------------------------------

# A classic seq2seq script: Adam with an L2 coefficient, evaluation without no_grad, and the
# model left in eval mode after the first evaluation.
SEQ2SEQ_SCRIPT = """
    import torch
    import torch.nn as nn
    from torch import optim

    weight_decay = 1e-5


    def evaluate(model, loader, criterion):
        model.eval()
        total = 0.0
        for src, trg in loader:
            output = model(src, trg)
            total += criterion(output.flatten(0, 1), trg.flatten()).item()
        return total / len(loader)


    def main():
        model = Seq2Seq(encoder, decoder)
        optimizer = optim.Adam(model.parameters(), lr=1e-3, weight_decay=weight_decay)
        criterion = nn.CrossEntropyLoss()
        for epoch in range(20):
            for src, trg in train_loader:
                optimizer.zero_grad()
                loss = criterion(model(src, trg).flatten(0, 1), trg.flatten())
                loss.backward()
                optimizer.step()
            valid_loss = evaluate(model, valid_loader, criterion)
            print(f"epoch {epoch}: {valid_loss:.3f}")
"""

SEQ2SEQ_FIXED = """
    import torch
    import torch.nn as nn
    from torch import optim

    weight_decay = 1e-5


    @torch.no_grad()
    def evaluate(model, loader, criterion):
        model.eval()
        total = 0.0
        for src, trg in loader:
            output = model(src, trg)
            total += criterion(output.flatten(0, 1), trg.flatten()).item()
        return total / len(loader)


    def main():
        model = Seq2Seq(encoder, decoder)
        optimizer = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=weight_decay)
        criterion = nn.CrossEntropyLoss()
        for epoch in range(20):
            for src, trg in train_loader:
                optimizer.zero_grad()
                loss = criterion(model(src, trg).flatten(0, 1), trg.flatten())
                loss.backward()
                optimizer.step()
            valid_loss = evaluate(model, valid_loader, criterion)
            print(f"epoch {epoch}: {valid_loss:.3f}")
            model.train()
"""


def test_seq2seq_script_is_flagged_by_each_rule_that_applies():
    assert _all_findings(SEQ2SEQ_SCRIPT) == {
        "LLM303": ["19:17-19:83"],
        "LLM304": [],  # plain Adam: LLM303's business until it is AdamW
        "LLM309": ["12:18-12:33", "27:22-27:62"],
        "LLM310": [],
    }


def test_seq2seq_fixes_compose_and_leave_only_the_parameter_groups_advice():
    source = _source(SEQ2SEQ_SCRIPT)
    fixes = [
        finding.fix
        for code in ("LLM303", "LLM309")
        for finding in RULES[code].run(Document(source))
        if finding.fix is not None
    ]
    fixed = apply_fixes(source, fixes).text
    assert fixed == _source(SEQ2SEQ_FIXED)
    after = _all_findings(fixed)
    assert after["LLM303"] == [] and after["LLM309"] == []
    # now that it is AdamW, the decay reaches norms and biases
    assert after["LLM304"] == ["20:17-20:84"]


ADAM_DECAY_SPELLINGS = {
    "annotated module constant": ("import torch\nweight_decay: float = 1e-4\nopt = torch.optim.Adam(m.parameters(), weight_decay=weight_decay)\n", ["3:7-3:66"]),
    "swept in a loop": ("import torch\nwd = 1e-4\nfor wd in (0.0, 1e-4):\n    opt = torch.optim.Adam(m.parameters(), weight_decay=wd)\n", []),
    "keyword arguments from a dict": ("import torch\nopt = torch.optim.Adam(m.parameters(), **optimizer_kwargs)\n", []),
    "reassigned from the command line": ("import torch\nwd = 1e-4\nwd = args.wd\nopt = torch.optim.Adam(m.parameters(), weight_decay=wd)\n", []),
}


# A Hugging Face fine-tuning script written by hand: AdamW's default decay over every parameter.
HF_FINETUNE = """
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained("roberta-base", num_labels=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    model.train()
    for epoch in range(3):
        for batch in train_loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
"""


def test_adamw_default_decay_over_all_parameters_is_flagged():
    (finding,) = RULES["LLM304"].run(Document(_source(HF_FINETUNE)))
    assert finding.span.line == 5
    assert "decays by default (`weight_decay=0.01`)" in finding.message


# A training script with a periodic evaluation written inline.
INLINE_EVAL = """
    import torch
    from model import GPT

    model = GPT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)
    for it in range(100_000):
        if it % 1000 == 0:
            model.eval()
            val_logits, val_loss = model(*get_batch("val"))
            print(val_loss.item())
        logits, loss = model(*get_batch("train"))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
"""

INLINE_EVAL_FIXED = """
    import torch
    from model import GPT

    model = GPT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)
    for it in range(100_000):
        if it % 1000 == 0:
            model.eval()
            with torch.no_grad():
                val_logits, val_loss = model(*get_batch("val"))
            print(val_loss.item())
            model.train()
        logits, loss = model(*get_batch("train"))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
"""


def test_inline_periodic_evaluation_gets_both_fixes():
    source = _source(INLINE_EVAL)
    findings = RULES["LLM309"].run(Document(source))
    assert [(f.span.line, f.span.column) for f in findings] == [(9, 31), (8, 8)]
    fixed = apply_fixes(source, [f.fix for f in findings]).text
    assert fixed == _source(INLINE_EVAL_FIXED)
    assert RULES["LLM309"].run(Document(fixed)) == []


def test_eval_before_training_in_the_same_epoch_restores_before_training():
    source = _source("""
        import torch
        model.train()
        for epoch in range(10):
            model.eval()
            with torch.no_grad():
                score = model(val_x).mean()
            log(score)
            for x, y in loader:
                model(x).sum().backward()
                optimizer.step()
    """)
    (finding,) = RULES["LLM309"].run(Document(source))
    fixed = apply_fixes(source, [finding.fix]).text
    assert "    log(score)\n    model.train()\n    for x, y in loader:" in fixed


# A model file whose blocks call submodules' forward directly.
MODEL_WITH_DIRECT_FORWARD = """
    import torch.nn as nn


    class Expert(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.up = nn.Linear(dim, 4 * dim)
            self.down = nn.Linear(4 * dim, dim)

        def forward(self, x):
            return self.down(nn.functional.gelu(self.up(x)))


    class MoE(nn.Module):
        def __init__(self, dim, n_experts):
            super().__init__()
            self.router = nn.Linear(dim, n_experts)
            self.shared = Expert(dim)
            self.experts = nn.ModuleList([Expert(dim) for _ in range(n_experts)])

        def forward(self, x):
            weights = self.router.forward(x).softmax(-1)
            out = self.shared.forward(x)
            for i, expert in enumerate(self.experts):
                out = out + weights[..., i : i + 1] * expert.forward(x)
            return out
"""


def test_direct_forward_calls_on_known_submodules_are_flagged_in_a_model_file():
    findings = _all_findings(MODEL_WITH_DIRECT_FORWARD)
    # `expert` is a loop variable: its type is not known, so it stays silent
    assert findings == {"LLM303": [], "LLM304": [], "LLM309": [], "LLM310": ["22:19-22:41", "23:15-23:37"]}


def test_forward_fix_keeps_the_arguments():
    source = _source(MODEL_WITH_DIRECT_FORWARD)
    fixes = [finding.fix for finding in RULES["LLM310"].run(Document(source))]
    fixed = apply_fixes(source, fixes).text
    assert "weights = self.router(x).softmax(-1)" in fixed
    assert "out = self.shared(x)" in fixed
    assert "expert.forward(x)" in fixed


# ---- one-line spellings around the edges -------------------------------------------------------

DECOUPLED_DECAY_SPELLINGS = {
    "Lion with its default (no decay)": ("from lion_pytorch import Lion\nimport torch\nopt = Lion(model.parameters(), lr=1e-4)\n", []),
    "Lion with decay": ("from lion_pytorch import Lion\nimport torch\nopt = Lion(model.parameters(), lr=1e-4, weight_decay=1.0)\n", ["3:7-3:58"]),
    "SGD decays with L2, as ResNet recipes intend": ("import torch\nopt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=5e-4)\n", []),
    "Adam asked for decoupled decay": ("import torch\nopt = torch.optim.Adam(model.parameters(), weight_decay=0.1, decoupled_weight_decay=True)\n", ["2:7-2:90"]),
    "a filtered iterator is left alone": ("import torch\nopt = torch.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-4)\n", []),
    "a helper's groups": ("import torch\nopt = torch.optim.AdamW(make_groups(model), lr=1e-4)\n", []),
}


EVALUATION_SPELLINGS = {
    # generation is decorated with no_grad inside Hugging Face models; no forward call here
    "generation only": ("""
        import torch
        def evaluate(model, prompts):
            model.eval()
            return [model.generate(p, max_new_tokens=20) for p in prompts]
    """, []),
    # the Trainer's own hooks: prediction_step is where HF disables autograd
    "trainer hook": ("""
        import torch
        from transformers import Trainer
        class MyTrainer(Trainer):
            def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
                with torch.no_grad():
                    return (model(**inputs).loss, None, None)
    """, []),
    # input validation, not an evaluation pass
    "validate_* checks": ("""
        import torch
        def validate_batch(model, batch):
            assert model(batch).shape[0] == batch.shape[0]
    """, []),
    # a method that happens to be called `model`, on something that is not one
    "z3-style model()": ("""
        import torch
        def _validate(solver, constraints):
            solver.add(constraints)
            return solver.model(constraints)
    """, []),
    # a hand-written evaluation method on a trainer class
    "trainer class method": ("""
        import torch
        class Runner:
            def evaluate(self, loader):
                self.model.eval()
                return [self.model(x).argmax(-1) for x in loader]
    """, ["5:17-5:30"]),
    # a script that evaluates after training in main(): only the evaluation part counts
    "main trains then evaluates": ("""
        import torch
        def main():
            for x, y in loader:
                model(x).sum().backward()
                optimizer.step()
            model.eval()
            preds = model(test_x)
            print(preds.argmax(-1))
    """, ["7:13-7:26"]),
}


def test_main_that_trains_gets_a_with_block_not_a_decorator():
    source = _source(EVALUATION_SPELLINGS["main trains then evaluates"][0])
    (finding,) = RULES["LLM309"].run(Document(source))
    fixed = apply_fixes(source, [finding.fix]).text
    assert "@torch.no_grad()" not in fixed
    assert "    model.eval()\n    with torch.no_grad():\n        preds = model(test_x)\n    print(" in fixed


FORWARD_SPELLINGS = {
    "wrapped for DDP": ("import torch\nfrom torch.nn.parallel import DistributedDataParallel as DDP\nmodel = DDP(torch.nn.Linear(4, 4).cuda())\ny = model.forward(x)\n", ["4:5-4:21"]),
    "annotated parameter": ("import torch.nn as nn\ndef run(block: nn.Module, x):\n    return block.forward(x)\n", ["3:12-3:28"]),
    "unannotated parameter": ("import torch.nn as nn\ndef run(block, x):\n    return block.forward(x)\n", []),
    "rebound to something unknown": ("import torch.nn as nn\nm = nn.Linear(4, 4)\nm = load(m)\ny = m.forward(x)\n", []),
    "a scripted module": ("import torch\nm = torch.jit.script(torch.nn.Linear(4, 4))\ny = m.forward(x)\n", []),
    "an imported object": ("import torch\nfrom pipeline import model\ny = model.forward(x)\n", []),
}


def test_a_model_known_only_by_its_clipped_gradients_counts_as_trained():
    source = """
        import torch
        decay = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW([{"params": decay}, {"params": rest, "weight_decay": 0.0}])
        for it in range(1000):
            loss = model(*get_batch())[1]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if it % 100 == 0:
                model.eval()
                with torch.no_grad():
                    print(model(*get_batch())[1].item())
    """
    assert _ranges(source, "LLM309") == ["11:9-11:21"]
    # a teacher whose parameters are only frozen is not a trained model
    frozen_teacher = source.replace("model.eval()", "teacher.eval()")
    assert _ranges(frozen_teacher, "LLM309") == []


SPELLINGS = [
    pytest.param(rule_code, code, ranges, id=f"{rule_code}-{name}")
    for rule_code, table in (
        ("LLM303", ADAM_DECAY_SPELLINGS),
        ("LLM304", DECOUPLED_DECAY_SPELLINGS),
        ("LLM309", EVALUATION_SPELLINGS),
        ("LLM310", FORWARD_SPELLINGS),
    )
    for name, (code, ranges) in table.items()
]


@pytest.mark.parametrize(("rule_code", "code", "ranges"), SPELLINGS)
def test_spellings_around_the_edges(rule_code, code, ranges):
    assert _ranges(code, rule_code) == ranges
