/** scripts/test-summary.ts: the closing line of `make test`, the failures repeated at the end, the loud skips. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { needs } from '../helpers/skips.js';

const dir = mkdtempSync(join(tmpdir(), 'sd-summary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const summary = (d: string) => execFileSync(join(process.cwd(), 'node_modules', '.bin', 'tsx'), [join(process.cwd(), 'scripts', 'test-summary.ts'), d], { encoding: 'utf8' });

describe('test summary', () => {
  it('adds vitest and pytest counts, repeats each failure with its first message lines, lists the skips', () => {
    const d = join(dir, 'a');
    execFileSync('mkdir', ['-p', d]);
    writeFileSync(
      join(d, 'vitest.json'),
      JSON.stringify({
        numPassedTests: 3,
        numFailedTests: 1,
        numPendingTests: 2,
        numTodoTests: 0,
        testResults: [
          {
            name: join(process.cwd(), 'test', 'x.test.ts'),
            status: 'failed',
            assertionResults: [
              { status: 'passed' },
              {
                status: 'failed',
                fullName: 'browser > loads the workflow',
                failureMessages: ["\u001b[31mAssertionError: page not ready: timeout 120000ms\u001b[39m\n    at step (smoke.ts:1:1)\nexpected 'fail' to be 'pass'"],
              },
            ],
          },
          { name: join(process.cwd(), 'test', 'y.test.ts'), status: 'failed', message: 'Error: hook timed out\nmore', assertionResults: [] },
        ],
      }),
    );
    writeFileSync(join(d, 'pytest.xml'), '<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="10" time="1"></testsuite></testsuites>');
    writeFileSync(join(d, 'skips.jsonl'), JSON.stringify({ test: 'GPU parity', reason: 'no CUDA device' }) + '\n');
    const out = summary(d);
    expect(out).toContain("FAILED test/x.test.ts > browser > loads the workflow\n      AssertionError: page not ready: timeout 120000ms\n      expected 'fail' to be 'pass'");
    expect(out).not.toContain('at step');
    expect(out).not.toContain('\u001b[');
    expect(out).toMatch(/test file failed outside its tests: .*y\.test\.ts: Error: hook timed out/);
    expect(out).toContain('  - GPU parity: no CUDA device');
    // vitest 3 + 1 failed + 2 skipped; the file failed outside its tests counts once; pytest 8 + 1 + 1
    expect(out.trim().split('\n').pop()).toBe('tests: 11 passed, 3 failed, 3 skipped');
  });

  it('a run without a vitest results file is a failure', () => {
    const d = join(dir, 'empty');
    execFileSync('mkdir', ['-p', d]);
    const out = summary(d);
    expect(out).toContain('vitest produced no results file');
    expect(out.trim().split('\n').pop()).toBe('tests: 0 passed, 1 failed, 0 skipped');
  });

  const py = join(process.cwd(), '.venv', 'bin', 'python');
  const noPy = needs('test summary of a real pytest run', existsSync(py) ? undefined : `no Python venv at ${py} (make venv)`);
  it.skipIf(noPy)(
    'lists each pytest failure and error by its test id, from the JUnit XML pytest itself writes',
    () => {
      const d = join(dir, 'py');
      mkdirSync(join(d, 'pkg'), { recursive: true });
      writeFileSync(
        join(d, 'pkg', 'test_demo.py'),
        [
          'import pytest',
          'def test_ok():',
          '    assert 1 == 1',
          'def test_bad():',
          '    assert 2 + 2 == 5, "arithmetic is off"',
          '@pytest.fixture',
          'def broken():',
          '    raise RuntimeError("fixture exploded")',
          'def test_uses_broken(broken):',
          '    pass',
          '@pytest.mark.skip(reason="not here")',
          'def test_skipped():',
          '    pass',
          '',
        ].join('\n'),
      );
      writeFileSync(join(d, 'vitest.json'), JSON.stringify({ numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0, testResults: [] }));
      try {
        execFileSync(py, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--rootdir', d, `--junitxml=${join(d, 'pytest.xml')}`, join(d, 'pkg', 'test_demo.py')], { cwd: d, stdio: 'ignore' });
      } catch {
        // pytest exits 1: a test failed (that is the point)
      }
      const out = summary(d);
      expect(out).toMatch(/^FAILED pkg\/test_demo\.py::test_bad\n {6}AssertionError: arithmetic is off/m);
      expect(out).toMatch(/^ERROR pkg\/test_demo\.py::test_uses_broken\n {6}.*fixture exploded/m);
      expect(out).not.toMatch(/test_ok|test_skipped/);
      expect(out.trim().split('\n').pop()).toBe('tests: 1 passed, 2 failed, 1 skipped');
    },
    120_000,
  );
});
