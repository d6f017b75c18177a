/**
 * The one variant rule (src/models/variant.ts): flag → STEADYDANCER_VARIANT → what the models
 * folder holds verified → the manifest's default, and the places that must use it: the job
 * default (worker / local API → workflow filler), models check/download, doctor, run's plan,
 * the job schema's allowed values.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli.js';
import { jobVariants, ParamsError, resolveParams } from '../../../src/comfy/params.js';
import { findByTitle, MARK } from '../../../src/comfy/workflow.js';
import { defaultManifestPath, loadManifest, targetPath, variantFiles } from '../../../src/models/manifest.js';
import { installedVariants, resolveVariant } from '../../../src/models/variant.js';
import { VerifiedCache } from '../../../src/models/verified-cache.js';
import { runPlan } from '../../../src/plan/engine.js';
import { realPhases } from '../../../src/plan/phases.js';
import { danceGlue } from '../../../src/job/pipeline-glue.js';
import { doctorHost } from '../../../src/system/doctor-host.js';
import { memoryLogger } from '../../../src/util/logger.js';
import { projectRoot } from '../../../src/util/paths.js';
import { captureCli } from '../../helpers/cli.js';

const manifest = loadManifest();
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A models folder holding the variant's core files (small stand-ins), recorded as verified like `models download` does. */
async function folderWith(variant: string, opts: { verified?: boolean } = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sd-variant-'));
  dirs.push(dir);
  const cache = await new VerifiedCache(dir).load();
  for (const f of variantFiles(manifest, variant, { presets: [] })) {
    const p = targetPath(dir, f);
    mkdirSync(dirname(p), { recursive: true });
    const body = Buffer.from(`stand-in for ${f.filename}`);
    writeFileSync(p, body);
    if (opts.verified !== false) await cache.record(`${f.folder}/${f.filename}`, { sha256: createHash('sha256').update(body).digest('hex'), repo: f.repo, path: f.path, commit: null });
  }
  return dir;
}

const fp16Model = manifest.files[manifest.variants.fp16!.diffusionModel]!.filename;
const fp8Model = manifest.files[manifest.variants.fp8!.diffusionModel]!.filename;

describe('the variant rule', () => {
  it('flag, then STEADYDANCER_VARIANT, then the verified folder, then the manifest default', async () => {
    const fp16 = await folderWith('fp16');
    expect(resolveVariant({ manifest, env: {}, modelsDir: fp16, flag: 'fp8' })).toMatchObject({ variant: 'fp8', source: 'flag' });
    expect(resolveVariant({ manifest, env: { STEADYDANCER_VARIANT: 'gguf-q6_k' }, modelsDir: fp16 })).toMatchObject({ variant: 'gguf-q6_k', source: 'env' });
    expect(resolveVariant({ manifest, env: {}, modelsDir: fp16 })).toMatchObject({ variant: 'fp16', source: 'installed' });
    expect(resolveVariant({ manifest, env: {} })).toMatchObject({ variant: manifest.defaultVariant, source: 'manifest' });
    expect(() => resolveVariant({ manifest, env: { STEADYDANCER_VARIANT: 'fp4' } })).toThrow(/STEADYDANCER_VARIANT=fp4: unknown variant "fp4"/);
  });

  it('only verified files count: unrecorded or changed files are not "installed"', async () => {
    const unverified = await folderWith('fp16', { verified: false });
    expect(installedVariants(manifest, unverified)).toEqual([]);
    expect(resolveVariant({ manifest, env: {}, modelsDir: unverified }).variant).toBe(manifest.defaultVariant);
    const touched = await folderWith('fp16');
    const f = variantFiles(manifest, 'fp16', { presets: [] })[0]!;
    utimesSync(targetPath(touched, f), new Date(), new Date(Date.now() + 60_000)); // no longer what was verified
    expect(installedVariants(manifest, touched)).toEqual([]);
  });

  it('for a run, a requested variant that is not installed gives way to its installed fallback (fp8 → fp16)', async () => {
    const fp16 = await folderWith('fp16');
    const env = { STEADYDANCER_VARIANT: 'fp8' };
    expect(resolveVariant({ manifest, env, modelsDir: fp16, forRun: true })).toMatchObject({ variant: 'fp16', source: 'installed' });
    // what to download or check stays the request
    expect(resolveVariant({ manifest, env, modelsDir: fp16 }).variant).toBe('fp8');
  });
});

describe('a job with no variant runs what is installed', () => {
  it('MODELS_DIR holding only verified fp16 files: the filled workflow asks ComfyUI for the fp16 files', async () => {
    const dir = await folderWith('fp16');
    const glue = await danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: { MODELS_DIR: dir } });
    const p = glue.resolve({ seed: 1 });
    expect(p.variant).toBe('fp16');
    const wf = glue.fill(p, { image: 'ref.png', video: 'clip.mp4' }) as Parameters<typeof findByTitle>[0];
    expect(findByTitle(wf, MARK.model)[1].inputs.model_name).toBe(fp16Model);
    expect(findByTitle(wf, MARK.text)[1].inputs.text_encoder).toBe(manifest.files[manifest.workflows.native!.textEncoderByVariant.fp16!]!.filename);
    // a job that names its variant still gets it
    expect(glue.resolve({ seed: 1, variant: 'fp8' }).variant).toBe('fp8');
  });

  it('STEADYDANCER_VARIANT=fp8 on a volume that fell back to fp16: the job runs fp16', async () => {
    const dir = await folderWith('fp16');
    const glue = await danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: { MODELS_DIR: dir, STEADYDANCER_VARIANT: 'fp8' } });
    const wf = glue.fill(glue.resolve({ seed: 1 }), { image: 'ref.png', video: 'clip.mp4' }) as Parameters<typeof findByTitle>[0];
    expect(findByTitle(wf, MARK.model)[1].inputs.model_name).toBe(fp16Model);
  });

  it('STEADYDANCER_VARIANT of another workflow (a GGUF image) does not stop the service: the job default goes on with the rule', async () => {
    const dir = await folderWith('fp16');
    const glue = await danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: { MODELS_DIR: dir, STEADYDANCER_VARIANT: 'gguf-q6_k' } });
    expect(glue.resolve({ seed: 1 }).variant).toBe('fp16');
    await expect(danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: { STEADYDANCER_VARIANT: 'fp4' } })).rejects.toThrow(/STEADYDANCER_VARIANT=fp4: unknown variant "fp4"/);
  });

  it('an empty folder: the manifest default', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-variant-empty-'));
    dirs.push(dir);
    const glue = await danceGlue({ comfyUrl: 'http://127.0.0.1:9', env: { MODELS_DIR: dir } });
    const wf = glue.fill(glue.resolve({ seed: 1 }), { image: 'ref.png', video: 'clip.mp4' }) as Parameters<typeof findByTitle>[0];
    expect(findByTitle(wf, MARK.model)[1].inputs.model_name).toBe(fp8Model);
  });
});

describe('the job schema takes its variants from the manifest', () => {
  it('allowed values are the manifest variants of the job workflow (the GGUF ones run another workflow)', () => {
    expect(jobVariants(manifest)).toEqual(
      Object.keys(manifest.variants).filter((v) => manifest.workflows[manifest.variants[v]!.workflow]!.workflowFiles.includes('docker/workflows/steadydancer-dance.api.json')),
    );
    expect(jobVariants(manifest)).toEqual(['fp8', 'fp16']);
    try {
      resolveParams({ variant: 'gguf-q6_k' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ParamsError);
      expect((e as ParamsError).message).toContain('variant must be one of fp8, fp16 (got "gguf-q6_k")');
    }
  });

  it('a variant added to the manifest is accepted by the schema without touching the code', () => {
    const doc = JSON.parse(JSON.stringify(manifest)) as typeof manifest;
    doc.variants['fp16-alt'] = { ...doc.variants.fp16!, description: 'a second fp16 file' };
    doc.workflows.native!.textEncoderByVariant['fp16-alt'] = doc.workflows.native!.textEncoderByVariant.fp16!;
    const dir = mkdtempSync(join(tmpdir(), 'sd-manifest-'));
    dirs.push(dir);
    const file = join(dir, 'models.json');
    writeFileSync(file, JSON.stringify(doc));
    const before = process.env.STEADYDANCER_MODELS_MANIFEST;
    process.env.STEADYDANCER_MODELS_MANIFEST = file;
    try {
      expect(defaultManifestPath()).toBe(file);
      expect(resolveParams({ variant: 'fp16-alt', seed: 1 }).variant).toBe('fp16-alt');
    } finally {
      if (before === undefined) delete process.env.STEADYDANCER_MODELS_MANIFEST;
      else process.env.STEADYDANCER_MODELS_MANIFEST = before;
    }
  });

  it('the manifest is read once per process (the same parsed object every time)', () => {
    expect(loadManifest()).toBe(loadManifest());
    expect(loadManifest(join(projectRoot(), 'docker', 'models.json'))).toBe(manifest);
  });
});

describe('every command uses the rule', () => {
  it('models check honours STEADYDANCER_VARIANT', async () => {
    const c = captureCli({ PATH: process.env.PATH, STEADYDANCER_VARIANT: 'fp16', HF_HUB_OFFLINE: '1' });
    await runCli(['models', 'check', '--json'], c.io);
    const doc = JSON.parse(c.out.join('\n')) as { requestedVariant: string };
    expect(doc.requestedVariant).toBe('fp16');
  });

  it('models check and download --check size up what MODELS_DIR / --dest holds verified', async () => {
    const dir = await folderWith('fp16');
    const c = captureCli({ PATH: process.env.PATH, MODELS_DIR: dir, HF_HUB_OFFLINE: '1' });
    await runCli(['models', 'check', '--json'], c.io);
    expect((JSON.parse(c.out.join('\n')) as { requestedVariant: string }).requestedVariant).toBe('fp16');
    const d = captureCli({ PATH: process.env.PATH, HF_HUB_OFFLINE: '1' });
    await runCli(['models', 'download', '--check', '--no-presets', '--dest', dir, '--json'], d.io);
    const sum = JSON.parse(d.out.join('\n')) as { variant: string; requestedVariant: string; ok: boolean };
    expect(sum).toMatchObject({ requestedVariant: 'fp16', variant: 'fp16', ok: true });
  });

  it('doctor and the plan size the models disk for the resolved variant', async () => {
    const dir = await folderWith('fp16');
    const r = await doctorHost({ root: projectRoot(), env: { PATH: process.env.PATH }, modelsDir: dir });
    expect(r.checks.find((c) => c.id === 'disk.models')!.detail).toContain('fp16 variant');
    const plan = await runPlan(realPhases({ root: projectRoot(), env: { PATH: process.env.PATH, MODELS_DIR: dir }, logger: memoryLogger(), tag: 't', reportDir: join(dir, 'r') }), {
      only: ['doctor'],
    });
    const details = plan.phases.find((p) => p.id === 'doctor')!.details as { checks: { id: string; detail: string }[] };
    expect(details.checks.find((c) => c.id === 'disk.models')!.detail).toContain('fp16 variant');
  });
});
