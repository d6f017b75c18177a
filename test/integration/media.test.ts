/** Input decoding and validation with real FFmpeg on real (synthetic) media. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, InputError, prepareMedia, type MediaLimits } from '../../src/job/media.js';
import { needs } from '../helpers/skips.js';
import { b64, dataUri, ffmpegMissing, makeImage, makeVideo } from '../helpers/media.js';

const skip = needs('serverless media validation', ffmpegMissing());

describe.skipIf(skip)('job media validation', () => {
  let dir: string;
  let png: Buffer, jpg: Buffer, webp: Buffer, gif: Buffer, tiny: Buffer, wide: Buffer, mp4: Buffer, long: Buffer;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sd-media-'));
    png = makeImage(dir, 'a.png', 96, 128);
    jpg = makeImage(dir, 'a.jpg', 96, 128);
    webp = makeImage(dir, 'a.webp', 96, 128);
    gif = makeImage(dir, 'a.gif', 96, 128);
    tiny = makeImage(dir, 'tiny.png', 32, 32);
    wide = makeImage(dir, 'wide.png', 5000, 80);
    mp4 = makeVideo(dir, 'a.mp4', 64, 64, 12);
    long = makeVideo(dir, 'long.mp4', 32, 32, 60);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const limits: MediaLimits = { ...DEFAULT_LIMITS, maxVideoFrames: 40, maxVideoSeconds: 3 };
  let n = 0;
  const prep = (image: string, video: string, l: MediaLimits = limits) => prepareMedia({ image, video }, join(dir, `job${n++}`), l);
  const fails = async (p: Promise<unknown>, field: string, msg: RegExp) => {
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).field).toBe(field);
    expect((err as Error).message.startsWith(`${field}: `)).toBe(true);
    expect((err as Error).message).toMatch(msg);
  };

  it.each([
    ['png base64', () => b64(png), 'png', /\.png$/],
    ['jpeg data URI', () => dataUri('image/jpeg', jpg), 'mjpeg', /\.jpg$/],
    ['webp data URI', () => dataUri('image/webp', webp), 'webp', /\.webp$/],
  ])('accepts %s', async (_n, img, codec, ext) => {
    const r = await prep(img(), dataUri('video/mp4', mp4));
    expect(r.image).toEqual({ codec, width: 96, height: 128 });
    expect(r.imagePath).toMatch(ext);
    expect(r.video).toMatchObject({ codec: 'h264', width: 64, height: 64, frames: 12, fps: 16 });
    expect(r.videoPath).toMatch(/\.mp4$/);
  });

  it('image: not base64 and not a URL', () => fails(prep('hello, world!', b64(mp4)), 'image', /neither an http\(s\) URL nor valid base64/));
  it('image: empty', () => fails(prep('', b64(mp4)), 'image', /empty/));
  it('image: a data URI of the wrong type', () => fails(prep(dataUri('text/plain', png), b64(mp4)), 'image', /text\/plain.*image\/\* is expected/));
  it('image: a data URI not in base64', () => fails(prep('data:image/png,abc', b64(mp4)), 'image', /must be base64/));
  it('image: random bytes', () => fails(prep(b64(Buffer.alloc(4000, 3)), b64(mp4)), 'image', /not a (readable image|PNG, JPEG or WebP)/));
  it('image: a truncated PNG', () => fails(prep(b64(png.subarray(0, Math.floor(png.length / 2))), b64(mp4)), 'image', /corrupt|not a readable image/));
  it('image: a GIF', () => fails(prep(b64(gif), b64(mp4)), 'image', /gif, not a PNG, JPEG or WebP/));
  it('image: too small', () => fails(prep(b64(tiny), b64(mp4)), 'image', /32x32; each side must be at least 64/));
  it('image: too large', () => fails(prep(b64(wide), b64(mp4)), 'image', /5000x80; each side must be at most 4096/));
  it('image: a video given as the image', () => fails(prep(b64(mp4), b64(mp4)), 'image', /h264, not a PNG/));
  it('image: over the byte limit', () => fails(prep(b64(png), b64(mp4), { ...limits, maxImageBytes: 100 }), 'image', /larger than the limit of 100 bytes/));
  it('image: a URL to a refused address', () => fails(prep('http://169.254.169.254/x.png', b64(mp4)), 'image', /URL refused: .*metadata/));
  it('video: an image given as the video', () => fails(prep(b64(png), b64(png)), 'video', /still image/));
  it('video: random bytes', () => fails(prep(b64(png), b64(Buffer.alloc(5000, 9))), 'video', /not a readable video/));
  it('video: truncated', () => fails(prep(b64(png), b64(mp4.subarray(0, Math.floor(mp4.length * 0.6)))), 'video', /corrupt|not a readable video|no video frames/));
  it('video: too many frames', () => fails(prep(b64(png), b64(long), { ...limits, maxVideoSeconds: 100 }), 'video', /60 frames; at most 40/));
  it('video: too long', () => fails(prep(b64(png), b64(long), { ...limits, maxVideoFrames: 1000 }), 'video', /3\.8 s long; at most 3 s/));
  it('video: over the byte limit', () => fails(prep(b64(png), b64(mp4), { ...limits, maxVideoBytes: 1000 }), 'video', /larger than the limit/));
  it('video: a URL with a bad scheme', () => fails(prep(b64(png), 'ftp://example.com/v.mp4'), 'video', /URL refused: only http\(s\)/));
});
