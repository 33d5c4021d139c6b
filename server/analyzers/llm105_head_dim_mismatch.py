"""A model width that does not split into its heads, or query heads that do not split into KV groups.

## Problem
Multi-head attention cuts the model width into `n_head` slices of `d_model // n_head` channels, and
grouped-query attention shares each key/value head among `n_head // n_kv_head` query heads. Both
divisions must be exact. When the numbers are written into a config (`n_embd: int = 768` beside
`n_head: int = 10`), nothing complains until the model is built or the first batch is reshaped, and
some implementations do not complain at all: they round the head size down and quietly drop
channels, or they repeat KV heads the wrong number of times.

## Diagnosis
The values are read where the file pins them down: module-level constants (`n_embd = 768`),
dataclass and config-class field defaults (`n_head: int = 12`), constructor parameter defaults
(`def __init__(self, hidden_size=768, num_attention_heads=12)`), and the arguments of a
construction site (`GPTConfig(n_embd=768, n_head=10)`, `nn.MultiheadAttention(500, 8)`), completed
with the callee's defaults when the callee is a class in the same file. Widths are names like
`d_model`, `n_embd`, `hidden_size`, `embed_dim`, `dim`; head counts `n_head`, `num_heads`,
`num_attention_heads`, `nhead`, `heads`; KV head counts `n_kv_head`, `num_key_value_heads`,
`n_query_groups`. Prefixed pairs (`encoder_embed_dim` with `encoder_attention_heads`) are matched by
prefix. The width check is skipped when the same place sets an explicit head size (`head_dim`,
`dim_head`, `d_kv`, `kv_channels`), since the projection is then `n_head · head_dim` wide and need
not equal the model width; for a constructor the file does not define, only spellings whose code
always splits the width (`n_embd`/`n_head`, `d_model`/`nhead`, `embed_dim`/`num_heads`) are
checked. A parameter the body reassigns, a field a method overwrites, and a module whose globals are
rewritten at run time (nanoGPT's configurator `exec`) are not known, so they are not checked.

## Hypothesis
`q.view(B, T, n_head, C // n_head)` raises a shape error when `C % n_head != 0`, and
`nn.MultiheadAttention` refuses the width outright; those cost a failed launch. Worse are the
silent variants: a model that computes `head_dim = hidden_size // num_heads` and projects to
`num_heads * head_dim` channels trains with a narrower attention than its author thinks, and a GQA
layer that repeats KV heads `n_head // n_kv_head` times produces fewer heads than the queries have,
which either fails at the score product or, with broadcasting tricks, pairs queries with the wrong
keys.

## Literature
- Vaswani et al. (2017) define multi-head attention with `d_k = d_v = d_model / h`: the width is split
  evenly among the heads, and the concatenated heads are projected back to `d_model`.
- Ainslie et al. (2023, GQA) divide the query heads into groups that each share one key/value head;
  the number of query heads must be a multiple of the number of KV heads.
- Shazeer (2019, multi-query attention) is the one-group extreme of the same construction, where any
  head count works because there is a single KV head.

## Recommendation
Choose a head count that divides the width, ideally leaving a head size that is a multiple of 8
(64 and 128 are the common choices, and what fused attention kernels are tuned for). For GQA, choose
a KV head count that divides the query head count. If the design needs a head size that does not
divide the width, make it explicit with a `head_dim` setting and size the projections as
`n_head * head_dim`.

## Expected outcome
The model builds, every head gets the number of channels the config promises, and every group of
query heads shares exactly one KV head. No change in speed or quality beyond what the corrected
config itself implies.

## Implementation
Before:

    @dataclass
    class GPTConfig:
        n_embd: int = 768
        n_head: int = 10

After:

    @dataclass
    class GPTConfig:
        n_embd: int = 768
        n_head: int = 12  # head size 64

## Caveats
There is no automatic fix: which number is wrong, the width or the head count, is a modelling
decision. Values read from a config file, the command line or a checkpoint at run time are not
visible here, so a config that is only broken on its defaults is still reported, while one broken
only by its overrides is not. Architectures that deliberately decouple head size from width (T5's
`d_kv`, Gemma's `head_dim`) are skipped when the decoupling is visible in the same place.

## Next steps
Assert the divisibility where the config is built (`assert n_embd % n_head == 0`), and log the
resolved head size and KV group size at model construction, so a config override that breaks them
fails loudly at start-up rather than after the data loader has spun up.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.config_values import TORCH_SIGNATURES, KnownValue, ValueScope
from llmarch_lsp.facts.index import source_position
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity

RULE_DOCS = __doc__

_WIDTHS = {"d_model", "n_embd", "n_embed", "hidden_size", "embed_dim", "dim", "model_dim", "emb_dim", "width"}
_HEADS = {
    "n_head", "n_heads", "num_heads", "num_attention_heads", "heads", "nhead", "nheads", "attention_heads",
    "num_head", "n_attn_heads", "num_attn_heads", "attn_heads",
}  # fmt: skip
_KV_HEADS = {
    "n_kv_head", "n_kv_heads", "num_key_value_heads", "num_kv_heads", "kv_heads", "n_query_groups",
    "num_query_groups", "multi_query_group_num",
}  # fmt: skip
_PREFIXES = ("", "encoder_", "decoder_", "enc_", "dec_", "text_", "vision_", "audio_", "speech_", "image_", "cross_")
# A head size set on its own: the projections are n_head * head_dim wide, whatever the width.
_HEAD_SIZE = re.compile(r"(?i)head_?dim|dim_?head|head_?size|d_?head|d_kv|kv_channels|head_channels|qk_\w*dim")
# Spellings whose code always splits the width by the head count, even when the callee is elsewhere.
_ALWAYS_SPLIT = {("n_embd", "n_head"), ("n_embed", "n_head"), ("d_model", "nhead"), ("embed_dim", "num_heads")}
_ROLE_WORDS = ("head", "nhead", "query_groups", "group_num")
_TORCH_CLASS_NAMES = {qualified.rsplit(".", 1)[1] for qualified in TORCH_SIGNATURES}
# Bases whose fields are known not to include a head size.
_PLAIN_BASES = {"object", "PretrainedConfig", "PreTrainedConfig", "Module", "BaseModel", "NamedTuple", "TypedDict"}
_CONFIG_OBJECTS = {"config", "cfg", "conf", "model_config", "text_config", "args", "model_args", "params"}


def check(document: Document, context: RuleContext, rule: Rule):
    source = document.source
    if not any(word in source for word in _ROLE_WORDS):
        return
    values = document.config_values
    scopes: list[ValueScope] = []
    if values.module.overridden_by is None:
        scopes.append(values.module)
    scopes.extend(values.classes.values())
    for function in document.index.functions:
        arguments = function.args
        if (arguments.defaults or any(arguments.kw_defaults)) and any(
            _role(argument.arg) for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)
        ):
            scopes.append(values.parameters(function))
    for call in _constructor_calls(document, values):
        if _may_configure_heads(document, values, call):
            scope = values.call(call, wanted=_is_relevant)
            if scope is not None:
                scopes.append(scope)
    reported: set[tuple] = set()
    for scope in scopes:
        for finding in _check_scope(document, rule, values, scope):
            key = (finding.span, finding.message)
            if key not in reported:
                reported.add(key)
                yield finding


def _constructor_calls(document: Document, values):
    """Calls of a capitalized name (`GPTConfig(...)`, `nn.MultiheadAttention(...)`), not `dict(...)`
    or a helper, that can state a head count: a torch module or a class of this file that takes
    one, or any constructor given one by keyword. Each call once, in source order."""
    index = document.index
    found = {id(call): call for name in (*_TORCH_CLASS_NAMES, *values.classes_by_name) for call in index.calls_named(name)}
    for keyword in index.by_type.get(ast.keyword, ()):
        if _counts_heads(_role(keyword.arg)):
            call = index.parent(keyword)
            func = call.func
            name = func.attr if func.__class__ is ast.Attribute else func.id if func.__class__ is ast.Name else ""
            if name[:1].isupper():
                found[id(call)] = call
    return sorted(found.values(), key=source_position)


def _may_configure_heads(document: Document, values, call) -> bool:
    """Whether the call can state a head count: by keyword, or through a callee that takes one.
    (A scope without a head count has nothing to check, so it is not built.)"""
    func = call.func
    if func.__class__ is ast.Attribute:
        name = func.attr
    elif func.__class__ is ast.Name:
        name = func.id
    else:
        return False
    keyword_roles = [_role(keyword.arg) for keyword in call.keywords if keyword.arg in _ROLE_BY_NAME]
    if any(_counts_heads(role) for role in keyword_roles):
        return True
    if not call.args and not keyword_roles:
        return False
    if name in _TORCH_CLASS_NAMES:
        return document.qualified_name(func) in TORCH_SIGNATURES
    return isinstance(func, ast.Name) and name in values.classes_by_name and _has_head_parameter(values, call)


def _has_head_parameter(values, call) -> bool:
    signature = values.signature(call)
    return signature is not None and any(_counts_heads(_role(name)) for name in signature.names)


def _counts_heads(role: tuple[str, str] | None) -> bool:
    return role is not None and role[0] in ("heads", "kv")


def _is_relevant(name: str) -> bool:
    return _role(name) is not None or bool(_HEAD_SIZE.search(name))


def _role(name: str) -> tuple[str, str] | None:
    """("width" | "heads" | "kv", prefix) for a recognised name."""
    return _ROLE_BY_NAME.get(name)


_ROLE_BY_NAME = {
    prefix + base: (role, prefix)
    for prefix in reversed(_PREFIXES)
    for role, bases in (("width", _WIDTHS), ("heads", _HEADS), ("kv", _KV_HEADS))
    for base in bases
}


def _check_scope(document: Document, rule: Rule, values, scope: ValueScope):
    declared: dict[tuple[str, str], list[str]] = {}
    for name in scope.names:
        role = _role(name)
        if role is not None:
            declared.setdefault(role, []).append(name)
    if not any(role == "heads" for role, _ in declared) and not any(role == "kv" for role, _ in declared):
        return
    is_call = scope.kind == "call"
    unknown_callee = is_call and values.signature(scope.owner) is None
    for (role, prefix), names in sorted(declared.items()):
        if role == "heads":
            for head_name in sorted(names):
                width = _partner(scope, declared, "width", prefix)
                heads = scope.get(head_name)
                if width is None or heads is None or not heads.is_positive_int or width.value % heads.value == 0:
                    continue
                if unknown_callee and (width.name, head_name) not in _ALWAYS_SPLIT:
                    continue
                # Costlier evidence, looked for only once the numbers disagree.
                if _sets_head_size(document, values, scope) or (not is_call and _reads_head_size_from_config(document)):
                    continue
                yield from _width_finding(document, rule, scope, width, heads)
        if role == "kv":
            for kv_name in sorted(names):
                heads = _partner(scope, declared, "heads", prefix)
                if heads is not None:
                    yield from _group_finding(document, rule, scope, heads, scope.get(kv_name))


def _sets_head_size(document: Document, values, scope: ValueScope) -> bool:
    """Whether the place that sets the heads also sets (or may inherit) a head size of its own."""
    names = set(scope.names)
    owner = scope.owner
    if scope.kind == "parameters":
        owner = document.index.parent(owner)
        if not isinstance(owner, ast.ClassDef):
            owner = None
    if isinstance(owner, ast.ClassDef):
        seen = set()
        while owner is not None and id(owner) not in seen:
            seen.add(id(owner))
            class_scope = values.classes.get(owner)
            names |= class_scope.names if class_scope is not None else set()
            names |= values.attributes_set_in_methods(owner)
            following = None
            for base in owner.bases:
                base_name = getattr(base, "attr", None) or getattr(base, "id", None)
                if base_name in _PLAIN_BASES:
                    continue
                following = values.classes_by_name.get(base_name)
                if following is None:
                    return True  # fields inherited from a class this file does not show
            owner = following
    for name in names:
        if _HEAD_SIZE.search(name):
            known = scope.get(name)
            if known is None or known.value is not None:
                return True
    return False


def _reads_head_size_from_config(document: Document) -> bool:
    """`getattr(config, "head_dim", ...)` or `config.head_dim`: the config may carry a head size."""
    if "head" not in document.source:
        return False
    for attribute, nodes in document.index.attributes_by_name.items():
        if _HEAD_SIZE.search(attribute) and any(_is_config_object(node.value) for node in nodes):
            return True
    for call in document.index.calls:
        if getattr(call.func, "id", None) in ("getattr", "hasattr") and len(call.args) >= 2:
            name = call.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and _HEAD_SIZE.search(name.value):
                return True
    return False


def _is_config_object(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _CONFIG_OBJECTS
    return isinstance(node, ast.Attribute) and node.attr in _CONFIG_OBJECTS


def _partner(scope: ValueScope, declared, role: str, prefix: str) -> KnownValue | None:
    """The one known value of `role` that pairs with names of this prefix (or the unprefixed one)."""
    names = declared.get((role, prefix)) or declared.get((role, ""))
    if not names:
        return None
    known = [scope.get(name) for name in names]
    if any(value is None or not value.is_positive_int for value in known):
        return None
    if len({value.value for value in known}) != 1:
        return None
    return min(known, key=lambda value: value.name)


def _reportable(scope: ValueScope, *pair: KnownValue) -> bool:
    """At a call, only what the call itself passes is reported; the callee's defaults are checked
    where they are written."""
    return scope.kind != "call" or any(value.origin == "argument" for value in pair)


def _width_finding(document, rule, scope, width: KnownValue, heads: KnownValue | None):
    if heads is None or not heads.is_positive_int or not _reportable(scope, width, heads):
        return
    if width.value % heads.value == 0:
        return
    at, other = _placement(scope, heads, width)
    near = _divisors_near(width.value, heads.value)
    suggestion = f"; heads that divide {width.value}: {near}" if near else ""
    what_breaks = (
        "`nn.MultiheadAttention` refuses it"
        if document.qualified_name(getattr(scope.owner, "func", None)) == "torch.nn.MultiheadAttention"
        else (
            f"reshaping q, k, v to (…, {heads.name}, {width.name} // {heads.name}) fails, "
            f"or {width.value % heads.value} channels are silently dropped"
        )
    )
    message = (
        f"{_label(document, width)} = {width.value} does not split into {_label(document, heads)} = {heads.value} heads "
        f"({width.value} / {heads.value} = {width.value / heads.value:.2f}): {what_breaks}{suggestion} (Vaswani et al., 2017)"
    )
    yield rule.finding(document, at.node, message, related=(_set_here(document, other),))


def _group_finding(document, rule, scope, heads: KnownValue, kv: KnownValue | None):
    if kv is None or not kv.is_positive_int or not _reportable(scope, heads, kv):
        return
    if heads.value % kv.value == 0:
        return
    at, other = _placement(scope, kv, heads)
    near = _divisors_near(heads.value, kv.value)
    suggestion = f"; KV head counts that divide {heads.value}: {near}" if near else ""
    message = (
        f"{_label(document, heads)} = {heads.value} query heads do not split into {_label(document, kv)} = {kv.value} key/value groups "
        f"({heads.value} % {kv.value} = {heads.value % kv.value}): grouped-query attention repeats each KV head "
        f"{heads.name} // {kv.name} times, so queries and keys end up with different head counts{suggestion} "
        "(Ainslie et al., 2023)"
    )
    yield rule.finding(document, at.node, message, related=(_set_here(document, other),))


def _set_here(document: Document, value: KnownValue) -> Related:
    return Related(document.span_of(value.node), f"`{value.name}` = {value.value} set here")


def _label(document: Document, value: KnownValue) -> str:
    """`embed_dim`, or `embed_dim` (`d_model`) when a differently named variable was passed."""
    if value.origin in ("argument", "config") and isinstance(value.node, (ast.Name, ast.Attribute)):
        passed = document.segment(value.node)
        if passed != value.name:
            return f"`{value.name}` (`{passed}`)"
    return f"`{value.name}`"


def _placement(scope: ValueScope, preferred: KnownValue, other: KnownValue) -> tuple[KnownValue, KnownValue]:
    """Report at the preferred value, unless only the other one is written at this call."""
    if scope.kind == "call" and preferred.origin != "argument" and other.origin == "argument":
        return other, preferred
    return preferred, other


def _divisors_near(number: int, wanted: int, count: int = 3) -> str:
    divisors = [candidate for candidate in range(1, number + 1) if number % candidate == 0] if number <= 1 << 20 else []
    closest = sorted(divisors, key=lambda candidate: (abs(candidate - wanted), candidate))[:count]
    return ", ".join(str(candidate) for candidate in sorted(closest))


RULE = Rule(
    code="LLM105",
    name="head-dim-mismatch",
    summary="A statically known model width that heads cannot split evenly, or query heads that KV groups cannot",
    severity=Severity.ERROR,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("vaswani2017attention", "ainslie2023gqa", "shazeer2019mqa"),
    check=check,
    docs=RULE_DOCS,
    tags=("attention", "config", "gqa"),
    valid=(
        """
        from dataclasses import dataclass

        @dataclass
        class GPTConfig:
            block_size: int = 1024
            n_layer: int = 12
            n_head: int = 12
            n_embd: int = 768
        """,
        """
        from transformers import PretrainedConfig

        class TinyLlamaConfig(PretrainedConfig):
            def __init__(self, hidden_size=2048, num_attention_heads=32, num_key_value_heads=None, **kwargs):
                if num_key_value_heads is None:
                    num_key_value_heads = num_attention_heads  # rebound: the default is not the value
                self.hidden_size = hidden_size
                self.num_attention_heads = num_attention_heads
                self.num_key_value_heads = num_key_value_heads
                super().__init__(**kwargs)
        """,
        """
        from torch import nn

        class Attention(nn.Module):  # the head size is its own setting: 10 heads of 64 in a 500-wide model
            def __init__(self, dim=500, heads=10, dim_head=64):
                super().__init__()
                self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        """,
        """
        from x_transformers import Decoder

        layers = Decoder(dim=500, depth=6, heads=8)  # x-transformers sizes heads by dim_head, not dim / heads
        """,
        """
        import torch

        n_layer = 12
        n_head = 12
        n_embd = 768
        exec(open("configurator.py").read())  # overrides the globals from the command line
        """,
        """
        import torch.nn as nn

        def build(width):
            return nn.MultiheadAttention(width, 12, batch_first=True)  # width comes from the caller
        """,
    ),
    invalid=(
        Invalid(
            """
            from dataclasses import dataclass

            @dataclass
            class GPTConfig:
                n_layer: int = 12
                n_head: int = 10
                n_embd: int = 768
            """,
            at=("6:5-6:21",),
        ),
        Invalid(
            """
            from transformers import PretrainedConfig

            class MiniConfig(PretrainedConfig):
                def __init__(self, hidden_size=1024, num_attention_heads=16, num_key_value_heads=6, **kwargs):
                    self.hidden_size = hidden_size
                    self.num_attention_heads = num_attention_heads
                    self.num_key_value_heads = num_key_value_heads
                    super().__init__(**kwargs)
            """,
            at=("4:66-4:87",),
        ),
        Invalid(
            """
            import torch.nn as nn

            d_model = 512
            attention = nn.MultiheadAttention(d_model, 12, batch_first=True)
            """,
            at=("4:44-4:46",),
        ),
        Invalid(
            """
            from model import GPT, GPTConfig

            model = GPT(GPTConfig(n_layer=6, n_head=7, n_embd=384, block_size=256))
            """,
            at=("3:34-3:42",),
        ),
    ),
)
