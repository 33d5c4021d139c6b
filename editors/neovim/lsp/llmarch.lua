---@brief
---
--- llmarch-lsp: reviews PyTorch transformer and training code (unscaled attention, post-norm
--- residuals, missing LR warmup, ...) with cited diagnostics, hovers and quick fixes.
---
--- Install the server so `llmarch-lsp` is on your PATH (`pip install llmarch-lsp`, or
--- `pip install -e .` from a clone), put this file on your 'runtimepath' as `lsp/llmarch.lua`
--- (for example `~/.config/nvim/lsp/llmarch.lua`), then in your init.lua:
---
--- ```lua
--- vim.lsp.enable('llmarch')
--- ```
---
--- Override anything with `vim.lsp.config`, e.g. a server from a project virtualenv and
--- stricter settings (keys are the same as `[tool.llmarch]`, in camelCase):
---
--- ```lua
--- vim.lsp.config('llmarch', {
---   cmd = { '/path/to/venv/bin/llmarch-lsp' },
---   settings = { llmarch = { select = { 'LLM1', 'LLM2' }, severity = { LLM101 = 'error' } } },
--- })
--- ```
---
--- Settings given here override the project's `pyproject.toml` / `llmarch.toml`; leave a key
--- out to use the project's value. Requires Neovim 0.11+.

---@type vim.lsp.Config
return {
  cmd = { 'llmarch-lsp' },
  filetypes = { 'python' },
  root_markers = { 'pyproject.toml', 'llmarch.toml', '.git' },
  -- Only keys you set are sent; the server treats a missing key as "use the project's config".
  -- Known keys: enable (bool), select / ignore (list of codes, prefixes or rule names),
  -- severity (table: code -> 'error'|'warning'|'info'|'hint'), fixAll = { unsafe = bool },
  -- debounceMs (integer, 0-10000).
  settings = {
    llmarch = {
      enable = true,
    },
  },
  -- The server reads its settings at start-up from initializationOptions (and later from
  -- workspace/didChangeConfiguration, which Neovim sends with `settings` right after start).
  -- Send the same table in both places so that there is one source of truth: `settings`.
  before_init = function(params, config)
    local options = vim.tbl_deep_extend('force', config.init_options or {}, config.settings or {})
    -- An empty Lua table would be sent as a JSON array; send nothing instead.
    params.initializationOptions = next(options) ~= nil and options or nil
  end,
}
