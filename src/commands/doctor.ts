import { writeFileSync } from 'node:fs';
import { emit, type Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';
import { realRunner, recordingRunner } from '../system/exec.js';
import { renderDoctor } from '../system/doctor.js';
import { doctorHost } from '../system/doctor-host.js';

export interface DoctorCliOptions {
  modelsDir?: string;
  variant?: string;
  modelsSizeGb?: string;
  baseImage?: string;
  minDockerFreeGb?: string;
  record?: string;
}

function gbFlag(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${flag} must be a non-negative number of GB, got "${v}"`);
  return n;
}

export default async function doctor(opts: DoctorCliOptions, ctx: Context): Promise<number> {
  const run = recordingRunner(realRunner);
  const result = await doctorHost({
    root: projectRoot(),
    env: ctx.env,
    run,
    modelsDir: opts.modelsDir,
    variant: opts.variant,
    modelsSizeGb: gbFlag('--models-size-gb', opts.modelsSizeGb),
    baseImage: opts.baseImage,
    minDockerFreeGb: gbFlag('--min-docker-free-gb', opts.minDockerFreeGb),
  });
  if (opts.record) {
    // Every program doctor ran, with its output: a fixture for doctor's tests (test/fixtures/doctor).
    writeFileSync(opts.record, JSON.stringify(run.recording, null, 2) + '\n');
    ctx.logger.info(`recorded ${Object.keys(run.recording).length} command outputs to ${opts.record}`);
  }
  emit(ctx, result, renderDoctor);
  return result.ok ? 0 : 1;
}
