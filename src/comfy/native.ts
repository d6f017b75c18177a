/**
 * Start ComfyUI natively (no container) from a source checkout, with its own base directory
 * (models, custom_nodes, input, output, user) so that nothing touches the checkout. Used by the
 * CPU end-to-end tests, `steadydancer run` on machines without a Docker engine, and the GPU bench.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, existsSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ActionableError } from '../util/errors.js';
import { createLogger } from '../util/logger.js';
import { waitForComfy } from './client.js';
import { ComfySupervisor } from './supervisor.js';

export interface NativeComfyOptions {
  /** ComfyUI source checkout (holds main.py). */
  source: string;
  python: string;
  /** Node packs to link into custom_nodes (folder paths). */
  packs?: string[];
  /** A models folder to link as <base>/models (default: an empty one). */
  modelsDir?: string;
  /** Extra ComfyUI arguments; default `--cpu`. */
  args?: string[];
  port?: number;
  /** Extra environment (e.g. STEADYDANCER_TEXT_CACHE). */
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  /** Keep the base directory after stop (for debugging). */
  keep?: boolean;
  signal?: AbortSignal;
}

export interface NativeComfy {
  url: string;
  port: number;
  baseDir: string;
  inputDir: string;
  outputDir: string;
  logFile: string;
  /** The process (the project's one ComfyUI launcher, here without restarts). */
  supervisor: ComfySupervisor;
  /** The last lines of ComfyUI's log. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

async function startNativeComfyOnce(opts: NativeComfyOptions): Promise<NativeComfy> {
  if (!existsSync(join(opts.source, 'main.py')))
    throw new ActionableError(`${opts.source} is not a ComfyUI checkout (no main.py)`, { code: 'E_NO_COMFY', hint: 'seed the source cache: steadydancer sources fetch ComfyUI' });
  const base = mkdtempSync(join(tmpdir(), 'sd-comfy-'));
  for (const d of ['custom_nodes', 'input', 'output', 'temp', 'user']) mkdirSync(join(base, d), { recursive: true });
  if (opts.modelsDir) symlinkSync(resolve(opts.modelsDir), join(base, 'models'));
  else mkdirSync(join(base, 'models'));
  for (const p of opts.packs ?? []) symlinkSync(resolve(p), join(base, 'custom_nodes', resolve(p).split('/').pop()!));
  const port = opts.port ?? (await freePort());
  const logFile = join(base, 'comfyui.log');
  const log = createWriteStream(logFile);
  const tail: string[] = [];
  const args = ['main.py', ...(opts.args ?? ['--cpu']), '--listen', '127.0.0.1', '--port', String(port), '--base-directory', base, '--disable-auto-launch', '--database-url', 'sqlite:///:memory:'];
  const url = `http://127.0.0.1:${port}`;
  const supervisor = new ComfySupervisor({
    command: [opts.python, ...args],
    cwd: opts.source,
    env: { ...process.env, PYTHONUNBUFFERED: '1', ...opts.env },
    baseUrl: url,
    restart: false,
    // ComfyUI's own output goes to the log file and the tail; our lines about it only on error
    logger: createLogger({ level: 'error', stream: log, color: false }),
    output: (b: Buffer) => {
      log.write(b);
      for (const l of b.toString().split('\n')) if (l) tail.push(l);
      if (tail.length > 400) tail.splice(0, tail.length - 400);
    },
  });
  supervisor.start();
  const logTail = (n = 40) => tail.slice(-n).join('\n');
  const stop = async () => {
    await supervisor.stop(10_000);
    log.end();
    if (!opts.keep) rmSync(base, { recursive: true, force: true });
  };
  try {
    await waitForComfy(url, { timeoutMs: opts.readyTimeoutMs ?? 300_000, signal: opts.signal, isDead: () => supervisor.lastExit && `${supervisor.lastExit}\n${logTail()}` });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, baseDir: base, inputDir: join(base, 'input'), outputDir: join(base, 'output'), logFile, supervisor, logTail, stop };
}

/**
 * Start ComfyUI natively. With no fixed port, a free port is picked; another process may take it
 * between the pick and ComfyUI's bind (seen with parallel test workers), so a start that fails
 * with "address already in use" is retried on a new port, twice at most.
 */
export async function startNativeComfy(opts: Parameters<typeof startNativeComfyOnce>[0]): ReturnType<typeof startNativeComfyOnce> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNativeComfyOnce(opts);
    } catch (err) {
      const portRace = opts.port === undefined && /address already in use/.test(err instanceof Error ? err.message : String(err));
      if (!portRace || attempt >= 3) throw err;
    }
  }
}
