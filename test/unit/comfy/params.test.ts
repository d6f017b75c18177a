import { describe, expect, it } from 'vitest';
import { DanceParams, ParamsError, resolveParams, roundFrames, roundOverlap, defaultShift, windowCount } from '../../../src/comfy/params.js';

describe('frames rule: nearest 4n+1, ties up, minimum 5', () => {
  it.each([
    [30, 29],
    [31, 33], // tie between 29 and 33 goes up
    [32, 33],
    [33, 33],
    [34, 33],
    [35, 37], // tie
    [81, 81],
    [80, 81],
    [79, 81], // tie between 77 and 81
  ])('%i → %i', (asked, want) => {
    expect(roundFrames(asked)).toBe(want);
    expect((roundFrames(asked) - 1) % 4).toBe(0);
  });
  it('never goes above 1997, the largest 4n+1 of a 2000-frame video', () => {
    expect(roundFrames(1997)).toBe(1997);
    expect(roundFrames(1999)).toBe(1997); // the tie would go up to 2001
    expect(roundFrames(2000)).toBe(1997);
  });
  it('never goes below 5', () => {
    expect(roundFrames(1)).toBe(5);
    expect(roundFrames(4)).toBe(5);
  });
  it('every result is 4n+1 and within 2 of the request', () => {
    for (let n = 5; n < 300; n++) {
      const r = roundFrames(n);
      expect((r - 1) % 4).toBe(0);
      expect(Math.abs(r - n)).toBeLessThanOrEqual(2);
    }
  });
});

describe('resolveParams', () => {
  it('applies the fast preset by default and reports the rounding', () => {
    const p = resolveParams({ width: 512, height: 512, frames: 30, seed: 7 });
    expect(p).toMatchObject({
      width: 512,
      height: 512,
      frames: 29,
      framesRequested: 30,
      steps: 4,
      cfg: 1,
      poseCfg: 0,
      shift: 5,
      seed: 7,
      seedWasRandom: false,
      lora: true,
      sampler: 'euler',
      variant: 'fp8',
    });
  });
  it('quality preset: official defaults, shift 3 at 832×480', () => {
    const p = resolveParams({ preset: 'quality', width: 832, height: 480, seed: 1 });
    expect(p).toMatchObject({ steps: 40, cfg: 5, poseCfg: 1.5, poseStart: 0.1, poseEnd: 0.4, shift: 3, lora: false, sampler: 'flow_unipc_bh2', scheduler: 'flow_unipc_official' });
    expect(resolveParams({ preset: 'quality', width: 512, height: 512, seed: 1 }).shift).toBe(5);
    expect(defaultShift(480, 832)).toBe(3);
  });
  it('explicit values win over the preset', () => {
    const p = resolveParams({ steps: 8, cfg: 2.5, shift: 7, pose: { cfg: 1 }, seed: 3 });
    expect(p).toMatchObject({ steps: 8, cfg: 2.5, shift: 7, poseCfg: 1 });
  });
  it('draws a seed when absent and says so', () => {
    const p = resolveParams({}, () => 12345);
    expect(p).toMatchObject({ seed: 12345, seedWasRandom: true });
    const q = resolveParams({});
    expect(Number.isSafeInteger(q.seed)).toBe(true);
  });
  it.each([
    [{ width: 500 }, 'width', 'multiple of 16'],
    [{ height: 32 }, 'height', 'at least 64'],
    [{ width: 4096 }, 'width', 'at most 2048'],
    [{ frames: 0 }, 'frames', 'at least 1'],
    [{ frames: 2.5 }, 'frames', 'integer'],
    [{ fps: 0 }, 'fps', '> 0'],
    [{ steps: 0 }, 'steps', 'at least 1'],
    [{ seed: -1 }, 'seed', '>= 0'],
    [{ variant: 'q4' }, 'variant', ''],
    [{ preset: 'turbo' }, 'preset', ''],
    [{ pose: { start: 0.5, end: 0.2 } }, 'pose.start', 'must not exceed'],
    [{ widht: 512 }, '(params)', 'widht'],
    [{ width: '512' }, 'width', 'number'],
  ])('rejects %j naming %s', (input, field, text) => {
    try {
      resolveParams(input);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ParamsError);
      const e = err as ParamsError;
      const hit = e.issues.find((i) => i.path === field);
      expect(hit, JSON.stringify(e.issues)).toBeTruthy();
      expect(e.message).toContain(text);
    }
  });
  it('long videos: frames up to 2000, the window group with its defaults and its rounding reported', () => {
    const d = resolveParams({ seed: 1 });
    expect(d).toMatchObject({ frames: 81, windowLength: 81, windowOverlap: 16, windowFuse: 'pyramid', windows: 1, adjusted: [] });
    const p = resolveParams({ frames: 482, window: { length: 80, overlap: 18, fuse: 'overlap-linear' }, seed: 1 });
    expect(p).toMatchObject({ frames: 481, windowLength: 81, windowOverlap: 20, windowFuse: 'overlap-linear' });
    expect(p.adjusted).toEqual(['frames 482 → 481', 'window.length 80 → 81', 'window.overlap 18 → 20']);
    expect(resolveParams({ frames: 2000, seed: 1 }).frames).toBe(1997);
    expect(roundOverlap(2)).toBe(4);
    expect(roundOverlap(1)).toBe(0);
  });
  it('window count: the static schedule of the pack (one window while the video fits)', () => {
    // the same layouts as the pack's test_window_layout_in_frames (context_windows.frame_windows)
    expect(windowCount(81, 81, 16)).toBe(1);
    expect(windowCount(61, 81, 16)).toBe(1);
    expect(windowCount(85, 81, 16)).toBe(2);
    expect(windowCount(161, 81, 16)).toBe(3);
    expect(windowCount(481, 81, 16)).toBe(7);
    expect(windowCount(33, 13, 4)).toBe(3);
  });
  it.each([
    [{ frames: 2001 }, 'frames', 'at most 2000'],
    [{ window: { length: 3 } }, 'window.length', 'at least 5'],
    [{ window: { overlap: -4 } }, 'window.overlap', '>= 0'],
    [{ window: { length: 33, overlap: 36 } }, 'window.overlap', 'shorter than window.length'],
    [{ window: { fuse: 'max' } }, 'window.fuse', ''],
    [{ window: { size: 81 } }, 'window', 'size'],
  ])('rejects the window/frames input %j naming %s', (input, field, text) => {
    try {
      resolveParams(input);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ParamsError);
      const e = err as ParamsError;
      expect(
        e.issues.find((i) => i.path === field),
        JSON.stringify(e.issues),
      ).toBeTruthy();
      expect(e.message).toContain(text);
    }
  });
  it('the schema is usable on its own (for the job schema)', () => {
    expect(DanceParams.parse({}).frames).toBe(81);
  });
});
