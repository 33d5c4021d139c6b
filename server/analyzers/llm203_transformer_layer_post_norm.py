"""`nn.TransformerEncoderLayer` / `nn.TransformerDecoderLayer` built as post-norm (the default).

## Problem
PyTorch's built-in transformer layers default to `norm_first=False`: LayerNorm is applied *after*
each residual addition (Post-LN), the arrangement of the original Transformer. Nothing in the call
says so, and most modern recipes (GPT-2 onwards, ViT, LLaMA) use Pre-LN.

## Diagnosis
A `TransformerEncoderLayer`, `TransformerDecoderLayer` or `Transformer` is constructed without
`norm_first=True` (the keyword is absent or literally `False`, and no `**kwargs` could supply it).
The depth comes from the `TransformerEncoder`/`TransformerDecoder` that stacks the layer, or from
`nn.Transformer`'s own `num_encoder_layers`/`num_decoder_layers` (6 each by default).

## Hypothesis
In a Post-LN stack every residual path passes through a LayerNorm, so the gradient reaching the
layers near the output is large at initialisation and grows with depth. With Adam and no (or a
short) warmup the first updates are too big, the attention logits blow up, and training diverges or
stalls. Pre-LN keeps an identity path from the loss to every layer, so gradients are well-scaled at
initialisation.

## Literature
- Xiong et al. (2020) prove with mean-field analysis that Post-LN has large expected gradients near
  the output at initialisation, which is why it needs warmup, while Pre-LN can train without it.
- Liu et al. (2020, "Understanding the Difficulty of Training Transformers") trace Post-LN failures to
  each layer's heavy dependence on its residual branch, amplifying small parameter changes.
- Wang et al. (2019) show Pre-LN is what makes deep (30+ layer) encoders trainable in translation.
- Vaswani et al. (2017) introduced the Post-LN arrangement that PyTorch's default reproduces.

## Recommendation
Pass `norm_first=True`. A Pre-LN encoder's output is not normalised, so also give the enclosing
`nn.TransformerEncoder` / `nn.TransformerDecoder` a final norm (`norm=nn.LayerNorm(d_model)`), the
way GPT-2 adds `ln_f`.

## Expected outcome
Training that is stable without a long warmup and at higher learning rates; no early loss spikes or
divergence in deep stacks; the gap widens with depth (beyond ~6 layers). Final quality is usually
on par; Post-LN can be slightly better when it trains at all.

## Implementation
Before:

    layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=12)

After:

    # Pre-norm: LayerNorm before each sublayer keeps gradients well-scaled at init (Xiong et al., 2020, arXiv:2002.04745)
    layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, batch_first=True, norm_first=True)
    # Nested tensors off: that fast path only runs post-norm layers, and PyTorch warns otherwise
    encoder = nn.TransformerEncoder(layer, num_layers=12, enable_nested_tensor=False)

The quick fix makes exactly this change (unsafe: the network computes a different function). When
the layer is stacked by `nn.TransformerEncoder`, it also passes `enable_nested_tensor=False`: the
nested-tensor inference path only handles post-norm layers, and PyTorch turns it off with a
`UserWarning` for a norm-first layer, so saying it keeps the logs clean and the intent visible.
It does not add the final norm (`norm=nn.LayerNorm(d_model)`), which needs the model width in the
stack's scope; add it by hand. `nn.Transformer(norm_first=True)` still warns about nested tensors
from inside PyTorch, which has no argument to turn that path off; the warning is harmless.

## Caveats
No extra compute or memory: the same LayerNorms run in a different place. The change alters the
network's function, so checkpoints trained post-norm do not load into a pre-norm model with the same
meaning (the fix is marked unsafe). For shallow stacks (six layers or fewer) trained with warmup,
Post-LN is a legitimate, well-established choice, so the finding is then only a hint (option
`shallow-depth`). PyTorch's fused inference fast path supports both settings; only its nested-tensor padding skip needs post-norm. The evidence is
strong and replicated (theory plus many large-scale recipes); Pre-LN can leave later layers
under-used in very deep models, which DeepNorm-style scaling addresses.

## Next steps
Compare loss curves for the first few thousand steps, gradient norm per layer (should be flat across
depth with Pre-LN), and the largest attention logit; check that a final norm was added before the
output head.
"""

from __future__ import annotations

import ast

from llmarch_lsp.analyzers.rule import Invalid, Option, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.findings import Confidence, Evidence, Severity
from llmarch_lsp.fixes.builders import cited_comment, set_keyword_argument
from llmarch_lsp.fixes.model import UNSAFE, Fix

# Where `norm_first` sits among each constructor's positional parameters.
_NORM_FIRST_POSITION = {
    "torch.nn.TransformerEncoderLayer": 7,
    "torch.nn.TransformerDecoderLayer": 7,
    "torch.nn.Transformer": 11,
}
_LAYER_NAMES = {name.rsplit(".", 1)[-1] for name in _NORM_FIRST_POSITION}
_STACKS = {"torch.nn.TransformerEncoder", "torch.nn.TransformerDecoder"}
_STACK_NAMES = {name.rsplit(".", 1)[-1] for name in _STACKS}
# nn.Transformer's own depth: (parameter, position, PyTorch's default).
_TRANSFORMER_DEPTHS = (("num_encoder_layers", 2, 6), ("num_decoder_layers", 3, 6))

FIX_TITLE = "Use pre-norm (norm_first=True)"

RULE_DOCS = __doc__


def check(document: Document, context: RuleContext, rule: Rule):
    if not document.imports.imports_module("torch"):
        return
    for call in document.index.calls_named(*_LAYER_NAMES):
        qualified = document.qualified_name(call.func)
        if qualified not in _NORM_FIRST_POSITION or not _builds_post_norm(call, _NORM_FIRST_POSITION[qualified]):
            continue
        stack = None if qualified == "torch.nn.Transformer" else _stack_of(document, call)
        depth = _transformer_depth(call) if qualified == "torch.nn.Transformer" else _stack_depth(stack)
        shallow = depth is not None and depth <= context.options["shallow-depth"]
        yield rule.finding(
            document,
            call,
            _message(qualified.rsplit(".", 1)[-1], depth),
            severity=Severity.HINT if shallow else None,
            fix=_fix(document, call, stack),
        )


def _builds_post_norm(call: ast.Call, norm_first_position: int) -> bool:
    if any(isinstance(argument, ast.Starred) for argument in call.args):
        return False
    for keyword in call.keywords:
        if keyword.arg is None:  # **kwargs may carry norm_first
            return False
        if keyword.arg == "norm_first":
            return isinstance(keyword.value, ast.Constant) and keyword.value.value is False
    if len(call.args) > norm_first_position:
        value = call.args[norm_first_position]
        return isinstance(value, ast.Constant) and value.value is False
    return True


def _stack_of(document: Document, layer_call: ast.Call) -> ast.Call | None:
    """The `nn.TransformerEncoder(layer, ...)` / `nn.TransformerDecoder` call that stacks this layer."""
    statement = document.index.parent(layer_call)
    names = set()
    if isinstance(statement, ast.Assign):
        names = {target.id for target in statement.targets if isinstance(target, ast.Name)}
    scope = document.index.enclosing_function(layer_call)
    for call in document.index.calls_named(*_STACK_NAMES):
        if document.qualified_name(call.func) not in _STACKS:
            continue
        if document.index.enclosing_function(call) is not scope:
            continue
        stacked = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg in ("encoder_layer", "decoder_layer")), None)
        if stacked is layer_call or (isinstance(stacked, ast.Name) and stacked.id in names):
            return call
    return None


def _stack_depth(stack: ast.Call | None) -> int | None:
    """The stack's `num_layers`, when it is a literal."""
    if stack is None:
        return None
    depth = stack.args[1] if len(stack.args) > 1 else next((k.value for k in stack.keywords if k.arg == "num_layers"), None)
    if isinstance(depth, ast.Constant) and isinstance(depth.value, int):
        return depth.value
    return None


def _transformer_depth(call: ast.Call) -> int | None:
    """The deeper of nn.Transformer's encoder and decoder stacks, when both are known."""
    depths = []
    for name, position, default in _TRANSFORMER_DEPTHS:
        value = next((k.value for k in call.keywords if k.arg == name), None)
        if value is None and len(call.args) > position:
            value = call.args[position]
        if value is None:
            depths.append(default)
        elif isinstance(value, ast.Constant) and isinstance(value.value, int):
            depths.append(value.value)
        else:
            return None
    return max(depths)


def _message(layer: str, depth: int | None) -> str:
    stack = f" in a {depth}-layer stack" if depth is not None else ""
    return (
        f"`{layer}` defaults to post-norm (`norm_first=False`){stack}: LayerNorm after each residual add "
        "gives large gradients near the output at init, so deep stacks need long warmup and can diverge "
        "(Xiong et al., 2020)"
    )


def _fix(document: Document, call: ast.Call, stack: ast.Call | None) -> Fix:
    statement = document.index.enclosing_statement(call)
    replacements = [set_keyword_argument(document, call, "norm_first", "True")]
    reason = "Pre-norm: LayerNorm before each sublayer keeps gradients well-scaled at init"
    comments = []
    if _needs_nested_tensor_off(document, stack):
        # PyTorch's nested-tensor fast path only supports post-norm layers; with norm_first=True it
        # is switched off anyway, with a UserWarning at construction. Saying so keeps logs clean.
        replacements.append(set_keyword_argument(document, stack, "enable_nested_tensor", "False"))
        stack_line = document.index.enclosing_statement(stack).lineno
        if stack_line != statement.lineno:
            comments.append(cited_comment(stack_line, _NESTED_TENSOR_REASON))
        else:
            reason = f"{reason}; {_NESTED_TENSOR_REASON[0].lower()}{_NESTED_TENSOR_REASON[1:]}"
    comments.insert(0, cited_comment(statement.lineno, reason, "xiong2020layer"))
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=tuple(replacements), comments=tuple(comments))


_NESTED_TENSOR_REASON = "Nested tensors off: that fast path only runs post-norm layers, and PyTorch warns otherwise"


def _needs_nested_tensor_off(document: Document, stack: ast.Call | None) -> bool:
    if stack is None or document.qualified_name(stack.func) != "torch.nn.TransformerEncoder":
        return False
    if any(keyword.arg is None or keyword.arg == "enable_nested_tensor" for keyword in stack.keywords):
        return False
    return len(stack.args) <= 3  # (encoder_layer, num_layers, norm, enable_nested_tensor, ...)


RULE = Rule(
    code="LLM203",
    name="transformer-layer-post-norm",
    summary="nn.TransformerEncoderLayer / nn.TransformerDecoderLayer / nn.Transformer built without norm_first=True",
    severity=Severity.WARNING,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("xiong2020layer", "liu2020admin", "wang2019learning", "vaswani2017attention"),
    check=check,
    docs=RULE_DOCS,
    tags=("normalization", "residual", "stability"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    options={"shallow-depth": Option(6, "stacks this deep or shallower get a hint instead of a warning")},
    valid=(
        """
        import torch.nn as nn
        layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, norm_first=True)
        """,
        """
        import torch.nn as nn
        def build(cfg):
            # unknowable statically: the config decides
            return nn.TransformerEncoderLayer(cfg.d_model, cfg.n_head, norm_first=cfg.pre_norm)
        """,
        """
        import torch.nn as nn
        def build(**layer_kwargs):
            return nn.TransformerDecoderLayer(512, 8, **layer_kwargs)
        """,
        """
        from torch import nn
        layer = nn.TransformerEncoderLayer(512, 8, 2048, 0.1, "gelu", 1e-5, True, True)
        """,
        """
        import torch.nn as nn
        model = nn.Transformer(d_model=512, nhead=8, num_encoder_layers=12, norm_first=True)
        """,
        """
        import torch
        class TransformerEncoderLayer:  # a local class with the same name is not PyTorch's
            pass
        layer = TransformerEncoderLayer()
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            seq2seq = torch.nn.Transformer(d_model=256, nhead=4, num_encoder_layers=12)
            """,
            at=("2:11-2:76",),
            fixed="""
            import torch
            # Pre-norm: LayerNorm before each sublayer keeps gradients well-scaled at init (Xiong et al., 2020, arXiv:2002.04745)
            seq2seq = torch.nn.Transformer(d_model=256, nhead=4, num_encoder_layers=12, norm_first=True)
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, batch_first=True)
            encoder = nn.TransformerEncoder(layer, num_layers=12)
            """,
            at=("2:9-2:75",),
            fixed="""
            import torch.nn as nn
            # Pre-norm: LayerNorm before each sublayer keeps gradients well-scaled at init (Xiong et al., 2020, arXiv:2002.04745)
            layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, batch_first=True, norm_first=True)
            # Nested tensors off: that fast path only runs post-norm layers, and PyTorch warns otherwise
            encoder = nn.TransformerEncoder(layer, num_layers=12, enable_nested_tensor=False)
            """,
        ),
        Invalid(
            """
            from torch.nn import TransformerDecoderLayer
            layer = TransformerDecoderLayer(
                d_model=256,
                nhead=4,
                norm_first=False,
            )
            """,
            at=("2:9-6:2",),
            fixed="""
            from torch.nn import TransformerDecoderLayer
            # Pre-norm: LayerNorm before each sublayer keeps gradients well-scaled at init (Xiong et al., 2020, arXiv:2002.04745)
            layer = TransformerDecoderLayer(
                d_model=256,
                nhead=4,
                norm_first=True,
            )
            """,
        ),
        Invalid(
            """
            import torch
            def encoder(d):
                return torch.nn.TransformerEncoder(
                    torch.nn.TransformerEncoderLayer(
                        d,
                        8,
                    ),
                    num_layers=4,
                )
            """,
            at=("4:9-7:10",),
            fixed="""
            import torch
            def encoder(d):
                # Pre-norm: LayerNorm before each sublayer keeps gradients well-scaled at init; nested tensors off: that fast path only runs post-norm layers, and PyTorch warns otherwise (Xiong et al., 2020, arXiv:2002.04745)
                return torch.nn.TransformerEncoder(
                    torch.nn.TransformerEncoderLayer(
                        d,
                        8,
                        norm_first=True,
                    ),
                    num_layers=4,
                    enable_nested_tensor=False,
                )
            """,
        ),
    ),
)
