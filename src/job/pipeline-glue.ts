/**
 * The dance handler's view of the pipeline's pieces: the ComfyUI client (src/comfy/client.ts),
 * the parameter resolver (src/comfy/params.ts), the one workflow filler (src/comfy/workflow.ts)
 * and the output finder (src/comfy/outputs.ts). Nothing here talks to ComfyUI by itself.
 */
import { readFile } from 'node:fs/promises';
import { ComfyClient, type ComfyEvent } from '../comfy/client.js';
import { findVideo, outputFiles } from '../comfy/outputs.js';
import { jobVariantFor, resolveParams, windowCount, type ResolvedParams } from '../comfy/params.js';
import { fillWorkflow, findByTitle, loadTemplate, MARK, templatePath, type ApiWorkflow } from '../comfy/workflow.js';
import type { VariantDecision } from '../models/variant.js';
import type { ComfyPort } from './handler.js';
import { InputError, type PreparedMedia } from './media.js';
import { inputProblem } from './schema.js';

export interface Glue {
  comfy: ComfyPort;
  resolve: (raw: Record<string, unknown>) => ResolvedParams;
  fill: (p: ResolvedParams, inputs: { image: string; video: string }) => Record<string, unknown>;
  check: (p: ResolvedParams, media: PreparedMedia) => ResolvedParams;
  validate: (input: unknown) => string | undefined;
}

/** What one ComfyUI run of the dance workflow gave: its prompt, the saved video and its bytes. */
export interface VideoRun {
  promptId: string;
  ref: NonNullable<ReturnType<typeof findVideo>>;
  bytes: Buffer;
}

/**
 * Queue an API workflow, wait for it, and fetch the video it saved (the "Save video" node's,
 * else the first video output). The one way a job gets its mp4: the worker's and serve's
 * handler (through comfyPort) and `steadydancer smoke` both call this.
 */
export async function runForVideo(client: ComfyClient, wf: ApiWorkflow, opts: { signal?: AbortSignal; onEvent?: (ev: ComfyEvent) => void }): Promise<VideoRun> {
  const r = await client.run(wf, { signal: opts.signal, onEvent: opts.onEvent });
  let prefer: string | undefined;
  try {
    prefer = findByTitle(wf, MARK.saveVideo)[0];
  } catch {
    prefer = undefined;
  }
  const ref = findVideo(r.outputs, { preferNode: prefer });
  if (!ref) {
    const seen = outputFiles(r.outputs).map((f) => f.filename);
    throw new Error(`ComfyUI finished (prompt ${r.promptId}) but saved no video (outputs: ${seen.join(', ') || 'none'})`);
  }
  return { promptId: r.promptId, ref, bytes: await client.view(ref, opts.signal) };
}

/** Port of the pipeline's ComfyClient to what the handler needs. */
export function comfyPort(client: ComfyClient): ComfyPort {
  return {
    async upload(path, name, signal) {
      const r = await client.upload({ data: await readFile(path), name }, { signal });
      return r.subfolder ? `${r.subfolder}/${r.name}` : r.name;
    },
    async run(workflow, { signal, onProgress, onNode }) {
      const wf = workflow as ApiWorkflow;
      const r = await runForVideo(client, wf, {
        signal,
        onEvent: (ev) => {
          if (ev.type === 'progress') onProgress({ value: ev.value, max: ev.max, node: ev.node ?? undefined });
          else if (ev.type === 'executing' && ev.node) onNode?.(ev.node, wf[ev.node]?.class_type);
        },
      });
      return r.bytes;
    },
  };
}

export async function danceGlue(opts: { comfyUrl: string; env: NodeJS.ProcessEnv; onVariant?: (d: VariantDecision) => void }): Promise<Glue> {
  const client = new ComfyClient({ url: opts.comfyUrl, requestTimeoutMs: 300_000 });
  const template = loadTemplate(opts.env.STEADYDANCER_WORKFLOW || templatePath());
  const decision = jobVariantFor(opts.env);
  opts.onVariant?.(decision);
  const resolve = (raw: Record<string, unknown>) => resolveParams(raw, undefined, { defaultVariant: decision.variant });
  return {
    comfy: comfyPort(client),
    resolve,
    fill: (p, inputs) => fillWorkflow(template, p, { ...inputs, outputPrefix: 'steadydancer/job' }),
    check: (p, media) => fitFramesToVideo(p, media.video.frames),
    validate: (input) => inputProblem(input, resolve),
  };
}

/**
 * The frame count against the driving video: more frames asked for than the clip has is the
 * caller's error; a count the 4n+1 rounding took past the clip's end (480 asked of a 480-frame
 * clip → 481) is brought down to the largest 4n+1 the clip holds, and `adjusted` says so (a new
 * object: `p` is left as it was).
 */
export function fitFramesToVideo(p: ResolvedParams, videoFrames: number): ResolvedParams {
  if (p.frames <= videoFrames) return p;
  if (p.framesRequested > videoFrames)
    throw new InputError('frames', `${p.framesRequested} frames asked for, but the driving video has only ${videoFrames}; ask for at most ${videoFrames} or send a longer clip`);
  const fitted = 4 * Math.floor((videoFrames - 1) / 4) + 1;
  if (fitted < 5) throw new InputError('frames', `the driving video has ${videoFrames} frames; the model needs at least 5`);
  return {
    ...p,
    frames: fitted,
    windows: windowCount(fitted, p.windowLength, p.windowOverlap),
    adjusted: [...p.adjusted.filter((a) => !a.startsWith('frames ')), `frames ${p.framesRequested} → ${fitted} (4n+1 within the driving video's ${videoFrames} frames)`],
  };
}
