"""`[tool.llmarch]` settings: discovery, validation and what they enable.

Bad settings never crash a run: each problem becomes a warning naming the key, and the
default is used instead.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from llmarch_lsp.findings import Severity
from llmarch_lsp.text import toml_parser

if TYPE_CHECKING:
    from llmarch_lsp.analyzers.rule import Rule

# The rule registry (every rule module, with its facts and fixes) and the TOML parser are
# imported where they are needed: a re-check answered from the cache needs neither.

DEFAULT_MAX_FILE_LINES = 20_000
CONFIG_FILES = ("llmarch.toml", "pyproject.toml")

_TOP_LEVEL_KEYS = {"select", "ignore", "per-file-ignores", "severity", "max-file-lines", "unsafe-fixes"}


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ("ALL",)
    ignore: tuple[str, ...] = ()
    per_file_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    severity: Mapping[str, Severity] = field(default_factory=dict)
    rule_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_file_lines: int = DEFAULT_MAX_FILE_LINES
    unsafe_fixes: bool = False
    root: Path | None = None  # the folder of the config file; per-file-ignores are relative to it
    source: Path | None = None  # the config file itself
    warnings: tuple[str, ...] = ()

    def rules_for(self, path: str | None = None) -> list[Rule]:
        from llmarch_lsp.analyzers import all_rules, matches

        ignored = list(self.ignore) + list(self._per_file_ignores(path))
        return [
            rule
            for rule in all_rules()
            if any(matches(rule, selector) for selector in self.select)
            and not any(matches(rule, selector) for selector in ignored)
        ]

    def severity_for(self, rule: Rule) -> Severity | None:
        return self.severity.get(rule.code)

    def options_for(self, rule: Rule) -> dict[str, Any]:
        return rule.resolved_options(self.rule_options.get(rule.name))

    def with_overrides(
        self,
        select: Iterable[str] | None = None,
        ignore: Iterable[str] | None = None,
        extend_ignore: Iterable[str] = (),
    ) -> Settings:
        updated = self
        if select is not None:
            updated = replace(updated, select=tuple(select))
        if ignore is not None:
            updated = replace(updated, ignore=tuple(ignore))
        if extend_ignore:
            updated = replace(updated, ignore=updated.ignore + tuple(extend_ignore))
        return updated

    def _per_file_ignores(self, path: str | None) -> Iterable[str]:
        if not path or not self.per_file_ignores:
            return ()
        candidate = PurePath(path)
        names = {candidate.as_posix(), candidate.name}
        if self.root is not None:
            try:
                names.add(Path(path).resolve().relative_to(self.root.resolve()).as_posix())
            except ValueError:
                pass
        found: list[str] = []
        for pattern, selectors in self.per_file_ignores.items():
            if any(fnmatch.fnmatch(name, pattern) for name in names):
                found.extend(selectors)
        return found


def parse_selectors(value: str | Iterable[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if str(item).strip()]


def settings_from_table(table: Mapping[str, Any], where: str, root: Path | None = None) -> Settings:
    """Validate a `[tool.llmarch]` table (or the same keys from an editor's settings)."""
    from llmarch_lsp.analyzers import find_rule_id

    warnings: list[str] = []
    values: dict[str, Any] = {}
    rule_options: dict[str, dict[str, Any]] = {}

    def warn(message: str) -> None:
        warnings.append(f"{where}: {message}")

    for key, value in table.items():
        rule = find_rule_id(key)
        if key not in _TOP_LEVEL_KEYS and rule is not None and rule.name == key:
            rule_options[rule.name] = _rule_options(rule.load(), value, warn)  # only this rule's module loads
        elif key in ("select", "ignore"):
            selectors = _selectors(key, value, warn)
            if selectors is not None:
                values[key] = tuple(selectors)
        elif key == "per-file-ignores":
            values["per_file_ignores"] = _per_file_ignores(value, warn)
        elif key == "severity":
            values["severity"] = _severities(value, warn)
        elif key == "max-file-lines":
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                values["max_file_lines"] = value
            else:
                warn(f"`max-file-lines` must be a positive integer, not {value!r}; using {DEFAULT_MAX_FILE_LINES}")
        elif key == "unsafe-fixes":
            if isinstance(value, bool):
                values["unsafe_fixes"] = value
            else:
                warn(f"`unsafe-fixes` must be true or false, not {value!r}; using false")
        else:
            warn(f"unknown key `{key}` (known: {', '.join(sorted(_TOP_LEVEL_KEYS))}, or a rule name for its options)")
    return Settings(rule_options=rule_options, root=root, warnings=tuple(warnings), **values)


def load_settings(path: Path) -> Settings:
    """Settings from a config file; a file that cannot be read or parsed gives a warning."""
    tomllib = toml_parser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        return Settings(root=path.parent, source=path, warnings=(f"{path}: cannot read configuration: {error}",))
    table = data if path.name == "llmarch.toml" else data.get("tool", {}).get("llmarch", {})
    if not isinstance(table, dict):
        return Settings(root=path.parent, source=path, warnings=(f"{path}: [tool.llmarch] must be a table",))
    where = str(path) if path.name == "llmarch.toml" else f"{path} [tool.llmarch]"
    return replace(settings_from_table(table, where, root=path.parent), source=path)


def find_config(start: Path) -> Path | None:
    """The nearest llmarch.toml, or pyproject.toml with a [tool.llmarch] table, above `start`."""
    folder = start if start.is_dir() else start.parent
    for candidate_folder in (folder, *folder.parents):
        for name in CONFIG_FILES:
            candidate = candidate_folder / name
            if candidate.is_file() and (name == "llmarch.toml" or _has_llmarch_table(candidate)):
                return candidate
    return None


class SettingsResolver:
    """Finds and caches the settings that apply to each file (nearest config wins)."""

    def __init__(self, explicit: Path | None = None):
        self._explicit = explicit
        self._by_config: dict[Path | None, Settings] = {}
        self._by_folder: dict[Path, Path | None] = {}

    def for_path(self, path: Path) -> Settings:
        config = self._explicit or self._config_for_folder(path.resolve().parent)
        if config not in self._by_config:
            self._by_config[config] = load_settings(config) if config else Settings()
        return self._by_config[config]

    def loaded(self) -> Iterable[Settings]:
        return self._by_config.values()

    def _config_for_folder(self, folder: Path) -> Path | None:
        if folder not in self._by_folder:
            self._by_folder[folder] = find_config(folder)
        return self._by_folder[folder]


def _has_llmarch_table(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if "llmarch" not in text:
        return False
    tomllib = toml_parser()
    try:
        return "llmarch" in tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError:
        return True  # let load_settings report the parse error rather than silently skip it


def _selectors(key: str, value: Any, warn) -> list[str] | None:
    if isinstance(value, str):
        value = parse_selectors(value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        warn(f"`{key}` must be a list of rule codes, prefixes or names, not {value!r}; ignoring it")
        return None
    from llmarch_lsp.analyzers import is_known_selector

    known = []
    for selector in value:
        if is_known_selector(selector):
            known.append(selector)
        else:
            warn(f"`{key}` names an unknown rule or prefix `{selector}`; ignoring it")
    return known


def _per_file_ignores(value: Any, warn) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        warn(f"`per-file-ignores` must be a table of glob = [codes], not {value!r}; ignoring it")
        return {}
    result = {}
    for pattern, selectors in value.items():
        parsed = _selectors(f"per-file-ignores.{pattern}", selectors, warn)
        if parsed:
            result[pattern] = tuple(parsed)
    return result


def _severities(value: Any, warn) -> dict[str, Severity]:
    if not isinstance(value, dict):
        warn(f"`severity` must be a table of CODE = \"error|warning|info|hint\", not {value!r}; ignoring it")
        return {}
    from llmarch_lsp.analyzers import RULE_IDS, matches

    result = {}
    allowed = ", ".join(level.value for level in Severity)
    for selector, level in value.items():
        targets = [rule for rule in RULE_IDS if matches(rule, selector)]
        if not targets:
            warn(f"`severity` names an unknown rule `{selector}`; ignoring it")
            continue
        try:
            severity = Severity(str(level).lower())
        except ValueError:
            warn(f"`severity.{selector}` must be one of {allowed}, not {level!r}; using the rule's default")
            continue
        for rule in targets:
            result[rule.code] = severity
    return result


def _rule_options(rule: Rule, value: Any, warn) -> dict[str, Any]:
    if not isinstance(value, dict):
        warn(f"`{rule.name}` must be a table of options; ignoring it")
        return {}
    options = {}
    for key, option_value in value.items():
        option = rule.options.get(key)
        if option is None:
            known = ", ".join(rule.options) or "none"
            warn(f"unknown option `{rule.name}.{key}` (known: {known})")
        elif type(option_value) is not type(option.default):
            warn(
                f"`{rule.name}.{key}` must be {type(option.default).__name__}, not {option_value!r}; "
                f"using {option.default!r}"
            )
        else:
            options[key] = option_value
    return options
