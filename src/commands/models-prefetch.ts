import { waitForComfy } from '../comfy/client.js';
import { prefetchModels, type PrefetchSummary } from '../models/prefetch.js';
import { formatBytes, formatDuration } from '../models/progress.js';
import { modelsTarget } from '../models/variant.js';
import { emit, type Context } from '../util/context.js';
import { ActionableError } from '../util/errors.js';

export interface ModelsPrefetchOptions {
  variant?: string;
  dest?: string;
  jobs: number;
  textEncoder?: boolean;
  presets?: boolean;
  manifest?: string;
  /** ComfyUI's base URL: read once it answers /system_stats. */
  afterComfy?: string;
  /** Seconds to wait for --after-comfy. */
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

/** Exit 0 when every file that is not skipped was read; 1 when one is absent (still reads the rest) or ComfyUI never answered --after-comfy. */
export default async function modelsPrefetch(opts: ModelsPrefetchOptions, ctx: Context): Promise<number> {
  const { manifest, dest, variant } = modelsTarget(opts, ctx);
  if (opts.afterComfy) {
    try {
      await waitForComfy(opts.afterComfy, { timeoutMs: opts.wait * 1000, intervalMs: 250, signal: ctx.signal });
    } catch (e) {
      if (!(e instanceof ActionableError) || e.code !== 'E_COMFY_TIMEOUT') throw e;
      ctx.logger.warn(`models prefetch: ${e.message}; nothing read`);
      return 1;
    }
  }
  const summary = await prefetchModels({ manifest, variant, dest, jobs: opts.jobs, textEncoder: Boolean(opts.textEncoder), noPresets: opts.presets === false, signal: ctx.signal });
  emit(ctx, summary, renderPrefetch);
  return summary.files.some((f) => f.status === 'absent') ? 1 : 0;
}
