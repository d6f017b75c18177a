/**
 * The local API (what `steadydancer serve` runs: createApi on a JobQueue) driven by
 * runpod-python's own endpoint SDK, runpod.Endpoint and runpod.AsyncioEndpoint, with
 * runpod.endpoint_url_base set to the local server: run, run_sync, status, stream, cancel,
 * health, purge_queue (test/fixtures/runpod_python_endpoint.py). The handler is the trivial
 * stepper; the dance handler is covered by the e2e tests.
 */
import { execFile } from 'node:child_process';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, listen } from '../../src/serverless/api.js';
import { JobQueue } from '../../src/serverless/jobs.js';
import { memoryLogger } from '../../src/util/logger.js';
import { projectRoot } from '../../src/util/paths.js';
import { pinnedRunpodVersion, runpodPythonSkipReason } from '../helpers/runpod-python.js';
import { needs } from '../helpers/skips.js';
import { testPython } from '../helpers/sources.js';
import { stepper } from '../helpers/stepper.js';

const skip = needs('runpod-python endpoint SDK against serve', runpodPythonSkipReason());
const SCRIPT = join(projectRoot(), 'test', 'fixtures', 'runpod_python_endpoint.py');
const KEY = 'local-secret-key';

type Ok<T = unknown> = { ok: T } | { raised: string };
const ok = <T>(r: Ok<T> | undefined): T => {
  if (!r || !('ok' in r)) throw new Error(`the SDK call raised: ${r && 'raised' in r ? r.raised : 'nothing recorded'}`);
  return r.ok;
};

describe.skipIf(skip)(`serve driven by runpod-python ${skip ? '' : pinnedRunpodVersion()} (Endpoint, AsyncioEndpoint)`, () => {
  let server: Server;
  let queue: JobQueue;
  let report: Record<string, Ok & Record<string, unknown>>;

  beforeAll(async () => {
    queue = new JobQueue({ handler: stepper, logger: memoryLogger(), graceMs: 1000 });
    server = createApi({ queue, apiKey: KEY });
    const { url } = await listen(server, 0, '127.0.0.1');
    const { stdout } = await promisify(execFile)(testPython()!, [SCRIPT, `${url}/v2`, KEY], { timeout: 240_000, maxBuffer: 16 << 20 });
    report = JSON.parse(stdout.trim().split('\n').at(-1)!) as typeof report;
  }, 300_000);
  afterAll(async () => {
    await queue?.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it('Endpoint.run_sync returns the output', () => {
    expect(ok(report.run_sync)).toEqual({ done: 2 });
  });

  it('Endpoint.run → Job: status, stream (each progress once, then the output), output', () => {
    expect(['IN_QUEUE', 'IN_PROGRESS']).toContain(ok(report.status_first));
    const stream = ok(report.stream) as Array<{ message?: string; done?: number }>;
    expect(stream.at(-1)).toEqual({ done: 3 });
    const messages = stream.filter((c) => c.message).map((c) => c.message);
    expect(messages.length).toBeGreaterThanOrEqual(1);
    expect(new Set(messages).size).toBe(messages.length);
    expect(ok(report.output)).toEqual({ done: 3 });
    expect(ok(report.status_done)).toBe('COMPLETED');
  });

  it('Job.cancel on a running job answers CANCELLED, and /status says so', () => {
    expect(report.cancel_seen_before).toBe('IN_PROGRESS');
    expect(ok(report.cancel)).toMatchObject({ status: 'CANCELLED' });
    expect(ok(report.status_cancelled)).toBe('CANCELLED');
  });

  it("Endpoint.purge_queue removes the queued jobs, leaves the running one, in RunPod's shape", () => {
    expect(ok(report.purge_queue)).toEqual({ removed: 3, status: 'completed' });
    expect(ok(report.purged_status)).toEqual(['CANCELLED', 'CANCELLED', 'CANCELLED']);
    expect(ok(report.blocker_output)).toEqual({ done: 60 });
  });

  it("Endpoint.health has RunPod's shape and counts", () => {
    const before = ok(report.health_before) as { jobs: Record<string, number>; workers: Record<string, number> };
    expect(Object.keys(before).sort()).toEqual(['jobs', 'workers']);
    expect(Object.keys(before.jobs).sort()).toEqual(['cancelled', 'completed', 'failed', 'inProgress', 'inQueue', 'retried']);
    const after = ok(report.health_after) as typeof before;
    expect(after.jobs.completed).toBeGreaterThanOrEqual(3);
    expect(after.jobs.cancelled).toBeGreaterThanOrEqual(4);
  });

  it('a wrong API key is refused (health needs none, as on RunPod; run does)', () => {
    expect(report.wrong_key).toHaveProperty('ok');
    expect((report.wrong_key_run as { raised?: string }).raised).toMatch(/401|Unauthorized|KeyError/);
  });

  it('AsyncioEndpoint: run, status, stream, output, cancel, purge_queue, health', () => {
    const a = ok(report.asyncio) as Record<string, unknown>;
    expect(['IN_QUEUE', 'IN_PROGRESS']).toContain(a.status_first);
    expect((a.stream as unknown[]).at(-1)).toEqual({ done: 3 });
    expect(a.output).toEqual({ done: 3 });
    expect(a.status_done).toBe('COMPLETED');
    expect(a.cancel).toMatchObject({ status: 'CANCELLED' });
    expect(a.purge_queue).toEqual({ removed: 2, status: 'completed' });
    expect(a.health).toHaveProperty('jobs');
  });
});
