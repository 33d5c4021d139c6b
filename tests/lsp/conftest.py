"""A real server process driven over stdio by pytest-lsp, once per recorded client.

VS Code's recorded capabilities get pushed diagnostics; Neovim 0.11's ask for pull
diagnostics and UTF-8 positions, so every test runs through both code paths.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest_asyncio
import pytest_lsp
from lsprotocol import types as lsp
from pygls.protocol import default_converter
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from llmarch_lsp.lsp.positions import PositionEncoder

SERVER_COMMAND = [sys.executable, "-m", "llmarch_lsp"]
CLIENTS = ["visual-studio-code", "neovim"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Short so the suite is fast; test_the_default_debounce_waits_for_a_pause checks the default.
TEST_DEBOUNCE_MS = 30
TIMEOUT = 15.0

# The examples' headline findings, and how each flagged range starts.
HEADLINE = {"model.py": ["LLM101", "LLM201", "LLM203"], "train.py": ["LLM301"]}
FLAGGED_TEXT = {  # how each headline finding starts in the examples
    "LLM101": "q @ k.transpose(-2, -1)",
    "LLM103": "att = q @ k.transpose(-2, -1)",
    "LLM201": "self.ln_",
    "LLM203": "nn.TransformerEncoderLayer(",
    "LLM301": "torch.optim.AdamW(",
    "LLM304": "torch.optim.AdamW(",
    "LLM501": "nn.Linear(n_embd, vocab_size",
}

# A flagged call after non-ASCII text (Greek, an astral-plane emoji, an em dash).
NON_ASCII = """import torch.nn as nn

λ, ŋ = "αβ🙂—", 2; layer = nn.TransformerEncoderLayer(d_model=512, nhead=8)  # (B, T, C) — shape
encoder = nn.TransformerEncoder(layer, num_layers=12)
"""


def make_client() -> LanguageClient:
    """pytest-lsp's client, also recording every publish (with its version) and registration."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []
    client.registrations = []

    def publish(client: LanguageClient, params: lsp.PublishDiagnosticsParams):
        client.published.append(params)
        client.diagnostics[params.uri] = params.diagnostics

    def register(client: LanguageClient, params: lsp.RegistrationParams):
        client.registrations.extend(params.registrations)

    features = dict(DEFAULT_CLIENT_FEATURES)
    features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    features[lsp.CLIENT_REGISTER_CAPABILITY] = register
    register_lsp_features(client, features)
    return client


class Session:
    """A client plus the bookkeeping a test needs: documents, versions, the negotiated encoding."""

    def __init__(self, client: LanguageClient, client_name: str, result: lsp.InitializeResult, root: Path):
        self.client = client
        self.client_name = client_name
        self.result = result
        self.reconfigured = False
        self.root = root
        self.pull = client.capabilities.text_document.diagnostic is not None
        self.encoder = PositionEncoder(result.capabilities.position_encoding or "utf-16")
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}

    def open(self, text: str, name: str = "model.py", language_id: str = "python") -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        uri = from_fs_path(str(path))
        self.texts[uri], self.versions[uri] = text, 1
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text))
        )
        return uri

    def change(self, uri: str, text: str) -> int:
        """Replace the whole text (what a client does after applying edits is checked elsewhere)."""
        self.versions[uri] += 1
        self.texts[uri] = text
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return self.versions[uri]

    def edit(self, uri: str, edits: list[lsp.TextEdit]) -> int:
        """Apply TextEdits the way an editor does, then send the new text."""
        return self.change(uri, apply_text_edits(self.texts[uri], edits, self.encoder))

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri=uri)))

    def configure(self, settings) -> None:
        """Send new client settings (reset to the defaults after the test)."""
        self.reconfigured = True
        self.client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings=settings))

    def mark(self) -> int:
        """Remember how many publishes arrived, to wait for one sent after some later event."""
        return len(self.client.published)

    async def diagnostics(self, uri: str, after: int = 0) -> list[lsp.Diagnostic]:
        """The diagnostics for the document's latest version: pulled, or waited for (published
        after the `after` mark)."""
        version = self.versions[uri]
        if self.pull:
            report = await asyncio.wait_for(
                self.client.text_document_diagnostic_async(
                    lsp.DocumentDiagnosticParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
                ),
                TIMEOUT,
            )
            return list(report.items)
        published = await self.wait_for_publish(uri, lambda params: params.version == version, after)
        return list(published.diagnostics)

    async def wait_for_publish(self, uri: str, accept, after: int = 0, timeout: float = TIMEOUT):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for params in reversed(self.client.published[after:]):
                if params.uri == uri and accept(params):
                    return params
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no matching publishDiagnostics for {uri}: {self.client.published[-3:]}")
            await asyncio.sleep(0.01)

    async def code_actions(self, uri: str, range_: lsp.Range, diagnostics=(), only=None) -> list[lsp.CodeAction]:
        actions = await self.client.text_document_code_action_async(
            lsp.CodeActionParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                range=range_,
                context=lsp.CodeActionContext(diagnostics=list(diagnostics), only=only),
            )
        )
        return list(actions or [])

    def edits_of(self, uri: str, action: lsp.CodeAction) -> list[lsp.TextEdit]:
        edit = action.edit
        if edit.document_changes:
            (change,) = edit.document_changes
            assert change.text_document.uri == uri
            assert change.text_document.version == self.versions[uri]
            return list(change.edits)
        return list(edit.changes[uri])

    def text_at(self, uri: str, range_: lsp.Range) -> str:
        return text_in_range(self.texts[uri], range_, self.encoder)


def offset_of(text: str, position: lsp.Position, encoder: PositionEncoder) -> int:
    lines = text.split("\n")
    if position.line >= len(lines):
        return len(text)
    before = sum(len(line) + 1 for line in lines[: position.line])
    return before + encoder.to_column(lines[position.line], position.character)


def apply_text_edits(text: str, edits: list[lsp.TextEdit], encoder: PositionEncoder) -> str:
    located = [(offset_of(text, e.range.start, encoder), offset_of(text, e.range.end, encoder), e.new_text) for e in edits]
    for start, end, new_text in sorted(located, reverse=True):
        text = text[:start] + new_text + text[end:]
    return text


def text_in_range(text: str, range_: lsp.Range, encoder: PositionEncoder) -> str:
    return text[offset_of(text, range_.start, encoder) : offset_of(text, range_.end, encoder)]


def example(name: str) -> str:
    return (EXAMPLES / name).read_text(encoding="utf-8")


def codes(diagnostics) -> list[str]:
    return [diagnostic.code for diagnostic in diagnostics]


def pytest_configure(config):
    config.addinivalue_line("markers", "init_options(options): start a fresh server with these initializationOptions")


SERVER = ClientServerConfig(server_command=SERVER_COMMAND, client_factory=make_client)


async def start_session(
    client: LanguageClient, client_name: str, root: Path, options: dict, capabilities: lsp.ClientCapabilities | None = None
) -> Session:
    result = await client.initialize_session(
        lsp.InitializeParams(
            capabilities=capabilities or client_capabilities(client_name),
            root_uri=from_fs_path(str(root)),
            workspace_folders=[lsp.WorkspaceFolder(uri=from_fs_path(str(root)), name="workspace")],
            # An option given as None is left out (to get the server's default).
            initialization_options={
                key: value for key, value in {"debounceMs": TEST_DEBOUNCE_MS, **options}.items() if value is not None
            },
        )
    )
    return Session(client, client_name, result, root)


# One server per recorded client serves every test (starting one costs about a second);
# tests use their own folders and documents and reset what they change.
@pytest_lsp.fixture(config=SERVER, params=CLIENTS, scope="session")
async def shared_client(client: LanguageClient, request, tmp_path_factory):
    client.shared_session = await start_session(client, request.param, tmp_path_factory.mktemp("workspace"), {})
    yield
    await client.shutdown_session()


@pytest_asyncio.fixture(loop_scope="session")
async def session(shared_client: LanguageClient, request, tmp_path):
    """A session for one test; `@pytest.mark.init_options({...})` gets a server of its own."""
    marker = request.node.get_closest_marker("init_options")
    if marker is not None:
        client = await SERVER.start()
        fresh = await start_session(client, shared_client.shared_session.client_name, tmp_path, marker.args[0])
        yield fresh
        await client.shutdown_session()
        await client.stop()
        return
    shared = shared_client.shared_session
    session = Session(shared.client, shared.client_name, shared.result, tmp_path)
    yield session
    for uri in session.versions:
        session.close(uri)
    if session.reconfigured:
        session.client.workspace_did_change_configuration(
            lsp.DidChangeConfigurationParams(settings={"llmarch": {"debounceMs": TEST_DEBOUNCE_MS}})
        )
