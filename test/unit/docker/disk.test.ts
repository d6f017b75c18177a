import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { diskUsage, evaluateDisk, initialDiskState, startDiskWatch, type DiskSample } from '../../../src/system/disk.js';

const s = (used: number, path = '/var/lib/docker'): DiskSample => ({ path, totalBytes: 100e9, availBytes: (1 - used) * 100e9, usedFraction: used });

describe('disk watch', () => {
  it('on a recorded fill-up: warns once at 80 %, stops once at 95 %', () => {
    const state = initialDiskState();
    const seq = [0.5, 0.7, 0.79, 0.8, 0.85, 0.9, 0.94, 0.95, 0.97];
    const events = seq.map((u) => evaluateDisk(s(u), state).kind);
    expect(events).toEqual(['ok', 'ok', 'ok', 'warn', 'ok', 'ok', 'ok', 'stop', 'ok']);
    expect(state.peakUsedFraction).toBe(0.97);
  });
  it('re-arms the warning after usage falls well below the line (a prune)', () => {
    const state = initialDiskState();
    const events = [0.82, 0.83, 0.7, 0.81].map((u) => evaluateDisk(s(u), state).kind);
    expect(events).toEqual(['warn', 'ok', 'ok', 'warn']);
  });
  it('messages name the path, the percentage and the free space', () => {
    const e = evaluateDisk(s(0.96), initialDiskState());
    expect(e.kind).toBe('stop');
    expect(e.kind !== 'ok' && e.message).toBe('disk at /var/lib/docker is 96.0 % used (4.0 GB free), over the 95.0 % stop line: build stopped');
  });
  it('rejects inconsistent thresholds', () => {
    expect(() => evaluateDisk(s(0.5), initialDiskState(), { warnAt: 0.9, stopAt: 0.8 })).toThrow(/0 < warnAt < stopAt <= 1/);
  });
  it('measures a real filesystem', async () => {
    const d = await diskUsage(mkdtempSync(`${tmpdir()}/disk-`));
    expect(d.totalBytes).toBeGreaterThan(0);
    expect(d.usedFraction).toBeGreaterThan(0);
    expect(d.usedFraction).toBeLessThan(1);
  });
  it('the watch samples on a timer and reports events', async () => {
    const samples = [0.5, 0.85, 0.96];
    let i = 0;
    const events: string[] = [];
    const w = startDiskWatch({
      path: '/x',
      intervalMs: 5,
      sample: async () => s(samples[Math.min(i++, samples.length - 1)]!),
      onEvent: (e) => events.push(e.kind),
    });
    await new Promise((r) => setTimeout(r, 80));
    w.stop();
    expect(events).toEqual(['warn', 'stop']);
    expect(w.state.stopped).toBe(true);
  });
});
