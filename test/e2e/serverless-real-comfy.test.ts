/**
 * The local API and the dance handler against a REAL ComfyUI (pinned source from the cache, on
 * CPU), started and supervised by our ComfySupervisor as in the image's serverless/api modes:
 * real media checks, uploads, /prompt, the WebSocket, /history, SaveVideo's mp4 through /view,
 * and ComfyUI SIGKILLed mid-job, restarted, and the next job completing.
 *
 * Part 1 uses a model-free workflow (LoadImage + LoadVideo → frames → CreateVideo → SaveVideo),
 * so it runs wherever the ComfyUI source is cached. Part 2 runs the real dance template with the
 * pipeline's CPU model fixtures (test/helpers/tiny-models.ts) once they are in the tree; until
 * then it is skipped loudly.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComfyClient } from '../../src/comfy/client.js';
import { resolveParams, type ResolvedParams } from '../../src/comfy/params.js';
import { freePort } from '../../src/comfy/native.js';
import { createApi, listen } from '../../src/serverless/api.js';
import { ComfySupervisor } from '../../src/comfy/supervisor.js';
import { createDanceHandler } from '../../src/job/handler.js';
import { JobQueue } from '../../src/serverless/jobs.js';
import { comfyPort } from '../../src/job/pipeline-glue.js';
import { inputProblem } from '../../src/job/schema.js';
import { memoryLogger } from '../../src/util/logger.js';
import { comfySkipReason, PACK_DIR } from '../helpers/comfy.js';
import { createService, type Service } from '../../src/serverless/service.js';
import { projectRoot } from '../../src/util/paths.js';
import { dataUri, ffmpegMissing, makeImage, makeVideo } from '../helpers/media.js';
import { needs } from '../helpers/skips.js';
import { COMFYUI_COMMIT, cachedSource, testPython } from '../helpers/sources.js';
import { execFileSync } from 'node:child_process';
import { ensureTinyModels, tinyModelsSkipReason } from '../helpers/tiny-models.js';

const skip = needs('serverless local API against a real ComfyUI', ffmpegMissing() || comfySkipReason());

/** Model-free stand-in for the dance graph: the driving frames scaled to width×height plus the reference, as an mp4. */
function modelFreeWorkflow(p: ResolvedParams, inputs: { image: string; video: string }): Record<string, unknown> {
  const heavy = p.prompt === 'slow';
  const wf: Record<string, { class_type: string; inputs: Record<string, unknown> }> = {
    '1': { class_type: 'LoadImage', inputs: { image: inputs.image } },
    '2': { class_type: 'LoadVideo', inputs: { file: inputs.video } },
    '3': { class_type: 'GetVideoComponents', inputs: { video: ['2', 0] } },
    '4': { class_type: 'ImageScale', inputs: { image: ['3', 0], upscale_method: 'bilinear', width: p.width, height: p.height, crop: 'disabled' } },
    '5': { class_type: 'ImageBatch', inputs: { image1: ['4', 0], image2: ['1', 0] } },
    '6': { class_type: 'CreateVideo', inputs: { images: [heavy ? '8' : '5', 0], fps: p.fps } },
    '7': { class_type: 'SaveVideo', inputs: { video: ['6', 0], filename_prefix: 'serverless/e2e', format: 'mp4', codec: 'h264' } },
  };
  if (heavy) {
    // long enough on CPU to be killed in the middle: many large frames through a wide blur
    wf['9'] = { class_type: 'RepeatImageBatch', inputs: { image: ['5', 0], amount: 12 } };
    wf['10'] = { class_type: 'ImageScale', inputs: { image: ['9', 0], upscale_method: 'bicubic', width: 1024, height: 1024, crop: 'disabled' } };
    wf['8'] = { class_type: 'ImageBlur', inputs: { image: ['10', 0], blur_radius: 31, sigma: 10 } };
  }
  return wf;
}

function probe(bytes: Buffer, dir: string): { codec: string; width: number; height: number; frames: number } {
  const f = join(dir, `probe-${Date.now()}.mp4`);
  execFileSync('sh', ['-c', `cat > ${f}`], { input: bytes });
  const out = JSON.parse(
    execFileSync('ffprobe', ['-v', 'error', '-count_packets', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height,nb_read_packets', '-of', 'json', f], { encoding: 'utf8' }),
  ) as {
    streams: Array<{ codec_name: string; width: number; height: number; nb_read_packets: string }>;
  };
  const s = out.streams[0]!;
  return { codec: s.codec_name, width: s.width, height: s.height, frames: Number(s.nb_read_packets) };
}

describe.skipIf(skip)('local API + dance handler + supervised real ComfyUI (model-free workflow)', () => {
  let dir: string;
  let sup: ComfySupervisor;
  let queue: JobQueue;
  let server: ReturnType<typeof createApi>;
  let base = '';
  let image = '';
  let video = '';
  const logger = memoryLogger();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sd-e2e-sl-'));
    const comfyBase = join(dir, 'comfy');
    for (const d of ['custom_nodes', 'input', 'output', 'temp', 'user', 'models']) mkdirSync(join(comfyBase, d), { recursive: true });
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const source = cachedSource('ComfyUI', COMFYUI_COMMIT)!;
    sup = new ComfySupervisor({
      command: [
        testPython()!,
        join(source, 'main.py'),
        '--cpu',
        '--listen',
        '127.0.0.1',
        '--port',
        String(port),
        '--base-directory',
        comfyBase,
        '--disable-auto-launch',
        '--database-url',
        'sqlite:///:memory:',
      ],
      cwd: source,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
      baseUrl: url,
      logger,
    });
    sup.start();
    await sup.waitReady(300_000);
    const handler = createDanceHandler({
      comfy: comfyPort(new ComfyClient({ url, requestTimeoutMs: 120_000 })),
      resolve: (raw) => resolveParams(raw),
      fill: modelFreeWorkflow,
      workDir: join(dir, 'jobs'),
    });
    queue = new JobQueue({ handler, logger, beforeJob: (signal) => sup.waitReady(300_000, signal), runningAbort: () => sup.crashSignal() });
    server = createApi({ queue, validate: (input) => inputProblem(input, resolveParams) });
    base = (await listen(server, 0, '127.0.0.1')).url;
    image = dataUri('image/png', makeImage(dir, 'ref.png', 96, 128));
    video = dataUri('video/mp4', makeVideo(dir, 'drive.mp4', 64, 64, 12));
  }, 400_000);

  afterAll(async () => {
    await queue?.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await sup?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (path: string, body: unknown) => {
    const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return (await r.json()) as Record<string, unknown>;
  };

  it('POST /runsync returns an mp4 that ffprobe reads, made by ComfyUI from our inputs', async () => {
    const r = await post('/runsync', { input: { image, video, width: 64, height: 80, frames: 9, fps: 8, seed: 11 } });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe('COMPLETED');
    const out = r.output as { video: { type: string; data: string; mime: string }; seed: number };
    expect(out.video.type).toBe('base64');
    expect(out.seed).toBe(11);
    const info = probe(Buffer.from(out.video.data, 'base64'), dir);
    expect(info.codec).toBe('h264');
    expect([info.width, info.height]).toEqual([64, 80]);
    expect(info.frames).toBe(13); // 12 driving frames + the reference
  });

  it('ComfyUI SIGKILLed mid-job: that job FAILS clearly, ComfyUI restarts, the next job completes', async () => {
    const pid = sup.pid!;
    const { id } = (await post('/run', { input: { image, video, width: 64, height: 64, frames: 9, prompt: 'slow' } })) as { id: string };
    // wait until the job is in ComfyUI (the handler reported "queued"), then kill it
    for (let i = 0; i < 600; i++) {
      const s = (await (await fetch(`${base}/status/${id}`)).json()) as { output?: { stage?: string } };
      if (s.output?.stage === 'queued' || s.output?.stage === 'running') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, 'SIGKILL');
    const done = await queue.waitFor(id, 120_000);
    expect(done?.status).toBe('FAILED');
    expect(done?.error).toMatch(/ComfyUI exited during the job \(killed by SIGKILL\); it is being restarted/);

    const next = await post('/runsync', { input: { image, video, width: 64, height: 64, frames: 9, fps: 8 } });
    expect(next.error).toBeUndefined();
    expect(next.status).toBe('COMPLETED');
    expect(sup.pid).not.toBe(pid);
    expect(probe(Buffer.from((next.output as { video: { data: string } }).video.data, 'base64'), dir).frames).toBe(13);
  }, 400_000);
});

// Part 2: the real dance template on the pipeline's CPU model fixtures (test/helpers/
// tiny-models.ts), through createService exactly as `serve` wires it.
const skipDance = needs('serverless dance template on real ComfyUI with CPU fixtures', ffmpegMissing() || comfySkipReason() || tinyModelsSkipReason());

describe.skipIf(skipDance)('local API + the real dance template on the CPU fixtures', () => {
  let dir: string;
  let svc: Service;
  let queue: JobQueue;
  let server: ReturnType<typeof createApi>;
  let base = '';
  const logger = memoryLogger();

  beforeAll(async () => {
    const m = ensureTinyModels();
    dir = mkdtempSync(join(tmpdir(), 'sd-e2e-dance-'));
    const comfyBase = join(dir, 'comfy');
    for (const d of ['custom_nodes', 'input', 'output', 'temp', 'user']) mkdirSync(join(comfyBase, d), { recursive: true });
    symlinkSync(m.modelsDir, join(comfyBase, 'models'));
    symlinkSync(PACK_DIR, join(comfyBase, 'custom_nodes', 'comfyui-steadydancer'));
    const port = await freePort();
    const source = cachedSource('ComfyUI', COMFYUI_COMMIT)!;
    svc = await createService({
      comfyUrl: `http://127.0.0.1:${port}`,
      comfyCommand: [
        testPython()!,
        join(source, 'main.py'),
        '--cpu',
        '--listen',
        '127.0.0.1',
        '--port',
        String(port),
        '--base-directory',
        comfyBase,
        '--disable-auto-launch',
        '--database-url',
        'sqlite:///:memory:',
      ],
      comfyCwd: source,
      comfyEnv: { ...process.env, PYTHONUNBUFFERED: '1', STEADYDANCER_TEXT_CACHE: m.textCacheDir },
      readyTimeoutMs: 600_000,
      env: { ...process.env },
      logger,
    });
    await svc.ready(new AbortController().signal);
    queue = new JobQueue({ handler: svc.handler, logger, beforeJob: svc.ready, runningAbort: svc.crashSignal });
    server = createApi({ queue, validate: svc.validate });
    base = (await listen(server, 0, '127.0.0.1')).url;
  }, 1_800_000);

  afterAll(async () => {
    await queue?.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await svc?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('POST /run with the sample image and dance: step n/N on /stream, then an mp4 of the asked size and 4n+1 frames', async () => {
    const samples = join(projectRoot(), 'docker', 'samples');
    const input = {
      image: dataUri('image/png', readFileSync(join(samples, 'reference.png'))),
      video: dataUri('video/mp4', readFileSync(join(samples, 'dance.mp4'))),
      width: 128,
      height: 128,
      frames: 10,
      steps: 3,
      fps: 8,
      seed: 5,
      prompt: 'a person dancing',
    };
    const r = await fetch(`${base}/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
    const { id } = (await r.json()) as { id: string };
    const messages: string[] = [];
    let status = '';
    for (let i = 0; i < 20_000 && !['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(status); i++) {
      const s = (await (await fetch(`${base}/stream/${id}`)).json()) as { status: string; stream: Array<{ output: { message?: string } }> };
      status = s.status;
      for (const x of s.stream) if (x.output.message) messages.push(x.output.message);
      await new Promise((res) => setTimeout(res, 100));
    }
    const done = (await (await fetch(`${base}/status/${id}`)).json()) as { status: string; error?: string; output: { video: { data: string }; seed: number } };
    expect(done.error).toBeUndefined();
    expect(done.status).toBe('COMPLETED');
    expect(messages.filter((m) => m.startsWith('step '))).toEqual(expect.arrayContaining(['step 1/3', 'step 2/3', 'step 3/3']));
    expect(done.output.seed).toBe(5);
    expect(probe(Buffer.from(done.output.video.data, 'base64'), dir)).toEqual({ codec: 'h264', width: 128, height: 128, frames: 9 });
  }, 1_800_000);
});
