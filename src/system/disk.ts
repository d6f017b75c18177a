/**
 * Free space on a filesystem (fs.statfs, no df parsing) and the disk watch used by long builds:
 * a warning when usage crosses `warnAt`, a stop when it crosses `stopAt`. The decision logic is
 * a pure function over samples so that it is tested on recorded sequences.
 */
import { statfs } from 'node:fs/promises';

export interface DiskSample {
  path: string;
  totalBytes: number;
  /** Bytes available to unprivileged users (what a build can still write). */
  availBytes: number;
  /** Used fraction counted like df: (total - free) / (total - free + avail). */
  usedFraction: number;
}

export async function diskUsage(path: string): Promise<DiskSample> {
  const s = await statfs(path);
  const total = s.blocks * s.bsize;
  const free = s.bfree * s.bsize;
  const avail = s.bavail * s.bsize;
  const used = total - free;
  const denom = used + avail;
  return { path, totalBytes: total, availBytes: avail, usedFraction: denom > 0 ? used / denom : 0 };
}

export interface DiskThresholds {
  /** Warn when used fraction reaches this (default 0.80). */
  warnAt: number;
  /** Stop when used fraction reaches this (default 0.95). */
  stopAt: number;
}

export const DEFAULT_THRESHOLDS: DiskThresholds = { warnAt: 0.8, stopAt: 0.95 };

export interface DiskWatchState {
  warned: boolean;
  stopped: boolean;
  peakUsedFraction: number;
}

export type DiskEvent = { kind: 'ok' } | { kind: 'warn'; sample: DiskSample; message: string } | { kind: 'stop'; sample: DiskSample; message: string };

export function initialDiskState(): DiskWatchState {
  return { warned: false, stopped: false, peakUsedFraction: 0 };
}

const pct = (f: number) => `${(f * 100).toFixed(1)} %`;
const gb = (b: number) => `${(b / 1e9).toFixed(1)} GB`;

/**
 * One step of the watch. Warns once per crossing (re-armed when usage falls back below
 * warnAt by 2 points), stops once.
 */
export function evaluateDisk(sample: DiskSample, state: DiskWatchState, t: DiskThresholds = DEFAULT_THRESHOLDS): DiskEvent {
  if (!(t.warnAt > 0 && t.warnAt < t.stopAt && t.stopAt <= 1)) {
    throw new RangeError(`disk thresholds must satisfy 0 < warnAt < stopAt <= 1 (got ${t.warnAt}, ${t.stopAt})`);
  }
  state.peakUsedFraction = Math.max(state.peakUsedFraction, sample.usedFraction);
  if (state.stopped) return { kind: 'ok' };
  if (sample.usedFraction >= t.stopAt) {
    state.stopped = true;
    return {
      kind: 'stop',
      sample,
      message: `disk at ${sample.path} is ${pct(sample.usedFraction)} used (${gb(sample.availBytes)} free), over the ${pct(t.stopAt)} stop line: build stopped`,
    };
  }
  if (sample.usedFraction >= t.warnAt) {
    if (!state.warned) {
      state.warned = true;
      return {
        kind: 'warn',
        sample,
        message: `disk at ${sample.path} is ${pct(sample.usedFraction)} used (${gb(sample.availBytes)} free); the build stops at ${pct(t.stopAt)}`,
      };
    }
  } else if (sample.usedFraction < t.warnAt - 0.02) {
    state.warned = false;
  }
  return { kind: 'ok' };
}

export interface DiskWatchOptions {
  path: string;
  intervalMs?: number;
  thresholds?: DiskThresholds;
  sample?: (path: string) => Promise<DiskSample>;
  onEvent: (e: Exclude<DiskEvent, { kind: 'ok' }>) => void;
}

export interface DiskWatch {
  stop(): void;
  state: DiskWatchState;
  /** Samples once now (also what the timer does). */
  tick(): Promise<void>;
}

/** Samples `path` every intervalMs (default 5 s) and reports warn/stop events. */
export function startDiskWatch(opts: DiskWatchOptions): DiskWatch {
  const state = initialDiskState();
  const sample = opts.sample ?? diskUsage;
  const thresholds = opts.thresholds ?? DEFAULT_THRESHOLDS;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const e = evaluateDisk(await sample(opts.path), state, thresholds);
      if (e.kind !== 'ok') opts.onEvent(e);
    } catch {
      // a failed sample (path gone) is not a reason to stop a build; the next tick retries
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.intervalMs ?? 5000);
  timer.unref();
  void tick();
  return { stop: () => clearInterval(timer), state, tick };
}
