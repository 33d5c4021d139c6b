"""Where the editor end-to-end tests left their screenshots and logs, printed after the run
(a passing test's output is hidden otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

_ARTIFACTS: list[Path] = []


@pytest.fixture
def keep_artifacts():
    """Call with a folder of screenshots and logs to have it named in the run's summary."""

    def keep(folder: Path) -> Path:
        if folder not in _ARTIFACTS:
            _ARTIFACTS.append(folder)
        return folder

    return keep


def pytest_terminal_summary(terminalreporter) -> None:
    if _ARTIFACTS:
        terminalreporter.write_sep("-", "editor end-to-end artifacts (screenshots, logs)")
        for folder in _ARTIFACTS:
            terminalreporter.write_line(str(folder))
