"""Diagnostics as a user types: what arrives, for which version, and what never does."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types as lsp

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.lsp.diagnostics import SEVERITIES
from tests.lsp.conftest import FLAGGED_TEXT, HEADLINE, NON_ASCII, TEST_DEBOUNCE_MS, codes, example

pytestmark = pytest.mark.asyncio(loop_scope="session")

@pytest.mark.parametrize("name", sorted(HEADLINE))
async def test_headline_rules_arrive_with_full_metadata(session, name):
    uri = session.open(example(name), name)
    diagnostics = await session.diagnostics(uri)

    assert set(HEADLINE[name]) <= set(codes(diagnostics))
    for diagnostic in diagnostics:
        rule = find_rule(diagnostic.code)
        assert diagnostic.source == "llmarch"
        assert diagnostic.code_description.href == rule.docs_url
        assert diagnostic.severity == SEVERITIES[rule.severity]
        assert session.text_at(uri, diagnostic.range).startswith(FLAGGED_TEXT[diagnostic.code])
        assert diagnostic.data["fix"] == {"title": rule.fix_title, "applicability": rule.fix_safety}
    if name == "train.py":
        (warmup,) = [d for d in diagnostics if d.code == "LLM301"]
        (related,) = warmup.related_information
        assert related.location.uri == uri
        assert session.text_at(uri, related.location.range) == "optimizer.step()"
    if session.pull:
        assert session.client.published == []  # a pull client is never pushed to


async def test_severity_from_config(session):
    (session.root / "pyproject.toml").write_text('[tool.llmarch]\nseverity = { LLM203 = "error", LLM101 = "hint" }\n')
    uri = session.open(example("model.py"))
    by_code = {d.code: d.severity for d in await session.diagnostics(uri)}
    assert by_code["LLM203"] == lsp.DiagnosticSeverity.Error
    assert by_code["LLM101"] == lsp.DiagnosticSeverity.Hint
    assert by_code["LLM201"] == lsp.DiagnosticSeverity.Warning


async def test_a_flood_of_edits_ends_with_the_final_version_only(session):
    original = example("model.py")
    uri = session.open(original)
    await session.diagnostics(uri)
    mark = session.mark()
    for number in range(500):  # each edit inserts a line at the top: every diagnostic moves
        text = "".join(f"# edit {n}\n" for n in range(number + 1)) + original
        session.change(uri, text)
    final_version = session.versions[uri]

    diagnostics = await session.diagnostics(uri, after=mark)
    await asyncio.sleep(5 * TEST_DEBOUNCE_MS / 1000)  # anything late would arrive now

    assert final_version == 501
    for diagnostic in diagnostics:
        assert diagnostic.range.start.line >= 500
        assert session.text_at(uri, diagnostic.range).startswith(FLAGGED_TEXT[diagnostic.code])
    if not session.pull:
        versions = [p.version for p in session.client.published[mark:] if p.uri == uri]
        assert versions[-1] == final_version
        assert versions == sorted(versions)  # never an older version after a newer one
        assert len(versions) < 50  # debounced, not one analysis per keystroke


@pytest.mark.init_options({"debounceMs": None})
async def test_the_default_debounce_waits_for_a_pause(session):
    if session.pull:
        pytest.skip("a pull client asks when it wants; debouncing is observable on pushes")
    uri = session.open(example("model.py"))
    await session.diagnostics(uri)
    loop = asyncio.get_running_loop()
    mark = session.mark()
    started = loop.time()
    for number in range(5):  # typing: a keystroke every 100 ms, each restarting the 300 ms timer
        session.change(uri, example("model.py") + f"# {number}\n")
        await asyncio.sleep(0.1)
    await session.diagnostics(uri, after=mark)
    assert loop.time() - started >= 0.4 + 0.3 - 0.05
    assert [p.version for p in session.client.published[mark:] if p.uri == uri] == [session.versions[uri]]


async def test_syntax_errors_mid_edit_keep_only_accurate_diagnostics_then_recover(session):
    good = example("model.py")
    uri = session.open(good)
    before = await session.diagnostics(uri)
    assert "LLM203" in codes(before)

    # Same line count, a line no diagnostic covers is broken: the old diagnostics still point
    # at the same text, so they may stay.
    broken_elsewhere = good.replace("def parameter_count(model: nn.Module) -> str:", "def parameter_count(model: nn.Module) -> str")
    session.change(uri, broken_elsewhere)
    kept = await session.diagnostics(uri)
    assert codes(kept) == codes(before)
    for diagnostic in kept:
        assert session.text_at(uri, diagnostic.range).startswith(FLAGGED_TEXT[diagnostic.code])

    # The flagged line itself is being edited: its diagnostic must go, the others stay.
    broken_flagged = good.replace("nhead=4, dim_feedforward", "nhead=4,, dim_feedforward")
    session.change(uri, broken_flagged)
    partial = await session.diagnostics(uri)
    assert "LLM203" not in codes(partial)
    assert "LLM101" in codes(partial)

    # A line was added: every old range could be off, so nothing is shown.
    session.change(uri, broken_elsewhere + "\n\n")
    assert await session.diagnostics(uri) == []

    # Fixed, with the text shifted: fresh, accurate diagnostics.
    session.change(uri, "# a new first line\n" + good)
    after = await session.diagnostics(uri)
    assert codes(after) == codes(before)
    for diagnostic in after:
        assert session.text_at(uri, diagnostic.range).startswith(FLAGGED_TEXT[diagnostic.code])




def _units(text: str, encoding: str) -> int:
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le")) // 2


async def test_non_ascii_columns_use_the_negotiated_encoding(session):
    text = NON_ASCII
    uri = session.open(text)
    (diagnostic,) = [d for d in await session.diagnostics(uri) if d.code == "LLM203"]

    line = text.splitlines()[2]
    start = line.index("nn.TransformerEncoderLayer")
    end = line.index("  # (B")
    encoding = session.encoder.encoding
    assert diagnostic.range.start == lsp.Position(line=2, character=_units(line[:start], encoding))
    assert diagnostic.range.end == lsp.Position(line=2, character=_units(line[:end], encoding))
    if encoding == "utf-16":  # the emoji in the string is two UTF-16 units
        assert diagnostic.range.start.character == start + 1
    else:
        assert diagnostic.range.start.character > start + 1


async def test_closing_a_document_clears_its_diagnostics(session):
    uri = session.open(example("model.py"))
    assert await session.diagnostics(uri)
    mark = session.mark()
    session.close(uri)
    if session.pull:
        report = await session.client.text_document_diagnostic_async(
            lsp.DocumentDiagnosticParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )
        assert list(report.items) == []
    else:
        cleared = await session.wait_for_publish(uri, lambda params: True, after=mark)
        assert list(cleared.diagnostics) == []
        await asyncio.sleep(5 * TEST_DEBOUNCE_MS / 1000)
        assert [list(p.diagnostics) for p in session.client.published[mark:] if p.uri == uri] == [[]]


async def test_pull_diagnostics_answer_unchanged_for_the_same_result(session):
    uri = session.open(example("model.py"))

    async def pull(previous=None):
        return await session.client.text_document_diagnostic_async(
            lsp.DocumentDiagnosticParams(text_document=lsp.TextDocumentIdentifier(uri=uri), previous_result_id=previous)
        )

    first = await pull()
    assert first.kind == "full" and first.result_id and first.items
    second = await pull(first.result_id)
    assert second.kind == "unchanged" and second.result_id == first.result_id

    session.change(uri, example("model.py").replace("att = q @ k.transpose(-2, -1)", "att = q @ k.transpose(-2, -1) / 8"))
    third = await pull(first.result_id)
    assert third.kind == "full" and third.result_id != first.result_id
    assert "LLM101" not in codes(third.items)


async def test_saving_reanalyzes(session):
    uri = session.open(example("model.py"))
    await session.diagnostics(uri)
    mark = session.mark()
    session.client.text_document_did_save(lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(uri=uri)))
    if not session.pull:
        published = await session.wait_for_publish(uri, lambda params: True, after=mark)
        assert published.version == 1 and "LLM203" in codes(published.diagnostics)


async def test_files_over_the_line_limit_are_logged_not_analyzed(session):
    text = "import torch\n" + "x = torch.zeros(1)\n" * 50_000
    uri = session.open(text, "huge.py")
    assert await session.diagnostics(uri) == []
    assert any("over the limit" in message.message for message in session.client.log_messages)
    # Still answering: a small document is analyzed at once.
    small = session.open(example("model.py"), "small.py")
    assert "LLM203" in codes(await session.diagnostics(small))


async def test_diagnostics_keep_the_clients_spelling_of_the_uri(session):
    uri = session.open(example("model.py"), "a folder/model ü.py")
    assert "%20" in uri and "%C3%BC" in uri
    assert "LLM203" in codes(await session.diagnostics(uri))
    mark = session.mark()
    session.configure({"select": ["LLM1"], "debounceMs": TEST_DEBOUNCE_MS})  # re-lints every open document
    assert codes(await session.diagnostics(uri, after=mark)) == ["LLM103", "LLM101"]
    if not session.pull:
        assert {params.uri for params in session.client.published[mark:]} <= set(session.versions)


async def test_documents_that_are_not_python_are_left_alone(session):
    uri = session.open("import torch\nlayer = nn.TransformerEncoderLayer(8, 2)\n", "notes.md", language_id="markdown")
    if session.pull:
        assert await session.diagnostics(uri) == []
    else:
        await asyncio.sleep(5 * TEST_DEBOUNCE_MS / 1000)
        assert all(params.uri != uri for params in session.client.published)
