// The `llmarch.*` settings: what the server gets, and what a change of each one sets off.
// No `vscode` import: a `vscode.WorkspaceConfiguration` is passed in (the tests pass a fake one).

export const SECTION = 'llmarch';

/** The settings the server reads (initializationOptions and workspace/didChangeConfiguration). */
export interface ServerSettings {
  enable: boolean;
  select?: string[];
  ignore?: string[];
  severity?: Record<string, string>;
  fixAll?: { unsafe: boolean };
}

/** The part of `vscode.WorkspaceConfiguration` read here. */
export interface ConfigurationReader {
  get<T>(key: string): T | undefined;
  inspect(key: string): Record<string, unknown> | undefined;
}

/**
 * Only values the user set are sent: the server treats a present key as an override of the
 * project's `[tool.llmarch]`, so defaults (an empty `select`, say) must stay out.
 */
export function serverSettings(config: ConfigurationReader): ServerSettings {
  const settings: ServerSettings = { enable: config.get<boolean>('enable') !== false };
  const select = stringList(config.get('select'));
  if (select.length > 0) {
    settings.select = select;
  }
  const ignore = stringList(config.get('ignore'));
  if (ignore.length > 0) {
    settings.ignore = ignore;
  }
  const severity = config.get<unknown>('severity');
  // Passed as given, even a misspelt level: the server reports what it cannot use.
  if (severity && typeof severity === 'object' && !Array.isArray(severity) && Object.keys(severity).length > 0) {
    settings.severity = { ...(severity as Record<string, string>) };
  }
  if (isExplicitlySet(config, 'fixAll.unsafe')) {
    settings.fixAll = { unsafe: config.get<boolean>('fixAll.unsafe') === true };
  }
  return settings;
}

const USER_SCOPES = [
  'globalValue',
  'workspaceValue',
  'workspaceFolderValue',
  'globalLanguageValue',
  'workspaceLanguageValue',
  'workspaceFolderLanguageValue',
];

/** A setting is "set" when any scope (user, workspace, folder, language-specific) gives it a value. */
export function isExplicitlySet(config: ConfigurationReader, key: string): boolean {
  const seen = config.inspect(key);
  if (!seen) {
    return false;
  }
  return USER_SCOPES.some((scope) => seen[scope] !== undefined);
}

/** A list setting; a lone string (hand-edited settings.json) counts as a one-item list. */
export function stringList(value: unknown): string[] {
  if (typeof value === 'string') {
    return value.trim() ? [value.trim()] : [];
  }
  return Array.isArray(value)
    ? value.filter((item): item is string => typeof item === 'string' && item.trim() !== '').map((item) => item.trim())
    : [];
}

/**
 * What a configuration change sets off: settings that decide which server runs restart it; the
 * ones the server reads are sent to it live; `trace.server` is applied by the client library.
 */
export type ChangeAction = 'restart' | 'send' | 'none';

const RESTART_KEYS = ['enable', 'path', 'interpreter'];
const SERVER_KEYS = ['select', 'ignore', 'severity', 'fixAll'];

export function actionForChange(affects: (section: string) => boolean): ChangeAction {
  if (!affects(SECTION)) {
    return 'none';
  }
  if (RESTART_KEYS.some((key) => affects(`${SECTION}.${key}`))) {
    return 'restart';
  }
  if (SERVER_KEYS.some((key) => affects(`${SECTION}.${key}`))) {
    return 'send';
  }
  return 'none';
}
