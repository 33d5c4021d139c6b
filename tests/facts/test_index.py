"""The shared node index and walk: every rule reads them, so they must agree with `ast` exactly."""

from __future__ import annotations

import ast
import sys

import pytest

from llmarch_lsp.engine import analyze_source
from llmarch_lsp.facts.index import NodeIndex, walk

# Context and operator nodes are singletons the parser shares between nodes: not indexed.
_SINGLETONS = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)

SAMPLE = '''
import torch
from torch import nn

@torch.no_grad()
def generate(model, idx, *, steps=10, temperature: float = 1.0, **kwargs):
    for _ in range(steps):
        logits = model(idx)[:, -1, :] / temperature
        probs = {"a": 1, **kwargs}
        idx = torch.cat((idx, torch.multinomial(logits.softmax(-1), 1)), dim=1) if steps else idx
    return [x for x in idx if x is not None], f"{steps!r:>4}"

class Block(nn.Module):
    def forward(self, x, mask=None):
        match x:
            case [a, *rest] if a:
                pass
            case {"k": v, **others}:
                pass
        with torch.autocast("cuda") as ctx, open("f") as f:
            x = x + self.attn(self.ln_1(x))
        try:
            y = lambda t: t ** -0.5
        except (ValueError, KeyError) as error:
            raise RuntimeError from error
        global G
        return x
'''


def _preorder(root: ast.AST):
    """(node, parent) in pre-order, from `ast.iter_child_nodes` (iterative: trees can be deep)."""
    stack = [(root, None)]
    while stack:
        node, parent = stack.pop()
        if not isinstance(node, _SINGLETONS):
            yield node, parent
        stack.extend((child, node) for child in reversed(list(ast.iter_child_nodes(node))))


def _assert_matches_ast(tree: ast.AST, index: NodeIndex) -> None:
    expected = list(_preorder(tree))
    by_type: dict[type, list] = {}
    for node, _ in expected:
        by_type.setdefault(type(node), []).append(node)
    assert set(index.by_type) == set(by_type)
    for kind, nodes in by_type.items():
        assert [id(n) for n in index.by_type[kind]] == [id(n) for n in nodes], kind.__name__
    for node, parent in expected:
        assert index.parent(node) is parent


def test_index_lists_every_node_in_preorder_with_its_parent():
    tree = ast.parse(SAMPLE)
    _assert_matches_ast(tree, NodeIndex(tree))


def test_a_tree_deeper_than_the_recursion_limit_is_indexed_all_the_same():
    terms = sys.getrecursionlimit() * 2
    tree = ast.parse("import torch\ntotal = " + " + ".join(f"x{i}" for i in range(terms)) + "\n")
    index = NodeIndex(tree)
    _assert_matches_ast(tree, index)
    assert len(index.nodes(ast.BinOp)) == terms - 1


def test_the_engine_analyzes_a_very_deep_expression_without_a_rule_failure():
    terms = sys.getrecursionlimit() * 2
    source = "import torch\nloss = " + " + ".join(f"l{i}" for i in range(terms)) + "\nloss.backward()\n"
    report = analyze_source(source, "deep.py")
    assert report.error is None
    assert report.rule_failures == []


@pytest.mark.parametrize("start", ["Module", "FunctionDef", "ClassDef", "Return"])
def test_walk_visits_what_ast_walk_does_in_the_same_order(start):
    tree = ast.parse(SAMPLE)
    root = tree if start == "Module" else next(n for n in ast.walk(tree) if type(n).__name__ == start)
    expected = [node for node in ast.walk(root) if not isinstance(node, _SINGLETONS)]
    assert [id(n) for n in walk(root)] == [id(n) for n in expected]


def test_names_are_grouped_by_identifier_in_source_order():
    tree = ast.parse(SAMPLE)
    index = NodeIndex(tree)
    expected = [n for n, _ in _preorder(tree) if isinstance(n, ast.Name) and n.id == "idx"]
    assert len(expected) == 5  # model(idx), idx = ..., (idx, ...), else idx, for x in idx
    assert [id(n) for n in index.names_by_id["idx"]] == [id(n) for n in expected]
    assert "nonexistent" not in index.names_by_id


def test_attributes_are_grouped_by_attribute_name_in_source_order():
    tree = ast.parse(SAMPLE)
    index = NodeIndex(tree)
    expected = [n for n, _ in _preorder(tree) if isinstance(n, ast.Attribute) and n.attr == "softmax"]
    assert len(expected) == 1
    assert [id(n) for n in index.attributes_by_name["softmax"]] == [id(n) for n in expected]
    every = sum(len(nodes) for nodes in index.attributes_by_name.values())
    assert every == len(index.nodes(ast.Attribute))


def test_the_iterative_fallback_groups_names_and_attributes_too():
    terms = sys.getrecursionlimit() * 2
    tree = ast.parse("import torch\ntotal = " + " + ".join(f"m.x{i % 3}" for i in range(terms)) + " + y + y\n")
    index = NodeIndex(tree)
    assert len(index.names_by_id["m"]) == terms
    assert len(index.names_by_id["y"]) == 2
    assert sum(len(index.attributes_by_name[f"x{i}"]) for i in range(3)) == terms


def test_calls_are_grouped_by_callee_the_same_by_either_walk():
    calls = " + ".join(f"m.f{i % 2}(x) + g(y)" for i in range(sys.getrecursionlimit()))
    for source in ("total = m.f0(x) + g(y) + h(1)(z)\n", f"total = {calls} + h(1)(z)\n"):
        tree = ast.parse("import torch\n" + source)
        index = NodeIndex(tree)
        every = [n for n, _ in _preorder(tree) if isinstance(n, ast.Call)]
        for callee in ("f0", "f1", "g"):
            expected = [n for n in every if getattr(n.func, "attr", getattr(n.func, "id", None)) == callee]
            assert [id(n) for n in index.calls_by_name.get(callee, [])] == [id(n) for n in expected]
        assert [id(n) for n in index.calls_of_calls] == [id(n) for n in every if isinstance(n.func, ast.Call)]
        assert "h" in index.calls_by_name  # `h(1)` itself is a call of `h`


def test_nodes_starting_on_lines_come_in_source_order_even_where_preorder_is_not():
    source = (
        "class Model:\n"
        "    @torch.no_grad()\n"  # a decorator: pre-order visits it after the body
        "    def forward(self, x):\n"
        "        y = (f(x)\n"
        "             if g(x)\n"  # a conditional: pre-order visits the test first
        "             else h(x))\n"
        "        return y\n"
    )
    index = NodeIndex(ast.parse(source))
    preorder_lines = [call.lineno for call in index.calls]
    assert preorder_lines != sorted(preorder_lines)
    assert [call.lineno for call in index.starting_on_lines(ast.Call, 1, 7)] == [2, 4, 5, 6]
    assert [call.func.id for call in index.starting_on_lines(ast.Call, 3, 7)] == ["f", "g", "h"]
    assert index.starting_on_lines(ast.Call, 8, 9) == []
