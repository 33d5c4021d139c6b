"""Check many files: read each once, answer from the cache where possible, analyze the rest in
worker processes, and hand back reports in the order the files were given.

The main process reads every file (it must hash the text to look in the cache) and sends the
text of each cache miss to a worker; a worker analyzes it, stores the report in the cache and
returns only the report. Sources stay in the main process, and only for files with findings,
which need them for snippets and fixes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmarch_lsp.cache import ResultCache, settings_fingerprint, stat_signature
from llmarch_lsp.config import Settings
from llmarch_lsp.files import mentions_torch, read_source
from llmarch_lsp.findings import FileReport
from llmarch_lsp.progress import Progress

# A worker process is worth starting only for at least this many files to analyze.
FILES_PER_WORKER = 24
# Cache misses go to workers in chunks; several chunks per worker keep the load even.
CHUNKS_PER_WORKER = 8
MAX_CHUNK = 16


@dataclass
class CheckedFile:
    report: FileReport
    source: str | None  # the analyzed text, kept only when the report has findings
    cached: bool = False
    fix_edits: tuple | None = None  # per finding, the edits of its fix (rewrite.planned_fix_edits)


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_files(
    targets: Sequence[tuple[Path, Settings]],
    *,
    jobs: int | None = None,
    cache: ResultCache | None = None,
    progress: Progress | None = None,
) -> list[CheckedFile]:
    """One CheckedFile per target, in order. `jobs` 1 analyzes in this process."""
    jobs = default_jobs() if jobs is None else max(1, jobs)
    settings_table: list[Settings] = []
    settings_index: dict[int, int] = {}
    settings_keys: list[str] = []
    results: list[CheckedFile | None] = [None] * len(targets)
    pending: list[tuple[int, str, str, int, str | None]] = []  # index, display path, text, settings, cache key
    signatures: dict[int, tuple] = {}  # index -> (absolute path, stat signature), to remember misses

    for index, (path, settings) in enumerate(targets):
        display = str(path)
        if id(settings) not in settings_index:
            settings_index[id(settings)] = len(settings_table)
            settings_table.append(settings)
            settings_keys.append(settings_fingerprint(settings) if cache is not None else "")
        position = settings_index[id(settings)]
        absolute = signature = None
        if cache is not None:
            absolute = os.path.abspath(display)
            try:
                signature = stat_signature(os.stat(display))
            except OSError:
                signature = None
            entry = cache.recall(absolute, display, signature, settings_keys[position])
            if entry is not None:
                recalled = _recalled(path, entry)
                if recalled is not None:
                    results[index] = recalled
                    continue
        try:
            source = read_source(path)
        except OSError as error:
            message = "no such file or folder" if not path.exists() else f"cannot read: {error.strerror or error}"
            results[index] = CheckedFile(FileReport(display, error=message), None)
            continue
        except ValueError as error:
            results[index] = CheckedFile(FileReport(display, error=str(error)), None)
            continue
        if not mentions_torch(source):  # skipped before parsing; costs less than a cache lookup
            results[index] = CheckedFile(FileReport(display, skipped=True), None)  # what the engine reports
            if cache is not None:
                cache.remember(absolute, display, signature, settings_keys[position], results[index].report)
            continue
        key = cache.key(source, display, settings_keys[position]) if cache is not None else None
        entry = cache.load(key) if key is not None else None
        if entry is not None:
            source_kept = source if entry.report.findings else None
            results[index] = CheckedFile(entry.report, source_kept, cached=True, fix_edits=entry.fix_edits)
            cache.remember(absolute, display, signature, settings_keys[position], entry.report, entry.fix_edits)
        else:
            pending.append((index, display, source, position, key))
            if cache is not None:
                signatures[index] = (absolute, signature)

    if progress is not None:
        progress.total = len(targets)
        progress.advance(len(targets) - len(pending))
    sources = {job[0]: job[2] for job in pending}
    for index, (report, fix_edits) in _analyze(pending, settings_table, cache, jobs, progress):
        results[index] = CheckedFile(report, sources[index] if report.findings else None, fix_edits=fix_edits)
        if cache is not None:
            absolute, signature = signatures[index]
            position = settings_index[id(targets[index][1])]
            cache.remember(absolute, display=report.path, signature=signature, settings_key=settings_keys[position],
                           report=report, fix_edits=fix_edits)
    if progress is not None:
        progress.finish()
    if cache is not None:
        cache.save_index()
    return [result for result in results if result is not None]


def _recalled(path: Path, entry) -> CheckedFile | None:
    """A file answered from the index; its text is read only when findings need it (snippets, fixes)."""
    if not entry.report.findings:
        return CheckedFile(entry.report, None, cached=True)
    try:
        source = read_source(path)
    except (OSError, ValueError):
        return None
    return CheckedFile(entry.report, source, cached=True, fix_edits=entry.fix_edits)


def _analyze(pending, settings_table, cache, jobs, progress):
    """(index, (report, fix edits)) for each pending job, in any order."""
    workers = min(jobs, -(-len(pending) // FILES_PER_WORKER))
    if workers <= 1:
        for job in pending:
            yield job[0], _analyze_job(job, settings_table, cache)
            if progress is not None:
                progress.advance()
        return
    # Biggest files first, so no worker is left with a long file at the end.
    ordered = sorted(pending, key=lambda job: len(job[2]), reverse=True)
    size = max(1, min(MAX_CHUNK, len(ordered) // (workers * CHUNKS_PER_WORKER)))
    chunks = [ordered[start : start + size] for start in range(0, len(ordered), size)]
    from concurrent.futures import as_completed

    done: set[int] = set()
    try:
        with _worker_pool(workers, settings_table, cache) as pool:
            futures = [pool.submit(_analyze_chunk, chunk) for chunk in chunks]
            for future in as_completed(futures):
                for index, report in future.result():
                    done.add(index)
                    yield index, report
                    if progress is not None:
                        progress.advance()
    except Exception:  # a worker died (out of memory, a crash in C): finish in this process
        for job in pending:
            if job[0] not in done:
                yield job[0], _analyze_job(job, settings_table, cache)
                if progress is not None:
                    progress.advance()


def _analyze_job(job, settings_table: list[Settings], cache: ResultCache | None):
    """(report, fix edits): the edits are planned here too, in parallel, and cached with the report."""
    _, display, source, position, key = job
    from llmarch_lsp.engine import analyze_source
    from llmarch_lsp.rewrite import planned_fix_edits  # analysis only: a cache hit never plans a fix

    report = analyze_source(source, display, settings_table[position], alternatives=False)
    fix_edits = planned_fix_edits(source, report.findings) if any(f.fix for f in report.findings) else None
    if cache is not None and key is not None:
        cache.store(key, report, fix_edits)
    return report, fix_edits


def _worker_pool(workers: int, settings_table: list[Settings], cache: ResultCache | None):
    from concurrent.futures import ProcessPoolExecutor  # imported only when a run needs workers

    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_fast_start_context(),
        initializer=_start_worker,
        initargs=(settings_table, cache.folder if cache is not None else None),
    )


def _fast_start_context():
    """fork on Linux: workers start in milliseconds with every rule already imported."""
    import multiprocessing

    if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


_WORKER: dict = {}


def _start_worker(settings_table: list[Settings], cache_folder: Path | None) -> None:
    _WORKER["settings"] = settings_table
    _WORKER["cache"] = ResultCache(cache_folder) if cache_folder is not None else None


def _analyze_chunk(chunk) -> list[tuple[int, tuple[FileReport, tuple | None]]]:
    return [(job[0], _analyze_job(job, _WORKER["settings"], _WORKER["cache"])) for job in chunk]
