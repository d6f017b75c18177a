import { emit, type Context } from '../util/context.js';
import { toolkitVersion } from '../util/paths.js';

export default async function version(_opts: Record<string, unknown>, ctx: Context): Promise<number> {
  emit(ctx, { version: toolkitVersion(), node: process.version }, (r) => `steadydancer ${r.version} (node ${r.node})`);
  return 0;
}
