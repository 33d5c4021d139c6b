"""Whether a file ports a published, pretrained architecture.

Code that loads released checkpoints (a Hugging Face `PreTrainedModel`, a timm model built from a
pretrained config, a `from_pretrained` constructor) must compute exactly what the checkpoint was
trained with: GPT-Neo's unscaled attention and BART's post-norm residuals are the published models,
not mistakes, and "fixing" them silently breaks the weights. Rules whose fix changes the network's
function read this fact to report such code as the deliberate choice it is, at a lower severity,
while the same pattern written from scratch stays a warning.

The signal is per file and deliberately narrow: names a port cannot avoid, never a guess from
model names or comments.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# Hugging Face model classes derive from `PreTrainedModel` (directly or through the model's own base).
_PRETRAINED_BASE = re.compile(r"(PreTrainedModel|PretrainedModel)$")
# timm builds every registered model through its pretrained-config machinery.
_TIMM_BUILDERS = {"build_model_with_cfg", "generate_default_cfgs", "load_pretrained", "load_checkpoint"}


@dataclass(frozen=True)
class CheckpointPort:
    """Why the file counts as a port: `node` shows it, `evidence` says it in a few words."""

    node: ast.AST
    evidence: str


def find_checkpoint_port(document) -> CheckpointPort | None:
    index = document.index
    for class_node in index.classes:
        for base in class_node.bases:
            name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else None
            if name and _PRETRAINED_BASE.search(name):
                return CheckpointPort(class_node, f"`{class_node.name}` is a `{name}`, built to load released checkpoints")
    for name in sorted(_TIMM_BUILDERS):
        calls = index.calls_named(name)
        if calls:
            return CheckpointPort(calls[0], f"the file builds its models with `{name}`, from released pretrained weights")
    for function in index.functions:
        if function.name == "from_pretrained" and isinstance(index.parent(function), ast.ClassDef):
            return CheckpointPort(function, "the model defines `from_pretrained`: it loads released checkpoints")
    return None
