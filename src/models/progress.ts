/**
 * Download progress: cli-progress bars (one per active file plus a total, with speed and ETA)
 * on a terminal; periodic plain lines otherwise (build logs, start.sh, CI).
 */
import cliProgress from 'cli-progress';
import type { Logger } from '../util/logger.js';

export interface ProgressSink {
  /** Register the whole job: total bytes expected (already-present bytes count as done). */
  begin(totalBytes: number, alreadyDone: number): void;
  fileStart(name: string, size: number, offset: number): void;
  /** `delta` new bytes of `name` arrived. */
  advance(name: string, delta: number): void;
  /** A retry went back: the file's progress restarts from `offset`. */
  reset(name: string, offset: number): void;
  fileDone(name: string): void;
  end(): void;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : v >= 100 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Totals shared by both renderings. */
class Totals {
  total = 0;
  done = 0;
  startDone = 0;
  started = Date.now();
  perFile = new Map<string, { size: number; done: number }>();
  speed(): number {
    const s = (Date.now() - this.started) / 1000;
    return s > 0 ? (this.done - this.startDone) / s : 0;
  }
  eta(): number {
    const sp = this.speed();
    return sp > 0 ? (this.total - this.done) / sp : Infinity;
  }
}

/** Plain lines every `intervalMs` (and one at each file's end). */
export function plainProgress(logger: Logger, intervalMs = 10_000): ProgressSink {
  const t = new Totals();
  let timer: NodeJS.Timeout | undefined;
  const line = () => {
    const pct = t.total > 0 ? Math.floor((t.done / t.total) * 100) : 100;
    const active = [...t.perFile.entries()].map(([n, f]) => `${n} ${f.size > 0 ? Math.floor((f.done / f.size) * 100) : 0}%`);
    logger.line(`download: ${formatBytes(t.done)} / ${formatBytes(t.total)} (${pct}%), ${formatBytes(t.speed())}/s, ETA ${formatDuration(t.eta())}` + (active.length ? ` · ${active.join(', ')}` : ''));
  };
  return {
    begin(total, already) {
      t.total = total;
      t.done = already;
      t.startDone = already;
      t.started = Date.now();
      timer = setInterval(line, intervalMs);
      timer.unref();
    },
    fileStart(name, size, offset) {
      t.perFile.set(name, { size, done: offset });
    },
    advance(name, delta) {
      t.done += delta;
      const f = t.perFile.get(name);
      if (f) f.done += delta;
    },
    reset(name, offset) {
      const f = t.perFile.get(name);
      if (f) {
        t.done -= f.done - offset;
        f.done = offset;
      }
    },
    fileDone(name) {
      t.perFile.delete(name);
    },
    end() {
      if (timer) clearInterval(timer);
      if (t.total > 0) line();
    },
  };
}

/** cli-progress bars on a TTY stream (stderr). */
export function barProgress(stream: NodeJS.WritableStream): ProgressSink {
  const t = new Totals();
  const multi = new cliProgress.MultiBar(
    {
      stream: stream as NodeJS.WriteStream,
      clearOnComplete: false,
      hideCursor: true,
      format: ' {bar} {percentage}% | {name} | {doneH}/{totalH} | {speedH}/s | ETA {etaH}',
      barsize: 24,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  let totalBar: cliProgress.SingleBar | undefined;
  const started = new Map<string, { at: number; from: number }>();
  const payload = (name: string, done: number, size: number) => {
    const s = started.get(name);
    const secs = s ? (Date.now() - s.at) / 1000 : 0;
    const speed = s && secs > 0 ? (done - s.from) / secs : 0;
    return { name, doneH: formatBytes(done), totalH: formatBytes(size), speedH: formatBytes(speed), etaH: formatDuration(speed > 0 ? (size - done) / speed : Infinity) };
  };
  const refreshTotal = () => totalBar?.update(t.done, payload('total', t.done, t.total));
  return {
    begin(total, already) {
      t.total = total;
      t.done = already;
      t.started = Date.now();
      started.set('total', { at: Date.now(), from: already });
      totalBar = multi.create(Math.max(total, 1), already, payload('total', already, total));
    },
    fileStart(name, size, offset) {
      t.perFile.set(name, { size, done: offset });
      started.set(name, { at: Date.now(), from: offset });
      bars.set(name, multi.create(Math.max(size, 1), offset, payload(name, offset, size)));
    },
    advance(name, delta) {
      t.done += delta;
      const f = t.perFile.get(name);
      if (f) {
        f.done += delta;
        bars.get(name)?.update(f.done, payload(name, f.done, f.size));
      }
      refreshTotal();
    },
    reset(name, offset) {
      const f = t.perFile.get(name);
      if (f) {
        t.done -= f.done - offset;
        f.done = offset;
        bars.get(name)?.update(offset, payload(name, offset, f.size));
      }
      refreshTotal();
    },
    fileDone(name) {
      const b = bars.get(name);
      if (b) {
        const f = t.perFile.get(name);
        if (f) b.update(f.size, payload(name, f.size, f.size));
        b.stop();
      }
      t.perFile.delete(name);
    },
    end() {
      refreshTotal();
      multi.stop();
    },
  };
}

export const silentProgress: ProgressSink = {
  begin() {},
  fileStart() {},
  advance() {},
  reset() {},
  fileDone() {},
  end() {},
};
