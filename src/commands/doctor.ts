import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { emit, type Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';
import { realRunner, recordingRunner } from '../system/exec.js';
import { GB } from '../system/df.js';
import { renderDoctor, resolveModelsDir, runDoctor } from '../system/doctor.js';
import { globalArgDefault, parseDockerfile } from '../docker/dockerfile.js';
import { variantBytes } from '../docker/manifest-bridge.js';

export interface DoctorCliOptions {
  modelsDir?: string;
  variant?: string;
  modelsSizeGb?: string;
  baseImage?: string;
  minDockerFreeGb?: string;
  record?: string;
}

export const FALLBACK_BASE_IMAGE = 'nvidia/cuda:12.8.1-runtime-ubuntu24.04';

function positiveNumber(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${flag} must be a non-negative number of GB, got "${v}"`);
  return n;
}

/** BASE_IMAGE's default in docker/Dockerfile (the image the build starts from). */
function defaultBaseImage(root: string): string {
  const file = join(root, 'docker', 'Dockerfile');
  if (!existsSync(file)) return FALLBACK_BASE_IMAGE;
  return globalArgDefault(parseDockerfile(readFileSync(file, 'utf8')), 'BASE_IMAGE') ?? FALLBACK_BASE_IMAGE;
}

export default async function doctor(opts: DoctorCliOptions, ctx: Context): Promise<number> {
  const root = projectRoot();
  const sizeGb = positiveNumber('--models-size-gb', opts.modelsSizeGb);
  const minFreeGb = positiveNumber('--min-docker-free-gb', opts.minDockerFreeGb) ?? 20;
  const variant = opts.variant ?? ctx.env.STEADYDANCER_VARIANT ?? 'fp8';
  let modelBytes: number | null = null;
  let modelBytesSource: string | undefined;
  if (sizeGb !== undefined) {
    modelBytes = sizeGb * GB;
    modelBytesSource = '--models-size-gb';
  } else {
    const v = await variantBytes(root, variant);
    if (v) ({ bytes: modelBytes, source: modelBytesSource } = v);
  }
  const run = recordingRunner(realRunner);
  const result = await runDoctor({
    run,
    modelsDir: opts.modelsDir ?? resolveModelsDir(ctx.env, root),
    variant,
    modelBytes,
    modelBytesSource,
    baseImage: opts.baseImage ?? defaultBaseImage(root),
    minDockerFreeBytes: minFreeGb * GB,
  });
  if (opts.record) {
    // Every program doctor ran, with its output: a fixture for doctor's tests (test/fixtures/doctor).
    writeFileSync(opts.record, JSON.stringify(run.recording, null, 2) + '\n');
    ctx.logger.info(`recorded ${Object.keys(run.recording).length} command outputs to ${opts.record}`);
  }
  emit(ctx, result, renderDoctor);
  return result.ok ? 0 : 1;
}
