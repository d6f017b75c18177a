import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { renderSmoke, runSmoke, type SmokeOptions } from '../plan/smoke.js';
import { collectParams } from './generate.js';
import { secondsFlag } from './up.js';

/** The CLI's options: SmokeOptions' own, less what the command supplies, and the raw flags. */
export type SmokeCliOptions = Pick<SmokeOptions, 'url' | 'workflow' | 'uiWorkflow' | 'image' | 'video' | 'screenshot' | 'out' | 'chromium' | 'browser' | 'generate'> & {
  params?: string;
  set?: string[];
  timeout?: string;
};

export default async function smoke(opts: SmokeCliOptions, ctx: Context): Promise<number> {
  const { params: _json, set: _set, timeout, ...rest } = opts;
  const r = await runSmoke({
    ...rest,
    url: opts.url.replace(/\/+$/, ''),
    root: projectRoot(),
    params: collectParams(opts),
    timeoutMs: secondsFlag('--timeout', timeout, 1800) * 1000,
    logger: ctx.logger,
    signal: ctx.signal,
    env: ctx.env,
  });
  emit(ctx, r, renderSmoke);
  return r.ok ? 0 : 1;
}
