"""`--fix` rewrites files atomically; unsafe fixes only when asked for."""

from __future__ import annotations

import ast

from .conftest import POST_NORM_LAYER


def test_unsafe_fix_needs_explicit_opt_in(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER})
    result = llmarch("--check", "--fix")
    assert result.code == 1
    assert (root / "model.py").read_text() == POST_NORM_LAYER


def test_fix_rewrites_file_and_reports_what_remains(llmarch, project):
    root = project({"model.py": POST_NORM_LAYER})
    (root / "model.py").chmod(0o640)
    result = llmarch("--check", "--fix", "--unsafe-fixes")
    assert result.code == 0, result.stdout
    assert "Fixed 1 problem." in result.stdout
    fixed = (root / "model.py").read_text()
    assert "norm_first=True" in fixed
    assert "(Xiong et al., 2020, arXiv:2002.04745)" in fixed
    ast.parse(fixed)
    assert (root / "model.py").stat().st_mode & 0o777 == 0o640
    assert not list(root.glob(".*llmarch-tmp"))


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
