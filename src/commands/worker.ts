/**
 * `steadydancer worker [--comfy-url URL] [-- <ComfyUI command>]`: the RunPod serverless worker.
 * With a ComfyUI command after `--` (what start.sh passes in serverless mode) the worker starts
 * and supervises ComfyUI; without one it uses a ComfyUI that is already running at --comfy-url.
 */
import { createService } from '../serverless/service.js';
import { Worker, workerConfigFromEnv } from '../serverless/worker.js';
import type { Context } from '../util/context.js';
import { ActionableError } from '../util/errors.js';

export interface WorkerOpts {
  comfyUrl: string;
  /** Seconds. */
  readyTimeout: number;
  workDir?: string;
}

export default async function workerCommand(opts: WorkerOpts, ctx: Context, args: unknown[]): Promise<number> {
  const comfyCommand = (args.flat() as string[]).filter((a) => typeof a === 'string');
  let cfg;
  try {
    cfg = workerConfigFromEnv(ctx.env);
  } catch (err) {
    throw new ActionableError((err as Error).message, { hint: 'for local testing use `steadydancer serve` (the same job runner behind RunPod-style routes)', code: 'E_NOT_RUNPOD', exitCode: 2 });
  }
  const readyTimeoutMs = opts.readyTimeout * 1000;
  const service = await createService({ comfyUrl: opts.comfyUrl, comfyCommand, readyTimeoutMs, workDir: opts.workDir, env: ctx.env, logger: ctx.logger });
  ctx.logger.info('worker %s: taking jobs; each checks its inputs, then waits for ComfyUI at %s (at most %d s)', cfg.workerId, opts.comfyUrl, readyTimeoutMs / 1000);
  const worker = new Worker(cfg, { handler: service.handler, logger: ctx.logger, ready: service.ready, crashSignal: service.crashSignal, mustRefresh: service.mustRefresh });
  let result: 'stopped' | 'refresh';
  try {
    result = await worker.run(ctx.signal);
  } finally {
    await service.stop();
  }
  ctx.logger.info('worker %s: %s', cfg.workerId, result === 'refresh' ? 'asked for a fresh worker (stopPod)' : 'stopped');
  // A refresh is a normal end: RunPod replaces the worker.
  return 0;
}
