"""Import aliases: which local name stands for which qualified name.

`import torch.nn.functional as F` makes `F.softmax` resolve to `torch.nn.functional.softmax`;
`from torch import nn` makes `nn.LayerNorm` resolve to `torch.nn.LayerNorm`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

# Names that PyTorch exposes under several paths; rules match on the canonical one.
_CANONICAL_PREFIXES = {
    "torch.nn.modules.normalization.": "torch.nn.",
    "torch.nn.modules.transformer.": "torch.nn.",
    "torch.nn.modules.module.": "torch.nn.",
    "torch.optim.lr_scheduler.": "torch.optim.lr_scheduler.",
}


@dataclass
class ImportTable:
    aliases: dict[str, str] = field(default_factory=dict)
    # Top-level modules bound by a plain `import a.b.c` (binds `a`).
    imported_modules: set[str] = field(default_factory=set)
    # Rules ask about the same callee many times (a file's 2,000 questions name ~900 nodes).
    _resolved: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_index(cls, index) -> ImportTable:
        table = cls()
        for node in index.nodes(ast.Import):
            for alias in node.names:
                if alias.asname:
                    table.aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    table.aliases[top] = top
                table.imported_modules.add(alias.name)
        for node in index.nodes(ast.ImportFrom):
            if node.level or not node.module:
                continue  # relative imports name the user's own code
            for alias in node.names:
                if alias.name == "*":
                    continue
                table.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        return table

    def qualified_name(self, node: ast.AST) -> str | None:
        """`F.softmax` -> `torch.nn.functional.softmax`; None when not rooted in an import."""
        try:
            return self._resolved[node]
        except KeyError:
            resolved = self._resolved[node] = self._qualify(node)
            return resolved

    def _qualify(self, node: ast.AST) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        root = self.aliases.get(node.id)
        if root is None:
            return None
        parts.append(root)
        return canonical(".".join(reversed(parts)))

    def local_name_for(self, qualified: str) -> str | None:
        """The shortest expression that names `qualified` in this file (e.g. `math`, `F`)."""
        best = None
        for local, target in self.aliases.items():
            if qualified == target:
                return local
            if qualified.startswith(target + "."):
                candidate = local + qualified[len(target) :]
                if best is None or len(candidate) < len(best):
                    best = candidate
        return best

    def imports_module(self, name: str) -> bool:
        return any(target == name or target.startswith(name + ".") for target in self.aliases.values())


def canonical(name: str) -> str:
    for prefix, replacement in _CANONICAL_PREFIXES.items():
        if name.startswith(prefix):
            return replacement + name[len(prefix) :]
    return name


def call_name(node: ast.AST) -> str | None:
    """The last dotted component of a call's callee: `self.ln_1(x)` -> `ln_1`."""
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None
