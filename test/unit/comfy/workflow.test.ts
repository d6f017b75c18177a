import { describe, expect, it } from 'vitest';
import { resolveParams } from '../../../src/comfy/params.js';
import { MARK, fillWorkflow, findByTitle, loadTemplate, modelFilesFor, modelNames, nodeTypes, spliceOut, type ApiWorkflow } from '../../../src/comfy/workflow.js';
import { findFileByName, loadManifest } from '../../../src/models/manifest.js';

const inputs = { image: 'ref.png', video: 'clip.mp4' };

describe('fillWorkflow on docker/workflows/steadydancer-dance.api.json', () => {
  const template = loadTemplate();

  it('has exactly one node per marker', () => {
    for (const title of Object.values(MARK)) expect(() => findByTitle(template, title)).not.toThrow();
  });

  it('fills every parameter into its node and leaves the template untouched', () => {
    const before = JSON.stringify(template);
    const p = resolveParams({ width: 512, height: 512, frames: 30, fps: 12, seed: 42, prompt: 'a dancer' });
    const wf = fillWorkflow(template, p, inputs);
    expect(JSON.stringify(template)).toBe(before);
    const get = (t: string) => findByTitle(wf, t)[1].inputs;
    expect(get(MARK.referenceImage).image).toBe('ref.png');
    expect(get(MARK.drivingVideo).file).toBe('clip.mp4');
    expect(get(MARK.posePrep)).toMatchObject({ width: 512, height: 512, frame_count: 29, negatives: false });
    expect(get(MARK.conditioning)).toMatchObject({ width: 512, height: 512, length: 29 });
    expect(get(MARK.negativePoses).seed).toBe(0);
    expect(get(MARK.negativePoseRender)).toMatchObject({ width: 512, height: 512, supersample: 0 });
    expect(get(MARK.negativePoseConditioning)).toMatchObject({ width: 512, height: 512, length: 29 });
    expect(get(MARK.noise).noise_seed).toBe(42);
    expect(get(MARK.scheduler)).toMatchObject({ steps: 4, scheduler: 'simple' });
    expect(get(MARK.guider)).toMatchObject({ cfg: 1, pose_cfg: 0 });
    expect(get(MARK.text).positive_prompt).toBe('a dancer');
    expect(get(MARK.createVideo).fps).toBe(12);
    expect(get(MARK.model).model_name).toBe('Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors');
    expect(get(MARK.lora).strength_model).toBe(1);
    expect(get(MARK.contextWindows)).toMatchObject({ window_length: 81, overlap: 16, fuse_method: 'pyramid' });
  });

  it("saves through the pack's fast mp4 node (issue #13): preset and crf kept, the prefix filled", () => {
    const wf = fillWorkflow(template, resolveParams({ seed: 1 }), { ...inputs, outputPrefix: 'jobs/abc' });
    const [, save] = findByTitle(wf, MARK.saveVideo);
    const [createId] = findByTitle(wf, MARK.createVideo);
    expect(save.class_type).toBe('SteadyDancerSaveVideo');
    expect(save.inputs).toEqual({ video: [createId, 0], filename_prefix: 'jobs/abc', preset: 'veryfast', crf: 21 });
    expect(nodeTypes(template)).not.toContain('SaveVideo');
  });

  it('the context-window node sits between the model sampling and the guider, with the job window', () => {
    const p = resolveParams({ frames: 481, window: { length: 49, overlap: 9, fuse: 'flat' }, seed: 1 });
    const wf = fillWorkflow(template, p, inputs);
    const [cwId, cw] = findByTitle(wf, MARK.contextWindows);
    expect(cw.class_type).toBe('SteadyDancerContextWindows');
    expect(cw.inputs).toMatchObject({ window_length: 49, overlap: 8, fuse_method: 'flat', schedule: 'standard_static' });
    expect(cw.inputs.model).toEqual([findByTitle(wf, MARK.modelSampling)[0], 0]);
    expect(findByTitle(wf, MARK.guider)[1].inputs.model).toEqual([cwId, 0]);
    expect(findByTitle(wf, MARK.conditioning)[1].inputs.length).toBe(481);
  });

  it("the negative poses feed only the guider's lazy negative_pose input (ComfyUI skips them when pose_cfg is 0)", () => {
    const wf = fillWorkflow(template, resolveParams({ seed: 1, pose: { augmentSeed: 7 } }), inputs);
    const id = (t: string) => findByTitle(wf, t)[0];
    const negative = new Set([MARK.negativePoses, MARK.negativePoseRender, MARK.negativePoseConditioning].map(id));
    // the augment seed sits on the negative-poses node only: a new seed does not re-run pose detection
    expect(findByTitle(wf, MARK.negativePoses)[1].inputs).toMatchObject({ poses: [id(MARK.posePrep), 2], seed: 7 });
    expect(findByTitle(wf, MARK.posePrep)[1].inputs.seed).toBe(0);
    expect(findByTitle(wf, MARK.negativePoseRender)[1].inputs.poses).toEqual([id(MARK.negativePoses), 0]);
    expect(findByTitle(wf, MARK.negativePoseConditioning)[1].inputs).toMatchObject({ positive: [id(MARK.conditioning), 0], negative_pose_frames: [id(MARK.negativePoseRender), 0] });
    expect(findByTitle(wf, MARK.guider)[1].inputs.negative_pose).toEqual([id(MARK.negativePoseConditioning), 0]);
    expect(findByTitle(wf, MARK.conditioning)[1].inputs).not.toHaveProperty('negative_pose_frames');
    // what ComfyUI runs with pose CFG off: everything the outputs need without the lazy input
    const needed = new Set<string>();
    const visit = (nid: string) => {
      if (needed.has(nid)) return;
      needed.add(nid);
      for (const [k, v] of Object.entries(wf[nid]!.inputs)) if (Array.isArray(v) && !(nid === id(MARK.guider) && k === 'negative_pose')) visit(String(v[0]));
    };
    visit(id(MARK.saveVideo));
    expect([...negative].filter((n) => needed.has(n))).toEqual([]);
    expect(needed.size).toBe(Object.keys(wf).length - negative.size);
  });

  it('fast preset turns pose guidance off, quality keeps it on in its window', () => {
    const guider = (preset: 'fast' | 'quality') => findByTitle(fillWorkflow(template, resolveParams({ preset, seed: 1 }), inputs), MARK.guider)[1].inputs;
    expect(guider('fast')).toMatchObject({ cfg: 1, pose_cfg: 0 });
    expect(guider('quality')).toMatchObject({ cfg: 5, pose_cfg: 1.5, pose_start: 0.1, pose_end: 0.4 });
  });

  it('fp16 variant takes the fp16 model and text encoder from the manifest', () => {
    const wf = fillWorkflow(template, resolveParams({ variant: 'fp16', seed: 1 }), inputs);
    expect(findByTitle(wf, MARK.model)[1].inputs.model_name).toBe('Wan21_I2V_SteadyDancer_fp16.safetensors');
    expect(findByTitle(wf, MARK.text)[1].inputs.text_encoder).toBe('umt5_xxl_fp16.safetensors');
  });

  it('quality preset splices the LoRA out and rewires its consumers to the model loader', () => {
    const wf = fillWorkflow(template, resolveParams({ preset: 'quality', seed: 1 }), inputs);
    expect(() => findByTitle(wf, MARK.lora)).toThrow(/no node titled "Fast LoRA"/);
    const [modelId] = findByTitle(wf, MARK.model);
    expect(findByTitle(wf, MARK.modelSampling)[1].inputs.model).toEqual([modelId, 0]);
    expect(modelNames(wf).some((n) => n.includes('lightx2v'))).toBe(false);
  });

  it('every model file the filled workflow names is in docker/models.json', () => {
    const m = loadManifest();
    for (const variant of ['fp8', 'fp16'] as const) {
      const wf = fillWorkflow(template, resolveParams({ variant, seed: 1 }), inputs);
      for (const name of modelNames(wf)) expect(findFileByName(m, name), name).toBeTruthy();
    }
    for (const name of modelNames(template)) expect(findFileByName(m, name), name).toBeTruthy();
  });

  it('modelFilesFor reads the manifest', () => {
    expect(modelFilesFor('fp8')).toMatchObject({ vae: 'wan_2.1_vae.safetensors', clipVision: 'clip_vision_h.safetensors', poseDetector: 'yolox_l.onnx', poseEstimator: 'dw-ll_ucoco_384.onnx' });
    expect(() => modelFilesFor('nope')).toThrow(/unknown variant/);
  });

  it('lists the node types', () => {
    expect(nodeTypes(template)).toEqual(expect.arrayContaining(['LoadImage', 'LoadVideo', 'SteadyDancerSaveVideo', 'SteadyDancerGuider', 'SteadyDancerPosePrep']));
  });

  it('errors clearly on a drifted template', () => {
    const p = resolveParams({ seed: 1 });
    const noMarker: ApiWorkflow = structuredClone(template);
    delete noMarker[findByTitle(noMarker, MARK.noise)[0]];
    expect(() => fillWorkflow(noMarker, p, inputs)).toThrow(/no node titled "Noise"/);
    const dup: ApiWorkflow = structuredClone(template);
    dup['999'] = structuredClone(findByTitle(dup, MARK.noise)[1]);
    expect(() => fillWorkflow(dup, p, inputs)).toThrow(/2 nodes titled "Noise"/);
    const renamed: ApiWorkflow = structuredClone(template);
    const n = findByTitle(renamed, MARK.noise)[1];
    n.inputs = { seed: 0 };
    expect(() => fillWorkflow(renamed, p, inputs)).toThrow(/has no input "noise_seed"/);
    const linked: ApiWorkflow = structuredClone(template);
    findByTitle(linked, MARK.scheduler)[1].inputs.steps = ['1', 0];
    expect(() => fillWorkflow(linked, p, inputs)).toThrow(/is a link/);
    expect(() => fillWorkflow(template, p, { image: '', video: 'x.mp4' })).toThrow(/inputs.image/);
    expect(() => fillWorkflow({ nodes: [] } as unknown as ApiWorkflow, p, inputs)).toThrow(/UI format/);
  });

  it('spliceOut needs a link on the pass-through input', () => {
    const wf: ApiWorkflow = structuredClone(template);
    expect(() => spliceOut(wf, MARK.noise, 'noise_seed')).toThrow(/not a link/);
  });
});
