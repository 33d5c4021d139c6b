"""Which classes are `nn.Module`s, what submodules they build, and their `forward`."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property

from llmarch_lsp.facts.index import source_position

_MODULE_BASE_SUFFIXES = ("Module", "PreTrainedModel", "Layer", "Block", "Model")


@dataclass
class ModuleClass:
    node: ast.ClassDef
    forward: ast.FunctionDef | None
    # `self.<attr> = <call>` anywhere in the class: attr -> the constructor call.
    submodules: dict[str, ast.Call] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.node.name


class ModuleFacts:
    def __init__(self, document):
        self._document = document

    @cached_property
    def classes(self) -> list[ModuleClass]:
        submodules = self._submodules_by_class()
        found = []
        for class_node in self._document.index.classes:
            if not self._looks_like_module(class_node):
                continue
            forward = next(
                (
                    statement
                    for statement in class_node.body
                    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == "forward"
                ),
                None,
            )
            found.append(ModuleClass(class_node, forward, submodules.get(class_node, {})))
        return found

    @cached_property
    def by_name(self) -> dict[str, ModuleClass]:
        return {module.name: module for module in self.classes}

    def class_owning(self, node: ast.AST) -> ModuleClass | None:
        owner = self._document.index.enclosing(node, ast.ClassDef)
        while owner is not None:
            module = self.by_name.get(owner.name)
            if module is not None and module.node is owner:
                return module
            owner = self._document.index.enclosing(owner, ast.ClassDef)
        return None

    def constructor_name(self, module: ModuleClass, attribute: str) -> str | None:
        """Qualified (or bare, for local classes) name of what built `self.<attribute>`."""
        call = module.submodules.get(attribute)
        if call is None:
            return None
        return self._document.qualified_name(call.func) or _dotted(call.func)

    def _looks_like_module(self, class_node: ast.ClassDef) -> bool:
        for base in class_node.bases:
            qualified = self._document.qualified_name(base) or _dotted(base) or ""
            if qualified == "torch.nn.Module" or qualified.endswith(_MODULE_BASE_SUFFIXES):
                return True
        return any(
            isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == "forward"
            for statement in class_node.body
        )

    def _submodules_by_class(self) -> dict[ast.ClassDef, dict[str, ast.Call]]:
        """`self.<attr> = <call>` in any method, grouped by class, from the shared index."""
        index = self._document.index
        found: dict[ast.ClassDef, dict[str, ast.Call]] = {}
        writes = [
            (assignment, attribute)
            for attribute, assignments in index.self_attribute_assignments.items()
            for assignment in assignments
        ]
        annotated = [  # `self.proj: nn.Linear = nn.Linear(...)`
            (assignment, assignment.target.attr)
            for assignment in index.by_type.get(ast.AnnAssign, ())
            if _is_self_attribute(assignment.target)
        ]
        if annotated:  # the first write of an attribute wins, so the two kinds go in source order
            writes += annotated
            writes.sort(key=lambda write: source_position(write[0]))
        for assignment, attribute in writes:
            self._note_submodule(found, attribute, assignment)
        return found

    def _note_submodule(self, found: dict, attribute: str, assignment: ast.Assign | ast.AnnAssign) -> None:
        """The first `self.<attr> = <call>` of a method counts (source order), per class."""
        if not isinstance(assignment.value, ast.Call):
            return
        index = self._document.index
        method = index.enclosing(assignment, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        owner = index.parent(method) if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        if isinstance(owner, ast.ClassDef):
            found.setdefault(owner, {}).setdefault(attribute, assignment.value)


def _is_self_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


dotted_name = _dotted
is_self_attribute = _is_self_attribute
