"""`llmarch-lsp --check`, run as a user runs it: output formats, exit codes, selection."""

from __future__ import annotations

import re
from pathlib import Path

from llmarch_lsp import __version__

from .conftest import POST_NORM_LAYER, PRE_NORM_LAYER

REPOSITORY = Path(__file__).resolve().parents[2]


def test_clean_project_exits_zero(llmarch, project):
    project({"model.py": PRE_NORM_LAYER})
    result = llmarch("--check")
    assert result.code == 0, result.stdout + result.stderr
    assert "All checks passed" in result.stdout


def test_text_output_is_ruff_like_with_caret_and_citation(llmarch, project):
    project({"model.py": POST_NORM_LAYER})
    result = llmarch("--check", "model.py")
    assert result.code == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("model.py:3:9: LLM203 [transformer-layer-post-norm] ")
    assert "3 | layer = nn.TransformerEncoderLayer(d_model=512, nhead=8)" in result.stdout
    caret_line = next(line for line in result.stdout.splitlines() if "^" in line)
    assert caret_line.index("^") == result.stdout.splitlines()[2].index("layer = nn") + len("layer = ")
    assert "Xiong et al., 2020, arXiv:2002.04745" in result.stdout
    assert "Found 1 problem (1 warning); 1 file checked." in result.stdout
    assert "\x1b[" not in result.stdout  # no colour when not on a terminal


def test_colour_can_be_forced(llmarch, project):
    project({"model.py": POST_NORM_LAYER})
    assert "\x1b[" in llmarch("--check", "--color", "always").stdout


def test_json_output_contract(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "broken.py": "import torch\ndef f(:\n"})
    result = llmarch("--check", ".", "--format", "json")
    assert result.code == 1
    data = result.json()
    assert set(data) == {"version", "files_checked", "findings", "errors"}
    assert data["version"] == __version__
    assert data["files_checked"] == 2
    (finding,) = data["findings"]
    for key in ("code", "name", "severity", "path", "line", "column", "end_line", "end_column", "message", "citations", "fix"):
        assert key in finding
    assert (finding["code"], finding["name"], finding["severity"]) == ("LLM203", "transformer-layer-post-norm", "warning")
    assert (finding["line"], finding["column"], finding["end_line"], finding["end_column"]) == (3, 9, 3, 57)
    assert finding["path"] == "model.py"
    assert {"key": "xiong2020layer", "title": "On Layer Normalization in the Transformer Architecture",
            "year": 2020, "arxiv": "2002.04745"} in finding["citations"]
    fix = finding["fix"]
    assert fix["title"] == "Use pre-norm (norm_first=True)"
    assert all(set(edit) == {"line", "column", "end_line", "end_column", "new_text"} for edit in fix["edits"])
    (error,) = data["errors"]
    assert error["path"] == "broken.py" and "syntax error at line 2" in error["message"]


def test_json_fix_edits_apply_cleanly(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER})
    (finding,) = llmarch("--check", "--format", "json").json()["findings"]
    lines = (root / "model.py").read_text().splitlines(keepends=True)
    for edit in sorted(finding["fix"]["edits"], key=lambda e: (e["line"], e["column"]), reverse=True):
        start = sum(len(line) for line in lines[: edit["line"] - 1]) + edit["column"] - 1
        end = sum(len(line) for line in lines[: edit["end_line"] - 1]) + edit["end_column"] - 1
        text = "".join(lines)
        lines = (text[:start] + edit["new_text"] + text[end:]).splitlines(keepends=True)
    (root / "model.py").write_text("".join(lines))
    assert llmarch("--check").code == 0


def test_select_and_ignore_accept_codes_prefixes_and_names(llmarch, project):
    project({"model.py": POST_NORM_LAYER})
    assert llmarch("--check", "--ignore", "LLM203").code == 0
    assert llmarch("--check", "--ignore", "LLM2").code == 0
    assert llmarch("--check", "--ignore", "transformer-layer-post-norm").code == 0
    assert llmarch("--check", "--select", "LLM1,LLM3").code == 0
    assert llmarch("--check", "--select", "LLM203").code == 1
    assert llmarch("--check", "--select", "transformer-layer-post-norm").code == 1


def test_unknown_selector_is_a_usage_error(llmarch, project):
    project({"model.py": POST_NORM_LAYER})
    result = llmarch("--check", "--select", "LLM999")
    assert result.code == 2
    assert "unknown rule code, prefix or name: LLM999" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_is_a_usage_error(llmarch):
    result = llmarch("--check", "--format", "yaml")
    assert result.code == 2 and "invalid choice" in result.stderr


def test_version(llmarch):
    result = llmarch("--version")
    assert result.code == 0 and result.stdout.strip() == f"llmarch-lsp {__version__}"


def test_explain_prints_every_section_with_full_references(llmarch):
    for wanted in ("LLM203", "transformer-layer-post-norm", "llm203"):
        result = llmarch("--explain", wanted)
        assert result.code == 0
        sections = re.findall(r"^(\w[\w ]+)\n-+$", result.stdout, flags=re.MULTILINE)
        assert sections[:9] == ["Problem", "Diagnosis", "Hypothesis", "Literature", "Recommendation",
                                "Expected outcome", "Implementation", "Caveats", "Next steps"]
        assert "https://arxiv.org/abs/2002.04745" in result.stdout
    missing = llmarch("--explain", "LLM999")
    assert missing.code == 2 and "unknown rule" in missing.stderr


def test_list_rules_text_and_json(llmarch):
    text = llmarch("--list-rules")
    assert text.code == 0 and "LLM203" in text.stdout and "transformer-layer-post-norm" in text.stdout
    rules = llmarch("--list-rules", "--format", "json").json()
    assert {"code": "LLM203", "name": "transformer-layer-post-norm"}.items() <= rules[[r["code"] for r in rules].index("LLM203")].items()
    assert all({"code", "name", "summary", "severity", "citations"} <= set(rule) for rule in rules)


def test_bundled_examples_trip_all_four_headline_rules(llmarch):
    result = llmarch("--check", "examples", "--format", "json", cwd=REPOSITORY)
    assert result.code == 1
    codes = {finding["code"] for finding in result.json()["findings"]}
    assert {"LLM101", "LLM201", "LLM203", "LLM301"} <= codes


def test_large_folders_are_checked_in_parallel_with_the_same_results(llmarch, project):
    files = {f"pkg/model_{number:03d}.py": (POST_NORM_LAYER if number % 3 == 0 else PRE_NORM_LAYER) for number in range(60)}
    files["pkg/broken.py"] = "import torch\ndef f(:\n"
    project(files)
    result = llmarch("--check", "pkg", "--format", "json")
    data = result.json()
    assert data["files_checked"] == 61
    assert [finding["path"] for finding in data["findings"]] == [f"pkg/model_{n:03d}.py" for n in range(0, 60, 3)]
    assert [error["path"] for error in data["errors"]] == ["pkg/broken.py"]
    text = llmarch("--check", "pkg")
    assert "3 | layer = nn.TransformerEncoderLayer(d_model=512, nhead=8)" in text.stdout  # snippets still shown


def test_paths_may_follow_other_flags(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "clean.py": PRE_NORM_LAYER})
    result = llmarch("--check", "--format", "json", "model.py")
    assert result.code == 1 and result.json()["files_checked"] == 1
    assert llmarch("--check", "clean.py", "--format", "json", "model.py").json()["files_checked"] == 2
    assert llmarch("--check", "--fix", "clean.py").code == 0
    stray = llmarch("--format", "json", "model.py")
    assert stray.code == 2 and "paths go with --check" in stray.stderr
