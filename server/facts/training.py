"""Training facts: which optimizers a file builds, where a loop steps them, what schedules their LR.

Everything starts from the shared node index (`document.index`); nothing here walks the whole tree
again. Names are tracked by their dotted text (`optimizer`, `self.optimizer`) across the file, and
flow through plain assignments, through the parameters of local functions the optimizer is passed
to, and out of local factories that return one (`model.configure_optimizers(...)`). That is
deliberately coarse: the facts answer "could this be the same object", and rules that need
certainty treat anything they cannot see (an optimizer handed to an unknown helper, a scheduler
built elsewhere) as unknowable.

Rules read them as `document.training`, computed once per document and cached.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cached_property

from llmarch_lsp.facts.imports import call_name
from llmarch_lsp.facts.index import walk
from llmarch_lsp.facts.modules import dotted_name

# ---- optimizers -----------------------------------------------------------------------------

# Class names that build an optimizer, by family. RAdam rectifies Adam's early variance itself,
# Adafactor (relative steps) and Lion (sign updates) do not share Adam's second-moment problem.
_FAMILIES = {
    "adam": {
        "Adam", "AdamW", "Adamax", "NAdam", "SparseAdam", "FusedAdam", "FusedLAMB", "Lamb", "LAMB",
        "Adam8bit", "AdamW8bit", "Adam32bit", "AdamW32bit", "PagedAdam", "PagedAdamW", "PagedAdam8bit",
        "PagedAdamW8bit", "PagedAdam32bit", "PagedAdamW32bit", "DeepSpeedCPUAdam", "FusedAdamW",
        "AdamWScheduleFree",
    },
    "radam": {"RAdam"},
    "adafactor": {"Adafactor"},
    "lion": {"Lion", "Lion8bit", "PagedLion", "PagedLion8bit"},
    "sgd": {"SGD"},
    "other": {"Adadelta", "Adagrad", "RMSprop", "Rprop", "ASGD", "LBFGS", "Adan", "Sophia", "Muon", "Shampoo"},
}
_FAMILY_OF = {name: family for family, names in _FAMILIES.items() for name in names}
_OPTIMIZER_MODULES = (
    "torch.optim.",
    "bitsandbytes.",
    "apex.optimizers.",
    "transformers.",
    "deepspeed.ops.",
    "lion_pytorch.",
    "timm.optim.",
    "torch_optimizer.",
    "schedulefree.",
)

# ---- schedulers -----------------------------------------------------------------------------

_TORCH_SCHEDULERS = "torch.optim.lr_scheduler."
# Schedules that never raise the LR from below its base value: they start at the full LR.
_DECAY_ONLY = {
    "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
    "ReduceLROnPlateau", "PolynomialLR",
}
_WARMUP_FREE_HF = {"get_constant_schedule"}
_SCHEDULER_SUFFIXES = ("LR", "Scheduler", "Plateau", "Restarts")
_OPTIMIZER_KEYWORDS = ("optimizer", "optim", "opt")

# Calls that receive an optimizer but cannot change its schedule.
_HARMLESS_CONSUMERS = {
    "step", "unscale_", "update", "zero_grad", "prepare", "save", "load", "state_dict", "load_state_dict",
    "print", "len", "isinstance", "id", "type", "repr", "str", "info", "debug", "warning", "log", "watch",
    "append", "add_param_group", "clip_grad_norm_", "backward", "setattr", "setup", "setup_optimizers",
}

_WARMUP_WORD = re.compile(r"warm_?up", re.IGNORECASE)
_TRANSFORMER_CLASS = re.compile(
    r"GPT|Transformer|Attention|Bert|BERT|Llama|LLaMA|(?<![a-z])T5|ViT|Vit(?=[A-Z]|$)|Roberta|RoBERTa|Mistral|Mixtral|Gemma|Qwen"
    r"|Falcon|Bart|BART|Whisper|Bloom|DeiT|Swin|Electra|ELECTRA|ForCausalLM|ForMaskedLM|ForSeq2SeqLM"
)
_TRANSFORMER_MODULE = re.compile(
    r"(^|\.)(transformers|flash_attn|xformers|x_transformers|peft|trl|mingpt|nanogpt)(\.|$)|gpt|llama|bert|attention",
    re.IGNORECASE,
)
# Names a transformer library also exports that say nothing about the model being trained:
# an LSTM trained on GPT-2's tokenizer is not a transformer.
_NOT_A_MODEL = re.compile(r"Tokeni[sz]er|Config$|Processor|FeatureExtractor|Collator|^get_|^set_seed$|^logging$")
_ATTENTION_ATTRIBUTE = re.compile(r"^(attn|c_attn|self_attn|attention|scaled_dot_product_attention)$|_attn$|_attention$")
_LOOKS_LIKE_SCHEDULER = re.compile(r"sched|(^|[._])lr_|_lr$", re.IGNORECASE)


@dataclass
class OptimizerSite:
    """`optimizer = torch.optim.AdamW(...)`: the construction, its family and the names it is known by."""

    call: ast.Call
    qualified: str
    family: str  # "adam", "radam", "adafactor", "lion", "sgd", "other"
    names: set[str] = field(default_factory=set)

    @property
    def class_name(self) -> str:
        return self.qualified.rsplit(".", 1)[-1]


@dataclass
class SchedulerSite:
    """A call that builds an LR schedule for an optimizer (or may: an unknown helper that receives it).

    `warms_up` is True (it does), False (it provably starts at the full LR) or None (cannot tell:
    treat as warming up).
    """

    call: ast.Call
    kind: str  # qualified or dotted callee, e.g. "torch.optim.lr_scheduler.StepLR", "build_scheduler"
    optimizer: str | None  # dotted name of the optimizer argument, when there is one
    warms_up: bool | None
    names: set[str] = field(default_factory=set)
    stage: bool = False  # one stage of a SequentialLR / ChainedScheduler, judged through the outer one

    @property
    def class_name(self) -> str:
        return self.kind.rsplit(".", 1)[-1]


@dataclass
class StepSite:
    """`optimizer.step()` or `scaler.step(optimizer)`; `loop` is the For/While that repeats it, if any."""

    call: ast.Call
    optimizer: str  # dotted name of the optimizer stepped
    loop: ast.AST | None


class TrainingFacts:
    def __init__(self, document):
        self._document = document
        self._index = document.index

    @property
    def _calls_by_name(self) -> dict[str, list[ast.Call]]:
        """Every call grouped by the last part of its callee (`step`, `AdamW`, `train_step`)."""
        return self._index.calls_by_name

    @cached_property
    def _functions(self) -> dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
        functions: dict[str, list] = {}
        by_type = self._index.by_type
        for function in (*by_type.get(ast.FunctionDef, ()), *by_type.get(ast.AsyncFunctionDef, ())):
            functions.setdefault(function.name, []).append(function)
        return functions

    def assignments_to(self, name: str) -> list[ast.Assign]:
        """`name = ...` statements (plain or dotted target, single or chained)."""
        found = []
        for node, _text in self._uses_of({name}):
            parent = self._index.parents.get(node)
            if isinstance(parent, ast.Assign) and node in parent.targets:
                found.append(parent)
        return found

    def _uses_of(self, names: set[str]):
        """(node, dotted text) for every expression in the file spelled as one of `names`."""
        parents = self._index.parents
        names_by_id = self._index.names_by_id
        roots = {name.split(".", 1)[0] for name in names}
        for node in (node for root in roots for node in names_by_id.get(root, ())):
            text = node.id
            current: ast.AST = node
            while True:
                if text in names:
                    yield current, text
                parent = parents.get(current)
                if not (isinstance(parent, ast.Attribute) and parent.value is current):
                    break
                current, text = parent, f"{text}.{parent.attr}"

    # ---- optimizers -------------------------------------------------------------------------
    @cached_property
    def optimizers(self) -> list[OptimizerSite]:
        found = []
        qualified_name = self._document.qualified_name
        calls_by_name = self._calls_by_name
        for name in _FAMILY_OF.keys() & calls_by_name.keys():
            for call in calls_by_name[name]:
                qualified = qualified_name(call.func)
                if qualified is None or not qualified.startswith(_OPTIMIZER_MODULES):
                    continue
                if qualified.startswith("transformers.") and name not in ("AdamW", "Adafactor"):
                    continue
                found.append(OptimizerSite(call, qualified, _FAMILY_OF[name], set(_bound_names(self._index, call))))
        found.sort(key=lambda site: (site.call.lineno, site.call.col_offset))
        if found:
            self._follow_names(found)
        return found

    def _follow_names(self, optimizers: list[OptimizerSite]) -> None:
        """Grow each optimizer's names through assignments, local factories and local calls."""
        index = self._index
        functions = self._functions
        for optimizer in optimizers:
            # A local factory returns the optimizer (directly or by name): `x = model.configure_optimizers()`.
            function = index.enclosing_function(optimizer.call)
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                isinstance(index.parent(optimizer.call), ast.Return)
                or any(
                    isinstance(node, ast.Return) and node.value is not None and dotted_name(node.value) in optimizer.names
                    for node in walk(function)
                )
            ):
                for call in self._calls_by_name.get(function.name, ()):
                    optimizer.names.update(_bound_names(index, call))
        parents = index.parents
        for _ in range(3):  # a short chain is enough: opt -> self.opt -> train(opt=...)
            grew = False
            for optimizer in optimizers:
                received: set[str] = set()
                # The construction itself counts as a use: `train(model, torch.optim.AdamW(...))`.
                for node, _text in [(optimizer.call, None), *self._uses_of(optimizer.names)]:
                    parent = parents.get(node)
                    if isinstance(parent, ast.Assign) and parent.value is node:
                        received.update(target_names(parent))
                    elif isinstance(parent, ast.keyword) and parent.arg:
                        call = parents.get(parent)
                        if isinstance(call, ast.Call) and call_name(call) in functions:
                            received.add(parent.arg)
                    elif isinstance(parent, ast.Call) and call_name(parent) in functions and node in parent.args:
                        received.update(_parameters_at(parent, functions[call_name(parent)], parent.args.index(node)))
                if not received <= optimizer.names:
                    optimizer.names |= received
                    grew = True
            if not grew:
                break

    def optimizer_named(self, name: str | None) -> OptimizerSite | None:
        if name is None:
            return None
        return next((optimizer for optimizer in self.optimizers if name in optimizer.names), None)

    # ---- steps ------------------------------------------------------------------------------
    @cached_property
    def steps(self) -> list[StepSite]:
        if not self.optimizers:
            return []
        known = {name for optimizer in self.optimizers for name in optimizer.names}
        found = []
        others = self._other_step_receivers
        for call in self._calls_by_name.get("step", ()):
            func = call.func
            if not isinstance(func, ast.Attribute):
                continue
            receiver = dotted_name(func.value)
            if not call.args and receiver in known:
                stepped = receiver
            elif call.args and dotted_name(call.args[0]) in known:  # scaler.step(optimizer)
                stepped = dotted_name(call.args[0])
            else:
                if receiver is not None:
                    others.append((func.value, receiver))
                continue
            found.append(StepSite(call, stepped, self._repeating_loop(call)))
        return found

    @cached_property
    def _other_step_receivers(self) -> list[tuple[ast.AST, str]]:
        """`x.step(...)` where `x` is no known optimizer: filled in by `steps`."""
        return []

    def steps_of(self, optimizer: OptimizerSite) -> list[StepSite]:
        return [step for step in self.steps if step.optimizer in optimizer.names]

    def _repeating_loop(self, node: ast.AST, depth: int = 0) -> ast.AST | None:
        """The loop that runs `node` repeatedly: around it, or around a call of its function."""
        for ancestor in self._index.ancestors(node):
            if isinstance(ancestor, (ast.For, ast.AsyncFor, ast.While)):
                return ancestor
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if depth >= 3:
                    return None
                for caller in self._calls_by_name.get(ancestor.name, ()):
                    loop = self._repeating_loop(caller, depth + 1)
                    if loop is not None:
                        return loop
                return None
            if isinstance(ancestor, (ast.ClassDef, ast.Lambda)):
                return None
        return None

    # ---- schedules --------------------------------------------------------------------------
    @cached_property
    def schedulers(self) -> list[SchedulerSite]:
        """Every call that builds, or may build, a schedule for one of the file's optimizers.

        Known schedulers are included whatever their optimizer argument; unknown calls only when
        they receive an optimizer (`build_scheduler(cfg, optimizer)`).
        """
        known = {name for optimizer in self.optimizers for name in optimizer.names}
        qualified_name = self._document.qualified_name
        found: dict[ast.Call, SchedulerSite] = {}
        for name, calls in self._calls_by_name.items():
            if not (name.endswith(_SCHEDULER_SUFFIXES) or (name.startswith("get_") and "schedule" in name)):
                continue
            for call in calls:
                kind = qualified_name(call.func) or ""
                if _is_known_scheduler(kind):
                    found[call] = SchedulerSite(call, kind, _optimizer_argument(call), None, set(_bound_names(self._index, call)))
        parents = self._index.parents
        for node, text in self._uses_of(known):
            parent = parents.get(node)
            call = parents.get(parent) if isinstance(parent, ast.keyword) else parent
            if not isinstance(call, ast.Call) or call.func is node or call in found:
                continue
            name = call_name(call)
            if name in _HARMLESS_CONSUMERS or name in self._functions or name in _FAMILY_OF:
                continue
            # An unknown helper receives the optimizer: it may build its schedule.
            kind = qualified_name(call.func) or dotted_name(call.func) or name or "?"
            found[call] = SchedulerSite(call, kind, text, None, set(_bound_names(self._index, call)))
        for site in found.values():
            site.warms_up = self._warms_up(site, found)
        return list(found.values())

    def schedulers_of(self, optimizer: OptimizerSite) -> list[SchedulerSite]:
        return [site for site in self.schedulers if site.optimizer in optimizer.names]

    @cached_property
    def unattached_schedulers(self) -> list[SchedulerSite]:
        """Schedulers whose optimizer argument names none of the file's optimizers."""
        known = {name for optimizer in self.optimizers for name in optimizer.names}
        return [site for site in self.schedulers if site.optimizer not in known]

    def _warms_up(self, site: SchedulerSite, sites: dict[ast.Call, SchedulerSite]) -> bool | None:
        kind, call = site.kind, site.call
        short = site.class_name
        if kind.startswith(_TORCH_SCHEDULERS):
            if short in _DECAY_ONLY:
                return False
            if short == "LinearLR":
                start = _argument(call, 1, "start_factor")
                if start is None:
                    return True  # the default start factor is 1/3
                value = literal_number(start)
                return None if value is None else value < 1
            if short == "ConstantLR":
                factor = _argument(call, 1, "factor")
                value = 1 / 3 if factor is None else literal_number(factor)
                return None if value is None else value < 1
            if short in ("LambdaLR", "MultiplicativeLR"):
                return self._lambda_ramps(_argument(call, 1, "lr_lambda"))
            if short in ("OneCycleLR", "CyclicLR"):
                return True
            if short in ("SequentialLR", "ChainedScheduler"):
                stages = _argument(call, 1 if short == "SequentialLR" else 0, "schedulers")
                if not isinstance(stages, (ast.List, ast.Tuple)) or not stages.elts:
                    return None
                verdicts = [self._stage_verdict(stage, sites) for stage in stages.elts]
                if short == "SequentialLR":
                    return verdicts[0]
                return True if True in verdicts else (None if None in verdicts else False)
            return None
        if short in _WARMUP_FREE_HF:
            return False
        if short.startswith("get_") and short.endswith("_schedule_with_warmup"):
            return _nonzero(_argument(call, 1, "num_warmup_steps"), absent=None)
        if short == "get_scheduler" and kind.startswith("transformers"):
            if any(keyword.arg is None for keyword in call.keywords):
                return None
            return _nonzero(_argument(call, 2, "num_warmup_steps"), absent=False)
        if kind.startswith("timm.scheduler.") and not short.startswith("create_"):
            if any(keyword.arg is None for keyword in call.keywords):
                return None
            verdicts = [_nonzero(k.value, absent=False) for k in call.keywords if k.arg in ("warmup_t", "warmup_epochs")]
            return True if True in verdicts else (None if None in verdicts else False)
        return None

    def _stage_verdict(self, stage: ast.AST, sites: dict[ast.Call, SchedulerSite]) -> bool | None:
        target = sites.get(stage) if isinstance(stage, ast.Call) else None
        if target is None:
            name = dotted_name(stage)
            target = next((site for site in sites.values() if name is not None and name in site.names), None)
        if target is None:
            return None
        target.stage = True
        return self._warms_up(target, sites)

    def _lambda_ramps(self, function: ast.AST | None) -> bool | None:
        """Whether a LambdaLR factor can ramp up from below 1. Opaque or unfindable: None."""
        if function is None:
            return None
        if isinstance(function, (ast.List, ast.Tuple)):
            verdicts = [self._lambda_ramps(element) for element in function.elts]
            return True if True in verdicts else (None if None in verdicts else False)
        body: ast.AST | None = function if isinstance(function, ast.Lambda) else None
        name = dotted_name(function)
        if body is None and name is not None and "." not in name:
            body = next(iter(self._functions.get(name, ())), None)
            if body is None:
                body = next(
                    (
                        assignment.value
                        for assignment in self.assignments_to(name)
                        if isinstance(assignment.value, ast.Lambda)
                    ),
                    None,
                )
        if body is None:
            return None
        return _ramp_shape(body)

    # ---- hand-written schedules ---------------------------------------------------------------
    @cached_property
    def learning_rate_writes(self) -> list[ast.stmt]:
        """`param_group["lr"] = ...` (the nanoGPT `get_lr` pattern): a schedule written by hand."""
        writes = []
        by_type = self._index.by_type
        for statement in (*by_type.get(ast.Assign, ()), *by_type.get(ast.AugAssign, ())):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant) and target.slice.value in ("lr", "learning_rate"):
                    writes.append(statement)
                    break
        return writes

    @cached_property
    def mentions_warmup(self) -> bool:
        """Whether an identifier or string in the code (not a comment or docstring) speaks of warmup.

        Schedules the facts have judged warmup-free (`get_linear_schedule_with_warmup` with
        `num_warmup_steps=0`) do not count: their literal values decide.
        """
        lowered = self._document.source.lower()
        if "warmup" not in lowered and "warm_up" not in lowered:
            return False
        skip: set[int] = set()
        for site in self.schedulers:
            if site.warms_up is False:
                skip.add(id(site.call.func))
                skip.update(id(keyword) for keyword in site.call.keywords)
        search = _WARMUP_WORD.search
        by_type = self._index.by_type
        # Each distinct name is searched once, not each of its thousands of uses.
        for grouped in (self._index.names_by_id, self._index.attributes_by_name):
            if any(search(name) and any(id(node) not in skip for node in nodes) for name, nodes in grouped.items()):
                return True
        if any(node.arg and search(node.arg) and id(node) not in skip for node in by_type.get(ast.keyword, ())):
            return True
        if any(search(node.arg) for node in by_type.get(ast.arg, ())):
            return True
        if any(search(name) for name in self._functions):
            return True
        parents = self._index.parents
        return any(
            isinstance(node.value, str) and search(node.value) and not isinstance(parents.get(node), ast.Expr)
            for node in by_type.get(ast.Constant, ())
        )

    @cached_property
    def unseen_schedulers(self) -> list[ast.AST]:
        """Schedulers used but not built here: `scheduler.step()` on something no call in the file
        constructs, or a parameter named like a scheduler. Their schedule is unknowable."""
        self.steps  # noqa: B018 - fills _other_step_receivers
        built = {name for site in self.schedulers for name in site.names}
        found: list[ast.AST] = [
            receiver for receiver, name in self._other_step_receivers if name not in built and _LOOKS_LIKE_SCHEDULER.search(name)
        ]
        found += [node for node in self._index.by_type.get(ast.arg, ()) if "sched" in node.arg.lower()]
        return found


    # ---- what is being trained ----------------------------------------------------------------
    @cached_property
    def transformer_evidence(self) -> ast.AST | None:
        """The first sign that the file trains a transformer or attention model, or None.

        An import of a transformer library or of a class named like one (`from model import GPT`,
        `AutoModelForCausalLM`), a class defined with such a name (`CausalSelfAttention`), or an
        attention call or module (`F.scaled_dot_product_attention`, `nn.MultiheadAttention`).
        """
        index = self._index
        for statement in (*index.by_type.get(ast.Import, ()), *index.by_type.get(ast.ImportFrom, ())):
            module = getattr(statement, "module", None) or ""
            for alias in statement.names:
                if _NOT_A_MODEL.search(alias.name):
                    continue
                path = f"{module}.{alias.name}" if module else alias.name
                if _TRANSFORMER_MODULE.search(path) or _TRANSFORMER_CLASS.search(alias.name):
                    return statement
        for class_node in index.classes:
            if _TRANSFORMER_CLASS.search(class_node.name):
                return class_node
        for node in index.by_type.get(ast.Attribute, ()):
            if _TRANSFORMER_CLASS.search(node.attr) or _ATTENTION_ATTRIBUTE.search(node.attr):
                return node
        return None


# ---- helpers ----------------------------------------------------------------------------------

def _bound_names(index, call: ast.Call) -> list[str]:
    parent = index.parent(call)
    if isinstance(parent, ast.Assign) and parent.value is call:
        return target_names(parent)
    if isinstance(parent, (ast.AnnAssign, ast.NamedExpr)) and parent.value is call:
        name = dotted_name(parent.target)
        return [name] if name else []
    return []


def target_names(assignment: ast.Assign) -> list[str]:
    names = []
    for target in assignment.targets:
        if isinstance(target, ast.Tuple) and isinstance(assignment.value, ast.Tuple):
            continue  # `a, b = b, a`: positions would need matching; rare for optimizers
        name = dotted_name(target)
        if name:
            names.append(name)
    return names


def _parameters_at(call: ast.Call, defs, position: int):
    """Names of the parameter that receives positional argument `position` in local functions `defs`."""
    if any(isinstance(argument, ast.Starred) for argument in call.args[: position + 1]):
        return
    for function in defs:
        parameters = [*function.args.posonlyargs, *function.args.args]
        offset = 1 if isinstance(call.func, ast.Attribute) and parameters and parameters[0].arg in ("self", "cls") else 0
        if position + offset < len(parameters):
            yield parameters[position + offset].arg


def _is_known_scheduler(kind: str) -> bool:
    short = kind.rsplit(".", 1)[-1]
    if kind.startswith(_TORCH_SCHEDULERS):
        return short[:1].isupper()
    if kind.startswith("transformers") and short.startswith("get_") and ("schedule" in short):
        return True
    return kind.startswith("timm.scheduler.") and short[:1].isupper()


def _argument(call: ast.Call, position: int, keyword: str) -> ast.AST | None:
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    if len(call.args) > position and not any(isinstance(argument, ast.Starred) for argument in call.args[: position + 1]):
        return call.args[position]
    return None


def _optimizer_argument(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        if keyword.arg in _OPTIMIZER_KEYWORDS:
            return dotted_name(keyword.value)
    position = 1 if call_name(call) == "get_scheduler" else 0  # get_scheduler(name, optimizer, ...)
    if len(call.args) > position:
        return dotted_name(call.args[position])
    return None


def literal_number(node: ast.AST | None) -> float | None:
    """The value of a numeric literal or a constant expression of literals (`1 / 3`, `-1e-3`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = literal_number(node.operand)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.BinOp):
        left, right = literal_number(node.left), literal_number(node.right)
        if left is None or right is None:
            return None
        try:
            if isinstance(node.op, ast.Div):
                return left / right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
        except ZeroDivisionError:
            return None
    return None


def _nonzero(node: ast.AST | None, *, absent: bool | None) -> bool | None:
    if node is None:
        return absent
    value = literal_number(node)
    return None if value is None else value > 0


_RAMP_FREE_CALLS = {"cos", "sin", "exp", "pow", "sqrt", "float", "int", "abs", "max", "log"}


def _ramp_shape(function: ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef) -> bool | None:
    """Whether an LR-factor function can rise from below 1: None (maybe) unless it plainly cannot.

    It may ramp when it mentions warmup, takes a `min(...)`, branches on the step, returns a bare
    `step / n`-like ratio, or calls something we cannot see. `0.95 ** epoch` or a cosine of the
    step plainly does not.
    """
    parameters = {argument.arg for argument in function.args.args}
    returned = [function.body] if isinstance(function, ast.Lambda) else [
        node.value for node in walk(function) if isinstance(node, ast.Return) and node.value is not None
    ]
    for node in walk(function):
        if isinstance(node, (ast.Compare, ast.IfExp, ast.If)):
            return True
        if isinstance(node, ast.Name) and _WARMUP_WORD.search(node.id):
            return True
        if isinstance(node, ast.Call):
            name = call_name(node)
            if name == "min":
                return True
            if name not in _RAMP_FREE_CALLS:
                return None
    for value in returned:
        if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Div, ast.Mult)) and _uses(value.left, parameters):
            return True
    return False


def _uses(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(child, ast.Name) and child.id in names for child in walk(node))
