/**
 * The plan runner's phase engine: phases with ids, hard prerequisites and waves. Waves run in
 * order; the phases of one wave run in parallel. A phase whose prerequisite did not pass is
 * skipped with that reason; a phase the user left out (--skip / --only) is skipped with that
 * reason. Implementations are injected, so the engine is tested with fake phases.
 *
 * Environment limits: a phase says that it fell short only because of what this host lacks (no
 * GPU, no Docker engine, no Hub) by setting `environment` on its outcome. With `lenient` (the CPU
 * plan: no GPU and no --strict) such a fail or skip is reported as WARN and does not fail the run,
 * nor does a phase skipped because such a prerequisite fell short; without it they stay as they are.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ActionableError, UsageError } from '../util/errors.js';

export type PhaseStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface PhaseOutcome {
  status: PhaseStatus;
  /** Why (always given; for a pass, a one-line summary). */
  reason: string;
  details?: unknown;
  /** Set when the phase fell short only for want of something this host lacks (the reason says what). */
  environment?: boolean;
  /** One human line per check the phase made (the markdown report lists them under the phase). */
  lines?: string[];
  /** What a person can do about this outcome (the report's "next steps"). */
  next?: string[];
}

export interface PhaseContext {
  /** Results of the phases that finished so far (earlier waves). */
  results: ReadonlyMap<string, PhaseResult>;
  signal: AbortSignal;
}

export interface PhaseDef {
  id: string;
  title: string;
  wave: number;
  /** Hard prerequisites: when one of them did not pass, this phase is skipped with the reason. */
  needs?: string[];
  /**
   * Prerequisites that only order the phase (it runs whatever they did, and may look at their
   * results, e.g. local-test uses the container when build passed, native ComfyUI otherwise).
   */
  after?: string[];
  run: (ctx: PhaseContext) => Promise<PhaseOutcome>;
}

export interface PhaseResult extends PhaseOutcome {
  id: string;
  title: string;
  wave: number;
  startedAt: string;
  durationMs: number;
}

export interface PlanReport {
  ok: boolean;
  startedAt: string;
  durationMs: number;
  counts: Record<PhaseStatus, number>;
  phases: PhaseResult[];
  /** The CPU plan: environment limits were warnings (see the module comment). */
  lenient: boolean;
  /** Notes about the whole run for its reader (e.g. that the video comes from random weights). */
  notes: string[];
}

export interface PlanOptions {
  skip?: string[];
  only?: string[];
  signal?: AbortSignal;
  onPhaseStart?: (p: PhaseDef) => void;
  onPhaseEnd?: (r: PhaseResult) => void;
  now?: () => number;
  /** Environment limits are WARN, not FAIL (the CPU plan). */
  lenient?: boolean;
  notes?: string[];
}

/** Checks ids, prerequisites and waves (a prerequisite must be in an earlier wave). */
export function validatePhases(phases: PhaseDef[]): void {
  const byId = new Map<string, PhaseDef>();
  for (const p of phases) {
    if (!/^[a-z][a-z0-9-]*$/.test(p.id)) throw new ActionableError(`phase id "${p.id}" is not a lower-case word`, { code: 'E_PLAN' });
    if (byId.has(p.id)) throw new ActionableError(`phase id "${p.id}" appears twice`, { code: 'E_PLAN' });
    if (!Number.isInteger(p.wave) || p.wave < 1) throw new ActionableError(`phase "${p.id}" has wave ${p.wave}; waves are integers ≥ 1`, { code: 'E_PLAN' });
    byId.set(p.id, p);
  }
  for (const p of phases) {
    for (const dep of [...(p.needs ?? []), ...(p.after ?? [])]) {
      const d = byId.get(dep);
      if (!d) throw new ActionableError(`phase "${p.id}" needs "${dep}", which is not a phase`, { code: 'E_PLAN' });
      if (d.wave >= p.wave) throw new ActionableError(`phase "${p.id}" (wave ${p.wave}) needs "${dep}" (wave ${d.wave}); a prerequisite must be in an earlier wave`, { code: 'E_PLAN' });
    }
  }
}

/** Validates --skip / --only ids against the phases (a typo is a usage error naming the known ids). */
export function checkSelection(phases: PhaseDef[], ids: string[] | undefined, flag: string): void {
  const known = new Set(phases.map((p) => p.id));
  const bad = (ids ?? []).filter((i) => !known.has(i));
  if (bad.length) throw new UsageError(`${flag}: unknown phase id${bad.length > 1 ? 's' : ''} ${bad.join(', ')} (known: ${[...known].join(', ')})`);
}

export function parseIdList(v: unknown): string[] | undefined {
  if (v === undefined || v === null || v === false) return undefined;
  const list = (Array.isArray(v) ? v : [v])
    .flatMap((x) => String(x).split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  return list;
}

export async function runPlan(phases: PhaseDef[], opts: PlanOptions = {}): Promise<PlanReport> {
  validatePhases(phases);
  checkSelection(phases, opts.skip, '--skip');
  checkSelection(phases, opts.only, '--only');
  const now = opts.now ?? Date.now;
  const signal = opts.signal ?? new AbortController().signal;
  const lenient = opts.lenient ?? false;
  const skipSet = new Set(opts.skip ?? []);
  const onlySet = opts.only?.length ? new Set(opts.only) : undefined;
  const results = new Map<string, PhaseResult>();
  const t0 = now();
  const waves = [...new Set(phases.map((p) => p.wave))].sort((a, b) => a - b);

  const runOne = async (p: PhaseDef): Promise<PhaseResult> => {
    const start = now();
    const base = { id: p.id, title: p.title, wave: p.wave, startedAt: new Date(start).toISOString() };
    const skipWith = (reason: string): PhaseResult => ({ ...base, status: 'skip', reason, durationMs: 0 });
    const settle = (o: PhaseOutcome, durationMs: number): PhaseResult => {
      const status = o.environment && lenient && (o.status === 'fail' || o.status === 'skip') ? 'warn' : o.status;
      return { ...base, ...o, status, durationMs };
    };
    if (skipSet.has(p.id)) return skipWith('left out with --skip');
    if (onlySet && !onlySet.has(p.id)) return skipWith('not selected by --only');
    if (signal.aborted) return skipWith('the run was interrupted');
    for (const dep of p.needs ?? []) {
      const r = results.get(dep)!;
      if (r.status !== 'pass') {
        const how = r.status === 'fail' ? 'failed' : r.status === 'warn' ? 'could not run here' : 'was skipped';
        return settle({ status: 'skip', reason: `prerequisite ${dep} ${how}: ${r.reason}`, environment: r.environment }, 0);
      }
    }
    opts.onPhaseStart?.(p);
    let outcome: PhaseOutcome;
    try {
      outcome = await p.run({ results, signal });
      if (!outcome || !['pass', 'warn', 'fail', 'skip'].includes(outcome.status) || !outcome.reason)
        outcome = { status: 'fail', reason: `phase implementation returned no status and reason (${JSON.stringify(outcome)})` };
    } catch (err) {
      const e = err as Error & { hint?: string };
      outcome = { status: 'fail', reason: (e?.message ?? String(err)) + (e?.hint ? ` (hint: ${e.hint})` : '') };
    }
    return settle(outcome, now() - start);
  };

  for (const w of waves) {
    const inWave = phases.filter((p) => p.wave === w);
    const done = await Promise.all(inWave.map(runOne));
    for (const r of done) {
      results.set(r.id, r);
      opts.onPhaseEnd?.(r);
    }
  }
  const ordered = phases.map((p) => results.get(p.id)!);
  const counts = { pass: 0, warn: 0, fail: 0, skip: 0 } as Record<PhaseStatus, number>;
  for (const r of ordered) counts[r.status]++;
  return { ok: counts.fail === 0, startedAt: new Date(t0).toISOString(), durationMs: now() - t0, counts, phases: ordered, lenient, notes: opts.notes ?? [] };
}

const ICON: Record<PhaseStatus, string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' };

/** The status as a person reads it: a WARN is always an environment limit. */
export function statusLabel(p: Pick<PhaseResult, 'status'>): string {
  return p.status === 'warn' ? 'WARN (environment)' : ICON[p.status];
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function oneLine(s: string): string {
  return s
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' / ');
}

export function fmtMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function countLine(r: PlanReport): string {
  return `${r.counts.pass} pass, ${r.counts.warn} warn (environment), ${r.counts.fail} fail, ${r.counts.skip} skip`;
}

/** The report's "next steps": each phase's own, in phase order, each once; a failed phase also gets "fix it, rerun it". */
export function nextSteps(r: PlanReport): string[] {
  const out: string[] = [];
  for (const p of r.phases) {
    if (p.status === 'pass' && !p.next?.length) continue;
    for (const n of p.next ?? []) if (!out.includes(n)) out.push(n);
    if (p.status === 'fail') out.push(`${p.id} failed: ${oneLine(p.reason)} — fix that and run again (\`steadydancer run --only ${p.id}\` runs just this phase).`);
  }
  return out;
}

/**
 * The markdown report, written for a person: the result in a sentence, one row a phase, then per
 * phase one line a check with what it means, and the next steps. The details stay in the JSON file.
 */
export function renderMarkdown(r: PlanReport, title = 'steadydancer run'): string {
  const lines = [`# ${title}`, '', `Started ${r.startedAt}, took ${fmtMs(r.durationMs)}. Result: **${r.ok ? 'ok' : 'failed'}** — ${countLine(r)}.`, ''];
  if (r.lenient)
    lines.push(
      'This was the **CPU plan**: there is no GPU here, so what this host cannot do is reported as WARN (environment) with the reason, and does not fail the run. `steadydancer run --strict` counts those as failures.',
      '',
    );
  for (const n of r.notes) lines.push(`> ${n}`, '');
  lines.push(
    '| wave | phase | status | time | reason |',
    '|---|---|---|---|---|',
    ...r.phases.map((p) => `| ${p.wave} | ${p.id} (${cell(p.title)}) | ${statusLabel(p)} | ${fmtMs(p.durationMs)} | ${cell(p.reason)} |`),
    '',
  );
  for (const p of r.phases) {
    if (!p.lines?.length) continue;
    lines.push(`## ${p.id}: ${p.title} — ${statusLabel(p)}`, '', ...p.lines.map((l) => `- ${oneLine(l)}`), '');
  }
  const next = nextSteps(r);
  lines.push('## Next steps', '', ...(next.length ? next.map((n, i) => `${i + 1}. ${oneLine(n)}`) : ['Nothing to do: every phase passed.']), '');
  lines.push(`The full details of every phase are in the JSON report next to this file.`, '');
  return lines.join('\n');
}

export function renderHuman(r: PlanReport): string {
  const w = Math.max(...r.phases.map((p) => p.id.length));
  const next = nextSteps(r);
  return [
    // one line a phase: a multi-line reason (a build's last log lines) is joined with " / "
    ...r.phases.map((p) => `${ICON[p.status]}  w${p.wave} ${p.id.padEnd(w)}  ${fmtMs(p.durationMs).padStart(8)}  ${p.status === 'warn' ? '(environment) ' : ''}${oneLine(p.reason)}`),
    ...r.notes.map((n) => `note: ${n}`),
    ...(next.length ? ['next steps:', ...next.map((n, i) => `  ${i + 1}. ${oneLine(n)}`)] : []),
    `${r.ok ? 'ok' : 'FAILED'}: ${countLine(r)}${r.lenient ? ' (CPU plan: environment limits are warnings; --strict fails on them)' : ''}`,
  ].join('\n');
}

/** Writes <out>.md and <out>.json (out without extension; default reports/plan-<timestamp>). */
export function writeReport(r: PlanReport, out: string | undefined, root: string): { markdown: string; json: string } {
  const stem = (out ?? join(root, 'reports', `plan-${r.startedAt.replace(/[:.]/g, '-')}`)).replace(/\.(md|json)$/, '');
  mkdirSync(dirname(stem), { recursive: true });
  const markdown = `${stem}.md`;
  const json = `${stem}.json`;
  writeFileSync(markdown, renderMarkdown(r));
  writeFileSync(json, JSON.stringify(r, null, 2) + '\n');
  return { markdown, json };
}
