/**
 * The worker against a job server speaking RunPod's queue protocol (real HTTP on loopback).
 * The handler here is a small test handler; the dance handler is covered in the e2e tests.
 */
import { describe, expect, it } from 'vitest';
import { Worker, workerConfigFromEnv, withQuery } from '../../src/serverless/worker.js';
import { memoryLogger } from '../../src/util/logger.js';
import { useJobServer } from '../helpers/job-server.js';
import { stepper } from '../helpers/stepper.js';

describe('RunPod queue protocol', () => {
  const t = useJobServer();
  const { start } = t;

  it('withQuery appends to URLs with and without a query', () => {
    expect(withQuery('http://a/b', { x: '1' })).toBe('http://a/b?x=1');
    expect(withQuery('http://a/b?g=2', { x: '1' })).toBe('http://a/b?g=2&x=1');
  });

  it('takes a job, posts progress and the output, with the id substitutions and the auth header', async () => {
    t.js.queue.push({ id: 'job-1', input: { steps: 3 } });
    start();
    const final = await t.js.final('job-1');
    expect(final).toEqual({ output: { done: 3 } });
    // progress as IN_PROGRESS posts, step n/N; coalesced to one a second (the 3 steps take 30 ms)
    expect(t.js.progress('job-1').map((p) => (p.output as { message: string }).message)).toEqual(['step 1/3']);
    const take = t.js.requests.find((r) => r.path === '/job-take/worker-abc')!;
    expect(take.method).toBe('GET');
    expect(take.query.get('gpu')).toBe('test');
    expect(take.query.get('job_in_progress')).toBe('0');
    expect(take.headers.authorization).toBe('test-ai-key-123');
    const done = t.js.requests.filter((r) => r.path === '/job-done/worker-abc/job-1');
    expect(done.length).toBe(2);
    // the result is the last post, after every progress update
    expect(JSON.parse(done.at(-1)!.body)).toEqual({ output: { done: 3 } });
    for (const d of done) {
      expect(d.method).toBe('POST');
      expect(d.query.get('isStream')).toBe('false');
      expect(d.headers.authorization).toBe('test-ai-key-123');
    }
  });

  it('heartbeats every RUNPOD_PING_INTERVAL ms with the job ids in progress', async () => {
    t.js.queue.push({ id: 'job-p', input: { steps: 8, delayMs: 100 } });
    start();
    await t.js.final('job-p');
    const pings = t.js.requests.filter((r) => r.path === '/ping/worker-abc');
    expect(pings.length).toBeGreaterThanOrEqual(3);
    expect(pings.every((p) => p.headers.authorization === 'test-ai-key-123')).toBe(true);
    expect(pings.some((p) => p.query.get('job_id') === 'job-p')).toBe(true);
    expect(pings[0]!.query.get('gpu')).toBe('test');
  });

  it('runs one job at a time, in order, and says job_in_progress=0 between them', async () => {
    t.js.queue.push({ id: 'a', input: { steps: 2 } }, { id: 'b', input: { steps: 2 } });
    start();
    await t.js.final('b');
    const order = t.js.requests.filter((r) => r.path.startsWith('/job-done/')).map((r) => r.path.split('/').pop());
    expect(order.indexOf('b')).toBeGreaterThan(order.lastIndexOf('a'));
    const takes = t.js.requests.filter((r) => r.path.startsWith('/job-take/'));
    expect(takes.every((t) => t.query.get('job_in_progress') === '0')).toBe(true);
  });

  it('a batch (list) answer is worked through one by one', async () => {
    t.js.queue.push([
      { id: 'x1', input: { steps: 1 } },
      { id: 'x2', input: { steps: 1 } },
    ]);
    start();
    expect(await t.js.final('x1')).toEqual({ output: { done: 1 } });
    expect(await t.js.final('x2')).toEqual({ output: { done: 1 } });
  });

  it('backs off after a 429', async () => {
    t.js.tooManyRequests = 1;
    t.js.queue.push({ id: 'after-429', input: { steps: 1 } });
    start();
    await t.js.final('after-429');
    const takes = t.js.requests.filter((r) => r.path.startsWith('/job-take/'));
    expect(takes.length).toBeGreaterThanOrEqual(2);
    // a 429 is not an error: the worker waits (WORKER_BACKOFF_MS) and asks again
    expect(t.js.posts.get('after-429')?.at(-1)).toEqual({ output: { done: 1 } });
  });

  it('a handler error becomes {error}; refresh_worker adds stopPod and the worker ends', async () => {
    t.js.queue.push({ id: 'bad', input: { steps: 1, fail: 'boom: the model fell over' } });
    t.js.queue.push({ id: 'broken', input: { steps: 1, fail: 'CUDA is wedged', refresh: true } });
    t.js.queue.push({ id: 'never', input: { steps: 1 } });
    const { running } = start();
    expect(await t.js.final('bad')).toEqual({ error: 'boom: the model fell over' });
    expect(await t.js.final('broken')).toEqual({ error: 'CUDA is wedged', stopPod: true });
    expect(await running).toBe('refresh');
    expect(t.js.posts.get('never')).toBeUndefined();
  });

  it('REFRESH_WORKER=true sends stopPod after a successful job', async () => {
    t.js.queue.push({ id: 'r1', input: { steps: 1 } });
    const { running } = start(t.js.env({ REFRESH_WORKER: 'true' }));
    expect(await t.js.final('r1')).toEqual({ output: { done: 1 }, stopPod: true });
    expect(await running).toBe('refresh');
  });

  it('when ComfyUI can no longer be restarted, the job result carries stopPod', async () => {
    t.js.queue.push({ id: 'last', input: { steps: 1, fail: 'ComfyUI exited during the job (killed by SIGKILL)' } });
    const worker = new Worker(workerConfigFromEnv(t.js.env()), { handler: stepper, logger: memoryLogger(), mustRefresh: () => true });
    const running = worker.run(t.ac.signal);
    expect(await t.js.final('last')).toEqual({ error: 'ComfyUI exited during the job (killed by SIGKILL)', stopPod: true });
    expect(await running).toBe('refresh');
  });

  it('JOB_TIMEOUT_MS ends a job that runs too long, then the next job runs', async () => {
    t.js.queue.push({ id: 'slow', input: { steps: 100, delayMs: 50 } }, { id: 'next', input: { steps: 1 } });
    start(t.js.env({ JOB_TIMEOUT_MS: '300' }));
    expect(await t.js.final('slow')).toEqual({ error: 'the job ran past its time limit of 300 ms' });
    expect(await t.js.final('next')).toEqual({ output: { done: 1 } });
  });

  // The stop channel (cancel posts nothing) is in worker-faults.test.ts.

  it('a job without id or input is skipped, the worker goes on', async () => {
    t.js.queue.push({ input: {} }, { id: 'fine', input: { steps: 1 } });
    start();
    expect(await t.js.final('fine')).toEqual({ output: { done: 1 } });
  });

  it('missing RunPod settings are named', () => {
    expect(() => workerConfigFromEnv({})).toThrow(/RUNPOD_WEBHOOK_GET_JOB is not set/);
    expect(() => workerConfigFromEnv({ RUNPOD_WEBHOOK_GET_JOB: 'http://x/$ID' })).toThrow(/RUNPOD_WEBHOOK_POST_OUTPUT is not set/);
  });
});
