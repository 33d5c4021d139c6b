"""A stack of pre-norm blocks feeds the output head with no final norm in between.

## Problem
In a pre-norm block (`x = x + f(norm(x))`) the residual stream itself is never normalized: every
block adds its output to it and hands the sum on. When the model runs a stack of such blocks and
passes the last block's output straight to the output head (`self.lm_head(x)`, `self.head(x)`),
the head reads an un-normalized sum of every layer's contribution, whose scale grows with depth
and drifts during training.

## Diagnosis
A model class builds a stack of blocks (`nn.ModuleList([Block(...) for _ in range(n)])`, also
inside `nn.ModuleDict(dict(h=...))`, or `nn.Sequential(*[...])`) whose block class, defined in the
same file, normalizes a sublayer's input inside a residual add (`x + self.attn(self.ln_1(x))`, or
the Hugging Face spelling through a `residual` variable), has no post-norm sum and does not
normalize what it returns. The model's `forward` runs the stack (a `for` loop over it, indexing
it, or calling the `Sequential`) and then calls an output head built as `nn.Linear`
(`lm_head`, `head`, `classifier`, `output`, `to_logits`, ...) on the stream, and nothing between
the stack and the head is a norm or another submodule that could contain one.

## Hypothesis
The head's input is then `x_0 + sum of L block outputs`. Its variance grows roughly linearly with
depth at initialisation and keeps changing as the blocks learn, so the logits' scale is tied to
depth and to training progress rather than controlled by a learned gain. The head and the last
blocks must compensate, which slows training and makes it less stable; the final-layer gradients
that Pre-LN analysis assumes to be well-scaled are no longer so.

## Literature
- Xiong et al. (2020, "On Layer Normalization in the Transformer Architecture") analyse the
  Pre-LN Transformer with a final LayerNorm before the prediction layer; the well-behaved
  gradients at initialisation that make it trainable without warmup are derived for that layout.
- Radford et al. (2019, GPT-2) move LayerNorm to each sub-block's input and add "an additional
  layer normalization after the final self-attention block" (`ln_f`), the recipe nanoGPT,
  GPT-NeoX, Llama (`norm`) and timm's ViT (`norm`) all keep.

## Recommendation
Add one norm of the same kind and width as the blocks' norms after the last block and apply it
before the head: `self.ln_f = nn.LayerNorm(n_embd)` in `__init__`, `x = self.ln_f(x)` right after
the loop.

## Expected outcome
The head sees activations with zero mean and unit variance per token (times a learned gain),
whatever the depth; logits start at a sensible scale, the loss falls faster in the first
thousand steps, and deep stacks are less prone to loss spikes. Final quality is usually a little
better; the cost is one norm per token.

## Implementation
Before:

    self.blocks = nn.ModuleList([Block(n_embd) for _ in range(n_layer)])
    self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
    ...
    for block in self.blocks:
        x = block(x)
    logits = self.lm_head(x)

After:

    self.blocks = nn.ModuleList([Block(n_embd) for _ in range(n_layer)])
    # Final norm: a pre-norm stack leaves the residual stream un-normalized (Xiong et al., 2020, arXiv:2002.04745; Radford et al., 2019)
    self.ln_f = nn.LayerNorm(n_embd)
    self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
    ...
    for block in self.blocks:
        x = block(x)
    # Final norm: a pre-norm stack leaves the residual stream un-normalized (Xiong et al., 2020, arXiv:2002.04745; Radford et al., 2019)
    x = self.ln_f(x)
    logits = self.lm_head(x)

The quick fix builds the norm with the blocks' own norm class and arguments, translated to the
model's names (`LayerNorm(config.n_embd, bias=config.bias)` for nanoGPT-style blocks built with
`Block(config)`); when the model already builds a final norm that its forward never applies, the
fix only inserts the call.

## Caveats
The fix adds parameters and changes the function the network computes: checkpoints trained
without the norm no longer match (unsafe fix). It is offered only when the block's norm can be
rebuilt from the arguments the model passes to the block. Not reported: blocks defined in another
file (their placement is unknown), post-norm blocks (their output is already normalized), heads
that are not a plain `nn.Linear` (a head `nn.Sequential(nn.LayerNorm(d), nn.Linear(d, V))` holds
its own norm), and any call between the stack and the head to a submodule or helper method that
might normalize (`self.forward_features(x)`, `self.pooler(x)`). Some designs skip the final norm
on purpose (a head that applies its own normalization, or a model whose last block is post-norm);
those are written differently and stay silent. The evidence is architectural consensus and
analysis rather than a controlled ablation at scale.

## Next steps
Compare the standard deviation of the head's input per token across depths before and after the
change, and the loss over the first thousand steps; check the logits' scale at initialisation
(roughly `log(vocab)` loss at step 0).
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import ModuleClass, dotted_name
from llmarch_lsp.facts.residuals import is_norm_class, is_norm_name
from llmarch_lsp.facts.stacks import BlockStack, Submodule
from llmarch_lsp.findings import Confidence, Evidence, Related, Severity
from llmarch_lsp.fixes.builders import cited_text, line_end
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace
from llmarch_lsp.fixes.shapes import owns_its_lines

FIX_TITLE = "Add a final norm before the output head"
_FIX_REASON = "Final norm: a pre-norm stack leaves the residual stream un-normalized"

RULE_DOCS = __doc__

# Output heads: the attribute's own name, not a substring of a longer one (`heads` is a count).
_HEAD_NAME = re.compile(
    r"(lm_?head|head|classifier|cls|output|out|to_logits|logits|fc_out|output_layer|output_projection|"
    r"out_proj(ection)?|unembed(ding)?|readout|decoder|final_linear|final_proj)",
    re.IGNORECASE,
)
_NORM_IN_NAME = re.compile(r"norm", re.IGNORECASE)
_FINAL_NORM_NAME = re.compile(r"(ln|norm|layer_?norm)(_?f|_?final|_?out)?|final_?(ln|norm|layer_?norm)", re.IGNORECASE)
_SIMPLE_EXPRESSION = (ast.Name, ast.Attribute, ast.Constant, ast.Call, ast.Subscript)


def check(document: Document, context: RuleContext, rule: Rule):
    if not document.imports.imports_module("torch"):
        return
    stacks_facts = document.stacks
    for module in document.modules.classes:
        if module.forward is None or not any(_HEAD_NAME.fullmatch(attribute) for attribute in module.submodules):
            continue  # heads are built as direct attributes (`self.lm_head = nn.Linear(...)`)
        heads = [
            submodule
            for submodule in stacks_facts.submodules(module).values()
            if _HEAD_NAME.fullmatch(submodule.name) and stacks_facts.constructor(submodule.call) == "torch.nn.Linear"
        ]
        if not heads:
            continue
        for stack in stacks_facts.stacks(module):
            if stack.block is None or stack.block is module:
                continue
            norm_call = stacks_facts.pre_norm_input(stack.block)
            if norm_call is None:
                continue
            finding = _unnormalized_head_input(document, rule, module, stack, heads, norm_call)
            if finding is not None:
                yield finding
                break


class _StackRun:
    """Where a forward runs the stack: the statement (a loop, or `x = self.blocks(x)`) and the
    name that carries the stream out of it."""

    def __init__(self, statement: ast.stmt, stream: str, block_calls: list[ast.Call]):
        self.statement = statement
        self.stream = stream
        self.block_calls = block_calls


def _unnormalized_head_input(document, rule, module: ModuleClass, stack: BlockStack, heads, norm_call):
    stacks_facts = document.stacks
    run = _stack_run(document, module, stack)
    if run is None:
        return None
    after = (run.statement.end_lineno, run.statement.end_col_offset)
    head_references = {head.reference: head for head in heads}
    calls = stacks_facts.nodes_in(module.forward, ast.Call)
    head_calls = [
        call
        for call in calls
        if dotted_name(call.func) in head_references and (call.lineno, call.col_offset) >= after
    ]
    if not head_calls:
        return None
    last_head = head_calls[-1]
    end = (last_head.end_lineno, last_head.end_col_offset)
    in_loop = [call for call in stacks_facts.nodes_in(run.statement, ast.Call) if call not in run.block_calls]
    between = [call for call in calls if after <= (call.lineno, call.col_offset) and (call.end_lineno, call.end_col_offset) <= end]
    for call in in_loop + between:
        if call in head_calls:
            continue
        if _may_normalize(document, module, call):
            return None
    names = stacks_facts.nodes_in(module.forward, ast.Name)
    if not any(
        name.id == run.stream and isinstance(name.ctx, ast.Load) and after <= (name.lineno, name.col_offset) <= end
        for name in names
    ):
        return None
    head = head_references[dotted_name(head_calls[0].func)]
    unused = _unused_final_norm(document, module)
    forgotten = f" (`{unused.reference}` is built but never applied)" if unused is not None else ""
    message = (
        f"pre-norm blocks in `{stack.submodule.reference}` feed `{head.reference}` with no final norm{forgotten}: "
        "their residual stream is never normalized, so the head reads a sum whose scale grows with depth; "
        "GPT-2 and Pre-LN analyses put a final norm (`ln_f`) here (Xiong et al., 2020; Radford et al., 2019)"
    )
    return rule.finding(
        document,
        head_calls[0],
        message,
        related=(Related(document.span_of(run.statement), "the stack of pre-norm blocks"),),
        fix=_fix(document, module, stack, norm_call, run, unused),
    )


def _stack_run(document: Document, module: ModuleClass, stack: BlockStack) -> _StackRun | None:
    """The loop over the stack (or the call of a Sequential stack) in the model's forward."""
    stacks_facts = document.stacks
    reference = stack.submodule.reference
    loops = stacks_facts.nodes_in(module.forward, ast.For)
    # A loop over the stack first; else the innermost loop that indexes it (`self.h[i](x)`).
    for loop in [*(loop for loop in loops if _loop_block_name(loop, reference) is not None), *reversed(loops)]:
        block_name = _loop_block_name(loop, reference)
        calls = [
            call
            for call in stacks_facts.nodes_in(loop, ast.Call)
            if (isinstance(call.func, ast.Name) and call.func.id == block_name)
            or (isinstance(call.func, ast.Subscript) and dotted_name(call.func.value) == reference)
        ]
        stream = _assigned_stream(document, calls)
        if stream is not None:
            return _StackRun(loop, stream, calls)
    for call in stacks_facts.nodes_in(module.forward, ast.Call):
        if dotted_name(call.func) == reference:
            statement = document.index.enclosing_statement(call)
            stream = _assigned_stream(document, [call])
            if stream is not None:
                return _StackRun(statement, stream, [call])
    return None


def _loop_block_name(loop: ast.For, reference: str) -> str | None:
    """`for block in self.h` -> `block`; also `enumerate(self.h)`, `zip(self.h, ...)`, and
    `for i in range(len(self.h))` (the block is then `self.h[i]`: no name, "")."""
    iterable, target = _unsliced(loop.iter), loop.target
    if dotted_name(iterable) == reference and isinstance(target, ast.Name):
        return target.id
    if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name):
        function, arguments = iterable.func.id, iterable.args
        arguments = [_unsliced(argument) for argument in arguments]
        if function == "enumerate" and arguments and dotted_name(arguments[0]) == reference:
            if isinstance(target, ast.Tuple) and len(target.elts) == 2 and isinstance(target.elts[1], ast.Name):
                return target.elts[1].id
        if function == "zip" and isinstance(target, ast.Tuple) and len(target.elts) == len(arguments):
            for argument, element in zip(arguments, target.elts):
                if dotted_name(argument) == reference and isinstance(element, ast.Name):
                    return element.id
        if function == "range" and len(arguments) == 1 and isinstance(arguments[0], ast.Call):
            inner = arguments[0]
            if isinstance(inner.func, ast.Name) and inner.func.id == "len" and inner.args and dotted_name(inner.args[0]) == reference:
                return ""
    return None


def _unsliced(node: ast.expr) -> ast.expr:
    """`self.layers[: n]` -> `self.layers`: running the first n blocks is still running the stack."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        return node.value
    return node


def _assigned_stream(document: Document, block_calls: list[ast.Call]) -> str | None:
    """`x = block(x)`, `x, _ = block(x)`, `hidden = layer(hidden)[0]` -> the stream's name."""
    for call in block_calls:
        statement = document.index.enclosing_statement(call)
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
            continue
        value = statement.value
        while isinstance(value, ast.Subscript):
            value = value.value
        if value is not call:
            continue
        target = statement.targets[0]
        if isinstance(target, ast.Tuple) and target.elts:
            target = target.elts[0]
        if isinstance(target, ast.Name):
            return target.id
    return None


def _may_normalize(document: Document, module: ModuleClass, call: ast.Call) -> bool:
    """A norm, or a call that could hide one: a submodule or a method of the model."""
    text = dotted_name(call.func) or ""
    if _NORM_IN_NAME.search(text):
        return True
    kind = document.residuals.call_kind(module, call)
    if kind == "norm":
        return True
    if kind == "sublayer":
        return True
    qualified = document.qualified_name(call.func) or ""
    return bool(_NORM_IN_NAME.search(qualified))


# ---- the fix -------------------------------------------------------------------------------------

def _fix(
    document: Document, module: ModuleClass, stack: BlockStack, norm_call: ast.Call, run: _StackRun, existing: Submodule | None
) -> Fix | None:
    if not owns_its_lines(document, run.statement):
        return None
    for ancestor in document.index.ancestors(run.statement):
        if ancestor is module.forward:
            break
        if isinstance(ancestor, (ast.For, ast.AsyncFor, ast.While)):
            return None  # the stack runs repeatedly: where "after the last block" is, is unclear
    replacements = []
    if existing is not None:
        name = existing.reference
    else:
        built = _final_norm_constructor(document, module, stack, norm_call)
        if built is None:
            return None
        attribute = _free_attribute(document, module, norm_call)
        statement = stack.submodule.statement
        if not stack.submodule.unconditional or not owns_its_lines(document, statement):
            return None
        name = f"self.{attribute}"
        replacements.append(_insert_after(document, statement, [f"{name} = {built}"]))
    replacements.append(_insert_after(document, run.statement, [f"{run.stream} = {name}({run.stream})"]))
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=tuple(replacements))


def _insert_after(document: Document, statement: ast.stmt, lines: list[str]) -> Replace:
    """New statements, with the cited comment above them, after `statement` at its indentation."""
    indentation = document.indentation_of(statement.lineno)
    comment = cited_text(_FIX_REASON, "xiong2020layer", "radford2019gpt2")
    text = "".join(f"\n{indentation}{line}" for line in [f"# {comment}", *lines])
    return Replace(line_end(document, statement.end_lineno), text)


def _unused_final_norm(document: Document, module: ModuleClass) -> Submodule | None:
    """A final norm the model builds but never mentions again (a forgotten `ln_f`)."""
    source = document.segment(module.node)
    for submodule in document.stacks.submodules(module).values():
        if not _FINAL_NORM_NAME.fullmatch(submodule.name):
            continue
        constructor = document.stacks.constructor(submodule.call).rsplit(".", 1)[-1]
        if not (is_norm_class(constructor) if constructor[:1].isupper() else is_norm_name(submodule.name)):
            continue
        # `self.ln_f = ...` mentions it once; an entry of `nn.ModuleDict(dict(ln_f=...))` not at all.
        built_as_attribute = 0 if "." in submodule.path else 1
        if len(re.findall(rf"\bself\.{re.escape(submodule.path)}\b", source)) == built_as_attribute:
            return submodule
    return None


def _final_norm_constructor(document: Document, module: ModuleClass, stack: BlockStack, norm_call: ast.Call) -> str | None:
    """The block's norm constructor, rewritten in the names the model passes to the block."""
    block = stack.block
    attribute = norm_call.func.attr if isinstance(norm_call.func, ast.Attribute) and dotted_name(norm_call.func.value) == "self" else None
    if attribute is None:
        return None
    built = document.stacks.submodules(block).get(attribute)
    if built is None or not built.unconditional:
        return None
    initializer = document.index.enclosing(built.statement, ast.FunctionDef)
    if initializer is None or initializer.name != "__init__":
        return None
    arguments = _bound_arguments(document, initializer, stack.block_call)
    if arguments is None:
        return None
    local_names = {
        node.id for node in document.stacks.nodes_in(initializer, ast.Name) if isinstance(node.ctx, ast.Store)
    }
    constructor = built.call
    replacements: list[tuple[ast.Name, str]] = []
    for node in walk(constructor):
        if not isinstance(node, ast.Name):
            continue
        if node.id == "self":
            return None
        if node.id in arguments:
            replacements.append((node, arguments[node.id]))
        elif node.id in local_names:
            return None
    text = _substitute(document, constructor, replacements)
    if text is None or "\n" in text:
        return None
    used = {node.id for node in walk(ast.parse(text, mode="eval")) if isinstance(node, ast.Name)}
    if used & stack.comprehension_names:
        return None
    return text


def _bound_arguments(document: Document, initializer: ast.FunctionDef, call: ast.Call) -> dict[str, str] | None:
    """Block `__init__` parameter -> the source text the model passes for it (or its default)."""
    parameters = [argument.arg for argument in [*initializer.args.posonlyargs, *initializer.args.args]][1:]
    if any(isinstance(argument, ast.Starred) for argument in call.args) or any(keyword.arg is None for keyword in call.keywords):
        return None
    if len(call.args) > len(parameters):
        return None
    bound = {name: _parenthesized(document, value) for name, value in zip(parameters, call.args)}
    bound.update((keyword.arg, _parenthesized(document, keyword.value)) for keyword in call.keywords)
    arguments = initializer.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults = dict(zip([a.arg for a in positional[len(positional) - len(arguments.defaults) :]], arguments.defaults))
    defaults.update((a.arg, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None)
    for name in [*parameters, *(a.arg for a in arguments.kwonlyargs)]:
        if name not in bound and name in defaults:
            bound[name] = _parenthesized(document, defaults[name])
    return bound


def _parenthesized(document: Document, node: ast.expr) -> str:
    text = document.segment(node)
    return text if isinstance(node, _SIMPLE_EXPRESSION) else f"({text})"


def _substitute(document: Document, node: ast.AST, replacements: list[tuple[ast.Name, str]]) -> str | None:
    span = document.span_of(node)
    if span.line != span.end_line:
        return None
    text = document.segment(node)
    for name, new in sorted(replacements, key=lambda pair: pair[0].col_offset, reverse=True):
        start = document.span_of(name).column - span.column
        end = document.span_of(name).end_column - span.column
        text = text[:start] + new + text[end:]
    return text


def _free_attribute(document: Document, module: ModuleClass, norm_call: ast.Call) -> str:
    """`ln_f` next to `ln_1`/`ln_2`; `norm` next to `norm1` or `input_layernorm`; never a taken name."""
    block_norm = norm_call.func.attr if isinstance(norm_call.func, ast.Attribute) else ""
    preferred = ["ln_f", "norm_f", "final_norm"] if block_norm.startswith("ln") else ["norm", "final_norm", "norm_f"]
    source = document.segment(module.node)
    for name in preferred:
        if re.search(rf"\bself\.{name}\b", source) is None:
            return name
    return "final_norm_"


RULE = Rule(
    code="LLM202",
    name="missing-final-norm",
    summary="A stack of pre-norm blocks feeds the output head without a final norm",
    severity=Severity.WARNING,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("xiong2020layer", "radford2019gpt2"),
    check=check,
    docs=RULE_DOCS,
    tags=("normalization", "residual", "architecture"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT: the final norm lives in the ModuleDict and is applied after the loop.
        """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.ln_1 = nn.LayerNorm(config.n_embd)
                self.attn = Attention(config)
                self.ln_2 = nn.LayerNorm(config.n_embd)
                self.mlp = MLP(config)
            def forward(self, x):
                x = x + self.attn(self.ln_1(x))
                x = x + self.mlp(self.ln_2(x))
                return x
        class GPT(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.transformer = nn.ModuleDict(dict(
                    wte=nn.Embedding(config.vocab_size, config.n_embd),
                    h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                    ln_f=nn.LayerNorm(config.n_embd),
                ))
                self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            def forward(self, idx):
                x = self.transformer.wte(idx)
                for block in self.transformer.h:
                    x = block(x)
                x = self.transformer.ln_f(x)
                return self.lm_head(x)
        """,
        # Post-norm blocks: their output is already normalized.
        """
        import torch.nn as nn
        class PostBlock(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.attn = Attention(d)
                self.norm = nn.LayerNorm(d)
            def forward(self, x):
                return self.norm(x + self.attn(x))
        class Encoder(nn.Module):
            def __init__(self, d, depth, classes):
                super().__init__()
                self.layers = nn.ModuleList([PostBlock(d) for _ in range(depth)])
                self.head = nn.Linear(d, classes)
            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return self.head(x[:, 0])
        """,
        # timm-style: forward goes through helper methods that may normalize.
        """
        from torch import nn
        class Block(nn.Module):
            def __init__(self, dim):
                super().__init__()
                self.norm1 = nn.LayerNorm(dim)
                self.attn = Attention(dim)
            def forward(self, x):
                return x + self.attn(self.norm1(x))
        class VisionTransformer(nn.Module):
            def __init__(self, dim, depth, num_classes):
                super().__init__()
                self.blocks = nn.Sequential(*[Block(dim) for _ in range(depth)])
                self.fc_norm = nn.LayerNorm(dim)
                self.head = nn.Linear(dim, num_classes)
            def forward(self, x):
                x = self.blocks(x)
                x = self.fc_norm(x.mean(dim=1))
                return self.head(x)
        """,
        # The head carries its own norm.
        """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.ln = nn.LayerNorm(d)
                self.mlp = MLP(d)
            def forward(self, x):
                return x + self.mlp(self.ln(x))
        class Model(nn.Module):
            def __init__(self, d, n, vocab):
                super().__init__()
                self.blocks = nn.ModuleList([Block(d) for _ in range(n)])
                self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, vocab))
            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return self.head(x)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self, n_embd, n_head):
                    super().__init__()
                    self.ln_1 = nn.LayerNorm(n_embd)
                    self.attn = Attention(n_embd, n_head)
                    self.ln_2 = nn.LayerNorm(n_embd)
                    self.mlp = MLP(n_embd)
                def forward(self, x):
                    x = x + self.attn(self.ln_1(x))
                    x = x + self.mlp(self.ln_2(x))
                    return x
            class GPT(nn.Module):
                def __init__(self, vocab_size, n_embd=128, n_head=4, n_layer=6):
                    super().__init__()
                    self.wte = nn.Embedding(vocab_size, n_embd)
                    self.blocks = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
                    self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
                def forward(self, idx):
                    x = self.wte(idx)
                    for block in self.blocks:
                        x = block(x)
                    return self.lm_head(x)  # (B, T, vocab_size)
            """,
            at=("23:16-23:31",),
            fixed="""
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self, n_embd, n_head):
                    super().__init__()
                    self.ln_1 = nn.LayerNorm(n_embd)
                    self.attn = Attention(n_embd, n_head)
                    self.ln_2 = nn.LayerNorm(n_embd)
                    self.mlp = MLP(n_embd)
                def forward(self, x):
                    x = x + self.attn(self.ln_1(x))
                    x = x + self.mlp(self.ln_2(x))
                    return x
            class GPT(nn.Module):
                def __init__(self, vocab_size, n_embd=128, n_head=4, n_layer=6):
                    super().__init__()
                    self.wte = nn.Embedding(vocab_size, n_embd)
                    self.blocks = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
                    # Final norm: a pre-norm stack leaves the residual stream un-normalized (Xiong et al., 2020, arXiv:2002.04745; Radford et al., 2019)
                    self.ln_f = nn.LayerNorm(n_embd)
                    self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
                def forward(self, idx):
                    x = self.wte(idx)
                    for block in self.blocks:
                        x = block(x)
                    # Final norm: a pre-norm stack leaves the residual stream un-normalized (Xiong et al., 2020, arXiv:2002.04745; Radford et al., 2019)
                    x = self.ln_f(x)
                    return self.lm_head(x)  # (B, T, vocab_size)
            """,
        ),
        # Hugging Face spelling of a pre-norm layer, an RMSNorm built from a config, a classifier head.
        Invalid(
            """
            from torch import nn
            class DecoderLayer(nn.Module):
                def __init__(self, config, layer_idx):
                    super().__init__()
                    self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
                    self.self_attn = Attention(config, layer_idx)
                def forward(self, hidden_states, mask=None):
                    residual = hidden_states
                    hidden_states = self.input_layernorm(hidden_states)
                    hidden_states, _ = self.self_attn(hidden_states, mask)
                    hidden_states = residual + hidden_states
                    return hidden_states
            class Classifier(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.layers = nn.ModuleList([DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
                    self.classifier = nn.Linear(config.hidden_size, config.num_labels)
                def forward(self, hidden_states, mask=None):
                    for i, layer in enumerate(self.layers):
                        hidden_states = layer(hidden_states, mask)
                    return self.classifier(hidden_states[:, -1])
            """,
            at=("21:16-21:53",),
            fixed="""
            from torch import nn
            class DecoderLayer(nn.Module):
                def __init__(self, config, layer_idx):
                    super().__init__()
                    self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
                    self.self_attn = Attention(config, layer_idx)
                def forward(self, hidden_states, mask=None):
                    residual = hidden_states
                    hidden_states = self.input_layernorm(hidden_states)
                    hidden_states, _ = self.self_attn(hidden_states, mask)
                    hidden_states = residual + hidden_states
                    return hidden_states
            class Classifier(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.layers = nn.ModuleList([DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
                    # Final norm: a pre-norm stack leaves the residual stream un-normalized (Xiong et al., 2020, arXiv:2002.04745; Radford et al., 2019)
                    self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
                    self.classifier = nn.Linear(config.hidden_size, config.num_labels)
                def forward(self, hidden_states, mask=None):
                    for i, layer in enumerate(self.layers):
                        hidden_states = layer(hidden_states, mask)
                    # Final norm: a pre-norm stack leaves the residual stream un-normalized (Xiong et al., 2020, arXiv:2002.04745; Radford et al., 2019)
                    hidden_states = self.norm(hidden_states)
                    return self.classifier(hidden_states[:, -1])
            """,
        ),
        # A final norm is built but never applied: the fix only adds the call.
        Invalid(
            """
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.norm = nn.LayerNorm(d)
                    self.ff = FeedForward(d)
                def forward(self, x):
                    return x + self.ff(self.norm(x))
            class Model(nn.Module):
                def __init__(self, d, depth, vocab):
                    super().__init__()
                    self.blocks = nn.Sequential(*[Block(d) for _ in range(depth)])
                    self.ln_f = nn.LayerNorm(d)
                    self.head = nn.Linear(d, vocab)
                def forward(self, x):
                    x = self.blocks(x)
                    return self.head(x)
            """,
            at=("17:16-17:28",),
            fixed="""
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.norm = nn.LayerNorm(d)
                    self.ff = FeedForward(d)
                def forward(self, x):
                    return x + self.ff(self.norm(x))
            class Model(nn.Module):
                def __init__(self, d, depth, vocab):
                    super().__init__()
                    self.blocks = nn.Sequential(*[Block(d) for _ in range(depth)])
                    self.ln_f = nn.LayerNorm(d)
                    self.head = nn.Linear(d, vocab)
                def forward(self, x):
                    x = self.blocks(x)
                    # Final norm: a pre-norm stack leaves the residual stream un-normalized (Xiong et al., 2020, arXiv:2002.04745; Radford et al., 2019)
                    x = self.ln_f(x)
                    return self.head(x)
            """,
        ),
    ),
)
