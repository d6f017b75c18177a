import { down } from '../comfy/compose.js';
import { emit, type Context } from '../util/context.js';

export default async function downCommand(_opts: unknown, ctx: Context): Promise<number> {
  await down(ctx.logger);
  emit(ctx, { down: true }, () => 'stopped');
  return 0;
}
