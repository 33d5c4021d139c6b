"""Suppression comments and `[tool.llmarch]` configuration."""

from __future__ import annotations

from .conftest import POST_NORM_LAYER


def test_line_suppression_by_code_name_or_bare(llmarch, project):
    for comment in ("# llmarch: ignore[LLM203]", "# llmarch: ignore[transformer-layer-post-norm]", "# llmarch: ignore"):
        project({"model.py": POST_NORM_LAYER.replace("nhead=8)", f"nhead=8)  {comment}")})
        assert llmarch("--check").code == 0, comment


def test_line_suppression_for_another_code_does_not_silence(llmarch, project):
    project({"model.py": POST_NORM_LAYER.replace("nhead=8)", "nhead=8)  # llmarch: ignore[LLM101]")})
    assert llmarch("--check").code == 1


def test_file_suppression(llmarch, project):
    project({"model.py": "# llmarch: ignore-file[LLM203]\n" + POST_NORM_LAYER})
    assert llmarch("--check").code == 0
    project({"model.py": "# llmarch: ignore-file[LLM301]\n" + POST_NORM_LAYER})
    assert llmarch("--check").code == 1


def test_pyproject_select_ignore_and_per_file_ignores(llmarch, project):
    project({"src/model.py": POST_NORM_LAYER, "pyproject.toml": '[tool.llmarch]\nignore = ["LLM2"]\n'})
    assert llmarch("--check").code == 0
    project({"pyproject.toml": '[tool.llmarch]\nselect = ["LLM1"]\n'})
    assert llmarch("--check").code == 0
    project({"pyproject.toml": '[tool.llmarch.per-file-ignores]\n"src/*.py" = ["LLM203"]\n'})
    assert llmarch("--check").code == 0
    project({"pyproject.toml": '[tool.llmarch.per-file-ignores]\n"tests/*.py" = ["LLM203"]\n'})
    assert llmarch("--check").code == 1


def test_nearest_config_wins(llmarch, project):
    project({
        "pyproject.toml": '[tool.llmarch]\nignore = ["LLM203"]\n',
        "a/model.py": POST_NORM_LAYER,
        "b/model.py": POST_NORM_LAYER,
        "b/llmarch.toml": "select = [\"ALL\"]\n",
    })
    result = llmarch("--check", "--format", "json")
    assert [finding["path"] for finding in result.json()["findings"]] == ["b/model.py"]


def test_severity_override_and_rule_options(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "pyproject.toml": '[tool.llmarch.severity]\nLLM203 = "error"\n'})
    assert llmarch("--check", "--format", "json").json()["findings"][0]["severity"] == "error"
    # The 12-layer stack becomes "shallow" when the option says so: only a hint then.
    project({"pyproject.toml": "[tool.llmarch.transformer-layer-post-norm]\nshallow-depth = 12\n"})
    assert llmarch("--check", "--format", "json").json()["findings"][0]["severity"] == "hint"


def test_command_line_overrides_config(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "pyproject.toml": '[tool.llmarch]\nignore = ["LLM203"]\n'})
    assert llmarch("--check", "--select", "LLM203").code == 0  # ignore in config still applies
    assert llmarch("--check", "--config", "nowhere.toml").code == 2


def test_unknown_keys_and_bad_values_warn_but_do_not_crash(llmarch, project):
    project({
        "model.py": POST_NORM_LAYER,
        "pyproject.toml": (
            "[tool.llmarch]\nselekt = [\"LLM1\"]\nmax-file-lines = \"many\"\n"
            "[tool.llmarch.severity]\nLLM203 = \"loud\"\n"
            "[tool.llmarch.transformer-layer-post-norm]\ndepth = 3\n"
        ),
    })
    result = llmarch("--check", "--format", "json")
    assert result.code == 1
    assert "unknown key `selekt`" in result.stderr
    assert "`max-file-lines` must be a positive integer" in result.stderr
    assert "`severity.LLM203` must be one of error, warning, info, hint" in result.stderr
    assert "unknown option `transformer-layer-post-norm.depth`" in result.stderr
    assert result.json()["findings"][0]["severity"] == "warning"


def test_broken_config_file_warns_and_uses_defaults(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "pyproject.toml": "[tool.llmarch\nselect = \n"})
    result = llmarch("--check")
    assert result.code == 1
    assert "cannot read configuration" in result.stderr
