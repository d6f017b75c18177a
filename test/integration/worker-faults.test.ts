/**
 * The worker under the faults of issue #11, against the recording job server (real HTTP on
 * loopback): an empty stop channel that answers at once, many idle job-takes, a cancel, SIGTERM
 * in the middle of a job, and a chatty handler (progress coalescing).
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { JobHandler } from '../../src/serverless/jobs.js';
import { useJobServer } from '../helpers/job-server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('worker under faults', () => {
  const t = useJobServer();
  const { start } = t;
  const stopPolls = () => t.js.requests.filter((r) => r.path.startsWith('/job-stop/')).length;

  for (const empty of [204, 'list'] as const) {
    it(`an empty job-stop answer given at once (${empty === 204 ? '204' : '200 {"jobsToStop": []}'}) is polled again after a floor delay, not in a loop`, async () => {
      t.js.stopDelayMs = 0;
      t.js.stopEmpty = empty;
      t.js.queue.push({ id: 'busy', input: { steps: 30, delayMs: 50 } });
      const t0 = Date.now();
      start();
      await t.js.final('busy');
      const seconds = (Date.now() - t0) / 1000;
      // runpod-python waits 1 s after an empty answer: about one poll per second of the job
      expect(stopPolls()).toBeGreaterThanOrEqual(1);
      expect(stopPolls()).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    });
  }

  it('1,000 idle job-takes leave no abort listeners behind on the main signal', async () => {
    start(t.js.env({ WORKER_IDLE_DELAY_MS: '0' }));
    const takes = () => t.js.requests.filter((r) => r.path.startsWith('/job-take/')).length;
    for (let i = 0; i < 3000 && takes() < 1000; i++) await sleep(10);
    expect(takes()).toBeGreaterThanOrEqual(1000);
    expect(getEventListeners(t.ac.signal, 'abort').length).toBeLessThanOrEqual(3);
  });

  it('a job named on the stop channel is cancelled and nothing is posted for it (as runpod-python); the next job runs', async () => {
    t.js.queue.push({ id: 'stop-me', input: { steps: 200, delayMs: 20 } }, { id: 'after', input: { steps: 1 } });
    start();
    for (let i = 0; i < 200 && !t.js.requests.some((r) => r.path.startsWith('/job-stop/')); i++) await sleep(20);
    t.js.stops.push('stop-me');
    expect(await t.js.final('after')).toEqual({ output: { done: 1 } });
    expect((t.js.posts.get('stop-me') ?? []).filter((p) => p.status !== 'IN_PROGRESS')).toEqual([]);
  });

  it('SIGTERM mid-job: the running job finishes and posts its output; no new job is taken', async () => {
    t.js.queue.push({ id: 'running', input: { steps: 20, delayMs: 50 } });
    const { running } = start();
    for (let i = 0; i < 200 && !t.js.requests.some((r) => r.path === '/job-done/worker-abc/running'); i++) await sleep(10);
    t.js.queue.push({ id: 'late', input: { steps: 1 } });
    t.ac.abort(new Error('received SIGTERM'));
    expect(await running).toBe('stopped');
    expect(await t.js.final('running', 5000)).toEqual({ output: { done: 20 } });
    expect(t.js.posts.get('late')).toBeUndefined();
    expect(t.js.queue).toEqual([{ id: 'late', input: { steps: 1 } }]);
  });

  it('SIGTERM mid-job: past RUNPOD_GRACE_S the job fails with a reason that names the grace period', async () => {
    t.js.queue.push({ id: 'long', input: { steps: 500, delayMs: 20 } });
    const { running } = start(t.js.env({ RUNPOD_GRACE_S: '0.3' }));
    for (let i = 0; i < 200 && !t.js.requests.some((r) => r.path === '/job-done/worker-abc/long'); i++) await sleep(10);
    t.ac.abort(new Error('received SIGTERM'));
    expect(await running).toBe('stopped');
    const final = await t.js.final('long', 5000);
    expect(final.error).toMatch(/shutting down.*0\.3 s/);
    expect(t.js.progress('long').length).toBeLessThan(500);
  });

  it('progress posts are coalesced: at most one per second and one per sampling step; pose frames are not steps', async () => {
    const chatty: JobHandler = async (_input, ctx) => {
      await ctx.ready?.();
      for (let f = 1; f <= 200; f++) ctx.progress({ stage: 'pose', step: f, total: 200, message: `pose frame ${f}/200` });
      for (let s = 1; s <= 4; s++) {
        for (let k = 0; k < 20; k++) ctx.progress({ stage: 'sampling', step: s, total: 4, message: `step ${s}/4` });
        await sleep(400);
      }
      return { done: true };
    };
    t.js.queue.push({ id: 'chatty', input: {} });
    const t0 = Date.now();
    start(t.js.env(), chatty);
    expect(await t.js.final('chatty')).toEqual({ output: { done: true } });
    const seconds = (Date.now() - t0) / 1000;
    const posts = t.js.progress('chatty').map((p) => p.output as { stage: string; step?: number });
    expect(posts.length).toBeGreaterThanOrEqual(1);
    expect(posts.length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    const steps = posts.filter((p) => p.stage === 'sampling').map((p) => p.step);
    expect(new Set(steps).size).toBe(steps.length);
  });
});
