/** `steadydancer lint` with every rule and the real programs (what the command and the plan runner call). */
import { realRunner, type Runner } from '../system/exec.js';
import { runLint, type LintResult } from './lint.js';
import { manifestView } from './manifest-bridge.js';
import { rules } from './rules/index.js';

export async function lintRepository(o: { root: string; env?: NodeJS.ProcessEnv; external?: boolean; only?: string[]; run?: Runner }): Promise<LintResult> {
  return runLint(rules, { root: o.root, run: o.run ?? realRunner, external: o.external ?? true, env: o.env, only: o.only, manifest: manifestView });
}
