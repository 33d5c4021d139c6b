// Which command starts the language server. Pure logic over plain inputs (no `vscode` import), so
// that the unit tests can drive every branch with a fake machine.
import * as fs from 'fs';
import { execFile } from 'child_process';
import * as os from 'os';
import * as path from 'path';

/** How the server is started, and why that way (shown in the output channel). */
export interface ServerCommand {
  command: string;
  args: string[];
  cwd: string;
  source: string;
}

/** No server could be found or was allowed to start; the message says how to fix it. */
export class ServerCommandError extends Error {}

/** What discovery needs to know about the machine; `systemProbe()` is the real one. */
export interface Probe {
  platform: NodeJS.Platform;
  home: string;
  env: Record<string, string | undefined>;
  isExecutable(file: string): boolean;
  /** Whether this Python (argv: interpreter and its own arguments) can import llmarch_lsp. */
  hasServerModule(python: string[], cwd: string): Promise<boolean>;
}

export interface DiscoveryInput {
  /** `llmarch.path` (VS Code already hides a workspace's value when it is not trusted). */
  serverPath: string[];
  /** `llmarch.interpreter`. */
  interpreter: string[];
  /**
   * The Python extension's active interpreter: `undefined` when that extension is not installed,
   * `[]` when it is but has no interpreter selected.
   */
  pythonExtensionInterpreter?: string[];
  trusted: boolean;
  /** File-system paths of the workspace folders, the one whose settings apply first. */
  folders: string[];
}

export interface Discovery {
  server: ServerCommand;
  /** Candidates passed over on the way, and why (for the output channel). */
  skipped: string[];
}

export const SCRIPT = 'llmarch-lsp';
export const MODULE = 'llmarch_lsp';

/**
 * Order: `llmarch.path`; else `llmarch.interpreter -m llmarch_lsp`; else the Python extension's
 * active interpreter, when it has llmarch_lsp installed; else (trusted workspaces only)
 * `.venv`/`venv` of the workspace; else `llmarch-lsp` on PATH.
 *
 * In an untrusted workspace nothing inside a workspace folder is started: not a `.venv`, not a
 * relative path, not a PATH entry or an interpreter that lies in the workspace.
 */
export async function discoverServer(input: DiscoveryInput, probe: Probe): Promise<Discovery> {
  const primary = input.folders[0];
  const cwd = input.trusted && primary ? primary : probe.home;
  const excluded = input.trusted ? [] : input.folders;
  const skipped: string[] = [];
  const found = (server: ServerCommand): Discovery => ({ server, skipped });

  const place = (argv: string[], source: string): ServerCommand => {
    let [command, ...args] = argv.map((part) => expandVariables(part, primary, probe));
    if (!command.includes('/') && !command.includes('\\')) {
      // A bare name: look it up on PATH here, so that the workspace (cwd) never takes part.
      const onPath = findOnPath(command, excluded, probe);
      if (!onPath) {
        throw new ServerCommandError(`\`${command}\` (${source}) was not found on PATH.`);
      }
      command = onPath;
    } else if (!path.isAbsolute(command)) {
      if (!input.trusted) {
        throw new ServerCommandError(
          `not starting \`${command}\` (${source}): a relative path would run a program from the workspace, ` +
            'which is not trusted. Trust the workspace or give an absolute path in your user settings.',
        );
      }
      command = path.resolve(cwd, command);
    }
    if (excluded.some((folder) => isInside(command, folder))) {
      throw new ServerCommandError(
        `not starting \`${command}\` (${source}): it lies in the workspace, which is not trusted. ` +
          'Trust the workspace or set llmarch.path to a program outside it in your user settings.',
      );
    }
    if (!probe.isExecutable(command)) {
      throw new ServerCommandError(`\`${command}\` (${source}) does not exist or is not executable.`);
    }
    return { command, args, cwd, source };
  };

  if (input.serverPath.length > 0) {
    return found(place(input.serverPath, 'llmarch.path'));
  }
  if (input.interpreter.length > 0) {
    const server = place([...input.interpreter, '-m', MODULE], 'llmarch.interpreter');
    const python = [server.command, ...server.args.slice(0, -2)];
    if (!(await probe.hasServerModule(python, cwd))) {
      throw new ServerCommandError(
        `llmarch.interpreter (${server.command}) cannot import ${MODULE}. ` +
          `Install the server into it: \`${server.command} -m pip install llmarch-lsp\`, or change llmarch.interpreter.`,
      );
    }
    return found(server);
  }
  const fromPythonExtension = input.pythonExtensionInterpreter;
  if (fromPythonExtension && fromPythonExtension.length > 0) {
    const source = "the Python extension's interpreter";
    try {
      const server = place([...fromPythonExtension, '-m', MODULE], source);
      const python = [server.command, ...server.args.slice(0, -2)];
      if (await probe.hasServerModule(python, cwd)) {
        return found(server);
      }
      skipped.push(
        `${source} (${server.command}) does not have llmarch-lsp installed ` +
          `(\`${server.command} -m pip install llmarch-lsp\` installs it there)`,
      );
    } catch (error) {
      if (!(error instanceof ServerCommandError)) {
        throw error;
      }
      skipped.push(error.message);
    }
  }
  if (input.trusted) {
    const bin = probe.platform === 'win32' ? 'Scripts' : 'bin';
    const script = probe.platform === 'win32' ? `${SCRIPT}.exe` : SCRIPT;
    for (const folder of input.folders) {
      for (const venv of ['.venv', 'venv']) {
        const candidate = path.join(folder, venv, bin, script);
        if (probe.isExecutable(candidate)) {
          return found({ command: candidate, args: [], cwd, source: `the workspace's ${venv}` });
        }
      }
    }
  }
  const onPath = findOnPath(SCRIPT, excluded, probe);
  if (onPath) {
    return found({ command: onPath, args: [], cwd, source: 'PATH' });
  }
  throw new ServerCommandError(notFoundMessage(input, skipped));
}

/** The notification shown when no server is found: what was tried and how to fix it. */
export function notFoundMessage(input: DiscoveryInput, skipped: string[]): string {
  const parts = [
    'llmarch: the llmarch-lsp language server was not found.',
    'Install it into your Python environment (`python -m pip install llmarch-lsp`), or set ' +
      '`llmarch.path` to the server command or `llmarch.interpreter` to a Python that has it installed.',
  ];
  if (skipped.length > 0) {
    parts.push(`Passed over: ${skipped.join('; ')}.`);
  }
  if (!input.trusted) {
    parts.push("In Restricted Mode the workspace's llmarch.path, llmarch.interpreter and virtual environments are not used.");
  }
  return parts.join(' ');
}

/** `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~`, as in VS Code's own settings. */
export function expandVariables(value: string, folder: string | undefined, probe: Pick<Probe, 'home' | 'env'>): string {
  let result = value
    .replace(/\$\{userHome\}/g, probe.home)
    .replace(/\$\{env:([^}]+)\}/g, (_, name: string) => probe.env[name] ?? '');
  if (folder) {
    result = result.replace(/\$\{workspaceFolder\}/g, folder);
  }
  if (result === '~' || result.startsWith('~/') || result.startsWith('~\\')) {
    result = path.join(probe.home, result.slice(1));
  }
  return result;
}

export function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/** Look a program up on PATH ourselves, skipping relative entries and excluded (workspace) folders. */
export function findOnPath(program: string, excluded: string[], probe: Probe): string | undefined {
  const windows = probe.platform === 'win32';
  const entries = (probe.env.PATH ?? probe.env.Path ?? '').split(windows ? ';' : ':');
  for (const dir of entries) {
    if (!dir || !path.isAbsolute(dir) || excluded.some((folder) => isInside(dir, folder))) {
      continue;
    }
    for (const suffix of windows && !path.extname(program) ? ['.exe', '.cmd', '.bat'] : ['']) {
      const candidate = path.join(dir, program + suffix);
      if (probe.isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

/** The real machine. */
export function systemProbe(): Probe {
  const windows = process.platform === 'win32';
  return {
    platform: process.platform,
    home: os.homedir(),
    env: process.env,
    isExecutable(file: string): boolean {
      try {
        fs.accessSync(file, windows ? fs.constants.F_OK : fs.constants.X_OK);
        return fs.statSync(file).isFile();
      } catch {
        return false;
      }
    },
    hasServerModule(python: string[], cwd: string): Promise<boolean> {
      const [command, ...args] = python;
      const check = `import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('${MODULE}') else 3)`;
      return new Promise((resolve) => {
        execFile(command, [...args, '-c', check], { cwd, timeout: 20000, windowsHide: true }, (error) => resolve(!error));
      });
    },
  };
}
