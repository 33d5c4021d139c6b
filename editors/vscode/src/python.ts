// The Python extension (ms-python.python), when it is installed: its active interpreter, and an
// event when the user picks another. It is an optional dependency; without it both are inert.
import * as vscode from 'vscode';

const PYTHON_EXTENSION = 'ms-python.python';

/** The slice of the Python extension's public API used here (its `environments` API, 2023+). */
interface PythonEnvironmentsApi {
  getActiveEnvironmentPath(resource?: vscode.Uri): { id: string; path: string } | undefined;
  resolveEnvironment(
    environment: { id: string; path: string } | string,
  ): Promise<{ executable: { uri?: vscode.Uri } } | undefined>;
  onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
}

interface PythonExtensionApi {
  ready?: Promise<void>;
  environments?: PythonEnvironmentsApi;
  /** Older releases. */
  settings?: { getExecutionDetails(resource?: vscode.Uri): { execCommand?: string[] } };
}

async function api(): Promise<PythonExtensionApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION);
  if (!extension) {
    return undefined;
  }
  const exports = extension.isActive ? extension.exports : await extension.activate();
  await exports?.ready;
  return exports ?? {};
}

/**
 * The interpreter the Python extension uses for `resource`, as an argv prefix: `undefined` when
 * the extension is not installed, `[]` when it has no usable interpreter.
 */
export async function activeInterpreter(resource: vscode.Uri | undefined, log: (message: string) => void): Promise<string[] | undefined> {
  let exports: PythonExtensionApi | undefined;
  try {
    exports = await api();
  } catch (error) {
    log(`the Python extension did not activate: ${error instanceof Error ? error.message : String(error)}`);
    return [];
  }
  if (!exports) {
    return undefined;
  }
  try {
    const environments = exports.environments;
    if (environments) {
      const active = environments.getActiveEnvironmentPath(resource);
      if (!active) {
        return [];
      }
      const resolved = await environments.resolveEnvironment(active);
      const executable = resolved?.executable.uri?.fsPath;
      return executable ? [executable] : [];
    }
    const command = exports.settings?.getExecutionDetails(resource).execCommand;
    return command && command.length > 0 ? [...command] : [];
  } catch (error) {
    log(`asking the Python extension for its interpreter: ${error instanceof Error ? error.message : String(error)}`);
    return [];
  }
}

/** Calls `listener` when the Python extension's active interpreter changes. */
export async function onDidChangeInterpreter(listener: () => void): Promise<vscode.Disposable | undefined> {
  try {
    const exports = await api();
    return exports?.environments?.onDidChangeActiveEnvironmentPath(() => listener());
  } catch {
    return undefined;
  }
}
