"""The real server plus one rule that always raises: a test double, started by test_robustness.py.

Patching happens here, in the test's own server process, so product code needs no test hooks.
The analysis child (spawned) re-imports this module as `__mp_main__`, so it is patched too.
"""

import dataclasses

from llmarch_lsp import analyzers
from llmarch_lsp.analyzers import all_rules, find_rule
from llmarch_lsp.lsp.server import serve


def _raise(document, context, rule):
    raise RuntimeError("this rule is broken on purpose")


BROKEN = dataclasses.replace(find_rule("LLM203"), code="LLM999", name="always-raises", check=_raise)
RULES = (BROKEN, *all_rules())
analyzers.all_rules = lambda: RULES  # settings look the registry up when they choose the rules

if __name__ == "__main__":
    serve("stdio")
