/**
 * sha256 of a download, computed on a worker thread so that hashing overlaps receiving on the
 * main thread (measured in bench/models-download.md: on a 2-CPU machine the main thread is the
 * limit when it both parses the HTTP body and hashes it).
 *
 * Buffers are handed over (transferred, not copied) after they were written to disk; the
 * worker answers each one so that at most `maxInFlight` bytes wait for it (back-pressure: a
 * slow hash slows the download instead of growing memory).
 *
 * node:crypto's Hash is what does the hashing; the worker is a few lines of plain CommonJS
 * given as source (`eval: true`), so the same code runs from TypeScript sources (tsx) and from
 * the compiled dist/ in the image.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
let h = createHash('sha256');
parentPort.on('message', (m) => {
  if (m.op === 'update') { h.update(new Uint8Array(m.buf, m.offset, m.length)); parentPort.postMessage({ op: 'ack', length: m.length }); }
  else if (m.op === 'digest') { parentPort.postMessage({ op: 'digest', hex: h.digest('hex') }); h = createHash('sha256'); }
});
`;

export interface Sha256 {
  /** Adds bytes; the buffer must not be used by the caller afterwards (it may be transferred). */
  update(buf: Buffer): Promise<void>;
  /** The hex digest of everything given; the hasher can be given new bytes afterwards (a fresh hash). */
  digest(): Promise<string>;
  /** Forgets everything given (a fresh hash). */
  reset(): Promise<void>;
  /** Releases the worker (idempotent). */
  close(): Promise<void>;
}

/** In-thread hashing: for small files and where worker threads are unwanted. */
export function inThreadSha256(): Sha256 {
  let h: Hash = createHash('sha256');
  return {
    update: async (buf) => void h.update(buf),
    digest: async () => {
      const hex = h.digest('hex');
      h = createHash('sha256');
      return hex;
    },
    reset: async () => void (h = createHash('sha256')),
    close: async () => undefined,
  };
}

/** Hashing on a worker thread, with at most `maxInFlight` bytes queued for it. */
export function threadSha256(maxInFlight = 64 << 20): Sha256 {
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  worker.unref();
  let inFlight = 0;
  let failed: Error | undefined;
  let drained: (() => void) | undefined;
  let digested: ((hex: string) => void) | undefined;
  let closed = false;
  const fail = (e: Error) => {
    failed = e;
    drained?.();
    digested?.('');
  };
  worker.on('error', fail);
  worker.on('exit', (code) => {
    if (!closed) fail(new Error(`the sha256 worker thread exited (code ${code})`));
  });
  worker.on('message', (m: { op: 'ack'; length: number } | { op: 'digest'; hex: string }) => {
    if (m.op === 'ack') {
      inFlight -= m.length;
      if (inFlight <= maxInFlight) {
        const d = drained;
        drained = undefined;
        d?.();
      }
    } else {
      const d = digested;
      digested = undefined;
      d?.(m.hex);
    }
  });
  const check = () => {
    if (failed) throw failed;
    if (closed) throw new Error('the sha256 hasher was closed');
  };
  return {
    async update(buf) {
      check();
      if (!buf.length) return;
      // Transfer the buffer's memory when the buffer owns all of it; copy a view of a shared one.
      const own = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && !(buf.buffer instanceof SharedArrayBuffer);
      const ab = own ? (buf.buffer as ArrayBuffer) : (buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer);
      inFlight += buf.byteLength;
      worker.postMessage({ op: 'update', buf: ab, offset: 0, length: buf.byteLength }, [ab]);
      if (inFlight > maxInFlight) await new Promise<void>((r) => (drained = r));
      check();
    },
    async digest() {
      check();
      const hex = await new Promise<string>((r) => {
        digested = r;
        worker.postMessage({ op: 'digest' });
      });
      check();
      return hex;
    },
    async reset() {
      await this.digest();
    },
    async close() {
      if (closed) return;
      closed = true;
      await worker.terminate();
    },
  };
}
