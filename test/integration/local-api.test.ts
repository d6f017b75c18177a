/** The local API's routes, shapes and states over real HTTP (test handler; dance e2e elsewhere). */
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, listen } from '../../src/serverless/api.js';
import { JobQueue } from '../../src/serverless/jobs.js';
import { memoryLogger } from '../../src/util/logger.js';
import { stepper } from '../helpers/stepper.js';

let server: Server;
let base = '';
let queue: JobQueue;

beforeAll(async () => {
  queue = new JobQueue({ handler: stepper, logger: memoryLogger(), graceMs: 1000 });
  server = createApi({
    queue,
    apiKey: 'local-secret-key',
    validate: (input) => (typeof input === 'object' && input && 'steps' in input ? undefined : 'input.steps: required'),
  });
  base = (await listen(server, 0, '127.0.0.1')).url;
});
afterAll(async () => {
  await queue.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const auth = { authorization: 'Bearer local-secret-key', 'content-type': 'application/json' };
async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = auth) {
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}
async function until(id: string, states: string[]) {
  for (let i = 0; i < 500; i++) {
    const s = await call('GET', `/status/${id}`);
    if (states.includes(s.body.status as string)) return s.body;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`job ${id} never reached ${states.join('|')}`);
}

describe('local API (RunPod routes)', () => {
  it('POST /runsync returns COMPLETED with output, delayTime and executionTime', async () => {
    const r = await call('POST', '/runsync', { input: { steps: 2 } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'COMPLETED', output: { done: 2 } });
    expect(r.body.id).toMatch(/^sync-/);
    expect(typeof r.body.delayTime).toBe('number');
    expect(typeof r.body.executionTime).toBe('number');
  });

  it('POST /run → IN_QUEUE; /status shows progress while IN_PROGRESS, then the output', async () => {
    const r = await call('POST', '/run', { input: { steps: 40, delayMs: 20 } });
    expect(r.body).toEqual({ id: r.body.id, status: 'IN_QUEUE' });
    await until(r.body.id as string, ['IN_PROGRESS']);
    let running: Record<string, unknown> = {};
    for (let i = 0; i < 200 && !running.output; i++) running = (await call('GET', `/status/${r.body.id}`)).body;
    expect(running.status).toBe('IN_PROGRESS');
    expect((running.output as { message: string }).message).toMatch(/^step \d+\/40$/);
    const done = await until(r.body.id as string, ['COMPLETED']);
    expect(done.output).toEqual({ done: 40 });
  });

  it('GET /stream hands out each progress update once, then the output', async () => {
    const r = await call('POST', '/run', { input: { steps: 5, delayMs: 10 } });
    const id = r.body.id as string;
    const seen: unknown[] = [];
    for (let i = 0; i < 500; i++) {
      const s = await call('GET', `/stream/${id}`);
      seen.push(...(s.body.stream as Array<{ output: unknown }>).map((x) => x.output));
      if (s.body.status === 'COMPLETED') break;
      await new Promise((res) => setTimeout(res, 10));
    }
    const msgs = seen.map((o) => (o as { message?: string }).message ?? o);
    expect(msgs).toEqual(['step 1/5', 'step 2/5', 'step 3/5', 'step 4/5', 'step 5/5', { done: 5 }]);
  });

  it('POST /cancel stops a running job (CANCELLED); a queued one too; jobs behind still run', async () => {
    const a = await call('POST', '/run', { input: { steps: 500, delayMs: 20 } });
    const b = await call('POST', '/run', { input: { steps: 500, delayMs: 20 } });
    const c = await call('POST', '/run', { input: { steps: 1 } });
    await until(a.body.id as string, ['IN_PROGRESS']);
    expect((await call('GET', `/status/${b.body.id}`)).body.status).toBe('IN_QUEUE');
    expect((await call('POST', `/cancel/${b.body.id}`)).body).toEqual({ id: b.body.id, status: 'CANCELLED' });
    expect((await call('POST', `/cancel/${a.body.id}`)).body).toEqual({ id: a.body.id, status: 'CANCELLED' });
    expect((await until(c.body.id as string, ['COMPLETED'])).output).toEqual({ done: 1 });
  });

  it('policy.executionTimeout gives TIMED_OUT', async () => {
    const r = await call('POST', '/runsync', { input: { steps: 500, delayMs: 20 }, policy: { executionTimeout: 1000 } });
    expect(r.body).toMatchObject({ status: 'TIMED_OUT', error: 'the job ran past its time limit of 1000 ms' });
  });

  it('a failing job is FAILED with its error', async () => {
    const r = await call('POST', '/runsync', { input: { steps: 1, fail: 'image: is corrupt' } });
    expect(r.body).toMatchObject({ status: 'FAILED', error: 'image: is corrupt' });
  });

  it('runsync answers IN_PROGRESS when the wait runs out, like RunPod', async () => {
    const r = await call('POST', '/runsync?wait=100', { input: { steps: 50, delayMs: 20 } });
    expect(['IN_QUEUE', 'IN_PROGRESS']).toContain(r.body.status);
    await until(r.body.id as string, ['COMPLETED']);
  });

  it('GET /health counts jobs and needs no key', async () => {
    const r = await call('GET', '/health', undefined, {});
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ jobs: { inQueue: 0 }, workers: { ready: 1 } });
    expect((r.body.jobs as { completed: number }).completed).toBeGreaterThan(0);
    expect((r.body.jobs as { failed: number }).failed).toBeGreaterThan(0);
  });

  it('RunPod-style /v2/<endpoint>/ paths work too', async () => {
    const r = await call('POST', '/v2/local/runsync', { input: { steps: 1 } });
    expect(r.body.status).toBe('COMPLETED');
  });

  it.each([
    ['no key', 'POST', '/run', { input: { steps: 1 } }, {}, 401, /Authorization: Bearer/],
    ['wrong key', 'POST', '/run', { input: { steps: 1 } }, { authorization: 'Bearer nope' }, 401, /Authorization/],
    ['bad JSON', 'POST', '/run', '{not json', auth, 400, /not valid JSON/],
    ['empty body', 'POST', '/run', undefined, auth, 400, /empty body/],
    ['no input', 'POST', '/run', { foo: 1 }, auth, 400, /"input" field/],
    ['invalid input', 'POST', '/run', { input: { x: 1 } }, auth, 400, /input\.steps: required/],
    ['bad policy', 'POST', '/run', { input: { steps: 1 }, policy: { executionTimeout: 'soon' } }, auth, 400, /executionTimeout/],
    ['unknown job', 'GET', '/status/nope', undefined, auth, 404, /job nope not found/],
    ['unknown route', 'GET', '/jobs', undefined, auth, 404, /no route/],
    ['GET /run', 'GET', '/run', undefined, auth, 405, /use POST/],
    ['status without id', 'GET', '/status', undefined, auth, 404, /needs a job id/],
  ])('%s → HTTP error with a message', async (_n, method, path, body, headers, status, msg) => {
    const r = await call(method, path, body, headers as Record<string, string>);
    expect(r.status).toBe(status);
    expect(r.body.error).toMatch(msg);
  });

  it('a body over /run’s 10 MB limit is refused with 413', async () => {
    const r = await call('POST', '/run', { input: { steps: 1, pad: 'x'.repeat(11 * 1024 * 1024) } });
    expect(r.status).toBe(413);
    expect(r.body.error).toMatch(/over 10 MB/);
  });
});
