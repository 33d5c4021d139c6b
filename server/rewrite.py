"""`--fix` and `--diff` at the file level: apply a file's fixes until none is left to apply, show
the change as a unified diff, and write it back atomically unless the file changed meanwhile.

Only `Finding.fix` is ever applied here; `Finding.alternatives` are offered by editors, where a
person picks one.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmarch_lsp.config import Settings
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.files import read_source
from llmarch_lsp.findings import FileReport
from llmarch_lsp.fixes.apply import FixError, FixPlanner, apply_fixes
from llmarch_lsp.text import lines_with_ends

# Fixes that overlap are applied one per pass; a few passes settle any real file.
MAX_PASSES = 4


@dataclass
class FixOutcome:
    text: str  # the text after every applied fix (the original when none applied)
    report: FileReport  # the findings of `text`
    fixed: int  # fixes applied
    failure: str | None = None  # why fixing stopped early, if it did


def applicable_fixes(report: FileReport, unsafe: bool):
    return [finding.fix for finding in report.findings if finding.fix is not None and (unsafe or finding.fix.is_safe)]


def fix_source(source: str, report: FileReport, settings: Settings, unsafe: bool) -> FixOutcome:
    """Apply the fixes `report` offers for `source`, re-analyzing after each pass, since a fix can
    make room for another (two fixes whose edits overlap are never applied in the same pass)."""
    text, fixed = source, 0
    for _ in range(MAX_PASSES):
        fixes = applicable_fixes(report, unsafe)
        if not fixes:
            break
        try:
            result = apply_fixes(text, fixes)
        except FixError as error:
            return FixOutcome(text, report, fixed, str(error))
        if not result.applied or result.text == text:
            break
        text, fixed = result.text, fixed + len(result.applied)
        report = analyze_source(text, report.path, settings, alternatives=False)
    return FixOutcome(text, report, fixed)


def planned_fix_edits(source: str | None, findings) -> tuple:
    """Per finding, the text edits of its fix (None where it has none, or the result would not
    parse), as the JSON and SARIF outputs show them. All fixes of a file are validated with one
    parse; the checker plans these in its workers and caches them with the report."""
    fixes = [finding.fix for finding in findings if finding.fix is not None]
    if source is None or not fixes:
        return (None,) * len(findings)
    planner = FixPlanner(source)
    planner.validate_together(fixes)
    return tuple(_edits_or_none(planner, finding.fix) for finding in findings)


def _edits_or_none(planner: FixPlanner, fix) -> tuple | None:
    if fix is None:
        return None
    try:
        return tuple(planner.edits_for(fix))
    except FixError:
        return None


def unified_diff(old: str, new: str, path: str) -> str:
    """A `git apply`-able diff of one file; a last line without a line break is marked as diff does."""
    lines = difflib.unified_diff(lines_with_ends(old), lines_with_ends(new), fromfile=f"a/{path}", tofile=f"b/{path}")
    out = []
    for line in lines:
        if line.endswith(("\n", "\r")):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


class FileChanged(Exception):
    """The file on disk is no longer the text that was checked; writing would lose someone's edit."""


def write_if_unchanged(path: Path, expected: str, text: str) -> None:
    """Replace the file's text with `text`, atomically, if it still holds `expected`.

    Raises FileChanged when it does not (edited, or gone, since it was read); OSError when the
    write fails, leaving the file as it was."""
    target = path.resolve()  # through a symlink: replace the file, not the link
    try:
        current = read_source(target)
    except (OSError, ValueError):
        raise FileChanged(f"{path} can no longer be read") from None
    if current != expected:
        raise FileChanged(f"{path} changed on disk while it was being checked")
    write_atomically(target, text)


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename over it: never half a file.
    The file's permission bits and a byte-order mark it had are kept (reading dropped the mark)."""
    mode = path.stat().st_mode
    with path.open("rb") as original:
        if original.read(3) == b"\xef\xbb\xbf":
            text = "\ufeff" + text
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".llmarch-tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
