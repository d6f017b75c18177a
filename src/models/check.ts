/**
 * `models check`: ask the Hub about every file of a variant (HEAD, first response only) and
 * report a row per file: ok, missing (404), gated (401/403), network error, offline, or
 * mismatch (the Hub's size/sha256 differ from the manifest). When the variant's diffusion
 * model is unavailable, its fallback (fp8 → fp16) is checked and named.
 */
import pLimit from 'p-limit';
import { createAgent, fetchMetadata, HubError, type HubConfig } from './hub.js';
import { fallbackChain, resolveUrl, variantFiles, type Manifest, type ManifestFile } from './manifest.js';

export type CheckStatus = 'ok' | 'missing' | 'gated' | 'network' | 'offline' | 'mismatch' | 'error';

export interface CheckRow {
  id: string;
  /** The variant this row was checked for (the fallback's own files carry the fallback's name). */
  variant: string;
  role: string;
  repo: string;
  path: string;
  target: string;
  url: string;
  status: CheckStatus;
  size: number | null;
  sha256: string | null;
  commit: string | null;
  message: string | null;
  hint: string | null;
}

export interface CheckResult {
  ok: boolean;
  requestedVariant: string;
  /** The variant a download would use now (null when none is usable). */
  chosenVariant: string | null;
  fallback: { from: string; to: string; reason: string } | null;
  endpoint: string;
  offline: boolean;
  tokenSource: string | null;
  rows: CheckRow[];
  /** 0 all ok, 1 a file is missing/gated/mismatched, 3 the Hub could not be asked (network, offline). */
  exitCode: number;
}

export interface CheckOptions {
  manifest: Manifest;
  variant: string;
  hub: HubConfig;
  jobs?: number;
  signal?: AbortSignal;
  presets?: string[];
}

function kindToStatus(err: unknown): CheckStatus {
  if (err instanceof HubError) {
    if (err.kind === 'missing' || err.kind === 'gated' || err.kind === 'network' || err.kind === 'offline') return err.kind;
    if (err.kind === 'server') return 'network';
  }
  return 'error';
}

export async function checkModels(opts: CheckOptions): Promise<CheckResult> {
  const { manifest, hub } = opts;
  const limit = pLimit(Math.max(1, opts.jobs ?? 8));
  const agent = createAgent(hub);
  const checkFile = async (f: ManifestFile, variant: string): Promise<CheckRow> => {
    const row: CheckRow = {
      id: f.id,
      variant,
      role: f.role,
      repo: f.repo,
      path: f.path,
      target: `${f.folder}/${f.filename}`,
      url: resolveUrl(hub.endpoint, f),
      status: 'ok',
      size: f.size,
      sha256: f.sha256,
      commit: f.commit,
      message: null,
      hint: null,
    };
    try {
      const m = await fetchMetadata(hub, f, { dispatcher: agent, signal: opts.signal });
      row.size = m.size ?? f.size;
      row.sha256 = m.sha256 ?? f.sha256;
      row.commit = m.commit ?? f.commit;
      if (f.size !== null && m.size !== null && m.size !== f.size) {
        row.status = 'mismatch';
        row.message = `the Hub has ${m.size} bytes, the manifest says ${f.size}`;
        row.hint = 'the file changed upstream: pin a commit in docker/models.json or update size/sha256';
      } else if (f.sha256 && m.sha256 && m.sha256 !== f.sha256) {
        row.status = 'mismatch';
        row.message = `the Hub has sha256 ${m.sha256}, the manifest says ${f.sha256}`;
        row.hint = 'the file changed upstream: pin a commit in docker/models.json or update size/sha256';
      }
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      row.status = kindToStatus(err);
      row.message = err instanceof Error ? err.message : String(err);
      row.hint = err instanceof HubError ? (err.hint ?? null) : null;
    }
    return row;
  };

  try {
    const chain = fallbackChain(manifest, opts.variant);
    const files = variantFiles(manifest, opts.variant, { presets: opts.presets });
    const rows = await Promise.all(files.map((f) => limit(() => checkFile(f, opts.variant))));
    const usable = (rs: CheckRow[]) => rs.every((r) => r.status === 'ok');
    let chosen: string | null = usable(rows) ? opts.variant : null;
    let fallback: CheckResult['fallback'] = null;
    const dmRow = rows[0]!;
    if (!chosen && (dmRow.status === 'missing' || dmRow.status === 'gated') && chain.length > 1) {
      // fp8 unavailable: check what the fallback adds (its own diffusion model, text encoder…).
      const have = new Map(rows.map((r) => [r.id, r]));
      for (const v of chain.slice(1)) {
        const extra = variantFiles(manifest, v, { presets: opts.presets }).filter((f) => !have.has(f.id));
        const extraRows = await Promise.all(extra.map((f) => limit(() => checkFile(f, v))));
        for (const r of extraRows) have.set(r.id, r);
        rows.push(...extraRows);
        const needed = variantFiles(manifest, v, { presets: opts.presets }).map((f) => have.get(f.id)!);
        fallback = { from: opts.variant, to: v, reason: dmRow.message ?? dmRow.status };
        if (usable(needed)) {
          chosen = v;
          break;
        }
      }
    }
    const relevant = chosen ? rows.filter((r) => variantFiles(manifest, chosen!, { presets: opts.presets }).some((f) => f.id === r.id)) : rows;
    const exitCode = chosen
      ? 0
      : relevant.some((r) => r.status === 'network' || r.status === 'offline' || r.status === 'error') &&
          !relevant.some((r) => r.status === 'missing' || r.status === 'gated' || r.status === 'mismatch')
        ? 3
        : 1;
    return {
      ok: chosen !== null,
      requestedVariant: opts.variant,
      chosenVariant: chosen,
      fallback,
      endpoint: hub.endpoint,
      offline: hub.offline,
      tokenSource: hub.tokenSource ?? null,
      rows,
      exitCode,
    };
  } finally {
    await agent.close();
  }
}
