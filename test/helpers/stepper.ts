import type { JobHandler } from '../../src/serverless/jobs.js';

/**
 * Steps `input.steps` times, reporting step n/N; honours the abort signal. Like the dance handler,
 * it checks its input first (`badInput` fails there), then waits for ComfyUI (ctx.ready).
 */
export const stepper: JobHandler = async (input, ctx) => {
  const { steps = 3, delayMs = 10, fail, refresh, badInput } = input as { steps?: number; delayMs?: number; fail?: string; refresh?: boolean; badInput?: string };
  if (badInput) throw new Error(badInput);
  await ctx.ready?.();
  for (let i = 1; i <= steps; i++) {
    if (ctx.signal.aborted) throw ctx.signal.reason as Error;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => (clearTimeout(t), reject(ctx.signal.reason as Error));
      const t = setTimeout(() => (ctx.signal.removeEventListener('abort', onAbort), resolve()), delayMs);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
    ctx.progress({ stage: 'sampling', step: i, total: steps, message: `step ${i}/${steps}` });
  }
  if (fail) throw Object.assign(new Error(fail), refresh ? { refreshWorker: true } : {});
  return { done: steps };
};
