import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { composeUp } from '../docker/compose.js';

export interface UpCliOptions {
  cpu?: boolean;
  gpu?: boolean;
  /** Seconds. */
  timeout: number;
  file?: string;
  engine?: string;
  build?: boolean;
}

export default async function up(opts: UpCliOptions, ctx: Context): Promise<number> {
  ctx.logger.info('starting the steadydancer service (compose up -d) and waiting for ComfyUI…');
  const r = await composeUp({
    root: projectRoot(),
    env: ctx.env,
    cpu: opts.cpu ? true : opts.gpu ? false : undefined,
    timeoutMs: opts.timeout * 1000,
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
