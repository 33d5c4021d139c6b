"""Text helpers. Lines as Python's tokenizer (and the LSP) count them: only \\n, \\r\\n and \\r end a line.

`str.splitlines` also splits on form feeds, U+2028 and other separators, which would put every
line number after such a character out of step with `ast`.
"""

from __future__ import annotations

import re
import sys

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_WITH_END = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """Lines without their endings; a text ending in a line break ends with an empty line."""
    return _LINE_BREAK.split(text)


def lines_with_ends(text: str) -> list[str]:
    """Lines with their endings, joining back to `text` exactly."""
    return _LINE_WITH_END.findall(text)


def line_starts(text: str) -> list[int]:
    """Offset of the start of each line, plus the offset just past the last one."""
    starts = [0]
    for line in lines_with_ends(text):
        starts.append(starts[-1] + len(line))
    return starts


def newline_of(text: str) -> str:
    """The text's line ending, judged by its first line break (\\n when it has none)."""
    match = _LINE_BREAK.search(text)
    return match.group() if match else "\n"


def toml_parser():
    """`tomllib` (`tomli` before Python 3.11), imported on first use: most runs read no TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib
