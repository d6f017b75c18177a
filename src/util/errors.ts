/**
 * Typed errors. The message of an ActionableError is the advice the user needs; the CLI
 * prints it without a stack. Only src/cli.ts turns an error into a process exit code.
 */
export class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message = '',
  ) {
    super(message);
    this.name = 'ExitError';
  }
}

export interface ActionableOptions {
  /** What to do about it, shown on its own line. */
  hint?: string;
  /** Process exit code (default 1). */
  exitCode?: number;
  /** Machine-readable error code for --json output (e.g. "E_NO_DOCKER"). */
  code?: string;
  cause?: unknown;
}

export class ActionableError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly code: string;
  constructor(message: string, opts: ActionableOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ActionableError';
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
    this.code = opts.code ?? 'E_FAILED';
  }
}

/** A bad flag, argument or input value: exit code 2, like commander's own usage errors. */
export class UsageError extends ActionableError {
  constructor(message: string, hint?: string) {
    super(message, { hint, exitCode: 2, code: 'E_USAGE' });
    this.name = 'UsageError';
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
