// Drive VS Code (code-server) in headless Chromium: open a Python file, wait for the llmarch
// diagnostic (squiggle + Problems row), screenshot, apply the quick fix with Ctrl+. and Enter,
// save, and check the file on disk. Run by run_e2e.sh.
// usage: node e2e.js URL FILE      env: SHOT_DIR (screenshots), CHROMIUM (browser binary)
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const [URL, FILE] = process.argv.slice(2);
const SHOT_DIR = process.env.SHOT_DIR || '.';
const CODE = 'LLM203';
const FIX_TITLE = `llmarch (${CODE}):`;
const FIXED = 'norm_first=True';
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const shot = (name) => path.join(SHOT_DIR, name);
// EXPECT=untrusted: the workspace is not trusted and offers only a workspace server; the
// extension must not start it, so no diagnostic may appear.
const UNTRUSTED = process.env.EXPECT === 'untrusted';
const SQUIGGLE = '.monaco-editor .squiggly-warning, .monaco-editor .squiggly-error, .monaco-editor .squiggly-info';

(async () => {
  if (!URL || !FILE) throw new Error('usage: node e2e.js URL FILE');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => log('pageerror:', e.message));
  try {
    await page.goto(URL, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
    if (UNTRUSTED) {
      const no = page.locator('.monaco-dialog-box .monaco-button', { hasText: "don't trust" }).first();
      await no.waitFor({ timeout: 30000 });
      await no.click();
      log('answered the trust dialog: do not trust');
    }
    await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60000 });
    log('workbench loaded');

    // Open from the Explorer (double-click = pinned editor); Quick Open is flaky here.
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: path.basename(FILE) }).first().dblclick();
    await page.waitForSelector('.monaco-editor .view-lines', { timeout: 20000 });
    log('editor open');

    if (UNTRUSTED) {
      await page.waitForTimeout(15000);
      await page.screenshot({ path: shot('vscode-untrusted.png') });
      if (await page.locator(SQUIGGLE).count()) throw new Error('a diagnostic appeared in an untrusted workspace');
      log('OK no diagnostic in the untrusted workspace');
      await browser.close();
      process.exit(0);
    }

    // 1. The diagnostic: a squiggle in the editor and a row in the Problems panel.
    await page.waitForSelector(SQUIGGLE, { timeout: 60000 });
    log('squiggle visible');
    await page.keyboard.press('Control+Shift+M'); // View: Problems
    const problem = page.locator('.markers-panel .monaco-list-row', { hasText: CODE }).first();
    await problem.waitFor({ timeout: 20000 });
    const row = (await problem.innerText()).replace(/\s+/g, ' ');
    log('problems panel:', row);
    if (!/llmarch/.test(row)) throw new Error(`Problems row does not name the source llmarch: ${row}`);

    // Hover the squiggle for the screenshot: the explanation with its citations.
    // (The text layer above the squiggle takes pointer events: move the mouse to it directly.)
    const box = await page.locator(SQUIGGLE).first().boundingBox();
    await page.mouse.move(box.x + Math.min(60, box.width / 2), box.y + box.height / 2);
    await page.waitForSelector('.monaco-hover .hover-contents', { timeout: 10000 }).catch(() => log('no hover shown'));
    await page.waitForTimeout(500);
    await page.screenshot({ path: shot('vscode-diagnostic.png') });
    await page.screenshot({ path: shot('vscode-readme.png'), clip: { x: 348, y: 70, width: 932, height: 530 } });
    log('screenshot', shot('vscode-diagnostic.png'));
    await page.mouse.move(5, 5);

    // Settings reach the running server (workspace/didChangeConfiguration): add the rule to
    // llmarch.ignore in the Settings editor -> the diagnostic clears; remove it -> it comes back.
    // (Through the UI: code-server's file watcher does not see settings.json written from outside.)
    await page.keyboard.press('Control+Comma');
    const search = page.locator('.settings-editor .suggest-input-container .monaco-editor textarea').first();
    await search.waitFor({ timeout: 20000 });
    await search.fill('llmarch.ignore');
    const ignoreItem = page.locator('.settings-editor .setting-item-list', { hasText: 'Rules to disable' }).first();
    await ignoreItem.waitFor({ timeout: 20000 });
    await ignoreItem.locator('.monaco-button', { hasText: 'Add Item' }).click();
    await page.keyboard.type(CODE);
    await page.keyboard.press('Enter');
    await page.locator('.settings-editor .setting-list-row', { hasText: CODE }).first().waitFor({ timeout: 10000 });
    await page.screenshot({ path: shot('vscode-settings.png') });
    await page.locator('.tabs-container .tab', { hasText: path.basename(FILE) }).first().click();
    await page.waitForSelector(SQUIGGLE, { state: 'detached', timeout: 20000 });
    log(`llmarch.ignore = ["${CODE}"]: diagnostic cleared`);
    await page.locator('.tabs-container .tab', { hasText: 'Settings' }).first().click();
    const ignored = page.locator('.settings-editor .setting-list-row', { hasText: CODE }).first();
    await ignored.hover();
    await ignored.locator('.codicon-close, .codicon-remove, [aria-label^="Remove"]').first().click();
    await ignored.waitFor({ state: 'detached', timeout: 10000 });
    await page.locator('.tabs-container .tab', { hasText: 'Settings' }).first().locator('.codicon-close').click();
    await page.locator('.tabs-container .tab', { hasText: path.basename(FILE) }).first().click();
    await page.waitForSelector(SQUIGGLE, { timeout: 20000 });
    log('llmarch.ignore emptied: diagnostic back');

    // 2. Quick fix: cursor inside the call on line 3, Ctrl+. , move to our fix, Enter.
    await page.locator('.monaco-editor .view-lines').first().click();
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+G');
    await page.keyboard.type('3:20');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Control+.');
    await page.locator('.action-widget .monaco-list-row', { hasText: FIX_TITLE }).first().waitFor({ timeout: 20000 });
    const titles = await page.locator('.action-widget .monaco-list-row').allInnerTexts();
    log('quick fixes:', JSON.stringify(titles.map((t) => t.replace(/\s+/g, ' ').trim())));
    if (!titles.some((t) => t.includes(`Ignore ${CODE} on this line`))) throw new Error('no "Ignore ... on this line" action');
    await page.screenshot({ path: shot('vscode-quickfix.png') });
    // Mouse clicks on that menu are blocked (.context-view-pointerBlock): move the focus instead.
    for (let i = 0; i < titles.length; i++) {
      const focused = await page.locator('.action-widget .monaco-list-row.focused').first().innerText().catch(() => '');
      if (focused.includes(FIX_TITLE)) break;
      await page.keyboard.press('ArrowDown');
    }
    await page.keyboard.press('Enter');
    await page.waitForFunction(
      (text) => [...document.querySelectorAll('.monaco-editor .view-line')].some((l) => l.textContent.includes(text)),
      FIXED, { timeout: 10000 });
    log('quick fix applied in the editor');

    // 3. Save; the file on disk holds the fix and the diagnostic clears.
    await page.keyboard.press('Control+S');
    const deadline = Date.now() + 10000;
    while (!fs.readFileSync(FILE, 'utf8').includes(FIXED)) {
      if (Date.now() > deadline) throw new Error('file not saved with the fix');
      await page.waitForTimeout(200);
    }
    await page.locator('.markers-panel .monaco-list-row', { hasText: CODE }).first()
      .waitFor({ state: 'detached', timeout: 15000 });
    await page.waitForSelector(SQUIGGLE, { state: 'detached', timeout: 15000 });
    await page.screenshot({ path: shot('vscode-fixed.png') });
    log('OK saved:', JSON.stringify(fs.readFileSync(FILE, 'utf8')));
    await browser.close();
    process.exit(0);
  } catch (e) {
    log('FAIL:', e.message);
    await page.screenshot({ path: shot('vscode-fail.png') }).catch(() => {});
    await browser.close();
    process.exit(1);
  }
})();
