import { downloadModels, type DownloadSummary } from '../models/download.js';
import { hubConfig } from '../models/hub.js';
import { barProgress, formatBytes, formatDuration, plainProgress, silentProgress } from '../models/progress.js';
import { emit, type Context } from '../util/context.js';
import { modelsTarget } from '../models/variant.js';

export interface ModelsDownloadOptions {
  variant?: string;
  dest?: string;
  jobs: number;
  connections: number;
  check?: boolean;
  fallback?: boolean;
  presets?: boolean;
  manifest?: string;
  tokenFile?: string;
  retries: number;
  /** Seconds. */
  timeout: number;
}

const MARK: Record<string, string> = { downloaded: 'fetched', present: 'ok', 'present-unverified': 'present', absent: 'ABSENT', failed: 'FAILED' };

export function renderDownload(s: DownloadSummary): string {
  const lines: string[] = [];
  const what = s.checkOnly ? 'models on disk' : 'models download';
  lines.push(`${what}: variant ${s.variant}${s.fallbackFrom ? ` (fallback for ${s.fallbackFrom.variant})` : ''} in ${s.dest}`);
  for (const f of s.files) {
    const size = f.size !== null ? formatBytes(f.size) : 'size ?';
    const extra = f.status === 'downloaded' ? `  ${formatBytes(f.downloadedBytes)} in ${formatDuration(f.seconds)}` : f.status === 'present-unverified' ? '  (no sha256 known: not verified)' : '';
    lines.push(`  ${MARK[f.status]!.padEnd(8)} ${f.target}  ${size}${extra}`);
    if (f.error) lines.push(`           ${f.error.message}`);
  }
  for (const h of new Set(s.files.map((f) => f.error?.hint).filter((h): h is string => Boolean(h)))) lines.push(`hint: ${h}`);
  const failed = s.files.filter((f) => f.status === 'failed' || f.status === 'absent').length;
  if (s.ok) lines.push(s.checkOnly ? `ok: every file of ${s.variant} is present` : `ok: ${formatBytes(s.downloadedBytes)} downloaded in ${formatDuration(s.seconds)}`);
  else lines.push(s.checkOnly ? `${failed} file(s) missing in ${s.dest}` : `${failed} file(s) failed`);
  return lines.join('\n');
}

export default async function modelsDownload(opts: ModelsDownloadOptions, ctx: Context): Promise<number> {
  const { manifest, dest, variant } = modelsTarget(opts, ctx);
  const timeoutS = opts.timeout;
  const hub = hubConfig(ctx.env, {
    manifest,
    tokenFile: opts.tokenFile,
    timeouts: { connectTimeoutMs: Math.min(timeoutS, 30) * 1000, headersTimeoutMs: timeoutS * 1000, bodyTimeoutMs: timeoutS * 1000 },
  });
  const interval = Number(ctx.env.STEADYDANCER_PROGRESS_INTERVAL_MS) || 10_000;
  const progress = opts.check ? silentProgress : ctx.logger.isTTY && !ctx.json ? barProgress(process.stderr) : plainProgress(ctx.logger, interval);
  const summary = await downloadModels({
    manifest,
    variant,
    dest,
    hub,
    logger: ctx.logger,
    jobs: opts.jobs,
    connections: opts.connections,
    retries: opts.retries,
    progress,
    signal: ctx.signal,
    fallback: opts.fallback !== false,
    presets: opts.presets === false ? [] : undefined,
    checkOnly: Boolean(opts.check),
  });
  emit(ctx, summary, renderDownload);
  if (summary.ok) return 0;
  const errs = summary.files.map((f) => f.error?.code).filter(Boolean);
  return errs.length && errs.every((c) => c === 'E_NETWORK' || c === 'E_SERVER') ? 3 : 1;
}
