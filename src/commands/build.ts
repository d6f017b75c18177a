import { resolve } from 'node:path';
import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { runBuild, parseBuildArgs, type BuildReport } from '../docker/build.js';
import { engineBin } from '../docker/engine.js';

interface BuildOpts {
  tag?: string;
  cache?: boolean;
  variant?: string;
  bake?: boolean;
  buildArg?: string[];
  log?: string;
  sizeBudgetGb: number;
  packs?: string;
  engine?: string;
  standin?: boolean;
  verify?: boolean;
  flashFallback?: boolean;
  root?: string;
}

export default async function build(opts: BuildOpts, ctx: Context): Promise<number> {
  const budget = opts.sizeBudgetGb;
  const root = resolve(opts.root ?? projectRoot());
  const report = await runBuild({
    root,
    tag: opts.tag ?? 'steadydancer:local',
    engineBin: engineBin(opts.engine, ctx.env),
    noCache: opts.cache === false,
    variant: opts.variant,
    bake: Boolean(opts.bake),
    buildArgs: parseBuildArgs(opts.buildArg),
    packs: opts.packs,
    logPath: resolve(ctx.cwd, opts.log ?? 'build-full.log'),
    sizeBudgetGb: budget,
    standin: Boolean(opts.standin),
    verify: opts.verify !== false,
    flashFallback: opts.flashFallback !== false,
    env: ctx.env,
    logger: ctx.logger,
    signal: ctx.signal,
  });
  emit(ctx, report, renderReport);
  return report.ok ? 0 : report.errorCode === 'E_CANCELLED' ? 130 : 1;
}

export function renderReport(r: BuildReport): string {
  const out: string[] = [];
  out.push(`${r.ok ? 'PASS' : 'FAIL'} build ${r.tag} in ${r.seconds}s (${r.attempts.length} attempt${r.attempts.length === 1 ? '' : 's'}; log ${r.log})`);
  for (const [i, a] of r.attempts.entries()) {
    out.push(
      `  attempt ${i + 1}: ${a.ok ? 'ok' : 'failed'} in ${a.seconds}s, steps ${a.steps.done} run / ${a.steps.cached} cached${a.failure ? ` — ${a.failure.kind}: ${a.failure.message.slice(0, 200)}` : ''}`,
    );
  }
  for (const f of r.fallbacks) out.push(`  fallback: ${f}`);
  out.push(`  node packs: ${r.packs.selected.join(', ') || 'none'}`);
  for (const o of r.packs.omitted) out.push(`  omitted: ${o.name}@${o.commit.slice(0, 12)} (${o.reason})`);
  if (r.image) {
    out.push(`  image ${r.image.id} — ${r.image.sizeGb} GB (budget ${r.sizeBudgetGb} GB: ${r.withinBudget ? 'ok' : 'OVER'})`);
    for (const [k, v] of Object.entries(r.image.labels).sort()) if (k.startsWith('org.steadydancer.')) out.push(`    ${k}=${v}`);
  }
  out.push(`  disk at ${r.disk.path}: peak ${r.disk.peakUsedPercent} % used${r.disk.warned ? ' (warned)' : ''}${r.disk.stopped ? ' (STOPPED)' : ''}`);
  const v = r.verification;
  if (v) {
    const info = v.imageInfo as { torch?: string; cuda?: string; python?: string; attention?: Record<string, unknown> } | undefined;
    if (info) {
      const att = Object.entries(info.attention ?? {})
        .map(([k, val]) => `${k}=${val ? (val === true ? 'yes' : String(val)) : 'no'}`)
        .join(' ');
      out.push(`  in image: python ${info.python}, torch ${info.torch}, CUDA ${info.cuda}; attention ${att}`);
    }
    out.push(`  ComfyUI --quick-test-for-ci: ${v.comfyui.ok ? 'ok' : 'FAILED'}; packs ${v.comfyui.packs.map((p) => `${p.name}:${p.loaded ? 'loaded' : 'NOT LOADED'}`).join(', ')}`);
    for (const a of v.comfyui.auxFailures) out.push(`    note: ${a}`);
    out.push(`  toolkit in image: ${v.toolkit.ok ? 'ok' : 'FAILED'}`);
    for (const p of v.problems) out.push(`  problem: ${p}`);
  }
  if (r.error) out.push(`  error: ${r.error}`);
  if (r.hint) out.push(`  hint: ${r.hint}`);
  return out.join('\n');
}
