import { describe, expect, it } from 'vitest';
import { comfyProgress } from '../../../src/job/handler.js';

describe('comfyProgress (ComfyUI progress event → job progress)', () => {
  it('a sampler event is a sampling step n/N', () => {
    expect(comfyProgress(2, 4, 'SamplerCustomAdvanced')).toEqual({ stage: 'sampling', step: 2, total: 4, percent: 50, message: 'step 2/4' });
    expect(comfyProgress(1, 20, 'KSampler')).toMatchObject({ stage: 'sampling', step: 1 });
  });

  it("the pose node's per-frame events (and any other node's) are not steps", () => {
    const pose = comfyProgress(7, 33, 'SteadyDancerPosePrep');
    expect(pose).toEqual({ stage: 'running', percent: 21, message: 'SteadyDancerPosePrep: 7/33' });
    expect(pose).not.toHaveProperty('step');
    expect(comfyProgress(1, 2)).toEqual({ stage: 'running', percent: 50, message: 'node: 1/2' });
  });
});
