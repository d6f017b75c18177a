import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';
import { composeDown } from '../docker/compose.js';

export interface DownCliOptions {
  file?: string;
  engine?: string;
  volumes?: boolean;
}

export default async function down(opts: DownCliOptions, ctx: Context): Promise<number> {
  const r = await composeDown({ root: projectRoot(), env: ctx.env, file: opts.file, engine: opts.engine, volumes: opts.volumes, signal: ctx.signal });
  emit(ctx, r, (x) => `stopped and removed project ${x.project} (${x.compose.argv.join(' ')} ${x.compose.version})${x.output ? '\n' + x.output : ''}`);
  return 0;
}
