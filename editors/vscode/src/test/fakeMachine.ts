// A fake machine for discovery tests: which files are executable, and which Pythons have the server.
import * as path from 'path';
import type { Probe } from '../discovery';

export interface FakeMachine extends Probe {
  /** Pythons asked whether they can import llmarch_lsp, in order. */
  asked: string[][];
}

export function fakeMachine(options: {
  executables?: string[];
  pythonsWithServer?: string[];
  path?: string[];
  home?: string;
  env?: Record<string, string>;
}): FakeMachine {
  const executables = new Set((options.executables ?? []).map((file) => path.normalize(file)));
  const withServer = new Set(options.pythonsWithServer ?? []);
  const asked: string[][] = [];
  return {
    platform: 'linux',
    home: options.home ?? '/home/me',
    env: { PATH: (options.path ?? ['/usr/bin']).join(':'), ...(options.env ?? {}) },
    isExecutable: (file) => executables.has(path.normalize(file)),
    hasServerModule: async (python) => {
      asked.push(python);
      return withServer.has(python[0]);
    },
    asked,
  };
}
