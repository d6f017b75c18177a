/**
 * One large file over several connections: the file is cut into byte ranges, each fetched
 * with `Range: bytes=a-b` on its own connection and written at its offset in `<file>.part`
 * (preallocated). `<file>.part.segments.json` records each range's progress so an interrupted
 * download resumes per range. The sha256 is computed afterwards by the caller (reading the
 * file back), since ranges arrive out of order. A server that does not answer 206 makes us fall
 * back to one connection (RangeUnsupported).
 */
import { open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import pRetry from 'p-retry';
import { request, type Agent, type Dispatcher } from 'undici';
import { z } from 'zod';
import type { Logger } from '../util/logger.js';
import { HubError, networkError, requestHeaders, statusError, type HubConfig } from './hub.js';
import type { ManifestFile } from './manifest.js';
import type { ProgressSink } from './progress.js';

export class RangeUnsupported extends Error {
  constructor(status: number) {
    super(`the server answered ${status} to a Range request`);
    this.name = 'RangeUnsupported';
  }
}

const stateSchema = z.object({
  size: z.number().int().positive(),
  etag: z.string().nullable(),
  segments: z.array(z.object({ start: z.number().int().nonnegative(), end: z.number().int().nonnegative(), done: z.number().int().nonnegative() })).min(1),
});
type State = z.infer<typeof stateSchema>;

export const segmentsPath = (part: string) => `${part}.segments.json`;

async function loadState(path: string, size: number, etag: string | null): Promise<State | null> {
  try {
    const s = stateSchema.parse(JSON.parse(await readFile(path, 'utf8')));
    if (s.size !== size || s.etag !== etag) return null;
    return s;
  } catch {
    return null;
  }
}

export interface SegmentedOptions {
  file: ManifestFile;
  part: string;
  url: string;
  size: number;
  etag: string | null;
  connections: number;
  hub: HubConfig;
  agent: Agent;
  progress: ProgressSink;
  logger: Logger;
  signal?: AbortSignal;
  retries: number;
  retryMinTimeoutMs: number;
}

/** Fetch every range into `part`; returns the bytes fetched over the network. */
export async function fetchSegmented(o: SegmentedOptions): Promise<number> {
  const statePath = segmentsPath(o.part);
  let state = await loadState(statePath, o.size, o.etag);
  // A record without its preallocated .part (deleted by hand) is worthless.
  if (
    state &&
    (await stat(o.part).then(
      (st) => st.size,
      () => -1,
    )) !== o.size
  )
    state = null;
  let fh;
  if (state) {
    fh = await open(o.part, 'r+');
  } else {
    const n = Math.max(1, o.connections);
    const step = Math.ceil(o.size / n);
    const segments = [];
    for (let start = 0; start < o.size; start += step) segments.push({ start, end: Math.min(o.size, start + step) - 1, done: 0 });
    state = { size: o.size, etag: o.etag, segments };
    fh = await open(o.part, 'w');
    await fh.truncate(o.size);
  }
  const st = state;
  let downloaded = 0;
  let saving: Promise<void> = Promise.resolve();
  let lastSave = 0;
  const save = (force = false) => {
    if (!force && Date.now() - lastSave < 1000) return saving;
    lastSave = Date.now();
    const text = JSON.stringify(st);
    saving = saving.then(async () => {
      await writeFile(`${statePath}.tmp`, text);
      await rename(`${statePath}.tmp`, statePath);
    });
    return saving;
  };
  await save(true);
  const name = o.file.filename;
  o.progress.fileStart(
    name,
    o.size,
    st.segments.reduce((s, g) => s + g.done, 0),
  );

  const fetchSegment = async (seg: State['segments'][number], signal: AbortSignal) => {
    if (seg.start + seg.done > seg.end) return;
    const from = seg.start + seg.done;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(o.url, { method: 'GET', headers: requestHeaders(o.hub, o.url, { range: `bytes=${from}-${seg.end}` }), dispatcher: o.agent, signal, highWaterMark: 1 << 20 });
    } catch (err) {
      if (signal.aborted) throw err;
      throw networkError(err, o.url);
    }
    if (res.statusCode === 200) {
      await res.body.dump();
      throw new RangeUnsupported(200);
    }
    if (res.statusCode !== 206) {
      await res.body.dump();
      throw statusError(res.statusCode, res.headers, o.file, o.hub.endpoint, Boolean(o.hub.token), new URL(o.url).host);
    }
    const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
    if (!cr || Number(cr[1]) !== from || Number(cr[2]) !== seg.end) {
      await res.body.dump();
      throw new RangeUnsupported(206);
    }
    // Coalesce network chunks into ~1 MiB positional writes.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (!pendingBytes) return;
      const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      const pos = seg.start + seg.done;
      pending = [];
      const len = pendingBytes;
      pendingBytes = 0;
      let off = 0;
      while (off < len) off += (await fh.write(buf, off, len - off, pos + off)).bytesWritten;
      seg.done += len;
      void save();
    };
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        pending.push(chunk);
        pendingBytes += chunk.length;
        downloaded += chunk.length;
        o.progress.advance(name, chunk.length);
        if (pendingBytes >= 1 << 20) await flush();
      }
      await flush();
    } catch (err) {
      // Keep what arrived intact: write it, then let the retry resume after it.
      await flush().catch(() => undefined);
      if (signal.aborted) throw err;
      throw networkError(err, o.url);
    }
    if (seg.start + seg.done <= seg.end) throw networkError(Object.assign(new Error('the body ended early'), { code: 'UND_ERR_SOCKET' }), o.url);
  };

  // The first range that fails for good stops the others before the file is closed.
  const ac = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, ac.signal]) : ac.signal;
  let firstError: unknown;
  try {
    await Promise.allSettled(
      st.segments.map((seg) =>
        pRetry(() => fetchSegment(seg, signal), {
          retries: o.retries,
          minTimeout: o.retryMinTimeoutMs,
          maxTimeout: 30_000,
          signal,
          shouldRetry: ({ error }) => error instanceof HubError && error.retryable,
          onFailedAttempt: ({ error, retriesLeft }) => {
            if (error instanceof HubError && error.retryable && retriesLeft > 0) o.logger.warn(`${o.file.folder}/${name} bytes ${seg.start}-${seg.end}: ${error.message} (retrying)`);
          },
        }).catch((err: unknown) => {
          if (firstError === undefined) firstError = err;
          ac.abort(err);
        }),
      ),
    );
    if (firstError !== undefined) throw firstError;
  } finally {
    await save(true).catch(() => undefined);
    await fh.close();
  }
  return downloaded;
}

/** Bytes already fetched according to the range record of `part` (null when there is none). */
export async function segmentsDone(part: string): Promise<number | null> {
  try {
    const s = stateSchema.parse(JSON.parse(await readFile(segmentsPath(part), 'utf8')));
    return s.segments.reduce((n, g) => n + g.done, 0);
  } catch {
    return null;
  }
}

/** Remove the range record (after success, or when falling back to one connection). */
export async function dropSegments(part: string): Promise<void> {
  await unlink(segmentsPath(part)).catch(() => undefined);
}
