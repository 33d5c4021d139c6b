// `llmarch: Explain Rule`: which rule the cursor is on, how to ask the server's CLI for its docs
// (`llmarch-lsp --explain CODE`), and how that text becomes Markdown. No `vscode` import.
import type { ServerCommand } from './discovery';

export const SOURCE = 'llmarch';
export const EXPLAIN_SCHEME = 'llmarch-explain';

interface Position {
  line: number;
  character: number;
}

/** The part of a `vscode.Diagnostic` read here. */
export interface DiagnosticLike {
  source?: string;
  code?: string | number | { value: string | number };
  range: { start: Position; end: Position };
}

export function ruleCode(diagnostic: DiagnosticLike): string | undefined {
  if (diagnostic.source !== SOURCE || diagnostic.code === undefined) {
    return undefined;
  }
  const code = typeof diagnostic.code === 'object' ? diagnostic.code.value : diagnostic.code;
  return String(code);
}

function before(a: Position, b: Position): boolean {
  return a.line < b.line || (a.line === b.line && a.character < b.character);
}

/**
 * The rule codes of our diagnostics under the cursor (range contains it, ends included); when
 * none, those on the cursor's line. Each code once, in the diagnostics' order.
 */
export function codesAt(diagnostics: readonly DiagnosticLike[], cursor: Position): string[] {
  const ours = diagnostics.filter((d) => ruleCode(d) !== undefined);
  const under = ours.filter((d) => !before(cursor, d.range.start) && !before(d.range.end, cursor));
  const onLine = ours.filter((d) => d.range.start.line <= cursor.line && cursor.line <= d.range.end.line);
  const chosen = under.length > 0 ? under : onLine;
  return [...new Set(chosen.map((d) => ruleCode(d) as string))];
}

/** Rule codes look like LLM101; names like unscaled-attention. Anything else is refused. */
export function isRuleReference(value: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(value);
}

/** The server command with `--explain CODE` (a `--stdio` the user put in llmarch.path dropped). */
export function explainCommand(server: ServerCommand, code: string): { command: string; args: string[] } {
  return { command: server.command, args: [...server.args.filter((arg) => arg !== '--stdio'), '--explain', code] };
}

/** The same with `--list-rules --format json`, for the picker when the cursor is on no finding. */
export function listRulesCommand(server: ServerCommand): { command: string; args: string[] } {
  return { command: server.command, args: [...server.args.filter((arg) => arg !== '--stdio'), '--list-rules', '--format', 'json'] };
}

/**
 * `--explain` prints setext headings (`====` / `----` underlines) that Markdown already reads as
 * headings, indented code, and `  [1] Author, title` reference lines; those become a list so that
 * Markdown does not run them together into one paragraph.
 */
export function explanationMarkdown(text: string): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const out: string[] = [];
  for (const line of lines) {
    const reference = /^ {2}\[(\d+)\] (.*)$/.exec(line);
    const option = /^ {2}(\S.*)$/.exec(line);
    if (reference) {
      out.push(`${reference[1]}. ${reference[2]}`);
    } else if (option && out.length > 0 && /^(Options|References)/.test(lastHeading(out))) {
      out.push(`- ${option[1]}`);
    } else if (/^References:$/.test(line)) {
      out.push('**References**', '');
    } else {
      out.push(line);
    }
  }
  return out.join('\n');
}

function lastHeading(lines: string[]): string {
  for (let i = lines.length - 1; i > 0; i--) {
    if (/^-{3,}$|^={3,}$/.test(lines[i])) {
      return lines[i - 1];
    }
    if (lines[i] === '**References**') {
      return 'References';
    }
  }
  return '';
}
