/**
 * `steadydancer serve`: a local HTTP API with RunPod's serverless routes and response shapes,
 * so a client (our `generate`, curl, an app) talks to a local container exactly as it would
 * to https://api.runpod.ai/v2/<endpoint>. Routes (shapes as RunPod documents them and as
 * runpod-python's local test server rp_fastapi.py mimics them):
 *   POST /run            {input, policy?}           → {id, status: "IN_QUEUE"}
 *   POST /runsync[?wait=ms]                          → {id, status, output?|error?, delayTime, executionTime}
 *   GET  /status/{id}                                → {id, status, delayTime?, executionTime?, output?|error?}
 *   GET  /stream/{id}                                → {id, status, stream: [{output: progress}]}
 *   POST /cancel/{id}                                → {id, status}
 *   POST /purge-queue                                → {removed, status: "completed"}
 *   GET  /health                                     → {jobs: {...}, workers: {...}}
 * A full queue (MAX_QUEUE) answers 429 `{error}`. Slow clients are cut off: headers must arrive
 * within headersTimeoutMs, the whole request within requestTimeoutMs, and a body that stops
 * arriving for bodyIdleTimeoutMs gets a 408 (Node's own limits alone let a slowloris client or
 * an endless chunked body hold a connection for minutes).
 * The same routes also answer under /v2/<anything>/ so a RunPod-style base URL works unchanged.
 * Everything runs on the JobQueue (src/runpod/jobs.ts), the runner the worker uses.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { QueueFull, TERMINAL, type JobQueue, type JobRecord } from './jobs.js';
import { RUN_LIMIT_BYTES, RUNSYNC_LIMIT_BYTES } from '../job/output.js';

export interface ApiOptions {
  queue: JobQueue;
  /** Checks a request's `input` at submission; returns an error text for a 400, or undefined. */
  validate?: (input: unknown) => string | undefined;
  /** When set, requests must carry `Authorization: Bearer <apiKey>` (as RunPod's API does). */
  apiKey?: string;
  /** Longest /runsync wait (ms); RunPod waits about 90 s before answering IN_PROGRESS. */
  runsyncWaitMs?: number;
  /** The request line and headers must arrive within this (default 10 s). */
  headersTimeoutMs?: number;
  /** The whole request, body included, must arrive within this (default 120 s: 20 MB at ~1.5 Mbit/s). */
  requestTimeoutMs?: number;
  /** A body that sends nothing for this long is answered 408 (default 15 s). */
  bodyIdleTimeoutMs?: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readBody(req: IncomingMessage, limit: number, idleMs: number): Promise<unknown> {
  const parts: Buffer[] = [];
  let n = 0;
  // Read by events rather than `for await`, so that a stalled body can be answered (408) on a
  // socket that is still open; the idle timer restarts with every chunk.
  await new Promise<void>((resolve, reject) => {
    let t: NodeJS.Timeout;
    const fail = (err: Error) => {
      clearTimeout(t);
      req.off('data', onData);
      req.pause();
      reject(err);
    };
    const arm = () => {
      clearTimeout(t);
      t = setTimeout(() => fail(new HttpError(408, `the request body stopped arriving (nothing for ${idleMs / 1000} s)`)), idleMs);
    };
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > limit) return fail(new HttpError(413, `request body over ${Math.round(limit / 1024 / 1024)} MB (RunPod's limit for this route); pass large media as URLs`));
      parts.push(c);
      arm();
    };
    req.on('data', onData);
    req.once('end', () => (clearTimeout(t), resolve()));
    req.once('error', (err) => fail(err));
    arm();
  });
  if (n === 0) throw new HttpError(400, 'empty body: send JSON {"input": {...}}');
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
}

/** The /status shape of a record, as RunPod returns it. */
export function statusBody(rec: JobRecord): Record<string, unknown> {
  const body: Record<string, unknown> = { id: rec.id, status: rec.status };
  if (rec.startedAt) body.delayTime = rec.startedAt - rec.createdAt;
  if (rec.finishedAt && rec.startedAt) body.executionTime = rec.finishedAt - rec.startedAt;
  if (rec.status === 'COMPLETED') body.output = rec.output;
  else if (TERMINAL.has(rec.status)) body.error = rec.error;
  else if (rec.progress) body.output = rec.progress;
  return body;
}

export function createApi(opts: ApiOptions): Server {
  const { queue } = opts;
  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    if (res.headersSent || res.destroyed) return;
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
    if (status === 408) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(text);
    // The rest of an unread body is not worth waiting for.
    if (status === 408) res.once('finish', () => res.socket?.destroy());
  };
  const bodyIdleMs = opts.bodyIdleTimeoutMs ?? 15_000;
  const authorized = (req: IncomingMessage) => {
    if (!opts.apiKey) return true;
    const got = Buffer.from(String(req.headers.authorization ?? ''));
    const want = Buffer.from(`Bearer ${opts.apiKey}`);
    return got.length === want.length && timingSafeEqual(got, want);
  };

  const submit = async (req: IncomingMessage, delivery: 'run' | 'runsync'): Promise<JobRecord> => {
    const body = await readBody(req, delivery === 'run' ? RUN_LIMIT_BYTES : RUNSYNC_LIMIT_BYTES, bodyIdleMs);
    if (typeof body !== 'object' || body === null || !('input' in body)) throw new HttpError(400, 'the body must be a JSON object with an "input" field');
    const { input, policy } = body as { input: unknown; policy?: { executionTimeout?: unknown } };
    const invalid = opts.validate?.(input);
    if (invalid) throw new HttpError(400, invalid);
    let timeoutMs: number | undefined;
    if (policy?.executionTimeout !== undefined) {
      const t = Number(policy.executionTimeout);
      if (!Number.isFinite(t) || t < 1000) throw new HttpError(400, 'policy.executionTimeout must be a number of milliseconds ≥ 1000');
      timeoutMs = t;
    }
    try {
      return queue.submit(input, { delivery, timeoutMs });
    } catch (err) {
      if (err instanceof QueueFull) throw new HttpError(429, err.message);
      throw err;
    }
  };

  const requestTimeout = opts.requestTimeoutMs ?? 120_000;
  const headersTimeout = Math.min(opts.headersTimeoutMs ?? 10_000, requestTimeout);
  const server = createServer({ headersTimeout, requestTimeout, connectionsCheckingInterval: Math.max(100, Math.min(1000, headersTimeout / 2)) }, (req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://local');
        // Accept RunPod-style paths too: /v2/<endpoint-id>/run …
        const path = url.pathname.replace(/^\/v2\/[^/]+/, '').replace(/\/+$/, '') || '/';
        if (path === '/health' || path === '/ping') {
          if (req.method !== 'GET') throw new HttpError(405, 'use GET');
          return send(res, 200, queue.health());
        }
        if (!authorized(req)) throw new HttpError(401, 'missing or wrong Authorization: Bearer <api key>');
        if (path === '/purge-queue') {
          if (req.method !== 'POST') throw new HttpError(405, 'use POST /purge-queue');
          return send(res, 200, { removed: queue.purge(), status: 'completed' });
        }
        const m = /^\/(run|runsync|status|stream|cancel)(?:\/([^/]+))?$/.exec(path);
        if (!m) throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
        const [, route, id] = m;
        if (route === 'run' || route === 'runsync') {
          if (req.method !== 'POST') throw new HttpError(405, `use POST /${route}`);
          if (id) throw new HttpError(404, `no route ${url.pathname}`);
          const rec = await submit(req, route);
          if (route === 'run') return send(res, 200, { id: rec.id, status: 'IN_QUEUE' }); // as RunPod answers /run
          const waitParam = Number(url.searchParams.get('wait') ?? NaN);
          const wait = Math.min(Number.isFinite(waitParam) && waitParam > 0 ? waitParam : (opts.runsyncWaitMs ?? 90_000), 300_000);
          const ac = new AbortController();
          res.on('close', () => ac.abort());
          const done = await queue.waitFor(rec.id, wait, ac.signal);
          return send(res, 200, statusBody(done ?? rec));
        }
        if (!id) throw new HttpError(404, `/${route} needs a job id: /${route}/{id}`);
        const rec = queue.get(id);
        if (!rec) throw new HttpError(404, `job ${id} not found (unknown, or its result expired)`);
        if (route === 'status') {
          if (req.method !== 'GET' && req.method !== 'POST') throw new HttpError(405, 'use GET');
          return send(res, 200, statusBody(rec));
        }
        if (route === 'stream') {
          if (req.method !== 'GET' && req.method !== 'POST') throw new HttpError(405, 'use GET');
          const stream: Array<{ output: unknown }> = queue.drainStream(id).map((p) => ({ output: p }));
          if (rec.status === 'COMPLETED' && !rec.streamedFinal) {
            rec.streamedFinal = true;
            stream.push({ output: rec.output });
          }
          const body: Record<string, unknown> = { id, status: rec.status, stream };
          if (TERMINAL.has(rec.status) && rec.status !== 'COMPLETED') body.error = rec.error;
          return send(res, 200, body);
        }
        // cancel
        if (req.method !== 'POST') throw new HttpError(405, 'use POST /cancel/{id}');
        queue.cancel(id);
        const after = TERMINAL.has(rec.status) ? rec : await queue.waitFor(id, 10_000);
        return send(res, 200, { id, status: (after ?? rec).status });
      } catch (err) {
        if (err instanceof HttpError) return send(res, err.status, { error: err.message });
        return send(res, 500, { error: err instanceof Error ? err.message : String(err) });
      }
    })();
  });
  // An idle keep-alive connection is closed after 5 s (Node's default, stated here on purpose).
  server.keepAliveTimeout = 5000;
  return server;
}

export async function listen(server: Server, port: number, host: string): Promise<{ url: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const h = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return { url: `http://${h}:${a.port}`, port: a.port };
}
