"""Residual output projections get the same init std as every other Linear (no 1/sqrt(2·n_layer)).

## Problem
A GPT-style model initialises every `nn.Linear` with `normal(std=0.02)` through
`self.apply(self._init_weights)`, including the projections that write into the residual stream
(`attn.c_proj`, `mlp.c_proj`, `o_proj`, `down_proj`, `fc2`). Each block adds two such outputs
to the stream, so at initialisation the stream's variance grows with the number of layers, and
the deepest models start with the largest, least controlled activations.

## Diagnosis
A model class (not a Hugging Face `PreTrainedModel`) that has a token `nn.Embedding` and a stack
of blocks defined in the same file (`nn.ModuleList([Block(config) for _ in range(config.n_layer)])`)
calls `self.apply(<init function>)` in `__init__`, and that function draws the weights of
`nn.Linear` modules (under an `isinstance(module, nn.Linear)` test) from `normal_`/`trunc_normal_`
with a literal std. The blocks (or the attention and MLP classes they build) own a `nn.Linear`
named like a residual output projection (`c_proj`, `o_proj`, `out_proj`, `proj`, `fc2`,
`down_proj`, `w2`, `wo`, `dense_4h_to_h`), or an `nn.Sequential` MLP whose last Linear is one
(`mlp.2` in minGPT's `nn.Sequential(Linear, GELU, Linear, Dropout)`). Nothing in the model, its
blocks or the file's module-level code scales an init by depth: no `sqrt(2 * ...)`, no std
divided by a layer count or raised to `-0.5` with one, no zero init of output projections, no
rescaling helper (`scaled_init`, `rescale`) and no LayerScale.

## Hypothesis
With N = 2·n_layer residual adds of outputs whose variance is set by the same std, the stream's
variance at initialisation grows linearly in N, so the relative size of each update, the scale
the final norm must undo and the gradient each block receives all depend on depth. Scaling the
projections' std by 1/sqrt(N) keeps the stream's variance roughly independent of depth at init.

## Literature
- Radford et al. (2019, GPT-2) "scale the weights of residual layers at initialization by a factor
  of 1/sqrt(N) where N is the number of residual layers"; GPT-2, GPT-3 reproductions, minGPT and
  nanoGPT apply it to `c_proj` after `self.apply(self._init_weights)`.
- Zhang et al. (2019, Fixup) show that rescaling residual branches' init by depth (and
  zero-initialising their last layer) lets deep residual networks train stably even without
  normalization.
- Wang et al. (2022, DeepNet) down-scale the init of residual branches by a depth-dependent factor
  and train 1,000-layer Transformers; Nguyen and Salazar (2019) report faster convergence of Pre-LN
  Transformers with a smaller, scaled initialisation.

## Recommendation
After `self.apply(self._init_weights)`, re-draw the residual output projections with
`std = 0.02 / math.sqrt(2 * n_layer)` (GPT-2's recipe; `n_layer` blocks, two residual adds each).

## Expected outcome
A residual stream whose variance at init no longer grows with depth; smoother early training and
fewer early loss spikes, most noticeably for deep models (24 layers and more). For shallow models
the effect on final loss is small.

## Implementation
Before:

    self.apply(self._init_weights)

After:

    self.apply(self._init_weights)
    # GPT-2 init: residual output projections get std/sqrt(2·n_layer), two residual adds per block (Radford et al., 2019)
    for pn, p in self.named_parameters():
        if pn.endswith('.c_proj.weight'):
            torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

The fix uses the file's own projection names, std literal, layer-count expression, quotes and
import aliases, and adds `import math` when it is missing.

## Caveats
The fix changes the initial weights, so runs are not comparable with earlier ones (unsafe fix);
it does not touch trained checkpoints, which overwrite the init. Names decide what a residual
output projection is: a Linear called `proj` that is not on the residual path would also be
rescaled. Not reported: models with no custom init (PyTorch's default Kaiming-uniform init is a
different scheme), Hugging Face models (their `_init_weights` mostly serves freshly added heads),
any depth-aware init in the model, its blocks or the file's module-level code (muP-style,
DeepNet, Fixup, zero-init, LayerScale), and stacks whose depth is not a `range(...)` in the model. Modern recipes differ (some use
`1/sqrt(2·(layer_index + 1))` per layer, some a smaller global std); all of those count as scaled.

## Next steps
Log the residual stream's RMS after each block at step 0 (it should be flat across depth with the
scaled init) and compare the first few thousand steps of the loss curve for your depth.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import ModuleClass, dotted_name
from llmarch_lsp.facts.stacks import BlockStack
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.builders import cited_text, line_end
from llmarch_lsp.fixes.model import UNSAFE, AddImport, Fix, Replace
from llmarch_lsp.fixes.shapes import owns_its_lines

FIX_TITLE = "Scale the init of residual output projections by 1/sqrt(2·n_layer)"
_FIX_REASON = "GPT-2 init: residual output projections get std/sqrt(2·n_layer), two residual adds per block"

RULE_DOCS = __doc__

_EMBEDDING, _LINEAR = "torch.nn.Embedding", "torch.nn.Linear"
_RESIDUAL_OUTPUT = frozenset(
    ("c_proj", "o_proj", "out_proj", "proj", "fc2", "down_proj", "w2", "wo", "dense_4h_to_h", "proj_out", "output_proj")
)
_SEQUENTIAL = "torch.nn.Sequential"
_FEED_FORWARD = re.compile(r"mlp|ffn|ff|feed_?forward|fc")
_NORMAL_INITS = frozenset(("normal_", "trunc_normal_", "trunc_normal_tf_"))
# Depth-aware init anywhere in the file: GPT-2's sqrt(2 * n_layer), a std divided by or raised to a
# power of a layer count, zero-initialised output projections, rescaling helpers, LayerScale. Read
# around the few places where such code can be, not with one regular expression over the file.
_DEPTH = re.compile(r"layer|depth", re.IGNORECASE)
_OUTPUT_NAME = re.compile(r"proj|fc2|w2|wo|out", re.IGNORECASE)
_HALF_POWER = re.compile(r"^\s*\(?\s*-?\s*0?\.5")
_SCALING_WORDS = (
    "scaled_init", "init_method_std", "rescale", "depth_init", "residual_init", "init_values",
    "layer_scale", "layerscale", "mureadout", "import mup", "from mup",
)


def _scales_init_by_depth(source: str) -> bool:
    lowered = source.lower()
    if any(word in lowered for word in _SCALING_WORDS):
        return True
    for after in _following(lowered, "sqrt("):
        inside = after.split(")", 1)[0]
        if re.match(r"\s*2(\.0)?\s*\*", inside) or _DEPTH.search(inside):
            return True
    for before, after in _around(lowered, "**"):
        if _DEPTH.search(before[-40:]) and _HALF_POWER.match(after):
            return True
    for after in _following(lowered, "zeros_("):
        if _OUTPUT_NAME.search(after.split(")", 1)[0]):
            return True
    # A std computed on a line that mentions the depth (`std = base_std / n_layers`).
    return any(_DEPTH.search(line) for line in lowered.splitlines() if "std" in line or "normal_" in line)


def _following(text: str, marker: str, width: int = 80):
    start = text.find(marker)
    while start != -1:
        yield text[start + len(marker) : start + len(marker) + width].split("\n", 1)[0]
        start = text.find(marker, start + 1)


def _around(text: str, marker: str, width: int = 80):
    start = text.find(marker)
    while start != -1:
        line_start = text.rfind("\n", 0, start) + 1
        yield text[max(line_start, start - width) : start], text[start + len(marker) : start + len(marker) + width].split("\n", 1)[0]
        start = text.find(marker, start + 1)


def check(document: Document, context: RuleContext, rule: Rule):
    source = document.source
    if ".apply(" not in source or "normal_" not in source or not document.imports.imports_module("torch"):
        return
    stacks_facts = document.stacks
    for module in document.modules.classes:
        if module.forward is None or not module.submodules:
            continue
        stacks = [stack for stack in stacks_facts.stacks(module) if stack.block is not None and stack.depth is not None]
        if not stacks:
            continue
        submodules = stacks_facts.submodules(module).values()
        if not any(stacks_facts.constructor(submodule.call) == _EMBEDDING for submodule in submodules):
            continue  # not a language model: vision stacks initialise by their own conventions
        if stacks_facts.is_hugging_face_model(module):
            continue
        found = _apply_and_linear_init(document, module)
        if found is None:
            continue
        apply_call, normal_call, std = found
        stack = stacks[0]
        projections, block_classes = _residual_projections(document, stack)
        if not projections:
            continue
        # A depth-aware init lives in the model, its blocks, or module-level code (an init function).
        texts = [document.segment(node) for node in (module.node, *block_classes)]
        if _scales_init_by_depth("\n".join([*texts, stacks_facts.outside_classes])):
            continue  # already scaled in some form: trust it
        yield rule.finding(
            document,
            apply_call,
            _message(document, stack, projections, std),
            related=(Related(document.span_of(normal_call), "the init every Linear gets, output projections included"),),
            fix=_fix(document, module, stack, apply_call, projections, std),
        )


def _apply_and_linear_init(document: Document, module: ModuleClass) -> tuple[ast.Call, ast.Call, ast.Constant] | None:
    """`self.apply(fn)` in `__init__` and, inside `fn`, `normal_(module.weight, std=<literal>)` for Linears."""
    initializer = next(
        (statement for statement in module.node.body if isinstance(statement, ast.FunctionDef) and statement.name == "__init__"),
        None,
    )
    if initializer is None:
        return None
    for call in document.stacks.nodes_in(initializer, ast.Call):
        if not (
            isinstance(call.func, ast.Attribute)
            and call.func.attr == "apply"
            and dotted_name(call.func.value) == "self"
            and len(call.args) == 1
            and not call.keywords
        ):
            continue
        function = _init_function(document, module, call.args[0])
        if function is None:
            continue
        for candidate in document.stacks.nodes_in(function, ast.Call):
            std = _linear_normal_std(document, function, candidate)
            if std is not None:
                return call, candidate, std
    return None


def _init_function(document: Document, module: ModuleClass, argument: ast.expr) -> ast.FunctionDef | None:
    """`self._init_weights` (a method of this class) or a function defined at module level."""
    if isinstance(argument, ast.Attribute) and dotted_name(argument.value) == "self":
        return next(
            (s for s in module.node.body if isinstance(s, ast.FunctionDef) and s.name == argument.attr),
            None,
        )
    if isinstance(argument, ast.Name):
        return next(
            (s for s in document.tree.body if isinstance(s, ast.FunctionDef) and s.name == argument.id),
            None,
        )
    return None


def _linear_normal_std(document: Document, function: ast.FunctionDef, call: ast.Call) -> ast.Constant | None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in _NORMAL_INITS:
        return None
    # `torch.nn.init.normal_(w, mean, std)` / `trunc_normal_(w, mean, std)` vs `w.data.normal_(mean, std)`.
    is_function = isinstance(func, ast.Name) or document.qualified_name(func) is not None
    target = call.args[0] if is_function and call.args else (func.value if not is_function else None)
    if target is None or "weight" not in document.segment(target):
        return None
    std = next((keyword.value for keyword in call.keywords if keyword.arg == "std"), None)
    if std is None:
        position = 2 if is_function else 1
        std = call.args[position] if len(call.args) > position else None
    if not (isinstance(std, ast.Constant) and isinstance(std.value, (int, float)) and not isinstance(std.value, bool) and std.value > 0):
        return None
    for ancestor in document.index.ancestors(call):
        if ancestor is function:
            return None
        if isinstance(ancestor, ast.If) and "Linear" in document.segment(ancestor.test):
            # Only the `if` branch: an `elif`/`else` under it belongs to other module types.
            if any(call is node or _contains(node, call) for node in ancestor.body):
                return std
            return None
    return None


def _contains(outer: ast.AST, inner: ast.AST) -> bool:
    return (outer.lineno, outer.col_offset) <= (inner.lineno, inner.col_offset) and (
        inner.end_lineno,
        inner.end_col_offset,
    ) <= (outer.end_lineno, outer.end_col_offset)


def _residual_projections(document: Document, stack: BlockStack) -> tuple[list[str], list[ast.ClassDef]]:
    """Linear output projections in the block and in the local classes it builds (attn, mlp),
    and those classes."""
    stacks_facts = document.stacks
    found: list[str] = []
    visited: list[ast.ClassDef] = []
    pending = [stack.block]
    while pending:
        module = pending.pop(0)
        if module is None or module.node in visited or len(visited) > 8:
            continue
        visited.append(module.node)
        for submodule in stacks_facts.submodules(module).values():
            constructor = stacks_facts.constructor(submodule.call)
            if constructor == _LINEAR and submodule.name in _RESIDUAL_OUTPUT and submodule.name not in found:
                found.append(submodule.name)
            elif constructor == _SEQUENTIAL and _FEED_FORWARD.fullmatch(submodule.name):
                # minGPT's `nn.Sequential(Linear, GELU, Linear, Dropout)`: the last Linear is `mlp.2`.
                linears = [
                    position
                    for position, layer in enumerate(submodule.call.args)
                    if isinstance(layer, ast.Call) and stacks_facts.constructor(layer) == _LINEAR
                ]
                if len(linears) >= 2 and f"{submodule.name}.{linears[-1]}" not in found:
                    found.append(f"{submodule.name}.{linears[-1]}")
            elif isinstance(submodule.call.func, ast.Name):
                pending.append(document.modules.by_name.get(submodule.call.func.id))
    return found, visited


def _message(document: Document, stack: BlockStack, projections: list[str], std: ast.Constant) -> str:
    names = ", ".join(f"`{name}`" for name in projections)
    depth = document.segment(stack.depth)
    layers = document.stacks.static_int(stack.depth, stack.depth)
    scaled = f" = {std.value / (2 * layers) ** 0.5:.4f}" if layers else ""
    return (
        f"residual output projections ({names}) start with std={document.segment(std)} like every other Linear; "
        f"with 2·{depth} residual adds the stream's variance at init grows with depth, and GPT-2 draws them with "
        f"std/sqrt(2·{depth}){scaled} instead (Radford et al., 2019)"
    )


def _fix(document: Document, module: ModuleClass, stack: BlockStack, apply_call: ast.Call, projections: list[str], std: ast.Constant) -> Fix | None:
    statement = document.index.parent(apply_call)
    initializer = document.index.parent(statement)
    if not isinstance(statement, ast.Expr) or not isinstance(initializer, ast.FunctionDef):
        return None
    if not owns_its_lines(document, statement) or stack.submodule.statement.lineno > statement.lineno:
        return None
    if {node.id for node in walk(stack.depth) if isinstance(node, ast.Name)} & stack.comprehension_names:
        return None
    indentation = document.indentation_of(statement.lineno)
    unit = indentation[len(document.indentation_of(initializer.lineno)) :] or "    "
    quote = _quote_style(document, module)
    suffixes = [f"{quote}.{name}.weight{quote}" for name in projections]
    suffix = suffixes[0] if len(suffixes) == 1 else f"({', '.join(suffixes)})"
    used = {node.id for node in document.stacks.nodes_in(initializer, ast.Name)}
    name, parameter = ("pn", "p") if not {"pn", "p"} & used else ("parameter_name", "parameter")
    normal = document.imports.local_name_for("torch.nn.init.normal_") or "torch.nn.init.normal_"
    imports: tuple[AddImport, ...] = ()
    sqrt = document.imports.local_name_for("math.sqrt")
    if sqrt is None:
        sqrt, imports = "math.sqrt", (AddImport("math"),)
    depth = document.segment(stack.depth)
    if not isinstance(stack.depth, (ast.Name, ast.Attribute, ast.Constant, ast.Call, ast.Subscript)):
        depth = f"({depth})"
    comment = cited_text(_FIX_REASON, "radford2019gpt2")
    lines = [
        f"# {comment}",
        f"for {name}, {parameter} in self.named_parameters():",
        f"{unit}if {name}.endswith({suffix}):",
        f"{unit}{unit}{normal}({parameter}, mean=0.0, std={document.segment(std)} / {sqrt}(2 * {depth}))",
    ]
    text = "".join(f"\n{indentation}{line}" for line in lines)
    return Fix(
        title=FIX_TITLE,
        applicability=UNSAFE,
        replacements=(Replace(line_end(document, statement.end_lineno), text),),
        imports=imports,
    )


def _quote_style(document: Document, module: ModuleClass) -> str:
    singles = doubles = 0
    for constant in document.stacks.nodes_in(module.node, ast.Constant):
        if isinstance(constant.value, str) and constant.lineno == constant.end_lineno:
            first = document.line_text(constant.lineno)[constant.col_offset : constant.col_offset + 1]
            singles += first == "'"
            doubles += first == '"'
    return '"' if doubles > singles else "'"


RULE = Rule(
    code="LLM502",
    name="unscaled-residual-init",
    summary="Residual output projections are initialised like every other Linear, not scaled by depth",
    severity=Severity.HINT,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("radford2019gpt2", "zhang2019fixup", "wang2022deepnet", "nguyen2019transformers"),
    check=check,
    docs=RULE_DOCS,
    tags=("initialization", "residual", "stability"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT / minGPT: the scaled init loop follows the apply.
        """
        import math
        import torch
        import torch.nn as nn
        class GPT(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.wte = nn.Embedding(config.vocab_size, config.n_embd)
                self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
                self.apply(self._init_weights)
                for pn, p in self.named_parameters():
                    if pn.endswith('c_proj.weight'):
                        torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
            def _init_weights(self, module):
                if isinstance(module, nn.Linear):
                    torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            def forward(self, idx):
                return idx
        class Block(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.c_proj = nn.Linear(config.n_embd, config.n_embd)
            def forward(self, x):
                return x + self.c_proj(x)
        """,
        # No custom init at all: PyTorch's defaults are a different story.
        """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.c_proj = nn.Linear(d, d)
            def forward(self, x):
                return x + self.c_proj(x)
        class GPT(nn.Module):
            def __init__(self, vocab, d, n_layer):
                super().__init__()
                self.wte = nn.Embedding(vocab, d)
                self.blocks = nn.ModuleList([Block(d) for _ in range(n_layer)])
            def forward(self, idx):
                return self.wte(idx)
        """,
        # Depth-scaled std per layer inside the init function (OLMo / Megatron style).
        """
        import math
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.down_proj = nn.Linear(4 * d, d)
            def forward(self, x):
                return x + self.down_proj(x)
        class LM(nn.Module):
            def __init__(self, vocab, d, num_layers):
                super().__init__()
                self.embed = nn.Embedding(vocab, d)
                self.layers = nn.ModuleList([Block(d) for _ in range(num_layers)])
                self.num_layers = num_layers
                self.apply(self._init)
            def _init(self, module):
                if isinstance(module, nn.Linear):
                    std = 0.02 / (2 * self.num_layers) ** 0.5
                    nn.init.normal_(module.weight, std=std)
            def forward(self, idx):
                return self.embed(idx)
        """,
        # A vision transformer (no token embedding): timm conventions, not GPT-2's.
        """
        import torch.nn as nn
        from timm.layers import trunc_normal_
        class Block(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.proj = nn.Linear(dim, dim)
            def forward(self, x):
                return x + self.proj(x)
        class ViT(nn.Module):
            def __init__(self, dim, depth):
                super().__init__()
                self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
                self.apply(self._init_weights)
            def _init_weights(self, m):
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
            def forward(self, x):
                return x
        """,
    ),
    invalid=(
        Invalid(
            """
            import math
            import torch
            import torch.nn as nn
            class MLP(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
                    self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
            class Block(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.ln_1 = nn.LayerNorm(config.n_embd)
                    self.mlp = MLP(config)
                def forward(self, x):
                    return x + self.mlp(self.ln_1(x))
            class GPT(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.wte = nn.Embedding(config.vocab_size, config.n_embd)
                    self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
                    self.apply(self._init_weights)
                def _init_weights(self, module):
                    if isinstance(module, nn.Linear):
                        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                    elif isinstance(module, nn.Embedding):
                        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                def forward(self, idx):
                    return self.wte(idx)
            """,
            at=("21:9-21:39",),
            fixed="""
            import math
            import torch
            import torch.nn as nn
            class MLP(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
                    self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
            class Block(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.ln_1 = nn.LayerNorm(config.n_embd)
                    self.mlp = MLP(config)
                def forward(self, x):
                    return x + self.mlp(self.ln_1(x))
            class GPT(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.wte = nn.Embedding(config.vocab_size, config.n_embd)
                    self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
                    self.apply(self._init_weights)
                    # GPT-2 init: residual output projections get std/sqrt(2·n_layer), two residual adds per block (Radford et al., 2019)
                    for pn, p in self.named_parameters():
                        if pn.endswith('.c_proj.weight'):
                            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
                def _init_weights(self, module):
                    if isinstance(module, nn.Linear):
                        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                    elif isinstance(module, nn.Embedding):
                        torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                def forward(self, idx):
                    return self.wte(idx)
            """,
        ),
        # Llama-style names, a module-level init function, HF-style `.data.normal_`, no `import math`.
        Invalid(
            """
            from torch import nn
            def init_weights(module):
                if isinstance(module, nn.Linear):
                    module.weight.data.normal_(mean=0.0, std=0.02)
            class Attention(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.o_proj = nn.Linear(dim, dim, bias=False)
            class FeedForward(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.down_proj = nn.Linear(4 * dim, dim, bias=False)
            class Layer(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.self_attn = Attention(dim)
                    self.mlp = FeedForward(dim)
                def forward(self, x):
                    return x + self.mlp(x)
            class Transformer(nn.Module):
                def __init__(self, vocab_size, dim, n_layers=24):
                    super().__init__()
                    self.tok_embeddings = nn.Embedding(vocab_size, dim)
                    self.layers = nn.ModuleList(Layer(dim) for _ in range(n_layers))
                    self.apply(init_weights)
                def forward(self, tokens):
                    return self.tok_embeddings(tokens)
            """,
            at=("25:9-25:33",),
            fixed="""
            from torch import nn
            import math

            def init_weights(module):
                if isinstance(module, nn.Linear):
                    module.weight.data.normal_(mean=0.0, std=0.02)
            class Attention(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.o_proj = nn.Linear(dim, dim, bias=False)
            class FeedForward(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.down_proj = nn.Linear(4 * dim, dim, bias=False)
            class Layer(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.self_attn = Attention(dim)
                    self.mlp = FeedForward(dim)
                def forward(self, x):
                    return x + self.mlp(x)
            class Transformer(nn.Module):
                def __init__(self, vocab_size, dim, n_layers=24):
                    super().__init__()
                    self.tok_embeddings = nn.Embedding(vocab_size, dim)
                    self.layers = nn.ModuleList(Layer(dim) for _ in range(n_layers))
                    self.apply(init_weights)
                    # GPT-2 init: residual output projections get std/sqrt(2·n_layer), two residual adds per block (Radford et al., 2019)
                    for pn, p in self.named_parameters():
                        if pn.endswith(('.o_proj.weight', '.down_proj.weight')):
                            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))
                def forward(self, tokens):
                    return self.tok_embeddings(tokens)
            """,
        ),
    ),
)
