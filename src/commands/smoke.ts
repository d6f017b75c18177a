import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { renderSmoke, runSmoke, SMOKE_DEFAULTS, type SmokeOptions } from '../plan/smoke.js';
import { jobParams, type JobParamFlags } from './flags.js';

/** The CLI's options: SmokeOptions' own, less what the command supplies, and the parsed flags. */
export type SmokeCliOptions = Pick<SmokeOptions, 'url' | 'workflow' | 'uiWorkflow' | 'image' | 'video' | 'screenshot' | 'out' | 'chromium' | 'browser' | 'generate'> &
  Omit<JobParamFlags, 'seed'> & {
    /** Seconds. */
    timeout: number;
  };

export default async function smoke(opts: SmokeCliOptions, ctx: Context): Promise<number> {
  const { params: _json, set: _set, timeout, ...rest } = opts;
  const r = await runSmoke({
    ...rest,
    root: projectRoot(),
    params: jobParams(opts, SMOKE_DEFAULTS),
    timeoutMs: timeout * 1000,
    logger: ctx.logger,
    signal: ctx.signal,
    env: ctx.env,
  });
  emit(ctx, r, renderSmoke);
  return r.ok ? 0 : 1;
}
