"""A hand-written block normalizes *after* the residual add (Post-LN): `x = norm(x + f(x))`.

## Problem
The block's `forward` adds a sublayer's output to the residual stream and then normalizes the sum,
`x = self.ln(x + self.attn(x))`: the Post-LN arrangement of the original Transformer. Every path from
the loss back to an early layer then runs through a LayerNorm (or RMSNorm) per sublayer, so there
is no clean identity path, and the stack is hard to optimize once it gets deep.

## Diagnosis
Inside the `forward` of an `nn.Module`, a LayerNorm/RMSNorm (`nn.LayerNorm`, `nn.RMSNorm`, any class
whose name ends in `Norm` such as `LlamaRMSNorm` or apex's `FusedLayerNorm`, or
`F.layer_norm` / `F.rms_norm`) is applied to a sum `stream + branch` where `branch` is computed from
that same `stream` value by a sublayer call (`self.attn(x)`, `layer(x)`), with no norm on the way
into the sublayer. The sum may be written inline or bound to a temporary first
(`y = x + self.ff(x); x = self.norm(y)`) as long as nothing else reads it. Norms are recognised by
the class that built the attribute; attribute names (`ln_1`, `norm1`, `LayerNorm`) decide only when
that class is unknown. When the file stacks the block with a literal depth
(`nn.ModuleList([Block(...) for _ in range(n_layer)])` with `n_layer=12`), the depth is reported too.

## Hypothesis
With Post-LN the expected gradient of the parameters near the output is large at initialisation
and the effective update grows with depth, so Adam's first steps are too big: without a long
learning-rate warmup the loss spikes, attention logits blow up and training diverges or settles
at a poor loss. Each layer also depends heavily on its residual branch, so small parameter changes
are amplified through the stack. Pre-LN (`x = x + f(norm(x))`) keeps an un-normalized identity path
from the loss to every layer and has well-scaled gradients at initialisation.

## Literature
- Xiong et al. (2020, "On Layer Normalization in the Transformer Architecture") show with mean-field
  analysis that Post-LN has large expected gradients near the output at initialisation, which is
  why it needs warmup, while Pre-LN trains without it.
- Liu et al. (2020, "Understanding the Difficulty of Training Transformers") attribute Post-LN
  failures to each layer's heavy dependence on its residual branch (amplified output changes) and
  propose Admin initialisation as a fix that keeps Post-LN.
- Wang et al. (2019, "Learning Deep Transformer Models for Machine Translation") show that Pre-LN is
  what makes 30-layer encoders trainable where Post-LN diverges.
- Nguyen and Salazar (2019, "Transformers without Tears") find Pre-LN with scaled initialisation
  converges faster and trains without warmup in low-resource translation.
- Radford et al. (2019, GPT-2) move LayerNorm to the input of each sub-block and add a final LayerNorm
  after the last block, the recipe most language models have used since.
- Wang et al. (2022, "DeepNet") keep Post-LN but up-weight the residual (`norm(x * alpha + f(x))`) and
  down-scale the initialisation, training 1,000-layer models stably.

## Recommendation
Normalize the sublayer's input instead of the sum: `x = x + self.attn(self.ln_1(x))`. A Pre-LN stack's
output is not normalized, so add one final norm before the output head (GPT-2's `ln_f`). If you
want to keep Post-LN for its final quality, use DeepNorm residual scaling or Admin initialisation
and a warmup of a few thousand steps instead.

## Expected outcome
Training loss that falls smoothly from the first steps without a long warmup, no early loss spikes
or divergence, and tolerance of higher peak learning rates; gradient norms per layer stay flat
across depth. The benefit grows with depth (beyond about six layers). Final validation loss or
perplexity is usually on par; a Post-LN model that trains at all can be slightly better.

## Implementation
Before:

    def forward(self, x):
        x = self.ln_1(x + self.attn(x))
        x = self.ln_2(x + self.mlp(x))
        return x

After:

    def forward(self, x):
        # Pre-norm: normalize the sublayer's input and keep the residual path an identity; a pre-norm stack needs a final norm before the output head (Xiong et al., 2020, arXiv:2002.04745)
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x

    # and in the model, after the last block:
    x = self.ln_f(x)
    logits = self.lm_head(x)

The quick fix rewrites every post-norm sublayer of the block's forward in one edit, for these
spellings: `x = norm(x + f(x))` becomes `x = x + f(norm(x))` (a sublayer that reads the stream
several times, `self_attn(x, x, x)`, reads `x_norm = norm(x)` bound once); a sublayer called on
the line before (`a, _ = self.attn(x, x, x)` then `x = norm(x + drop(a))`) reads the normalized
stream and the sum stays; `y = x + f(x)` then `x = norm(y)` folds into `x = x + f(norm(x))`; and the
Hugging Face spelling with a saved residual (`residual = h` ... `h = residual + h; h = norm(h)`)
moves the norm up to right after `residual = h`. If any post-norm sublayer of the forward has
another spelling, there is no fix: half a pre-norm block is neither design.

A second action makes the same change behind an ablation flag: `self.pre_norm = True` after
`super().__init__()`, and in forward `if self.pre_norm:` the rewritten statements, `else:` the
original ones verbatim, so `pre_norm = False` reproduces the original outputs exactly. A constant
flag set in `__init__` turns the post-norm branch off, and the rule does not report it. Neither
action can add the final norm the model then needs; the comment says so.

## Caveats
A file that ports a released checkpoint (a Hugging Face `PreTrainedModel`, a timm model built with
`build_model_with_cfg`, a model with `from_pretrained`) gets this finding at info severity with the
reason: BERT, BART, Marian and the other post-norm models were trained that way and their weights
need that layout. The same block written from scratch is a warning.
No extra compute or memory: the same norms run in a different place (plus one final norm). Both fixes
change the network's function, so a checkpoint trained post-norm means something else in the
rewritten model (they are unsafe: `--fix` applies the plain rewrite only with `--unsafe-fixes`, and
the ablation variant only from an editor), and the model needs a final norm before the head. Branches
a placement flag selects (`if self.norm_first: ... else: <post-norm>`) get no fix: the other branch
already is the pre-norm design. The
evidence is strong and replicated (theory plus most large-scale recipes), but Post-LN is not
wrong: for shallow stacks (six layers or fewer, option `shallow-depth`) trained with warmup, such as
the original base Transformer and BERT-base, it is well established and often reaches slightly
better final quality, so the finding is then only a hint. Deep Post-LN can be made stable with
DeepNorm or Admin instead of switching; scaled residuals like `norm(x * alpha + f(x))` are not
reported. Not reported either, by design: a norm whose input is a residual sum split across modules,
as in HF BERT's `BertSelfOutput` (`self.LayerNorm(hidden_states + input_tensor)`), where the stream
and the sublayer output arrive as two parameters and nothing in that forward shows one is computed
from the other (BERT is Post-LN, but the same shape also joins unrelated tensors); sums whose
stream is itself an earlier residual sum (a block-final norm as in Conformer); and a norm of a sum
whose sublayer already saw a normalized input (sandwich and "double" norms).
When the post-norm branch is selected by a flag (`if self.norm_first: ... else: ...`), which
placement runs depends on the configuration, so the finding is only a hint.

## Next steps
Watch the loss curve over the first few thousand steps, the gradient norm per layer (flat across
depth with Pre-LN, largest near the output with Post-LN), the largest attention logit, and how much
warmup the run still needs; confirm a final norm sits before the output head.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Option, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import ModuleClass
from llmarch_lsp.facts.residuals import NormalizedResidualSum
from llmarch_lsp.findings import Confidence, Related, Severity
from llmarch_lsp.fixes.model import UNSAFE
from llmarch_lsp.fixes.prenorm import PRE_NORM_TITLE, pre_norm_fixes

FIX_TITLE = PRE_NORM_TITLE

RULE_DOCS = __doc__

_MESSAGE_ADD_LENGTH = 60


def check(document: Document, context: RuleContext, rule: Rule):
    if not document.imports.imports_module("torch"):
        return
    residuals = document.residuals
    for module in document.modules.classes:
        if module.forward is None:
            continue
        sums = residuals.normalized_residual_sums(module)
        if not sums:
            continue
        depth = residuals.stack_depth(module.name)
        shallow = depth is not None and depth <= context.options["shallow-depth"]
        reported = []
        for found in sums:
            placement = _placement_flag(document, module, found.norm_call)
            if placement is not _OFF:
                reported.append((found, placement is _CONFIGURABLE))
        # One rewrite for the whole forward; a branch a flag selects is the user's other design.
        fix, ablation = pre_norm_fixes(
            document, module, [found for found, configurable in reported if not configurable], ablation=context.alternatives
        )
        port = document.checkpoint_port if reported else None
        for found, configurable in reported:
            related = []
            if found.via_temporary:
                related.append(Related(document.span_of(found.add), "the residual sum that is normalized"))
            if port is not None:
                related.append(Related(document.span_of(port.node), port.evidence))
            note = _FLAG_NOTE if configurable else _PORT_NOTE if port is not None else ""
            yield rule.finding(
                document,
                found.norm_call,
                _message(document, found, depth) + note,
                severity=_severity(shallow, configurable, port is not None),
                related=related,
                fix=None if configurable else fix,
                alternatives=() if configurable or ablation is None else (ablation,),
            )


def _severity(shallow: bool, configurable: bool, ported: bool) -> Severity | None:
    # A flag-selected branch is the user's choice, unknowable here: only a hint. A port of a
    # released post-norm model (BERT, BART, Marian...) must stay post-norm to load its checkpoint:
    # worth knowing for code copied from it, not a defect of the port.
    if shallow or configurable:
        return Severity.HINT
    return Severity.INFO if ported else None


_PORT_NOTE = (
    "; this file ports a released post-norm checkpoint, which must keep its layout, so this matters "
    "for deep models written from scratch, not here"
)
_PLACEMENT_FLAG = re.compile(r"norm|pre_?ln|post_?ln|before", re.IGNORECASE)
_FLAG_NOTE = "; a flag selects this branch, so check which placement your configs use"
_CONFIGURABLE, _OFF = object(), object()


def _placement_flag(document: Document, module: ModuleClass, node: ast.AST):
    """_CONFIGURABLE inside `if self.norm_first: ... else: <here>` and similar placement switches;
    _OFF when the switch is a constant the class sets (`self.pre_norm = True`, as the ablation fix
    writes) and this branch is the one it turns off; None otherwise."""
    child = node
    for ancestor in document.index.ancestors(node):
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return None
        if isinstance(ancestor, ast.If) and _PLACEMENT_FLAG.search(document.segment(ancestor.test)):
            taken = _constant_test(document, module, ancestor.test)
            if taken is not None and (child in ancestor.body) != taken:
                return _OFF
            return _CONFIGURABLE
        if isinstance(ancestor, ast.IfExp) and _PLACEMENT_FLAG.search(document.segment(ancestor.test)):
            return _CONFIGURABLE
        child = ancestor
    return None


def _constant_test(document: Document, module: ModuleClass, test: ast.expr) -> bool | None:
    """The value of `self.flag` / `not self.flag` when every assignment in the class sets one constant."""
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    flag = test.operand if negated else test
    if not (isinstance(flag, ast.Attribute) and isinstance(flag.value, ast.Name) and flag.value.id == "self"):
        return None
    values = set()
    for node in walk(module.node):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr == flag.attr and isinstance(target.value, ast.Name) and target.value.id == "self":
                value = getattr(node, "value", None)
                values.add(value.value if isinstance(value, ast.Constant) and isinstance(value.value, bool) and isinstance(node, ast.Assign) else None)
    if len(values) != 1 or None in values:
        return None
    (value,) = values
    return value != negated


def _message(document: Document, found: NormalizedResidualSum, depth: int | None) -> str:
    add = " ".join(document.segment(found.add).split())
    if len(add) > _MESSAGE_ADD_LENGTH:
        add = add[: _MESSAGE_ADD_LENGTH - 1] + "…"
    stack = f" in a {depth}-layer stack" if depth is not None else ""
    return (
        f"post-norm residual{stack}: `{found.norm_label}` normalizes after the add `{add}`; Post-LN has "
        "large gradients near the output at init, so deep stacks need warmup and can diverge (Xiong et al., 2020)"
    )


RULE = Rule(
    code="LLM201",
    name="post-norm-residual",
    summary="A block's forward normalizes after the residual add (Post-LN: norm(x + f(x)))",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    citation_keys=(
        "xiong2020layer",
        "liu2020admin",
        "wang2019learning",
        "nguyen2019transformers",
        "radford2019gpt2",
        "wang2022deepnet",
    ),
    check=check,
    docs=RULE_DOCS,
    tags=("normalization", "residual", "stability"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    options={"shallow-depth": Option(6, "stacks this deep or shallower get a hint instead of a warning")},
    valid=(
        # nanoGPT-style Pre-LN block and a final norm with no residual.
        """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.ln_1 = nn.LayerNorm(d)
                self.attn = Attention(d)
                self.ln_2 = nn.LayerNorm(d)
                self.mlp = MLP(d)
            def forward(self, x):
                x = x + self.attn(self.ln_1(x))
                x = x + self.mlp(self.ln_2(x))
                return x
        class GPT(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.blocks = nn.ModuleList([Block(d) for _ in range(12)])
                self.ln_f = nn.LayerNorm(d)
            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return self.ln_f(x)
        """,
        # HF Llama-style: the un-normalized sum is kept as the next residual.
        """
        from torch import nn
        class DecoderLayer(nn.Module):
            def forward(self, hidden_states, attention_mask=None):
                residual = hidden_states
                hidden_states = self.input_layernorm(hidden_states)
                hidden_states, _ = self.self_attn(hidden_states, attention_mask)
                hidden_states = residual + hidden_states
                residual = hidden_states
                hidden_states = self.post_attention_layernorm(hidden_states)
                hidden_states = self.mlp(hidden_states)
                hidden_states = residual + hidden_states
                return hidden_states
        """,
        # Gemma 2 / CogView sandwich norm: the branch is normalized, the stream is not.
        """
        import torch.nn as nn
        class SandwichBlock(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.pre_norm = nn.RMSNorm(d)
                self.post_norm = nn.RMSNorm(d)
                self.f = FeedForward(d)
            def forward(self, x):
                return x + self.post_norm(self.f(self.pre_norm(x)))
        """,
        # DeepNorm: an up-weighted residual is the intended fix for deep Post-LN.
        """
        import torch.nn as nn
        class DeepNormBlock(nn.Module):
            def __init__(self, d, alpha):
                super().__init__()
                self.alpha = alpha
                self.attn = Attention(d)
                self.norm = nn.LayerNorm(d)
            def forward(self, x):
                return self.norm(x * self.alpha + self.attn(x))
        """,
        # Embedding sum: neither operand is computed from the other by a sublayer.
        """
        import torch
        import torch.nn as nn
        class Embeddings(nn.Module):
            def __init__(self, vocab, length, d):
                super().__init__()
                self.tok = nn.Embedding(vocab, d)
                self.pos = nn.Embedding(length, d)
                self.norm = nn.LayerNorm(d)
            def forward(self, idx):
                tok = self.tok(idx)
                pos = self.pos(torch.arange(idx.size(1), device=idx.device))
                return self.norm(tok + pos)
        """,
        # timm ViT: LayerScale and drop-path around a pre-norm branch.
        """
        from torch import nn
        class Block(nn.Module):
            def __init__(self, dim, norm_layer=nn.LayerNorm):
                super().__init__()
                self.norm1 = norm_layer(dim)
                self.attn = Attention(dim)
                self.ls1 = LayerScale(dim)
                self.drop_path1 = DropPath(0.1)
            def forward(self, x):
                x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
                return x
        """,
        # HF BERT's output sublayer: stream and sublayer output arrive as separate parameters (see Caveats).
        """
        from torch import nn
        class SelfOutput(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.dense = nn.Linear(d, d)
                self.LayerNorm = nn.LayerNorm(d)
            def forward(self, hidden_states, input_tensor):
                hidden_states = self.dense(hidden_states)
                return self.LayerNorm(hidden_states + input_tensor)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.attn = Attention(d)
                    self.ln_1 = nn.LayerNorm(d)
                    self.mlp = MLP(d)
                    self.ln_2 = nn.LayerNorm(d)
                def forward(self, x):
                    x = self.ln_1(x + self.attn(x))
                    x = self.ln_2(self.mlp(x) + x)
                    return x
            class GPT(nn.Module):
                def __init__(self, d, n_layer=12):
                    super().__init__()
                    self.blocks = nn.ModuleList([Block(d) for _ in range(n_layer)])
            """,
            at=("10:13-10:40", "11:13-11:39"),
            fixed="""
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.attn = Attention(d)
                    self.ln_1 = nn.LayerNorm(d)
                    self.mlp = MLP(d)
                    self.ln_2 = nn.LayerNorm(d)
                def forward(self, x):
                    # Pre-norm: normalize the sublayer's input and keep the residual path an identity; a pre-norm stack needs a final norm before the output head (Xiong et al., 2020, arXiv:2002.04745)
                    x = x + self.attn(self.ln_1(x))
                    x = self.mlp(self.ln_2(x)) + x
                    return x
            class GPT(nn.Module):
                def __init__(self, d, n_layer=12):
                    super().__init__()
                    self.blocks = nn.ModuleList([Block(d) for _ in range(n_layer)])
            """,
        ),
        # The original Transformer's encoder layer, with the sums bound to temporaries first.
        Invalid(
            """
            import torch.nn as nn
            class EncoderLayer(nn.Module):
                def __init__(self, d, heads):
                    super().__init__()
                    self.self_attn = nn.MultiheadAttention(d, heads)
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
            """,
            at=("12:13-12:51", "14:13-14:26"),
            fixed="""
            import torch.nn as nn
            class EncoderLayer(nn.Module):
                def __init__(self, d, heads):
                    super().__init__()
                    self.self_attn = nn.MultiheadAttention(d, heads)
                    self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d))
                    self.norm1 = nn.LayerNorm(d)
                    self.norm2 = nn.LayerNorm(d)
                    self.dropout = nn.Dropout(0.1)
                def forward(self, x, mask=None):
                    # Pre-norm: normalize the sublayer's input and keep the residual path an identity; a pre-norm stack needs a final norm before the output head (Xiong et al., 2020, arXiv:2002.04745)
                    x_norm = self.norm1(x)
                    attended, _ = self.self_attn(x_norm, x_norm, x_norm, attn_mask=mask)
                    x = x + self.dropout(attended)
                    # Pre-norm: normalize the sublayer's input and keep the residual path an identity; a pre-norm stack needs a final norm before the output head (Xiong et al., 2020, arXiv:2002.04745)
                    x = x + self.dropout(self.ff(self.norm2(x)))
                    return x
            """,
        ),
        # Functional norm and an RMSNorm subclass, written as `return norm(sum)`.
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            class LlamaRMSNorm(torch.nn.Module):
                pass
            class Layer(torch.nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.attention = Attention(d)
                    self.feed_forward = FeedForward(d)
                    self.ffn_norm = LlamaRMSNorm(d)
                def forward(self, h):
                    h = F.layer_norm(h + self.attention(h), h.shape[-1:])
                    out = self.feed_forward(h)
                    return self.ffn_norm(h + out)
            """,
            at=("12:13-12:62", "14:16-14:38"),
            fixed="""
            import torch
            import torch.nn.functional as F
            class LlamaRMSNorm(torch.nn.Module):
                pass
            class Layer(torch.nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.attention = Attention(d)
                    self.feed_forward = FeedForward(d)
                    self.ffn_norm = LlamaRMSNorm(d)
                def forward(self, h):
                    # Pre-norm: normalize the sublayer's input and keep the residual path an identity; a pre-norm stack needs a final norm before the output head (Xiong et al., 2020, arXiv:2002.04745)
                    h = h + self.attention(F.layer_norm(h, h.shape[-1:]))
                    out = self.feed_forward(self.ffn_norm(h))
                    return h + out
            """,
        ),
    ),
)
