/**
 * NVIDIA GPU facts from nvidia-smi: names, driver version, compute capability, memory, and the
 * highest CUDA version the driver supports (from the plain `nvidia-smi` header).
 */
import { firstLine, type Runner } from './exec.js';

export interface GpuInfo {
  index: number;
  name: string;
  driverVersion: string;
  /** e.g. "9.0"; null when the driver is too old to report it. */
  computeCap: string | null;
  memoryMiB: number | null;
}

export interface GpuProbe {
  present: boolean;
  /** Why no GPU could be seen (only when present is false). */
  reason?: string;
  gpus: GpuInfo[];
  driverVersion: string | null;
  /** Highest CUDA version the driver supports, e.g. "12.8" (header, else the driver table). */
  cudaVersion: string | null;
  cudaSource?: 'nvidia-smi header' | 'driver table';
}

export const GPU_QUERY_ARGS = ['--query-gpu=name,driver_version,compute_cap,memory.total', '--format=csv,noheader'];

/**
 * Minimum Linux driver for each CUDA release (NVIDIA's CUDA toolkit release notes, table 3).
 * Only used when the nvidia-smi header does not print "CUDA Version".
 */
const CUDA_MIN_DRIVER: Array<[cuda: string, driver: string]> = [
  ['13.0', '580.65.06'],
  ['12.9', '575.51.03'],
  ['12.8', '570.26'],
  ['12.6', '560.28.03'],
  ['12.5', '555.42.02'],
  ['12.4', '550.54.14'],
  ['12.3', '545.23.06'],
  ['12.2', '535.54.03'],
  ['12.1', '530.30.02'],
  ['12.0', '525.60.13'],
  ['11.8', '520.61.05'],
];

/** Compare dotted versions numerically ("570.124.06" vs "570.26"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+~-]/).map((x) => parseInt(x, 10));
  const pb = b.split(/[.+~-]/).map((x) => parseInt(x, 10));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = Number.isNaN(pa[i]) ? 0 : (pa[i] ?? 0);
    const y = Number.isNaN(pb[i]) ? 0 : (pb[i] ?? 0);
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export function cudaFromDriver(driver: string): string | null {
  for (const [cuda, min] of CUDA_MIN_DRIVER) if (compareVersions(driver, min) >= 0) return cuda;
  return null;
}

/** Parse `nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader`. */
export function parseGpuQuery(text: string): GpuInfo[] {
  const out: GpuInfo[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    // GPU names never contain commas; split from the right to be safe anyway.
    const parts = line.split(',').map((s) => s.trim());
    if (parts.length < 4) throw new Error(`unexpected nvidia-smi query line: "${line}"`);
    const mem = parts.pop()!;
    const cap = parts.pop()!;
    const driver = parts.pop()!;
    const name = parts.join(', ');
    const memMatch = /^(\d+)\s*MiB$/i.exec(mem);
    out.push({
      index: out.length,
      name,
      driverVersion: driver,
      computeCap: /^\d+\.\d+$/.test(cap) ? cap : null,
      memoryMiB: memMatch ? Number(memMatch[1]) : null,
    });
  }
  return out;
}

/** "CUDA Version: 12.8" from the plain nvidia-smi table header. */
export function parseSmiHeader(text: string): { driverVersion: string | null; cudaVersion: string | null } {
  const d = /Driver Version:\s*([0-9.]+)/.exec(text);
  const c = /CUDA Version:\s*([0-9.]+)/.exec(text);
  return { driverVersion: d?.[1] ?? null, cudaVersion: c?.[1] ?? null };
}

export async function probeGpu(run: Runner): Promise<GpuProbe> {
  const q = await run('nvidia-smi', GPU_QUERY_ARGS);
  if (q.notFound) {
    return { present: false, reason: 'nvidia-smi is not installed (no NVIDIA driver on this host)', gpus: [], driverVersion: null, cudaVersion: null };
  }
  if (q.exitCode !== 0) {
    const why = firstLine(q.stdout) || firstLine(q.stderr) || `exit code ${q.exitCode}`;
    return { present: false, reason: `nvidia-smi failed: ${why}`, gpus: [], driverVersion: null, cudaVersion: null };
  }
  let gpus: GpuInfo[];
  try {
    gpus = parseGpuQuery(q.stdout);
  } catch (err) {
    return { present: false, reason: (err as Error).message, gpus: [], driverVersion: null, cudaVersion: null };
  }
  if (!gpus.length) return { present: false, reason: 'nvidia-smi lists no GPU', gpus, driverVersion: null, cudaVersion: null };
  const driverVersion = gpus[0]!.driverVersion;
  const h = await run('nvidia-smi', []);
  const header = h.exitCode === 0 ? parseSmiHeader(h.stdout) : { driverVersion: null, cudaVersion: null };
  if (header.cudaVersion) return { present: true, gpus, driverVersion, cudaVersion: header.cudaVersion, cudaSource: 'nvidia-smi header' };
  const cuda = cudaFromDriver(driverVersion);
  return { present: true, gpus, driverVersion, cudaVersion: cuda, ...(cuda ? { cudaSource: 'driver table' as const } : {}) };
}
