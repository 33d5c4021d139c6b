"""Every rule is registered, documented in the agreed shape, and cites verified papers."""

from __future__ import annotations

import re

import pytest

from llmarch_lsp.analyzers import RULE_IDS, RULE_MODULES, all_rules, find_rule
from llmarch_lsp.analyzers.rule import DOC_SECTIONS
from llmarch_lsp.citations import bibliography
from llmarch_lsp.findings import Confidence, Severity

# The contract other tools depend on: these codes keep these names.
FIXED_CODES = {
    "LLM101": "unscaled-attention",
    "LLM201": "post-norm-residual",
    "LLM203": "transformer-layer-post-norm",
    "LLM301": "missing-lr-warmup",
}


def test_fixed_codes_keep_their_names():
    registered = {rule.code: rule.name for rule in all_rules()}
    for code, name in FIXED_CODES.items():
        assert registered.get(code) == name


def test_rule_ids_read_off_file_names_match_the_rules_themselves():
    # Settings and selectors are checked against RULE_IDS without importing any rule module.
    assert [(rule.code, rule.name) for rule in RULE_IDS] == [(rule.code, rule.name) for rule in all_rules()]
    assert find_rule("llm201") is find_rule("post-norm-residual") is all_rules()[[r.code for r in all_rules()].index("LLM201")]
    assert find_rule("LLM999") is None


def test_every_module_is_registered_once():
    codes = [rule.code for rule in all_rules()]
    assert len(codes) == len(set(codes)) == len(RULE_MODULES)
    names = [rule.name for rule in all_rules()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.code)
def test_rule_metadata_is_complete(rule):
    assert re.fullmatch(r"LLM[1-8]\d\d", rule.code)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name)
    assert isinstance(rule.severity, Severity) and isinstance(rule.confidence, Confidence)
    assert rule.summary and not rule.summary.endswith(".")
    assert (rule.fix_title is None) == (rule.fix_safety is None)
    assert rule.fix_safety in (None, "safe", "unsafe")


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.code)
def test_rule_docs_have_every_section_in_order(rule):
    sections = rule.sections
    assert list(sections) == list(DOC_SECTIONS)
    for title, body in sections.items():
        assert len(body) > 40, f"{rule.code}: section {title!r} is too thin"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.code)
def test_rule_cites_verified_papers_that_its_docs_name(rule):
    assert rule.citation_keys
    literature = rule.sections["Literature"]
    for key in rule.citation_keys:
        citation = bibliography()[key]
        assert citation.verified
        assert citation.first_author_surname in literature, f"{rule.code} cites {key} but its Literature omits it"


def test_module_file_names_match_rule_code_and_name():
    import importlib

    for module_name in RULE_MODULES:
        rule = importlib.import_module(f"llmarch_lsp.analyzers.{module_name}").RULE
        assert module_name == f"{rule.code.lower()}_{rule.name.replace('-', '_')}"


def test_generated_rule_docs_are_current():
    import importlib.util
    from pathlib import Path

    generator = Path(__file__).resolve().parents[2] / "docs" / "generate.py"
    spec = importlib.util.spec_from_file_location("generate_docs", generator)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OUTPUT.read_text(encoding="utf-8") == module.render(), "run `python docs/generate.py`"
    readme = module.README.read_text(encoding="utf-8")
    assert readme == module.render_readme(readme), "README's rule table is stale: run `python docs/generate.py`"
    for rule in all_rules():
        assert f"| [{rule.code}](docs/rules.md#" in readme


@pytest.mark.parametrize("rule", all_rules(), ids=lambda rule: rule.code)
def test_docs_url_points_at_the_rule_section(rule):
    from pathlib import Path

    assert rule.docs_url.endswith(f"docs/rules.md#{rule.code.lower()}-{rule.name}")
    rules_md = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    assert f"## {rule.code} {rule.name}\n" in rules_md
