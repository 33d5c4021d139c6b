"""`python -m llmarch_lsp.lsp`: the language server over stdio (the CLI's `llmarch-lsp` does the same)."""

from llmarch_lsp.lsp.server import serve

serve("stdio")
