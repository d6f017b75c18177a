/**
 * The random-weight model set for end-to-end runs (comfyui-steadydancer/tests/fixtures/
 * make_tiny_models.py), made once per generator version into the cache and reused:
 * ~/.cache/steadydancer/fixtures/tiny-<hash>/models, with the prompt-embedding cache in
 * models/text_cache as on a pod's models volume (start.sh's default for STEADYDANCER_TEXT_CACHE).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { OFFICIAL_NEGATIVE_PROMPT } from '../../src/comfy/params.js';
import { cacheDir, projectRoot } from '../../src/util/paths.js';
import { COMFYUI_COMMIT, OFFICIAL_COMMIT, cachedSource, seedHint, testPython } from './sources.js';

export const GENERATOR = join(projectRoot(), 'comfyui-steadydancer', 'tests', 'fixtures', 'make_tiny_models.py');
export const E2E_PROMPTS = ['a person dancing', OFFICIAL_NEGATIVE_PROMPT];

export function tinyModelsSkipReason(): string | undefined {
  if (!cachedSource('ComfyUI', COMFYUI_COMMIT)) return seedHint('ComfyUI', COMFYUI_COMMIT);
  if (!cachedSource('SteadyDancer', OFFICIAL_COMMIT)) return `${seedHint('SteadyDancer', OFFICIAL_COMMIT)} (the tiny model is built from the official code)`;
  if (!testPython()) return 'no Python venv (.venv or STEADYDANCER_PYTHON); run `make venv`';
  return undefined;
}

export interface TinyModels {
  modelsDir: string;
  textCacheDir: string;
}

/** Make (or reuse) the tiny model set; the prompts given are seeded into its text cache. */
export function ensureTinyModels(prompts: string[] = E2E_PROMPTS): TinyModels {
  const h = createHash('sha256')
    .update(readFileSync(GENERATOR))
    .update(readFileSync(join(projectRoot(), 'comfyui-steadydancer', 'tests', 'onnx_fixtures.py')))
    .update(JSON.stringify(prompts))
    .update('layout: models/text_cache')
    .digest('hex')
    .slice(0, 16);
  const dir = join(cacheDir(), 'fixtures', `tiny-${h}`);
  const out = { modelsDir: join(dir, 'models'), textCacheDir: join(dir, 'models', 'text_cache') };
  if (existsSync(join(dir, '.complete'))) return out;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  execFileSync(
    testPython()!,
    [GENERATOR, join(tmp, 'models'), '--comfyui', cachedSource('ComfyUI', COMFYUI_COMMIT)!, '--official', cachedSource('SteadyDancer', OFFICIAL_COMMIT)!, '--text-cache', join(tmp, 'models', 'text_cache'), ...prompts.flatMap((p) => ['--prompt', p])],
    { stdio: ['ignore', 'inherit', 'inherit'], timeout: 900_000 },
  );
  execFileSync('touch', [join(tmp, '.complete')]);
  // Test files run in parallel workers: when another one finished the same set meanwhile, keep
  // theirs (it may be in use by a running ComfyUI) and drop ours.
  if (existsSync(join(dir, '.complete'))) {
    rmSync(tmp, { recursive: true, force: true });
    return out;
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return out;
}
