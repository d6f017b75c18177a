import { emit, type Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';
import { composeUp } from '../docker/compose.js';

export interface UpCliOptions {
  cpu?: boolean;
  gpu?: boolean;
  timeout?: string;
  file?: string;
  engine?: string;
  build?: boolean;
}

export function secondsFlag(flag: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number of seconds, got "${v}"`);
  return n;
}

export default async function up(opts: UpCliOptions, ctx: Context): Promise<number> {
  if (opts.cpu && opts.gpu) throw new UsageError('--cpu and --gpu exclude each other');
  const timeoutS = secondsFlag('--timeout', opts.timeout, 300);
  ctx.logger.info('starting the steadydancer service (compose up -d) and waiting for ComfyUI…');
  const r = await composeUp({
    root: projectRoot(),
    env: ctx.env,
    cpu: opts.cpu ? true : opts.gpu ? false : undefined,
    timeoutMs: timeoutS * 1000,
    file: opts.file,
    engine: opts.engine,
    build: opts.build,
    signal: ctx.signal,
  });
  emit(ctx, r, (x) =>
    [
      `ComfyUI is ready at ${x.url} (${x.seconds.toFixed(1)} s; container ${x.container}, project ${x.project})`,
      `compose: ${x.compose.argv.join(' ')} ${x.compose.version} — ${x.gpuReason}`,
      'next: steadydancer smoke   ·   stop: steadydancer down',
    ].join('\n'),
  );
  return 0;
}
