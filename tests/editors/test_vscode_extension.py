"""The VS Code extension's contract, without VS Code: package.json settings, activation, commands
and workspace trust; the packaging files; the settings it sends are ones the server understands;
and, when `npm ci` has been run in editors/vscode, that the TypeScript compiles and its unit tests
(`npm test`) pass.

The real thing, in VS Code through code-server and headless Chromium, is test_vscode_e2e.py.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
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
    # Python files, and workspaces with .py files even before one is opened.
    assert {"onLanguage:python", "workspaceContains:**/*.py"} <= set(MANIFEST["activationEvents"])
    assert MANIFEST["main"] == "./out/extension.js"
    tsconfig = json.loads((EXTENSION / "tsconfig.json").read_text(encoding="utf-8"))
    assert tsconfig["compilerOptions"]["outDir"] == "out"
    commands = {command["command"]: f"{command['category']}: {command['title']}" for command in MANIFEST["contributes"]["commands"]}
    assert commands == {
        "llmarch.restart": "llmarch: Restart Server",
        "llmarch.showOutput": "llmarch: Show Output",
        "llmarch.explainRule": "llmarch: Explain Rule",
    }
    source = (EXTENSION / "src" / "extension.ts").read_text(encoding="utf-8")
    for command in commands:
        assert f"registerCommand('{command}'" in source, command
    assert "vscode-languageclient" in MANIFEST["dependencies"]
    major, minor = map(int, re.match(r"\D*(\d+)\.(\d+)", MANIFEST["engines"]["vscode"]).groups())
    assert (major, minor) >= (1, 82)  # vscode-languageclient 9 needs 1.82


def test_packaging_files() -> None:
    # `vsce package` names the file after these: llmarch-lsp-<version>.vsix
    assert MANIFEST["name"] == "llmarch-lsp"
    assert re.fullmatch(r"\d+\.\d+\.\d+", MANIFEST["version"])
    for name in ("README.md", "CHANGELOG.md", "LICENSE", ".vscodeignore", "package-lock.json", "src/extension.ts"):
        assert (EXTENSION / name).is_file(), name
    assert f"## {MANIFEST['version']}" in (EXTENSION / "CHANGELOG.md").read_text(encoding="utf-8")
    ignored = (EXTENSION / ".vscodeignore").read_text(encoding="utf-8").split()
    assert {"src/**", "e2e/**", "out/test/**"} <= set(ignored)
    assert MANIFEST["publisher"] and MANIFEST["license"] == "MIT"
    lock = json.loads((EXTENSION / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["name"] == MANIFEST["name"] and lock["packages"][""]["version"] == MANIFEST["version"]
    assert lock["packages"][""]["dependencies"] == MANIFEST["dependencies"]
    assert lock["packages"][""]["devDependencies"] == MANIFEST["devDependencies"]


def test_icon_is_a_128_pixel_png() -> None:
    icon = EXTENSION / MANIFEST["icon"]
    header = icon.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (128, 128)
    assert "!icon.png" in (EXTENSION / ".vscodeignore").read_text(encoding="utf-8").split()


def test_readme_screenshot_exists() -> None:
    readme = (EXTENSION / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images, "the README shows the extension at work"
    for image in images:
        assert (EXTENSION / image).is_file(), image


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


NEEDS_NPM = pytest.mark.skipif(
    not (EXTENSION / "node_modules" / "typescript").is_dir() or shutil.which("npx") is None,
    reason="run `npm ci` in editors/vscode to build and unit-test the extension (tests/run.sh does)",
)


@NEEDS_NPM
def test_typescript_compiles() -> None:
    result = subprocess.run(
        ["npx", "--no-install", "tsc", "--noEmit", "-p", str(EXTENSION)],
        capture_output=True, text=True, timeout=180, cwd=EXTENSION,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@NEEDS_NPM
def test_typescript_unit_tests_pass() -> None:
    """`npm test`: server discovery, settings translation, Explain Rule, the Python extension API."""
    result = subprocess.run(["npm", "test"], capture_output=True, text=True, timeout=300, cwd=EXTENSION)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "# fail 0" in output and "# pass " in output, output
