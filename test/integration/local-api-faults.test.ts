/**
 * `serve`'s queue and HTTP server under the faults of issue #11 (real HTTP on loopback): a cancel
 * of the queue's head while ComfyUI is not ready, a flood of jobs, bad inputs while ComfyUI is
 * still starting, slow clients, and /purge-queue.
 */
import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../src/comfy/native.js';
import { createApi, listen, type ApiOptions } from '../../src/serverless/api.js';
import { executeJob, JobQueue, type QueueOptions } from '../../src/serverless/jobs.js';
import { createService, type Service } from '../../src/serverless/service.js';
import { memoryLogger } from '../../src/util/logger.js';
import { stepper } from '../helpers/stepper.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A readiness gate: ComfyUI "starts" when open() is called. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, wait: (signal: AbortSignal) => Promise.race([opened, new Promise<void>((_, rej) => signal.addEventListener('abort', () => rej(signal.reason as Error), { once: true }))]) };
}

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function serve(q: Partial<QueueOptions> = {}, api: Partial<ApiOptions> = {}) {
  const queue = new JobQueue({ handler: stepper, logger: memoryLogger(), graceMs: 1000, ...q });
  const server: Server = createApi({ queue, ...api });
  const { url, port } = await listen(server, 0, '127.0.0.1');
  cleanup.push(async () => {
    await queue.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(url + path, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  return { queue, server, url, port, call };
}

describe('the job queue', () => {
  it('cancelling the head of the queue while ComfyUI is not ready removes that job, not another', async () => {
    const g = gate();
    const { queue, call } = await serve({ beforeJob: g.wait });
    const ids: string[] = [];
    for (const n of [1, 2, 3]) ids.push((await call('POST', '/run', { input: { steps: 1, n } })).body.id as string);
    await sleep(50);
    expect((await call('POST', `/cancel/${ids[0]}`)).body).toEqual({ id: ids[0], status: 'CANCELLED' });
    g.open();
    expect((await queue.waitFor(ids[1]!, 10_000))?.status).toBe('COMPLETED');
    expect((await queue.waitFor(ids[2]!, 10_000))?.status).toBe('COMPLETED');
    expect(queue.get(ids[0]!)?.status).toBe('CANCELLED');
    expect(queue.health().jobs).toMatchObject({ completed: 2, failed: 0, cancelled: 1, inQueue: 0, inProgress: 0 });
  });

  it('MAX_QUEUE: past the cap /run and /runsync answer 429 with a body that says why', async () => {
    const g = gate();
    const { call } = await serve({ beforeJob: g.wait, maxQueue: 3 });
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await call('POST', '/run', { input: { steps: 1 } }));
    // one job is taken by the runner (waiting for ComfyUI), three wait in the queue
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 429, 429]);
    expect(answers[4]!.body.error).toMatch(/queue is full.*3 jobs waiting.*MAX_QUEUE/);
    expect((await call('POST', '/runsync', { input: { steps: 1 } })).status).toBe(429);
    g.open();
  });

  it('a job that fails before reaching ComfyUI is released at once: a later abort does not rewrite its error', async () => {
    const later = new AbortController();
    const outcome = await executeJob(
      async () => {
        setTimeout(() => later.abort(new Error('ComfyUI exited')), 300);
        throw new Error('image: not a PNG, JPEG or WebP');
      },
      { id: 'bad', input: {} },
      { logger: memoryLogger(), abort: later.signal },
    );
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'image: not a PNG, JPEG or WebP' });
  });

  it('a bad input fails while ComfyUI is still starting (the readiness wait is not in front of the input checks)', async () => {
    const port = await freePort(); // nothing listens: ComfyUI "is starting" for the whole test
    const workDir = mkdtempSync(join(tmpdir(), 'sd-faults-'));
    const svc: Service = await createService({ comfyUrl: `http://127.0.0.1:${port}`, comfyCommand: [], readyTimeoutMs: 600_000, workDir, env: {}, logger: memoryLogger() });
    cleanup.push(() => rmSync(workDir, { recursive: true, force: true }));
    const { queue } = await serve({ handler: svc.handler, beforeJob: svc.ready, runningAbort: svc.crashSignal });
    const bad = { image: `data:image/png;base64,${Buffer.from('this is not a png at all').toString('base64')}`, video: `data:video/mp4;base64,${Buffer.from('nor an mp4').toString('base64')}` };
    const ids = [queue.submit(bad, { delivery: 'run' }).id, queue.submit(bad, { delivery: 'run' }).id];
    for (const id of ids) {
      const rec = await queue.waitFor(id, 20_000);
      expect(rec?.status).toBe('FAILED');
      expect(rec?.error).toMatch(/^image: /);
    }
  });
});

describe('the HTTP server against slow clients', () => {
  const opts: Partial<ApiOptions> = { headersTimeoutMs: 500, requestTimeoutMs: 1500, bodyIdleTimeoutMs: 500 };
  /** Resolves with what the server sent once it closes the socket; rejects after `ms`. */
  const closed = (s: Socket, ms: number) =>
    new Promise<string>((resolve, reject) => {
      let got = '';
      s.on('data', (b) => (got += b.toString()));
      const t = setTimeout(() => reject(new Error(`the server still holds the connection after ${ms} ms`)), ms);
      s.on('close', () => (clearTimeout(t), resolve(got)));
      s.on('error', () => undefined);
    });
  const open = (port: number) =>
    new Promise<Socket>((r) => {
      const s = connect(port, '127.0.0.1', () => r(s));
    });

  it('a client that never finishes its headers is dropped (slowloris)', async () => {
    const { port } = await serve({}, opts);
    const socks = await Promise.all(Array.from({ length: 20 }, () => open(port)));
    for (const s of socks) s.write('POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n');
    const t = setInterval(() => socks.forEach((s) => s.writable && s.write('X-a: b\r\n')), 200);
    try {
      await Promise.all(socks.map((s) => closed(s, 8000)));
    } finally {
      clearInterval(t);
      socks.forEach((s) => s.destroy());
    }
  });

  it('a body that stops arriving gets a 408 and the connection is closed', async () => {
    const { port } = await serve({}, opts);
    const s = await open(port);
    s.write('POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inp');
    const got = await closed(s, 8000);
    expect(got).toMatch(/^HTTP\/1\.1 408/);
    expect(got).toMatch(/the request body/);
  });

  it('an endless chunked body is cut off by the request timeout', async () => {
    const { port } = await serve({}, opts);
    const s = await open(port);
    s.write('POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    const t = setInterval(() => s.writable && s.write('1\r\n \r\n'), 100);
    try {
      const got = await closed(s, 8000);
      expect(got).toMatch(/^HTTP\/1\.1 408|^$/);
    } finally {
      clearInterval(t);
      s.destroy();
    }
  });
});

describe('POST /purge-queue', () => {
  it('removes the queued jobs, leaves the running one, and answers as RunPod does', async () => {
    const { queue, call } = await serve();
    const running = (await call('POST', '/run', { input: { steps: 30, delayMs: 20 } })).body.id as string;
    await sleep(50);
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push((await call('POST', '/run', { input: { steps: 1 } })).body.id as string);
    const r = await call('POST', '/purge-queue');
    expect(r).toEqual({ status: 200, body: { removed: 3, status: 'completed' } });
    expect(queue.health().jobs.inQueue).toBe(0);
    expect((await queue.waitFor(running, 10_000))?.status).toBe('COMPLETED');
    for (const id of queued) expect(queue.get(id)?.status).toBe('CANCELLED');
    expect((await call('GET', '/purge-queue')).status).toBe(405);
  });
});
