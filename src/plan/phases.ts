/**
 * The six phases of the build-and-test plan, in the plan's waves:
 *   doctor → lint → (models check ‖ dependency build) → local build → local test.
 * Each calls the owning area's core function; a phase this machine cannot do is skipped with why.
 * doctor/lint live on the `lint` branch: until it is merged they are loaded by path and report
 * "not available in this build" instead of failing the type check.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Logger } from '../util/logger.js';
import { projectRoot } from '../util/paths.js';
import type { Phase, PhaseOutcome } from './engine.js';

async function optionalModule<T>(rel: string): Promise<T | undefined> {
  const ts = join(projectRoot(), 'src', `${rel}.ts`);
  const js = join(projectRoot(), 'dist', `${rel}.js`);
  if (!existsSync(ts) && !existsSync(js)) return undefined;
  return (await import(/* @vite-ignore */ existsSync(js) ? js : ts)) as T;
}

/** Run one toolkit command in-process-free (its own process) and map its exit code. */
async function cli(args: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<{ code: number; json: unknown; stderr: string }> {
  const r = await execa(process.execPath, [join(projectRoot(), 'bin', 'steadydancer.js'), ...args, '--json'], { reject: false, env, cancelSignal: signal, cwd: projectRoot() });
  let json: unknown;
  try {
    json = JSON.parse(String(r.stdout));
  } catch {
    json = undefined;
  }
  return { code: r.exitCode ?? 1, json, stderr: String(r.stderr).slice(-1500) };
}

export interface PlanOptions {
  variant: string;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Phases to leave out, with the reason (e.g. --skip build). */
  skip?: Record<string, string>;
}

export function planPhases(o: PlanOptions): Phase[] {
  const skipped = (id: string): PhaseOutcome | undefined => (o.skip?.[id] ? { status: 'skip', reason: o.skip[id]! } : undefined);
  const viaCli = (id: string, args: string[], okReason: (j: unknown) => string) => async (signal: AbortSignal): Promise<PhaseOutcome> => {
    const s = skipped(id);
    if (s) return s;
    const cmd = args[0]!;
    const mod = await optionalModule(`commands/${cmd === 'models' ? 'models-check' : cmd}`);
    if (!mod) return { status: 'skip', reason: `\`steadydancer ${cmd}\` is not in this build (its branch is not merged)` };
    const r = await cli(args, o.env, signal);
    if (r.code === 0) return { status: 'pass', reason: okReason(r.json), details: r.json };
    const err = (r.json as { error?: { message?: string } } | undefined)?.error?.message;
    return { status: 'fail', reason: err ?? (r.stderr.trim().split('\n').pop() || `exit code ${r.code}`), details: r.json };
  };
  return [
    { id: 'doctor', title: '1 doctor (host preflight)', needs: [], run: viaCli('doctor', ['doctor'], () => 'host preflight passed') },
    { id: 'lint', title: '2 lint (static checks)', needs: [], after: ['doctor'], run: viaCli('lint', ['lint'], () => 'no lint errors') },
    {
      id: 'models',
      title: '3a models check (Hub)',
      needs: [],
      after: ['lint'],
      run: viaCli('models', ['models', 'check', '--variant', o.variant], (j) => `variant ${(j as { chosenVariant?: string })?.chosenVariant ?? o.variant} available`),
    },
    { id: 'deps', title: '3b dependency build (image build)', needs: [], after: ['lint'], run: viaCli('build', ['build', '--variant', o.variant], () => 'image built') },
    {
      id: 'build',
      title: '4 local build (image + models)',
      needs: ['models', 'deps'],
      run: async () => skipped('build') ?? { status: 'pass', reason: 'image and model set ready (phases 3a + 3b)' },
    },
    {
      id: 'test',
      title: '5 local test (up + smoke)',
      needs: ['build'],
      run: async (signal) => {
        const s = skipped('test');
        if (s) return s;
        const up = await cli(['up'], o.env, signal);
        if (up.code !== 0) return { status: 'fail', reason: `up: ${(up.json as { error?: { message?: string } })?.error?.message ?? up.stderr}` };
        try {
          const r = await cli(['smoke'], o.env, signal);
          return r.code === 0 ? { status: 'pass', reason: 'smoke passed', details: r.json } : { status: 'fail', reason: 'smoke failed', details: r.json };
        } finally {
          await cli(['down'], o.env, signal);
        }
      },
    },
  ];
}
