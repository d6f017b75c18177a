/**
 * Phase 2, static checks. The engine runs every rule in src/docker/rules/ over a project root
 * (docker/Dockerfile, docker/docker-compose.yml, docker/custom-nodes.lock.json, docker/*.sh,
 * docker/workflows/*.json) and collects findings with rule id, file:line, message and fix hint.
 * Errors fail the lint; warnings do not. Rules that need a program this host lacks are
 * reported as skipped, with the reason.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Runner } from '../system/exec.js';
import type { ManifestView } from './manifest-bridge.js';
import { parseDockerfile, type ParsedDockerfile } from './dockerfile.js';

export type Severity = 'error' | 'warning';

export interface Finding {
  rule: string;
  severity: Severity;
  /** Path relative to the linted root, forward slashes. */
  file: string;
  /** 1-based line (1 for whole-file problems). */
  line: number;
  column?: number;
  message: string;
  hint: string;
}

export interface RuleSkip {
  skipped: string;
}

export interface LintContext {
  root: string;
  run: Runner;
  /** Whether rules may run other programs (docker compose config, shellcheck). */
  external: boolean;
  env: NodeJS.ProcessEnv;
  /** Text of a file under root (relative path), or null when absent. Cached. */
  read(rel: string): string | null;
  /** Relative paths of the files in a folder under root matching a suffix, sorted (optionally in subfolders too). */
  list(relDir: string, suffix: string, recursive?: boolean): string[];
  /** docker/Dockerfile parsed (null when absent). */
  dockerfile(): ParsedDockerfile | null;
  manifest(): Promise<ManifestView | null>;
}

export interface Rule {
  id: string;
  title: string;
  /** Severity of this rule's findings unless a finding says otherwise. */
  severity: Severity;
  check(ctx: LintContext): Promise<Array<Omit<Finding, 'rule' | 'severity'> & { severity?: Severity }> | RuleSkip>;
}

export interface RuleReport {
  id: string;
  title: string;
  status: 'ran' | 'skipped';
  reason?: string;
  errors: number;
  warnings: number;
}

export interface LintResult {
  ok: boolean;
  root: string;
  errors: number;
  warnings: number;
  findings: Finding[];
  rules: RuleReport[];
}

export const DOCKERFILE = 'docker/Dockerfile';
export const COMPOSE_FILES = ['docker/docker-compose.yml', 'docker/docker-compose.yaml', 'docker/compose.yaml', 'docker/compose.yml'];
export const LOCK = 'docker/custom-nodes.lock.json';

export interface LintOptions {
  root: string;
  run: Runner;
  external?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Only these rule ids. */
  only?: string[];
  manifest?: (root: string) => Promise<ManifestView | null>;
}

export function makeContext(opts: LintOptions): LintContext {
  const cache = new Map<string, string | null>();
  let df: ParsedDockerfile | null | undefined;
  let man: Promise<ManifestView | null> | undefined;
  const ctx: LintContext = {
    root: opts.root,
    run: opts.run,
    external: opts.external ?? true,
    env: opts.env ?? process.env,
    read(rel) {
      if (!cache.has(rel)) {
        const p = join(opts.root, rel);
        cache.set(rel, existsSync(p) && statSync(p).isFile() ? readFileSync(p, 'utf8') : null);
      }
      return cache.get(rel)!;
    },
    list(relDir, suffix, recursive = false) {
      const out: string[] = [];
      const walk = (dir: string) => {
        if (!existsSync(dir)) return;
        for (const n of readdirSync(dir).sort()) {
          const p = join(dir, n);
          const st = statSync(p);
          if (st.isFile() && n.endsWith(suffix)) out.push(relative(opts.root, p).split('\\').join('/'));
          else if (recursive && st.isDirectory() && n !== 'node_modules' && !n.startsWith('.')) walk(p);
        }
      };
      walk(join(opts.root, relDir));
      return out.sort();
    },
    dockerfile() {
      if (df === undefined) {
        const text = ctx.read(DOCKERFILE);
        df = text === null ? null : parseDockerfile(text);
      }
      return df;
    },
    manifest() {
      man ??= opts.manifest ? opts.manifest(opts.root) : Promise.resolve(null);
      return man;
    },
  };
  return ctx;
}

export async function runLint(rules: Rule[], opts: LintOptions): Promise<LintResult> {
  const ctx = makeContext(opts);
  const only = opts.only?.length ? new Set(opts.only.map((s) => s.toUpperCase())) : null;
  const findings: Finding[] = [];
  const reports: RuleReport[] = [];
  for (const rule of rules) {
    if (only && !only.has(rule.id)) continue;
    let res: Awaited<ReturnType<Rule['check']>>;
    try {
      res = await rule.check(ctx);
    } catch (err) {
      // A rule that crashes is reported as an error of that rule, not a crash of lint.
      res = [{ file: '.', line: 1, message: `rule crashed: ${(err as Error).message}`, hint: 'this is a bug in the rule; please report it', severity: 'error' }];
    }
    if (!Array.isArray(res)) {
      reports.push({ id: rule.id, title: rule.title, status: 'skipped', reason: res.skipped, errors: 0, warnings: 0 });
      continue;
    }
    const mine = res.map((f) => ({ rule: rule.id, ...f, severity: f.severity ?? rule.severity }));
    findings.push(...mine);
    reports.push({
      id: rule.id,
      title: rule.title,
      status: 'ran',
      errors: mine.filter((f) => f.severity === 'error').length,
      warnings: mine.filter((f) => f.severity === 'warning').length,
    });
  }
  findings.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
  const errors = findings.filter((f) => f.severity === 'error').length;
  return { ok: errors === 0, root: opts.root, errors, warnings: findings.length - errors, findings, rules: reports };
}

export function renderLint(r: LintResult): string {
  const lines: string[] = [];
  for (const f of r.findings) {
    lines.push(`${f.file}:${f.line}${f.column ? `:${f.column}` : ''}  ${f.severity}  ${f.rule}  ${f.message}`);
    lines.push(`    fix: ${f.hint}`);
  }
  const skipped = r.rules.filter((x) => x.status === 'skipped');
  if (skipped.length) {
    lines.push('');
    for (const s of skipped) lines.push(`skipped ${s.id} (${s.title}): ${s.reason}`);
  }
  lines.push('');
  lines.push(`lint: ${r.rules.length - skipped.length} rules ran, ${skipped.length} skipped; ${r.errors} error(s), ${r.warnings} warning(s) — ${r.ok ? 'passed' : 'failed'}`);
  return lines.join('\n');
}

/** 1-based line of a character offset. */
export function lineOf(text: string, offset: number): number {
  let n = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}
