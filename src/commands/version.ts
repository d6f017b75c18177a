import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { emit, type Context } from '../util/context.js';
import { projectRoot } from '../util/paths.js';

export default async function version(_opts: Record<string, unknown>, ctx: Context): Promise<number> {
  const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
  emit(ctx, { version: pkg.version, node: process.version }, (r) => `steadydancer ${r.version} (node ${r.node})`);
  return 0;
}
