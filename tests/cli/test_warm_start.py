"""A re-check answered from the cache loads no rule: what makes it fast in pre-commit and CI.

Each run is a fresh interpreter that reports which of the package's modules it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

from llmarch_lsp.config import Settings
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.findings import FileReport
from llmarch_lsp.runner import check_files

from .conftest import POST_NORM_LAYER, PRE_NORM_LAYER

_REPORT_IMPORTS = """
import json, sys
from llmarch_lsp.cli import main
code = main(sys.argv[1:])
loaded = sorted(name for name in sys.modules if name.startswith("llmarch_lsp."))
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def _run(cwd, *arguments):
    completed = subprocess.run([sys.executable, "-c", _REPORT_IMPORTS, *arguments], cwd=cwd, capture_output=True, text=True)
    report = json.loads(completed.stderr.strip().splitlines()[-1])
    return report["code"], report["loaded"], completed.stdout


def _rule_and_fact_modules(loaded):
    """What only analysis needs: the engine (and with it the parser), rules, facts, fix machinery."""
    analysis = ("llmarch_lsp.engine", "llmarch_lsp.document", "llmarch_lsp.analyzers.llm", "llmarch_lsp.facts.", "llmarch_lsp.fixes.apply")
    return [name for name in loaded if name.startswith(analysis)]


def test_a_warm_recheck_with_a_config_file_imports_no_rule(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.llmarch]\nignore = ["LLM801"]\nseverity = { LLM203 = "error" }\n')
    (tmp_path / "model.py").write_text(POST_NORM_LAYER)
    (tmp_path / "clean.py").write_text(PRE_NORM_LAYER)

    cold_code, cold_loaded, cold_output = _run(tmp_path, "--check", ".")
    assert cold_code == 1 and "LLM203" in cold_output
    assert "llmarch_lsp.analyzers.llm203_transformer_layer_post_norm" in cold_loaded  # the cold run analyzed

    warm_code, warm_loaded, warm_output = _run(tmp_path, "--check", ".")
    assert (warm_code, warm_output) == (cold_code, cold_output)  # the same answer, from the cache
    assert _rule_and_fact_modules(warm_loaded) == []


def test_settings_and_selectors_are_checked_without_loading_rules(tmp_path):
    (tmp_path / "llmarch.toml").write_text('select = ["LLM2", "post-norm-residual"]\nignore = ["LLM999"]\n')
    (tmp_path / "notes.py").write_text("x = 1\n")  # never mentions torch: nothing to analyze
    code, loaded, _ = _run(tmp_path, "--check", ".", "--select", "LLM1,unscaled-attention", "--no-cache")
    assert code == 0
    assert _rule_and_fact_modules(loaded) == []


def test_a_rule_options_table_loads_only_that_rule(tmp_path):
    (tmp_path / "llmarch.toml").write_text("[post-norm-residual]\nshallow-depth = 4\n")
    (tmp_path / "notes.py").write_text("x = 1\n")
    code, loaded, _ = _run(tmp_path, "--check", ".", "--no-cache")
    assert code == 0
    rules = [name for name in loaded if name.startswith("llmarch_lsp.analyzers.llm")]
    assert rules == ["llmarch_lsp.analyzers.llm201_post_norm_residual"]


def test_the_runner_answers_a_file_without_torch_exactly_as_the_engine_does(tmp_path):
    path = tmp_path / "notes.py"
    path.write_text("import numpy as np\nx = np.ones(3)\n")
    (checked,) = check_files([(path, Settings())], jobs=1)
    assert checked.report == analyze_source(path.read_text(), str(path)) == FileReport(str(path), skipped=True)
