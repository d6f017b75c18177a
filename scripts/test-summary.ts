/**
 * Prints one closing line for the whole `make test` run (vitest + pytest), in the plain form
 * "tests: N passed, N failed, N skipped", and lists every loud skip with its reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? '.test-results';
let passed = 0;
let failed = 0;
let skipped = 0;

const vj = join(dir, 'vitest.json');
if (existsSync(vj)) {
  const r = JSON.parse(readFileSync(vj, 'utf8')) as {
    numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number;
    testResults: { name: string; status: string; message?: string; assertionResults: { status: string; fullName?: string; failureMessages?: string[] }[] }[];
  };
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + r.numTodoTests;
  // A test file that failed before any of its tests ran (import error, failing hook) counts once.
  // The failures again, briefly, at the end: CI shows only the tail of the output.
  const strip = (t: string) => t.replace(/\u001b\[[0-9;]*m/g, '');
  for (const f of r.testResults) {
    for (const a of f.assertionResults) {
      if (a.status !== 'failed') continue;
      const first = strip((a.failureMessages ?? [])[0] ?? '').split('\n').filter((l) => l.trim() && !/^\s+at /.test(l)).slice(0, 6).join('\n      ');
      console.log(`FAILED ${f.name.replace(process.cwd() + '/', '')} > ${a.fullName ?? '?'}\n      ${first.slice(0, 1200)}`);
    }
    if (f.status === 'failed' && !f.assertionResults.some((a) => a.status === 'failed')) {
      failed += 1;
      console.log(`test file failed outside its tests: ${f.name}: ${(f.message ?? '').split('\n')[0]}`);
    }
  }
} else {
  failed += 1;
  console.log('vitest produced no results file');
}

const px = join(dir, 'pytest.xml');
if (existsSync(px)) {
  const xml = readFileSync(px, 'utf8');
  const m = /<testsuite[^>]*\berrors="(\d+)"[^>]*\bfailures="(\d+)"[^>]*\bskipped="(\d+)"[^>]*\btests="(\d+)"/.exec(xml);
  if (m) {
    const [errors, failures, sk, tests] = m.slice(1).map(Number) as [number, number, number, number];
    failed += errors + failures;
    skipped += sk;
    passed += tests - errors - failures - sk;
  }
}

const sj = join(dir, 'skips.jsonl');
if (existsSync(sj)) {
  const lines = readFileSync(sj, 'utf8').trim().split('\n').filter(Boolean);
  if (lines.length) {
    console.log(`\nSkipped suites (${lines.length}) — each needs something this machine lacks:`);
    for (const l of lines) {
      const { test, reason } = JSON.parse(l) as { test: string; reason: string };
      console.log(`  - ${test}: ${reason}`);
    }
  }
}
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
