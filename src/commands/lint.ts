import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { emit, type Context } from '../util/context.js';
import { UsageError } from '../util/errors.js';
import { projectRoot } from '../util/paths.js';
import { renderLint } from '../docker/lint.js';
import { rules } from '../docker/rules/index.js';
import { lintRepository } from '../docker/lint-repo.js';

export interface LintCliOptions {
  external?: boolean;
  /** Rule ids (commander's comma-list parser). */
  rule?: string[];
}

export default async function lint(opts: LintCliOptions, ctx: Context, args: string[]): Promise<number> {
  const root = args[0] ? resolve(ctx.cwd, args[0]) : projectRoot();
  if (!existsSync(resolve(root, 'docker'))) throw new UsageError(`${root} has no docker/ folder: nothing to lint`, 'pass the repository root (the folder holding docker/)');
  const only = opts.rule?.map((id) => id.toUpperCase());
  if (only) {
    const known = new Set(rules.map((r) => r.id));
    const bad = only.filter((id) => !known.has(id));
    if (bad.length) throw new UsageError(`unknown rule id(s): ${bad.join(', ')}`, `rule ids: ${[...known].join(', ')}`);
  }
  const result = await lintRepository({ root, external: opts.external !== false, env: ctx.env, only });
  emit(ctx, result, renderLint);
  return result.ok ? 0 : 1;
}
