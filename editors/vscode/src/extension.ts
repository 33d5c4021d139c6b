// VS Code client for llmarch-lsp: starts the server over stdio for Python files, sends it the
// `llmarch.*` settings (live), restarts it on demand, explains rules, and respects workspace trust.
import { execFile } from 'child_process';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  Executable,
  LanguageClient,
  LanguageClientOptions,
  ResponseError,
  RevealOutputChannelOn,
  State,
} from 'vscode-languageclient/node';
import { discoverServer, ServerCommand, ServerCommandError, systemProbe } from './discovery';
import { codesAt, EXPLAIN_SCHEME, explainCommand, explanationMarkdown, isRuleReference, listRulesCommand } from './explain';
import { activeInterpreter, onDidChangeInterpreter } from './python';
import { actionForChange, SECTION, serverSettings, stringList } from './settings';

const CLIENT_ID = 'llmarch'; // vscode-languageclient reads `llmarch.trace.server` by this id
const CLIENT_NAME = 'llmarch';
const EXTENSION_ID = 'llmarch.llmarch-lsp';

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
// Start/stop/restart run one after another, never interleaved.
let queue: Promise<void> = Promise.resolve();
let notified = false;
const explanations = new Map<string, string>();
const explanationChanged = new vscode.EventEmitter<vscode.Uri>();

function serialized(task: () => Promise<void>): Promise<void> {
  queue = queue.then(task, task).catch((error) => {
    output.error(`llmarch: ${errorText(error)}`);
  });
  return queue;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The folder whose settings decide the server: the first one (settings are window-scoped). */
function primaryFolder(): vscode.WorkspaceFolder | undefined {
  return vscode.workspace.workspaceFolders?.[0];
}

function restart(userAsked: boolean): Promise<void> {
  return serialized(async () => {
    await stopClient();
    await startClient(userAsked);
  });
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel(CLIENT_NAME, { log: true });
  context.subscriptions.push(
    output,
    explanationChanged,
    vscode.workspace.registerTextDocumentContentProvider(EXPLAIN_SCHEME, {
      onDidChange: explanationChanged.event,
      provideTextDocumentContent: (uri) => explanations.get(uri.toString()) ?? '',
    }),
    vscode.commands.registerCommand('llmarch.restart', () => restart(true)),
    vscode.commands.registerCommand('llmarch.showOutput', () => output.show()),
    vscode.commands.registerCommand('llmarch.explainRule', (code?: unknown) => explainRule(typeof code === 'string' ? code : undefined)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      const action = actionForChange((section) => event.affectsConfiguration(section));
      if (action === 'restart') {
        void restart(false);
      } else if (action === 'send' && client?.state === State.Running) {
        // trace.server is applied by the client library; these go to the server, which re-checks.
        void client.sendNotification(DidChangeConfigurationNotification.type, {
          settings: { [SECTION]: serverSettings(vscode.workspace.getConfiguration(SECTION, primaryFolder())) },
        });
      }
    }),
    // Trust granted: a workspace .venv, llmarch.path or llmarch.interpreter may now be used.
    vscode.workspace.onDidGrantWorkspaceTrust(() => restart(false)),
  );
  // The Python extension's interpreter is a candidate only when neither setting names a server.
  // (Not awaited: the Python extension's activation must not hold up ours.)
  void onDidChangeInterpreter(() => {
    const config = vscode.workspace.getConfiguration(SECTION, primaryFolder());
    if (stringList(config.get('path')).length === 0 && stringList(config.get('interpreter')).length === 0) {
      output.info("the Python extension's interpreter changed: restarting");
      void restart(false);
    }
  }).then((watch) => {
    if (watch) {
      context.subscriptions.push(watch);
    }
  });

  await serialized(() => startClient(false));
}

export function deactivate(): Thenable<void> | undefined {
  return stopClient();
}

/** Which server to start, from the settings, the Python extension and the machine. */
async function resolveServer(): Promise<ServerCommand> {
  const folder = primaryFolder();
  const config = vscode.workspace.getConfiguration(SECTION, folder);
  const trusted = vscode.workspace.isTrusted;
  const serverPath = stringList(config.get('path'));
  const interpreter = stringList(config.get('interpreter'));
  const needsPython = serverPath.length === 0 && interpreter.length === 0;
  const { server, skipped } = await discoverServer(
    {
      serverPath,
      interpreter,
      pythonExtensionInterpreter: needsPython ? await activeInterpreter(folder?.uri, (m) => output.warn(m)) : undefined,
      trusted,
      folders: (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
    },
    systemProbe(),
  );
  for (const reason of skipped) {
    output.info(`passed over: ${reason}`);
  }
  return server;
}

async function startClient(userAsked: boolean): Promise<void> {
  if (client) {
    return;
  }
  const folder = primaryFolder();
  if (!vscode.workspace.getConfiguration(SECTION, folder).get<boolean>('enable', true)) {
    output.info('llmarch.enable is off: not starting the server');
    return;
  }
  const trusted = vscode.workspace.isTrusted;
  let server: ServerCommand;
  try {
    server = await resolveServer();
  } catch (error) {
    if (error instanceof ServerCommandError) {
      output.error(error.message);
      void notify(error.message, userAsked);
      return;
    }
    throw error;
  }
  output.info(
    `starting ${JSON.stringify([server.command, ...server.args])} (from ${server.source}; ` +
      `cwd ${server.cwd}; workspace ${trusted ? 'trusted' : 'NOT trusted'})`,
  );

  const executable: Executable = {
    command: server.command,
    args: server.args,
    options: { cwd: server.cwd, env: { ...process.env, PYTHONUNBUFFERED: '1' } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'python' },
      { scheme: 'untitled', language: 'python' },
    ],
    outputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    initializationOptions: { [SECTION]: serverSettings(vscode.workspace.getConfiguration(SECTION, folder)) },
    middleware: {
      workspace: {
        // Answer `workspace/configuration` for our section with the same filtered settings
        // (the raw section would send defaults, e.g. an empty `select`, as overrides).
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (answers instanceof ResponseError || !Array.isArray(answers)) {
            return answers;
          }
          return params.items.map((item, index) => {
            if (item.section !== SECTION) {
              return answers[index];
            }
            const scope = item.scopeUri ? vscode.Uri.parse(item.scopeUri) : folder;
            return serverSettings(vscode.workspace.getConfiguration(SECTION, scope));
          });
        },
      },
    },
  };

  const created = new LanguageClient(CLIENT_ID, CLIENT_NAME, executable, clientOptions);
  try {
    await created.start();
  } catch (error) {
    const message = `llmarch-lsp failed to start (${server.command}): ${errorText(error)}`;
    output.error(message);
    void notify(message, true);
    await created.dispose().catch(() => undefined);
    return;
  }
  client = created;
  const info = created.initializeResult?.serverInfo;
  output.info(`server running (${info?.name ?? 'llmarch-lsp'} ${info?.version ?? ''})`);
}

async function stopClient(): Promise<void> {
  const running = client;
  client = undefined;
  if (!running) {
    return;
  }
  try {
    await running.stop(5000);
  } catch (error) {
    output.warn(`stopping the server: ${errorText(error)}`);
  }
  await running.dispose().catch(() => undefined);
}

async function notify(message: string, always: boolean): Promise<void> {
  // Not finding the server on open is shown once per window; a user's restart always reports.
  if (!always && notified) {
    return;
  }
  notified = true;
  const choice = await vscode.window.showWarningMessage(message, 'Open Settings', 'Show Output');
  if (choice === 'Open Settings') {
    await vscode.commands.executeCommand('workbench.action.openSettings', `@ext:${EXTENSION_ID}`);
  } else if (choice === 'Show Output') {
    output.show();
  }
}

function run(command: { command: string; args: string[] }, cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command.command, command.args, { cwd, timeout: 30000, maxBuffer: 4 * 1024 * 1024, windowsHide: true }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`${[command.command, ...command.args].join(' ')}: ${stderr.trim() || error.message}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

/** Ask which rule to explain: the cursor's finding, a choice among several, or any rule. */
async function pickRule(server: ServerCommand): Promise<string | undefined> {
  const editor = vscode.window.activeTextEditor;
  if (editor) {
    const codes = codesAt(vscode.languages.getDiagnostics(editor.document.uri), editor.selection.active);
    if (codes.length === 1) {
      return codes[0];
    }
    if (codes.length > 1) {
      return vscode.window.showQuickPick(codes, { placeHolder: 'Explain which llmarch rule?' });
    }
  }
  const rules = JSON.parse(await run(listRulesCommand(server), server.cwd)) as { code: string; name: string; summary: string }[];
  const picked = await vscode.window.showQuickPick(
    rules.map((rule) => ({ label: rule.code, description: rule.name, detail: rule.summary })),
    { placeHolder: 'No llmarch finding under the cursor: explain which rule?', matchOnDescription: true },
  );
  return picked?.label;
}

/** `llmarch: Explain Rule`: the rule's docs from `llmarch-lsp --explain`, as a Markdown preview. */
async function explainRule(code: string | undefined): Promise<void> {
  try {
    const server = await resolveServer();
    const rule = code ?? (await pickRule(server));
    if (!rule) {
      return;
    }
    if (!isRuleReference(rule)) {
      throw new Error(`not a rule code or name: ${rule}`);
    }
    const text = await run(explainCommand(server, rule), server.cwd);
    const uri = vscode.Uri.from({ scheme: EXPLAIN_SCHEME, path: `/${rule}.md` });
    explanations.set(uri.toString(), explanationMarkdown(text));
    explanationChanged.fire(uri);
    try {
      await vscode.commands.executeCommand('markdown.showPreview', uri);
    } catch (error) {
      // Without the built-in Markdown extension: the Markdown source, read-only.
      output.warn(`markdown preview unavailable (${errorText(error)}): opening the text`);
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), { preview: true });
    }
  } catch (error) {
    const message = `llmarch: cannot explain the rule: ${errorText(error)}`;
    output.error(message);
    void vscode.window.showErrorMessage(message, 'Show Output').then((choice) => {
      if (choice) {
        output.show();
      }
    });
  }
}
