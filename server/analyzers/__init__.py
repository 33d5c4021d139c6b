"""The registry: every `llmNNN_<name>.py` module here is one rule, found by its file name.

Adding a rule is adding its module; a test checks that each module's RULE matches its file name.
The file names alone give every rule's code and name (`RULE_IDS`), so settings and selectors are
checked without importing any rule; a rule's module (with its facts and fixes) loads when used.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmarch_lsp.analyzers.rule import Rule

RULE_MODULES = tuple(
    sorted(module.name for module in pkgutil.iter_modules(__path__) if re.fullmatch(r"llm\d{3}_\w+", module.name))
)


@dataclass(frozen=True)
class RuleId:
    """A rule's code and name, read off its module's file name (`llm101_unscaled_attention`)."""

    code: str
    name: str
    module: str

    @classmethod
    def of_module(cls, module: str) -> RuleId:
        number, _, words = module.partition("_")
        return cls(number.upper(), words.replace("_", "-"), module)

    def load(self) -> Rule:
        return importlib.import_module(f"{__name__}.{self.module}").RULE


RULE_IDS = tuple(sorted((RuleId.of_module(module) for module in RULE_MODULES), key=lambda rule: rule.code))


@lru_cache(maxsize=1)
def all_rules() -> tuple[Rule, ...]:
    return tuple(rule.load() for rule in RULE_IDS)


def find_rule_id(code_or_name: str) -> RuleId | None:
    wanted = code_or_name.strip()
    for rule in RULE_IDS:
        if wanted.upper() == rule.code or wanted.lower() == rule.name:
            return rule
    return None


def find_rule(code_or_name: str) -> Rule | None:
    """The rule with this code or name (importing its module alone), or None."""
    found = find_rule_id(code_or_name)
    return None if found is None else found.load()


def matches(rule: Rule | RuleId, selector: str) -> bool:
    """A selector is a code prefix (`LLM1`, `LLM101`), `ALL`, or a rule name."""
    selector = selector.strip()
    if not selector:
        return False
    if selector.upper() == "ALL":
        return True
    return rule.code.startswith(selector.upper()) or selector.lower() == rule.name


def is_known_selector(selector: str) -> bool:
    """A rule's code or name, a prefix of one, `ALL`, or a family (`LLM1` ... `LLM8`)."""
    if re.fullmatch(r"LLM[1-8]?", selector.strip().upper()) or selector.strip().upper() == "ALL":
        return True
    return any(matches(rule, selector) for rule in RULE_IDS)
