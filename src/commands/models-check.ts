import { checkModels, type CheckResult } from '../models/check.js';
import { hubConfig } from '../models/hub.js';
import { defaultManifestPath, loadManifest } from '../models/manifest.js';
import { formatBytes } from '../models/progress.js';
import { emit, type Context } from '../util/context.js';
import { resolveVariant } from '../models/variant.js';

export interface ModelsCheckOptions {
  variant?: string;
  manifest?: string;
  jobs: number;
  /** Seconds. */
  timeout: number;
  tokenFile?: string;
}

const MARK: Record<string, string> = { ok: 'ok', missing: 'MISSING', gated: 'GATED', network: 'NETWORK', offline: 'OFFLINE', mismatch: 'MISMATCH', error: 'ERROR' };

export function renderCheck(r: CheckResult): string {
  const lines: string[] = [];
  lines.push(`models check: variant ${r.requestedVariant} against ${r.endpoint}${r.offline ? ' (HF_HUB_OFFLINE set)' : ''}${r.tokenSource ? ` (token from ${r.tokenSource})` : ''}`);
  for (const row of r.rows) {
    const size = row.size !== null ? formatBytes(row.size) : 'size ?';
    const sha = row.sha256 ? `sha256 ${row.sha256.slice(0, 12)}…` : 'sha256 ?';
    const tag = row.variant !== r.requestedVariant ? ` [${row.variant}]` : '';
    lines.push(`  ${MARK[row.status]!.padEnd(8)} ${row.target}${tag}  ${size}  ${sha}`);
    if (row.status !== 'ok' && row.message) lines.push(`           ${row.message}`);
  }
  const hints = [...new Set(r.rows.filter((x) => x.status !== 'ok' && x.hint).map((x) => x.hint!))];
  for (const h of hints) lines.push(`hint: ${h}`);
  if (r.fallback && r.chosenVariant === r.fallback.to) lines.push(`variant ${r.fallback.from} is unavailable; ${r.fallback.to} will be used as the fallback`);
  else if (r.fallback) lines.push(`variant ${r.fallback.from} is unavailable and so is its fallback ${r.fallback.to}`);
  const bad = r.rows.filter((x) => x.status !== 'ok').length;
  lines.push(r.ok ? `ok: variant ${r.chosenVariant} is complete on the Hub` : r.exitCode === 3 ? `could not check ${bad} file(s): the Hub was not reachable` : `${bad} file(s) not available`);
  return lines.join('\n');
}

export default async function modelsCheck(opts: ModelsCheckOptions, ctx: Context): Promise<number> {
  const manifest = loadManifest(opts.manifest ?? defaultManifestPath(ctx.env));
  // The variant rule: --variant, $STEADYDANCER_VARIANT, what $MODELS_DIR holds verified, the manifest's default.
  const { variant, reason } = resolveVariant({ manifest, flag: opts.variant, env: ctx.env, modelsDir: ctx.env.MODELS_DIR || undefined });
  ctx.logger.debug('variant %s: %s', variant, reason);
  const timeoutS = opts.timeout;
  const hub = hubConfig(ctx.env, {
    manifest,
    tokenFile: opts.tokenFile,
    timeouts: { connectTimeoutMs: timeoutS * 1000, headersTimeoutMs: timeoutS * 1000, bodyTimeoutMs: timeoutS * 1000 },
  });
  const result = await checkModels({ manifest, variant, hub, jobs: opts.jobs, signal: ctx.signal });
  emit(ctx, result, renderCheck);
  return result.exitCode;
}
