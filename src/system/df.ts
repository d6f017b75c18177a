/** Free disk space of the filesystem holding a path, from POSIX `df -Pk` (through the injectable Runner, so doctor replays recorded hosts). */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { firstLine, type Runner } from './exec.js';

export interface DiskSpace {
  /** The path asked about. */
  path: string;
  /** The existing path df was run on (the nearest existing parent when `path` does not exist yet). */
  probedPath: string;
  filesystem: string;
  mountpoint: string;
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
}

/**
 * Parse `df -Pk PATH`. POSIX output: a header, then one line per filesystem with 1024-byte
 * blocks: Filesystem, total, used, available, capacity, mounted on (which may contain spaces).
 */
export function parseDfPk(text: string): Omit<DiskSpace, 'path' | 'probedPath'> {
  const lines = text.split('\n').filter((l) => l.trim());
  const row = lines.find((l, i) => i > 0 && /\s\d+\s+\d+\s+\d+\s+\d+%\s/.test(l + ' '));
  if (!row) throw new Error(`unexpected df output: "${firstLine(text)}"`);
  const m = /^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(.*)$/.exec(row.trim());
  if (!m) throw new Error(`unexpected df line: "${row}"`);
  return {
    filesystem: m[1]!,
    totalBytes: Number(m[2]) * 1024,
    usedBytes: Number(m[3]) * 1024,
    freeBytes: Number(m[4]) * 1024,
    mountpoint: m[6]!,
  };
}

/** The path itself when it exists, else its nearest existing parent (df needs an existing path). */
export function nearestExisting(path: string, exists: (p: string) => boolean = existsSync): string {
  let p = resolve(path);
  while (!exists(p)) {
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return p;
}

export async function diskSpace(run: Runner, path: string, exists?: (p: string) => boolean): Promise<DiskSpace> {
  const probedPath = nearestExisting(path, exists);
  const r = await run('df', ['-Pk', probedPath]);
  if (r.notFound) throw new Error('df is not installed');
  if (r.exitCode !== 0) throw new Error(`df -Pk ${probedPath} failed: ${firstLine(r.stderr) || `exit code ${r.exitCode}`}`);
  return { path, probedPath, ...parseDfPk(r.stdout) };
}

export const GB = 1e9;
export function fmtGB(bytes: number): string {
  return `${(bytes / GB).toFixed(1)} GB`;
}
