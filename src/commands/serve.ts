/**
 * `steadydancer serve [--host H] [--port N] [--comfy-url URL] [-- <ComfyUI command>]`: the local
 * API with RunPod's routes, on the worker's job runner. STEADYDANCER_API_KEY, when set, is
 * required as `Authorization: Bearer <key>`.
 */
import { createApi, listen } from '../serverless/api.js';
import { JobQueue } from '../serverless/jobs.js';
import { createService } from '../serverless/service.js';
import type { Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';

export interface ServeOpts {
  host: string;
  port: number;
  comfyUrl: string;
  /** Seconds. */
  readyTimeout: number;
  workDir?: string;
}

/** MAX_QUEUE: most jobs waiting behind the running one (default 100); past it /run answers 429. */
export function maxQueueFromEnv(env: NodeJS.ProcessEnv): number {
  const v = env.MAX_QUEUE;
  if (v === undefined || v === '') return 100;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`MAX_QUEUE=${v}: expected a whole number ≥ 1`);
  return n;
}

export default async function serveCommand(opts: ServeOpts, ctx: Context, args: unknown[]): Promise<number> {
  const comfyCommand = (args.flat() as string[]).filter((a) => typeof a === 'string');
  const readyTimeoutMs = opts.readyTimeout * 1000;
  const service = await createService({ comfyUrl: opts.comfyUrl, comfyCommand, readyTimeoutMs, workDir: opts.workDir, env: ctx.env, logger: ctx.logger });
  const queue = new JobQueue({
    handler: service.handler,
    logger: ctx.logger,
    timeoutMs: ctx.env.JOB_TIMEOUT_MS ? Number(ctx.env.JOB_TIMEOUT_MS) : undefined,
    beforeJob: (signal) => service.ready(AbortSignal.any([signal, ctx.signal])),
    runningAbort: service.crashSignal,
    maxQueue: maxQueueFromEnv(ctx.env),
  });
  const server = createApi({ queue, apiKey: ctx.env.STEADYDANCER_API_KEY || undefined, validate: service.validate });
  const { url } = await listen(server, opts.port, opts.host);
  ctx.logger.info('local API on %s (ComfyUI at %s)', url, opts.comfyUrl);
  if (ctx.json) ctx.out(JSON.stringify({ url }));
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) return resolve();
    ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  ctx.logger.info('shutting down');
  await queue.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await service.stop();
  return 0;
}
