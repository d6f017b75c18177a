/**
 * `models prefetch` (src/models/prefetch.ts): which files of a variant it reads and in what
 * order, that it reads every byte of them (the page cache itself is the oracle: util-linux
 * `fincore` shows a file's resident bytes after `dd iflag=nocache` dropped them), and its bad
 * inputs.
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli.js';
import { loadManifest, targetPath, variantFiles } from '../../../src/models/manifest.js';
import { PREFETCH_ROLE_ORDER, prefetchModels, prefetchPlan } from '../../../src/models/prefetch.js';
import { captureCli } from '../../helpers/cli.js';
import { needs } from '../../helpers/skips.js';

const manifest = loadManifest();
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  // not tmpfs on CI hosts we know; the residency test checks that the drop worked before it asserts
  const d = mkdtempSync(join(tmpdir(), 'sd-prefetch-'));
  dirs.push(d);
  return d;
}

/** Every file of `variant` with odd sizes (none a multiple of the piece), except `leave` ids. */
function folder(variant: string, leave: string[] = []): { dir: string; sizes: Map<string, number> } {
  const dir = tmp();
  const sizes = new Map<string, number>();
  let n = 0;
  for (const f of variantFiles(manifest, variant)) {
    if (leave.includes(f.id)) continue;
    const p = targetPath(dir, f);
    mkdirSync(dirname(p), { recursive: true });
    const size = 70_001 + 9_973 * n++;
    writeFileSync(p, Buffer.alloc(size, n));
    sizes.set(f.id, size);
  }
  return { dir, sizes };
}

function resident(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

function dropCache(path: string): void {
  execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']);
}

function canSeeCache(): string | undefined {
  try {
    const d = tmp();
    const p = join(d, 'probe.bin');
    writeFileSync(p, Buffer.alloc(1 << 20, 7));
    execFileSync('sync', [p]);
    dropCache(p);
    if (resident(p) !== 0) return `the page cache of ${d} cannot be dropped here (tmpfs?): residency is not observable`;
    return undefined;
  } catch (e) {
    return `fincore/dd (util-linux, coreutils) unusable here: ${(e as Error).message.split('\n')[0]}`;
  }
}

describe('models prefetch: the files', () => {
  it('reads the variant in loader order, skips the text encoder unless asked, reports absent files', async () => {
    const model = manifest.variants.fp8!.diffusionModel;
    const { dir } = folder('fp8', [model]);
    const plan = await prefetchPlan({ manifest, variant: 'fp8', dest: dir });
    const ids = new Set(variantFiles(manifest, 'fp8').map((f) => f.id));
    expect(new Set(plan.map((f) => f.id))).toEqual(ids);
    const ranks = plan.map((f) => PREFETCH_ROLE_ORDER.indexOf(f.role));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(plan[0]!.role).toBe('vae');
    expect(plan.find((f) => f.id === model)).toMatchObject({ status: 'absent', bytes: 0 });
    const te = plan.find((f) => f.role === 'text_encoder')!;
    expect(te).toMatchObject({ status: 'skipped' });
    const withTe = await prefetchPlan({ manifest, variant: 'fp8', dest: dir, textEncoder: true });
    expect(withTe.find((f) => f.role === 'text_encoder')!.status).toBe('read');
    const noPresets = await prefetchPlan({ manifest, variant: 'fp8', dest: dir, noPresets: true });
    expect(noPresets.some((f) => f.role === 'lora')).toBe(false);
  });

  it('every byte of every present file, in pieces that do not divide the sizes, any number of readers', async () => {
    const { dir, sizes } = folder('fp16');
    for (const jobs of [1, 3, 8]) {
      const s = await prefetchModels({ manifest, variant: 'fp16', dest: dir, jobs, piece: 8192, textEncoder: true });
      for (const f of s.files) expect(f.bytes).toBe(sizes.get(f.id));
      expect(s.bytes).toBe([...sizes.values()].reduce((a, b) => a + b, 0));
      expect(s.jobs).toBe(jobs);
    }
  });

  const skip = needs('models prefetch: page-cache residency', canSeeCache());
  it.skipIf(skip)('leaves the files resident in the page cache (fincore), the skipped text encoder not', async () => {
    const { dir } = folder('fp8');
    const plan = await prefetchPlan({ manifest, variant: 'fp8', dest: dir });
    execFileSync('sync');
    for (const f of plan) dropCache(f.path);
    for (const f of plan) expect(resident(f.path)).toBe(0);
    await prefetchModels({ manifest, variant: 'fp8', dest: dir, jobs: 4, piece: 16384 });
    for (const f of plan) {
      if (f.status === 'read') expect(resident(f.path)).toBeGreaterThanOrEqual(f.bytes);
      else expect(resident(f.path)).toBe(0);
    }
  });
});

describe('models prefetch: the command and its bad inputs', () => {
  it('--json summary; exit 1 when a file is absent (the rest still read); exit 0 when complete', async () => {
    const model = manifest.variants.fp8!.diffusionModel;
    const { dir, sizes } = folder('fp8', [model]);
    const c = captureCli({ PATH: process.env.PATH });
    expect(await runCli(['models', 'prefetch', '--dest', dir, '--variant', 'fp8', '--json'], c.io)).toBe(1);
    const doc = JSON.parse(c.out.join('\n')) as { variant: string; bytes: number; files: { id: string; status: string }[] };
    expect(doc.variant).toBe('fp8');
    expect(doc.files.find((f) => f.id === model)!.status).toBe('absent');
    const te = variantFiles(manifest, 'fp8').find((f) => f.role === 'text_encoder')!.id;
    expect(doc.bytes).toBe([...sizes.entries()].filter(([id]) => id !== te).reduce((a, [, b]) => a + b, 0));
    const full = folder('fp8');
    const d = captureCli({ PATH: process.env.PATH, MODELS_DIR: full.dir });
    expect(await runCli(['models', 'prefetch', '--variant', 'fp8'], d.io)).toBe(0);
    expect(d.out.join('\n')).toMatch(/read .* in .*GB\/s, 8 readers/);
  });

  it('a directory where a model file should be, no models dir, --jobs 0, an unknown variant: clear errors', async () => {
    const { dir } = folder('fp8');
    const f = variantFiles(manifest, 'fp8')[0]!;
    rmSync(targetPath(dir, f));
    mkdirSync(targetPath(dir, f));
    const a = captureCli({ PATH: process.env.PATH });
    expect(await runCli(['models', 'prefetch', '--dest', dir, '--variant', 'fp8'], a.io)).toBe(2);
    expect(a.err.join('')).toContain('is not a regular file');
    const b = captureCli({ PATH: process.env.PATH });
    expect(await runCli(['models', 'prefetch'], b.io)).toBe(2);
    expect(b.err.join('')).toContain('no destination: pass --dest DIR or set MODELS_DIR');
    const c = captureCli({ PATH: process.env.PATH });
    expect(await runCli(['models', 'prefetch', '--dest', dir, '--jobs', '0'], c.io)).toBe(2);
    const d = captureCli({ PATH: process.env.PATH });
    expect(await runCli(['models', 'prefetch', '--dest', dir, '--variant', 'fp32-nope'], d.io)).not.toBe(0);
    expect(d.err.join('')).toContain('fp32-nope');
  });

  it('--after-comfy: reads only once ComfyUI answers /system_stats (503 first, as while it starts); gives up with exit 1 and nothing read', async () => {
    let calls = 0;
    let readAt = -1;
    const server = createServer((_req, res) => {
      calls += 1;
      res.statusCode = calls < 3 ? 503 : 200;
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const { dir } = folder('fp8');
      const c = captureCli({ PATH: process.env.PATH });
      const code = await runCli(['models', 'prefetch', '--dest', dir, '--variant', 'fp8', '--after-comfy', url, '--json'], c.io);
      readAt = calls;
      expect(code).toBe(0);
      expect(readAt).toBe(3); // two 503s, then the 200 that let it start
      expect((JSON.parse(c.out.join('\n')) as { bytes: number }).bytes).toBeGreaterThan(0);
    } finally {
      await new Promise((r) => server.close(r));
    }
    const { dir } = folder('fp8');
    const d = captureCli({ PATH: process.env.PATH });
    expect(await runCli(['models', 'prefetch', '--dest', dir, '--variant', 'fp8', '--after-comfy', url, '--wait', '1'], d.io)).toBe(1);
    expect(d.err.join('')).toMatch(/did not answer \/system_stats within 1 s.*; nothing read/);
    expect(d.out.join('')).toBe('');
    const e = captureCli({ PATH: process.env.PATH });
    expect(await runCli(['models', 'prefetch', '--dest', dir, '--after-comfy', 'file:///etc/passwd'], e.io)).toBe(2);
  });
});
