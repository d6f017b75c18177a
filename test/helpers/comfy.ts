/** A real ComfyUI from the source cache, started natively for a test suite. */
import { join } from 'node:path';
import { startNativeComfy, type NativeComfy, type NativeComfyOptions } from '../../src/comfy/native.js';
import { projectRoot } from '../../src/util/paths.js';
import { COMFYUI_COMMIT, cachedSource, seedHint, testPython } from './sources.js';

export const PACK_DIR = join(projectRoot(), 'comfyui-steadydancer');

/** Why a native ComfyUI cannot start here, or undefined. */
export function comfySkipReason(): string | undefined {
  if (!cachedSource('ComfyUI', COMFYUI_COMMIT)) return seedHint('ComfyUI', COMFYUI_COMMIT);
  if (!testPython()) return 'no Python venv for ComfyUI (.venv or STEADYDANCER_PYTHON); run `make venv`';
  return undefined;
}

export async function startTestComfy(opts: Partial<NativeComfyOptions> = {}): Promise<NativeComfy> {
  return startNativeComfy({
    source: cachedSource('ComfyUI', COMFYUI_COMMIT)!,
    python: testPython()!,
    packs: [PACK_DIR],
    ...opts,
  });
}
