/**
 * The dance workflow's parameters: one zod schema shared by `smoke`, `generate`, the worker and
 * the local API. `resolveParams` applies the preset defaults, the frames rule and the seed.
 *
 * Frames rule (Wan's VAE compresses time 4:1 after the first frame, so the model takes 4n+1
 * frames): a requested count is rounded to the NEAREST 4n+1, ties going UP, minimum 5.
 * 30 → 29, 31 → 33 (tie between 29 and 33), 32 → 33, 33 → 33, 81 → 81, 1 → 5.
 * The rounded value is reported back (`frames`) together with what was asked (`framesRequested`).
 *
 * Long videos (context windows, the pack's SteadyDancerContextWindows node): the model samples in
 * windows of `window.length` frames (4n+1, rounded like `frames`; 81 = the trained length)
 * overlapping by `window.overlap` frames (a multiple of 4: the VAE's 4:1 time compression; rounded
 * to the nearest, ties up), blended by `window.fuse`. Windows are used only when the video is longer
 * than one window. Every value that was rounded is listed in `adjusted` ("frames 30 → 29").
 */
import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { defaultManifestPath, loadManifest, variantNames, type Manifest } from '../models/manifest.js';
import { resolveVariant, type VariantDecision } from '../models/variant.js';

export const MIN_FRAMES = 5;
/** The longest request (the job accepts driving videos up to 2000 frames); rounds to at most MAX_ROUNDED_FRAMES. */
export const MAX_FRAMES = 2000;
/** The largest 4n+1 not above MAX_FRAMES (the conditioning node's maximum length). */
export const MAX_ROUNDED_FRAMES = 1997;
export const DEFAULT_WINDOW = 81;
/** WanVideoWrapper's context overlap default (16 frames = 4 latent frames). */
export const DEFAULT_OVERLAP = 16;
/** ComfyUI core's context-window fuse methods that the pack offers (not "relative": see context_windows.py). */
export const FUSE_METHODS = ['pyramid', 'flat', 'overlap-linear'] as const;
/** Wan's VAE downsamples 8× and the DiT patchifies 2×: sides must be multiples of 16. */
export const SIZE_MULTIPLE = 16;
export const MIN_SIDE = 64;
export const MAX_SIDE = 2048;
/** ComfyUI's RandomNoise accepts 0 … 2^64-1; we stay inside JSON-safe integers. */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

/** Round to the nearest 4n+1 (ties up), at least MIN_FRAMES, at most MAX_ROUNDED_FRAMES. */
export function roundFrames(requested: number): number {
  if (!Number.isFinite(requested)) throw new RangeError(`frames must be a number, got ${requested}`);
  const n = Math.round((requested - 1) / 4); // Math.round rounds .5 up: the tie rule
  return Math.min(MAX_ROUNDED_FRAMES, Math.max(MIN_FRAMES, 4 * n + 1));
}

/** Round an overlap to the nearest multiple of 4 frames (ties up). */
export function roundOverlap(requested: number): number {
  return 4 * Math.round(requested / 4);
}

/**
 * How many windows a video of `frames` frames takes (the pack's default schedule, core's
 * "standard_static": windows start every length - overlap latent frames, the last one shifted back
 * to end on the last frame). 1 when the video fits one window.
 */
export function windowCount(frames: number, length: number, overlap: number): number {
  const latent = (f: number) => Math.floor((f - 1) / 4) + 1;
  const t = latent(frames);
  const l = latent(length);
  if (t <= l) return 1;
  const stride = l - overlap / 4;
  let n = 0;
  for (let start = 0; start < t; start += stride) {
    n++;
    if (start + l >= t) break;
  }
  return n;
}

/** Official flow-shift rule (generate_dancer / wan _validate_args): 3.0 at 832×480 either way, else 5.0. */
export function defaultShift(width: number, height: number): number {
  return (width === 832 && height === 480) || (width === 480 && height === 832) ? 3.0 : 5.0;
}

export const PRESETS = {
  /** lightx2v step-distill LoRA: cfg 1, 4 steps, Euler, shift 5, no pose CFG (one model call per step). */
  fast: { steps: 4, cfg: 1.0, poseCfg: 0.0, sampler: 'euler', scheduler: 'simple', lora: true },
  /**
   * The official generate defaults: 40 steps, text cfg 5, pose cfg 1.5 in 0.1 < t < 0.4, and the official
   * sampler: the pack's flow-matching UniPC (bh2) on the official schedule (linspace(0.999, 0) shifted,
   * integer timesteps). Core's `uni_pc_bh2` is a different method (variance-exploding log-SNR).
   */
  quality: { steps: 40, cfg: 5.0, poseCfg: 1.5, sampler: 'flow_unipc_bh2', scheduler: 'flow_unipc_official', lora: false },
} as const;
export type PresetName = keyof typeof PRESETS;

/** The workflow every job runs (docker/models.json lists it under the workflows that can fill it). */
export const JOB_WORKFLOW_FILE = 'docker/workflows/steadydancer-dance.api.json';

/** The variants a job may ask for: those whose manifest workflow is the job workflow (not the GGUF path). */
export function jobVariants(m: Manifest = loadManifest()): string[] {
  return variantNames(m).filter((v) => m.workflows[m.variants[v]!.workflow]?.workflowFiles.includes(JOB_WORKFLOW_FILE));
}

/**
 * The variant of a job that names none, for whoever runs jobs (worker, local API, smoke): the
 * variant rule on that environment — STEADYDANCER_VARIANT, else what MODELS_DIR holds verified
 * (start.sh exports the folder it gives ComfyUI), else the manifest's default — among the job variants.
 */
export function jobVariantFor(env: NodeJS.ProcessEnv): VariantDecision {
  const m = loadManifest(defaultManifestPath(env));
  return resolveVariant({ manifest: m, env, modelsDir: env.MODELS_DIR || undefined, forRun: true, among: jobVariants(m) });
}

export const OFFICIAL_NEGATIVE_PROMPT =
  '镜头晃动，色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，' +
  'JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，' +
  '手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走';

const side = (name: string, def: number) =>
  z
    .number({ error: `${name} must be a number` })
    .int(`${name} must be an integer`)
    .min(MIN_SIDE, `${name} must be at least ${MIN_SIDE}`)
    .max(MAX_SIDE, `${name} must be at most ${MAX_SIDE}`)
    .refine((v) => v % SIZE_MULTIPLE === 0, { message: `${name} must be a multiple of ${SIZE_MULTIPLE} (Wan VAE 8× + patch 2×)` })
    .default(def);

export const PoseOptions = z
  .object({
    /** Align the driving poses to the reference person's proportions (official pose_align). */
    align: z.boolean().default(true),
    /** Seed of the negative-pose augmentation (official pose_aug_diff). */
    augmentSeed: z.number().int().min(0).max(0xffffffff).default(0),
    /** Pose guidance scale (official --condition_guide_scale); preset default when absent. */
    cfg: z.number().min(0).max(100).optional(),
    /** Pose guidance window as fractions of the steps (official --st_cond_cfg / --end_cond_cfg). */
    start: z.number().min(0).max(1).default(0.1),
    end: z.number().min(0).max(1).default(0.4),
    /** onnxruntime device for pose detection. */
    device: z.enum(['auto', 'cuda', 'cpu']).default('auto'),
  })
  .strict()
  .refine((p) => p.start <= p.end, { message: 'pose.start must not exceed pose.end', path: ['start'] });

export const WindowOptions = z
  .object({
    /** Frames per window; rounded to 4n+1 (81: the length SteadyDancer was trained on). */
    length: z.number().int('window.length must be an integer').min(5, 'window.length must be at least 5').max(MAX_FRAMES).default(DEFAULT_WINDOW),
    /** Frames shared by neighbouring windows; rounded to a multiple of 4. */
    overlap: z.number().int('window.overlap must be an integer').min(0, 'window.overlap must be >= 0').max(MAX_FRAMES).default(DEFAULT_OVERLAP),
    /** How overlapping windows are blended (ComfyUI core's fuse methods). */
    fuse: z.enum(FUSE_METHODS).default('pyramid'),
  })
  .strict()
  .refine((w) => roundOverlap(w.overlap) < roundFrames(w.length), {
    message: 'window.overlap must be shorter than window.length',
    path: ['overlap'],
  });

export const DanceParams = z
  .object({
    width: side('width', 480),
    height: side('height', 832),
    /** Requested frame count; rounded to 4n+1 by `roundFrames`. */
    frames: z.number({ error: 'frames must be a number' }).int('frames must be an integer').min(1, 'frames must be at least 1').max(MAX_FRAMES, `frames must be at most ${MAX_FRAMES}`).default(81),
    fps: z.number({ error: 'fps must be a number' }).positive('fps must be > 0').max(120, 'fps must be at most 120').default(16),
    steps: z.number().int('steps must be an integer').min(1, 'steps must be at least 1').max(200, 'steps must be at most 200').optional(),
    cfg: z.number().min(0, 'cfg must be >= 0').max(100, 'cfg must be at most 100').optional(),
    /** Flow shift for ModelSamplingSD3; preset / size default when absent. */
    shift: z.number().min(0).max(100).optional(),
    seed: z.number().int('seed must be an integer').min(0, 'seed must be >= 0').max(MAX_SEED, `seed must be at most ${MAX_SEED}`).optional(),
    /** One of jobVariants() (from docker/models.json); absent = the variant rule's choice (what is installed). */
    variant: z
      .string({ error: 'variant must be a string' })
      .refine((v) => jobVariants().includes(v), { error: (iss) => `variant must be one of ${jobVariants().join(', ')} (got ${JSON.stringify(iss.input)})` })
      .optional(),
    preset: z.enum(['fast', 'quality']).default('fast'),
    prompt: z.string().max(4000, 'prompt must be at most 4000 characters').default('a person dancing'),
    negativePrompt: z.string().max(4000).default(OFFICIAL_NEGATIVE_PROMPT),
    pose: PoseOptions.default({ align: true, augmentSeed: 0, start: 0.1, end: 0.4, device: 'auto' }),
    window: WindowOptions.default({ length: DEFAULT_WINDOW, overlap: DEFAULT_OVERLAP, fuse: 'pyramid' }),
  })
  .strict();
export type DanceParamsInput = z.input<typeof DanceParams>;

/** Parameters after defaults, presets, the frames rule and the seed draw: what the template gets. */
export interface ResolvedParams {
  width: number;
  height: number;
  frames: number;
  framesRequested: number;
  fps: number;
  steps: number;
  cfg: number;
  poseCfg: number;
  poseStart: number;
  poseEnd: number;
  shift: number;
  seed: number;
  seedWasRandom: boolean;
  variant: string;
  preset: PresetName;
  sampler: string;
  scheduler: string;
  lora: boolean;
  prompt: string;
  negativePrompt: string;
  poseAlign: boolean;
  poseAugmentSeed: number;
  poseDevice: 'auto' | 'cuda' | 'cpu';
  /** Context window (frames, after rounding); windows > 1 only when frames > windowLength. */
  windowLength: number;
  windowOverlap: number;
  windowFuse: (typeof FUSE_METHODS)[number];
  windows: number;
  /** Every value that was rounded, "name asked → used". */
  adjusted: string[];
}

export class ParamsError extends Error {
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[],
  ) {
    super(message);
    this.name = 'ParamsError';
  }
}

export interface ResolveOptions {
  /** The variant of a job that names none: the variant rule's decision (src/models/variant.ts). Default: the manifest's. */
  defaultVariant?: string;
}

/** Validate and resolve; throws ParamsError naming each bad field. `random` is injectable for tests. */
export function resolveParams(input: unknown, random: () => number = () => randomInt(0, 2 ** 47), opts: ResolveOptions = {}): ResolvedParams {
  const r = DanceParams.safeParse(input ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.join('.') || '(params)', message: i.message }));
    throw new ParamsError(`invalid parameters: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
  }
  const p = r.data;
  const preset = PRESETS[p.preset];
  const seedWasRandom = p.seed === undefined;
  const frames = roundFrames(p.frames);
  const windowLength = roundFrames(p.window.length);
  const windowOverlap = roundOverlap(p.window.overlap);
  const adjusted = (
    [
      ['frames', p.frames, frames],
      ['window.length', p.window.length, windowLength],
      ['window.overlap', p.window.overlap, windowOverlap],
    ] as const
  )
    .filter(([, asked, used]) => asked !== used)
    .map(([name, asked, used]) => `${name} ${asked} → ${used}`);
  return {
    width: p.width,
    height: p.height,
    frames,
    framesRequested: p.frames,
    fps: p.fps,
    steps: p.steps ?? preset.steps,
    cfg: p.cfg ?? preset.cfg,
    poseCfg: p.pose.cfg ?? preset.poseCfg,
    poseStart: p.pose.start,
    poseEnd: p.pose.end,
    shift: p.shift ?? (p.preset === 'fast' ? 5.0 : defaultShift(p.width, p.height)),
    seed: p.seed ?? random(),
    seedWasRandom,
    variant: p.variant ?? opts.defaultVariant ?? resolveVariant({ manifest: loadManifest(), env: {}, among: jobVariants() }).variant,
    preset: p.preset,
    sampler: preset.sampler,
    scheduler: preset.scheduler,
    lora: preset.lora,
    prompt: p.prompt,
    negativePrompt: p.negativePrompt,
    poseAlign: p.pose.align,
    poseAugmentSeed: p.pose.augmentSeed,
    poseDevice: p.pose.device,
    windowLength,
    windowOverlap,
    windowFuse: p.window.fuse,
    windows: windowCount(frames, windowLength, windowOverlap),
    adjusted,
  };
}
