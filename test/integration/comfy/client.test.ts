/**
 * The ComfyUI client against a REAL ComfyUI (source cache, CPU, our node pack linked in):
 * stats, object_info, uploads, validation errors with node ids, a core-only job followed over
 * the WebSocket to an mp4, an execution error in a node, /view, /queue, /history.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComfyClient, ComfyUnreachableError, ExecutionError, PromptValidationError, type ComfyEvent } from '../../../src/comfy/client.js';
import { freePort, type NativeComfy } from '../../../src/comfy/native.js';
import { findVideo } from '../../../src/comfy/outputs.js';
import { MARK } from '../../../src/comfy/workflow.js';
import { runForVideo } from '../../../src/job/pipeline-glue.js';
import { projectRoot } from '../../../src/util/paths.js';
import { comfySkipReason, startTestComfy } from '../../helpers/comfy.js';
import { needs } from '../../helpers/skips.js';

const samples = join(projectRoot(), 'docker', 'samples');
const skip = needs('ComfyUI client against a real ComfyUI', comfySkipReason());

describe.skipIf(skip)('ComfyClient against a real ComfyUI', () => {
  let comfy: NativeComfy;
  let client: ComfyClient;
  beforeAll(async () => {
    comfy = await startTestComfy();
    client = new ComfyClient({ url: comfy.url });
  }, 600_000);
  afterAll(async () => comfy?.stop());

  it('system_stats and object_info (our pack registered)', async () => {
    const s = await client.systemStats();
    expect(s.devices[0]?.type).toBe('cpu');
    const info = await client.objectInfo();
    expect(info.SaveVideo).toBeTruthy();
    expect(info.SteadyDancerGuider).toBeTruthy();
    expect(await client.missingNodeTypes(['SaveVideo', 'NoSuchNode', 'SteadyDancerPosePrep'])).toEqual(['NoSuchNode']);
  });

  it('uploads an image and a video into the input folder', async () => {
    const img = await client.upload(join(samples, 'reference.png'));
    expect(img).toMatchObject({ name: 'reference.png', type: 'input' });
    expect(readFileSync(join(comfy.inputDir, 'reference.png'))).toEqual(readFileSync(join(samples, 'reference.png')));
    const vid = await client.upload({ data: readFileSync(join(samples, 'dance.mp4')), name: 'dance.mp4' }, { subfolder: 'jobs' });
    expect(vid).toMatchObject({ name: 'dance.mp4', subfolder: 'jobs' });
    const back = await client.view({ filename: 'dance.mp4', subfolder: 'jobs', type: 'input' });
    expect(back.equals(readFileSync(join(samples, 'dance.mp4')))).toBe(true);
  });

  it('runs a core-only job over the WebSocket to an mp4 that ffprobe reads', async () => {
    await client.upload(join(samples, 'reference.png'));
    const prompt = {
      '1': { class_type: 'LoadImage', inputs: { image: 'reference.png' } },
      '2': { class_type: 'RepeatImageBatch', inputs: { image: ['1', 0], amount: 9 } },
      '3': { class_type: 'CreateVideo', inputs: { images: ['2', 0], fps: 8 } },
      '4': { class_type: 'SaveVideo', inputs: { video: ['3', 0], filename_prefix: 'clienttest/v', format: 'mp4', codec: 'h264' } },
    };
    const events: ComfyEvent[] = [];
    const r = await client.run(prompt, { onEvent: (e) => events.push(e) });
    const types = events.map((e) => e.type);
    expect(types).toContain('execution_start');
    expect(types).toContain('executed');
    expect(events.filter((e) => e.type === 'executing').map((e) => (e as { node: string | null }).node)).toEqual(expect.arrayContaining(['1', '4']));
    const v = findVideo(r.outputs);
    expect(v).toMatchObject({ nodeId: '4', subfolder: 'clienttest', type: 'output' });
    const bytes = await client.view(v!);
    const probe = JSON.parse(
      execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,width,height,nb_read_frames', '-of', 'json', '-'], { input: bytes }).toString(),
    );
    expect(probe.streams[0]).toMatchObject({ codec_name: 'h264', width: 512, height: 512, nb_read_frames: '9' });
    expect((await client.history(r.promptId))?.status?.completed).toBe(true);
    // The same prompt again comes from the cache.
    const again = await client.run(prompt);
    expect(again.cached).toEqual(expect.arrayContaining(['1', '2', '3']));
    expect((await client.queue()).queue_running).toEqual([]);
  });

  it('the pack\'s SteadyDancerSaveVideo (the shipped "Save video"): an h264 yuv420p mp4 the job handler fetches', async () => {
    await client.upload(join(samples, 'reference.png'));
    const wf = {
      '1': { class_type: 'LoadImage', inputs: { image: 'reference.png' } },
      '2': { class_type: 'RepeatImageBatch', inputs: { image: ['1', 0], amount: 9 } },
      '3': { class_type: 'CreateVideo', inputs: { images: ['2', 0], fps: 8 } },
      '4': { class_type: 'SteadyDancerSaveVideo', inputs: { video: ['3', 0], filename_prefix: 'clienttest/fast', preset: 'veryfast', crf: 21 }, _meta: { title: MARK.saveVideo } },
    };
    // the handler's own path to the mp4 (worker, serve and smoke): /prompt, /ws, /history, /view
    const run = await runForVideo(client, wf, {});
    expect(run.ref).toMatchObject({ nodeId: '4', subfolder: 'clienttest', type: 'output', list: 'images' });
    expect(run.ref.filename).toMatch(/^fast_\d{5}_\.mp4$/);
    const probe = JSON.parse(
      execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_name,profile,pix_fmt,width,height,r_frame_rate,nb_read_frames', '-of', 'json', '-'], {
        input: run.bytes,
      }).toString(),
    );
    expect(probe.streams).toHaveLength(1);
    expect(probe.streams[0]).toMatchObject({ codec_name: 'h264', profile: 'High', pix_fmt: 'yuv420p', width: 512, height: 512, r_frame_rate: '8/1', nb_read_frames: '9' });
  });

  it('SteadyDancerSaveVideo: a crf out of range is refused at /prompt, naming the node and the input', async () => {
    const err = await client
      .queuePrompt({
        '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 2, color: 0 } },
        '2': { class_type: 'CreateVideo', inputs: { images: ['1', 0], fps: 8 } },
        '3': { class_type: 'SteadyDancerSaveVideo', inputs: { video: ['2', 0], filename_prefix: 'clienttest/bad', preset: 'veryfast', crf: 60 } },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(PromptValidationError);
    const e = err as PromptValidationError;
    expect(e.nodeErrors[0]).toMatchObject({ nodeId: '3', classType: 'SteadyDancerSaveVideo' });
    expect(e.message).toMatch(/node 3 \(SteadyDancerSaveVideo\).*crf/);
  });

  it('a bad value: PromptValidationError names the node and the input', async () => {
    const err = await client
      .queuePrompt({
        '7': { class_type: 'LoadImage', inputs: { image: 'missing.png' } },
        '8': { class_type: 'PreviewImage', inputs: { images: ['7', 0] } },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(PromptValidationError);
    const e = err as PromptValidationError;
    expect(e.nodeErrors[0]).toMatchObject({ nodeId: '7', classType: 'LoadImage' });
    expect(e.message).toMatch(/node 7 \(LoadImage\)/);
  });

  it('an unknown node type is a validation error too', async () => {
    const err = await client.queuePrompt({ '1': { class_type: 'SteadyDancerNoSuchNode', inputs: {} } }).catch((e) => e);
    expect(err).toBeInstanceOf(PromptValidationError);
    expect((err as Error).message).toMatch(/SteadyDancerNoSuchNode/);
  });

  it('a failure inside a node: ExecutionError with node id, type and message', async () => {
    await client.upload({ data: Buffer.from('this is not a video'), name: 'broken.mp4' });
    const err = await client
      .run({
        '3': { class_type: 'LoadVideo', inputs: { file: 'broken.mp4' } },
        '4': { class_type: 'GetVideoComponents', inputs: { video: ['3', 0] } },
        '5': { class_type: 'PreviewImage', inputs: { images: ['4', 0] } },
      })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ExecutionError);
    const e = err as ExecutionError;
    expect(['3', '4']).toContain(e.nodeId);
    expect(e.message).toMatch(/failed in node [34] \((LoadVideo|GetVideoComponents)\)/);
    expect(e.exceptionMessage.length).toBeGreaterThan(0);
  });

  it('an aborted signal stops the wait and is thrown', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop now'));
    await expect(client.run({}, { signal: ac.signal })).rejects.toThrow('stop now');
  });
});

describe('ComfyClient when nothing listens', () => {
  it('ComfyUnreachableError with the URL, for HTTP and WebSocket', async () => {
    const port = await freePort();
    const c = new ComfyClient({ url: `http://127.0.0.1:${port}` });
    const e1 = await c.systemStats().catch((e) => e);
    expect(e1).toBeInstanceOf(ComfyUnreachableError);
    expect((e1 as Error).message).toMatch(new RegExp(`127.0.0.1:${port}.*ECONNREFUSED`));
    await expect(c.connect()).rejects.toBeInstanceOf(ComfyUnreachableError);
  });
});
