import { describe, expect, it } from 'vitest';
import { findVideo, outputFiles } from '../../../src/comfy/outputs.js';
import { MARK, findByTitle, loadTemplate } from '../../../src/comfy/workflow.js';

describe('findVideo', () => {
  it("finds SaveVideo's mp4 (reported under images with animated)", () => {
    const outputs = { '23': { images: [{ filename: 'dance_00001_.mp4', subfolder: 'steadydancer', type: 'output' }], animated: [true] } };
    expect(findVideo(outputs)).toMatchObject({ nodeId: '23', filename: 'dance_00001_.mp4', subfolder: 'steadydancer', type: 'output', list: 'images' });
  });
  it("finds the shipped workflow's SteadyDancerSaveVideo mp4 (core's SaveVideo UI shape) over other outputs", () => {
    // the output of SteadyDancerSaveVideo as /history holds it (comfyui-steadydancer/tests/test_video_nodes.py
    // checks it is core SaveVideo's shape); the handler prefers the "Save video" node's file
    const [saveId, save] = findByTitle(loadTemplate(), MARK.saveVideo);
    expect(save.class_type).toBe('SteadyDancerSaveVideo');
    const outputs = {
      '5': { images: [{ filename: 'poses_00001_.mp4', subfolder: 'debug', type: 'output' }], animated: [true] },
      [saveId]: { images: [{ filename: 'dance_00001_.mp4', subfolder: 'steadydancer', type: 'output' }], animated: [true] },
    };
    expect(findVideo(outputs, { preferNode: saveId })).toMatchObject({ nodeId: saveId, filename: 'dance_00001_.mp4', subfolder: 'steadydancer', type: 'output' });
  });
  it("finds VideoHelperSuite's gifs list and skips images", () => {
    const outputs = {
      '5': { images: [{ filename: 'preview.png', subfolder: '', type: 'temp' }] },
      '9': { gifs: [{ filename: 'AnimateDiff_00001.mp4', subfolder: '', type: 'output', format: 'video/h264-mp4' }] },
    };
    expect(findVideo(outputs)).toMatchObject({ nodeId: '9', list: 'gifs', format: 'video/h264-mp4' });
  });
  it('prefers saved outputs over temp previews, the preferred node over others, mp4 over webm', () => {
    const outputs = {
      '1': { videos: [{ filename: 'a.mp4', subfolder: '', type: 'temp' }] },
      '2': {
        videos: [
          { filename: 'b.webm', subfolder: '', type: 'output' },
          { filename: 'c.mp4', subfolder: '', type: 'output' },
        ],
      },
      '3': { videos: [{ filename: 'd.mp4', subfolder: '', type: 'output' }] },
    };
    expect(findVideo(outputs)?.filename).toBe('c.mp4');
    expect(findVideo(outputs, { preferNode: '3' })?.filename).toBe('d.mp4');
  });
  it('returns undefined when there is no video, and ignores malformed entries', () => {
    expect(findVideo({ '1': { images: [{ filename: 'x.png', subfolder: '', type: 'output' }] } })).toBeUndefined();
    expect(findVideo({})).toBeUndefined();
    expect(outputFiles({ '1': { images: [null, 3, { nope: 1 }] as unknown[] } })).toEqual([]);
  });
});
