"""A causal mask is built, but the attention it was built for never applies it.

## Problem
A decoder builds its causal mask (`self.register_buffer("bias", torch.tril(torch.ones(T, T)))`,
`torch.triu(torch.ones(T, T), diagonal=1)`, `torch.ones(T, T).tril()`) and then computes
attention without it: the `masked_fill` line was deleted while refactoring, the mask was never
passed to `F.scaled_dot_product_attention` or `nn.MultiheadAttention`, or the code moved to a new
attention path and left the mask behind. Nothing fails. Every position can now attend to the
tokens after it, so next-token prediction becomes copying: the training loss falls fast and far,
and generation, which has no future to look at, is garbage.

## Diagnosis
The check starts from calls to `torch.tril` / `torch.triu` (or the tensor methods) on a tensor of
ones or a filled tensor, and finds where the result is kept: a buffer (`register_buffer`,
`nn.Buffer`), a `self.<name>` attribute, or a local variable. The mask counts as used if anything
reads it: `self.<name>` anywhere in the class or a subclass in the file, its buffer name as a string
(`getattr(self, "bias")`), the local name anywhere in its function, or, for names other than the
ambiguous `bias`, `<anything>.<name>` elsewhere in the file; passing it to another module,
returning it or storing it counts. An unread mask is reported only when the same class (or
function) computes attention that is visibly unmasked: a softmax over `q @ kᵀ` scores with no
masked fill, `where` or added term on the way (`document.attention`), a
`scaled_dot_product_attention` call with neither `attn_mask` nor `is_causal`, or an
`nn.MultiheadAttention` submodule called without `attn_mask`. A nanoGPT-style flash path with
`is_causal=True` is masked and needs no buffer.

## Hypothesis
Without the mask, the model sees token t+1 when predicting token t. The cheapest way to reduce the
loss is then to copy from the next position, which the model learns within a few hundred steps:
training loss drops far below what the data allows (well under 1 nat for natural text), while
sampling, which only ever has the prefix, produces repetitive or incoherent text. Validation loss
computed with the same leaky forward looks just as good, so the bug can survive a whole run.

## Literature
- Vaswani et al. (2017, "Attention Is All You Need", §3.2.3) mask out (set to -inf) all scores
  that connect a position to later positions in the decoder's self-attention, to preserve the
  auto-regressive property.
- Radford et al. (2019, GPT-2) train a decoder-only language model with this masked
  self-attention; every GPT-style implementation (GPT-2, nanoGPT's `bias` buffer) applies it in
  each block.

## Recommendation
Apply the mask to the scores before the softmax, as nanoGPT does:
`att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))`; or drop the buffer and call
`F.scaled_dot_product_attention(q, k, v, is_causal=True)`, which masks without materialising a
T×T tensor. With `nn.MultiheadAttention`, pass `attn_mask=` (and `is_causal=True` as a hint).

## Expected outcome
Training loss starts higher and falls more slowly than with the leak, settling at an honest
value; generated text becomes coherent, and the loss of a position no longer depends on the tokens
after it (perturbing token t+1 leaves the logits at t unchanged: a cheap unit test).

## Implementation
Before:

    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    att = F.softmax(att, dim=-1)

After:

    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
    att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
    att = F.softmax(att, dim=-1)

No automatic fix: the mask's polarity (ones where allowed, or where blocked), its shape, and the
slice for the current length are the author's choice. The finding points at the attention that
should apply it.

## Caveats
A mask that is read anywhere counts as used, even if only under a flag that is never set; the
rule does not judge branches. A class that builds a causal buffer only for checkpoint compatibility
and masks in a helper the check cannot see (Hugging Face's attention interfaces) is not flagged,
because no unmasked attention is visible in it. An encoder that keeps a leftover causal buffer next
to deliberately bidirectional attention will be flagged; delete the buffer or silence the line with
`# llmarch: ignore[LLM104]`.

## Next steps
Add a causality test: run the model on two inputs that differ only at position t+1 and assert the
logits at positions ≤ t are identical. Re-check the loss curve of any run trained with the leak;
its numbers are not comparable to a masked model's.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.attention import _bound_value
from llmarch_lsp.facts.index import source_position, walk
from llmarch_lsp.facts.score_flow import evaluate_constant
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity

RULE_DOCS = __doc__

_TRIANGLE_METHODS = {"tril", "triu", "tril_", "triu_"}
_TRIANGLE_FUNCTIONS = {"torch.tril", "torch.triu"}
_FILLED_FACTORIES = {"torch.ones", "torch.full", "torch.ones_like", "torch.full_like", "torch.empty"}
_SDPA = "torch.nn.functional.scaled_dot_product_attention"
_MULTIHEAD = "torch.nn.MultiheadAttention"
_MASKING_METHODS = {"masked_fill", "masked_fill_", "add", "add_", "sub", "sub_"}
_MASKING_FUNCTIONS = {"torch.where", "torch.masked_fill", "torch.add", "torch.sub"}


@dataclass(frozen=True)
class _Mask:
    node: ast.AST  # what is reported: the register_buffer call or the assigned value
    scope: ast.AST  # the class (attribute, buffer) or function (local) that owns it
    attribute: str | None  # `bias` for self.bias / a buffer named "bias"
    local: str | None  # the local variable name, when it never leaves the function
    defined_by: ast.AST  # the node that stores it (excluded from "reads")


def check(document: Document, context: RuleContext, rule: Rule):
    if "tril" not in document.source and "triu" not in document.source:
        return  # a text search settles most files
    triangles = [
        call
        for call in document.index.calls_named(*_TRIANGLE_METHODS)
        if (call.func.__class__ is ast.Attribute or call.func.id in ("tril", "triu")) and _is_triangle_of_ones(document, call)
    ]
    triangles.sort(key=source_position)
    if not triangles:
        return
    masks = [mask for mask in (_stored_mask(document, triangle) for triangle in triangles) if mask is not None]
    if not masks:
        return
    reads = _AttributeReads(document, {mask.attribute for mask in masks if mask.attribute is not None})
    reported: set[int] = set()
    for mask in masks:
        if id(mask.node) in reported or _is_read(document, mask, reads):
            continue
        unmasked = _unmasked_attention(document, mask.scope, reads)
        if not unmasked:
            continue
        reported.add(id(mask.node))
        yield rule.finding(
            document,
            mask.node,
            _message(document, mask, unmasked),
            related=tuple(Related(document.span_of(node), note) for node, note in unmasked),
        )


# ---- finding the mask ---------------------------------------------------------------------------


def _is_triangle_of_ones(document: Document, call: ast.Call) -> bool:
    """`torch.tril(torch.ones(T, T))`, `torch.ones(T, T).tril()`, `torch.triu(torch.full(...), 1)`."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in _TRIANGLE_METHODS:
        qualified = document.qualified_name(func)
        if qualified is None:
            source = func.value
        elif qualified in _TRIANGLE_FUNCTIONS and call.args:
            source = call.args[0]
        else:
            return False
    elif isinstance(func, ast.Name) and func.id in ("tril", "triu") and call.args:
        if document.qualified_name(func) not in _TRIANGLE_FUNCTIONS:
            return False
        source = call.args[0]
    else:
        return False
    return _is_filled(document, source, call, 0)


def _is_filled(document: Document, node: ast.AST, use: ast.AST, depth: int) -> bool:
    """A tensor of ones or of one fill value, maybe cast or moved: `torch.ones(T, T, dtype=torch.bool)`,
    or a local bound to one (`mask = torch.full((T, T), float("-inf"))`)."""
    if depth > 6:
        return False
    if isinstance(node, ast.Name):
        facts = document.score_flow
        scope = facts.scope_of(use)
        if isinstance(scope, ast.Lambda):
            return False
        statement = document.index.enclosing_statement(use)
        return any(
            _is_filled(document, value, statement, depth + 1)
            for definition in facts.flow(scope).reaching(node.id, statement)
            if (value := _bound_value(definition, node.id)) is not None
        )
    if isinstance(node, ast.Call):
        if document.qualified_name(node.func) in _FILLED_FACTORIES:
            return True
        if isinstance(node.func, ast.Attribute) and document.qualified_name(node.func) is None:
            return _is_filled(document, node.func.value, use, depth + 1)  # .bool(), .to(device), .fill_(...)
        return False
    if isinstance(node, ast.BinOp):
        return _is_filled(document, node.left, use, depth + 1) or _is_filled(document, node.right, use, depth + 1)
    return False


def _stored_mask(document: Document, triangle: ast.Call) -> _Mask | None:
    """Where the mask is kept; None when it is used on the spot (an argument, a return value)."""
    index = document.index
    statement = index.enclosing_statement(triangle)
    if _is_register_buffer(statement):
        call = statement.value
        name = call.args[0]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            owner = _owning_class(document, statement)
            return None if owner is None else _Mask(call, owner, name.value, None, call)
        return None
    if not isinstance(statement, (ast.Assign, ast.AnnAssign)) or statement.value is None:
        return None
    if not _flows_straight_into(document, triangle, statement.value):
        return None
    targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
    if len(targets) != 1:
        return None
    target = targets[0]
    if _is_self_attribute(target):
        owner = _owning_class(document, statement)
        return None if owner is None else _Mask(statement.value, owner, target.attr, None, target)
    if isinstance(target, ast.Name):
        function = index.enclosing_function(statement)
        if function is None or isinstance(function, ast.Lambda):
            return None
        buffer = _registered_from_local(document, function, target.id, statement)
        if buffer is not None:
            return buffer
        return _Mask(statement.value, function, None, target.id, target)
    return None


def _flows_straight_into(document: Document, triangle: ast.Call, value: ast.AST) -> bool:
    """The assigned value is the triangle itself, or the triangle reshaped, cast or compared; not a
    call that consumes it (`att.masked_fill(torch.tril(...) == 0, ...)` applies it on the spot)."""
    node = triangle
    while node is not value:
        parent = document.index.parent(node)
        if parent is None:
            return False
        if isinstance(parent, ast.Call) and node is not parent.func and not _builds_a_mask(document, parent, node):
            return False
        if not isinstance(parent, (ast.Call, ast.Attribute, ast.Compare, ast.UnaryOp, ast.BinOp, ast.Subscript)):
            return False
        node = parent
    return True


_MASK_BUILDING_METHODS = {"to", "type", "view", "reshape", "expand", "unsqueeze", "float", "bool"}
_FACTORIES = _FILLED_FACTORIES | {"torch.zeros", "torch.zeros_like", "torch.empty_like"}


def _builds_a_mask(document: Document, call: ast.Call, argument: ast.AST) -> bool:
    """A call that turns the triangle into another form of mask rather than applying it:
    `torch.where(tri == 0, float("-inf"), 0.0)`, `torch.zeros(T, T).masked_fill(tri == 0, float("-inf"))`."""
    func = call.func
    qualified = document.qualified_name(func)
    if qualified in _TRIANGLE_FUNCTIONS:
        return True
    if qualified == "torch.where" and len(call.args) == 3:
        return all(evaluate_constant(other) is not None for other in call.args if other is not argument)
    if isinstance(func, ast.Attribute) and qualified is None:
        if func.attr in _MASK_BUILDING_METHODS:
            return True
        if func.attr in ("masked_fill", "masked_fill_"):
            receiver = func.value
            return isinstance(receiver, ast.Call) and document.qualified_name(receiver.func) in _FACTORIES
    return False


def _is_register_buffer(statement: ast.AST) -> bool:
    if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
        return False
    func = statement.value.func
    return isinstance(func, ast.Attribute) and func.attr == "register_buffer" and len(statement.value.args) >= 2


def _registered_from_local(document: Document, function, name: str, assignment: ast.AST) -> _Mask | None:
    """`mask = torch.tril(...)` then `self.register_buffer("mask", mask)`: the buffer is what matters,
    provided registering it is the local's only use."""
    reads = [node for node in _names_read(function, name) if (node.lineno, node.col_offset) > (assignment.lineno, assignment.col_offset)]
    if len(reads) != 1:
        return None
    call = document.index.parent(reads[0])
    if not (isinstance(call, ast.Call) and _is_register_buffer(document.index.parent(call)) and call.args[1] is reads[0]):
        return None
    buffer_name = call.args[0]
    owner = _owning_class(document, call)
    if owner is None or not (isinstance(buffer_name, ast.Constant) and isinstance(buffer_name.value, str)):
        return None
    return _Mask(assignment.value, owner, buffer_name.value, None, call)


def _owning_class(document: Document, node: ast.AST) -> ast.ClassDef | None:
    module = document.modules.class_owning(node)
    return None if module is None else module.node


# ---- is it read? ----------------------------------------------------------------------------------


def _is_read(document: Document, mask: _Mask, reads: _AttributeReads) -> bool:
    if mask.local is not None:
        # `mask = torch.triu(mask, diagonal=1)` reads the old value while building the new one.
        defining = document.index.enclosing_statement(mask.defined_by)
        return any(document.index.enclosing_statement(node) is not defining for node in _names_read(mask.scope, mask.local))
    name = mask.attribute
    family = {id(member) for member in reads.family(mask.scope)}
    if any(owner in family for owner in reads.classes_reading_self(name)):
        return True
    # `getattr(self, "bias")`, `self.get_buffer("bias")`: the name written as a string once more than
    # `register_buffer` writes it (a cheap text count; any string of that name counts).
    if isinstance(mask.defined_by, ast.Call) and _string_mentions(document.source, name) > 1:
        return True
    if name != "bias":  # `config.bias`, `self.proj.bias` say nothing about a buffer named bias
        return any(node is not mask.defined_by for node in reads.anywhere(name))
    return False


def _string_mentions(source: str, name: str) -> int:
    return source.count(f'"{name}"') + source.count(f"'{name}'")


class _AttributeReads:
    """Attribute reads by name, gathered in one pass over the shared index for the few names that
    hold masks, and the classes that read them."""

    def __init__(self, document: Document, names: set[str]):
        self._document = document
        self._anywhere: dict[str, list[ast.Attribute]] = {}
        self._readers: dict[str, set[int]] = {}
        self._families: dict[int, list[ast.ClassDef]] = {}
        self._subclasses: dict[str | None, list[ast.ClassDef]] | None = None
        by_name = document.index.attributes_by_name
        for name in names:
            reads = [node for node in by_name.get(name, ()) if isinstance(node.ctx, ast.Load)]
            if reads:
                self._anywhere[name] = reads

    def classes_reading_self(self, name: str) -> set[int]:
        """Ids of the classes holding a `self.<name>` read."""
        found = self._readers.get(name)
        if found is None:
            found = self._readers[name] = {
                id(self._document.index.enclosing(node, ast.ClassDef))
                for node in self.anywhere(name)
                if isinstance(node.value, ast.Name) and node.value.id == "self"
            }
        return found

    def anywhere(self, name: str) -> list[ast.Attribute]:
        return self._anywhere.get(name, [])

    def family(self, class_node: ast.ClassDef) -> list[ast.ClassDef]:
        """The class and the classes in this file that derive from it (directly or not)."""
        found = self._families.get(id(class_node))
        if found is not None:
            return found
        if self._subclasses is None:
            self._subclasses = {}
            for other in self._document.index.classes:
                for base in other.bases:
                    self._subclasses.setdefault(_base_name(base), []).append(other)
        found, queue = [class_node], [class_node]
        while queue:
            for subclass in self._subclasses.get(queue.pop().name, ()):
                if subclass not in found:
                    found.append(subclass)
                    queue.append(subclass)
        self._families[id(class_node)] = found
        return found


def _base_name(base: ast.AST) -> str | None:
    if isinstance(base, ast.Name):
        return base.id
    if isinstance(base, ast.Attribute):
        return base.attr
    return None


def _names_read(scope: ast.AST, name: str) -> list[ast.Name]:
    return [node for node in walk(scope) if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)]


# ---- unmasked attention in the same scope --------------------------------------------------------


def _unmasked_attention(document: Document, scope: ast.AST, reads: _AttributeReads) -> list[tuple[ast.AST, str]]:
    """Attention computations in `scope` that apply no mask at all, with a note for each."""
    in_scope = {id(member) for member in reads.family(scope)} if isinstance(scope, ast.ClassDef) else {id(scope)}
    found: list[tuple[ast.AST, str]] = []
    for site in document.attention:
        if _scope_of(document, site.softmax, scope) in in_scope and _site_is_unmasked(document, site):
            found.append((site.softmax, "scores reach this softmax without any mask"))
    for call in document.index.calls:
        func = call.func
        is_sdpa = getattr(func, "attr", getattr(func, "id", None)) == "scaled_dot_product_attention"
        if not (is_sdpa or _is_self_attribute(func)) or _scope_of(document, call, scope) not in in_scope:
            continue  # cheap name test first: most calls are neither
        if is_sdpa:
            if document.qualified_name(func) == _SDPA and _sdpa_is_unmasked(call):
                found.append((call, "attention computed here with neither attn_mask nor is_causal"))
        elif _is_multihead_call(document, call) and _multihead_is_unmasked(call):
            found.append((call, "nn.MultiheadAttention called here without attn_mask"))
    return found


def _scope_of(document: Document, node: ast.AST, scope: ast.AST) -> int | None:
    """The id of the class (for a class-owned mask) or function that `node` sits in."""
    if isinstance(scope, ast.ClassDef):
        owner = document.index.enclosing(node, ast.ClassDef)
        return None if owner is None else id(owner)
    function = document.index.enclosing_function(node)
    return None if function is None else id(function)


def _site_is_unmasked(document: Document, site) -> bool:
    facts = document.score_flow
    found = facts.paths(site)
    if found.truncated or not found.paths:
        return False
    function = facts.scope_of(site.softmax)
    inplace = facts.inplace_calls(function)
    for path in found.paths:
        if any(_masks(document, step.node, step.operand) for step in path.steps):
            return False
        if any(inplace.get(name) for name in path.names):
            return False  # `att.masked_fill_(...)`, `apply_mask(att)`: something touches the scores in place
    return True


def _masks(document: Document, node: ast.AST, operand: ast.AST) -> bool:
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, (ast.Add, ast.Sub)):
            return False
        other = node.right if operand is node.left else node.left
        return evaluate_constant(other) is None
    if isinstance(node, ast.AugAssign):
        return isinstance(node.op, (ast.Add, ast.Sub))
    if isinstance(node, ast.Call):
        qualified = document.qualified_name(node.func)
        if qualified is None and isinstance(node.func, ast.Attribute):
            return node.func.attr in _MASKING_METHODS
        return qualified in _MASKING_FUNCTIONS
    return False


def _sdpa_is_unmasked(call: ast.Call) -> bool:
    if len(call.args) > 3 or any(keyword.arg in ("attn_mask", None) for keyword in call.keywords):
        return False
    causal = next((keyword.value for keyword in call.keywords if keyword.arg == "is_causal"), None)
    return causal is None or (isinstance(causal, ast.Constant) and causal.value is False)


def _is_multihead_call(document: Document, call: ast.Call) -> bool:
    if not _is_self_attribute(call.func):
        return False
    module = document.modules.class_owning(call)
    return module is not None and document.modules.constructor_name(module, call.func.attr) == _MULTIHEAD


def _multihead_is_unmasked(call: ast.Call) -> bool:
    if len(call.args) > 5 or any(keyword.arg in ("attn_mask", "is_causal", None) for keyword in call.keywords):
        return False
    return True


def _is_self_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _message(document: Document, mask: _Mask, unmasked) -> str:
    if mask.local is not None:
        held = f"`{mask.local}`"
    elif isinstance(mask.defined_by, ast.Call):
        held = f'buffer "{mask.attribute}"'
    else:
        held = f"`self.{mask.attribute}`"
    where = "this function" if mask.local is not None else f"`{mask.scope.name}`"
    return (
        f"causal mask {held} is built but never applied: {where} computes attention with no mask, so every "
        "position attends to the tokens after it and next-token training leaks the answer (Vaswani et al., 2017)"
    )


RULE = Rule(
    code="LLM104",
    name="unused-causal-mask",
    summary="A causal mask is built but never applied to the attention scores",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("vaswani2017attention", "radford2019gpt2"),
    check=check,
    docs=RULE_DOCS,
    tags=("attention", "correctness", "causal"),
    valid=(
        """
        import math
        import torch
        import torch.nn.functional as F
        from torch import nn
        class CausalSelfAttention(nn.Module):
            def __init__(self, n_embd, block_size):
                super().__init__()
                self.c_attn = nn.Linear(n_embd, 3 * n_embd)
                self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))
            def forward(self, q, k, v):
                T = q.size(-2)
                att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
                return F.softmax(att, dim=-1) @ v
        """,
        """
        import torch
        import torch.nn.functional as F
        from torch import nn
        class CausalSelfAttention(nn.Module):
            def __init__(self, block_size):
                super().__init__()
                self.flash = hasattr(F, "scaled_dot_product_attention")
                if not self.flash:
                    self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)))
            def forward(self, q, k, v):
                if self.flash:
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
                T = q.size(-2)
                att = (q @ k.transpose(-2, -1)) * k.size(-1) ** -0.5
                att = att.masked_fill(self.bias[:T, :T] == 0, float("-inf"))
                return att.softmax(dim=-1) @ v
        """,
        """
        import torch
        from torch import nn
        class Decoder(nn.Module):
            def __init__(self, d_model, n_head, max_len):
                super().__init__()
                self.attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
                self.register_buffer("causal", torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), diagonal=1))
            def forward(self, x):
                T = x.size(1)
                out, _ = self.attn(x, x, x, attn_mask=self.causal[:T, :T])
                return out
        """,
        """
        import torch
        import torch.nn.functional as F
        def causal_attention(q, k, v):
            T = q.size(-2)
            blocked = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
            scores = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
            return F.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1) @ v
        """,
        """
        import torch
        from torch import nn
        class GPT(nn.Module):
            def __init__(self, block_size):
                super().__init__()
                self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)))
            def forward(self, x):
                for block in self.blocks:
                    x = block(x, self.mask)  # handed to the blocks
                return x
        """,
        """
        import torch
        import torch.nn.functional as F
        from torch import nn
        class Attention(nn.Module):
            def __init__(self, block_size):
                super().__init__()
                self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)))  # kept for old checkpoints
            def forward(self, q, k, v):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        """,
    ),
    invalid=(
        Invalid(
            """
            import math
            import torch
            import torch.nn.functional as F
            from torch import nn
            class CausalSelfAttention(nn.Module):
                def __init__(self, n_embd, block_size, bias=True):
                    super().__init__()
                    self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
                    self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)))
                def forward(self, q, k, v):
                    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                    att = F.softmax(att, dim=-1)
                    return att @ v
            """,
            at=("9:9-9:85",),
        ),
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            def causal_attention(q, k, v):
                T = q.size(-2)
                mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
                return F.scaled_dot_product_attention(q, k, v)
            """,
            at=("5:12-5:70",),
        ),
        Invalid(
            """
            import torch
            from torch import nn
            class Decoder(nn.Module):
                def __init__(self, d_model, n_head, max_len):
                    super().__init__()
                    self.attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
                    self.causal_mask = torch.ones(max_len, max_len).tril() == 0
                def forward(self, x):
                    out, _ = self.attn(x, x, x, need_weights=False)
                    return out
            """,
            at=("7:28-7:68",),
        ),
    ),
)
