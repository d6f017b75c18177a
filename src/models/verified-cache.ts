/**
 * The verified-file record: DIR/.steadydancer-verified.json remembers, per file, the size,
 * mtime and sha256 it had when we last checked its sha256. A file whose size and mtime still
 * match is trusted without re-hashing (16 GB at every container start would cost minutes).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export const VERIFIED_FILE = '.steadydancer-verified.json';

const entrySchema = z.object({
  size: z.number().int().nonnegative(),
  mtimeMs: z.number(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  repo: z.string(),
  path: z.string(),
  commit: z.string().nullable(),
  verifiedAt: z.string(),
});
const recordSchema = z.object({ version: z.literal(1), files: z.record(z.string(), entrySchema) });
export type VerifiedEntry = z.infer<typeof entrySchema>;

/**
 * The sync view of the record for deciders that must not be async (the variant rule): the
 * relative paths whose recorded size, mtime (and the expected sha256/size, when known) still
 * match the file on disk. Same rule as VerifiedCache.match.
 */
export function verifiedSync(dir: string, wanted: { rel: string; sha256?: string | null; size?: number | null }[]): Set<string> {
  let files: Record<string, VerifiedEntry>;
  try {
    const r = recordSchema.safeParse(JSON.parse(readFileSync(join(dir, VERIFIED_FILE), 'utf8')));
    files = r.success ? r.data.files : {};
  } catch {
    files = {};
  }
  const ok = new Set<string>();
  for (const w of wanted) {
    const e = files[w.rel];
    if (!e || (w.sha256 && w.sha256 !== e.sha256) || (w.size != null && w.size !== e.size)) continue;
    try {
      const st = statSync(join(dir, w.rel));
      if (st.isFile() && st.size === e.size && st.mtimeMs === e.mtimeMs) ok.add(w.rel);
    } catch {
      /* gone */
    }
  }
  return ok;
}

export class VerifiedCache {
  private files: Record<string, VerifiedEntry> = {};
  private chain: Promise<void> = Promise.resolve();
  constructor(readonly dir: string) {}

  get path(): string {
    return join(this.dir, VERIFIED_FILE);
  }

  /** Load the record; a missing or corrupt record counts as empty (files are then re-hashed). */
  async load(): Promise<this> {
    try {
      const r = recordSchema.safeParse(JSON.parse(await readFile(this.path, 'utf8')));
      this.files = r.success ? r.data.files : {};
    } catch {
      this.files = {};
    }
    return this;
  }

  get(rel: string): VerifiedEntry | undefined {
    return this.files[rel];
  }

  /**
   * The entry when the file on disk still has the recorded size and mtime (and, when given,
   * the expected sha256 and size); undefined otherwise.
   */
  async match(rel: string, expect: { sha256?: string | null; size?: number | null } = {}): Promise<VerifiedEntry | undefined> {
    const e = this.files[rel];
    if (!e) return undefined;
    if (expect.sha256 && expect.sha256 !== e.sha256) return undefined;
    if (expect.size != null && expect.size !== e.size) return undefined;
    try {
      const st = await stat(join(this.dir, rel));
      if (st.isFile() && st.size === e.size && st.mtimeMs === e.mtimeMs) return e;
    } catch {
      /* gone */
    }
    return undefined;
  }

  /** Record a file just verified (stat is taken now). Writes are serialised and atomic. */
  async record(rel: string, info: Omit<VerifiedEntry, 'size' | 'mtimeMs' | 'verifiedAt'>): Promise<void> {
    const st = await stat(join(this.dir, rel));
    this.files[rel] = { ...info, size: st.size, mtimeMs: st.mtimeMs, verifiedAt: new Date().toISOString() };
    await this.save();
  }

  async forget(rel: string): Promise<void> {
    if (!(rel in this.files)) return;
    delete this.files[rel];
    await this.save();
  }

  private save(): Promise<void> {
    const next = this.chain.then(async () => {
      const tmp = `${this.path}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, JSON.stringify({ version: 1, files: this.files }, null, 2) + '\n');
      await rename(tmp, this.path);
    });
    this.chain = next.catch(() => undefined);
    return next;
  }
}
