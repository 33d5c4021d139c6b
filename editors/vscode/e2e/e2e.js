// Drive VS Code (code-server) in headless Chromium: open a Python file, wait for the llmarch
// diagnostic (squiggle + Problems row with code and position), screenshot, optionally exercise the
// commands and live settings, apply the quick fix with Ctrl+. and Enter, save, and check the file
// on disk. Run by run_e2e.sh.
// usage: node e2e.js URL FILE
// env: EXPECT_CODE (LLM101), FIX_TITLE (the rule's primary fix title, without the prefix),
//      EXPECT_TEXT (in the file once fixed), EXPECT_POSITION ("Ln 19, Col 15", the Problems row),
//      FULL=1 (commands + settings too), EXPECT=untrusted, SHOT_DIR, CHROMIUM
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const [URL, FILE] = process.argv.slice(2);
const SHOT_DIR = process.env.SHOT_DIR || '.';
const CODE = process.env.EXPECT_CODE || 'LLM101';
const FIX_TITLE = `llmarch (${CODE}): ${process.env.FIX_TITLE || ''}`;
const FIXED = process.env.EXPECT_TEXT || 'k.size(-1)';
const POSITION = process.env.EXPECT_POSITION || '';
const FULL = process.env.FULL === '1';
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const shot = (name) => path.join(SHOT_DIR, name);
// EXPECT=untrusted: the workspace is not trusted and offers only a workspace server; the
// extension must not start it, so no diagnostic may appear.
const UNTRUSTED = process.env.EXPECT === 'untrusted';
const SQUIGGLE = '.monaco-editor .squiggly-warning, .monaco-editor .squiggly-error, .monaco-editor .squiggly-info';
const clean = (text) => text.replace(/\s+/g, ' ').trim();

/** Run a command from the Command Palette by its title. */
async function runCommand(page, title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: 10000 });
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 10000 });
  await page.keyboard.press('Enter');
}

/** Put the cursor at a "Ln L, Col C" position with Go to Line. */
async function goTo(page, position) {
  const [, line, column] = /Ln (\d+), Col (\d+)/.exec(position);
  await page.locator('.monaco-editor .view-lines').first().click();
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+G');
  await page.keyboard.type(`${line}:${column}`);
  await page.keyboard.press('Enter');
}

async function editorTab(page, name) {
  await page.locator('.tabs-container .tab', { hasText: name }).first().click();
}

/** llmarch: Explain Rule with the cursor on the finding: the rule's docs as a Markdown preview. */
async function checkExplainRule(page, position) {
  await goTo(page, position);
  await runCommand(page, 'llmarch: Explain Rule');
  await page.locator('.tabs-container .tab', { hasText: `${CODE}.md` }).first().waitFor({ timeout: 20000 });
  // The preview is a webview: nested iframes. Find the frame that rendered the headings.
  const deadline = Date.now() + 20000;
  let rendered = null;
  while (!rendered && Date.now() < deadline) {
    for (const frame of page.frames()) {
      const heading = await frame.locator('h1').first().innerText({ timeout: 200 }).catch(() => '');
      if (heading.includes(CODE)) {
        const sections = await frame.locator('h2').allInnerTexts();
        rendered = { heading, sections };
        break;
      }
    }
    if (!rendered) await page.waitForTimeout(250);
  }
  if (!rendered) throw new Error(`no Markdown preview with a "${CODE}" heading`);
  log('explain rule:', rendered.heading, JSON.stringify(rendered.sections));
  for (const section of ['Problem', 'Literature', 'Recommendation']) {
    if (!rendered.sections.includes(section)) throw new Error(`explanation lacks the ${section} section`);
  }
  await page.screenshot({ path: shot('vscode-explain.png') });
  await page.locator('.tabs-container .tab.active .codicon-close').first().click();
}

/** llmarch: Show Output reveals the extension's log, which says which server runs. */
async function checkShowOutput(page) {
  await runCommand(page, 'llmarch: Show Output');
  // The Output view with our channel selected (its text scrolls with the LSP trace).
  await page.waitForFunction(() => [...document.querySelectorAll('.part.panel select')]
    .some((select) => select.selectedIndex >= 0 && select.options[select.selectedIndex].text === 'llmarch'), null, { timeout: 15000 });
  await page.locator('.part.panel .view-lines', { hasText: '[info]' }).first().waitFor({ timeout: 15000 });
  log('output channel llmarch shown');
  await page.screenshot({ path: shot('vscode-output.png') });
}

/**
 * Settings reach the running server (workspace/didChangeConfiguration): add the rule to
 * llmarch.ignore in the Settings editor -> the diagnostic clears; remove it -> it comes back.
 * (Through the UI: code-server's file watcher does not see settings.json written from outside.)
 */
async function checkLiveSettings(page) {
  await page.keyboard.press('Control+Comma');
  const search = page.locator('.settings-editor .suggest-input-container .monaco-editor textarea').first();
  await search.waitFor({ timeout: 20000 });
  await search.fill('llmarch.ignore');
  const ignoreItem = page.locator('.settings-editor .setting-item-list', { hasText: 'Rules to disable' }).first();
  await ignoreItem.waitFor({ timeout: 20000 });
  await ignoreItem.locator('.monaco-button', { hasText: 'Add Item' }).click();
  // Type only once the new item's box has the focus, or the first keys are lost.
  const box = ignoreItem.locator('.setting-list-edit-row input, .setting-list-widget input').first();
  await box.waitFor({ timeout: 10000 });
  await box.fill(CODE);
  await box.press('Enter');
  await page.locator('.settings-editor .setting-list-row', { hasText: CODE }).first().waitFor({ timeout: 10000 });
  await page.screenshot({ path: shot('vscode-settings.png') });
  await editorTab(page, path.basename(FILE));
  await page.waitForSelector(SQUIGGLE, { state: 'detached', timeout: 20000 });
  log(`llmarch.ignore = ["${CODE}"]: diagnostic cleared`);
  await editorTab(page, 'Settings');
  const ignored = page.locator('.settings-editor .setting-list-row', { hasText: CODE }).first();
  await ignored.hover();
  await ignored.locator('.codicon-close, .codicon-remove, [aria-label^="Remove"]').first().click();
  await ignored.waitFor({ state: 'detached', timeout: 10000 });
  await page.locator('.tabs-container .tab', { hasText: 'Settings' }).first().locator('.codicon-close').click();
  await editorTab(page, path.basename(FILE));
  await page.waitForSelector(SQUIGGLE, { timeout: 20000 });
  log('llmarch.ignore emptied: diagnostic back');
}

/** llmarch: Restart Server: a new server comes up and publishes the diagnostic again. */
async function checkRestart(page) {
  await runCommand(page, 'llmarch: Restart Server');
  await page.waitForTimeout(1500);
  await page.waitForSelector(SQUIGGLE, { timeout: 30000 });
  log('restarted: diagnostic back');
}

(async () => {
  if (!URL || !FILE) throw new Error('usage: node e2e.js URL FILE');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-quic',
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

    // 1. The diagnostic: a squiggle in the editor and a row in the Problems panel, with its code
    //    and position.
    await page.waitForSelector(SQUIGGLE, { timeout: 90000 });
    log('squiggle visible');
    await page.keyboard.press('Control+Shift+M'); // View: Problems
    const problem = page.locator('.markers-panel .monaco-list-row', { hasText: CODE }).first();
    await problem.waitFor({ timeout: 20000 });
    const row = clean(await problem.innerText());
    log('problems panel:', row);
    if (!/llmarch/.test(row)) throw new Error(`Problems row does not name the source llmarch: ${row}`);
    const position = /Ln \d+, Col \d+/.exec(row)?.[0];
    if (!position) throw new Error(`no position in the Problems row: ${row}`);
    if (POSITION && position !== POSITION) throw new Error(`diagnostic at ${position}, expected ${POSITION}`);
    const rows = await page.locator('.markers-panel .monaco-list-row', { hasText: 'llmarch' }).count();
    if (rows !== 1) throw new Error(`expected one llmarch problem, found ${rows}`);

    // Hover the squiggle for the screenshot: the explanation with its citations.
    // (The text layer above the squiggle takes pointer events: move the mouse to it directly.)
    const box = await page.locator(SQUIGGLE).first().boundingBox();
    await page.mouse.move(box.x + Math.min(60, box.width / 2), box.y + box.height / 2);
    await page.waitForSelector('.monaco-hover .hover-contents', { timeout: 10000 }).catch(() => log('no hover shown'));
    // Until the server's hover (the rule's explanation) and the quick-fix check have arrived.
    await page.waitForFunction(() => {
      const hover = document.querySelector('.monaco-hover');
      return hover && !/Loading\.\.\.|Checking for quick fixes/.test(hover.textContent);
    }, null, { timeout: 10000 }).catch(() => log('hover still loading'));
    await page.waitForTimeout(300);
    await page.screenshot({ path: shot('vscode-diagnostic.png') });
    await page.screenshot({ path: shot('vscode-readme.png'), clip: { x: 348, y: 35, width: 932, height: 565 } });
    log('screenshot', shot('vscode-diagnostic.png'));
    await page.mouse.move(5, 5);

    if (FULL) {
      await checkExplainRule(page, position);
      await checkShowOutput(page);
      await checkLiveSettings(page);
      await checkRestart(page);
    }

    // 2. Quick fix: cursor on the finding, Ctrl+. , move to the rule's primary fix, Enter.
    await goTo(page, position);
    await page.keyboard.press('Control+.');
    await page.locator('.action-widget .monaco-list-row', { hasText: FIX_TITLE }).first().waitFor({ timeout: 20000 });
    const titles = (await page.locator('.action-widget .monaco-list-row').allInnerTexts()).map(clean);
    log('quick fixes:', JSON.stringify(titles));
    if (!titles.some((t) => t.includes(`Ignore ${CODE} on this line`))) throw new Error('no "Ignore ... on this line" action');
    await page.screenshot({ path: shot('vscode-quickfix.png') });
    // Mouse clicks on that menu are blocked (.context-view-pointerBlock): move the focus instead.
    let chosen = '';
    for (let i = 0; i <= titles.length; i++) {
      const focused = clean(await page.locator('.action-widget .monaco-list-row.focused').first().innerText().catch(() => ''));
      if (focused.startsWith(FIX_TITLE)) {
        chosen = focused;
        break;
      }
      await page.keyboard.press('ArrowDown');
    }
    if (!chosen) throw new Error(`could not focus the quick fix "${FIX_TITLE}..."`);
    await page.keyboard.press('Enter');
    log('applying:', chosen);
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
