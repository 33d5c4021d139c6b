"""Parse once, run the enabled rules over the shared document, apply suppressions.

The engine knows nothing about terminals or LSP: it returns a `FileReport` of plain data.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from pathlib import Path

from llmarch_lsp.config import Settings
from llmarch_lsp.document import Document
from llmarch_lsp.files import mentions_torch, read_source
from llmarch_lsp.findings import FileReport
from llmarch_lsp.suppressions import parse_suppressions


@contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector while one document is analyzed.

    A parse allocates hundreds of thousands of AST nodes that all stay alive until the analysis
    ends; with the collector on, every few hundred allocations it rescans that growing heap, which
    cost ~25% of the analysis time (measured in benchmarks/bench_check.py). Nothing analysis
    allocates needs collecting before it ends; afterwards the collector runs as usual and frees the
    document's reference cycles (facts point back at their document).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def analyze_source(
    source: str,
    path: str = "<string>",
    settings: Settings | None = None,
    *,
    time_budget: float | None = None,
    alternatives: bool = True,
) -> FileReport:
    """Findings for one document. `time_budget` (seconds) stops running further rules once spent.
    `alternatives=False` skips building alternative fixes, which only editors offer."""
    settings = settings or Settings()
    report = FileReport(path)
    if not mentions_torch(source):
        report.skipped = True
        return report
    report.error = over_line_limit(source, settings)
    if report.error:
        return report
    with _collector_paused():
        return _analyze(source, path, settings, report, time_budget, alternatives)


def _analyze(
    source: str, path: str, settings: Settings, report: FileReport, time_budget: float | None, alternatives: bool
) -> FileReport:
    started = time.perf_counter()
    try:
        document = Document(source, path)
    except SyntaxError as error:
        report.error = _describe_syntax_error(error)
        return report
    except (ValueError, RecursionError, MemoryError) as error:  # null bytes, absurd nesting
        report.error = f"cannot parse: {error}"
        return report

    try:
        _run_rules(document, settings, report, started, time_budget, alternatives)
    finally:
        document.release()  # free the tree by reference counting, not by a later full GC pass

    suppressions = parse_suppressions(source)
    report.findings = sorted(
        (finding for finding in report.findings if not suppressions.silences(finding)),
        key=_source_order,
    )
    return report


def _run_rules(
    document: Document, settings: Settings, report: FileReport, started: float, time_budget: float | None, alternatives: bool
) -> None:
    path = report.path
    rules = settings.rules_for(path)
    for position, rule in enumerate(rules):
        if time_budget is not None and time.perf_counter() - started > time_budget:
            for skipped in rules[position:]:
                report.rule_failures.append((skipped.code, f"skipped: the {time_budget:g}s analysis budget was spent"))
            break
        try:
            findings = rule.run(document, settings.options_for(rule), alternatives=alternatives)
        except Exception as error:  # one broken rule must not hide the others
            report.rule_failures.append((rule.code, f"{type(error).__name__}: {error}"))
            continue
        override = settings.severity_for(rule)
        report.findings.extend(finding.with_severity(override) if override else finding for finding in findings)


def _source_order(finding) -> tuple:
    # The span's fields spelled out: comparing tuples of ints beats the dataclass's generated `__lt__`.
    span = finding.span
    return (span.line, span.column, span.end_line, span.end_column, finding.code)


def over_line_limit(source: str, settings: Settings) -> str | None:
    """Why a file is too long to analyze, or None."""
    line_count = source.count("\n") + 1
    if line_count <= settings.max_file_lines:
        return None
    return (
        f"{line_count:,} lines is over the limit of {settings.max_file_lines:,} "
        "(`max-file-lines` in [tool.llmarch]); not analyzed"
    )


def analyze_path(path: Path, settings: Settings) -> FileReport:
    try:
        source = read_source(path)
    except OSError as error:
        return FileReport(str(path), error=f"cannot read: {error.strerror or error}")
    except ValueError as error:
        return FileReport(str(path), error=str(error))
    return analyze_source(source, str(path), settings, alternatives=False)  # the command line's path


def _describe_syntax_error(error: SyntaxError) -> str:
    where = f"line {error.lineno}" if error.lineno else "unknown line"
    if error.offset:
        where += f", column {error.offset}"
    return f"syntax error at {where}: {error.msg}"
