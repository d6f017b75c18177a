/**
 * `steadydancer worker` and `steadydancer serve` as commands (through runCli): ComfyUI given
 * after `--` is started and supervised; the worker talks to a RunPod job server, serve answers
 * RunPod's routes; both stop cleanly on the abort signal (SIGTERM in the CLI).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { projectRoot } from '../../src/util/paths.js';
import { JobServer } from '../helpers/job-server.js';
import { dataUri, ffmpegMissing, makeImage, makeVideo } from '../helpers/media.js';
import { freePort } from '../../src/comfy/native.js';
import { needs } from '../helpers/skips.js';
import { captureCli as io } from '../helpers/cli.js';

const skip = needs('serverless worker/serve commands', ffmpegMissing());
const FAKE = join(projectRoot(), 'test', 'fixtures', 'fake-comfyui.mjs');

describe.skipIf(skip)('worker and serve commands', () => {
  let dir: string;
  let input: Record<string, unknown>;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sd-wcli-'));
    makeVideo(dir, 'result.mp4', 64, 64, 5);
    Object.assign(process.env, { FAKE_OUTPUT_MP4: join(dir, 'result.mp4'), STEPS: '3', STEP_MS: '20' });
    input = { image: dataUri('image/png', makeImage(dir, 'r.png', 96, 96)), video: dataUri('video/mp4', makeVideo(dir, 'd.mp4', 64, 64, 12)), width: 64, height: 64, frames: 9, seed: 99 };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('worker: runs a job from the queue, then stops on the signal with exit 0', async () => {
    const js = new JobServer();
    await js.start();
    const port = await freePort();
    const ac = new AbortController();
    const c = io(js.env(), ac.signal);
    const exit = runCli(['worker', '--comfy-url', `http://127.0.0.1:${port}`, '--ready-timeout', '60', '--', process.execPath, FAKE, '--port', String(port)], c.io);
    try {
      js.queue.push({ id: 'cli-job', input });
      const final = await js.final('cli-job', 90_000);
      expect(final.error).toBeUndefined();
      expect((final.output as { seed: number }).seed).toBe(99);
    } finally {
      ac.abort();
      expect(await exit).toBe(0);
      await js.stop();
    }
    expect(c.err.join('')).toMatch(/ComfyUI started \(pid \d+\)/);
    expect(c.err.join('')).toMatch(/job cli-job: COMPLETED/);
  }, 120_000);

  it('worker outside RunPod: a clear error naming the missing variable', async () => {
    const c = io({}, new AbortController().signal);
    expect(await runCli(['worker'], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/RUNPOD_WEBHOOK_GET_JOB is not set/);
    expect(c.err.join('')).toMatch(/steadydancer serve/);
  });

  it('serve: RunPod routes in front of the supervised ComfyUI, key required, clean stop', async () => {
    const port = await freePort();
    const ac = new AbortController();
    const c = io({ ...process.env, STEADYDANCER_API_KEY: 'serve-key-123' }, ac.signal);
    const exit = runCli(['serve', '--port', '0', '--json', '--comfy-url', `http://127.0.0.1:${port}`, '--', process.execPath, FAKE, '--port', String(port)], c.io);
    try {
      for (let i = 0; i < 600 && c.out.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const { url } = JSON.parse(c.out[0]!) as { url: string };
      const noKey = await fetch(`${url}/run`, { method: 'POST', body: JSON.stringify({ input }) });
      expect(noKey.status).toBe(401);
      const r = await fetch(`${url}/runsync`, { method: 'POST', headers: { authorization: 'Bearer serve-key-123', 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
      const body = (await r.json()) as { status: string; output: { seed: number } };
      expect(body.status).toBe('COMPLETED');
      expect(body.output.seed).toBe(99);
      const bad = await fetch(`${url}/run`, { method: 'POST', headers: { authorization: 'Bearer serve-key-123' }, body: JSON.stringify({ input: { ...input, width: 65 } }) });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: string }).error).toMatch(/width/);
    } finally {
      ac.abort();
      expect(await exit).toBe(0);
    }
  }, 120_000);
});
