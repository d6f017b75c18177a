import { describe, expect, it } from 'vitest';
import { reportMarkdown, runPlan, waves, type Phase } from '../../src/plan/engine.js';
import { planPhases } from '../../src/plan/phases.js';
import { memoryLogger } from '../../src/util/logger.js';

const ph = (id: string, needs: string[], status: 'pass' | 'fail' | 'skip' | 'throw', log?: string[]): Phase => ({
  id,
  title: id,
  needs,
  run: async () => {
    log?.push(`start ${id}`);
    await new Promise((r) => setTimeout(r, 20));
    log?.push(`end ${id}`);
    if (status === 'throw') throw new Error(`${id} broke`);
    return { status, reason: `${id} ${status}` };
  },
});

describe('plan engine', () => {
  it("the plan's waves: doctor → lint → models ‖ deps → build → test", () => {
    expect(waves(planPhases({ variant: 'fp8', env: {}, logger: memoryLogger() }))).toEqual([['doctor'], ['lint'], ['models', 'deps'], ['build'], ['test']]);
  });
  it('runs a wave in parallel and skips dependants of a failure with the reason', async () => {
    const log: string[] = [];
    const r = await runPlan([ph('a', [], 'pass'), ph('b', ['a'], 'fail', log), ph('c', ['a'], 'pass', log), ph('d', ['b', 'c'], 'pass')]);
    expect(log.slice(0, 2)).toEqual(['start b', 'start c']); // both started before either ended
    expect(r.phases.map((p) => p.status)).toEqual(['pass', 'fail', 'pass', 'skip']);
    expect(r.phases[3]!.reason).toBe('needs b (fail)');
    expect(r.ok).toBe(false);
    expect(reportMarkdown(r)).toContain('| 3 | d | SKIP |');
  });
  it('a thrown error is a failure with its message; skips do not fail the run', async () => {
    const r = await runPlan([ph('a', [], 'throw'), ph('x', [], 'skip')]);
    expect(r.phases[0]).toMatchObject({ status: 'fail', reason: 'a broke' });
    expect((await runPlan([ph('x', [], 'skip')])).ok).toBe(true);
  });
  it('"after" orders without blocking: a failed doctor does not stop lint', async () => {
    const r = await runPlan([ph('doctor', [], 'fail'), { ...ph('lint', [], 'pass'), after: ['doctor'] }]);
    expect(r.waves).toEqual([['doctor'], ['lint']]);
    expect(r.phases[1]!.status).toBe('pass');
  });
  it('rejects cycles and unknown dependencies', () => {
    expect(() => waves([ph('a', ['b'], 'pass'), ph('b', ['a'], 'pass')])).toThrow(/cycle/);
    expect(() => waves([ph('a', ['zz'], 'pass')])).toThrow(/unknown phase "zz"/);
  });
});
