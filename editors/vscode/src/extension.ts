// VS Code client for llmarch-lsp: starts the server over stdio for Python files, sends it the
// `llmarch.*` settings, restarts it on demand, and respects workspace trust.
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
import { resolveServerCommand, SECTION, ServerCommandError, serverSettings } from './settings';

const CLIENT_ID = 'llmarch'; // vscode-languageclient reads `llmarch.trace.server` by this id
const CLIENT_NAME = 'llmarch';

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
// Start/stop/restart run one after another, never interleaved.
let queue: Promise<void> = Promise.resolve();

function serialized(task: () => Promise<void>): Promise<void> {
  queue = queue.then(task, task).catch((error) => {
    output.error(`llmarch: ${error instanceof Error ? error.message : String(error)}`);
  });
  return queue;
}

/** The folder whose settings decide the server: the first one (settings are window-scoped). */
function primaryFolder(): vscode.WorkspaceFolder | undefined {
  return vscode.workspace.workspaceFolders?.[0];
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel(CLIENT_NAME, { log: true });
  context.subscriptions.push(output);

  context.subscriptions.push(
    vscode.commands.registerCommand('llmarch.restart', () => serialized(async () => {
      await stopClient();
      await startClient(true);
    })),
    vscode.commands.registerCommand('llmarch.showOutput', () => output.show()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration(SECTION)) {
        return;
      }
      const needsRestart = ['enable', 'path', 'interpreter'].some((key) =>
        event.affectsConfiguration(`${SECTION}.${key}`),
      );
      if (needsRestart) {
        void serialized(async () => {
          await stopClient();
          await startClient(false);
        });
      } else if (client?.state === State.Running) {
        // trace.server is handled by the client library; everything else goes to the server.
        void client.sendNotification(DidChangeConfigurationNotification.type, {
          settings: { [SECTION]: serverSettings(primaryFolder()) },
        });
      }
    }),
    // Trust granted: a workspace .venv, llmarch.path or llmarch.interpreter may now be used.
    vscode.workspace.onDidGrantWorkspaceTrust(() => serialized(async () => {
      await stopClient();
      await startClient(false);
    })),
  );

  await serialized(() => startClient(false));
}

export function deactivate(): Thenable<void> | undefined {
  return stopClient();
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
  let server;
  try {
    server = resolveServerCommand(folder, trusted);
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
    initializationOptions: { [SECTION]: serverSettings(folder) },
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
            return serverSettings(scope);
          });
        },
      },
    },
  };

  const created = new LanguageClient(CLIENT_ID, CLIENT_NAME, executable, clientOptions);
  try {
    await created.start();
  } catch (error) {
    const message = `llmarch-lsp failed to start (${server.command}): ${error instanceof Error ? error.message : String(error)}`;
    output.error(message);
    void notify(message, true);
    await created.dispose().catch(() => undefined);
    return;
  }
  client = created;
  output.info(`server running (${created.initializeResult?.serverInfo?.name ?? 'llmarch-lsp'} ${created.initializeResult?.serverInfo?.version ?? ''})`);
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
    output.warn(`stopping the server: ${error instanceof Error ? error.message : String(error)}`);
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
    await vscode.commands.executeCommand('workbench.action.openSettings', '@ext:llmarch.llmarch');
  } else if (choice === 'Show Output') {
    output.show();
  }
}
let notified = false;
