"""Per-document analysis scheduling: debounce, versions, and never a stale result.

Every change to a document (re)starts its timer; when the timer fires the analysis runs on a
worker thread over a snapshot of the text. A result is accepted only if the document is still
open at the snapshot's version and the settings have not changed meanwhile; otherwise it is
dropped, so diagnostics for an older version are never published over a newer one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class Snapshot:
    uri: str
    version: int
    source: str
    generation: int  # bumped whenever settings change, so cached results are recomputed


class DocumentScheduler(Generic[Outcome, Result]):
    """Runs `compute(snapshot)` off the event loop, then `accept(snapshot, outcome)` on it.

    `accept` turns an outcome into the document's current result (it may consult the
    previous one, e.g. to keep diagnostics while the text does not parse); it runs only for
    the current version. `on_ready(uri, result)` is told about debounced results, `on_error`
    about an analysis that raised.
    """

    def __init__(
        self,
        snapshot_of: Callable[[str], tuple[int, str] | None],
        compute: Callable[[Snapshot], Outcome],
        accept: Callable[[Snapshot, Outcome], Result],
        on_ready: Callable[[str, Result], None],
        on_error: Callable[[str, BaseException], None],
    ):
        self._snapshot_of = snapshot_of
        self._compute = compute
        self._accept = accept
        self._on_ready = on_ready
        self._on_error = on_error
        self._timers: dict[str, asyncio.Task] = {}
        self._running: dict[tuple[str, int, int], asyncio.Future] = {}
        self._results: dict[str, tuple[int, int, Result]] = {}
        self._generation = 0
        # One worker: analyses queue instead of fighting over two cores with the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmarch-analysis")

    def schedule(self, uri: str, delay: float) -> None:
        """Analyse `uri` after `delay` seconds of quiet; an earlier pending run is cancelled."""
        self.cancel(uri)
        self._timers[uri] = asyncio.ensure_future(self._after(uri, delay))

    def cancel(self, uri: str) -> None:
        timer = self._timers.pop(uri, None)
        if timer is not None and not timer.done():
            timer.cancel()

    def forget(self, uri: str) -> None:
        """The document was closed: no pending run, no cached result."""
        self.cancel(uri)
        self._results.pop(uri, None)

    def invalidate(self) -> None:
        """Settings changed: every cached or running result is out of date."""
        self._generation += 1

    def cached(self, uri: str) -> Result | None:
        """The result for the document's current text and settings, if already computed."""
        snapshot = self._snapshot(uri)
        if snapshot is None:
            return None
        entry = self._results.get(uri)
        if entry and entry[:2] == (snapshot.version, snapshot.generation):
            return entry[2]
        return None

    async def result_for(self, uri: str, attempts: int = 3) -> Result | None:
        """The result for the document's current version, computing it now if needed."""
        for _ in range(attempts):
            snapshot = self._snapshot(uri)
            if snapshot is None:
                return None
            result = await self._result(snapshot)
            if result is not None:
                return result
        return None  # the document kept changing while we computed

    def shutdown(self) -> None:
        for uri in list(self._timers):
            self.cancel(uri)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _after(self, uri: str, delay: float) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            snapshot = self._snapshot(uri)
            if snapshot is None:
                return
            result = await self._result(snapshot)
            if result is not None:
                self._on_ready(uri, result)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must not take the server down; the next change retries
            logger.exception("analysis of %s failed", uri)
            self._on_error(uri, error)
        finally:
            if self._timers.get(uri) is asyncio.current_task():
                del self._timers[uri]

    async def _result(self, snapshot: Snapshot) -> Result | None:
        """The accepted result for `snapshot`, or None when it went stale meanwhile."""
        entry = self._results.get(snapshot.uri)
        if entry and entry[:2] == (snapshot.version, snapshot.generation):
            return entry[2]
        key = (snapshot.uri, snapshot.version, snapshot.generation)
        running = self._running.get(key)
        if running is None:
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(self._executor, self._compute_if_current, snapshot)
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        outcome = await asyncio.shield(running)
        if outcome is None or self._snapshot(snapshot.uri) != snapshot:
            return None  # stale: a newer version or new settings arrived while computing
        entry = self._results.get(snapshot.uri)
        if entry and entry[:2] == (snapshot.version, snapshot.generation):
            return entry[2]  # another waiter accepted this outcome first
        result = self._accept(snapshot, outcome)
        self._results[snapshot.uri] = (snapshot.version, snapshot.generation, result)
        return result

    def _compute_if_current(self, snapshot: Snapshot) -> Outcome | None:
        # Runs on the worker: skip work queued behind a run that made it obsolete.
        current = self._snapshot_of(snapshot.uri)
        if current is None or current[0] != snapshot.version or self._generation != snapshot.generation:
            return None
        return self._compute(snapshot)

    def _snapshot(self, uri: str) -> Snapshot | None:
        current = self._snapshot_of(uri)
        if current is None:
            return None
        version, source = current
        return Snapshot(uri, version, source, self._generation)
