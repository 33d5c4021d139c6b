"""A one-line progress bar on stderr, for long `--check` runs on a terminal.

It appears only when stderr is a terminal and the run has already taken a few seconds, so quick
runs, pipes, CI logs and anything read by a program (JSON and SARIF go to stdout anyway) never see
it. The line is erased when the run ends.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

# Runs shorter than this never show a bar. `LLMARCH_PROGRESS_DELAY` (seconds) changes it (tests use 0).
DEFAULT_DELAY = 2.0
REDRAW_EVERY = 0.1
BAR_WIDTH = 30


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, *, enabled: bool | None = None, delay: float | None = None):
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.delay = _delay_from_environment() if delay is None else delay
        self._started = time.monotonic()
        self._drawn_at: float | None = None

    def advance(self, count: int = 1) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._started < self.delay:
            return
        if self._drawn_at is not None and now - self._drawn_at < REDRAW_EVERY and self.done < self.total:
            return
        self._drawn_at = now
        self._draw(now)

    def finish(self) -> None:
        """Erase the bar, if it was ever drawn, so the report starts on a clean line."""
        if self._drawn_at is not None:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn_at = None

    def _draw(self, now: float) -> None:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(round(fraction * BAR_WIDTH))
        elapsed = now - self._started
        line = (
            f"\rChecking [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
            f"{self.done:,}/{self.total:,} files  {elapsed:.0f}s"
        )
        self.stream.write(line)
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _delay_from_environment() -> float:
    try:
        return float(os.environ.get("LLMARCH_PROGRESS_DELAY", DEFAULT_DELAY))
    except ValueError:
        return DEFAULT_DELAY
