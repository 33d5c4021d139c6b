"""The papers rules cite, and how a citation is written in each place it appears.

`bibliography.toml` is a verbatim copy of the project's verified reference table
(`shared/references.toml`); a test keeps the two identical. Rules cite entries by key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# Last words of an author name that make it a group: cited by the group's name alone.
_GROUP_WORDS = {"Team", "Workshop", "Collaboration", "Consortium", "Group"}

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
    text = resources.files(__package__).joinpath("bibliography.toml").read_text(encoding="utf-8")
    return {key: _citation(key, entry) for key, entry in tomllib.loads(text).items()}


def cite(key: str) -> Citation:
    try:
        citation = bibliography()[key]
    except KeyError:
        raise KeyError(f"unknown citation key {key!r}: add it to shared/references.toml first") from None
    if not citation.verified:
        raise KeyError(f"citation {key!r} is not verified and must not be cited")
    return citation


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
