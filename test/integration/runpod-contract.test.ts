/**
 * The RunPod queue protocol, with runpod-python as the oracle: runpod-python's own worker
 * (`runpod.serverless.start`, trivial handler: test/fixtures/runpod_python_worker.py) and ours
 * (Worker with the same trivial handler: test/helpers/stepper.ts) each run against a recording
 * job server, scenario by scenario, and the request sequences are compared: paths, queries,
 * headers, and the body shapes of progress, result, error and ping.
 *
 * The allowed differences are listed in ALLOWED below, each with its reason; everything else
 * must match. The pinned version is in comfyui-steadydancer/requirements-dev.txt.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Worker, workerConfigFromEnv } from '../../src/serverless/worker.js';
import { memoryLogger } from '../../src/util/logger.js';
import { projectRoot } from '../../src/util/paths.js';
import { JobServer, type Recorded } from '../helpers/job-server.js';
import { pinnedRunpodVersion, runpodPythonSkipReason } from '../helpers/runpod-python.js';
import { needs } from '../helpers/skips.js';
import { testPython } from '../helpers/sources.js';
import { stepper } from '../helpers/stepper.js';

/** Where our worker may differ from runpod-python, and why. Each is checked where it applies. */
export const ALLOWED = {
  userAgent: 'User-Agent names our worker (steadydancer-worker/…), not RunPod-Python-SDK/…',
  pingVersion: "the ping's runpod_version names our worker's version, not the SDK's",
  errorText:
    'a failed job\'s {"error"} is the plain message; runpod-python sends a JSON string of {error_type, error_message, error_traceback, hostname, worker_id, runpod_version} (a traceback of our TypeScript would mean nothing to a RunPod user)',
  progressCount: 'progress posts are coalesced (≤ 1 a second, ≤ 1 per sampling step); runpod-python posts every progress_update call',
  errorDelay: 'after a job-take 5xx or network error we wait WORKER_ERROR_DELAY_MS (1 s) before asking again; runpod-python asks again at once',
  stopPollIdle: 'job-stop is polled only while a job runs (one job at a time: a stop for no running job is a no-op); runpod-python polls it all the time',
  requestIdOnTakes: "runpod-python sets X-Request-ID on its shared session, so its later job-takes and stop polls carry the last job's id; ours carries it on result/progress posts only",
  progressOrder: 'ours sends progress posts in order and all before the result; runpod-python sends each progress_update from its own thread, so one can arrive after the result (seen in this test)',
  graceBound: 'after SIGTERM the running job may take at most RUNPOD_GRACE_S (then it fails with a reason); runpod-python waits without a bound until SIGKILL',
} as const;

const skip = needs('runpod-python contract', runpodPythonSkipReason());
const FIXTURE = join(projectRoot(), 'test', 'fixtures', 'runpod_python_worker.py');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Side = 'runpod-python' | 'ours';
interface Run {
  js: JobServer;
  /** SIGTERM (python) or the abort that `steadydancer worker` does on SIGTERM (ours). */
  sigterm(): void;
  /** Resolves when the worker has exited (python) or its run loop ended (ours). */
  exited: Promise<unknown>;
  stop(): Promise<void>;
  log(): string;
}

async function startSide(side: Side, prepare: (js: JobServer) => void): Promise<Run> {
  const js = new JobServer();
  js.takeDelayMs = 200; // RunPod long-polls job-take; an instant 204 would make runpod-python spin
  prepare(js);
  await js.start();
  const env: NodeJS.ProcessEnv = { ...js.env({ RUNPOD_PING_INTERVAL: '1000' }) };
  delete env.WORKER_BACKOFF_MS; // both use their defaults (5 s after a 429)
  delete env.WORKER_IDLE_DELAY_MS;
  if (side === 'runpod-python') {
    let out = '';
    const child: ChildProcess = spawn(testPython()!, [FIXTURE], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PYTHONUNBUFFERED: '1', RUNPOD_DEBUG_LEVEL: 'DEBUG', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    return {
      js,
      sigterm: () => child.kill('SIGTERM'),
      exited,
      log: () => out,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
        await js.stop();
      },
    };
  }
  const ac = new AbortController();
  const logger = memoryLogger();
  const worker = new Worker(workerConfigFromEnv(env), { handler: stepper, logger });
  const exited = worker.run(ac.signal);
  return {
    js,
    sigterm: () => ac.abort(new Error('received SIGTERM')),
    exited,
    log: () => logger.lines.join('\n'),
    stop: async () => {
      ac.abort();
      await exited.catch(() => undefined);
      await js.stop();
    },
  };
}

const kindOf = (r: Recorded) => r.path.split('/')[1]!;
const keys = (q: URLSearchParams) => [...new Set(q.keys())].sort();

/** The shape of a value: objects by their keys (recursively), other values by type. */
function shapeOf(v: unknown): unknown {
  if (Array.isArray(v)) return ['array'];
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, x]) => [k, shapeOf(x)]),
    );
  return typeof v;
}

/** Every distinct request signature per kind (method, query keys, the headers that matter). */
function signatures(js: JobServer): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const r of js.requests) {
    const kind = kindOf(r);
    const sig: Record<string, unknown> = { method: r.method, query: keys(r.query), authorization: r.headers.authorization };
    if (kind === 'job-done') {
      sig.contentType = r.headers['content-type'];
      sig.charset = r.headers.charset;
      sig.isStream = r.query.get('isStream');
      sig.requestIdIsJob = r.headers['x-request-id'] === r.path.split('/')[3];
    }
    if (kind === 'job-take') sig.jobInProgress = r.query.get('job_in_progress');
    (out[kind] ??= new Set()).add(JSON.stringify(sig));
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
}

/** The posts for one job: progress shapes and the final body. */
function posts(js: JobServer, id: string) {
  const list = js.posts.get(id) ?? [];
  return { progress: list.filter((p) => p.status === 'IN_PROGRESS'), final: list.filter((p) => p.status !== 'IN_PROGRESS') };
}

async function until(cond: () => boolean, ms: number, what: string, run: Run): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${ms} ms\n${run.log().slice(-3000)}`);
    await sleep(50);
  }
}

/** Run one scenario on both sides at once (separate job servers), then compare. */
async function both(prepare: (js: JobServer) => void, drive: (run: Run, side: Side) => Promise<void>): Promise<Record<Side, Run>> {
  const runs = { 'runpod-python': await startSide('runpod-python', prepare), ours: await startSide('ours', prepare) };
  cleanups.push(
    () => runs['runpod-python'].stop(),
    () => runs.ours.stop(),
  );
  await Promise.all((['runpod-python', 'ours'] as const).map((side) => drive(runs[side], side)));
  return runs;
}
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups) await c().catch(() => undefined);
});

function sameProtocol(runs: Record<Side, Run>, kinds: string[]) {
  const py = signatures(runs['runpod-python'].js);
  const ours = signatures(runs.ours.js);
  for (const k of kinds) expect({ kind: k, sig: ours[k] }).toEqual({ kind: k, sig: py[k] });
}

describe.skipIf(skip)(`RunPod queue protocol: ours against runpod-python ${skip ? '' : pinnedRunpodVersion()}`, () => {
  it('a job that succeeds: progress posts, then {output}; the same URLs, queries and headers', async () => {
    const runs = await both(
      (js) => js.queue.push({ id: 'ok-1', input: { steps: 3, delayMs: 800 } }),
      async (run) => {
        await run.js.final('ok-1', 60_000).catch((e: Error) => Promise.reject(new Error(`${e.message}\n${run.log().slice(-3000)}`)));
        const doneAt = Date.now();
        await until(() => run.js.requests.some((r) => kindOf(r) === 'ping' && !r.query.has('job_id') && r.at > doneAt), 15_000, 'an idle ping after the job', run);
      },
    );
    sameProtocol(runs, ['job-take', 'job-done', 'ping']);
    const py = posts(runs['runpod-python'].js, 'ok-1');
    const ours = posts(runs.ours.js, 'ok-1');
    expect(ours.final).toEqual(py.final);
    expect(ours.final).toEqual([{ output: { done: 3 } }]);
    // ALLOWED.progressCount: shapes equal, ours no more posts than theirs
    expect(ours.progress.length).toBeGreaterThanOrEqual(1);
    expect(ours.progress.length).toBeLessThanOrEqual(py.progress.length);
    expect(new Set(ours.progress.map((p) => JSON.stringify(shapeOf(p))))).toEqual(new Set(py.progress.map((p) => JSON.stringify(shapeOf(p)))));
    // ALLOWED.progressOrder: ours posts the result last, after every progress update
    expect((runs.ours.js.posts.get('ok-1') ?? []).at(-1)).toEqual({ output: { done: 3 } });
    // ALLOWED.pingVersion: both send runpod_version and the ids in progress as job_id
    for (const side of ['runpod-python', 'ours'] as const) {
      const pings = runs[side].js.requests.filter((r) => kindOf(r) === 'ping');
      expect(pings.every((p) => p.query.has('runpod_version'))).toBe(true);
      expect(pings.some((p) => p.query.get('job_id') === 'ok-1')).toBe(true);
    }
  }, 120_000);

  it('a job that fails: {error} with the message (ALLOWED.errorText), and the worker goes on', async () => {
    const runs = await both(
      (js) => js.queue.push({ id: 'bad-1', input: { steps: 1, fail: 'boom: the model fell over' } }, { id: 'ok-2', input: { steps: 1 } }),
      async (run) => {
        await run.js.final('ok-2', 60_000);
      },
    );
    sameProtocol(runs, ['job-take', 'job-done']);
    const py = posts(runs['runpod-python'].js, 'bad-1').final;
    const ours = posts(runs.ours.js, 'bad-1').final;
    expect(py.map((p) => Object.keys(p))).toEqual([['error']]);
    expect(ours.map((p) => Object.keys(p))).toEqual([['error']]);
    expect((JSON.parse(py[0]!.error as string) as { error_message: string }).error_message).toBe(ours[0]!.error);
    expect(posts(runs.ours.js, 'ok-2').final).toEqual(posts(runs['runpod-python'].js, 'ok-2').final);
  }, 120_000);

  it('204 (no job): both ask again with job_in_progress=0 and post nothing', async () => {
    const runs = await both(
      () => undefined,
      async (run) => {
        await until(() => run.js.requests.filter((r) => kindOf(r) === 'job-take').length >= 3, 20_000, '3 job-takes', run);
      },
    );
    sameProtocol(runs, ['job-take']);
    for (const side of ['runpod-python', 'ours'] as const) expect(runs[side].js.requests.some((r) => kindOf(r) === 'job-done')).toBe(false);
  }, 60_000);

  it('429: both back off about 5 s, then take the job', async () => {
    const runs = await both(
      (js) => {
        js.tooManyRequests = 1;
        js.queue.push({ id: 'after-429', input: { steps: 1 } });
      },
      async (run) => {
        await run.js.final('after-429', 60_000);
      },
    );
    sameProtocol(runs, ['job-take', 'job-done']);
    for (const side of ['runpod-python', 'ours'] as const) {
      const takes = runs[side].js.requests.filter((r) => kindOf(r) === 'job-take');
      expect(takes[1]!.at - takes[0]!.at).toBeGreaterThanOrEqual(4500);
      expect(posts(runs[side].js, 'after-429').final).toEqual([{ output: { done: 1 } }]);
    }
  }, 120_000);

  it('500 on job-take: both ask again (ALLOWED.errorDelay) and then take the job', async () => {
    const runs = await both(
      (js) => {
        js.serverErrors = 2;
        js.queue.push({ id: 'after-500', input: { steps: 1 } });
      },
      async (run) => {
        await run.js.final('after-500', 60_000);
      },
    );
    sameProtocol(runs, ['job-take', 'job-done']);
    for (const side of ['runpod-python', 'ours'] as const) {
      expect(runs[side].js.requests.filter((r) => kindOf(r) === 'job-take').length).toBeGreaterThanOrEqual(3);
      expect(posts(runs[side].js, 'after-500').final).toEqual([{ output: { done: 1 } }]);
    }
  }, 120_000);

  it('a malformed job (no id): nothing is posted for it, the next job runs', async () => {
    const runs = await both(
      (js) => js.queue.push({ input: { steps: 1 } }, { id: 'fine', input: { steps: 1 } }),
      async (run) => {
        await run.js.final('fine', 60_000);
      },
    );
    sameProtocol(runs, ['job-take', 'job-done']);
    for (const side of ['runpod-python', 'ours'] as const) expect([...runs[side].js.posts.keys()]).toEqual(['fine']);
  }, 120_000);

  it('cancel through job-stop: nothing is posted for the stopped job, the next job runs', async () => {
    const runs = await both(
      (js) => js.queue.push({ id: 'stop-me', input: { steps: 400, delayMs: 25 } }, { id: 'next', input: { steps: 1 } }),
      async (run) => {
        await until(() => (run.js.posts.get('stop-me') ?? []).length > 0, 30_000, 'the first progress of stop-me', run);
        run.js.stops.push('stop-me');
        await run.js.final('next', 60_000);
      },
    );
    sameProtocol(runs, ['job-take', 'job-stop']);
    for (const side of ['runpod-python', 'ours'] as const) {
      expect(posts(runs[side].js, 'stop-me').final).toEqual([]);
      expect(posts(runs[side].js, 'next').final).toEqual([{ output: { done: 1 } }]);
    }
  }, 120_000);

  it('SIGTERM mid-job: the running job finishes and posts its output; no new job is taken; the worker exits', async () => {
    const runs = await both(
      (js) => js.queue.push({ id: 'running', input: { steps: 30, delayMs: 50 } }),
      async (run) => {
        await until(() => (run.js.posts.get('running') ?? []).length > 0, 30_000, 'the first progress', run);
        run.js.queue.push({ id: 'late', input: { steps: 1 } });
        run.sigterm();
        await run.js.final('running', 20_000);
        await Promise.race([run.exited, sleep(20_000).then(() => Promise.reject(new Error(`the worker did not exit after SIGTERM\n${run.log().slice(-2000)}`)))]);
      },
    );
    sameProtocol(runs, ['job-done']);
    for (const side of ['runpod-python', 'ours'] as const) {
      expect(posts(runs[side].js, 'running').final).toEqual([{ output: { done: 30 } }]);
      expect(runs[side].js.posts.has('late')).toBe(false);
      expect(runs[side].js.queue).toEqual([{ id: 'late', input: { steps: 1 } }]);
    }
  }, 120_000);
});
