"""Applying the attention and normalization fixes settles: the finding goes away, no rule (of all
registered ones) newly fires, the result parses, and fix-all a second time changes nothing."""

from __future__ import annotations

import ast
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from llmarch_lsp.analyzers import all_rules, find_rule
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.fixes.apply import apply_fixes
from tests.fixes.samples import SAMPLES, source

OURS = ("LLM101", "LLM103", "LLM201")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _inputs():
    for name in SAMPLES:
        yield pytest.param(source(name), id=name)
    yield pytest.param((EXAMPLES / "model.py").read_text(encoding="utf-8"), id="examples-model")
    for code in OURS:
        for position, example in enumerate(find_rule(code).invalid):
            yield pytest.param(textwrap.dedent(example.code).lstrip("\n"), id=f"{code}-invalid-{position}")


def _findings(text: str):
    report = analyze_source(text, "input.py")
    assert report.error is None and not report.rule_failures, (report.error, report.rule_failures)
    return report.findings


def _codes(findings) -> Counter:
    return Counter(finding.code for finding in findings)


def _fix_all(text: str, codes=OURS) -> str:
    fixes = [f.fix for f in _findings(text) if f.fix is not None and f.code in codes]
    return apply_fixes(text, fixes).text if fixes else text


@pytest.mark.parametrize("text", list(_inputs()))
def test_fix_all_clears_what_it_fixes_and_nothing_newly_fires(text):
    before = _findings(text)
    after_text = _fix_all(text)
    ast.parse(after_text)
    after = _codes(_findings(after_text))
    unfixable = _codes(f for f in before if f.fix is None)
    for code in OURS:
        assert after[code] <= unfixable[code], f"{code} still fires where it had a fix"
    newly = {code for code in after if code not in _codes(before)}
    assert not newly, f"fixing made {sorted(newly)} fire"


@pytest.mark.parametrize("text", list(_inputs()))
def test_fix_all_twice_changes_nothing_the_second_time(text):
    once = _fix_all(text)
    assert _fix_all(once) == once


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_rules_fixes_settle_on_the_samples(name):
    """The samples are clean once fixed, whatever rules are registered."""
    every = tuple(rule.code for rule in all_rules())
    once = _fix_all(source(name), every)
    assert _fix_all(once, every) == once
    assert [f.code for f in _findings(once) if f.fix is not None] == []


@pytest.mark.parametrize("text", list(_inputs()))
def test_each_fix_and_alternative_alone_clears_its_finding(text):
    before = _findings(text)
    before_codes = _codes(before)
    for finding in before:
        if finding.code not in OURS:
            continue
        for fix in ([finding.fix] if finding.fix else []) + list(finding.alternatives):
            after_text = apply_fixes(text, [fix]).text
            ast.parse(after_text)
            after = _codes(_findings(after_text))
            assert after[finding.code] < before_codes[finding.code], f"{fix.title} left {finding.code} firing"
            newly = {code for code in after if code not in before_codes}
            assert not newly, f"{fix.title} made {sorted(newly)} fire"
            # The SDPA rewrite replaces the whole chain: both attention findings on it go.
            if "scaled_dot_product_attention" in fix.title:
                assert after["LLM101"] < before_codes["LLM101"] or before_codes["LLM101"] == 0
                assert after["LLM103"] < before_codes["LLM103"]
