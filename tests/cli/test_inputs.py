"""Bad input: a clear error entry for that file, and the other files are still checked."""

from __future__ import annotations

import os

import pytest

from .conftest import POST_NORM_LAYER, PRE_NORM_LAYER


def _errors_by_path(result):
    return {error["path"]: error["message"] for error in result.json()["errors"]}


def test_syntax_error_non_utf8_and_huge_files_are_errors_others_still_checked(llmarch, project):
    huge = "import torch\n" + "x = 1\n" * 50_000
    project({
        "good.py": POST_NORM_LAYER,
        "broken.py": "import torch\nclass A(:\n",
        "latin1.py": "import torch\n# caf\xe9\n".encode("latin-1"),
        "huge.py": huge,
    })
    result = llmarch("--check", ".", "--format", "json")
    assert result.code == 1
    errors = _errors_by_path(result)
    assert "syntax error at line 2" in errors["broken.py"]
    assert "not valid UTF-8" in errors["latin1.py"] and "line 2" in errors["latin1.py"]
    assert "50,002 lines is over the limit" in errors["huge.py"]
    assert [finding["path"] for finding in result.json()["findings"]] == ["good.py"]
    assert result.json()["files_checked"] == 4


def test_missing_path_is_an_error_entry(llmarch, project):
    project({"good.py": POST_NORM_LAYER})
    result = llmarch("--check", "good.py", "nowhere.py", "--format", "json")
    assert result.code == 1
    assert _errors_by_path(result) == {"nowhere.py": "no such file or folder"}
    assert len(result.json()["findings"]) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read unreadable files")
def test_unreadable_file_is_an_error_entry(llmarch, project):
    root = project({"secret.py": POST_NORM_LAYER})
    (root / "secret.py").chmod(0)
    result = llmarch("--check", "--format", "json")
    assert "cannot read" in _errors_by_path(result)["secret.py"]


def test_unreadable_folder_entry_does_not_crash(llmarch, project):
    root = project({"good.py": POST_NORM_LAYER})
    os.symlink(root / "missing-target.py", root / "dangling.py")
    result = llmarch("--check", "--format", "json")
    assert result.code == 1
    assert [finding["path"] for finding in result.json()["findings"]] == ["good.py"]


def test_files_without_torch_are_skipped_before_parsing(llmarch, project):
    project({"notes.py": "this is not python at all (\n"})
    result = llmarch("--check", "--format", "json")
    assert result.code == 0 and result.json()["errors"] == []


def test_discovery_skips_vcs_venvs_build_and_gitignored(llmarch, project):
    project({
        "src/model.py": POST_NORM_LAYER,
        ".git/hooks/model.py": POST_NORM_LAYER,
        "node_modules/pkg/model.py": POST_NORM_LAYER,
        "build/lib/model.py": POST_NORM_LAYER,
        "myenv/pyvenv.cfg": "home = /usr/bin\n",
        "myenv/lib/model.py": POST_NORM_LAYER,
        "generated/model.py": POST_NORM_LAYER,
        "scratch_model.py": POST_NORM_LAYER,
        "keep/scratch_keep.py": POST_NORM_LAYER,
        ".gitignore": "generated/\nscratch_*.py\n!scratch_keep.py\n",
    })
    result = llmarch("--check", "--format", "json")
    paths = sorted(finding["path"] for finding in result.json()["findings"])
    assert paths == ["keep/scratch_keep.py", "src/model.py"]


def test_explicit_file_is_checked_even_if_ignored(llmarch, project):
    project({"scratch_model.py": POST_NORM_LAYER, ".gitignore": "scratch_*.py\n"})
    assert llmarch("--check", "scratch_model.py").code == 1


def test_a_run_with_unreadable_files_never_says_all_checks_passed(llmarch, project):
    project({"good.py": PRE_NORM_LAYER})
    result = llmarch("--check", "good.py", "nowhere.py")
    assert result.code == 1
    assert "All checks passed" not in result.stdout
    assert "No problems found; 2 files checked." in result.stdout
    assert "1 file could not be checked." in result.stdout
