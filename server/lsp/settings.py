"""Client settings (`initializationOptions`, `workspace/didChangeConfiguration`) and how they
override each document's `[tool.llmarch]` configuration.

Editors send camelCase keys, either under `llmarch` or bare:
`{"llmarch": {"enable": true, "select": ["LLM1"], "ignore": [], "severity": {"LLM101": "error"},
"fixAll": {"unsafe": false}, "debounceMs": 300}}`. A bad value becomes a warning and the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from llmarch_lsp.config import Settings, settings_from_table

DEFAULT_DEBOUNCE_MS = 300
WHERE = "llmarch client settings"
# Settings the editor extension itself reads (which binary, which interpreter, tracing): not ours.
CLIENT_SIDE_KEYS = frozenset({"path", "interpreter", "trace", "importStrategy", "showNotifications", "args"})


@dataclass(frozen=True)
class ClientSettings:
    enable: bool = True
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    # Validated values of the Settings fields the client overrides, by field name.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    unknown_keys: tuple[str, ...] = ()

    def apply(self, file_settings: Settings) -> Settings:
        """The document's config-file settings with the client's overrides on top."""
        overrides = dict(self.overrides)
        if "severity" in overrides:
            overrides["severity"] = {**file_settings.severity, **overrides["severity"]}
        return replace(file_settings, **overrides) if overrides else file_settings


def parse_client_settings(raw: Any) -> ClientSettings:
    """Read `{"llmarch": {...}}` or `{...}`; None or an empty object means all defaults."""
    if raw is None:
        return ClientSettings()
    if isinstance(raw, Mapping) and "llmarch" in raw:
        raw = raw["llmarch"]
    if not isinstance(raw, Mapping):
        return ClientSettings(warnings=(f"{WHERE}: expected an object, not {raw!r}; using defaults",))
    table = _expand_dotted(raw)

    warnings: list[str] = []
    unknown: list[str] = []
    values: dict[str, Any] = {}
    file_keys: dict[str, Any] = {}
    for key, value in table.items():
        if key == "enable":
            if isinstance(value, bool):
                values["enable"] = value
            else:
                warnings.append(f"{WHERE}: `enable` must be true or false, not {value!r}; using true")
        elif key == "debounceMs":
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000:
                values["debounce_ms"] = value
            else:
                warnings.append(
                    f"{WHERE}: `debounceMs` must be an integer from 0 to 10000, not {value!r}; "
                    f"using {DEFAULT_DEBOUNCE_MS}"
                )
        elif key in ("select", "ignore", "severity"):
            # Editors send empty defaults (`[]`, `{}`) for settings the user never set: those
            # must not switch every rule off or wipe the project's own ignore list.
            if value not in (None, [], {}, ""):
                file_keys[key] = value
        elif key == "fixAll" and isinstance(value, Mapping):
            for fix_key, fix_value in value.items():
                if fix_key == "unsafe":
                    file_keys["unsafe-fixes"] = fix_value
                else:
                    unknown.append(f"fixAll.{fix_key}")
        elif key == "fixAll":
            warnings.append(f"{WHERE}: `fixAll` must be an object like {{\"unsafe\": false}}, not {value!r}")
        elif key not in CLIENT_SIDE_KEYS:
            unknown.append(key)

    # Validate each value with the config file's own rules; a wholly invalid one is dropped
    # (the config file's value stands), a partly valid one keeps its valid part.
    defaults = Settings()
    overrides: dict[str, Any] = {}
    for key, value in file_keys.items():
        checked = settings_from_table({key: value}, WHERE)
        warnings.extend(checked.warnings)
        field_name = key.replace("-", "_")
        validated = getattr(checked, field_name)
        if checked.warnings and validated == getattr(defaults, field_name):
            continue
        overrides[field_name] = validated
    return ClientSettings(overrides=overrides, warnings=tuple(warnings), unknown_keys=tuple(unknown), **values)


def _expand_dotted(table: Mapping[str, Any]) -> dict[str, Any]:
    """`{"fixAll.unsafe": true}` (a flat settings view) → `{"fixAll": {"unsafe": true}}`."""
    expanded: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(key, str) and "." in key:
            head, _, rest = key.partition(".")
            nested = expanded.setdefault(head, {})
            if isinstance(nested, dict):
                nested.update(_expand_dotted({rest: value}))
        else:
            expanded[key] = value
    return expanded
