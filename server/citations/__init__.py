"""The papers rules cite, and how a citation is written in each place it appears.

`bibliography.toml` is a verbatim copy of the project's verified reference table
(`shared/references.toml`); a test keeps the two identical. Rules cite entries by key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from llmarch_lsp.text import toml_parser


# Last words of an author name that make it a group: cited by the group's name alone.
_GROUP_WORDS = {"Team", "Workshop", "Collaboration", "Consortium", "Group"}
_TABLE_HEADER = re.compile(r"^\[([A-Za-z0-9_.-]+)\][ \t]*$", re.MULTILINE)

@dataclass(frozen=True)
class Citation:
    key: str
    title: str
    authors: tuple[str, ...]
    year: int
    venue: str
    arxiv: str | None
    url: str | None
    verified: bool

    @property
    def first_author_surname(self) -> str:
        if not self.authors:
            return "Anonymous"
        if self.is_group_work:
            return self.authors[0]  # "Gemma Team", not "Team"
        return self.authors[0].split()[-1]

    @property
    def is_group_work(self) -> bool:
        """The first author is a team or workshop that publishes under its own name."""
        return bool(self.authors) and self.authors[0].split()[-1] in _GROUP_WORDS

    @property
    def author_short(self) -> str:
        """`Vaswani et al.`, `Loshchilov and Hutter`, `Smith`."""
        named = [author for author in self.authors if author != "et al."]
        if len(self.authors) == 1 or self.is_group_work:
            return self.first_author_surname
        if len(self.authors) == 2 and len(named) == 2:
            return f"{self.first_author_surname} and {named[1].split()[-1]}"
        return f"{self.first_author_surname} et al."

    @property
    def link(self) -> str | None:
        if self.arxiv:
            return f"https://arxiv.org/abs/{self.arxiv}"
        return self.url

    def short(self) -> str:
        """`Vaswani et al., 2017` — for diagnostics, where space is scarce."""
        return f"{self.author_short}, {self.year}"

    def inline(self) -> str:
        """`Vaswani et al., 2017, arXiv:1706.03762` — for code comments."""
        if self.arxiv:
            return f"{self.short()}, arXiv:{self.arxiv}"
        return self.short()

    def full(self) -> str:
        """A full reference line for `--explain` and hovers."""
        authors = ", ".join(self.authors)
        reference = f"{authors} ({self.year}). {self.title}. {self.venue}."
        if self.link:
            reference += f" {self.link}"
        return reference

    def markdown(self) -> str:
        authors = ", ".join(self.authors)
        title = f"[{self.title}]({self.link})" if self.link else self.title
        arxiv = f" arXiv:{self.arxiv}." if self.arxiv else ""
        return f"{authors} ({self.year}). *{title}*. {self.venue}.{arxiv}"

    def as_json(self) -> dict:
        return {"key": self.key, "title": self.title, "year": self.year, "arxiv": self.arxiv}


@lru_cache(maxsize=1)
def bibliography() -> dict[str, Citation]:
    """Every entry, parsed at once (for tests and tools; a citation parses only its own entry)."""
    return {key: _citation(key, entry) for key, entry in toml_parser().loads(_text()).items()}


def cite(key: str) -> Citation:
    citation = _entry(key)
    if citation is None:
        raise KeyError(f"unknown citation key {key!r}: add it to shared/references.toml first")
    if not citation.verified:
        raise KeyError(f"citation {key!r} is not verified and must not be cited")
    return citation


@lru_cache(maxsize=None)
def _entry(key: str) -> Citation | None:
    """One entry, parsed from its own `[key]` table alone: parsing the whole 50 kB table costs a
    command-line run that prints a few citations more than everything else it does."""
    table = _tables().get(key)
    if table is None:
        return None
    return _citation(key, toml_parser().loads(table)[key])


@lru_cache(maxsize=1)
def _tables() -> dict[str, str]:
    """Each entry's text, from its `[key]` header line to the next one (the table's layout:
    one table per paper, plain `name = value` lines; a test checks every entry against a full parse)."""
    text = _text()
    headers = list(_TABLE_HEADER.finditer(text))
    return {
        header.group(1): text[header.start() : following.start() if following else len(text)]
        for header, following in zip(headers, [*headers[1:], None])
    }


@lru_cache(maxsize=1)
def _text() -> str:
    from importlib import resources  # ~10 ms of imports, paid only when a citation is shown

    return resources.files(__package__).joinpath("bibliography.toml").read_text(encoding="utf-8")


def _citation(key: str, entry: dict) -> Citation:
    return Citation(
        key=key,
        title=entry["title"],
        authors=tuple(entry.get("authors", ())),
        year=int(entry["year"]),
        venue=entry.get("venue", ""),
        arxiv=entry.get("arxiv"),
        url=entry.get("url"),
        verified=bool(entry.get("verified", False)),
    )
