/**
 * The one way the toolkit asks the host a question by running a program. Probes (GPU, disk,
 * Docker) take a `Runner` so that tests can feed them recorded outputs of real machines, and
 * the CLI passes `realRunner` (execa underneath: it handles ENOENT, timeouts and encodings).
 */
import { execa } from 'execa';

export interface RunResult {
  /** Process exit code; null when the program could not be started or was killed. */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** The program is not installed (ENOENT on spawn). */
  notFound: boolean;
  /** The program ran past the timeout and was killed. */
  timedOut?: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export type Runner = (file: string, args: string[], opts?: RunOptions) => Promise<RunResult>;

/** Runs a real program; never throws for a non-zero exit or a missing program. */
export const realRunner: Runner = async (file, args, opts = {}) => {
  const res = await execa(file, args, {
    reject: false,
    timeout: opts.timeoutMs ?? 20_000,
    env: opts.env,
    extendEnv: true,
    cwd: opts.cwd,
    stdin: 'ignore',
    stripFinalNewline: false,
  });
  const code = (res as { code?: string }).code;
  return {
    exitCode: typeof res.exitCode === 'number' ? res.exitCode : null,
    stdout: String(res.stdout ?? ''),
    stderr: String(res.stderr ?? ''),
    notFound: code === 'ENOENT',
    timedOut: Boolean(res.timedOut),
  };
};

/** The command line as one string: the key under which recorded outputs are stored. */
export function commandKey(file: string, args: string[]): string {
  return [file, ...args].join(' ');
}

export interface Recording {
  /** stdout (a string), or a full result. Absent key = program not installed. */
  [command: string]: string | Partial<RunResult>;
}

/**
 * A Runner that answers from recorded outputs (tests). A command line that is not in the
 * recording behaves like a program that is not installed, which is what a missing key means.
 */
export function recordedRunner(rec: Recording): Runner & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (file: string, args: string[]): Promise<RunResult> => {
    const key = commandKey(file, args);
    calls.push(key);
    const hit = rec[key];
    if (hit === undefined) return { exitCode: null, stdout: '', stderr: `${file}: not found`, notFound: true };
    if (typeof hit === 'string') return { exitCode: 0, stdout: hit, stderr: '', notFound: false };
    return { exitCode: hit.exitCode ?? 0, stdout: hit.stdout ?? '', stderr: hit.stderr ?? '', notFound: hit.notFound ?? false, timedOut: hit.timedOut };
  };
  return Object.assign(fn, { calls });
}

/** First non-empty line of a program's complaint, for one-line reasons. */
export function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  );
}

/** Wraps a Runner and keeps every answer, so a host can be recorded for doctor's tests. */
export function recordingRunner(inner: Runner): Runner & { recording: Record<string, RunResult> } {
  const recording: Record<string, RunResult> = {};
  const fn: Runner = async (file, args, opts) => {
    const res = await inner(file, args, opts);
    recording[commandKey(file, args)] = res;
    return res;
  };
  return Object.assign(fn, { recording });
}
