/**
 * `steadydancer generate --image X --video Y [--endpoint local|<RunPod endpoint id>|URL] [--out f.mp4]`
 * Submits one dance job, shows progress while it runs, writes the mp4.
 */
import { resolve } from 'node:path';
import { generate, mediaField, resolveEndpoint } from '../serverless/client.js';
import type { Progress } from '../serverless/jobs.js';
import { emit, type Context } from '../util/context.js';
import { jobParams } from './flags.js';

export interface GenerateOpts {
  image: string;
  video: string;
  endpoint: string;
  out: string;
  params?: Record<string, unknown>;
  set?: Record<string, unknown>;
  seed?: number;
  pollMs: number;
}

export default async function generateCommand(opts: GenerateOpts, ctx: Context): Promise<number> {
  // The job schema first: a bad parameter is a usage error here, before any file is read or sent.
  const params = jobParams(opts);
  const endpoint = resolveEndpoint(opts.endpoint, ctx.env);
  const out = resolve(ctx.cwd, opts.out);
  const local = (v: string) => (/^https?:\/\//.test(v) ? v : resolve(ctx.cwd, v));
  const input = { ...params, image: await mediaField('--image', local(opts.image)), video: await mediaField('--video', local(opts.video)) };
  let last = '';
  const result = await generate({
    endpoint,
    input,
    out,
    pollMs: opts.pollMs,
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
