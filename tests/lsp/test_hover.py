"""Hover explains a finding like a reviewer: diagnosis, mechanism, papers, outcome, monitoring, cost."""

from __future__ import annotations

import pytest
from lsprotocol import types as lsp

from tests.lsp.conftest import example

pytestmark = pytest.mark.asyncio(loop_scope="session")

ARXIV = {"LLM101": "1706.03762", "LLM201": "2002.04745", "LLM203": "2002.04745", "LLM301": "1908.03265"}


async def _hover(session, uri, position):
    return await session.client.text_document_hover_async(
        lsp.HoverParams(text_document=lsp.TextDocumentIdentifier(uri=uri), position=position)
    )


@pytest.mark.parametrize(("name", "code"), [("model.py", "LLM101"), ("model.py", "LLM201"), ("model.py", "LLM203"), ("train.py", "LLM301")])
async def test_hover_on_a_finding_explains_it_with_citations(session, name, code):
    uri = session.open(example(name), name)
    diagnostic = next(d for d in await session.diagnostics(uri) if d.code == code)
    inside = lsp.Position(diagnostic.range.start.line, diagnostic.range.start.character + 3)
    result = await _hover(session, uri, inside)

    text = result.contents.value
    assert result.contents.kind == lsp.MarkupKind.Markdown
    assert diagnostic.message in text
    assert f"arxiv.org/abs/{ARXIV[code]}" in text and f"arXiv:{ARXIV[code]}" in text
    for heading in ("**Mechanism**", "**Literature**", "**Expected outcome**", "**What to monitor**", "**Cost and caveats**"):
        assert heading in text
    assert result.range == diagnostic.range


async def test_hover_on_a_code_in_an_ignore_comment(session):
    text = example("model.py").replace("batch_first=True)", "batch_first=True)  # llmarch: ignore[LLM203, LLM101]")
    uri = session.open(text)
    assert "LLM203" not in [d.code for d in await session.diagnostics(uri)]
    line_number, line = next((n, line) for n, line in enumerate(text.splitlines()) if "ignore[LLM203" in line)
    column = session.encoder.units(line[: line.index("LLM203") + 2])
    result = await _hover(session, uri, lsp.Position(line_number, column))
    assert "2002.04745" in result.contents.value and "LLM203" in result.contents.value

    column = session.encoder.units(line[: line.index("LLM101") + 1])
    result = await _hover(session, uri, lsp.Position(line_number, column))
    assert "1706.03762" in result.contents.value


async def test_no_hover_away_from_findings(session):
    uri = session.open(example("model.py"))
    await session.diagnostics(uri)
    assert await _hover(session, uri, lsp.Position(0, 0)) is None
