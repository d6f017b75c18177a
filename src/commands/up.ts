import { up } from '../comfy/compose.js';
import { emit, type Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';

export default async function upCommand(opts: { timeout?: string; cpu?: boolean }, ctx: Context): Promise<number> {
  const t = Number(opts.timeout ?? 600);
  if (!Number.isFinite(t) || t <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got "${opts.timeout}"`);
  const r = await up({ port: Number(ctx.env.COMFYUI_PORT ?? 8188), timeoutMs: t * 1000, cpu: Boolean(opts.cpu), logger: ctx.logger, signal: ctx.signal, env: ctx.env });
  emit(ctx, r, (x) => `ComfyUI is up at ${x.url}`);
  return 0;
}
