/**
 * Result building: the payload limits, and S3 upload against a real S3-compatible server on
 * loopback — moto's server (PyPI `moto[server]`, in requirements-dev.txt) started by the test.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOutput, OutputTooLargeError, RUN_LIMIT_BYTES, RUNSYNC_LIMIT_BYTES, s3ConfigFromEnv, serializedSize } from '../../src/job/output.js';
import { needs } from '../helpers/skips.js';
import { motoServer, startMoto } from '../helpers/moto.js';

describe('payload limits (no S3)', () => {
  const meta = { seed: 7, timings: { total_ms: 1 } };
  it('a small video comes back as base64', async () => {
    const mp4 = Buffer.from('not really an mp4 but bytes');
    const out = await buildOutput(mp4, meta, { jobId: 'j1', limitBytes: RUN_LIMIT_BYTES });
    expect(out.video.type).toBe('base64');
    expect(Buffer.from(out.video.data, 'base64')).toEqual(mp4);
    expect(out.video.mime).toBe('video/mp4');
    expect(out.seed).toBe(7);
  });
  it('a result over the /run limit fails with advice, never an oversized result', async () => {
    // 8 MB of video is ~10.7 MB as base64: over /run's 10 MB, under /runsync's 20 MB.
    const mp4 = Buffer.alloc(8 * 1024 * 1024, 1);
    const err = await buildOutput(mp4, meta, { jobId: 'j2', limitBytes: RUN_LIMIT_BYTES }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputTooLargeError);
    expect((err as Error).message).toMatch(/10\.7 MB as base64 JSON, over RunPod's 10\.0 MB payload limit; configure S3 \(BUCKET_ENDPOINT_URL/);
    const ok = await buildOutput(mp4, meta, { jobId: 'j2', limitBytes: RUNSYNC_LIMIT_BYTES });
    expect(serializedSize(ok)).toBeLessThanOrEqual(RUNSYNC_LIMIT_BYTES);
    expect(serializedSize(ok)).toBeGreaterThan(RUN_LIMIT_BYTES);
  });
  it('the limit is measured on the serialized JSON, not the raw bytes', async () => {
    // raw bytes just under the limit, base64 JSON over it
    const mp4 = Buffer.alloc(Math.floor(RUN_LIMIT_BYTES * 0.8), 2);
    await expect(buildOutput(mp4, meta, { jobId: 'j3', limitBytes: RUN_LIMIT_BYTES })).rejects.toThrow(OutputTooLargeError);
  });
});

describe('S3 settings from the environment', () => {
  it('bucket from the endpoint path', () => {
    expect(s3ConfigFromEnv({ BUCKET_ENDPOINT_URL: 'https://s3.eu-west-1.amazonaws.com/my-bucket', BUCKET_ACCESS_KEY_ID: 'a', BUCKET_SECRET_ACCESS_KEY: 'b' })).toMatchObject({
      endpoint: 'https://s3.eu-west-1.amazonaws.com',
      bucket: 'my-bucket',
      region: 'eu-west-1',
    });
  });
  it('bucket from a virtual-hosted endpoint', () => {
    expect(s3ConfigFromEnv({ BUCKET_ENDPOINT_URL: 'https://clips.s3.us-east-2.amazonaws.com', BUCKET_ACCESS_KEY_ID: 'a', BUCKET_SECRET_ACCESS_KEY: 'b' })).toMatchObject({
      endpoint: 'https://s3.us-east-2.amazonaws.com',
      bucket: 'clips',
      region: 'us-east-2',
    });
  });
  it('BUCKET_NAME wins; no endpoint means no S3; missing keys are an error', () => {
    expect(s3ConfigFromEnv({ BUCKET_ENDPOINT_URL: 'https://r2.example.com/x', BUCKET_NAME: 'y', BUCKET_ACCESS_KEY_ID: 'a', BUCKET_SECRET_ACCESS_KEY: 'b' })?.bucket).toBe('y');
    expect(s3ConfigFromEnv({})).toBeUndefined();
    expect(() => s3ConfigFromEnv({ BUCKET_ENDPOINT_URL: 'https://r2.example.com/x' })).toThrow(/BUCKET_ACCESS_KEY_ID/);
  });
});

const skipS3 = needs('serverless S3 upload (moto)', existsSync(motoServer) ? undefined : `${motoServer} is missing: install moto[server] into the venv (comfyui-steadydancer/requirements-dev.txt)`);

describe.skipIf(skipS3)('S3 upload against moto on loopback', () => {
  let moto: Awaited<ReturnType<typeof startMoto>>;
  beforeAll(async () => {
    moto = await startMoto();
  }, 180_000);
  afterAll(() => {
    moto?.proc.kill('SIGTERM');
  });

  it('uploads the video and returns a presigned URL that serves the same bytes', async () => {
    const mp4 = Buffer.alloc(300_000, 5);
    mp4.write('ftypisom', 4);
    const out = await buildOutput(mp4, { seed: 1, timings: {} }, { jobId: 'job-s3', limitBytes: RUN_LIMIT_BYTES, s3: moto.cfg });
    expect(out.video.type).toBe('s3_url');
    expect(out.video.data).toContain('/dance-results/job-s3/steadydancer.mp4');
    expect(out.video.data).toContain('X-Amz-Signature=');
    expect(out.timings.upload_ms).toBeGreaterThanOrEqual(0);
    const r = await fetch(out.video.data);
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer())).toEqual(mp4);
  });

  it('a video over the payload limit goes to S3 instead of failing', async () => {
    const mp4 = Buffer.alloc(12 * 1024 * 1024, 3);
    const out = await buildOutput(mp4, { seed: 1, timings: {} }, { jobId: 'job-big', limitBytes: RUN_LIMIT_BYTES, s3: moto.cfg });
    expect(out.video.type).toBe('s3_url');
    expect(serializedSize(out)).toBeLessThan(10_000);
    const r = await fetch(out.video.data);
    expect((await r.arrayBuffer()).byteLength).toBe(mp4.length);
  });

  it('a missing bucket fails clearly', async () => {
    // moto accepts any key by default; a missing bucket is the error it can give us.
    await expect(buildOutput(Buffer.alloc(10), { seed: 1, timings: {} }, { jobId: 'x', limitBytes: RUN_LIMIT_BYTES, s3: { ...moto.cfg, bucket: 'no-such-bucket' } })).rejects.toThrow(/bucket/i);
  });
});
