/**
 * The image carries the attention kernels of the SteadyDancer pack (issue #13): SageAttention2
 * compiled in the devel stage by default (with the CUDA 13 warpSize patch), FlashAttention-3 from
 * its wheel with an import check, both recorded in labels and image.json. Read from the real
 * docker/Dockerfile and docker/build/image_info.py (no image build on this host).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { needs } from '../../helpers/skips.js';
import { cachedSource, testPython } from '../../helpers/sources.js';

const DF = readFileSync(join(process.cwd(), 'docker', 'Dockerfile'), 'utf8');
const stage = (name: string): string => {
  const start = DF.indexOf(`AS ${name}\n`);
  expect(start, `stage ${name}`).toBeGreaterThan(0);
  const next = DF.indexOf('\nFROM ', start);
  return DF.slice(start, next < 0 ? undefined : next);
};
const sageRef = /ARG SAGEATTN_REF=([0-9a-f]{40})/.exec(DF)?.[1];

describe('Dockerfile: attention kernels in the image', () => {
  it('SageAttention2 is built by default, at a pinned commit, warpSize-patched before the wheel build', () => {
    expect(/^ARG ENABLE_SAGEATTN=(\S+)/m.exec(DF)?.[1]).toBe('true');
    expect(sageRef).toBeDefined();
    const run = stage('sageattn-true');
    const sed = run.indexOf("sed -i -e 's/\\[warpSize\\]/[32]/g'");
    expect(sed).toBeGreaterThan(0);
    expect(sed).toBeLessThan(run.indexOf('pip wheel'));
  });
  it('FlashAttention-3 from its pinned wheel, kept only when it imports, the reason in fa3.status', () => {
    const final = stage('final');
    expect(/^ARG ENABLE_FA3=true$/m.test(final)).toBe(true);
    expect(/^ARG FA3_VERSION=\d+\.\d+\.\d+$/m.test(final)).toBe(true);
    const run = final.slice(final.indexOf('ARG FA3_VERSION'), final.indexOf('# Compiled extras'));
    expect(run).toContain('uv pip install --no-deps "fa3-fwd==${FA3_VERSION}"');
    expect(run).toContain('python -c "import fa3_fwd_interface"');
    expect(run).toContain('uv pip uninstall fa3-fwd');
    expect(run.match(/> \/opt\/steadydancer\/fa3\.status/g)?.length).toBe(4); // disabled, no wheel, imports, does not import
    // the build argument is only the request; org.steadydancer.fa3 comes from image.json (verifiedLabels)
    expect(final).toContain('org.steadydancer.fa3.requested="${ENABLE_FA3}"');
    expect(final).not.toMatch(/org\.steadydancer\.fa3="/);
    expect(final).toContain('org.steadydancer.sageattn.requested="${ENABLE_SAGEATTN}"');
  });
});

const src = sageRef ? cachedSource('SageAttention', sageRef) : undefined;
const noSrc = needs('Dockerfile SageAttention warpSize patch', !src && `SageAttention@${sageRef?.slice(0, 12)} is not in the source cache: seed it from a git mirror (git archive into the cache)`);
describe.skipIf(noSrc)('the warpSize patch on the pinned SageAttention source', () => {
  it('leaves no run-time-sized shared array in csrc/reduction_utils.cuh', () => {
    const f = join(mkdtempSync(join(tmpdir(), 'sd-sage-')), 'reduction_utils.cuh');
    copyFileSync(join(src as string, 'csrc', 'reduction_utils.cuh'), f);
    const before = readFileSync(f, 'utf8');
    expect(before).toMatch(/__shared__ T shared\[warpSize\]/);
    const expr = /sed -i (-e '[^']+' -e '[^']+') csrc\/reduction_utils\.cuh/.exec(stage('sageattn-true'))?.[1];
    expect(expr).toBeDefined();
    execFileSync('bash', ['-c', `sed -i ${expr} "${f}"`]);
    const after = readFileSync(f, 'utf8');
    expect(after).not.toMatch(/\[[^\]]*warpSize[^\]]*\]/);
    expect(after).toContain('__shared__ T shared[32];');
    expect(after).toContain('__shared__ T shared[NUM][33];');
  });
});

const py = testPython();
const noPy = needs('image_info.py attention record', !py && 'no Python venv (.venv or STEADYDANCER_PYTHON); run `make venv`');
describe.skipIf(noPy)('image_info.py', () => {
  it('records whether FlashAttention-3 imports, next to the other backends', () => {
    const out = execFileSync(py as string, [join('docker', 'build', 'image_info.py'), '--print'], { encoding: 'utf8' });
    const info = JSON.parse(out) as { attention: Record<string, unknown>; fa3Status: unknown };
    expect(Object.keys(info.attention)).toEqual(['sdpa', 'xformers', 'flash_attn', 'sageattention', 'fa3']);
    expect(info.attention.fa3).toBeNull(); // fa3-fwd is not installed on this host
    expect(info).toHaveProperty('fa3Status', null);
  });
});
