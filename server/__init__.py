"""llmarch-lsp: reviews PyTorch model and training code like a senior LLM researcher."""

__version__ = "0.1.0"
