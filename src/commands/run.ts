import { join } from 'node:path';
import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { parseIdList, renderHuman, runPlan, writeReport, type PlanReport } from '../plan/engine.js';
import { realPhases } from '../plan/phases.js';
import { jobParams, type JobParamFlags } from './flags.js';
import { probeGpu } from '../system/gpu.js';
import { realRunner } from '../system/exec.js';

export interface RunCliOptions extends Omit<JobParamFlags, 'seed'> {
  skip?: string[];
  only?: string[];
  out?: string;
  variant?: string;
  tag: string;
  engine?: string;
  generate?: boolean;
  browser?: boolean;
  strict?: boolean;
}

/**
 * The CPU plan applies when this host has no GPU and --strict is not given: what the host lacks is
 * WARN (environment), and local-test runs the embedded default (tiny random-weight models). A host
 * with a GPU, or --strict, keeps the strict rules.
 */
export async function choosePlan(strict: boolean | undefined, hasGpu: () => Promise<boolean>): Promise<{ cpuPlan: boolean; why: string }> {
  if (strict) return { cpuPlan: false, why: '--strict: environment limits fail the run' };
  if (await hasGpu()) return { cpuPlan: false, why: 'a GPU is present: the strict rules apply' };
  return { cpuPlan: true, why: 'no GPU here: the CPU plan (environment limits are warnings; local-test uses the tiny random-weight models unless MODELS_DIR is set)' };
}

export default async function run(opts: RunCliOptions, ctx: Context): Promise<number> {
  const params = jobParams(opts);
  const root = projectRoot();
  const plan = await choosePlan(opts.strict, async () => (await probeGpu(realRunner)).present);
  ctx.logger.info(`plan: ${plan.why}`);
  const notes: string[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const stem = opts.out ?? join(root, 'reports', `plan-${stamp}`);
  const phases = realPhases({
    root,
    env: ctx.env,
    logger: ctx.logger,
    variant: opts.variant,
    tag: opts.tag,
    engine: opts.engine,
    reportDir: `${stem.replace(/\.(md|json)$/, '')}.d`,
    generate: opts.generate,
    browser: opts.browser,
    params: Object.keys(params).length ? params : undefined,
    cpuPlan: plan.cpuPlan,
    notes,
  });
  const report = await runPlan(phases, {
    skip: parseIdList(opts.skip),
    only: parseIdList(opts.only),
    signal: ctx.signal,
    lenient: plan.cpuPlan,
    notes,
    onPhaseStart: (p) => ctx.logger.info(`wave ${p.wave}: ${p.id} (${p.title})…`),
    onPhaseEnd: (r) => ctx.logger.info(`${r.status === 'warn' ? 'WARN (environment)' : r.status.toUpperCase()} ${r.id}: ${r.reason}`),
  });
  const files = writeReport(report, stem, root);
  emit(ctx, { ...report, files } as PlanReport & { files: typeof files }, (r) => `${renderHuman(r)}\nreport: ${r.files.markdown} and ${r.files.json}`);
  return report.ok ? 0 : 1;
}
