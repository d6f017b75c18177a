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
import { PHASE_IDS, realPhases } from '../../src/plan/phases.js';
import { memoryLogger } from '../../src/util/logger.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const errStream = { write: (s: string) => (err.push(s), true), isTTY: false } as unknown as NodeJS.WritableStream;
  return { out, err, io: { out: (s: string) => void out.push(s), err: errStream } };
}

describe('steadydancer run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sd-run-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('declares the six phases in the plan\'s waves', () => {
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

  it('runs doctor and lint for real, reports the rest as not selected, writes md + json', async () => {
    const c = io();
    const stem = join(dir, 'r1');
    const code = await runCli(['run', '--only', 'doctor,lint', '--out', stem, '--json'], c.io);
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
    expect(JSON.parse(readFileSync(`${stem}.json`, 'utf8'))).toMatchObject({ counts: doc.counts });
  }, 180_000);

  it('rejects an unknown phase id with the known ones', async () => {
    const c = io();
    expect(await runCli(['run', '--skip', 'biuld', '--out', join(dir, 'r2')], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/--skip: unknown phase id biuld \(known: doctor, lint, models, deps-build, build, local-test\)/);
    expect(existsSync(join(dir, 'r2.md'))).toBe(false);
  });
});
