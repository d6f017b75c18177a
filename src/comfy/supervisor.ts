/**
 * ComfyUI as a supervised child process: the one launcher. The worker (serverless mode) and
 * `serve` use it with restarts; `startNativeComfy` (native.ts: tests, `run` without Docker, the
 * GPU bench) uses it without restarts and with its output captured.
 *
 * Why the worker supervises ComfyUI rather than start.sh looping on it: the worker must know the
 * moment ComfyUI dies so that the job in flight fails at once with a clear error (not after a
 * WebSocket or HTTP timeout), must not take the next job before ComfyUI is back, and must be able
 * to ask RunPod for a fresh worker when ComfyUI cannot come back. All three need the process
 * exit event, which only the parent sees. start.sh builds ComfyUI's command line (attention flag,
 * model paths, --listen 127.0.0.1) and hands it to `steadydancer worker -- <command>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import { waitForComfy } from './client.js';
import type { Logger } from '../util/logger.js';

export class ComfyCrashed extends Error {
  constructor(readonly detail: string) {
    super(`ComfyUI exited during the job (${detail}); it is being restarted and the next job will run on the fresh process`);
    this.name = 'ComfyCrashed';
  }
}

export class ComfyNotReady extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ComfyNotReady';
  }
}

export interface SupervisorOptions {
  command: string[];
  baseUrl: string;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** First restart delay; doubles up to 30 s while ComfyUI keeps dying quickly. */
  restartDelayMs?: number;
  /** More restarts than this within 10 minutes: give up (the worker asks for a fresh one). */
  maxRestarts?: number;
  /**
   * Append ComfyUI's output to this file instead of the worker's own stdout/stderr (default: the
   * STEADYDANCER_COMFY_LOG environment variable; unset = inherited, the container log on a pod).
   * The tests set it so that ComfyUI's log is not interleaved with the test runner's.
   */
  logFile?: string;
  /** Restart ComfyUI when it exits (default true). */
  restart?: boolean;
  /** Where ComfyUI's stdout and stderr go; default: inherited (the container log). */
  output?: (chunk: Buffer) => void;
}

export class ComfySupervisor extends EventEmitter {
  private child: ChildProcess | undefined;
  private stopping = false;
  private crash = new AbortController();
  private restarts: number[] = [];
  private delay: number;
  gaveUp = false;
  /** How the last process ended ("exit code 1", "killed by SIGKILL", "could not start …"). */
  lastExit: string | undefined;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    if (!opts.command.length) throw new Error('no ComfyUI command given');
    this.delay = opts.restartDelayMs ?? 1000;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  alive(): boolean {
    return Boolean(this.child && this.child.exitCode === null && this.child.signalCode === null);
  }

  /** Aborted (with ComfyCrashed) when the current ComfyUI process exits. */
  crashSignal(): AbortSignal {
    return this.crash.signal;
  }

  start(): void {
    const [cmd, ...args] = this.opts.command;
    if (this.crash.signal.aborted) this.crash = new AbortController();
    const out = this.opts.output;
    const logFile = out ? undefined : (this.opts.logFile ?? (this.opts.env ?? process.env).STEADYDANCER_COMFY_LOG ?? process.env.STEADYDANCER_COMFY_LOG);
    let fd: number | undefined;
    if (logFile) {
      mkdirSync(dirname(logFile), { recursive: true });
      fd = openSync(logFile, 'a');
    }
    const sink = out ? 'pipe' : (fd ?? 'inherit');
    const child = spawn(cmd!, args, { stdio: ['ignore', sink, sink], env: this.opts.env ?? process.env, cwd: this.opts.cwd });
    if (fd !== undefined) closeSync(fd); // the child holds its own copy
    if (logFile) this.opts.logger.info('ComfyUI log: %s', logFile);
    this.child = child;
    this.lastExit = undefined;
    if (out) {
      child.stdout!.on('data', out);
      child.stderr!.on('data', out);
    }
    const startedAt = Date.now();
    this.opts.logger.info('ComfyUI started (pid %d)', child.pid ?? -1);
    child.once('error', (err) => {
      this.lastExit = `could not start ${cmd}: ${err.message}`;
      this.opts.logger.error('ComfyUI could not start: %s', err.message);
    });
    // ComfyUI must not outlive its supervisor (a crashed worker would leave it holding the GPU).
    const reap = () => child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', (code, sig) => {
      process.off('exit', reap);
      const detail = sig ? `killed by ${sig}` : `exit code ${code}`;
      this.lastExit ??= detail;
      this.crash.abort(new ComfyCrashed(detail));
      this.emit('exit', detail);
      if (this.stopping) return;
      if (this.opts.restart === false) {
        this.opts.logger.error('ComfyUI exited (%s)', detail);
        return;
      }
      this.opts.logger.error('ComfyUI exited (%s); restarting', detail);
      const now = Date.now();
      this.restarts = this.restarts.filter((t) => now - t < 600_000);
      this.restarts.push(now);
      if (this.restarts.length > (this.opts.maxRestarts ?? 5)) {
        this.gaveUp = true;
        this.opts.logger.error('ComfyUI died %d times in 10 minutes; not restarting again', this.restarts.length);
        this.emit('gave-up');
        return;
      }
      if (now - startedAt > 60_000) this.delay = this.opts.restartDelayMs ?? 1000;
      const wait = this.delay;
      this.delay = Math.min(this.delay * 2, 30_000);
      setTimeout(() => {
        if (!this.stopping) this.start();
      }, wait).unref();
    });
  }

  /** Ready = running and answering /system_stats, within `timeoutMs`. */
  async waitReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.gaveUp) throw new ComfyNotReady('ComfyUI keeps crashing and is no longer restarted');
    // While it restarts, /system_stats is refused: keep polling until the bound (the pipeline's
    // waitForComfy). Giving up on restarts ends the wait at once.
    await waitForComfy(this.opts.baseUrl, { timeoutMs, signal, isDead: () => (this.gaveUp ? 'it keeps crashing and is no longer restarted' : undefined) });
  }

  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const c = this.child;
    if (!c || !this.alive()) return;
    // (a process whose spawn failed never started: nothing to stop)
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }
}
