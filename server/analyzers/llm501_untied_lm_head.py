"""A language model learns its output head separately from its token embedding.

## Problem
The model embeds tokens with `nn.Embedding(V, d)` and predicts them with `nn.Linear(d, V)`: two
V×d matrices that describe the same vocabulary, trained independently. For typical vocabularies
that second matrix is a large share of a small model's parameters (38.6M of GPT-2 small's 124M),
and the output rows of rare tokens get few useful updates.

## Diagnosis
A module class builds an `nn.Embedding(V, d)` and an `nn.Linear(d, V)` whose vocabulary and width
are the same expressions (`config.vocab_size` and `config.n_embd` in both, also through
`nn.ModuleDict(dict(wte=...))`), where the vocabulary expression or the two names say it is a
token vocabulary (`vocab_size`, `n_tokens`; `wte`/`tok_emb` with `lm_head`/`to_logits`). Nothing
ties them, in the class or in the file's code outside classes: no `head.weight = embedding.weight`
(either direction), no use of the embedding's weight as the output projection
(`F.linear(x, self.wte.weight)`), no mention of tying (`tie_weights`, `tie_word_embeddings`,
`_tied_weights_keys`, `tied`, a `get_output_embeddings` method for Hugging Face's tying). The class is not a Hugging Face `PreTrainedModel`, which ties
through its config, and the file does not load pretrained checkpoints (`from_pretrained`,
`_load_from_state_dict`, Hugging Face conversion), whose layout the model must keep.

## Hypothesis
The input embedding and the output classifier both place tokens in the same d-dimensional space;
sharing one matrix gives every output row the gradient of every input occurrence too, which
regularizes rare tokens and removes V·d parameters without changing the compute.

## Literature
- Press and Wolf (2017, "Using the Output Embedding to Improve Language Models") show that tying
  the input embedding to the output softmax weights lowers perplexity on word-level language
  models and translation and cuts the parameter count substantially.
- Radford et al. (2019, GPT-2) and nanoGPT share `wte` with the output projection; Chowdhery et
  al. (2022, PaLM) also share input and output embeddings at 540B parameters.
- Touvron et al. (2023, LLaMA) keep them separate: at several billion parameters the saving is a
  small fraction of the model, and untied heads are a deliberate choice in several large recipes.

## Recommendation
Tie the head to the embedding after both are built: `self.lm_head.weight = self.wte.weight`. The
head's bias, if it has one, stays its own. If untying is deliberate (a large model, or a
recipe you are reproducing), say so with a comment mentioning it, which also silences this hint.

## Expected outcome
V·d fewer parameters (and optimizer state), the same FLOPs, and for small and mid-sized language
models equal or slightly lower validation loss, most visibly on rare tokens.

## Implementation
Before:

    self.wte = nn.Embedding(vocab_size, n_embd)
    self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

After:

    self.wte = nn.Embedding(vocab_size, n_embd)
    self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
    # Weight tying: the output head reuses the token embedding matrix (Press and Wolf, 2017, arXiv:1608.05859)
    self.lm_head.weight = self.wte.weight

## Caveats
The fix changes the parameter set: a checkpoint saved with two matrices loads into the tied model
with one of them ignored, and the shared matrix receives the init of whichever module an
`_init_weights` pass visits last (unsafe fix). Offered only when both modules are built
unconditionally in the same method. Loading a checkpoint trained untied into a tied model is
worse than leaving it untied (one matrix overwrites the other), which is why files that load
pretrained weights (lit-gpt's multi-architecture `GPT`, `from_pretrained` helpers) are skipped. Tying forces the embedding and the output space to agree,
which large models sometimes avoid on purpose; the evidence for tying is strong for small and
mid-sized models and mixed at scale, so this is a hint. Not reported: heads whose width or
vocabulary expression differs from the embedding's (a projection in between, a different
vocabulary), embeddings and heads in different classes, and Hugging Face models.

## Next steps
Compare parameter counts and validation loss with and without tying at your model size; if you
keep the head untied, check that the embedding and head rows of rare tokens are actually trained.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.modules import ModuleClass
from llmarch_lsp.facts.stacks import Submodule
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.builders import cited_text, line_end
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace
from llmarch_lsp.fixes.shapes import owns_its_lines

FIX_TITLE = "Tie the output head to the token embedding"
_FIX_REASON = "Weight tying: the output head reuses the token embedding matrix"

RULE_DOCS = __doc__

_EMBEDDING, _LINEAR = "torch.nn.Embedding", "torch.nn.Linear"
_VOCABULARY = re.compile(r"vocab|tok|word|char|symbol", re.IGNORECASE)
_TOKEN_EMBEDDING_NAME = re.compile(r"wte|.*tok.*|.*word.*|embed(ding)?s?|emb|encoder|input_embed\w*", re.IGNORECASE)
_LM_HEAD_NAME = re.compile(r"lm_?head|head|to_logits|logits|unembed\w*|output\w*|decoder|out|readout", re.IGNORECASE)
# Any mention of tying means the author made a choice; letters may not touch the word (`entire`).
_TYING_MENTIONED = re.compile(
    r"(?<![a-z])(un)?(tie[sd]?|tying)(?![a-z])|share[ds]?_(input_output_)?(emb|weight)|weight_shar|get_output_embeddings",
    re.IGNORECASE,
)

# A model that loads pretrained checkpoints must keep their layout: loading an untied checkpoint
# into a tied model silently overwrites one matrix with the other.
_LOADS_EXTERNAL_WEIGHTS = re.compile(r"from_pretrained|_load_from_state_dict|convert_hf|hf_checkpoint|load_hf_")


def check(document: Document, context: RuleContext, rule: Rule):
    source = document.source
    if "Embedding" not in source or "Linear" not in source or not document.imports.imports_module("torch"):
        return
    if _LOADS_EXTERNAL_WEIGHTS.search(source):
        return  # the models here must keep the layout of the checkpoints they load
    stacks_facts = document.stacks
    for module in document.modules.classes:
        if not module.submodules:
            continue
        submodules = stacks_facts.submodules(module).values()
        embeddings = [s for s in submodules if stacks_facts.constructor(s.call) == _EMBEDDING]
        if not embeddings:
            continue
        heads = [s for s in submodules if stacks_facts.constructor(s.call) == _LINEAR]
        pair = _untied_pair(document, embeddings, heads)
        if pair is None or stacks_facts.is_hugging_face_model(module):
            continue
        # Tying is written in the model's class or in code outside every class (a build script).
        context_text = f"{document.segment(module.node)}\n{stacks_facts.outside_classes}"
        embedding, head = pair
        if _mentions_tying(context_text) or _weight_shared(context_text, embedding, head):
            continue  # tied already, or the author decides about tying (a flag, a comment)
        yield rule.finding(
            document,
            head.call,
            _message(document, module, embedding, head),
            related=(Related(document.span_of(embedding.call), "the token embedding it could share"),),
            fix=_fix(document, embedding, head),
        )


def _mentions_tying(text: str) -> bool:
    lowered = text.lower()
    if not any(word in lowered for word in ("tie", "tying", "shar", "get_output_embeddings")):
        return False  # the common case, without running the regular expression
    return _TYING_MENTIONED.search(text) is not None


def _arguments(call: ast.Call, names: tuple[str, str]) -> tuple[ast.expr | None, ast.expr | None]:
    """The first two arguments, positional or by keyword."""
    found: list[ast.expr | None] = [None, None]
    for position, argument in enumerate(call.args[:2]):
        found[position] = argument
    for keyword in call.keywords:
        if keyword.arg in names:
            found[names.index(keyword.arg)] = keyword.value
    return found[0], found[1]


def _untied_pair(document: Document, embeddings: list[Submodule], heads: list[Submodule]) -> tuple[Submodule, Submodule] | None:
    for embedding in embeddings:
        vocabulary, width = _arguments(embedding.call, ("num_embeddings", "embedding_dim"))
        if vocabulary is None or width is None:
            continue
        shape = (ast.dump(width), ast.dump(vocabulary))
        for head in heads:
            inputs, outputs = _arguments(head.call, ("in_features", "out_features"))
            if inputs is None or outputs is None or (ast.dump(inputs), ast.dump(outputs)) != shape:
                continue
            if _VOCABULARY.search(document.segment(vocabulary)) or (
                _TOKEN_EMBEDDING_NAME.fullmatch(embedding.name) and _LM_HEAD_NAME.fullmatch(head.name)
            ):
                return embedding, head
    return None


def _weight_shared(text: str, embedding: Submodule, head: Submodule) -> bool:
    """`a.weight = b.weight` between the two, or the embedding's weight used as the projection."""
    embedding_weight = f"{embedding.name}.weight"
    if embedding_weight not in text:
        return False
    for line in text.splitlines():
        if embedding_weight not in line:
            continue
        if f"{head.name}.weight" in line or re.search(r"linear\(|@|matmul|einsum|\.mm\(|\.t\(\)|\.T\b", line):
            return True
    return False


def _message(document: Document, module: ModuleClass, embedding: Submodule, head: Submodule) -> str:
    vocabulary, width = _arguments(embedding.call, ("num_embeddings", "embedding_dim"))
    vocabulary_size = document.stacks.static_int(vocabulary, embedding.call)
    width_size = document.stacks.static_int(width, embedding.call)
    size = f"{document.segment(vocabulary)} × {document.segment(width)}"
    saving = ""
    if vocabulary_size is not None and width_size is not None:
        count = vocabulary_size * width_size
        saving = f" ({count / 1e6:.1f}M parameters)" if count >= 100_000 else f" ({count:,} parameters)"
    return (
        f"untied output head: `{head.reference}` learns a second {size} matrix{saving} next to the token embedding "
        f"`{embedding.reference}`; tying them shares one matrix, which usually lowers perplexity "
        "and saves those parameters (Press and Wolf, 2017)"
    )


def _fix(document: Document, embedding: Submodule, head: Submodule) -> Fix | None:
    statements = (embedding.statement, head.statement)
    if not all(submodule.unconditional for submodule in (embedding, head)):
        return None
    functions = {id(document.index.parent(statement)) for statement in statements}
    if len(functions) != 1 or not all(owns_its_lines(document, statement) for statement in statements):
        return None
    later = max(statements, key=lambda statement: statement.end_lineno)
    indentation = document.indentation_of(later.lineno)
    comment = cited_text(_FIX_REASON, "press2017tying")
    text = f"\n{indentation}# {comment}\n{indentation}{head.reference}.weight = {embedding.reference}.weight"
    return Fix(
        title=FIX_TITLE,
        applicability=UNSAFE,
        replacements=(Replace(line_end(document, later.end_lineno), text),),
    )


RULE = Rule(
    code="LLM501",
    name="untied-lm-head",
    summary="A language model's output head is not tied to its token embedding",
    severity=Severity.HINT,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.CONTESTED,
    citation_keys=("press2017tying", "radford2019gpt2", "chowdhery2022palm", "touvron2023llama"),
    check=check,
    docs=RULE_DOCS,
    tags=("embeddings", "parameters", "architecture"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT ties in the other direction, through the ModuleDict.
        """
        import torch.nn as nn
        class GPT(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.transformer = nn.ModuleDict(dict(
                    wte=nn.Embedding(config.vocab_size, config.n_embd),
                    h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ))
                self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
                self.transformer.wte.weight = self.lm_head.weight
        """,
        # The embedding's weight is the output projection; no Linear head is used.
        """
        import torch.nn as nn
        import torch.nn.functional as F
        class LM(nn.Module):
            def __init__(self, vocab_size, dim):
                super().__init__()
                self.tok_emb = nn.Embedding(vocab_size, dim)
                self.proj = nn.Linear(dim, vocab_size)
            def forward(self, x):
                return F.linear(self.body(self.tok_emb(x)), self.tok_emb.weight)
        """,
        # A configurable choice (x-transformers / PyTorch word_language_model style).
        """
        import torch.nn as nn
        class RNNModel(nn.Module):
            def __init__(self, ntoken, ninp, tie_weights=False):
                super().__init__()
                self.encoder = nn.Embedding(ntoken, ninp)
                self.decoder = nn.Linear(ninp, ntoken)
                if tie_weights:
                    self.decoder.weight = self.encoder.weight
        """,
        # A head over a different width: tying is not shape-compatible.
        """
        import torch.nn as nn
        class LM(nn.Module):
            def __init__(self, vocab_size, d_model, d_head):
                super().__init__()
                self.embed = nn.Embedding(vocab_size, d_model)
                self.lm_head = nn.Linear(d_head, vocab_size)
        """,
        # Hugging Face models tie through `tie_word_embeddings` in their config.
        """
        from torch import nn
        from transformers import PreTrainedModel
        class MyForCausalLM(PreTrainedModel):
            def __init__(self, config):
                super().__init__(config)
                self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
                self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        """,
        # Class labels, not a vocabulary.
        """
        import torch.nn as nn
        class Conditioner(nn.Module):
            def __init__(self, num_classes, dim):
                super().__init__()
                self.label_embedding = nn.Embedding(num_classes, dim)
                self.classifier = nn.Linear(dim, num_classes)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch.nn as nn
            class GPT(nn.Module):
                def __init__(self, vocab_size=50257, n_embd=768):
                    super().__init__()
                    self.wte = nn.Embedding(vocab_size, n_embd)
                    self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)  # (C -> V)
                def forward(self, idx):
                    return self.lm_head(self.blocks(self.wte(idx)))
            """,
            at=("6:24-6:65",),
            fixed="""
            import torch.nn as nn
            class GPT(nn.Module):
                def __init__(self, vocab_size=50257, n_embd=768):
                    super().__init__()
                    self.wte = nn.Embedding(vocab_size, n_embd)
                    self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)  # (C -> V)
                    # Weight tying: the output head reuses the token embedding matrix (Press and Wolf, 2017, arXiv:1608.05859)
                    self.lm_head.weight = self.wte.weight
                def forward(self, idx):
                    return self.lm_head(self.blocks(self.wte(idx)))
            """,
        ),
        # Head built first, embedding inside a ModuleDict, keyword arguments, a head with a bias.
        Invalid(
            """
            from torch import nn
            class Decoder(nn.Module):
                def __init__(self, cfg):
                    super().__init__()
                    self.head = nn.Linear(in_features=cfg.d_model, out_features=cfg.n_tokens)
                    self.transformer = nn.ModuleDict({
                        "tok": nn.Embedding(cfg.n_tokens, cfg.d_model),
                        "layers": nn.ModuleList([Layer(cfg) for _ in range(cfg.n_layers)]),
                    })
            """,
            at=("5:21-5:82",),
            fixed="""
            from torch import nn
            class Decoder(nn.Module):
                def __init__(self, cfg):
                    super().__init__()
                    self.head = nn.Linear(in_features=cfg.d_model, out_features=cfg.n_tokens)
                    self.transformer = nn.ModuleDict({
                        "tok": nn.Embedding(cfg.n_tokens, cfg.d_model),
                        "layers": nn.ModuleList([Layer(cfg) for _ in range(cfg.n_layers)]),
                    })
                    # Weight tying: the output head reuses the token embedding matrix (Press and Wolf, 2017, arXiv:1608.05859)
                    self.head.weight = self.transformer.tok.weight
            """,
        ),
    ),
)
