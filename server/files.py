"""Which files `--check` looks at: Python files under the given paths, minus what a
project never wants linted (VCS folders, virtual environments, build output, .gitignore)."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SKIPPED_FOLDERS = {
    ".git", ".hg", ".svn", ".venv", "venv", ".env", "env", ".tox", ".nox", "node_modules",
    "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", "site-packages",
    ".eggs", ".ipynb_checkpoints",
}
PYTHON_SUFFIXES = (".py", ".pyi")


@dataclass(frozen=True)
class IgnorePattern:
    base: Path
    regex: re.Pattern
    negated: bool
    directory_only: bool

    def matches(self, path: Path, is_directory: bool) -> bool | None:
        """True/False when this pattern decides, None when it does not apply."""
        if self.directory_only and not is_directory:
            return None
        try:
            relative = path.relative_to(self.base).as_posix()
        except ValueError:
            return None
        if self.regex.fullmatch(relative):
            return not self.negated
        return None


def parse_gitignore(folder: Path) -> list[IgnorePattern]:
    try:
        lines = (folder / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    patterns = []
    for raw in lines:
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:] if negated else line
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        regex = _glob_to_regex(line)
        if not anchored:
            regex = f"(?:.*/)?{regex}"
        patterns.append(IgnorePattern(folder, re.compile(regex), negated, directory_only))
    return patterns


def _glob_to_regex(glob: str) -> str:
    parts = []
    index = 0
    while index < len(glob):
        if glob.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif glob.startswith("**", index):
            parts.append(".*")
            index += 2
        else:
            character = glob[index]
            if character == "*":
                parts.append("[^/]*")
            elif character == "?":
                parts.append("[^/]")
            elif character == "[":
                end = glob.find("]", index)
                if end == -1:
                    parts.append(re.escape(character))
                else:
                    parts.append(fnmatch.translate(glob[index : end + 1])[4:-3])
                    index = end
            else:
                parts.append(re.escape(character))
            index += 1
    return "".join(parts)


def _ignored(path: Path, is_directory: bool, patterns: list[IgnorePattern]) -> bool:
    decision = False
    for pattern in patterns:
        verdict = pattern.matches(path, is_directory)
        if verdict is not None:
            decision = verdict
    return decision


def _is_virtual_environment(folder: Path) -> bool:
    return (folder / "pyvenv.cfg").is_file()


def discover(paths: list[Path]) -> Iterator[Path]:
    """Python files to check, in a stable order. Explicitly named files are always checked."""
    seen: set[Path] = set()
    for root in paths:
        if root.is_file() or not root.exists():
            if root not in seen:  # a missing path still yields, so the caller reports it
                seen.add(root)
                yield root
            continue
        inherited = [pattern for parent in _enclosing_repository_folders(root) for pattern in parse_gitignore(parent)]
        yield from _walk(root, inherited, seen)


def _enclosing_repository_folders(root: Path) -> list[Path]:
    """The folders from the repository's top down to `root`'s parent, whose .gitignore apply."""
    resolved = root.resolve()
    chain = []
    for parent in resolved.parents:
        chain.append(parent)
        if (parent / ".git").exists():
            return list(reversed(chain))
    return []  # not inside a repository (or `root` is the top): only root's own .gitignore


def _walk(folder: Path, inherited: list[IgnorePattern], seen: set[Path]) -> Iterator[Path]:
    resolved_folder = folder.resolve()
    patterns = inherited + parse_gitignore(resolved_folder)
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        path = folder / entry.name
        resolved = resolved_folder / entry.name
        if entry.is_dir(follow_symlinks=False):
            if entry.name in SKIPPED_FOLDERS or entry.name.endswith(".egg-info"):
                continue
            if _ignored(resolved, True, patterns) or _is_virtual_environment(path):
                continue
            yield from _walk(path, patterns, seen)
        elif entry.name.endswith(PYTHON_SUFFIXES) and entry.is_file():
            if not _ignored(resolved, False, patterns) and path not in seen:
                seen.add(path)
                yield path


def mentions_torch(source: str) -> bool:
    """Whether a file can hold anything to report: every rule is about PyTorch code."""
    return "torch" in source


def read_source(path: Path) -> str:
    """Text of a file, or OSError / ValueError with a message fit for a user."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"not valid UTF-8 (byte 0x{data[error.start]:02x} on line {line}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")
