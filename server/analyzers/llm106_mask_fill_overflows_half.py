"""Attention scores masked with a literal like -1e9 that float16 cannot hold.

## Problem
Masking attention by hand writes a large negative number where a query may not look:
`scores.masked_fill(mask == 0, -1e9)`, `torch.where(mask, scores, -1e9)`,
`scores + (1.0 - mask) * -1e9`. In float32 that is fine. The largest finite float16 is 65504, so
the moment the scores are float16 (a `.half()` model, CUDA autocast, fp16 inference), the literal
no longer fits. `masked_fill` refuses it and raises `value cannot be converted to type c10::Half
without overflow`; `torch.where` and the additive form silently turn it into -inf, and a row with
every key masked (padding, an empty local window) becomes NaN after the softmax, which then spreads
through the rest of the network and the loss.

## Diagnosis
On the road from a query-key product to its softmax (`document.attention`, followed step by step),
the check looks for a mask fill: `masked_fill` / `masked_fill_` (also in place, as a statement),
`torch.masked_fill`, `torch.where` with the scores on one side, or an added term multiplied by a
constant. The fill must be a constant, however it is spelled (`-1e9`, `float("-1e9")`, `-2 ** 32 + 1`,
a local or module-level constant) with a magnitude above 65504. `float("-inf")`,
`torch.finfo(dtype).min` and -1e4 / -10000.0 are not flagged. Scores that are explicitly cast to
float32 before the mask (`att.float()`, `q.float() @ k.float().T`, `.to(torch.float32)`) are not
flagged either, nor is a fill chosen under a dtype test (`if mask.dtype == torch.float16: ... 65500
else: ... 1e30`). The severity follows the evidence: a warning when the file asks for float16
anywhere (`torch.float16`, `.half()`, a `"fp16"` / `"float16"` setting, CUDA autocast without a
bfloat16 dtype, `GradScaler`), otherwise info, because then the scores' dtype follows whatever the
caller does with the model. The additive form is always info: whether `mask * -1e9` overflows
depends on the mask's own dtype.

## Hypothesis
float16 has 5 exponent bits: its finite range ends at ±65504, and anything from ±65520 up rounds to
±inf. A fill of -1e9 is therefore not "very negative" but either an error (masked_fill checks the
conversion) or -inf. A softmax over a row of -inf computes exp(-inf - (-inf)) = exp(NaN): the row
is NaN. Rows that are only partly masked still work, which is why the bug survives float32 testing
and appears only on the first batch with a fully padded sequence under mixed precision.

## Literature
- Micikevicius et al. (2018, "Mixed Precision Training") describe training in float16 with float32
  master weights; float16's narrow range (largest finite value 65504) is the reason for loss scaling
  and the reason large constants must not be written into float16 tensors.
- Vaswani et al. (2017, §3.2.3) mask illegal connections by setting their scores to -inf before the
  softmax; implementations substitute a large finite negative number to avoid NaN on fully masked
  rows, and that number has to fit the dtype.

## Recommendation
Use the most negative finite value of the scores' own dtype: `torch.finfo(scores.dtype).min`
(-65504 in float16, about -3.4e38 in float32, the same in bfloat16). It is what Hugging Face models
use. Alternatively keep the softmax in float32 (`scores.float()` before masking, cast the weights
back after) when you also want the extra precision there.

## Expected outcome
Fully masked rows give uniform, finite weights instead of NaN; `masked_fill` stops raising under
fp16; training and inference under autocast or `.half()` work with padded batches, and float32
results are unchanged (exp of -1e9 and of -3.4e38 are both exactly 0).

## Implementation
Before:

    scores = scores.masked_fill(mask == 0, -1e9)
    p_attn = scores.softmax(dim=-1)

After:

    scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
    p_attn = scores.softmax(dim=-1)

The fix is offered for `masked_fill` and `torch.where`, where the value is written as is, and only
when the scores have a plain name to read the dtype from. It is marked unsafe: if another large
negative term is added after the fill (a second additive mask that also uses the dtype's minimum,
an ALiBi bias), the sum can now overflow to -inf where -1e9 did not, and code that compares scores
with the old sentinel (`scores == -1e9`) changes meaning. No fix is offered for the additive form:
`scores + (1 - mask) * torch.finfo(dtype).min` itself overflows in float16 once a score is below
about -16, so that form should become a `masked_fill`.

## Caveats
The dtype of the scores is not visible statically; the rule infers a risk from the file, which is
why it is info without float16 evidence. bfloat16 has float32's range and is safe with -1e9; a file
that only uses bfloat16 autocast is not treated as float16. Masks applied inside helpers (HF's
`_prepare_4d_causal_attention_mask`) or passed to `F.scaled_dot_product_attention` are not followed.
`float("-inf")` is left alone: it is exact for partly masked rows and NaN for fully masked ones,
a trade-off some code makes knowingly (and SDPA handles it).

## Next steps
Run one forward pass under `torch.autocast("cuda", dtype=torch.float16)` (or with `model.half()`)
on a batch that includes an all-padding sequence and assert `torch.isfinite(output).all()`; add
that as a test so the masking value cannot regress.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.attention import _bound_value
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.score_flow import ScorePath, Step
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace

FIX_TITLE = "Fill with torch.finfo(dtype).min"
RULE_DOCS = __doc__

HALF_MAX = 65504.0
# Values from here up round to inf when stored in float16; masked_fill refuses anything above HALF_MAX.
_HALF_ROUNDS_TO_INF = 65520.0


@dataclass(frozen=True)
class _Fill:
    value: ast.expr  # the node holding the constant (reported and replaced)
    kind: str  # "masked_fill" | "where" | "additive"
    scores: ast.expr | None  # the scores expression at the fill, to read the dtype from
    statement: ast.AST  # where the fill happens, for the data flow of constants


def check(document: Document, context: RuleContext, rule: Rule):
    sites = document.attention
    if not sites or not _may_hold_a_large_constant(document):
        return
    facts = document.score_flow
    reported: set[int] = set()
    for site in sites:
        found = facts.paths(site)
        for path in found.paths:
            for fill, toward_product in _fills_on(document, path):
                if id(fill.value) in reported:
                    continue
                value = _fill_value(document, fill)
                if value is None or not _overflows(value, fill.kind):
                    continue
                if _upcast_before_fill(document, toward_product, path) or _chosen_by_dtype(document, fill.value):
                    continue
                reported.add(id(fill.value))
                yield _finding(document, rule, fill, value)


def _fills_on(document: Document, path: ScorePath):
    """Every mask fill on the path, with the steps between it and the product."""
    for position, step in enumerate(path.steps):
        fill = _fill_at(document, step)
        if fill is not None:
            yield fill, path.steps[position + 1 :]
    yield from ((fill, path.steps) for fill in _inplace_fills(document, path))


def _fill_at(document: Document, step: Step) -> _Fill | None:
    node, operand = step.node, step.operand
    if isinstance(node, ast.Call):
        func = node.func
        qualified = document.qualified_name(func)
        if isinstance(func, ast.Attribute) and qualified is None:
            if func.attr in ("masked_fill", "masked_fill_") and operand is func.value:
                value = _argument(node, 1, "value")
                return None if value is None else _Fill(value, "masked_fill", func.value, node)
            return None
        if qualified == "torch.masked_fill" and node.args and operand is node.args[0]:
            value = _argument(node, 2, "value")
            return None if value is None else _Fill(value, "masked_fill", operand, node)
        if qualified == "torch.where" and len(node.args) == 3 and operand in node.args[1:]:
            other = node.args[2] if operand is node.args[1] else node.args[1]
            return _Fill(other, "where", operand, node)
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        other = node.right if operand is node.left else node.left
        return _additive(other, node, operand)
    if isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Add, ast.Sub)) and operand is node.target:
        return _additive(node.value, node, operand)
    return None


def _additive(term: ast.expr, node: ast.AST, scores: ast.expr) -> _Fill | None:
    """`(1.0 - mask) * -1e9`: the constant factor of an added mask term."""
    if isinstance(term, ast.BinOp) and isinstance(term.op, ast.Mult):
        for factor in (term.left, term.right):
            if _is_literal_number(factor):
                return _Fill(factor, "additive", scores, node)
    return None


def _inplace_fills(document: Document, path: ScorePath):
    """`att.masked_fill_(mask, -1e9)` as a statement between the product and the softmax."""
    index = document.index
    function = document.score_flow.scope_of(path.site.softmax)
    start = (path.product.node.lineno, path.product.node.col_offset)
    end = (path.site.softmax.lineno, path.site.softmax.col_offset)
    for call in document.score_flow.method_calls("masked_fill_"):
        func = call.func
        if isinstance(func.value, ast.Name) and func.value.id in path.names and start < (call.lineno, call.col_offset) < end:
            if document.score_flow.scope_of(call) is function and isinstance(index.parent(call), ast.Expr):
                value = _argument(call, 1, "value")
                if value is not None:
                    yield _Fill(value, "masked_fill", func.value, call)


def _may_hold_a_large_constant(document: Document) -> bool:
    """Cheap gate: a number beyond float16's range is written somewhere (`-1e9`, `"-1e9"`), or built
    with a power (`-2 ** 32`)."""
    for node in document.index.nodes(ast.Constant):
        value = node.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if abs(value) > HALF_MAX and math.isfinite(value):
                return True
        elif isinstance(value, str) and 0 < len(value) < 24 and value[-1:].isdigit():
            try:
                if abs(float(value)) > HALF_MAX:
                    return True
            except ValueError:
                continue
    return any(isinstance(node.op, ast.Pow) for node in document.index.nodes(ast.BinOp))


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for argument in call.keywords:
        if argument.arg == keyword:
            return argument.value
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
        return call.args[position]
    return None


def _is_literal_number(node: ast.AST) -> bool:
    from llmarch_lsp.facts.score_flow import evaluate_constant

    return evaluate_constant(node) is not None


def _fill_value(document: Document, fill: _Fill) -> float | None:
    facts = document.score_flow
    node = fill.value
    if isinstance(node, ast.Call) and document.qualified_name(node.func) == "torch.tensor" and len(node.args) == 1:
        node = node.args[0]  # torch.where(mask, scores, torch.tensor(-1e9))
    scope = facts.scope_of(fill.value)
    use = document.index.enclosing_statement(fill.value)
    return facts.constant_value(node, use, facts.flow(scope))


def _overflows(value: float, kind: str) -> bool:
    if not math.isfinite(value):
        return False
    limit = HALF_MAX if kind == "masked_fill" else _HALF_ROUNDS_TO_INF - 1
    return abs(value) > limit


def _upcast_before_fill(document: Document, toward_product: tuple[Step, ...], path: ScorePath) -> bool:
    """Scores made float32 on purpose before the mask: `att.float()`, `q.float() @ k.float().T`."""
    facts = document.score_flow
    if any(facts.casts_to_float32(step.node) for step in toward_product):
        return True
    product = path.product
    flow = facts.flow(facts.scope_of(product.node))
    use = document.index.enclosing_statement(product.node)
    for operand in (product.query, product.key_base):
        if _casts_in_chain(facts, operand):
            return True
        if isinstance(operand, ast.Name):
            for statement in flow.reaching(operand.id, use):
                if _casts_in_chain(facts, _bound_value(statement, operand.id)):
                    return True
    return False


def _chosen_by_dtype(document: Document, node: ast.AST) -> bool:
    """`if mask.dtype == torch.float16: ... 65500 else: ... 1e30`: the author already picks the fill per dtype."""
    for ancestor in document.index.ancestors(node):
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return False
        if isinstance(ancestor, (ast.If, ast.IfExp)):
            for part in walk(ancestor.test):
                if isinstance(part, ast.Attribute) and part.attr in ("dtype", "float16", "half", "is_autocast_enabled"):
                    return True
    return False


def _casts_in_chain(facts, node: ast.AST | None) -> bool:
    """A float32 cast anywhere along `x.float().transpose(1, 2)`'s method chain."""
    while node is not None:
        if facts.casts_to_float32(node):
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        elif isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        else:
            return False
    return False


def _finding(document: Document, rule: Rule, fill: _Fill, value: float):
    evidence = document.score_flow.half_precision_evidence
    shown = _shown(document, fill.value)
    if _evaluate_literal(fill.value):
        fill_text = f"`{shown}`"
    else:
        fill_text = f"`{shown}` (= {value:g})"
    if fill.kind == "masked_fill":
        consequence = (
            f"mask fill {fill_text} overflows float16 (max 65504): on float16 scores `masked_fill` raises "
            "'value cannot be converted to type c10::Half without overflow'"
        )
    elif fill.kind == "where":
        consequence = (
            f"mask fill {fill_text} overflows float16 (max 65504) to -inf: a fully masked row becomes NaN "
            "after the softmax"
        )
    else:
        consequence = (
            f"mask term {fill_text} overflows float16 (max 65504) to -inf when the mask is float16: a fully "
            "masked row becomes NaN after the softmax"
        )
    if evidence is not None and fill.kind != "additive":
        context = "this file uses float16"
        severity = Severity.WARNING
        related = (Related(document.span_of(evidence), "float16 is used here"),)
    else:
        context = "a risk whenever the model runs in fp16 or under CUDA autocast"
        severity = Severity.INFO
        related = ()
    scores = document.segment(fill.scores) if fill.scores is not None and _is_plain_reference(fill.scores) else "scores"
    if fill.kind == "additive":
        remedy = f"mask with {scores}.masked_fill(mask, torch.finfo({scores}.dtype).min) instead"
    else:
        remedy = f"use torch.finfo({scores}.dtype).min"
    message = f"{consequence}; {context}; {remedy} (Micikevicius et al., 2018)"
    return rule.finding(document, fill.value, message, severity=severity, related=related, fix=_fix(document, fill))


def _evaluate_literal(node: ast.AST) -> bool:
    """Whether the fill is written as a number (`-1e9`, `float(-1e9)`) rather than a name."""
    return _is_literal_number(node) or (isinstance(node, ast.Call) and any(_is_literal_number(a) for a in node.args))


def _shown(document: Document, node: ast.AST) -> str:
    text = " ".join(document.segment(node).split())
    return text if len(text) <= 40 else text[:39] + "…"


def _fix(document: Document, fill: _Fill) -> Fix | None:
    if fill.kind == "additive" or fill.scores is None or not _is_plain_reference(fill.scores):
        return None
    finfo = document.imports.local_name_for("torch.finfo")
    imports = ()
    if finfo is None:
        finfo, imports = "torch.finfo", (AddImport("torch"),)
    replacement = f"{finfo}({document.segment(fill.scores)}.dtype).min"
    return Fix(
        title=FIX_TITLE,
        applicability=UNSAFE,
        replacements=(Replace(document.span_of(fill.value), replacement),),
        imports=imports,
    )


def _is_plain_reference(node: ast.AST) -> bool:
    """`scores`, `self.scores`, `att[:, :, :T]`: cheap to read twice, on one line."""
    if node.end_lineno != node.lineno:
        return False
    return all(not isinstance(part, (ast.Call, ast.Await, ast.NamedExpr)) for part in walk(node))


RULE = Rule(
    code="LLM106",
    name="mask-fill-overflows-half",
    summary="Attention mask filled with a constant like -1e9 that overflows float16",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("micikevicius2018mixed", "vaswani2017attention"),
    check=check,
    docs=RULE_DOCS,
    tags=("attention", "mixed-precision", "numerics"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        """
        import torch
        def attention(query, key, value, mask, scale):
            scores = torch.matmul(query, key.transpose(-2, -1)) * scale
            scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
            return scores.softmax(dim=-1) @ value
        """,
        """
        import torch.nn.functional as F
        def attend(q, k, v, mask, scale):
            att = (q @ k.transpose(-2, -1)) * scale
            att = att.masked_fill(mask == 0, float("-inf"))
            return F.softmax(att, dim=-1) @ v
        """,
        """
        import torch
        def attention(query, key, value, mask, scale):
            scores = torch.matmul(query, key.transpose(-2, -1)) * scale
            scores = scores.masked_fill(mask == 0, -1e4)  # fits in float16
            return scores.softmax(dim=-1) @ value
        """,
        """
        import torch
        def attention(query, key, value, mask, scale):
            scores = torch.matmul(query.float(), key.float().transpose(-2, -1)) * scale
            scores = scores.masked_fill(mask == 0, -1e9)  # float32 on purpose
            return scores.softmax(dim=-1).to(value.dtype) @ value
        """,
        """
        import torch
        def attention(q, k, v, mask, scale):
            att = (q @ k.transpose(-2, -1)) * scale
            att = att.float().masked_fill(~mask, -1e9)
            return torch.softmax(att, dim=-1).type_as(v) @ v
        """,
        """
        import torch
        def beam_scores(batch_size, num_beams):
            scores = torch.zeros(batch_size, num_beams)
            return scores.masked_fill(scores == 0, -1e9)  # not attention
        """,
    ),
    invalid=(
        Invalid(
            """
            import math
            import torch
            def attention(query, key, value, mask=None):
                scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.size(-1))
                if mask is not None:
                    scores = scores.masked_fill(mask == 0, -1e9)
                p_attn = scores.softmax(dim=-1)
                return torch.matmul(p_attn, value), p_attn
            """,
            at=("6:48-6:52",),
            fixed="""
            import math
            import torch
            def attention(query, key, value, mask=None):
                scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.size(-1))
                if mask is not None:
                    scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
                p_attn = scores.softmax(dim=-1)
                return torch.matmul(p_attn, value), p_attn
            """,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            NEG_INF = -1e10
            class Attention(nn.Module):
                def forward(self, q, k, v, mask):
                    att = q @ k.transpose(-2, -1) * self.scale
                    att = torch.where(mask, att, NEG_INF)
                    return att.softmax(dim=-1) @ v
            model = Attention().half()
            """,
            at=("7:38-7:45",),
            fixed="""
            import torch
            from torch import nn
            NEG_INF = -1e10
            class Attention(nn.Module):
                def forward(self, q, k, v, mask):
                    att = q @ k.transpose(-2, -1) * self.scale
                    att = torch.where(mask, att, torch.finfo(att.dtype).min)
                    return att.softmax(dim=-1) @ v
            model = Attention().half()
            """,
        ),
        Invalid(
            """
            import torch.nn.functional as F
            def attend(q, k, v, padding_mask, scale):
                att = (q @ k.transpose(-2, -1)) * scale
                att.masked_fill_(padding_mask, float(-1e9))
                return F.softmax(att, dim=-1) @ v
            """,
            at=("4:36-4:47",),
            fixed="""
            import torch.nn.functional as F
            import torch

            def attend(q, k, v, padding_mask, scale):
                att = (q @ k.transpose(-2, -1)) * scale
                att.masked_fill_(padding_mask, torch.finfo(att.dtype).min)
                return F.softmax(att, dim=-1) @ v
            """,
        ),
        Invalid(
            """
            import torch
            def attention(q, k, v, mask, scale):
                scores = torch.bmm(q, k.transpose(1, 2)) * scale
                scores = scores + (1.0 - mask) * -1e9
                return torch.bmm(torch.softmax(scores, dim=-1), v)
            """,
            at=("4:38-4:42",),
        ),
    ),
)
