/**
 * Loud skips. A test that needs something absent here (a GPU, a Docker engine, a cached
 * source) calls `requireOrSkip`; the reason is printed at once and recorded in
 * .test-results/skips.jsonl, which scripts/test-summary.ts counts in the final summary.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const RESULTS = process.env.STEADYDANCER_TEST_RESULTS ?? join(process.cwd(), '.test-results');

export function recordSkip(test: string, reason: string): void {
  mkdirSync(RESULTS, { recursive: true });
  appendFileSync(join(RESULTS, 'skips.jsonl'), JSON.stringify({ test, reason }) + '\n');
  process.stderr.write(`\n  SKIPPED ${test}: ${reason}\n`);
}

/**
 * Returns the reason a suite cannot run, or undefined when it can. Use with
 * `describe.skipIf(skip)` after `const skip = needs('suite name', reasonOrUndefined)`.
 */
export function needs(suite: string, reason: string | undefined | false): boolean {
  if (!reason) return false;
  recordSkip(suite, reason);
  return true;
}
