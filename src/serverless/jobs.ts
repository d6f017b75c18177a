/**
 * The job runner shared by the RunPod worker (src/serverless/worker.ts) and the local API
 * (src/serverless/api.ts): one job at a time, RunPod's job states, progress updates, cancellation
 * and a time limit. The handler does the work; this module owns the life cycle around it.
 *
 * States and their meaning follow RunPod's serverless API (the same names the platform's
 * /status returns): IN_QUEUE → IN_PROGRESS → COMPLETED | FAILED | CANCELLED | TIMED_OUT.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../util/logger.js';

export type JobStatus = 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';
export type TerminalStatus = Exclude<JobStatus, 'IN_QUEUE' | 'IN_PROGRESS'>;
export const TERMINAL: ReadonlySet<JobStatus> = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

/** A progress update: the step counter of the sampler and what the worker is doing. */
export interface Progress {
  stage: string;
  step?: number;
  total?: number;
  percent?: number;
  message: string;
}

/** How the result will travel: decides the payload limit the output must fit. */
export type Delivery = 'run' | 'runsync';

export interface JobContext {
  id: string;
  /** Aborted on cancellation, time limit or a ComfyUI crash; `signal.reason` says which. */
  signal: AbortSignal;
  /**
   * Wait until ComfyUI can take work. A handler checks and fetches its inputs first and calls
   * this before it touches ComfyUI, so a bad input fails at once whatever ComfyUI's state. From
   * here on a ComfyUI crash fails the job. Rejects (asking for a fresh worker) when ComfyUI does
   * not come up within its bound.
   */
  ready(): Promise<void>;
  progress(p: Progress): void;
  logger: Logger;
  delivery: Delivery;
}

export type JobHandler = (input: unknown, ctx: JobContext) => Promise<unknown>;

export interface JobOutcome {
  status: TerminalStatus;
  output?: unknown;
  error?: string;
  /** The handler asked for a fresh worker afterwards (RunPod `stopPod`). */
  refreshWorker?: boolean;
  executionTimeMs: number;
}

/** Reasons a running job is aborted (set as the AbortSignal's reason). */
export class JobCancelled extends Error {
  constructor() {
    super('the job was cancelled');
    this.name = 'JobCancelled';
  }
}
export class JobTimedOut extends Error {
  constructor(readonly ms: number) {
    super(`the job ran past its time limit of ${ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`}`);
    this.name = 'JobTimedOut';
  }
}
/** Any error a handler throws with `refreshWorker` set asks for a fresh worker (stopPod). */
export class WorkerBroken extends Error {
  readonly refreshWorker = true;
  constructor(message: string) {
    super(message);
    this.name = 'WorkerBroken';
  }
}

export interface ExecuteOptions {
  timeoutMs?: number;
  /** External abort (cancellation, shutdown, ComfyUI crash): its reason is the job's fate. */
  abort?: AbortSignal;
  /** ComfyUI readiness, awaited when the handler calls ctx.ready() (bounded by the caller). */
  ready?: (signal: AbortSignal) => Promise<void>;
  /** Aborted when ComfyUI dies; read once the job has reached ComfyUI (after ctx.ready()). */
  crashSignal?: () => AbortSignal | undefined;
  onProgress?: (p: Progress) => void;
  logger: Logger;
  delivery?: Delivery;
  /** After an abort, how long to let the handler clean up (interrupt ComfyUI) before moving on. */
  graceMs?: number;
  /**
   * When the handler fails on its own after reaching ComfyUI (ctx.ready()), how long to wait
   * for an abort to fire before taking the handler's error (default 2000 ms). A ComfyUI crash is
   * first seen by the client as a dropped socket and only a moment later by the supervisor as
   * the process exit; the exit is the error the caller needs to read. A job that failed before
   * reaching ComfyUI (bad input) is released at once.
   */
  abortSettleMs?: number;
}

/** Resolves when `signal` aborts or after `ms`, whichever comes first. */
function settle(signal: AbortSignal, ms: number): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Run one job through `handler`; never throws: every end is a JobOutcome. */
export async function executeJob(handler: JobHandler, job: { id: string; input: unknown }, opts: ExecuteOptions): Promise<JobOutcome> {
  const started = Date.now();
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.abort?.reason ?? new JobCancelled());
  if (opts.abort?.aborted) onAbort();
  else opts.abort?.addEventListener('abort', onAbort, { once: true });
  const timer = opts.timeoutMs ? setTimeout(() => ac.abort(new JobTimedOut(opts.timeoutMs!)), opts.timeoutMs) : undefined;
  let reachedComfy = false;
  let crash: AbortSignal | undefined;
  const onCrash = () => ac.abort(crash?.reason);
  const ctx: JobContext = {
    id: job.id,
    signal: ac.signal,
    logger: opts.logger,
    delivery: opts.delivery ?? 'run',
    progress: (p) => {
      if (!ac.signal.aborted) opts.onProgress?.(p);
    },
    ready: async () => {
      if (reachedComfy) return;
      if (opts.ready) {
        try {
          await opts.ready(ac.signal);
        } catch (err) {
          if (ac.signal.aborted) throw ac.signal.reason;
          throw new WorkerBroken(`ComfyUI is not ready: ${errorText(err)}`);
        }
      }
      reachedComfy = true;
      crash = opts.crashSignal?.();
      if (crash?.aborted) onCrash();
      else crash?.addEventListener('abort', onCrash, { once: true });
      if (ac.signal.aborted) throw ac.signal.reason;
    },
  };
  // The handler is expected to honour ctx.signal; should it not, the abort still ends the job
  // after a grace period, so one stuck job cannot hold the worker forever.
  const aborted = new Promise<never>((_, reject) => {
    ac.signal.addEventListener('abort', () => setTimeout(() => reject(ac.signal.reason), opts.graceMs ?? 30_000).unref(), { once: true });
  });
  const work = handler(job.input, ctx);
  work.catch(() => undefined);
  try {
    const output = await Promise.race([work, aborted]);
    if (ac.signal.aborted) return fromAbort(ac.signal.reason, started);
    return { status: 'COMPLETED', output, executionTimeMs: Date.now() - started };
  } catch (err) {
    if (!ac.signal.aborted && reachedComfy && (opts.abort || crash)) await settle(ac.signal, opts.abortSettleMs ?? 2000);
    if (ac.signal.aborted) return fromAbort(ac.signal.reason, started, err);
    const refreshWorker = Boolean((err as { refreshWorker?: boolean }).refreshWorker);
    opts.logger.debug('job %s failed: %s', job.id, err instanceof Error ? (err.stack ?? err.message) : String(err));
    return { status: 'FAILED', error: errorText(err), refreshWorker, executionTimeMs: Date.now() - started };
  } finally {
    if (timer) clearTimeout(timer);
    opts.abort?.removeEventListener('abort', onAbort);
    crash?.removeEventListener('abort', onCrash);
  }
}

function fromAbort(reason: unknown, started: number, err?: unknown): JobOutcome {
  const executionTimeMs = Date.now() - started;
  if (reason instanceof JobCancelled) return { status: 'CANCELLED', error: reason.message, executionTimeMs };
  if (reason instanceof JobTimedOut) return { status: 'TIMED_OUT', error: reason.message, executionTimeMs };
  // Any other abort (ComfyUI died, worker shutting down) fails the job with that reason.
  const refreshWorker = Boolean((reason as { refreshWorker?: boolean })?.refreshWorker);
  return { status: 'FAILED', error: errorText(reason ?? err), refreshWorker, executionTimeMs };
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

// ---------------------------------------------------------------------------------------------
// The local queue behind `steadydancer serve`.

export interface JobRecord {
  id: string;
  input: unknown;
  status: JobStatus;
  delivery: Delivery;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  output?: unknown;
  error?: string;
  /** The latest progress update (shown as `output` while IN_PROGRESS, as RunPod does). */
  progress?: Progress;
  /** Progress updates not yet read through /stream. */
  pending: Progress[];
  /** /stream already handed out the final output. */
  streamedFinal?: boolean;
  timeoutMs?: number;
  abort: AbortController;
}

export interface QueueOptions {
  handler: JobHandler;
  logger: Logger;
  /** Default time limit per job (ms); a request's policy.executionTimeout overrides it. */
  timeoutMs?: number;
  /** How long finished jobs stay readable (ms). */
  retainMs?: number;
  /** Extra abort source for the running job once it reached ComfyUI (e.g. ComfyUI crashed). */
  runningAbort?: () => AbortSignal | undefined;
  /**
   * ComfyUI readiness (e.g. wait until ComfyUI is up again), awaited inside the job when the
   * handler asks (ctx.ready()), after its inputs are checked: a bad input fails at once.
   */
  beforeJob?: (signal: AbortSignal) => Promise<void>;
  graceMs?: number;
  /** Most jobs waiting (not counting the running one); past it submit throws QueueFull. */
  maxQueue?: number;
}

/** The queue is at its cap (the API answers 429). */
export class QueueFull extends Error {
  constructor(readonly waiting: number) {
    super(`the queue is full (${waiting} jobs waiting, MAX_QUEUE=${waiting}); retry later`);
    this.name = 'QueueFull';
  }
}

/** An in-memory FIFO of jobs run one at a time. */
export class JobQueue extends EventEmitter {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly waiting: string[] = [];
  private running: JobRecord | undefined;
  private counters = { completed: 0, failed: 0, cancelled: 0, timedOut: 0 };
  private closed = false;

  constructor(private readonly opts: QueueOptions) {
    super();
    this.setMaxListeners(0);
  }

  submit(input: unknown, opts: { delivery: Delivery; timeoutMs?: number; id?: string }): JobRecord {
    if (this.closed) throw new Error('the queue is shutting down');
    if (this.opts.maxQueue !== undefined && this.waiting.length >= this.opts.maxQueue) throw new QueueFull(this.waiting.length);
    const rec: JobRecord = {
      id: opts.id ?? (opts.delivery === 'runsync' ? 'sync-' : '') + randomUUID(),
      input,
      status: 'IN_QUEUE',
      delivery: opts.delivery,
      createdAt: Date.now(),
      pending: [],
      timeoutMs: opts.timeoutMs ?? this.opts.timeoutMs,
      abort: new AbortController(),
    };
    this.jobs.set(rec.id, rec);
    this.waiting.push(rec.id);
    this.emit('update', rec);
    queueMicrotask(() => void this.pump());
    return rec;
  }

  get(id: string): JobRecord | undefined {
    return this.jobs.get(id);
  }

  /** Cancel a queued or running job; returns the record, or undefined when unknown. */
  cancel(id: string): JobRecord | undefined {
    const rec = this.jobs.get(id);
    if (!rec) return undefined;
    const at = this.waiting.indexOf(id);
    if (at >= 0) {
      this.waiting.splice(at, 1);
      this.finish(rec, { status: 'CANCELLED', error: 'the job was cancelled', executionTimeMs: 0 });
    } else if (!TERMINAL.has(rec.status)) {
      rec.abort.abort(new JobCancelled());
    }
    return rec;
  }

  /** Resolves when the job is terminal or `ms` passed; returns the record either way. */
  async waitFor(id: string, ms: number, signal?: AbortSignal): Promise<JobRecord | undefined> {
    const rec = this.jobs.get(id);
    if (!rec || TERMINAL.has(rec.status)) return rec;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.off('update', on);
        signal?.removeEventListener('abort', done);
        resolve(rec);
      };
      const on = (r: JobRecord) => {
        if (r.id === id && TERMINAL.has(r.status)) done();
      };
      const t = setTimeout(done, ms);
      this.on('update', on);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Progress updates since the last call (RunPod's /stream hands each out once). */
  drainStream(id: string): Progress[] {
    const rec = this.jobs.get(id);
    if (!rec) return [];
    return rec.pending.splice(0, rec.pending.length);
  }

  /** Drop every waiting job (RunPod's /purge-queue; the running one goes on). Returns how many. */
  purge(): number {
    const ids = this.waiting.splice(0, this.waiting.length);
    for (const id of ids) this.finish(this.jobs.get(id)!, { status: 'CANCELLED', error: 'the job was removed by /purge-queue', executionTimeMs: 0 });
    return ids.length;
  }

  health() {
    return {
      jobs: {
        completed: this.counters.completed,
        failed: this.counters.failed + this.counters.timedOut,
        cancelled: this.counters.cancelled,
        inProgress: this.running ? 1 : 0,
        inQueue: this.waiting.length,
        retried: 0,
      },
      workers: { idle: this.running ? 0 : 1, running: this.running ? 1 : 0, ready: 1, initializing: 0, throttled: 0, unhealthy: 0 },
    };
  }

  /** Stop taking jobs; cancel the queued ones and abort the running one. */
  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.waiting]) this.cancel(id);
    if (this.running) {
      const r = this.running;
      r.abort.abort(new JobCancelled());
      await this.waitFor(r.id, 60_000);
    }
  }

  private finish(rec: JobRecord, outcome: JobOutcome): void {
    rec.status = outcome.status;
    rec.finishedAt = Date.now();
    if (outcome.status === 'COMPLETED') rec.output = outcome.output;
    else rec.error = outcome.error;
    if (outcome.status === 'COMPLETED') this.counters.completed++;
    else if (outcome.status === 'FAILED') this.counters.failed++;
    else if (outcome.status === 'CANCELLED') this.counters.cancelled++;
    else this.counters.timedOut++;
    rec.input = undefined; // inputs can be large; not needed once done
    this.emit('update', rec);
    const retain = this.opts.retainMs ?? 30 * 60_000;
    setTimeout(() => this.jobs.delete(rec.id), retain).unref();
  }

  private async pump(): Promise<void> {
    if (this.running || this.closed) return;
    const id = this.waiting.shift();
    if (!id) return;
    const rec = this.jobs.get(id)!;
    this.running = rec;
    try {
      rec.status = 'IN_PROGRESS';
      rec.startedAt = Date.now();
      this.emit('update', rec);
      const outcome = await executeJob(
        this.opts.handler,
        { id: rec.id, input: rec.input },
        {
          logger: this.opts.logger,
          timeoutMs: rec.timeoutMs,
          abort: rec.abort.signal,
          ready: this.opts.beforeJob,
          crashSignal: this.opts.runningAbort,
          delivery: rec.delivery,
          graceMs: this.opts.graceMs,
          onProgress: (p) => {
            rec.progress = p;
            rec.pending.push(p);
            this.emit('update', rec);
          },
        },
      );
      this.finish(rec, outcome);
    } catch (err) {
      const outcome: JobOutcome = rec.abort.signal.aborted
        ? { status: 'CANCELLED', error: 'the job was cancelled', executionTimeMs: 0 }
        : { status: 'FAILED', error: errorText(err), executionTimeMs: 0 };
      this.finish(rec, outcome);
    } finally {
      this.running = undefined;
      void this.pump();
    }
  }
}
