/** The job API names every bad field of a job at once (submission check and the handler alike). */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDanceHandler } from '../../../src/job/handler.js';
import type { JobContext } from '../../../src/serverless/jobs.js';
import { InputError } from '../../../src/job/media.js';
import { danceGlue, fitFramesToVideo } from '../../../src/job/pipeline-glue.js';
import { resolveParams, windowCount } from '../../../src/comfy/params.js';

const work = mkdtempSync(join(tmpdir(), 'sd-job-input-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('job input errors', () => {
  it('the local API check (400) lists every bad parameter, not only the first', async () => {
    const glue = await danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: {} });
    const msg = glue.validate({ image: 'aGVsbG8=', video: 'aGVsbG8=', width: 100, frames: 'many', preset: 'turbo', steps: 0 })!;
    expect(msg).toMatch(/^width: width must be a multiple of 16/);
    expect(msg).toContain('frames: frames must be a number');
    expect(msg).toMatch(/preset: /);
    expect(msg).toContain('steps: steps must be at least 1');
  });

  it('media and parameters together: both media fields missing and a bad parameter are all named', async () => {
    const glue = await danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: {} });
    const msg = glue.validate({ width: 500, stpes: 4 })!;
    expect(msg).toContain('image: is required');
    expect(msg).toContain('video: is required');
    expect(msg).toContain('width: width must be a multiple of 16');
    expect(msg).toMatch(/stpes/); // the unknown field too
    expect(glue.validate({ image: 'aGVsbG8=', video: 'aGVsbG8=', width: 512 })).toBeUndefined();
  });

  it('the handler (RunPod queue) fails the job with every bad parameter before fetching any media', async () => {
    const glue = await danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: {} });
    const handler = createDanceHandler({ comfy: glue.comfy, resolve: glue.resolve, fill: glue.fill, workDir: work });
    const ctx = { id: 'j1', signal: new AbortController().signal } as unknown as JobContext;
    const err = await handler({ image: 'https://example.invalid/a.png', video: 'https://example.invalid/b.mp4', height: 8, fps: 0, variant: 'gguf-q6_k' }, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    const m = (err as Error).message;
    expect(m).toContain('height: height must be at least 64');
    expect(m).toContain('fps: fps must be > 0');
    expect(m).toContain('variant: variant must be one of fp8, fp16 (got "gguf-q6_k")');
  });
});

describe('job output: the parameters as run', () => {
  const samples = join(process.cwd(), 'docker', 'samples');
  const b64 = (f: string) => readFileSync(join(samples, f)).toString('base64');
  // ComfyUI's part (real in test/e2e): this port records the workflow and returns some bytes
  const recording = () => {
    const workflows: Record<string, unknown>[] = [];
    const comfy = {
      upload: async (_p: string, name: string) => name,
      run: async (wf: Record<string, unknown>) => {
        workflows.push(wf);
        return Buffer.from('not really an mp4');
      },
    };
    return { comfy, workflows };
  };
  const ctx = (id: string) => ({ id, signal: new AbortController().signal, progress: () => {}, ready: async () => {} }) as unknown as JobContext;

  it.each([
    [{ frames: 30 }, { frames: 29, windows: 1, adjusted: ['frames 30 → 29'] }],
    [
      { frames: 161, window: { length: 80, overlap: 18 } },
      { frames: 161, adjusted: ['window.length 80 → 81', 'window.overlap 18 → 20'] },
    ],
  ])('%j: the output says what was rounded and how many windows ran', async (asked, expected) => {
    const glue = await danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: {} });
    const { comfy, workflows } = recording();
    const handler = createDanceHandler({ comfy, resolve: glue.resolve, fill: glue.fill, workDir: work });
    const out = (await handler({ image: b64('reference.png'), video: b64('dance.mp4'), width: 128, height: 128, ...asked }, ctx(`j-${asked.frames}`))) as {
      ran: { frames: number; windows: number; adjusted: string[] };
    };
    expect(out.ran).toMatchObject(expected);
    expect(out.ran.windows).toBeGreaterThanOrEqual(1);
    if (asked.frames > 81) expect(out.ran.windows).toBeGreaterThan(1);
    expect(workflows).toHaveLength(1);
  });
});

describe('frames against the driving video', () => {
  const resolve = (frames: number) => resolveParams({ frames });
  it('a count the 4n+1 rounding took past the clip is brought back within it, and adjusted says so', () => {
    const asked = resolve(480); // → 481 by the rule; the clip has 480
    expect(asked.frames).toBe(481);
    const before = structuredClone(asked);
    const p = fitFramesToVideo(asked, 480);
    expect(p).toMatchObject({ frames: 477, windows: windowCount(477, p.windowLength, p.windowOverlap) });
    expect(p.adjusted).toEqual(["frames 480 → 477 (4n+1 within the driving video's 480 frames)"]);
    expect(asked).toEqual(before); // the caller's object is not changed
  });
  it('within the clip: unchanged (also when the asked count rounds down onto the clip length)', () => {
    const p = fitFramesToVideo(resolve(10), 9); // → 9
    expect(p).toMatchObject({ frames: 9, adjusted: ['frames 10 → 9'] });
  });
  it('more frames asked for than the clip has is the caller error, naming both counts', () => {
    expect(() => fitFramesToVideo(resolve(482), 480)).toThrow(/482 frames asked for, but the driving video has only 480/);
    expect(() => fitFramesToVideo(resolve(5), 3)).toThrow(InputError);
  });
});
