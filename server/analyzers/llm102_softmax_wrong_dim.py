"""An attention softmax taken over a dimension other than the key axis.

## Problem
Attention weights are a softmax over keys: for each query, the weights over the positions it may
attend to sum to 1. With `(B, nh, T, S)` scores from `q @ k.transpose(-2, -1)`, that is the last
axis. Written as `F.softmax(att, dim=1)` or `dim=-2`, the softmax normalises over heads or over
queries instead. Nothing fails: shapes still line up, the model trains, and the loss goes down,
because each output is still some weighted mix of values; it is simply not attention any more.

## Diagnosis
For each softmax that `document.attention` traces back to a query-key product, the check works out
where the key axis is at the softmax: the last axis of a matmul/`bmm` product with a transposed
key (the key's sequence axis), or the position of the key-only letter in an einsum output
(`'bhid,bhjd->bhij'`: `j`, the last). It follows the scores through masking, bias, scaling, dtype,
dropout and slicing on the way, and gives up (silently) on `view`, `reshape`, `permute` or
anything else that moves axes. It reads the rank where the code makes it evident:
4-D after `.view(B, T, nh, hs).transpose(1, 2)`, a `rearrange` to `b h n d`, `torch.randn(B, H, T,
D)`; 3-D from `torch.bmm`; the einsum output letters. A negative `dim` other than the key axis is
always wrong; a non-negative one is flagged only when the rank proves it is not the key axis
(`dim=3` on 4-D scores is fine). `F.softmax(att)` and `nn.Softmax()` without `dim` are flagged
when the rank shows that PyTorch's deprecated implicit choice (dim 0 for 3-D input, dim 1
otherwise) misses the key axis. The operands must be named like a query (left) and a key (right):
without names the orientation of the product is a guess. And the weights must multiply something
afterwards (`att @ v`, an einsum or `bmm` with them) in the same function, as attention weights do:
a softmax of `q @ kᵀ` that only feeds a loss, such as a contrastive objective, is left alone.

## Hypothesis
A softmax over the wrong axis breaks the two properties attention relies on. Each query's weights
no longer sum to 1 over keys, so the output's scale drifts with sequence length and content; and
with `dim=-2` (over queries) in a causal model, the weight a query gives to key j depends on how
every other query scores j, which mixes information across positions the causal mask was meant to
keep apart: later tokens leak into earlier outputs through the normaliser. Training loss can look
reasonable while generation, length generalisation and probing of attention maps all go wrong.

## Literature
- Vaswani et al. (2017, "Attention Is All You Need", §3.2.1) define scaled dot-product attention
  as softmax(QKᵀ/sqrt(d_k))V: the softmax is taken row-wise, over the keys, for each query.

## Recommendation
Take the softmax over the key axis: `F.softmax(att, dim=-1)` for scores shaped `(..., T_q, T_k)`.
Prefer a negative index so the code keeps working when heads or batch dimensions are added or
removed. Better still, when the weights themselves are not needed, call
`F.scaled_dot_product_attention(q, k, v, ...)`, which cannot get the axis wrong.

## Expected outcome
Each query's attention weights sum to 1 over keys (`att.sum(-1)` is all ones), the result matches
`F.scaled_dot_product_attention` on the same inputs, causal models stop leaking future tokens
through the normaliser, and loss curves from before and after the fix are not comparable: expect
the fixed model to train to a lower loss.

## Implementation
Before:

    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)
    att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
    att = F.softmax(att, dim=1)

After:

    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)
    att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
    att = F.softmax(att, dim=-1)

The fix changes the model's output, as it should, so it is marked unsafe: a checkpoint trained with
the wrong axis will not behave the same after the change and needs retraining.

## Caveats
Some models normalise over the query axis on purpose and are not flagged: slot attention (Locatello
et al., 2020) takes the softmax over slots and then renormalises over inputs (a softmax followed by
`attn / attn.sum(dim=-1, keepdim=True)`, or anything named for slots), and co-attention models that
softmax the same similarity matrix along both axes. When the operands are not named like a query and
a key, when the scores pass through a `view`, `reshape` or `permute`, or when the dim is a variable,
the check stays silent rather than guess the layout.

## Next steps
After fixing, assert `torch.allclose(att.sum(-1), torch.ones_like(att.sum(-1)))` in a unit test of
the attention module and compare its output against `F.scaled_dot_product_attention`. Retrain from
scratch: weights learned with the wrong normaliser do not transfer.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.attention import _KEY_WORDS, _QUERY_WORDS, AttentionSite, ScoreProduct, _has_word, _integer, _root_name
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.score_flow import Rank, ScorePath, broadcast_rank, is_scalar
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.builders import set_keyword_argument
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace

FIX_TITLE = "Take the softmax over the key axis"
RULE_DOCS = __doc__

_SOFTMAX_FUNCTIONS_WITH_IMPLICIT_DIM = {"torch.nn.functional.softmax", "torch.nn.functional.log_softmax"}
_SOFTMAX_FUNCTIONS = {
    "torch.softmax", "torch.log_softmax", "torch.special.softmax", "torch.special.log_softmax",
    *_SOFTMAX_FUNCTIONS_WITH_IMPLICIT_DIM,
}  # fmt: skip
_SOFTMAX_MODULES = {"torch.nn.Softmax", "torch.nn.LogSoftmax"}
# Steps that leave every axis where it was.
_AXIS_KEEPING_METHODS = {
    "float", "half", "bfloat16", "double", "to", "type", "type_as", "contiguous", "clone", "detach",
    "clamp", "clamp_", "clamp_min", "clamp_max", "clip", "nan_to_num",
}  # fmt: skip
# Steps that keep the axes but may broadcast extra leading ones in.
_BROADCASTING_METHODS = {"masked_fill", "masked_fill_", "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_",
                         "true_divide", "true_divide_", "divide", "multiply", "expand", "expand_as"}  # fmt: skip
_AXIS_KEEPING_FUNCTIONS = {"torch.nn.functional.dropout", "torch.dropout", "torch.clamp", "torch.clip", "torch.nan_to_num"}
_BROADCASTING_FUNCTIONS = {"torch.where", "torch.masked_fill", "torch.mul", "torch.div", "torch.true_divide",
                           "torch.multiply", "torch.divide"}  # fmt: skip
_CONCATENATIONS = {"torch.cat", "torch.concat", "torch.concatenate"}
_AXIS_NAMES = {
    2: ("queries", "keys"),
    3: ("the batch", "queries", "keys"),
    4: ("the batch", "heads", "queries", "keys"),
}


@dataclass(frozen=True)
class _SoftmaxDim:
    value: int | None  # None: no dim given, PyTorch picks one
    node: ast.expr | None  # the dim argument, to replace
    call: ast.Call  # the call to add `dim=` to when there is none
    fixable: bool = True


@dataclass(frozen=True)
class _Layout:
    """Where the key axis is at the softmax (a negative index) and how many dims the scores have."""

    key_axis: int
    rank: Rank | None


def check(document: Document, context: RuleContext, rule: Rule):
    sites = document.attention
    if not sites:
        return
    dims = [(site, _softmax_dim(document, site.softmax)) for site in sites]
    # Co-attention softmaxes one similarity matrix along both axes, on purpose.
    dims_by_product: dict[int, set] = {}
    for site, dim in dims:
        if dim is not None:
            for product in site.scores:
                dims_by_product.setdefault(id(product.node), set()).add(dim.value)
    for site, dim in dims:
        if dim is None or (dim.value == -1 and not any(_is_einsum(document, product) for product in site.scores)):
            continue  # the last axis is the key axis of every product but an einsum's
        layout = _layout_at_softmax(document, site)
        if layout is None:
            continue
        wrong, chosen = _wrong_axis(dim, layout)
        # The cheap verdict first; the checks that read the whole function only for suspects.
        if not wrong or any(len(dims_by_product[id(product.node)]) > 1 for product in site.scores):
            continue
        if _normalises_queries_on_purpose(document, site) or not _applied_to_values(document, site):
            continue
        where = dim.node if dim.node is not None else site.softmax
        yield rule.finding(
            document,
            where,
            _message(dim, chosen, layout),
            related=(Related(document.span_of(site.scores[0].node), "attention scores computed here"),),
            fix=_fix(document, dim, layout) if dim.fixable else None,
        )


# ---- which dim the softmax takes ------------------------------------------------------------------


def _softmax_dim(document: Document, call: ast.Call) -> _SoftmaxDim | None:
    """The dim of a softmax call, however it is spelled; None when it is not a literal."""
    func = call.func
    if isinstance(func, ast.Call):  # nn.Softmax(dim=1)(scores)
        if document.qualified_name(func.func) not in _SOFTMAX_MODULES:
            return None
        return _literal_dim(_argument(func, 0, "dim"), call_without_dim=func)
    if not isinstance(func, ast.Attribute) and not isinstance(func, ast.Name):
        return None
    qualified = document.qualified_name(func)
    if qualified in _SOFTMAX_FUNCTIONS:
        node = _argument(call, 1, "dim")
        if node is None and qualified not in _SOFTMAX_FUNCTIONS_WITH_IMPLICIT_DIM:
            return None
        return _literal_dim(node, call_without_dim=call)
    if qualified is not None or not isinstance(func, ast.Attribute):
        return None
    if isinstance(func.value, ast.Name) and func.value.id == "self":
        return _submodule_dim(document, call, func.attr)
    if func.attr in ("softmax", "log_softmax"):
        node = _argument(call, 0, "dim")
        return None if node is None else _literal_dim(node, call_without_dim=call)
    return None


def _submodule_dim(document: Document, call: ast.Call, attribute: str) -> _SoftmaxDim | None:
    """`self.softmax(scores)` with `self.softmax = nn.Softmax(dim=...)` built in the same class."""
    module = document.modules.class_owning(call)
    if module is None or document.modules.constructor_name(module, attribute) not in _SOFTMAX_MODULES:
        return None
    constructor = module.submodules[attribute]
    dim = _literal_dim(_argument(constructor, 0, "dim"), call_without_dim=constructor)
    if dim is None:
        return None
    # The fix edits the constructor: only when this call is the module's one use.
    uses = sum(
        1
        for other in document.index.calls
        if isinstance(other.func, ast.Attribute)
        and other.func.attr == attribute
        and isinstance(other.func.value, ast.Name)
        and other.func.value.id == "self"
        and document.modules.class_owning(other) is module
    )
    return _SoftmaxDim(dim.value, dim.node, dim.call, fixable=uses == 1)


def _literal_dim(node: ast.expr | None, call_without_dim: ast.Call) -> _SoftmaxDim | None:
    if node is None:
        return _SoftmaxDim(None, None, call_without_dim)
    value = _integer(node)
    return None if value is None else _SoftmaxDim(value, node, call_without_dim)


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    for argument in call.keywords:
        if argument.arg == keyword:
            return argument.value
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
        return call.args[position]
    return None


# ---- where the key axis is ------------------------------------------------------------------------


def _layout_at_softmax(document: Document, site: AttentionSite) -> _Layout | None:
    facts = document.score_flow
    found = facts.paths(site)
    if found.truncated or not found.paths:
        return None
    layouts = [_layout_along(document, path) for path in found.paths]
    if any(layout is None for layout in layouts) or len({layout.key_axis for layout in layouts}) != 1:
        return None
    ranks = [layout.rank for layout in layouts]
    if any(rank is None for rank in ranks):
        rank = None
    elif all(rank.exact for rank in ranks) and len({rank.value for rank in ranks}) == 1:
        rank = ranks[0]
    else:
        rank = Rank(min(rank.value for rank in ranks), False)
    return _Layout(layouts[0].key_axis, rank)


def _layout_along(document: Document, path: ScorePath) -> _Layout | None:
    layout = _product_layout(document, path.product)
    if layout is None:
        return None
    for step in reversed(path.steps):  # from the product towards the softmax
        layout = _after_step(document, path, step.node, step.operand, layout)
        if layout is None:
            return None
    return layout


def _product_layout(document: Document, product: ScoreProduct) -> _Layout | None:
    query_name, key_name = _root_name(product.query), _root_name(product.key_base)
    if not (query_name and key_name and _has_word(query_name, _QUERY_WORDS) and _has_word(key_name, _KEY_WORDS)):
        return None  # without names, which side holds the keys is a guess
    facts = document.score_flow
    node = product.node
    if _is_einsum(document, product):
        return _einsum_layout(node)
    if product.key_head_axis is None:
        return None  # `k.permute(...)`: where the key positions went is not evident
    if isinstance(node, ast.Call) and (
        document.qualified_name(node.func) in ("torch.bmm", "torch.baddbmm")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "bmm" and document.qualified_name(node.func) is None)
    ):
        return _Layout(-1, Rank(3))
    use = document.index.enclosing_statement(node)
    flow = facts.flow(facts.scope_of(node))
    query_rank = facts.rank_of(product.query, use, flow)
    key_rank = facts.rank_of(product.key_base, use, flow)
    if any(rank is not None and rank.value < 2 for rank in (query_rank, key_rank)):
        return None  # a single query vector: the scores are 1-D
    return _Layout(-1, broadcast_rank(query_rank, key_rank))


def _is_einsum(document: Document, product: ScoreProduct) -> bool:
    node = product.node
    return isinstance(node, ast.Call) and document.qualified_name(node.func) == "torch.einsum"


def _einsum_layout(call: ast.Call) -> _Layout | None:
    equation = call.args[0] if call.args else None
    if not (isinstance(equation, ast.Constant) and isinstance(equation.value, str)) or "->" not in equation.value:
        return None
    inputs, output = equation.value.replace(" ", "").split("->")
    operands = inputs.split(",")
    if len(operands) != 2:
        return None
    query, key = (operand.replace("...", "") for operand in operands)
    key_only = [letter for letter in key if letter not in query]
    letters = output.replace("...", "")
    if len(key_only) != 1 or key_only[0] not in letters:
        return None
    position = letters.index(key_only[0]) - len(letters)
    return _Layout(position, Rank(len(letters), "..." not in output))


def _after_step(document: Document, path: ScorePath, node: ast.AST, operand: ast.AST, layout: _Layout) -> _Layout | None:
    """The layout after the scores (arriving as `operand`) pass through `node`."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)):
        if isinstance(node, ast.BinOp):
            other = node.right if operand is node.left else node.left
        else:
            other = node.value if operand is node.target else node.target
        if is_scalar(document, other):
            return layout
        return _Layout(layout.key_axis, _loosened(layout.rank))
    if isinstance(node, ast.Subscript):
        return _after_index(node.slice, layout)
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    qualified = document.qualified_name(func)
    if isinstance(func, ast.Attribute) and qualified is None:
        method = func.attr
        if operand is not func.value:  # `bias.add(att)`, `self.attn_drop(att)`
            if method in _BROADCASTING_METHODS or "drop" in method.lower():
                return _Layout(layout.key_axis, _loosened(layout.rank))
            return None
        if method in _AXIS_KEEPING_METHODS:
            return layout
        if method in _BROADCASTING_METHODS:
            return _Layout(layout.key_axis, _loosened(layout.rank))
        return None  # view, reshape, permute, squeeze...: the axes move
    if qualified in _AXIS_KEEPING_FUNCTIONS:
        return layout
    if qualified in _BROADCASTING_FUNCTIONS:
        return _Layout(layout.key_axis, _loosened(layout.rank))
    if qualified in _CONCATENATIONS:
        return layout
    return None


def _loosened(rank: Rank | None) -> Rank | None:
    return None if rank is None else rank.at_least()


def _after_index(index: ast.AST, layout: _Layout) -> _Layout | None:
    """Slices keep every axis (`att[:, :, :T, :T]`); integers or tensors may move the key axis."""
    elements = index.elts if isinstance(index, ast.Tuple) else [index]
    for element in elements:
        if isinstance(element, ast.Slice) or (isinstance(element, ast.Constant) and element.value is Ellipsis):
            continue
        return None
    return layout


# ---- the verdict ----------------------------------------------------------------------------------


def _wrong_axis(dim: _SoftmaxDim, layout: _Layout) -> tuple[bool, int | None]:
    """Whether the softmax provably misses the key axis, and the axis it takes (None: 0 or 1)."""
    rank, key_axis = layout.rank, layout.key_axis
    if dim.value is None:
        if rank is None:
            return False, None
        if rank.exact:
            implicit = 0 if rank.value in (0, 1, 3) else 1
            return implicit != rank.value + key_axis, implicit
        # The implicit choice is 0 or 1; a key axis at position 2 or later is missed either way.
        return rank.value + key_axis >= 2, None
    if dim.value < 0:
        return dim.value != key_axis, dim.value
    if rank is None:
        return False, dim.value
    if rank.exact:
        return dim.value != rank.value + key_axis and dim.value < rank.value, dim.value
    return dim.value < rank.value + key_axis, dim.value


def _message(dim: _SoftmaxDim, chosen: int | None, layout: _Layout) -> str:
    rank, key_axis = layout.rank, layout.key_axis
    target = f"dim={key_axis}"
    if dim.value is None:
        picked = f"dim={chosen}" if chosen is not None else "dim 0 or 1"
        return (
            f"softmax without `dim` makes PyTorch pick {picked} for these {_rank_text(rank)} attention scores, "
            f"not the key axis ({target}): each query's weights no longer sum to 1 over keys (Vaswani et al., 2017)"
        )
    across = _axis_name(chosen, rank, key_axis)
    return (
        f"softmax over dim={dim.value} normalises attention across {across} rather than across keys ({target}): "
        "each query's weights no longer sum to 1 over the positions it attends to (Vaswani et al., 2017)"
    )


def _rank_text(rank: Rank | None) -> str:
    if rank is None:
        return ""
    return f"{rank.value}-D" if rank.exact else f"{rank.value}-D (or more)"


def _axis_name(chosen: int, rank: Rank | None, key_axis: int) -> str:
    if key_axis == -1 and rank is not None and rank.exact and rank.value in _AXIS_NAMES:
        names = _AXIS_NAMES[rank.value]
        position = chosen if chosen >= 0 else rank.value + chosen
        if 0 <= position < len(names):
            return names[position]
    if key_axis == -1 and chosen == -2:
        return "queries"
    return "a non-key axis"


def _fix(document: Document, dim: _SoftmaxDim, layout: _Layout) -> Fix:
    axis = str(layout.key_axis)
    if dim.node is not None:
        replacement = Replace(document.span_of(dim.node), axis)
    else:
        replacement = set_keyword_argument(document, dim.call, "dim", axis)
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=(replacement,))


# ---- is it attention? -------------------------------------------------------------------------------

_PASS_THROUGH_PARENTS = (ast.Attribute, ast.Subscript)
_MATMUL_CALLS = {"torch.matmul", "torch.bmm", "torch.einsum", "torch.baddbmm"}


def _applied_to_values(document: Document, site: AttentionSite) -> bool:
    """The weights multiply something (`att @ v`, `torch.einsum(..., attn, v)`), as attention weights
    do; a softmax of `q @ kᵀ` that feeds a loss (a contrastive objective) is not attention."""
    statement = document.index.enclosing_statement(site.softmax)
    if _feeds_a_product(document, site.softmax, statement):
        return True
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)):
        return False
    facts = document.score_flow
    function = facts.scope_of(site.softmax)
    start = (statement.lineno, statement.col_offset)
    derived = {statement.targets[0].id}
    later = sorted(
        (node for node in walk(function) if isinstance(node, ast.stmt) and (node.lineno, node.col_offset) > start),
        key=lambda node: (node.lineno, node.col_offset),
    )
    for node in later:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            if _mentions(node.value, derived):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                derived.update(t.id for target in targets for t in walk(target) if isinstance(t, ast.Name))
    for node in later:
        for part in walk(node) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else ():
            if _is_product(document, part) and any(_mentions(operand, derived) for operand in _operands(part)):
                return True
    return False


def _feeds_a_product(document: Document, node: ast.AST, statement: ast.AST) -> bool:
    """`F.softmax(att, dim=-1) @ v`, `self.drop(att.softmax(-1)) @ v` on one line."""
    child, parent = node, document.index.parent(node)
    while parent is not None and parent is not statement:
        if _is_product(document, parent) and any(operand is child for operand in _operands(parent)):
            return True
        if not (isinstance(parent, _PASS_THROUGH_PARENTS) or isinstance(parent, ast.Call)):
            return False
        child, parent = parent, document.index.parent(parent)
    return False


def _is_product(document: Document, node: ast.AST) -> bool:
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, ast.MatMult)
    if isinstance(node, ast.Call):
        if document.qualified_name(node.func) in _MATMUL_CALLS:
            return True
        return isinstance(node.func, ast.Attribute) and node.func.attr in ("matmul", "bmm") and document.qualified_name(node.func) is None
    return False


def _operands(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    operands = list(node.args)
    if isinstance(node.func, ast.Attribute) and node.func.attr in ("matmul", "bmm"):
        operands.append(node.func.value)
    return operands


def _mentions(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(part, ast.Name) and part.id in names for part in walk(node))


# ---- on-purpose normalisation over queries ----------------------------------------------------------


def _normalises_queries_on_purpose(document: Document, site: AttentionSite) -> bool:
    """Slot attention: softmax over slots, then weights renormalised over inputs."""
    function = document.index.enclosing_function(site.softmax)
    owner = document.index.enclosing(site.softmax, ast.ClassDef)
    names = [getattr(function, "name", ""), getattr(owner, "name", "")]
    names += [_root_name(product.query) or "" for product in site.scores]
    if any("slot" in name.lower() for name in names):
        return True
    statement = document.index.enclosing_statement(site.softmax)
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)):
        return False
    weights = statement.targets[0].id
    facts = document.score_flow
    flow = facts.flow(facts.scope_of(site.softmax))
    for later in flow.definitions.get(weights, ()):
        if (later.lineno, later.col_offset) <= (statement.lineno, statement.col_offset):
            continue
        divisor = None
        if isinstance(later, ast.AugAssign) and isinstance(later.op, ast.Div):
            divisor = later.value
        elif isinstance(later, ast.Assign) and isinstance(later.value, ast.BinOp) and isinstance(later.value.op, ast.Div):
            divisor = later.value.right
        if divisor is not None and _sums(divisor, weights):
            return True
    return False


def _sums(node: ast.AST, name: str) -> bool:
    """`attn.sum(dim=-1, keepdim=True)` (maybe plus an epsilon)."""
    if isinstance(node, ast.BinOp):
        return _sums(node.left, name) or _sums(node.right, name)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "sum"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == name
    )


RULE = Rule(
    code="LLM102",
    name="softmax-wrong-dim",
    summary="Attention softmax taken over a dimension other than the key axis",
    severity=Severity.ERROR,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("vaswani2017attention",),
    check=check,
    docs=RULE_DOCS,
    tags=("attention", "correctness"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        """
        import math
        import torch.nn.functional as F
        def attend(q, k, v):
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            return F.softmax(att, dim=-1) @ v
        """,
        """
        import torch
        def attend(x, B, T, nh, hs):
            q = x.view(B, T, nh, hs).transpose(1, 2)
            k = x.view(B, T, nh, hs).transpose(1, 2)
            scores = torch.matmul(q, k.transpose(2, 3)) / hs ** 0.5
            return torch.softmax(scores, dim=3)  # the last axis of 4-D scores
        """,
        """
        import torch
        def attend(query, key, value, scale):
            weights = torch.bmm(query, key.transpose(1, 2)) * scale
            return torch.softmax(weights, 2) @ value
        """,
        """
        import torch
        def attend(q, k, v, scale):
            sim = torch.einsum("bhid,bhjd->bhji", q, k) * scale  # keys first, then queries
            attn = sim.softmax(dim=-2)
            return torch.einsum("bhji,bhjd->bhid", attn, v)
        """,
        """
        import torch
        from torch import nn
        class SlotAttention(nn.Module):
            def forward(self, slots, inputs):
                q, k = self.to_q(slots), self.to_k(inputs)
                dots = torch.einsum("bid,bjd->bij", q, k) * self.scale
                attn = dots.softmax(dim=1) + self.eps  # slots compete for each input
                attn = attn / attn.sum(dim=-1, keepdim=True)
                return torch.einsum("bjd,bij->bid", self.to_v(inputs), attn)
        """,
        """
        import torch
        def co_attention(premise, hypothesis):
            similarity = torch.bmm(premise, hypothesis.transpose(1, 2))
            premise_weights = torch.softmax(similarity, dim=2)
            hypothesis_weights = torch.softmax(similarity, dim=1)
            return premise_weights, hypothesis_weights
        """,
        """
        import torch.nn.functional as F
        def attend(q, k, v, scale, softmax_dim):
            att = (q @ k.transpose(-2, -1)) * scale
            return F.softmax(att, dim=softmax_dim) @ v
        """,
        """
        import torch.nn.functional as F
        def attend(q, k, v, B, T, H, scale):
            att = (q @ k.transpose(-2, -1)) * scale
            att = att.view(B, T, H, T)  # axes move: the check does not guess
            return F.softmax(att, dim=1)
        """,
    ),
    invalid=(
        Invalid(
            """
            import math
            import torch.nn.functional as F
            def attend(x, v, B, T, nh, hs):
                q = x.view(B, T, nh, hs).transpose(1, 2)
                k = x.view(B, T, nh, hs).transpose(1, 2)
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)
                att = F.softmax(att, dim=1)
                return att @ v
            """,
            at=("7:30-7:31",),
            fixed="""
            import math
            import torch.nn.functional as F
            def attend(x, v, B, T, nh, hs):
                q = x.view(B, T, nh, hs).transpose(1, 2)
                k = x.view(B, T, nh, hs).transpose(1, 2)
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)
                att = F.softmax(att, dim=-1)
                return att @ v
            """,
        ),
        Invalid(
            """
            import torch
            def attention(query, key, value, mask, scale):
                scores = torch.matmul(query, key.transpose(-2, -1)) * scale
                scores = scores.masked_fill(mask == 0, float("-inf"))
                return torch.matmul(scores.softmax(dim=-2), value)
            """,
            at=("5:44-5:46",),
            fixed="""
            import torch
            def attention(query, key, value, mask, scale):
                scores = torch.matmul(query, key.transpose(-2, -1)) * scale
                scores = scores.masked_fill(mask == 0, float("-inf"))
                return torch.matmul(scores.softmax(dim=-1), value)
            """,
        ),
        Invalid(
            """
            import torch
            def attend(q, k, v, scale):
                weights = torch.bmm(q, k.transpose(1, 2)) * scale  # (B*nh, T, S)
                return torch.bmm(torch.softmax(weights, 1), v)
            """,
            at=("4:45-4:46",),
            fixed="""
            import torch
            def attend(q, k, v, scale):
                weights = torch.bmm(q, k.transpose(1, 2)) * scale  # (B*nh, T, S)
                return torch.bmm(torch.softmax(weights, -1), v)
            """,
        ),
        Invalid(
            """
            import torch
            def attend(q, k, v, scale):
                dots = torch.einsum("b h i d, b h j d -> b h i j", q, k) * scale
                return torch.einsum("b h i j, b h j d -> b h i d", dots.softmax(dim=2), v)
            """,
            at=("4:73-4:74",),
            fixed="""
            import torch
            def attend(q, k, v, scale):
                dots = torch.einsum("b h i d, b h j d -> b h i j", q, k) * scale
                return torch.einsum("b h i j, b h j d -> b h i d", dots.softmax(dim=-1), v)
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def attend(x, v):
                q = x.reshape(2, 4, 16, 8)
                k = x.reshape(2, 4, 16, 8)
                att = q @ k.transpose(-2, -1) / 8 ** 0.5
                return F.softmax(att) @ v
            """,
            at=("7:12-7:26",),
            fixed="""
            import torch
            import torch.nn.functional as F
            def attend(x, v):
                q = x.reshape(2, 4, 16, 8)
                k = x.reshape(2, 4, 16, 8)
                att = q @ k.transpose(-2, -1) / 8 ** 0.5
                return F.softmax(att, dim=-1) @ v
            """,
        ),
        Invalid(
            """
            from torch import nn
            class Attention(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.to_q = nn.Linear(dim, dim)
                    self.to_k = nn.Linear(dim, dim)
                    self.softmax = nn.Softmax(dim=1)
                    self.scale = dim ** -0.5
                def forward(self, x, context):
                    q, k = self.to_q(x), self.to_k(context)
                    weights = self.softmax(q.bmm(k.transpose(1, 2)) * self.scale)
                    return weights.bmm(self.to_v(context))
            """,
            at=("7:39-7:40",),
            fixed="""
            from torch import nn
            class Attention(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.to_q = nn.Linear(dim, dim)
                    self.to_k = nn.Linear(dim, dim)
                    self.softmax = nn.Softmax(dim=-1)
                    self.scale = dim ** -0.5
                def forward(self, x, context):
                    q, k = self.to_q(x), self.to_k(context)
                    weights = self.softmax(q.bmm(k.transpose(1, 2)) * self.scale)
                    return weights.bmm(self.to_v(context))
            """,
        ),
    ),
)
