/**
 * Progress coalescing for the worker's IN_PROGRESS posts. A handler may report far more often
 * than RunPod needs to hear (every pose frame, every node, every step): each post is an HTTP
 * request to the platform. Rules:
 *  - at most one post per `intervalMs` (1 s); an update that comes sooner waits, and only the
 *    newest waiting update is sent when the interval is over;
 *  - at most one post per sampling step: an update whose stage and step equal the last one
 *    sent is dropped. Only stage "sampling" carries steps; other stages (pose frames, nodes)
 *    are plain updates, limited by the interval alone.
 * Nothing is sent after close(): the final result follows and supersedes any held update.
 */
import type { Progress } from './jobs.js';

export class ProgressCoalescer {
  private lastSentAt = -Infinity;
  private lastKey: string | undefined;
  private held: Progress | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly send: (p: Progress) => void,
    private readonly intervalMs = 1000,
  ) {}

  private static key(p: Progress): string {
    return p.stage === 'sampling' ? `sampling:${p.step ?? ''}` : `${p.stage}:${p.message}`;
  }

  push(p: Progress): void {
    if (this.closed || ProgressCoalescer.key(p) === this.lastKey) return;
    const wait = this.lastSentAt + this.intervalMs - Date.now();
    if (wait <= 0 && !this.timer) {
      this.emit(p);
      return;
    }
    this.held = p;
    this.timer ??= setTimeout(
      () => {
        this.timer = undefined;
        const h = this.held;
        this.held = undefined;
        if (h && !this.closed && ProgressCoalescer.key(h) !== this.lastKey) this.emit(h);
      },
      Math.max(0, wait),
    );
  }

  private emit(p: Progress): void {
    this.lastSentAt = Date.now();
    this.lastKey = ProgressCoalescer.key(p);
    this.send(p);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.held = undefined;
  }
}
