"""The registry: every `llmNNN_<name>.py` module here is one rule, found by its file name.

Adding a rule is adding its module; a test checks that each module's RULE matches its file name.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache

from llmarch_lsp.analyzers.rule import Rule

RULE_MODULES = tuple(
    sorted(module.name for module in pkgutil.iter_modules(__path__) if re.fullmatch(r"llm\d{3}_\w+", module.name))
)


@lru_cache(maxsize=1)
def all_rules() -> tuple[Rule, ...]:
    rules = [importlib.import_module(f"{__name__}.{module}").RULE for module in RULE_MODULES]
    return tuple(sorted(rules, key=lambda rule: rule.code))


def find_rule(code_or_name: str) -> Rule | None:
    wanted = code_or_name.strip()
    for rule in all_rules():
        if wanted.upper() == rule.code or wanted.lower() == rule.name:
            return rule
    return None


def matches(rule: Rule, selector: str) -> bool:
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
    return any(matches(rule, selector) for rule in all_rules())
