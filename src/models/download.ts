/**
 * `models download`: every file of a variant into DIR/<folder>/<filename>, in parallel across
 * files, resumable (`.part` + Range), sha256-checked before an atomic rename, skipping files
 * already verified (size + mtime record), with a free-space check before the first byte,
 * retries with backoff on drops / 5xx, and the fp8 → fp16 fallback.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import { request, type Agent, type Dispatcher } from 'undici';
import { ActionableError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { createAgent, fetchMetadata, HubError, networkError, requestHeaders, sameOrigin, statusError, type HubConfig, type RemoteMetadata } from './hub.js';
import { fallbackChain, getVariant, variantFiles, type Manifest, type ManifestFile } from './manifest.js';
import { formatBytes, silentProgress, type ProgressSink } from './progress.js';
import { dropSegments, fetchSegmented, RangeUnsupported, segmentsDone, segmentsPath } from './segmented.js';
import { VerifiedCache } from './verified-cache.js';
import { inThreadSha256, threadSha256, type Sha256 } from './hasher.js';
import { diskUsage } from '../system/disk.js';

export interface DownloadOptions {
  manifest: Manifest;
  variant: string;
  dest: string;
  hub: HubConfig;
  logger: Logger;
  jobs?: number;
  progress?: ProgressSink;
  signal?: AbortSignal;
  /** Try the fallback variants (fp8 → fp16) when the requested one is missing or gated. Default true. */
  fallback?: boolean;
  /** Presets whose files are included (default: all, i.e. the fast LoRA). */
  presets?: string[];
  /** Retries per file after the first attempt (default 5). */
  retries?: number;
  /** First backoff in ms (doubles each time, capped at 30 s). Default 1000. */
  retryMinTimeoutMs?: number;
  /** Only report what DIR has (no network, no download). */
  checkOnly?: boolean;
  /** Space to leave free on DEST beyond the download (default 256 MiB). */
  reserveBytes?: number;
  /** Connections per large file (parallel byte ranges); default 1. */
  connections?: number;
  /** Files at least this large use several connections (default 256 MiB). */
  segmentMinBytes?: number;
  /** Files at least this large are hashed on a worker thread (default 64 MiB). */
  threadHashMinBytes?: number;
}

export type FileStatus = 'downloaded' | 'present' | 'present-unverified' | 'absent' | 'failed';

export interface FileResult {
  id: string;
  role: string;
  /** Path under DEST: <folder>/<filename>. */
  target: string;
  status: FileStatus;
  size: number | null;
  sha256: string | null;
  /** Bytes fetched over the network in this run. */
  downloadedBytes: number;
  seconds: number;
  error?: { code: string; message: string; hint: string | null };
}

export interface DownloadSummary {
  ok: boolean;
  requestedVariant: string;
  variant: string;
  fallbackFrom: { variant: string; reason: string } | null;
  dest: string;
  endpoint: string;
  offline: boolean;
  checkOnly: boolean;
  files: FileResult[];
  downloadedBytes: number;
  seconds: number;
}

const relTarget = (f: ManifestFile) => `${f.folder}/${f.filename}`;

async function sizeOf(p: string): Promise<number | null> {
  try {
    const st = await stat(p);
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}

/** Feeds the bytes of `p` to `hasher` (after a reset); returns how many there were. */
async function hashFileInto(hasher: Sha256, p: string, signal?: AbortSignal): Promise<number> {
  await hasher.reset();
  let bytes = 0;
  for await (const chunk of createReadStream(p, { highWaterMark: 4 << 20, signal }) as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    await hasher.update(chunk);
  }
  return bytes;
}

function errorInfo(err: unknown): { code: string; message: string; hint: string | null } {
  if (err instanceof HubError) return { code: err.code, message: err.message, hint: err.hint ?? null };
  const e = err as Error & { code?: string };
  return { code: typeof e?.code === 'string' ? e.code : 'E_FAILED', message: e?.message ?? String(err), hint: null };
}

interface Plan {
  file: ManifestFile;
  meta: RemoteMetadata | null;
  result: FileResult;
}

/**
 * Local state of one file: verified earlier (record matches), verified now (hashed against a
 * known sha256), present but not verifiable (no sha256 known), or absent / wrong.
 */
async function localState(
  cache: VerifiedCache,
  dest: string,
  f: ManifestFile,
  expect: { sha256: string | null; size: number | null; commit?: string | null },
  logger: Logger,
  signal?: AbortSignal,
): Promise<'verified' | 'unverified' | 'absent' | 'wrong'> {
  const rel = relTarget(f);
  if (await cache.match(rel, expect)) return 'verified';
  const size = await sizeOf(join(dest, rel));
  if (size === null) return 'absent';
  if (expect.size !== null && size !== expect.size) return 'wrong';
  if (!expect.sha256) return 'unverified';
  logger.info(`verifying ${rel} (${formatBytes(size)}): not in the verified record yet`);
  const h = inThreadSha256();
  await hashFileInto(h, join(dest, rel), signal);
  const sha = await h.digest();
  if (sha !== expect.sha256) return 'wrong';
  await cache.record(rel, { sha256: sha, repo: f.repo, path: f.path, commit: expect.commit ?? f.commit });
  return 'verified';
}

export async function downloadModels(opts: DownloadOptions): Promise<DownloadSummary> {
  const t0 = Date.now();
  const { manifest, hub, logger, dest } = opts;
  const progress = opts.progress ?? silentProgress;
  const jobs = Math.max(1, opts.jobs ?? 4);
  const limit = pLimit(jobs);
  getVariant(manifest, opts.variant);
  if (!opts.checkOnly) await mkdir(dest, { recursive: true });
  const cache = await new VerifiedCache(dest).load();
  const offline = hub.offline || Boolean(opts.checkOnly);
  const agent = createAgent(hub);
  const summary: DownloadSummary = {
    ok: false,
    requestedVariant: opts.variant,
    variant: opts.variant,
    fallbackFrom: null,
    dest,
    endpoint: hub.endpoint,
    offline: hub.offline,
    checkOnly: Boolean(opts.checkOnly),
    files: [],
    downloadedBytes: 0,
    seconds: 0,
  };
  const metaCache = new Map<string, RemoteMetadata>();
  const meta = async (f: ManifestFile) => {
    const m =
      metaCache.get(f.id) ??
      (await pRetry(() => fetchMetadata(hub, f, { dispatcher: agent, signal: opts.signal }), {
        retries: Math.min(2, opts.retries ?? 5),
        minTimeout: opts.retryMinTimeoutMs ?? 1000,
        signal: opts.signal,
        shouldRetry: ({ error }) => error instanceof HubError && error.retryable,
      }));
    metaCache.set(f.id, m);
    return m;
  };
  const expectOf = (f: ManifestFile, m: RemoteMetadata | null) => ({ sha256: f.sha256 ?? m?.sha256 ?? null, size: f.size ?? m?.size ?? null, commit: m?.commit ?? null });

  try {
    // 1. Choose the variant: the first in the fallback chain whose diffusion model is on disk
    //    or on the Hub (missing/gated → next; a network error stops: the next would fail too).
    const chain = opts.fallback === false ? [opts.variant] : fallbackChain(manifest, opts.variant);
    const reasons: string[] = [];
    const hints: string[] = [];
    let chosen: string | null = null;
    for (const v of chain) {
      const dm = variantFiles(manifest, v, { presets: [] })[0]!;
      const local = await localState(cache, dest, dm, expectOf(dm, null), logger, opts.signal);
      if (local === 'verified' || (local === 'unverified' && offline)) {
        chosen = v;
        break;
      }
      if (offline) {
        reasons.push(`${v}: ${dm.filename} is not in ${dest}`);
        continue;
      }
      try {
        await meta(dm);
        chosen = v;
        break;
      } catch (err) {
        if (err instanceof HubError && (err.kind === 'missing' || err.kind === 'gated')) {
          reasons.push(`${v}: ${err.message}`);
          if (err.hint) hints.push(err.hint);
          logger.warn(`variant ${v} is unavailable (${err.message})${chain[chain.indexOf(v) + 1] ? `; trying ${chain[chain.indexOf(v) + 1]}` : ''}`);
          continue;
        }
        throw err;
      }
    }
    if (chosen === null) {
      if (opts.checkOnly) {
        chosen = opts.variant; // report the requested variant's files below
      } else if (hub.offline) {
        throw new HubError('offline', `HF_HUB_OFFLINE is set and no variant of ${chain.join(' → ')} is on disk in ${dest}:\n  ${reasons.join('\n  ')}`, {
          hint: 'unset HF_HUB_OFFLINE to download, or point --dest / MODELS_DIR at the folder that has the models',
        });
      } else {
        const first = reasons[0] ?? '';
        const what = chain.length > 1 ? `no variant of ${chain.join(' → ')} can be downloaded:\n  ${reasons.join('\n  ')}` : first.replace(/^[^:]+: /, '');
        throw new HubError(/: gated/.test(first) ? 'gated' : 'missing', what, { hint: [...new Set(hints)].join('; ') || undefined });
      }
    }
    if (chosen !== opts.variant) summary.fallbackFrom = { variant: opts.variant, reason: reasons.join('; ') };
    summary.variant = chosen;
    if (summary.fallbackFrom && !opts.checkOnly) logger.warn(`using variant ${chosen} (fallback for ${opts.variant})`);

    // 2. Local state of every file; metadata for those we must fetch.
    const files = variantFiles(manifest, chosen, { presets: opts.presets });
    const plans: Plan[] = await Promise.all(
      files.map((file) =>
        limit(async (): Promise<Plan> => {
          const result: FileResult = { id: file.id, role: file.role, target: relTarget(file), status: 'absent', size: file.size, sha256: file.sha256, downloadedBytes: 0, seconds: 0 };
          const plan: Plan = { file, meta: null, result };
          let state = await localState(cache, dest, file, expectOf(file, null), logger, opts.signal);
          if (state === 'verified') {
            const e = cache.get(relTarget(file))!;
            Object.assign(result, { status: 'present', size: e.size, sha256: e.sha256 });
            return plan;
          }
          if (offline) {
            if (state === 'unverified') {
              result.status = 'present-unverified';
              result.size = await sizeOf(join(dest, relTarget(file)));
            } else if (!opts.checkOnly) {
              result.status = 'failed';
              result.error = errorInfo(
                new HubError('offline', `HF_HUB_OFFLINE is set and ${relTarget(file)} is ${state === 'wrong' ? 'not the expected file' : 'missing'} in ${dest}`, {
                  hint: 'unset HF_HUB_OFFLINE to download it',
                }),
              );
            } else if (state === 'wrong') {
              result.error = errorInfo(new HubError('checksum', `${relTarget(file)} in ${dest} does not match the manifest's size/sha256`));
            }
            return plan;
          }
          try {
            plan.meta = await meta(file);
          } catch (err) {
            result.status = 'failed';
            result.error = errorInfo(err);
            return plan;
          }
          const m = plan.meta;
          if (file.size !== null && m.size !== null && file.size !== m.size) {
            result.status = 'failed';
            result.error = errorInfo(
              new HubError('size', `${file.repo}/${file.path} on the Hub is ${m.size} bytes but docker/models.json says ${file.size}`, {
                hint: 'the file changed upstream: pin the manifest to a commit, or update its size and sha256',
              }),
            );
            return plan;
          }
          if (file.sha256 && m.sha256 && file.sha256 !== m.sha256) {
            result.status = 'failed';
            result.error = errorInfo(
              new HubError('checksum', `${file.repo}/${file.path} on the Hub has sha256 ${m.sha256} but docker/models.json says ${file.sha256}`, {
                hint: 'the file changed upstream: pin the manifest to a commit, or update its sha256',
              }),
            );
            return plan;
          }
          result.size = m.size ?? file.size;
          result.sha256 = file.sha256 ?? m.sha256;
          if (state === 'unverified' || state === 'absent' || state === 'wrong') {
            // With the Hub's sha256 now known, a present file can be verified without a download.
            if (state === 'unverified') state = await localState(cache, dest, file, expectOf(file, m), logger, opts.signal);
            if (state === 'verified') result.status = 'present';
            else if (state === 'unverified') result.status = 'present-unverified';
            else if (state === 'wrong') logger.warn(`${relTarget(file)} is in ${dest} but is not the expected file: downloading it again`);
          }
          return plan;
        }),
      ),
    );
    summary.files = plans.map((p) => p.result);
    const todo = plans.filter((p) => p.result.status === 'absent' && p.meta);
    if (opts.checkOnly || offline) {
      summary.ok = plans.every((p) => p.result.status === 'present' || p.result.status === 'present-unverified');
      return summary;
    }

    // 3. Free space for what is still to come, before the first byte.
    let need = 0;
    let already = 0;
    for (const p of todo) {
      const partPath = join(dest, relTarget(p.file)) + '.part';
      const part = (await segmentsDone(partPath)) ?? (await sizeOf(partPath)) ?? 0;
      const size = p.result.size ?? 0;
      need += Math.max(0, size - part);
      already += Math.min(part, size);
    }
    const reserve = opts.reserveBytes ?? 256 * 1024 * 1024;
    const free = (await diskUsage(dest)).availBytes;
    if (need + reserve > free) {
      throw new HubError('disk', `not enough free space in ${dest}: ${formatBytes(need)} to download (+${formatBytes(reserve)} reserve), ${formatBytes(free)} free`, {
        hint: 'free some space, choose a smaller variant (--variant), or point --dest at a larger volume',
      });
    }

    // 4. Download in parallel.
    const total = todo.reduce((s, p) => s + (p.result.size ?? 0), 0);
    if (todo.length) {
      logger.info(`downloading ${todo.length} file(s), ${formatBytes(need)} to fetch, ${jobs} at a time, into ${dest}`);
      progress.begin(total, already);
    }
    await Promise.all(
      todo.map((p) =>
        limit(async () => {
          const started = Date.now();
          try {
            const r = await downloadOne({
              ...opts,
              agent,
              cache,
              progress,
              file: p.file,
              meta: p.meta!,
              refresh: async () => {
                metaCache.delete(p.file.id);
                return meta(p.file);
              },
            });
            Object.assign(p.result, { status: 'downloaded', size: r.size, sha256: r.sha256, downloadedBytes: r.downloadedBytes });
            logger.info(`ok ${p.result.target} (${formatBytes(r.size)}, sha256 ${r.sha256.slice(0, 12)}…)`);
          } catch (err) {
            if (opts.signal?.aborted) throw err;
            p.result.status = 'failed';
            p.result.error = errorInfo(err);
            logger.error(`${p.result.target}: ${p.result.error.message}`);
          } finally {
            p.result.seconds = (Date.now() - started) / 1000;
            progress.fileDone(p.file.filename);
          }
        }),
      ),
    );
    if (todo.length) progress.end();
    summary.downloadedBytes = plans.reduce((s, p) => s + p.result.downloadedBytes, 0);
    summary.ok = plans.every((p) => p.result.status === 'present' || p.result.status === 'downloaded' || p.result.status === 'present-unverified');
    return summary;
  } catch (err) {
    if (opts.signal?.aborted) {
      throw new ActionableError(`interrupted: partial downloads are kept as .part files in ${dest} and resume on the next run`, { code: 'E_INTERRUPTED', exitCode: 130, cause: err });
    }
    throw err;
  } finally {
    summary.seconds = (Date.now() - t0) / 1000;
    await agent.close();
  }
}

interface OneOptions {
  file: ManifestFile;
  meta: RemoteMetadata;
  dest: string;
  hub: HubConfig;
  agent: Agent;
  cache: VerifiedCache;
  progress: ProgressSink;
  logger: Logger;
  signal?: AbortSignal;
  retries?: number;
  retryMinTimeoutMs?: number;
  /** Re-resolve the file (a CDN link that expired answers 403). */
  refresh: () => Promise<RemoteMetadata>;
  /** Connections per large file (byte ranges in parallel). Default 1. */
  connections?: number;
  /** Files at least this large use `connections` ranges (default 256 MiB). */
  segmentMinBytes?: number;
  /** Files at least this large are hashed on a worker thread (default 64 MiB). */
  threadHashMinBytes?: number;
}

/** Download one file to `<target>.part`, verify, rename. */
export async function downloadOne(o: OneOptions): Promise<{ size: number; sha256: string; downloadedBytes: number }> {
  const { file, hub, logger } = o;
  const rel = relTarget(file);
  const finalPath = join(o.dest, rel);
  const part = `${finalPath}.part`;
  await mkdir(dirname(finalPath), { recursive: true });
  const expectedSha = file.sha256 ?? o.meta.sha256;
  const expectedSize = o.meta.size ?? file.size;
  let url = o.meta.downloadUrl;
  let refreshed = false;
  // Large files are hashed on a worker thread, overlapping the receive on this one (see
  // bench/models-download.md); small ones here.
  const hasher = (expectedSize ?? 0) >= (o.threadHashMinBytes ?? 64 << 20) ? threadSha256() : inThreadSha256();
  let hashed = 0;
  let downloaded = 0;
  const name = file.filename;
  let begun = false;

  const restart = async () => {
    await unlink(part).catch(() => undefined);
    await hasher.reset();
    hashed = 0;
  };

  const attempt = async () => {
    let offset = (await sizeOf(part)) ?? 0;
    if (expectedSize !== null && offset > expectedSize) {
      logger.warn(`${rel}.part is larger than the file (${offset} > ${expectedSize}): starting over`);
      await restart();
      offset = 0;
    }
    if (offset !== hashed) {
      // The hash must cover exactly the bytes on disk: after a drop, re-read the partial file.
      hashed = await hashFileInto(hasher, part, o.signal);
      offset = hashed;
    }
    if (!begun) {
      o.progress.fileStart(name, expectedSize ?? 0, offset);
      begun = true;
    } else o.progress.reset(name, offset);
    if (expectedSize !== null && offset === expectedSize) return; // all there: verify below

    let target = url;
    for (let hop = 0; ; hop++) {
      if (hop > 5) throw new HubError('protocol', `too many redirects downloading ${rel}`);
      const headers = requestHeaders(hub, target, offset > 0 ? { range: `bytes=${offset}-` } : {});
      let res: Dispatcher.ResponseData;
      try {
        res = await request(target, { method: 'GET', headers, dispatcher: o.agent, signal: o.signal, highWaterMark: 1 << 20 });
      } catch (err) {
        if (o.signal?.aborted) throw err;
        throw networkError(err, target);
      }
      const st = res.statusCode;
      if (st >= 300 && st < 400 && res.headers.location) {
        await res.body.dump();
        target = new URL(String(res.headers.location), target).toString();
        continue;
      }
      if (st === 416) {
        await res.body.dump();
        // Range not satisfiable: our partial file is not a prefix of this file (or is all of it).
        const total = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''))?.[1];
        if (total !== undefined && Number(total) === offset) return;
        logger.warn(`${rel}: the server refused to resume at byte ${offset} (416): starting over`);
        await restart();
        throw new HubError('server', `${rel}: range not satisfiable, restarting`, { status: 416 });
      }
      if ((st === 401 || st === 403) && !sameOrigin(target, hub.endpoint) && !refreshed) {
        await res.body.dump();
        // A signed CDN link that expired: ask the Hub for a fresh one, then retry.
        refreshed = true;
        url = (await o.refresh()).downloadUrl;
        throw new HubError('server', `${rel}: the download link was refused (HTTP ${st}); asked the Hub for a new one`, { status: st });
      }
      if (st !== 200 && st !== 206) {
        await res.body.dump();
        throw statusError(st, res.headers, file, hub.endpoint, Boolean(hub.token), sameOrigin(target, hub.endpoint) ? 'the Hub' : new URL(target).host);
      }
      let append = false;
      if (st === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
        if (!m || Number(m[1]) !== offset || (m[3] !== '*' && expectedSize !== null && Number(m[3]) !== expectedSize)) {
          await res.body.dump();
          await restart();
          throw new HubError('server', `${rel}: the server resumed at the wrong place (${res.headers['content-range'] ?? 'no Content-Range'}): starting over`);
        }
        append = true;
      } else if (offset > 0) {
        // 200 to a Range request: the server sends the whole file; start over.
        logger.debug(`${rel}: the server ignored the Range header: starting over`);
        await hasher.reset();
        hashed = 0;
        o.progress.reset(name, 0);
      }
      // Network chunks (~64 KiB) are gathered into ~1 MiB appends (fewer syscalls than a
      // WriteStream per chunk); appends are written (libuv's pool) and then hashed (a worker
      // thread for large files) in order, behind the receive, with at most 4 of them queued, so
      // that receiving, writing and hashing overlap (bench/models-download.md).
      const fh = await open(part, append ? 'a' : 'w');
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let queue: Promise<void> = Promise.resolve();
      let queued = 0;
      let writeError: unknown;
      const writeAndHash = async (buf: Buffer) => {
        let off = 0;
        while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
        await hasher.update(buf);
      };
      const enqueue = () => {
        if (!pendingBytes) return;
        const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        queued++;
        queue = queue
          .then(() => (writeError === undefined ? writeAndHash(buf) : undefined))
          .catch((e: unknown) => void (writeError ??= e))
          .then(() => void queued--);
      };
      const diskError = () =>
        new HubError('disk', `${rel}: writing ${part} failed: ${(writeError as Error)?.message ?? String(writeError)}`, {
          hint: `check free space and permissions at ${o.dest}; the bytes written so far are kept and the next run resumes after them`,
          cause: writeError,
        });
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          hashed += chunk.length;
          downloaded += chunk.length;
          o.progress.advance(name, chunk.length);
          pending.push(chunk);
          pendingBytes += chunk.length;
          if (pendingBytes >= 1 << 20) {
            enqueue();
            if (queued >= 4) await queue;
            if (writeError !== undefined) break;
          }
        }
        enqueue();
        await queue;
      } catch (err) {
        // Keep what arrived (it is a prefix of the file): the retry resumes after it.
        enqueue();
        await queue;
        if (o.signal?.aborted) throw err;
        if (writeError !== undefined) throw diskError();
        throw networkError(err, target);
      } finally {
        await fh.close();
      }
      if (writeError !== undefined) throw diskError();
      const got = (await sizeOf(part)) ?? 0;
      if (expectedSize !== null && got < expectedSize) throw networkError(Object.assign(new Error(`the body ended early (${got} of ${expectedSize} bytes)`), { code: 'UND_ERR_SOCKET' }), target);
      return;
    }
  };

  try {
    const initialOffset = (await sizeOf(part)) ?? 0;
    // Several connections for a large file, unless a one-connection .part is already under way.
    let segmented =
      (o.connections ?? 1) > 1 && expectedSize !== null && expectedSize >= (o.segmentMinBytes ?? 256 * 1024 * 1024) && (initialOffset === 0 || (await sizeOf(segmentsPath(part))) !== null);
    for (let pass = 0; ; pass++) {
      if (segmented) {
        try {
          downloaded += await fetchSegmented({
            file,
            part,
            url,
            size: expectedSize!,
            etag: o.meta.etag,
            connections: o.connections!,
            hub,
            agent: o.agent,
            progress: o.progress,
            logger,
            signal: o.signal,
            retries: o.retries ?? 5,
            retryMinTimeoutMs: o.retryMinTimeoutMs ?? 1000,
          });
          await dropSegments(part);
          begun = true;
        } catch (err) {
          if (!(err instanceof RangeUnsupported)) throw err;
          logger.info(`${rel}: ${err.message}: downloading over one connection`);
          await dropSegments(part);
          await restart();
          segmented = false;
        }
      }
      if (!segmented)
        await pRetry(attempt, {
          retries: o.retries ?? 5,
          minTimeout: o.retryMinTimeoutMs ?? 1000,
          maxTimeout: 30_000,
          factor: 2,
          signal: o.signal,
          shouldRetry: ({ error }) => error instanceof HubError && error.retryable,
          onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
            if (error instanceof HubError && error.retryable && retriesLeft > 0) logger.warn(`${rel}: ${error.message} (attempt ${attemptNumber}, retrying)`);
          },
        });

      const size = (await sizeOf(part)) ?? 0;
      if (expectedSize !== null && size !== expectedSize) {
        await unlink(part).catch(() => undefined);
        throw new HubError('size', `${rel}: got ${size} bytes, expected ${expectedSize}; the partial file was deleted`);
      }
      if (hashed !== size) hashed = await hashFileInto(hasher, part, o.signal);
      const sha = await hasher.digest();
      hashed = 0;
      if (expectedSha && sha !== expectedSha) {
        await restart();
        if (pass === 0 && initialOffset > 0) {
          // The .part we resumed may have come from another version of the file: one clean pass.
          logger.warn(`${rel}: sha256 mismatch after resuming an old .part: downloading it again from the start`);
          o.progress.reset(name, 0);
          continue;
        }
        throw new HubError('checksum', `${rel}: sha256 mismatch (expected ${expectedSha}, got ${sha}); the partial file was deleted and nothing was written under ${rel}`, {
          hint: 'run the download again; if it repeats, the file on the Hub differs from docker/models.json',
        });
      }
      await rename(part, finalPath);
      await o.cache.record(rel, { sha256: sha, repo: file.repo, path: file.path, commit: o.meta.commit ?? file.commit });
      return { size, sha256: sha, downloadedBytes: downloaded };
    }
  } finally {
    await hasher.close();
  }
}
