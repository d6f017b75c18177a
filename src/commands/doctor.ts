import { writeFileSync } from 'node:fs';
import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { realRunner, recordingRunner } from '../system/exec.js';
import { renderDoctor } from '../system/doctor.js';
import { doctorHost } from '../system/doctor-host.js';

export interface DoctorCliOptions {
  modelsDir?: string;
  variant?: string;
  modelsSizeGb?: number;
  baseImage?: string;
  minDockerFreeGb: number;
  record?: string;
}

export default async function doctor(opts: DoctorCliOptions, ctx: Context): Promise<number> {
  const run = recordingRunner(realRunner);
  const result = await doctorHost({
    root: projectRoot(),
    env: ctx.env,
    run,
    modelsDir: opts.modelsDir,
    variant: opts.variant,
    modelsSizeGb: opts.modelsSizeGb,
    baseImage: opts.baseImage,
    minDockerFreeGb: opts.minDockerFreeGb,
  });
  if (opts.record) {
    // Every program doctor ran, with its output: a fixture for doctor's tests (test/fixtures/doctor).
    writeFileSync(opts.record, JSON.stringify(run.recording, null, 2) + '\n');
    ctx.logger.info(`recorded ${Object.keys(run.recording).length} command outputs to ${opts.record}`);
  }
  emit(ctx, result, renderDoctor);
  return result.ok ? 0 : 1;
}
