import { format } from 'node:util';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * The logger passed down from the CLI into every command and core function (never a global).
 * Human text goes to `stream` (stderr when --json owns stdout). Secrets registered with
 * `redact` are replaced in every line written.
 */
export interface Logger {
  debug(msg: string, ...args: unknown[]): void;
  info(msg: string, ...args: unknown[]): void;
  warn(msg: string, ...args: unknown[]): void;
  error(msg: string, ...args: unknown[]): void;
  /** Plain line, no prefix (tables, progress lines). */
  line(msg: string): void;
  /** Whether the output stream is an interactive terminal (progress bars vs plain lines). */
  readonly isTTY: boolean;
  readonly level: Level;
  child(prefix: string): Logger;
  redact(secret: string | undefined): void;
}

export interface LoggerOptions {
  level?: Level;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  prefix?: string;
  color?: boolean;
}

const secrets = new Set<string>();

/** Replace every registered secret in `text` with `***`. */
export function redactText(text: string): string {
  let out = text;
  for (const s of secrets) if (s.length >= 6) out = out.split(s).join('***');
  return out;
}

export function registerSecret(secret: string | undefined): void {
  if (secret && secret.length >= 6) secrets.add(secret);
}

/** Register the secrets the environment carries so no log line can show them. */
export function registerEnvSecrets(env: NodeJS.ProcessEnv): void {
  for (const [k, v] of Object.entries(env)) {
    if (v && /(TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY)/i.test(k)) registerSecret(v);
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  const level = opts.level ?? 'info';
  const isTTY = Boolean(stream.isTTY);
  const color = opts.color ?? (isTTY && !process.env.NO_COLOR);
  const prefix = opts.prefix ? `[${opts.prefix}] ` : '';
  const paint = (code: number, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const write = (lvl: Level, tag: string, msg: string, args: unknown[]) => {
    if (ORDER[lvl] < ORDER[level]) return;
    stream.write(redactText(`${tag}${prefix}${format(msg, ...args)}`) + '\n');
  };
  return {
    level,
    isTTY,
    debug: (m, ...a) => write('debug', paint(90, 'debug '), m, a),
    info: (m, ...a) => write('info', '', m, a),
    warn: (m, ...a) => write('warn', paint(33, 'warning: '), m, a),
    error: (m, ...a) => write('error', paint(31, 'error: '), m, a),
    line: (m) => stream.write(redactText(m) + '\n'),
    child: (p) => createLogger({ ...opts, prefix: opts.prefix ? `${opts.prefix}:${p}` : p }),
    redact: registerSecret,
  };
}

/** A logger that keeps lines in memory (tests, reports). */
export function memoryLogger(level: Level = 'debug'): Logger & { lines: string[] } {
  const lines: string[] = [];
  const stream = {
    write(chunk: string) {
      for (const l of chunk.split('\n')) if (l) lines.push(l);
      return true;
    },
    isTTY: false,
  } as unknown as NodeJS.WritableStream;
  return Object.assign(createLogger({ level, stream, color: false }), { lines });
}
