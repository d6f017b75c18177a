/**
 * The embedded default model set of the CPU plan: random-weight models in the real file formats
 * (comfyui-steadydancer/tests/fixtures/make_tiny_models.py, built from the official SteadyDancer
 * code and ComfyUI's own classes), so that the real dance workflow runs end to end on a host
 * without a GPU or without the Hub. Made once per generator version into the cache and reused:
 * <cache>/fixtures/tiny-<hash>/models, with the prompt-embedding cache in models/text_cache as on
 * a pod's models volume (start.sh's default for STEADYDANCER_TEXT_CACHE).
 *
 * The video such a model makes is noise: it shows that the workflow, the nodes and the media path
 * work, not what the model can do. Every report that uses it says so (TINY_MODELS_NOTE).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { OFFICIAL_NEGATIVE_PROMPT } from '../comfy/params.js';
import { ActionableError } from '../util/errors.js';
import { cacheDir } from '../util/paths.js';

/** The prompts seeded into the tiny set's text cache (the workflow's default prompt and negative). */
export const TINY_PROMPTS = ['a person dancing', OFFICIAL_NEGATIVE_PROMPT];

/** The CPU plan's job: small enough for a CPU (a few minutes on 2 cores), real enough for every node. */
export const TINY_JOB = { width: 128, height: 128, frames: 8, steps: 2 } as const;

export const TINY_MODELS_NOTE =
  'The video comes from RANDOM WEIGHTS (the tiny test model set made on this machine, no real SteadyDancer weights): it is noise, not a dance. It shows that the real workflow, its nodes and the mp4 path work here; for a real video run on a GPU host with the model files (steadydancer models download).';

export interface TinyModels {
  /** The set's folder (<cache>/fixtures/tiny-<hash>). */
  dir: string;
  modelsDir: string;
  textCacheDir: string;
}

export function tinyGenerator(root: string): string {
  return join(root, 'comfyui-steadydancer', 'tests', 'fixtures', 'make_tiny_models.py');
}

/** Where the set for this generator (and these prompts) lives; the hash changes with the generator. */
export function tinyModelsLayout(root: string, prompts: string[] = TINY_PROMPTS, env: NodeJS.ProcessEnv = process.env): TinyModels {
  const h = createHash('sha256')
    .update(readFileSync(tinyGenerator(root)))
    .update(readFileSync(join(root, 'comfyui-steadydancer', 'tests', 'onnx_fixtures.py')))
    .update(JSON.stringify(prompts))
    .update('layout: models/text_cache')
    .digest('hex')
    .slice(0, 16);
  const dir = join(cacheDir(env), 'fixtures', `tiny-${h}`);
  return { dir, modelsDir: join(dir, 'models'), textCacheDir: join(dir, 'models', 'text_cache') };
}

export function tinyModelsReady(t: TinyModels): boolean {
  return existsSync(join(t.dir, '.complete'));
}

export interface TinyGenInputs {
  root: string;
  python: string;
  /** ComfyUI's checkout at its pinned commit (the source cache). */
  comfyui: string;
  /** The official SteadyDancer checkout (the source cache). */
  official: string;
  prompts?: string[];
  env?: NodeJS.ProcessEnv;
}

/** The generator's command line, writing into `tmp` (made complete and moved by finishTinyModels). */
export function tinyGeneratorArgs(i: TinyGenInputs, tmp: string): string[] {
  const prompts = i.prompts ?? TINY_PROMPTS;
  return [tinyGenerator(i.root), join(tmp, 'models'), '--comfyui', i.comfyui, '--official', i.official, '--text-cache', join(tmp, 'models', 'text_cache'), ...prompts.flatMap((p) => ['--prompt', p])];
}

/**
 * Marks the set made in `tmp` complete and moves it into place. When another process finished the
 * same set meanwhile, theirs is kept (a running ComfyUI may be reading it) and ours dropped.
 */
export function finishTinyModels(t: TinyModels, tmp: string): TinyModels {
  writeFileSync(join(tmp, '.complete'), '');
  if (tinyModelsReady(t)) {
    rmSync(tmp, { recursive: true, force: true });
    return t;
  }
  rmSync(t.dir, { recursive: true, force: true });
  renameSync(tmp, t.dir);
  return t;
}

/** Makes (or reuses) the tiny set; the generator's output goes to `onLine` (the plan's log). */
export async function ensureTinyModels(i: TinyGenInputs & { signal?: AbortSignal; onLine?: (line: string) => void }): Promise<TinyModels & { reused: boolean }> {
  const t = tinyModelsLayout(i.root, i.prompts, i.env);
  if (tinyModelsReady(t)) return { ...t, reused: true };
  for (const [what, p] of [
    ['Python', i.python],
    ['ComfyUI source', i.comfyui],
    ['SteadyDancer source', i.official],
  ] as const)
    if (!existsSync(p)) throw new ActionableError(`cannot make the tiny model set: the ${what} is not at ${p}`, { code: 'E_TINY_MODELS' });
  const tmp = `${t.dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const sub = execa(i.python, tinyGeneratorArgs(i, tmp), { reject: false, all: true, buffer: { all: true }, cancelSignal: i.signal, stdin: 'ignore', env: { PYTHONUNBUFFERED: '1' } });
  if (i.onLine) for await (const line of sub.iterable({ from: 'all' })) i.onLine(String(line));
  const r = await sub;
  if (r.exitCode !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    const tail = String(r.all ?? '')
      .trim()
      .split('\n')
      .slice(-6)
      .join('\n');
    throw new ActionableError(`the tiny model generator failed (exit ${r.exitCode ?? r.signal}): ${tail}`, {
      code: 'E_TINY_MODELS',
      hint: `run it by hand: ${i.python} ${tinyGeneratorArgs(i, tmp).join(' ')}`,
    });
  }
  return { ...finishTinyModels(t, tmp), reused: false };
}
