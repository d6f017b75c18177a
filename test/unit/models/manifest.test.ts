import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultManifestPath, fallbackChain, findFileByName, loadManifest, parseManifest, resolveUrl, variantFiles, variantTotalBytes, workflowModelNames } from '../../../src/models/manifest.js';
import { ActionableError, UsageError } from '../../../src/util/errors.js';

const raw = () => JSON.parse(readFileSync(defaultManifestPath({}), 'utf8')) as Record<string, any>;

function errorOf(fn: () => unknown): ActionableError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ActionableError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

describe('docker/models.json', () => {
  const m = loadManifest();

  it('validates and has fp8 as the default with fp16 as its fallback', () => {
    expect(m.defaultVariant).toBe('fp8');
    expect(fallbackChain(m, 'fp8')).toEqual(['fp8', 'fp16']);
    expect(m.fallbackOrder).toEqual(['fp8', 'fp16']);
  });

  it('fp8 needs the scaled SteadyDancer file, the shared encoders, the DWPose models and the fast LoRA', () => {
    const ids = variantFiles(m, 'fp8').map((f) => f.id);
    expect(ids[0]).toBe('steadydancer-fp8');
    expect(ids).toEqual(expect.arrayContaining(['umt5-xxl-fp8-scaled', 'wan21-vae', 'clip-vision-h', 'dwpose-yolox-l', 'dwpose-ll-ucoco-384', 'lightx2v-i2v-480p-rank64']));
    expect(ids).not.toContain('vitpose-l-wholebody');
    expect(variantFiles(m, 'fp8', { includeOptional: true }).map((f) => f.id)).toContain('vitpose-l-wholebody');
    expect(ids).not.toContain('steadydancer-fp16');
    expect(new Set(ids).size).toBe(ids.length);
    expect(variantFiles(m, 'fp8', { presets: [] }).map((f) => f.id)).not.toContain('lightx2v-i2v-480p-rank64');
  });

  it('fp16 uses the fp16 text encoder; gguf variants use the wrapper files', () => {
    const ids = variantFiles(m, 'fp16').map((f) => f.id);
    expect(ids).toContain('umt5-xxl-fp16');
    expect(ids).not.toContain('umt5-xxl-fp8-scaled');
    const g = variantFiles(m, 'gguf-q5_k_m').map((f) => f.id);
    expect(g[0]).toBe('steadydancer-gguf-q5_k_m');
    expect(g).toEqual(expect.arrayContaining(['vitpose-h-wholebody-model', 'vitpose-h-wholebody-data']));
  });

  it('totals known sizes and names the unknown ones', () => {
    const t = variantTotalBytes(m, 'fp8');
    expect(t.bytes).toBeGreaterThanOrEqual(16_410_198_058);
    expect(t.unknown).toContain('wan21-vae');
    expect(t.unknown).not.toContain('steadydancer-fp8');
  });

  it('lists the names workflows may use and finds files by them', () => {
    const names = workflowModelNames(m);
    expect(names.has('Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors')).toBe(true);
    expect(names.has('vae/wan_2.1_vae.safetensors')).toBe(true);
    expect(findFileByName(m, 'detection\\yolox_l.onnx')?.id).toBe('dwpose-yolox-l');
    expect(findFileByName(m, 'nope.safetensors')).toBeUndefined();
  });

  it('builds resolve URLs with the revision (or commit) and encoded path', () => {
    const f = m.files['steadydancer-fp8']!;
    expect(resolveUrl('http://127.0.0.1:9/', f)).toBe('http://127.0.0.1:9/Kijai/WanVideo_comfy_fp8_scaled/resolve/main/SteadyDancer/Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors');
    expect(resolveUrl('http://h', { ...f, commit: 'a'.repeat(40) })).toContain(`/resolve/${'a'.repeat(40)}/`);
  });

  it('rejects an unknown variant with the valid ones in the hint', () => {
    const e = errorOf(() => variantFiles(m, 'fp4'));
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toContain('unknown variant "fp4"');
    expect(e.hint).toContain('fp8, fp16');
  });
});

describe('manifest validation errors name the JSON path', () => {
  it('a bad sha256 and a negative size', () => {
    const d = raw();
    d.files['wan21-vae'].sha256 = 'XYZ';
    d.files['wan21-vae'].size = -1;
    const e = errorOf(() => parseManifest(d, 'm.json'));
    expect(e.code).toBe('E_MANIFEST');
    expect(e.message).toContain('files["wan21-vae"].sha256');
    expect(e.message).toContain('files["wan21-vae"].size');
  });

  it('dangling references: variant file, workflow, fallback, preset file, default variant', () => {
    const d = raw();
    d.variants.fp8.diffusionModel = 'ghost';
    d.variants.fp16.workflow = 'nowhere';
    d.variants.fp8.fallback = 'fp99';
    d.presets.fast.files = ['lora-x'];
    d.defaultVariant = 'bf16';
    const e = errorOf(() => parseManifest(d));
    expect(e.message).toContain('variants.fp8.diffusionModel: names file "ghost"');
    expect(e.message).toContain('variants.fp16.workflow');
    expect(e.message).toContain('variants.fp8.fallback');
    expect(e.message).toContain('presets.fast.files[0]');
    expect(e.message).toContain('defaultVariant');
  });

  it('a fallback loop, a path escaping its folder, a duplicate target, a verified-but-null size', () => {
    const d = raw();
    d.variants.fp16.fallback = 'fp8';
    d.files['yolov10m'].path = '../etc/passwd';
    d.files['vitpose-l-wholebody'].filename = 'yolov10m.onnx';
    d.files['wan21-vae'].verified = ['size'];
    const e = errorOf(() => parseManifest(d));
    expect(e.message).toMatch(/fallback loop: fp8 → fp16 → fp8/);
    expect(e.message).toContain('files.yolov10m.path');
    expect(e.message).toContain('"detection/yolov10m.onnx" is also the target');
    expect(e.message).toContain('lists "size" as verified but size is null');
  });

  it('unknown keys are refused (typos do not pass silently)', () => {
    const d = raw();
    d.files['wan21-vae'].sah256 = null;
    expect(errorOf(() => parseManifest(d)).message).toMatch(/files\["wan21-vae"\].*sah256/s);
  });

  it('unreadable and non-JSON files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-manifest-'));
    expect(errorOf(() => loadManifest(join(dir, 'missing.json'))).message).toContain('ENOENT');
    writeFileSync(join(dir, 'bad.json'), '{ nope');
    expect(errorOf(() => loadManifest(join(dir, 'bad.json'))).message).toContain('is not valid JSON');
    rmSync(dir, { recursive: true, force: true });
  });
});
