"""`module.forward(x)` on an `nn.Module`: the call skips every hook registered on the module.

## Problem
A module the file built is run as `model.forward(x)` (or `self.encoder.forward(x)`) instead of
`model(x)`. `nn.Module.__call__` is what runs forward pre-hooks, forward hooks and backward hooks
around `forward`; calling `forward` directly runs none of them. Many things rely on those hooks:
FSDP2's `fully_shard` gathers a layer's sharded parameters in a forward pre-hook, activation
checkpointing wrappers, quantization observers, pruning masks, LoRA/adapter injectors, profilers,
`torch.compile`d modules, and any debugging hook the user adds later.

## Diagnosis
The rule fires on a call `R.forward(...)` when `R` is known to hold a module instance: a name whose
every binding in scope (or at module level) is a module construction (`nn.Linear(...)`,
`nn.Sequential(...)`, an `nn.Module` subclass defined in the file, `AutoModel*.from_pretrained(...)`,
`timm.create_model(...)`), possibly wrapped (`torch.compile`, `DDP`, `FSDP`, `.to(device)`,
`.cuda()`, `.eval()`), or a parameter annotated with such a class; or `self.<name>` where the class's
own methods assign `self.<name>` a module construction. It does not flag `super().forward(...)`,
unbound calls such as `nn.LayerNorm.forward(self, x)`, `self.forward(...)` (a class re-dispatching
to its own forward is a deliberate choice of its author), references that are not calls
(`checkpoint(self.block.forward, x)`), or receivers it cannot type (function parameters without an
annotation, loop variables, `self.module` set from an argument: the common shape of wrappers that
bypass hooks on purpose).

## Hypothesis
Skipping `__call__` is usually an accident: the result is identical today, so nothing fails, and the
difference appears only once something registers a hook. Then the effect ranges from silent (a
profiler or a feature-extraction hook that never fires, an observer that never calibrates) to wrong
(FSDP-sharded parameters that were never gathered, a LoRA adapter or pruning mask that is not
applied at this call site only).

## Literature
- Zhao et al. (2023) describe PyTorch FSDP, whose parameter all-gather and resharding are tied to
  each wrapped module's forward pass; the per-module API (`fully_shard`) attaches that work to
  forward hooks, so a direct `forward` call on a sharded submodule skips it.
- Li et al. (2020) describe PyTorch DDP, which prepares gradient synchronisation when the wrapped
  module is called and hooks into autograd to overlap all-reduce with the backward pass; calling
  around the wrapper's `__call__` defeats that bookkeeping.
- PyTorch's `nn.Module.forward` documentation says to call the module instance rather than `forward`,
  because only the former runs the registered hooks.

## Recommendation
Call the module: `model(x)` instead of `model.forward(x)`. If a hook must be skipped on purpose,
say so in a comment and suppress the rule on that line.

## Expected outcome
Identical outputs today; hooks that exist now or are added later (FSDP, checkpointing, adapters,
profiling, feature extraction) run at this call site like everywhere else.

## Implementation
Before:

    logits = self.lm_head.forward(hidden_states)

After:

    logits = self.lm_head(hidden_states)

## Caveats
The fix is unsafe in the project's sense: if hooks are registered, they now run, which can change
behaviour (that is the point, but a hook that was deliberately skipped will no longer be). Code
that intentionally bypasses hooks (re-entrancy guards in wrappers, tracing helpers, export
adapters) usually calls `forward` on something this rule cannot type, and then stays silent.
Typing is file-local and by construction: a module returned from an unknown factory is not
recognised.

## Next steps
Register a forward hook that counts calls on the module and check that it fires once per step;
under FSDP2, run one step with `fully_shard` applied and confirm that no unsharded-parameter error
appears.
"""

from __future__ import annotations

import ast
import re
from functools import cached_property

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.modules import dotted_name
from llmarch_lsp.findings import Confidence, Evidence, Severity, Span
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace

FIX_TITLE = "Call the module instead of .forward()"

# torch.nn classes that are not modules (or not callables with hooks).
_NOT_MODULES = {"Parameter", "ParameterList", "ParameterDict", "Buffer", "UninitializedParameter", "UninitializedBuffer"}
_WRAPPERS = {
    "torch.compile", "torch.nn.parallel.DistributedDataParallel", "torch.nn.DataParallel",
    "torch.nn.parallel.DataParallel", "torch.distributed.fsdp.FullyShardedDataParallel",
    "torch.distributed.fsdp.fully_shard", "torch.distributed.fsdp.FSDP", "torch.nn.DistributedDataParallel",
}  # fmt: skip
_KEEPS_MODULE = {"to", "cuda", "cpu", "eval", "train", "half", "float", "double", "bfloat16", "requires_grad_", "to_empty"}
_PRETRAINED_MODEL = re.compile(r"Model|For[A-Z]")
_PRETRAINED_PACKAGES = ("transformers.", "diffusers.", "peft.", "sentence_transformers.")
_FACTORIES = {"timm.create_model", "timm.models.create_model", "torch.hub.load"}
_MAX_DEPTH = 10


def check(document: Document, context: RuleContext, rule: Rule):
    if ".forward(" not in document.source:
        return
    calls = [
        call
        for call in document.index.calls
        if isinstance(call.func, ast.Attribute) and call.func.attr == "forward"
    ]
    if not calls:
        return
    typer = _ModuleTyper(document)
    for call in calls:
        receiver = call.func.value
        if not isinstance(receiver, (ast.Name, ast.Attribute)) or dotted_name(receiver) in (None, "self"):
            continue
        if not typer.is_module(receiver, call):
            continue
        name = document.segment(receiver)
        yield rule.finding(
            document,
            call,
            f"`{name}.forward(...)` bypasses `nn.Module.__call__`, so no forward pre-hooks, forward hooks or "
            f"backward hooks registered on `{name}` run here (FSDP2 parameter gathering, checkpointing and "
            f"adapter wrappers, profilers, feature extractors). Call `{name}(...)`",
            fix=_fix(document, call),
        )


class _ModuleTyper:
    """Whether an expression is known to hold an `nn.Module` instance, from how it was built."""

    def __init__(self, document: Document):
        self.document = document
        self.index = document.index

    def is_module(self, receiver: ast.AST, use: ast.AST) -> bool:
        if isinstance(receiver, ast.Attribute):
            return self._is_module_attribute(receiver, use)
        if isinstance(receiver, ast.Name):
            return self._is_module_name(receiver.id, use, 0)
        return False

    def _is_module_attribute(self, receiver: ast.Attribute, use: ast.AST) -> bool:
        """`self.<name>` with a module construction assigned in the class's own methods."""
        if not (isinstance(receiver.value, ast.Name) and receiver.value.id == "self"):
            return False
        owner = self.index.enclosing(use, ast.ClassDef)
        if owner is None:
            return False
        values = [
            value
            for value in self._self_assignments(owner).get(receiver.attr, ())
        ]
        return bool(values) and all(self._builds_module(value, use, 1) for value in values)

    def _self_assignments(self, owner: ast.ClassDef) -> dict[str, list[ast.AST]]:
        """`self.<name> = value` in the class's methods, by name."""
        return self._self_assignments_by_class.get(owner, {})

    @cached_property
    def _self_assignments_by_class(self) -> dict[ast.ClassDef, dict[str, list[ast.AST]]]:
        found: dict[ast.ClassDef, dict[str, list[ast.AST]]] = {}
        for statement in (*self.index.by_type.get(ast.Assign, ()), *self.index.by_type.get(ast.AnnAssign, ())):
            if statement.value is None:
                continue
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                    owner = self.index.enclosing(statement, ast.ClassDef)
                    if owner is not None:
                        found.setdefault(owner, {}).setdefault(target.attr, []).append(statement.value)
        return found

    @cached_property
    def _stores(self) -> dict[str, list[ast.Name]]:
        """Every name binding (`x = ...`, `for x in`, `with ... as x`), by name."""
        found: dict[str, list[ast.Name]] = {}
        for node in self.index.by_type.get(ast.Name, ()):
            if isinstance(node.ctx, ast.Store):
                found.setdefault(node.id, []).append(node)
        return found

    def _is_module_name(self, name: str, use: ast.AST, depth: int) -> bool:
        if depth > _MAX_DEPTH:
            return False
        scope = self.index.enclosing_function(use)
        if scope is not None and not isinstance(scope, ast.Lambda):
            arguments = scope.args
            for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
                if argument.arg == name:
                    return argument.annotation is not None and self._names_module_class(argument.annotation)
        # In the use's own scope only bindings finished before the use count (`m = torch.compile(m)`).
        position = (use.lineno, use.col_offset)
        values = [value for value, end in self._bindings(name, scope) if end <= position]
        if not values and scope is not None:
            values = [value for value, _ in self._bindings(name, None)]
        return bool(values) and all(value is not None and self._builds_module(value, use, depth + 1) for value in values)

    def _bindings(self, name: str, scope) -> list[tuple[ast.AST | None, tuple[int, int]]]:
        """(value, where the binding statement ends) for `name` in `scope` (None: module level); the
        value is None for bindings we cannot read."""
        values: list[tuple[ast.AST | None, tuple[int, int]]] = []
        for node in self._stores.get(name, ()):
            if self.index.enclosing_function(node) is not scope:
                continue
            parent = self.index.parent(node)
            statement = self.index.enclosing_statement(node)
            end = (statement.end_lineno, statement.end_col_offset)
            if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is not None and (
                node in getattr(parent, "targets", ()) or getattr(parent, "target", None) is node
            ):
                values.append((parent.value, end))
            else:
                values.append((None, end))  # a loop variable, a tuple unpacking, a with-target...
        return values

    def _builds_module(self, value: ast.AST, use: ast.AST, depth: int) -> bool:
        if depth > _MAX_DEPTH:
            return False
        if isinstance(value, ast.Name):
            return self._is_module_name(value.id, value, depth + 1)
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        if isinstance(func, ast.Attribute) and func.attr in _KEEPS_MODULE:
            return self._builds_module(func.value, use, depth + 1)
        qualified = self.document.qualified_name(func)
        if qualified in _WRAPPERS:
            return bool(value.args) and self._builds_module(value.args[0], use, depth + 1)
        if qualified in _FACTORIES:
            return True
        if isinstance(func, ast.Attribute) and func.attr in ("from_pretrained", "from_config"):
            owner = self.document.qualified_name(func.value) or ""
            return owner.startswith(_PRETRAINED_PACKAGES) and bool(_PRETRAINED_MODEL.search(owner.rsplit(".", 1)[-1]))
        return self._names_module_class(func)

    def _names_module_class(self, node: ast.AST) -> bool:
        """A torch.nn module class, or an nn.Module subclass defined in this file."""
        qualified = self.document.qualified_name(node)
        if qualified is not None:
            if qualified.startswith("torch.nn.") and qualified.count(".") == 2:
                short = qualified.rsplit(".", 1)[-1]
                return short[:1].isupper() and short not in _NOT_MODULES
            return False
        if isinstance(node, ast.Name):
            module = self.document.modules.by_name.get(node.id)
            return module is not None and _subclasses_torch_module(self.document, module.node)
        return False


def _subclasses_torch_module(document: Document, class_node: ast.ClassDef, depth: int = 0) -> bool:
    """The class derives from `nn.Module` (directly or through classes defined in this file)."""
    if depth > _MAX_DEPTH:
        return False
    for base in class_node.bases:
        qualified = document.qualified_name(base)
        if qualified is not None and qualified.startswith("torch.nn."):
            return True
        if isinstance(base, ast.Name):
            parent = document.modules.by_name.get(base.id)
            if parent is not None and _subclasses_torch_module(document, parent.node, depth + 1):
                return True
    return False


def _fix(document: Document, call: ast.Call) -> Fix | None:
    receiver = document.span_of(call.func.value)
    whole = document.span_of(call.func)
    attribute = Span(receiver.end_line, receiver.end_column, whole.end_line, whole.end_column)
    if document.text_in(attribute) != ".forward":
        return None  # a line break or a comment between the receiver and `.forward`
    return Fix(title=FIX_TITLE, applicability=UNSAFE, replacements=(Replace(attribute, ""),))


RULE = Rule(
    code="LLM310",
    name="forward-called-directly",
    summary="module.forward(...) called directly on an nn.Module, bypassing its hooks",
    severity=Severity.WARNING,
    confidence=Confidence.HIGH,
    evidence=Evidence.ESTABLISHED,
    citation_keys=("zhao2023fsdp", "li2020ddp"),
    check=check,
    docs=__doc__,
    tags=("pytorch", "hooks", "distributed"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # calling the module runs its hooks
        """
        import torch.nn as nn
        model = nn.Linear(8, 8)
        y = model(x)
        """,
        # super().forward and unbound calls are how subclasses extend a parent's forward
        """
        import torch.nn as nn
        class ScaledNorm(nn.LayerNorm):
            def forward(self, x):
                return super().forward(x) * 2 + nn.LayerNorm.forward(self, x)
        """,
        # a wrapper re-dispatching to a module it was handed: untyped, deliberate
        """
        import torch.nn as nn
        class NoHooks(nn.Module):
            def __init__(self, module):
                super().__init__()
                self.module = module
            def forward(self, *args):
                return self.module.forward(*args)
        """,
        # passing the bound method is not a call (activation checkpointing)
        """
        import torch.nn as nn
        from torch.utils.checkpoint import checkpoint
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.mlp = nn.Linear(8, 8)
            def forward(self, x):
                return checkpoint(self.mlp.forward, x, use_reentrant=False)
        """,
        # a model of unknown type, passed in
        """
        def run(model, batch):
            return model.forward(**batch)
        """,
        # self.forward: the class chooses to re-dispatch to its own forward
        """
        import torch.nn as nn
        class Model(nn.Module):
            def forward(self, x):
                return x
            def predict(self, x):
                return self.forward(x).argmax(-1)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.ln = nn.LayerNorm(dim)
                    self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
                def forward(self, x):
                    return x + self.mlp.forward(self.ln(x))  # (B, T, C)
            """,
            at=("8:20-8:48",),
            fixed="""
            import torch.nn as nn
            class Block(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.ln = nn.LayerNorm(dim)
                    self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
                def forward(self, x):
                    return x + self.mlp(self.ln(x))  # (B, T, C)
            """,
        ),
        Invalid(
            """
            import torch
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained("gpt2").to("cuda")
            model = torch.compile(model)
            out = model.forward(input_ids=ids, labels=ids)
            """,
            at=("5:7-5:47",),
            fixed="""
            import torch
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained("gpt2").to("cuda")
            model = torch.compile(model)
            out = model(input_ids=ids, labels=ids)
            """,
        ),
        Invalid(
            """
            import torch.nn as nn

            class TinyNet(nn.Module):
                def forward(self, x):
                    return x

            def main():
                net = TinyNet()
                y = net.forward(x)
            """,
            at=("9:9-9:23",),
            fixed="""
            import torch.nn as nn

            class TinyNet(nn.Module):
                def forward(self, x):
                    return x

            def main():
                net = TinyNet()
                y = net(x)
            """,
        ),
    ),
)
