"""`llmarch-lsp`: the language server (no arguments), or a checker (`--check`).

Exit codes: 0 nothing found; 1 findings, or files that could not be checked; 2 usage or
internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from llmarch_lsp import __version__
from llmarch_lsp.analyzers import all_rules, is_known_selector
from llmarch_lsp.config import Settings, SettingsResolver, parse_selectors
from llmarch_lsp.engine import analyze_source, read_source
from llmarch_lsp.files import discover
from llmarch_lsp.findings import FileReport
from llmarch_lsp.fixes.apply import FixError, apply_fixes
from llmarch_lsp.output import CheckRun, Palette, render_explanation, render_json, render_rule_table, render_text

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits with 2 already; keep the one-line promise
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"llmarch-lsp: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llmarch-lsp",
        description="Reviews PyTorch model and training code like a senior LLM researcher. "
        "With no arguments, runs the language server over stdio.",
    )
    mode = parser.add_argument_group("modes")
    mode.add_argument("--check", nargs="*", metavar="PATH", help="check files or folders (default: .)")
    mode.add_argument("--explain", metavar="CODE", help="print a rule's documentation (code or name)")
    mode.add_argument("--list-rules", action="store_true", help="list every rule")
    mode.add_argument("--version", action="version", version=f"llmarch-lsp {__version__}")
    mode.add_argument("--stdio", action="store_true", help="run the language server over stdio (the default)")
    mode.add_argument("--tcp", action="store_true", help="run the language server over TCP (for debugging)")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (with --tcp)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (with --tcp)")
    check = parser.add_argument_group("checking")
    check.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    check.add_argument("--select", metavar="CODES", help="only these codes, prefixes (LLM1) or names, comma-separated")
    check.add_argument("--ignore", metavar="CODES", help="skip these codes, prefixes or names, comma-separated")
    check.add_argument("--config", metavar="FILE", help="use this pyproject.toml or llmarch.toml instead of discovery")
    check.add_argument("--fix", action="store_true", help="apply safe fixes in place")
    check.add_argument("--unsafe-fixes", action="store_true", help="with --fix, also apply fixes that change numerics")
    check.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the text output")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks for internal errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return _dispatch(arguments)
    except UsageError as error:
        print(f"llmarch-lsp: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_ERROR
    except Exception as error:  # the promise: one line, never a traceback unless --verbose
        if arguments.verbose:
            raise
        print(f"llmarch-lsp: internal error: {type(error).__name__}: {error} (run with --verbose for details)", file=sys.stderr)
        return EXIT_ERROR


def _dispatch(arguments) -> int:
    if arguments.explain is not None:
        text = render_explanation(arguments.explain)
        if text is None:
            raise UsageError(f"unknown rule `{arguments.explain}`; see `llmarch-lsp --list-rules`")
        sys.stdout.write(text)
        return EXIT_CLEAN
    if arguments.list_rules:
        rules = _selected_rules(arguments)
        sys.stdout.write(render_rule_table(rules, as_json=arguments.format == "json"))
        return EXIT_CLEAN
    if arguments.check is not None:
        return _check(arguments)
    if arguments.fix or arguments.select or arguments.ignore:
        raise UsageError("--fix, --select and --ignore go with --check")
    from llmarch_lsp.lsp.server import serve

    if arguments.tcp:
        serve("tcp", arguments.host, arguments.port)
    else:
        serve("stdio")
    return EXIT_CLEAN


def _selectors(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    selectors = parse_selectors(value)
    unknown = [selector for selector in selectors if not is_known_selector(selector)]
    if unknown:
        raise UsageError(f"{flag}: unknown rule code, prefix or name: {', '.join(unknown)}")
    return selectors


def _selected_rules(arguments):
    settings = Settings().with_overrides(
        select=_selectors(arguments.select, "--select"), ignore=_selectors(arguments.ignore, "--ignore")
    )
    return settings.rules_for(None) if (arguments.select or arguments.ignore) else list(all_rules())


def _check(arguments) -> int:
    select = _selectors(arguments.select, "--select")
    ignore = _selectors(arguments.ignore, "--ignore")
    if arguments.unsafe_fixes and not arguments.fix:
        raise UsageError("--unsafe-fixes goes with --fix")
    explicit_config = Path(arguments.config) if arguments.config else None
    if explicit_config is not None and not explicit_config.is_file():
        raise UsageError(f"--config: no such file: {explicit_config}")
    resolver = SettingsResolver(explicit_config)
    paths = [Path(path) for path in (arguments.check or ["."])]
    run = CheckRun()
    jobs = []
    for path in discover(paths):
        settings = resolver.for_path(path).with_overrides(select=select)
        if ignore:
            settings = settings.with_overrides(extend_ignore=ignore)
        jobs.append((path, settings))
    for (path, settings), (report, source) in zip(jobs, _check_files(jobs)):
        if source is not None and arguments.fix:
            report, source, fixed = _fix_file(path, source, report, settings, arguments.unsafe_fixes)
            run.fixed += fixed
        run.reports.append(report)
        if source is not None:
            run.sources[report.path] = source
    for settings in resolver.loaded():
        for warning in settings.warnings:
            print(f"llmarch-lsp: warning: {warning}", file=sys.stderr)
    failures = [(report.path, code, reason) for report in run.reports for code, reason in report.rule_failures]
    for path, code, reason in failures:
        print(f"llmarch-lsp: internal error: rule {code} failed on {path}: {reason} (please report it)", file=sys.stderr)

    if arguments.format == "json":
        sys.stdout.write(render_json(run))
    else:
        sys.stdout.write(render_text(run, Palette(_use_colour(arguments.color))))
    if failures:
        return EXIT_ERROR
    return EXIT_FINDINGS if run.findings or run.errors else EXIT_CLEAN


# Below this many files, starting worker processes costs more than it saves.
PARALLEL_FROM_FILES = 48


def _check_files(jobs: list[tuple[Path, Settings]]):
    """(report, source) per job, in order; the source only for files with findings."""
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) < PARALLEL_FROM_FILES or workers < 2:
        return map(_check_job, jobs)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_check_job, jobs, chunksize=16))


def _check_job(job: tuple[Path, Settings]) -> tuple[FileReport, str | None]:
    report, source = _check_file(*job)
    # Sources are kept to print snippets and build fixes; clean files need neither.
    return report, source if report.findings else None


def _check_file(path: Path, settings: Settings) -> tuple[FileReport, str | None]:
    display = str(path)
    if not path.exists():
        return FileReport(display, error="no such file or folder"), None
    try:
        source = read_source(path)
    except OSError as error:
        return FileReport(display, error=f"cannot read: {error.strerror or error}"), None
    except ValueError as error:
        return FileReport(display, error=str(error)), None
    return analyze_source(source, display, settings), source


def _fix_file(path: Path, source: str, report: FileReport, settings: Settings, unsafe: bool):
    fixes = [f.fix for f in report.findings if f.fix is not None and (unsafe or f.fix.is_safe)]
    if not fixes:
        return report, source, 0
    try:
        result = apply_fixes(source, fixes)
    except FixError as error:
        report.rule_failures.append(("fix", str(error)))
        return report, source, 0
    if result.text == source:
        return report, source, 0
    _write_atomically(path, result.text)
    return analyze_source(result.text, str(path), settings), result.text, len(result.applied)


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename over it: never half a file.
    A byte-order mark the file had is kept (reading dropped it from the text)."""
    mode = path.stat().st_mode
    with path.open("rb") as original:
        if original.read(3) == b"\xef\xbb\xbf":
            text = "\ufeff" + text
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".llmarch-tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _use_colour(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR"))
