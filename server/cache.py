"""The `--check` result cache: `.llmarch_cache/` at the project root, one entry per analyzed text.

An entry is found by a key that hashes everything the report depends on: the file's text, its
path as shown, the settings that apply to it, and the tool itself (version, the source of every
module of the package, the Python version). Change any of them and the old entry is simply never
asked for again. There is no index to keep consistent, so concurrent runs are safe: each entry is
written to a temporary file and renamed into place, and two runs writing the same key write the
same bytes. An entry that cannot be read or decoded is a miss.

Entries are JSON of the findings dataclasses, tagged with their types, and decoding builds only
this package's dataclasses and enums: a cache folder that came with someone else's project can
give wrong answers at worst, never run code (which a pickle could).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmarch_lsp import __version__
from llmarch_lsp.config import CONFIG_FILES, Settings
from llmarch_lsp.findings import FileReport

CACHE_FOLDER = ".llmarch_cache"
# Bump when the entry layout changes; it is part of every key and of the generation folder's name.
FORMAT_VERSION = 1
# Generations (tool fingerprints) kept side by side, so switching between two installs does not thrash.
KEPT_GENERATIONS = 4

CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by llmarch-lsp.\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


def default_cache_folder(explicit_config: Path | None = None, start: Path | None = None) -> Path:
    """`$LLMARCH_CACHE_DIR`, else `.llmarch_cache` beside the config given, else beside the nearest
    pyproject.toml / llmarch.toml above the working folder, else in the working folder (as Ruff does)."""
    override = os.environ.get("LLMARCH_CACHE_DIR")
    if override:
        return Path(override)
    if explicit_config is not None:
        return explicit_config.resolve().parent / CACHE_FOLDER
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if any((candidate / name).is_file() for name in CONFIG_FILES):
            return candidate / CACHE_FOLDER
    return folder / CACHE_FOLDER


# Front ends: they read reports but never change one, so editing them keeps the cache valid.
_FRONT_ENDS = {"__main__.py", "cli.py", "output.py", "sarif.py", "progress.py", "runner.py", "rewrite.py"}


@lru_cache(maxsize=1)
def tool_fingerprint() -> str:
    """Changes whenever the analysis could: a new version, an edited rule, fact or fix module
    (an editable install changes without a new version), another Python (its `ast` differs)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{__version__}|{FORMAT_VERSION}|{sys.version}".encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if relative.parts[0] == "lsp" or relative.as_posix() in _FRONT_ENDS:
            continue
        if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def settings_fingerprint(settings: Settings) -> str:
    """Every field that can change a report (warnings only describe the config file)."""
    values = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings) if field.name != "warnings"}
    return json.dumps(values, sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "items"):
        return dict(value.items())
    return repr(value)


@dataclass(frozen=True)
class Entry:
    report: FileReport
    fix_edits: tuple | None = None  # per finding: the edits of its fix, or None (see rewrite.planned_fix_edits)


# A file changed less than this long ago may change again within the same timestamp tick; its
# stat signature is not trusted (git calls this the "racy" case).
RACY_NANOSECONDS = 2_000_000_000


def stat_signature(status: os.stat_result) -> tuple[int, ...] | None:
    """What identifies a file's content without reading it, or None when too recent to trust.
    The ctime changes on every write, even one that restores the old mtime."""
    newest = max(status.st_mtime_ns, status.st_ctime_ns)
    if time.time_ns() - newest < RACY_NANOSECONDS:
        return None
    return (status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino, status.st_dev)


class ResultCache:
    """Reports by key, in `<folder>/v<format>-<tool fingerprint>/<2 hex>/<key>.json`, plus one
    index per generation (`index.json`) that maps each file seen to its stat signature and its
    report, so an unchanged file is answered without even being read.

    The index is only a shortcut: a record counts only while the file's size, times and inode are
    exactly those recorded, and a lost or corrupt index costs speed, never correctness."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.generation = self.folder / f"v{FORMAT_VERSION}-{tool_fingerprint()[:20]}"
        self._made: set[str] = set()
        self.usable = self._prepare()
        self._index: dict[str, list] | None = None  # absolute path -> record, read on first use
        self._index_updates: dict[str, dict] = {}

    # ---- the stat index ---------------------------------------------------------------------
    def recall(self, path: str, display: str, signature: tuple | None, settings_key: str) -> Entry | None:
        """The entry recorded for this file, if it is unchanged since (same stat signature)."""
        if signature is None or not self.usable:
            return None
        record = self._records().get(path)
        if (
            not isinstance(record, dict)
            or record.get("display") != display
            or record.get("signature") != list(signature)
            or record.get("settings") != _short_digest(settings_key)
        ):
            return None
        if record.get("clean") in ("skipped", "checked"):
            return Entry(FileReport(display, skipped=record["clean"] == "skipped"))
        try:  # decoded here, for the few files with findings, not for every record of the index
            report, fix_edits = _decoded(record.get("report")), _decoded(record.get("fix_edits"))
        except (TypeError, KeyError, AttributeError, ValueError):
            return None
        if not isinstance(report, FileReport) or report.path != display:
            return None
        return _entry_from(report, fix_edits)

    def remember(self, path: str, display: str, signature: tuple | None, settings_key: str,
                 report: FileReport, fix_edits: tuple | None = None) -> None:
        if signature is None or not self.usable or report.rule_failures:
            return
        record = {"display": display, "signature": list(signature), "settings": _short_digest(settings_key)}
        if report == FileReport(display, skipped=report.skipped):
            record["clean"] = "skipped" if report.skipped else "checked"  # most files: no need to decode a report
        else:
            try:
                record["report"] = _encode(report)
                record["fix_edits"] = _encode(fix_edits)
            except TypeError:
                return
        self._index_updates[path] = record

    def save_index(self) -> None:
        """Merge this run's records into the index on disk (another run may have written it
        meanwhile: its records are kept unless this run saw the same file)."""
        if not self._index_updates or not self.usable:
            return
        target = self.generation / "index.json"
        try:
            records = json.loads(target.read_bytes()).get("records", {})
            if not isinstance(records, dict):
                records = {}
        except (OSError, ValueError, AttributeError):
            records = {}
        records.update(self._index_updates)
        for path in [path for path in records if path not in self._index_updates and not os.path.exists(path)]:
            del records[path]  # files that are gone
        try:
            data = json.dumps({"records": records}, ensure_ascii=False, separators=(",", ":"))
            _write_atomically(target, data.encode("utf-8"))
        except (OSError, TypeError):
            return
        self._index_updates = {}

    def _records(self) -> dict:
        if self._index is None:
            try:
                data = json.loads((self.generation / "index.json").read_bytes())
                records = data.get("records") if isinstance(data, dict) else None
                self._index = records if isinstance(records, dict) else {}
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                self._index = {}
        return self._index

    def key(self, source: str, path: str, settings_key: str) -> str:
        digest = hashlib.blake2b(digest_size=20)
        for part in (tool_fingerprint(), settings_key, path):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(source.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def load(self, key: str) -> Entry | None:
        if not self.usable:
            return None
        try:
            data = json.loads(self._entry(key).read_bytes(), object_hook=_decode_object)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError):
            return None  # missing, half-written by a crashed run, or from another layout: a miss
        if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("report"), FileReport):
            return None
        return _entry_from(data["report"], data.get("fix_edits"))

    def store(self, key: str, report: FileReport, fix_edits: tuple | None = None) -> bool:
        """Keep `report` (and the planned edits of its fixes, one per finding) under `key`;
        False when it is not worth keeping or cannot be written."""
        if not self.usable or report.rule_failures:
            return False  # a rule that crashed or ran out of time may do better next run
        try:
            entry = {"key": key, "report": _encode(report), "fix_edits": _encode(fix_edits)}
            data = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        except TypeError:
            return False  # a finding carries something that is not plain data; analyze it each time
        target = self._entry(key)
        try:
            if target.parent.name not in self._made:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(target.parent.name)
            _write_atomically(target, data.encode("utf-8"))
        except OSError:
            return False
        return True

    def _entry(self, key: str) -> Path:
        return self.generation / key[:2] / f"{key}.json"

    def _prepare(self) -> bool:
        try:
            fresh = not self.folder.is_dir()
            self.folder.mkdir(parents=True, exist_ok=True)
            if fresh or not (self.folder / "CACHEDIR.TAG").is_file():
                _write_atomically(self.folder / "CACHEDIR.TAG", CACHEDIR_TAG.encode())
            if fresh or not (self.folder / ".gitignore").is_file():
                _write_atomically(self.folder / ".gitignore", b"# Created by llmarch-lsp automatically.\n*\n")
            if not self.generation.is_dir():
                self.generation.mkdir(exist_ok=True)
                self._forget_old_generations()
            else:
                os.utime(self.generation)  # most recently used, for _forget_old_generations
        except OSError:
            return False  # a read-only checkout still gets checked, just without a cache
        return True

    def _forget_old_generations(self) -> None:
        generations = [path for path in self.folder.glob("v*-*") if path.is_dir() and path != self.generation]
        try:
            generations.sort(key=lambda path: path.stat().st_mtime, reverse=True)
        except OSError:
            return
        for stale in generations[KEPT_GENERATIONS - 1 :]:
            # Another run may still be reading it: its reads then miss, which is harmless.
            import shutil  # only when a generation is dropped

            shutil.rmtree(stale, ignore_errors=True)


def _entry_from(report: FileReport, fix_edits) -> Entry:
    if fix_edits is not None and (not isinstance(fix_edits, tuple) or len(fix_edits) != len(report.findings)):
        fix_edits = None
    return Entry(report, fix_edits)


@lru_cache(maxsize=64)
def _short_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    import tempfile  # only when writing: a run that only reads never needs it

    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---- the codec: dataclasses, enums and tuples of this package, as tagged JSON ------------
_DATACLASS, _ENUM, _TUPLE, _MAPPING = "$d", "$e", "$t", "$m"
_PACKAGE = "llmarch_lsp."
_ENTRY_TYPE_MODULES = frozenset({"llmarch_lsp.findings", "llmarch_lsp.fixes.model"})


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, enum.Enum):
        return {_ENUM: _type_name(type(value)), "v": value.value}
    if isinstance(value, str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            _DATACLASS: _type_name(type(value)),
            "f": {field.name: _encode(getattr(value, field.name)) for field in dataclasses.fields(value)},
        }
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {_MAPPING: [[_encode(key), _encode(item)] for key, item in value.items()]}
    raise TypeError(f"cannot cache a {type(value).__name__}")


def _type_name(cls: type) -> str:
    if not cls.__module__.startswith(_PACKAGE):
        raise TypeError(f"cannot cache {cls.__module__}.{cls.__qualname__}: not a type of this package")
    return f"{cls.__module__}:{cls.__qualname__}"


def _decode_object(data: dict) -> Any:
    if _TUPLE in data:
        return tuple(data[_TUPLE])
    if _DATACLASS in data:
        cls = _resolve(data[_DATACLASS])
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{data[_DATACLASS]} is not a dataclass")
        values = data["f"]
        initial = {field.name: values[field.name] for field in dataclasses.fields(cls) if field.init}
        instance = cls(**initial)
        for field in dataclasses.fields(cls):
            if not field.init and field.name in values:
                object.__setattr__(instance, field.name, values[field.name])
        return instance
    if _ENUM in data:
        cls = _resolve(data[_ENUM])
        if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            raise TypeError(f"{data[_ENUM]} is not an enum")
        return cls(data["v"])
    if _MAPPING in data:
        return {_hashable(key): item for key, item in data[_MAPPING]}
    return data


def _decoded(value: Any) -> Any:
    """A value read as plain JSON, decoded as `json.loads(..., object_hook=_decode_object)` would."""
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    if isinstance(value, dict):
        return _decode_object({key: _decoded(item) for key, item in value.items()})
    return value


def _hashable(value: Any) -> Any:
    return tuple(_hashable(item) for item in value) if isinstance(value, list) else value


@lru_cache(maxsize=None)
def _resolve(name: str) -> Any:
    module_name, _, qualname = name.partition(":")
    if not module_name.startswith(_PACKAGE):
        raise TypeError(f"{name} is not a type of this package")
    # Importing by a name read from disk could run any module's top level (`__main__`): only the
    # modules that define what entries hold are imported here, on first use; others must be loaded.
    if module_name in _ENTRY_TYPE_MODULES:
        importlib.import_module(module_name)
    found: Any = sys.modules[module_name]
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
