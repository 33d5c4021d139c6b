-- Headless Neovim (>= 0.11) end-to-end test of the shipped config editors/neovim/lsp/llmarch.lua.
-- Run by tests/editors/test_neovim.py with editors/neovim on 'runtimepath'.
-- Env: LLMARCH_CMD  JSON list, the server command (overrides only `cmd` of the shipped config)
--      TEST_FILE    the .py file to open, fix and write
--      EXPECT_CODE  the diagnostic code to fix, e.g. LLM101
--      EXPECT_RANGE where the diagnostic must be: "lnum,col,end_lnum,end_col" (0-based, end exclusive)
--      FIX_TITLE    the rule's primary fix title; the quick fix applied is the one whose title
--                   starts with "llmarch (CODE): FIX_TITLE" (a rule may offer alternatives too)
--      EXPECT_TEXT  text the buffer must contain once the quick fix is applied
-- Prints "OK" and exits 0 on success; on any failure writes "FAIL: ..." to stderr and exits 1.
local function log(...) io.stdout:write(table.concat(vim.tbl_map(tostring, { ... }), ' ') .. '\n') end
local function fail(msg)
  io.stderr:write('FAIL: ' .. tostring(msg) .. '\n')
  io.stderr:flush()
  vim.cmd('cquit 1')
end

local function ours(buf, code)
  return vim.tbl_filter(function(d)
    return d.source == 'llmarch' and (code == nil or d.code == code)
  end, vim.diagnostic.get(buf))
end

local function main()
  local cmd = vim.json.decode((assert(vim.env.LLMARCH_CMD, 'LLMARCH_CMD unset')))
  local file = assert(vim.env.TEST_FILE, 'TEST_FILE unset')
  local code = assert(vim.env.EXPECT_CODE, 'EXPECT_CODE unset')
  local expect = assert(vim.env.EXPECT_TEXT, 'EXPECT_TEXT unset')
  local want_range = assert(vim.env.EXPECT_RANGE, 'EXPECT_RANGE unset')
  local want_title = 'llmarch (' .. code .. '): ' .. assert(vim.env.FIX_TITLE, 'FIX_TITLE unset')

  -- The shipped config must be found on the runtimepath as lsp/llmarch.lua.
  local found = vim.api.nvim_get_runtime_file('lsp/llmarch.lua', true)
  if #found == 0 then return fail('lsp/llmarch.lua not on runtimepath') end
  log('CONFIG', found[1])

  vim.cmd('filetype on') -- -u NONE does not enable filetype detection; vim.lsp.enable needs FileType
  vim.lsp.config('llmarch', { cmd = cmd }) -- merged over the shipped lsp/llmarch.lua
  vim.lsp.enable('llmarch')
  vim.cmd('edit ' .. vim.fn.fnameescape(file))
  local buf = vim.api.nvim_get_current_buf()

  -- 1. The server attaches and publishes our diagnostic.
  if not vim.wait(20000, function() return #ours(buf, code) > 0 end, 50) then
    local clients = vim.lsp.get_clients({ bufnr = buf })
    return fail(('no %s diagnostic within 20s; filetype=%s clients=%d all=%s'):format(
      code, vim.bo[buf].filetype, #clients, vim.inspect(vim.diagnostic.get(buf))))
  end
  local client = vim.lsp.get_clients({ bufnr = buf, name = 'llmarch' })[1]
  if not client then return fail('llmarch client not attached') end
  local cfg = client.config
  log('CLIENT', client.name, 'root=' .. tostring(client.root_dir), 'cmd=' .. vim.inspect(cfg.cmd))
  if not vim.tbl_contains(cfg.filetypes or {}, 'python') then return fail('filetypes not from shipped config') end
  if not vim.tbl_contains(cfg.root_markers or {}, 'llmarch.toml') then return fail('root_markers not from shipped config') end

  local found_diags = ours(buf, code)
  if #found_diags ~= 1 then return fail(('expected one %s diagnostic, got %d'):format(code, #found_diags)) end
  local d = found_diags[1]
  log('DIAG', d.lnum, d.col, d.end_lnum, d.end_col, d.severity, d.source, d.code, d.message)
  local range = ('%d,%d,%d,%d'):format(d.lnum, d.col, d.end_lnum, d.end_col)
  if range ~= want_range then return fail(('%s at %s, expected %s'):format(code, range, want_range)) end

  -- 2. The quick fixes offered for it (the contract: fix title + ignore action).
  vim.api.nvim_win_set_cursor(0, { d.lnum + 1, d.col })
  local params = vim.lsp.util.make_range_params(0, client.offset_encoding)
  params.context = { diagnostics = { d.user_data.lsp }, only = { 'quickfix' } }
  local resp, err = client:request_sync('textDocument/codeAction', params, 10000, buf)
  if not resp or resp.err then return fail('codeAction failed: ' .. vim.inspect(err or resp)) end
  local titles = vim.tbl_map(function(a) return a.title end, resp.result or {})
  log('ACTIONS', vim.inspect(titles))
  local fix_title
  for _, t in ipairs(titles) do
    if not fix_title and t:sub(1, #want_title) == want_title then fix_title = t end
  end
  if not fix_title then return fail('no quick fix titled "' .. want_title .. '..."') end
  if not vim.tbl_contains(titles, 'Ignore ' .. code .. ' on this line') then
    return fail('no "Ignore ' .. code .. ' on this line" action')
  end

  -- 3. Apply it the way a user does (`gra` = vim.lsp.buf.code_action); the filter leaves the
  --    primary fix alone and apply=true applies it, resolving it first if the server sends edits
  --    lazily.
  vim.lsp.buf.code_action({
    apply = true,
    context = { only = { 'quickfix' } },
    filter = function(a) return a.title == fix_title end,
  })
  local function fixed()
    return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n'):find(expect, 1, true) ~= nil
  end
  if not vim.wait(10000, fixed, 50) then return fail('quick fix not applied; buffer:\n' ..
    table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')) end
  log('APPLIED', fix_title)

  -- 4. Write; the server re-analyzes and the diagnostic clears.
  vim.cmd('write')
  if not vim.wait(10000, function() return #ours(buf, code) == 0 end, 50) then
    return fail('diagnostic did not clear after the fix: ' .. vim.inspect(ours(buf, code)))
  end
  log('OK', file)
  vim.cmd('qall!')
end

local ok, err = pcall(main)
if not ok then fail(err) end
