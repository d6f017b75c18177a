/**
 * `steadydancer generate` through the CLI against the local API on loopback (handlers here stand
 * in for ComfyUI; the dance e2e runs the real one). Covers base64 and s3_url results, progress,
 * failures, the RunPod endpoint form and bad usage.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { createApi, listen } from '../../src/serverless/api.js';
import { resolveEndpoint } from '../../src/serverless/client.js';
import { JobQueue, type JobHandler } from '../../src/serverless/jobs.js';
import { memoryLogger } from '../../src/util/logger.js';

const VIDEO = Buffer.from('\x00\x00\x00\x18ftypisom fake mp4 payload for the client test');
let dir: string;
let api: Server;
let blob: Server;
let apiUrl = '';
let blobUrl = '';
const seen: unknown[] = [];

const handler: JobHandler = async (input, ctx) => {
  // the test steers the fake job by its prompt (a real job field: generate checks the job schema before sending)
  const i = input as { image: string; video: string; prompt?: string; frames?: number };
  seen.push(i);
  for (let s = 1; s <= 3; s++) {
    ctx.progress({ stage: 'sampling', step: s, total: 3, percent: Math.round((s * 100) / 3), message: `step ${s}/3` });
    await new Promise((r) => setTimeout(r, 30));
  }
  if (i.prompt === 'mode fail') throw new Error('video: has 3000 frames; at most 2000 are accepted');
  if (i.prompt === 'mode s3') return { video: { type: 's3_url', data: `${blobUrl}/result.mp4?X-Amz-Signature=abc`, mime: 'video/mp4' }, seed: 5, timings: {} };
  return { video: { type: 'base64', data: VIDEO.toString('base64'), mime: 'video/mp4' }, seed: 42, timings: { total_ms: 90 } };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sd-gen-'));
  writeFileSync(join(dir, 'ref.png'), Buffer.from('\x89PNG fake'));
  writeFileSync(join(dir, 'dance.mp4'), Buffer.from('fake video'));
  const queue = new JobQueue({ handler, logger: memoryLogger() });
  api = createApi({ queue, apiKey: 'gen-test-key' });
  apiUrl = (await listen(api, 0, '127.0.0.1')).url;
  blob = createServer((req, res) => {
    if (req.url?.startsWith('/result.mp4')) res.writeHead(200, { 'content-type': 'video/mp4' }).end(VIDEO);
    else res.writeHead(403).end();
  });
  await new Promise<void>((r) => blob.listen(0, '127.0.0.1', r));
  blobUrl = `http://127.0.0.1:${(blob.address() as AddressInfo).port}`;
});
afterAll(async () => {
  api.closeAllConnections();
  await new Promise<void>((r) => api.close(() => r()));
  await new Promise<void>((r) => blob.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const errStream = { write: (s: string) => (err.push(s), true), isTTY: false } as unknown as NodeJS.WritableStream;
  return runCli(args, { out: (s) => void out.push(s), err: errStream, env: { STEADYDANCER_API_URL: apiUrl, STEADYDANCER_API_KEY: 'gen-test-key', ...env }, cwd: dir }).then((code) => ({
    code,
    out: out.join('\n'),
    err: err.join(''),
  }));
}

describe('steadydancer generate', () => {
  it('sends the files as data URIs with the parameters, shows progress, writes the base64 mp4', async () => {
    const r = await cli(['generate', '--image', 'ref.png', '--video', 'dance.mp4', '--set', 'frames=33', '--set', 'prompt=a dancer', '--seed', '42', '--out', 'a.mp4', '--poll-ms', '20']);
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'a.mp4'))).toEqual(VIDEO);
    expect(r.out).toMatch(/wrote .*a\.mp4 \(\d+ bytes, from base64; seed 42; job /);
    expect(r.err).toMatch(/sampling: step \d\/3/);
    const sent = seen.at(-1) as Record<string, unknown>;
    expect(sent.image).toBe(`data:image/png;base64,${Buffer.from('\x89PNG fake').toString('base64')}`);
    expect(String(sent.video)).toMatch(/^data:video\/mp4;base64,/);
    expect(sent).toMatchObject({ frames: 33, prompt: 'a dancer', seed: 42 });
  });

  it('downloads an s3_url result; --json prints the summary', async () => {
    const r = await cli(['generate', '--image', 'ref.png', '--video', 'https://cdn.example.com/d.mp4', '--set', 'prompt=mode s3', '--out', 'b.mp4', '--poll-ms', '20', '--json']);
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'b.mp4'))).toEqual(VIDEO);
    expect(JSON.parse(r.out)).toMatchObject({ status: 'COMPLETED', source: 's3_url', seed: 5, bytes: VIDEO.length });
    expect((seen.at(-1) as Record<string, unknown>).video).toBe('https://cdn.example.com/d.mp4');
  });

  it('a failed job is an error with the job’s message', async () => {
    const r = await cli(['generate', '--image', 'ref.png', '--video', 'dance.mp4', '--set', 'prompt=mode fail', '--poll-ms', '20']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/job .* FAILED: video: has 3000 frames/);
  });

  it.each([
    [['generate', '--video', 'dance.mp4'], /required option '--image <file\|url>' not specified/],
    [['generate', '--image', 'ref.png'], /required option '--video <file\|url>' not specified/],
    [['generate', '--image', 'nope.png', '--video', 'dance.mp4'], /--image .*nope\.png: cannot read the file \(ENOENT\)/],
    [['generate', '--image', 'ref.png', '--video', 'dance.mp4', '--params', '[1]'], /option '--params <json>' argument '\[1\]' is invalid. not a JSON object \(got an array\)/],
    [['generate', '--image', 'ref.png', '--video', 'dance.mp4', '--set', 'oops'], /option '--set <key=value>' argument 'oops' is invalid. expected key=value/],
    [['generate', '--image', 'ref.png', '--video', 'dance.mp4', '--seed', '-3'], /option '--seed <n>' argument '-3' is invalid. expected a whole number/],
    [['generate', '--image', 'ref.png', '--video', 'dance.mp4', '--endpoint', 'bad id!'], /expected "local", a RunPod endpoint id/],
  ])('bad usage %j', async (args, msg) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
  });

  it('a wrong key is refused clearly', async () => {
    const r = await cli(['generate', '--image', 'ref.png', '--video', 'dance.mp4'], { STEADYDANCER_API_KEY: 'wrong' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/refused the API key \(HTTP 401\)/);
  });

  it('an unreachable local API says how to start it', async () => {
    const r = await cli(['generate', '--image', 'ref.png', '--video', 'dance.mp4'], { STEADYDANCER_API_URL: 'http://127.0.0.1:9' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
    expect(r.err).toMatch(/steadydancer serve/);
  });

  it('a RunPod endpoint id maps to api.runpod.ai with the Bearer key, and needs RUNPOD_API_KEY', async () => {
    expect(resolveEndpoint('abc123xyz', { RUNPOD_API_KEY: 'rp-key' })).toEqual({ base: 'https://api.runpod.ai/v2/abc123xyz', apiKey: 'rp-key', kind: 'runpod' });
    const r = await cli(['generate', '--image', 'ref.png', '--video', 'dance.mp4', '--endpoint', 'abc123xyz']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/RUNPOD_API_KEY is not set/);
    // the same client speaks to a RunPod-style base: the local API answers /v2/<id>/… too
    const viaV2 = await cli(['generate', '--image', 'ref.png', '--video', 'dance.mp4', '--endpoint', 'abc123xyz', '--out', 'c.mp4', '--poll-ms', '20'], {
      RUNPOD_API_KEY: 'gen-test-key',
      RUNPOD_API_BASE: `${apiUrl}/v2`,
    });
    expect(viaV2.code).toBe(0);
    expect(readFileSync(join(dir, 'c.mp4'))).toEqual(VIDEO);
  });
});
