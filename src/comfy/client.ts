/**
 * ComfyUI HTTP + WebSocket client: /system_stats, /object_info, /upload/image, POST /prompt,
 * /ws events, /history/{id}, /view, /interrupt, /queue. Every call takes an AbortSignal.
 *
 * Errors are typed so that callers (smoke, the worker, generate) can tell the user what happened:
 *   ComfyUnreachableError   – connection refused / DNS / timeout: ComfyUI is not running there
 *   ComfyHttpError          – an unexpected HTTP status, with the body text
 *   PromptValidationError   – POST /prompt answered 400: the per-node errors, with node ids
 *   ExecutionError          – the job failed in a node (node id, type, exception message)
 *   ExecutionInterruptedError – the job was interrupted (/interrupt or a crash)
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import WebSocket from 'ws';
import { ActionableError } from '../util/errors.js';

export class ComfyUnreachableError extends ActionableError {
  constructor(url: string, cause: unknown) {
    super(`ComfyUI is not reachable at ${url}: ${describeCause(cause)}`, {
      hint: 'start it (`steadydancer up`, or python main.py --listen) and check the URL/port',
      code: 'E_COMFY_UNREACHABLE',
      cause,
    });
    this.name = 'ComfyUnreachableError';
  }
}

export class ComfyHttpError extends ActionableError {
  constructor(
    readonly status: number,
    readonly path: string,
    readonly body: string,
  ) {
    super(`ComfyUI answered ${status} to ${path}: ${body.slice(0, 500)}`, { code: 'E_COMFY_HTTP' });
    this.name = 'ComfyHttpError';
  }
}

export interface NodeError {
  nodeId: string;
  classType: string | undefined;
  errors: { type: string; message: string; details: string }[];
}

export class PromptValidationError extends ActionableError {
  constructor(
    readonly error: { type: string; message: string; details: string },
    readonly nodeErrors: NodeError[],
  ) {
    const nodes = nodeErrors
      .map((n) => `node ${n.nodeId}${n.classType ? ` (${n.classType})` : ''}: ${n.errors.map((e) => `${e.message}${e.details ? ` – ${e.details}` : ''}`).join('; ')}`)
      .join('\n  ');
    super(`ComfyUI rejected the workflow: ${error.message}${error.details ? ` (${error.details})` : ''}${nodes ? `\n  ${nodes}` : ''}`, {
      hint: 'a missing node type means the node pack is not installed; a value not in a list usually means a model file is missing',
      code: 'E_PROMPT_INVALID',
    });
    this.name = 'PromptValidationError';
  }
}

export class ExecutionError extends ActionableError {
  constructor(
    readonly promptId: string,
    readonly nodeId: string,
    readonly nodeType: string,
    readonly exceptionType: string,
    readonly exceptionMessage: string,
    readonly traceback: string[],
  ) {
    super(`ComfyUI job ${promptId} failed in node ${nodeId} (${nodeType}): ${exceptionType}: ${exceptionMessage.trim()}`, {
      code: 'E_COMFY_EXECUTION',
    });
    this.name = 'ExecutionError';
  }
}

export class ExecutionInterruptedError extends ActionableError {
  constructor(
    readonly promptId: string,
    readonly nodeId: string | undefined,
  ) {
    super(`ComfyUI job ${promptId} was interrupted${nodeId ? ` in node ${nodeId}` : ''}`, { code: 'E_COMFY_INTERRUPTED' });
    this.name = 'ExecutionInterruptedError';
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = (cause as Error & { cause?: unknown }).cause;
    const code = (inner as { code?: string } | undefined)?.code ?? (cause as { code?: string }).code;
    return code ? `${code} (${(inner as Error | undefined)?.message ?? cause.message})` : cause.message;
  }
  return String(cause);
}

export interface FileRef {
  filename: string;
  subfolder: string;
  type: string;
}

export interface HistoryEntry {
  prompt: unknown;
  outputs: Record<string, Record<string, unknown>>;
  status?: { status_str?: string; completed?: boolean; messages?: [string, Record<string, unknown>][] };
}

/** The WebSocket events a job goes through, as typed objects. */
export type ComfyEvent =
  | { type: 'status'; queueRemaining: number | undefined }
  | { type: 'execution_start'; promptId: string }
  | { type: 'execution_cached'; promptId: string; nodes: string[] }
  | { type: 'executing'; promptId: string; node: string | null }
  | { type: 'progress'; promptId: string; node: string | undefined; value: number; max: number }
  | { type: 'executed'; promptId: string; node: string; output: Record<string, unknown> }
  | { type: 'execution_success'; promptId: string }
  | { type: 'execution_error'; promptId: string; nodeId: string; nodeType: string; exceptionType: string; exceptionMessage: string; traceback: string[] }
  | { type: 'execution_interrupted'; promptId: string; nodeId: string | undefined }
  | { type: 'other'; name: string; data: unknown };

export function parseEvent(raw: unknown): ComfyEvent | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const { type, data } = raw as { type?: string; data?: Record<string, unknown> };
  if (typeof type !== 'string') return undefined;
  const d = (data ?? {}) as Record<string, unknown>;
  const pid = String(d.prompt_id ?? '');
  switch (type) {
    case 'status': {
      const ei = (d.status as { exec_info?: { queue_remaining?: number } } | undefined)?.exec_info;
      return { type, queueRemaining: ei?.queue_remaining };
    }
    case 'execution_start':
    case 'execution_success':
      return { type, promptId: pid };
    case 'execution_cached':
      return { type, promptId: pid, nodes: (d.nodes as string[] | undefined) ?? [] };
    case 'executing':
      return { type, promptId: pid, node: (d.node as string | null | undefined) ?? null };
    case 'progress':
      return { type, promptId: pid, node: d.node as string | undefined, value: Number(d.value), max: Number(d.max) };
    case 'executed':
      return { type, promptId: pid, node: String(d.node), output: (d.output as Record<string, unknown>) ?? {} };
    case 'execution_error':
      return {
        type,
        promptId: pid,
        nodeId: String(d.node_id ?? ''),
        nodeType: String(d.node_type ?? ''),
        exceptionType: String(d.exception_type ?? ''),
        exceptionMessage: String(d.exception_message ?? ''),
        traceback: (d.traceback as string[] | undefined) ?? [],
      };
    case 'execution_interrupted':
      return { type, promptId: pid, nodeId: d.node_id === undefined ? undefined : String(d.node_id) };
    default:
      return { type: 'other', name: type, data: d };
  }
}

export interface ComfyClientOptions {
  /** Base URL, e.g. http://127.0.0.1:8188 */
  url: string;
  clientId?: string;
  /** Per-request timeout for plain HTTP calls (ms); jobs are bounded by the caller's signal. */
  requestTimeoutMs?: number;
}

export interface UploadResult {
  name: string;
  subfolder: string;
  type: string;
}

export interface RunResult {
  promptId: string;
  outputs: Record<string, Record<string, unknown>>;
  /** Node ids served from ComfyUI's cache. */
  cached: string[];
}

export interface RunOptions {
  signal?: AbortSignal;
  onEvent?: (ev: ComfyEvent) => void;
  /** Interrupt the job in ComfyUI when the signal aborts (default true). */
  interruptOnAbort?: boolean;
}

export class ComfyClient {
  readonly url: string;
  readonly clientId: string;
  private readonly timeoutMs: number;

  constructor(opts: ComfyClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.clientId = opts.clientId ?? randomUUID();
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
  }

  private async request(path: string, init: RequestInit & { signal?: AbortSignal } = {}): Promise<Response> {
    const signals = [AbortSignal.timeout(this.timeoutMs)];
    if (init.signal) signals.push(init.signal);
    let res: Response;
    try {
      res = await fetch(this.url + path, { ...init, signal: AbortSignal.any(signals) });
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason ?? err;
      throw new ComfyUnreachableError(this.url, err);
    }
    return res;
  }

  private async json<T>(path: string, init: RequestInit & { signal?: AbortSignal } = {}): Promise<T> {
    const res = await this.request(path, init);
    const text = await res.text();
    if (!res.ok) throw new ComfyHttpError(res.status, path, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ComfyHttpError(res.status, path, `not JSON: ${text.slice(0, 200)}`);
    }
  }

  systemStats(signal?: AbortSignal): Promise<{ system: Record<string, unknown>; devices: Record<string, unknown>[] }> {
    return this.json('/system_stats', { signal });
  }

  objectInfo(signal?: AbortSignal): Promise<Record<string, { input?: Record<string, unknown>; output?: string[]; [k: string]: unknown }>> {
    return this.json('/object_info', { signal });
  }

  /** Node types from `types` that this ComfyUI does not know. */
  async missingNodeTypes(types: Iterable<string>, signal?: AbortSignal): Promise<string[]> {
    const info = await this.objectInfo(signal);
    return [...new Set(types)].filter((t) => !(t in info)).sort();
  }

  /** Upload a file into ComfyUI's input folder (videos go through /upload/image too). */
  async upload(file: string | { data: Uint8Array; name: string }, opts: { subfolder?: string; overwrite?: boolean; signal?: AbortSignal } = {}): Promise<UploadResult> {
    const data = typeof file === 'string' ? await readFile(file) : file.data;
    const name = typeof file === 'string' ? basename(file) : file.name;
    const form = new FormData();
    form.append('image', new Blob([data]), name);
    form.append('type', 'input');
    if (opts.subfolder) form.append('subfolder', opts.subfolder);
    form.append('overwrite', opts.overwrite === false ? 'false' : 'true');
    return this.json('/upload/image', { method: 'POST', body: form, signal: opts.signal });
  }

  /** POST /prompt; a 400 becomes a PromptValidationError listing the failing nodes. */
  async queuePrompt(prompt: Record<string, unknown>, opts: { signal?: AbortSignal; extraData?: Record<string, unknown> } = {}): Promise<{ promptId: string; number: number }> {
    const res = await this.request('/prompt', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, client_id: this.clientId, ...(opts.extraData ? { extra_data: opts.extraData } : {}) }),
      signal: opts.signal,
    });
    const text = await res.text();
    let body: Record<string, unknown> | undefined;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = undefined;
    }
    if (res.status === 400 && body && typeof body.error === 'object') {
      const e = body.error as { type?: string; message?: string; details?: string };
      const ne = (body.node_errors ?? {}) as Record<string, { errors?: { type?: string; message?: string; details?: string }[]; class_type?: string }>;
      throw new PromptValidationError(
        { type: e.type ?? '', message: e.message ?? 'invalid prompt', details: e.details ?? '' },
        Object.entries(ne).map(([nodeId, v]) => ({
          nodeId,
          classType: v.class_type,
          errors: (v.errors ?? []).map((x) => ({ type: x.type ?? '', message: x.message ?? '', details: x.details ?? '' })),
        })),
      );
    }
    if (!res.ok || !body || typeof body.prompt_id !== 'string') throw new ComfyHttpError(res.status, '/prompt', text);
    return { promptId: body.prompt_id, number: Number(body.number ?? 0) };
  }

  async history(promptId: string, signal?: AbortSignal): Promise<HistoryEntry | undefined> {
    const h = await this.json<Record<string, HistoryEntry>>(`/history/${encodeURIComponent(promptId)}`, { signal });
    return h[promptId];
  }

  /** Download an output (or input/temp) file through /view. */
  async view(ref: FileRef, signal?: AbortSignal): Promise<Buffer> {
    const q = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? '', type: ref.type ?? 'output' });
    const path = `/view?${q}`;
    const res = await this.request(path, { signal });
    if (!res.ok) throw new ComfyHttpError(res.status, path, await res.text());
    return Buffer.from(await res.arrayBuffer());
  }

  async interrupt(promptId?: string, signal?: AbortSignal): Promise<void> {
    const res = await this.request('/interrupt', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(promptId ? { prompt_id: promptId } : {}),
      signal,
    });
    if (!res.ok) throw new ComfyHttpError(res.status, '/interrupt', await res.text());
  }

  queue(signal?: AbortSignal): Promise<{ queue_running: unknown[]; queue_pending: unknown[] }> {
    return this.json('/queue', { signal });
  }

  /** Remove pending prompts from the queue. */
  async deleteFromQueue(promptIds: string[], signal?: AbortSignal): Promise<void> {
    const res = await this.request('/queue', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ delete: promptIds }),
      signal,
    });
    if (!res.ok) throw new ComfyHttpError(res.status, '/queue', await res.text());
  }

  /** Open the /ws event stream for this client id. Resolves once connected. */
  connect(signal?: AbortSignal): Promise<ComfySocket> {
    const wsUrl = `${this.url.replace(/^http/, 'ws')}/ws?clientId=${encodeURIComponent(this.clientId)}`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl);
      const onAbort = () => {
        ws.terminate();
        reject(signal?.reason ?? new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      ws.once('open', () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(new ComfySocket(ws));
      });
      ws.once('error', (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(new ComfyUnreachableError(this.url, err));
      });
    });
  }

  /**
   * Queue a workflow and follow it over the WebSocket to the end. Resolves with the outputs from
   * /history; rejects with ExecutionError / ExecutionInterruptedError / PromptValidationError, or
   * with ComfyUnreachableError when the socket drops (ComfyUI died mid-job). On abort the job is
   * interrupted (or removed from the queue) in ComfyUI, then the signal's reason is thrown.
   */
  async run(prompt: Record<string, unknown>, opts: RunOptions = {}): Promise<RunResult> {
    const { signal } = opts;
    signal?.throwIfAborted();
    // Connect before queueing so no event of this job can be missed.
    const sock = await this.connect(signal);
    let promptId: string | undefined;
    try {
      ({ promptId } = await this.queuePrompt(prompt, { signal }));
      const pid = promptId;
      const cached: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal?.reason ?? new Error('aborted'));
        signal?.addEventListener('abort', onAbort, { once: true });
        const done = (err?: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          sock.off();
          if (err) reject(err);
          else resolve();
        };
        sock.on(
          (ev) => {
            if ('promptId' in ev && ev.promptId && ev.promptId !== pid) return;
            opts.onEvent?.(ev);
            if (ev.type === 'execution_cached') cached.push(...ev.nodes);
            else if (ev.type === 'execution_error') done(new ExecutionError(pid, ev.nodeId, ev.nodeType, ev.exceptionType, ev.exceptionMessage, ev.traceback));
            else if (ev.type === 'execution_interrupted') done(new ExecutionInterruptedError(pid, ev.nodeId));
            else if (ev.type === 'execution_success' || (ev.type === 'executing' && ev.node === null)) done();
          },
          (err) => done(new ComfyUnreachableError(this.url, err)),
        );
      });
      // ComfyUI announces the end over the socket before its worker thread files the job in
      // /history: give the history a moment (bounded) to appear.
      let h = await this.history(pid, signal);
      for (let i = 0; !h && i < 50; i++) {
        await new Promise((r) => setTimeout(r, 100));
        h = await this.history(pid, signal);
      }
      if (!h) throw new ComfyHttpError(404, `/history/${pid}`, 'the finished job is not in the history');
      return { promptId: pid, outputs: h.outputs ?? {}, cached };
    } catch (err) {
      if (signal?.aborted && promptId && opts.interruptOnAbort !== false) {
        // Best effort: remove it if still pending, interrupt it if running.
        await this.deleteFromQueue([promptId]).catch(() => undefined);
        await this.interrupt(promptId).catch(() => undefined);
      }
      throw err;
    } finally {
      sock.close();
    }
  }
}

/** A connected /ws stream; JSON messages become ComfyEvents, binary previews are ignored. */
export class ComfySocket {
  private listener: ((ev: ComfyEvent) => void) | undefined;
  private failure: ((err: unknown) => void) | undefined;

  constructor(private readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary || !this.listener) return;
      let raw: unknown;
      try {
        raw = JSON.parse(data.toString());
      } catch {
        return;
      }
      const ev = parseEvent(raw);
      if (ev) this.listener(ev);
    });
    ws.on('close', (code) => this.failure?.(new Error(`the ComfyUI WebSocket closed (code ${code}) before the job finished`)));
    ws.on('error', (err) => this.failure?.(err));
  }

  on(listener: (ev: ComfyEvent) => void, onFailure?: (err: unknown) => void): void {
    this.listener = listener;
    this.failure = onFailure;
  }

  off(): void {
    this.listener = undefined;
    this.failure = undefined;
  }

  close(): void {
    this.off();
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}

/** Poll /system_stats until ComfyUI answers or the time is up. */
export async function waitForComfy(url: string, opts: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal; isDead?: () => string | undefined }): Promise<void> {
  const client = new ComfyClient({ url, requestTimeoutMs: 5_000 });
  const deadline = Date.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    opts.signal?.throwIfAborted();
    const dead = opts.isDead?.();
    if (dead) throw new ActionableError(`ComfyUI stopped before it was ready: ${dead}`, { code: 'E_COMFY_DIED' });
    try {
      await client.systemStats(opts.signal);
      return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new ActionableError(`ComfyUI at ${url} did not answer /system_stats within ${Math.round(opts.timeoutMs / 1000)} s (last: ${describeCause(last)})`, {
        code: 'E_COMFY_TIMEOUT',
        hint: 'look at its log; model loading or a first start can take minutes: raise the timeout',
      });
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
  }
}
