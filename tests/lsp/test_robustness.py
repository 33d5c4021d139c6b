"""A broken rule is logged and skipped; the others still report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig

from tests.lsp.conftest import CLIENTS, codes, example, make_client, start_session

pytestmark = pytest.mark.asyncio(loop_scope="session")

BROKEN_SERVER = ClientServerConfig(
    server_command=[sys.executable, str(Path(__file__).with_name("broken_rule_server.py"))], client_factory=make_client
)


@pytest.mark.parametrize("client_name", CLIENTS)
async def test_a_rule_that_raises_is_logged_and_the_others_still_report(client_name, tmp_path):
    client = await BROKEN_SERVER.start()
    try:
        session = await start_session(client, client_name, tmp_path, {})
        uri = session.open(example("model.py"))
        assert {"LLM101", "LLM201", "LLM203"} <= set(codes(await session.diagnostics(uri)))
        failures = [m for m in client.log_messages if "LLM999" in m.message]
        assert len(failures) == 1
        assert failures[0].type == lsp.MessageType.Warning
        assert "rule LLM999 failed and was skipped: RuntimeError: this rule is broken on purpose" in failures[0].message

        session.change(uri, example("model.py") + "\n# another edit\n")
        await session.diagnostics(uri)
        assert len([m for m in client.log_messages if "LLM999" in m.message]) == 1  # logged once, not per keystroke
        await client.shutdown_session()
    finally:
        await client.stop()
