import { resolve } from 'node:path';
import { defaultManifestPath, loadManifest } from '../models/manifest.js';
import { prefetchModels, type PrefetchSummary, waitForUrl } from '../models/prefetch.js';
import { formatBytes, formatDuration } from '../models/progress.js';
import { resolveVariant } from '../models/variant.js';
import { emit, type Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';

export interface ModelsPrefetchOptions {
  variant?: string;
  dest?: string;
  jobs: number;
  textEncoder?: boolean;
  presets?: boolean;
  manifest?: string;
  afterUrl?: string;
  /** Seconds to wait for --after-url. */
  wait: number;
}

export function renderPrefetch(s: PrefetchSummary): string {
  const lines = [`models prefetch: variant ${s.variant} in ${s.dest}`];
  for (const f of s.files) {
    const what = f.status === 'read' ? `read    ${formatBytes(f.bytes)}` : f.status === 'absent' ? 'ABSENT' : 'skipped';
    lines.push(`  ${what.padEnd(18)} ${f.target}${f.reason ? `  (${f.reason})` : ''}`);
  }
  lines.push(`read ${formatBytes(s.bytes)} in ${formatDuration(s.seconds)} (${s.gbPerSecond} GB/s, ${s.jobs} readers)`);
  return lines.join('\n');
}

/** Exit 0 when every file that is not skipped was read; 1 when one is absent (still reads the rest) or --after-url never answered. */
export default async function modelsPrefetch(opts: ModelsPrefetchOptions, ctx: Context): Promise<number> {
  const manifest = loadManifest(opts.manifest ?? defaultManifestPath(ctx.env));
  const destRaw = opts.dest ?? ctx.env.MODELS_DIR;
  if (!destRaw) throw new UsageError('no models directory: pass --dest DIR or set MODELS_DIR');
  const dest = resolve(ctx.cwd, destRaw);
  const { variant, reason } = resolveVariant({ manifest, flag: opts.variant, env: ctx.env, modelsDir: dest });
  ctx.logger.debug('variant %s: %s', variant, reason);
  if (opts.afterUrl) {
    if (!(await waitForUrl(opts.afterUrl, opts.wait, { signal: ctx.signal }))) {
      ctx.logger.warn(`models prefetch: ${opts.afterUrl} did not answer within ${opts.wait} s; nothing read`);
      return 1;
    }
  }
  const summary = await prefetchModels({ manifest, variant, dest, jobs: opts.jobs, textEncoder: Boolean(opts.textEncoder), noPresets: opts.presets === false, signal: ctx.signal });
  emit(ctx, summary, renderPrefetch);
  return summary.files.some((f) => f.status === 'absent') ? 1 : 0;
}
