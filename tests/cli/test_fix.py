"""`--fix` rewrites files atomically; unsafe fixes only when asked for; `--diff` shows and writes nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from llmarch_lsp import cli, rewrite
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.findings import Confidence, FileReport, Finding, Severity, Span
from llmarch_lsp.fixes.model import SAFE, Fix, Replace

from .conftest import POST_NORM_LAYER, PRE_NORM_LAYER

REPOSITORY = Path(__file__).resolve().parents[2]


def test_unsafe_fix_needs_explicit_opt_in(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER})
    result = llmarch("--check", "--fix")
    assert result.code == 1
    assert (root / "model.py").read_text() == POST_NORM_LAYER
    assert "Fixed 0 problems; 1 remaining." in result.stdout


def test_fix_rewrites_file_and_reports_what_remains(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER})
    (root / "model.py").chmod(0o640)
    result = llmarch("--check", "--fix", "--unsafe-fixes")
    assert result.code == 0, result.stdout
    assert "Fixed 1 problem; 0 remaining." in result.stdout
    fixed = (root / "model.py").read_text()
    assert "norm_first=True" in fixed
    assert "(Xiong et al., 2020, arXiv:2002.04745)" in fixed
    ast.parse(fixed)
    assert (root / "model.py").stat().st_mode & 0o777 == 0o640
    assert not list(root.glob(".*llmarch-tmp"))


def test_fix_summary_counts_fixed_and_remaining_and_json_says_how_many(llmarch, project):
    project({"a.py": POST_NORM_LAYER, "b.py": POST_NORM_LAYER, "clean.py": PRE_NORM_LAYER})
    result = llmarch("--check", "--fix", "--unsafe-fixes", "--format", "json")
    assert result.code == 0
    assert result.json()["fixed"] == 2 and result.json()["findings"] == []
    # Without --fix, the JSON object keeps exactly its documented keys.
    assert set(llmarch("--check", "--format", "json").json()) == {"version", "files_checked", "findings", "errors"}


def test_unsafe_fixes_without_fix_is_a_usage_error(llmarch, project):
    project({"model.py": POST_NORM_LAYER})
    assert llmarch("--check", "--unsafe-fixes").code == 2


def test_fix_keeps_crlf_line_endings_and_a_byte_order_mark(llmarch, project):
    original = ("\ufeff" + POST_NORM_LAYER).replace("\n", "\r\n").encode("utf-8")
    root = project({"model.py": original})
    assert llmarch("--check", "--fix", "--unsafe-fixes").code == 0
    fixed = (root / "model.py").read_bytes()
    assert fixed.startswith(b"\xef\xbb\xbf")
    assert b"\n" not in fixed.replace(b"\r\n", b"")
    assert b"norm_first=True" in fixed


def test_fix_through_a_symlink_rewrites_the_target_and_keeps_the_link(llmarch, project):
    root = project({"real/model.py": POST_NORM_LAYER})
    (root / "link.py").symlink_to(root / "real" / "model.py")
    assert llmarch("--check", "link.py", "--fix", "--unsafe-fixes").code == 0
    assert (root / "link.py").is_symlink()
    assert "norm_first=True" in (root / "real" / "model.py").read_text()


def test_diff_prints_a_unified_diff_and_writes_nothing(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER, "clean.py": PRE_NORM_LAYER})
    before = {path.name: path.stat().st_mtime_ns for path in root.glob("*.py")}
    result = llmarch("--check", "--diff", "--unsafe-fixes")
    assert result.code == 1  # like Ruff: something to fix
    assert result.stdout.startswith("--- a/model.py\n+++ b/model.py\n@@ ")
    assert "-layer = nn.TransformerEncoderLayer(d_model=512, nhead=8)\n" in result.stdout
    assert "+layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, norm_first=True)\n" in result.stdout
    assert "clean.py" not in result.stdout
    assert "Would fix 1 problem in 1 file" in result.stderr
    assert (root / "model.py").read_text() == POST_NORM_LAYER
    assert {path.name: path.stat().st_mtime_ns for path in root.glob("*.py")} == before
    assert not list(root.glob(".*llmarch-tmp"))


def test_diff_is_what_fix_writes_and_git_apply_accepts_it(llmarch, project, tmp_path):
    root = project({"model.py": POST_NORM_LAYER.replace("\n", "\r\n")})
    # Bytes, not text: universal newlines would turn the diff's CRLF lines into LF ones.
    diff = subprocess.run([sys.executable, "-m", "llmarch_lsp", "--check", "--diff", "--unsafe-fixes"],
                          cwd=root, capture_output=True).stdout
    assert b"\r\n" in diff
    (tmp_path / "fix.patch").write_bytes(diff)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    applied = subprocess.run(["git", "apply", "--check", "fix.patch"], cwd=root, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    subprocess.run(["git", "apply", "fix.patch"], cwd=root, check=True)
    patched = (root / "model.py").read_bytes()
    (root / "model.py").write_bytes(POST_NORM_LAYER.replace("\n", "\r\n").encode())
    assert llmarch("--check", "--fix", "--unsafe-fixes").code == 0
    assert (root / "model.py").read_bytes() == patched


def test_diff_without_unsafe_fixes_shows_nothing_but_still_fails_on_findings(llmarch, project):
    project({"model.py": POST_NORM_LAYER})
    result = llmarch("--check", "--diff")
    assert result.code == 1 and result.stdout == ""
    assert "Nothing to fix; 1 problem found." in result.stderr


def test_diff_on_a_clean_project_exits_zero(llmarch, project):
    project({"clean.py": PRE_NORM_LAYER})
    result = llmarch("--check", "--diff")
    assert result.code == 0 and result.stdout == ""


def test_diff_does_not_combine_with_machine_formats(llmarch, project):
    project({"model.py": POST_NORM_LAYER})
    result = llmarch("--check", "--diff", "--format", "json")
    assert result.code == 2 and "--diff" in result.stderr


def test_fix_works_after_a_cached_run(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER})
    assert llmarch("--check").code == 1
    assert "(1 from the cache)" in llmarch("--check", "--verbose").stderr
    result = llmarch("--check", "--fix", "--unsafe-fixes")
    assert result.code == 0 and "Fixed 1 problem" in result.stdout
    assert "norm_first=True" in (root / "model.py").read_text()
    assert llmarch("--check").code == 0


def test_fix_fixes_every_bundled_example_and_the_result_parses(llmarch, tmp_path):
    for name in ("model.py", "train.py"):
        (tmp_path / name).write_text((REPOSITORY / "examples" / name).read_text())
    result = llmarch("--check", "--fix", "--unsafe-fixes", "--format", "json")
    assert result.code != 2, result.stderr
    assert result.json()["fixed"] >= 4
    for name in ("model.py", "train.py"):
        ast.parse((tmp_path / name).read_text())
    again = llmarch("--check", "--fix", "--unsafe-fixes", "--format", "json")
    assert again.json()["fixed"] == 0  # fix-all twice changes nothing the second time


# ---- a file that changes between the check and the write is left alone ---------------------
def test_file_changed_on_disk_during_the_run_is_left_untouched(tmp_path, monkeypatch, capsys):
    path = tmp_path / "model.py"
    path.write_text(POST_NORM_LAYER)
    someone_elses_edit = POST_NORM_LAYER + "# edited in the editor meanwhile\n"
    real_fix_source = rewrite.fix_source

    def fix_while_the_user_types(*arguments, **keywords):
        outcome = real_fix_source(*arguments, **keywords)
        path.write_text(someone_elses_edit)  # after the file was read, before it is written
        return outcome

    monkeypatch.setattr(rewrite, "fix_source", fix_while_the_user_types)  # the CLI imports it when fixing
    monkeypatch.chdir(tmp_path)
    code = cli.main(["--check", "model.py", "--fix", "--unsafe-fixes", "--no-cache"])
    output = capsys.readouterr()
    assert code == 1
    assert path.read_text() == someone_elses_edit
    assert "model.py changed on disk while it was being checked; left untouched" in output.err
    assert "Fixed 0 problems; 1 remaining." in output.out
    assert not list(tmp_path.glob(".*llmarch-tmp"))


def test_write_if_unchanged_refuses_a_changed_or_missing_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("a = 1\n")
    with pytest.raises(rewrite.FileChanged):
        rewrite.write_if_unchanged(path, "a = 0\n", "a = 2\n")
    assert path.read_text() == "a = 1\n"
    rewrite.write_if_unchanged(path, "a = 1\n", "a = 2\n")
    assert path.read_text() == "a = 2\n"
    with pytest.raises(rewrite.FileChanged):
        rewrite.write_if_unchanged(tmp_path / "gone.py", "a = 1\n", "a = 2\n")
    assert not (tmp_path / "gone.py").exists()


def test_a_failed_write_leaves_the_original_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.py"
    path.write_text("a = 1\n")

    def disk_full(*arguments):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rewrite.os, "replace", disk_full)
    with pytest.raises(OSError):
        rewrite.write_atomically(path, "a = 2\n")
    assert path.read_text() == "a = 1\n"
    assert not list(tmp_path.glob(".*llmarch-tmp"))


def test_alternative_fixes_are_never_applied():
    source = "import torch\nx = 1\n"
    alternative = Fix("Another way", SAFE, replacements=(Replace(Span(2, 4, 2, 5), "2"),))
    finding = Finding("LLM999", "example", Span(2, 0, 2, 5), "m", Severity.WARNING, Confidence.HIGH,
                      fix=None, alternatives=(alternative,))
    report = FileReport("x.py", findings=[finding])
    outcome = rewrite.fix_source(source, report, settings=None, unsafe=True)
    assert outcome.text == source and outcome.fixed == 0


def test_fix_source_applies_overlapping_fixes_over_several_passes():
    source = POST_NORM_LAYER
    report = analyze_source(source, "model.py")
    outcome = rewrite.fix_source(source, report, settings=None, unsafe=True)
    assert outcome.fixed == 1 and outcome.report.findings == [] and outcome.failure is None


def test_unsafe_fixes_from_the_config_and_the_flag_that_overrides_it(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER, "pyproject.toml": "[tool.llmarch]\nunsafe-fixes = true\n"})
    assert llmarch("--check", "--fix", "--no-unsafe-fixes").code == 1
    assert (root / "model.py").read_text() == POST_NORM_LAYER
    assert "+layer = nn.TransformerEncoderLayer(d_model=512, nhead=8, norm_first=True)" in llmarch("--check", "--diff").stdout
    assert llmarch("--check", "--fix").code == 0
    assert "norm_first=True" in (root / "model.py").read_text()
    assert llmarch("--check", "--fix", "--unsafe-fixes", "--no-unsafe-fixes").code == 2
