/**
 * `steadydancer up` / `down` error paths with the real Compose and engine of this machine:
 * Compose missing, engine missing, an invalid compose file, the port taken, and a container
 * that exits before ComfyUI answers (its log lines are in the error). The full up + smoke with
 * the built image is in image.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { connectEngine, engineBin, inspectImage } from '../../src/docker/engine.js';
import { STANDIN_ARGS } from '../../src/docker/build.js';
import { freePort } from '../../src/comfy/native.js';
import { needs } from '../helpers/skips.js';
import { captureCli as io } from '../helpers/cli.js';
import { composeSkipReason } from '../helpers/docker.js';

const noCompose = await composeSkipReason();
const skipCompose = needs('up/down with Compose', noCompose);

let engineReason: string | undefined;
try {
  const eng = await connectEngine(engineBin());
  if (!(await inspectImage(eng, STANDIN_ARGS.BASE_IMAGE))) engineReason = `the stand-in base ${STANDIN_ARGS.BASE_IMAGE} is missing (scripts/ensure-docker.sh --base makes it)`;
} catch (e) {
  engineReason = `no Docker engine: ${(e as Error).message}`;
}
const skipEngine = needs('up with a Docker engine (port taken, container exits)', noCompose ?? engineReason);

describe('up/down without Compose', () => {
  it('says no Compose was found and how to get one', async () => {
    const c = io({ ...process.env, STEADYDANCER_COMPOSE: '/nonexistent/docker-compose' });
    expect(await runCli(['up', '--cpu'], c.io)).toBe(1);
    const text = c.err.join('');
    expect(text).toMatch(/no Docker Compose found \(\/nonexistent\/docker-compose: not installed\)/);
    expect(text).toMatch(/hint: install the Compose v2 plugin/);
  });

  it('rejects --cpu with --gpu and a bad --timeout', async () => {
    const c = io(process.env);
    expect(await runCli(['up', '--cpu', '--gpu'], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/option '--cpu' cannot be used with option '--gpu'/);
    const d = io(process.env);
    expect(await runCli(['up', '--timeout', 'soon'], d.io)).toBe(2);
    expect(d.err.join('')).toMatch(/option '--timeout <s>' argument 'soon' is invalid. expected a positive number of seconds/);
  });
});

describe.skipIf(skipCompose)('up/down with Compose', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sd-up-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reports an invalid compose file in Compose's words", async () => {
    const bad = join(dir, 'bad.yml');
    writeFileSync(bad, 'services:\n  steadydancer:\n    image: x\n    ports: 12\n    restart: sometimes-maybe\n');
    const c = io(process.env);
    expect(await runCli(['up', '--cpu', '--file', bad, '--json'], c.io)).toBe(1);
    const doc = JSON.parse(c.out.join('')) as { ok: boolean; error: { code: string; message: string } };
    expect(doc.ok).toBe(false);
    expect(doc.error.code).toBe('E_COMPOSE_INVALID');
    expect(doc.error.message).toMatch(/the compose file is invalid .*config\): .*ports/s);
  });

  it('says when the compose file does not exist', async () => {
    const c = io(process.env);
    expect(await runCli(['down', '--file', join(dir, 'nope.yml')], c.io)).toBe(1);
    expect(c.err.join('')).toMatch(/compose file .*nope\.yml does not exist/);
  });

  it('says no engine answers when the docker client is missing', async () => {
    const c = io(process.env);
    expect(await runCli(['up', '--cpu', '--engine', '/nonexistent/docker'], c.io)).toBe(1);
    expect(c.err.join('')).toMatch(/no Docker engine answers through \/nonexistent\/docker/);
    expect(c.err.join('')).toMatch(/hint: start one with `scripts\/ensure-docker.sh`/);
  });
});

describe.skipIf(skipEngine)('up with a Docker engine', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sd-up-eng-'));
    env = {
      ...process.env,
      COMPOSE_PROJECT_NAME: `sdtest${process.pid}`,
      // the stand-in base has no ComfyUI: its default command (bash, no tty) exits at once
      STEADYDANCER_IMAGE: STANDIN_ARGS.BASE_IMAGE,
      STEADYDANCER_MODELS: join(dir, 'models'),
      STEADYDANCER_OUTPUT: join(dir, 'output'),
      COMFYUI_HOST_PORT: String(await freePort()),
      API_HOST_PORT: String(await freePort()),
    };
  });
  afterAll(async () => {
    await runCli(['down'], io(env).io);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a port another program holds', async () => {
    const srv: Server = createServer();
    const port = await new Promise<number>((res) => srv.listen(0, '127.0.0.1', () => res((srv.address() as { port: number }).port)));
    try {
      const c = io({ ...env, COMFYUI_HOST_PORT: String(port) });
      expect(await runCli(['up', '--cpu'], c.io)).toBe(1);
      expect(c.err.join('')).toMatch(new RegExp(`port 127.0.0.1:${port} is already taken by another program`));
      expect(c.err.join('')).toMatch(/COMFYUI_HOST_PORT/);
    } finally {
      srv.close();
    }
  });

  it('reports a container that exits before ComfyUI is ready, with its log lines; down removes it', async () => {
    const c = io(env);
    expect(await runCli(['up', '--cpu', '--timeout', '60', '--json'], c.io)).toBe(1);
    const doc = JSON.parse(c.out.join('')) as { error: { code: string; message: string; hint: string } };
    expect(doc.error.code).toBe('E_CONTAINER_EXITED');
    expect(doc.error.message).toMatch(/the steadydancer container exited \(code \d+\) before ComfyUI was ready; its last log lines:/);
    expect(doc.error.hint).toMatch(/steadydancer down/);
    const d = io(env);
    expect(await runCli(['down', '--json'], d.io)).toBe(0);
    expect(JSON.parse(d.out.join(''))).toMatchObject({ ok: true, project: env.COMPOSE_PROJECT_NAME });
  });
});

// `up` + the full `smoke` (browser check and a generated job) with the built image are in
// image.test.ts, right after the image is built, so that they never run against a stale image.
