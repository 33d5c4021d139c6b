"""`# llmarch: ignore[...]` comments: reading them, and writing them for the ignore action."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmarch_lsp.findings import Finding
from llmarch_lsp.text import split_lines

# ignore / ignore[LLM101, post-norm-residual] / ignore-file / ignore-file[LLM301]
DIRECTIVE = re.compile(r"#\s*llmarch:\s*(?P<kind>ignore-file|ignore)\b(?:\[(?P<codes>[^\]]*)\])?")

ALL = None  # a bare `ignore` silences every rule


@dataclass
class Suppressions:
    by_line: dict[int, set[str] | None] = field(default_factory=dict)
    whole_file: set[str] | None = field(default_factory=set)

    def silences(self, finding: Finding) -> bool:
        if _covers(self.whole_file, finding):
            return True
        line_codes = self.by_line.get(finding.span.line, set())
        return _covers(line_codes, finding)


def parse_suppressions(source: str) -> Suppressions:
    found = Suppressions()
    if "llmarch:" not in source:
        return found
    for number, line in enumerate(split_lines(source), start=1):
        if "llmarch:" not in line:
            continue
        for match in DIRECTIVE.finditer(line):
            codes = _codes(match.group("codes"))
            if match.group("kind") == "ignore-file":
                found.whole_file = _merge(found.whole_file, codes)
            else:
                found.by_line[number] = _merge(found.by_line.get(number, set()), codes)
    return found


def codes_in_comment(line: str) -> list[tuple[str, int, int]]:
    """Each code inside an ignore comment on `line`, with its start and end column (for hover)."""
    found = []
    for match in DIRECTIVE.finditer(line):
        if match.group("codes") is None:
            continue
        start = match.start("codes")
        for code_match in re.finditer(r"[^,\s]+", match.group("codes")):
            found.append((code_match.group(), start + code_match.start(), start + code_match.end()))
    return found


def with_ignore(line: str, code: str) -> str:
    """`line` with `code` added to its `# llmarch: ignore[...]` comment, or a new one appended."""
    for match in DIRECTIVE.finditer(line):
        if match.group("kind") != "ignore":
            continue
        codes = _codes(match.group("codes"))
        if codes is ALL or code in codes:
            return line
        merged = ", ".join([*sorted(codes), code]) if codes else code
        return line[: match.start()] + f"# llmarch: ignore[{merged}]" + line[match.end() :]
    stripped = line.rstrip()
    return f"{stripped}  # llmarch: ignore[{code}]" + line[len(stripped) :]


def _codes(text: str | None) -> set[str] | None:
    if text is None:
        return ALL
    codes = {part.strip() for part in text.split(",") if part.strip()}
    return codes or ALL


def _merge(current: set[str] | None, new: set[str] | None) -> set[str] | None:
    if current is ALL or new is ALL:
        return ALL
    return current | new


def _covers(codes: set[str] | None, finding: Finding) -> bool:
    if codes is ALL:
        return True
    return finding.code in codes or finding.name in codes
