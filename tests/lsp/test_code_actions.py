"""Quick fixes, "Ignore CODE on this line" and fix-all, applied the way an editor applies them."""

from __future__ import annotations

import pytest
from lsprotocol import types as lsp

from llmarch_lsp.analyzers import find_rule
from tests.lsp.conftest import HEADLINE, NON_ASCII, codes, example

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIX_ALL = "source.fixAll.llmarch"
IGNORE_LLM203 = "Ignore LLM203 on this line"
FIX_LLM203 = "llmarch (LLM203): Use pre-norm (norm_first=True)"
HEADLINE_CODES = [(name, code) for name, found in sorted(HEADLINE.items()) for code in found]


async def _diagnostic(session, uri, code):
    return next(d for d in await session.diagnostics(uri) if d.code == code)


async def _action(session, uri, code, title):
    """The diagnostic for `code` and its one code action titled `title`."""
    diagnostic = await _diagnostic(session, uri, code)
    actions = await session.code_actions(uri, diagnostic.range, [diagnostic])
    (action,) = [a for a in actions if a.title == title]
    return diagnostic, action


@pytest.mark.parametrize(("name", "code"), HEADLINE_CODES)
async def test_quick_fix_removes_its_diagnostic(session, name, code):
    rule = find_rule(code)
    uri = session.open(example(name), name)
    flagged = [d for d in await session.diagnostics(uri) if d.code == code]
    diagnostic, fix = await _action(session, uri, code, f"llmarch ({code}): {rule.fix_title}")
    assert fix.kind == lsp.CodeActionKind.QuickFix
    assert list(fix.diagnostics) == [diagnostic]
    assert fix.is_preferred == (rule.fix_safety == "safe")

    session.edit(uri, session.edits_of(uri, fix))
    remaining = [d for d in await session.diagnostics(uri) if d.code == code]
    assert len(remaining) < len(flagged)
    compile(session.texts[uri], name, "exec")  # the fixed code still parses


async def test_ignore_action_adds_a_comment_and_silences_the_finding(session):
    uri = session.open(example("model.py"))
    diagnostic, ignore = await _action(session, uri, "LLM203", IGNORE_LLM203)
    assert ignore.kind == lsp.CodeActionKind.QuickFix

    session.edit(uri, session.edits_of(uri, ignore))
    line = session.texts[uri].splitlines()[diagnostic.range.start.line]
    assert line.endswith("batch_first=True)  # llmarch: ignore[LLM203]")
    assert "LLM203" not in codes(await session.diagnostics(uri))

    # A second code on a line with an ignore comment extends it.
    text = session.texts[uri].replace("# llmarch: ignore[LLM203]", "# llmarch: ignore[LLM101]")
    session.change(uri, text)
    _, ignore = await _action(session, uri, "LLM203", IGNORE_LLM203)
    session.edit(uri, session.edits_of(uri, ignore))
    assert "# llmarch: ignore[LLM101, LLM203]" in session.texts[uri]


async def test_actions_without_context_diagnostics_use_the_requested_range(session):
    uri = session.open(example("model.py"))
    diagnostic = await _diagnostic(session, uri, "LLM203")
    cursor = lsp.Range(start=diagnostic.range.start, end=diagnostic.range.start)
    titles = [a.title for a in await session.code_actions(uri, cursor)]
    assert IGNORE_LLM203 in titles and FIX_LLM203 in titles


async def test_fix_all_applies_unsafe_fixes_only_when_configured(session):
    uri = session.open(example("model.py"))
    diagnostics = await session.diagnostics(uri)
    whole = lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(len(session.texts[uri].splitlines()), 0))

    # Every fix in this file changes numerics (unsafe): fix-all does nothing by default.
    assert all(d.data["fix"]["applicability"] == "unsafe" for d in diagnostics if d.data["fix"])
    assert await session.code_actions(uri, whole, only=[FIX_ALL]) == []
    assert await session.code_actions(uri, whole, only=["source.fixAll"]) == []

    session.configure({"llmarch": {"fixAll": {"unsafe": True}, "debounceMs": 30}})
    (fix_all,) = await session.code_actions(uri, whole, only=["source.fixAll"])
    assert fix_all.kind == FIX_ALL
    session.edit(uri, session.edits_of(uri, fix_all))
    after = codes(await session.diagnostics(uri))
    assert "LLM203" not in after and "LLM101" not in after
    assert "norm_first=True" in session.texts[uri]
    compile(session.texts[uri], "model.py", "exec")

    # Quick fixes only, when only quick fixes are asked for.
    assert all(a.kind == lsp.CodeActionKind.QuickFix for a in await session.code_actions(uri, whole, only=["quickfix"]))


async def test_quick_fix_edits_are_right_on_non_ascii_lines(session):
    uri = session.open(NON_ASCII)
    _, fix = await _action(session, uri, "LLM203", FIX_LLM203)
    session.edit(uri, session.edits_of(uri, fix))
    assert (
        'λ, ŋ = "αβ🙂—", 2; layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, norm_first=True)'
        "  # (B, T, C) — shape"
    ) in session.texts[uri]
    assert "LLM203" not in codes(await session.diagnostics(uri))

    session.change(uri, NON_ASCII)
    _, ignore = await _action(session, uri, "LLM203", IGNORE_LLM203)
    session.edit(uri, session.edits_of(uri, ignore))
    assert "# (B, T, C) — shape  # llmarch: ignore[LLM203]\n" in session.texts[uri]


# ---- alternatives: more than one way to fix a finding ------------------------------------------

SCALE_LLM101 = "llmarch (LLM101): Scale scores by 1/sqrt(d)"
SDPA_LLM101 = "llmarch (LLM101): Use scaled_dot_product_attention (fused, O(T) memory)"
ABLATION_LLM201 = "llmarch (LLM201): Pre-norm behind an ablation flag (self.pre_norm)"


def _expected_edits(session, uri, fix):
    """The fix's own edits, as the server must send them (the client's position encoding)."""
    from llmarch_lsp.fixes.apply import fix_edits
    from llmarch_lsp.text import split_lines

    text = session.texts[uri]
    lines = split_lines(text)
    return [(session.encoder.range(lines, edit.span), edit.new_text) for edit in fix_edits(text, fix)]


async def test_llm101_offers_the_scale_fix_and_the_sdpa_alternative_with_exactly_their_edits(session):
    from llmarch_lsp.engine import analyze_source

    uri = session.open(example("model.py"))
    diagnostic = await _diagnostic(session, uri, "LLM101")
    actions = await session.code_actions(uri, diagnostic.range, [diagnostic])
    titles = [action.title for action in actions]
    # The primary fix first, then the alternative, then the ignore action.
    assert titles == [SCALE_LLM101, SDPA_LLM101, "Ignore LLM101 on this line"]
    (finding,) = [f for f in analyze_source(session.texts[uri], "model.py").findings if f.code == "LLM101"]
    scale, sdpa = actions[0], actions[1]
    assert not scale.is_preferred and not sdpa.is_preferred  # both change numerics
    assert [(e.range, e.new_text) for e in session.edits_of(uri, scale)] == _expected_edits(session, uri, finding.fix)
    (alternative,) = finding.alternatives
    assert [(e.range, e.new_text) for e in session.edits_of(uri, sdpa)] == _expected_edits(session, uri, alternative)

    # Picking the alternative clears both attention findings: the manual chain is gone.
    session.edit(uri, session.edits_of(uri, sdpa))
    assert "F.scaled_dot_product_attention(q, k, v, is_causal=True)" in session.texts[uri]
    remaining = codes(await session.diagnostics(uri))
    assert "LLM101" not in remaining and "LLM103" not in remaining


async def test_llm201_ablation_alternative_keeps_the_original_behind_a_flag(session):
    uri = session.open(example("model.py"))
    diagnostic, ablation = await _action(session, uri, "LLM201", ABLATION_LLM201)
    session.edit(uri, session.edits_of(uri, ablation))
    text = session.texts[uri]
    assert "        self.pre_norm = True\n" in text
    assert "        if self.pre_norm:\n            x = x + self.attn(self.ln_1(x))\n" in text
    assert "        else:\n            x = self.ln_1(x + self.attn(x))\n" in text
    compile(text, "model.py", "exec")
    assert "LLM201" not in codes(await session.diagnostics(uri))


async def test_fix_all_applies_primary_fixes_never_alternatives(session):
    uri = session.open(example("model.py"))
    await session.diagnostics(uri)
    whole = lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(len(session.texts[uri].splitlines()), 0))
    session.configure({"llmarch": {"fixAll": {"unsafe": True}, "debounceMs": 30}})
    (fix_all,) = await session.code_actions(uri, whole, only=[FIX_ALL])
    session.edit(uri, session.edits_of(uri, fix_all))
    text = session.texts[uri]
    assert "self.pre_norm" not in text  # the ablation variant is a person's choice
    assert "x = x + self.attn(self.ln_1(x))" in text
    # Where LLM101 and LLM103 both apply, the SDPA rewrite (LLM103's fix) settles both at once.
    assert "F.scaled_dot_product_attention(q, k, v, is_causal=True)" in text
    await session.diagnostics(uri)  # the analysis of the fixed text
    assert await session.code_actions(uri, whole, only=[FIX_ALL]) == []  # fix-all again: nothing left to do
