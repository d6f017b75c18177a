/**
 * The model manifest (docker/models.json, loaded by src/models/manifest.ts) as doctor and lint
 * need it: the total size of a variant, and the model file names workflows may load.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadManifest, variantTotalBytes, workflowModelNames } from '../models/manifest.js';
import { resolveVariant } from '../models/variant.js';

export const MANIFEST = 'docker/models.json';

export interface ManifestView {
  source: string;
  /** Every name a workflow may use for a model file (bare file name and folder/filename). */
  files: Set<string>;
}

/**
 * The variant for this checkout's host commands (doctor, run's plan): the variant rule on the
 * flag, STEADYDANCER_VARIANT, the models folder and docker/models.json. Without a manifest only
 * the flag or the variable can name one ("unknown" otherwise: doctor then says the size is unknown).
 */
export function hostVariant(root: string, env: NodeJS.ProcessEnv, flag: string | undefined, modelsDir: string): string {
  const file = join(root, MANIFEST);
  if (!existsSync(file)) return flag || env.STEADYDANCER_VARIANT || 'unknown';
  return resolveVariant({ manifest: loadManifest(file), flag, env, modelsDir }).variant;
}

/** Total bytes of a variant's files; null when the manifest is absent. Unknown variant: UsageError. */
export async function variantBytes(root: string, variant: string): Promise<{ bytes: number; source: string } | null> {
  const file = join(root, MANIFEST);
  if (!existsSync(file)) return null;
  const m = loadManifest(file);
  const total = variantTotalBytes(m, variant);
  const lower = total.unknown.length ? `; a lower bound: ${total.unknown.length} file(s) of unknown size not counted` : '';
  return { bytes: total.bytes, source: `${MANIFEST}${lower}` };
}

/** The manifest's model names; null when absent. An invalid manifest throws (lint rule MD001 reports it). */
export async function manifestView(root: string): Promise<ManifestView | null> {
  const file = join(root, MANIFEST);
  if (!existsSync(file)) return null;
  return { source: MANIFEST, files: workflowModelNames(loadManifest(file)) };
}
