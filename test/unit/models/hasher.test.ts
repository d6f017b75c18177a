/** The sha256 hashers of downloads: the worker-thread one gives node:crypto's digest for the same bytes. */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { inThreadSha256, threadSha256 } from '../../../src/models/hasher.js';

const sha = (...bufs: Buffer[]) => {
  const h = createHash('sha256');
  for (const b of bufs) h.update(b);
  return h.digest('hex');
};

describe.each([
  ['worker thread', () => threadSha256(256 * 1024)],
  ['in thread', () => inThreadSha256()],
])('sha256 hasher (%s)', (_name, make) => {
  it('digests owned buffers, views into a shared buffer and empty ones as node:crypto does', async () => {
    const h = make();
    try {
      const a = randomBytes(3 << 20); // owns its memory: transferred
      const slab = randomBytes(1 << 20);
      const view = slab.subarray(1000, 700_000); // a view: copied
      const small = Buffer.from('tail'); // from the pool: copied
      const expected = sha(a, view, small);
      const copies = [Buffer.from(a), Buffer.from(view), Buffer.from(small)];
      await h.update(copies[0]!);
      await h.update(Buffer.alloc(0));
      await h.update(view);
      await h.update(small);
      expect(await h.digest()).toBe(expected);
      expect(slab.subarray(1000, 700_000).equals(view)).toBe(true); // the shared slab is intact
    } finally {
      await h.close();
    }
  });

  it('starts afresh after digest and after reset; many small updates pass the back-pressure limit', async () => {
    const h = make();
    try {
      expect(await h.digest()).toBe(sha());
      await h.update(Buffer.from('garbage'));
      await h.reset();
      const parts = Array.from({ length: 200 }, (_, i) => randomBytes(8192 + i));
      const expected = sha(...parts);
      for (const p of parts) await h.update(Buffer.from(p));
      expect(await h.digest()).toBe(expected);
    } finally {
      await h.close();
    }
  });
});

describe('worker-thread hasher', () => {
  it('refuses bytes after close, with a clear error', async () => {
    const h = threadSha256();
    await h.close();
    await h.close(); // idempotent
    await expect(h.update(Buffer.from('x'))).rejects.toThrow(/the sha256 hasher was closed/);
  });
});
