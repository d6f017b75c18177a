/** Lint fixtures: a good baseline (test/fixtures/lint/good) with one rule's broken files laid over it. */
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const LINT_FIXTURES = join(process.cwd(), 'test', 'fixtures', 'lint');

export interface FixtureExpect {
  why: string;
  external?: boolean;
  needs?: 'compose' | 'shellcheck';
  findings: Array<{ file: string; line: number }>;
}

export function ruleFixtures(): string[] {
  return readdirSync(LINT_FIXTURES)
    .filter((d) => d !== 'good' && existsSync(join(LINT_FIXTURES, d, 'expect.json')))
    .sort();
}

export function fixtureExpect(rule: string): FixtureExpect {
  return JSON.parse(readFileSync(join(LINT_FIXTURES, rule, 'expect.json'), 'utf8')) as FixtureExpect;
}

/** A fresh copy of the good baseline with `overlay`'s files (its docker/ tree) laid over it. */
export function buildTree(overlay?: string): string {
  const dir = mkdtempSync(join(tmpdir(), `sd-lint-${overlay ?? 'good'}-`));
  cpSync(join(LINT_FIXTURES, 'good', 'docker'), join(dir, 'docker'), { recursive: true });
  if (overlay) cpSync(join(LINT_FIXTURES, overlay, 'docker'), join(dir, 'docker'), { recursive: true });
  return dir;
}
