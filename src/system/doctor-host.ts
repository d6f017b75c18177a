/**
 * doctor with this host's defaults (what `steadydancer doctor` and the plan runner call):
 * MODELS_DIR by the image's rule, the variant's size from docker/models.json, the base image
 * from docker/Dockerfile's BASE_IMAGE.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { realRunner, type Runner } from './exec.js';
import { GB } from './df.js';
import { resolveModelsDir, runDoctor, type DoctorResult } from './doctor.js';
import { globalArgDefault, parseDockerfile } from '../docker/dockerfile.js';
import { hostVariant, variantBytes } from '../docker/manifest-bridge.js';

export const FALLBACK_BASE_IMAGE = 'nvidia/cuda:12.8.1-runtime-ubuntu24.04';

export interface HostDoctorOptions {
  root: string;
  env: NodeJS.ProcessEnv;
  run?: Runner;
  modelsDir?: string;
  variant?: string;
  /** Overrides the manifest's size of the variant. */
  modelsSizeGb?: number;
  baseImage?: string;
  minDockerFreeGb?: number;
}

/** BASE_IMAGE's default in docker/Dockerfile (the image the build starts from). */
export function defaultBaseImage(root: string): string {
  const file = join(root, 'docker', 'Dockerfile');
  if (!existsSync(file)) return FALLBACK_BASE_IMAGE;
  return globalArgDefault(parseDockerfile(readFileSync(file, 'utf8')), 'BASE_IMAGE') ?? FALLBACK_BASE_IMAGE;
}

export async function doctorHost(o: HostDoctorOptions): Promise<DoctorResult> {
  const modelsDir = o.modelsDir ?? resolveModelsDir(o.env, o.root);
  const variant = hostVariant(o.root, o.env, o.variant, modelsDir);
  let modelBytes: number | null = null;
  let modelBytesSource: string | undefined;
  if (o.modelsSizeGb !== undefined) {
    modelBytes = o.modelsSizeGb * GB;
    modelBytesSource = '--models-size-gb';
  } else {
    const v = await variantBytes(o.root, variant);
    if (v) ({ bytes: modelBytes, source: modelBytesSource } = v);
  }
  return runDoctor({
    run: o.run ?? realRunner,
    modelsDir,
    variant,
    modelBytes,
    modelBytesSource,
    baseImage: o.baseImage ?? defaultBaseImage(o.root),
    minDockerFreeBytes: (o.minDockerFreeGb ?? 20) * GB,
  });
}
