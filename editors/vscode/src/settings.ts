// Reading the `llmarch.*` settings: what the server gets, and which command starts it.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';

export const SECTION = 'llmarch';

/** The settings the server reads (initializationOptions and workspace/didChangeConfiguration). */
export interface ServerSettings {
  enable: boolean;
  select?: string[];
  ignore?: string[];
  severity?: Record<string, string>;
  fixAll?: { unsafe: boolean };
}

/**
 * Only values the user set are sent: the server treats a present key as an override of the
 * project's `[tool.llmarch]`, so defaults (an empty `select`, say) must stay out.
 */
export function serverSettings(scope?: vscode.ConfigurationScope): ServerSettings {
  const config = vscode.workspace.getConfiguration(SECTION, scope);
  const settings: ServerSettings = { enable: config.get<boolean>('enable', true) !== false };
  const select = stringList(config.get('select'));
  if (select.length > 0) {
    settings.select = select;
  }
  const ignore = stringList(config.get('ignore'));
  if (ignore.length > 0) {
    settings.ignore = ignore;
  }
  const severity = config.get<unknown>('severity');
  if (severity && typeof severity === 'object' && !Array.isArray(severity) && Object.keys(severity).length > 0) {
    settings.severity = { ...(severity as Record<string, string>) };
  }
  if (isExplicitlySet(config, 'fixAll.unsafe')) {
    settings.fixAll = { unsafe: config.get<boolean>('fixAll.unsafe', false) === true };
  }
  return settings;
}

function isExplicitlySet(config: vscode.WorkspaceConfiguration, key: string): boolean {
  const seen = config.inspect(key);
  if (!seen) {
    return false;
  }
  return [
    seen.globalValue,
    seen.workspaceValue,
    seen.workspaceFolderValue,
    seen.globalLanguageValue,
    seen.workspaceLanguageValue,
    seen.workspaceFolderLanguageValue,
  ].some((value) => value !== undefined);
}

function stringList(value: unknown): string[] {
  if (typeof value === 'string') {
    return value.trim() ? [value.trim()] : [];
  }
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string' && item.trim() !== '') : [];
}

/** How the server is started, and why that way (shown in the output channel). */
export interface ServerCommand {
  command: string;
  args: string[];
  cwd: string;
  source: string;
}

export class ServerCommandError extends Error {}

const IS_WINDOWS = process.platform === 'win32';
const SCRIPT = 'llmarch-lsp';
const BIN = IS_WINDOWS ? 'Scripts' : 'bin';

/**
 * Order: `llmarch.path`, then `llmarch.interpreter -m llmarch_lsp`, then (trusted workspaces only)
 * the workspace's `.venv`/`venv`, then `llmarch-lsp` on PATH. In an untrusted workspace VS Code
 * hides the workspace's values of the two restricted settings from us; on top of that we refuse
 * any executable that lies inside a workspace folder and never look one up relative to it.
 */
export function resolveServerCommand(folder: vscode.WorkspaceFolder | undefined, trusted: boolean): ServerCommand {
  const config = vscode.workspace.getConfiguration(SECTION, folder);
  const folders = vscode.workspace.workspaceFolders ?? [];
  const cwd = trusted && folder ? folder.uri.fsPath : os.homedir();

  // Untrusted: nothing inside a workspace folder runs, not even through a PATH entry.
  const excluded = trusted ? [] : folders.map((f) => f.uri.fsPath);
  const checked = (argv: string[], source: string): ServerCommand => {
    let [command, ...args] = argv.map((part) => expand(part, folder));
    if (!command.includes('/') && !command.includes(path.sep)) {
      // A bare name: look it up on PATH here, so that the workspace (cwd) never takes part.
      const found = findOnPath(command, excluded);
      if (!found) {
        throw new ServerCommandError(`\`${command}\` (${source}) was not found on PATH.`);
      }
      command = found;
    } else if (!path.isAbsolute(command)) {
      if (!trusted) {
        throw new ServerCommandError(
          `not starting \`${command}\` (${source}): a relative path would run a program from the workspace, ` +
            'which is not trusted. Trust the workspace or give an absolute path in your user settings.',
        );
      }
      command = path.resolve(cwd, command);
    }
    if (excluded.some((f) => isInside(command, f))) {
      throw new ServerCommandError(
        `not starting \`${command}\` (${source}): it lies in the workspace, which is not trusted. ` +
          'Trust the workspace or set llmarch.path to a program outside it in your user settings.',
      );
    }
    return { command, args, cwd, source };
  };

  const serverPath = stringList(config.get('path'));
  if (serverPath.length > 0) {
    return checked(serverPath, 'llmarch.path');
  }
  const interpreter = stringList(config.get('interpreter'));
  if (interpreter.length > 0) {
    return checked([...interpreter, '-m', 'llmarch_lsp'], 'llmarch.interpreter');
  }
  if (trusted) {
    for (const f of folder ? [folder, ...folders.filter((x) => x !== folder)] : folders) {
      for (const venv of ['.venv', 'venv']) {
        const candidate = path.join(f.uri.fsPath, venv, BIN, IS_WINDOWS ? `${SCRIPT}.exe` : SCRIPT);
        if (isExecutable(candidate)) {
          return { command: candidate, args: [], cwd, source: `the workspace's ${venv}` };
        }
      }
    }
  }
  const onPath = findOnPath(SCRIPT, excluded);
  if (onPath) {
    return { command: onPath, args: [], cwd, source: 'PATH' };
  }
  throw new ServerCommandError(
    '`llmarch-lsp` was not found on PATH. Install it (`pip install llmarch-lsp`), or set ' +
      '`llmarch.path` to the server command or `llmarch.interpreter` to a Python that has it installed.' +
      (trusted
        ? ''
        : " In Restricted Mode the workspace's llmarch.path, llmarch.interpreter and virtual environments are not used."),
  );
}

function expand(value: string, folder: vscode.WorkspaceFolder | undefined): string {
  let result = value.replace(/\$\{userHome\}/g, os.homedir()).replace(/\$\{env:([^}]+)\}/g, (_, name) => process.env[name] ?? '');
  if (folder) {
    result = result.replace(/\$\{workspaceFolder\}/g, folder.uri.fsPath);
  }
  if (result === '~' || result.startsWith('~/') || result.startsWith('~\\')) {
    result = path.join(os.homedir(), result.slice(1));
  }
  return result;
}

function isInside(child: string, parent: string): boolean {
  const relative = path.relative(parent, child);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, IS_WINDOWS ? fs.constants.F_OK : fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Look a program up on PATH ourselves, skipping relative entries and workspace folders. */
function findOnPath(program: string, excluded: string[]): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir || !path.isAbsolute(dir) || excluded.some((folder) => isInside(dir, folder))) {
      continue;
    }
    for (const suffix of IS_WINDOWS && !path.extname(program) ? ['.exe', '.cmd', '.bat'] : ['']) {
      const candidate = path.join(dir, program + suffix);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}
