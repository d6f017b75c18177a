/**
 * `steadydancer run` through the CLI with the real phase implementations: doctor and lint run on
 * this machine, the others are left out with --only; the report is written as markdown and JSON.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import type { PlanReport } from '../../src/plan/engine.js';
import { containerEnv, PHASE_IDS, realPhases } from '../../src/plan/phases.js';
import type { SmokeResult } from '../../src/plan/smoke.js';
import { needs } from '../helpers/skips.js';
import { ensureTinyModels, tinyModelsSkipReason } from '../helpers/tiny-models.js';
import { testPython } from '../helpers/sources.js';
import { memoryLogger } from '../../src/util/logger.js';
import { TINY_MODELS_NOTE, tinyModelsLayout } from '../../src/models/tiny.js';
import { probeGpu } from '../../src/system/gpu.js';
import { realRunner } from '../../src/system/exec.js';
import { captureCli as io } from '../helpers/cli.js';

describe('steadydancer run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sd-run-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("declares the six phases in the plan's waves", () => {
    const phases = realPhases({ root: process.cwd(), env: process.env, logger: memoryLogger(), tag: 't', reportDir: dir });
    expect(phases.map((p) => [p.id, p.wave, p.needs ?? [], p.after ?? []])).toEqual([
      ['doctor', 1, [], []],
      ['lint', 2, [], []],
      ['models', 3, [], []],
      ['deps-build', 3, ['lint'], []],
      ['build', 4, ['deps-build'], []],
      ['local-test', 5, [], ['build']],
    ]);
    expect(phases.map((p) => p.id)).toEqual([...PHASE_IDS]);
  });

  it('runs doctor and lint for real (--strict), reports the rest as not selected, writes md + json', async () => {
    const c = io();
    const stem = join(dir, 'r1');
    const code = await runCli(['run', '--strict', '--only', 'doctor,lint', '--out', stem, '--json'], c.io);
    const doc = JSON.parse(c.out.join('')) as PlanReport & { files: { markdown: string; json: string } };
    expect(doc.files).toEqual({ markdown: `${stem}.md`, json: `${stem}.json` });
    const byId = Object.fromEntries(doc.phases.map((p) => [p.id, p]));
    for (const id of ['models', 'deps-build', 'build', 'local-test']) expect(byId[id]).toMatchObject({ status: 'skip', reason: 'not selected by --only' });
    // doctor really ran: its checks are in the details, and its status follows them
    const checks = (byId.doctor!.details as { checks: Array<{ status: string }> }).checks;
    expect(checks.length).toBeGreaterThan(5);
    expect(byId.doctor!.status).toBe(checks.some((x) => x.status === 'FAIL') ? 'fail' : 'pass');
    expect(byId.lint!.reason).toMatch(/rules ran|error/);
    expect(code).toBe(doc.ok ? 0 : 1);
    const md = readFileSync(`${stem}.md`, 'utf8');
    expect(md).toMatch(/\| 3 \| models \(model files on the Hub\) \| SKIP \| 0 ms \| not selected by --only \|/);
    // one line a doctor check with what it means, no JSON in the markdown
    for (const ch of (byId.doctor!.details as { checks: Array<{ status: string; detail: string; impact: string }> }).checks) expect(md).toContain(`${ch.detail} — ${ch.impact}`);
    expect(md).not.toContain('```');
    expect(md).toContain('## Next steps');
    expect(JSON.parse(readFileSync(`${stem}.json`, 'utf8'))).toMatchObject({ counts: doc.counts });
  }, 180_000);

  it('rejects an unknown phase id with the known ones', async () => {
    const c = io();
    expect(await runCli(['run', '--skip', 'biuld', '--out', join(dir, 'r2')], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/option '--skip <ids>' argument 'biuld' is invalid. unknown id\(s\) biuld \(known: doctor, lint, models, deps-build, build, local-test\)/);
    expect(existsSync(join(dir, 'r2.md'))).toBe(false);
  });
});

describe('run: options of local-test', () => {
  it('a malformed --set or --params is a usage error before any phase runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-run-bad-'));
    try {
      const a = io();
      expect(await runCli(['run', '--set', 'frames', '--out', join(dir, 'r')], a.io)).toBe(2);
      expect(a.err.join('')).toMatch(/option '--set <key=value>' argument 'frames' is invalid. expected key=value/);
      const b = io();
      expect(await runCli(['run', '--params', '[1,2]', '--out', join(dir, 'r')], b.io)).toBe(2);
      expect(b.err.join('')).toMatch(/option '--params <json>' argument '\[1,2\]' is invalid. not a JSON object/);
      expect(existsSync(join(dir, 'r.md'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the container gets a host MODELS_DIR as its models volume, never as its own MODELS_DIR', () => {
    expect(containerEnv({ PATH: '/bin', MODELS_DIR: '/data/m' }, 'sd:t', '/data/m')).toEqual({ PATH: '/bin', STEADYDANCER_IMAGE: 'sd:t', STEADYDANCER_MODELS: '/data/m', MODELS_DIR: '' });
    // an explicit volume wins
    expect(containerEnv({ MODELS_DIR: '/data/m', STEADYDANCER_MODELS: '/vol' }, 'sd:t', '/data/m')).toMatchObject({ STEADYDANCER_MODELS: '/vol', MODELS_DIR: '' });
    // no MODELS_DIR on the host: the compose defaults stand
    expect(containerEnv({ PATH: '/bin' }, 'sd:t', undefined)).toEqual({ PATH: '/bin', STEADYDANCER_IMAGE: 'sd:t' });
    // ComfyUI's outputs go under the run's report, not the checkout's data/output; an explicit one wins
    expect(containerEnv({ PATH: '/bin' }, 'sd:t', undefined, '/r/plan.d/comfyui-output')).toEqual({ PATH: '/bin', STEADYDANCER_IMAGE: 'sd:t', STEADYDANCER_OUTPUT: '/r/plan.d/comfyui-output' });
    expect(containerEnv({ STEADYDANCER_OUTPUT: '/mine' }, 'sd:t', undefined, '/r/o')).toMatchObject({ STEADYDANCER_OUTPUT: '/mine' });
  });
});

const gpu = await probeGpu(realRunner);
const skipCpu = needs('run: the CPU plan on a host without a GPU', gpu.present ? `a GPU is present (${gpu.gpus.map((g) => g.name).join(', ')}): the strict rules apply, not the CPU plan` : undefined);

describe.skipIf(skipCpu)('run: the CPU plan (no GPU here)', () => {
  it("doctor's failures are WARN (environment) and do not fail the run; --strict makes them failures", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-run-cpu-'));
    try {
      const a = io();
      const code = await runCli(['run', '--only', 'doctor', '--out', join(dir, 'a'), '--json'], a.io);
      const doc = JSON.parse(a.out.join('')) as PlanReport;
      const doctor = doc.phases.find((p) => p.id === 'doctor')!;
      // no GPU: gpu.present fails, an environment limit
      expect(doctor.status).toBe('warn');
      expect(doctor.reason).toMatch(/gpu\.present/);
      expect(doc).toMatchObject({ ok: true, lenient: true });
      expect(code).toBe(0);
      expect(readFileSync(join(dir, 'a.md'), 'utf8')).toContain('| 1 | doctor (host preflight) | WARN (environment) |');
      const b = io();
      expect(await runCli(['run', '--strict', '--only', 'doctor', '--out', join(dir, 'b'), '--json'], b.io)).toBe(1);
      const strict = JSON.parse(b.out.join('')) as PlanReport;
      expect(strict).toMatchObject({ ok: false, lenient: false });
      expect(strict.phases.find((p) => p.id === 'doctor')).toMatchObject({ status: 'fail', environment: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

const skipEmbedded = skipCpu || needs('run: the CPU plan end to end with the embedded default (tiny models)', tinyModelsSkipReason());

describe.skipIf(skipEmbedded)('make run on this host: the whole CPU plan with the embedded default', () => {
  it('every phase; what the host lacks is WARN (environment); local-test makes a real mp4 from the tiny random-weight set; exit 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-run-embedded-'));
    try {
      // the product's own set: the same one the test helper makes (made now if absent)
      const tiny = ensureTinyModels();
      expect(tinyModelsLayout(process.cwd())).toMatchObject({ modelsDir: tiny.modelsDir });
      const env: NodeJS.ProcessEnv = { ...process.env, STEADYDANCER_PYTHON: testPython()! };
      delete env.MODELS_DIR;
      delete env.STEADYDANCER_TEXT_CACHE;
      const c = io(env);
      const stem = join(dir, 'plan');
      const code = await runCli(['run', '--out', stem, '--json'], c.io);
      const doc = JSON.parse(c.out.join('')) as PlanReport;
      const byId = Object.fromEntries(doc.phases.map((p) => [p.id, p]));
      const lt = byId['local-test']!;
      expect(lt.status, lt.reason).toBe('pass');
      // with a Docker engine the build phase makes the image and local-test runs the container;
      // without one (or a failed build) ComfyUI runs natively from the source cache
      const where =
        byId['build']!.status === 'pass'
          ? /^container steadydancer:local \(http:\/\/127\.0\.0\.1:\d+\)/
          : /^native ComfyUI --cpu from the source cache \(http:\/\/127\.0\.0\.1:\d+; build \w+; models .*tiny-[0-9a-f]{16}\/models\)/;
      expect(lt.reason).toMatch(where);
      expect(lt.reason).toMatch(/ \(RANDOM WEIGHTS: the video is noise\): ui pass, nodes pass, browser \w+, upload pass, job pass, mp4 pass/);
      const smoke = lt.details as SmokeResult;
      // the embedded default's small job: 128×128, 8 frames asked → 9 (the 4n+1 rule), 2 steps
      expect(smoke.steps.find((x) => x.id === 'mp4')!.details).toMatchObject({ file: join(`${stem}.d`, 'smoke.mp4'), codec: 'h264', width: 128, height: 128, frames: 9 });
      expect(smoke.steps.find((x) => x.id === 'job')!.details).toMatchObject({ params: { width: 128, height: 128, frames: 9, steps: 2 } });
      expect(existsSync(join(`${stem}.d`, 'smoke.mp4'))).toBe(true);
      // nothing failed but environment limits: exit 0
      for (const p of doc.phases) expect(p.status, `${p.id}: ${p.reason}`).not.toBe('fail');
      expect(doc.phases.filter((p) => p.status === 'warn').every((p) => p.environment)).toBe(true);
      expect(doc.ok).toBe(true);
      expect(code).toBe(0);
      const md = readFileSync(`${stem}.md`, 'utf8');
      expect(md).toContain('This was the **CPU plan**');
      expect(md).toContain(`> ${TINY_MODELS_NOTE}`);
      expect(md).toMatch(/\| 5 \| local-test .* \| PASS \|/);
      expect(md).toMatch(/## local-test: .*\n\n- WARN models: the embedded default, the tiny random-weight set (reused from|made in) /);
      expect(md).toContain('## Next steps');
      expect(md).not.toContain('```');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 1_500_000);
});

const skipLocal = needs('run --only local-test (native ComfyUI, tiny models, generated job)', tinyModelsSkipReason());

describe.skipIf(skipLocal)('run --only local-test on this machine', () => {
  it('starts ComfyUI natively (no image built), runs the job with the --set parameters, reports every smoke step', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-run-local-'));
    try {
      const tiny = ensureTinyModels();
      const env: NodeJS.ProcessEnv = { ...process.env, MODELS_DIR: tiny.modelsDir, STEADYDANCER_PYTHON: testPython()! };
      delete env.STEADYDANCER_TEXT_CACHE;
      const c = io(env);
      const stem = join(dir, 'plan');
      const code = await runCli(['run', '--only', 'local-test', '--out', stem, '--no-browser', '--set', 'width=128', '--set', 'height=128', '--set', 'frames=8', '--set', 'steps=2', '--json'], c.io);
      const doc = JSON.parse(c.out.join('')) as PlanReport;
      const lt = doc.phases.find((p) => p.id === 'local-test')!;
      expect(lt.status, lt.reason).toBe('pass');
      expect(lt.reason).toMatch(/^native ComfyUI --cpu from the source cache \(http:\/\/127\.0\.0\.1:\d+; build skip; models .*\): ui pass, nodes pass, browser skip, upload pass, job pass, mp4 pass/);
      const smoke = lt.details as SmokeResult;
      expect(smoke.steps.find((x) => x.id === 'mp4')!.details).toMatchObject({ file: join(`${stem}.d`, 'smoke.mp4'), width: 128, height: 128, frames: 9 });
      expect(existsSync(join(`${stem}.d`, 'smoke.mp4'))).toBe(true);
      expect(code).toBe(0); // phases left out are skips, not failures
      expect(readFileSync(`${stem}.md`, 'utf8')).toMatch(/\| 5 \| local-test .* \| PASS \|/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 900_000);
});
