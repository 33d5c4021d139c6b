import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DiscoveryInput, discoverServer, ServerCommandError } from '../discovery';
import { fakeMachine } from './fakeMachine';

const WS = '/work/project';

function input(overrides: Partial<DiscoveryInput> = {}): DiscoveryInput {
  return { serverPath: [], interpreter: [], pythonExtensionInterpreter: undefined, trusted: true, folders: [WS], ...overrides };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ServerCommandError, `expected a ServerCommandError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('expected discovery to fail');
}

describe('server discovery order', () => {
  const everything = fakeMachine({
    executables: ['/opt/tools/llmarch-lsp', '/usr/bin/python3', '/envs/ext/bin/python', `${WS}/.venv/bin/llmarch-lsp`, '/usr/bin/llmarch-lsp'],
    pythonsWithServer: ['/usr/bin/python3', '/envs/ext/bin/python'],
  });

  it('takes llmarch.path first, with its arguments', async () => {
    const { server } = await discoverServer(
      input({ serverPath: ['/opt/tools/llmarch-lsp', '--stdio'], interpreter: ['/usr/bin/python3'], pythonExtensionInterpreter: ['/envs/ext/bin/python'] }),
      everything,
    );
    assert.deepEqual([server.command, ...server.args], ['/opt/tools/llmarch-lsp', '--stdio']);
    assert.equal(server.source, 'llmarch.path');
    assert.equal(server.cwd, WS);
  });

  it('then llmarch.interpreter with -m llmarch_lsp', async () => {
    const { server } = await discoverServer(
      input({ interpreter: ['/usr/bin/python3'], pythonExtensionInterpreter: ['/envs/ext/bin/python'] }),
      everything,
    );
    assert.deepEqual([server.command, ...server.args], ['/usr/bin/python3', '-m', 'llmarch_lsp']);
    assert.equal(server.source, 'llmarch.interpreter');
  });

  it("then the Python extension's active interpreter", async () => {
    const { server } = await discoverServer(input({ pythonExtensionInterpreter: ['/envs/ext/bin/python'] }), everything);
    assert.deepEqual([server.command, ...server.args], ['/envs/ext/bin/python', '-m', 'llmarch_lsp']);
    assert.match(server.source, /Python extension/);
  });

  it("then the workspace's .venv, then PATH", async () => {
    const venv = await discoverServer(input({ pythonExtensionInterpreter: [] }), everything);
    assert.equal(venv.server.command, `${WS}/.venv/bin/llmarch-lsp`);
    const onPath = await discoverServer(input({ folders: ['/elsewhere'] }), everything);
    assert.equal(onPath.server.command, '/usr/bin/llmarch-lsp');
    assert.equal(onPath.server.source, 'PATH');
  });

  it('without the Python extension, goes on to PATH without asking any Python', async () => {
    const machine = fakeMachine({ executables: ['/usr/bin/llmarch-lsp'] });
    const { server, skipped } = await discoverServer(input({ pythonExtensionInterpreter: undefined }), machine);
    assert.equal(server.command, '/usr/bin/llmarch-lsp');
    assert.deepEqual(skipped, []);
    assert.deepEqual(machine.asked, []);
  });
});

describe('checks on the candidates', () => {
  it("passes over the Python extension's interpreter when it lacks the server, and says why", async () => {
    const machine = fakeMachine({ executables: ['/envs/ext/bin/python', '/usr/bin/llmarch-lsp'] });
    const { server, skipped } = await discoverServer(input({ pythonExtensionInterpreter: ['/envs/ext/bin/python'] }), machine);
    assert.equal(server.command, '/usr/bin/llmarch-lsp');
    assert.deepEqual(machine.asked, [['/envs/ext/bin/python']]);
    assert.equal(skipped.length, 1);
    assert.match(skipped[0], /\/envs\/ext\/bin\/python -m pip install llmarch-lsp/);
  });

  it('refuses an llmarch.interpreter without the server, naming the fix', async () => {
    const machine = fakeMachine({ executables: ['/usr/bin/python3', '/usr/bin/llmarch-lsp'] });
    const message = await refusal(discoverServer(input({ interpreter: ['/usr/bin/python3'] }), machine));
    assert.match(message, /cannot import llmarch_lsp/);
    assert.match(message, /\/usr\/bin\/python3 -m pip install llmarch-lsp/);
  });

  it('looks a bare name up on PATH and expands ~, ${userHome}, ${env:...} and ${workspaceFolder}', async () => {
    const machine = fakeMachine({
      executables: ['/home/me/bin/llmarch-lsp', '/usr/local/bin/python3.12', `${WS}/.venv/bin/python`],
      pythonsWithServer: [`${WS}/.venv/bin/python`],
      path: ['/usr/local/bin'],
      env: { TOOLS: '/home/me/bin' },
    });
    for (const spelling of ['~/bin/llmarch-lsp', '${userHome}/bin/llmarch-lsp', '${env:TOOLS}/llmarch-lsp']) {
      const { server } = await discoverServer(input({ serverPath: [spelling] }), machine);
      assert.equal(server.command, '/home/me/bin/llmarch-lsp', spelling);
    }
    const bare = await discoverServer(input({ serverPath: ['python3.12', '-m', 'llmarch_lsp'] }), machine);
    assert.equal(bare.server.command, '/usr/local/bin/python3.12');
    const inWorkspace = await discoverServer(input({ interpreter: ['${workspaceFolder}/.venv/bin/python'] }), machine);
    assert.equal(inWorkspace.server.command, `${WS}/.venv/bin/python`);
  });

  it('reports an llmarch.path that does not exist', async () => {
    const message = await refusal(discoverServer(input({ serverPath: ['/nowhere/llmarch-lsp'] }), fakeMachine({})));
    assert.match(message, /\/nowhere\/llmarch-lsp.*llmarch\.path.*not executable/);
  });

  it('when nothing is found, says how to install the server and what was passed over', async () => {
    const machine = fakeMachine({ executables: ['/envs/ext/bin/python'] });
    const message = await refusal(discoverServer(input({ pythonExtensionInterpreter: ['/envs/ext/bin/python'] }), machine));
    assert.match(message, /was not found/);
    assert.match(message, /pip install llmarch-lsp/);
    assert.match(message, /llmarch\.path/);
    assert.match(message, /llmarch\.interpreter/);
    assert.match(message, /Passed over: the Python extension's interpreter/);
    assert.doesNotMatch(message, /Restricted Mode/);
  });
});

describe('an untrusted workspace', () => {
  const machine = fakeMachine({
    executables: [`${WS}/.venv/bin/llmarch-lsp`, `${WS}/.venv/bin/python`, `${WS}/bin/llmarch-lsp`, '/usr/bin/llmarch-lsp'],
    pythonsWithServer: [`${WS}/.venv/bin/python`],
    path: [`${WS}/bin`, 'relative/bin', '/usr/bin'],
  });
  const untrusted = (overrides: Partial<DiscoveryInput> = {}) => input({ trusted: false, ...overrides });

  it('never starts a program inside the workspace', async () => {
    assert.match(await refusal(discoverServer(untrusted({ serverPath: [`${WS}/.venv/bin/llmarch-lsp`] }), machine)), /not trusted/);
    assert.match(await refusal(discoverServer(untrusted({ serverPath: ['.venv/bin/llmarch-lsp'] }), machine)), /relative path/);
    assert.match(
      await refusal(discoverServer(untrusted({ interpreter: ['${workspaceFolder}/.venv/bin/python'] }), machine)),
      /lies in the workspace/,
    );
  });

  it("skips the workspace's .venv, PATH entries in the workspace and relative ones, and a Python extension interpreter there", async () => {
    const { server, skipped } = await discoverServer(untrusted({ pythonExtensionInterpreter: [`${WS}/.venv/bin/python`] }), machine);
    assert.equal(server.command, '/usr/bin/llmarch-lsp');
    assert.equal(server.cwd, '/home/me'); // not the workspace
    assert.match(skipped.join('\n'), /lies in the workspace/);
    assert.deepEqual(machine.asked, []); // that Python was not even run
  });

  it('says so when nothing outside the workspace is found', async () => {
    const inside = fakeMachine({ executables: [`${WS}/.venv/bin/llmarch-lsp`] });
    const message = await refusal(discoverServer(untrusted(), inside));
    assert.match(message, /Restricted Mode/);
  });

  it('a trusted workspace may use them', async () => {
    const { server } = await discoverServer(input({ serverPath: ['.venv/bin/llmarch-lsp'] }), machine);
    assert.equal(server.command, `${WS}/.venv/bin/llmarch-lsp`);
  });
});
