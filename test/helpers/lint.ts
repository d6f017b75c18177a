/**
 * Lint fixtures: a good baseline (test/fixtures/lint/good) broken for one rule, by edits to the
 * baseline's files (expect.json "edits": each `find` must occur exactly once) and by files laid
 * over it (the rule's docker/ tree, for files the baseline does not have).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const LINT_FIXTURES = join(process.cwd(), 'test', 'fixtures', 'lint');

export interface FixtureExpect {
  why: string;
  external?: boolean;
  needs?: 'compose' | 'shellcheck';
  findings: Array<{ file: string; line: number }>;
  edits?: Array<{ file: string; find: string; replace: string }>;
}

export function ruleFixtures(): string[] {
  return readdirSync(LINT_FIXTURES)
    .filter((d) => d !== 'good' && existsSync(join(LINT_FIXTURES, d, 'expect.json')))
    .sort();
}

export function fixtureExpect(rule: string): FixtureExpect {
  return JSON.parse(readFileSync(join(LINT_FIXTURES, rule, 'expect.json'), 'utf8')) as FixtureExpect;
}

/** A token-shaped (fake) Hugging Face token, made at run time so that no token-shaped string is
 *  ever committed: fixtures say `@@FAKE_HF_TOKEN@@` and the copy gets this. */
export const FAKE_HF_TOKEN = ['hf', 'FAKE'.repeat(4) + 'fake'.repeat(4) + '0000'].join('_');
const PLACEHOLDER = '@@FAKE_HF_TOKEN@@';

/** A fresh copy of the good baseline, with rule `overlay`'s edits made and its files (its
 *  docker/ tree) laid over it; `@@FAKE_HF_TOKEN@@` in those files becomes FAKE_HF_TOKEN. */
export function buildTree(overlay?: string): string {
  const dir = mkdtempSync(join(tmpdir(), `sd-lint-${overlay ?? 'good'}-`));
  cpSync(join(LINT_FIXTURES, 'good', 'docker'), join(dir, 'docker'), { recursive: true });
  if (!overlay) return dir;
  for (const e of fixtureExpect(overlay).edits ?? []) {
    const path = join(dir, e.file);
    const text = readFileSync(path, 'utf8');
    const n = text.split(e.find).length - 1;
    if (n !== 1) throw new Error(`lint fixture ${overlay}: ${JSON.stringify(e.find)} occurs ${n} times in ${e.file} (must be once: the baseline changed?)`);
    writeFileSync(
      path,
      text.replace(e.find, () => e.replace),
    );
  }
  const src = join(LINT_FIXTURES, overlay, 'docker');
  if (existsSync(src)) {
    cpSync(src, join(dir, 'docker'), { recursive: true });
    for (const rel of readdirSync(src, { recursive: true }) as string[]) {
      const to = join(dir, 'docker', rel);
      if (!statSync(to).isFile()) continue;
      const text = readFileSync(to, 'utf8');
      if (text.includes(PLACEHOLDER)) writeFileSync(to, text.replaceAll(PLACEHOLDER, FAKE_HF_TOKEN));
    }
  }
  return dir;
}
