import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { actionForChange, ConfigurationReader, serverSettings, stringList } from '../settings';

/** A `WorkspaceConfiguration` holding user values over the package.json defaults. */
function configuration(user: Record<string, unknown>): ConfigurationReader {
  const defaults: Record<string, unknown> = {
    enable: true,
    select: [],
    ignore: [],
    severity: {},
    'fixAll.unsafe': false,
    path: [],
    interpreter: [],
    'trace.server': 'off',
  };
  return {
    get: <T>(key: string) => (key in user ? user[key] : defaults[key]) as T | undefined,
    inspect: (key: string) => ({ key: `llmarch.${key}`, defaultValue: defaults[key], globalValue: user[key] }),
  };
}

describe('settings sent to the server', () => {
  it('sends only enable when nothing is set, so the project configuration applies', () => {
    assert.deepEqual(serverSettings(configuration({})), { enable: true });
  });

  it('translates every server setting a user set', () => {
    const settings = serverSettings(
      configuration({
        enable: false,
        select: ['LLM1', ' post-norm-residual '],
        ignore: ['LLM301'],
        severity: { LLM101: 'error' },
        'fixAll.unsafe': true,
        path: ['/opt/llmarch-lsp'],
        'trace.server': 'verbose',
      }),
    );
    assert.deepEqual(settings, {
      enable: false,
      select: ['LLM1', 'post-norm-residual'],
      ignore: ['LLM301'],
      severity: { LLM101: 'error' },
      fixAll: { unsafe: true },
    });
  });

  it('sends fixAll.unsafe = false when a user set it, and leaves out empty lists and maps', () => {
    assert.deepEqual(serverSettings(configuration({ 'fixAll.unsafe': false, select: [], severity: {} })), {
      enable: true,
      fixAll: { unsafe: false },
    });
  });

  it('reads a hand-written string as a one-item list and drops blanks and non-strings', () => {
    assert.deepEqual(stringList('LLM101'), ['LLM101']);
    assert.deepEqual(stringList(['LLM1', '', 3, '  ']), ['LLM1']);
    assert.deepEqual(stringList(undefined), []);
    assert.deepEqual(serverSettings(configuration({ ignore: 'LLM203' })).ignore, ['LLM203']);
  });
});

describe('what a settings change sets off', () => {
  const change = (...sections: string[]) =>
    actionForChange((section) => sections.some((changed) => changed === section || changed.startsWith(`${section}.`)));

  it('restarts the server for the settings that choose it', () => {
    for (const key of ['llmarch.enable', 'llmarch.path', 'llmarch.interpreter']) {
      assert.equal(change(key), 'restart', key);
    }
  });

  it('sends the rule settings to the running server', () => {
    for (const key of ['llmarch.select', 'llmarch.ignore', 'llmarch.severity', 'llmarch.fixAll.unsafe']) {
      assert.equal(change(key), 'send', key);
    }
  });

  it('leaves trace.server to the client library and ignores other sections', () => {
    assert.equal(change('llmarch.trace.server'), 'none');
    assert.equal(change('python.analysis.typeCheckingMode'), 'none');
  });
});
