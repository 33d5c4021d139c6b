"""AdamW over `model.parameters()` with weight decay on: norm gains and biases are decayed too.

## Problem
The optimizer applies decoupled weight decay (AdamW, 8-bit/paged AdamW, Lion, or `Adam` with
`decoupled_weight_decay=True`) to `model.parameters()` as one group. Every LayerNorm/RMSNorm gain,
every bias and every other 1-D parameter is then shrunk towards zero each step, along with the
weight matrices that decay is meant for. Note that `torch.optim.AdamW` decays by default
(`weight_decay=0.01`), so `AdamW(model.parameters(), lr=...)` with no `weight_decay` argument is
this pattern too.

## Diagnosis
The rule fires on a decoupled-decay optimizer whose parameter argument is `X.parameters()` (or
`list(X.parameters())`) and whose weight decay is known to be positive: a positive literal, a name
bound only to positive literals, or the optimizer's own non-zero default (`torch.optim.AdamW`,
bitsandbytes AdamW: 0.01). It is silent for parameter groups in any form, for anything other than a
direct `.parameters()` call (`filter(...)`, a helper's result), when the value is zero or unknown,
and whenever the file shows it already thinks about which parameters decay or train: a `no_decay`
list, timm's `param_groups_weight_decay` / `no_weight_decay`, Hugging Face's
`get_parameter_names`, `add_param_group`, frozen parameters (`requires_grad_(False)`,
`requires_grad = False`) or a PEFT/LoRA setup (whose norms are frozen and never decayed). A linear
probe or head (`probe.parameters()`, an `nn.Linear`) is skipped: it has no norms.

## Hypothesis
A norm gain multiplies a normalised activation; decay pulls it towards 0, not towards its
initialisation of 1, so it fights the function the layer learned rather than limiting capacity, and
with pre-norm residual streams it shrinks every sublayer's input scale. Biases and gains are a tiny
fraction of the parameters and add little capacity, so decaying them buys almost no regularisation.
The weights whose norm actually governs capacity and the effective learning rate are the matrices.

## Literature
- Loshchilov and Hutter (2019) define the decoupled weight decay that AdamW applies; the paper
  treats decay as a regulariser of the weights and does not study which parameters should get it.
- Ba et al. (2016) introduce LayerNorm's per-feature gain and bias, and Zhang and Sennrich (2019)
  RMSNorm's gain: parameters that rescale normalised features and start at 1 and 0.
- Excluding 1-D parameters from decay is a code convention rather than a published result: the
  reference implementations behind GPT-2-style training (minGPT, nanoGPT), the Hugging Face example
  scripts (`no_decay = ["bias", "LayerNorm.weight"]`) and timm (`param_groups_weight_decay`) all
  do it, but no paper in this project's bibliography ablates the choice.

## Recommendation
Split the parameters into two groups: tensors with two or more dimensions (linear and embedding
weights) get the weight decay, 1-D tensors (norm gains, biases) get `weight_decay=0.0`. minGPT also
exempts embedding weights; nanoGPT decays them. Either is defensible; the 1-D exemption is the part
everyone agrees on.

## Expected outcome
Norm gains that stay near their learned scale instead of drifting down over a long run, and at
most a small change in validation loss; any difference should grow with the decay strength (0.1 is
common for LLM pretraining) and the number of steps. No change in speed or memory.

## Implementation
Before:

    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)

After:

    # Decoupled weight decay on weight matrices only; norm gains and biases (1-D) are not decayed (Loshchilov and Hutter, 2019, arXiv:1711.05101)
    decay_params = [p for p in model.parameters() if p.dim() >= 2]
    nodecay_params = [p for p in model.parameters() if p.dim() < 2]
    optim_groups = [{"params": decay_params}, {"params": nodecay_params, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(optim_groups, lr=6e-4, weight_decay=0.1)

The decay group inherits the optimizer's `weight_decay` (explicit or default), so the value is not
written twice. Every parameter lands in exactly one group, frozen ones included, so later
unfreezing still works. The fix is offered when the receiver of `.parameters()` is a plain name or
attribute, the statement starts its own line, and the three names are free in the file.

## Caveats
Evidence is rated contested: the practice is near-universal in open LLM and ViT code, but
published evidence that it matters is thin, and some recipes decay everything with good results.
The fix is unsafe because it changes the optimisation (those parameters are no longer shrunk); it
also changes which group a parameter sits in, so a checkpointed optimizer state from before the fix
will not load. The split looks only at `p.dim()`, so 2-D embedding and positional tables stay
decayed, as in nanoGPT. Models whose only 1-D parameters are biases see little effect.

## Next steps
Log the mean LayerNorm/RMSNorm gain per layer over training with and without the split; with decay
on gains you will typically see them drift below their equilibrium. If you also want embeddings
undecayed (minGPT style), filter `nn.Embedding` weights by module type into the second group.
"""

from __future__ import annotations

import ast
import re

from llmarch_lsp.analyzers.rule import Invalid, Rule, RuleContext
from llmarch_lsp.document import Document
from llmarch_lsp.facts.modules import dotted_name
from llmarch_lsp.facts.training import OptimizerSite
from llmarch_lsp.facts.values import known_number
from llmarch_lsp.findings import Confidence, Evidence, Severity, Span
from llmarch_lsp.fixes.builders import cited_comment
from llmarch_lsp.fixes.model import UNSAFE, Fix, Replace

FIX_TITLE = "Exempt norm gains and biases from weight decay (two parameter groups)"

_FIX_REASON = "Decoupled weight decay on weight matrices only; norm gains and biases (1-D) are not decayed"
_GROUP_NAMES = ("decay_params", "nodecay_params", "optim_groups")

# Decoupled-decay optimizers: class name -> (position of weight_decay, default when absent).
# A position of None means keyword-only for our purposes; a default of None means "unknown".
_ADAMW_DEFAULTS = {"torch.optim.": 0.01, "bitsandbytes.": 0.01, "timm.optim.": 0.01, "transformers.": 0.0}
_ADAMW_NAMES = {"AdamW", "AdamW8bit", "AdamW32bit", "PagedAdamW", "PagedAdamW8bit", "PagedAdamW32bit"}
_LION_NAMES = {"Lion", "Lion8bit", "PagedLion", "PagedLion8bit"}
_OPTIONALLY_DECOUPLED = {"torch.optim.Adam", "torch.optim.NAdam", "torch.optim.RAdam"}

# Signs that the author already chose which parameters decay or train (matched on the lowercased
# source: plain substring tests, which cost next to nothing on every keystroke).
_ALREADY_SPLIT = (
    "no_decay", "nodecay", "param_groups_weight_decay", "get_parameter_names", "no_weight_decay",
    "add_param_group", "peft", "lora",
)  # fmt: skip
_FROZEN = re.compile(r"requires_grad_\(\s*False|requires_grad\s*=\s*False")
_PROBE_NAME = re.compile(r"probe|classifier|^head$|^fc$|^linear", re.IGNORECASE)
_SINGLE_LAYERS = {"torch.nn.Linear", "torch.nn.Conv1d", "torch.nn.Conv2d", "torch.nn.Conv3d", "torch.nn.Embedding"}


def check(document: Document, context: RuleContext, rule: Rule):
    source = document.source
    if ".parameters()" not in source or not document.imports.imports_module("torch"):
        return
    optimizers = document.training.optimizers
    if not optimizers or _already_split(source):
        return
    for optimizer in optimizers:
        decay = _weight_decay(document, optimizer)
        if decay is None:
            continue
        parameters = _all_parameters(optimizer.call)
        if parameters is None:
            continue
        argument, owner = parameters
        if _is_single_layer(document, owner):
            continue
        yield rule.finding(
            document,
            optimizer.call,
            _message(document, optimizer, decay, owner),
            fix=_fix(document, optimizer.call, argument, owner),
        )


def _already_split(source: str) -> bool:
    lowered = source.lower()
    if any(marker in lowered for marker in _ALREADY_SPLIT):
        return True
    return "requires_grad" in source and _FROZEN.search(source) is not None


def _weight_decay(document: Document, optimizer: OptimizerSite) -> ast.AST | str | None:
    """The positive weight decay the optimizer applies (its node, or the default as text), else None."""
    call, qualified, name = optimizer.call, optimizer.qualified, optimizer.class_name
    if any(keyword.arg is None for keyword in call.keywords):
        return None  # `**kwargs` may set anything
    keywords = {keyword.arg: keyword.value for keyword in call.keywords}
    position: int | None = 4
    default: float | None = None
    if name in _ADAMW_NAMES:
        default = next((value for prefix, value in _ADAMW_DEFAULTS.items() if qualified.startswith(prefix)), None)
        if qualified.startswith("apex.") and _literal_false(keywords.get("adam_w_mode")):
            return None
    elif name in _LION_NAMES:
        position = None
    elif qualified in _OPTIONALLY_DECOUPLED or name in ("FusedAdam", "AdamWScheduleFree"):
        if qualified in _OPTIONALLY_DECOUPLED and not _literal_true(keywords.get("decoupled_weight_decay")):
            return None
        if name == "FusedAdam" and _literal_false(keywords.get("adam_w_mode")):
            return None
        position = 4 if qualified in _OPTIONALLY_DECOUPLED else None
    else:
        return None
    decay = keywords.get("weight_decay")
    if decay is None and position is not None and len(call.args) > position:
        if any(isinstance(argument, ast.Starred) for argument in call.args[: position + 1]):
            return None
        decay = call.args[position]
    if decay is None:
        return f"{default:g}" if default else None
    value = known_number(document, decay)
    return decay if value is not None and value > 0 else None


def _literal_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _literal_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _all_parameters(call: ast.Call) -> tuple[ast.expr, ast.expr] | None:
    """(the argument, the module) when the optimizer gets `X.parameters()` or `list(X.parameters())`."""
    argument = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "params"), None)
    inner = argument
    if (
        isinstance(inner, ast.Call)
        and isinstance(inner.func, ast.Name)
        and inner.func.id == "list"
        and len(inner.args) == 1
        and not inner.keywords
    ):
        inner = inner.args[0]
    if not (
        isinstance(inner, ast.Call)
        and isinstance(inner.func, ast.Attribute)
        and inner.func.attr == "parameters"
        and not inner.args
        and not inner.keywords
    ):
        return None
    return argument, inner.func.value


def _is_single_layer(document: Document, owner: ast.expr) -> bool:
    """A linear probe or a lone layer: nothing norm-like to protect."""
    name = dotted_name(owner)
    if name is None:
        return False
    if _PROBE_NAME.search(name.rsplit(".", 1)[-1]):
        return True
    return any(
        isinstance(site.value, ast.Call) and document.qualified_name(site.value.func) in _SINGLE_LAYERS
        for site in document.training.assignments_to(name)
    )


def _message(document: Document, optimizer: OptimizerSite, decay: ast.AST | str, owner: ast.expr) -> str:
    if isinstance(decay, str):
        how = f"`{optimizer.class_name}` decays by default (`weight_decay={decay}`)"
    else:
        written = document.segment(decay)
        how = f"`{optimizer.class_name}` with `weight_decay={written if len(written) <= 30 else '...'}`"
    module = document.segment(owner)
    return (
        f"{how} is applied to every tensor in `{module if len(module) <= 30 else 'the model'}.parameters()`: "
        "LayerNorm/RMSNorm gains and biases are pulled towards zero each step along with the weight "
        "matrices. GPT-style recipes give 1-D parameters `weight_decay=0.0` in a second parameter group"
    )


def _fix(document: Document, call: ast.Call, argument: ast.expr, owner: ast.expr) -> Fix | None:
    index = document.index
    statement = index.enclosing_statement(call)
    if not isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Return, ast.Expr)):
        return None
    if not _starts_its_line(document, statement) or isinstance(index.parent(statement), ast.ClassDef):
        return None
    if dotted_name(owner) is None:
        return None
    if any(name in document.source and re.search(rf"\b{name}\b", document.source) for name in _GROUP_NAMES):
        return None
    module = document.segment(owner)
    quote = _quote_style(document)
    indentation = document.indentation_of(statement.lineno)
    comment = cited_comment(statement.lineno, _FIX_REASON, "loshchilov2019adamw").text
    params, weight_decay = f"{quote}params{quote}", f"{quote}weight_decay{quote}"
    lines = (
        f"# {comment}",
        f"decay_params = [p for p in {module}.parameters() if p.dim() >= 2]",
        f"nodecay_params = [p for p in {module}.parameters() if p.dim() < 2]",
        f"optim_groups = [{{{params}: decay_params}}, {{{params}: nodecay_params, {weight_decay}: 0.0}}]",
    )
    inserted = "".join(f"{indentation}{line}\n" for line in lines)
    at = Span(statement.lineno, 0, statement.lineno, 0)
    return Fix(
        title=FIX_TITLE,
        applicability=UNSAFE,
        replacements=(Replace(at, inserted), Replace(document.span_of(argument), "optim_groups")),
    )


def _starts_its_line(document: Document, statement: ast.stmt) -> bool:
    line = document.line_text(statement.lineno)
    return len(line) - len(line.lstrip()) == statement.col_offset


def _quote_style(document: Document) -> str:
    """The quote the file mostly uses for its strings (double when it has none)."""
    single = double = 0
    for node in document.index.by_type.get(ast.Constant, ())[:200]:
        if not isinstance(node.value, str):
            continue
        text = document.line_text(node.lineno)
        column = document.char_column(node.lineno, node.col_offset)
        opening = text[column : column + 1].lower()
        while opening in ("r", "b", "u", "f"):
            column += 1
            opening = text[column : column + 1]
        if opening == "'":
            single += 1
        elif opening == '"':
            double += 1
    return "'" if single > double else '"'


RULE = Rule(
    code="LLM304",
    name="weight-decay-on-norms-and-biases",
    summary="Decoupled weight decay over model.parameters() also decays norm gains and biases",
    severity=Severity.INFO,
    confidence=Confidence.MEDIUM,
    evidence=Evidence.CONTESTED,
    citation_keys=("loshchilov2019adamw", "ba2016layernorm", "zhang2019rmsnorm"),
    check=check,
    docs=__doc__,
    tags=("optimization", "regularization", "normalization"),
    fix_title=FIX_TITLE,
    fix_safety=UNSAFE,
    valid=(
        # nanoGPT-style configure_optimizers: 2-D tensors decay, 1-D tensors do not
        """
        import torch
        import torch.nn as nn
        class GPT(nn.Module):
            def configure_optimizers(self, weight_decay, learning_rate, betas):
                param_dict = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
                decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
                nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
                optim_groups = [
                    {"params": decay_params, "weight_decay": weight_decay},
                    {"params": nodecay_params, "weight_decay": 0.0},
                ]
                return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas)
        """,
        # Hugging Face example scripts: a name-based no_decay list
        """
        import torch
        no_decay = ["bias", "LayerNorm.weight"]
        groups = [
            {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)], "weight_decay": 0.01},
            {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=5e-5)
        """,
        # timm's helper builds the groups
        """
        import torch
        from timm.optim import param_groups_weight_decay
        optimizer = torch.optim.AdamW(param_groups_weight_decay(model, 0.05), lr=1e-3)
        """,
        # weight decay switched off explicitly
        """
        import torch
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)
        """,
        # plain Adam has no decoupled decay (L2 inside Adam is LLM303's business)
        """
        import torch
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
        """,
        # a linear probe on frozen features: no norms to protect
        """
        import torch
        probe = torch.nn.Linear(768, 10)
        optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=0.05)
        """,
        # LoRA: the base model (and its norms) is frozen, so nothing 1-D is trained
        """
        import torch
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(base, LoraConfig(r=8))
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
        """,
        # the value comes from the command line
        """
        import torch
        def build(model, args):
            return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        """,
    ),
    invalid=(
        Invalid(
            """
            import torch
            optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)  # (B, T)
            """,
            at=("2:13-2:77",),
            fixed="""
            import torch
            # Decoupled weight decay on weight matrices only; norm gains and biases (1-D) are not decayed (Loshchilov and Hutter, 2019, arXiv:1711.05101)
            decay_params = [p for p in model.parameters() if p.dim() >= 2]
            nodecay_params = [p for p in model.parameters() if p.dim() < 2]
            optim_groups = [{"params": decay_params}, {"params": nodecay_params, "weight_decay": 0.0}]
            optimizer = torch.optim.AdamW(optim_groups, lr=6e-4, weight_decay=0.1)  # (B, T)
            """,
        ),
        # AdamW's default weight decay is 0.01: no argument still decays; a Lightning-style method
        Invalid(
            """
            from torch.optim import AdamW

            class LitModel:
                def configure_optimizers(self):
                    return AdamW(self.parameters(), lr=3e-4)
            """,
            at=("5:16-5:49",),
            fixed="""
            from torch.optim import AdamW

            class LitModel:
                def configure_optimizers(self):
                    # Decoupled weight decay on weight matrices only; norm gains and biases (1-D) are not decayed (Loshchilov and Hutter, 2019, arXiv:1711.05101)
                    decay_params = [p for p in self.parameters() if p.dim() >= 2]
                    nodecay_params = [p for p in self.parameters() if p.dim() < 2]
                    optim_groups = [{"params": decay_params}, {"params": nodecay_params, "weight_decay": 0.0}]
                    return AdamW(optim_groups, lr=3e-4)
            """,
        ),
        # single-quoted file, the value through a module-level name
        Invalid(
            """
            import bitsandbytes as bnb
            import torch
            wd = 0.1
            model = build('gpt2')
            optimizer = bnb.optim.AdamW8bit(list(model.parameters()), lr=1e-4, weight_decay=wd)
            """,
            at=("5:13-5:84",),
            fixed="""
            import bitsandbytes as bnb
            import torch
            wd = 0.1
            model = build('gpt2')
            # Decoupled weight decay on weight matrices only; norm gains and biases (1-D) are not decayed (Loshchilov and Hutter, 2019, arXiv:1711.05101)
            decay_params = [p for p in model.parameters() if p.dim() >= 2]
            nodecay_params = [p for p in model.parameters() if p.dim() < 2]
            optim_groups = [{'params': decay_params}, {'params': nodecay_params, 'weight_decay': 0.0}]
            optimizer = bnb.optim.AdamW8bit(optim_groups, lr=1e-4, weight_decay=wd)
            """,
        ),
    ),
)
