import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { renderSmoke, runSmoke } from '../plan/smoke.js';
import { collectParams } from './generate.js';
import { secondsFlag } from './up.js';

export interface SmokeCliOptions {
  url: string;
  workflow?: string;
  uiWorkflow?: string;
  image?: string;
  video?: string;
  screenshot?: string;
  out?: string;
  chromium?: string;
  browser?: boolean;
  generate?: boolean;
  params?: string;
  set?: string[];
  timeout?: string;
}

export default async function smoke(opts: SmokeCliOptions, ctx: Context): Promise<number> {
  const params = collectParams(opts);
  const r = await runSmoke({
    url: opts.url.replace(/\/+$/, ''),
    root: projectRoot(),
    workflow: opts.workflow,
    uiWorkflow: opts.uiWorkflow,
    image: opts.image,
    video: opts.video,
    screenshot: opts.screenshot,
    out: opts.out,
    chromium: opts.chromium,
    browser: opts.browser,
    generate: opts.generate,
    params,
    timeoutMs: secondsFlag('--timeout', opts.timeout, 1800) * 1000,
    logger: ctx.logger,
    signal: ctx.signal,
    env: ctx.env,
  });
  emit(ctx, r, renderSmoke);
  return r.ok ? 0 : 1;
}
