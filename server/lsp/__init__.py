"""The language server: a thin LSP adapter over the engine's findings.

One concern per module: `server` wires features, `documents` debounces and versions analyses,
`diagnostics` turns findings into LSP diagnostics, `code_actions` and `hover` answer requests,
`settings` reads client settings, `positions` converts Python string columns to the client's
position encoding, `worker` runs the engine in a child process.
"""
