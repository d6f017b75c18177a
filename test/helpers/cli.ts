/** Runs of the CLI in-process (runCli) with stdout and stderr captured. */

/** Capture buffers and the io runCli takes; `env`/`signal` are passed on only when given
 *  (without `env`, runCli uses process.env). */
export function captureCli(env?: NodeJS.ProcessEnv, signal?: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  const errStream = { write: (s: string) => (err.push(s), true), isTTY: false } as unknown as NodeJS.WritableStream;
  return { out, err, io: { out: (s: string) => void out.push(s), err: errStream, ...(env ? { env } : {}), ...(signal ? { signal } : {}) } };
}
