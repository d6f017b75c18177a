/**
 * The dance job handler used by the worker and the local API: validate the input, fetch and
 * check the media, hand them to ComfyUI, fill the shared workflow template, follow progress
 * (step n/N), fetch the mp4 and build the result (base64 or S3).
 *
 * ComfyUI access goes through `ComfyPort`, a narrow view of the pipeline's ComfyUI client
 * (src/comfy/client.ts) — see comfy-port.ts; the workflow is filled by the pipeline's one filler.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobContext, JobHandler, Progress } from '../serverless/jobs.js';
import { DEFAULT_LIMITS, prepareMedia, type FetchPolicy, type MediaLimits, type PreparedMedia } from './media.js';
import { buildOutput, RUN_LIMIT_BYTES, RUNSYNC_LIMIT_BYTES, type S3Config } from './output.js';
import { checkJobInput } from './schema.js';

/** What the handler needs from ComfyUI. */
export interface ComfyPort {
  /** Upload a local file into ComfyUI's input folder; returns the name to use in the workflow. */
  upload(path: string, name: string, signal: AbortSignal): Promise<string>;
  /**
   * Queue an API-format workflow and wait for it; reports sampler progress; returns the bytes of
   * the video it saved. Must reject when ComfyUI goes away, and stop (interrupt) on abort.
   */
  run(
    workflow: Record<string, unknown>,
    opts: { signal: AbortSignal; onProgress: (p: { value: number; max: number; node?: string }) => void; onNode?: (node: string, classType?: string) => void },
  ): Promise<Buffer>;
}

/** Resolved parameters: whatever the pipeline's resolver returns, with the seed it drew. */
export interface SeededParams {
  seed: number;
  /** Frames after rounding, context windows and every rounded value (resolveParams): reported back. */
  frames?: number;
  windows?: number;
  adjusted?: string[];
}

export interface DanceHandlerDeps<P extends SeededParams> {
  comfy: ComfyPort;
  /**
   * Validates and resolves the workflow parameters (the pipeline's resolveParams: defaults,
   * frames rule, seed draw). Errors carrying `issues: [{path, message}]` name the field.
   */
  resolve: (raw: Record<string, unknown>) => P;
  /** Fills the API workflow template (the pipeline's fillWorkflow). */
  fill: (params: P, inputs: { image: string; video: string }) => Record<string, unknown>;
  workDir: string;
  limits?: MediaLimits;
  fetchPolicy?: Omit<FetchPolicy, 'signal'>;
  s3?: S3Config;
  /**
   * Checks the parameters against the inputs (e.g. frames against the clip) and returns them,
   * fitted where needed (a rounded frame count brought back within the clip, listed in
   * `adjusted`) as a new object; throws InputError.
   */
  check?: (params: P, media: PreparedMedia) => P;
}

/**
 * One ComfyUI progress event as a job progress update. Only a sampler's events are sampling
 * steps (step n/N); other nodes report progress too (the pose node once per frame), and those
 * are plain updates of their node, not steps.
 */
export function comfyProgress(value: number, max: number, classType?: string): Progress {
  const percent = Math.round((100 * value) / Math.max(1, max));
  if (classType && /sampler/i.test(classType)) return { stage: 'sampling', step: value, total: max, percent, message: `step ${value}/${max}` };
  return { stage: 'running', percent, message: `${classType ?? 'node'}: ${value}/${max}` };
}

export function createDanceHandler<P extends SeededParams>(deps: DanceHandlerDeps<P>): JobHandler {
  return async (raw: unknown, ctx: JobContext) => {
    const t0 = Date.now();
    const timings: Record<string, number> = {};
    // media fields and parameters checked together: every bad field in one error
    const { media: src, params: asked } = checkJobInput(raw, deps.resolve);
    let params = asked;
    const { image, video } = src;
    const dir = join(deps.workDir, ctx.id.replace(/[^A-Za-z0-9_.-]/g, '_'));
    await mkdir(dir, { recursive: true });
    try {
      ctx.progress({ stage: 'inputs', message: 'fetching and checking the image and video' });
      const media = await prepareMedia({ image, video }, dir, deps.limits ?? DEFAULT_LIMITS, { ...deps.fetchPolicy, signal: ctx.signal });
      if (deps.check) params = deps.check(asked, media);
      timings.inputs_ms = Date.now() - t0;
      // Only now wait for ComfyUI: a bad input has failed above whatever ComfyUI's state.
      ctx.progress({ stage: 'waiting', message: 'inputs ready; waiting for ComfyUI' });
      await ctx.ready();

      const t1 = Date.now();
      const tag = ctx.id.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40);
      const [imgName, vidName] = await Promise.all([
        deps.comfy.upload(media.imagePath, `sd-${tag}-${media.imagePath.split('/').pop()}`, ctx.signal),
        deps.comfy.upload(media.videoPath, `sd-${tag}-${media.videoPath.split('/').pop()}`, ctx.signal),
      ]);
      timings.upload_inputs_ms = Date.now() - t1;

      const workflow = deps.fill(params, { image: imgName, video: vidName });
      const t2 = Date.now();
      ctx.progress({ stage: 'queued', message: 'queued in ComfyUI' });
      const classOf = new Map<string, string | undefined>();
      const mp4 = await deps.comfy.run(workflow, {
        signal: ctx.signal,
        onNode: (node, classType) => {
          classOf.set(node, classType);
          ctx.progress({ stage: 'running', message: `running ${classType ?? 'node'} (${node})` });
        },
        onProgress: ({ value, max, node }) =>
          ctx.progress(comfyProgress(value, max, node === undefined ? undefined : (classOf.get(node) ?? (workflow[node] as { class_type?: string } | undefined)?.class_type))),
      });
      timings.inference_ms = Date.now() - t2;
      ctx.progress({ stage: 'output', message: `video ready (${mp4.length} bytes)` });
      // what the job ran after rounding (frames 4n+1, window length/overlap), so a caller sees it
      const ran = params.frames === undefined ? undefined : { frames: params.frames, windows: params.windows ?? 1, adjusted: params.adjusted ?? [] };
      const out = await buildOutput(mp4, { seed: params.seed, timings, ran }, { jobId: ctx.id, limitBytes: ctx.delivery === 'runsync' ? RUNSYNC_LIMIT_BYTES : RUN_LIMIT_BYTES, s3: deps.s3 });
      out.timings.total_ms = Date.now() - t0;
      return out;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}
