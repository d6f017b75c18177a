/**
 * `steadydancer generate --image X --video Y [--endpoint local|<RunPod endpoint id>|URL] [--out f.mp4]`
 * Submits one dance job, shows progress while it runs, writes the mp4.
 */
import { resolve } from 'node:path';
import { generate, mediaField, resolveEndpoint } from '../serverless/client.js';
import type { Progress } from '../serverless/jobs.js';
import { emit, type Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';

export interface GenerateOpts {
  image?: string;
  video?: string;
  endpoint?: string;
  out?: string;
  params?: string;
  set?: string[];
  seed?: string;
  pollMs?: string;
}

/** `--set key=value` pairs (numbers and booleans parsed) merged over `--params` JSON. */
export function collectParams(opts: Pick<GenerateOpts, 'params' | 'set' | 'seed'>): Record<string, unknown> {
  let params: Record<string, unknown> = {};
  if (opts.params) {
    try {
      const p = JSON.parse(opts.params) as unknown;
      if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new Error('not an object');
      params = p as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`--params: not a JSON object (${(err as Error).message})`, `e.g. --params '{"width":512,"height":512,"frames":33}'`);
    }
  }
  for (const kv of opts.set ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--set ${kv}: expected key=value`);
    const k = kv.slice(0, i);
    const v = kv.slice(i + 1);
    params[k] = v === 'true' ? true : v === 'false' ? false : v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
  }
  if (opts.seed !== undefined) {
    const s = Number(opts.seed);
    if (!Number.isInteger(s) || s < 0) throw new UsageError(`--seed ${opts.seed}: expected a non-negative integer`);
    params.seed = s;
  }
  return params;
}

export default async function generateCommand(opts: GenerateOpts, ctx: Context): Promise<number> {
  if (!opts.image) throw new UsageError('--image is required (a file path or an https URL)');
  if (!opts.video) throw new UsageError('--video is required (a file path or an https URL)');
  const endpoint = resolveEndpoint(opts.endpoint ?? 'local', ctx.env);
  const params = collectParams(opts);
  const out = resolve(ctx.cwd, opts.out ?? 'steadydancer.mp4');
  const local = (v: string) => (/^https?:\/\//.test(v) ? v : resolve(ctx.cwd, v));
  const input = { ...params, image: await mediaField('--image', local(opts.image)), video: await mediaField('--video', local(opts.video)) };
  let last = '';
  const result = await generate({
    endpoint,
    input,
    out,
    pollMs: opts.pollMs ? Number(opts.pollMs) : undefined,
    signal: ctx.signal,
    onSubmitted: (id) => ctx.logger.info('submitted job %s to %s', id, endpoint.base),
    onProgress: (p: Progress | string) => {
      const line = typeof p === 'string' ? p : p.step !== undefined ? `${p.stage}: ${p.message}${p.percent !== undefined ? ` (${p.percent}%)` : ''}` : `${p.stage}: ${p.message}`;
      if (line !== last) ctx.logger.info('%s', line);
      last = line;
    },
  });
  emit(ctx, result, (r) => `wrote ${r.out} (${r.bytes} bytes, from ${r.source}; seed ${r.seed}; job ${r.id})`);
  return 0;
}
