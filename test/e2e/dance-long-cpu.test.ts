/**
 * A long dance video end to end on CPU: the job's `window` group makes ComfyUI sample the latent
 * in three overlapping context windows (the pack's SteadyDancerContextWindows node in the real API
 * template, filled by fillWorkflow), with the same real loaders, tiny random-weight models and
 * native ComfyUI as dance-cpu.test.ts; the mp4 must have every frame asked for.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComfyClient } from '../../src/comfy/client.js';
import type { NativeComfy } from '../../src/comfy/native.js';
import { findVideo } from '../../src/comfy/outputs.js';
import { resolveParams } from '../../src/comfy/params.js';
import { fillWorkflow, loadTemplate } from '../../src/comfy/workflow.js';
import { projectRoot } from '../../src/util/paths.js';
import { startTestComfy } from '../helpers/comfy.js';
import { needs } from '../helpers/skips.js';
import { ensureTinyModels, tinyModelsSkipReason } from '../helpers/tiny-models.js';

const samples = join(projectRoot(), 'docker', 'samples');
const skip = needs('long dance video (context windows) end to end on CPU', tinyModelsSkipReason());

describe.skipIf(skip)('long dance video in context windows, end to end on CPU (native ComfyUI)', () => {
  let comfy: NativeComfy;
  let client: ComfyClient;
  beforeAll(async () => {
    const m = ensureTinyModels();
    comfy = await startTestComfy({ modelsDir: m.modelsDir, env: { STEADYDANCER_TEXT_CACHE: m.textCacheDir } });
    client = new ComfyClient({ url: comfy.url });
    await client.upload(join(samples, 'reference.png'));
    await client.upload(join(samples, 'dance.mp4'));
  }, 1_800_000);
  afterAll(async () => comfy?.stop());

  it('33 frames in windows of 13 overlapping by 4: three windows, an mp4 of 33 frames', async () => {
    const params = resolveParams({ width: 64, height: 64, frames: 34, steps: 2, fps: 8, seed: 3, window: { length: 12, overlap: 3, fuse: 'pyramid' } });
    expect(params).toMatchObject({ frames: 33, windowLength: 13, windowOverlap: 4, windows: 3 });
    expect(params.adjusted).toEqual(['frames 34 → 33', 'window.length 12 → 13', 'window.overlap 3 → 4']);
    const wf = fillWorkflow(loadTemplate(), params, { image: 'reference.png', video: 'dance.mp4', outputPrefix: 'e2e/long' });
    const r = await client.run(wf).catch((e) => {
      throw new Error(`${(e as Error).message}\n--- ComfyUI log ---\n${comfy.logTail(60)}`);
    });
    const v = findVideo(r.outputs);
    expect(v?.filename).toMatch(/\.mp4$/);
    const probe = JSON.parse(
      execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', '-'], {
        input: await client.view(v!),
      }).toString(),
    ).streams[0];
    expect(probe).toMatchObject({ codec_name: 'h264', width: 64, height: 64, nb_read_frames: '33' });
    // core's handler logs each windowed evaluation: 4 latent frames per window for 9 latent frames
    const log = readFileSync(comfy.logFile, 'utf8');
    expect(log).toContain('Using context windows 4 for 9 frames.');
  }, 1_200_000);
});
