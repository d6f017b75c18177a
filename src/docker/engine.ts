/**
 * Docker engine access through its CLI (execa). The engine binary is configurable: Debian's
 * /usr/bin/docker (20.10, BuildKit built in) is preferred over a `docker` on PATH, because a
 * newer client elsewhere (e.g. /usr/local/bin/docker) may have no daemon behind it or speak a
 * newer API than the engine.
 */
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { ActionableError } from '../util/errors.js';

export const DEFAULT_ENGINE = '/usr/bin/docker';

export interface Engine {
  bin: string;
  serverVersion: string;
  rootDir: string;
}

export const ENSURE_DOCKER_HINT = 'start one with `scripts/ensure-docker.sh` (installs docker.io and starts dockerd), or name another client with --engine / STEADYDANCER_DOCKER';

/** The engine binary: the flag, then $STEADYDANCER_DOCKER, then /usr/bin/docker, then `docker`. */
export function engineBin(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return flag;
  if (env.STEADYDANCER_DOCKER) return env.STEADYDANCER_DOCKER;
  if (existsSync(DEFAULT_ENGINE)) return DEFAULT_ENGINE;
  return 'docker';
}

/** Connects to the engine, or throws an ActionableError saying how to get one. */
export async function connectEngine(bin: string, signal?: AbortSignal): Promise<Engine> {
  const res = await execa(bin, ['info', '--format', '{{json .}}'], { reject: false, timeout: 30_000, cancelSignal: signal });
  if (res.failed || res.exitCode !== 0) {
    const why =
      String(res.stderr || res.stdout || res.message || '')
        .split('\n')
        .filter(Boolean)
        .slice(-1)[0] ?? 'no answer';
    throw new ActionableError(`no Docker engine answers through ${bin}: ${why}`, { code: 'E_NO_DOCKER', hint: ENSURE_DOCKER_HINT });
  }
  let info: { ServerVersion?: string; DockerRootDir?: string };
  try {
    info = JSON.parse(String(res.stdout)) as typeof info;
  } catch {
    throw new ActionableError(`${bin} info printed something that is not JSON`, { code: 'E_NO_DOCKER', hint: ENSURE_DOCKER_HINT });
  }
  if (!info.ServerVersion) {
    throw new ActionableError(`${bin} reached no engine (no server version)`, { code: 'E_NO_DOCKER', hint: ENSURE_DOCKER_HINT });
  }
  return { bin, serverVersion: info.ServerVersion, rootDir: info.DockerRootDir || '/var/lib/docker' };
}

export interface ImageInfo {
  id: string;
  sizeBytes: number;
  created: string;
  labels: Record<string, string>;
}

export async function inspectImage(engine: Engine, ref: string): Promise<ImageInfo | undefined> {
  const res = await execa(engine.bin, ['image', 'inspect', '--format', '{{json .}}', ref], { reject: false });
  if (res.exitCode !== 0) return undefined;
  const j = JSON.parse(String(res.stdout)) as { Id: string; Size: number; Created: string; Config?: { Labels?: Record<string, string> | null } };
  return { id: j.Id, sizeBytes: j.Size, created: j.Created, labels: j.Config?.Labels ?? {} };
}

export interface LayerInfo {
  createdBy: string;
  sizeBytes: number;
}

/** Layers of an image, oldest first (docker history, sizes in bytes). */
export async function imageLayers(engine: Engine, ref: string): Promise<LayerInfo[]> {
  const res = await execa(engine.bin, ['history', '--no-trunc', '--human=false', '--format', '{{json .}}', ref]);
  return String(res.stdout)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { CreatedBy: string; Size: string | number })
    .map((l) => ({ createdBy: l.CreatedBy, sizeBytes: Number(l.Size) }))
    .reverse();
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** `docker run --rm --network host IMAGE ARGS...` (start.sh passes ARGS through as a command). */
export async function runInImage(engine: Engine, ref: string, args: string[], opts: { timeoutMs?: number; env?: Record<string, string>; signal?: AbortSignal } = {}): Promise<RunResult> {
  const envArgs = Object.entries(opts.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  const res = await execa(engine.bin, ['run', '--rm', '--network', 'host', ...envArgs, ref, ...args], {
    reject: false,
    timeout: opts.timeoutMs ?? 600_000,
    cancelSignal: opts.signal,
    all: false,
  });
  return { exitCode: res.exitCode ?? -1, stdout: String(res.stdout ?? ''), stderr: String(res.stderr ?? ''), timedOut: Boolean(res.timedOut) };
}
