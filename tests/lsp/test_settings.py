"""Client settings and `[tool.llmarch]` decide what is reported; bad values warn and fall back."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types as lsp

from pytest_lsp import client_capabilities

from tests.lsp.conftest import SERVER, TEST_DEBOUNCE_MS, codes, example, start_session

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.init_options({"llmarch": {"ignore": ["LLM203"]}})
async def test_initialization_options_ignore(session):
    uri = session.open(example("model.py"))
    found = codes(await session.diagnostics(uri))
    assert "LLM203" not in found and "LLM101" in found


async def test_did_change_configuration_select_relints_open_documents(session):
    uri = session.open(example("model.py"))
    assert "LLM203" in codes(await session.diagnostics(uri))
    mark = session.mark()
    session.configure({"select": ["LLM1"], "debounceMs": TEST_DEBOUNCE_MS})  # bare, without "llmarch"
    assert set(codes(await session.diagnostics(uri, after=mark))) == {"LLM101", "LLM103"}

    mark = session.mark()
    session.configure({"llmarch": {"enable": False}})
    assert await session.diagnostics(uri, after=mark) == []


async def test_invalid_client_settings_warn_and_use_defaults(session):
    uri = session.open(example("model.py"))
    await session.diagnostics(uri)
    mark = session.mark()
    session.configure({"llmarch": {"select": 5, "severity": {"LLM203": "loud"}, "debounceMs": TEST_DEBOUNCE_MS}})
    found = await session.diagnostics(uri, after=mark)
    assert {"LLM101", "LLM203"} <= set(codes(found))
    warnings = [m.message for m in session.client.messages if m.type == lsp.MessageType.Warning]
    assert any("`select` must be a list" in message for message in warnings)
    assert any("`severity.LLM203` must be one of" in message for message in warnings)


async def test_pyproject_settings_apply_and_are_reread_when_changed(session):
    pyproject = session.root / "pyproject.toml"
    pyproject.write_text('[tool.llmarch]\nignore = ["LLM203"]\nunknown-key = 1\n')
    uri = session.open(example("model.py"), "pkg/model.py")
    found = codes(await session.diagnostics(uri))
    assert "LLM203" not in found and "LLM101" in found

    await asyncio.sleep(0.1)
    warnings = [m.message for m in session.client.messages if "unknown key `unknown-key`" in m.message]
    assert len(warnings) == 1  # shown once, not per analysis

    if session.client.capabilities.workspace.did_change_watched_files.dynamic_registration:
        (registration,) = session.client.registrations
        assert registration.method == "workspace/didChangeWatchedFiles"
        globs = {watcher["globPattern"] for watcher in registration.register_options["watchers"]}
        assert globs == {"**/pyproject.toml", "**/llmarch.toml"}
    else:
        assert session.client.registrations == []

    pyproject.write_text('[tool.llmarch]\nignore = ["LLM101"]\n')
    mark = session.mark()
    session.client.workspace_did_change_watched_files(
        lsp.DidChangeWatchedFilesParams(changes=[lsp.FileEvent(uri=pyproject.as_uri(), type=lsp.FileChangeType.Changed)])
    )
    found = codes(await session.diagnostics(uri, after=mark))
    assert "LLM203" in found and "LLM101" not in found


@pytest.mark.init_options({"llmarch": {"ignore": ["LLM203"]}})
async def test_client_settings_override_the_config_file(session):
    (session.root / "pyproject.toml").write_text('[tool.llmarch]\nignore = ["LLM101"]\n')
    uri = session.open(example("model.py"))
    found = codes(await session.diagnostics(uri))
    assert "LLM203" not in found and "LLM101" in found


async def test_pull_clients_with_refresh_support_are_asked_to_pull_again(tmp_path):
    capabilities = client_capabilities("neovim")
    capabilities.workspace.diagnostics = lsp.DiagnosticWorkspaceClientCapabilities(refresh_support=True)
    client = await SERVER.start()
    try:
        session = await start_session(client, "neovim", tmp_path, {}, capabilities)
        uri = session.open(example("model.py"))
        assert "LLM203" in codes(await session.diagnostics(uri))
        assert client.diagnostic_refresh_count == 0

        session.configure({"llmarch": {"ignore": ["LLM203"], "debounceMs": TEST_DEBOUNCE_MS}})
        for _ in range(200):
            if client.diagnostic_refresh_count:
                break
            await asyncio.sleep(0.02)
        assert client.diagnostic_refresh_count == 1
        assert "LLM203" not in codes(await session.diagnostics(uri))
        assert client.published == []
        await client.shutdown_session()
    finally:
        await client.stop()
