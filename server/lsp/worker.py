"""The engine in a child process, so analysing a long file never blocks the event loop.

`ast.parse` of a 50,000-line file takes over a second and holds the GIL the whole time; on a
thread that would stall every request. A child process also keeps a crash or a runaway rule
away from the server: the child is stopped and replaced.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import sys
import threading
from dataclasses import dataclass

from lsprotocol import types as lsp

from llmarch_lsp.config import Settings
from llmarch_lsp.engine import analyze_source
from llmarch_lsp.findings import Finding
from llmarch_lsp.lsp.diagnostics import to_diagnostic
from llmarch_lsp.lsp.positions import PositionEncoder
from llmarch_lsp.text import split_lines

# Far above a real analysis (a 50,000-line file takes ~3 s here, the engine's budget included).
HARD_TIME_LIMIT_SECONDS = 30.0


@dataclass(frozen=True)
class WorkerResult:
    findings: tuple[Finding, ...]
    diagnostics: list[lsp.Diagnostic]
    error: str | None
    rule_failures: tuple[tuple[str, str], ...]


def analyze(uri: str, source: str, path: str, settings: Settings, encoding: str, time_budget: float) -> WorkerResult:
    """Runs in the child: the engine, then findings → diagnostics in the client's encoding."""
    report = analyze_source(source, path, settings, time_budget=time_budget)
    lines = split_lines(source)
    encoder = PositionEncoder(encoding)
    diagnostics = [to_diagnostic(finding, uri, lines, encoder) for finding in report.findings]
    return WorkerResult(tuple(report.findings), diagnostics, report.error, tuple(report.rule_failures))


def _protect_protocol_stream() -> None:
    # The child inherits the server's stdout, which carries the protocol: anything printed
    # there would corrupt it, so the child's stdout goes to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr


def _ready() -> bool:
    return True


class AnalysisTimeout(RuntimeError):
    """The child ran past the hard time limit (a rule stuck in a loop) and was stopped."""


class AnalysisWorker:
    """One child process, started on first use (or by `warm_up`).

    The engine's time budget stops starting rules; it cannot stop one that never returns.
    So a call that runs past `time_limit` stops the child (which also covers a child that
    died), and the next call starts a fresh one.
    """

    def __init__(self, time_limit: float = HARD_TIME_LIMIT_SECONDS):
        self._time_limit = time_limit
        self._pool: multiprocessing.pool.Pool | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Start the child now, so its imports are done before the first document opens."""
        self._running_pool().apply_async(_ready)

    def run(self, uri: str, source: str, path: str, settings: Settings, encoding: str, time_budget: float) -> WorkerResult:
        return self.call(analyze, uri, source, path, settings, encoding, time_budget)

    def call(self, function, *args):
        pool = self._running_pool()
        pending = pool.apply_async(function, args)
        try:
            return pending.get(self._time_limit)
        except multiprocessing.TimeoutError:
            self._stop(pool)
            raise AnalysisTimeout(
                f"analysis took over {self._time_limit:g}s and was stopped (a rule may be stuck)"
            ) from None

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

    def _stop(self, pool: multiprocessing.pool.Pool) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.terminate()

    def _running_pool(self) -> multiprocessing.pool.Pool:
        with self._lock:
            if self._pool is None:
                # spawn, not fork: forking a process that runs threads can copy held locks.
                self._pool = multiprocessing.get_context("spawn").Pool(1, initializer=_protect_protocol_stream)
            return self._pool
