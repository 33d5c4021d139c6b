import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { installFakeVscode } from './fakeVscode';

// What vscode.extensions.getExtension('ms-python.python') returns in each test.
let pythonExtension: unknown;
const asked: string[] = [];
installFakeVscode({
  extensions: {
    getExtension: (id: string) => {
      asked.push(id);
      return pythonExtension;
    },
  },
});
// eslint-disable-next-line @typescript-eslint/no-require-imports
const python = require('../python') as typeof import('../python');

const uri = (fsPath: string) => ({ fsPath });
const noLog = () => undefined;

describe("the Python extension's interpreter", () => {
  it('is undefined when the Python extension is not installed', async () => {
    pythonExtension = undefined;
    assert.equal(await python.activeInterpreter(undefined, noLog), undefined);
    assert.deepEqual(asked, ['ms-python.python']);
    assert.equal(await python.onDidChangeInterpreter(() => undefined), undefined);
  });

  it('activates the extension and resolves its active environment to an executable', async () => {
    let activated = false;
    let listener: (() => void) | undefined;
    const environments = {
      getActiveEnvironmentPath: () => ({ id: 'venv', path: '/envs/work' }),
      resolveEnvironment: async (env: { path: string }) => ({ executable: { uri: uri(`${env.path}/bin/python`) } }),
      onDidChangeActiveEnvironmentPath: (callback: () => void) => {
        listener = callback;
        return { dispose: () => undefined };
      },
    };
    pythonExtension = {
      isActive: false,
      exports: undefined,
      activate: async () => {
        activated = true;
        return { ready: Promise.resolve(), environments };
      },
    };
    assert.deepEqual(await python.activeInterpreter(undefined, noLog), ['/envs/work/bin/python']);
    assert.ok(activated);
    let changes = 0;
    assert.ok(await python.onDidChangeInterpreter(() => changes++));
    listener?.();
    assert.equal(changes, 1);
  });

  it('is [] when no environment is selected or it cannot be resolved', async () => {
    const environments = {
      getActiveEnvironmentPath: () => undefined,
      resolveEnvironment: async () => undefined,
      onDidChangeActiveEnvironmentPath: () => ({ dispose: () => undefined }),
    };
    pythonExtension = { isActive: true, exports: { environments } };
    assert.deepEqual(await python.activeInterpreter(undefined, noLog), []);
    environments.getActiveEnvironmentPath = () => ({ id: 'x', path: '/gone' }) as never;
    assert.deepEqual(await python.activeInterpreter(undefined, noLog), []);
  });

  it("falls back to an older release's execution details", async () => {
    pythonExtension = {
      isActive: true,
      exports: { settings: { getExecutionDetails: () => ({ execCommand: ['conda', 'run', '-n', 'ml', 'python'] }) } },
    };
    assert.deepEqual(await python.activeInterpreter(undefined, noLog), ['conda', 'run', '-n', 'ml', 'python']);
  });

  it('logs and gives [] when the extension throws', async () => {
    const logged: string[] = [];
    pythonExtension = { isActive: false, activate: async () => Promise.reject(new Error('boom')) };
    assert.deepEqual(await python.activeInterpreter(undefined, (m) => logged.push(m)), []);
    assert.match(logged.join(), /boom/);
  });
});
