"""How `--check` results look: ruff-like text for people, one JSON object for machines."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from llmarch_lsp import __version__
from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.citations import cite
from llmarch_lsp.findings import FileReport, Finding, Severity
from llmarch_lsp.text import split_lines
from llmarch_lsp.fixes.apply import FixError, FixPlanner


@dataclass
class CheckRun:
    """Everything one `--check` produced, ready to print."""

    reports: list[FileReport] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # path -> text, to show source lines and fixes
    fixed: int = 0

    @property
    def findings(self) -> list[tuple[str, Finding]]:
        return [(report.path, finding) for report in self.reports for finding in report.findings]

    @property
    def errors(self) -> list[FileReport]:
        return [report for report in self.reports if report.error]


class Palette:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def severity(self, severity: Severity, text: str) -> str:
        colour = {Severity.ERROR: "1;31", Severity.WARNING: "1;33", Severity.INFO: "1;34", Severity.HINT: "1;32"}
        return self._wrap(colour[severity], text)


def render_text(run: CheckRun, palette: Palette) -> str:
    blocks = [_render_finding(path, finding, run.sources.get(path, ""), palette) for path, finding in run.findings]
    for report in run.errors:
        blocks.append(f"{palette.bold(report.path)}: {palette.severity(Severity.ERROR, 'error')}: {report.error}")
    blocks.append(_summary(run, palette))
    return "\n\n".join(blocks) + "\n"


def _render_finding(path: str, finding: Finding, source: str, palette: Palette) -> str:
    span = finding.span
    header = (
        f"{palette.bold(f'{path}:{span.line}:{span.column + 1}:')} "
        f"{palette.severity(finding.severity, finding.code)} {palette.dim(f'[{finding.name}]')} {finding.message}"
    )
    lines = split_lines(source)
    if not 1 <= span.line <= len(lines):
        return header
    text = lines[span.line - 1]
    gutter = " " * len(str(span.line))
    end = span.end_column if span.end_line == span.line else len(text)
    carets = "^" * max(1, end - span.column)
    snippet = [
        f"{gutter} {palette.cyan('|')}",
        f"{palette.cyan(str(span.line))} {palette.cyan('|')} {text}",
        f"{gutter} {palette.cyan('|')} {' ' * _display_width(text[: span.column])}{palette.severity(finding.severity, carets)}",
    ]
    notes = [f"{gutter} {palette.cyan('=')} see: " + "; ".join(cite(key).inline() for key in finding.citations[:2])]
    if finding.fix is not None:
        notes.append(f"{gutter} {palette.cyan('=')} fix ({finding.fix.applicability}): {finding.fix.title}")
    return "\n".join([header, *snippet, *notes])


def _display_width(text: str) -> int:
    return len(text.expandtabs(4))


def _summary(run: CheckRun, palette: Palette) -> str:
    count = len(run.findings)
    files = len(run.reports)
    checked = f"{files} file{'s' if files != 1 else ''} checked"
    parts = []
    if run.fixed:
        parts.append(f"Fixed {run.fixed} problem{'s' if run.fixed != 1 else ''}.")
    if count:
        by_severity = Counter(finding.severity.value for _, finding in run.findings)
        detail = ", ".join(
            f"{by_severity[level.value]} {level.value}{'s' if by_severity[level.value] != 1 else ''}"
            for level in Severity
            if by_severity[level.value]
        )
        parts.append(palette.bold(f"Found {count} problem{'s' if count != 1 else ''} ({detail}); {checked}."))
        fixes = [finding.fix for _, finding in run.findings if finding.fix is not None]
        safe = sum(1 for fix in fixes if fix.is_safe)
        if safe:
            parts.append(f"{safe} fixable with `--fix`.")
        if len(fixes) - safe:
            more = " more" if safe else ""
            parts.append(f"{len(fixes) - safe}{more} fixable with `--fix --unsafe-fixes` (review them: they change numerics).")
    else:
        parts.append(palette.bold(f"All checks passed; {checked}."))
    if run.errors:
        parts.append(f"{len(run.errors)} file{'s' if len(run.errors) != 1 else ''} could not be checked.")
    parts.append(palette.dim("Explain a rule: llmarch-lsp --explain CODE"))
    return "\n".join(parts)


def render_json(run: CheckRun) -> str:
    document = {
        "version": __version__,
        "files_checked": len(run.reports),
        "findings": [
            _finding_json(report.path, finding, planner)
            for report, planner in _with_fix_planners(run)
            for finding in report.findings
        ],
        "errors": [{"path": report.path, "message": report.error} for report in run.errors],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _with_fix_planners(run: CheckRun):
    """Each report with a planner that validates all of its file's fixes with one parse."""
    for report in run.reports:
        source = run.sources.get(report.path)
        fixes = [finding.fix for finding in report.findings if finding.fix is not None]
        planner = FixPlanner(source) if source is not None and fixes else None
        if planner is not None:
            planner.validate_together(fixes)
        yield report, planner


def _finding_json(path: str, finding: Finding, planner: FixPlanner | None) -> dict:
    span = finding.span
    return {
        "code": finding.code,
        "name": finding.name,
        "severity": finding.severity.value,
        "confidence": finding.confidence.value,
        "path": path,
        "line": span.line,
        "column": span.column + 1,
        "end_line": span.end_line,
        "end_column": span.end_column + 1,
        "message": finding.message,
        "citations": [cite(key).as_json() for key in finding.citations],
        "related": [
            {"line": r.span.line, "column": r.span.column + 1, "end_line": r.span.end_line,
             "end_column": r.span.end_column + 1, "message": r.message}
            for r in finding.related
        ],
        "fix": _fix_json(finding, planner),
    }


def _fix_json(finding: Finding, planner: FixPlanner | None) -> dict | None:
    if finding.fix is None or planner is None:
        return None
    try:
        edits = planner.edits_for(finding.fix)
    except FixError:
        return None
    return {
        "title": finding.fix.title,
        "applicability": finding.fix.applicability,
        "edits": [
            {
                "line": edit.span.line,
                "column": edit.span.column + 1,
                "end_line": edit.span.end_line,
                "end_column": edit.span.end_column + 1,
                "new_text": edit.new_text,
            }
            for edit in edits
        ],
    }


def render_rule_table(rules, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            [
                {
                    "code": rule.code,
                    "name": rule.name,
                    "summary": rule.summary,
                    "severity": rule.severity.value,
                    "confidence": rule.confidence.value,
                    "fix": None if rule.fix_title is None else {"title": rule.fix_title, "applicability": rule.fix_safety},
                    "citations": [citation.as_json() for citation in rule.citations],
                }
                for rule in rules
            ],
            indent=2,
        ) + "\n"
    rows = [("code", "name", "severity", "fix", "summary")]
    rows += [(r.code, r.name, r.severity.value, r.fix_safety or "-", r.summary) for r in rules]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths) + "  " + "-" * len("summary"))
    return "\n".join(lines) + "\n"


def render_explanation(code_or_name: str) -> str | None:
    rule = find_rule(code_or_name)
    if rule is None:
        return None
    sections = rule.sections
    out = [f"{rule.code} {rule.name}", "=" * len(f"{rule.code} {rule.name}"), "", rule.summary + ".", ""]
    out.append(
        f"Default severity: {rule.severity.value}. Confidence: {rule.confidence.value}. "
        + (f"Fix: {rule.fix_title} ({rule.fix_safety})." if rule.fix_title else "No automatic fix.")
    )
    for title, body in sections.items():
        out += ["", title, "-" * len(title), body]
        if title == "Literature":
            out += ["", "References:"] + [f"  [{i}] {c.full()}" for i, c in enumerate(rule.citations, start=1)]
    if rule.options:
        out += ["", "Options ([tool.llmarch." + rule.name + "])", "-" * 20]
        out += [f"  {key} = {option.default!r}: {option.description}" for key, option in rule.options.items()]
    return "\n".join(out) + "\n"
