import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { reportMarkdown, runPlan } from '../plan/engine.js';
import { planPhases } from '../plan/phases.js';
import { emit, type Context } from '../util/context.js';

export default async function runCommand(opts: { variant?: string; report?: string; skip?: string[] }, ctx: Context): Promise<number> {
  const skip = Object.fromEntries((opts.skip ?? []).map((s) => [s, `skipped with --skip ${s}`]));
  const report = await runPlan(planPhases({ variant: opts.variant ?? ctx.env.STEADYDANCER_VARIANT ?? 'fp8', env: ctx.env, logger: ctx.logger, skip }), {
    signal: ctx.signal,
    onPhase: (p) => ctx.logger.info(`${p.status.toUpperCase().padEnd(4)} ${p.title}: ${p.reason}`),
  });
  const dir = opts.report ?? join(ctx.cwd, 'reports');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'run.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(dir, 'run.md'), reportMarkdown(report));
  emit(ctx, report, (r) => `${reportMarkdown(r)}\nreport: ${join(dir, 'run.md')} and run.json`);
  return report.ok ? 0 : 1;
}
