"""How `--check` results look: ruff-like text for people, one JSON object for machines, and
GitHub workflow commands that become annotations on a pull request (SARIF is in `sarif.py`)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from llmarch_lsp import __version__
from llmarch_lsp.citations import cite
from llmarch_lsp.findings import FileReport, Finding, Severity
from llmarch_lsp.text import split_lines


@dataclass
class CheckRun:
    """Everything one `--check` produced, ready to print."""

    reports: list[FileReport] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # path -> text, to show source lines and fixes
    fixed: int = 0
    fixing: bool = False  # --fix was given: the summary says what was fixed and what remains
    # path -> per finding, the edits of its fix (see `planned_fix_edits`), when the checker planned them
    fix_edits: dict[str, tuple] = field(default_factory=dict)

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
    lines_by_path: dict[str, list[str]] = {}  # split each file once, not once per finding

    def lines_of(path: str) -> list[str]:
        if path not in lines_by_path:
            lines_by_path[path] = split_lines(run.sources.get(path, ""))
        return lines_by_path[path]

    blocks = [_render_finding(path, finding, lines_of(path), palette) for path, finding in run.findings]
    for report in run.errors:
        blocks.append(f"{palette.bold(report.path)}: {palette.severity(Severity.ERROR, 'error')}: {report.error}")
    blocks.append(_summary(run, palette))
    return "\n\n".join(blocks) + "\n"


def _render_finding(path: str, finding: Finding, lines: list[str], palette: Palette) -> str:
    span = finding.span
    header = (
        f"{palette.bold(f'{path}:{span.line}:{span.column + 1}:')} "
        f"{palette.severity(finding.severity, finding.code)} {palette.dim(f'[{finding.name}]')} {finding.message}"
    )
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
    files = len(run.reports)  # as JSON's `files_checked`: every file looked at, those that failed included
    checked = f"{files} file{'s' if files != 1 else ''} checked"
    parts = []
    if run.fixing:
        parts.append(f"Fixed {run.fixed} problem{'s' if run.fixed != 1 else ''}; {count} remaining.")
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
    elif run.errors:  # not "all checks passed": some files were never analyzed
        parts.append(palette.bold(f"No problems found; {checked}."))
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
            _finding_json(report.path, finding, edits)
            for report, all_edits in with_fix_edits(run)
            for finding, edits in zip(report.findings, all_edits)
        ],
        "errors": [{"path": report.path, "message": report.error} for report in run.errors],
    }
    if run.fixing:
        document["fixed"] = run.fixed
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def with_fix_edits(run: CheckRun):
    """Each report with the edits of each finding's fix (None where there is no fix, or it would
    not parse): from the run when the checker planned them already, else planned here."""
    for report in run.reports:
        edits = run.fix_edits.get(report.path)
        if edits is None or len(edits) != len(report.findings):
            if any(finding.fix for finding in report.findings):
                from llmarch_lsp.rewrite import planned_fix_edits  # the fix machinery, only when planning

                edits = planned_fix_edits(run.sources.get(report.path), report.findings)
            else:
                edits = (None,) * len(report.findings)
        yield report, edits


def _finding_json(path: str, finding: Finding, edits) -> dict:
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
        "fix": _fix_json(finding, edits),
    }


def _fix_json(finding: Finding, edits) -> dict | None:
    if edits is None or finding.fix is None:
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


# ---- GitHub Actions workflow commands ----------------------------------------------------
_GITHUB_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice", Severity.HINT: "notice"}


def render_github(run: CheckRun) -> str:
    """`::warning file=…,line=…,col=…,endLine=…,endColumn=…,title=LLM101 unscaled-attention::message`
    per finding; columns are 1-based and `endColumn` is exclusive, as in the JSON output."""
    lines = []
    for path, finding in run.findings:
        span = finding.span
        properties = {
            "file": path,
            "line": span.line,
            "col": span.column + 1,
            "endLine": span.end_line,
            "endColumn": span.end_column + 1,
            "title": f"{finding.code} {finding.name}",
        }
        lines.append(_workflow_command(_GITHUB_LEVEL[finding.severity], properties, finding.message))
    for report in run.errors:
        lines.append(_workflow_command("error", {"file": report.path, "title": "llmarch-lsp: not checked"}, report.error or ""))
    return "".join(line + "\n" for line in lines)


def _workflow_command(command: str, properties: dict, message: str) -> str:
    listed = ",".join(f"{name}={_escape_property(str(value))}" for name, value in properties.items())
    return f"::{command} {listed}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    # The runner reads one command per line and decodes these percent escapes (in this order).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


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
    from llmarch_lsp.analyzers import find_rule

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
