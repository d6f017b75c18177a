/**
 * One client for both places a dance job can run: the local API (`steadydancer serve`,
 * default http://127.0.0.1:8000) and a RunPod serverless endpoint
 * (https://api.runpod.ai/v2/<endpoint id>, `Authorization: Bearer $RUNPOD_API_KEY`).
 * Both speak the same routes, so the only difference is the base URL and the key.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { request } from 'undici';
import { ActionableError, UsageError } from '../util/errors.js';
import type { DanceOutput } from '../job/output.js';
import { TERMINAL, type JobStatus, type Progress } from './jobs.js';
import { RUN_LIMIT_BYTES } from '../job/output.js';

export interface Endpoint {
  base: string;
  apiKey?: string;
  kind: 'local' | 'runpod' | 'url';
}

/** `local`, a RunPod endpoint id, or a full http(s) base URL. */
export function resolveEndpoint(spec: string, env: NodeJS.ProcessEnv): Endpoint {
  if (spec === 'local') {
    return { base: (env.STEADYDANCER_API_URL || 'http://127.0.0.1:8000').replace(/\/+$/, ''), apiKey: env.STEADYDANCER_API_KEY || undefined, kind: 'local' };
  }
  if (/^https?:\/\//.test(spec)) return { base: spec.replace(/\/+$/, ''), apiKey: env.STEADYDANCER_API_KEY || env.RUNPOD_API_KEY || undefined, kind: 'url' };
  if (!/^[a-z0-9-]{4,64}$/i.test(spec)) throw new UsageError(`--endpoint ${spec}: expected "local", a RunPod endpoint id or an http(s) URL`);
  const apiKey = env.RUNPOD_API_KEY;
  if (!apiKey) throw new ActionableError('RUNPOD_API_KEY is not set', { hint: 'export RUNPOD_API_KEY=<your RunPod API key> (Settings → API Keys)', code: 'E_NO_KEY', exitCode: 2 });
  return { base: `${(env.RUNPOD_API_BASE || 'https://api.runpod.ai/v2').replace(/\/+$/, '')}/${spec}`, apiKey, kind: 'runpod' };
}

export interface StatusBody {
  id: string;
  status: JobStatus;
  output?: unknown;
  error?: string;
  delayTime?: number;
  executionTime?: number;
}

export class EndpointClient {
  constructor(private readonly ep: Endpoint) {}

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.ep.apiKey) headers.authorization = `Bearer ${this.ep.apiKey}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let r;
    try {
      r = await request(`${this.ep.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, headersTimeout: 330_000, bodyTimeout: 330_000 });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new ActionableError(`cannot reach ${this.ep.base}: ${(err as Error).message}`, {
        hint: this.ep.kind === 'local' ? 'start the local API (`steadydancer serve`, or `docker compose up` with STEADYDANCER_MODE=api)' : 'check the endpoint id and your network',
        code: 'E_UNREACHABLE',
      });
    }
    const text = await r.body.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { error: text.slice(0, 200) };
    }
    if (r.statusCode === 401 || r.statusCode === 403)
      throw new ActionableError(`${this.ep.base} refused the API key (HTTP ${r.statusCode})`, {
        hint: this.ep.kind === 'runpod' ? 'check RUNPOD_API_KEY' : 'check STEADYDANCER_API_KEY',
        code: 'E_AUTH',
      });
    if (r.statusCode >= 400) throw new ActionableError(`${method} ${path}: HTTP ${r.statusCode}: ${(parsed as { error?: string }).error ?? text.slice(0, 200)}`, { code: 'E_API' });
    return parsed as T;
  }

  run(input: unknown, signal?: AbortSignal) {
    return this.call<{ id: string; status: JobStatus }>('POST', '/run', { input }, signal);
  }
  status(id: string, signal?: AbortSignal) {
    return this.call<StatusBody>('GET', `/status/${encodeURIComponent(id)}`, undefined, signal);
  }
  stream(id: string, signal?: AbortSignal) {
    return this.call<{ status: JobStatus; stream?: Array<{ output: unknown }>; error?: string }>('GET', `/stream/${encodeURIComponent(id)}`, undefined, signal);
  }
  cancel(id: string) {
    return this.call<{ id: string; status: JobStatus }>('POST', `/cancel/${encodeURIComponent(id)}`);
  }
  health() {
    return this.call<Record<string, unknown>>('GET', '/health');
  }
}

const MIME: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mov': 'video/quicktime',
  '.mkv': 'video/x-matroska',
};

/** A file path becomes a base64 data URI; an http(s) URL is passed on as is. */
export async function mediaField(flag: string, value: string): Promise<string> {
  if (/^https?:\/\//.test(value)) return value;
  let bytes: Buffer;
  try {
    bytes = await readFile(value);
  } catch (err) {
    throw new UsageError(`${flag} ${value}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const mime = MIME[extname(value).toLowerCase()] ?? 'application/octet-stream';
  return `data:${mime};base64,${bytes.toString('base64')}`;
}

export interface GenerateOptions {
  endpoint: Endpoint;
  input: Record<string, unknown>;
  out: string;
  pollMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: Progress | string) => void;
  onSubmitted?: (id: string) => void;
}

export interface GenerateResult {
  id: string;
  status: JobStatus;
  out: string;
  bytes: number;
  source: 'base64' | 's3_url';
  seed: number;
  timings: Record<string, number>;
}

/** Submit, follow progress, fetch the mp4 and write it. Cancels the job on abort. */
export async function generate(opts: GenerateOptions): Promise<GenerateResult> {
  const client = new EndpointClient(opts.endpoint);
  const size = Buffer.byteLength(JSON.stringify({ input: opts.input }));
  if (size > RUN_LIMIT_BYTES) {
    throw new UsageError(`the request is ${(size / 1024 / 1024).toFixed(1)} MB, over the 10 MB limit of /run`, 'pass --image/--video as https URLs instead of local files');
  }
  const { id } = await client.run(opts.input, opts.signal);
  opts.onSubmitted?.(id);
  let final: StatusBody | undefined;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw opts.signal.reason as Error;
      const s = await client.stream(id, opts.signal);
      for (const item of s.stream ?? []) {
        const o = item.output as Progress | undefined;
        if (o && typeof o === 'object' && 'message' in o) opts.onProgress?.(o);
      }
      if (TERMINAL.has(s.status)) {
        final = await client.status(id, opts.signal);
        break;
      }
      if (s.status === 'IN_QUEUE') opts.onProgress?.('waiting in the queue');
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000));
    }
  } catch (err) {
    if (opts.signal?.aborted) {
      await client.cancel(id).catch(() => undefined);
      throw new ActionableError(`interrupted; job ${id} was cancelled`, { code: 'E_INTERRUPTED', exitCode: 130 });
    }
    throw err;
  }
  if (final.status !== 'COMPLETED') {
    throw new ActionableError(`job ${id} ${final.status}: ${final.error ?? 'no error text'}`, { code: `E_JOB_${final.status}` });
  }
  const out = final.output as DanceOutput | undefined;
  if (!out?.video?.data) throw new ActionableError(`job ${id} completed without a video in its output`, { code: 'E_NO_VIDEO' });
  let bytes: Buffer;
  if (out.video.type === 's3_url') {
    const r = await request(out.video.data, { signal: opts.signal });
    if (r.statusCode !== 200) {
      await r.body.dump();
      throw new ActionableError(`downloading the result from S3 failed: HTTP ${r.statusCode}`, { hint: 'the presigned URL may have expired', code: 'E_S3' });
    }
    bytes = Buffer.from(await r.body.arrayBuffer());
  } else {
    bytes = Buffer.from(out.video.data, 'base64');
  }
  await writeFile(opts.out, bytes);
  return { id, status: final.status, out: opts.out, bytes: bytes.length, source: out.video.type, seed: out.seed, timings: out.timings ?? {} };
}
