import type { Logger } from './logger.js';

/** What every command receives from the CLI: no globals, so commands run in tests as-is. */
export interface Context {
  logger: Logger;
  /** --json: the command prints one JSON document on stdout; human text goes to stderr. */
  json: boolean;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Where results are printed (stdout in the CLI; a buffer in tests). */
  out: (text: string) => void;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
}

/** Print a command's result: JSON for machines, or the human rendering. */
export function emit<T>(ctx: Context, result: T, human: (r: T) => string): void {
  if (ctx.json) ctx.out(JSON.stringify(result, null, 2));
  else {
    const text = human(result);
    if (text) ctx.out(text);
  }
}
