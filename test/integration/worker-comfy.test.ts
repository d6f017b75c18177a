/**
 * The worker and the local API running the dance handler end to end against a ComfyUI stand-in
 * that is a real child process (test/fixtures/fake-comfyui.mjs, speaking ComfyUI's HTTP + WS
 * API), supervised by the service exactly as in the image: real uploads, the pipeline's
 * workflow filler on the real template (docker/workflows/steadydancer-dance.api.json), WebSocket progress, /history, /view.
 * It is killed mid-job to prove crash survival. The real-ComfyUI run is in test/e2e.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, listen } from '../../src/serverless/api.js';
import { JobQueue } from '../../src/serverless/jobs.js';
import { RUN_LIMIT_BYTES } from '../../src/job/output.js';
import { createService, type Service } from '../../src/serverless/service.js';
import { Worker, workerConfigFromEnv } from '../../src/serverless/worker.js';
import { memoryLogger } from '../../src/util/logger.js';
import { projectRoot } from '../../src/util/paths.js';
import { JobServer } from '../helpers/job-server.js';
import { dataUri, ffmpegMissing, makeImage, makeVideo } from '../helpers/media.js';
import { needs } from '../helpers/skips.js';
import { motoServer, startMoto } from '../helpers/moto.js';
import { freePort } from '../../src/comfy/native.js';
import { existsSync } from 'node:fs';

const skip = needs('serverless worker with a ComfyUI child process', ffmpegMissing());
const FAKE = join(projectRoot(), 'test', 'fixtures', 'fake-comfyui.mjs');

describe.skipIf(skip)('dance jobs through a supervised ComfyUI process', () => {
  let dir: string;
  let image: string;
  let video: string;
  let outMp4: Buffer;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sd-wc-'));
    image = dataUri('image/png', makeImage(dir, 'ref.png', 128, 160));
    video = dataUri('video/mp4', makeVideo(dir, 'drive.mp4', 64, 64, 40));
    outMp4 = makeVideo(dir, 'result.mp4', 64, 64, 9);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function service(env: Record<string, string>, extra: Record<string, string> = {}): Promise<{ svc: Service; logger: ReturnType<typeof memoryLogger> }> {
    const port = await freePort();
    const logger = memoryLogger();
    const fullEnv = { ...process.env, FAKE_OUTPUT_MP4: join(dir, 'result.mp4'), STEPS: '4', STEP_MS: '40', ...env };
    // the child reads its settings from the environment the service passes on (process.env)
    Object.assign(process.env, { FAKE_OUTPUT_MP4: fullEnv.FAKE_OUTPUT_MP4, STEPS: fullEnv.STEPS, STEP_MS: fullEnv.STEP_MS });
    const svc = await createService({
      comfyUrl: `http://127.0.0.1:${port}`,
      comfyCommand: [process.execPath, FAKE, '--port', String(port)],
      readyTimeoutMs: 30_000,
      env: { ...fullEnv, ...extra },
      logger,
    });
    return { svc, logger };
  }

  it('the worker runs a dance job: progress step n/N, the mp4 as base64, the seed; then survives a ComfyUI crash mid-job', async () => {
    const js = new JobServer();
    await js.start();
    const { svc, logger } = await service({ STEP_MS: '150', STEPS: '20' });
    const ac = new AbortController();
    const worker = new Worker(workerConfigFromEnv(js.env()), { handler: svc.handler, logger, ready: svc.ready, crashSignal: svc.crashSignal });
    const running = worker.run(ac.signal);
    try {
      js.queue.push({ id: 'dance-1', input: { image, video, width: 64, height: 64, frames: 9, seed: 1234, steps: 4 } });
      const final = await js.final('dance-1');
      expect(final.error).toBeUndefined();
      const out = final.output as { video: { type: string; data: string; mime: string }; seed: number; timings: Record<string, number> };
      expect(out.video.type).toBe('base64');
      expect(out.video.mime).toBe('video/mp4');
      expect(Buffer.from(out.video.data, 'base64')).toEqual(outMp4);
      expect(out.seed).toBe(1234);
      expect(out.timings.total_ms).toBeGreaterThan(0);
      // Coalesced (≤ 1 post a second): 20 steps of 150 ms give a few step posts, in order, each
      // step once; the pose node's per-frame events are not steps.
      const updates = js.progress('dance-1').map((p) => p.output as { stage: string; step?: number; message: string });
      const steps = updates.filter((u) => u.stage === 'sampling');
      expect(steps.length).toBeGreaterThanOrEqual(2);
      expect(steps.every((u, i) => u.message === `step ${u.step}/20` && (i === 0 || u.step! > steps[i - 1]!.step!))).toBe(true);
      expect(updates.filter((u) => /SteadyDancerPosePrep/.test(u.message)).every((u) => u.stage !== 'sampling')).toBe(true);

      // Kill ComfyUI in the middle of the next job.
      const pid1 = svc.supervisor!.pid!;
      js.queue.push({ id: 'dance-crash', input: { image, video, width: 64, height: 64, frames: 9 } });
      for (let i = 0; i < 3000 && !js.progress('dance-crash').some((p) => (p.output as { stage: string }).stage === 'sampling'); i++) await new Promise((r) => setTimeout(r, 20));
      process.kill(pid1, 'SIGKILL');
      const crashed = await js.final('dance-crash');
      expect(crashed.error).toMatch(/ComfyUI exited during the job \(killed by SIGKILL\); it is being restarted/);
      expect(crashed.output).toBeUndefined();

      // ComfyUI is restarted and the next job runs on the fresh process.
      js.queue.push({ id: 'dance-after', input: { image, video, width: 64, height: 64, frames: 9, seed: 7 } });
      const after = await js.final('dance-after');
      expect(after.error).toBeUndefined();
      expect((after.output as { seed: number }).seed).toBe(7);
      expect(svc.supervisor!.pid).not.toBe(pid1);
      expect(logger.lines.some((l) => /ComfyUI exited \(killed by SIGKILL\); restarting/.test(l))).toBe(true);
    } finally {
      ac.abort();
      await running;
      await svc.stop();
      await js.stop();
    }
  }, 120_000);

  describe('the local API on the same runner', () => {
    let svc: Service;
    let queue: JobQueue;
    let base = '';
    let server: ReturnType<typeof createApi>;
    beforeAll(async () => {
      ({ svc } = await service({}));
      queue = new JobQueue({ handler: svc.handler, logger: memoryLogger(), beforeJob: svc.ready, runningAbort: svc.crashSignal });
      server = createApi({ queue, validate: svc.validate });
      base = (await listen(server, 0, '127.0.0.1')).url;
    }, 60_000);
    afterAll(async () => {
      await queue.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await svc.stop();
    });
    const post = async (path: string, body: unknown) => {
      const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };

    it('runsync completes with the mp4', async () => {
      const r = await post('/runsync', { input: { image, video, width: 64, height: 64, frames: 9, seed: 3 } });
      expect(r.body.status).toBe('COMPLETED');
      const out = r.body.output as { video: { data: string }; seed: number };
      expect(Buffer.from(out.video.data, 'base64')).toEqual(outMp4);
      expect(out.seed).toBe(3);
    });

    it.each([
      [{ video: 'x' }, /image: is required/],
      [{ image: '', video: 'x' }, /image: is empty/],
      [{ image: 'x', video: 'y', width: 100 }, /width.*multiple of 16/],
      [{ image: 'x', video: 'y', frames: 5000 }, /frames.*at most/],
      [{ image: 'x', video: 'y', step: 4 }, /step/],
      [{ image: 'x', video: 'y', variant: 'int4' }, /variant/],
      ['not an object', /input: must be a JSON object/],
    ])('a bad input is refused at submission: %j', async (input, msg) => {
      const r = await post('/run', { input });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(msg);
    });

    it.each([
      ['a corrupt image', () => ({ image: Buffer.alloc(2000, 1).toString('base64') }), /^image: /],
      ['an image URL to the metadata address', () => ({ image: 'http://169.254.169.254/latest/meta-data/x.png' }), /^image: URL refused: .*metadata/],
      ['a video URL on loopback', () => ({ video: 'http://127.0.0.1:8188/view?filename=x.mp4' }), /^video: URL refused: .*loopback/],
      ['more frames than the driving video has', () => ({ frames: 81 }), /^frames: 81 frames asked for, but the driving video has only 40/],
    ])('%s fails the job naming the field', async (_n, patch, msg) => {
      const r = await post('/runsync', { input: { image, video, width: 64, height: 64, frames: 9, ...patch() } });
      expect(r.body.status).toBe('FAILED');
      expect(r.body.error).toMatch(msg);
    });

    it('a result over the /run payload limit FAILS with advice when no S3 is configured', async () => {
      // the ComfyUI child serves whatever this file holds at /view
      writeFileSync(join(dir, 'result.mp4'), Buffer.alloc(RUN_LIMIT_BYTES, 7)); // 10 MB raw → 13.3 MB as base64
      try {
        const r = await post('/run', { input: { image, video, width: 64, height: 64, frames: 9 } });
        const done = await queue.waitFor(r.body.id as string, 60_000);
        expect(done?.status).toBe('FAILED');
        expect(done?.error).toMatch(/13\.3 MB as base64 JSON, over RunPod's 10\.0 MB payload limit; configure S3/);
        // runsync's limit is 20 MB: the same video fits there
        const s = await post('/runsync', { input: { image, video, width: 64, height: 64, frames: 9 } });
        expect(s.body.status).toBe('COMPLETED');
      } finally {
        writeFileSync(join(dir, 'result.mp4'), outMp4);
      }
    });
  });
});

const motoSkip = needs('serverless S3 result through the worker', ffmpegMissing() || (existsSync(motoServer) ? undefined : `${motoServer} is missing (moto[server] in requirements-dev.txt)`));
describe.skipIf(motoSkip)('an oversized result goes to S3 when configured', () => {
  it('the handler uploads to moto and returns an s3_url', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-s3w-'));
    const moto = await startMoto();
    const port = await freePort();
    const big = join(dir, 'big.mp4');
    writeFileSync(big, Buffer.alloc(11 * 1024 * 1024, 9));
    Object.assign(process.env, { FAKE_OUTPUT_MP4: big, STEPS: '2', STEP_MS: '20' });
    const svc = await createService({
      comfyUrl: `http://127.0.0.1:${port}`,
      comfyCommand: [process.execPath, FAKE, '--port', String(port)],
      readyTimeoutMs: 30_000,
      env: {
        BUCKET_ENDPOINT_URL: `${moto.cfg.endpoint}/${moto.cfg.bucket}`,
        BUCKET_ACCESS_KEY_ID: moto.cfg.accessKeyId,
        BUCKET_SECRET_ACCESS_KEY: moto.cfg.secretAccessKey,
      },
      logger: memoryLogger(),
    });
    const queue = new JobQueue({ handler: svc.handler, logger: memoryLogger(), beforeJob: svc.ready });
    try {
      const rec = queue.submit(
        { image: dataUri('image/png', makeImage(dir, 'r.png', 96, 96)), video: dataUri('video/mp4', makeVideo(dir, 'd.mp4', 64, 64, 12)), width: 64, height: 64, frames: 9 },
        { delivery: 'run' },
      );
      const done = await queue.waitFor(rec.id, 60_000);
      expect(done?.error).toBeUndefined();
      const out = done?.output as { video: { type: string; data: string } };
      expect(out.video.type).toBe('s3_url');
      const r = await fetch(out.video.data);
      expect((await r.arrayBuffer()).byteLength).toBe(11 * 1024 * 1024);
    } finally {
      await queue.close();
      await svc.stop();
      moto.proc.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
