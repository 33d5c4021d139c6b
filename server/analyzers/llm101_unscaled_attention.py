"""Attention scores `q @ kᵀ` fed to a softmax without the 1/sqrt(d_head) scale.

## Problem
Dot-product attention multiplies queries by keys and normalises the result with a softmax. Written
by hand (`att = q @ k.transpose(-2, -1)` then `F.softmax(att, dim=-1)`), the 1/sqrt(d_head) factor
of scaled dot-product attention is easy to drop, and nothing fails: the model trains, just worse,
and less stably as the head dimension, learning rate or model size grows.

## Diagnosis
Inside one function, a query-key product (`q @ k.transpose(-2, -1)`, `torch.matmul(q, kᵀ)`,
`torch.bmm`, `q.matmul(kᵀ)`, `torch.baddbmm` without `alpha`, or a `torch.einsum` that contracts
the head axis of two operands) reaches a softmax (`F.softmax`, `torch.softmax`, `x.softmax(...)`,
`log_softmax`, an `nn.Softmax` submodule) through assignments that only mask, add a bias, apply
dropout or change dtype or shape; and no multiplication or division touches the scores, the query
or the key on the way (`* self.scale`, `/ math.sqrt(d)`, `q *= self.scaling`, `.div_()`, a
temperature, `F.normalize` for cosine attention, a scale passed in by the caller). The products must
look like attention: operands named like queries and keys, or an attention function, class or
variable; `x @ self.weight.T` is a linear layer and is never flagged. When the data flow runs
through something the check cannot see into (a helper call, a function parameter), it stays silent.

## Hypothesis
If the components of q and k have unit variance, q·k has variance d_head, so logits have standard
deviation sqrt(d_head): 8 for a 64-dimensional head, 11 for 128. A softmax over logits that large
is close to one-hot, so its Jacobian is close to zero: most positions receive almost no gradient,
attention locks onto a few keys early, and training becomes sensitive to the learning rate. As
training proceeds and the query/key weights grow, the logits grow further, and the same mechanism
drives the attention-entropy collapse and loss spikes reported in large runs.

## Literature
- Vaswani et al. (2017, "Attention Is All You Need", §3.2.1) introduce the 1/sqrt(d_k) factor:
  for large d_k, unscaled dot products push the softmax into regions with extremely small gradients.
- Dehghani et al. (2023, ViT-22B) trace divergence at scale to attention logits growing without
  bound, giving near one-hot attention; they normalise queries and keys (QK-norm) to keep them small.
- Wortsman et al. (2023) reproduce this attention-logit-growth instability in small models at high
  learning rates and show that QK-layernorm removes it.
- Zhai et al. (2023) link training instability to attention entropy collapse, caused by growing
  logits, and bound the logits with σReparam.
- Henry et al. (2020, QKNorm) replace the fixed 1/sqrt(d) by L2-normalised q, k and a learned scale:
  a different, legitimate way to bound the logits.
- Yang et al. (2022, μP / Tensor Programs V) scale attention by 1/d instead of 1/sqrt(d) so that
  hyperparameters transfer across widths; either factor counts as scaled here.
- Dao et al. (2022, FlashAttention) motivate fused attention kernels; PyTorch's
  `F.scaled_dot_product_attention`, which dispatches to them, applies 1/sqrt(d) by default.

## Recommendation
Multiply the scores by `1.0 / math.sqrt(d_head)` before masking and softmax, the way nanoGPT does:
`att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))`. Better still, when you do not
need the attention matrix itself, call `F.scaled_dot_product_attention(q, k, v, is_causal=True)`:
it scales by default and uses the memory-efficient kernels.

## Expected outcome
Lower validation loss / perplexity for the same number of steps, and a wider range of stable
learning rates; higher attention entropy early in training, fewer loss spikes, and a maximum
attention logit that stays bounded instead of growing with training. The gain grows with head
dimension: small for d_head = 16, large at 64-128.

## Implementation
Before:

    att = q @ k.transpose(-2, -1)
    att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
    att = F.softmax(att, dim=-1)

After (the quick fix):

    # Scale logits by 1/sqrt(d_head) so their variance stays ~1 and softmax does not saturate (Vaswani et al., 2017, arXiv:1706.03762)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)
    att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
    att = F.softmax(att, dim=-1)

The factor is what the code already has: a `self.scale` (or `scaling`, `softmax_scale`) set to an
inverse square root and never read, else the head size the q/k views use (`self.head_dim ** -0.5`),
else `k.size(-1)`. It is written `1.0 / math.sqrt(d)` only where `math.sqrt` is already imported,
and `d ** -0.5` otherwise, so no import is added. A trailing shape comment is written when the code
states the shapes of q and k (their own comments, or `view(B, T, nh, hs).transpose(1, 2)`).

Where the whole softmax(q·kᵀ)·v chain is exactly one `F.scaled_dot_product_attention` call (the
conditions are LLM103's), a second action replaces the chain with that call, which applies the
1/sqrt(d) scale by default and never materializes the scores (O(T) memory, Dao et al., 2022); a
causal `tril` mask becomes `is_causal=True` and dropout becomes
`dropout_p=self.attn_dropout.p if self.training else 0.0`. It is offered in editors only, never
applied by `--fix`. Both fixes are unsafe: they change the model's function (the added scale), and
the SDPA call also sums in a different order.

## Caveats
A file that ports a released checkpoint (a Hugging Face `PreTrainedModel`, a timm model built with
`build_model_with_cfg`, a model with `from_pretrained`) gets this finding at info severity with the
reason: GPT-Neo and the T5 family were trained without the explicit scale (T5 folds it into its
initialization), and their weights only work as published. The same code written from scratch is a
warning.
One elementwise multiply over the T×T scores: negligible compute and no extra memory (fold it into
q to scale T×d instead). The result is one of the best-established facts about transformers, used by
essentially every reference implementation. The fix changes the model's function, so it is marked
unsafe: a checkpoint trained without the factor (GPT-Neo, and T5, which folds the factor into its
query initialisation instead) must keep it off to load correctly; silence those lines with
`# llmarch: ignore[LLM101]`. Alternatives that also bound the logits are fine and not flagged: μP's
1/d, a learned temperature or logit scale, cosine attention with QK-norm. QK-norm with LayerNorm or
RMSNorm alone does not replace the factor (normalised vectors still have dot products of size d).

## Next steps
Log the maximum pre-softmax attention logit and the mean attention entropy per layer; watch the
first few thousand steps for loss spikes and for entropy falling towards zero in any head. If
logits still grow late in training, add QK-norm (Dehghani et al., 2023) or lower the learning rate
of the query/key projections.
"""

from __future__ import annotations

import ast
import re
from collections import Counter

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.attention import AttentionSite, ScoreProduct
from llmarch_lsp.facts.index import walk
from llmarch_lsp.findings import Confidence, Related, Severity, Span
from llmarch_lsp.fixes.builders import cited_comment
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace
from llmarch_lsp.fixes.scopes import assignments, per_document
from llmarch_lsp.fixes.sdpa import attention_chain, sdpa_fix, uses_fused_attention
from llmarch_lsp.fixes.shapes import head_size, scores_shape, trailing_comment

FIX_TITLE = "Scale scores by 1/sqrt(d)"
_FIX_REASON = "Scale logits by 1/sqrt(d_head) so their variance stays ~1 and softmax does not saturate"
_MESSAGE_EXPRESSION_LIMIT = 60
# Attributes that hold a precomputed 1/sqrt(d_head): `self.scale = head_dim ** -0.5`.
_SCALE_ATTRIBUTES = ("scale", "scaling", "softmax_scale", "attn_scale", "attention_scale")
_INVERSE_SQRT = re.compile(r"\*\*\s*\(?\s*-\s*0?\.5|rsqrt|/\s*(?:math\.)?sqrt\b")

RULE_DOCS = __doc__


def check(document: Document, context: RuleContext, rule: Rule):
    unscaled: dict[int, tuple[ScoreProduct, AttentionSite]] = {}
    for site in document.attention:
        if site.scaling is None:
            for product in site.scores:
                if not _scalar_features(document, product.query):
                    unscaled.setdefault(id(product.node), (product, site))
    # `q @ kᵀ + q @ rᵀ` (content + position terms): scaling one term alone would be wrong, so
    # products that share a statement get no automatic fix.
    per_statement = Counter(id(document.index.enclosing_statement(product.node)) for product, _ in unscaled.values())
    port = document.checkpoint_port if unscaled else None
    for product, site in sorted(unscaled.values(), key=lambda pair: document.span_of(pair[0].node)):
        shared = per_statement[id(document.index.enclosing_statement(product.node))] > 1
        related = [Related(document.span_of(site.softmax), "softmax taken here")]
        if port is not None:
            related.append(Related(document.span_of(port.node), port.evidence))
        yield rule.finding(
            document,
            product.node,
            _message(document, product) + (_PORT_NOTE if port is not None else ""),
            # A port of a released model must match its checkpoint (GPT-Neo, T5 fold the scale into
            # training): the choice is deliberate there, and worth knowing only for code copied from it.
            severity=Severity.INFO if port is not None else None,
            related=related,
            fix=None if shared else _fix(document, product),
            alternatives=() if shared or not context.alternatives else _sdpa_alternative(document, site),
        )


_PORT_NOTE = (
    "; this file ports a released checkpoint, which was trained this way (scale folded into the init or "
    "learned), so keep it here and scale in code you write from scratch"
)


def _scalar_features(document: Document, query: ast.expr) -> bool:
    """`q, k, v = qkv.unbind(-1)`: one feature per token, so d = 1 and 1/sqrt(d) scales nothing."""
    function = document.index.enclosing_function(query)
    if not isinstance(query, ast.Name) or function is None:
        return False
    for statement in assignments(document, function, query.id):
        value = statement.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "unbind":
            axis = value.args[0] if value.args else next((k.value for k in value.keywords if k.arg == "dim"), None)
            return isinstance(axis, ast.UnaryOp) and isinstance(axis.op, ast.USub) and getattr(axis.operand, "value", None) == 1
    return False


def _message(document: Document, product: ScoreProduct) -> str:
    expression = " ".join(document.segment(product.node).split())
    if len(expression) > _MESSAGE_EXPRESSION_LIMIT:
        expression = expression[: _MESSAGE_EXPRESSION_LIMIT - 1] + "…"
    return (
        f"attention scores `{expression}` reach softmax unscaled; logits grow with head dim and saturate "
        "the softmax (Vaswani et al., 2017)"
    )


def _sdpa_alternative(document: Document, site: AttentionSite) -> tuple[Fix, ...]:
    """Where the whole softmax(q·kᵀ)·v is one SDPA call exactly, offer that call (it scales by default)."""
    if uses_fused_attention(document, site.softmax):
        return ()
    chain = attention_chain(document, site)
    return () if chain is None else (sdpa_fix(document, chain),)


def _fix(document: Document, product: ScoreProduct) -> Fix | None:
    factor = _scale_factor(document, product)
    if factor is None:
        return None
    scores = document.segment(product.node)
    if isinstance(product.node, ast.BinOp):  # `(q @ kᵀ) * c` reads better than `q @ kᵀ * c`
        scores = f"({scores})"
    scaled = f"{scores} * {factor}"
    if _binds_tighter_than_product(document, product.node):
        scaled = f"({scaled})"
    statement = document.index.enclosing_statement(product.node)
    replacements = [Replace(document.span_of(product.node), scaled)]
    shape_comment = _shape_comment(document, product, statement)
    if shape_comment is not None:
        replacements.append(shape_comment)
    return Fix(
        title=FIX_TITLE,
        applicability=UNSAFE,
        replacements=tuple(replacements),
        comments=(cited_comment(statement.lineno, _FIX_REASON, "vaswani2017attention"),),
    )


def _scale_factor(document: Document, product: ScoreProduct) -> str | None:
    """What to multiply by, preferring what the code already has: an unused `self.scale`, then the
    head size its own views use (`self.head_dim`), then `k.size(-1)`. `math.sqrt` only if imported."""
    unused = _unused_scale_attribute(document, product.node)
    if unused is not None:
        return f"self.{unused}"
    head = None
    for operand, axis in ((product.key_base, product.key_head_axis), (product.query, product.query_head_axis)):
        if axis == -1:
            found = head_size(document, operand, product.node)
            if found is not None:
                head = document.segment(found)
                break
    if head is None:
        head = _head_dimension(document, product)
    if head is None:
        return None
    sqrt = document.imports.local_name_for("math.sqrt")
    return f"(1.0 / {sqrt}({head}))" if sqrt else f"({head} ** -0.5)"


def _unused_scale_attribute(document: Document, node: ast.AST) -> str | None:
    """`self.scale = head_dim ** -0.5` set in the class and read nowhere: the author meant to use it."""
    owner = document.index.enclosing(node, ast.ClassDef)
    if owner is None or not _sets_a_scale_attribute(owner):
        return None  # most classes: no need to look at the file's attributes at all
    first, last = owner.lineno, owner.end_lineno or owner.lineno
    assigned: dict[str, list[ast.expr]] = {}
    read: set[str] = set()
    for attribute in per_document(document, "scale-attributes", lambda: _scale_attributes(document)):
        if not first <= attribute.lineno <= last:
            continue
        if isinstance(attribute.ctx, ast.Store):
            statement = document.index.parent(attribute)
            if isinstance(statement, ast.Assign) and statement.value is not None:
                assigned.setdefault(attribute.attr, []).append(statement.value)
        else:
            read.add(attribute.attr)
    for name in _SCALE_ATTRIBUTES:
        values = assigned.get(name)
        if values and name not in read and len(values) == 1 and _INVERSE_SQRT.search(document.segment(values[0])):
            if not isinstance(values[0], ast.Call):  # a Parameter or tensor would be a learned scale
                return name
    return None


def _sets_a_scale_attribute(owner: ast.ClassDef) -> bool:
    """`self.scale = ...` as a statement of one of the class's methods (where `__init__` sets it)."""
    for method in owner.body:
        if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for statement in method.body:
                if isinstance(statement, ast.Assign) and any(
                    isinstance(target, ast.Attribute) and target.attr in _SCALE_ATTRIBUTES for target in statement.targets
                ):
                    return True
    return False


def _scale_attributes(document: Document) -> list[ast.Attribute]:
    """Every `self.scale`, `self.scaling`, ... in the file, read or written (one pass over the index)."""
    return [
        attribute
        for attribute in document.index.nodes(ast.Attribute)
        if attribute.attr in _SCALE_ATTRIBUTES and isinstance(attribute.value, ast.Name) and attribute.value.id == "self"
    ]


def _shape_comment(document: Document, product: ScoreProduct, statement: ast.stmt) -> Replace | None:
    """`  # (B, nh, T, T)` after `att = q @ k.transpose(-2, -1)` when q's and k's shapes are stated."""
    if not (
        isinstance(statement, ast.Assign)
        and statement.value is product.node
        and statement.lineno == statement.end_lineno
        and trailing_comment(document, statement) is None
        and product.key_head_axis == -1
    ):
        return None
    shape = scores_shape(document, product.query, product.key_base, product.node)
    if shape is None:
        return None
    line = document.line_text(statement.lineno)
    if line[document.span_of(statement).end_column :].strip():
        return None
    end = len(line.rstrip())
    return Replace(Span(statement.lineno, end, statement.lineno, len(line)), f"  # {shape}")


def _head_dimension(document: Document, product: ScoreProduct) -> str | None:
    """`k.size(-1)`: the head dimension, read from an operand that is cheap to repeat."""
    for operand, axis in ((product.key_base, product.key_head_axis), (product.query, product.query_head_axis)):
        if axis is not None and _is_plain_reference(operand):
            return f"{document.segment(operand)}.size({axis})"
    return None


def _is_plain_reference(node: ast.AST) -> bool:
    """`k`, `self.k`, `key_states[:, :T]`: repeating it computes nothing."""
    if node.end_lineno != node.lineno:
        return False
    return all(not isinstance(part, (ast.Call, ast.Await, ast.NamedExpr, ast.Yield, ast.YieldFrom)) for part in walk(node))


def _binds_tighter_than_product(document: Document, node: ast.AST) -> bool:
    """Whether `<node> * c` written in place of `node` would change how its parent parses."""
    parent = document.index.parent(node)
    if _already_parenthesised(document, node):
        return False
    if isinstance(parent, (ast.Attribute, ast.Subscript, ast.Await, ast.UnaryOp)):
        return True
    if isinstance(parent, ast.Call):
        return parent.func is node
    if isinstance(parent, ast.BinOp):
        if isinstance(parent.op, ast.Pow):
            return True
        return parent.right is node and isinstance(parent.op, (ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.MatMult))
    return False


def _already_parenthesised(document: Document, node: ast.AST) -> bool:
    span = document.span_of(node)
    before = document.line_text(span.line)[: span.column].rstrip()
    after = document.line_text(span.end_line)[span.end_column :].lstrip()
    return before.endswith("(") and after.startswith(")")


RULE = Rule(
    code="LLM101",
    name="unscaled-attention",
    summary="Attention scores q @ k^T reach a softmax without 1/sqrt(d_head) scaling",
    severity=Severity.WARNING,
    confidence=Confidence.HIGH,
    citation_keys=(
        "vaswani2017attention",
        "dehghani2023vit22b",
        "wortsman2023smallscale",
        "zhai2023entropy",
        "henry2020qknorm",
        "yang2022mup",
        "dao2022flashattention",
    ),
    check=check,
    docs=RULE_DOCS,
    tags=("attention", "stability", "initialization"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # one scalar feature per token (q, k unbound from the last axis): d = 1, nothing to scale
        """
        import torch.nn as nn

        class ScalarAttention(nn.Module):
            def __init__(self):
                super().__init__()
                self.qkv = nn.Linear(1, 3)

            def forward(self, x):
                q, k, v = self.qkv(x).unbind(-1)
                attn = (q @ k.transpose(-1, -2)).softmax(dim=-1)
                return attn @ v
        """,
        """
        import math
        import torch.nn.functional as F
        def attend(q, k, v, mask):
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(mask == 0, float("-inf"))
            return F.softmax(att, dim=-1) @ v
        """,
        """
        from torch import nn
        class BartAttention(nn.Module):
            def forward(self, hidden_states):
                query_states = self.q_proj(hidden_states) * self.scaling
                key_states = self.k_proj(hidden_states)
                attn_weights = torch.bmm(query_states, key_states.transpose(1, 2))
                return nn.functional.softmax(attn_weights, dim=-1)
        """,
        """
        import torch
        def attention(q, k, v, temperature):
            scores = torch.matmul(q, k.transpose(-1, -2))
            if temperature is not None:
                scores = scores / temperature
            return torch.softmax(scores, dim=-1) @ v
        """,
        """
        import torch
        def alibi_attention(q, k, v, bias, scale):
            att = torch.baddbmm(bias, q, k.transpose(1, 2), beta=1.0, alpha=scale)
            return att.softmax(dim=-1) @ v
        """,
        """
        import torch
        from torch import nn
        class Classifier(nn.Module):
            def forward(self, x):
                logits = x @ self.weight.T  # a linear head, not attention
                return torch.softmax(logits, dim=-1)
        """,
        """
        import torch.nn.functional as F
        def attend(scores, v):  # the caller computed (and maybe scaled) the scores
            return F.softmax(scores, dim=-1) @ v
        """,
        """
        import torch.nn.functional as F
        def attend(q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        """,
        """
        import torch
        import torch.nn.functional as F
        def cosine_attention(q, k, v, logit_scale):
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
            att = q @ k.transpose(-2, -1)
            return torch.softmax(att * logit_scale.exp(), dim=-1) @ v
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch.nn.functional as F
            def attend(q, k, v, mask):
                att = q @ k.transpose(-2, -1)  # (B, nh, T, T)
                att = att.masked_fill(mask == 0, float("-inf"))
                att = F.softmax(att, dim=-1)
                return att @ v
            """,
            at=("3:11-3:34",),
            fixed="""
            import torch.nn.functional as F
            def attend(q, k, v, mask):
                # Scale logits by 1/sqrt(d_head) so their variance stays ~1 and softmax does not saturate (Vaswani et al., 2017, arXiv:1706.03762)
                att = (q @ k.transpose(-2, -1)) * (k.size(-1) ** -0.5)  # (B, nh, T, T)
                att = att.masked_fill(mask == 0, float("-inf"))
                att = F.softmax(att, dim=-1)
                return att @ v
            """,
        ),
        Invalid(
            """
            import math
            import torch
            from torch.nn import functional as fn
            def attention(query, key, value, mask):
                weights = fn.softmax(torch.matmul(query, key.transpose(-1, -2)) + mask, dim=-1)
                return torch.matmul(weights, value)
            """,
            at=("5:26-5:68",),
            fixed="""
            import math
            import torch
            from torch.nn import functional as fn
            def attention(query, key, value, mask):
                # Scale logits by 1/sqrt(d_head) so their variance stays ~1 and softmax does not saturate (Vaswani et al., 2017, arXiv:1706.03762)
                weights = fn.softmax(torch.matmul(query, key.transpose(-1, -2)) * (1.0 / math.sqrt(key.size(-1))) + mask, dim=-1)
                return torch.matmul(weights, value)
            """,
        ),
        Invalid(
            """
            from math import sqrt
            from torch import einsum, nn
            class Attention(nn.Module):
                def forward(self, q, k, v):
                    dots = einsum("b h i d, b h j d -> b h i j", q, k)
                    attn = self.dropout(dots.softmax(dim=-1))
                    return einsum("b h i j, b h j d -> b h i d", attn, v)
            """,
            at=("5:16-5:59",),
            fixed="""
            from math import sqrt
            from torch import einsum, nn
            class Attention(nn.Module):
                def forward(self, q, k, v):
                    # Scale logits by 1/sqrt(d_head) so their variance stays ~1 and softmax does not saturate (Vaswani et al., 2017, arXiv:1706.03762)
                    dots = einsum("b h i d, b h j d -> b h i j", q, k) * (1.0 / sqrt(k.size(-1)))
                    attn = self.dropout(dots.softmax(dim=-1))
                    return einsum("b h i j, b h j d -> b h i d", attn, v)
            """,
        ),
        Invalid(
            """
            import math
            import torch
            from torch import nn
            class SelfAttention(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.softmax = nn.Softmax(dim=-1)
                def forward(self, q, k, v, mask):
                    scores = q.matmul(k.mT).masked_fill(mask, float("-inf"))
                    return self.softmax(scores).matmul(v)
            """,
            at=("9:18-9:32",),
            fixed="""
            import math
            import torch
            from torch import nn
            class SelfAttention(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.softmax = nn.Softmax(dim=-1)
                def forward(self, q, k, v, mask):
                    # Scale logits by 1/sqrt(d_head) so their variance stays ~1 and softmax does not saturate (Vaswani et al., 2017, arXiv:1706.03762)
                    scores = (q.matmul(k.mT) * (1.0 / math.sqrt(k.size(-1)))).masked_fill(mask, float("-inf"))
                    return self.softmax(scores).matmul(v)
            """,
        ),
        # Hugging Face style: the head size its own views use, and the shape its comments state.
        Invalid(
            """
            import torch
            from torch import nn
            class Attention(nn.Module):
                def forward(self, hidden_states):
                    bsz, q_len, _ = hidden_states.size()
                    query_states = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    key_states = self.k_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    attn_weights = torch.matmul(query_states, key_states.transpose(2, 3))
                    return nn.functional.softmax(attn_weights, dim=-1)
            """,
            at=("8:24-8:78",),
            fixed="""
            import torch
            from torch import nn
            class Attention(nn.Module):
                def forward(self, hidden_states):
                    bsz, q_len, _ = hidden_states.size()
                    query_states = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    key_states = self.k_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
                    # Scale logits by 1/sqrt(d_head) so their variance stays ~1 and softmax does not saturate (Vaswani et al., 2017, arXiv:1706.03762)
                    attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) * (self.head_dim ** -0.5)  # (bsz, num_heads, q_len, q_len)
                    return nn.functional.softmax(attn_weights, dim=-1)
            """,
        ),
        # timm style: the scale is computed in __init__ and never used.
        Invalid(
            """
            from torch import nn
            class Attention(nn.Module):
                def __init__(self, dim, num_heads=8):
                    super().__init__()
                    self.num_heads = num_heads
                    self.scale = (dim // num_heads) ** -0.5
                def forward(self, q, k, v):
                    attn = q @ k.transpose(-2, -1)
                    attn = attn.softmax(dim=-1)
                    return attn @ v
            """,
            at=("8:16-8:39",),
            fixed="""
            from torch import nn
            class Attention(nn.Module):
                def __init__(self, dim, num_heads=8):
                    super().__init__()
                    self.num_heads = num_heads
                    self.scale = (dim // num_heads) ** -0.5
                def forward(self, q, k, v):
                    # Scale logits by 1/sqrt(d_head) so their variance stays ~1 and softmax does not saturate (Vaswani et al., 2017, arXiv:1706.03762)
                    attn = (q @ k.transpose(-2, -1)) * self.scale
                    attn = attn.softmax(dim=-1)
                    return attn @ v
            """,
        ),
    ),
)
