"""The pygls language server: feature registration and the glue between documents, settings,
the engine and the LSP adapters. Entry point: `serve()`.

Diagnostics are pushed (`textDocument/publishDiagnostics`) unless the client can pull them
(`textDocument/diagnostic`); then they are only served on request. The server never imports
or runs user code: analysis reads the text.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from llmarch_lsp import __version__
from llmarch_lsp.config import Settings, SettingsResolver
from llmarch_lsp.engine import over_line_limit
from llmarch_lsp.findings import Finding
from llmarch_lsp.lsp import code_actions, hover
from llmarch_lsp.lsp.diagnostics import Analysis, still_accurate
from llmarch_lsp.lsp.documents import DocumentScheduler, Snapshot
from llmarch_lsp.lsp.positions import PositionEncoder
from llmarch_lsp.text import split_lines
from llmarch_lsp.lsp.settings import ClientSettings, parse_client_settings
from llmarch_lsp.lsp.worker import AnalysisWorker

logger = logging.getLogger(__name__)

NAME = "llmarch-lsp"
# Rules stop being started once this much time is spent on one document; typing stays responsive.
TIME_BUDGET_SECONDS = 2.0
BUDGET_SKIP = "skipped:"  # how the engine words a rule it did not start because the budget was spent
CONFIG_GLOBS = ("**/pyproject.toml", "**/llmarch.toml")
WATCHER_REGISTRATION_ID = "llmarch-config-watcher"


@dataclass(frozen=True)
class Outcome:
    """What the worker thread learned about one snapshot (before it meets earlier results)."""

    lines: list[str]
    settings: Settings
    findings: tuple[Finding, ...] = ()
    diagnostics: list[lsp.Diagnostic] = field(default_factory=list)
    parsed: bool = True
    note: str | None = None  # why there is nothing to show (too long, syntax error)
    rule_failures: tuple[tuple[str, str], ...] = ()


class LlmarchServer(LanguageServer):
    def __init__(self):
        super().__init__(NAME, __version__)
        self.client_settings = ClientSettings()
        self.resolver = SettingsResolver()
        self.encoder = PositionEncoder()
        self.pull_diagnostics = False
        self.worker = AnalysisWorker()
        self.scheduler: DocumentScheduler[Outcome, Analysis] = DocumentScheduler(
            self._snapshot_of, self._compute, self._accept, self._on_ready, self._on_error
        )
        # Per document: the lines and diagnostics of the last text that parsed.
        self._last_good: dict[str, tuple[list[str], list[lsp.Diagnostic]]] = {}
        self._last_served: dict[str, str] = {}  # result ids, to refresh pull clients only on change
        # Python documents the client has open, by the URI exactly as the client wrote it
        # (pygls keys its documents by the unquoted URI, which a client would not recognise).
        self._open: dict[str, None] = {}
        self._said: set[tuple[str, ...]] = set()  # messages already shown or logged once

    # ---- lifecycle ----------------------------------------------------------------
    def on_initialize(self, params: lsp.InitializeParams) -> None:
        capabilities = params.capabilities
        self.pull_diagnostics = bool(capabilities.text_document and capabilities.text_document.diagnostic)
        self.encoder = PositionEncoder(self.workspace.position_encoding or "utf-16")
        self.client_settings = parse_client_settings(params.initialization_options)

    async def on_initialized(self, params: lsp.InitializedParams) -> None:
        self.worker.warm_up()
        self._report_settings_problems()
        watched = self.client_capabilities.workspace and self.client_capabilities.workspace.did_change_watched_files
        if watched and watched.dynamic_registration:
            registration = lsp.Registration(
                id=WATCHER_REGISTRATION_ID,
                method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=lsp.DidChangeWatchedFilesRegistrationOptions(
                    watchers=[lsp.FileSystemWatcher(glob_pattern=glob) for glob in CONFIG_GLOBS]
                ),
            )
            try:
                await self.client_register_capability_async(lsp.RegistrationParams(registrations=[registration]))
            except Exception as error:  # the client said it could, then refused: config is read on open
                self._log(lsp.MessageType.Info, f"could not watch configuration files: {error}")

    def on_shutdown(self, params: None) -> None:
        self.scheduler.shutdown()
        self.worker.shutdown()

    # ---- documents ----------------------------------------------------------------
    def did_open(self, params: lsp.DidOpenTextDocumentParams) -> None:
        document = params.text_document
        if document.language_id == "python" or document.uri.endswith((".py", ".pyi")):
            self._open[document.uri] = None
            self.scheduler.schedule(document.uri, 0)

    def did_change(self, params: lsp.DidChangeTextDocumentParams) -> None:
        if params.text_document.uri in self._open:
            self.scheduler.schedule(params.text_document.uri, self.client_settings.debounce_ms / 1000)

    def did_save(self, params: lsp.DidSaveTextDocumentParams) -> None:
        if params.text_document.uri in self._open:
            self.scheduler.schedule(params.text_document.uri, 0)

    def did_close(self, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        if uri not in self._open:
            return  # not a document we analyse
        del self._open[uri]
        self.scheduler.forget(uri)
        self._last_good.pop(uri, None)
        self._last_served.pop(uri, None)
        if not self.pull_diagnostics:  # a pull client drops a closed document's diagnostics itself
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # ---- requests -----------------------------------------------------------------
    async def diagnostic(self, params: lsp.DocumentDiagnosticParams):
        uri = params.text_document.uri
        analysis = await self.scheduler.result_for(uri)
        if analysis is None:
            return lsp.RelatedFullDocumentDiagnosticReport(items=[])
        self._last_served[uri] = analysis.result_id
        if params.previous_result_id == analysis.result_id:
            return lsp.RelatedUnchangedDocumentDiagnosticReport(result_id=analysis.result_id)
        return lsp.RelatedFullDocumentDiagnosticReport(items=analysis.diagnostics, result_id=analysis.result_id)

    async def code_action(self, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        uri = params.text_document.uri
        analysis = await self.scheduler.result_for(uri)
        current = self._snapshot_of(uri)
        if analysis is None or current is None or current[0] != analysis.version:
            return []
        version, source = current
        edits = self.client_capabilities.workspace and self.client_capabilities.workspace.workspace_edit
        return code_actions.code_actions(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            source,
            analysis,
            self.encoder,
            params,
            versioned_edits=bool(edits and edits.document_changes),
        )

    async def hover(self, params: lsp.HoverParams) -> lsp.Hover | None:
        analysis = await self.scheduler.result_for(params.text_document.uri)
        if analysis is None:
            return None
        return hover.hover(analysis.findings, analysis.lines, self.encoder, params.position)

    # ---- settings -----------------------------------------------------------------
    async def did_change_configuration(self, params: lsp.DidChangeConfigurationParams) -> None:
        raw = params.settings
        if not raw and self.client_capabilities.workspace and self.client_capabilities.workspace.configuration:
            # Clients on the pull model send an empty notification and answer this request.
            try:
                (raw,) = await self.workspace_configuration_async(
                    lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section="llmarch")])
                )
            except Exception as error:
                self._log(lsp.MessageType.Warning, f"could not read the client's settings: {error}")
                return
            if raw is None:  # the client has no llmarch settings: keep the initializationOptions
                return
        self.client_settings = parse_client_settings(raw)
        self._report_settings_problems()
        self._settings_changed()

    def did_change_watched_files(self, params: lsp.DidChangeWatchedFilesParams) -> None:
        self.resolver = SettingsResolver()
        self._settings_changed()

    def _settings_changed(self) -> None:
        self.scheduler.invalidate()
        for uri in self._open:
            self.scheduler.schedule(uri, 0)

    def _report_settings_problems(self) -> None:
        for warning in self.client_settings.warnings:
            self._show_once(warning)
        if self.client_settings.unknown_keys:
            self._log_once(lsp.MessageType.Info, f"ignoring unknown client settings: {', '.join(self.client_settings.unknown_keys)}")

    def _settings_for(self, uri: str) -> Settings:
        path = _path_of(uri)
        if path is None and self.workspace.root_path:
            path = str(Path(self.workspace.root_path) / "untitled.py")  # unsaved buffers use the workspace config
        file_settings = self.resolver.for_path(Path(path)) if path is not None else Settings()
        return self.client_settings.apply(file_settings)

    # ---- analysis (see DocumentScheduler) ------------------------------------------
    def _snapshot_of(self, uri: str) -> tuple[int, str] | None:
        document = self.workspace.text_documents.get(unquote(uri))
        if document is None or uri not in self._open:
            return None
        return (document.version or 0, document.source)

    def _compute(self, snapshot: Snapshot) -> Outcome:
        """On the scheduler's thread: resolve settings (file reads), run the engine in the child."""
        lines = split_lines(snapshot.source)
        settings = self._settings_for(snapshot.uri)
        if not self.client_settings.enable:
            return Outcome(lines, settings)
        too_long = over_line_limit(snapshot.source, settings)
        if too_long:  # decided here, so a huge text is never shipped to the analysis child
            return Outcome(lines, settings, note=too_long)
        path = _path_of(snapshot.uri) or snapshot.uri
        result = self.worker.run(snapshot.uri, snapshot.source, path, settings, self.encoder.encoding, TIME_BUDGET_SECONDS)
        if result.error:
            return Outcome(lines, settings, parsed=False, note=result.error, rule_failures=result.rule_failures)
        return Outcome(lines, settings, result.findings, result.diagnostics, rule_failures=result.rule_failures)

    def _accept(self, snapshot: Snapshot, outcome: Outcome) -> Analysis:
        """On the event loop, for the current version only: report problems, keep or drop old
        diagnostics while the text does not parse."""
        uri = snapshot.uri
        for warning in outcome.settings.warnings:
            self._show_once(warning)
        skipped = [code for code, reason in outcome.rule_failures if reason.startswith(BUDGET_SKIP)]
        if skipped:
            self._log_once(
                lsp.MessageType.Info,
                f"{_display(uri)}: the {TIME_BUDGET_SECONDS:g}s analysis budget was spent; not run: {', '.join(skipped)}",
                uri,
            )
        for code, reason in outcome.rule_failures:
            if not reason.startswith(BUDGET_SKIP):
                self._log_once(lsp.MessageType.Warning, f"{_display(uri)}: rule {code} failed and was skipped: {reason}", uri)
        diagnostics = outcome.diagnostics
        if outcome.parsed:
            self._last_good[uri] = (outcome.lines, diagnostics)
            if outcome.note:
                self._log_once(lsp.MessageType.Info, f"{_display(uri)}: {outcome.note}", uri)
        else:
            previous = self._last_good.get(uri)
            diagnostics = still_accurate(previous[1], previous[0], outcome.lines) if previous else []
            logger.info("%s: %s", uri, outcome.note)
        return Analysis(snapshot.version, outcome.lines, outcome.findings, diagnostics, outcome.settings, outcome.parsed)

    def _on_ready(self, uri: str, analysis: Analysis) -> None:
        if not self.pull_diagnostics:
            self.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(uri=uri, version=analysis.version, diagnostics=analysis.diagnostics)
            )
            return
        refresh = self.client_capabilities.workspace and self.client_capabilities.workspace.diagnostics
        if refresh and refresh.refresh_support and self._last_served.get(uri) not in (None, analysis.result_id):
            self.workspace_diagnostic_refresh(None)

    def _on_error(self, uri: str, error: BaseException) -> None:
        self._log(lsp.MessageType.Error, f"{_display(uri)}: analysis failed: {type(error).__name__}: {error}")

    # ---- messages -----------------------------------------------------------------
    def _show_once(self, message: str) -> None:
        if ("show", message) not in self._said:
            self._said.add(("show", message))
            self.window_show_message(lsp.ShowMessageParams(type=lsp.MessageType.Warning, message=message))

    def _log_once(self, level: lsp.MessageType, message: str, uri: str = "") -> None:
        if ("log", uri, message) not in self._said:
            self._said.add(("log", uri, message))
            self._log(level, message)

    def _log(self, level: lsp.MessageType, message: str) -> None:
        self.window_log_message(lsp.LogMessageParams(type=level, message=message))


def _path_of(uri: str) -> str | None:
    return to_fs_path(uri) if uri.startswith("file:") else None


def _display(uri: str) -> str:
    return _path_of(uri) or uri


def create_server() -> LlmarchServer:
    server = LlmarchServer()
    features = [
        (lsp.INITIALIZE, server.on_initialize, None),
        (lsp.INITIALIZED, server.on_initialized, None),
        (lsp.SHUTDOWN, server.on_shutdown, None),
        (lsp.TEXT_DOCUMENT_DID_OPEN, server.did_open, None),
        (lsp.TEXT_DOCUMENT_DID_CHANGE, server.did_change, None),
        (lsp.TEXT_DOCUMENT_DID_SAVE, server.did_save, None),
        (lsp.TEXT_DOCUMENT_DID_CLOSE, server.did_close, None),
        (
            lsp.TEXT_DOCUMENT_DIAGNOSTIC,
            server.diagnostic,
            lsp.DiagnosticOptions(identifier="llmarch", inter_file_dependencies=False, workspace_diagnostics=False),
        ),
        (
            lsp.TEXT_DOCUMENT_CODE_ACTION,
            server.code_action,
            lsp.CodeActionOptions(code_action_kinds=code_actions.KINDS, resolve_provider=False),
        ),
        (lsp.TEXT_DOCUMENT_HOVER, server.hover, None),
        (lsp.WORKSPACE_DID_CHANGE_CONFIGURATION, server.did_change_configuration, None),
        (lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES, server.did_change_watched_files, None),
    ]
    for method, handler, options in features:
        server.feature(method, options)(_plain_function(handler))
    return server


def _plain_function(method):
    """pygls tags handlers with attributes, which bound methods cannot carry."""
    if inspect.iscoroutinefunction(method):

        async def handler(params):
            return await method(params)

    else:

        def handler(params):
            return method(params)

    return handler


def serve(transport: str = "stdio", host: str = "127.0.0.1", port: int = 2087) -> None:
    """Run the language server until the client disconnects: over stdio, or TCP on host:port."""
    server = create_server()
    if transport == "stdio":
        server.start_io()
    elif transport == "tcp":
        server.start_tcp(host, port)
    else:
        raise ValueError(f"unknown transport {transport!r} (expected 'stdio' or 'tcp')")
