"""A learned absolute position table sized for long contexts (`nn.Embedding(8192, d)`).

## Problem
The model adds `nn.Embedding(max_len, d)(arange(T))` to its token embeddings: one freely trained
vector per absolute position. With thousands of positions, each row is a separate parameter that
only learns from batches long enough to reach it, and the table has nothing to say about any
position past `max_len`: the context can never grow beyond it without new, untrained rows.

## Diagnosis
A module builds an `nn.Embedding` whose number of rows is statically known to be at least
`min-positions` (4096 by default): a literal, arithmetic on literals, a default argument that no
call in the file overrides, a module constant, `self.x` set from one of those, or `config.x`
where a dataclass or plain config class in the same file gives `x` a single default. It must be a
position table: its name (`wpe`, `pos_emb`, `position_embeddings`, `embed_positions`) or its
class's name (`LearnedPositionalEmbedding`) says so, or the forward indexes it with
`torch.arange(...)` or a `position_ids`-like tensor. Relative-position bias tables
(`rel_pos`, `relative_attention_bias`, `*_bucket*`) are not, and neither are tables sized by an
image grid (`num_patches`, `grid_size ** 2`), whose length never grows.

## Hypothesis
Learned absolute positions tie every pattern the model learns to where it occurs in the window.
Rows near the end of a long table see far fewer gradient updates unless most training sequences
are full length, attention cannot reuse a pattern learned at one offset at another, and
generalisation past the trained length is impossible by construction. Relative schemes encode
only the distance between query and key, which is the same at every position.

## Literature
- Su et al. (2021, RoFormer) introduce rotary position embedding (RoPE): queries and keys are
  rotated by position-dependent angles so their dot product depends only on the relative offset;
  no table and no parameters.
- Press et al. (2022, ALiBi) replace position embeddings with a per-head linear penalty on the
  query-key distance and show models trained on short sequences extrapolate to longer ones.
- Le Scao et al. (2022, "What Language Model to Train if You Have One Million GPU Hours?") find
  ALiBi ahead of learned and rotary positions in their ablations for BLOOM.
- Kazemnejad et al. (2023) find that for length generalisation in decoder-only models no position
  encoding at all (NoPE) does at least as well as RoPE or ALiBi on their tasks, so which relative
  scheme is best remains open.
- Chen et al. (2023, position interpolation) extend RoPE models' context by rescaling positions
  with brief fine-tuning, something a learned table cannot do.

## Recommendation
For a long-context language model use rotary embeddings on queries and keys (the usual choice,
extendable later with position interpolation) or ALiBi biases on the attention scores, and drop
the position table.

## Expected outcome
No position parameters, attention patterns that transfer across positions, and a model whose
context can be extended later (RoPE with interpolation; ALiBi directly). At equal length,
perplexity is usually equal or slightly better; the larger gains show up beyond the trained length.

## Implementation
Before:

    self.wpe = nn.Embedding(block_size, n_embd)  # block_size = 8192
    ...
    x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))

After (RoPE, applied inside attention to q and k):

    x = self.wte(idx)
    ...
    q, k = apply_rotary(q, cos[:T], sin[:T]), apply_rotary(k, cos[:T], sin[:T])  # (B, nh, T, hs)

There is no quick fix: the change touches the attention code and invalidates trained weights.

## Caveats
Information only. The finding is about the architecture's long-context behaviour, which depends
on how the model is trained and used; a model that is always trained and evaluated at full
length with learned positions can work well (GPT-2 and BERT used them at 1024 and 512, which are
below the threshold and never reported). Claims that relative schemes extrapolate are contested:
RoPE itself degrades past its trained length without interpolation, and NoPE results suggest the
picture depends on the task. Table sizes that come from another file or a checkpoint's config
(Hugging Face `config.max_position_embeddings`) are unknown here and not reported.

## Next steps
Measure perplexity by position within the window (late positions suffer first), and at lengths
beyond training if longer contexts matter; compare a RoPE variant at equal compute.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Option, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.modules import ModuleClass, dotted_name
from llmarch_lsp.facts.stacks import Submodule
from llmarch_lsp.findings import Confidence, Evidence, Severity

RULE_DOCS = __doc__

_EMBEDDING = "torch.nn.Embedding"
_POSITION_PART = re.compile(r"pos|posemb|position|positions|positional|wpe|pe|abspos|absolute")
_NOT_ABSOLUTE_PART = re.compile(r"rel|relative|bucket|buckets|bias|token|tokens|tok|wte|word|words|vocab|type|segment|rope")
_POSITION_CLASS = re.compile(r"Position|Positional")
_SPATIAL = re.compile(r"patch|grid|image|img|pixel|spatial|height|width", re.IGNORECASE)


def check(document: Document, context: RuleContext, rule: Rule):
    if "Embedding" not in document.source or not document.imports.imports_module("torch"):
        return
    threshold = context.options["min-positions"]
    stacks_facts = document.stacks
    for module in document.modules.classes:
        if not module.submodules:
            continue
        for submodule in stacks_facts.submodules(module).values():
            if stacks_facts.constructor(submodule.call) != _EMBEDDING:
                continue
            rows = _rows(submodule.call)
            if rows is not None and _SPATIAL.search(document.segment(rows)):
                continue  # a fixed grid of image patches is not a context that grows
            named = _named_as_positions(module, submodule)
            # Cheap tests first: a table that is named for something else, or not named for
            # positions in a class whose forward never builds an `arange`, is not looked at.
            if rows is None or named is False or (named is None and not _forward_mentions_arange(document, module)):
                continue
            count = stacks_facts.static_int(rows, submodule.call)
            if count is None or count < threshold:
                continue
            if not named and not _indexed_by_positions(document, module, submodule):
                continue
            yield rule.finding(document, submodule.call, _message(document, submodule, rows, count))


def _rows(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    return next((keyword.value for keyword in call.keywords if keyword.arg == "num_embeddings"), None)


def _parts(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [part for part in re.split(r"[_\d]+", spaced.lower()) if part]


def _named_as_positions(module: ModuleClass, submodule: Submodule) -> bool | None:
    """True for `wpe`, `pos_emb`, or any table of a `...PositionalEmbedding` class; False for a
    token, type or relative-position table; None when the name does not say."""
    parts = _parts(submodule.name)
    if any(_NOT_ABSOLUTE_PART.fullmatch(part) for part in parts):
        return False
    if any(_POSITION_PART.fullmatch(part) for part in parts):
        return True
    if _POSITION_CLASS.search(module.name) and not any(_NOT_ABSOLUTE_PART.fullmatch(part) for part in _parts(module.name)):
        return True
    return None


def _forward_mentions_arange(document: Document, module: ModuleClass) -> bool:
    return module.forward is not None and "arange" in document.segment(module.forward)


def _indexed_by_positions(document: Document, module: ModuleClass, submodule: Submodule) -> bool:
    """The forward calls it on `torch.arange(...)`, a name bound to one, or `position_ids`."""
    if module.forward is None:
        return False
    flow = None
    for call in document.stacks.nodes_in(module.forward, ast.Call):
        if dotted_name(call.func) != submodule.reference or not call.args:
            continue
        argument = call.args[0]
        if isinstance(argument, ast.Name):
            if any(_POSITION_PART.fullmatch(part) for part in _parts(argument.id)):
                return True
            flow = flow or document.residuals.forward_flow(module)
            value = flow.resolved.get(argument)
            argument = value.expression if value is not None and value.expression is not None else argument
        if "arange" in document.segment(argument):
            return True
    return False


def _message(document: Document, submodule: Submodule, rows: ast.expr, count: int) -> str:
    text = document.segment(rows)
    size = f"{count:,}" if text.replace("_", "") == str(count) else f"{text} = {count:,}"
    return (
        f"learned absolute position table `{submodule.reference}` with {size} rows: each position is a separately "
        "trained vector, late rows learn only from full-length batches and nothing past the table exists; "
        "rotary embeddings (Su et al., 2021) or ALiBi (Press et al., 2022) encode relative offsets without a table"
    )


RULE = Rule(
    code="LLM401",
    name="learned-positions-long-context",
    summary="A learned absolute position table is sized for long contexts",
    severity=Severity.INFO,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.CONTESTED,
    citation_keys=("su2021roformer", "press2022alibi", "lescao2022whatlm", "kazemnejad2023nope", "chen2023pi"),
    check=check,
    docs=RULE_DOCS,
    tags=("positions", "long-context", "architecture"),
    options={"min-positions": Option(4096, "position tables with at least this many rows are reported")},
    valid=(
        # GPT-2 / nanoGPT: 1024 learned positions.
        """
        from dataclasses import dataclass
        import torch
        import torch.nn as nn
        @dataclass
        class GPTConfig:
            block_size: int = 1024
            n_embd: int = 768
        class GPT(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.wpe = nn.Embedding(config.block_size, config.n_embd)
        """,
        # BERT-like: 512 positions.
        """
        from torch import nn
        class Embeddings(nn.Module):
            def __init__(self, vocab_size=30522, hidden=768, max_position_embeddings=512):
                super().__init__()
                self.word_embeddings = nn.Embedding(vocab_size, hidden)
                self.position_embeddings = nn.Embedding(max_position_embeddings, hidden)
        """,
        # The size comes from a config defined elsewhere: unknown, so silent.
        """
        from torch import nn
        class Embeddings(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        """,
        # A big token table and a relative-position bias table are not absolute positions.
        """
        import torch.nn as nn
        class Model(nn.Module):
            def __init__(self, heads, dim):
                super().__init__()
                self.tok_emb = nn.Embedding(32000, dim)
                self.rel_pos_bias = nn.Embedding(2 * 4096 - 1, heads)
        """,
        # The default is overridden where the model is built.
        """
        import torch.nn as nn
        class LM(nn.Module):
            def __init__(self, dim, max_len=8192):
                super().__init__()
                self.pos_emb = nn.Embedding(max_len, dim)
        model = LM(512, max_len=1024)
        """,
    ),
    invalid=(
        Invalid(
            """
            from dataclasses import dataclass
            import torch
            import torch.nn as nn
            @dataclass
            class GPTConfig:
                block_size: int = 8192
                n_embd: int = 768
            class GPT(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.transformer = nn.ModuleDict(dict(
                        wpe=nn.Embedding(config.block_size, config.n_embd),
                    ))
            """,
            at=("12:17-12:63",),
        ),
        # Found through `arange` indexing; the size is a default argument times a module constant.
        Invalid(
            """
            import torch
            from torch import nn
            SCALE = 4
            class Absolute(nn.Module):
                def __init__(self, dim, max_seq_len=2048):
                    super().__init__()
                    self.emb = nn.Embedding(max_seq_len * SCALE, dim)
                def forward(self, x):
                    positions = torch.arange(x.shape[1], device=x.device)
                    return self.emb(positions)
            """,
            at=("7:20-7:58",),
        ),
    ),
)
