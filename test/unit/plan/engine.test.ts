import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPlan, renderHuman, renderMarkdown, writeReport, type PhaseDef, type PhaseOutcome } from '../../../src/plan/engine.js';

/** A fake phase that logs start/end into `log` and resolves when its gate opens. */
function fake(id: string, wave: number, outcome: PhaseOutcome | (() => Promise<PhaseOutcome>), log: string[], extra: Partial<PhaseDef> = {}): PhaseDef {
  return {
    id,
    title: `fake ${id}`,
    wave,
    ...extra,
    run: async () => {
      log.push(`start ${id}`);
      const r = typeof outcome === 'function' ? await outcome() : outcome;
      log.push(`end ${id}`);
      return r;
    },
  };
}

const pass = (reason = 'fine'): PhaseOutcome => ({ status: 'pass', reason });

describe('plan engine', () => {
  it('runs waves in order and the phases of one wave in parallel', async () => {
    const log: string[] = [];
    let releaseA!: () => void;
    const gateA = new Promise<void>((r) => (releaseA = r));
    const phases = [
      fake('doctor', 1, pass(), log),
      fake(
        'models',
        3,
        async () => {
          // models waits until deps-build has started: only possible when both run at once
          await gateA;
          return pass();
        },
        log,
      ),
      fake(
        'deps-build',
        3,
        async () => {
          releaseA();
          return pass();
        },
        log,
      ),
      fake('lint', 2, pass(), log),
      fake('build', 4, pass(), log, { needs: ['deps-build'] }),
    ];
    const r = await runPlan(phases);
    expect(r.ok).toBe(true);
    expect(log.indexOf('end doctor')).toBeLessThan(log.indexOf('start lint'));
    expect(log.indexOf('end lint')).toBeLessThan(log.indexOf('start models'));
    expect(log.indexOf('start deps-build')).toBeLessThan(log.indexOf('end models'));
    expect(log.indexOf('end models')).toBeLessThan(log.indexOf('start build'));
    // results keep the declared order
    expect(r.phases.map((p) => p.id)).toEqual(['doctor', 'models', 'deps-build', 'lint', 'build']);
    expect(r.counts).toEqual({ pass: 5, warn: 0, fail: 0, skip: 0 });
  });

  it('skips a phase whose prerequisite failed, transitively, with the reason', async () => {
    const log: string[] = [];
    const r = await runPlan([
      fake('deps-build', 1, { status: 'fail', reason: 'pip could not resolve torch' }, log),
      fake('build', 2, pass(), log, { needs: ['deps-build'] }),
      fake('local-test', 3, pass(), log, { needs: ['build'] }),
      fake('other', 3, pass(), log),
    ]);
    expect(r.ok).toBe(false);
    const by = Object.fromEntries(r.phases.map((p) => [p.id, p]));
    expect(by.build!.status).toBe('skip');
    expect(by.build!.reason).toBe('prerequisite deps-build failed: pip could not resolve torch');
    expect(by['local-test']!.status).toBe('skip');
    expect(by['local-test']!.reason).toMatch(/^prerequisite build was skipped: prerequisite deps-build failed/);
    expect(by.other!.status).toBe('pass');
    expect(log).not.toContain('start build');
  });

  it('runs an `after` phase whatever its predecessor did and lets it read the result', async () => {
    const r = await runPlan([
      { id: 'build', title: 'b', wave: 1, run: async () => ({ status: 'skip', reason: 'no Docker engine' }) },
      {
        id: 'local-test',
        title: 't',
        wave: 2,
        after: ['build'],
        run: async ({ results }) => ({ status: 'pass', reason: `build was ${results.get('build')!.status}: native` }),
      },
    ]);
    expect(r.phases[1]).toMatchObject({ status: 'pass', reason: 'build was skip: native' });
    expect(r.ok).toBe(true);
  });

  it('turns a thrown error into a failure with its message and hint', async () => {
    const r = await runPlan([
      {
        id: 'models',
        title: 'm',
        wave: 1,
        run: async () => {
          throw Object.assign(new Error('Hub unreachable'), { hint: 'check the network' });
        },
      },
    ]);
    expect(r.phases[0]).toMatchObject({ status: 'fail', reason: 'Hub unreachable (hint: check the network)' });
  });

  it('honours --skip and --only and rejects unknown ids', async () => {
    const log: string[] = [];
    const phases = [fake('doctor', 1, pass(), log), fake('lint', 2, pass(), log), fake('build', 3, pass(), log, { needs: ['lint'] })];
    const r = await runPlan(phases, { skip: ['lint'] });
    expect(r.phases.map((p) => [p.id, p.status, p.reason])).toEqual([
      ['doctor', 'pass', 'fine'],
      ['lint', 'skip', 'left out with --skip'],
      ['build', 'skip', 'prerequisite lint was skipped: left out with --skip'],
    ]);
    const o = await runPlan(phases, { only: ['doctor'] });
    expect(o.phases[1]).toMatchObject({ status: 'skip', reason: 'not selected by --only' });
    await expect(runPlan(phases, { skip: ['lnit'] })).rejects.toThrow(/--skip: unknown phase id lnit \(known: doctor, lint, build\)/);
  });

  it('rejects a prerequisite in the same or a later wave, and duplicate ids', async () => {
    const log: string[] = [];
    await expect(runPlan([fake('a', 1, pass(), log, { needs: ['b'] }), fake('b', 1, pass(), log)])).rejects.toThrow(/must be in an earlier wave/);
    await expect(runPlan([fake('a', 1, pass(), log), fake('a', 2, pass(), log)])).rejects.toThrow(/appears twice/);
    await expect(runPlan([fake('a', 1, pass(), log, { needs: ['zz'] })])).rejects.toThrow(/"zz", which is not a phase/);
  });

  it('measures durations and writes markdown and JSON reports', async () => {
    let t = 1_000_000;
    const r = await runPlan(
      [
        {
          id: 'doctor',
          title: 'host preflight',
          wave: 1,
          run: async () => {
            t += 1500;
            return { status: 'fail', reason: 'no GPU | no driver', details: { gpu: null } };
          },
        },
        {
          id: 'lint',
          title: 'static checks',
          wave: 2,
          run: async () => {
            t += 20;
            return pass('0 errors');
          },
        },
      ],
      { now: () => t },
    );
    expect(r.phases.map((p) => p.durationMs)).toEqual([1500, 20]);
    expect(r.durationMs).toBe(1520);
    const md = renderMarkdown(r);
    expect(md).toContain('| 1 | doctor (host preflight) | FAIL | 1.5 s | no GPU \\| no driver |');
    expect(md).toContain('| 2 | lint (static checks) | PASS | 20 ms | 0 errors |');
    // human text, no JSON dump of the details (they are in the JSON report)
    expect(md).not.toContain('"gpu"');
    expect(md).not.toContain('```');
    const dir = mkdtempSync(join(tmpdir(), 'plan-report-'));
    const files = writeReport(r, join(dir, 'sub', 'r.md'), dir);
    expect(files).toEqual({ markdown: join(dir, 'sub', 'r.md'), json: join(dir, 'sub', 'r.json') });
    expect(JSON.parse(readFileSync(files.json, 'utf8'))).toMatchObject({ ok: false, counts: { pass: 1, warn: 0, fail: 1, skip: 0 }, phases: [{ details: { gpu: null } }, {}] });
    const def = writeReport(r, undefined, dir);
    expect(def.markdown).toMatch(new RegExp(`^${dir}/reports/plan-.*\\.md$`));
  });

  it('keeps one line a phase when a reason has several (a build failure with its log lines)', async () => {
    const r = await runPlan([
      { id: 'build', title: 'image build', wave: 1, run: async () => ({ status: 'fail', reason: 'build failed at [toolkit 7/7]: exit code: 2\nsrc/a.ts(1,1): error TS2304\n\n  (log build.log)' }) },
    ]);
    const lines = renderHuman(r).split('\n');
    // the phase's line, the next steps (a failed phase without its own: fix it and rerun it), the total
    expect(lines).toHaveLength(4);
    expect(lines[1]).toBe('next steps:');
    expect(lines[2]).toMatch(/^ {2}1\. build failed: build failed at .* — fix that and run again \(`steadydancer run --only build` runs just this phase\)\.$/);
    expect(lines[0]).toMatch(/^FAIL\s+w1 build\s+\S+ m?s\s+build failed at \[toolkit 7\/7\]: exit code: 2 \/ src\/a\.ts\(1,1\): error TS2304 \/ \(log build\.log\)$/);
    expect(renderMarkdown(r)).toContain('| build failed at [toolkit 7/7]: exit code: 2 src/a.ts(1,1): error TS2304');
  });

  describe('environment limits (the CPU plan)', () => {
    const host = (): PhaseDef[] => [
      {
        id: 'doctor',
        title: 'host preflight',
        wave: 1,
        run: async () => ({
          status: 'fail',
          reason: '1 check(s) failed: gpu.present (no NVIDIA GPU)',
          environment: true,
          lines: ['FAIL NVIDIA GPU: no NVIDIA GPU — GPU phases will be skipped'],
          next: ['For a real video: run on a GPU host.'],
        }),
      },
      { id: 'deps-build', title: 'build inputs', wave: 2, run: async () => ({ status: 'skip', reason: 'no Docker engine: docker: not found', environment: true }) },
      { id: 'build', title: 'image build', wave: 3, needs: ['deps-build'], run: async () => pass('built') },
      { id: 'lint', title: 'static checks', wave: 1, run: async () => ({ status: 'fail', reason: '1 error(s): SH001 x.sh', lines: ['ERROR SH001 x.sh: quote this'] }) },
    ];

    it('lenient: what the host lacks is WARN and does not fail the run; a real failure still does', async () => {
      const r = await runPlan(host(), { lenient: true, notes: ['The video comes from RANDOM WEIGHTS.'] });
      const st = Object.fromEntries(r.phases.map((p) => [p.id, p.status]));
      expect(st).toEqual({ doctor: 'warn', 'deps-build': 'warn', build: 'warn', lint: 'fail' });
      // build was skipped only because its prerequisite could not run here: an environment limit too
      expect(r.phases.find((p) => p.id === 'build')!.reason).toBe('prerequisite deps-build could not run here: no Docker engine: docker: not found');
      expect(r.counts).toEqual({ pass: 0, warn: 3, fail: 1, skip: 0 });
      expect(r.ok).toBe(false);
      const ok = await runPlan(
        host().filter((p) => p.id !== 'lint'),
        { lenient: true },
      );
      expect(ok.ok).toBe(true);
      expect(ok.counts).toEqual({ pass: 0, warn: 3, fail: 0, skip: 0 });
    });

    it('strict (a GPU host, or --strict): the same outcomes keep their status and fail the run', async () => {
      const r = await runPlan(host().filter((p) => p.id !== 'lint'));
      expect(r.phases.map((p) => p.status)).toEqual(['fail', 'skip', 'skip']);
      expect(r.ok).toBe(false);
      expect(r.lenient).toBe(false);
    });

    it('the markdown report is text for a person: one line a check, the notes, the next steps', async () => {
      const r = await runPlan(host(), { lenient: true, notes: ['The video comes from RANDOM WEIGHTS.'] });
      const md = renderMarkdown(r);
      expect(md).toContain('Result: **failed** — 0 pass, 3 warn (environment), 1 fail, 0 skip.');
      expect(md).toContain('This was the **CPU plan**: there is no GPU here');
      expect(md).toContain('> The video comes from RANDOM WEIGHTS.');
      expect(md).toContain('| 1 | doctor (host preflight) | WARN (environment) |');
      expect(md).toContain('## doctor: host preflight — WARN (environment)\n\n- FAIL NVIDIA GPU: no NVIDIA GPU — GPU phases will be skipped\n');
      expect(md).toContain('## lint: static checks — FAIL\n\n- ERROR SH001 x.sh: quote this\n');
      const next = md.slice(md.indexOf('## Next steps'));
      expect(next).toContain('1. For a real video: run on a GPU host.');
      expect(next).toContain('2. lint failed: 1 error(s): SH001 x.sh — fix that and run again');
      expect(md).not.toMatch(/```|\{\s*"/);
      const human = renderHuman(r);
      expect(human).toMatch(/^WARN\s+w1 doctor\s+\S+ m?s\s+\(environment\) 1 check\(s\) failed/m);
      expect(human).toContain('note: The video comes from RANDOM WEIGHTS.');
      expect(human.split('\n').pop()).toBe('FAILED: 0 pass, 3 warn (environment), 1 fail, 0 skip (CPU plan: environment limits are warnings; --strict fails on them)');
    });

    it('no next steps when everything passed', async () => {
      const r = await runPlan([{ id: 'lint', title: 'static checks', wave: 1, run: async () => pass('0 errors') }]);
      expect(renderMarkdown(r)).toContain('## Next steps\n\nNothing to do: every phase passed.');
    });
  });
});
