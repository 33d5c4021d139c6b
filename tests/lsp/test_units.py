"""The adapters on their own: positions, client settings, kept diagnostics, fix-all, scheduling."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types as lsp

from llmarch_lsp.config import Settings
from llmarch_lsp.findings import Confidence, Finding, Severity, Span
from llmarch_lsp.fixes.model import SAFE, UNSAFE, Fix, Replace
from llmarch_lsp.lsp.code_actions import FIX_ALL_KIND, code_actions
from llmarch_lsp.lsp.diagnostics import Analysis, still_accurate, to_diagnostic
from llmarch_lsp.lsp.documents import DocumentScheduler
from llmarch_lsp.lsp.positions import PositionEncoder
from llmarch_lsp.text import split_lines
from llmarch_lsp.lsp.settings import DEFAULT_DEBOUNCE_MS, parse_client_settings
from llmarch_lsp.lsp.worker import AnalysisTimeout, AnalysisWorker
from tests.lsp.conftest import apply_text_edits

LINE = 'x = "α🙂" + y  # (B, T, C) — shape'


@pytest.mark.parametrize(
    ("encoding", "units_before_y"), [("utf-16", len('x = "α🙂" + ') + 1), ("utf-8", len('x = "α🙂" + ') + 1 + 3), ("utf-32", len('x = "α🙂" + '))]
)
def test_position_encodings_round_trip(encoding, units_before_y):
    encoder = PositionEncoder(encoding)
    column = LINE.index("y")
    assert encoder.to_units(LINE, column) == units_before_y
    assert encoder.to_column(LINE, units_before_y) == column
    for column in range(len(LINE) + 1):
        assert encoder.to_column(LINE, encoder.to_units(LINE, column)) == column
    span = Span(2, column - 1, 2, len(LINE))
    assert encoder.span(["", LINE], encoder.range(["", LINE], span)) == span


def test_lines_split_like_the_protocol():
    assert split_lines("a\r\nb\rc\nd\x0ce\u2028f\n") == ["a", "b", "c", "d\x0ce\u2028f", ""]


def test_client_settings_accept_both_shapes_and_camel_case():
    nested = parse_client_settings({"llmarch": {"select": ["LLM1"], "fixAll": {"unsafe": True}, "debounceMs": 5}})
    flat = parse_client_settings({"select": "LLM1", "fixAll.unsafe": True, "debounceMs": 5})
    for settings in (nested, flat):
        applied = settings.apply(Settings(ignore=("LLM203",)))
        assert applied.select == ("LLM1",) and applied.unsafe_fixes and applied.ignore == ("LLM203",)
        assert settings.debounce_ms == 5 and not settings.warnings


def test_invalid_client_settings_fall_back_with_warnings():
    settings = parse_client_settings({"enable": "yes", "debounceMs": -1, "ignore": 3, "severity": {"LLM101": "loud"}, "path": ["x"], "colour": 1})
    assert settings.enable is True and settings.debounce_ms == DEFAULT_DEBOUNCE_MS
    assert settings.apply(Settings()) == Settings()
    assert len(settings.warnings) == 4
    assert settings.unknown_keys == ("colour",)  # `path` belongs to the editor extension


def test_empty_client_defaults_leave_the_project_configuration_alone():
    settings = parse_client_settings({"llmarch": {"select": [], "ignore": [], "severity": {}}})
    project = Settings(ignore=("LLM203",))
    assert settings.apply(project) == project
    assert not settings.warnings


def test_client_severity_merges_with_the_config_file():
    settings = parse_client_settings({"severity": {"LLM101": "error"}})
    applied = settings.apply(Settings(severity={"LLM203": Severity.HINT}))
    assert applied.severity == {"LLM203": Severity.HINT, "LLM101": Severity.ERROR}


def _finding(span: Span, fix: Fix | None = None, code: str = "LLM203") -> Finding:
    return Finding(code, "transformer-layer-post-norm", span, "message", Severity.WARNING, Confidence.HIGH, fix=fix)


def test_only_diagnostics_on_unchanged_lines_are_kept_while_the_text_does_not_parse():
    encoder = PositionEncoder()
    old = ["a = f(x)", "b = g(x)", "c = h(x)"]
    diagnostics = [to_diagnostic(_finding(Span(n, 4, n, 8)), "file:///m.py", old, encoder) for n in (1, 2, 3)]
    kept = still_accurate(diagnostics, old, ["a = f(x)", "b = g(x", "c = h(x)"])
    assert [d.range.start.line for d in kept] == [0, 2]
    assert still_accurate(diagnostics, old, [*old, ""]) == []


def _analysis(source: str, findings, settings=Settings()) -> Analysis:
    return Analysis(1, split_lines(source), tuple(findings), [], settings, True)


def _fix_all(source: str, analysis: Analysis):
    params = lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri="file:///m.py"),
        range=lsp.Range(start=lsp.Position(0, 0), end=lsp.Position(0, 0)),
        context=lsp.CodeActionContext(diagnostics=[], only=[FIX_ALL_KIND]),
    )
    document = lsp.VersionedTextDocumentIdentifier(uri="file:///m.py", version=1)
    return code_actions(document, source, analysis, PositionEncoder(), params, versioned_edits=False)


def test_fix_all_applies_safe_fixes_and_unsafe_ones_only_when_allowed():
    source = "a = 1\nb = 2\n"
    safe = _finding(Span(1, 4, 1, 5), Fix("one", SAFE, replacements=(Replace(Span(1, 4, 1, 5), "7"),)))
    unsafe = _finding(Span(2, 4, 2, 5), Fix("two", UNSAFE, replacements=(Replace(Span(2, 4, 2, 5), "9"),)))

    (action,) = _fix_all(source, _analysis(source, [safe, unsafe]))
    assert action.kind == FIX_ALL_KIND
    assert apply_text_edits(source, action.edit.changes["file:///m.py"], PositionEncoder()) == "a = 7\nb = 2\n"

    (action,) = _fix_all(source, _analysis(source, [safe, unsafe], Settings(unsafe_fixes=True)))
    assert apply_text_edits(source, action.edit.changes["file:///m.py"], PositionEncoder()) == "a = 7\nb = 9\n"

    assert _fix_all(source, _analysis(source, [unsafe])) == []


def test_quick_fixes_parse_the_document_once_per_version_however_often_asked(monkeypatch):
    import llmarch_lsp.fixes.apply as apply_module

    parses = []
    real_parse = apply_module.ast.parse
    monkeypatch.setattr(apply_module.ast, "parse", lambda text, *a, **k: parses.append(1) or real_parse(text, *a, **k))
    source = "a = 1\nb = 2\n"
    finding = _finding(Span(1, 4, 1, 5), Fix("seven", UNSAFE, replacements=(Replace(Span(1, 4, 1, 5), "7"),)))
    encoder = PositionEncoder()
    diagnostic = to_diagnostic(finding, "file:///m.py", split_lines(source), encoder)
    params = lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri="file:///m.py"),
        range=diagnostic.range,
        context=lsp.CodeActionContext(diagnostics=[diagnostic], only=[lsp.CodeActionKind.QuickFix]),
    )
    document = lsp.VersionedTextDocumentIdentifier(uri="file:///m.py", version=1)

    def ask(analysis):
        actions = code_actions(document, source, analysis, encoder, params, versioned_edits=False)
        fix = next(action for action in actions if action.title.endswith("seven"))
        return apply_text_edits(source, fix.edit.changes["file:///m.py"], encoder)

    this_version = _analysis(source, [finding])
    assert [ask(this_version) for _ in range(5)] == ["a = 7\nb = 2\n"] * 5  # the cursor moving about
    assert len(parses) == 1  # validated once, then remembered with this version
    ask(_analysis(source, [finding]))  # a new version validates afresh
    assert len(parses) == 2


async def test_results_for_an_older_version_are_dropped():
    documents = {"file:///m.py": (1, "v1")}
    ready = []
    started = asyncio.Event()
    proceed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def compute(snapshot):
        if snapshot.version == 1:  # hold version 1 until version 2 has arrived
            loop.call_soon_threadsafe(started.set)
            asyncio.run_coroutine_threadsafe(proceed.wait(), loop).result()
        return snapshot.source

    scheduler = DocumentScheduler(documents.get, compute, lambda snapshot, outcome: outcome, lambda uri, result: ready.append(result), lambda uri, error: None)
    scheduler.schedule("file:///m.py", 0)
    await started.wait()
    documents["file:///m.py"] = (2, "v2")
    scheduler.schedule("file:///m.py", 0)
    proceed.set()
    assert await scheduler.result_for("file:///m.py") == "v2"
    await asyncio.sleep(0.05)
    assert ready == ["v2"]  # v1 finished computing but was never delivered
    scheduler.shutdown()


def test_a_stuck_analysis_is_stopped_and_the_next_one_runs():
    worker = AnalysisWorker(time_limit=3.0)  # room for a child to start on a busy machine
    try:
        assert worker.call(len, "warm") == 4
        started = time.perf_counter()
        with pytest.raises(AnalysisTimeout):
            worker.call(time.sleep, 60)
        assert time.perf_counter() - started < 10
        assert worker.call(len, "fresh child") == 11
    finally:
        worker.shutdown()
