"""A pretraining config whose token budget is far too small for its model size.

## Problem
For a fixed compute budget, a language model reaches its lowest loss when parameters and training
tokens grow together, at roughly 20 tokens per parameter. A config that trains a model on a few
tokens per parameter spends its FLOPs on a model too large to learn from the data it sees: a smaller
model trained on more tokens, at the same cost, would reach a lower loss and be cheaper to serve.
The numbers are usually all in the config (`n_layer`, `n_embd`, `max_iters`, `batch_size`,
`block_size`), so the mismatch can be seen before the run starts.

## Diagnosis
In one place that pins every number down, the module's globals (nanoGPT's `train.py`) or one config
class's field defaults: the depth (`n_layer`, `num_layers`, `num_hidden_layers`), the width
(`n_embd`, `d_model`, `hidden_size`, `dim`), optionally the vocabulary (`vocab_size`), the steps
(`max_iters`, `max_steps`, `num_steps`), the sequences per step (`batch_size`), the sequence length
(`block_size`, `seq_len`, `context_length`) and, when present, `gradient_accumulation_steps`. The
parameter count is N ≈ 12·n_layer·d² (attention 4d² plus a 4x MLP 8d² per layer) plus V·d for a
tied embedding when the vocabulary is known; the token budget is D = steps × batch × sequence length
× accumulation. The rule reports when D/N is below `min_tokens_per_parameter` (5 by default, a
quarter of the compute-optimal ratio) and N is at least a million. It stays silent when any number
is missing or computed at run time, when the globals are rewritten at run time (nanoGPT's
configurator), when the global batch depends on the number of processes (`world_size`, DDP, FSDP,
Accelerate), when a micro/global batch split or an epoch count makes the step's meaning ambiguous,
for mixture-of-experts configs (total and active parameters differ), and for fine-tuning
(`from_pretrained`, `init_from` other than `"scratch"`, LoRA). Over-training is never reported.

## Hypothesis
Chinchilla's fits put the compute-optimal model for C = 6·N·D FLOPs at N ≈ sqrt(C / 120) with
D ≈ 20·N. A run at D/N = 1 uses a model about 4.5 times larger than optimal for its compute; its
final loss is measurably higher than the compute-optimal model's at the same FLOPs, and every later
inference call pays for the extra parameters.

## Literature
- Hoffmann et al. (2022, Chinchilla) fit loss as a function of parameters and tokens over 400 runs
  and find that compute-optimal training scales both equally, about 20 tokens per parameter; their
  70B model trained on 1.4T tokens beats the 280B Gopher trained on 300B.
- Kaplan et al. (2020) fit earlier scaling laws that favour much larger models trained on fewer
  tokens (N ∝ C^0.73); Chinchilla attributes the difference in large part to learning-rate schedules not
  matched to the training length. The exact optimal ratio depends on data, architecture and
  tokenizer, which is why this rule's evidence is marked contested.
- Touvron et al. (2023, LLaMA) deliberately train far past the compute-optimal point (1T tokens for
  7B parameters) because a smaller model is cheaper at inference; over-training is a legitimate
  choice, so only under-training is reported.

## Recommendation
Either shrink the model towards N ≈ sqrt(C / 120) for the compute you have, or raise the step count
(or batch) until the model sees about 20 tokens per parameter. If the run is a deliberately short
smoke test or ablation, suppress the finding on that line.

## Expected outcome
At the same compute, the resized run ends at a lower validation loss; with the model unchanged and
more tokens, the loss keeps falling well past where the short run stopped. Either way the
tokens-per-parameter ratio printed in the message moves into the 10-100 range.

## Implementation
Before:

    n_layer, n_embd = 12, 768
    max_iters = 5000
    batch_size, block_size = 8, 1024

After (same model, enough tokens):

    n_layer, n_embd = 12, 768
    max_iters = 300000  # ~20 tokens per parameter (Hoffmann et al., 2022)
    batch_size, block_size = 8, 1024

## Caveats
12·L·d² assumes a standard block (4x MLP, no biases); SwiGLU MLPs, untied heads and grouped-query
attention shift N by tens of percent, which does not change a verdict a factor of four away from
optimal. The counts use the config's defaults: command-line overrides, several data-parallel
processes and packed batches are invisible. Scaling-law optima were fitted on web-scale text; tiny
character-level datasets repeated for many epochs follow different curves.

## Next steps
Plot validation loss against training tokens for the current model and for one half its width at
equal FLOPs (a two-point iso-FLOP check); if the smaller model wins, the run was too large for its
budget. For a careful choice, fit the loss-vs-N,D law on a few small runs of your own data.
"""

from __future__ import annotations

import ast
import math
import re

from llmarch_lsp.analyzers.rule import Invalid, Option, Rule, RuleContext, Valid
from llmarch_lsp.document import Document
from llmarch_lsp.facts.config_values import KnownValue, ValueScope
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity

RULE_DOCS = __doc__

_COMPUTE_OPTIMAL_RATIO = 20
_MIN_PARAMETERS = 1_000_000

_LAYERS = ("n_layer", "n_layers", "num_layers", "num_hidden_layers", "depth")
_WIDTHS = ("n_embd", "n_embed", "d_model", "hidden_size", "dim", "embed_dim", "model_dim", "emb_dim")
_VOCABULARY = ("vocab_size", "n_vocab", "padded_vocab_size", "num_tokens", "ntokens")
_STEPS = (
    "max_iters", "max_iter", "max_steps", "num_steps", "train_steps", "total_steps", "num_iterations", "n_steps",
    "total_iters", "num_train_steps", "training_steps", "max_train_steps", "n_iters", "num_iters", "train_iters",
)  # fmt: skip
_BATCH = ("batch_size", "train_batch_size")
_SEQUENCE = (
    "block_size", "seq_len", "sequence_length", "seq_length", "max_seq_len", "context_length", "max_seq_length",
    "ctx_len", "context_len",
)  # fmt: skip
_ACCUMULATION = (
    "gradient_accumulation_steps", "grad_accum_steps", "gradient_accumulation_iters", "accumulation_steps",
    "grad_accum", "accum_steps", "grad_accumulation_steps",
)  # fmt: skip
# Names that make the budget or the parameter count ambiguous: stay silent.
_AMBIGUOUS = re.compile(
    r"(?i)^(?:micro_batch_size|global_batch_size|total_batch_size|tokens_per_(?:iter|step|batch)|world_size|\w*epochs?"
    r"|n_experts|num_experts|num_local_experts|n_routed_experts|moe_\w+|lora_\w+|pretrained\w*|finetun\w*)$"
)
_DISTRIBUTED = re.compile(
    r"(?i)world_size|init_process_group|DistributedDataParallel|FullyShardedDataParallel|Accelerator|deepspeed"
    r"|device_count|num_gpus|n_gpus|\bdevices\b|nproc|from_pretrained"
)


def check(document: Document, context: RuleContext, rule: Rule):
    source = document.source
    if not any(name in source for name in _STEPS) or not any(name in source for name in _LAYERS):
        return
    if not _trains(document):
        return  # a config file alone: the batch may be per device, for processes this file does not show
    values = document.config_values
    scopes: list[ValueScope] = []
    module = values.module
    if module.overridden_by is None:
        scopes.append(module)
    scopes.extend(values.classes.values())
    threshold = float(context.options["min_tokens_per_parameter"])
    for scope in scopes:
        budget = _budget(scope)
        if budget is None:
            continue
        if _distributed_or_pretrained(document):
            return
        finding = _finding(document, rule, budget, threshold)
        if finding is not None:
            yield finding


class _Budget:
    def __init__(self, layers, width, vocabulary, steps, batch, sequence, accumulation):
        self.layers, self.width, self.vocabulary = layers, width, vocabulary
        self.steps, self.batch, self.sequence, self.accumulation = steps, batch, sequence, accumulation

    @property
    def parameters(self) -> float:
        blocks = 12 * self.layers.value * self.width.value**2
        return blocks + (self.vocabulary.value * self.width.value if self.vocabulary is not None else 0)

    @property
    def tokens(self) -> float:
        accumulation = self.accumulation.value if self.accumulation is not None else 1
        return self.steps.value * self.batch.value * self.sequence.value * accumulation


def _budget(scope: ValueScope) -> _Budget | None:
    if any(_AMBIGUOUS.match(name) for name in scope.names):
        return None
    if "init_from" in scope.names:  # nanoGPT: "scratch", "resume" or a GPT-2 checkpoint to fine-tune
        start = scope.get("init_from")
        if start is None or start.value != "scratch":
            return None
    layers = _one(scope, _LAYERS)
    width = _one(scope, _WIDTHS)
    steps = _one(scope, _STEPS)
    batch = _one(scope, _BATCH)
    sequence = _one(scope, _SEQUENCE)
    if None in (layers, width, steps, batch, sequence):
        return None
    accumulation = _one(scope, _ACCUMULATION)
    if accumulation is None and any(name in scope.names for name in _ACCUMULATION):
        return None  # accumulation is set but not known: the budget is not either
    vocabulary = _one(scope, _VOCABULARY)  # unknown: count non-embedding parameters only
    return _Budget(layers, width, vocabulary, steps, batch, sequence, accumulation)


def _one(scope: ValueScope, names: tuple[str, ...]) -> KnownValue | None:
    """The single positive integer the scope gives this quantity, under any of its spellings."""
    declared = [name for name in names if name in scope.names]
    if not declared:
        return None
    known = [scope.get(name) for name in declared]
    if any(value is None or not value.is_positive_int for value in known):
        return None
    if len({value.value for value in known}) != 1:
        return None
    return known[0]


def _trains(document: Document) -> bool:
    """The module runs a training loop: it builds an optimizer or calls `.backward()`."""
    if document.training.optimizers:
        return True
    return any(isinstance(call.func, ast.Attribute) and call.func.attr == "backward" for call in document.index.calls)


def _distributed_or_pretrained(document: Document) -> bool:
    """The global batch depends on the process count, or the weights start from a checkpoint."""
    if _DISTRIBUTED.search(document.source) is None:
        return False
    by_type = document.index.by_type
    search = _DISTRIBUTED.search
    if any(search(node.id) for node in by_type.get(ast.Name, ())) or any(search(node.attr) for node in by_type.get(ast.Attribute, ())):
        return True
    if any(isinstance(node.value, str) and search(node.value) for node in by_type.get(ast.Constant, ())):
        return True
    return any(search(alias.name) for node in by_type.get(ast.ImportFrom, ()) for alias in node.names) or any(
        search(alias.name) for node in by_type.get(ast.Import, ()) for alias in node.names
    )


def _finding(document: Document, rule: Rule, budget: _Budget, threshold: float):
    parameters, tokens = budget.parameters, budget.tokens
    if parameters < _MIN_PARAMETERS:
        return None
    ratio = tokens / parameters
    if ratio >= threshold:
        return None
    compute = 6 * parameters * tokens
    optimal_parameters = math.sqrt(compute / (6 * _COMPUTE_OPTIMAL_RATIO))
    tokens_per_step = tokens / budget.steps.value
    steps_needed = math.ceil(_COMPUTE_OPTIMAL_RATIO * parameters / tokens_per_step)
    formula = f"12·{budget.layers.name}·{budget.width.name}²"
    if budget.vocabulary is not None:
        formula += f" + {budget.vocabulary.name}·{budget.width.name}"
    else:
        formula += ", non-embedding"
    product = " × ".join(
        value.name for value in (budget.steps, budget.batch, budget.sequence, budget.accumulation) if value is not None
    )
    message = (
        f"N ≈ {_count(parameters)} parameters ({formula}) trained on D ≈ {_count(tokens)} tokens ({product}): "
        f"{ratio:.2g} tokens per parameter, far below the ~{_COMPUTE_OPTIMAL_RATIO} that is compute-optimal "
        f"(Hoffmann et al., 2022). C ≈ 6·N·D ≈ {_scientific(compute)} FLOPs would train a ~{_count(optimal_parameters)}-parameter "
        f"model on ~{_count(_COMPUTE_OPTIMAL_RATIO * optimal_parameters)} tokens to a lower loss; or keep this model and "
        f"raise `{budget.steps.name}` to ~{_count(steps_needed, unit='')}"
    )
    related = [
        Related(document.span_of(budget.layers.node), f"`{budget.layers.name}` = {budget.layers.value}"),
        Related(document.span_of(budget.width.node), f"`{budget.width.name}` = {budget.width.value}"),
        Related(document.span_of(budget.batch.node), f"`{budget.batch.name}` = {budget.batch.value}"),
        Related(document.span_of(budget.sequence.node), f"`{budget.sequence.name}` = {budget.sequence.value}"),
    ]
    return rule.finding(document, budget.steps.node, message, related=related)


def _scientific(number: float) -> str:
    mantissa, exponent = f"{number:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _count(number: float, unit: str = "") -> str:
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if number >= size:
            return f"{number / size:.3g}{suffix}{unit}"
    return f"{number:.3g}{unit}"


RULE = Rule(
    code="LLM801",
    name="compute-suboptimal-token-budget",
    summary="A training config whose statically known token budget is far below ~20 tokens per parameter",
    severity=Severity.INFO,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.CONTESTED,
    citation_keys=("hoffmann2022chinchilla", "kaplan2020scaling", "touvron2023llama"),
    check=check,
    docs=RULE_DOCS,
    tags=("scaling-laws", "training", "config"),
    options={
        "min_tokens_per_parameter": Option(
            5.0, "Report configs that train on fewer tokens per parameter than this (compute-optimal is ~20)"
        ),
    },
    valid=(
        # Enough tokens: 124M parameters on 3.0B tokens, ~24 per parameter.
        """
        import torch
        from model import GPT, GPTConfig

        n_layer, n_head, n_embd = 12, 12, 768
        vocab_size = 50304
        batch_size, block_size = 12, 1024
        gradient_accumulation_steps = 40
        max_iters = 6000

        model = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size))
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
        """,
        # nanoGPT's configurator rewrites the globals at run time: the defaults are not the run.
        """
        import torch

        n_layer, n_embd = 12, 768
        batch_size, block_size = 8, 1024
        max_iters = 2000
        exec(open("configurator.py").read())
        optimizer = torch.optim.AdamW(params, lr=6e-4)
        """,
        # The step count comes from the command line.
        """
        import argparse
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--max_iters", type=int, default=2000)
        args = parser.parse_args()
        n_layer, n_embd = 12, 768
        batch_size, block_size = 8, 1024
        max_iters = args.max_iters
        optimizer = torch.optim.AdamW(params, lr=6e-4)
        """,
        # Fine-tuning a pretrained checkpoint: a few tokens per parameter is the point.
        """
        import torch
        from dataclasses import dataclass

        @dataclass
        class FinetuneConfig:
            init_from: str = "gpt2-medium"
            n_layer: int = 24
            n_embd: int = 1024
            max_iters: int = 200
            batch_size: int = 8
            block_size: int = 1024

        def train(model, config, batches):
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
        """,
        # 7.7 tokens per parameter: under the compute-optimal ratio, but above the default threshold.
        """
        import torch

        n_layer, n_embd = 6, 384
        batch_size, block_size = 64, 256
        max_iters = 5000
        optimizer = torch.optim.AdamW(params, lr=1e-3)
        """,
        # Over-training a small model on purpose, LLaMA-style, is not reported.
        Valid(
            """
            import torch
            from dataclasses import dataclass

            @dataclass
            class TrainConfig:
                n_layer: int = 6
                n_embd: int = 384
                max_iters: int = 500000
                batch_size: int = 64
                block_size: int = 256

            def train(model, config):
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            """
        ),
    ),
    invalid=(
        Invalid(
            """
            import torch
            from model import GPT, GPTConfig

            n_layer, n_head, n_embd = 12, 12, 768
            vocab_size = 50304
            batch_size, block_size = 8, 1024
            max_iters = 5000

            model = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=vocab_size))
            optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
            for step in range(max_iters):
                loss = model(*get_batch())[1]
                loss.backward()
                optimizer.step()
            """,
            at=("7:1-7:17",),
        ),
        Invalid(
            """
            import torch
            from dataclasses import dataclass

            @dataclass
            class TrainConfig:
                num_layers: int = 24
                d_model: int = 2048
                max_steps: int = 10_000
                batch_size: int = 32
                seq_len: int = 2048
                gradient_accumulation_steps: int = 2

            def train(model, config: TrainConfig, loader):
                optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
                for step, (x, y) in zip(range(config.max_steps), loader):
                    model(x, y).backward()
                    optimizer.step()
            """,
            at=("8:5-8:28",),
        ),
        Invalid(
            """
            import torch

            n_layer, n_embd = 6, 384
            batch_size, block_size = 64, 256
            max_iters = 5000
            optimizer = torch.optim.AdamW(params, lr=1e-3)
            """,
            at=("5:1-5:17",),
            options={"min_tokens_per_parameter": 10},
        ),
    ),
)
