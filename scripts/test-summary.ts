/**
 * Prints one closing line for the whole `make test` run (vitest + pytest), in the plain form
 * "tests: N passed, N failed, N skipped"; repeats each vitest and pytest failure with its first
 * message lines, and lists every loud skip with its reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';

const dir = process.argv[2] ?? '.test-results';
let passed = 0;
let failed = 0;
let skipped = 0;

const vj = join(dir, 'vitest.json');
if (existsSync(vj)) {
  const r = JSON.parse(readFileSync(vj, 'utf8')) as {
    numPassedTests: number;
    numFailedTests: number;
    numPendingTests: number;
    numTodoTests: number;
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
      const first = strip((a.failureMessages ?? [])[0] ?? '')
        .split('\n')
        .filter((l) => l.trim() && !/^\s+at /.test(l))
        .slice(0, 6)
        .join('\n      ');
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

// pytest's JUnit XML: <testsuites><testsuite errors failures skipped tests><testcase classname
// name><failure message>…</failure> | <error message>…</error></testcase>
interface JUnitProblem {
  '@_message'?: string;
  '#text'?: string;
}
interface JUnitCase {
  '@_classname'?: string;
  '@_name'?: string;
  failure?: JUnitProblem | JUnitProblem[];
  error?: JUnitProblem | JUnitProblem[];
}
interface JUnitSuite {
  '@_errors'?: string;
  '@_failures'?: string;
  '@_skipped'?: string;
  '@_tests'?: string;
  testcase?: JUnitCase | JUnitCase[];
}
const list = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

const px = join(dir, 'pytest.xml');
if (existsSync(px)) {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', parseAttributeValue: false, parseTagValue: false }).parse(readFileSync(px, 'utf8')) as {
    testsuites?: { testsuite?: JUnitSuite | JUnitSuite[] };
    testsuite?: JUnitSuite;
  };
  for (const suite of [...list(doc.testsuites?.testsuite), ...list(doc.testsuite)]) {
    const [errors, failures, sk, tests] = [suite['@_errors'], suite['@_failures'], suite['@_skipped'], suite['@_tests']].map((v) => Number(v ?? 0)) as [number, number, number, number];
    failed += errors + failures;
    skipped += sk;
    passed += tests - errors - failures - sk;
    for (const c of list(suite.testcase)) {
      for (const [kind, p] of [...list(c.failure).map((x) => ['failed', x] as const), ...list(c.error).map((x) => ['error', x] as const)]) {
        const id = `${(c['@_classname'] ?? '').replace(/\./g, '/')}.py::${c['@_name'] ?? '?'}`;
        const text = (
          p['@_message'] ??
          String(p['#text'] ?? '')
            .split('\n')
            .filter((l) => l.trim())
            .pop() ??
          ''
        ).trim();
        console.log(`${kind === 'failed' ? 'FAILED' : 'ERROR'} ${id}\n      ${text.split('\n').slice(0, 6).join('\n      ').slice(0, 1200)}`);
      }
    }
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
