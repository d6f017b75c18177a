/** doctor for real on the machine running the tests: no recordings, the real programs. */
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realRunner, recordedRunner, type Recording } from '../../src/system/exec.js';
import { runDoctor } from '../../src/system/doctor.js';
import { captureCli } from '../helpers/cli.js';

const capture = () => captureCli({ ...process.env });

interface Row {
  id: string;
  status: string;
  detail: string;
  impact: string;
}

describe('steadydancer doctor on this machine', () => {
  it('--json reports every row; a missing GPU is a FAIL with a readable reason and its meaning', async () => {
    const hasGpu = (await realRunner('nvidia-smi', ['-L'])).exitCode === 0;
    const c = capture();
    const code = await runCli(['doctor', '--json', '--models-size-gb', '1'], c.io);
    const doc = JSON.parse(c.out.join('\n')) as { ok: boolean; checks: Row[]; counts: Record<string, number> };
    expect(doc.checks.map((r) => r.id)).toEqual([
      'gpu.present',
      'gpu.cuda',
      'gpu.compute',
      'docker.engine',
      'docker.buildkit',
      'gpu.container-toolkit',
      'docker.compose',
      'disk.docker-root',
      'disk.models',
      'docker.base-image',
    ]);
    for (const r of doc.checks) {
      expect(['PASS', 'WARN', 'FAIL', 'SKIP']).toContain(r.status);
      expect(r.detail.length).toBeGreaterThan(3);
      expect(r.impact.length).toBeGreaterThan(3);
    }
    expect(code).toBe(doc.ok ? 0 : 1);
    expect(doc.ok).toBe(doc.counts.FAIL === 0);
    const gpu = doc.checks[0]!;
    if (hasGpu) {
      expect(gpu.status).toBe('PASS');
    } else {
      expect(gpu.status).toBe('FAIL');
      expect(gpu.detail).toMatch(/^no NVIDIA GPU: nvidia-smi (is not installed|failed)/);
      expect(gpu.impact).toBe('GPU phases (full-size smoke, GPU benchmarks) will be skipped; build, lint, models and the CPU smoke can still run');
      expect(code).toBe(1);
    }
  });

  it('--record writes what the programs answered; replaying it gives the same rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sd-doctor-'));
    try {
      const file = join(dir, 'recording.json');
      const c = capture();
      await runCli(['doctor', '--json', '--models-dir', dir, '--models-size-gb', '1', '--base-image', 'local/none:1', '--record', file], c.io);
      const live = JSON.parse(c.out.join('\n')) as { checks: Row[] };
      const rec = JSON.parse(readFileSync(file, 'utf8')) as Recording;
      expect(Object.keys(rec)).toContain('nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader');
      const replay = await runDoctor({ run: recordedRunner(rec), modelsDir: dir, variant: 'fp8', modelBytes: 1e9, baseImage: 'local/none:1' });
      // free space moves between the two runs; the verdicts must not
      expect(replay.checks.map((r) => [r.id, r.status])).toEqual(live.checks.map((r) => [r.id, r.status]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad number is a usage error (exit 2) naming the flag', async () => {
    const c = capture();
    expect(await runCli(['doctor', '--models-size-gb', 'lots'], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/option '--models-size-gb <n>' argument 'lots' is invalid. expected a number of GB/);
  });
});
