/** `up` / `down`: docker compose with docker/docker-compose.yml, then wait for ComfyUI. */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { ActionableError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { dockerDir } from '../util/paths.js';
import { waitForComfy } from './client.js';

/** `docker compose` (v2) when present, else `docker-compose` (v1). */
export async function composeCommand(): Promise<string[]> {
  try {
    await execa('docker', ['compose', 'version']);
    return ['docker', 'compose'];
  } catch {
    try {
      await execa('docker-compose', ['version']);
      return ['docker-compose'];
    } catch {
      throw new ActionableError('neither `docker compose` nor `docker-compose` is installed', { code: 'E_NO_COMPOSE', hint: 'apt-get install -y docker.io docker-compose' });
    }
  }
}

async function portTaken(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(true));
    s.listen(port, '127.0.0.1', () => s.close(() => res(false)));
  });
}

export interface UpOptions {
  port: number;
  timeoutMs: number;
  cpu: boolean;
  logger: Logger;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export async function up(opts: UpOptions): Promise<{ url: string; compose: string[] }> {
  const file = join(dockerDir(), 'docker-compose.yml');
  if (!existsSync(file)) throw new ActionableError(`${file} does not exist`, { code: 'E_NO_COMPOSE_FILE' });
  try {
    await execa('docker', ['info'], { timeout: 20_000 });
  } catch (err) {
    throw new ActionableError(`the Docker engine does not answer: ${(err as { shortMessage?: string }).shortMessage ?? (err as Error).message}`, { code: 'E_NO_DOCKER', hint: 'start dockerd (scripts/ensure-docker.sh) or check DOCKER_HOST' });
  }
  if (await portTaken(opts.port)) throw new ActionableError(`port ${opts.port} on 127.0.0.1 is already taken`, { code: 'E_PORT_TAKEN', hint: 'stop what uses it, or set COMFYUI_PORT' });
  const compose = await composeCommand();
  const args = [...compose.slice(1), '-f', file, ...(opts.cpu ? [] : ['--profile', 'gpu']), 'up', '-d'];
  opts.logger.info(`${compose[0]} ${args.join(' ')}`);
  const r = await execa(compose[0]!, args, { reject: false, env: opts.env, cancelSignal: opts.signal });
  if (r.exitCode !== 0) throw new ActionableError(`compose up failed (exit ${r.exitCode}): ${String(r.stderr).slice(-2000)}`, { code: 'E_COMPOSE_UP' });
  const url = `http://127.0.0.1:${opts.port}`;
  const exited = async () => {
    const ps = await execa(compose[0]!, [...compose.slice(1), '-f', file, 'ps', '-a'], { reject: false });
    return /Exit|exited/i.test(String(ps.stdout)) ? String(ps.stdout) : undefined;
  };
  let dead: string | undefined;
  const poll = setInterval(() => void exited().then((d) => (dead = d)), 5000);
  try {
    await waitForComfy(url, { timeoutMs: opts.timeoutMs, signal: opts.signal, isDead: () => dead && `a container exited:\n${dead}` });
  } finally {
    clearInterval(poll);
  }
  return { url, compose };
}

export async function down(logger: Logger): Promise<void> {
  const compose = await composeCommand();
  const args = [...compose.slice(1), '-f', join(dockerDir(), 'docker-compose.yml'), 'down'];
  logger.info(`${compose[0]} ${args.join(' ')}`);
  const r = await execa(compose[0]!, args, { reject: false });
  if (r.exitCode !== 0) throw new ActionableError(`compose down failed (exit ${r.exitCode}): ${String(r.stderr).slice(-2000)}`, { code: 'E_COMPOSE_DOWN' });
}
