"""`--format sarif`: SARIF 2.1.0, the format GitHub code scanning and other viewers read.

One run: the tool with every rule (id, name, descriptions, help text and markdown with the full
citations, a link to the rule's docs, its default level, tags, confidence and evidence), then one
result per finding. Columns are 1-based Unicode code points (`columnKind`), end columns exclusive,
as SARIF defines them; paths are relative to `%SRCROOT%`, the folder the check ran in.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from llmarch_lsp import __version__
from llmarch_lsp.analyzers import all_rules
from llmarch_lsp.analyzers.rule import Rule
from llmarch_lsp.findings import Confidence, Finding, Severity, Span
from llmarch_lsp.output import CheckRun, with_fix_edits

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/llmarch/llmarch-lsp"
SOURCE_ROOT = "%SRCROOT%"

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note", Severity.HINT: "note"}
# GitHub code scanning reads these two properties to rank and filter alerts.
_PRECISION = {Confidence.HIGH: "high", Confidence.MEDIUM: "medium", Confidence.LOW: "low"}
_PROBLEM_SEVERITY = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "recommendation",
                     Severity.HINT: "recommendation"}


def render_sarif(run: CheckRun, *, successful: bool = True, root: Path | None = None) -> str:
    rules = list(all_rules())
    index = {rule.code: position for position, rule in enumerate(rules)}
    results = [
        _result(report.path, finding, index, edits)
        for report, all_edits in with_fix_edits(run)
        for finding, edits in zip(report.findings, all_edits)
    ]
    notifications = [
        {
            "level": "error",
            "message": {"text": f"not checked: {report.error}"},
            "locations": [{"physicalLocation": {"artifactLocation": _artifact(report.path)}}],
        }
        for report in run.errors
    ]
    document = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "llmarch-lsp",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule(rule) for rule in rules],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "originalUriBaseIds": {SOURCE_ROOT: {"uri": _folder_uri(root or Path.cwd())}},
                "invocations": [{"executionSuccessful": successful, "toolExecutionNotifications": notifications}],
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _rule(rule: Rule) -> dict:
    sections = rule.sections
    problem = sections.get("Problem", rule.summary)
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": problem},
        "help": {"text": _help_text(rule, sections), "markdown": _help_markdown(rule, sections)},
        "helpUri": rule.docs_url,
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {
            "tags": list(dict.fromkeys(("llmarch", *rule.tags))),
            "confidence": rule.confidence.value,
            "evidence": rule.evidence.value,
            "precision": _PRECISION.get(rule.confidence, "medium"),
            "problem.severity": _PROBLEM_SEVERITY[rule.severity],
            "fix": rule.fix_safety or "none",
        },
    }


def _help_text(rule: Rule, sections: dict[str, str]) -> str:
    parts = [f"{rule.code} {rule.name}: {rule.summary}."]
    for title, body in sections.items():
        parts.append(f"{title}\n{body}")
    parts.append("References\n" + "\n".join(f"[{n}] {c.full()}" for n, c in enumerate(rule.citations, start=1)))
    parts.append(f"Documentation: {rule.docs_url}")
    return "\n\n".join(parts)


def _help_markdown(rule: Rule, sections: dict[str, str]) -> str:
    parts = [f"**{rule.code} {rule.name}**: {rule.summary}."]
    for title, body in sections.items():
        parts.append(f"### {title}\n\n{body}")
    parts.append("### References\n\n" + "\n".join(f"{n}. {c.markdown()}" for n, c in enumerate(rule.citations, start=1)))
    parts.append(f"[Full documentation]({rule.docs_url})")
    return "\n\n".join(parts)


def _result(path: str, finding: Finding, index: dict[str, int], edits) -> dict:
    artifact = _artifact(path)
    result = {
        "ruleId": finding.code,
        "ruleIndex": index[finding.code],
        "level": _LEVEL[finding.severity],
        "message": {"text": finding.message},
        "locations": [{"physicalLocation": {"artifactLocation": artifact, "region": _region(finding.span)}}],
        "properties": {"name": finding.name, "severity": finding.severity.value, "confidence": finding.confidence.value},
    }
    if finding.related:
        result["relatedLocations"] = [
            {"id": number, "message": {"text": related.message},
             "physicalLocation": {"artifactLocation": artifact, "region": _region(related.span)}}
            for number, related in enumerate(finding.related, start=1)
        ]
    if edits is not None and finding.fix is not None:
        result["fixes"] = [
            {
                "description": {"text": f"{finding.fix.title} ({finding.fix.applicability})"},
                "artifactChanges": [
                    {
                        "artifactLocation": artifact,
                        "replacements": [
                            {"deletedRegion": _region(edit.span), "insertedContent": {"text": edit.new_text}}
                            for edit in edits
                        ],
                    }
                ],
            }
        ]
    return result


def _region(span: Span) -> dict:
    return {
        "startLine": span.line,
        "startColumn": span.column + 1,
        "endLine": span.end_line,
        "endColumn": span.end_column + 1,
    }


def _artifact(path: str) -> dict:
    candidate = Path(path)
    if candidate.is_absolute():
        return {"uri": candidate.as_uri()}
    return {"uri": quote(candidate.as_posix()), "uriBaseId": SOURCE_ROOT}


def _folder_uri(folder: Path) -> str:
    uri = folder.resolve().as_uri()
    return uri if uri.endswith("/") else uri + "/"
