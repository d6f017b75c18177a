/**
 * Serverless fault figures of issue #11, before/after:
 *  1. job-stop polls per second while one job runs, when job-stop answers 204 at once;
 *  2. abort listeners on the worker's main signal after 1,000 idle job-takes;
 *  6. wall time for 2,000 bad-but-parseable /run jobs on the local API (ComfyUI up: the fake
 *     ComfyUI fixture), the client retrying on 429 (MAX_QUEUE) after 50 ms.
 *
 *   npx tsx bench/serverless-faults.bench.ts [--label after] [--bad-cap-s 120]
 *
 * Prints one JSON line and writes bench/results/serverless-faults-<label>.json. Uses only the
 * public surfaces (Worker, JobQueue, createApi, createService), so the same script runs on an
 * older checkout for the "before" figure (copy it and test/helpers/job-server.ts there).
 */
import { getEventListeners } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../src/comfy/native.js';
import { createApi, listen } from '../src/serverless/api.js';
import { JobQueue, TERMINAL } from '../src/serverless/jobs.js';
import { createService } from '../src/serverless/service.js';
import { Worker, workerConfigFromEnv } from '../src/serverless/worker.js';
import { memoryLogger } from '../src/util/logger.js';
import { JobServer } from '../test/helpers/job-server.js';
import { stepper } from '../test/helpers/stepper.js';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : def;
};
const label = arg('--label', 'run');
const badCapS = Number(arg('--bad-cap-s', '120'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stopPolls(): Promise<{ seconds: number; polls: number; perSecond: number }> {
  const js = new JobServer();
  js.stopDelayMs = 0;
  await js.start();
  js.queue.push({ id: 'busy', input: { steps: 50, delayMs: 100 } });
  const ac = new AbortController();
  const t0 = Date.now();
  const run = new Worker(workerConfigFromEnv(js.env()), { handler: stepper, logger: memoryLogger('error') }).run(ac.signal);
  await js.final('busy', 120_000);
  const seconds = (Date.now() - t0) / 1000;
  ac.abort();
  await run;
  await js.stop();
  const polls = js.requests.filter((r) => r.path.startsWith('/job-stop/')).length;
  return { seconds: +seconds.toFixed(2), polls, perSecond: +(polls / seconds).toFixed(1) };
}

async function listeners(): Promise<{ takes: number; listeners: number }> {
  const js = new JobServer();
  await js.start();
  const ac = new AbortController();
  const run = new Worker(workerConfigFromEnv(js.env({ WORKER_IDLE_DELAY_MS: '0' })), { handler: stepper, logger: memoryLogger('error') }).run(ac.signal);
  const takes = () => js.requests.filter((r) => r.path.startsWith('/job-take/')).length;
  while (takes() < 1000) await sleep(5);
  const n = getEventListeners(ac.signal, 'abort').length;
  const t = takes();
  ac.abort();
  await run;
  await js.stop();
  return { takes: t, listeners: n };
}

async function badJobs(): Promise<Record<string, number | boolean>> {
  const port = await freePort();
  const fake = join(process.cwd(), 'test', 'fixtures', 'fake-comfyui.mjs');
  const svc = await createService({
    comfyUrl: `http://127.0.0.1:${port}`,
    comfyCommand: [process.execPath, fake, '--port', String(port)],
    readyTimeoutMs: 60_000,
    env: {},
    logger: memoryLogger('error'),
  });
  await svc.ready(new AbortController().signal);
  const maxQueue = Number(process.env.MAX_QUEUE || 100);
  const queue = new JobQueue({ handler: svc.handler, logger: memoryLogger('error'), beforeJob: svc.ready, runningAbort: svc.crashSignal, maxQueue } as ConstructorParameters<typeof JobQueue>[0]);
  const server = createApi({ queue, validate: svc.validate });
  const { url } = await listen(server, 0, '127.0.0.1');
  const body = JSON.stringify({ input: { image: '!!! not base64 !!!', video: '!!! nor this !!!' } });
  const t0 = Date.now();
  const ids: string[] = [];
  let rejected429 = 0;
  let next = 0;
  const deadline = t0 + badCapS * 1000;
  // 20 clients submit the 2,000 jobs, each retrying a 429 after 50 ms
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < 2000 && Date.now() < deadline) {
        next++;
        for (;;) {
          const r = await fetch(`${url}/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          const j = (await r.json()) as { id?: string };
          if (r.status === 429) {
            rejected429++;
            if (Date.now() > deadline) break;
            await sleep(50);
            continue;
          }
          if (j.id) ids.push(j.id);
          break;
        }
      }
    }),
  );
  const acceptedAllMs = Date.now() - t0;
  const terminal = () => ids.filter((id) => TERMINAL.has(queue.get(id)?.status ?? 'IN_QUEUE')).length;
  while (terminal() < ids.length && Date.now() < deadline) await sleep(100);
  const elapsedMs = Date.now() - t0;
  const done = terminal();
  const failed = ids.filter((id) => queue.get(id)?.status === 'FAILED').length;
  await queue.close().catch(() => undefined);
  server.closeAllConnections();
  server.close();
  await svc.stop();
  const rate = done / (elapsedMs / 1000);
  return {
    submitted: ids.length,
    rejected429,
    acceptedAllMs,
    finished: done,
    failed,
    elapsedMs,
    jobsPerSecond: +rate.toFixed(2),
    allDone: done === 2000,
    projectedSecondsFor2000: +(2000 / Math.max(rate, 1e-9)).toFixed(1),
  };
}

const result = { label, node: process.version, stopPolls: await stopPolls(), listeners: await listeners(), badJobs: await badJobs() };
mkdirSync(join('bench', 'results'), { recursive: true });
writeFileSync(join('bench', 'results', `serverless-faults-${label}.json`), JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify(result));
process.exit(0);
