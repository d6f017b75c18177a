/**
 * The dance workflow end to end on CPU: random-weight model files in the real formats through
 * the real loaders (tiny SteadyDancer, full-size Wan VAE and CLIP-H, seeded text cache, tiny pose
 * ONNX), the real API template filled by fillWorkflow, a real ComfyUI from the source cache with
 * our node pack, progress over the WebSocket, and an mp4 that ffprobe accepts. A long video too:
 * the job's `window` group makes ComfyUI sample the latent in overlapping context windows (the
 * pack's SteadyDancerContextWindows node in the same template); the mp4 has every frame asked for.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComfyClient, type ComfyEvent } from '../../src/comfy/client.js';
import type { NativeComfy } from '../../src/comfy/native.js';
import { findVideo } from '../../src/comfy/outputs.js';
import { resolveParams } from '../../src/comfy/params.js';
import { fillWorkflow, loadTemplate, nodeTypes } from '../../src/comfy/workflow.js';
import { projectRoot } from '../../src/util/paths.js';
import { startTestComfy } from '../helpers/comfy.js';
import { needs } from '../helpers/skips.js';
import { ensureTinyModels, tinyModelsSkipReason } from '../helpers/tiny-models.js';

const samples = join(projectRoot(), 'docker', 'samples');
const t0 = Date.now();
const trace = (e: ComfyEvent) => {
  if (e.type === 'executing' || e.type === 'progress')
    process.stderr.write(`  [e2e ${((Date.now() - t0) / 1000).toFixed(1)}s] ${e.type} ${e.node ?? ''}${e.type === 'progress' ? ` ${e.value}/${e.max}` : ''}\n`);
};
const skip = needs('dance workflow end to end on CPU', tinyModelsSkipReason());

function probe(bytes: Buffer) {
  const j = JSON.parse(
    execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames,pix_fmt', '-of', 'json', '-'], { input: bytes }).toString(),
  );
  return j.streams[0] as { codec_name: string; width: number; height: number; nb_read_frames: string };
}

describe.skipIf(skip)('dance workflow end to end on CPU (native ComfyUI)', () => {
  let comfy: NativeComfy;
  let client: ComfyClient;
  const template = loadTemplate();
  beforeAll(async () => {
    const m = ensureTinyModels();
    comfy = await startTestComfy({ modelsDir: m.modelsDir, env: { STEADYDANCER_TEXT_CACHE: m.textCacheDir } });
    client = new ComfyClient({ url: comfy.url });
    await client.upload(join(samples, 'reference.png'));
    await client.upload(join(samples, 'dance.mp4'));
  }, 1_800_000);
  afterAll(async () => comfy?.stop());

  it('ComfyUI knows every node type of the workflow', async () => {
    expect(await client.missingNodeTypes(nodeTypes(template))).toEqual([]);
  });

  it('fast preset (LoRA, 3 steps): an mp4 with the asked size and the 4n+1 frame count', async () => {
    const params = resolveParams({ width: 128, height: 128, frames: 10, steps: 3, fps: 8, seed: 5 });
    expect(params.frames).toBe(9);
    const wf = fillWorkflow(template, params, { image: 'reference.png', video: 'dance.mp4', outputPrefix: 'e2e/fast' });
    const events: ComfyEvent[] = [];
    const r = await client.run(wf, { onEvent: (e) => (events.push(e), trace(e)) }).catch((e) => {
      throw new Error(`${(e as Error).message}\n--- ComfyUI log ---\n${comfy.logTail(60)}`);
    });
    const steps = events.filter((e) => e.type === 'progress' && e.node === '20');
    expect(steps.map((e) => (e as { value: number }).value)).toEqual([1, 2, 3]);
    const v = findVideo(r.outputs);
    expect(v?.filename).toMatch(/\.mp4$/);
    const p = probe(await client.view(v!));
    expect(p).toMatchObject({ codec_name: 'h264', width: 128, height: 128, nb_read_frames: '9' });
    // the tiny model is the official one with 2 heads of 64: the loader node read that from the
    // file's metadata (no override in the shipped workflow), not dim / 128 = 1
    expect(readFileSync(comfy.logFile, 'utf8')).toMatch(/SteadyDancer: 2 attention heads \(checkpoint metadata\), dim 128/);
  }, 1_200_000);

  it('quality preset (no LoRA file, three-way guidance, 2 steps) at 160×96', async () => {
    const params = resolveParams({ preset: 'quality', width: 160, height: 96, frames: 5, steps: 2, seed: 9 });
    const wf = fillWorkflow(template, params, { image: 'reference.png', video: 'dance.mp4', outputPrefix: 'e2e/quality' });
    const r = await client.run(wf, { onEvent: trace }).catch((e) => {
      throw new Error(`${(e as Error).message}\n--- ComfyUI log ---\n${comfy.logTail(60)}`);
    });
    const p = probe(await client.view(findVideo(r.outputs)!));
    expect(p).toMatchObject({ codec_name: 'h264', width: 160, height: 96, nb_read_frames: '5' });
  }, 1_200_000);

  it('long video: 33 frames in windows of 13 overlapping by 4 — three windows, an mp4 of 33 frames', async () => {
    const params = resolveParams({ width: 64, height: 64, frames: 34, steps: 2, fps: 8, seed: 3, window: { length: 12, overlap: 3, fuse: 'pyramid' } });
    expect(params).toMatchObject({ frames: 33, windowLength: 13, windowOverlap: 4, windows: 3 });
    expect(params.adjusted).toEqual(['frames 34 → 33', 'window.length 12 → 13', 'window.overlap 3 → 4']);
    const wf = fillWorkflow(template, params, { image: 'reference.png', video: 'dance.mp4', outputPrefix: 'e2e/long' });
    const r = await client.run(wf, { onEvent: trace }).catch((e) => {
      throw new Error(`${(e as Error).message}\n--- ComfyUI log ---\n${comfy.logTail(60)}`);
    });
    const p = probe(await client.view(findVideo(r.outputs)!));
    expect(p).toMatchObject({ codec_name: 'h264', width: 64, height: 64, nb_read_frames: '33' });
    // core's handler logs each windowed evaluation: 4 latent frames per window for 9 latent frames
    expect(readFileSync(comfy.logFile, 'utf8')).toContain('Using context windows 4 for 9 frames.');
  }, 1_200_000);
});
