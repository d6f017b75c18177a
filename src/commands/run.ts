import { join } from 'node:path';
import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { parseIdList, renderHuman, runPlan, writeReport, type PlanReport } from '../plan/engine.js';
import { realPhases } from '../plan/phases.js';
import { jobParams, type JobParamFlags } from './flags.js';

export interface RunCliOptions extends Omit<JobParamFlags, 'seed'> {
  skip?: string[];
  only?: string[];
  out?: string;
  variant?: string;
  tag: string;
  engine?: string;
  generate?: boolean;
  browser?: boolean;
}

export default async function run(opts: RunCliOptions, ctx: Context): Promise<number> {
  const params = jobParams(opts);
  const root = projectRoot();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const stem = opts.out ?? join(root, 'reports', `plan-${stamp}`);
  const phases = realPhases({
    root, env: ctx.env, logger: ctx.logger, variant: opts.variant, tag: opts.tag, engine: opts.engine,
    reportDir: `${stem.replace(/\.(md|json)$/, '')}.d`, generate: opts.generate, browser: opts.browser,
    params: Object.keys(params).length ? params : undefined,
  });
  const report = await runPlan(phases, {
    skip: parseIdList(opts.skip),
    only: parseIdList(opts.only),
    signal: ctx.signal,
    onPhaseStart: (p) => ctx.logger.info(`wave ${p.wave}: ${p.id} (${p.title})…`),
    onPhaseEnd: (r) => ctx.logger.info(`${r.status.toUpperCase()} ${r.id}: ${r.reason}`),
  });
  const files = writeReport(report, stem, root);
  emit(ctx, { ...report, files } as PlanReport & { files: typeof files }, (r) => `${renderHuman(r)}\nreport: ${r.files.markdown} and ${r.files.json}`);
  return report.ok ? 0 : 1;
}
