"""The VS Code extension's contract, without VS Code: package.json settings, activation and
workspace trust; the settings it sends are ones the server understands; and, when
`npm install` has been run in editors/vscode, that the TypeScript compiles.

The real end-to-end check (code-server + headless Chromium) is `editors/vscode/e2e/run_e2e.sh`;
it is too heavy for this suite.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from llmarch_lsp.lsp.settings import CLIENT_SIDE_KEYS, parse_client_settings

EXTENSION = Path(__file__).resolve().parents[2] / "editors" / "vscode"
MANIFEST = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
PROPERTIES = MANIFEST["contributes"]["configuration"]["properties"]

# Settings the extension passes to the server, and those it uses itself to start the server.
SERVER_SETTINGS = {"llmarch.enable", "llmarch.select", "llmarch.ignore", "llmarch.severity", "llmarch.fixAll.unsafe"}
CLIENT_SETTINGS = {"llmarch.path", "llmarch.interpreter", "llmarch.trace.server"}


def test_settings_are_the_documented_ones() -> None:
    assert set(PROPERTIES) == SERVER_SETTINGS | CLIENT_SETTINGS


@pytest.mark.parametrize(
    ("name", "type_", "default"),
    [
        ("llmarch.enable", "boolean", True),
        ("llmarch.select", "array", []),
        ("llmarch.ignore", "array", []),
        ("llmarch.severity", "object", {}),
        ("llmarch.fixAll.unsafe", "boolean", False),
        ("llmarch.path", "array", []),
        ("llmarch.interpreter", "array", []),
        ("llmarch.trace.server", "string", "off"),
    ],
)
def test_setting_types_and_defaults(name: str, type_: str, default: object) -> None:
    prop = PROPERTIES[name]
    assert prop["type"] == type_
    assert prop["default"] == default
    assert prop.get("description") or prop.get("markdownDescription")
    if type_ == "array":
        assert prop["items"] == {"type": "string"}


def test_severity_values_and_trace_levels() -> None:
    assert set(PROPERTIES["llmarch.severity"]["additionalProperties"]["enum"]) == {"error", "warning", "info", "hint"}
    assert PROPERTIES["llmarch.trace.server"]["enum"] == ["off", "messages", "verbose"]


def test_server_command_settings_cannot_come_from_an_untrusted_workspace() -> None:
    untrusted = MANIFEST["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited"
    assert {"llmarch.path", "llmarch.interpreter"} <= set(untrusted["restrictedConfigurations"])
    assert untrusted["description"]
    # Machine-specific (not synced to other machines); a *trusted* workspace may still override them.
    for name in ("llmarch.path", "llmarch.interpreter"):
        assert PROPERTIES[name]["scope"] in {"machine", "machine-overridable"}


def test_activation_entry_point_and_commands() -> None:
    assert "onLanguage:python" in MANIFEST["activationEvents"]
    assert MANIFEST["main"] == "./out/extension.js"
    tsconfig = json.loads((EXTENSION / "tsconfig.json").read_text(encoding="utf-8"))
    assert tsconfig["compilerOptions"]["outDir"] == "out"
    commands = {command["command"] for command in MANIFEST["contributes"]["commands"]}
    assert "llmarch.restart" in commands
    assert "vscode-languageclient" in MANIFEST["dependencies"]
    major, minor = map(int, re.match(r"\D*(\d+)\.(\d+)", MANIFEST["engines"]["vscode"]).groups())
    assert (major, minor) >= (1, 82)  # vscode-languageclient 9 needs 1.82


def test_packaging_files() -> None:
    for name in ("README.md", "LICENSE", ".vscodeignore", "src/extension.ts", "src/settings.ts"):
        assert (EXTENSION / name).is_file(), name
    ignored = (EXTENSION / ".vscodeignore").read_text(encoding="utf-8").split()
    assert {"src/**", "e2e/**"} <= set(ignored)
    assert MANIFEST["publisher"] and MANIFEST["license"] == "MIT"


def test_every_setting_is_understood_by_the_server() -> None:
    """What settings.ts sends (only the keys a user set) parses without a warning or unknown key."""
    sent = {
        "llmarch": {
            "enable": True,
            "select": ["LLM1", "post-norm-residual"],
            "ignore": ["LLM301"],
            "severity": {"LLM101": "error"},
            "fixAll": {"unsafe": True},
        }
    }
    parsed = parse_client_settings(sent)
    assert parsed.warnings == ()
    assert parsed.unknown_keys == ()
    assert parsed.enable is True
    assert parsed.overrides["unsafe_fixes"] is True
    assert parse_client_settings({"llmarch": {"enable": True}}).overrides == {}  # defaults override nothing
    # The settings the extension keeps to itself are ones the server knows to ignore.
    for name in CLIENT_SETTINGS:
        assert name.split(".")[1] in CLIENT_SIDE_KEYS, name
    # And every server setting is read by the extension's settings code under its key.
    source = (EXTENSION / "src" / "settings.ts").read_text(encoding="utf-8")
    for name in SERVER_SETTINGS:
        key = name.removeprefix("llmarch.")
        assert f"'{key}'" in source, key


@pytest.mark.skipif(
    not (EXTENSION / "node_modules" / "typescript").is_dir() or shutil.which("npx") is None,
    reason="run `npm install` in editors/vscode to type-check the extension",
)
def test_typescript_compiles() -> None:
    result = subprocess.run(
        ["npx", "--no-install", "tsc", "--noEmit", "-p", str(EXTENSION)],
        capture_output=True, text=True, timeout=180, cwd=EXTENSION,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
