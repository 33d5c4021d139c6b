"""Before/after snapshots of each attention and normalization fix on nanoGPT-, Hugging Face- and
timm-style files (tests/fixes/samples.py), as unified diffs in tests/fixes/snapshots/.

A diff shows both sides and that nothing outside the fix's range changed. After an intended
change to a fix, regenerate with `LLMARCH_UPDATE_SNAPSHOTS=1 pytest tests/fixes/test_fix_snapshots.py`
and read the new diffs before committing them.
"""

from __future__ import annotations

import ast
import difflib
import os
from pathlib import Path

import pytest

from llmarch_lsp.engine import analyze_source
from llmarch_lsp.fixes.apply import apply_fixes
from tests.fixes.samples import SAMPLES, fixed, source

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("LLMARCH_UPDATE_SNAPSHOTS") == "1"


def _fix_all(text: str) -> str:
    """What `--fix --unsafe-fixes` does in one pass: every rule's primary fix."""
    report = analyze_source(text, "sample.py")
    return apply_fixes(text, [f.fix for f in report.findings if f.fix is not None]).text


KINDS = {
    "llm101-scale": lambda text: fixed(text, "LLM101"),
    "llm101-sdpa": lambda text: fixed(text, "LLM101", "alternative"),
    "llm103-sdpa": lambda text: fixed(text, "LLM103"),
    "llm201-pre-norm": lambda text: fixed(text, "LLM201"),
    "llm201-ablation": lambda text: fixed(text, "LLM201", "alternative"),
    "fix-all": _fix_all,
}


def _diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}.py", f"b/{name}.py", n=2
    )
    return "".join(lines)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", list(SAMPLES))
def test_fix_matches_its_snapshot(name, kind):
    before = source(name)
    after = KINDS[kind](before)
    ast.parse(after)
    diff = _diff(before, after, name)
    path = SNAPSHOTS / f"{name}.{kind}.diff"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(diff, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with LLMARCH_UPDATE_SNAPSHOTS=1"
    assert diff == path.read_text(encoding="utf-8")


def test_the_sdpa_fix_is_the_same_edit_from_either_rule():
    for name in SAMPLES:
        assert fixed(source(name), "LLM101", "alternative") == fixed(source(name), "LLM103")
