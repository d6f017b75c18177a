import { smoke } from '../comfy/smoke.js';
import { emit, type Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';

export default async function smokeCommand(opts: { url?: string; out?: string; frames?: string; width?: string; height?: string; steps?: string; seed?: string; browser?: boolean }, ctx: Context): Promise<number> {
  const num = (v: string | undefined, flag: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got "${v}"`);
    return n;
  };
  const r = await smoke({
    url: opts.url ?? ctx.env.COMFYUI_URL ?? `http://127.0.0.1:${ctx.env.COMFYUI_PORT ?? 8188}`,
    outDir: opts.out ?? 'out/smoke',
    params: { width: num(opts.width, '--width'), height: num(opts.height, '--height'), frames: num(opts.frames, '--frames'), steps: num(opts.steps, '--steps'), seed: num(opts.seed, '--seed') },
    browser: opts.browser,
    logger: ctx.logger,
    signal: ctx.signal,
  });
  emit(ctx, r, (x) => [...x.checks.map((c) => `${c.status.toUpperCase().padEnd(4)} ${c.name}: ${c.detail}`), x.ok ? `smoke passed (seed ${x.seed})` : 'smoke FAILED'].join('\n'));
  return r.ok ? 0 : 1;
}
