/**
 * Read a variant's model files into the OS page cache while ComfyUI starts (cold start, issue #13).
 *
 * On the H200 host a cold start spent ~20 s importing ComfyUI and its nodes, then ~10 s in the
 * model loader reading the 16.4 GB fp8 checkpoint (disk-bound, 1.9 GB/s with the pack's parallel
 * reader). start.sh (with MODELS_PREFETCH=true) runs this command in the background with
 * `--after-comfy`: the read starts when ComfyUI answers (client.ts's waitForComfy) and overlaps the
 * job's first stages (video, pose, CLIP, VAE encode: ~7 s before the model loader), so the loaders
 * find their files in memory. Not from the process start: beside ComfyUI's imports it took the
 * disk from them (H200 host: ready at 32.4 s instead of 22.3 s, cold start 67.3 s instead of
 * 61.9 s, bench/pipeline-gpu.md). The bytes are only read (no copy is kept): the page cache is the kernel's and is given back under memory pressure.
 *
 * The files: the variant's diffusion model, VAE, CLIP vision, pose models and the presets' LoRA,
 * in the order ComfyUI's loaders ask for them in the shipped workflow (VAE, pose, CLIP vision,
 * diffusion model, LoRA). The text encoder is left out unless asked for: with the prompt cache
 * (text_cache/) it is read only on a cache miss, and 6.7 GB of it would delay the model.
 * Files not on disk are reported and skipped (start.sh's ensure_models fetches what is missing).
 *
 * Reading: `jobs` readers take fixed-size pieces from one queue over all files (a large file is
 * read by every reader at once: one sequential stream did 1.16 GB/s on the H200 host, eight 1.9).
 * Node's fs calls run on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says more), so
 * bin/steadydancer.js raises it to 16 before anything uses it. p-limit does not fit: a piece
 * queue shared by N loops is the whole scheduler.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { UsageError } from '../util/errors.js';
import { type Manifest, type ManifestFile, targetPath, variantFiles } from './manifest.js';

/** The order loaders ask for files in the shipped workflow; the text encoder last (and only on request). */
export const PREFETCH_ROLE_ORDER = ['vae', 'pose_detector', 'pose_estimator', 'clip_vision', 'diffusion_model', 'lora', 'text_encoder'] as const;

export const PREFETCH_PIECE = 64 << 20;

export interface PrefetchFile {
  id: string;
  role: ManifestFile['role'];
  target: string;
  path: string;
  status: 'read' | 'absent' | 'skipped';
  /** Why a file is skipped. */
  reason?: string;
  bytes: number;
}

export interface PrefetchSummary {
  variant: string;
  dest: string;
  jobs: number;
  files: PrefetchFile[];
  /** Bytes read, all files. */
  bytes: number;
  seconds: number;
  gbPerSecond: number;
}

export interface PrefetchOptions {
  manifest: Manifest;
  variant: string;
  dest: string;
  /** Readers in parallel (default 8). */
  jobs?: number;
  /** Bytes per read (default 64 MiB). */
  piece?: number;
  /** Also read the text encoder. */
  textEncoder?: boolean;
  /** Leave out the presets' files (e.g. the fast LoRA). */
  noPresets?: boolean;
  signal?: AbortSignal;
}

/** The variant's files in loader order, each with where it is on disk and whether it is there. */
export async function prefetchPlan(opts: PrefetchOptions): Promise<PrefetchFile[]> {
  const files = variantFiles(opts.manifest, opts.variant, opts.noPresets ? { presets: [] } : {});
  const rank = (f: ManifestFile) => PREFETCH_ROLE_ORDER.indexOf(f.role);
  const ordered = [...files].sort((a, b) => rank(a) - rank(b));
  const out: PrefetchFile[] = [];
  for (const f of ordered) {
    const path = targetPath(opts.dest, f);
    const entry: PrefetchFile = { id: f.id, role: f.role, target: `${f.folder}/${f.filename}`, path, status: 'read', bytes: 0 };
    if (f.role === 'text_encoder' && !opts.textEncoder) {
      out.push({ ...entry, status: 'skipped', reason: 'text encoder: read on a prompt-cache miss only (--text-encoder reads it)' });
      continue;
    }
    const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
    if (st === null) out.push({ ...entry, status: 'absent' });
    else if (!st.isFile()) throw new UsageError(`${path} is not a regular file (${f.id} of variant ${opts.variant})`, 'move it away or fix the models folder');
    else out.push({ ...entry, bytes: st.size });
  }
  return out;
}

/** Read every present file of the plan once, `jobs` pieces at a time. Returns the summary. */
export async function prefetchModels(opts: PrefetchOptions): Promise<PrefetchSummary> {
  const jobs = opts.jobs ?? 8;
  const piece = opts.piece ?? PREFETCH_PIECE;
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`jobs must be a whole number >= 1, got ${jobs}`);
  if (!Number.isInteger(piece) || piece < 4096) throw new UsageError(`piece must be a whole number of bytes >= 4096, got ${piece}`);
  const files = await prefetchPlan(opts);
  const t0 = performance.now();
  const present = files.filter((f) => f.status === 'read');
  const handles = new Map<PrefetchFile, FileHandle>();
  const queue: { file: PrefetchFile; offset: number; length: number }[] = [];
  for (const f of present) for (let o = 0; o < f.bytes; o += piece) queue.push({ file: f, offset: o, length: Math.min(piece, f.bytes - o) });
  const done = new Map<PrefetchFile, number>(present.map((f) => [f, 0]));
  let next = 0;
  try {
    for (const f of present) handles.set(f, await open(f.path, 'r'));
    const reader = async () => {
      const buf = Buffer.allocUnsafe(Math.min(piece, Math.max(1, ...present.map((f) => f.bytes))));
      while (next < queue.length) {
        opts.signal?.throwIfAborted();
        const p = queue[next++]!;
        const fh = handles.get(p.file)!;
        let got = 0;
        while (got < p.length) {
          const { bytesRead } = await fh.read(buf, 0, p.length - got, p.offset + got);
          if (bytesRead === 0) break; // the file shrank since stat: read what is there
          got += bytesRead;
        }
        done.set(p.file, done.get(p.file)! + got);
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, queue.length)) }, reader));
  } finally {
    await Promise.all([...handles.values()].map((h) => h.close()));
  }
  for (const f of present) f.bytes = done.get(f)!;
  const seconds = (performance.now() - t0) / 1000;
  const bytes = present.reduce((s, f) => s + f.bytes, 0);
  return { variant: opts.variant, dest: opts.dest, jobs, files, bytes, seconds: Number(seconds.toFixed(3)), gbPerSecond: seconds > 0 ? Number((bytes / 1e9 / seconds).toFixed(2)) : 0 };
}
