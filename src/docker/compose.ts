/**
 * `steadydancer up` / `down`: docker/docker-compose.yml (+ docker-compose.gpu.yml when a GPU is
 * there) through whichever Compose is installed — the v2 plugin (`docker compose`) or Debian's
 * docker-compose 1.29 (which has no `up --wait`, so readiness is polled here: ComfyUI's
 * /system_stats, while watching the container so that an early exit is reported with its log).
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { realRunner, type Runner, type RunResult } from '../system/exec.js';
import { probeGpu } from '../system/gpu.js';
import { ComfyClient } from '../comfy/client.js';
import { ActionableError } from '../util/errors.js';
import { ENSURE_DOCKER_HINT, connectEngine, engineBin } from './engine.js';

export const COMPOSE_FILE = 'docker/docker-compose.yml';
export const COMPOSE_GPU_FILE = 'docker/docker-compose.gpu.yml';
export const SERVICE = 'steadydancer';

export interface ComposeOptions {
  root: string;
  env: NodeJS.ProcessEnv;
  run?: Runner;
  /** Docker client (default: engineBin()). */
  engine?: string;
  /** Base compose file (default docker/docker-compose.yml). */
  file?: string;
  /** true: never add the GPU override; false: always; undefined: when nvidia-smi sees a GPU. */
  cpu?: boolean;
  projectName?: string;
  signal?: AbortSignal;
}

export interface UpOptions extends ComposeOptions {
  /** How long to wait for /system_stats (default 300 s). */
  timeoutMs?: number;
  intervalMs?: number;
  /** Compose --build (default off: the image is built by `steadydancer build`). */
  build?: boolean;
}

export interface ComposeCommand {
  argv: string[];
  kind: 'v2' | 'v1';
  version: string;
}

export interface UpResult {
  ok: true;
  url: string;
  compose: ComposeCommand;
  files: string[];
  gpu: boolean;
  gpuReason: string;
  project: string;
  container: string;
  seconds: number;
  system: Record<string, unknown>;
}

export interface DownResult {
  ok: true;
  compose: ComposeCommand;
  files: string[];
  project: string;
  output: string;
}

const tail = (text: string, n = 20) =>
  text
    .split('\n')
    .filter((l) => l.trim())
    .slice(-n)
    .join('\n');

/** The Compose to use: $STEADYDANCER_COMPOSE (a command line), else `<engine> compose`, else docker-compose. */
export async function findCompose(run: Runner, engine: string, env: NodeJS.ProcessEnv): Promise<ComposeCommand> {
  const tried: string[] = [];
  const candidates: string[][] = env.STEADYDANCER_COMPOSE ? [env.STEADYDANCER_COMPOSE.split(/\s+/).filter(Boolean)] : [[engine, 'compose'], ['docker-compose']];
  for (const argv of candidates) {
    const r = await run(argv[0]!, [...argv.slice(1), 'version'], { timeoutMs: 20_000 });
    const m = /v?(\d+\.\d+\.\d+)/.exec(r.stdout + r.stderr);
    if (r.exitCode === 0 && m) return { argv, kind: argv.length > 1 || m[1]!.startsWith('2.') ? 'v2' : 'v1', version: m[1]! };
    tried.push(`${argv.join(' ')}: ${r.notFound ? 'not installed' : tail(r.stderr || r.stdout, 1) || `exit ${r.exitCode}`}`);
  }
  throw new ActionableError(`no Docker Compose found (${tried.join('; ')})`, {
    code: 'E_NO_COMPOSE',
    hint: "install the Compose v2 plugin (docker-compose-plugin) or Debian's docker-compose (apt-get install docker-compose), or name one with STEADYDANCER_COMPOSE",
  });
}

function project(o: ComposeOptions): string {
  return o.projectName ?? o.env.COMPOSE_PROJECT_NAME ?? 'steadydancer';
}

function hostPort(env: NodeJS.ProcessEnv): number {
  return Number(env.COMFYUI_HOST_PORT ?? 8188);
}

function bindAddress(env: NodeJS.ProcessEnv): string {
  const a = env.BIND_ADDRESS ?? '127.0.0.1';
  return a === '0.0.0.0' ? '127.0.0.1' : a;
}

async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen(port, host, () => srv.close(() => res(true)));
  });
}

interface Prepared {
  run: Runner;
  engine: string;
  compose: ComposeCommand;
  files: string[];
  project: string;
  gpu: boolean;
  gpuReason: string;
  exec: (args: string[], timeoutMs?: number) => Promise<RunResult>;
}

async function prepare(o: ComposeOptions, wantGpu: boolean): Promise<Prepared> {
  const run = o.run ?? realRunner;
  const engine = o.engine ?? engineBin(undefined, o.env);
  const base = resolve(o.root, o.file ?? COMPOSE_FILE);
  if (!existsSync(base)) throw new ActionableError(`compose file ${base} does not exist`, { code: 'E_COMPOSE_FILE', hint: 'run from the repository root, or pass --file' });
  const compose = await findCompose(run, engine, o.env);
  let gpu = false;
  let gpuReason = 'not asked (down)';
  if (wantGpu) {
    if (o.cpu === true) gpuReason = '--cpu: the GPU override is left out';
    else {
      const g = await probeGpu(run);
      gpu = o.cpu === false || g.present;
      gpuReason = g.present
        ? `GPU seen (${g.gpus.map((x) => x.name).join(', ')}): ${COMPOSE_GPU_FILE} added`
        : `no GPU (${g.reason ?? 'nvidia-smi sees none'}): CPU mode, ${COMPOSE_GPU_FILE} left out`;
    }
  }
  const files = [base];
  if (gpu) {
    const over = join(o.root, COMPOSE_GPU_FILE);
    if (!existsSync(over)) throw new ActionableError(`GPU override ${over} does not exist`, { code: 'E_COMPOSE_FILE' });
    files.push(over);
  }
  const proj = project(o);
  const exec = (args: string[], timeoutMs = 120_000) =>
    run(compose.argv[0]!, [...compose.argv.slice(1), '-p', proj, ...files.flatMap((f) => ['-f', f]), ...args], { timeoutMs, env: o.env, cwd: o.root });
  // Validate before touching the engine: a broken file is reported with Compose's own words.
  const cfg = await exec(['config', '-q'], 60_000);
  if (cfg.exitCode !== 0)
    throw new ActionableError(`the compose file is invalid (${compose.argv.join(' ')} config): ${tail(cfg.stderr || cfg.stdout, 8)}`, {
      code: 'E_COMPOSE_INVALID',
      hint: `fix ${files.join(' / ')}; \`steadydancer lint\` checks it too`,
    });
  return { run, engine, compose, files, project: proj, gpu, gpuReason, exec };
}

async function containerId(p: Prepared): Promise<string | undefined> {
  const r = await p.exec(['ps', '-q', SERVICE], 30_000);
  return r.exitCode === 0 ? r.stdout.trim().split('\n').filter(Boolean)[0] : undefined;
}

async function containerState(p: Prepared, id: string): Promise<{ status: string; exitCode: number } | undefined> {
  const r = await p.run(p.engine, ['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', id], { timeoutMs: 20_000 });
  if (r.exitCode !== 0) return undefined;
  const [status, code] = r.stdout.trim().split(' ');
  return { status: status ?? 'unknown', exitCode: Number(code ?? 0) };
}

async function logsOf(p: Prepared, id: string, n = 30): Promise<string> {
  const r = await p.run(p.engine, ['logs', '--tail', String(n), id], { timeoutMs: 20_000 });
  return tail(r.stdout + '\n' + r.stderr, n) || '(no log lines)';
}

export async function composeUp(o: UpOptions): Promise<UpResult> {
  const t0 = Date.now();
  const p = await prepare(o, true);
  await connectEngine(p.engine, o.signal).catch((err: unknown) => {
    throw err instanceof ActionableError ? err : new ActionableError(String(err), { code: 'E_NO_DOCKER', hint: ENSURE_DOCKER_HINT });
  });
  const port = hostPort(o.env);
  const host = bindAddress(o.env);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const running = await containerId(p);
  if (!running && !(await portFree(host, port)))
    throw new ActionableError(`port ${host}:${port} is already taken by another program`, {
      code: 'E_PORT_TAKEN',
      hint: 'stop it, or choose another port with COMFYUI_HOST_PORT=<n> (and API_HOST_PORT for 8000)',
    });
  const up = await p.exec(['up', '-d', ...(o.build ? ['--build'] : [])], 30 * 60_000);
  if (up.exitCode !== 0) {
    const text = up.stderr + '\n' + up.stdout;
    if (/port is already allocated|address already in use/i.test(text))
      throw new ActionableError(`port ${port} is already taken: ${tail(text, 3)}`, { code: 'E_PORT_TAKEN', hint: 'choose another port with COMFYUI_HOST_PORT=<n>' });
    if (/pull access denied|not found|no such image|manifest unknown/i.test(text))
      throw new ActionableError(`the image is not there: ${tail(text, 3)}`, { code: 'E_NO_IMAGE', hint: 'build it first: steadydancer build (or set STEADYDANCER_IMAGE)' });
    throw new ActionableError(`compose up failed: ${tail(text, 10)}`, { code: 'E_COMPOSE_UP' });
  }
  const id = await containerId(p);
  if (!id) throw new ActionableError(`compose up reported success but no ${SERVICE} container exists`, { code: 'E_COMPOSE_UP' });
  const cid: string = id;
  const client = new ComfyClient({ url, requestTimeoutMs: 5_000 });
  const deadline = Date.now() + (o.timeoutMs ?? 300_000);
  let last = '';
  // The client's request timeouts are AbortSignal.timeout timers, which do not keep Node alive:
  // while docker-proxy holds a connection open with no answer, nothing else would, and Node
  // would exit mid-wait (code 13). A plain interval keeps the process up until we are done.
  const keepAlive = setInterval(() => undefined, 1_000);
  try {
    return await waitReady();
  } finally {
    clearInterval(keepAlive);
  }
  async function waitReady(): Promise<UpResult> {
    for (;;) {
      o.signal?.throwIfAborted();
      const st = await containerState(p, cid);
      if (st && (st.status === 'exited' || st.status === 'dead'))
        throw new ActionableError(`the ${SERVICE} container exited (code ${st.exitCode}) before ComfyUI was ready; its last log lines:\n${await logsOf(p, cid)}`, {
          code: 'E_CONTAINER_EXITED',
          hint: `full log: ${p.engine} logs ${cid.slice(0, 12)}; stop it with: steadydancer down`,
        });
      try {
        const s = await client.systemStats(o.signal);
        return {
          ok: true,
          url,
          compose: p.compose,
          files: p.files,
          gpu: p.gpu,
          gpuReason: p.gpuReason,
          project: p.project,
          container: cid.slice(0, 12),
          seconds: (Date.now() - t0) / 1000,
          system: s.system,
        };
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline)
        throw new ActionableError(
          `ComfyUI did not answer ${url}/system_stats within ${Math.round((o.timeoutMs ?? 300_000) / 1000)} s (last: ${last}); the container's last log lines:\n${await logsOf(p, cid)}`,
          { code: 'E_NOT_READY', hint: 'wait longer with --timeout, or look at the log; stop it with: steadydancer down' },
        );
      await new Promise((r) => setTimeout(r, o.intervalMs ?? 2_000));
    }
  }
}

export async function composeDown(o: ComposeOptions & { volumes?: boolean }): Promise<DownResult> {
  const p = await prepare(o, false);
  const r = await p.exec(['down', ...(o.volumes ? ['-v'] : [])], 120_000);
  if (r.exitCode !== 0) {
    const text = r.stderr + '\n' + r.stdout;
    const noEngine = /Cannot connect to the Docker daemon|Couldn't connect to Docker daemon|connection refused|no such file/i.test(text);
    throw new ActionableError(`compose down failed: ${tail(text, 6)}`, { code: noEngine ? 'E_NO_DOCKER' : 'E_COMPOSE_DOWN', hint: noEngine ? ENSURE_DOCKER_HINT : undefined });
  }
  return { ok: true, compose: p.compose, files: p.files, project: p.project, output: tail(r.stderr + '\n' + r.stdout, 10) };
}
