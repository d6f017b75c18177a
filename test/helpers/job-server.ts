/**
 * A RunPod job server for tests: speaks the worker side of RunPod's queue protocol on loopback
 * (job-take, job-stop, job-done/progress, ping), records every request, and lets the test queue
 * jobs, answer 429s and stop jobs.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach } from 'vitest';
import type { JobHandler } from '../../src/serverless/jobs.js';
import { Worker, workerConfigFromEnv } from '../../src/serverless/worker.js';
import { memoryLogger } from '../../src/util/logger.js';
import { stepper } from './stepper.js';

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  /** When the request arrived (Date.now()). */
  at: number;
}

export class JobServer {
  server: Server;
  url = '';
  readonly requests: Recorded[] = [];
  readonly queue: unknown[] = [];
  /** Answer this many job-takes with 429 first. */
  tooManyRequests = 0;
  readonly stops: string[] = [];
  /** How long job-stop holds an empty answer (RunPod long-polls; 0 = answer at once). */
  stopDelayMs = 50;
  /** The empty job-stop answer: 204, or 200 with an empty list. */
  stopEmpty: 204 | 'list' = 204;
  /** How long job-take holds an empty answer (RunPod long-polls; 0 = a 204 at once). */
  takeDelayMs = 0;
  /** Answer this many job-takes with HTTP 500 first. */
  serverErrors = 0;
  /** Posts per job id, parsed. */
  readonly posts = new Map<string, Array<Record<string, unknown>>>();
  private waiters: Array<() => void> = [];

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const u = new URL(req.url ?? '/', 'http://x');
        const rec: Recorded = { method: req.method ?? '', path: u.pathname, query: u.searchParams, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
        this.requests.push(rec);
        const [, kind, , jobId] = u.pathname.split('/');
        if (kind === 'job-take') {
          if (this.serverErrors > 0) {
            this.serverErrors--;
            res.writeHead(500).end();
          } else if (this.tooManyRequests > 0) {
            this.tooManyRequests--;
            res.writeHead(429).end();
          } else if (this.queue.length) {
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.queue.shift()));
          } else if (this.takeDelayMs > 0) setTimeout(() => res.writeHead(204).end(), this.takeDelayMs);
          else res.writeHead(204).end();
        } else if (kind === 'job-stop') {
          if (this.stops.length) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jobsToStop: this.stops.splice(0) }));
          else {
            const empty = () => (this.stopEmpty === 204 ? res.writeHead(204).end() : res.writeHead(200, { 'content-type': 'application/json' }).end('{"jobsToStop":[]}'));
            if (this.stopDelayMs > 0) setTimeout(empty, this.stopDelayMs);
            else empty();
          }
        } else if (kind === 'job-done' && jobId) {
          const list = this.posts.get(jobId) ?? [];
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(rec.body) as Record<string, unknown>;
          } catch {
            parsed = { unparsable: rec.body };
          }
          list.push(parsed);
          this.posts.set(jobId, list);
          res.writeHead(200).end();
        } else if (kind === 'ping') {
          res.writeHead(200).end();
        } else res.writeHead(404).end();
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** The environment RunPod gives a worker, pointing at this server. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return {
      RUNPOD_WEBHOOK_GET_JOB: `${this.url}/job-take/$ID?gpu=test`,
      RUNPOD_WEBHOOK_POST_OUTPUT: `${this.url}/job-done/$RUNPOD_POD_ID/$ID?gpu=test`,
      RUNPOD_WEBHOOK_PING: `${this.url}/ping/$RUNPOD_POD_ID?gpu=test`,
      RUNPOD_PING_INTERVAL: '200',
      RUNPOD_AI_API_KEY: 'test-ai-key-123',
      RUNPOD_POD_ID: 'worker-abc',
      WORKER_IDLE_DELAY_MS: '20',
      WORKER_BACKOFF_MS: '300',
      ...extra,
    };
  }

  /** The final post (output or error) for a job, once it arrives. */
  async final(jobId: string, ms = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = (this.posts.get(jobId) ?? []).find((p) => p.status !== 'IN_PROGRESS');
      if (f) return f;
      if (Date.now() > deadline) throw new Error(`no final post for ${jobId} within ${ms} ms`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  progress(jobId: string): Array<Record<string, unknown>> {
    return (this.posts.get(jobId) ?? []).filter((p) => p.status === 'IN_PROGRESS');
  }
}

/**
 * Vitest hooks for worker tests: a fresh job server and abort controller per test (stopped and
 * aborted after it), and `start` for a worker on them (default: the server's env, the stepper).
 */
export function useJobServer() {
  const t = {} as {
    js: JobServer;
    ac: AbortController;
    start: (env?: NodeJS.ProcessEnv, handler?: JobHandler) => { worker: Worker; running: ReturnType<Worker['run']> };
  };
  beforeEach(async () => {
    t.js = new JobServer();
    await t.js.start();
    t.ac = new AbortController();
  });
  afterEach(async () => {
    t.ac.abort();
    await t.js.stop();
  });
  t.start = (env = t.js.env(), handler = stepper) => {
    const worker = new Worker(workerConfigFromEnv(env), { handler, logger: memoryLogger() });
    return { worker, running: worker.run(t.ac.signal) };
  };
  return t;
}
