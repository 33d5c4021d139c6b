"""The bundled bibliography is the project's verified reference table, to the letter."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from llmarch_lsp.analyzers import all_rules
from llmarch_lsp.citations import cite

SHARED = Path(__file__).resolve().parents[3] / "shared" / "references.toml"


@pytest.mark.skipif(not SHARED.is_file(), reason="shared/references.toml is not beside this checkout")
def test_bundled_copy_matches_shared_references_exactly():
    from importlib import resources

    ours = tomllib.loads(resources.files("llmarch_lsp.citations").joinpath("bibliography.toml").read_text("utf-8"))
    theirs = tomllib.loads(SHARED.read_text("utf-8"))
    for key, entry in ours.items():
        assert key in theirs, key
        for field in ("title", "authors", "year", "venue", "arxiv", "verified"):
            assert entry.get(field) == theirs[key].get(field), (key, field)


def test_every_cited_key_exists_and_is_verified():
    for rule in all_rules():
        for key in rule.citation_keys:
            assert cite(key).verified


def test_rendering_uses_exact_fields():
    vaswani = cite("vaswani2017attention")
    assert vaswani.inline() == "Vaswani et al., 2017, arXiv:1706.03762"
    assert vaswani.link == "https://arxiv.org/abs/1706.03762"
    assert "Attention Is All You Need" in vaswani.full()
    assert cite("loshchilov2019adamw").short() == "Loshchilov and Hutter, 2019"


def test_unknown_key_is_refused():
    with pytest.raises(KeyError):
        cite("nobody2099imaginary")


def test_group_authors_are_cited_by_the_group_name():
    # "BigScience Workshop" and "Gemma Team" publish as groups: "Workshop et al." would be wrong.
    assert cite("bigscience2022bloom").short() == "BigScience Workshop, 2022"
    assert cite("gemma2024gemma").short() == "Gemma Team, 2024"
    assert cite("vaswani2017attention").short() == "Vaswani et al., 2017"


def test_each_entry_parsed_alone_equals_the_full_parse():
    from llmarch_lsp.citations import _entry, _tables, bibliography

    everything = bibliography()
    assert set(_tables()) == set(everything)  # every table is found by its header line
    for key, citation in everything.items():
        assert _entry(key) == citation, key


def test_an_unknown_or_unverified_key_cannot_be_cited():
    from llmarch_lsp.citations import bibliography

    with pytest.raises(KeyError, match="unknown citation key"):
        cite("nobody2099nothing")
    unverified = [key for key, citation in bibliography().items() if not citation.verified]
    for key in unverified:
        with pytest.raises(KeyError, match="not verified"):
            cite(key)
