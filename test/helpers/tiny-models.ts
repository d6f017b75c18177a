/**
 * The tiny random-weight model set for end-to-end tests: the product's own (src/models/tiny.ts,
 * the CPU plan's embedded default), made synchronously here so that a test's beforeAll can wait
 * for it. Same layout and hash as the product, so tests and `steadydancer run` share one set.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { finishTinyModels, TINY_PROMPTS, tinyGeneratorArgs, tinyModelsLayout, tinyModelsReady, type TinyModels } from '../../src/models/tiny.js';
import { projectRoot } from '../../src/util/paths.js';
import { COMFYUI_COMMIT, OFFICIAL_COMMIT, cachedSource, seedHint, testPython } from './sources.js';

export const E2E_PROMPTS = TINY_PROMPTS;

export function tinyModelsSkipReason(): string | undefined {
  if (!cachedSource('ComfyUI', COMFYUI_COMMIT)) return seedHint('ComfyUI', COMFYUI_COMMIT);
  if (!cachedSource('SteadyDancer', OFFICIAL_COMMIT)) return `${seedHint('SteadyDancer', OFFICIAL_COMMIT)} (the tiny model is built from the official code)`;
  if (!testPython()) return 'no Python venv (.venv or STEADYDANCER_PYTHON); run `make venv`';
  return undefined;
}

export type { TinyModels };

/** Make (or reuse) the tiny model set; the prompts given are seeded into its text cache. */
export function ensureTinyModels(prompts: string[] = E2E_PROMPTS): TinyModels {
  const root = projectRoot();
  const t = tinyModelsLayout(root, prompts);
  if (tinyModelsReady(t)) return t;
  const tmp = `${t.dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const inputs = { root, python: testPython()!, comfyui: cachedSource('ComfyUI', COMFYUI_COMMIT)!, official: cachedSource('SteadyDancer', OFFICIAL_COMMIT)!, prompts };
  execFileSync(inputs.python, tinyGeneratorArgs(inputs, tmp), { stdio: ['ignore', 'inherit', 'inherit'], timeout: 900_000 });
  return finishTinyModels(t, tmp);
}
