/**
 * The one workflow filler: smoke, generate, the worker and the local API all call
 * `fillWorkflow(template, params, inputs)` on docker/workflows/steadydancer-dance.api.json.
 *
 * Nodes are found by their `_meta.title` (the marker; also the node title in the UI file), never by
 * numeric id, so the template can be re-laid-out freely. Each marker's node must exist and have
 * the input being set: a template that drifts from this table fails loudly here, not in ComfyUI.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getFile, getVariant, loadManifest, type Manifest } from '../models/manifest.js';
import { ActionableError } from '../util/errors.js';
import { dockerDir } from '../util/paths.js';
import type { ResolvedParams } from './params.js';

export interface ApiNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title?: string };
}
export type ApiWorkflow = Record<string, ApiNode>;

/** The markers (node titles) the filler relies on. */
export const MARK = {
  referenceImage: 'Reference image',
  drivingVideo: 'Driving video',
  poseModel: 'Pose model',
  posePrep: 'Pose prep',
  model: 'SteadyDancer model',
  lora: 'Fast LoRA',
  modelSampling: 'Model sampling',
  contextWindows: 'Context windows',
  text: 'Text encode',
  clipVision: 'CLIP vision',
  vae: 'VAE',
  conditioning: 'SteadyDancer conditioning',
  negativePoses: 'Negative poses',
  negativePoseRender: 'Negative pose render',
  negativePoseConditioning: 'Negative pose conditioning',
  guider: 'Guider',
  sampler: 'Sampler',
  scheduler: 'Scheduler',
  noise: 'Noise',
  createVideo: 'Create video',
  saveVideo: 'Save video',
} as const;

export const DEFAULT_TEMPLATE = 'steadydancer-dance.api.json';

export function templatePath(root?: string): string {
  return join(dockerDir(root), 'workflows', DEFAULT_TEMPLATE);
}

export function loadTemplate(path = templatePath()): ApiWorkflow {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ActionableError(`cannot read the workflow template ${path}: ${(err as Error).message}`, { code: 'E_WORKFLOW', cause: err });
  }
  assertApiWorkflow(data, path);
  return data;
}

export function assertApiWorkflow(data: unknown, source = 'workflow'): asserts data is ApiWorkflow {
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new ActionableError(`${source}: an API-format workflow is an object of nodes`, { code: 'E_WORKFLOW' });
  for (const [id, n] of Object.entries(data as Record<string, unknown>)) {
    const node = n as Partial<ApiNode>;
    if (!node || typeof node.class_type !== 'string' || typeof node.inputs !== 'object' || node.inputs === null)
      throw new ActionableError(`${source}: node ${id} has no class_type/inputs (is this the UI format? use the .api.json file)`, { code: 'E_WORKFLOW' });
  }
}

/** The model file names a workflow run needs, from docker/models.json (one source of truth). */
export interface ModelFiles {
  diffusionModel: string;
  textEncoder: string;
  vae: string;
  clipVision: string;
  lora: string;
  poseDetector: string;
  poseEstimator: string;
}

export function modelFilesFor(variant: string, manifest: Manifest = loadManifest()): ModelFiles {
  const v = getVariant(manifest, variant);
  const w = manifest.workflows[v.workflow]!;
  const byRole = (role: string, from: string[]) => {
    const f = from.map((id) => getFile(manifest, id)).find((x) => x.role === role);
    if (!f) throw new ActionableError(`docker/models.json: workflow ${v.workflow} has no ${role} file`, { code: 'E_MANIFEST' });
    return f.filename;
  };
  const te = w.textEncoderByVariant[variant];
  if (!te) throw new ActionableError(`docker/models.json: workflow ${v.workflow} names no text encoder for variant ${variant}`, { code: 'E_MANIFEST' });
  return {
    diffusionModel: getFile(manifest, v.diffusionModel).filename,
    textEncoder: getFile(manifest, te).filename,
    vae: byRole('vae', w.requires),
    clipVision: byRole('clip_vision', w.requires),
    lora: byRole(
      'lora',
      Object.values(manifest.presets).flatMap((p) => p.files),
    ),
    poseDetector: byRole('pose_detector', w.requires),
    poseEstimator: byRole('pose_estimator', w.requires),
  };
}

export interface WorkflowInputs {
  /** Name ComfyUI gave the uploaded reference image (UploadResult: subfolder/name). */
  image: string;
  /** Name ComfyUI gave the uploaded driving video. */
  video: string;
  /** Model files; default: from docker/models.json for params.variant. */
  files?: ModelFiles;
  /** The "Save video" node's filename prefix (SteadyDancerSaveVideo, as core's SaveVideo). */
  outputPrefix?: string;
}

export function findByTitle(wf: ApiWorkflow, title: string): [string, ApiNode] {
  const hits = Object.entries(wf).filter(([, n]) => n._meta?.title === title);
  if (hits.length !== 1)
    throw new ActionableError(`workflow template: ${hits.length === 0 ? 'no node' : `${hits.length} nodes`} titled "${title}" (the filler needs exactly one)`, {
      code: 'E_WORKFLOW',
      hint: 'keep the node titles of docker/workflows/steadydancer-dance.api.json in step with src/comfy/workflow.ts MARK',
    });
  return hits[0]!;
}

function set(wf: ApiWorkflow, title: string, values: Record<string, unknown>): void {
  const [id, node] = findByTitle(wf, title);
  for (const [k, v] of Object.entries(values)) {
    if (!(k in node.inputs)) throw new ActionableError(`workflow template: node ${id} "${title}" (${node.class_type}) has no input "${k}"`, { code: 'E_WORKFLOW' });
    if (Array.isArray(node.inputs[k])) throw new ActionableError(`workflow template: input "${k}" of node ${id} "${title}" is a link, not a value`, { code: 'E_WORKFLOW' });
    node.inputs[k] = v;
  }
}

/** Remove a pass-through node, wiring its consumers to what fed its `through` input. */
export function spliceOut(wf: ApiWorkflow, title: string, through: string): void {
  const [id, node] = findByTitle(wf, title);
  const src = node.inputs[through];
  if (!Array.isArray(src)) throw new ActionableError(`workflow template: "${title}".${through} is not a link`, { code: 'E_WORKFLOW' });
  delete wf[id];
  for (const n of Object.values(wf)) for (const [k, v] of Object.entries(n.inputs)) if (Array.isArray(v) && v[0] === id) n.inputs[k] = [...src];
}

/**
 * Fill a copy of the API template. `params` must come from resolveParams (defaults, presets,
 * the frames rule and the seed applied). The template itself is never modified.
 */
export function fillWorkflow(template: ApiWorkflow, params: ResolvedParams, inputs: WorkflowInputs): ApiWorkflow {
  assertApiWorkflow(template);
  if (!inputs.image) throw new ActionableError('fillWorkflow: inputs.image (the uploaded reference image name) is empty', { code: 'E_WORKFLOW' });
  if (!inputs.video) throw new ActionableError('fillWorkflow: inputs.video (the uploaded driving video name) is empty', { code: 'E_WORKFLOW' });
  const wf = structuredClone(template);
  const files = inputs.files ?? modelFilesFor(params.variant);

  set(wf, MARK.referenceImage, { image: inputs.image });
  set(wf, MARK.drivingVideo, { file: inputs.video });
  set(wf, MARK.poseModel, { detector: files.poseDetector, pose_model: files.poseEstimator, device: params.poseDevice });
  // the negative poses have their own nodes (PosePrep renders none): the guider's lazy
  // negative_pose input runs them only when pose guidance is on (pose_cfg != 0). The augment seed
  // lives there, so a new seed does not re-run pose detection.
  set(wf, MARK.posePrep, { width: params.width, height: params.height, frame_count: params.frames, align: params.poseAlign });
  set(wf, MARK.negativePoses, { seed: params.poseAugmentSeed });
  set(wf, MARK.negativePoseRender, { width: params.width, height: params.height });
  set(wf, MARK.model, { model_name: files.diffusionModel });
  set(wf, MARK.modelSampling, { shift: params.shift });
  set(wf, MARK.contextWindows, { window_length: params.windowLength, overlap: params.windowOverlap, fuse_method: params.windowFuse });
  set(wf, MARK.text, { text_encoder: files.textEncoder, positive_prompt: params.prompt, negative_prompt: params.negativePrompt });
  set(wf, MARK.clipVision, { clip_name: files.clipVision });
  set(wf, MARK.vae, { vae_name: files.vae });
  set(wf, MARK.conditioning, { width: params.width, height: params.height, length: params.frames });
  set(wf, MARK.negativePoseConditioning, { width: params.width, height: params.height, length: params.frames });
  set(wf, MARK.guider, { cfg: params.cfg, pose_cfg: params.poseCfg, pose_start: params.poseStart, pose_end: params.poseEnd });
  set(wf, MARK.sampler, { sampler_name: params.sampler });
  set(wf, MARK.scheduler, { steps: params.steps, scheduler: params.scheduler });
  set(wf, MARK.noise, { noise_seed: params.seed });
  set(wf, MARK.createVideo, { fps: params.fps });
  set(wf, MARK.saveVideo, { filename_prefix: inputs.outputPrefix ?? 'steadydancer/dance' });
  if (params.lora) set(wf, MARK.lora, { lora_name: files.lora, strength_model: 1.0 });
  else spliceOut(wf, MARK.lora, 'model'); // quality preset: no LoRA file needed at all
  return wf;
}

/** Every node type a workflow uses (for /object_info checks). */
export function nodeTypes(wf: ApiWorkflow): string[] {
  return [...new Set(Object.values(wf).map((n) => n.class_type))].sort();
}

/** Every model file name a filled workflow refers to. */
export function modelNames(wf: ApiWorkflow): string[] {
  const keys = ['model_name', 'unet_name', 'text_encoder', 'clip_name', 'vae_name', 'lora_name', 'detector', 'pose_model'];
  const names = new Set<string>();
  for (const n of Object.values(wf)) for (const k of keys) if (typeof n.inputs[k] === 'string') names.add(n.inputs[k] as string);
  return [...names].sort();
}
