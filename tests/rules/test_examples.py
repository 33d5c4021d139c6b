"""Every rule's inline VALID / INVALID examples, run as tests (the Fixit way).

An INVALID example must be flagged at exactly its ranges (1-based, end exclusive, as the CLI
prints them); a VALID one must not be flagged at all; a `fixed` text must be what all of the
rule's fixes produce, and it must no longer be flagged.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import all_rules
from llmarch_lsp.analyzers.rule import Valid
from llmarch_lsp.document import Document
from llmarch_lsp.fixes.apply import apply_fixes


def _cases(kind):
    for rule in all_rules():
        examples = rule.valid if kind == "valid" else rule.invalid
        for position, example in enumerate(examples):
            yield pytest.param(rule, example, id=f"{rule.code}-{kind}-{position}")


def _source(example) -> str:
    code = example if isinstance(example, str) else example.code
    return textwrap.dedent(code).lstrip("\n")


def _ranges(findings) -> list[str]:
    return [
        f"{f.span.line}:{f.span.column + 1}-{f.span.end_line}:{f.span.end_column + 1}" for f in findings
    ]


@pytest.mark.parametrize(("rule", "example"), list(_cases("valid")))
def test_valid_example_is_not_flagged(rule, example):
    options = {} if isinstance(example, str) else dict(example.options)
    findings = rule.run(Document(_source(example)), options)
    assert findings == [], f"{rule.code} flagged valid code at {_ranges(findings)}"


@pytest.mark.parametrize(("rule", "example"), list(_cases("invalid")))
def test_invalid_example_is_flagged_at_exact_ranges(rule, example):
    findings = rule.run(Document(_source(example)), dict(example.options))
    assert _ranges(findings) == list(example.at)
    for finding in findings:
        assert finding.code == rule.code and finding.name == rule.name
        assert finding.message and finding.citations


@pytest.mark.parametrize(
    ("rule", "example"), [case for case in _cases("invalid") if case.values[1].fixed is not None]
)
def test_invalid_example_fix_produces_expected_text(rule, example):
    source = _source(example)
    findings = rule.run(Document(source), dict(example.options))
    fixes = [finding.fix for finding in findings if finding.fix is not None]
    assert fixes, f"{rule.code} offers no fix for an example that expects one"
    fixed = apply_fixes(source, fixes).text
    assert fixed == textwrap.dedent(example.fixed).lstrip("\n")
    assert rule.run(Document(fixed), dict(example.options)) == []


def test_every_rule_has_examples_of_both_kinds():
    for rule in all_rules():
        assert len(rule.valid) >= 3, rule.code
        assert len(rule.invalid) >= 2, rule.code
        assert any(not isinstance(example, str) and not isinstance(example, Valid) for example in rule.invalid)
