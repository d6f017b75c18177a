/**
 * The plan engine: phases with dependencies, run in waves (every phase of a wave in parallel), one
 * report in markdown and JSON. A phase whose dependency did not pass is skipped with that reason.
 */
export type PhaseStatus = 'pass' | 'fail' | 'skip';
export interface PhaseOutcome {
  status: PhaseStatus;
  reason: string;
  details?: unknown;
}
export interface Phase {
  id: string;
  title: string;
  /** Phases that must PASS first (otherwise this one is skipped with the reason). */
  needs: string[];
  /** Phases that only run earlier (ordering, any result). */
  after?: string[];
  run: (signal: AbortSignal) => Promise<PhaseOutcome>;
}
export interface PhaseReport extends PhaseOutcome {
  id: string;
  title: string;
  wave: number;
  ms: number;
}
export interface PlanReport {
  ok: boolean;
  startedAt: string;
  waves: string[][];
  phases: PhaseReport[];
}

/** Waves by dependency depth; throws on an unknown dependency or a cycle. */
export function waves(phases: Phase[]): string[][] {
  const byId = new Map(phases.map((p) => [p.id, p]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const d = (id: string): number => {
    if (depth.has(id)) return depth.get(id)!;
    const p = byId.get(id);
    if (!p) throw new Error(`plan: unknown phase "${id}"`);
    if (visiting.has(id)) throw new Error(`plan: dependency cycle through "${id}"`);
    visiting.add(id);
    const deps = [...p.needs, ...(p.after ?? [])];
    const v = deps.length ? Math.max(...deps.map(d)) + 1 : 0;
    visiting.delete(id);
    depth.set(id, v);
    return v;
  };
  phases.forEach((p) => d(p.id));
  const out: string[][] = [];
  for (const p of phases) (out[depth.get(p.id)!] ??= []).push(p.id);
  return out;
}

export async function runPlan(phases: Phase[], opts: { signal?: AbortSignal; onPhase?: (r: PhaseReport) => void } = {}): Promise<PlanReport> {
  const w = waves(phases);
  const byId = new Map(phases.map((p) => [p.id, p]));
  const results = new Map<string, PhaseReport>();
  const startedAt = new Date().toISOString();
  const signal = opts.signal ?? new AbortController().signal;
  for (const [i, wave] of w.entries()) {
    await Promise.all(
      wave.map(async (id) => {
        const p = byId.get(id)!;
        const t = Date.now();
        const blocked = p.needs.filter((n) => results.get(n)?.status !== 'pass');
        let o: PhaseOutcome;
        if (blocked.length) o = { status: 'skip', reason: `needs ${blocked.map((b) => `${b} (${results.get(b)!.status})`).join(', ')}` };
        else if (signal.aborted) o = { status: 'skip', reason: 'the run was interrupted' };
        else
          try {
            o = await p.run(signal);
          } catch (err) {
            o = { status: 'fail', reason: (err as Error).message };
          }
        const r: PhaseReport = { id, title: p.title, wave: i + 1, ms: Date.now() - t, ...o };
        results.set(id, r);
        opts.onPhase?.(r);
      }),
    );
  }
  const list = phases.map((p) => results.get(p.id)!);
  return { ok: list.every((r) => r.status !== 'fail'), startedAt, waves: w, phases: list };
}

export function reportMarkdown(r: PlanReport): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `# steadydancer run — ${r.ok ? 'no failures' : 'FAILED'}`,
    '',
    `Started ${r.startedAt}. Waves: ${r.waves.map((w) => w.join(' + ')).join(' → ')}.`,
    '',
    '| wave | phase | result | time | reason |',
    '| --- | --- | --- | --- | --- |',
    ...r.phases.map((p) => `| ${p.wave} | ${p.title} | ${p.status.toUpperCase()} | ${(p.ms / 1000).toFixed(1)} s | ${esc(p.reason)} |`),
    '',
  ].join('\n');
}
