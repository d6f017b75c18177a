/**
 * Parser of BuildKit's plain progress output (`docker build --progress=plain`), fed line by
 * line. It tracks the steps (vertices "#N [stage k/M] INSTRUCTION"), which are cached, done or
 * failed, the last output line, and recognises the failures the build runner acts on:
 * a flash-attn step that failed (→ rebuild without it) and a full disk.
 */

export type StepState = 'running' | 'cached' | 'done' | 'error';

export interface Step {
  /** BuildKit vertex number (#N). */
  id: number;
  /** Stage name as printed ("final", "torch", "internal", ...). */
  stage: string;
  /** k of "k/M" within the stage (0 for internal vertices). */
  index: number;
  /** M of "k/M". */
  stageTotal: number;
  /** The instruction text. */
  name: string;
  state: StepState;
  seconds?: number;
  /** The last output lines of this vertex (bounded). */
  tail: string[];
}

export interface BuildFailure {
  step?: Step;
  /** The final error line(s) of the build. */
  message: string;
  /** What kind of failure the runner can act on. */
  kind: 'flash-attn' | 'disk-full' | 'network' | 'other';
}

const HEADER = /^#(\d+) \[([^\]]+?)\] (.*)$/;
const STAGE_POS = /^(?:(\S+)\s+)?(\d+)\/(\d+)$/;
const DONE = /^#(\d+) DONE (\d+(?:\.\d+)?)s$/;
const CACHED = /^#(\d+) CACHED$/;
const ERR = /^#(\d+) ERROR:? ?(.*)$/;
const OUTPUT = /^#(\d+) (\d+\.\d+) (.*)$/;
const FINAL_ERR = /^(?:error: )?(failed to solve|executor failed running|failed to compute cache key|ERROR: failed to solve)/i;

export const FLASH_ATTN_MARKER = 'STEADYDANCER_FLASH_ATTN_FAILED';
const FLASH_RE = /flash[-_]attn/i;
const DISK_RE = /no space left on device|ENOSPC/i;
const NETWORK_RE = /Could not resolve host|Temporary failure in name resolution|Connection refused|timed out|Failed to fetch|Network is unreachable/i;

const TAIL = 40;

export class BuildLogParser {
  readonly steps = new Map<number, Step>();
  /** Last non-empty output line (for progress displays). */
  lastLine = '';
  /** Lines of the final error section ("------ > [...]" block and "error: ..."). */
  private order: number[] = [];
  private sawFlashMarker = false;
  private markerLine = '';
  private sawDiskFull = false;
  private failedIds: number[] = [];
  private finalError = '';

  feed(raw: string): void {
    const line = raw.replace(/\r$/, '');
    if (!line.trim()) return;
    if (!/^#\d+ (sha256:|extracting |resolve |\d+\.\d+ sha256:)/.test(line)) this.lastLine = line;
    if (line.includes(FLASH_ATTN_MARKER)) {
      this.sawFlashMarker = true;
      this.markerLine = line.slice(line.indexOf(FLASH_ATTN_MARKER));
    }
    if (DISK_RE.test(line)) this.sawDiskFull = true;

    let m = HEADER.exec(line);
    if (m) {
      const id = Number(m[1]);
      const pos = STAGE_POS.exec(m[2]!);
      const existing = this.steps.get(id);
      if (!existing) {
        this.steps.set(id, {
          id,
          stage: pos ? (pos[1] ?? '') : m[2]!,
          index: pos ? Number(pos[2]) : 0,
          stageTotal: pos ? Number(pos[3]) : 0,
          name: m[3]!,
          state: 'running',
          tail: [],
        });
        this.order.push(id);
      }
      return;
    }
    if ((m = DONE.exec(line))) {
      const s = this.steps.get(Number(m[1]));
      if (s) {
        if (s.state !== 'cached') s.state = 'done';
        s.seconds = Number(m[2]);
      }
      return;
    }
    if ((m = CACHED.exec(line))) {
      const s = this.steps.get(Number(m[1]));
      if (s) s.state = 'cached';
      return;
    }
    if ((m = ERR.exec(line))) {
      const id = Number(m[1]);
      const s = this.steps.get(id);
      if (s) {
        s.state = 'error';
        if (m[2]) s.tail.push(m[2]);
      }
      if (!this.failedIds.includes(id)) this.failedIds.push(id);
      return;
    }
    if ((m = OUTPUT.exec(line))) {
      const s = this.steps.get(Number(m[1]));
      if (s) {
        s.tail.push(m[3]!);
        if (s.tail.length > TAIL) s.tail.shift();
      }
      return;
    }
    if (FINAL_ERR.test(line)) {
      this.finalError = line.replace(/^error: /, '');
      return;
    }
  }

  /** Steps with a stage position ("k/M"), in first-seen order. */
  get realSteps(): Step[] {
    return this.order.map((id) => this.steps.get(id)!).filter((s) => s.stageTotal > 0);
  }

  /**
   * Progress as "step n of N": N sums the M of every stage seen so far, n counts the steps
   * finished (done or cached). BuildKit only prints a stage once it starts, so N can grow.
   */
  progress(): { done: number; total: number; current?: Step } {
    const totals = new Map<string, number>();
    let done = 0;
    let current: Step | undefined;
    for (const s of this.realSteps) {
      totals.set(s.stage, Math.max(totals.get(s.stage) ?? 0, s.stageTotal));
      if (s.state === 'done' || s.state === 'cached') done++;
      else if (s.state === 'running') current = s;
    }
    const total = [...totals.values()].reduce((a, b) => a + b, 0);
    return { done, total, current };
  }

  counts(): { cached: number; done: number; total: number } {
    const rs = this.realSteps;
    return { cached: rs.filter((s) => s.state === 'cached').length, done: rs.filter((s) => s.state === 'done').length, total: rs.length };
  }

  /** The failure, when the build failed (undefined when no step failed and no final error). */
  failure(): BuildFailure | undefined {
    const id = this.failedIds.find((i) => this.steps.get(i)?.stageTotal) ?? this.failedIds[0];
    const step = id === undefined ? undefined : this.steps.get(id);
    if (!step && !this.finalError && !this.sawDiskFull) return undefined;
    const text = [step?.name ?? '', ...(step?.tail ?? []), this.finalError].join('\n');
    let kind: BuildFailure['kind'] = 'other';
    if (this.sawDiskFull) kind = 'disk-full';
    else if (this.sawFlashMarker || (step && FLASH_RE.test(step.name)) || FLASH_RE.test(this.finalError)) kind = 'flash-attn';
    else if (NETWORK_RE.test(text)) kind = 'network';
    const message = (kind === 'flash-attn' && this.markerLine) || this.finalError || step?.tail.filter(Boolean).slice(-1)[0] || 'build failed';
    return { step, message, kind };
  }
}

/** Parse a whole recorded log. */
export function parseBuildLog(text: string): BuildLogParser {
  const p = new BuildLogParser();
  for (const line of text.split('\n')) p.feed(line);
  return p;
}
