"""`llmarch-lsp`: the language server (no arguments), or a checker (`--check`).

Exit codes: 0 nothing found; 1 findings, or files that could not be checked; 2 usage or
internal error. With `--fix`, 1 means findings remain after fixing; with `--diff` (like Ruff's),
1 means there is something to fix or a finding remains.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from llmarch_lsp import __version__
from llmarch_lsp.cache import ResultCache, default_cache_folder, settings_fingerprint
from llmarch_lsp.config import CONFIG_FILES, Settings, SettingsResolver, parse_selectors
from llmarch_lsp.files import discover
from llmarch_lsp.output import (
    CheckRun,
    Palette,
    render_explanation,
    render_github,
    render_json,
    render_rule_table,
    render_text,
)
from llmarch_lsp.progress import Progress
from llmarch_lsp.runner import check_files

# The rules, the engine and the fix machinery are imported where a command needs them: a
# re-check answered from the cache, the common case in pre-commit and CI, needs none of them.

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
    # Paths may also follow the other flags (`llmarch-lsp --check --fix a.py`, as pre-commit calls it).
    parser.add_argument("paths", nargs="*", metavar="PATH", help=argparse.SUPPRESS)
    mode.add_argument("--explain", metavar="CODE", help="print a rule's documentation (code or name)")
    mode.add_argument("--list-rules", action="store_true", help="list every rule")
    mode.add_argument("--version", action="version", version=f"llmarch-lsp {__version__}")
    mode.add_argument("--stdio", action="store_true", help="run the language server over stdio (the default)")
    mode.add_argument("--tcp", action="store_true", help="run the language server over TCP (for debugging)")
    parser.add_argument("--host", default="127.0.0.1", help="TCP host (with --tcp)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (with --tcp)")
    check = parser.add_argument_group("checking")
    check.add_argument(
        "--format",
        choices=("text", "json", "github", "sarif"),
        default="text",
        help="text for people, json, github (workflow annotations) or sarif (SARIF 2.1.0 for code scanning)",
    )
    check.add_argument("--select", metavar="CODES", help="only these codes, prefixes (LLM1) or names, comma-separated")
    check.add_argument("--ignore", metavar="CODES", help="skip these codes, prefixes or names, comma-separated")
    check.add_argument("--config", metavar="FILE", help="use this pyproject.toml or llmarch.toml instead of discovery")
    check.add_argument("--fix", action="store_true", help="apply safe fixes in place")
    check.add_argument("--unsafe-fixes", action="store_true", help="with --fix or --diff, also fixes that change numerics")
    check.add_argument("--no-unsafe-fixes", action="store_true", help="never apply unsafe fixes, whatever the config says")
    check.add_argument("--diff", action="store_true", help="print the fixes as a unified diff and write nothing")
    check.add_argument("--jobs", "-j", type=int, metavar="N", help="worker processes (default: all cores; 1: none)")
    check.add_argument("--no-cache", action="store_true", help="neither read nor write the .llmarch_cache folder")
    check.add_argument("--cache-dir", metavar="DIR", help="keep the cache here (default: .llmarch_cache at the project root)")
    check.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the text output")
    parser.add_argument("--verbose", action="store_true", help="show tracebacks for internal errors, and cache use")
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
    if arguments.paths and arguments.check is None:
        raise UsageError(f"paths go with --check: llmarch-lsp --check {' '.join(arguments.paths)}")
    if arguments.check is not None:
        return _check(arguments)
    if arguments.fix or arguments.diff or arguments.select or arguments.ignore:
        raise UsageError("--fix, --diff, --select and --ignore go with --check")
    from llmarch_lsp.lsp.server import serve

    if arguments.tcp:
        serve("tcp", arguments.host, arguments.port)
    else:
        serve("stdio")
    return EXIT_CLEAN


def _selectors(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    from llmarch_lsp.analyzers import is_known_selector

    selectors = parse_selectors(value)
    unknown = [selector for selector in selectors if not is_known_selector(selector)]
    if unknown:
        raise UsageError(f"{flag}: unknown rule code, prefix or name: {', '.join(unknown)}")
    return selectors


def _selected_rules(arguments):
    from llmarch_lsp.analyzers import all_rules

    settings = Settings().with_overrides(
        select=_selectors(arguments.select, "--select"), ignore=_selectors(arguments.ignore, "--ignore")
    )
    return settings.rules_for(None) if (arguments.select or arguments.ignore) else list(all_rules())


def _check(arguments) -> int:
    select = _selectors(arguments.select, "--select")
    ignore = _selectors(arguments.ignore, "--ignore")
    if arguments.unsafe_fixes and not (arguments.fix or arguments.diff):
        raise UsageError("--unsafe-fixes goes with --fix or --diff")
    if arguments.unsafe_fixes and arguments.no_unsafe_fixes:
        raise UsageError("--unsafe-fixes and --no-unsafe-fixes contradict each other")
    if arguments.diff and arguments.format != "text":
        raise UsageError("--diff prints a unified diff; it does not combine with --format " + arguments.format)
    if arguments.jobs is not None and arguments.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    explicit_config = Path(arguments.config) if arguments.config else None
    if explicit_config is not None and not explicit_config.is_file():
        raise UsageError(f"--config: no such file: {explicit_config}")
    resolver = SettingsResolver(explicit_config)
    paths = [Path(path) for path in (arguments.check + arguments.paths or ["."])]
    targets = _targets(discover(paths), resolver, select, ignore)
    cache = None
    if not arguments.no_cache:
        cache = ResultCache(Path(arguments.cache_dir) if arguments.cache_dir else default_cache_folder(explicit_config))
    started = time.perf_counter()
    checked = check_files(targets, jobs=arguments.jobs, cache=cache, progress=Progress(len(targets)))
    if arguments.verbose:
        from_cache = sum(result.cached for result in checked)
        print(f"llmarch-lsp: checked {len(checked)} files ({from_cache} from the cache) in "
              f"{time.perf_counter() - started:.2f}s", file=sys.stderr)

    run = CheckRun(fixing=arguments.fix and not arguments.diff)
    diffs: list[str] = []
    would_remain = 0
    for (path, settings), result in zip(targets, checked):
        report, source = result.report, result.source
        remaining = len(report.findings)
        if (arguments.fix or arguments.diff) and source is not None:
            report, source, fixed, diff, remaining = _fix_file(path, settings, result, arguments, cache)
            run.fixed += fixed
            diffs.extend([diff] if diff else [])
        would_remain += remaining
        run.reports.append(report)
        if source is not None and report.findings:
            run.sources[report.path] = source
            if report is result.report and result.fix_edits is not None:
                run.fix_edits[report.path] = result.fix_edits
    for settings in resolver.loaded():
        for warning in settings.warnings:
            print(f"llmarch-lsp: warning: {warning}", file=sys.stderr)
    failures = [(report.path, code, reason) for report in run.reports for code, reason in report.rule_failures]
    for path, code, reason in failures:
        print(f"llmarch-lsp: internal error: rule {code} failed on {path}: {reason} (please report it)", file=sys.stderr)

    if arguments.diff:
        sys.stdout.write("".join(diffs))
        _print_diff_summary(run.fixed, len(diffs), would_remain, arguments.unsafe_fixes)  # the flag, as the user typed
    elif arguments.format == "json":
        sys.stdout.write(render_json(run))
    elif arguments.format == "sarif":
        from llmarch_lsp.sarif import render_sarif

        sys.stdout.write(render_sarif(run, successful=not failures))
    elif arguments.format == "github":
        sys.stdout.write(render_github(run))
    else:
        sys.stdout.write(render_text(run, Palette(_use_colour(arguments.color))))
    if failures:
        return EXIT_ERROR
    return EXIT_FINDINGS if run.findings or run.errors else EXIT_CLEAN


def _targets(paths, resolver: SettingsResolver, select, ignore) -> list[tuple[Path, Settings]]:
    """Each file with the settings that apply to it; files under one config share one Settings."""
    overridden: dict[int, Settings] = {}
    by_folder: dict[Path, Settings] = {}
    targets = []
    for path in paths:
        if path.is_symlink():  # its config is found from where it points
            base = resolver.for_path(path)
        else:
            base = by_folder.get(path.parent)
            if base is None:
                base = by_folder[path.parent] = _folder_settings(path, resolver, by_folder)
        if id(base) not in overridden:
            settings = base.with_overrides(select=select)
            overridden[id(base)] = settings.with_overrides(extend_ignore=ignore) if ignore else settings
        targets.append((path, overridden[id(base)]))
    return targets


def _folder_settings(path: Path, resolver: SettingsResolver, by_folder: dict[Path, Settings]) -> Settings:
    """A folder without a config file of its own (and not a symlink) has its parent folder's
    settings: asking so costs three stats, where the resolver resolves and walks up to the root."""
    folder = path.parent
    inherited = by_folder.get(folder.parent)
    if (
        inherited is not None
        and folder.name not in ("", ".", "..")
        and not folder.is_symlink()
        and not any((folder / name).exists() for name in CONFIG_FILES)
    ):
        return inherited
    return resolver.for_path(path)


def _fix_file(path: Path, settings: Settings, result, arguments, cache: ResultCache | None):
    """(report, source, fixes applied, diff, findings that remain) for one checked file under
    --fix (written atomically unless it changed meanwhile) or --diff (nothing written)."""
    from llmarch_lsp.engine import analyze_source
    from llmarch_lsp.rewrite import applicable_fixes, fix_source, unified_diff

    report, source = result.report, result.source
    # Like Ruff: `unsafe-fixes = true` in the config opts in too; the flags override it.
    unsafe = not arguments.no_unsafe_fixes and (arguments.unsafe_fixes or settings.unsafe_fixes)
    if not applicable_fixes(report, unsafe):
        return report, source, 0, None, len(report.findings)
    if result.cached:  # fix from a fresh analysis, never from stored fix data alone
        report = analyze_source(source, report.path, settings, alternatives=False)
    outcome = fix_source(source, report, settings, unsafe)
    if outcome.failure:
        report.rule_failures.append(("fix", outcome.failure))
    if not outcome.fixed:
        return report, source, 0, None, len(report.findings)
    if arguments.diff:
        return report, source, outcome.fixed, unified_diff(source, outcome.text, report.path), len(outcome.report.findings)
    if not _write_fixed(path, source, outcome.text):
        return report, source, 0, None, len(report.findings)
    if cache is not None:  # the next check of the fixed file is a cache hit
        cache.store(cache.key(outcome.text, report.path, settings_fingerprint(settings)), outcome.report)
    return outcome.report, outcome.text, outcome.fixed, None, len(outcome.report.findings)


def _write_fixed(path: Path, checked_text: str, fixed_text: str) -> bool:
    from llmarch_lsp.rewrite import FileChanged, write_if_unchanged

    try:
        write_if_unchanged(path, checked_text, fixed_text)
    except FileChanged as reason:
        print(f"llmarch-lsp: warning: {reason}; left untouched (run again to fix it)", file=sys.stderr)
        return False
    except OSError as error:
        print(f"llmarch-lsp: warning: cannot write {path}: {error.strerror or error}; left untouched", file=sys.stderr)
        return False
    return True


def _print_diff_summary(fixed: int, files: int, remaining: int, unsafe: bool) -> None:
    def plural(count: int, noun: str) -> str:
        return f"{count} {noun}{'s' if count != 1 else ''}"

    if fixed:
        apply = "--fix --unsafe-fixes" if unsafe else "--fix"
        message = f"Would fix {plural(fixed, 'problem')} in {plural(files, 'file')} (apply with {apply}); {remaining} would remain."
    else:
        message = f"Nothing to fix; {plural(remaining, 'problem')} found."
    print(message, file=sys.stderr)


def _use_colour(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR"))
