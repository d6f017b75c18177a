/**
 * The RunPod serverless worker: RunPod's queue protocol, in our own words. Learned from
 * runpod-python (runpod/serverless/modules/rp_job.py, rp_http.py, rp_progress.py, rp_ping.py,
 * worker_state.py, rp_scale.py, http_client.py):
 *  - take a job: GET $RUNPOD_WEBHOOK_GET_JOB with `$ID` replaced by the worker id
 *    (RUNPOD_POD_ID) and `job_in_progress=0|1` appended; 204 = nothing to do, 400 = nothing
 *    (FlashBoot), 429 = back off, 200 = `{id, input}` (or a list of them);
 *  - report: POST to $RUNPOD_WEBHOOK_POST_OUTPUT with `$ID` replaced by the job id (and
 *    `isStream=false`); the body is JSON text: `{output}` or `{error}`, plus `stopPod: true`
 *    when the worker must be replaced (runpod-python's `refresh_worker`); progress goes to the
 *    same URL as `{status: "IN_PROGRESS", output: <progress>}` (rp_progress.py);
 *  - heartbeat: GET $RUNPOD_WEBHOOK_PING (`$RUNPOD_POD_ID` replaced) every
 *    $RUNPOD_PING_INTERVAL ms with `job_id=<ids in progress, comma-separated>`;
 *  - every request carries `Authorization: $RUNPOD_AI_API_KEY` (the bare key, no "Bearer");
 *  - per-job stop: when the job-take URL has `/job-take/`, `/job-stop/` on the same URL is
 *    long-polled while a job runs and answers `{jobsToStop: [ids]}` (rp_job.py); after an
 *    empty answer (204 or an empty list) the next poll waits at least 1 s (rp_scale.py's floor
 *    delay); a stopped job is dropped without any post (runpod-python cancels its task);
 *  - SIGTERM (rp_scale.py handle_shutdown): no new job is taken, the running one finishes and
 *    posts its result. Ours bounds that by RUNPOD_GRACE_S, after which the job is failed with
 *    a reason, so that a result is posted before the platform's SIGKILL.
 * One job at a time. A job's inputs are checked before ComfyUI readiness is awaited (bounded,
 * inside the job: ctx.ready()), so a bad input fails at once whatever ComfyUI's state.
 * Progress posts are coalesced (progress.ts): at most one per second and per sampling step.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import type { Logger } from '../util/logger.js';
import { executeJob, JobCancelled, type JobHandler, type JobOutcome, type Progress } from './jobs.js';
import { ProgressCoalescer } from './progress.js';

export const WORKER_VERSION = 'steadydancer-worker/0.1';

export interface WorkerConfig {
  getJobUrl: string;
  postOutputUrl: string;
  pingUrl?: string;
  pingIntervalMs: number;
  apiKey: string;
  workerId: string;
  /** Per-job time limit (ms); 0 = none. */
  jobTimeoutMs: number;
  /** Ask for a fresh worker after every job (worker-comfyui's REFRESH_WORKER). */
  refreshAfterEachJob: boolean;
  /** Delay after a 204/400 before asking again (the platform long-polls; keep it short). */
  idleDelayMs: number;
  /** Delay after a 429 (rp_scale.py waits 5 s). */
  backoffMs: number;
  /** Delay after a network or server error. */
  errorDelayMs: number;
  /** Least pause after an empty job-stop answer (runpod-python: 1 s). */
  stopPollFloorMs: number;
  /** After SIGTERM, how long the running job may take before it is failed (RUNPOD_GRACE_S). */
  graceMs: number;
  /** Least time between two progress posts of a job. */
  progressIntervalMs: number;
}

/**
 * The default of RUNPOD_GRACE_S: the time between SIGTERM and SIGKILL when a container is
 * stopped. RunPod's documentation does not give the window for serverless workers; 10 s is
 * Docker's `docker stop` default, the runtime behaviour a RunPod container gets unless the
 * platform says otherwise. Set RUNPOD_GRACE_S when the platform's window is known to differ.
 */
export const DEFAULT_GRACE_S = 10;

/** The worker's settings from RunPod's environment; throws naming what is missing. */
export function workerConfigFromEnv(env: NodeJS.ProcessEnv): WorkerConfig {
  const need = (k: string) => {
    const v = env[k];
    if (!v) throw new Error(`${k} is not set: the worker runs inside a RunPod serverless endpoint (or a test job server that sets it)`);
    return v;
  };
  const workerId = env.RUNPOD_POD_ID || randomUUID();
  return {
    getJobUrl: need('RUNPOD_WEBHOOK_GET_JOB').replaceAll('$ID', workerId),
    postOutputUrl: need('RUNPOD_WEBHOOK_POST_OUTPUT').replaceAll('$RUNPOD_POD_ID', workerId),
    pingUrl: env.RUNPOD_WEBHOOK_PING ? env.RUNPOD_WEBHOOK_PING.replaceAll('$RUNPOD_POD_ID', workerId) : undefined,
    pingIntervalMs: Number(env.RUNPOD_PING_INTERVAL || 10_000),
    apiKey: env.RUNPOD_AI_API_KEY ?? '',
    workerId,
    jobTimeoutMs: Number(env.JOB_TIMEOUT_MS || 0),
    refreshAfterEachJob: /^(1|true|yes)$/i.test(env.REFRESH_WORKER ?? ''),
    idleDelayMs: Number(env.WORKER_IDLE_DELAY_MS || 100),
    backoffMs: Number(env.WORKER_BACKOFF_MS || 5000),
    errorDelayMs: Number(env.WORKER_ERROR_DELAY_MS || 1000),
    stopPollFloorMs: 1000,
    graceMs: seconds('RUNPOD_GRACE_S', env.RUNPOD_GRACE_S, DEFAULT_GRACE_S) * 1000,
    progressIntervalMs: 1000,
  };
}

function seconds(name: string, v: string | undefined, def: number): number {
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: expected a number of seconds ≥ 0`);
  return n;
}

/** Append query parameters whether or not the URL already has a query. */
export function withQuery(url: string, params: Record<string, string>): string {
  const q = new URLSearchParams(params).toString();
  return url + (url.includes('?') ? '&' : '?') + q;
}

export interface WorkerDeps {
  handler: JobHandler;
  logger: Logger;
  /** Resolves when ComfyUI can take work; rejects after its own bound. Awaited inside each job. */
  ready?: (signal: AbortSignal) => Promise<void>;
  /** Aborted when the ComfyUI process dies: a job that reached ComfyUI fails at once with its reason. */
  crashSignal?: () => AbortSignal | undefined;
  /** True when the worker cannot go on (ComfyUI keeps crashing): the next result asks for stopPod. */
  mustRefresh?: () => boolean;
}

interface RawJob {
  id: string;
  input: unknown;
}

/** A pause that ends early on abort, and leaves no listener on `signal` once over. */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

export class Worker {
  private readonly inProgress = new Set<string>();
  private pingTimer: NodeJS.Timeout | undefined;
  private current: { id: string; abort: AbortController } | undefined;
  /** Set when the grace period after SIGTERM ran out: every job still to run is failed at once. */
  private graceOver: Error | undefined;
  /** Jobs done (for logs and tests). */
  readonly done: Array<{ id: string; outcome: JobOutcome }> = [];

  constructor(
    private readonly cfg: WorkerConfig,
    private readonly deps: WorkerDeps,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: this.cfg.apiKey, 'user-agent': WORKER_VERSION, ...extra };
  }

  /** One heartbeat (rp_ping.py): the job ids in progress ride along as `job_id`. */
  async ping(): Promise<void> {
    if (!this.cfg.pingUrl) return;
    try {
      // As rp_ping.py: `job_id` only while jobs are in progress (an idle ping has none).
      const ids = [...this.inProgress].join(',');
      const url = withQuery(this.cfg.pingUrl, { ...(ids ? { job_id: ids } : {}), runpod_version: WORKER_VERSION });
      const r = await request(url, { headers: this.headers(), headersTimeout: this.cfg.pingIntervalMs * 2, bodyTimeout: this.cfg.pingIntervalMs * 2 });
      await r.body.dump();
    } catch (err) {
      this.deps.logger.warn('heartbeat failed: %s', (err as Error).message);
    }
  }

  startPing(): void {
    if (!this.cfg.pingUrl || this.pingTimer) return;
    void this.ping();
    this.pingTimer = setInterval(() => void this.ping(), this.cfg.pingIntervalMs);
    this.pingTimer.unref();
  }

  /** GET a job: returns jobs, [] for none, or 'backoff' on 429. Throws on other failures. */
  async takeJobs(signal?: AbortSignal): Promise<RawJob[] | 'backoff'> {
    const url = withQuery(this.cfg.getJobUrl, { job_in_progress: this.inProgress.size ? '1' : '0' });
    const r = await request(url, { headers: this.headers(), signal, headersTimeout: 120_000, bodyTimeout: 120_000 });
    if (r.statusCode === 204 || r.statusCode === 400) {
      await r.body.dump();
      return [];
    }
    if (r.statusCode === 429) {
      await r.body.dump();
      return 'backoff';
    }
    if (r.statusCode !== 200) {
      await r.body.dump();
      throw new Error(`job-take answered HTTP ${r.statusCode}`);
    }
    const text = await r.body.text();
    if (!text.trim()) return [];
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error('job-take answered with a body that is not JSON');
    }
    const list = Array.isArray(body) ? body : [body];
    const jobs: RawJob[] = [];
    for (const j of list) {
      if (j && typeof j === 'object' && typeof (j as RawJob).id === 'string' && 'input' in j) jobs.push(j as RawJob);
      else this.deps.logger.error('job-take returned a job without id or input; skipped');
    }
    return jobs;
  }

  /** POST a result or progress update for `jobId`, retried 3 times with a growing pause (rp_http.py). */
  async post(jobId: string, body: Record<string, unknown>): Promise<boolean> {
    const url = withQuery(this.cfg.postOutputUrl.replaceAll('$ID', jobId), { isStream: 'false' });
    const text = JSON.stringify(body);
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        // runpod-python sends the JSON text with this content type; the platform reads the raw body.
        const r = await request(url, {
          method: 'POST',
          body: text,
          headers: this.headers({ 'content-type': 'application/x-www-form-urlencoded', charset: 'utf-8', 'x-request-id': jobId }),
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
        await r.body.dump();
        if (r.statusCode < 300) return true;
        this.deps.logger.warn('posting for job %s: HTTP %d (attempt %d/3)', jobId, r.statusCode, attempt);
      } catch (err) {
        this.deps.logger.warn('posting for job %s failed: %s (attempt %d/3)', jobId, (err as Error).message, attempt);
      }
      if (attempt < 3) await sleep(attempt * 500);
    }
    this.deps.logger.error('could not deliver the result of job %s', jobId);
    return false;
  }

  /** Long-poll the stop channel while a job runs (rp_job.py get_stop_signals). */
  private async watchStops(signal: AbortSignal): Promise<void> {
    if (!this.cfg.getJobUrl.includes('/job-take/')) return;
    const url = this.cfg.getJobUrl.replace('/job-take/', '/job-stop/');
    while (!signal.aborted) {
      try {
        const r = await request(url, { headers: this.headers(), signal, headersTimeout: 95_000, bodyTimeout: 95_000 });
        if (r.statusCode === 200) {
          const body = (await r.body.json().catch(() => ({}))) as { jobsToStop?: unknown };
          const ids = Array.isArray(body.jobsToStop) ? body.jobsToStop.filter((x): x is string => typeof x === 'string') : [];
          for (const id of ids) if (this.current?.id === id) this.current.abort.abort(new JobCancelled());
          if (!ids.length) await sleep(this.cfg.stopPollFloorMs, signal);
          continue;
        }
        await r.body.dump();
        await sleep(r.statusCode === 429 ? this.cfg.backoffMs : r.statusCode === 204 ? this.cfg.stopPollFloorMs : this.cfg.errorDelayMs, signal);
      } catch {
        await sleep(this.cfg.errorDelayMs, signal);
      }
    }
  }

  /** Run one job and report it. Returns true when the worker must stop (stopPod sent). */
  async runJob(job: RawJob): Promise<boolean> {
    const log = this.deps.logger;
    this.inProgress.add(job.id);
    const abort = new AbortController();
    this.current = { id: job.id, abort };
    const stopWatch = new AbortController();
    void this.watchStops(stopWatch.signal);
    // Progress posts go out in order, and all before the final result (which must be last).
    let progressChain: Promise<unknown> = Promise.resolve();
    const progress = new ProgressCoalescer((p: Progress) => {
      progressChain = progressChain.then(() => this.post(job.id, { status: 'IN_PROGRESS', output: p }));
    }, this.cfg.progressIntervalMs);
    try {
      log.info('job %s: started', job.id);
      if (this.graceOver) abort.abort(this.graceOver);
      const outcome = await executeJob(this.deps.handler, job, {
        logger: log,
        timeoutMs: this.cfg.jobTimeoutMs || undefined,
        abort: abort.signal,
        ready: this.deps.ready,
        crashSignal: this.deps.crashSignal,
        delivery: 'run',
        onProgress: (p: Progress) => progress.push(p),
      });
      progress.close();
      await progressChain;
      this.done.push({ id: job.id, outcome });
      if (outcome.status === 'CANCELLED') {
        // As runpod-python: a job stopped through the stop channel gets no post at all (the
        // platform already knows it is cancelled; an {error} could be recorded as FAILED).
        log.info('job %s: cancelled through the stop channel; nothing posted', job.id);
        return false;
      }
      const stopPod = Boolean(outcome.refreshWorker) || this.cfg.refreshAfterEachJob || Boolean(this.deps.mustRefresh?.());
      const body: Record<string, unknown> = outcome.status === 'COMPLETED' ? { output: outcome.output } : { error: outcome.error ?? outcome.status };
      if (stopPod) body.stopPod = true;
      log.info('job %s: %s in %d ms%s', job.id, outcome.status, outcome.executionTimeMs, outcome.error ? ` (${outcome.error})` : '');
      await this.post(job.id, body);
      return stopPod;
    } finally {
      progress.close();
      stopWatch.abort();
      this.current = undefined;
      this.inProgress.delete(job.id);
    }
  }

  /** The main loop: until `signal` aborts or a stopPod was sent. */
  async run(signal: AbortSignal): Promise<'stopped' | 'refresh'> {
    const log = this.deps.logger;
    this.startPing();
    // SIGTERM: take no new job; the running one (and the rest of a batch already taken) may
    // finish within the grace period, then whatever still runs is failed with the reason.
    let graceTimer: NodeJS.Timeout | undefined;
    const onStop = () => {
      if (!this.current) return;
      const s = this.cfg.graceMs / 1000;
      log.info('shutting down: job %s may finish within %s s (RUNPOD_GRACE_S)', this.current.id, s);
      graceTimer = setTimeout(() => {
        this.graceOver = new Error(`the worker is shutting down and the job did not finish within the grace period (RUNPOD_GRACE_S = ${s} s)`);
        this.current?.abort.abort(this.graceOver);
      }, this.cfg.graceMs);
    };
    signal.addEventListener('abort', onStop, { once: true });
    try {
      while (!signal.aborted) {
        let jobs: RawJob[] | 'backoff';
        try {
          jobs = await this.takeJobs(signal);
        } catch (err) {
          if (signal.aborted) break;
          log.warn('job-take failed: %s', (err as Error).message);
          await sleep(this.cfg.errorDelayMs, signal);
          continue;
        }
        if (jobs === 'backoff') {
          log.debug('job-take: 429, backing off %d ms', this.cfg.backoffMs);
          await sleep(this.cfg.backoffMs, signal);
          continue;
        }
        if (jobs.length === 0) {
          await sleep(this.cfg.idleDelayMs, signal);
          continue;
        }
        // One at a time: a batch is worked through in order.
        for (const job of jobs) {
          if (await this.runJob(job)) return 'refresh';
        }
      }
      return 'stopped';
    } finally {
      if (graceTimer) clearTimeout(graceTimer);
      signal.removeEventListener('abort', onStop);
      if (this.pingTimer) clearInterval(this.pingTimer);
      this.pingTimer = undefined;
    }
  }
}
